/**
 * An in-memory UDP network for tests: {@link FakeUdpSocket}s bind
 * `address:port` on a {@link FakeUdpNetwork}, and what one sends arrives as
 * batches on the socket bound to the destination, with the real socket's
 * contract (see udp.ts):
 * - datagrams are copied at send time and delivered in order (unless the
 *   network's conditions say otherwise), in batches of up to `batchSize`, at
 *   most MAX_BATCHES_PER_WAKEUP batches per event-loop turn (setImmediate);
 * - the slab, lengths and source arrays are reused and, by default,
 *   overwritten with 0xdd after each handler call, so code that keeps views
 *   of a batch fails its tests;
 * - sources use the 16-byte form; a socket bound to a wildcard address sends
 *   from its `sourceAddress` (default 127.0.0.1 or ::1);
 * - binding follows Linux without SO_REUSEADDR: the same port on the same
 *   address, or on a wildcard that covers it, is UDP_ADDRESS_IN_USE; port 0
 *   picks a free port from 32768..60999; with `addresses` set, binding any
 *   other specific address is UDP_ADDRESS_NOT_AVAILABLE;
 * - sending fails as the kernel does: an IPv6 destination from an IPv4
 *   socket (EAFNOSUPPORT), an IPv4 one from a v6Only socket (UDP_NO_ROUTE,
 *   ENETUNREACH), port 0 (EINVAL), a datagram over 65507/65527 bytes
 *   (EMSGSIZE); a datagram to a port nobody holds is lost silently;
 * - the receive queue holds `queueLength` datagrams; beyond that, and for
 *   datagrams longer than a slot, datagrams are dropped and counted in the
 *   receiver's `rxDrops`;
 * - `setWritable(false)` makes sends refused (EAGAIN), and `failReading()`
 *   stops receiving with an error, to test those paths.
 *
 * Network conditions ({@link FakeUdpConditions}) decide per datagram, at send
 * time, whether it is dropped, duplicated or held back to arrive after the
 * next datagram to the same socket (reordering); {@link randomConditions}
 * makes seeded random ones.
 */
import { SystemError, ValidationError } from '../shared/errors.js';
import { MAX_BATCHES_PER_WAKEUP } from './packet-device.js';
import {
  ADDR_BYTES,
  MAX_UDP_PAYLOAD,
  SockAddr,
  UdpDestinations,
  UdpSendError,
  UdpSlabBatch,
  addressText,
  endpointText,
  isV4MappedAt,
  resolveUdpOptions,
  writeAddress,
  type Endpoint,
  type ResolvedUdpOptions,
  type UdpBatchHandler,
  type UdpBatchSocket,
  type UdpCounters,
  type UdpErrorHandler,
  type UdpOptions,
  type UdpSocketState,
} from './udp.js';

/** One datagram crossing the fake network, as the conditions see it. */
export interface FakeDatagram {
  readonly from: Endpoint;
  readonly to: Endpoint;
  /** A copy of the payload. */
  readonly data: Buffer;
}

/** What happens to datagrams on their way; each hook is asked once per datagram sent. */
export interface FakeUdpConditions {
  /** True: the datagram is lost. */
  drop?(d: FakeDatagram): boolean;
  /** How many extra copies arrive (0: none). */
  duplicate?(d: FakeDatagram): number;
  /** True: held back, it arrives right after the next datagram to the same socket (or on `flush()`). */
  reorder?(d: FakeDatagram): boolean;
}

/** Counts of what crossed the network since it was created. */
export interface FakeUdpNetworkStats {
  /** Datagrams sockets sent (each once, before conditions). */
  sent: number;
  /** Datagrams queued at a receiving socket (duplicates included). */
  delivered: number;
  /** Datagrams the conditions dropped. */
  dropped: number;
  /** Extra copies the conditions made. */
  duplicated: number;
  /** Datagrams the conditions held back. */
  reordered: number;
  /** Datagrams to an address and port no socket holds (lost, as UDP loses them). */
  unreachable: number;
}

