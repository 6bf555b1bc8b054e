/**
 * nea's inner payload: what a WireGuard transport message carries.
 *
 * The first byte of the decrypted payload tells its kind:
 *
 * | first byte | kind | layout (big-endian) |
 * |---|---|---|
 * | (none: length 0) | keepalive | WireGuard's own |
 * | `0x4_` / `0x6_` | IP packet (L3 mode, as WireGuard carries) | the packet; its own header gives the length |
 * | `0x10` | L2 frame | `0x10, flags=0, segment u16, length u16`, then the frame |
 * | `0x11` | L2 fragment | `0x11, flags (bit 0: last), segment u16, frame id u16, frame length u16, offset u16, chunk length u16`, then the chunk |
 * | `0x12` | L2 offload fragment | `0x12, flags (bit 0: last), segment u16, frame id u16, chunk length u16, frame length u32, offset u32`, then the chunk |
 * | `0x13` | capabilities | `0x13, flags (bit 0: accepts offload frames)` |
 *
 * An offload frame (kind 0x12, only to a peer that announced bit 0 of 0x13)
 * is a 10-byte virtio_net_hdr (little-endian, as Linux's TAP with
 * IFF_VNET_HDR reads and writes it: GSO type and size, checksum start and
 * offset) followed by the Ethernet frame, up to {@link MAX_OFFLOAD_BYTES}:
 * a TCP super-frame of up to 64 KiB that the receiving kernel segments.
 * It is always sent as fragments, even when it would fit one datagram.
 *
 * Trailing bytes after the declared length are WireGuard's zero padding and
 * are ignored. Anything else is dropped and counted ("bad-inner"). Frames are
 * Ethernet frames without FCS, as a TAP reads them.
 */

export const INNER_L2 = 0x10;
export const INNER_L2_FRAGMENT = 0x11;
export const INNER_L2_OFFLOAD = 0x12;
export const INNER_CAPABILITIES = 0x13;
/** Bytes of the L2 offload fragment header. */
export const OFFLOAD_HEADER_BYTES = 16;
/** Bytes of the capabilities message. */
export const CAPABILITIES_BYTES = 2;
/** Capability bit: the sender accepts offload frames (kind 0x12). */
export const CAP_OFFLOAD = 0x01;
/** Bytes of the virtio_net_hdr at the start of an offload frame. */
export const VNET_HEADER_BYTES = 10;
/** Largest offload frame (virtio header + Ethernet frame), in bytes. */
export const MAX_OFFLOAD_BYTES = 65_664;
/** Bytes of the L2 frame header. */
export const L2_HEADER_BYTES = 6;
/** Bytes of the L2 fragment header. */
export const FRAGMENT_HEADER_BYTES = 12;
/** Largest Ethernet frame nea carries, in bytes (a jumbo frame of 9000 + header + 2 tags). */
export const MAX_FRAME_BYTES = 9022;
/** Segment ids are 12-bit like VLAN ids: 1..4094. */
export const MAX_SEGMENT_ID = 4094;
/** Flag of the last fragment of a frame. */
export const FRAGMENT_LAST = 0x01;

/** Overhead of one tunnel datagram outside the inner payload, in bytes, per outer IP version. */
export const OUTER_OVERHEAD = {
  /** IPv4 20 + UDP 8 + WireGuard transport header 16 + Poly1305 tag 16. */
  4: 60,
  /** IPv6 40 + UDP 8 + 16 + 16. */
  6: 80,
} as const;

export type InnerKind = 'keepalive' | 'ip' | 'l2' | 'l2-fragment' | 'l2-offload' | 'capabilities' | 'bad';

