/**
 * An in-memory UDP network for tests of the tunnel engine: sockets bound to
 * `address:port`, datagrams delivered as batches on the next macrotask, with
 * hooks to drop, duplicate, reorder or watch what crosses.
 */
import type { Endpoint } from '../wg/endpoint.js';
import type { DatagramBatch, TunnelSocket } from './socket.js';

export interface Datagram {
  from: Endpoint;
  to: Endpoint;
  bytes: Uint8Array;
}

const key = (e: Endpoint): string => `${e.address}|${e.port}`;

export class FakeUdpNetwork {
  private readonly sockets = new Map<string, FakeUdpSocket>();
  private readonly queue: Datagram[] = [];
  private scheduled = false;
  /** Every datagram sent, in order (bytes copied). */
  readonly log: Datagram[] = [];
  /** Decides the fate of each datagram: 'deliver' (default), 'drop', or 'duplicate'. */
  fate: (d: Datagram) => 'deliver' | 'drop' | 'duplicate' = () => 'deliver';
  /** Reverse the order of each delivery batch (reordering). */
  reorder = false;

  bind(address: string, port: number): FakeUdpSocket {
    const s = new FakeUdpSocket(this, { address, port });
    if (this.sockets.has(key(s.local))) throw new Error(`fake UDP ${address}:${port} in use`);
    this.sockets.set(key(s.local), s);
    return s;
  }

  /** Unbinds a socket. */
  release(s: FakeUdpSocket): void {
    if (this.sockets.get(key(s.local)) === s) this.sockets.delete(key(s.local));
  }

  /** Injects a datagram as if sent by `from` (a stranger, a replay). */
  inject(from: Endpoint, to: Endpoint, bytes: Uint8Array): void {
    this.transmit({ from, to, bytes: new Uint8Array(bytes) });
  }

  transmit(d: Datagram): void {
    this.log.push(d);
    const f = this.fate(d);
    if (f === 'drop') return;
    this.queue.push(d);
    if (f === 'duplicate') this.queue.push(d);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.deliver(); });
    }
  }

  private deliver(): void {
    this.scheduled = false;
    const all = this.queue.splice(0);
    if (this.reorder) all.reverse();
    const by = new Map<FakeUdpSocket, Datagram[]>();
    for (const d of all) {
      const s = this.sockets.get(key(d.to));
      if (!s) continue;
      let l = by.get(s);
      if (!l) by.set(s, (l = []));
      l.push(d);
    }
    for (const [s, l] of by) s.receive(l);
  }

  /** Resolves once nothing is queued (after the deliveries this triggers, too). */
  async settle(rounds = 50): Promise<void> {
    for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
  }
}

export class FakeUdpSocket implements TunnelSocket {
  private handler: ((b: DatagramBatch) => void) | undefined;
  private readonly interned = new Map<string, Endpoint>();
  closed = false;

  constructor(private readonly net: FakeUdpNetwork, readonly local: Endpoint) {}

  get port(): number {
    return this.local.port;
  }

  onBatch(handler: (b: DatagramBatch) => void): void {
    this.handler = handler;
  }

  send(buf: Uint8Array, offset: number, length: number, dest: Endpoint): boolean {
    if (this.closed) return false;
    this.net.transmit({ from: this.local, to: dest, bytes: new Uint8Array(buf.subarray(offset, offset + length)) });
    return true;
  }

  sendBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dest: Endpoint): number {
    for (let i = 0; i < count; i++) this.send(buf, offsets[i]!, lengths[i]!, dest);
    return this.closed ? 0 : count;
  }

  close(): void {
    this.closed = true;
    this.net.release(this);
  }

  receive(ds: Datagram[]): void {
    if (!this.handler || this.closed) return;
    const offsets: number[] = [];
    let total = 0;
    for (const d of ds) { offsets.push(total); total += d.bytes.length; }
    const buffer = Buffer.alloc(total);
    ds.forEach((d, i) => { buffer.set(d.bytes, offsets[i]); });
    const sources = ds.map((d) => {
      const k = key(d.from);
      let e = this.interned.get(k);
      if (!e) this.interned.set(k, (e = { address: d.from.address, port: d.from.port }));
      return e;
    });
    this.handler({
      buffer,
      count: ds.length,
      offset: (i) => offsets[i]!,
      length: (i) => ds[i]!.bytes.length,
      source: (i) => sources[i]!,
    });
    buffer.fill(0xdd); // views kept past the batch show up as garbage in tests
  }
}
