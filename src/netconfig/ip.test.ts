import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import { canonicalIp, canonicalMac, formatIp, isNetworkAddress, isV6LinkLocal, parseCidr, parseIp, tryParseIp } from './ip.js';

describe('canonicalIp', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['::', '::'],
    ['::1', '::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal zero runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['fe80::0001', 'fe80::1'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ])('%s -> %s', (input, want) => {
    expect(canonicalIp(input)).toBe(want);
  });

  it.each(['', '10.0.0', '10.0.0.256', '01.2.3.4', '1.2.3.4.5', ':::', '1::2::3', '12345::', 'fe80::1%eth0', 'g::1', '1:2:3:4:5:6:7:8:9'])(
    'refuses %j', (input) => {
      expect(tryParseIp(input)).toBeUndefined();
      expect(() => parseIp(input)).toThrow(ValidationError);
    });

  it('round-trips bytes', () => {
    const b = parseIp('2001:db8::42').bytes;
    expect(b).toHaveLength(16);
    expect(formatIp(b)).toBe('2001:db8::42');
  });
});

describe('parseCidr', () => {
  it('keeps host bits and the prefix', () => {
    const c = parseCidr('10.1.2.3/24');
    expect([c.family, c.prefixLength, formatIp(c.bytes)]).toEqual([4, 24, '10.1.2.3']);
  });
  it.each(['10.0.0.1', '10.0.0.1/33', 'fd00::/129', '10.0.0.1/', '10.0.0.1/024'])('refuses %j', (s) => {
    expect(() => parseCidr(s)).toThrow(ValidationError);
  });
  it('tells network addresses', () => {
    expect(isNetworkAddress(parseIp('10.1.0.0').bytes, 16)).toBe(true);
    expect(isNetworkAddress(parseIp('10.1.0.1').bytes, 16)).toBe(false);
    expect(isNetworkAddress(parseIp('fd00::').bytes, 64)).toBe(true);
    expect(isNetworkAddress(parseIp('0.0.0.0').bytes, 0)).toBe(true);
  });
  it('tells IPv6 link-local', () => {
    expect(isV6LinkLocal(parseIp('fe80::1').bytes)).toBe(true);
    expect(isV6LinkLocal(parseIp('febf::1').bytes)).toBe(true);
    expect(isV6LinkLocal(parseIp('fec0::1').bytes)).toBe(false);
  });
});

describe('canonicalMac', () => {
  it('lowercases and accepts dashes', () => {
    expect(canonicalMac('02-AA-bb-0C-00-01')).toBe('02:aa:bb:0c:00:01');
  });
  it.each(['02:00:00:00:00', '02:00:00:00:00:001', 'zz:00:00:00:00:00', ''])('refuses %j', (s) => {
    expect(() => canonicalMac(s)).toThrow(ValidationError);
  });
});
