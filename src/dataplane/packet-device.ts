/**
 * The packet device seam: a TAP (Ethernet frames) or TUN (IP packets) queue
 * that reads in batches and writes in batches. The real implementation is in
 * `tuntap.ts` (native addon); `fake-device.ts` has an in-memory pair with the
 * same contract for tests of the code above it.
 *
 * Contracts every implementation keeps:
 * - Batches: one `onBatch` call per batch of up to `batchSize` frames, in
 *   arrival order. The {@link PacketBatch} object, its `buffer` (the slab) and
 *   `lengths` are reused for every batch: their contents are valid only during
 *   the call. Copy a frame to keep it.
 * - Reading runs while a handler is set and the device is not paused. While
 *   paused, frames wait in the device's queue (the kernel's queue for a real
 *   device: `txqueuelen` frames, beyond which the kernel drops).
 * - Writes: `write`/`writeBatch` return how much the device took; what was
 *   refused (EAGAIN, a full queue) is the caller's to retry or drop, and is
 *   counted in `txDrops` either way. Other failures throw.
 * - Fairness: at most `maxBatchesPerWakeup` batches run back to back before
 *   other event-loop work gets its turn.
 */
import type { ErrorCode } from '../shared/error-codes.js';
import { SystemError, ValidationError } from '../shared/errors.js';

/** `'tap'`: Ethernet frames; `'tun'`: IP packets (no link header). */
export type DeviceKind = 'tap' | 'tun';

/** A batch of received frames, viewed in place in the device's read slab. */
export interface PacketBatch {
  /** The read slab; frame i is at `buffer[offset(i), offset(i) + lengths[i])`. */
  readonly buffer: Buffer;
  /** Bytes per slot of `buffer`. */
  readonly slotSize: number;
  /** Frame lengths in bytes; entries `[0, count)` belong to this batch. */
  readonly lengths: Uint32Array;
  /** Number of frames in this batch (1 .. batchSize). */
  readonly count: number;
  /**
   * Byte offset of frame i in `buffer`: i × slotSize, plus
   * {@link VNET_HDR_BYTES} on a device with offloads (`vnetHdr`), whose
   * virtio_net_hdr sits right before the frame.
   */
  offset(i: number): number;
  /**
   * Frame i as a `Buffer` view of the slab (no copy, but a new object: for
   * code off the hot path). Valid only during the `onBatch` call.
   */
  frame(i: number): Buffer;
}

/** Receives each batch; must not keep `batch` or views of it after returning. */
export type BatchHandler = (batch: PacketBatch) => void;

/** Receives the error that stopped reading (`TUN_READ_FAILED`). */
export type DeviceErrorHandler = (err: SystemError) => void;

/** Running totals since the device was opened. */
export interface PacketDeviceCounters {
  /** Frames delivered to the batch handler. */
  readonly rxFrames: number;
  /** Bytes of those frames. */
  readonly rxBytes: number;
  /** Batch handler calls. */
  readonly rxBatches: number;
  /** Frames received but dropped: longer than a slot, or (fake) beyond its queue. */
  readonly rxDrops: number;
  /** Frames the device accepted. */
  readonly txFrames: number;
  /** Bytes of those frames. */
  readonly txBytes: number;
  /** Frames the device refused (EAGAIN / full): the caller retried or dropped them. */
  readonly txDrops: number;
}

/** Where a device is in its life. */
export type DeviceState =
  /** open, no batch handler yet: nothing is read */
  | 'idle'
  /** handler set, reading */
  | 'reading'
  /** reading stopped by `pause()`; frames wait in the device queue */
  | 'paused'
  /** a read error stopped reading for good; writes may still work */
  | 'failed'
  /** closed; every call but `close()` and `counters()` throws */
  | 'closed';

