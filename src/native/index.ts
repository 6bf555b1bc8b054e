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
 * Indexes into {@link NativeTunTap.counters} and {@link NativeUdpSocket.counters}
 * (kept in sync with `BatchCounter` in batch_source.h). For a UDP socket a
 * frame is a datagram.
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
  /** Opened with IFF_VNET_HDR: slot i holds a 10-byte virtio_net_hdr, the frame follows it. */
  readonly vnetHdr: boolean;
  /** TUNSETOFFLOAD: checksum and TCP segmentation offloads on or off (vnetHdr devices only). */
  setOffload(on: boolean): void;
  /**
   * From now on writes are copied into a ring of `ringBytes` and written by a
   * thread, in order (frame_writer.h); a frame without room counts as refused.
   */
  startWriter(ringBytes: number): void;
  /** Brings the tx counters up to what the writer thread has written. */
  syncCounters(): void;
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
  vnetHdr?: boolean,
) => NativeTunTap;

/** Bits of the `flags` argument of {@link NativeUdpSocketConstructor} (kept in sync with udp.cc). */
export const UDP_FLAG = {
  /** UDP_SEGMENT (GSO) for runs of equal-size datagrams to one destination in sendBatch. */
  gso: 1,
  /** UDP_GRO on receive: coalesced datagrams are split back into slots. Needs batchSize >= 128. */
  gro: 2,
  /** SO_TIMESTAMPNS: `rxDelay[0]` is the queueing delay of each batch's first datagram, in ms (not with gro). */
  queueDelay: 4,
} as const;

/**
 * A UDP socket (src/native/udp.cc). Starts paused; `resume()` starts
 * receiving, which calls `onBatch(count)` once per batch with datagram i in
 * `slab` at i × slotSize (length `lengths[i]`) and its source in
 * `srcAddrs[16i, 16i + 16)` (IPv6 form; IPv4 as ::ffff:a.b.c.d) and
 * `srcPorts[i]`. All four are reused: valid only during that call.
 * Addresses given to `send`/`sendBatch` use the same 16-byte form.
 */
export interface NativeUdpSocket {
  /** 4 for an AF_INET socket, 6 for AF_INET6. */
  readonly family: 4 | 6;
  /** Bound address (getsockname): dotted quad or IPv6 text. */
  readonly address: string;
  /** Bound port (the ephemeral one when bound to port 0). */
  readonly port: number;
  /** Receive buffer size the kernel reports (SO_RCVBUF: twice what was set), bytes. */
  readonly rcvbuf: number;
  /** Send buffer size the kernel reports (SO_SNDBUF), bytes. */
  readonly sndbuf: number;
  /** Queueing delay of the current batch's first datagram in ms, -1 unknown (UDP_FLAG.queueDelay). */
  readonly rxDelay: Float64Array;
  /** Receive slab: batchSize slots of slotSize bytes, created once. */
  readonly slab: Buffer;
  /** Lengths in bytes of the datagrams of the current batch. */
  readonly lengths: Uint32Array;
  /** Source addresses of the current batch, 16 bytes per datagram. */
  readonly srcAddrs: Uint8Array;
  /** Source ports of the current batch (host order). */
  readonly srcPorts: Uint16Array;
  /** Running counters, indexed by {@link COUNTER}; updated by the addon in place. */
  readonly counters: Float64Array;
  /** Stop receiving (uv_poll stop); datagrams wait in the socket's receive buffer. */
  pause(): void;
  /** Start or continue receiving. */
  resume(): void;
  /** Stop receiving and close the socket; idempotent. */
  close(): void;
  /** Send one datagram to addr[0, 16):port; false when refused (EAGAIN). Other errors throw. */
  send(buf: Uint8Array, offset: number, length: number, addr: Uint8Array, port: number): boolean;
  /**
   * Send `count` datagrams (datagram i = buf[offsets[i], offsets[i] + lengths[i])) with sendmmsg,
   * all to addrs[0, 16):ports when `ports` is a number, else datagram i to addrs[16i, 16i + 16):ports[i].
   * Returns how many were sent, in order, stopping at the first EAGAIN. Other errors throw, with `.sent`.
   */
  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number,
    addrs: Uint8Array, ports: number | Uint16Array): number;
}

/** Constructor of {@link NativeUdpSocket}; throws errno errors (see udp.cc). */
export type NativeUdpSocketConstructor = new (
  address: string,
  port: number,
  v6Only: boolean,
  batchSize: number,
  slotSize: number,
  rcvbuf: number,
  sndbuf: number,
  flags: number,
  onBatch: (count: number) => void,
  onError: (err: Error) => void,
) => NativeUdpSocket;

