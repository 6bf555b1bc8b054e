import { describe, expect, it } from 'vitest';
import { SystemError, ValidationError } from '../shared/errors.js';
import {
  ADDR_BYTES,
  EndpointInterner,
  SockAddr,
  UdpDestinations,
  UdpSendError,
  UdpSlabBatch,
  addressText,
  endpointText,
  resolveUdpOptions,
  toUdpError,
  udpErrorCode,
  writeAddress,
} from './udp.js';

/** A batch view over hand-made sources (datagram i from sources[i]). */
function batchFrom(sources: { address: string; port: number }[]): UdpSlabBatch {
  const n = sources.length;
  const b = new UdpSlabBatch(Buffer.alloc(n * 64), 64, new Uint32Array(n), new Uint8Array(n * ADDR_BYTES), new Uint16Array(n));
  sources.forEach((s, i) => {
    writeAddress(s.address, b.sourceAddrs, i * ADDR_BYTES);
    b.sourcePorts[i] = s.port;
  });
  b.count = n;
  return b;
}

describe('address text', () => {
  it.each([
    ['10.7.0.1', '10.7.0.1', 4],
    ['0.0.0.0', '0.0.0.0', 4],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['fd07::1', 'fd07::1', 6],
    ['FD07:0:0:0:0:0:0:1', 'fd07::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6], // the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1', 6], // one zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1', 6], // the longest run wins
    ['::ffff:10.1.2.3', '10.1.2.3', 6], // IPv6 text, but IPv4-mapped prints as IPv4
    ['::10.1.2.3', '::a01:203', 6],
    ['fe80::1:2', 'fe80::1:2', 6],
  ] as const)('%s -> %s (text of IPv%d)', (text, canonical, family) => {
    const b = new Uint8Array(ADDR_BYTES);
    expect(writeAddress(text, b)).toBe(family);
    expect(addressText(b)).toBe(canonical);
  });

  it('agrees with the WHATWG URL serializer on random IPv6 addresses', () => {
    let seed = 7;
    const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed >>> 16; };
    for (let n = 0; n < 500; n++) {
      const b = new Uint8Array(ADDR_BYTES);
      for (let g = 0; g < 8; g++) {
        const v = rnd() % 3 === 0 ? rnd() : 0; // many zero groups
        b[2 * g] = v >>> 8;
        b[2 * g + 1] = v & 0xff;
      }
      if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) continue;
      const text = addressText(b);
      expect(new URL(`http://[${text}]/`).hostname, text).toBe(`[${text}]`);
      const back = new Uint8Array(ADDR_BYTES);
      expect(writeAddress(text, back)).toBe(6);
      expect(back).toEqual(b);
    }
  });

  it('refuses host names and zones', () => {
    const b = new Uint8Array(ADDR_BYTES);
    expect(writeAddress('localhost', b)).toBe(0);
    expect(writeAddress('fe80::1%eth0', b)).toBe(0);
    expect(writeAddress('10.0.0.256', b)).toBe(0);
    expect(writeAddress('', b)).toBe(0);
  });

  it('writes endpoints as host:port and [v6]:port', () => {
    expect(endpointText({ address: '10.0.0.1', port: 51820 })).toBe('10.0.0.1:51820');
    expect(endpointText({ address: 'fd07::1', port: 1 })).toBe('[fd07::1]:1');
  });
});

describe('SockAddr', () => {
  it('parses, compares, copies and prints', () => {
    const a = SockAddr.from({ address: '10.7.0.2', port: 51820 });
    expect(a.isV4).toBe(true);
    expect(a.toEndpoint()).toEqual({ address: '10.7.0.2', port: 51820 });
    expect(a.toString()).toBe('10.7.0.2:51820');
    const b = new SockAddr().copy(a);
    expect(b.equals(a)).toBe(true);
    expect(b.hash()).toBe(a.hash());
    b.port = 1;
    expect(b.equals(a)).toBe(false);
    const c = SockAddr.from({ address: '::ffff:10.7.0.2', port: 51820 });
    expect(c.equals(a)).toBe(true);
    const d = SockAddr.from({ address: 'fd07::2', port: 51820 });
    expect(d.isV4).toBe(false);
    expect(d.equals(a)).toBe(false);
    expect(d.toString()).toBe('[fd07::2]:51820');
  });

  it('refuses what is not an address and port', () => {
    expect(() => SockAddr.from({ address: 'peer.example', port: 1 })).toThrow(ValidationError);
    expect(() => SockAddr.from({ address: '10.0.0.1', port: 65536 })).toThrow(/port must be an integer from 0 to 65535/);
    expect(() => SockAddr.from({ address: '10.0.0.1', port: 1.5 })).toThrow(ValidationError);
  });
});

