/**
 * IP prefixes as bytes, for cryptokey routing in L3 mode (which peer an IP
 * packet goes to, and which sources a peer may send from).
 */
import { ValidationError } from '../../shared/errors.js';
import { parseAddress } from '../wg/endpoint.js';

export interface Prefix {
  /** 4 or 16 bytes, host bits cleared. */
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** Parses `ADDRESS/BITS` (or a bare address: a host prefix); throws ValidationError. */
export function parsePrefix(text: string): Prefix {
  const [addr = '', bitsText] = text.split('/');
  const bytes = parseAddress(addr);
  if (!bytes) throw new ValidationError(`not an IP prefix: ${JSON.stringify(text)}`);
  const max = bytes.length * 8;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (bitsText !== undefined && !/^\d+$/.test(bitsText))) {
    throw new ValidationError(`prefix length of ${JSON.stringify(text)} must be 0 to ${max}`);
  }
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes: out, bits };
}

/** True when `addr` (4 or 16 bytes) lies in `p` (same family only). */
export function prefixContains(p: Prefix, addr: Uint8Array): boolean {
  if (addr.length !== p.bytes.length) return false;
  const full = p.bits >>> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== p.bytes[i]) return false;
  const rest = p.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[full]! & mask) === p.bytes[full];
}