/** Bits of the `flags` argument of {@link NativePacketSocketConstructor} (kept in sync with packet.cc). */
export const PACKET_FLAG = {
  /** Put the interface in promiscuous mode while the socket is open (PACKET_MR_PROMISC). */
  promisc: 1,
} as const;

/**
 * An AF_PACKET socket on one interface (src/native/packet.cc). Starts paused;
 * `resume()` starts receiving, which calls `onBatch(count)` once per batch with
 * frame i in `slab` at i × slotSize (length `lengths[i]`) WITHOUT its outer
 * VLAN tag, and that tag in `tags[i]` as (tpid << 16) | tci, 0 when the frame
 * was untagged. All three are reused: valid only during that call.
 */
export interface NativePacketSocket {
  /** Interface name. */
  readonly name: string;
  /** Its ifindex. */
  readonly ifindex: number;
  /** Receive slab: batchSize slots of slotSize bytes, created once. */
  readonly slab: Buffer;
  /** Lengths in bytes of the frames of the current batch. */
  readonly lengths: Uint32Array;
  /** Outer tag of each frame of the current batch: (tpid << 16) | tci, 0 = untagged. */
  readonly tags: Uint32Array;
  /** Running counters, indexed by {@link COUNTER}; updated by the addon in place. */
  readonly counters: Float64Array;
  pause(): void;
  resume(): void;
  close(): void;
  /** Send one frame, with `tag` ((tpid << 16) | tci) inserted unless 0; false when refused (EAGAIN/ENOBUFS). */
  send(buf: Uint8Array, offset: number, length: number, tag: number): boolean;
  /**
   * Send `count` frames (frame i = buf[offsets[i], offsets[i] + lengths[i])) with sendmmsg, each with
   * `tags` (one number for all, or tags[i]) inserted unless 0. Returns how many were sent, in order,
   * stopping at the first EAGAIN/ENOBUFS. Other errors throw, with `.sent`.
   */
  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, tags: number | Uint32Array): number;
}

/** Constructor of {@link NativePacketSocket}; throws errno errors (see packet.cc). */
export type NativePacketSocketConstructor = new (
  ifname: string,
  batchSize: number,
  slotSize: number,
  rcvbuf: number,
  flags: number,
  filter: Uint8Array | null,
  onBatch: (count: number) => void,
  onError: (err: Error) => void,
) => NativePacketSocket;

/** The raw exports of the addon. Extended by each native source file. */
export interface NativeBinding {
  /** Switch the calling thread into the netns at `path`; returns an fd of the previous one. */
  enterNetns(path: string): number;
  /**
   * Seals WireGuard transport messages in place (ChaCha20-Poly1305 via the
   * OpenSSL Node links; src/native/aead.cc): message i at `offsets[i]`, its
   * payload of `lengths[i]` bytes at +16; writes the header (type 4,
   * `receiver`, counter counterLo/Hi + i), pads to 16 (at most
   * max(payload, padLimit)), encrypts, appends the tag and sets `lengths[i]`
   * to the message length. Returns how many were sealed.
   */
  sealBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, key: Uint8Array,
    receiver: number, counterLo: number, counterHi: number, padLimit: number): number;
  /**
   * Opens whole transport messages in place: the plaintext lands at +16 and
   * `lengths[i]` becomes its length, or 0xffffffff when the tag does not
   * verify (the message's bytes are then garbage). Returns how many verified.
   */
  openBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, key: Uint8Array): number;
  /** Create the named netns /run/netns/NAME (as `ip netns add`); EEXIST when taken. */
  createNetns(name: string): void;
  /** Delete the named netns (as `ip netns del`); false when there was none. */
  deleteNetns(name: string): boolean;
  /** Switch back to the netns `fd` refers to, and close `fd`. */
  leaveNetns(fd: number): void;
  /** Open a TAP/TUN queue (tuntap.cc). */
  TunTap: NativeTunTapConstructor;
  /** Open a batched UDP socket (udp.cc). */
  UdpSocket: NativeUdpSocketConstructor;
  /** Open an AF_PACKET socket on an interface (packet.cc). */
  PacketSocket: NativePacketSocketConstructor;
  /**
   * Turn GRO and LRO off on an interface (packet.cc); each field says whether
   * that feature is off now (false: the device has no such switch).
   */
  disableReceiveOffloads(ifname: string): { gro: boolean; lro: boolean };
  /** Limits the addon enforces on TunTap's geometry (UdpSocket's too). */
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
