/**
 * IP and MAC address text <-> bytes, pure.
 *
 * Contract: every address that crosses the netconfig API is a string in one
 * canonical form, so that equal addresses compare equal as strings:
 * IPv4 dotted quad, IPv6 per RFC 5952 (lowercase, longest zero run
 * compressed, IPv4-mapped written `::ffff:a.b.c.d`), MAC lowercase
 * colon-separated. Parsers throw ValidationError with a one-line message.
 */
import { ValidationError } from '../shared/errors.js';

export type Family = 4 | 6;

/** Linux address family numbers (AF_INET, AF_INET6). */
export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

export interface ParsedIp {
  family: Family;
  /** 4 or 16 bytes, network order. */
  bytes: Buffer;
}

function parseV4(s: string): Buffer | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): Buffer | undefined {
  if (s.includes('%')) return undefined; // zone ids have no meaning in netlink
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const items = h.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseV4(g);
        if (!v4) return undefined;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
        out.push(parseInt(g, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return undefined;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** Parse an IPv4 or IPv6 address (no prefix). Returns undefined when it is neither. */
export function tryParseIp(s: string): ParsedIp | undefined {
  const v4 = parseV4(s);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = s.includes(':') ? parseV6(s) : undefined;
  if (v6) return { family: 6, bytes: v6 };
  return undefined;
}

export function parseIp(s: string, what = 'address'): ParsedIp {
  const r = tryParseIp(s);
  if (!r) throw new ValidationError(`${what} "${s}" is not an IPv4 or IPv6 address`);
  return r;
}

/** Canonical text of a 4- or 16-byte address. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new ValidationError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const buf = Buffer.from(b);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(i * 2));
  // IPv4-mapped ::ffff:a.b.c.d
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${Array.from(buf.subarray(12)).join('.')}`;
  }
  // Longest run of two or more zero groups, first one on a tie (RFC 5952 4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an address given as text; throws ValidationError when invalid. */
export function canonicalIp(s: string, what = 'address'): string {
  return formatIp(parseIp(s, what).bytes);
}

export interface ParsedCidr extends ParsedIp {
  prefixLength: number;
}

/** Parse `ADDRESS/PREFIX`. Host bits may be set (an interface address). */
export function parseCidr(s: string, what = 'address'): ParsedCidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw new ValidationError(`${what} "${s}" needs a prefix length (ADDRESS/PREFIX)`);
  const ip = parseIp(s.slice(0, slash), what);
  const p = s.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
    throw new ValidationError(`${what} "${s}": prefix length must be 0..${max}`);
  }
  return { ...ip, prefixLength: Number(p) };
}

export function formatCidr(bytes: Uint8Array, prefixLength: number): string {
  return `${formatIp(bytes)}/${prefixLength}`;
}

/** True when every bit after the prefix is zero (a network address). */
export function isNetworkAddress(bytes: Uint8Array, prefixLength: number): boolean {
  for (let bit = prefixLength; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return false;
  }
  return true;
}

/** True for IPv6 link-local (fe80::/10). */
export function isV6LinkLocal(bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes[0] === 0xfe && (bytes[1]! & 0xc0) === 0x80;
}

/** Parse a MAC address `aa:bb:cc:dd:ee:ff` (also `-` separated, any case). */
export function parseMac(s: string, what = 'MAC address'): Buffer {
  if (!/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(s)) {
    throw new ValidationError(`${what} "${s}" is not six hex bytes like 02:00:00:00:00:01`);
  }
  return Buffer.from(s.replace(/[:-]/g, ''), 'hex');
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function canonicalMac(s: string, what = 'MAC address'): string {
  return formatMac(parseMac(s, what));
}
