/**
 * In-memory {@link PacketSocket}s for tests: two ends of a wire where frames
 * sent on one end arrive as batches on the other, with the kernel's VLAN
 * behaviour and the real socket's contract (packet-socket.ts):
 * - a frame is put on the wire with its tag inserted (the `tag` argument, 0:
 *   as it is); the receiver gets it with the OUTER tag taken out of the bytes
 *   into `tags[i]`, as the kernel's skb_vlan_untag and PACKET_AUXDATA do, and
 *   inner tags left in the bytes;
 * - frames are copied at send time and delivered in order, in batches of up
 *   to `batchSize`, at most MAX_BATCHES_PER_WAKEUP batches per event-loop
 *   turn; the slab is overwritten with 0xdd after each handler call;
 * - the receive queue holds `queueLength` frames, beyond which frames are
 *   dropped and counted in the receiver's `rxDrops`; so are frames longer
 *   than a slot;
 * - `setWritable(false)` makes sends refused (EAGAIN), counted in txDrops.
 * `wire` records every frame put on the wire, tags in the bytes, for
 * assertions (the fake's `tcpdump -e`).
 */
import { SystemError } from '../shared/errors.js';
import { insertTag, stripTag } from '../protocol/vlan.js';
import {
  MAX_BATCHES_PER_WAKEUP, SlabBatch, resolveDeviceOptions, type DeviceState, type PacketDeviceCounters,
} from './packet-device.js';
import { PacketSendError, type PacketSocket, type TaggedBatch, type TaggedBatchHandler } from './packet-socket.js';

export interface FakePacketSocketOptions {
  name?: string;
  batchSize?: number;
  slotSize?: number;
  /** Frames the receive queue holds before dropping. Default 1000. */
  queueLength?: number;
}

const POISON = 0xdd;

class FakeTaggedBatch extends SlabBatch implements TaggedBatch {
  constructor(buffer: Buffer, slotSize: number, lengths: Uint32Array, readonly tags: Uint32Array) {
    super(buffer, slotSize, lengths);
  }
}

/** Two fake packet sockets, each receiving what the other sends. */
export function createFakePacketPair(a: FakePacketSocketOptions = {}, b: FakePacketSocketOptions = {}): [FakePacketSocket, FakePacketSocket] {
  const pa = new FakePacketSocket({ name: 'pkt0', ...a });
  const pb = new FakePacketSocket({ name: 'pkt1', ...b });
  pa.peer = pb;
  pb.peer = pa;
  return [pa, pb];
}

export class FakePacketSocket implements PacketSocket {
  readonly name: string;
  readonly batchSize: number;
  readonly slotSize: number;
  /** The other end of the wire. */
  peer: FakePacketSocket | undefined;
  /** Every frame this end put on the wire, as it was on the wire (tags in the bytes). */
  readonly wire: Buffer[] = [];
  private readonly queueLength: number;
  private readonly batch: FakeTaggedBatch;
  private readonly queue: { frame: Uint8Array; tag: number }[] = [];
  private head = 0;
  private handler: TaggedBatchHandler | undefined;
  private current: DeviceState = 'idle';
  private writable = true;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly c = { rxFrames: 0, rxBytes: 0, rxBatches: 0, rxDrops: 0, txFrames: 0, txBytes: 0, txDrops: 0 };

  constructor(opts: FakePacketSocketOptions = {}) {
    const o = resolveDeviceOptions({ batchSize: opts.batchSize ?? 64, slotSize: opts.slotSize ?? 2048 });
    this.name = opts.name ?? 'pkt0';
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.queueLength = opts.queueLength ?? 1000;
    this.batch = new FakeTaggedBatch(Buffer.alloc(o.batchSize * o.slotSize), o.slotSize, new Uint32Array(o.batchSize), new Uint32Array(o.batchSize));
  }

  get state(): DeviceState {
    return this.current;
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  onBatch(handler: TaggedBatchHandler): void {
    this.assertOpen('onBatch');
    this.handler = handler;
    if (this.current === 'idle') this.current = 'reading';
    this.schedule();
  }

  onError(): void { /* the fake never fails reading */ }

  send(frame: Uint8Array, tag = 0): boolean {
    this.assertOpen('send');
    if (!this.writable) { this.c.txDrops++; return false; }
    this.put(frame, tag, 0);
    return true;
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, tags: number | Uint32Array): number {
    this.assertOpen('sendBatch');
    if (!this.writable) { this.c.txDrops += count; return 0; }
    for (let i = 0; i < count; i++) {
      this.put(buf.subarray(offsets[i], offsets[i]! + lengths[i]!), typeof tags === 'number' ? tags : tags[i]!, i);
    }
    return count;
  }

  pause(): void {
    if (this.current === 'reading' || this.current === 'idle') this.current = 'paused';
  }

  resume(): void {
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

  /** Test hook: `false` makes sends refused (as EAGAIN would). */
  setWritable(writable: boolean): void {
    this.writable = writable;
  }

  /** Test hook: a frame arrives from the wire exactly as given (tags in its bytes). */
  inject(wireFrame: Uint8Array): void {
    this.receive(wireFrame);
  }

  private put(frame: Uint8Array, tag: number, index: number): void {
    if (frame.length < 14) {
      throw new PacketSendError('PACKET_SEND_FAILED', 'EINVAL', `sending frame ${index} on ${this.name} failed: shorter than an Ethernet header (EINVAL)`, index);
    }
    const onWire = Buffer.from(tag === 0 ? frame : insertTag(frame, tag));
    this.wire.push(onWire);
    this.c.txFrames++;
    this.c.txBytes += onWire.length;
    this.peer?.receive(onWire);
  }

  private receive(wireFrame: Uint8Array): void {
    if (this.current === 'closed') return;
    const { tag, frame } = stripTag(wireFrame);
    if (this.queued >= this.queueLength || frame.length > this.slotSize) { this.c.rxDrops++; return; }
    this.queue.push({ frame, tag });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.current !== 'reading' || this.queued === 0) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      try {
        for (let b = 0; b < MAX_BATCHES_PER_WAKEUP && this.current === 'reading' && this.queued > 0; b++) this.deliverOne();
      } finally {
        this.schedule();
      }
    });
  }

  private deliverOne(): void {
    const batch = this.batch;
    let n = 0;
    while (n < this.batchSize && this.queued > 0) {
      const q = this.queue[this.head++]!;
      batch.buffer.set(q.frame, n * this.slotSize);
      batch.lengths[n] = q.frame.length;
      batch.tags[n] = q.tag;
      this.c.rxFrames++;
      this.c.rxBytes += q.frame.length;
      n++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    batch.count = n;
    this.c.rxBatches++;
    try {
      this.handler!(batch);
    } finally {
      batch.buffer.fill(POISON);
      batch.lengths.fill(0);
      batch.tags.fill(0);
    }
  }

  private assertOpen(what: string): void {
    if (this.current === 'closed') throw new SystemError('PACKET_CLOSED', 'EBADF', what, `${what}(): the packet socket on ${this.name} is closed`);
  }
}
