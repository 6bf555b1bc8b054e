import { describe, expect, it } from 'vitest';
import { InitiationGuard, MIN_INITIATION_INTERVAL_MS, compareTai64n, isAfter, tai64n, tai64nFromUnixMs, zeroTai64n } from './tai64n.js';

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('TAI64N', () => {
  it('encodes 2^62 + 10 + seconds and nanoseconds, big-endian', () => {
    expect(toHex(tai64n(0, 0))).toBe('400000000000000a' + '00000000');
    expect(toHex(tai64n(1_700_000_000, 123_456_789))).toBe('400000006553f10a' + '075bcd15');
    // Seconds beyond 32 bits carry into the high word.
    expect(toHex(tai64n(2 ** 32, 1))).toBe('400000010000000a' + '00000001');
  });

  it('from wall-clock milliseconds, whitened to 2^24 ns by default', () => {
    const ms = 1_700_000_000_123.5;
    expect(toHex(tai64nFromUnixMs(ms, false))).toBe(toHex(tai64n(1_700_000_000, 123_500_000)));
    const whitened = tai64nFromUnixMs(ms);
    expect(toHex(whitened)).toBe(toHex(tai64n(1_700_000_000, 123_500_000 & ~0xffffff)));
    // Whitening keeps initiations 20 ms apart distinct.
    expect(compareTai64n(tai64nFromUnixMs(ms + 20), whitened)).toBe(1);
  });

  it('compares numerically', () => {
    const a = tai64n(100, 5);
    expect(compareTai64n(a, tai64n(100, 5))).toBe(0);
    expect(compareTai64n(a, tai64n(100, 6))).toBe(-1);
    expect(compareTai64n(tai64n(101, 0), tai64n(100, 999_999_999))).toBe(1);
    expect(isAfter(tai64n(1, 0), zeroTai64n())).toBe(true);
    expect(isAfter(a, a)).toBe(false);
  });
});

describe('initiation guard (per peer)', () => {
  it('accepts only strictly increasing timestamps', () => {
    const g = new InitiationGuard();
    const t1 = tai64n(1000, 0);
    expect(g.check(t1, 0)).toBe('accept');
    g.commit(t1, 0);
    expect(g.check(t1, 1000)).toBe('replayed-timestamp');
    expect(g.check(tai64n(999, 0), 1000)).toBe('replayed-timestamp');
    expect(g.check(tai64n(1000, 1), 1000)).toBe('accept');
  });

  it('accepts at most one initiation per 20 ms (≤ 50/s)', () => {
    expect(MIN_INITIATION_INTERVAL_MS).toBe(20);
    const g = new InitiationGuard();
    let accepted = 0;
    for (let ms = 0; ms < 1000; ms++) {
      const ts = tai64n(1000, ms * 1_000_000);
      if (g.check(ts, ms) === 'accept') {
        g.commit(ts, ms);
        accepted++;
      }
    }
    expect(accepted).toBe(50);
  });

  it('a refused check changes nothing', () => {
    const g = new InitiationGuard();
    g.commit(tai64n(10, 0), 0);
    expect(g.check(tai64n(11, 0), 5)).toBe('initiation-flood');
    expect(toHex(g.lastTimestamp)).toBe(toHex(tai64n(10, 0)));
    expect(g.check(tai64n(11, 0), 20)).toBe('accept');
  });
});
