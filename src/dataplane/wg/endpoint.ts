/**
 * A UDP endpoint as the engine sees it (the shape of `dgram`'s `rinfo`), and
 * the byte form of its address that cookies and the per-source rate limit
 * are computed over.
 */

export interface Endpoint {
  /** IPv4 dotted quad or IPv6 text (a `%zone` suffix is ignored). */
  readonly address: string;
  /** UDP port, 0..65535. */
  readonly port: number;
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint): boolean {
  return a !== undefined && a.port === b.port && a.address === b.address;
}

/** 4 bytes for IPv4, 16 for IPv6, undefined for text that is neither. */
export function parseAddress(text: string): Uint8Array | undefined {
  const zone = text.indexOf('%');
  const s = zone >= 0 ? text.slice(0, zone) : text;
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const items = h.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseIPv4(it);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >>> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * The bytes a cookie is bound to: the address bytes then the port, 2 bytes
 * big-endian (network order). Only the responder ever computes these, so the
 * encoding is a local choice; unparseable text is used as UTF-8 instead.
 */
export function endpointBytes(ep: Endpoint): Uint8Array {
  const addr = parseAddress(ep.address) ?? new TextEncoder().encode(ep.address);
  const out = new Uint8Array(addr.length + 2);
  out.set(addr);
  out[addr.length] = (ep.port >>> 8) & 0xff;
  out[addr.length + 1] = ep.port & 0xff;
  return out;
}

/**
 * The key the per-source handshake rate limit counts under: the IPv4
 * address (also when written IPv4-mapped, as dual-stack sockets report it),
 * or the IPv6 /64 (one host can use a whole /64).
 */
export function rateLimitKey(address: string): string {
  const b = parseAddress(address);
  if (!b) return address;
  if (b.length === 4) return `4:${b.join('.')}`;
  if (isV4Mapped(b)) return `4:${b.subarray(12).join('.')}`;
  return `6:${Buffer.from(b.subarray(0, 8)).toString('hex')}`;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}
