/**
 * In-memory {@link PacketDevice}s for tests: a linked pair where frames
 * written on one end arrive as batches on the other, with the real device's
 * contract (see packet-device.ts):
 * - frames are copied at write time and delivered in order, in batches of up
 *   to `batchSize`, at most MAX_BATCHES_PER_WAKEUP batches per event-loop turn
 *   (setImmediate);
 * - the slab is reused and, by default, overwritten with 0xdd after each
 *   handler call, so code that keeps a view of a batch fails its tests;
 * - the receive queue holds `queueLength` frames; beyond that frames are
 *   dropped and counted in the receiver's `rxDrops`, as the kernel drops past
 *   `txqueuelen`; frames longer than a slot are dropped the same way;
 * - `setWritable(false)` makes writes refused (the real device's EAGAIN), and
 *   `failReading()` stops reading with an error, to test those paths;
 * - with `offload`, an end reads and writes virtio headers as the real TAP
 *   opened with offloads does (a zero header in front of frames from a plain
 *   end, `WITH_VNET_HDR` lengths on write, `setOffload` recorded in
 *   `offloadOn`); a frame with GSO metadata never reaches a plain end (it is
 *   dropped and counted in that end's `rxDrops`, where the kernel would have
 *   segmented it).
 */
import { SystemError } from '../shared/errors.js';
import {
  DeviceWriteError,
  MAX_BATCHES_PER_WAKEUP,
  SlabBatch,
  VNET_HDR_BYTES,
  WITH_VNET_HDR,
  resolveDeviceOptions,
  type BatchHandler,
  type DeviceErrorHandler,
  type DeviceKind,
  type DeviceState,
  type PacketDevice,
  type PacketDeviceCounters,
  type PacketDeviceOptions,
} from './packet-device.js';

/** Options of one end of a fake pair. */
export interface FakeDeviceOptions extends PacketDeviceOptions {
  /** Interface name reported by `name`. Default `fake0` / `fake1`. */
  name?: string;
  /** Default `'tap'`. */
  kind?: DeviceKind;
  /** Frames the receive queue holds before dropping, in frames. Default 1000 (the kernel's default txqueuelen). */
  queueLength?: number;
  /** Overwrite the slab with 0xdd after each batch handler call. Default true. */
  poisonSlab?: boolean;
}

/** Smallest frame a device accepts, in bytes: an Ethernet header for a TAP, one byte for a TUN. */
const MIN_FRAME = { tap: 14, tun: 1 } as const;
const POISON = 0xdd;

/** Two fake devices, each delivering what the other writes. */
export function createFakePair(a: FakeDeviceOptions = {}, b: FakeDeviceOptions = {}): [FakeDevice, FakeDevice] {
  const da = new FakeDevice({ name: 'fake0', ...a });
  const db = new FakeDevice({ name: 'fake1', ...b });
  da.peer = db;
  db.peer = da;
  return [da, db];
}

export class FakeDevice implements PacketDevice {
  readonly name: string;
  readonly kind: DeviceKind;
  readonly batchSize: number;
  readonly slotSize: number;
  readonly vnetHdr: boolean;
  /** Offloads as last set by `setOffload` (offload devices). */
  offloadOn = false;
  /** The other end; set by {@link createFakePair}. */
  peer: FakeDevice | undefined;
  private readonly queueLength: number;
  private readonly poison: boolean;
  private readonly batch: SlabBatch;
  private readonly queue: Buffer[] = [];
  private head = 0;
  private handler: BatchHandler | undefined;
  private errorHandler: DeviceErrorHandler | undefined;
  private current: DeviceState = 'idle';
  private writable = true;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly c = { rxFrames: 0, rxBytes: 0, rxBatches: 0, rxDrops: 0, txFrames: 0, txBytes: 0, txDrops: 0 };

  constructor(opts: FakeDeviceOptions = {}) {
    const o = resolveDeviceOptions(opts);
    this.name = opts.name ?? 'fake0';
    this.kind = opts.kind ?? 'tap';
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.queueLength = opts.queueLength ?? 1000;
    this.poison = opts.poisonSlab ?? true;
    this.vnetHdr = o.offload;
    this.batch = new SlabBatch(Buffer.alloc(o.batchSize * o.slotSize), o.slotSize, new Uint32Array(o.batchSize),
      o.offload ? VNET_HDR_BYTES : 0);
  }

  setOffload(on: boolean): void {
    this.assertOpen('setOffload');
    if (!this.vnetHdr) throw new Error('setOffload(): the device was opened without a virtio header');
    this.offloadOn = on;
  }

  /** Test hook (offload devices): write one frame with the given virtio header (e.g. a GSO super-frame). */
  writeWithHeader(header: Uint8Array, frame: Uint8Array): void {
    this.assertOpen('write');
    this.checkFrame(frame.length, 0);
    this.send(frame, header);
  }

  get state(): DeviceState {
    return this.current;
  }