describe('UdpSlabBatch sources', () => {
  const b = batchFrom([
    { address: '10.7.0.1', port: 4000 },
    { address: 'fd07::1', port: 4001 },
    { address: '10.7.0.1', port: 4000 },
  ]);

  it('reads sources in place and as endpoints', () => {
    expect(b.sourcePort(1)).toBe(4001);
    expect([0, 1, 2].map((i) => b.sourceIsV4(i))).toEqual([true, false, true]);
    expect(b.source(0)).toEqual({ address: '10.7.0.1', port: 4000 });
    expect(b.source(1)).toEqual({ address: 'fd07::1', port: 4001 });
    expect(() => b.source(3)).toThrow(RangeError);
  });

  it('compares, hashes and copies without parsing', () => {
    const a = SockAddr.from({ address: '10.7.0.1', port: 4000 });
    expect(b.sourceEquals(0, a)).toBe(true);
    expect(b.sourceEquals(1, a)).toBe(false);
    expect(b.sourceHash(0)).toBe(a.hash());
    expect(b.sourceHash(2)).toBe(b.sourceHash(0));
    expect(b.sourceHash(1)).not.toBe(b.sourceHash(0));
    const out = new SockAddr();
    expect(b.sourceInto(1, out)).toBe(out);
    expect(out.toEndpoint()).toEqual({ address: 'fd07::1', port: 4001 });
  });
});

describe('UdpDestinations', () => {
  it('holds one destination per datagram, also copied from a batch source', () => {
    const d = new UdpDestinations(3);
    const a = SockAddr.from({ address: '10.0.0.9', port: 9 });
    d.set(0, a);
    d.setFromSource(1, batchFrom([{ address: 'fd07::7', port: 7 }]), 0);
    expect(d.equals(0, a)).toBe(true);
    expect(d.equals(1, a)).toBe(false);
    expect(new SockAddr().setFrom(d.addrs, d.ports, 1).toEndpoint()).toEqual({ address: 'fd07::7', port: 7 });
    expect(() => new UdpDestinations(0)).toThrow(RangeError);
  });
});

describe('EndpointInterner', () => {
  it('returns the same frozen endpoint object for the same source', () => {
    const interner = new EndpointInterner();
    const b = batchFrom([
      { address: '10.7.0.1', port: 4000 },
      { address: '10.7.0.1', port: 4000 },
      { address: '10.7.0.1', port: 4001 },
    ]);
    const e0 = interner.source(b, 0);
    expect(interner.source(b, 1)).toBe(e0);
    expect(interner.source(b, 2)).not.toBe(e0);
    expect(e0).toEqual({ address: '10.7.0.1', port: 4000 });
    expect(Object.isFrozen(e0)).toBe(true);
    expect(interner.size).toBe(2);
    expect(interner.sockAddr(e0).toEndpoint()).toEqual(e0);
    expect(interner.sockAddr(e0)).toBe(interner.sockAddr(e0));
  });

  it('parses a foreign endpoint once, and starts afresh past maxEntries', () => {
    const interner = new EndpointInterner(2);
    const ep = { address: 'fd07::2', port: 2 };
    expect(interner.sockAddr(ep)).toBe(interner.sockAddr(ep));
    const b = batchFrom([1, 2, 3].map((p) => ({ address: '10.0.0.1', port: p })));
    const first = interner.source(b, 0);
    interner.source(b, 1);
    expect(interner.size).toBe(2);
    interner.source(b, 2);
    expect(interner.size).toBe(1);
    expect(interner.source(b, 0)).not.toBe(first);
    expect(interner.source(b, 0)).toEqual(first);
  });
});

