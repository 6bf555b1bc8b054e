/**
 * Reassembly of fragmented L2 frames, per peer. Only authenticated
 * fragments reach it (after decryption), and its memory is bounded:
 * at most `maxPending` frames in progress, each at most MAX_FRAME_BYTES (an
 * offload frame at most MAX_OFFLOAD_BYTES), each
 * given up `timeoutMs` after its first fragment. When full, the oldest frame
 * in progress is given up for the new one. Every give-up is counted.
 */
import { MAX_FRAME_BYTES, MAX_OFFLOAD_BYTES, type FragmentHeader } from '../../protocol/inner.js';

/** Buffers kept for reuse per size class (frames in progress plus a few being written). */
const POOL_MAX = 16;

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
  /** Free backing buffers of MAX_FRAME_BYTES and MAX_OFFLOAD_BYTES: frames reuse them (see release). */
  private readonly small: ArrayBuffer[] = [];
  private readonly large: ArrayBuffer[] = [];

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
   * whole frame when this fragment completes it, else undefined. The frame
   * is the caller's until it hands it back with {@link release} (then its
   * memory serves a later frame: no allocation per frame but a view), or
   * for good if it never does. `limit`: the largest frame accepted (offload
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
      this.release(p.frame);
      p = undefined;
    }
    if (!p) {
      if (h.frameLength > limit) return undefined;
      if (this.pending.size >= this.maxPending) {
        const oldest = this.pending.entries().next().value;
        if (oldest !== undefined) {
          this.pending.delete(oldest[0]);
          this.release(oldest[1].frame);
        }
        this.counters.dropped++;
      }
      p = { frame: this.acquire(h.frameLength), started: now, offsets: new Set(), received: 0 };
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
      this.release(p.frame);
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
      this.release(p.frame);
    }
  }

  /** Hands back a frame returned by {@link add} once it is no longer used: its memory is reused. */
  release(frame: Uint8Array): void {
    const ab = frame.buffer;
    if (!(ab instanceof ArrayBuffer)) return;
    const pool = ab.byteLength === MAX_FRAME_BYTES ? this.small : ab.byteLength === MAX_OFFLOAD_BYTES ? this.large : undefined;
    if (pool !== undefined && pool.length < POOL_MAX && !pool.includes(ab)) pool.push(ab);
  }

  /** A zeroed view of `length` bytes over a pooled (or new) buffer of its size class. */
  private acquire(length: number): Uint8Array {
    const big = length > MAX_FRAME_BYTES;
    const ab = (big ? this.large : this.small).pop() ?? new ArrayBuffer(big ? MAX_OFFLOAD_BYTES : MAX_FRAME_BYTES);
    const v = new Uint8Array(ab, 0, length);
    v.fill(0);
    return v;
  }
}
