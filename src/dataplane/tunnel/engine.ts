/**
 * The tunnel engine: segments' local ports (TAPs) and L3 port (TUN) on one
 * side, one UDP socket speaking WireGuard's protocol on the other.
 *
 * Send path (one batch read from a segment's TAP):
 *   1. for each frame: learn the source MAC on the local port; pick the
 *      peer(s): the one the destination MAC was learnt on, or every peer
 *      carrying the segment (broadcast, multicast, unknown unicast);
 *   2. write nea's inner header and the frame (or its fragments, when the
 *      frame does not fit the WAN path) into a slot of the transmit slab, at
 *      the transport header's offset (one copy per frame);
 *   3. encrypt in place (counter assigned in order of the batch);
 *   4. after the batch: send each run of datagrams for one peer with one
 *      batched send, in order.
 *   A frame for a peer without a session is staged (a copy, at most
 *   STAGED_MAX per peer, oldest dropped) and sent once the handshake
 *   completes.
 *
 * Receive path (one batch of datagrams from the UDP socket):
 *   1. transport messages are decrypted in place in the socket's slab
 *      (index → keypair → replay window → AEAD → replay accept);
 *   2. the inner payload is checked: an L2 frame only for a segment this peer
 *      carries (bound to its key), its declared length inside the payload;
 *      fragments go to the peer's reassembler; IP packets (L3 mode) only from
 *      the peer's allowed source addresses;
 *   3. frames are queued per segment as views of the socket's slab (no copy)
 *      and written with one batched write per segment after the batch;
 *   4. handshake messages go to the WireGuard device, whose replies are sent
 *      at once; nothing is ever sent in answer to an unauthenticated packet.
 *
 * Ordering: frames keep their order within a batch and per peer. Buffers:
 * the TAP and UDP slabs belong to their devices and are valid only during
 * the batch; the transmit slab is the engine's and reused after each flush.
 */
import type { PacketBatch, PacketDevice } from '../packet-device.js';
import { NO_SESSION, type Peer } from '../wg/peer.js';
import { Device } from '../wg/device.js';
import type { Keypair } from '../wg/session.js';
import type { Endpoint } from '../wg/endpoint.js';
import { encodeKey } from '../wg/crypto.js';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT } from '../wg/messages.js';
import {
  CAPABILITIES_BYTES, CAP_OFFLOAD, FRAGMENT_HEADER_BYTES, L2_HEADER_BYTES, MAX_FRAME_BYTES, MAX_OFFLOAD_BYTES,
  OFFLOAD_HEADER_BYTES, VNET_HEADER_BYTES, capabilityFlags, fragmentChunk, innerKind, innerSegment, l2FrameLength,
  maxInnerPayload, offloadChunk, readFragmentHeader, readOffloadHeader, writeCapabilities, writeFragmentHeader,
  writeL2Header, writeOffloadHeader, type FragmentHeader,
} from '../../protocol/inner.js';
import { WITH_VNET_HDR } from '../packet-device.js';
import type { Logger } from '../../shared/log.js';
import { NeaError } from '../../shared/errors.js';
import { LOCAL_PORT, MacTable, isGroupMac, macKey, macKeyString, type MacTableOptions } from './mactable.js';
import { Reassembler } from './reassembly.js';
import { CoDel } from './codel.js';
import type { FrameGuard } from './guard.js';
import type { DatagramBatch, TunnelSocket } from './socket.js';
import { parsePrefix, prefixContains, type Prefix } from './prefix.js';

/** Datagrams per transmit flush (slots of the transmit slab). */
export const TX_BATCH = 128;
/** Transport messages opened by one batched AEAD call, at most. */
export const RX_RUN_MAX = 1024;
/** openBatch's mark of a message that did not verify. */
const OPEN_FAILED = 0xffff_ffff;
/** Payloads staged per peer while its handshake runs. */
export const STAGED_MAX = 256;
/** Handshake messages per second above which the device is "under load" (cookies required). */
export const UNDER_LOAD_HANDSHAKES_PER_S = 64;
/** CoDel (RFC 8289) on the UDP socket's receive queue: acceptable standing delay, in ms. */
export const AQM_TARGET_MS = 2;
/** CoDel's interval: how long the delay must stay above target before the first drop, in ms. */
export const AQM_INTERVAL_MS = 100;
/** Interval between flap log lines per segment, in ms. */
const FLAP_LOG_INTERVAL_MS = 10_000;

export interface TunnelPeerConfig {
  /** The peer's static public key (32 bytes). */
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** Where to reach the peer until it is heard from; absent: wait for it to connect. */
  endpoint?: Endpoint;
  /** Segments this peer may send and receive frames of. */
  segments: readonly number[];
  /** Persistent keepalive interval in ms; absent: off. */
  persistentKeepaliveMs?: number;
  /** L3 mode: source prefixes this peer may send IP packets from, and destinations routed to it. */
  allowedIps?: readonly string[];
}

