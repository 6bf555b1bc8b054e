import { describe, expect, it } from 'vitest';
import { mean, median, percentile, range } from './stats.js';

describe('median', () => {
  it.each([
    [[], undefined],
    [[7], 7],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[10, 10, 1000], 10],
  ])('median(%j) = %s', (xs, want) => {
    expect(median(xs)).toBe(want);
  });

  it('leaves its input unsorted', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  it.each([
    [hundred, 99, 99],
    [hundred, 100, 100],
    [hundred, 50, 50],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99, 10],
    [[5], 99, 5],
    [[], 99, undefined],
  ])('p%s', (xs, p, want) => {
    expect(percentile(xs, p)).toBe(want);
  });

  it('refuses p outside (0, 100]', () => {
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });
});

describe('mean and range', () => {
  it('of samples', () => {
    expect(mean([1, 2, 6])).toBe(3);
    expect(range([5, -1, 9, 3])).toEqual([-1, 9]);
  });
  it('of nothing', () => {
    expect(mean([])).toBeUndefined();
    expect(range([])).toBeUndefined();
  });
});