/** One queue of a TAP/TUN device (or a fake of one). */
export interface PacketDevice {
  /** Interface name (as the kernel reports it). */
  readonly name: string;
  readonly kind: DeviceKind;
  /** Most frames per batch (slots in the read slab). */
  readonly batchSize: number;
  /** Bytes per read slot: the largest frame that can be received. */
  readonly slotSize: number;
  readonly state: DeviceState;
  /**
   * Frames carry a virtio_net_hdr (IFF_VNET_HDR; see {@link PacketDeviceOptions.offload}):
   * each read frame has its header in the 10 bytes before it (all zero
   * unless it is a GSO super-frame), and `writeBatch` accepts lengths with
   * {@link WITH_VNET_HDR} set for frames that start with their own header.
   */
  readonly vnetHdr?: boolean;
  /**
   * Turns the kernel's checksum and TCP segmentation offloads towards this
   * device on or off (vnetHdr devices only): when on, reads may return TCP
   * super-frames of up to 64 KiB with GSO metadata in their header.
   */
  setOffload?(on: boolean): void;
  /** Set the batch handler (replacing any earlier one); starts reading unless paused. */
  onBatch(handler: BatchHandler): void;
  /**
   * Set the handler for the error that stops reading. Without one, that
   * error is thrown from the event loop (an uncaught exception).
   */
  onError(handler: DeviceErrorHandler): void;
  /** Write one frame; `false` when the device refused it (counted in txDrops). */
  write(frame: Uint8Array): boolean;
  /**
   * Write `count` frames in order, frame i being
   * `buf[offsets[i], offsets[i] + lengths[i])`. Returns how many were written;
   * stops at the first refused frame (the rest are counted in txDrops; retry
   * or drop them). Other failures throw a {@link DeviceWriteError}.
   */
  writeBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  /** Stop reading (backpressure). Idempotent. */
  pause(): void;
  /** Continue reading after `pause()`. Idempotent. */
  resume(): void;
  /** Stop reading and release the device (a non-persistent TAP disappears with its last queue). Idempotent. */
  close(): void;
  /** A snapshot of the counters. */
  counters(): PacketDeviceCounters;
}

/** Options of a device queue; every field has a default. */
export interface PacketDeviceOptions {
  /**
   * Most frames per batch, in frames: the number of slots in the read slab and
   * the most frames one `onBatch` call receives. 1 .. 4096; default
   * {@link DEFAULT_BATCH_SIZE}.
   */
  batchSize?: number;
  /**
   * Bytes per read slot: the largest frame that can be received. A TAP needs
   * MTU + 18 (Ethernet header and one VLAN tag), a TUN needs MTU. Longer frames
   * are dropped and counted in `rxDrops`. 64 .. 131072; default
   * {@link DEFAULT_SLOT_SIZE}.
   */
  slotSize?: number;
  /**
   * Open one queue of a multi-queue device (IFF_MULTI_QUEUE). Open the same
   * name again for each further queue; the kernel spreads flows over them.
   * Every queue of a device must agree on this. Default false.
   */
  multiQueue?: boolean;
  /**
   * Open with a virtio_net_hdr in front of every frame (IFF_VNET_HDR), so
   * that the kernel's checksum and segmentation offloads can be turned on
   * with `setOffload` (TAP/TUN of the tunnel engine). Default false; when
   * true the default slot size is {@link OFFLOAD_SLOT_SIZE}.
   */
  offload?: boolean;
  /**
   * Write through a thread of the device's own (TAP/TUN): `write` and
   * `writeBatch` copy the frames into a ring of {@link WRITER_RING_BYTES}
   * and return; the thread makes the system calls, in order. A write to a
   * TAP carries the kernel's delivery of the frame to its destination, so
   * this moves that work off the event loop's thread. A frame the ring has
   * no room for is refused (as the kernel's EAGAIN would be). Default false.
   */
  writerThread?: boolean;
}

/** Ring of a device opened with `writerThread`, in bytes: 64 super-frames of 64 KiB. */
export const WRITER_RING_BYTES = 4 * 1024 * 1024;

/** Bytes of the virtio_net_hdr in front of each frame of an offload device. */
export const VNET_HDR_BYTES = 10;
/** Bit of a `writeBatch` length: the frame starts with its own virtio_net_hdr (offload devices). */
export const WITH_VNET_HDR = 0x8000_0000;
/** Default slot of an offload device: a 64 KiB super-frame, its Ethernet header, a tag and the virtio header. */
export const OFFLOAD_SLOT_SIZE = 65_664;

/** Default frames per batch. */
export const DEFAULT_BATCH_SIZE = 64;
/** Default bytes per slot: a 1500-byte MTU frame with headers, rounded up to a power of two. */
export const DEFAULT_SLOT_SIZE = 2048;
/** Largest batch size, in frames (the addon's limit). */
export const MAX_BATCH_SIZE = 4096;
/** Smallest and largest slot size, in bytes (the addon's limits). */
export const MIN_SLOT_SIZE = 64;
export const MAX_SLOT_SIZE = 131_072;
/** Batches delivered back to back before yielding to the event loop (the addon's constant). */
export const MAX_BATCHES_PER_WAKEUP = 1;
/** Longest Linux interface name, in bytes (IFNAMSIZ - 1). */
export const MAX_IFNAME_LENGTH = 15;

