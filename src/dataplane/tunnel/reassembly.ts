/**
 * Reassembly of fragmented L2 frames, per peer. Only authenticated
 * fragments reach it (after decryption), and its memory is bounded:
 * at most `maxPending` frames in progress, each at most MAX_FRAME_BYTES (an
 * offload frame at most MAX_OFFLOAD_BYTES), each
 * given up `timeoutMs` after its first fragment. When full, the oldest frame
 * in progress is given up for the new one. Every give-up is counted.
 */
import { MAX_FRAME_BYTES, type FragmentHeader } from '../../protocol/inner.js';

export interface ReassemblyOptions {
  /** Frames in progress at once; default 64. */
  maxPending?: number;
  /** Time after the first fragment after which a frame is given up, in ms; default 1000. */
  timeoutMs?: number;
}

export interface ReassemblyCounters {
  /** Frames completed. */
  completed: number;
  /** Frames given up (timeout, eviction, inconsistent fragments). */
  dropped: number;
}

interface Pending {
  readonly frame: Uint8Array;
  readonly started: number;
  /** Offsets of the chunks received (duplicates ignored). */
  readonly offsets: Set<number>;
  received: number;
}

export class Reassembler {
  private readonly pending = new Map<number, Pending>();
  private readonly maxPending: number;
  private readonly timeoutMs: number;
  readonly counters: ReassemblyCounters = { completed: 0, dropped: 0 };

  constructor(opts: ReassemblyOptions = {}) {
    this.maxPending = opts.maxPending ?? 64;
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  /** Frames in progress. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Adds one fragment (chunk at `src[off..off+h.chunkLength)`); returns the
   * whole frame when this fragment completes it (a new buffer the caller
   * owns), else undefined. `limit`: the largest frame accepted (offload
   * frames are larger than MAX_FRAME_BYTES).
   */
  add(h: FragmentHeader, src: Uint8Array, off: number, now: number, limit = MAX_FRAME_BYTES): Uint8Array | undefined {
    this.expire(now);
    const key = (h.segment << 16) | h.frameId;
    let p = this.pending.get(key);
    if (p && p.frame.length !== h.frameLength) {
      // A different frame reuses the id: the old one is lost.
      this.pending.delete(key);
      this.counters.dropped++;
      p = undefined;
    }
    if (!p) {
      if (h.frameLength > limit) return undefined;
      if (this.pending.size >= this.maxPending) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
        this.counters.dropped++;
      }
      p = { frame: new Uint8Array(h.frameLength), started: now, offsets: new Set(), received: 0 };
      this.pending.set(key, p);
    }
    if (p.offsets.has(h.offset)) return undefined;
    p.offsets.add(h.offset);
    p.frame.set(src.subarray(off, off + h.chunkLength), h.offset);
    p.received += h.chunkLength;
    if (p.received < p.frame.length) return undefined;
    this.pending.delete(key);
    if (p.received !== p.frame.length) {
      this.counters.dropped++; // overlapping chunks: inconsistent
      return undefined;
    }
    this.counters.completed++;
    return p.frame;
  }

  /** Gives up frames older than the timeout. Map order is insertion order, so the oldest come first. */
  expire(now: number): void {
    for (const [k, p] of this.pending) {
      if (now - p.started < this.timeoutMs) break;
      this.pending.delete(k);
      this.counters.dropped++;
    }
  }
}
