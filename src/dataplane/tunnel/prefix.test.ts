import { describe, expect, it } from 'vitest';
import { parsePrefix, prefixContains } from './prefix.js';

const v4 = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));

describe('prefixes', () => {
  it('clears host bits and matches addresses', () => {
    const p = parsePrefix('10.9.1.77/20');
    expect([...p.bytes]).toEqual([10, 9, 0, 0]);
    expect(prefixContains(p, v4('10.9.15.1'))).toBe(true);
    expect(prefixContains(p, v4('10.9.16.1'))).toBe(false);
    expect(prefixContains(parsePrefix('0.0.0.0/0'), v4('203.0.113.9'))).toBe(true);
    expect(prefixContains(parsePrefix('10.9.0.2'), v4('10.9.0.2'))).toBe(true);
    expect(prefixContains(parsePrefix('10.9.0.2'), v4('10.9.0.3'))).toBe(false);
  });

  it('handles IPv6 and never matches across families', () => {
    const p = parsePrefix('2001:db8:1::/48');
    const a = new Uint8Array(16);
    a.set([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xff]);
    expect(prefixContains(p, a)).toBe(true);
    expect(prefixContains(p, v4('32.1.13.184'))).toBe(false);
  });

  it.each(['10.0.0.0/33', '10.0.0.0/-1', '10.0.0/8', 'x/8', '10.0.0.0/8x', '::/129'])('refuses %s', (t) => {
    expect(() => parsePrefix(t)).toThrow(/prefix/);
  });
});
