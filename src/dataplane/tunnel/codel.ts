/**
 * CoDel's control law (RFC 8289) on a delay measured per batch: the engine
 * feeds it how long the oldest datagram of each UDP receive batch waited in
 * the socket's queue. Once that delay has stayed at or above `targetMs` for
 * `intervalMs`, it says to drop one message, then the next ones at
 * interval/√count, until the delay falls below target. A TCP flow inside the
 * tunnel then backs off before the queue holds tens of milliseconds of data
 * (latency under load), while bursts shorter than the interval are absorbed
 * by the socket's buffer as before. Pure: time is passed in.
 */
export class CoDel {
  private firstAbove = 0;
  private dropping = false;
  private dropNext = 0;
  private count = 0;
  private lastCount = 0;
  /** Drops said so far. */
  drops = 0;

  constructor(readonly targetMs = 5, readonly intervalMs = 100) {}

  /** Whether to drop a message now, given the queueing delay `delayMs` (negative: unknown, never drops). */
  drop(delayMs: number, now: number): boolean {
    if (delayMs < this.targetMs) {
      this.firstAbove = 0;
      this.dropping = false;
      return false;
    }
    if (!this.dropping) {
      if (this.firstAbove === 0) {
        this.firstAbove = now + this.intervalMs;
        return false;
      }
      if (now < this.firstAbove) return false;
      this.dropping = true;
      // Re-entering soon after the last dropping state: resume near its rate.
      const delta = this.count - this.lastCount;
      this.count = delta > 1 && now - this.dropNext < 16 * this.intervalMs ? delta : 1;
      this.lastCount = this.count;
      this.dropNext = now + this.intervalMs / Math.sqrt(this.count);
      this.drops++;
      return true;
    }
    if (now < this.dropNext) return false;
    this.count++;
    this.dropNext += this.intervalMs / Math.sqrt(this.count);
    this.drops++;
    return true;
  }
}
