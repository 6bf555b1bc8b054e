/**
 * MAC learning for one segment, between its local port (the TAP in the
 * segment's bridge) and the tunnel peers that carry the segment.
 *
 * - Learning is capped (`maxEntries`): when full, a new MAC is not learnt
 *   (frames to it are flooded) and the refusal is counted — a MAC flood from
 *   one side cannot grow memory or evict established entries. A full table
 *   looks for aged-out entries at most once per FULL_SWEEP_INTERVAL_MS, so a
 *   refusal costs O(1): a flood cannot turn the cap into a CPU sink.
 * - Entries age out after `ageingMs` without a frame from that MAC.
 * - A MAC that moves between ports within `flapWindowMs` is a flap (a loop
 *   or a duplicate MAC across sites); flaps are counted and reported to the
 *   caller, which logs them rate-limited.
 *
 * MACs are keys of 48 bits held in a number (exact in a double).
 */

/** Port ids: LOCAL_PORT is the segment's TAP; peers have ids ≥ 1. */
export const LOCAL_PORT = 0;

export interface MacTableOptions {
  /** Most MACs learnt per segment; default 4096. */
  maxEntries?: number;
  /** Time after the last frame from a MAC when it is forgotten, in ms; default 300000. */
  ageingMs?: number;
  /** A move between ports within this time after the last sighting is a flap, in ms; default 1000. */
  flapWindowMs?: number;
}

export interface MacTableCounters {
  learnt: number;
  /** New MACs not learnt because the table was full. */
  refused: number;
  /** Moves between ports within the flap window. */
  flaps: number;
  /** Moves after the flap window (a VM that really moved). */
  moves: number;
}

interface Entry {
  port: number;
  seen: number;
}

/** Reads a 48-bit MAC at `b[off..off+6)` as a number. */
export function macKey(b: Uint8Array, off: number): number {
  return (b[off]! * 0x10000000000) + (b[off + 1]! * 0x100000000) +
    ((b[off + 2]! << 24) >>> 0) + ((b[off + 3]! << 16) | (b[off + 4]! << 8) | b[off + 5]!);
}

/** True for group (broadcast/multicast) MACs: the I/G bit of the first byte. */
export function isGroupMac(b: Uint8Array, off: number): boolean {
  return (b[off]! & 1) === 1;
}

/** Formats a MAC key as `aa:bb:cc:dd:ee:ff` (for logs and status). */
export function macKeyString(k: number): string {
  return k.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

export type LearnResult = 'known' | 'learnt' | 'refused' | 'moved' | 'flap';

/** Least time between two sweeps of a full table for aged-out entries, in ms. */
export const FULL_SWEEP_INTERVAL_MS = 1000;

export class MacTable {
  private readonly entries = new Map<number, Entry>();
  private readonly maxEntries: number;
  private readonly ageingMs: number;
  private readonly flapWindowMs: number;
  readonly counters: MacTableCounters = { learnt: 0, refused: 0, flaps: 0, moves: 0 };
  private lastFullSweep = Number.NEGATIVE_INFINITY;

  constructor(opts: MacTableOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 4096;
    this.ageingMs = opts.ageingMs ?? 300_000;
    this.flapWindowMs = opts.flapWindowMs ?? 1000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records that `mac` was seen on `port` at `now`. */
  learn(mac: number, port: number, now: number): LearnResult {
    const e = this.entries.get(mac);
    if (e) {
      if (e.port === port) {
        e.seen = now;
        return 'known';
      }
      const flap = now - e.seen < this.flapWindowMs;
      e.port = port;
      e.seen = now;
      if (flap) {
        this.counters.flaps++;
        return 'flap';
      }
      this.counters.moves++;
      return 'moved';
    }
    if (this.entries.size >= this.maxEntries) {
      if (now - this.lastFullSweep >= FULL_SWEEP_INTERVAL_MS) {
        this.lastFullSweep = now;
        this.sweep(now);
      }
      if (this.entries.size >= this.maxEntries) {
        this.counters.refused++;
        return 'refused';
      }
    }
    this.entries.set(mac, { port, seen: now });
    this.counters.learnt++;
    return 'learnt';
  }

  /** The port `mac` was learnt on, or undefined (unknown or aged out: flood). */
  lookup(mac: number, now: number): number | undefined {
    const e = this.entries.get(mac);
    if (!e) return undefined;
    if (now - e.seen >= this.ageingMs) {
      this.entries.delete(mac);
      return undefined;
    }
    return e.port;
  }

  /** Forgets every MAC learnt on `port` (a peer removed). */
  forgetPort(port: number): void {
    for (const [k, e] of this.entries) if (e.port === port) this.entries.delete(k);
  }

  /** Removes aged-out entries. */
  sweep(now: number): void {
    for (const [k, e] of this.entries) if (now - e.seen >= this.ageingMs) this.entries.delete(k);
  }
}
