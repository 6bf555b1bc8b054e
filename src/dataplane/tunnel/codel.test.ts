import { describe, expect, it } from 'vitest';
import { CoDel } from './codel.js';

/** Times (ms) at which `c` said to drop, feeding `delay(t)` every `step` ms from 0 to `end`. */
function drops(c: CoDel, delay: (t: number) => number, end: number, step = 1): number[] {
  const at: number[] = [];
  for (let t = 1; t <= end; t += step) if (c.drop(delay(t), t)) at.push(t);
  return at;
}

describe('CoDel', () => {
  it('never drops while the delay stays below target, or is unknown', () => {
    expect(drops(new CoDel(), () => 4.9, 2000)).toEqual([]);
    expect(drops(new CoDel(), () => -1, 2000)).toEqual([]);
  });

  it('absorbs a burst shorter than the interval', () => {
    expect(drops(new CoDel(), (t) => (t % 200 < 90 ? 50 : 1), 2000)).toEqual([]);
  });

  it('drops once the delay has stayed above target for an interval, then at interval/√count', () => {
    const at = drops(new CoDel(), () => 20, 1000);
    expect(at[0]).toBe(101);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps[0]).toBe(100);
    expect(Math.abs(gaps[1]! - 100 / Math.sqrt(2))).toBeLessThan(1.5);
    expect(Math.abs(gaps[2]! - 100 / Math.sqrt(3))).toBeLessThan(1.5);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeLessThanOrEqual(gaps[i - 1]! + 1);
  });

  it('stops dropping as soon as the delay falls below target', () => {
    const c = new CoDel();
    expect(drops(c, (t) => (t < 500 ? 20 : 1), 1500).every((t) => t < 500)).toBe(true);
    expect(c.drops).toBeGreaterThan(3);
  });
});