  /** Frames waiting in this end's receive queue. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  onBatch(handler: BatchHandler): void {
    this.assertOpen('onBatch');
    this.handler = handler;
    if (this.current === 'idle') this.current = 'reading';
    this.schedule();
  }

  onError(handler: DeviceErrorHandler): void {
    this.errorHandler = handler;
  }

  write(frame: Uint8Array): boolean {
    this.assertOpen('write');
    if (!this.writable) {
      this.c.txDrops += 1;
      return false;
    }
    this.checkFrame(frame.length, 0);
    this.send(frame);
    return true;
  }

  writeBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    this.assertOpen('writeBatch');
    if (count > offsets.length || count > lengths.length) throw new RangeError('writeBatch(): count is larger than offsets or lengths');
    for (let i = 0; i < count; i++) {
      const withHeader = lengths[i]! >= WITH_VNET_HDR;
      if (withHeader && !this.vnetHdr) throw new RangeError(`writeBatch(): frame ${i} has a virtio header but the device has none`);
      if (offsets[i]! + (lengths[i]! % WITH_VNET_HDR) > buf.length) throw new RangeError(`writeBatch(): frame ${i} is beyond the end of buf`);
    }
    if (!this.writable) {
      this.c.txDrops += count;
      return 0;
    }
    for (let i = 0; i < count; i++) {
      const len = lengths[i]!;
      if (len >= WITH_VNET_HDR) {
        const at = offsets[i]!;
        const end = at + len - WITH_VNET_HDR;
        this.checkFrame(end - at - VNET_HDR_BYTES, i);
        this.send(buf.subarray(at + VNET_HDR_BYTES, end), buf.subarray(at, at + VNET_HDR_BYTES));
      } else {
        this.checkFrame(len, i);
        this.send(buf.subarray(offsets[i], offsets[i]! + len));
      }
    }
    return count;
  }

  pause(): void {
    this.assertOpen('pause');
    if (this.current === 'reading' || this.current === 'idle') this.current = 'paused';
  }

  resume(): void {
    this.assertOpen('resume');
    if (this.current !== 'paused') return;
    this.current = this.handler ? 'reading' : 'idle';
    this.schedule();
  }

  close(): void {
    this.current = 'closed';
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue.length = 0;
    this.head = 0;
  }

  counters(): PacketDeviceCounters {
    return { ...this.c };
  }

  /** Test hook: `false` makes writes refused (as EAGAIN would), `true` accepts them again. */
  setWritable(writable: boolean): void {
    this.writable = writable;
  }

  /** Test hook: stop reading with a `TUN_READ_FAILED` error, as a failed read() would. */
  failReading(errno = 'EIO'): void {
    if (this.current !== 'reading') return;
    this.current = 'failed';
    const e = new SystemError('TUN_READ_FAILED', errno, 'read', `reading from ${this.name} failed (${errno}); reading stopped; close and reopen the device`);
    if (this.errorHandler) this.errorHandler(e);
    else throw e;
  }

  /** Called by the peer: queue a copy of `frame` (with its virtio header in front on an offload device). */
  private receive(frame: Uint8Array, header: Uint8Array | undefined): void {
    if (this.current === 'closed') return;
    const base = this.vnetHdr ? VNET_HDR_BYTES : 0;
    const gso = header !== undefined && header[1] !== 0;
    if (this.queued >= this.queueLength || frame.length + base > this.slotSize || (gso && !this.vnetHdr)) {
      this.c.rxDrops += 1;
      return;
    }
    const entry = Buffer.alloc(base + frame.length);
    if (base > 0 && header !== undefined) entry.set(header);
    entry.set(frame, base);
    this.queue.push(entry);
    this.schedule();
  }

  private send(frame: Uint8Array, header?: Uint8Array): void {
    this.c.txFrames += 1;
    this.c.txBytes += frame.length;
    this.peer?.receive(frame, header);
  }

  private checkFrame(length: number, index: number): void {
    if (length < MIN_FRAME[this.kind]) {
      throw new DeviceWriteError('TUN_WRITE_FAILED', 'EINVAL',
        `writing frame ${index} to ${this.name} failed: ${length} bytes is shorter than a ${this.kind === 'tap' ? 'Ethernet header' : 'packet'} (EINVAL)`, index);
    }
  }

  private schedule(): void {
    if (this.scheduled || this.current !== 'reading' || this.queued === 0) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.drain();
    });
  }

  /** One "wake-up": up to MAX_BATCHES_PER_WAKEUP batches. */
  private drain(): void {
    try {
      for (let b = 0; b < MAX_BATCHES_PER_WAKEUP && this.current === 'reading' && this.queued > 0; b++) {
        this.deliverOne();
      }
    } finally {
      this.schedule();
    }
  }

  private deliverOne(): void {
    const batch = this.batch;
    let n = 0;
    while (n < this.batchSize && this.queued > 0) {
      const f = this.queue[this.head++]!;
      batch.buffer.set(f, n * this.slotSize);
      batch.lengths[n] = f.length - batch.base;
      this.c.rxFrames += 1;
      this.c.rxBytes += f.length - batch.base;
      n++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    batch.count = n;
    this.c.rxBatches += 1;
    try {
      this.handler!(batch);
    } finally {
      if (this.poison) {
        batch.buffer.fill(POISON);
        batch.lengths.fill(0);
      }
    }
  }

  private assertOpen(what: string): void {
    if (this.current === 'closed') {
      throw new SystemError('TUN_CLOSED', 'EBADF', what, `${what}(): ${this.kind.toUpperCase()} ${this.name} is closed`);
    }
  }
}
