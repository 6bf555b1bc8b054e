/**
 * The batched UDP socket of the native addon on a real kernel.
 *
 *   ns "a"                                        ns "b"
 *   va 10.7.0.1/24  fd07::1/64  ════ veth ════  vb 10.7.0.2/24  fd07::2/64
 *                                                  10.7.0.3/24 (a second address)
 *   vq 10.8.0.1/24 (tbf 1 Mbit/s, ════ veth ════  vr 10.8.0.2/24
 *      for the full-send-buffer test)
 *
 * Senders live in a, receivers in b (one process; each socket is opened inside
 * its namespace with withNetns). Python's socket module is the independent
 * oracle for what goes on the wire. No route leaves 10.7.0.0/24 and fd07::/64,
 * so 192.0.2.1 is unreachable from both.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../src/native/index.js';
import { withNetns } from '../src/netconfig/netns.js';
import {
  SockAddr,
  UdpDestinations,
  openUdp,
  toUdpError,
  type UdpBatch,
  type UdpBatchSocket,
  type UdpOptions,
} from '../src/dataplane/udp.js';
import { packFrames } from '../src/dataplane/packet-device.js';
import type { SystemError } from '../src/shared/errors.js';
import { Topology, waitFor, type Netns } from './harness.js';

/** Datagram i of a run: 4-byte run tag, 4-byte index, then filler up to `size`. */
function datagram(tag: number, i: number, size: number): Buffer {
  const b = Buffer.alloc(Math.max(8, size), i & 0xff);
  b.writeUInt32BE(tag, 0);
  b.writeUInt32BE(i, 4);
  return b;
}

/** Counts datagrams of one tag, checking their content and source as they arrive. */
class Tally {
  readonly seen: Uint8Array;
  received = 0;
  duplicates = 0;
  corrupt = 0;
  outOfOrder = 0;
  largest = 0;
  batches = 0;
  private last = -1;
  readonly sources = new Set<string>();

  constructor(readonly tag: number, readonly total: number, readonly sizeOf: (i: number) => number = () => 64) {
    this.seen = new Uint8Array(total);
  }

  readonly handler = (b: UdpBatch): void => {
    this.batches++;
    this.largest = Math.max(this.largest, b.count);
    for (let i = 0; i < b.count; i++) {
      const off = b.offset(i);
      const len = b.lengths[i]!;
      if (len < 8 || b.buffer.readUInt32BE(off) !== this.tag) continue;
      const n = b.buffer.readUInt32BE(off + 4);
      if (n >= this.total || len !== Math.max(8, this.sizeOf(n)) || (len > 8 && b.buffer[off + len - 1] !== (n & 0xff))) {
        this.corrupt++;
        continue;
      }
      if (this.seen[n] === 1) { this.duplicates++; continue; }
      this.seen[n] = 1;
      if (n < this.last) this.outOfOrder++;
      this.last = n;
      this.received++;
      const s = b.source(i);
      this.sources.add(`${s.address}:${s.port}`);
    }
  };
}

/** Send `total` datagrams from `tx` to `dest` with sendBatch, `chunk` at a time, yielding between chunks. */
async function blast(tx: UdpBatchSocket, tag: number, total: number, dest: SockAddr | ((i: number) => SockAddr),
  sizeOf: (i: number) => number = () => 64, chunk = 512): Promise<number> {
  let sent = 0;
  const dests = new UdpDestinations(chunk);
  while (sent < total) {
    const n = Math.min(chunk, total - sent);
    const p = packFrames(Array.from({ length: n }, (_, k) => datagram(tag, sent + k, sizeOf(sent + k))));
    let d: SockAddr | UdpDestinations;
    if (dest instanceof SockAddr) d = dest;
    else {
      for (let k = 0; k < n; k++) dests.set(k, dest(sent + k));
      d = dests;
    }
    const took = tx.sendBatch(p.buffer, p.offsets, p.lengths, n, d);
    expect(took).toBe(n);
    sent += took;
    await new Promise((r) => setImmediate(r)); // the receivers drain between chunks
  }
  return sent;
}