describe('resolveUdpOptions', () => {
  it('fills defaults', () => {
    expect(resolveUdpOptions({ address: '::', port: 0 })).toEqual({
      address: '::', family: 6, port: 0, batchSize: 64, slotSize: 2048, rcvbuf: 4194304, sndbuf: 4194304,
      v6Only: false, gso: false, gro: false, queueDelay: false,
    });
    expect(resolveUdpOptions({ address: '10.0.0.1', port: 51820 }).family).toBe(4);
  });

  it.each([
    [{ address: 'localhost', port: 1 }, /not an IPv4 or IPv6 address/],
    [{ address: '0.0.0.0', port: -1 }, /port must be/],
    [{ address: '0.0.0.0', port: 70000 }, /port must be/],
    [{ address: '0.0.0.0', port: 1, batchSize: 0 }, /batchSize must be an integer from 1 to 4096/],
    [{ address: '0.0.0.0', port: 1, slotSize: 32 }, /slotSize must be an integer from 64 to 131072/],
    [{ address: '0.0.0.0', port: 1, rcvbuf: -1 }, /rcvbuf must be/],
    [{ address: '0.0.0.0', port: 1, sndbuf: 2 ** 31 }, /sndbuf must be/],
    [{ address: '0.0.0.0', port: 1, gro: true }, /gro needs batchSize >= 128/],
    [{ address: '0.0.0.0', port: 1, v6Only: true }, /v6Only applies to IPv6 sockets/],
  ])('refuses %j', (opts, why) => {
    expect(() => resolveUdpOptions(opts)).toThrow(why);
    expect(() => resolveUdpOptions(opts)).toThrow(ValidationError);
  });
});

describe('error codes', () => {
  it.each([
    ['open', 'EADDRINUSE', 'UDP_ADDRESS_IN_USE'],
    ['open', 'EADDRNOTAVAIL', 'UDP_ADDRESS_NOT_AVAILABLE'],
    ['open', 'EACCES', 'UDP_NO_PERMISSION'],
    ['open', 'EPERM', 'UDP_NO_PERMISSION'],
    ['open', 'EAFNOSUPPORT', 'UDP_OPEN_FAILED'],
    ['open', 'EINVAL', 'UDP_OPEN_FAILED'],
    ['send', 'ENETUNREACH', 'UDP_NO_ROUTE'],
    ['send', 'EHOSTUNREACH', 'UDP_NO_ROUTE'],
    ['send', 'ENETDOWN', 'UDP_NO_ROUTE'],
    ['send', 'EMSGSIZE', 'UDP_SEND_FAILED'],
    ['send', 'EPERM', 'UDP_SEND_FAILED'],
    ['send', 'EBADF', 'UDP_CLOSED'],
    ['read', 'ENOMEM', 'UDP_READ_FAILED'],
  ] as const)('%s %s -> %s', (op, errno, code) => {
    expect(udpErrorCode(op, errno)).toBe(code);
  });

  it('maps addon errors and keeps their message; sends carry .sent', () => {
    const raw = Object.assign(new Error('sending datagram 3 from UDP port 1 on 10.0.0.1 failed: x (ENETUNREACH); no route'),
      { code: 'ENETUNREACH', errno: 101, syscall: 'sendmmsg', sent: 3 });
    const e = toUdpError('send', raw);
    expect(e).toBeInstanceOf(UdpSendError);
    expect(e).toMatchObject({ code: 'UDP_NO_ROUTE', errno: 'ENETUNREACH', syscall: 'sendmmsg', sent: 3, message: raw.message });
    const open = toUdpError('open', Object.assign(new Error('m'), { code: 'EADDRINUSE', errno: 98, syscall: 'bind' }));
    expect(open).toBeInstanceOf(SystemError);
    expect(open).toMatchObject({ code: 'UDP_ADDRESS_IN_USE', name: 'SystemError' });
    const other = new TypeError('buf must be a Uint8Array or Buffer');
    expect(toUdpError('send', other)).toBe(other);
  });
});