/** Options of the network. */
export interface FakeUdpNetworkOptions {
  /**
   * The addresses of "this host": binding another specific address fails
   * with UDP_ADDRESS_NOT_AVAILABLE. Default: every address is local.
   */
  addresses?: readonly string[];
  /** Conditions of the network (see {@link FakeUdpNetwork.conditions}). Default: none (a perfect network). */
  conditions?: FakeUdpConditions;
}

/** Options of one fake socket: those of `openUdp` plus the fake's own. */
export interface FakeUdpOptions extends UdpOptions {
  /** Datagrams the receive queue holds before dropping. Default 4096. */
  queueLength?: number;
  /** Overwrite the slab, lengths and sources with 0xdd after each batch handler call. Default true. */
  poisonSlab?: boolean;
  /** Source address of what a wildcard-bound socket sends. Default 127.0.0.1 (IPv4 destinations) or ::1. */
  sourceAddress?: string;
}

const POISON = 0xdd;
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_LAST = 60999;

interface Queued {
  data: Buffer;
  from: SockAddr;
}

/** The network: a table of bound sockets and the conditions between them. */
export class FakeUdpNetwork {
  /** Conditions applied to each datagram sent from now on; replace freely. */
  conditions: FakeUdpConditions;
  readonly stats: FakeUdpNetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, reordered: 0, unreachable: 0 };
  private readonly sockets = new Set<FakeUdpSocket>();
  private readonly local: Set<string> | undefined;
  private readonly held = new Map<FakeUdpSocket, Queued[]>();
  private nextPort = EPHEMERAL_FIRST;

  constructor(opts: FakeUdpNetworkOptions = {}) {
    this.conditions = opts.conditions ?? {};
    if (opts.addresses) {
      this.local = new Set(opts.addresses.map((a) => {
        const b = new Uint8Array(ADDR_BYTES);
        if (writeAddress(a, b) === 0) throw new ValidationError(`${JSON.stringify(a)} is not an IP address`);
        return addressText(b);
      }));
    }
  }

  /** Open a socket on this network (as `openUdp` opens one on the host). */
  open(opts: FakeUdpOptions): FakeUdpSocket {
    const o = resolveUdpOptions(opts);
    const s = new FakeUdpSocket(this, o, opts);
    this.sockets.add(s);
    return s;
  }

  /** Sockets open on the network. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Deliver every held-back (reordered) datagram now. */
  flush(): void {
    for (const [s, q] of this.held) {
      this.held.delete(s);
      for (const d of q) s.enqueue(d.data, d.from);
    }
  }

  /** Called by FakeUdpSocket: the address and port to bind, or a thrown bind error. */
  claim(s: FakeUdpSocket, o: ResolvedUdpOptions, bytes: Uint8Array): number {
    if (!isWildcard(bytes) && this.local && !this.local.has(addressText(bytes))) {
      throw new SystemError('UDP_ADDRESS_NOT_AVAILABLE', 'EADDRNOTAVAIL', 'bind',
        `cannot bind UDP port ${o.port} on ${o.address}: Cannot assign requested address (EADDRNOTAVAIL); address ${o.address} is not on this host/namespace: add it to an interface or bind ${o.family === 4 ? '0.0.0.0' : '::'}`);
    }
    const taken = (port: number): boolean => {
      for (const other of this.sockets) if (other !== s && other.port === port && overlaps(other, bytes, o)) return true;
      return false;
    };
    if (o.port !== 0) {
      if (taken(o.port)) {
        throw new SystemError('UDP_ADDRESS_IN_USE', 'EADDRINUSE', 'bind',
          `UDP port ${o.port} on ${o.address} is in use: Address already in use (EADDRINUSE); another socket holds it: stop that program, or pick another port (0 picks a free one)`);
      }
      return o.port;
    }
    for (let n = 0; n <= EPHEMERAL_LAST - EPHEMERAL_FIRST; n++) {
      const port = this.nextPort;
      this.nextPort = port === EPHEMERAL_LAST ? EPHEMERAL_FIRST : port + 1;
      if (!taken(port)) return port;
    }
    throw new SystemError('UDP_ADDRESS_IN_USE', 'EADDRINUSE', 'bind', `no free ephemeral UDP port on ${o.address}`);
  }

  /** Called by FakeUdpSocket.close(). */
  release(s: FakeUdpSocket): void {
    this.sockets.delete(s);
    this.held.delete(s);
  }

  /** Called by FakeUdpSocket: one datagram from `from` to `to` (payload copied here). */
  transmit(from: SockAddr, to: SockAddr, payload: Uint8Array): void {
    this.stats.sent += 1;
    const dest = this.lookup(to);
    const data = Buffer.from(payload);
    const c = this.conditions;
    let extra = 0;
    let hold = false;
    if (c.drop || c.duplicate || c.reorder) {
      const d: FakeDatagram = { from: from.toEndpoint(), to: to.toEndpoint(), data };
      if (c.drop?.(d) === true) {
        this.stats.dropped += 1;
        return;
      }
      extra = c.duplicate?.(d) ?? 0;
      hold = c.reorder?.(d) === true;
    }
    if (!dest) {
      this.stats.unreachable += 1;
      return;
    }
    const src = new SockAddr().copy(from);
    if (hold) {
      this.stats.reordered += 1;
      const q = this.held.get(dest);
      if (q) q.push({ data, from: src });
      else this.held.set(dest, [{ data, from: src }]);
    } else {
      dest.enqueue(data, src);
      const q = this.held.get(dest);
      if (q) {
        this.held.delete(dest);
        for (const h of q) dest.enqueue(h.data, h.from);
      }
    }
    for (let k = 0; k < extra; k++) {
      this.stats.duplicated += 1;
      dest.enqueue(data, src);
    }
  }

  /** Called by FakeUdpSocket.enqueue() for each datagram that reached a queue. */
  countDelivered(): void {
    this.stats.delivered += 1;
  }

  /** The socket that receives datagrams to `to`: an exact bind before a wildcard one. */
  private lookup(to: SockAddr): FakeUdpSocket | undefined {
    let wildcard: FakeUdpSocket | undefined;
    const v4 = to.isV4;
    for (const s of this.sockets) {
      if (s.port !== to.port || s.state === 'closed') continue;
      if (v4 ? s.family === 6 && s.v6Only : s.family === 4) continue;
      if (sameAddress(s.bound.bytes, to.bytes)) return s;
      if (isWildcard(s.bound.bytes)) wildcard = s;
    }
    return wildcard;
  }
}