export interface TunnelEngineOptions {
  /** Our static private key (32 bytes). */
  privateKey: Uint8Array;
  socket: TunnelSocket;
  /** Segment id → its local port (a TAP in the segment's bridge). */
  segments: ReadonlyMap<number, PacketDevice>;
  /** L3 port (a TUN) for IP packets, when L3 mode is used. */
  l3?: PacketDevice;
  /** MTU of the WAN path in bytes; default 1500. */
  wanMtu?: number;
  log: Logger;
  /** Monotonic clock in ms; default performance.now. */
  clock?: () => number;
  macTable?: MacTableOptions;
  /** Checked on every frame of every segment, both directions, before learning and forwarding (guard.ts). */
  guard?: FrameGuard;
  /**
   * Use the segments' TAP offloads (devices opened with `offload`): TCP
   * super-frames cross the tunnel whole, as offload frames, to peers that
   * accept them (docs/tunnel.md). Default true; false: never turned on.
   */
  offload?: boolean;
}

export interface PeerCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  handshakes: number;
  /** Drops by reason (segment-not-owned, bad-inner, staged-overflow, ...). */
  drops: Record<string, number>;
}

export interface SegmentCounters {
  /** Frames from the local port sent into the tunnel (counted once per frame). */
  toTunnel: number;
  /** Frames from the tunnel written to the local port. */
  fromTunnel: number;
  drops: Record<string, number>;
}

export interface PeerStatus {
  publicKey: string;
  endpoint: string | null;
  segments: number[];
  /** Milliseconds since the last completed handshake; null when none. */
  lastHandshakeAgoMs: number | null;
  counters: PeerCounters;
}

export interface SegmentStatus {
  id: number;
  macs: number;
  macCounters: MacTable['counters'];
  counters: SegmentCounters;
}

export interface EngineStatus {
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
  segments: SegmentStatus[];
  /** Datagrams dropped before any peer was known (unauthenticated), by reason. */
  unauthenticatedDrops: Record<string, number>;
}

interface PeerState {
  readonly port: number;
  readonly peer: Peer;
  readonly key: string;
  segments: Set<number>;
  allowedIps: Prefix[];
  readonly staged: Uint8Array[];
  nextFrameId: number;
  readonly reassembler: Reassembler;
  readonly counters: PeerCounters;
  /** The peer accepts offload frames (it said so on its current session). */
  offload: boolean;
  /** The sending keypair our capabilities message went out on. */
  announcedOn: Keypair | undefined;
  /** The receiving keypair whose first message set `offload`. */
  decidedOn: Keypair | undefined;
}

interface SegmentState {
  readonly id: number;
  readonly device: PacketDevice;
  readonly macs: MacTable;
  readonly counters: SegmentCounters;
  /** Frames from the current UDP batch waiting for one batched write. */
  readonly wOffsets: Uint32Array;
  readonly wLengths: Uint32Array;
  wCount: number;
  wBuffer: Uint8Array | undefined;
  lastFlapLog: number;
  /** The local port reads and writes virtio headers (its offloads can be turned on). */
  readonly vnet: boolean;
  /** Offloads are on at the local port (every peer of the segment accepts offload frames). */
  offloadOn: boolean;
}

function count(r: Record<string, number>, reason: string): void {
  r[reason] = (r[reason] ?? 0) + 1;
}

