/**
 * TCP MSS clamp for extended segments, derived from the WAN MTU and the
 * tunnel's per-packet overhead. Pure.
 *
 * A frame of an extended segment crosses the WAN as one WireGuard transport
 * message in one UDP datagram (docs/nftables.md, "MSS clamp"):
 *
 * ```
 * | outer IP | UDP | WG header | plaintext, zero-padded to 16n       | tag |
 * |   20/40  |  8  |    16     | nea hdr 6 | Ethernet 14 | inner IP |  16 |
 * ```
 *
 * The padded plaintext must fit what the WAN MTU leaves after the fixed
 * headers, and padding always rounds up to a multiple of 16, so the largest
 * plaintext that fits in the worst case is that budget rounded down to a
 * multiple of 16. The inner IP MTU is that, less the nea inner header and the
 * Ethernet header; the MSS is the inner IP MTU less the IP and TCP headers
 * (40 for IPv4, 60 for IPv6).
 *
 * Larger segments still cross (the tunnel fragments frames it cannot carry
 * whole); the clamp only keeps TCP from needing that.
 */
import { ValidationError } from '../shared/errors.js';
import { checkMtu } from './netlink.js';

/** Bytes each layer adds to one frame carried through the tunnel. */
export const TUNNEL_OVERHEAD = {
  /** Outer IPv4 header, no options. */
  outerIpv4: 20,
  /** Outer IPv6 header, no extension headers. */
  outerIpv6: 40,
  /** Outer UDP header. */
  udp: 8,
  /** WireGuard transport header: type 4, receiver index 4, counter 8. */
  wireguardHeader: 16,
  /** Poly1305 authentication tag. */
  tag: 16,
  /** nea's inner header in front of each frame (segment id, kind, flags). */
  neaHeader: 6,
  /** Inner Ethernet header (destination MAC, source MAC, EtherType), untagged. */
  ethernet: 14,
  /** WireGuard pads the plaintext to a multiple of this many bytes. */
  padMultiple: 16,
} as const;

/** IPv4 header 20 + TCP header 20, both without options. */
export const TCP_IPV4_HEADERS = 40;
/** IPv6 header 40 + TCP header 20. */
export const TCP_IPV6_HEADERS = 60;
/** Smallest IPv4 MSS a clamp goes down to (RFC 879 default MSS: 576 − 40). */
export const MIN_MSS_IPV4 = 536;
/** Smallest IPv6 MSS a clamp goes down to (IPv6 minimum link MTU 1280 − 60). */
export const MIN_MSS_IPV6 = 1220;
/** Largest MSS that fits a 16-bit IP total length: 65535 − 40. */
export const MAX_MSS_IPV4 = 65535 - TCP_IPV4_HEADERS;
/** Largest IPv6 MSS for a 65535-byte packet: 65535 − 60. */
export const MAX_MSS_IPV6 = 65535 - TCP_IPV6_HEADERS;

/** The clamp values for one extended segment, in bytes of TCP payload. */
export interface MssClamp {
  /** MSS written into SYNs carried in IPv4. */
  ipv4: number;
  /** MSS written into SYNs carried in IPv6. */
  ipv6: number;
}

/** The computation behind a clamp, every value in bytes. */
export interface MssComputation extends MssClamp {
  /** WAN MTU the tunnel's UDP datagrams must fit. */
  wanMtu: number;
  /** Fixed headers around the plaintext: outer IP + UDP + WireGuard header + tag. */
  fixedOverhead: number;
  /** Largest plaintext that fits after padding: (wanMtu − fixedOverhead) rounded down to 16n. */
  plaintextMax: number;
  /** Largest inner IP packet carried whole: plaintextMax − nea header − Ethernet header. */
  innerMtu: number;
}

export interface MssOptions {
  /** Address family of the tunnel's outer (WAN) packets; default 4. */
  outerFamily?: 4 | 6;
  /** Size in bytes of nea's inner header; default {@link TUNNEL_OVERHEAD.neaHeader}. */
  neaHeaderBytes?: number;
}

/**
 * The MSS clamp for a tunnel over a WAN of `wanMtu` bytes. The result never
 * goes below {@link MIN_MSS_IPV4} / {@link MIN_MSS_IPV6}: a path that small
 * is served by the tunnel's fragmentation instead.
 *
 * Example: WAN MTU 1500, IPv4 outer → plaintext 1440, inner MTU 1420,
 * MSS 1380 (IPv4) and 1360 (IPv6).
 *
 * @param wanMtu MTU of the WAN path in bytes (68..65535).
 */
export function computeMssClamp(wanMtu: number, opts: MssOptions = {}): MssComputation {
  checkMtu(wanMtu, 'WAN MTU');
  const o = TUNNEL_OVERHEAD;
  const nea = opts.neaHeaderBytes ?? o.neaHeader;
  if (!Number.isInteger(nea) || nea < 0 || nea > 256) throw new ValidationError(`nea header size ${nea} must be an integer 0..256 bytes`);
  const fixedOverhead = (opts.outerFamily === 6 ? o.outerIpv6 : o.outerIpv4) + o.udp + o.wireguardHeader + o.tag;
  const budget = wanMtu - fixedOverhead;
  const plaintextMax = Math.floor(budget / o.padMultiple) * o.padMultiple;
  const innerMtu = plaintextMax - nea - o.ethernet;
  if (innerMtu <= TCP_IPV6_HEADERS) {
    throw new ValidationError(`WAN MTU ${wanMtu} leaves no room for a TCP segment after ${fixedOverhead + nea + o.ethernet} bytes of tunnel overhead`);
  }
  return {
    wanMtu,
    fixedOverhead,
    plaintextMax,
    innerMtu,
    ipv4: Math.min(MAX_MSS_IPV4, Math.max(MIN_MSS_IPV4, innerMtu - TCP_IPV4_HEADERS)),
    ipv6: Math.min(MAX_MSS_IPV6, Math.max(MIN_MSS_IPV6, innerMtu - TCP_IPV6_HEADERS)),
  };
}

/** Validate clamp values given in a desired state; throws ValidationError naming `what`. */
export function checkMssClamp(m: MssClamp, what: string): MssClamp {
  const check = (v: number, lo: number, hi: number, fam: string): void => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ValidationError(`${what}: ${fam} MSS ${v} must be an integer ${lo}..${hi} bytes`);
  };
  check(m.ipv4, MIN_MSS_IPV4, MAX_MSS_IPV4, 'IPv4');
  check(m.ipv6, MIN_MSS_IPV6, MAX_MSS_IPV6, 'IPv6');
  return { ipv4: m.ipv4, ipv6: m.ipv6 };
}
