/**
 * Segment guards: checks the tunnel engine runs on every frame of a segment,
 * in both directions, before anything else (MAC learning, forwarding).
 * A guard returns the reason to drop a frame (counted in the segment's
 * `drops` under that name) or undefined to let it pass. It runs on the hot
 * path: no allocation, no closures per frame; reasons are string constants.
 */
import { carriesTag } from '../../protocol/vlan.js';

/** Where a frame entered the engine: its segment's local port, or the tunnel (a peer). */
export type FrameSource = 'local' | 'tunnel';

export interface FrameGuard {
  /** Why the frame `buf[off, off+len)` of `segment`, from `from`, must be dropped; undefined: it passes. */
  check(segment: number, from: FrameSource, buf: Uint8Array, off: number, len: number): string | undefined;
}

/**
 * A segment is one untagged L2 network: a frame that carries an 802.1Q,
 * 802.1ad or 0x9100 tag of its own is dropped (`double-tagged`), wherever it
 * comes from. Carried across, it would leave the other side's trunk with a
 * second tag, which a switch may take for another VLAN (VLAN hopping).
 */
export const innerTagGuard: FrameGuard = {
  check: (_segment, _from, buf, off, len) => (carriesTag(buf, off, len) ? 'double-tagged' : undefined),
};
