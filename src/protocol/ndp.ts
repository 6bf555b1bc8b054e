/**
 * IPv6 neighbour discovery frames (RFC 4861): pure builders and a parser
 * for tests. No I/O. Addresses are 16 bytes in network order (the protocol
 * room parses no address text; callers in netconfig do).
 */
import { ETHERTYPE_IPV6, macBytes } from './ethernet.js';

export const IPPROTO_ICMPV6 = 58;
export const ICMPV6_NEIGHBOUR_ADVERT = 136;
/** Option type: target link-layer address. */
const ND_OPT_TARGET_LL = 2;
/** ff02::1, all nodes. */
export const ALL_NODES = Uint8Array.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** Flags of a neighbour advertisement (first byte of its reserved word). */
export const NA_FLAG = { router: 0x80, solicited: 0x40, override: 0x20 } as const;

/** The Ethernet multicast MAC of an IPv6 multicast group: 33:33 + its last 4 bytes. */
function multicastMac(group: Uint8Array): Uint8Array {
  return Uint8Array.from([0x33, 0x33, group[12]!, group[13]!, group[14]!, group[15]!]);
}

/** One's-complement sum of `b` (16-bit big-endian words), folded into `acc`. */
function sum16(b: Uint8Array, acc = 0): number {
  let s = acc;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2 === 1) s += b[b.length - 1]! << 8;
  return s;
}

/** The ICMPv6 checksum of `msg` (checksum field zero) between `src` and `dst`. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, msg.length);
  pseudo[39] = IPPROTO_ICMPV6;
  let s = sum16(msg, sum16(pseudo));
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `address`
 * from `mac`: to all nodes (ff02::1), hop limit 255, Override set,
 * Solicited clear, Router as given, with the target link-layer address
 * option. Neighbours that have an entry for `address` take `mac` (state
 * STALE, then re-verified). 86 bytes.
 */
export function unsolicitedNeighbourAdvert(mac: string, address: Uint8Array, opts: { router?: boolean } = {}): Uint8Array {
  if (address.length !== 16) throw new Error('unsolicitedNeighbourAdvert: the address must be 16 bytes');
  const src = macBytes(mac);
  const icmp = new Uint8Array(32);
  icmp[0] = ICMPV6_NEIGHBOUR_ADVERT;
  icmp[4] = NA_FLAG.override | (opts.router ? NA_FLAG.router : 0);
  icmp.set(address, 8);
  icmp[24] = ND_OPT_TARGET_LL;
  icmp[25] = 1; // option length in units of 8 bytes
  icmp.set(src, 26);
  new DataView(icmp.buffer).setUint16(2, icmpv6Checksum(address, ALL_NODES, icmp));

  const f = new Uint8Array(14 + 40 + icmp.length);
  const v = new DataView(f.buffer);
  f.set(multicastMac(ALL_NODES), 0);
  f.set(src, 6);
  v.setUint16(12, ETHERTYPE_IPV6);
  v.setUint32(14, 0x60000000); // version 6, traffic class 0, flow label 0
  v.setUint16(18, icmp.length);
  f[20] = IPPROTO_ICMPV6;
  f[21] = 255; // hop limit: ND messages must carry 255
  f.set(address, 22);
  f.set(ALL_NODES, 38);
  f.set(icmp, 54);
  return f;
}
