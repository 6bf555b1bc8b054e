/**
 * Loader and typed surface of the native addon (`build/Release/nea_native.node`,
 * built by node-gyp during `npm ci` from the C++ sources beside this file).
 *
 * Every function here is synchronous and throws errors with `code` set to the
 * errno name (`EBUSY`, `EPERM`, ...), `errno` and `syscall`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NeaError } from '../shared/errors.js';

/**
 * Indexes into {@link NativeTunTap.counters} (kept in sync with `BatchCounter`
 * in batch_source.h).
 */
export const COUNTER = {
  /** Frames delivered to onBatch. */
  rxFrames: 0,
  /** Bytes of those frames. */
  rxBytes: 1,
  /** onBatch calls. */
  rxBatches: 2,
  /** Frames read but dropped because they were longer than a slot. */
  rxDrops: 3,
  /** Frames the kernel accepted. */
  txFrames: 4,
  /** Bytes of those frames. */
  txBytes: 5,
  /** Frames the kernel refused with EAGAIN (the caller decided their fate). */
  txDrops: 6,
} as const;

/**
 * One queue of a TAP or TUN device (src/native/tuntap.cc). Starts paused;
 * `resume()` starts reading, which calls `onBatch(count)` once per batch with
 * the frames in `slab` (slot i at byte i × slotSize, length `lengths[i]`).
 * `slab` and `lengths` are reused: valid only during that call.
 */
export interface NativeTunTap {
  /** Interface name the kernel gave the device. */
  readonly name: string;
  /** Read slab: batchSize slots of slotSize bytes, created once. */
  readonly slab: Buffer;
  /** Lengths in bytes of the frames of the current batch (batchSize entries). */
  readonly lengths: Uint32Array;
  /** Running counters, indexed by {@link COUNTER}; updated by the addon in place. */
  readonly counters: Float64Array;
  /** Stop reading (uv_poll stop); frames wait in the kernel queue. */
  pause(): void;
  /** Start or continue reading. */
  resume(): void;
  /** Stop reading and close the fd; idempotent. */
  close(): void;
  /** Write one frame; false when the kernel refused it (EAGAIN). */
  write(buf: Uint8Array, offset: number, length: number): boolean;
  /**
   * Write `count` frames (frame i = buf[offsets[i], offsets[i] + lengths[i])),
   * in order; returns how many were written, stopping at the first EAGAIN.
   * Other errors throw, with `.written` set.
   */
  writeBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
}

/** Constructor of {@link NativeTunTap}; throws errno errors (see tuntap.cc). */
export type NativeTunTapConstructor = new (
  name: string,
  tun: boolean,
  multiQueue: boolean,
  batchSize: number,
  slotSize: number,
  onBatch: (count: number) => void,
  onError: (err: Error) => void,
) => NativeTunTap;

/** The raw exports of the addon. Extended by each native source file. */
export interface NativeBinding {
  /** Switch the calling thread into the netns at `path`; returns an fd of the previous one. */
  enterNetns(path: string): number;
  /** Create the named netns /run/netns/NAME (as `ip netns add`); EEXIST when taken. */
  createNetns(name: string): void;
  /** Delete the named netns (as `ip netns del`); false when there was none. */
  deleteNetns(name: string): boolean;
  /** Switch back to the netns `fd` refers to, and close `fd`. */
  leaveNetns(fd: number): void;
  /** Open a TAP/TUN queue (tuntap.cc). */
  TunTap: NativeTunTapConstructor;
  /** Limits the addon enforces on TunTap's geometry. */
  tunTapLimits: {
    /** Largest batchSize, in frames. */
    readonly maxBatchSize: number;
    /** Smallest slotSize, in bytes. */
    readonly minSlotSize: number;
    /** Largest slotSize, in bytes. */
    readonly maxSlotSize: number;
    /** Batches delivered per event-loop wake-up at most. */
    readonly maxBatchesPerWakeup: number;
  };
}

const ADDON_FILE = join('build', 'Release', 'nea_native.node');

/**
 * The addon beside the package root: the first `build/Release/nea_native.node`
 * found walking up from this file (src/native, dist/native, or a benchmark's
 * compiled copy of the sources).
 */
function findAddon(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return join(start, '..', '..', ADDON_FILE);
  }
}

const addonPath = findAddon();

let cached: NativeBinding | undefined;

/** Loads the addon once; a missing build gives a one-line error saying how to build it. */
export function native(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    cached = require(addonPath) as NativeBinding;
  } catch (e) {
    throw new NeaError('NATIVE_MISSING',
      `native addon not found at ${addonPath}: run \`npm ci\` (or \`npm run build\`) in the repository first`, { cause: e });
  }
  return cached;
}
