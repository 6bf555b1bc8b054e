/**
 * TAI64N timestamps (12 bytes): an 8-byte big-endian label 2^62 + 10 + Unix
 * seconds, then 4 bytes big-endian nanoseconds. The initiator sends one,
 * encrypted, in every handshake initiation; the responder accepts an
 * initiation only if its timestamp is strictly greater than the last one it
 * accepted from that peer, which defeats replayed initiations.
 *
 * Big-endian means byte-wise comparison is numeric comparison.
 */

export const TAI64N_BYTES = 12;

/**
 * Nanoseconds are rounded down to a multiple of 2^24 ns (≈16.8 ms) by
 * default, so that a timestamp does not reveal the sender's clock precisely;
 * 2^24 ns is the largest power of two below 1 s / 50, the accepted
 * initiation rate, so consecutive legitimate initiations still differ.
 */
export const TAI64N_WHITENING_MASK = ~(0x100_0000 - 1) >>> 0;

const TAI64_OFFSET_SECONDS = 10; // the label is 2^62 + 10 + Unix seconds
const TWO_POW_32 = 0x1_0000_0000;

/** Encodes a Unix time given as whole seconds and nanoseconds (0 ≤ ns < 10^9). */
export function tai64n(unixSeconds: number, nanoseconds: number): Uint8Array {
  const out = new Uint8Array(TAI64N_BYTES);
  const secs = unixSeconds + TAI64_OFFSET_SECONDS;
  const hi = (0x4000_0000 + Math.floor(secs / TWO_POW_32)) >>> 0;
  const lo = secs >>> 0;
  writeU32BE(out, 0, hi);
  writeU32BE(out, 4, lo);
  writeU32BE(out, 8, nanoseconds >>> 0);
  return out;
}

/**
 * Encodes a wall-clock time in milliseconds since the Unix epoch (fractions
 * of a millisecond are kept down to the nanosecond), whitened unless
 * `whiten` is false.
 */
export function tai64nFromUnixMs(unixMs: number, whiten = true): Uint8Array {
  const seconds = Math.floor(unixMs / 1000);
  let nanos = Math.floor((unixMs - seconds * 1000) * 1_000_000);
  if (nanos > 999_999_999) nanos = 999_999_999;
  if (whiten) nanos = (nanos & TAI64N_WHITENING_MASK) >>> 0;
  return tai64n(seconds, nanos);
}

/** -1, 0 or 1 as `a` is before, equal to or after `b` (both 12 bytes). */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_BYTES; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** True when `candidate` is strictly after `last`. */
export function isAfter(candidate: Uint8Array, last: Uint8Array): boolean {
  return candidate.length === TAI64N_BYTES && compareTai64n(candidate, last) > 0;
}

/** The all-zero timestamp: before every real one (a peer that never initiated). */
export function zeroTai64n(): Uint8Array {
  return new Uint8Array(TAI64N_BYTES);
}

function writeU32BE(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Minimum time between two initiations accepted from one peer: 1 s / 50. */
export const MIN_INITIATION_INTERVAL_MS = 20;

export type InitiationVerdict = 'accept' | 'replayed-timestamp' | 'initiation-flood';

/**
 * The responder's per-peer guard on handshake initiations: timestamps must
 * strictly increase, and at most one initiation per
 * {@link MIN_INITIATION_INTERVAL_MS} is accepted (≤ 50/s). Consulted only
 * after the initiation fully authenticated; {@link commit} only once it is
 * accepted, so a refused initiation changes nothing.
 */
export class InitiationGuard {
  private last = zeroTai64n();
  private lastAcceptedAt = Number.NEGATIVE_INFINITY;

  /** `now` is the monotonic clock in ms. */
  check(timestamp: Uint8Array, now: number): InitiationVerdict {
    if (!isAfter(timestamp, this.last)) return 'replayed-timestamp';
    if (now - this.lastAcceptedAt < MIN_INITIATION_INTERVAL_MS) return 'initiation-flood';
    return 'accept';
  }

  commit(timestamp: Uint8Array, now: number): void {
    this.last = timestamp.slice();
    this.lastAcceptedAt = now;
  }

  /** The greatest timestamp accepted so far (all zeros if none). */
  get lastTimestamp(): Uint8Array {
    return this.last.slice();
  }
}