export function endpointString(e: Endpoint | undefined): string | null {
  if (!e) return null;
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export class TunnelEngine {
  readonly device: Device;
  private readonly socket: TunnelSocket;
  private readonly log: Logger;
  private readonly guard: FrameGuard | undefined;
  private readonly clock: () => number;
  private readonly wanMtu: number;
  private readonly segments = new Map<number, SegmentState>();
  private readonly l3: PacketDevice | undefined;
  private readonly peers = new Map<Peer, PeerState>();
  private readonly byKey = new Map<string, PeerState>();
  private nextPort = 1;
  private readonly unauthDrops: Record<string, number> = {};

  // Transmit slab: TX_BATCH slots; runs of one peer are sent with one batched send.
  private readonly txSlot: number;
  private readonly tx: Buffer;
  private readonly txOffsets = new Uint32Array(TX_BATCH);
  private readonly txLengths = new Uint32Array(TX_BATCH);
  private readonly txPeers: (PeerState | undefined)[] = new Array<PeerState | undefined>(TX_BATCH);
  private txCount = 0;
  private readonly offload: boolean;
  /** Reused for every offload fragment received. */
  private readonly offloadHeader: FragmentHeader = { segment: 0, last: false, frameId: 0, frameLength: 0, offset: 0, chunkLength: 0 };

  // A run of transport messages of one keypair, opened with one batched AEAD call.
  private readonly rxOffsets = new Uint32Array(RX_RUN_MAX);
  private readonly rxLengths = new Uint32Array(RX_RUN_MAX);
  private readonly rxSources: (Endpoint | undefined)[] = new Array<Endpoint | undefined>(RX_RUN_MAX);
  private rxCount = 0;
  private rxKeypair: Keypair | undefined;
  private rxPeer: Peer | undefined;

  // L3 writes queued during a UDP batch.
  private l3Offsets: Uint32Array;
  private l3Lengths: Uint32Array;
  private l3Count = 0;
  private l3Buffer: Uint8Array | undefined;

  /** Queue management of the UDP socket's receive queue (codel.ts). */
  private readonly aqm = new CoDel(AQM_TARGET_MS, AQM_INTERVAL_MS);

  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private handshakeWindowStart = 0;
  private handshakesInWindow = 0;
  private stopped = false;

  constructor(opts: TunnelEngineOptions) {
    this.socket = opts.socket;
    this.log = opts.log;
    this.guard = opts.guard;
    this.clock = opts.clock ?? (() => performance.now());
    this.wanMtu = opts.wanMtu ?? 1500;
    this.offload = opts.offload ?? true;
    if (!Number.isInteger(this.wanMtu) || this.wanMtu < 576 || this.wanMtu > 65535) {
      throw new NeaError('INVALID_INPUT', `WAN MTU must be an integer from 576 to 65535 bytes, got ${this.wanMtu}`);
    }
    this.device = new Device({ privateKey: opts.privateKey, underLoad: () => this.underLoad() });
    this.txSlot = Math.ceil((maxInnerPayload(this.wanMtu, 4) + 32) / 64) * 64;
    this.tx = Buffer.alloc(this.txSlot * TX_BATCH);
    const rxMax = 4096;
    for (const [id, dev] of opts.segments) {
      this.segments.set(id, {
        id, device: dev, macs: new MacTable(opts.macTable),
        counters: { toTunnel: 0, fromTunnel: 0, drops: {} },
        wOffsets: new Uint32Array(rxMax), wLengths: new Uint32Array(rxMax), wCount: 0, wBuffer: undefined, lastFlapLog: -Infinity,
        vnet: this.offload && dev.vnetHdr === true && dev.setOffload !== undefined, offloadOn: false,
      });
    }
    this.l3 = opts.l3;
    this.l3Offsets = new Uint32Array(rxMax);
    this.l3Lengths = new Uint32Array(rxMax);
  }

  /** Starts reading the socket and the local ports. */
  start(): void {
    this.socket.onBatch((b) => { this.onDatagrams(b); });
    for (const seg of this.segments.values()) seg.device.onBatch((b) => { this.onLocalFrames(seg, b); });
    this.l3?.onBatch((b) => { this.onL3Packets(b); });
    this.armTimer();
  }

  /** Stops timers and closes the socket (the local ports belong to the caller). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const ps of this.peers.values()) ps.peer.close();
    this.socket.close();
  }

  /** Adds a peer (throws LOW_ORDER_KEY, INVALID_KEY, DUPLICATE_PEER) and starts its handshake when it has an endpoint. */
  addPeer(cfg: TunnelPeerConfig): void {
    const peer = this.device.addPeer({
      publicKey: cfg.publicKey,
      ...(cfg.presharedKey && { presharedKey: cfg.presharedKey }),
      ...(cfg.endpoint && { endpoint: cfg.endpoint }),
      ...(cfg.persistentKeepaliveMs !== undefined && { persistentKeepaliveMs: cfg.persistentKeepaliveMs }),
      mtu: maxInnerPayload(this.wanMtu, 4),
    });
    const ps: PeerState = {
      port: this.nextPort++, peer, key: encodeKey(cfg.publicKey),
      segments: new Set(cfg.segments), allowedIps: (cfg.allowedIps ?? []).map(parsePrefix),
      staged: [], nextFrameId: 0, reassembler: new Reassembler(),
      counters: { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, handshakes: 0, drops: {} },
      offload: false, announcedOn: undefined, decidedOn: undefined,
    };
    this.peers.set(peer, ps);
    this.byKey.set(ps.key, ps);
    this.updateOffloads();
    if (cfg.endpoint) peer.requestHandshake();
    this.armTimer();
  }

  /** Removes a peer: its session ends, its MACs are forgotten. */
  removePeer(publicKey: Uint8Array): boolean {
    const ps = this.byKey.get(encodeKey(publicKey));
    if (!ps) return false;
    this.device.removePeer(ps.peer);
    this.peers.delete(ps.peer);
    this.byKey.delete(ps.key);
    for (const seg of this.segments.values()) seg.macs.forgetPort(ps.port);
    this.updateOffloads();
    return true;
  }

  // --- offloads ---------------------------------------------------------------

  /** Whether `ps` may be sent offload frames by us: every segment it carries has a local port with offloads. */
  private acceptsOffload(ps: PeerState): boolean {
    if (!this.offload || ps.segments.size === 0) return false;
    for (const id of ps.segments) if (this.segments.get(id)?.vnet !== true) return false;
    return true;
  }

  /**
   * Sends our capabilities once per sending keypair, as its first message
   * after the handshake's own keepalive (peers with segments only: a stock
   * WireGuard peer would not know the message).
   */
  private announce(ps: PeerState, now: number): void {
    if (ps.segments.size === 0) return;
    const kp = ps.peer.keypairs.current;
    if (kp === undefined || kp === ps.announcedOn || !kp.canSend(now)) return;
    ps.announcedOn = kp;
    const slot = this.reserve();
    writeCapabilities(this.tx, slot + 16, this.acceptsOffload(ps) ? CAP_OFFLOAD : 0);
    this.queue(ps, slot, CAPABILITIES_BYTES);
  }

  private setPeerOffload(ps: PeerState, on: boolean): void {
    if (ps.offload === on) return;
    ps.offload = on;
    this.log.info(on ? 'peer accepts offload frames' : 'peer does not accept offload frames', { peer: ps.key.slice(0, 8) });
    this.updateOffloads();
  }

  /** Offloads on at a segment's local port exactly when it has peers and every one of them accepts offload frames. */
  private updateOffloads(): void {
    for (const seg of this.segments.values()) {
      if (!seg.vnet) continue;
      let want = false;
      for (const ps of this.peers.values()) {
        if (!ps.segments.has(seg.id)) continue;
        want = ps.offload;
        if (!want) break;
      }
      if (want === seg.offloadOn) continue;
      try {
        seg.device.setOffload!(want);
        seg.offloadOn = want;
      } catch (e) {
        this.log.warn('cannot change the offloads of a segment\'s port', { segment: seg.id, error: (e as Error).message });
      }
    }
  }

  status(): EngineStatus {
    const now = this.clock();
    return {
      publicKey: encodeKey(this.device.publicKey),
      listenPort: this.socket.port,
      peers: [...this.peers.values()].map((ps) => ({
        publicKey: ps.key,
        endpoint: endpointString(ps.peer.endpoint),
        segments: [...ps.segments].sort((a, b) => a - b),
        lastHandshakeAgoMs: ps.peer.lastHandshakeAt === undefined ? null : Math.round(now - ps.peer.lastHandshakeAt),
        counters: { ...ps.counters, drops: { ...ps.counters.drops } },
      })),
      segments: [...this.segments.values()].map((s) => ({
        id: s.id, macs: s.macs.size, macCounters: { ...s.macs.counters }, counters: { ...s.counters, drops: { ...s.counters.drops } },
      })),
      unauthenticatedDrops: { ...this.unauthDrops },
    };
  }

  // --- send path ------------------------------------------------------------

  private onLocalFrames(seg: SegmentState, b: PacketBatch): void {
    const now = this.clock();
    const buf = b.buffer;
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.lengths[i]!;
      if (len < 14) { count(seg.counters.drops, 'runt'); continue; }
      if (this.guard !== undefined) {
        const why = this.guard.check(seg.id, 'local', buf, off, len);
        if (why !== undefined) { count(seg.counters.drops, why); continue; }
      }
      if (!isGroupMac(buf, off + 6)) seg.macs.learn(macKey(buf, off + 6), LOCAL_PORT, now);
      // A GSO super-frame (offloads on): its virtio header, right before it, says so.
      const gso = seg.vnet && buf[off - VNET_HEADER_BYTES + 1] !== 0;
      let sent = false;
      if (!isGroupMac(buf, off)) {
        const port = seg.macs.lookup(macKey(buf, off), now);
        if (port === LOCAL_PORT) { count(seg.counters.drops, 'local-destination'); continue; }
        if (port !== undefined) {
          for (const ps of this.peers.values()) {
            if (ps.port === port) { this.sendFrame(ps, seg.id, buf, off, len, gso); sent = true; break; }
          }
        }
      }
      if (!sent) {
        for (const ps of this.peers.values()) {
          if (ps.segments.has(seg.id)) { this.sendFrame(ps, seg.id, buf, off, len, gso); sent = true; }
        }
      }
      if (sent) seg.counters.toTunnel++;
      else count(seg.counters.drops, 'no-peer');
    }
    this.flushTx();
    this.armTimer();
  }

  private onL3Packets(b: PacketBatch): void {
    const buf = b.buffer;
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.lengths[i]!;
      const ps = this.routeL3(buf, off, len);
      if (!ps) continue;
      if (len > maxInnerPayload(this.wanMtu, 4)) { count(ps.counters.drops, 'l3-too-big'); continue; }
      const slot = this.reserve();
      buf.copy(this.tx, slot + 16, off, off + len);
      this.queue(ps, slot, len);
    }
    this.flushTx();
    this.armTimer();
  }

  /** Longest-prefix match of the destination address over the peers' allowed IPs. */
  private routeL3(buf: Uint8Array, off: number, len: number): PeerState | undefined {
    const v = buf[off]! >>> 4;
    if ((v === 4 && len < 20) || (v === 6 && len < 40) || (v !== 4 && v !== 6)) return undefined;
    const dst = v === 4 ? buf.subarray(off + 16, off + 20) : buf.subarray(off + 24, off + 40);
    let best: PeerState | undefined;
    let bestLen = -1;
    for (const ps of this.peers.values()) {
      for (const p of ps.allowedIps) {
        if (p.bits > bestLen && prefixContains(p, dst)) { best = ps; bestLen = p.bits; }
      }
    }
    return best;
  }

  private sendFrame(ps: PeerState, segment: number, buf: Buffer, off: number, len: number, gso = false): void {
    const v6 = ps.peer.endpoint?.address.includes(':') === true;
    if (gso) {
      // Offloads are on only while every peer of the segment accepts offload
      // frames; a super-frame read just before they went off is dropped.
      if (!ps.offload) { count(ps.counters.drops, 'offload-not-accepted'); return; }
      this.sendOffloadFrame(ps, segment, buf, off - VNET_HEADER_BYTES, len + VNET_HEADER_BYTES, v6);
      return;
    }
    if (len > MAX_FRAME_BYTES) { count(ps.counters.drops, 'frame-too-big'); return; }
    const whole = maxInnerPayload(this.wanMtu, v6 ? 6 : 4) - L2_HEADER_BYTES;
    if (len <= whole) {
      const slot = this.reserve();
      writeL2Header(this.tx, slot + 16, segment, len);
      buf.copy(this.tx, slot + 16 + L2_HEADER_BYTES, off, off + len);
      this.queue(ps, slot, L2_HEADER_BYTES + len);
      return;
    }
    const chunk = fragmentChunk(this.wanMtu, v6 ? 6 : 4);
    const frameId = ps.nextFrameId;
    ps.nextFrameId = (ps.nextFrameId + 1) & 0xffff;
    for (let o = 0; o < len; o += chunk) {
      const n = Math.min(chunk, len - o);
      const slot = this.reserve();
      writeFragmentHeader(this.tx, slot + 16, { segment, last: o + n === len, frameId, frameLength: len, offset: o, chunkLength: n });
      buf.copy(this.tx, slot + 16 + FRAGMENT_HEADER_BYTES, off + o, off + o + n);
      this.queue(ps, slot, FRAGMENT_HEADER_BYTES + n);
    }
  }

  /** An offload frame (virtio header + frame at buf[off, off+len)) as offload fragments. */
  private sendOffloadFrame(ps: PeerState, segment: number, buf: Buffer, off: number, len: number, v6: boolean): void {
    if (len > MAX_OFFLOAD_BYTES) { count(ps.counters.drops, 'frame-too-big'); return; }
    const chunk = offloadChunk(this.wanMtu, v6 ? 6 : 4);
    const frameId = ps.nextFrameId;
    ps.nextFrameId = (ps.nextFrameId + 1) & 0xffff;
    for (let o = 0; o < len; o += chunk) {
      const n = Math.min(chunk, len - o);
      const slot = this.reserve();
      writeOffloadHeader(this.tx, slot + 16, segment, frameId, len, o, n);
      buf.copy(this.tx, slot + 16 + OFFLOAD_HEADER_BYTES, off + o, off + o + n);
      this.queue(ps, slot, OFFLOAD_HEADER_BYTES + n);
    }
  }

  /** A free transmit slot's offset; flushes first when the slab is full. */
  private reserve(): number {
    if (this.txCount === TX_BATCH) this.flushTx();
    return this.txCount * this.txSlot;
  }

  /** Queues the payload at tx[slot+16, +len) for `ps`; it is sealed and sent by {@link flushTx}. */
  private queue(ps: PeerState, slot: number, len: number): void {
    const i = this.txCount++;
    this.txOffsets[i] = slot;
    this.txLengths[i] = len;
    this.txPeers[i] = ps;
  }

  /** Keeps a copy of a payload that found no session, for when the handshake completes. */
  private stage(ps: PeerState, slot: number, len: number): void {
    if (ps.staged.length >= STAGED_MAX) {
      ps.staged.shift();
      count(ps.counters.drops, 'staged-overflow');
    }
    ps.staged.push(new Uint8Array(this.tx.subarray(slot + 16, slot + 16 + len))); // a copy (Buffer#slice would be a view)
  }

  /**
   * Seals and sends the queued payloads: per run of one peer, one batched
   * seal (counters in order) and one batched send. Without a session the
   * run is staged.
   */
  private flushTx(): void {
    if (this.txCount === 0) return;
    const now = this.clock();
    let s = 0;
    while (s < this.txCount) {
      const ps = this.txPeers[s]!;
      let e = s + 1;
      while (e < this.txCount && this.txPeers[e] === ps) e++;
      const offsets = this.txOffsets.subarray(s, e);
      const lengths = this.txLengths.subarray(s, e);
      const sealed = ps.peer.sealBatch(this.tx, offsets, lengths, e - s, now);
      const n = sealed === NO_SESSION ? 0 : sealed;
      for (let i = s + n; i < e; i++) this.stage(ps, this.txOffsets[i]!, this.txLengths[i]!);
      const dest = ps.peer.endpoint;
      if (n > 0 && !dest) {
        for (let i = 0; i < n; i++) count(ps.counters.drops, 'no-endpoint');
      } else if (n > 0 && dest) {
        const sent = this.socket.sendBatch(this.tx, offsets, lengths, n, dest);
        for (let i = s; i < s + sent; i++) { ps.counters.txPackets++; ps.counters.txBytes += this.txLengths[i]!; }
        for (let i = sent; i < n; i++) count(ps.counters.drops, 'send-refused');
      }
      s = e;
    }
    for (let i = 0; i < this.txCount; i++) this.txPeers[i] = undefined;
    this.txCount = 0;
  }

  /** Sends what was staged while the handshake ran, once the peer can send. */
  private flushStaged(ps: PeerState, now: number): void {
    const kp = ps.peer.keypairs.current;
    if (ps.staged.length === 0 || !kp?.canSend(now)) return;
    const staged = ps.staged.splice(0);
    for (const p of staged) {
      const slot = this.reserve();
      this.tx.set(p, slot + 16);
      this.queue(ps, slot, p.length);
    }
    this.flushTx();
  }

  // --- receive path ---------------------------------------------------------

  private onDatagrams(b: DatagramBatch): void {
    const now = this.clock();
    const buf = b.buffer;
    // A standing queue (CoDel): drop this batch's first transport message, unopened.
    let drop = b.queueDelayMs !== undefined && this.aqm.drop(b.queueDelayMs(), now);
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.length(i);
      const type = len > 0 ? buf[off]! : -1;
      if (type === MESSAGE_TRANSPORT && drop) { drop = false; count(this.unauthDrops, 'queue-delay'); continue; }
      if (type === MESSAGE_TRANSPORT) {
        const route = this.device.routeTransport(buf, off, len, now);
        if (typeof route === 'string') { count(this.unauthDrops, route); continue; }
        if (route.keypair !== this.rxKeypair || this.rxCount === this.rxOffsets.length) this.flushRx(buf, now);
        this.rxKeypair = route.keypair;
        this.rxPeer = route.peer;
        this.rxOffsets[this.rxCount] = off;
        this.rxLengths[this.rxCount] = len;
        this.rxSources[this.rxCount] = b.source(i);
        this.rxCount++;
      } else if (type === MESSAGE_INITIATION || type === MESSAGE_RESPONSE || type === MESSAGE_COOKIE_REPLY) {
        this.flushRx(buf, now);
        this.onHandshake(buf.subarray(off, off + len), b.source(i), now);
      } else {
        count(this.unauthDrops, 'unknown-type');
      }
    }
    this.flushRx(buf, now);
    this.flushLocal();
    for (const ps of this.peers.values()) if (ps.staged.length > 0) this.flushStaged(ps, now);
    this.flushTx();
    this.armTimer();
  }

  /** Opens the run of transport messages of one keypair (one batched AEAD call) and delivers what verified. */
  private flushRx(buf: Buffer, now: number): void {
    const n = this.rxCount;
    if (n === 0) return;
    this.rxCount = 0;
    const kp = this.rxKeypair!;
    const peer = this.rxPeer!;
    this.rxKeypair = undefined;
    this.rxPeer = undefined;
    kp.openBatch(buf, this.rxOffsets, this.rxLengths, n);
    const ps = this.peers.get(peer);
    for (let i = 0; i < n; i++) {
      const off = this.rxOffsets[i]!;
      const plain = this.rxLengths[i]!;
      const src = this.rxSources[i]!;
      this.rxSources[i] = undefined;
      if (plain === OPEN_FAILED) { count(this.unauthDrops, 'auth-failed'); continue; }
      if (!this.device.transportOpened(peer, kp, buf, off, plain, src, now)) { count(this.unauthDrops, 'replay'); continue; }
      if (!ps) continue;
      ps.counters.rxPackets++;
      ps.counters.rxBytes += plain + 32;
      if (ps.announcedOn !== ps.peer.keypairs.current) this.announce(ps, now);
      if (kp !== ps.decidedOn && plain > 0) {
        // The peer's first message on a session says what it accepts: its
        // capabilities (handled below), or anything else from a peer without them.
        ps.decidedOn = kp;
        if (innerKind(buf, off + 16, plain) !== 'capabilities') this.setPeerOffload(ps, false);
      }
      this.onInner(ps, buf, off + 16, plain, now);
    }
  }

  private onHandshake(pkt: Uint8Array, src: Endpoint, now: number): void {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakesInWindow = 0;
    }
    this.handshakesInWindow++;
    const res = this.device.handleHandshakePacket(pkt, src, now);
    const ev = res.event;
    if (ev.type === 'dropped') {
      count(this.unauthDrops, ev.reason);
      return;
    }
    if (res.reply) this.socket.send(res.reply, 0, res.reply.length, src);
    if (ev.type === 'initiation-accepted' || ev.type === 'handshake-complete') {
      const ps = this.peers.get(ev.peer);
      if (ps) {
        ps.counters.handshakes++;
        this.log.debug('handshake', { peer: ps.key.slice(0, 8), event: ev.type, endpoint: endpointString(src) ?? '' });
        if (ev.type === 'handshake-complete') {
          this.announce(ps, now);
          this.flushStaged(ps, now);
        }
      }
    }
  }

  private onInner(ps: PeerState, buf: Buffer, off: number, len: number, now: number): void {
    switch (innerKind(buf, off, len)) {
      case 'keepalive':
        return;
      case 'l2': {
        const seg = this.segmentFor(ps, innerSegment(buf, off));
        if (!seg) return;
        const n = l2FrameLength(buf, off, len);
        if (n < 0) { count(ps.counters.drops, 'bad-inner'); return; }
        this.deliverFrame(ps, seg, buf, off + L2_HEADER_BYTES, n, now);
        return;
      }
      case 'l2-fragment': {
        const h = readFragmentHeader(buf, off, len);
        if (!h) { count(ps.counters.drops, 'bad-inner'); return; }
        const seg = this.segmentFor(ps, h.segment);
        if (!seg) return;
        const frame = ps.reassembler.add(h, buf, off + FRAGMENT_HEADER_BYTES, now);
        if (frame) this.deliverReassembled(ps, seg, frame, 0, now);
        return;
      }
      case 'l2-offload': {
        const h = this.offloadHeader;
        if (!readOffloadHeader(buf, off, len, h)) { count(ps.counters.drops, 'bad-inner'); return; }
        const seg = this.segmentFor(ps, h.segment);
        if (!seg) return;
        const frame = ps.reassembler.add(h, buf, off + OFFLOAD_HEADER_BYTES, now, MAX_OFFLOAD_BYTES);
        if (frame) this.deliverReassembled(ps, seg, frame, VNET_HEADER_BYTES, now);
        return;
      }
      case 'capabilities':
        this.setPeerOffload(ps, (capabilityFlags(buf, off) & CAP_OFFLOAD) !== 0 && ps.segments.size > 0);
        return;
      case 'ip':
        this.deliverIp(ps, buf, off, len);
        return;
      case 'bad':
        count(ps.counters.drops, 'bad-inner');
        return;
    }
  }

  /** The segment of an incoming frame, if this peer carries it (frames are bound to the peer's key). */
  private segmentFor(ps: PeerState, id: number): SegmentState | undefined {
    const seg = ps.segments.has(id) ? this.segments.get(id) : undefined;
    if (!seg) count(ps.counters.drops, 'segment-not-owned');
    return seg;
  }

  /**
   * A reassembled frame (after `header` bytes of virtio header): written at
   * once, after what the segment has queued (order kept), so that its
   * buffer goes back to the reassembler's pool.
   */
  private deliverReassembled(ps: PeerState, seg: SegmentState, frame: Uint8Array, header: number, now: number): void {
    this.deliverFrame(ps, seg, frame, header, frame.length - header, now, header > 0);
    this.flushSegment(seg);
    ps.reassembler.release(frame);
  }

  /** `withHeader`: the frame's virtio header is the 10 bytes before it (an offload frame). */
  private deliverFrame(ps: PeerState, seg: SegmentState, buf: Uint8Array, off: number, len: number, now: number,
    withHeader = false): void {
    if (withHeader && !seg.vnet) { count(seg.counters.drops, 'offload-not-supported'); return; }
    if (len < 14) { count(ps.counters.drops, 'bad-inner'); return; }
    if (this.guard !== undefined) {
      const why = this.guard.check(seg.id, 'tunnel', buf, off, len);
      if (why !== undefined) { count(seg.counters.drops, why); return; }
    }
    if (!isGroupMac(buf, off + 6)) {
      const mac = macKey(buf, off + 6);
      if (seg.macs.learn(mac, ps.port, now) === 'flap' && now - seg.lastFlapLog >= FLAP_LOG_INTERVAL_MS) {
        seg.lastFlapLog = now;
        this.log.warn('MAC flapping between the local side and the tunnel (loop or duplicate MAC?)',
          { segment: seg.id, mac: macKeyString(mac), peer: ps.key.slice(0, 8), flaps: seg.macs.counters.flaps });
      }
    }
    seg.counters.fromTunnel++;
    if (seg.wBuffer !== undefined && seg.wBuffer !== buf) this.flushSegment(seg);
    if (seg.wCount === seg.wOffsets.length) this.flushSegment(seg);
    seg.wBuffer = buf;
    seg.wOffsets[seg.wCount] = withHeader ? off - VNET_HEADER_BYTES : off;
    seg.wLengths[seg.wCount] = withHeader ? len + VNET_HEADER_BYTES + WITH_VNET_HDR : len;
    seg.wCount++;
  }

  private deliverIp(ps: PeerState, buf: Buffer, off: number, len: number): void {
    if (!this.l3) { count(ps.counters.drops, 'no-l3'); return; }
    const v = buf[off]! >>> 4;
    const hdr = v === 4 ? 20 : 40;
    if (len < hdr) { count(ps.counters.drops, 'bad-inner'); return; }
    const total = v === 4 ? (buf[off + 2]! << 8) | buf[off + 3]! : 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
    if (total > len || total < hdr) { count(ps.counters.drops, 'bad-inner'); return; }
    const src = v === 4 ? buf.subarray(off + 12, off + 16) : buf.subarray(off + 8, off + 24);
    if (!ps.allowedIps.some((p) => prefixContains(p, src))) { count(ps.counters.drops, 'source-not-allowed'); return; }
    if (this.l3Buffer !== undefined && this.l3Buffer !== buf) this.flushL3();
    if (this.l3Count === this.l3Offsets.length) this.flushL3();
    this.l3Buffer = buf;
    this.l3Offsets[this.l3Count] = off;
    this.l3Lengths[this.l3Count] = total;
    this.l3Count++;
  }

  private flushLocal(): void {
    for (const seg of this.segments.values()) this.flushSegment(seg);
    this.flushL3();
  }

  private flushSegment(seg: SegmentState): void {
    if (seg.wCount === 0 || !seg.wBuffer) return;
    const n = seg.device.writeBatch(seg.wBuffer, seg.wOffsets, seg.wLengths, seg.wCount);
    for (let i = n; i < seg.wCount; i++) count(seg.counters.drops, 'local-write-refused');
    seg.wCount = 0;
    seg.wBuffer = undefined;
  }

  private flushL3(): void {
    if (this.l3Count === 0 || !this.l3Buffer || !this.l3) return;
    this.l3.writeBatch(this.l3Buffer, this.l3Offsets, this.l3Lengths, this.l3Count);
    this.l3Count = 0;
    this.l3Buffer = undefined;
  }

  // --- timers -----------------------------------------------------------------

  private underLoad(): boolean {
    return this.handshakesInWindow > UNDER_LOAD_HANDSHAKES_PER_S && this.clock() - this.handshakeWindowStart < 1000;
  }

  /** Schedules the next timer run at the device's earliest deadline. */
  private armTimer(): void {
    if (this.stopped) return;
    const at = this.device.nextTimerAt();
    if (!Number.isFinite(at) && at > 0) return;
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => { this.onTimer(); }, Math.max(0, Math.ceil(at - this.clock())));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const now = this.clock();
    for (const o of this.device.poll(now)) {
      const ps = this.peers.get(o.peer);
      if (!ps) continue;
      if (o.type === 'packet') {
        const dest = o.peer.endpoint;
        if (dest) this.socket.send(o.packet, 0, o.packet.length, dest);
      } else if (o.type === 'gave-up') {
        for (let i = 0; i < ps.staged.length; i++) count(ps.counters.drops, 'handshake-gave-up');
        ps.staged.length = 0;
        this.log.warn('handshake attempts exhausted; will retry when traffic needs the peer', { peer: ps.key.slice(0, 8) });
      } else {
        this.log.info('session keys erased after inactivity', { peer: ps.key.slice(0, 8) });
      }
    }
    this.armTimer();
  }
}