/** Options with defaults filled in. */
export interface ResolvedDeviceOptions {
  readonly batchSize: number;
  readonly slotSize: number;
  readonly multiQueue: boolean;
  readonly offload: boolean;
  readonly writerThread: boolean;
}

/** Fill in defaults and check ranges; throws ValidationError (nothing opened). */
export function resolveDeviceOptions(opts: PacketDeviceOptions = {}): ResolvedDeviceOptions {
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const slotSize = opts.slotSize ?? (opts.offload === true ? OFFLOAD_SLOT_SIZE : DEFAULT_SLOT_SIZE);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ValidationError(`batchSize must be an integer from 1 to ${MAX_BATCH_SIZE} frames, got ${batchSize}`);
  }
  if (!Number.isInteger(slotSize) || slotSize < MIN_SLOT_SIZE || slotSize > MAX_SLOT_SIZE) {
    throw new ValidationError(`slotSize must be an integer from ${MIN_SLOT_SIZE} to ${MAX_SLOT_SIZE} bytes, got ${slotSize}`);
  }
  return { batchSize, slotSize, multiQueue: opts.multiQueue ?? false, offload: opts.offload ?? false, writerThread: opts.writerThread ?? false };
}

/**
 * Why `name` cannot be a Linux interface name (the kernel's dev_valid_name),
 * or undefined when it can.
 */
export function invalidIfNameReason(name: string): string | undefined {
  if (name === '') return 'it is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_IFNAME_LENGTH) return `it has ${bytes} bytes; Linux allows at most ${MAX_IFNAME_LENGTH}`;
  if (name === '.' || name === '..') return 'it is "." or ".."';
  if (/[/:\s]/.test(name)) return 'it contains "/", ":" or white space';
  return undefined;
}

/** Throws `TUN_NAME_INVALID` unless `name` is a valid interface name. */
export function checkIfName(kind: DeviceKind, name: string): void {
  const reason = invalidIfNameReason(name);
  if (reason === undefined) return;
  const errno = reason.startsWith('it has') ? 'ENAMETOOLONG' : 'EINVAL';
  throw new SystemError('TUN_NAME_INVALID', errno, 'TUNSETIFF',
    `cannot open ${kind.toUpperCase()} ${JSON.stringify(name)}: not a valid interface name (${reason}); use 1 to ${MAX_IFNAME_LENGTH} characters without "/", ":" or spaces`);
}

/** A write failed for a reason other than a refusal; `written` frames of the batch went out before it. */
export class DeviceWriteError extends SystemError {
  /** Frames of the batch written before the failing one. */
  readonly written: number;

  constructor(code: ErrorCode, errno: string, message: string, written: number, options?: { cause?: unknown }) {
    super(code, errno, 'write', message, options);
    this.written = written;
  }
}

/**
 * The reusable batch view over a slab: one per device, `count` updated before
 * each handler call. Implementations share it; users see {@link PacketBatch}.
 */
export class SlabBatch implements PacketBatch {
  count = 0;

  /** `base`: bytes before each frame in its slot (the virtio header of an offload device). */
  constructor(readonly buffer: Buffer, readonly slotSize: number, readonly lengths: Uint32Array, readonly base = 0) {}

  offset(i: number): number {
    return i * this.slotSize + this.base;
  }

  frame(i: number): Buffer {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(`frame(${i}): the batch has ${this.count} frames`);
    }
    const start = i * this.slotSize + this.base;
    return this.buffer.subarray(start, start + this.lengths[i]!);
  }
}

/** Frames laid out for `writeBatch`: one buffer, offsets and lengths. */
export interface PackedFrames {
  readonly buffer: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}

/** Copy `frames` into one buffer for `writeBatch` (setup code, not the hot path). */
export function packFrames(frames: readonly Uint8Array[]): PackedFrames {
  const total = frames.reduce((n, f) => n + f.length, 0);
  const buffer = Buffer.allocUnsafe(total);
  const offsets = new Uint32Array(frames.length);
  const lengths = new Uint32Array(frames.length);
  let at = 0;
  frames.forEach((f, i) => {
    buffer.set(f, at);
    offsets[i] = at;
    lengths[i] = f.length;
    at += f.length;
  });
  return { buffer, offsets, lengths, count: frames.length };
}

/** Copy the frames of a batch out of the slab (tests, diagnostics; not the hot path). */
export function copyFrames(batch: PacketBatch): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < batch.count; i++) out.push(Buffer.from(batch.frame(i)));
  return out;
}
