/**
 * The tunnel's UDP socket: the addon's batched socket (recvmmsg/sendmmsg)
 * behind the engine's {@link TunnelSocket} seam.
 *
 * Sources are interned: the same address and port give the same Endpoint
 * object, found without allocating for IPv4 (a 48-bit key of address and
 * port), so the engine can compare and keep them. Destinations are turned
 * into the addon's SockAddr once per Endpoint object.
 */
import { openUdp, SockAddr, type UdpBatch, type UdpBatchSocket } from '../udp.js';
import type { Endpoint } from '../wg/endpoint.js';
import type { DatagramBatch, TunnelSocket } from './socket.js';

/** Datagrams per receive batch. */
export const TUNNEL_RX_BATCH = 256;
/** Interned sources kept before the cache is cleared (a flood of spoofed sources cannot grow it). */
const MAX_INTERNED = 4096;

export interface TunnelSocketOptions {
  address: string;
  port: number;
  /** MTU of the WAN path in bytes: receive slots hold a datagram of that path. */
  wanMtu: number;
}

class Interned {
  private readonly v4 = new Map<number, Endpoint>();
  private readonly other = new Map<string, Endpoint>();

  get(b: UdpBatch, i: number): Endpoint {
    const o = i * 16;
    const a = b.sourceAddrs;
    const port = b.sourcePorts[i]!;
    if (a[o + 10] === 0xff && a[o + 11] === 0xff && a[o] === 0 && a[o + 1] === 0 && a[o + 2] === 0 && a[o + 3] === 0 &&
      a[o + 4] === 0 && a[o + 5] === 0 && a[o + 6] === 0 && a[o + 7] === 0 && a[o + 8] === 0 && a[o + 9] === 0) {
      const key = ((a[o + 12]! * 0x1000000) + ((a[o + 13]! << 16) | (a[o + 14]! << 8) | a[o + 15]!)) * 65536 + port;
      let e = this.v4.get(key);
      if (!e) {
        if (this.v4.size >= MAX_INTERNED) this.v4.clear();
        e = b.source(i);
        this.v4.set(key, e);
      }
      return e;
    }
    const e = b.source(i);
    const k = `${e.address}|${e.port}`;
    const known = this.other.get(k);
    if (known) return known;
    if (this.other.size >= MAX_INTERNED) this.other.clear();
    this.other.set(k, e);
    return e;
  }
}

class BatchView implements DatagramBatch {
  b!: UdpBatch;
  constructor(private readonly interned: Interned) {}
  get buffer(): Buffer { return this.b.buffer; }
  get count(): number { return this.b.count; }
  offset(i: number): number { return this.b.offset(i); }
  length(i: number): number { return this.b.lengths[i]!; }
  source(i: number): Endpoint { return this.interned.get(this.b, i); }
}

export class UdpTunnelSocket implements TunnelSocket {
  private readonly dests = new WeakMap<Endpoint, SockAddr>();
  private readonly view = new BatchView(new Interned());

  constructor(readonly udp: UdpBatchSocket) {}

  get port(): number {
    return this.udp.local.port;
  }

  onBatch(handler: (b: DatagramBatch) => void): void {
    this.udp.onBatch((b) => {
      this.view.b = b;
      handler(this.view);
    });
  }

  private dest(e: Endpoint): SockAddr {
    let d = this.dests.get(e);
    if (!d) this.dests.set(e, (d = SockAddr.from(e)));
    return d;
  }

  send(buf: Uint8Array, offset: number, length: number, dest: Endpoint): boolean {
    return this.udp.send(buf, offset, length, this.dest(dest));
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: Endpoint): number {
    return this.udp.sendBatch(buf, offsets, lengths, count, this.dest(dest));
  }

  close(): void {
    this.udp.close();
  }
}

/** Opens the tunnel's UDP socket (in the calling thread's network namespace). */
export function openTunnelSocket(opts: TunnelSocketOptions): UdpTunnelSocket {
  const slotSize = Math.max(2048, Math.ceil(opts.wanMtu / 64) * 64);
  return new UdpTunnelSocket(openUdp({ address: opts.address, port: opts.port, batchSize: TUNNEL_RX_BATCH, slotSize }));
}
