/**
 * TAP and TUN devices through the native addon (src/native/tuntap.cc).
 *
 * Receive path, per event-loop wake-up:
 *   1. the device fd is readable (uv_poll, in the addon);
 *   2. the addon reads frames into the queue's slab until EAGAIN or the slab is
 *      full (one read() per frame, no JS);
 *   3. one call into JS: the handler gets the reusable {@link PacketBatch};
 *   4. repeat up to MAX_BATCHES_PER_WAKEUP times, then yield to the loop.
 * Order is the kernel's queue order. The slab is owned by the device and
 * overwritten by the next batch.
 *
 * Send path: `writeBatch` loops write() in the addon, one frame per call, and
 * returns how many the kernel took; the caller decides about the rest.
 *
 * To create a device in another network namespace, open it inside
 * `withNetns(name, () => openTap(...))` (src/netconfig/netns.ts).
 */
import { native, type NativeTunTap } from '../native/index.js';
import { BatchReader } from './batch-reader.js';
import { SystemError, isNativeErrnoError } from '../shared/errors.js';
import {
  DeviceWriteError,
  SlabBatch,
  VNET_HDR_BYTES,
  WRITER_RING_BYTES,
  checkIfName,
  resolveDeviceOptions,
  type DeviceKind,
  type PacketDevice,
  type PacketDeviceCounters,
  type PacketDeviceOptions,
} from './packet-device.js';

export * from './packet-device.js';

/** Error codes of this module (docs/native-addon.md). */
export type TunErrorCode =
  /** /dev/net/tun is missing: the tun module is not loaded. */
  | 'TUN_NO_DEVICE'
  /** CAP_NET_ADMIN (root) is needed. */
  | 'TUN_NO_PERMISSION'
  /** The interface name is in use by an open non-multi-queue device or by another kind of link. */
  | 'TUN_BUSY'
  /** Not a valid interface name (empty, longer than 15 bytes, "/", ":" or spaces). */
  | 'TUN_NAME_INVALID'
  /** Opening failed for another reason (see errno). */
  | 'TUN_OPEN_FAILED'
  /** Writing failed because the interface is down. */
  | 'TUN_LINK_DOWN'
  /** Writing failed for another reason (see errno). */
  | 'TUN_WRITE_FAILED'
  /** Reading failed; reading stopped for good. */
  | 'TUN_READ_FAILED'
  /** The device is closed. */
  | 'TUN_CLOSED';

/** The stable code for an errno error of the addon, by what was being done. */
export function tunErrorCode(op: 'open' | 'read' | 'write', errno: string, syscall: string): TunErrorCode {
  if (errno === 'EBADF' && op !== 'read') return 'TUN_CLOSED';
  if (op === 'read') return 'TUN_READ_FAILED';
  if (op === 'write') return errno === 'EIO' ? 'TUN_LINK_DOWN' : 'TUN_WRITE_FAILED';
  if (errno === 'EPERM' || errno === 'EACCES') return 'TUN_NO_PERMISSION';
  if (errno === 'ENAMETOOLONG') return 'TUN_NAME_INVALID';
  if (syscall === 'open' && (errno === 'ENOENT' || errno === 'ENODEV' || errno === 'ENXIO')) return 'TUN_NO_DEVICE';
  if (syscall === 'TUNSETIFF' && (errno === 'EBUSY' || errno === 'EINVAL')) return 'TUN_BUSY';
  return 'TUN_OPEN_FAILED';
}

/**
 * Map an error thrown by the addon to a {@link SystemError} (the addon's
 * one-line message, which says what to do, is kept). Anything else (a
 * TypeError for a bad argument, ...) is returned unchanged.
 */
export function toTunError(op: 'open' | 'read' | 'write', e: unknown): unknown {
  if (!isNativeErrnoError(e)) return e;
  const code = tunErrorCode(op, e.code, e.syscall);
  if (op === 'write') {
    const written = (e as { written?: unknown }).written;
    return new DeviceWriteError(code, e.code, e.message, typeof written === 'number' ? written : 0, { cause: e });
  }
  return new SystemError(code, e.code, e.syscall, e.message, { cause: e });
}

