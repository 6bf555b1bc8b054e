/**
 * 802.1Q / 802.1ad VLAN tags: pure helpers (no I/O).
 *
 * A tag travels in one 32-bit number everywhere in nea, as on the wire:
 * `(tpid << 16) | tci`, where the TCI is `pcp (3 bits) | dei (1) | vid (12)`.
 * 0 means "no tag" (a TPID is never 0). The AF_PACKET socket reports received
 * tags in that form and takes tags to insert in it (src/native/packet.cc).
 */
import { ETHERTYPE_QINQ, ETHERTYPE_VLAN } from './ethernet.js';

/** 802.1Q customer tag (C-tag). */
export const TPID_8021Q = ETHERTYPE_VLAN;
/** 802.1ad service tag (S-tag, QinQ). */
export const TPID_8021AD = ETHERTYPE_QINQ;
/** Pre-standard QinQ TPID some switches still use. */
export const TPID_QINQ_LEGACY = 0x9100;

/** Smallest and largest VLAN id a segment may use (0 means priority-tagged, 4095 is reserved). */
export const MIN_VLAN_ID = 1;
export const MAX_VLAN_ID = 4094;

/** True for the EtherTypes that announce a VLAN tag (802.1Q, 802.1ad, legacy 0x9100). */
export function isTagEtherType(type: number): boolean {
  return type === TPID_8021Q || type === TPID_8021AD || type === TPID_QINQ_LEGACY;
}

/** The EtherType (or TPID) at bytes 12-13 of the frame at `off`. */
export function etherTypeAt(buf: Uint8Array, off: number): number {
  return (buf[off + 12]! << 8) | buf[off + 13]!;
}

/**
 * True when the frame at `buf[off, off+len)` carries a VLAN tag in its own
 * bytes. Inside a segment (untagged by definition) such a frame would leave a
 * trunk double-tagged: the segment guards drop it.
 */
export function carriesTag(buf: Uint8Array, off: number, len: number): boolean {
  return len >= 14 && isTagEtherType(etherTypeAt(buf, off));
}

/** The tag word of VLAN `vid` (TPID 802.1Q unless given, priority 0 unless given). */
export function tagWord(vid: number, tpid: number = TPID_8021Q, pcp = 0): number {
  return ((tpid << 16) | ((pcp & 7) << 13) | (vid & 0x0fff)) >>> 0;
}

/** VLAN id of a tag word. */
export function tagVid(tag: number): number {
  return tag & 0x0fff;
}

/** TPID of a tag word (0 for "no tag"). */
export function tagTpid(tag: number): number {
  return tag >>> 16;
}

/** True when `v` is a VLAN id a segment may use (1..4094). */
export function isVlanId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= MIN_VLAN_ID && v <= MAX_VLAN_ID;
}

/** A copy of `frame` with `tag` inserted after the MAC addresses (tests, tools; not the hot path). */
export function insertTag(frame: Uint8Array, tag: number): Uint8Array {
  if (frame.length < 14) throw new RangeError(`a frame has at least 14 bytes, got ${frame.length}`);
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, 12), 0);
  out[12] = tag >>> 24;
  out[13] = (tag >>> 16) & 0xff;
  out[14] = (tag >>> 8) & 0xff;
  out[15] = tag & 0xff;
  out.set(frame.subarray(12), 16);
  return out;
}

/**
 * The outer tag of a frame carrying it in its bytes, and a copy of the frame
 * without it; `tag` 0 and the frame unchanged (a copy) when it has none.
 */
export function stripTag(frame: Uint8Array): { tag: number; frame: Uint8Array } {
  if (!carriesTag(frame, 0, frame.length) || frame.length < 18) return { tag: 0, frame: Uint8Array.from(frame) };
  const tag = ((frame[12]! << 24) | (frame[13]! << 16) | (frame[14]! << 8) | frame[15]!) >>> 0;
  const out = new Uint8Array(frame.length - 4);
  out.set(frame.subarray(0, 12), 0);
  out.set(frame.subarray(16), 12);
  return { tag, frame: out };
}
