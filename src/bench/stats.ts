/**
 * Small statistics over measured samples. Pure; empty input gives undefined
 * (a metric that was not measured), never NaN.
 */

/** Median: the middle value, or the mean of the two middle values. */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Nearest-rank percentile `p` (0 < p ≤ 100): the smallest sample with at
 * least p % of the samples at or below it. p99 of 100 samples is the 99th
 * smallest; of 10 samples, the largest.
 */
export function percentile(xs: readonly number[], p: number): number | undefined {
  if (xs.length === 0) return undefined;
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside (0, 100]`);
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function mean(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** Smallest and largest sample: the spread shown next to a median. */
export function range(xs: readonly number[]): [number, number] | undefined {
  if (xs.length === 0) return undefined;
  let lo = xs[0]!;
  let hi = lo;
  for (const x of xs) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}
