import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW, ReplayWindow } from './replay.js';
import { seededRandom } from './testkit.js';

const LIMIT = 2n ** 64n - 2n ** 13n - 1n; // REJECT_AFTER_MESSAGES
const lo = (c: bigint): number => Number(c & 0xffffffffn);
const hi = (c: bigint): number => Number(c >> 32n);
const accept = (w: ReplayWindow, c: bigint | number): boolean => w.accept(lo(BigInt(c)), hi(BigInt(c)));
const check = (w: ReplayWindow, c: bigint | number): boolean => w.check(lo(BigInt(c)), hi(BigInt(c)));

describe('anti-replay window', () => {
  it('is 8128 counters wide', () => {
    expect(REPLAY_WINDOW).toBe(8128);
  });

  it('accepts in-order counters once, starting at 0', () => {
    const w = new ReplayWindow();
    for (let c = 0; c < 20_000; c++) expect(accept(w, c)).toBe(true);
    for (const c of [0, 1, 19_999, 15_000]) expect(accept(w, c), `duplicate ${c}`).toBe(false);
  });

  it('accepts reordering inside the window, rejects duplicates', () => {
    const w = new ReplayWindow();
    expect(accept(w, 1000)).toBe(true);
    for (let c = 999; c >= 0; c--) expect(accept(w, c)).toBe(true);
    for (let c = 0; c <= 1000; c++) expect(accept(w, c)).toBe(false);
    expect(accept(w, 1002)).toBe(true);
    expect(accept(w, 1001)).toBe(true);
    expect(accept(w, 1001)).toBe(false);
  });

  it('window edges: exactly 8128 behind is judged by its bit, 8129 behind is too old', () => {
    const w = new ReplayWindow();
    expect(accept(w, 10_000)).toBe(true);
    expect(check(w, 10_000 - 8129)).toBe(false);
    expect(accept(w, 10_000 - 8129)).toBe(false);
    expect(check(w, 10_000 - 8128)).toBe(true);
    expect(accept(w, 10_000 - 8128)).toBe(true);
    expect(accept(w, 10_000 - 8128)).toBe(false);
    // Moving forward by one pushes the edge along.
    expect(accept(w, 10_001)).toBe(true);
    expect(accept(w, 10_001 - 8129)).toBe(false);
    expect(accept(w, 10_001 - 8128)).toBe(true);
  });

  it('a large jump forgets everything behind the new window', () => {
    const w = new ReplayWindow();
    for (let c = 0; c < 100; c++) accept(w, c);
    expect(accept(w, 1_000_000)).toBe(true);
    expect(accept(w, 50)).toBe(false);
    expect(accept(w, 1_000_000 - 8128)).toBe(true);
    expect(accept(w, 1_000_000 - 1)).toBe(true);
  });

  it('counters near 2^64: the last usable one is accepted, REJECT_AFTER_MESSAGES and beyond never', () => {
    const w = new ReplayWindow();
    expect(accept(w, LIMIT)).toBe(false);
    expect(accept(w, 2n ** 64n - 1n)).toBe(false);
    expect(accept(w, LIMIT - 1n)).toBe(true);
    expect(accept(w, LIMIT - 1n)).toBe(false);
    expect(accept(w, LIMIT - 1n - 8128n)).toBe(true);
    expect(accept(w, LIMIT - 1n - 8129n)).toBe(false);
    expect(w.greatest).toBe(LIMIT - 1n);
  });

  it('across the 2^32 boundary of the two halves', () => {
    const w = new ReplayWindow();
    const base = 2n ** 32n;
    expect(accept(w, base + 5n)).toBe(true);
    expect(accept(w, base - 10n)).toBe(true);
    expect(accept(w, base + 5n - 8128n)).toBe(true);
    expect(accept(w, base + 5n - 8129n)).toBe(false);
    expect(accept(w, base - 10n)).toBe(false);
    // A jump of exactly one high half.
    expect(accept(w, 2n * base + 5n)).toBe(true);
    expect(accept(w, base + 5n + 1n)).toBe(false);
  });

  it('agrees with a reference model on random traffic', () => {
    const rnd = seededRandom(42);
    const b = new Uint8Array(4);
    const r = (n: number): number => {
      rnd(b);
      return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) % n;
    };
    for (const start of [0n, 2n ** 32n - 5000n, 2n ** 53n - 3000n, LIMIT - 40_000n]) {
      const w = new ReplayWindow();
      const seen = new Set<bigint>();
      let max = 0n;
      let cursor = start;
      for (let i = 0; i < 30_000; i++) {
        const roll = r(100);
        let c: bigint;
        if (roll < 60) c = cursor++;
        else if (roll < 90) c = cursor - BigInt(r(9000));
        else if (roll < 97) c = cursor + BigInt(r(300));
        else c = cursor + BigInt(r(20_000));
        if (c < 0n) c = 0n;
        const expected = c < LIMIT && !seen.has(c) && (c > max || max - c <= 8128n);
        expect(check(w, c), `check ${c}`).toBe(expected);
        expect(accept(w, c), `accept ${c}`).toBe(expected);
        if (expected) {
          seen.add(c);
          if (c > max) max = c;
        }
      }
    }
  });
});