async function idle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('batched UDP socket on a real kernel', () => {
  const topo = new Topology('udp');
  const opened: UdpBatchSocket[] = [];
  let a: Netns;
  let b: Netns;

  function openIn(ns: Netns, opts: UdpOptions): UdpBatchSocket {
    const s = withNetns(ns.name, () => openUdp(opts));
    opened.push(s);
    return s;
  }

  function openError(ns: Netns, opts: UdpOptions): SystemError {
    try {
      openIn(ns, opts);
    } catch (e) {
      return e as SystemError;
    }
    throw new Error('expected the open to fail');
  }

  beforeAll(async () => {
    a = await topo.netns('a');
    b = await topo.netns('b');
    await topo.veth(a, 'va', b, 'vb');
    await a.ip('addr', 'add', '10.7.0.1/24', 'dev', 'va');
    await a.ip('-6', 'addr', 'add', 'fd07::1/64', 'dev', 'va', 'nodad');
    await b.ip('addr', 'add', '10.7.0.2/24', 'dev', 'vb');
    await b.ip('addr', 'add', '10.7.0.3/24', 'dev', 'vb');
    await b.ip('-6', 'addr', 'add', 'fd07::2/64', 'dev', 'vb', 'nodad');
  });

  afterAll(async () => {
    for (const s of opened) s.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('binds an ephemeral port the kernel lists, with buffers beyond rmem_max (root: SO_RCVBUFFORCE)', async () => {
    const s = openIn(b, { address: '10.7.0.2', port: 0, rcvbuf: 16 << 20, sndbuf: 8 << 20 });
    expect(s.family).toBe(4);
    expect(s.local.address).toBe('10.7.0.2');
    expect(s.local.port).toBeGreaterThan(1023);
    const ss = await b.exec('ss', ['-uln', '-H']);
    expect(ss.stdout).toContain(`10.7.0.2:${s.local.port}`);
    expect(s.rcvbuf).toBe(32 << 20); // the kernel doubles what it is given (socket(7))
    expect(s.sndbuf).toBe(16 << 20);
    s.close();
    await waitFor('the port released', async () => !(await b.exec('ss', ['-uln', '-H'])).stdout.includes(`:${s.local.port} `));
  });

  it('10,000 IPv4 datagrams sent with sendBatch to one peer arrive complete, in batches, from the sender', async () => {
    const total = 10_000;
    const tx = openIn(a, { address: '10.7.0.1', port: 0 });
    const rx = openIn(b, { address: '10.7.0.2', port: 0, batchSize: 64, rcvbuf: 32 << 20 });
    const t = new Tally(1, total);
    rx.onBatch(t.handler);
    await blast(tx, 1, total, SockAddr.from(rx.local));
    await waitFor(`${total} datagrams`, () => t.received >= total, { timeoutMs: 20_000 });
    expect(t).toMatchObject({ received: total, duplicates: 0, corrupt: 0 });
    expect([...t.sources]).toEqual([`10.7.0.1:${tx.local.port}`]);
    expect(t.batches).toBeLessThan(total);
    expect(t.largest).toBeLessThanOrEqual(64);
    expect(tx.counters()).toMatchObject({ txPackets: total, txBytes: total * 64, txDrops: 0 });
    expect(rx.counters()).toMatchObject({ rxPackets: total, rxBytes: total * 64, rxDrops: 0 });
    console.log(`IPv4 burst: ${total} datagrams in ${t.batches} batches (largest ${t.largest}), ${t.outOfOrder} out of order`);
  });

  it('IPv6: 2,000 datagrams arrive with IPv6 sources', async () => {
    const total = 2000;
    const tx = openIn(a, { address: 'fd07::1', port: 0 });
    const rx = openIn(b, { address: 'fd07::2', port: 0 });
    expect(rx.family).toBe(6);
    const t = new Tally(2, total, (i) => 100 + (i % 1300));
    rx.onBatch(t.handler);
    await blast(tx, 2, total, SockAddr.from({ address: 'fd07::2', port: rx.local.port }), (i) => 100 + (i % 1300));
    await waitFor(`${total} datagrams`, () => t.received >= total);
    expect(t).toMatchObject({ received: total, duplicates: 0, corrupt: 0 });
    expect([...t.sources]).toEqual([`fd07::1:${tx.local.port}`]);
  });

  it('a dual-stack socket on :: receives IPv4 (sources as dotted quads) and IPv6, and sends to both', async () => {
    const dual = openIn(b, { address: '::', port: 0 });
    const v4 = openIn(a, { address: '0.0.0.0', port: 0 });
    const v6 = openIn(a, { address: '::', port: 0, v6Only: true });
    const got: string[] = [];
    dual.onBatch((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const s = batch.source(i);
        got.push(`${batch.frame(i).toString()} ${s.address}:${s.port} v4=${batch.sourceIsV4(i)}`);
      }
    });
    v4.send(Buffer.from('four'), 0, 4, { address: '10.7.0.2', port: dual.local.port });
    v6.send(Buffer.from('six'), 0, 3, { address: 'fd07::2', port: dual.local.port });
    await waitFor('both datagrams', () => got.length === 2);
    expect(got.sort()).toEqual([`four 10.7.0.1:${v4.local.port} v4=true`, `six fd07::1:${v6.local.port} v4=false`]);

    const back: string[] = [];
    v4.onBatch((batch) => back.push(batch.frame(0).toString()));
    v6.onBatch((batch) => back.push(batch.frame(0).toString()));
    expect(dual.send(Buffer.from('to4'), 0, 3, { address: '10.7.0.1', port: v4.local.port })).toBe(true);
    expect(dual.send(Buffer.from('to6'), 0, 3, { address: 'fd07::1', port: v6.local.port })).toBe(true);
    await waitFor('both replies', () => back.length === 2);
    expect(back.sort()).toEqual(['to4', 'to6']);
    // An IPv6-only socket cannot reach an IPv4 address.
    expect(() => v6.send(Buffer.from('x'), 0, 1, { address: '10.7.0.2', port: dual.local.port }))
      .toThrow(expect.objectContaining({ code: 'UDP_NO_ROUTE', errno: 'ENETUNREACH' }) as Error);
  });

  it('per-datagram destinations: one batch spread over two addresses and ports arrives at each', async () => {
    const total = 3000;
    const tx = openIn(a, { address: '10.7.0.1', port: 0 });
    const r2 = openIn(b, { address: '10.7.0.2', port: 0, rcvbuf: 16 << 20 });
    const r3 = openIn(b, { address: '10.7.0.3', port: 0, rcvbuf: 16 << 20 });
    // Datagram i goes to r2 when i % 3 === 0, else r3: both tallies count only their own indexes.
    const t2 = new Tally(3, total);
    const t3 = new Tally(3, total);
    r2.onBatch(t2.handler);
    r3.onBatch(t3.handler);
    const d2 = SockAddr.from(r2.local);
    const d3 = SockAddr.from(r3.local);
    await blast(tx, 3, total, (i) => (i % 3 === 0 ? d2 : d3));
    await waitFor('all datagrams', () => t2.received + t3.received >= total);
    expect(t2.received).toBe(total / 3);
    expect(t3.received).toBe((total * 2) / 3);
    expect([...t2.seen.keys()].filter((i) => t2.seen[i] === 1).every((i) => i % 3 === 0)).toBe(true);
    expect([...t3.seen.keys()].filter((i) => t3.seen[i] === 1).every((i) => i % 3 !== 0)).toBe(true);
  });

  it('agrees with an independent implementation (Python sockets) in both directions', async () => {
    const rx = openIn(b, { address: '::', port: 0 });
    const got: string[] = [];
    rx.onBatch((batch) => {
      for (let i = 0; i < batch.count; i++) got.push(`${batch.frame(i).toString()}@${batch.source(i).address}:${batch.sourcePort(i)}`);
    });
    const send = `import socket,sys
for fam,src,dst in ((socket.AF_INET,'10.7.0.1','10.7.0.2'),(socket.AF_INET6,'fd07::1','fd07::2')):
    s=socket.socket(fam,socket.SOCK_DGRAM); s.bind((src,0))
    for i in range(3): s.sendto(('py%d' % i).encode(),(dst,int(sys.argv[1])))
    print(s.getsockname()[1])`;
    const r = await a.exec('python3', ['-c', send, String(rx.local.port)]);
    const [p4, p6] = r.stdout.trim().split('\n');
    await waitFor('6 datagrams from Python', () => got.length === 6);
    expect(got.sort()).toEqual([0, 1, 2].map((i) => `py${i}@10.7.0.1:${p4!}`).concat([0, 1, 2].map((i) => `py${i}@fd07::1:${p6!}`)).sort());

    const listen = `import socket,sys
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.bind(('fd07::1',0)); print(s.getsockname()[1], flush=True)
for i in range(int(sys.argv[1])):
    d,a=s.recvfrom(4096); print(d.hex(), a[0], a[1], flush=True)`;
    const py = a.spawn('python3', ['-u', '-c', listen, '4'], 'python-udp');
    const port = Number(await waitFor('python listening', () => /^(\d+)\n/.exec(py.stdout)?.[1]));
    const p = packFrames([Buffer.from('n0'), Buffer.from('n1'), Buffer.alloc(1400, 7), Buffer.alloc(0)]);
    expect(rx.sendBatch(p.buffer, p.offsets, p.lengths, 4, SockAddr.from({ address: 'fd07::1', port }))).toBe(4);
    await waitFor('python got 4', () => py.stdout.trim().split('\n').length === 5);
    const lines = py.stdout.trim().split('\n').slice(1);
    expect(lines.map((l) => l.split(' ')[0])).toEqual([Buffer.from('n0').toString('hex'), Buffer.from('n1').toString('hex'), '07'.repeat(1400), '']);
    expect(new Set(lines.map((l) => l.split(' ').slice(1).join(' ')))).toEqual(new Set([`fd07::2 ${rx.local.port}`]));
    await py.wait();
  });

  it('datagrams longer than a slot are dropped (MSG_TRUNC) and counted; the batch stays dense', async () => {
    const tx = openIn(a, { address: '10.7.0.1', port: 0 });
    const rx = openIn(b, { address: '10.7.0.2', port: 0, slotSize: 128, batchSize: 8 });
    const got: [number, number][] = [];
    rx.onBatch((batch) => {
      for (let i = 0; i < batch.count; i++) got.push([batch.lengths[i]!, batch.buffer.readUInt32BE(batch.offset(i) + 4)]);
    });
    rx.pause(); // all of them wait in the socket, then come in one recvmmsg
    const sizes = [100, 200, 128, 129, 127, 65000, 64, 128];
    const p = packFrames(sizes.map((s, i) => datagram(4, i, s)));
    expect(tx.sendBatch(p.buffer, p.offsets, p.lengths, sizes.length, SockAddr.from(rx.local))).toBe(sizes.length);
    await idle(50);
    rx.resume();
    await waitFor('the datagrams that fit', () => got.length === 5);
    expect(got).toEqual([[100, 0], [128, 2], [127, 4], [64, 6], [128, 7]]);
    expect(rx.counters()).toMatchObject({ rxPackets: 5, rxDrops: 3, rxBatches: 1 });
  });

  it('pause() holds datagrams in the socket; resume() delivers them; pause() inside a handler stops delivery', async () => {
    const tx = openIn(a, { address: '10.7.0.1', port: 0 });
    const rx = openIn(b, { address: '10.7.0.2', port: 0, batchSize: 16 });
    let got = 0;
    let batchesWhilePaused = 0;
    let pauseInHandler = false;
    rx.onBatch((batch) => {
      if (rx.state === 'paused') batchesWhilePaused++;
      got += batch.count;
      if (pauseInHandler) rx.pause();
    });
    rx.pause();
    const to = SockAddr.from(rx.local);
    const p = packFrames(Array.from({ length: 100 }, (_, i) => datagram(5, i, 64)));
    tx.sendBatch(p.buffer, p.offsets, p.lengths, 100, to);
    await idle(100);
    expect(got).toBe(0);
    pauseInHandler = true;
    rx.resume();
    await waitFor('the first batch', () => got > 0);
    await idle(100);
    expect(got).toBe(16);
    expect(rx.state).toBe('paused');
    pauseInHandler = false;
    rx.resume();
    await waitFor('all 100', () => got === 100);
    expect(batchesWhilePaused).toBe(0);
  });

  it('close() inside the batch handler is safe; a closed socket refuses sends; its port is free again', async () => {
    const tx = openIn(a, { address: '10.7.0.1', port: 0 });
    const rx = openIn(b, { address: '10.7.0.2', port: 0, batchSize: 8 });
    let batches = 0;
    rx.onBatch(() => { batches++; rx.close(); });
    const p = packFrames(Array.from({ length: 50 }, (_, i) => datagram(6, i, 64)));
    tx.sendBatch(p.buffer, p.offsets, p.lengths, 50, SockAddr.from(rx.local));
    await waitFor('closed', () => rx.state === 'closed');
    await idle(50);
    expect(batches).toBe(1);
    rx.close();
    expect(() => rx.send(Buffer.from('x'), 0, 1, SockAddr.from(tx.local))).toThrow(expect.objectContaining({ code: 'UDP_CLOSED' }) as Error);
    expect(() => { rx.resume(); }).toThrow(expect.objectContaining({ code: 'UDP_CLOSED' }) as Error);
    const again = openIn(b, { address: '10.7.0.2', port: rx.local.port });
    expect(again.local.port).toBe(rx.local.port);
  });

  it('a full send buffer (EAGAIN): sendBatch returns how many went, the rest count as txDrops; send() says false', async () => {
    // A second link whose qdisc holds datagrams (1 Mbit/s token bucket), so
    // they stay charged to the sender's small send buffer.
    await topo.veth(a, 'vq', b, 'vr');
    await a.ip('addr', 'add', '10.8.0.1/24', 'dev', 'vq');
    await b.ip('addr', 'add', '10.8.0.2/24', 'dev', 'vr');
    await a.exec('tc', ['qdisc', 'add', 'dev', 'vq', 'root', 'tbf', 'rate', '1mbit', 'burst', '1600', 'limit', '1000000']);
    const tx = openIn(a, { address: '10.8.0.1', port: 0, sndbuf: 4096 });
    const rx = openIn(b, { address: '10.8.0.2', port: 0 });
    let got = 0;
    rx.onBatch((batch) => { got += batch.count; });
    const p = packFrames(Array.from({ length: 100 }, (_, i) => datagram(9, i, 1000)));
    const to = SockAddr.from(rx.local);
    const took = tx.sendBatch(p.buffer, p.offsets, p.lengths, 100, to);
    expect(took).toBeGreaterThan(0);
    expect(took).toBeLessThan(100);
    expect(tx.send(p.buffer, 0, 1000, to)).toBe(false);
    expect(tx.counters()).toMatchObject({ txPackets: took, txBytes: took * 1000, txDrops: 100 - took + 1 });
    await waitFor('what the kernel took', () => got === took);
    await a.exec('tc', ['qdisc', 'del', 'dev', 'vq', 'root']);
  });

  it('a worker thread that ends closes the sockets it opened (the port is free again)', async () => {
    const addon = new URL('../build/Release/nea_native.node', import.meta.url).pathname;
    const w = new Worker(`const { parentPort } = require('node:worker_threads');
const a = require(${JSON.stringify(addon)});
const prev = a.enterNetns(${JSON.stringify(`/run/netns/${b.name}`)}); // this worker thread only
const s = new a.UdpSocket('10.7.0.2', 0, false, 8, 2048, 0, 0, 0, () => {}, () => {});
a.leaveNetns(prev);
s.resume();
parentPort.postMessage(s.port);`, { eval: true });
    const port = await new Promise<unknown>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    expect(typeof port).toBe('number');
    expect(openError(b, { address: '10.7.0.2', port: port as number }).code).toBe('UDP_ADDRESS_IN_USE');
    await w.terminate();
    await waitFor('the port free after the worker ended', () => {
      try {
        openIn(b, { address: '10.7.0.2', port: port as number }).close();
        return true;
      } catch {
        return false;
      }
    });
  });

  describe('errors', () => {
    it('the port in use: UDP_ADDRESS_IN_USE, one line naming port and address', () => {
      const first = openIn(b, { address: '10.7.0.2', port: 0 });
      const e = openError(b, { address: '10.7.0.2', port: first.local.port });
      expect(e).toMatchObject({ code: 'UDP_ADDRESS_IN_USE', errno: 'EADDRINUSE', syscall: 'bind' });
      expect(e.message).toMatch(new RegExp(`^UDP port ${first.local.port} on 10\\.7\\.0\\.2 is in use`));
      expect(e.message).not.toContain('\n');
      // A wildcard bind collides with it too (no SO_REUSEADDR).
      expect(openError(b, { address: '0.0.0.0', port: first.local.port }).code).toBe('UDP_ADDRESS_IN_USE');
    });

    it('an address of another namespace: UDP_ADDRESS_NOT_AVAILABLE', () => {
      const e = openError(a, { address: '10.7.0.2', port: 0 });
      expect(e).toMatchObject({ code: 'UDP_ADDRESS_NOT_AVAILABLE', errno: 'EADDRNOTAVAIL' });
      expect(e.message).toMatch(/address 10\.7\.0\.2 is not on this host\/namespace/);
      expect(openError(a, { address: 'fd07::2', port: 0 }).code).toBe('UDP_ADDRESS_NOT_AVAILABLE');
    });

    it('a port below 1024 without root: UDP_NO_PERMISSION, saying what is needed', async () => {
      const addon = new URL('../build/Release/nea_native.node', import.meta.url).pathname;
      const script = `const a = require(${JSON.stringify(addon)});
try { new a.UdpSocket('0.0.0.0', 80, false, 8, 2048, 0, 0, 0, () => {}, () => {}); console.log('{}'); }
catch (e) { console.log(JSON.stringify({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall })); }`;
      const r = await a.exec('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
        process.execPath, '-e', script]);
      const e = toUdpError('open', Object.assign(new Error(), JSON.parse(r.stdout) as Record<string, unknown>));
      expect(e).toMatchObject({ code: 'UDP_NO_PERMISSION', errno: 'EACCES', syscall: 'bind' });
      expect((e as SystemError).message).toMatch(/CAP_NET_BIND_SERVICE/);
    });

    it('no route: UDP_NO_ROUTE with the datagrams sent before it', async () => {
      const tx = openIn(a, { address: '0.0.0.0', port: 0 });
      const rx = openIn(b, { address: '10.7.0.2', port: 0 });
      const got: string[] = [];
      rx.onBatch((batch) => { for (let i = 0; i < batch.count; i++) got.push(batch.frame(i).toString()); });
      const d = new UdpDestinations(3);
      d.set(0, SockAddr.from(rx.local));
      d.set(1, SockAddr.from(rx.local));
      d.set(2, SockAddr.from({ address: '192.0.2.1', port: 9 }));
      const p = packFrames([Buffer.from('r0'), Buffer.from('r1'), Buffer.from('r2')]);
      let err: unknown;
      try { tx.sendBatch(p.buffer, p.offsets, p.lengths, 3, d); } catch (e) { err = e; }
      expect(err).toMatchObject({ name: 'UdpSendError', code: 'UDP_NO_ROUTE', errno: 'ENETUNREACH', sent: 2 });
      expect((err as Error).message).toMatch(/sending datagram 2 .* no route to 192\.0\.2\.1:9 .*ip route get 192\.0\.2\.1/);
      await waitFor('the two sent', () => got.length === 2);
      expect(got).toEqual(['r0', 'r1']);
      expect(tx.counters()).toMatchObject({ txPackets: 2, txDrops: 0 });
    });

    it('a datagram longer than UDP allows: UDP_SEND_FAILED (EMSGSIZE) saying the limit', () => {
      const tx = openIn(a, { address: '10.7.0.1', port: 0 });
      const big = Buffer.alloc(65508);
      let err: unknown;
      try { tx.send(big, 0, big.length, { address: '10.7.0.2', port: 9 }); } catch (e) { err = e; }
      expect(err).toMatchObject({ code: 'UDP_SEND_FAILED', errno: 'EMSGSIZE', sent: 0 });
      expect((err as Error).message).toMatch(/65508 bytes is too long \(UDP carries at most 65507 bytes over IPv4/);
      expect(tx.send(big, 0, 65507, { address: '10.7.0.2', port: 9 })).toBe(true); // fragmented, but legal
    });

    it('an IPv6 destination from an IPv4 socket: EAFNOSUPPORT before any syscall, and the addon checks its arguments', () => {
      const tx = openIn(a, { address: '10.7.0.1', port: 0 });
      expect(() => tx.send(Buffer.from('x'), 0, 1, { address: 'fd07::2', port: 9 }))
        .toThrow(expect.objectContaining({ code: 'UDP_SEND_FAILED', errno: 'EAFNOSUPPORT' }) as Error);
      const { UdpSocket } = native();
      const raw = withNetns(a.name, () => new UdpSocket('10.7.0.1', 0, false, 8, 2048, 0, 0, 0, () => undefined, () => undefined));
      try {
        expect(() => raw.sendBatch(Buffer.alloc(8), new Uint32Array([4]), new Uint32Array([8]), 1, new Uint8Array(16), 9)).toThrow(/beyond the end of buf/);
        expect(() => raw.sendBatch(Buffer.alloc(8), new Uint32Array(2), new Uint32Array(2), 2, new Uint8Array(16), new Uint16Array(1))).toThrow(/ports one entry per datagram/);
        expect(() => raw.send(Buffer.alloc(8), 0, 8, new Uint8Array(4), 9)).toThrow(/addr must hold 16 bytes/);
      } finally {
        raw.close();
      }
    });
  });

  describe('offload (off by default)', () => {
    const sizeOf = (i: number): number => [1200, 1200, 1200, 1200, 700, 64, 64, 1400][i % 8]!;

    it.each([
      ['gso sender, plain receiver', { gso: true }, {}],
      ['gso sender, gro receiver', { gso: true }, { gro: true, batchSize: 256 }],
      ['plain sender, gro receiver', {}, { gro: true, batchSize: 256 }],
    ] as const)('%s: 10,000 datagrams of mixed sizes arrive complete and intact', async (_name, txo, rxo) => {
      const total = 10_000;
      const tx = openIn(a, { address: '10.7.0.1', port: 0, ...txo });
      const rx = openIn(b, { address: '10.7.0.2', port: 0, rcvbuf: 64 << 20, ...rxo });
      const tag = 100 + opened.length;
      const t = new Tally(tag, total, sizeOf);
      rx.onBatch(t.handler);
      await blast(tx, tag, total, SockAddr.from(rx.local), sizeOf);
      await waitFor(`${total} datagrams`, () => t.received >= total, { timeoutMs: 20_000 });
      expect(t).toMatchObject({ received: total, duplicates: 0, corrupt: 0 });
      expect([...t.sources]).toEqual([`10.7.0.1:${tx.local.port}`]);
      expect(rx.counters()).toMatchObject({ rxPackets: total, rxDrops: 0 });
      expect(tx.counters()).toMatchObject({ txPackets: total, txDrops: 0 });
    });

    it('gso with per-datagram destinations: runs split where the destination changes', async () => {
      const total = 2000;
      const tx = openIn(a, { address: '10.7.0.1', port: 0, gso: true });
      const r2 = openIn(b, { address: '10.7.0.2', port: 0 });
      const r3 = openIn(b, { address: '10.7.0.3', port: 0 });
      const t2 = new Tally(7, total, () => 1000);
      const t3 = new Tally(7, total, () => 1000);
      r2.onBatch(t2.handler);
      r3.onBatch(t3.handler);
      const d2 = SockAddr.from(r2.local);
      const d3 = SockAddr.from(r3.local);
      await blast(tx, 7, total, (i) => (Math.floor(i / 10) % 2 === 0 ? d2 : d3), () => 1000);
      await waitFor('all datagrams', () => t2.received + t3.received >= total);
      expect([t2.received, t3.received]).toEqual([total / 2, total / 2]);
      expect(t2.corrupt + t3.corrupt).toBe(0);
    });

    it('gso with a segment beyond the path MTU falls back to plain (fragmented) datagrams', async () => {
      const tx = openIn(a, { address: '10.7.0.1', port: 0, gso: true });
      const rx = openIn(b, { address: '10.7.0.2', port: 0, slotSize: 4096 });
      const t = new Tally(8, 100, () => 3000);
      rx.onBatch(t.handler);
      await blast(tx, 8, 100, SockAddr.from(rx.local), () => 3000);
      await waitFor('100 datagrams', () => t.received >= 100);
      expect(t).toMatchObject({ received: 100, corrupt: 0 });
    });
  });
});
