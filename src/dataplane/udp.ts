/**
 * The UDP seam of the tunnel: a socket that receives and sends datagrams in
 * batches. The real implementation is the native addon (src/native/udp.cc,
 * recvmmsg/sendmmsg); `fake-udp.ts` has an in-memory network with the same
 * contract for tests of the tunnel engine.
 *
 * Receive path, per event-loop wake-up:
 *   1. the socket is readable (uv_poll, in the addon);
 *   2. recvmmsg() fills the socket's slab (datagram i in slot i) and writes
 *      each source into the shared source arrays, until EAGAIN or the slab is
 *      full (no JS);
 *   3. one call into JS: the handler gets the reusable {@link UdpBatch};
 *   4. repeat up to MAX_BATCHES_PER_WAKEUP times, then yield to the loop.
 * Order is the kernel's queue order. The slab, lengths and source arrays are
 * owned by the socket and overwritten by the next batch.
 *
 * Send path: `sendBatch` hands the caller's datagrams to sendmmsg() (up to
 * 1024 per call) and returns how many the kernel took, in order; what it
 * refused (EAGAIN: send buffer full) is the caller's to retry or drop.
 * Destinations are a {@link SockAddr} (one peer: the common case) or a
 * {@link UdpDestinations} (one per datagram), both preallocated by the caller,
 * so a batch allocates nothing in JavaScript.
 *
 * Addresses travel in one 16-byte form everywhere (sources, destinations,
 * {@link SockAddr}): the IPv6 address, an IPv4 address as ::ffff:a.b.c.d
 * (IPv4-mapped) whatever the socket's family; ports in host order in a
 * Uint16Array. An IPv4-mapped address always means IPv4: its text form is the
 * dotted quad, also on a dual-stack socket. The scope id of link-local IPv6
 * addresses is not carried (such addresses are refused).
 *
 * To open a socket in another network namespace, open it inside
 * `withNetns(name, () => openUdp(...))` (src/netconfig/netns.ts).
 */
import { UDP_FLAG, native, type NativeUdpSocket } from '../native/index.js';
import { BatchReader } from './batch-reader.js';
import type { ErrorCode } from '../shared/error-codes.js';
import { SystemError, ValidationError, isNativeErrnoError } from '../shared/errors.js';
import {
  MAX_BATCH_SIZE,
  MAX_SLOT_SIZE,
  MIN_SLOT_SIZE,
  SlabBatch,
  type DeviceState,
  type PacketBatch,
} from './packet-device.js';
import { parseAddress, type Endpoint } from './wg/endpoint.js';

export type { Endpoint } from './wg/endpoint.js';

/** Bytes of one address in the 16-byte form (sources, destinations, {@link SockAddr}). */
export const ADDR_BYTES = 16;
/** Default datagrams per batch. */
export const DEFAULT_UDP_BATCH_SIZE = 64;
/** Default bytes per slot: a datagram that fills a 1500-byte MTU, rounded up to a power of two. */
export const DEFAULT_UDP_SLOT_SIZE = 2048;
/** Default socket buffer sizes asked for, in bytes (the kernel reports twice that). */
export const DEFAULT_UDP_BUFFER = 4 * 1024 * 1024;
/** Largest socket buffer size accepted, in bytes. */
export const MAX_UDP_BUFFER = 0x3fffffff;
/** Smallest batchSize with `gro` on: one coalesced message can carry this many datagrams. */
export const GRO_MIN_BATCH_SIZE = 128;
/** Longest UDP payload over IPv4 and over IPv6, in bytes. */
export const MAX_UDP_PAYLOAD = { 4: 65507, 6: 65527 } as const;

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] as const;

/** True when the 16 bytes at `a[o]` are an IPv4-mapped address (::ffff:a.b.c.d). */
export function isV4MappedAt(a: Uint8Array, o: number): boolean {
  for (let i = 0; i < 12; i++) if (a[o + i] !== V4_MAPPED_PREFIX[i]) return false;
  return true;
}

