/**
 * The tunnel's UDP socket: the addon's batched socket (recvmmsg/sendmmsg,
 * UDP GSO for runs of equal-size datagrams) behind the engine's
 * {@link TunnelSocket} seam.
 *
 * Sources are interned (EndpointInterner): the same address and port give
 * the same Endpoint object without allocating, so the engine can compare and
 * keep them; destinations map back to the addon's SockAddr per object.
 *
 * Failure policy: a send the kernel refuses for a reason other than a full
 * buffer (no route, network down) drops the datagrams, like a lossy path,
 * and is counted; it never throws into the data path.
 */
import { EndpointInterner, openUdp, UdpSendError, type UdpBatch, type UdpBatchSocket } from '../udp.js';
import type { Endpoint } from '../wg/endpoint.js';
import type { DatagramBatch, TunnelSocket } from './socket.js';

/**
 * Datagrams per receive batch. The engine opens a batch, then writes its
 * frames to the TAP: a batch of 256 held a ping 1–2 ms behind its bulk at
 * TCP line rate, 64 keeps the same throughput (docs/performance.md, step 5).
 */
export const TUNNEL_RX_BATCH = 64;
/**
 * Receive buffer of the tunnel socket, in bytes (the kernel accounts twice
 * that): room for bursts while the process waits for a core, yet a bound on
 * the queue a TCP flow inside the tunnel can build (docs/performance.md).
 * The engine's CoDel keeps the standing queue far below it.
 */
export const TUNNEL_RCVBUF = 2 * 1024 * 1024;

export interface TunnelSocketOptions {
  address: string;
  port: number;
  /** MTU of the WAN path in bytes: receive slots hold a datagram of that path. */
  wanMtu: number;
}

class BatchView implements DatagramBatch {
  b!: UdpBatch;
  constructor(private readonly interner: EndpointInterner) {}
  get buffer(): Buffer { return this.b.buffer; }
  get count(): number { return this.b.count; }
  offset(i: number): number { return this.b.offset(i); }
  length(i: number): number { return this.b.lengths[i]!; }
  source(i: number): Endpoint { return this.interner.source(this.b, i); }
  delay: (() => number) | undefined;
  full = Number.POSITIVE_INFINITY;
  /**
   * The wait of the batch's oldest datagram, when the batch filled the slab
   * (datagrams were left in the queue); 0 when the batch drained the queue:
   * then the wait was the process waiting for a core, not a standing queue
   * (CoDel's "no drop while the backlog is under one packet").
   */
  queueDelayMs(): number { return this.b.count < this.full ? 0 : this.delay?.() ?? -1; }
}

export class UdpTunnelSocket implements TunnelSocket {
  private readonly interner = new EndpointInterner();
  private readonly view = new BatchView(this.interner);
  /** Datagrams dropped because a send failed (not a full buffer), by errno. */
  readonly sendErrors: Record<string, number> = {};

  constructor(readonly udp: UdpBatchSocket) {
    if (udp.queueDelayMs) this.view.delay = () => udp.queueDelayMs!();
    this.view.full = udp.batchSize;
  }

  get port(): number {
    return this.udp.local.port;
  }

  onBatch(handler: (b: DatagramBatch) => void): void {
    this.udp.onBatch((b) => {
      this.view.b = b;
      handler(this.view);
    });
  }

  send(buf: Uint8Array, offset: number, length: number, dest: Endpoint): boolean {
    try {
      return this.udp.send(buf, offset, length, this.interner.sockAddr(dest));
    } catch (e) {
      this.failed(e);
      return false;
    }
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: Endpoint): number {
    try {
      return this.udp.sendBatch(buf, offsets, lengths, count, this.interner.sockAddr(dest));
    } catch (e) {
      this.failed(e);
      return e instanceof UdpSendError ? e.sent : 0;
    }
  }

  private failed(e: unknown): void {
    if (!(e instanceof UdpSendError)) throw e;
    this.sendErrors[e.errno] = (this.sendErrors[e.errno] ?? 0) + 1;
  }

  close(): void {
    this.udp.close();
  }
}

/** Opens the tunnel's UDP socket (in the calling thread's network namespace). */
export function openTunnelSocket(opts: TunnelSocketOptions): UdpTunnelSocket {
  const slotSize = Math.max(2048, Math.ceil(opts.wanMtu / 64) * 64);
  return new UdpTunnelSocket(openUdp({ address: opts.address, port: opts.port, batchSize: TUNNEL_RX_BATCH, slotSize, gso: true, queueDelay: true, rcvbuf: TUNNEL_RCVBUF }));
}