/** 0.0.0.0 (stored as ::ffff:0.0.0.0) or ::. */
function isWildcard(b: Uint8Array): boolean {
  for (let i = 12; i < 16; i++) if (b[i] !== 0) return false;
  if (isV4MappedAt(b, 0)) return true;
  for (let i = 0; i < 12; i++) if (b[i] !== 0) return false;
  return true;
}

function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < ADDR_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Would a bind of (bytes, o) collide with `other` on the same port? Linux rules without SO_REUSEADDR. */
function overlaps(other: FakeUdpSocket, bytes: Uint8Array, o: ResolvedUdpOptions): boolean {
  // Families that can meet: IPv4 binds meet IPv4 binds and dual-stack IPv6 wildcards.
  const v4a = o.family === 4 || (!o.v6Only && isWildcard(bytes));
  const v6a = o.family === 6;
  const v4b = other.family === 4 || (!other.v6Only && isWildcard(other.bound.bytes));
  const v6b = other.family === 6;
  const meet = (v4a && v4b) || (v6a && v6b);
  if (!meet) return false;
  if (isWildcard(bytes) || isWildcard(other.bound.bytes)) return true;
  return sameAddress(bytes, other.bound.bytes);
}

/** One socket of a {@link FakeUdpNetwork}, with the {@link UdpBatchSocket} contract. */
export class FakeUdpSocket implements UdpBatchSocket {
  readonly family: 4 | 6;
  readonly local: Endpoint;
  readonly batchSize: number;
  readonly slotSize: number;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  /** Bound address and port (16-byte form). */
  readonly bound = new SockAddr();
  readonly v6Only: boolean;
  private readonly queueLength: number;
  private readonly poison: boolean;
  private readonly sourceV4 = new SockAddr();
  private readonly sourceV6 = new SockAddr();
  private readonly batch: UdpSlabBatch;
  private readonly queue: Queued[] = [];
  private head = 0;
  private handler: UdpBatchHandler | undefined;
  private errorHandler: UdpErrorHandler | undefined;
  private current: UdpSocketState = 'idle';
  private writable = true;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly scratch = new SockAddr();
  private readonly c = { rxPackets: 0, rxBytes: 0, rxBatches: 0, rxDrops: 0, txPackets: 0, txBytes: 0, txDrops: 0 };

