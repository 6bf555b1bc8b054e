/**
 * The trunk guard: which frames received on a VLAN trunk belong to one of
 * this appliance's segments, and why the others are dropped. Pure; shared by
 * the user-space trunk (which forwards what it accepts) and the kernel-mode
 * trunk monitor (which only counts what the kernel drops or must not carry).
 */
import { TPID_8021Q, carriesTag, tagTpid, tagVid } from '../../protocol/vlan.js';

/**
 * Why a trunk frame was dropped (the keys of the trunk's `drops` counters):
 * - `untagged`: no tag, or a priority tag (VLAN 0): the trunk has no native VLAN;
 * - `foreign-tpid`: an outer tag that is not 802.1Q (an 802.1ad S-tag, 0x9100);
 * - `foreign-vlan`: a VLAN id that is none of this appliance's segments;
 * - `double-tagged`: one of our VLANs, but the frame carries another tag
 *   inside (802.1Q, 802.1ad or 0x9100): forwarding it would put a second
 *   VLAN into the segment;
 * - `runt`: shorter than an Ethernet header.
 */
export type TrunkDropReason = 'untagged' | 'foreign-tpid' | 'foreign-vlan' | 'double-tagged' | 'runt';

/** The order reasons are reported in. */
export const TRUNK_DROP_REASONS: readonly TrunkDropReason[] = ['untagged', 'foreign-tpid', 'foreign-vlan', 'double-tagged', 'runt'];

/**
 * The VLAN of an accepted trunk frame (1..4094), or the reason it is dropped.
 * `tag` is the outer tag the kernel took off (`(tpid << 16) | tci`, 0 when
 * untagged); `buf[off, off+len)` the frame without it; `ours[vid]` is
 * non-zero for this appliance's VLANs (a 4096-entry table).
 */
export function classifyTrunkFrame(tag: number, buf: Uint8Array, off: number, len: number, ours: Uint8Array): number | TrunkDropReason {
  if (len < 14) return 'runt';
  const vid = tagVid(tag);
  if (tag === 0 || vid === 0) return 'untagged';
  if (tagTpid(tag) !== TPID_8021Q) return 'foreign-tpid';
  if (ours[vid] === 0) return 'foreign-vlan';
  if (carriesTag(buf, off, len)) return 'double-tagged';
  return vid;
}

/** A 4096-entry membership table of `vlans`, for {@link classifyTrunkFrame}. */
export function vlanTable(vlans: Iterable<number>): Uint8Array {
  const t = new Uint8Array(4096);
  for (const v of vlans) t[v & 0x0fff] = 1;
  return t;
}