/**
 * Text of the 16-byte address at `a[o]`: the dotted quad for an IPv4-mapped
 * address, RFC 5952 IPv6 text otherwise (lower case, the longest run of two
 * or more zero groups as `::`, the first on a tie).
 */
export function addressText(a: Uint8Array, o = 0): string {
  if (isV4MappedAt(a, o)) return `${a[o + 12]!}.${a[o + 13]!}.${a[o + 14]!}.${a[o + 15]!}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((a[o + 2 * i]! << 8) | a[o + 2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * Write the 16-byte form of `text` at `out[o]`; returns 4 or 6 (the family),
 * or 0 when `text` is not an IPv4/IPv6 address (host names and `%zone`
 * suffixes are refused).
 */
export function writeAddress(text: string, out: Uint8Array, o = 0): 0 | 4 | 6 {
  if (text.includes('%')) return 0;
  const b = parseAddress(text);
  if (!b) return 0;
  if (b.length === 4) {
    out.set(V4_MAPPED_PREFIX, o);
    out.set(b, o + 12);
    return 4;
  }
  out.set(b, o);
  return 6;
}

/** `a.b.c.d:port` or `[v6]:port`. */
export function endpointText(ep: Endpoint): string {
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ValidationError(`${what}: port must be an integer from 0 to 65535, got ${port}`);
  }
}

/** FNV-1a over 4 address words (native byte order) and the port, folded; unsigned 32 bits. */
function hashWords(w: Uint32Array, o: number, port: number): number {
  let h = 0x811c9dc5;
  h = Math.imul(h ^ w[o]!, 0x01000193);
  h = Math.imul(h ^ w[o + 1]!, 0x01000193);
  h = Math.imul(h ^ w[o + 2]!, 0x01000193);
  h = Math.imul(h ^ w[o + 3]!, 0x01000193);
  h = Math.imul(h ^ port, 0x01000193);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A socket address the caller owns and reuses: the 16-byte form plus a
 * port. The hot path compares and copies these without allocating; `address`
 * and `toEndpoint()` make text (they allocate: for code off the hot path).
 * Not an {@link Endpoint} to keep: it is mutable.
 */
export class SockAddr {
  /** The address, 16-byte form. */
  readonly bytes = new Uint8Array(ADDR_BYTES);
  /** Port, host order. */
  port = 0;
  private readonly words = new Uint32Array(this.bytes.buffer, 0, 4);

  /** A new SockAddr for `ep`; ValidationError when the address is not an IPv4/IPv6 literal or the port is out of range. */
  static from(ep: Endpoint): SockAddr {
    return new SockAddr().set(ep);
  }

  /** Set from an endpoint (parses the text: off the hot path). */
  set(ep: Endpoint): this {
    checkPort(ep.port, `address ${ep.address}`);
    if (writeAddress(ep.address, this.bytes) === 0) {
      throw new ValidationError(`${JSON.stringify(ep.address)} is not an IPv4 or IPv6 address (no host names, no %zone)`);
    }
    this.port = ep.port;
    return this;
  }

  /** Copy entry `i` of a pair of address/port arrays (a batch's sources, a {@link UdpDestinations}). */
  setFrom(addrs: Uint8Array, ports: Uint16Array, i: number): this {
    const o = i * ADDR_BYTES;
    for (let k = 0; k < ADDR_BYTES; k++) this.bytes[k] = addrs[o + k]!;
    this.port = ports[i]!;
    return this;
  }

  /** Copy another SockAddr. */
  copy(other: SockAddr): this {
    this.words.set(other.words);
    this.port = other.port;
    return this;
  }

  equals(other: SockAddr): boolean {
    const a = this.words;
    const b = other.words;
    return this.port === other.port && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
  }

  /** A 32-bit hash of address and port: the same as {@link UdpBatch.sourceHash} of an equal source. */
  hash(): number {
    return hashWords(this.words, 0, this.port);
  }

  /** True for an IPv4 address (stored IPv4-mapped). */
  get isV4(): boolean {
    return isV4MappedAt(this.bytes, 0);
  }

  /** Address text (allocates). */
  get address(): string {
    return addressText(this.bytes, 0);
  }

  /** A new, immutable endpoint (allocates). */
  toEndpoint(): Endpoint {
    return { address: this.address, port: this.port };
  }

  toString(): string {
    return endpointText(this.toEndpoint());
  }
}

/**
 * Per-datagram destinations for `sendBatch`, preallocated by the caller:
 * entry i is `addrs[16i, 16i + 16)` : `ports[i]`, the same layout as a
 * batch's sources (so replies can be addressed by copying).
 */
export class UdpDestinations {
  readonly addrs: Uint8Array;
  readonly ports: Uint16Array;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.addrs = new Uint8Array(capacity * ADDR_BYTES);
    this.ports = new Uint16Array(capacity);
  }

  /** Destination of datagram i. */
  set(i: number, addr: SockAddr): void {
    this.addrs.set(addr.bytes, i * ADDR_BYTES);
    this.ports[i] = addr.port;
  }

  /** Destination of datagram i = the source of datagram j of `batch` (a reply). */
  setFromSource(i: number, batch: UdpBatch, j: number): void {
    const src = batch.sourceAddrs;
    const o = i * ADDR_BYTES;
    const s = j * ADDR_BYTES;
    for (let k = 0; k < ADDR_BYTES; k++) this.addrs[o + k] = src[s + k]!;
    this.ports[i] = batch.sourcePorts[j]!;
  }

  /** True when entry i equals `addr`. */
  equals(i: number, addr: SockAddr): boolean {
    if (this.ports[i] !== addr.port) return false;
    const o = i * ADDR_BYTES;
    const b = addr.bytes;
    for (let k = ADDR_BYTES - 1; k >= 0; k--) if (this.addrs[o + k] !== b[k]) return false;
    return true;
  }
}

/** A batch of received datagrams, viewed in place in the socket's slab. `frame(i)` is datagram i. */
export interface UdpBatch extends PacketBatch {
  /** Sources of the batch, 16 bytes per datagram (entries `[0, count)`). Reused: valid during the call only. */
  readonly sourceAddrs: Uint8Array;
  /** Source ports, host order. */
  readonly sourcePorts: Uint16Array;
  /** Source port of datagram i. */
  sourcePort(i: number): number;
  /** True when datagram i came from an IPv4 address. */
  sourceIsV4(i: number): boolean;
  /** True when datagram i came from `addr` (no allocation). */
  sourceEquals(i: number, addr: SockAddr): boolean;
  /**
   * A 32-bit hash of datagram i's source (address and port), equal to
   * `SockAddr.hash()` of the same source: a key for lookup tables, to be
   * confirmed with `sourceEquals` (different sources may share a hash).
   */
  sourceHash(i: number): number;
  /** Copy the source of datagram i into `out` (no allocation); returns `out`. */
  sourceInto(i: number, out: SockAddr): SockAddr;
  /** Source of datagram i as a new endpoint (allocates: for code off the hot path). */
  source(i: number): Endpoint;
}

/** Receives each batch; must not keep `batch` or views of it after returning. */
export type UdpBatchHandler = (batch: UdpBatch) => void;

/** Receives the error that stopped receiving (`UDP_READ_FAILED`). */
export type UdpErrorHandler = (err: SystemError) => void;

/** Where a socket is in its life; the same states as a packet device. */
export type UdpSocketState = DeviceState;

/** Running totals since the socket was opened. */
export interface UdpCounters {
  /** Datagrams delivered to the batch handler. */
  readonly rxPackets: number;
  /** Bytes of those datagrams (UDP payload). */
  readonly rxBytes: number;
  /** Batch handler calls. */
  readonly rxBatches: number;
  /** Datagrams received but dropped: longer than a slot, or (fake) beyond its queue. */
  readonly rxDrops: number;
  /** Datagrams the kernel accepted. */
  readonly txPackets: number;
  /** Bytes of those datagrams. */
  readonly txBytes: number;
  /** Datagrams refused with EAGAIN (send buffer full): the caller retried or dropped them. */
  readonly txDrops: number;
}

/**
 * A UDP socket bound to one address and port, receiving and sending in
 * batches.
 *
 * Contracts every implementation keeps:
 * - Batches: one `onBatch` call per batch of up to `batchSize` datagrams, in
 *   arrival order. The {@link UdpBatch} object, its slab, lengths and source
 *   arrays are reused for every batch: valid only during the call.
 * - Receiving runs while a handler is set and the socket is not paused. While
 *   paused, datagrams wait in the socket's receive buffer (`rcvbuf` bytes of
 *   kernel memory, beyond which the kernel drops them: `RcvbufErrors` in
 *   /proc/net/snmp, not in our counters).
 * - Sends return how many datagrams the kernel took, in order; the rest
 *   (EAGAIN) are counted in `txDrops` and are the caller's to retry or drop.
 *   Other failures throw a {@link UdpSendError} whose `sent` says how many
 *   went out first; datagram `sent` is the one that failed.
 * - Fairness: at most MAX_BATCHES_PER_WAKEUP batches back to back before
 *   other event-loop work gets its turn.
 */
export interface UdpBatchSocket {
  /** 4: an IPv4 socket; 6: an IPv6 socket (dual-stack unless `v6Only`). */
  readonly family: 4 | 6;
  /** Bound address and port (the ephemeral port when bound to port 0). */
  readonly local: Endpoint;
  /** Most datagrams per batch. */
  readonly batchSize: number;
  /** Bytes per receive slot: the longest datagram that can be received. */
  readonly slotSize: number;
  /** Receive buffer size the kernel reports, bytes (twice what was asked: socket(7)). */
  readonly rcvbuf: number;
  /** Send buffer size the kernel reports, bytes. */
  readonly sndbuf: number;
  readonly state: UdpSocketState;
  /**
   * With `queueDelay`: how long the current batch's first (oldest) datagram
   * waited in the socket's receive queue, in ms; -1 when unknown.
   */
  queueDelayMs?(): number;
  /** Set the batch handler (replacing any earlier one); starts receiving unless paused. */
  onBatch(handler: UdpBatchHandler): void;
  /** Set the handler for the error that stops receiving; without one it is thrown from the event loop. */
  onError(handler: UdpErrorHandler): void;
  /**
   * Send one datagram `buf[offset, offset + length)` to `dest`; `false` when
   * refused (EAGAIN, counted in txDrops). An {@link Endpoint} is parsed on
   * each call (off the hot path); pass a {@link SockAddr} on the hot path.
   */
  send(buf: Uint8Array, offset: number, length: number, dest: SockAddr | Endpoint): boolean;
  /**
   * Send `count` datagrams in order, datagram i being
   * `buf[offsets[i], offsets[i] + lengths[i])`, all to `dest` (a SockAddr) or
   * datagram i to entry i of `dest` (UdpDestinations). Returns how many were
   * sent; stops at the first refused datagram (the rest are counted in
   * txDrops; retry or drop them). Other failures throw {@link UdpSendError}.
   */
  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: SockAddr | UdpDestinations): number;
  /** Stop receiving (backpressure). Idempotent. */
  pause(): void;
  /** Continue receiving after `pause()`. Idempotent. */
  resume(): void;
  /** Stop receiving and close the socket (the port is free again). Idempotent. */
  close(): void;
  /** A snapshot of the counters. */
  counters(): UdpCounters;
}

/** Options of {@link openUdp}; `address` and `port` are required. */
export interface UdpOptions {
  /**
   * Local address to bind: an IPv4 or IPv6 literal of this host/namespace,
   * `0.0.0.0` (any IPv4) or `::` (any IPv6, and IPv4 too unless `v6Only`).
   * The socket's family follows it.
   */
  address: string;
  /** Local port, 0..65535; 0 picks a free ephemeral port (see `local.port`). */
  port: number;
  /** Datagrams per batch: slots in the receive slab. 1 .. 4096; default {@link DEFAULT_UDP_BATCH_SIZE}. */
  batchSize?: number;
  /**
   * Bytes per receive slot: the longest datagram that can be received;
   * longer ones are dropped and counted in `rxDrops`. 64 .. 65536; default
   * {@link DEFAULT_UDP_SLOT_SIZE}.
   */
  slotSize?: number;
  /**
   * Receive buffer to ask for, in bytes (0: the kernel default). As root
   * SO_RCVBUFFORCE sets it beyond net.core.rmem_max; otherwise the kernel
   * caps it there. Default {@link DEFAULT_UDP_BUFFER}.
   */
  rcvbuf?: number;
  /** Send buffer to ask for, in bytes (0: kernel default; as `rcvbuf`, with wmem_max). Default {@link DEFAULT_UDP_BUFFER}. */
  sndbuf?: number;
  /** IPv6 socket only: refuse IPv4 (IPV6_V6ONLY). Default false (dual-stack). */
  v6Only?: boolean;
  /**
   * Send runs of equal-size datagrams to one destination as one GSO message
   * (UDP_SEGMENT). Default false; see docs/native-addon.md for when it pays.
   */
  gso?: boolean;
  /**
   * Ask the kernel for coalesced datagrams (UDP_GRO) and split them back
   * into slots. Needs batchSize >= {@link GRO_MIN_BATCH_SIZE}. Default false.
   */
  gro?: boolean;
  /**
   * Timestamp received datagrams (SO_TIMESTAMPNS) so that `queueDelayMs()`
   * tells how long each batch's first datagram waited in the socket. Not
   * with `gro`. Default false.
   */
  queueDelay?: boolean;
}

/** Options with defaults filled in. */
export interface ResolvedUdpOptions {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
  readonly batchSize: number;
  readonly slotSize: number;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  readonly v6Only: boolean;
  readonly gso: boolean;
  readonly gro: boolean;
  readonly queueDelay: boolean;
}

/** Fill in defaults and check ranges; throws ValidationError (nothing opened). */
export function resolveUdpOptions(opts: UdpOptions): ResolvedUdpOptions {
  const family = writeAddress(opts.address, new Uint8Array(ADDR_BYTES));
  if (family === 0) {
    throw new ValidationError(`UDP bind address ${JSON.stringify(opts.address)} is not an IPv4 or IPv6 address (no host names, no %zone); use 0.0.0.0 or :: for any`);
  }
  checkPort(opts.port, `UDP bind address ${opts.address}`);
  const batchSize = opts.batchSize ?? DEFAULT_UDP_BATCH_SIZE;
  const slotSize = opts.slotSize ?? DEFAULT_UDP_SLOT_SIZE;
  const rcvbuf = opts.rcvbuf ?? DEFAULT_UDP_BUFFER;
  const sndbuf = opts.sndbuf ?? DEFAULT_UDP_BUFFER;
  const gro = opts.gro ?? false;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ValidationError(`batchSize must be an integer from 1 to ${MAX_BATCH_SIZE} datagrams, got ${batchSize}`);
  }
  if (!Number.isInteger(slotSize) || slotSize < MIN_SLOT_SIZE || slotSize > MAX_SLOT_SIZE) {
    throw new ValidationError(`slotSize must be an integer from ${MIN_SLOT_SIZE} to ${MAX_SLOT_SIZE} bytes, got ${slotSize}`);
  }
  for (const [name, v] of [['rcvbuf', rcvbuf], ['sndbuf', sndbuf]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > MAX_UDP_BUFFER) {
      throw new ValidationError(`${name} must be an integer from 0 to ${MAX_UDP_BUFFER} bytes, got ${v}`);
    }
  }
  if (gro && batchSize < GRO_MIN_BATCH_SIZE) {
    throw new ValidationError(`gro needs batchSize >= ${GRO_MIN_BATCH_SIZE} (one coalesced message can carry that many datagrams), got ${batchSize}`);
  }
  if (opts.v6Only === true && family === 4) {
    throw new ValidationError(`v6Only applies to IPv6 sockets; ${opts.address} is an IPv4 address`);
  }
  return {
    address: opts.address, family, port: opts.port, batchSize, slotSize, rcvbuf, sndbuf,
    v6Only: opts.v6Only ?? false, gso: opts.gso ?? false, gro, queueDelay: (opts.queueDelay ?? false) && !gro,
  };
}

/** A send failed for a reason other than a refusal; `sent` datagrams of the batch went out before it. */
export class UdpSendError extends SystemError {
  /** Datagrams of the batch sent before the failing one (whose index this is). */
  readonly sent: number;

  constructor(code: ErrorCode, errno: string, syscall: string, message: string, sent: number, options?: { cause?: unknown }) {
    super(code, errno, syscall, message, options);
    this.sent = sent;
  }
}

/** Error codes of this module (docs/native-addon.md, docs/errors.md). */
export type UdpErrorCode =
  /** Another socket holds the address and port (EADDRINUSE). */
  | 'UDP_ADDRESS_IN_USE'
  /** The bind address is not on this host/namespace (EADDRNOTAVAIL). */
  | 'UDP_ADDRESS_NOT_AVAILABLE'
  /** A port below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE (EACCES). */
  | 'UDP_NO_PERMISSION'
  /** Opening failed for another reason (see errno). */
  | 'UDP_OPEN_FAILED'
  /** No route to the destination (ENETUNREACH, EHOSTUNREACH, ENETDOWN). */
  | 'UDP_NO_ROUTE'
  /** Sending failed for another reason (see errno). */
  | 'UDP_SEND_FAILED'
  /** Receiving failed; receiving stopped for good. */
  | 'UDP_READ_FAILED'
  /** The socket is closed. */
  | 'UDP_CLOSED';

/** The stable code for an errno error of the addon, by what was being done. */
export function udpErrorCode(op: 'open' | 'read' | 'send', errno: string): UdpErrorCode {
  if (op === 'read') return 'UDP_READ_FAILED';
  if (errno === 'EBADF') return 'UDP_CLOSED';
  if (op === 'send') {
    return errno === 'ENETUNREACH' || errno === 'EHOSTUNREACH' || errno === 'ENETDOWN' ? 'UDP_NO_ROUTE' : 'UDP_SEND_FAILED';
  }
  switch (errno) {
    case 'EADDRINUSE': return 'UDP_ADDRESS_IN_USE';
    case 'EADDRNOTAVAIL': return 'UDP_ADDRESS_NOT_AVAILABLE';
    case 'EACCES':
    case 'EPERM': return 'UDP_NO_PERMISSION';
    default: return 'UDP_OPEN_FAILED';
  }
}

/**
 * Map an error thrown by the addon to a {@link SystemError} (sends: a
 * {@link UdpSendError}), keeping the addon's one-line message. Anything else
 * (a TypeError for a bad argument, ...) is returned unchanged.
 */
export function toUdpError(op: 'open' | 'read' | 'send', e: unknown): unknown {
  if (!isNativeErrnoError(e)) return e;
  const code = udpErrorCode(op, e.code);
  if (op === 'send') {
    const sent = (e as { sent?: unknown }).sent;
    return new UdpSendError(code, e.code, e.syscall, e.message, typeof sent === 'number' ? sent : 0, { cause: e });
  }
  return new SystemError(code, e.code, e.syscall, e.message, { cause: e });
}

/**
 * The reusable batch view over a UDP slab and its source arrays: one per
 * socket, `count` updated before each handler call. Shared by the real socket
 * and the fake.
 */
export class UdpSlabBatch extends SlabBatch implements UdpBatch {
  private readonly srcWords: Uint32Array;

  constructor(buffer: Buffer, slotSize: number, lengths: Uint32Array,
    readonly sourceAddrs: Uint8Array, readonly sourcePorts: Uint16Array) {
    super(buffer, slotSize, lengths);
    if (sourceAddrs.byteOffset % 4 !== 0) throw new RangeError('sourceAddrs must start on a 4-byte boundary');
    this.srcWords = new Uint32Array(sourceAddrs.buffer, sourceAddrs.byteOffset, sourceAddrs.length >>> 2);
  }

  sourceHash(i: number): number {
    return hashWords(this.srcWords, i * 4, this.sourcePorts[i]!);
  }

  sourcePort(i: number): number {
    return this.sourcePorts[i]!;
  }

  sourceIsV4(i: number): boolean {
    return isV4MappedAt(this.sourceAddrs, i * ADDR_BYTES);
  }

  sourceEquals(i: number, addr: SockAddr): boolean {
    if (this.sourcePorts[i] !== addr.port) return false;
    const o = i * ADDR_BYTES;
    const src = this.sourceAddrs;
    const b = addr.bytes;
    for (let k = ADDR_BYTES - 1; k >= 0; k--) if (src[o + k] !== b[k]) return false;
    return true;
  }

  sourceInto(i: number, out: SockAddr): SockAddr {
    return out.setFrom(this.sourceAddrs, this.sourcePorts, i);
  }

  source(i: number): Endpoint {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`source(${i}): the batch has ${this.count} datagrams`);
    return { address: addressText(this.sourceAddrs, i * ADDR_BYTES), port: this.sourcePorts[i]! };
  }
}

/**
 * Interns sources as {@link Endpoint} objects: the same object for the same
 * address and port, found without allocating once known, so code that keeps
 * endpoints (a peer's current endpoint) can take them straight from a batch.
 * Also maps such endpoints back to a {@link SockAddr} for sending, parsing
 * each endpoint object once. Holds at most `maxEntries` sources; past that it
 * starts afresh (so a flood of spoofed sources costs bounded memory; known
 * endpoints are then interned again on their next datagram).
 */
export class EndpointInterner {
  private readonly table = new Map<number, { addr: SockAddr; ep: Endpoint }[]>();
  private readonly addrs = new WeakMap<Endpoint, SockAddr>();
  private entries = 0;

  /** @param maxEntries most sources held, in entries (default 4096). */
  constructor(readonly maxEntries = 4096) {}

  /** Sources held. */
  get size(): number {
    return this.entries;
  }

  /** The interned endpoint of datagram i's source. */
  source(batch: UdpBatch, i: number): Endpoint {
    const h = batch.sourceHash(i);
    const bucket = this.table.get(h);
    if (bucket) {
      for (const e of bucket) if (batch.sourceEquals(i, e.addr)) return e.ep;
    }
    if (this.entries >= this.maxEntries) this.clear();
    const addr = batch.sourceInto(i, new SockAddr());
    const ep: Endpoint = Object.freeze(addr.toEndpoint());
    this.addrs.set(ep, addr);
    const list = this.table.get(h);
    if (list) list.push({ addr, ep });
    else this.table.set(h, [{ addr, ep }]);
    this.entries += 1;
    return ep;
  }

  /**
   * The SockAddr to send to `ep`: cached per endpoint object (interned ones
   * are known already; others are parsed once). Do not modify it.
   */
  sockAddr(ep: Endpoint): SockAddr {
    let a = this.addrs.get(ep);
    if (!a) {
      a = SockAddr.from(ep);
      this.addrs.set(ep, a);
    }
    return a;
  }

  /** Forget every interned source (SockAddrs cached for endpoint objects stay valid). */
  clear(): void {
    this.table.clear();
    this.entries = 0;
  }
}

/**
 * Open a UDP socket bound to `opts.address`:`opts.port` in the current
 * network namespace. Throws ValidationError for bad options (nothing opened)
 * and SystemError `UDP_ADDRESS_IN_USE`, `UDP_ADDRESS_NOT_AVAILABLE`,
 * `UDP_NO_PERMISSION` or `UDP_OPEN_FAILED`, with a one-line message.
 */
export function openUdp(opts: UdpOptions): UdpBatchSocket {
  return new NativeUdp(resolveUdpOptions(opts));
}

/** The real {@link UdpBatchSocket}: a thin typed layer over the addon's UdpSocket. */
class NativeUdp extends BatchReader<UdpSlabBatch> implements UdpBatchSocket {
  readonly family: 4 | 6;
  readonly local: Endpoint;
  readonly batchSize: number;
  readonly slotSize: number;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  private readonly s: NativeUdpSocket;
  private readonly scratch = new SockAddr();

  constructor(o: ResolvedUdpOptions) {
    super();
    const { UdpSocket } = native();
    const flags = (o.gso ? UDP_FLAG.gso : 0) | (o.gro ? UDP_FLAG.gro : 0) | (o.queueDelay ? UDP_FLAG.queueDelay : 0);
    try {
      this.s = new UdpSocket(o.address, o.port, o.v6Only, o.batchSize, o.slotSize, o.rcvbuf, o.sndbuf, flags,
        (count) => { this.deliver(count); }, (err) => { this.failed(err); });
    } catch (e) {
      throw toUdpError('open', e);
    }
    this.family = this.s.family;
    this.local = { address: this.s.address, port: this.s.port };
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.rcvbuf = this.s.rcvbuf;
    this.sndbuf = this.s.sndbuf;
    this.attach(this.s, new UdpSlabBatch(this.s.slab, o.slotSize, this.s.lengths, this.s.srcAddrs, this.s.srcPorts));
  }

  queueDelayMs(): number {
    return this.s.rxDelay[0]!;
  }

  send(buf: Uint8Array, offset: number, length: number, dest: SockAddr | Endpoint): boolean {
    const d = dest instanceof SockAddr ? dest : this.scratch.set(dest);
    try {
      return this.s.send(buf, offset, length, d.bytes, d.port);
    } catch (e) {
      throw toUdpError('send', e);
    }
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: SockAddr | UdpDestinations): number {
    try {
      return dest instanceof SockAddr
        ? this.s.sendBatch(buf, offsets, lengths, count, dest.bytes, dest.port)
        : this.s.sendBatch(buf, offsets, lengths, count, dest.addrs, dest.ports);
    } catch (e) {
      throw toUdpError('send', e);
    }
  }

  counters(): UdpCounters {
    const c = this.nativeCounters();
    return {
      rxPackets: c.rxFrames, rxBytes: c.rxBytes, rxBatches: c.rxBatches, rxDrops: c.rxDrops,
      txPackets: c.txFrames, txBytes: c.txBytes, txDrops: c.txDrops,
    };
  }

  protected readError(err: Error): SystemError {
    const mapped = toUdpError('read', err);
    return mapped instanceof SystemError ? mapped : new SystemError('UDP_READ_FAILED', 'EIO', 'recvmmsg', err.message, { cause: err });
  }

  protected closedError(what: string): SystemError {
    return new SystemError('UDP_CLOSED', 'EBADF', what, `${what}(): UDP socket ${endpointText(this.local)} is closed`);
  }
}