  constructor(private readonly net: FakeUdpNetwork, o: ResolvedUdpOptions, opts: FakeUdpOptions) {
    this.family = o.family;
    this.v6Only = o.v6Only;
    this.batchSize = o.batchSize;
    this.slotSize = o.slotSize;
    this.rcvbuf = o.rcvbuf * 2;
    this.sndbuf = o.sndbuf * 2;
    this.queueLength = opts.queueLength ?? 4096;
    this.poison = opts.poisonSlab ?? true;
    writeAddress(o.address, this.bound.bytes);
    this.bound.port = net.claim(this, o, this.bound.bytes);
    this.local = { address: addressText(this.bound.bytes), port: this.bound.port };
    const wild = isWildcard(this.bound.bytes);
    this.sourceV4.set({ address: wild ? opts.sourceAddress ?? '127.0.0.1' : this.local.address, port: this.bound.port });
    this.sourceV6.set({ address: wild ? opts.sourceAddress ?? '::1' : this.local.address, port: this.bound.port });
    this.batch = new UdpSlabBatch(Buffer.alloc(o.batchSize * o.slotSize), o.slotSize, new Uint32Array(o.batchSize),
      new Uint8Array(o.batchSize * ADDR_BYTES), new Uint16Array(o.batchSize));
  }

  /** Bound port. */
  get port(): number {
    return this.bound.port;
  }

  get state(): UdpSocketState {
    return this.current;
  }

  /** Datagrams waiting in this socket's receive queue. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  onBatch(handler: UdpBatchHandler): void {
    this.assertOpen('onBatch');
    this.handler = handler;
    if (this.current === 'idle') this.current = 'reading';
    this.schedule();
  }

  onError(handler: UdpErrorHandler): void {
    this.errorHandler = handler;
  }

  send(buf: Uint8Array, offset: number, length: number, dest: SockAddr | Endpoint): boolean {
    this.assertOpen('send');
    if (offset + length > buf.length) throw new RangeError('send(): offset + length is beyond the end of buf');
    const d = dest instanceof SockAddr ? dest : this.scratch.set(dest);
    if (!this.writable) {
      this.c.txDrops += 1;
      return false;
    }
    this.transmitOne(buf.subarray(offset, offset + length), d, 0, 'sendto');
    return true;
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: SockAddr | UdpDestinations): number {
    this.assertOpen('sendBatch');
    if (count > offsets.length || count > lengths.length) throw new RangeError('sendBatch(): count is larger than offsets or lengths');
    if (!(dest instanceof SockAddr) && count > dest.capacity) throw new RangeError('sendBatch(): addrs must hold 16 bytes and ports one entry per datagram');
    for (let i = 0; i < count; i++) {
      if (offsets[i]! + lengths[i]! > buf.length) throw new RangeError(`sendBatch(): datagram ${i} is beyond the end of buf`);
    }
    if (!this.writable) {
      this.c.txDrops += count;
      return 0;
    }
    for (let i = 0; i < count; i++) {
      const d = dest instanceof SockAddr ? dest : this.scratch.setFrom(dest.addrs, dest.ports, i);
      this.transmitOne(buf.subarray(offsets[i], offsets[i]! + lengths[i]!), d, i, 'sendmmsg');
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
    if (this.current === 'closed') return;
    this.current = 'closed';
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue.length = 0;
    this.head = 0;
    this.net.release(this);
  }

  counters(): UdpCounters {
    return { ...this.c };
  }

  /** Test hook: `false` makes sends refused (as EAGAIN would), `true` accepts them again. */
  setWritable(writable: boolean): void {
    this.writable = writable;
  }

