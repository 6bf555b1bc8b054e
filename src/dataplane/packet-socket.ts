/**
 * The trunk seam: an AF_PACKET socket on one interface that reads and sends
 * whole Ethernet frames in batches, with each frame's outer VLAN tag kept
 * apart from its bytes. The real implementation is the native addon
 * (src/native/packet.cc); `fake-packet-socket.ts` has an in-memory wire with
 * the same contract for tests of the code above it (the user-space VLAN
 * trunk, the lab switch).
 *
 * Receive path, per event-loop wake-up:
 *   1. the socket is readable (uv_poll, in the addon);
 *   2. recvmmsg() fills the slab: frame i in slot i WITHOUT its outer tag
 *      (the kernel moves it into skb metadata on receive), and that tag,
 *      recovered from PACKET_AUXDATA, in `tags[i]` as `(tpid << 16) | tci`
 *      (0: untagged). Inner tags (double-tagged frames) stay in the bytes;
 *   3. one call into JS with the reusable {@link TaggedBatch};
 *   4. repeat up to MAX_BATCHES_PER_WAKEUP times, then yield to the loop.
 * Frames this host sends on the interface are not read back. The slab,
 * lengths and tags are owned by the socket and overwritten by the next batch.
 *
 * Send path: `sendBatch` hands frames to sendmmsg() with a tag inserted per
 * frame by the iovec (no copy) and returns how many the kernel took, in
 * order; what it refused (EAGAIN/ENOBUFS: the device queue is full) is the
 * caller's to retry or drop, and is counted in txDrops.
 *
 * To open a socket in another network namespace, open it inside
 * `withNetns(name, () => openPacketSocket(...))` (src/netconfig/netns.ts).
 */
import { PACKET_FLAG, native, type NativePacketSocket } from '../native/index.js';
import { BatchReader } from './batch-reader.js';
import type { ErrorCode } from '../shared/error-codes.js';
import { SystemError, ValidationError, isNativeErrnoError } from '../shared/errors.js';
import {
  DEFAULT_SLOT_SIZE, SlabBatch, invalidIfNameReason, resolveDeviceOptions,
  type DeviceState, type PacketBatch, type PacketDeviceCounters,
} from './packet-device.js';

/** Default receive buffer asked for, in bytes: absorbs a burst while JavaScript is busy. */
export const DEFAULT_PACKET_RCVBUF = 4 * 1024 * 1024;
/** Largest receive buffer accepted, in bytes. */
export const MAX_PACKET_RCVBUF = 0x3fffffff;

/** A batch of received frames, each without its outer tag, and the tags apart. */
export interface TaggedBatch extends PacketBatch {
  /** Outer tag of frame i, `(tpid << 16) | tci`; 0 when it came untagged. Entries `[0, count)`. */
  readonly tags: Uint32Array;
}

export type TaggedBatchHandler = (batch: TaggedBatch) => void;

/** One AF_PACKET socket bound to one interface (or a fake of one). */
export interface PacketSocket {
  /** Interface name. */
  readonly name: string;
  /** Most frames per batch. */
  readonly batchSize: number;
  /** Bytes per read slot: the largest frame (without its outer tag) that can be received. */
  readonly slotSize: number;
  readonly state: DeviceState;
  /** Set the batch handler (replacing any earlier one); starts reading unless paused. */
  onBatch(handler: TaggedBatchHandler): void;
  /** Set the handler for the error that stops reading (`PACKET_READ_FAILED`); without one it is thrown. */
  onError(handler: (err: SystemError) => void): void;
  /** Send one frame with `tag` inserted (0: as it is); false when refused (counted in txDrops). */
  send(frame: Uint8Array, tag?: number): boolean;
  /**
   * Send `count` frames in order, frame i being `buf[offsets[i], offsets[i] + lengths[i])`,
   * with `tags` (one for all, or `tags[i]`) inserted unless 0. Returns how many were sent;
   * stops at the first refused frame (the rest are counted in txDrops). Other failures throw
   * a {@link PacketSendError}.
   */
  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, tags: number | Uint32Array): number;
  pause(): void;
  resume(): void;
  /** Stop reading and close the socket (a promiscuous membership ends with it). Idempotent. */
  close(): void;
  counters(): PacketDeviceCounters;
}

export interface PacketSocketOptions {
  /** Frames per batch, 1..4096; default 64. */
  batchSize?: number;
  /** Bytes per slot, 64..65536; default 2048 (a 1500-byte MTU frame and tags). */
  slotSize?: number;
  /** Receive buffer in bytes (0: kernel default); default {@link DEFAULT_PACKET_RCVBUF}. */
  rcvbuf?: number;
  /** Receive frames for any MAC (PACKET_MR_PROMISC) while open; default false. */
  promiscuous?: boolean;
  /** A classic BPF program (struct sock_filter × n, see `bpf.ts`) attached before binding; default none. */
  filter?: Uint8Array;
}

/** A send failed for a reason other than a full queue; `sent` frames of the batch went out before it. */
export class PacketSendError extends SystemError {
  constructor(code: ErrorCode, errno: string, message: string, readonly sent: number, options?: { cause?: unknown }) {
    super(code, errno, 'sendmmsg', message, options);
  }
}