/** Open one queue of the TAP device `name` (created if missing) in the current network namespace. */
export function openTap(name: string, opts: PacketDeviceOptions = {}): PacketDevice {
  return TunTapDevice.open('tap', name, opts);
}

/** Open one queue of the TUN device `name` (created if missing) in the current network namespace. */
export function openTun(name: string, opts: PacketDeviceOptions = {}): PacketDevice {
  return TunTapDevice.open('tun', name, opts);
}

/**
 * Open `queues` queues of one multi-queue device (IFF_MULTI_QUEUE); all or
 * nothing: if one fails, those already opened are closed and the error thrown.
 */
export function openQueues(kind: DeviceKind, name: string, queues: number,
  opts: Omit<PacketDeviceOptions, 'multiQueue'> = {}): PacketDevice[] {
  if (!Number.isInteger(queues) || queues < 1) throw new RangeError(`queues must be a positive integer, got ${queues}`);
  const open: PacketDevice[] = [];
  try {
    for (let q = 0; q < queues; q++) open.push(TunTapDevice.open(kind, name, { ...opts, multiQueue: true }));
  } catch (e) {
    for (const d of open) d.close();
    throw e;
  }
  return open;
}

/** The real {@link PacketDevice}: a thin typed layer over the addon's TunTap. */
class TunTapDevice extends BatchReader<SlabBatch> implements PacketDevice {
  readonly name: string;
  readonly batchSize: number;
  readonly slotSize: number;
  readonly vnetHdr: boolean;
  private readonly q: NativeTunTap;

  static open(kind: DeviceKind, name: string, opts: PacketDeviceOptions): TunTapDevice {
    checkIfName(kind, name);
    return new TunTapDevice(kind, name, opts);
  }

  private constructor(readonly kind: DeviceKind, name: string, opts: PacketDeviceOptions) {
    super();
    const o = resolveDeviceOptions(opts);
    const { TunTap } = native();
    try {
      this.q = new TunTap(name, kind === 'tun', o.multiQueue, o.batchSize, o.slotSize,
        (count) => { this.deliver(count); }, (err) => { this.failed(err); }, o.offload);
    } catch (e) {
      throw toTunError('open', e);
    }
    if (o.writerThread) {
      try {
        this.q.startWriter(WRITER_RING_BYTES);
      } catch (e) {
        this.q.close(); // opened, but not as asked: nothing stays open
        throw toTunError('open', e);
      }
    }
    this.name = this.q.name;
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.vnetHdr = this.q.vnetHdr;
    this.attach(this.q, new SlabBatch(this.q.slab, o.slotSize, this.q.lengths, this.vnetHdr ? VNET_HDR_BYTES : 0));
  }

  setOffload(on: boolean): void {
    try {
      this.q.setOffload(on);
    } catch (e) {
      throw toTunError('open', e);
    }
  }

  write(frame: Uint8Array): boolean {
    try {
      return this.q.write(frame, 0, frame.length);
    } catch (e) {
      throw toTunError('write', e);
    }
  }

  writeBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    try {
      return this.q.writeBatch(buf, offsets, lengths, count);
    } catch (e) {
      throw toTunError('write', e);
    }
  }

  counters(): PacketDeviceCounters {
    if (this.state !== 'closed') this.q.syncCounters();
    return this.nativeCounters();
  }

  protected readError(err: Error): SystemError {
    const mapped = toTunError('read', err);
    return mapped instanceof SystemError ? mapped : new SystemError('TUN_READ_FAILED', 'EIO', 'read', err.message, { cause: err });
  }

  protected closedError(what: string): SystemError {
    return new SystemError('TUN_CLOSED', 'EBADF', what, `${what}(): ${this.kind.toUpperCase()} ${this.name} is closed`);
  }
}