  /** Test hook: stop receiving with a `UDP_READ_FAILED` error, as a failed recvmmsg() would. */
  failReading(errno = 'ENOMEM'): void {
    if (this.current !== 'reading') return;
    this.current = 'failed';
    const e = new SystemError('UDP_READ_FAILED', errno, 'recvmmsg',
      `receiving on UDP port ${this.port} on ${this.local.address} failed (${errno}); receiving stopped; close and reopen the socket`);
    if (this.errorHandler) this.errorHandler(e);
    else throw e;
  }

  /** Called by the network: queue a datagram (already copied) from `from`. */
  enqueue(data: Buffer, from: SockAddr): void {
    if (this.current === 'closed') return;
    if (this.queued >= this.queueLength || data.length > this.slotSize) {
      this.c.rxDrops += 1;
      return;
    }
    this.net.countDelivered();
    this.queue.push({ data, from });
    this.schedule();
  }

  /** Checks one datagram as the kernel would, then hands it to the network. */
  private transmitOne(payload: Uint8Array, dest: SockAddr, index: number, syscall: string): void {
    const v4 = dest.isV4;
    const fail = (code: 'UDP_SEND_FAILED' | 'UDP_NO_ROUTE', errno: string, why: string): never => {
      throw new UdpSendError(code, errno, syscall,
        `sending datagram ${index} from UDP port ${this.port} on ${this.local.address} failed (${errno}); ${why}`, index);
    };
    if (!v4 && this.family === 4) fail('UDP_SEND_FAILED', 'EAFNOSUPPORT', `cannot send to IPv6 ${dest.toString()} from an IPv4 socket: bind to :: to use both families`);
    if (v4 && this.v6Only) fail('UDP_NO_ROUTE', 'ENETUNREACH', `no route to ${dest.toString()} from an IPv6-only socket`);
    if (dest.port === 0) fail('UDP_SEND_FAILED', 'EINVAL', `the kernel refused the destination ${dest.toString()} (port 0?) or the datagram`);
    const max = MAX_UDP_PAYLOAD[v4 ? 4 : 6];
    if (payload.length > max) fail('UDP_SEND_FAILED', 'EMSGSIZE', `a datagram of ${payload.length} bytes is too long (UDP carries at most 65507 bytes over IPv4, 65527 over IPv6)`);
    this.c.txPackets += 1;
    this.c.txBytes += payload.length;
    this.net.transmit(v4 ? this.sourceV4 : this.sourceV6, dest, payload);
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
      const d = this.queue[this.head++]!;
      batch.buffer.set(d.data, n * this.slotSize);
      batch.lengths[n] = d.data.length;
      batch.sourceAddrs.set(d.from.bytes, n * ADDR_BYTES);
      batch.sourcePorts[n] = d.from.port;
      this.c.rxPackets += 1;
      this.c.rxBytes += d.data.length;
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
        batch.sourceAddrs.fill(POISON);
        batch.sourcePorts.fill(0);
      }
    }
  }

  private assertOpen(what: string): void {
    if (this.current === 'closed') {
      throw new SystemError('UDP_CLOSED', 'EBADF', what, `${what}(): UDP socket ${endpointText(this.local)} is closed`);
    }
  }
}

/** Options of {@link randomConditions}; probabilities are 0..1 per datagram. */
export interface RandomConditionsOptions {
  /** Probability that a datagram is lost. */
  loss?: number;
  /** Probability that a datagram arrives twice. */
  duplicate?: number;
  /** Probability that a datagram is held back behind the next one. */
  reorder?: number;
  /** Seed of the generator (same seed, same decisions). Default 1. */
  seed?: number;
}

/** Seeded random loss, duplication and reordering (xorshift32: reproducible runs). */
export function randomConditions(opts: RandomConditionsOptions): FakeUdpConditions {
  let state = (opts.seed ?? 1) >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x100000000;
  };
  const loss = opts.loss ?? 0;
  const dup = opts.duplicate ?? 0;
  const reorder = opts.reorder ?? 0;
  return {
    drop: () => loss > 0 && next() < loss,
    duplicate: () => (dup > 0 && next() < dup ? 1 : 0),
    reorder: () => reorder > 0 && next() < reorder,
  };
}