/** The stable code of an errno error of the addon's packet socket, by what was being done. */
export function packetErrorCode(op: 'open' | 'read' | 'send', errno: string): ErrorCode {
  if (errno === 'EBADF' && op !== 'read') return 'PACKET_CLOSED';
  if (op === 'read') return 'PACKET_READ_FAILED';
  if (op === 'send') return errno === 'ENETDOWN' ? 'PACKET_LINK_DOWN' : 'PACKET_SEND_FAILED';
  if (errno === 'EPERM' || errno === 'EACCES') return 'PACKET_NO_PERMISSION';
  if (errno === 'ENODEV' || errno === 'ENXIO') return 'PACKET_NO_DEVICE';
  return 'PACKET_OPEN_FAILED';
}

function toPacketError(op: 'open' | 'read' | 'send', e: unknown): unknown {
  if (!isNativeErrnoError(e)) return e;
  const code = packetErrorCode(op, e.code);
  if (op === 'send') {
    const sent = (e as { sent?: unknown }).sent;
    return new PacketSendError(code, e.code, e.message, typeof sent === 'number' ? sent : 0, { cause: e });
  }
  return new SystemError(code, e.code, e.syscall, e.message, { cause: e });
}

/** Open an AF_PACKET socket on interface `ifname` of the current network namespace. */
export function openPacketSocket(ifname: string, opts: PacketSocketOptions = {}): PacketSocket {
  const reason = invalidIfNameReason(ifname);
  if (reason !== undefined) {
    throw new SystemError('PACKET_NO_DEVICE', 'EINVAL', 'if_nametoindex', `cannot open a packet socket on ${JSON.stringify(ifname)}: not a valid interface name (${reason})`);
  }
  const rcvbuf = opts.rcvbuf ?? DEFAULT_PACKET_RCVBUF;
  if (!Number.isInteger(rcvbuf) || rcvbuf < 0 || rcvbuf > MAX_PACKET_RCVBUF) {
    throw new ValidationError(`rcvbuf must be an integer from 0 to ${MAX_PACKET_RCVBUF} bytes, got ${rcvbuf}`);
  }
  if (opts.filter !== undefined && (opts.filter.length === 0 || opts.filter.length % 8 !== 0)) {
    throw new ValidationError(`filter must be whole 8-byte BPF instructions, got ${opts.filter.length} bytes`);
  }
  return new NativePacketSocketDevice(ifname, opts, rcvbuf);
}

/**
 * Turn GRO and LRO off on `ifname` (as `ethtool -K IF gro off lro off`): a
 * packet socket reads frames as the driver hands them over, and coalesced
 * super-frames would neither fit a slot nor take a tag. Returns which of the
 * two are off now (false: the device has no such switch).
 */
export function disableReceiveOffloads(ifname: string): { gro: boolean; lro: boolean } {
  try {
    return native().disableReceiveOffloads(ifname);
  } catch (e) {
    if (!isNativeErrnoError(e)) throw e;
    throw new SystemError(e.code === 'ENODEV' ? 'PACKET_NO_DEVICE' : 'PACKET_OPEN_FAILED', e.code, e.syscall, e.message, { cause: e });
  }
}

class NativeTaggedBatch extends SlabBatch implements TaggedBatch {
  constructor(buffer: Buffer, slotSize: number, lengths: Uint32Array, readonly tags: Uint32Array) {
    super(buffer, slotSize, lengths);
  }
}

/** The real {@link PacketSocket}: a thin typed layer over the addon's PacketSocket. */
class NativePacketSocketDevice extends BatchReader<NativeTaggedBatch> implements PacketSocket {
  readonly name: string;
  readonly batchSize: number;
  readonly slotSize: number;
  private readonly s: NativePacketSocket;

  constructor(ifname: string, opts: PacketSocketOptions, rcvbuf: number) {
    super();
    const o = resolveDeviceOptions({ batchSize: opts.batchSize ?? 64, slotSize: opts.slotSize ?? DEFAULT_SLOT_SIZE });
    const { PacketSocket } = native();
    try {
      this.s = new PacketSocket(ifname, o.batchSize, o.slotSize, rcvbuf, opts.promiscuous === true ? PACKET_FLAG.promisc : 0,
        opts.filter ?? null, (count) => { this.deliver(count); }, (err) => { this.failed(err); });
    } catch (e) {
      throw toPacketError('open', e);
    }
    this.name = this.s.name;
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.attach(this.s, new NativeTaggedBatch(this.s.slab, o.slotSize, this.s.lengths, this.s.tags));
  }

  send(frame: Uint8Array, tag = 0): boolean {
    try {
      return this.s.send(frame, 0, frame.length, tag);
    } catch (e) {
      throw toPacketError('send', e);
    }
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, tags: number | Uint32Array): number {
    try {
      return this.s.sendBatch(buf, offsets, lengths, count, tags);
    } catch (e) {
      throw toPacketError('send', e);
    }
  }

  counters(): PacketDeviceCounters {
    return this.nativeCounters();
  }

  protected readError(err: Error): SystemError {
    const mapped = toPacketError('read', err);
    return mapped instanceof SystemError ? mapped : new SystemError('PACKET_READ_FAILED', 'EIO', 'recvmmsg', err.message, { cause: err });
  }

  protected closedError(what: string): SystemError {
    return new SystemError('PACKET_CLOSED', 'EBADF', what, `${what}(): the packet socket on ${this.name} is closed`);
  }
}
