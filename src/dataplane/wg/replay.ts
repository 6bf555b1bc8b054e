/**
 * Anti-replay window for transport counters, in the style of RFC 6479: a
 * ring of 128 blocks of 64 bits (8192 bits). The newest block is always
 * partly in the future, so the window proper is 127 blocks = 8128 counters:
 * a counter exactly 8128 below the greatest accepted one is still judged by
 * its bit, one more below is "too old".
 *
 * Counters are 64-bit and arrive as two uint32 halves (`lo`, `hi`), which is
 * how they are read off the wire. Every comparison is done on the halves, so
 * the check is exact up to 2^64 without bigint and costs a handful of integer
 * operations per packet. Advancing the window clears at most 128 blocks.
 *
 * Use: {@link ReplayWindow.check} before decrypting (cheap early drop), and
 * {@link ReplayWindow.accept} only after the packet authenticated, so forged
 * packets can never move the window.
 */

/** Bits in the ring. */
export const REPLAY_RING_BITS = 8192;
/** Counters behind the greatest accepted one that are still judged by their bit. */
export const REPLAY_WINDOW = 8128;
/** Counters ≥ 2^64 − 2^13 − 1 are never accepted (REJECT_AFTER_MESSAGES), as halves. */
export const REJECT_AFTER_MESSAGES_HI = 0xffff_ffff;
export const REJECT_AFTER_MESSAGES_LO = 0xffff_dfff;

const BLOCKS = 128; // 64-bit blocks, each two Uint32 words
const TWO_POW_26 = 0x400_0000;
const TWO_POW_32 = 0x1_0000_0000;

/** True when the counter (lo, hi) is at or beyond REJECT_AFTER_MESSAGES. */
export function counterExhausted(lo: number, hi: number): boolean {
  return hi === REJECT_AFTER_MESSAGES_HI && lo >= REJECT_AFTER_MESSAGES_LO;
}

export class ReplayWindow {
  private readonly ring = new Uint32Array(BLOCKS * 2);
  private lastLo = 0;
  private lastHi = 0;

  /** Forgets everything (a fresh key). */
  reset(): void {
    this.ring.fill(0);
    this.lastLo = 0;
    this.lastHi = 0;
  }

  /** Would {@link accept} take this counter? Changes nothing. */
  check(lo: number, hi: number): boolean {
    if (counterExhausted(lo, hi)) return false;
    // Ahead of the window: accept() would clear its block first (or it
    // shares the newest block, whose bits above `last` are never set).
    if (this.isAhead(lo, hi)) return true;
    if (this.tooOld(lo, hi)) return false;
    const word = (lo >>> 5) & 0xff;
    return (this.ring[word]! & (1 << (lo & 31))) === 0;
  }

  /**
   * Records the counter if it is new and inside the window and returns true;
   * returns false (and records nothing) for a duplicate, a counter older than
   * the window, or one at or beyond REJECT_AFTER_MESSAGES.
   */
  accept(lo: number, hi: number): boolean {
    if (counterExhausted(lo, hi)) return false;
    if (this.isAhead(lo, hi)) {
      this.advance(lo, hi);
    } else if (this.tooOld(lo, hi)) {
      return false;
    }
    const word = (lo >>> 5) & 0xff;
    const bit = 1 << (lo & 31);
    const old = this.ring[word]!;
    if ((old & bit) !== 0) return false;
    this.ring[word] = old | bit;
    return true;
  }

  /** The greatest accepted counter as a bigint (diagnostics and tests). */
  get greatest(): bigint {
    return (BigInt(this.lastHi) << 32n) | BigInt(this.lastLo);
  }

  private isAhead(lo: number, hi: number): boolean {
    return hi > this.lastHi || (hi === this.lastHi && lo > this.lastLo);
  }

  /** For a counter ≤ last: is it more than REPLAY_WINDOW behind? */
  private tooOld(lo: number, hi: number): boolean {
    const dHi = this.lastHi - hi;
    if (dHi >= 2) return true;
    return dHi * TWO_POW_32 + this.lastLo - lo > REPLAY_WINDOW;
  }

  /** Moves `last` to (lo, hi), clearing the blocks that enter the window. */
  private advance(lo: number, hi: number): void {
    const dHi = hi - this.lastHi;
    const lastBlock = this.lastLo >>> 6;
    let blocks = dHi >= 2 ? BLOCKS : dHi * TWO_POW_26 + (lo >>> 6) - lastBlock;
    if (blocks > BLOCKS) blocks = BLOCKS;
    for (let i = 1; i <= blocks; i++) {
      const b = ((lastBlock + i) & (BLOCKS - 1)) * 2;
      this.ring[b] = 0;
      this.ring[b + 1] = 0;
    }
    this.lastLo = lo;
    this.lastHi = hi;
  }
}
