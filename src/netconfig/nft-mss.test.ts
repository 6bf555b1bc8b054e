/**
 * The MSS clamp computation, as a table: WAN MTU (and options) in, every
 * intermediate value and both clamps out.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import { checkMssClamp, computeMssClamp, TUNNEL_OVERHEAD, type MssOptions } from './nft-mss.js';

describe('computeMssClamp', () => {
  const cases: { wan: number; opts?: MssOptions; fixed: number; plaintext: number; inner: number; v4: number; v6: number; why: string }[] = [
    { wan: 1500, fixed: 60, plaintext: 1440, inner: 1420, v4: 1380, v6: 1360, why: 'Ethernet WAN: 1440 is already a multiple of 16' },
    { wan: 1420, fixed: 60, plaintext: 1360, inner: 1340, v4: 1300, v6: 1280, why: 'WAN that is itself a WireGuard tunnel' },
    { wan: 1492, fixed: 60, plaintext: 1424, inner: 1404, v4: 1364, v6: 1344, why: 'PPPoE: 1432 rounds down to 1424' },
    { wan: 1450, fixed: 60, plaintext: 1376, inner: 1356, v4: 1316, v6: 1296, why: 'VXLAN underlay: 1390 rounds down to 1376' },
    { wan: 1500, opts: { outerFamily: 6 }, fixed: 80, plaintext: 1408, inner: 1388, v4: 1348, v6: 1328, why: 'IPv6 WAN: 1420 rounds down to 1408' },
    { wan: 9000, fixed: 60, plaintext: 8928, inner: 8908, v4: 8868, v6: 8848, why: 'jumbo frames' },
    { wan: 1500, opts: { neaHeaderBytes: 10 }, fixed: 60, plaintext: 1440, inner: 1416, v4: 1376, v6: 1356, why: 'a longer inner header' },
    { wan: 1280, fixed: 60, plaintext: 1216, inner: 1196, v4: 1156, v6: 1220, why: 'IPv6 floor: below 1220 the tunnel fragments instead' },
    { wan: 600, fixed: 60, plaintext: 528, inner: 508, v4: 536, v6: 1220, why: 'IPv4 floor 536' },
  ];
  for (const c of cases) {
    it(`WAN MTU ${c.wan}${c.opts ? ` ${JSON.stringify(c.opts)}` : ''}: ${c.why}`, () => {
      expect(computeMssClamp(c.wan, c.opts)).toEqual({
        wanMtu: c.wan, fixedOverhead: c.fixed, plaintextMax: c.plaintext, innerMtu: c.inner, ipv4: c.v4, ipv6: c.v6,
      });
    });
  }

  it('the documented overhead adds up to 60 + 6 + 14 for an IPv4 WAN', () => {
    const o = TUNNEL_OVERHEAD;
    expect(o.outerIpv4 + o.udp + o.wireguardHeader + o.tag).toBe(60);
    expect(1500 - 60 - o.neaHeader - o.ethernet).toBe(1420);
  });

  it('every clamped SYN fits the WAN in one datagram, even fully padded', () => {
    for (let wan = 200; wan <= 9000; wan += 7) {
      const c = computeMssClamp(wan);
      const inner = c.innerMtu;
      const plaintext = TUNNEL_OVERHEAD.neaHeader + TUNNEL_OVERHEAD.ethernet + inner;
      const padded = Math.ceil(plaintext / 16) * 16;
      expect(padded + c.fixedOverhead, `wan ${wan}`).toBeLessThanOrEqual(wan);
      // ... and the bound is tight: 16 more bytes of plaintext would not fit.
      expect(Math.ceil((plaintext + 16) / 16) * 16 + c.fixedOverhead, `wan ${wan}`).toBeGreaterThan(wan);
    }
  });

  it.each([0, 67, 65536, 1500.5, Number.NaN, 100])('refuses WAN MTU %s', (wan) => {
    expect(() => computeMssClamp(wan)).toThrow(ValidationError);
  });

  it('refuses a nonsensical inner header size', () => {
    expect(() => computeMssClamp(1500, { neaHeaderBytes: -1 })).toThrow(/nea header size/);
  });
});

describe('checkMssClamp', () => {
  it('accepts computed clamps', () => {
    const c = computeMssClamp(1500);
    expect(checkMssClamp({ ipv4: c.ipv4, ipv6: c.ipv6 }, 'segment x')).toEqual({ ipv4: 1380, ipv6: 1360 });
  });
  it.each([
    [{ ipv4: 535, ipv6: 1360 }, /IPv4 MSS 535 must be an integer 536..65495/],
    [{ ipv4: 1380, ipv6: 1219 }, /IPv6 MSS 1219 must be an integer 1220..65475/],
    [{ ipv4: 1380.5, ipv6: 1360 }, /IPv4 MSS/],
    [{ ipv4: 65496, ipv6: 1360 }, /IPv4 MSS/],
  ])('refuses %j', (m, re) => {
    expect(() => checkMssClamp(m, 'segment x')).toThrow(re);
  });
});
