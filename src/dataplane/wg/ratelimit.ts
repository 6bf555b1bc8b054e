/**
 * Per-source token bucket for handshake messages, applied under load after
 * mac1 and mac2 have been checked: even a source that holds a valid cookie
 * gets at most {@link HANDSHAKES_PER_SECOND} handshakes processed per second
 * (bursts of {@link HANDSHAKE_BURST}).
 *
 * Memory is bounded: entries idle for a second are swept, and when the table
 * holds {@link RATE_LIMIT_MAX_SOURCES} sources a new source is refused (drop
 * policy: under a flood from that many distinct sources, established sources
 * keep their buckets and newcomers wait for the sweep).
 */

export const HANDSHAKES_PER_SECOND = 20;
export const HANDSHAKE_BURST = 5;
export const RATE_LIMIT_MAX_SOURCES = 65_536;
const SWEEP_INTERVAL_MS = 1_000;

interface Bucket {
  /** Credit in ms of allowance, at most burst × cost. */
  credit: number;
  last: number;
}

export class HandshakeRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = Number.NEGATIVE_INFINITY;
  private readonly cost: number;
  private readonly capacity: number;

  constructor(
    perSecond = HANDSHAKES_PER_SECOND,
    burst = HANDSHAKE_BURST,
    private readonly maxSources = RATE_LIMIT_MAX_SOURCES,
  ) {
    this.cost = 1000 / perSecond;
    this.capacity = burst * this.cost;
  }

  /** Takes one token for `key` at `now` (monotonic ms); false when none is left. */
  allow(key: string, now: number): boolean {
    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) this.sweep(now);
    const b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxSources) return false;
      this.buckets.set(key, { credit: this.capacity - this.cost, last: now });
      return true;
    }
    b.credit = Math.min(this.capacity, b.credit + Math.max(0, now - b.last));
    b.last = now;
    if (b.credit < this.cost) return false;
    b.credit -= this.cost;
    return true;
  }

  /** Sources currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (now - b.last >= SWEEP_INTERVAL_MS) this.buckets.delete(k);
  }
}