/** Classifies a decrypted payload by its first byte (and length). */
export function innerKind(p: Uint8Array, off: number, len: number): InnerKind {
  if (len === 0) return 'keepalive';
  const b = p[off]!;
  if (b === INNER_L2) return len >= L2_HEADER_BYTES ? 'l2' : 'bad';
  if (b === INNER_L2_FRAGMENT) return len >= FRAGMENT_HEADER_BYTES ? 'l2-fragment' : 'bad';
  if (b === INNER_L2_OFFLOAD) return len >= OFFLOAD_HEADER_BYTES ? 'l2-offload' : 'bad';
  if (b === INNER_CAPABILITIES) return len >= CAPABILITIES_BYTES ? 'capabilities' : 'bad';
  const v = b >>> 4;
  return v === 4 || v === 6 ? 'ip' : 'bad';
}

/** Writes the L2 header for a `frameLength`-byte frame at `p[off..]`; the frame follows at off + 6. */
export function writeL2Header(p: Uint8Array, off: number, segment: number, frameLength: number): void {
  p[off] = INNER_L2;
  p[off + 1] = 0;
  p[off + 2] = segment >>> 8;
  p[off + 3] = segment & 0xff;
  p[off + 4] = frameLength >>> 8;
  p[off + 5] = frameLength & 0xff;
}

/** Segment id of an L2 (or fragment) payload at `p[off..]`. */
export function innerSegment(p: Uint8Array, off: number): number {
  return (p[off + 2]! << 8) | p[off + 3]!;
}

/**
 * Length of the frame of an L2 payload of `len` bytes at `p[off..]`, or -1
 * when the declared length does not fit the payload or the limits.
 */
export function l2FrameLength(p: Uint8Array, off: number, len: number): number {
  const n = (p[off + 4]! << 8) | p[off + 5]!;
  return n >= 14 && n <= MAX_FRAME_BYTES && L2_HEADER_BYTES + n <= len ? n : -1;
}

export interface FragmentHeader {
  segment: number;
  last: boolean;
  frameId: number;
  frameLength: number;
  offset: number;
  chunkLength: number;
}

/** Writes a fragment header at `p[off..]`; the chunk follows at off + 12. */
export function writeFragmentHeader(p: Uint8Array, off: number, h: FragmentHeader): void {
  p[off] = INNER_L2_FRAGMENT;
  p[off + 1] = h.last ? FRAGMENT_LAST : 0;
  p[off + 2] = h.segment >>> 8;
  p[off + 3] = h.segment & 0xff;
  p[off + 4] = h.frameId >>> 8;
  p[off + 5] = h.frameId & 0xff;
  p[off + 6] = h.frameLength >>> 8;
  p[off + 7] = h.frameLength & 0xff;
  p[off + 8] = h.offset >>> 8;
  p[off + 9] = h.offset & 0xff;
  p[off + 10] = h.chunkLength >>> 8;
  p[off + 11] = h.chunkLength & 0xff;
}

/** Parses and checks a fragment header of a `len`-byte payload; undefined when inconsistent. */
export function readFragmentHeader(p: Uint8Array, off: number, len: number): FragmentHeader | undefined {
  if (len < FRAGMENT_HEADER_BYTES || p[off] !== INNER_L2_FRAGMENT) return undefined;
  const h: FragmentHeader = {
    segment: (p[off + 2]! << 8) | p[off + 3]!,
    last: (p[off + 1]! & FRAGMENT_LAST) !== 0,
    frameId: (p[off + 4]! << 8) | p[off + 5]!,
    frameLength: (p[off + 6]! << 8) | p[off + 7]!,
    offset: (p[off + 8]! << 8) | p[off + 9]!,
    chunkLength: (p[off + 10]! << 8) | p[off + 11]!,
  };
  if (h.frameLength < 14 || h.frameLength > MAX_FRAME_BYTES) return undefined;
  if (h.chunkLength === 0 || FRAGMENT_HEADER_BYTES + h.chunkLength > len) return undefined;
  if (h.offset + h.chunkLength > h.frameLength) return undefined;
  if (h.last !== (h.offset + h.chunkLength === h.frameLength)) return undefined;
  return h;
}

