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
const EMPTY = new Uint8Array(0);

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

/**
 * A frame in progress. Nothing here is allocated per frame: the records are
 * reused and kept in a plain array searched linearly (at most `maxPending`),
 * because under a flood that loses fragments frames wait up to the timeout
 * and outlive the young generation: a record, a set and a Map's rehashed
 * tables per frame piled up tens of megabytes of garbage in the old
 * generation (docs/performance.md, step 6).
 */
interface Pending {
  key: number;
  frame: Uint8Array;
  started: number;
  /** Offsets of the chunks received (duplicates ignored); a frame has at most a few hundred. */
  readonly offsets: number[];
  received: number;
}

export class Reassembler {
  /** Frames in progress, in no order. */
  private readonly pending: Pending[] = [];
  private readonly maxPending: number;
  private readonly timeoutMs: number;
  readonly counters: ReassemblyCounters = { completed: 0, dropped: 0 };
  /** Free backing buffers of MAX_FRAME_BYTES and MAX_OFFLOAD_BYTES: frames reuse them (see release). */
  private readonly small: ArrayBuffer[] = [];
  private readonly large: ArrayBuffer[] = [];
  /** Records of finished frames, for the next ones. */
  private readonly records: Pending[] = [];
  /** No frame in progress started before this (a lower bound): expire() has nothing to do until the timeout passes it. */
  private oldest = Number.POSITIVE_INFINITY;

  constructor(opts: ReassemblyOptions = {}) {
    this.maxPending = opts.maxPending ?? 64;
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  /** Frames in progress. */
  get size(): number {
    return this.pending.length;
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
    let i = this.indexOf(key);
    let p = i < 0 ? undefined : this.pending[i];
    if (p && p.frame.length !== h.frameLength) {
      // A different frame reuses the id: the old one is lost.
      this.remove(i);
      this.counters.dropped++;
      this.retire(p);
      p = undefined;
    }
    if (!p) {
      if (h.frameLength > limit) return undefined;
      if (this.pending.length >= this.maxPending) {
        let oldest = 0;
        for (let j = 1; j < this.pending.length; j++) if (this.pending[j]!.started < this.pending[oldest]!.started) oldest = j;
        this.retire(this.remove(oldest));
        this.counters.dropped++;
      }
      p = this.records.pop() ?? { key: 0, frame: EMPTY, started: 0, offsets: [], received: 0 };
      p.key = key;
      p.frame = this.acquire(h.frameLength);
      p.started = now;
      p.received = 0;
      if (now < this.oldest) this.oldest = now;
      i = this.pending.push(p) - 1;
    }
    if (p.offsets.includes(h.offset)) return undefined;
    p.offsets.push(h.offset);
    p.frame.set(src.subarray(off, off + h.chunkLength), h.offset);
    p.received += h.chunkLength;
    if (p.received < p.frame.length) return undefined;
    this.remove(i);
    if (p.received !== p.frame.length) {
      this.counters.dropped++; // overlapping chunks: inconsistent
      this.retire(p);
      return undefined;
    }
    this.counters.completed++;
    const frame = p.frame;
    this.recycle(p);
    return frame;
  }

  /** A frame given up: its buffer and its record go back for reuse. */
  private retire(p: Pending): void {
    this.release(p.frame);
    this.recycle(p);
  }

  private recycle(p: Pending): void {
    p.frame = EMPTY;
    p.offsets.length = 0;
    if (this.records.length < this.maxPending) this.records.push(p);
  }

  /** Gives up frames older than the timeout (a scan only once the oldest may be due). */
  expire(now: number): void {
    if (now - this.oldest < this.timeoutMs) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (let j = this.pending.length - 1; j >= 0; j--) {
      const started = this.pending[j]!.started;
      if (now - started < this.timeoutMs) {
        oldest = Math.min(oldest, started);
        continue;
      }
      this.retire(this.remove(j));
      this.counters.dropped++;
    }
    this.oldest = oldest;
  }

  private indexOf(key: number): number {
    for (let j = 0; j < this.pending.length; j++) if (this.pending[j]!.key === key) return j;
    return -1;
  }

  /** Takes entry j out (the last one moves into its place). */
  private remove(j: number): Pending {
    const p = this.pending[j]!;
    const last = this.pending.pop()!;
    if (last !== p) this.pending[j] = last;
    return p;
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