/** Writes an offload fragment header at `p[off..]`; the chunk follows at off + 16. */
export function writeOffloadHeader(p: Uint8Array, off: number, segment: number, frameId: number, frameLength: number,
  offset: number, chunkLength: number): void {
  p[off] = INNER_L2_OFFLOAD;
  p[off + 1] = offset + chunkLength === frameLength ? FRAGMENT_LAST : 0;
  p[off + 2] = segment >>> 8;
  p[off + 3] = segment & 0xff;
  p[off + 4] = frameId >>> 8;
  p[off + 5] = frameId & 0xff;
  p[off + 6] = chunkLength >>> 8;
  p[off + 7] = chunkLength & 0xff;
  p[off + 8] = frameLength >>> 24;
  p[off + 9] = (frameLength >>> 16) & 0xff;
  p[off + 10] = (frameLength >>> 8) & 0xff;
  p[off + 11] = frameLength & 0xff;
  p[off + 12] = offset >>> 24;
  p[off + 13] = (offset >>> 16) & 0xff;
  p[off + 14] = (offset >>> 8) & 0xff;
  p[off + 15] = offset & 0xff;
}

/**
 * Parses and checks an offload fragment header of a `len`-byte payload into
 * `h` (reused by the caller: no allocation per fragment); false when
 * inconsistent. The frame length covers the virtio header, which must fit.
 */
export function readOffloadHeader(p: Uint8Array, off: number, len: number, h: FragmentHeader): boolean {
  if (len < OFFLOAD_HEADER_BYTES || p[off] !== INNER_L2_OFFLOAD) return false;
  h.segment = (p[off + 2]! << 8) | p[off + 3]!;
  h.last = (p[off + 1]! & FRAGMENT_LAST) !== 0;
  h.frameId = (p[off + 4]! << 8) | p[off + 5]!;
  h.chunkLength = (p[off + 6]! << 8) | p[off + 7]!;
  h.frameLength = ((p[off + 8]! << 24) | (p[off + 9]! << 16) | (p[off + 10]! << 8) | p[off + 11]!) >>> 0;
  h.offset = ((p[off + 12]! << 24) | (p[off + 13]! << 16) | (p[off + 14]! << 8) | p[off + 15]!) >>> 0;
  if (h.frameLength < VNET_HEADER_BYTES + 14 || h.frameLength > MAX_OFFLOAD_BYTES) return false;
  if (h.chunkLength === 0 || OFFLOAD_HEADER_BYTES + h.chunkLength > len) return false;
  if (h.offset + h.chunkLength > h.frameLength) return false;
  return h.last === (h.offset + h.chunkLength === h.frameLength);
}

/** Writes the capabilities message at `p[off..]` (CAPABILITIES_BYTES). */
export function writeCapabilities(p: Uint8Array, off: number, flags: number): void {
  p[off] = INNER_CAPABILITIES;
  p[off + 1] = flags;
}

/** Flags of a capabilities message at `p[off..]`. */
export function capabilityFlags(p: Uint8Array, off: number): number {
  return p[off + 1]!;
}

/**
 * Largest inner payload, in bytes, that fits one datagram on a WAN path of
 * `wanMtu` bytes with outer IP version `ipVersion`: a multiple of 16, so
 * WireGuard's padding never pushes a packet over the path MTU.
 */
export function maxInnerPayload(wanMtu: number, ipVersion: 4 | 6): number {
  return Math.floor((wanMtu - OUTER_OVERHEAD[ipVersion]) / 16) * 16;
}

/** Largest frame sent whole (unfragmented) on that path. */
export function maxWholeFrame(wanMtu: number, ipVersion: 4 | 6): number {
  return maxInnerPayload(wanMtu, ipVersion) - L2_HEADER_BYTES;
}

/** Bytes of frame per fragment on that path. */
export function fragmentChunk(wanMtu: number, ipVersion: 4 | 6): number {
  return maxInnerPayload(wanMtu, ipVersion) - FRAGMENT_HEADER_BYTES;
}

/** Bytes of offload frame per offload fragment on that path. */
export function offloadChunk(wanMtu: number, ipVersion: 4 | 6): number {
  return maxInnerPayload(wanMtu, ipVersion) - OFFLOAD_HEADER_BYTES;
}
