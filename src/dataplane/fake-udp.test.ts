import { afterEach, describe, expect, it } from 'vitest';
import { SystemError } from '../shared/errors.js';
import { FakeUdpNetwork, randomConditions, type FakeUdpSocket } from './fake-udp.js';
import { MAX_BATCHES_PER_WAKEUP, packFrames } from './packet-device.js';
import { SockAddr, UdpDestinations, UdpSendError, type UdpBatch } from './udp.js';

/** Let pending setImmediate deliveries run. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Collects copies of every datagram a socket delivers, with sources and batch sizes. */
class Collector {
  readonly datagrams: { text: string; from: string }[] = [];
  readonly batchSizes: number[] = [];
  readonly handler = (b: UdpBatch): void => {
    this.batchSizes.push(b.count);
    for (let i = 0; i < b.count; i++) {
      const s = b.source(i);
      this.datagrams.push({ text: b.frame(i).toString('latin1'), from: `${s.address}:${s.port}` });
    }
  };

  texts(): string[] {
    return this.datagrams.map((d) => d.text);
  }
}

const pack = (texts: readonly string[]): ReturnType<typeof packFrames> => packFrames(texts.map((t) => Buffer.from(t, 'latin1')));

describe('FakeUdpNetwork', () => {
  let net: FakeUdpNetwork;
  const open: FakeUdpSocket[] = [];
  const sock = (o: Parameters<FakeUdpNetwork['open']>[0]): FakeUdpSocket => {
    const s = net.open(o);
    open.push(s);
    return s;
  };

  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  describe('binding', () => {
    it('binds address:port, picks ephemeral ports and frees a port on close', () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 51820 });
      expect(a.local).toEqual({ address: '10.0.0.1', port: 51820 });
      expect(a.family).toBe(4);
      const e = sock({ address: '10.0.0.1', port: 0 });
      expect(e.local.port).toBeGreaterThanOrEqual(32768);
      expect(e.local.port).toBeLessThanOrEqual(60999);
      a.close();
      expect(sock({ address: '10.0.0.1', port: 51820 }).local.port).toBe(51820);
    });

    it.each([
      [{ address: '10.0.0.1', port: 5000 }, { address: '10.0.0.1', port: 5000 }, true],
      [{ address: '10.0.0.1', port: 5000 }, { address: '10.0.0.2', port: 5000 }, false],
      [{ address: '0.0.0.0', port: 5000 }, { address: '10.0.0.2', port: 5000 }, true],
      [{ address: '10.0.0.2', port: 5000 }, { address: '0.0.0.0', port: 5000 }, true],
      [{ address: '::', port: 5000 }, { address: '0.0.0.0', port: 5000 }, true],
      [{ address: '::', port: 5000, v6Only: true }, { address: '0.0.0.0', port: 5000 }, false],
      [{ address: '::', port: 5000 }, { address: '::1', port: 5000 }, true],
      [{ address: 'fd00::1', port: 5000 }, { address: '10.0.0.1', port: 5000 }, false],
    ])('%j then %j: in use = %s (Linux, no SO_REUSEADDR)', (first, second, inUse) => {
      net = new FakeUdpNetwork();
      sock(first);
      if (inUse) {
        expect(() => sock(second)).toThrow(expect.objectContaining({ code: 'UDP_ADDRESS_IN_USE', errno: 'EADDRINUSE' }) as Error);
        expect(() => sock(second)).toThrow(`UDP port 5000 on ${second.address} is in use`);
      } else {
        expect(sock(second).local.port).toBe(5000);
      }
    });

    it('refuses an address that is not on the fake host', () => {
      net = new FakeUdpNetwork({ addresses: ['10.0.0.1', 'fd00::1'] });
      sock({ address: '10.0.0.1', port: 1 });
      sock({ address: '0.0.0.0', port: 2 });
      expect(() => sock({ address: '10.0.0.9', port: 1 }))
        .toThrow(expect.objectContaining({ code: 'UDP_ADDRESS_NOT_AVAILABLE', errno: 'EADDRNOTAVAIL' }) as Error);
    });
  });

  describe('delivery', () => {
    it('sendBatch to one destination arrives in order, in batches, with the sender as source', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1000 });
      const b = sock({ address: '10.0.0.2', port: 2000, batchSize: 16 });
      const rx = new Collector();
      b.onBatch(rx.handler);
      const texts = Array.from({ length: 100 }, (_, i) => `d${i}`);
      const p = pack(texts);
      expect(a.sendBatch(p.buffer, p.offsets, p.lengths, p.count, SockAddr.from(b.local))).toBe(100);
      await turns(Math.ceil(100 / 16 / MAX_BATCHES_PER_WAKEUP) + 1);
      expect(rx.texts()).toEqual(texts);
      expect(rx.batchSizes.every((n) => n <= 16)).toBe(true);
      expect(rx.batchSizes.length).toBeLessThan(100);
      expect(new Set(rx.datagrams.map((d) => d.from))).toEqual(new Set(['10.0.0.1:1000']));
      expect(a.counters()).toMatchObject({ txPackets: 100, txDrops: 0 });
      expect(b.counters()).toMatchObject({ rxPackets: 100, rxBatches: rx.batchSizes.length, rxDrops: 0 });
      expect(net.stats).toMatchObject({ sent: 100, delivered: 100 });
    });

    it('per-datagram destinations reach each socket; a reply goes back to the batch source', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '0.0.0.0', port: 1000, sourceAddress: '10.0.0.1' });
      const b = sock({ address: '10.0.0.2', port: 2000 });
      const c = sock({ address: '::', port: 3000 });
      const rxB = new Collector();
      const rxC = new Collector();
      b.onBatch(rxB.handler);
      const dests = new UdpDestinations(4);
      const toB = SockAddr.from(b.local);
      const toC4 = SockAddr.from({ address: '10.0.0.3', port: 3000 });
      const toC6 = SockAddr.from({ address: 'fd00::3', port: 3000 });
      [toB, toC4, toB, toC4].forEach((d, i) => { dests.set(i, d); });
      const p = pack(['b0', 'c1', 'b2', 'c3']);
      expect(a.sendBatch(p.buffer, p.offsets, p.lengths, 4, dests)).toBe(4);

      // c answers each datagram to its source, by copying the source.
      const replies = new UdpDestinations(64);
      c.onBatch((batch) => {
        rxC.handler(batch);
        for (let i = 0; i < batch.count; i++) replies.setFromSource(i, batch, i);
        const r = pack(Array.from({ length: batch.count }, (_, i) => `re-${batch.frame(i).toString('latin1')}`));
        c.sendBatch(r.buffer, r.offsets, r.lengths, batch.count, replies);
      });
      const rxA = new Collector();
      a.onBatch(rxA.handler);
      await turns();
      expect(rxB.texts()).toEqual(['b0', 'b2']);
      expect(rxC.datagrams).toEqual([{ text: 'c1', from: '10.0.0.1:1000' }, { text: 'c3', from: '10.0.0.1:1000' }]);
      expect(rxA.datagrams).toEqual([{ text: 're-c1', from: '127.0.0.1:3000' }, { text: 're-c3', from: '127.0.0.1:3000' }]);
      expect(() => c.send(Buffer.from('x'), 0, 1, toC6)).not.toThrow();
    });

    it('a dual-stack socket receives IPv4 with IPv4 sources; a v6Only one does not', async () => {
      net = new FakeUdpNetwork();
      const dual = sock({ address: '::', port: 4000 });
      const only = sock({ address: '::', port: 4001, v6Only: true });
      const v4 = sock({ address: '10.0.0.1', port: 1 });
      const rx = new Collector();
      dual.onBatch(rx.handler);
      const rxOnly = new Collector();
      only.onBatch(rxOnly.handler);
      v4.send(Buffer.from('hi'), 0, 2, { address: '10.0.0.2', port: 4000 });
      v4.send(Buffer.from('no'), 0, 2, { address: '10.0.0.2', port: 4001 });
      await turns();
      expect(rx.datagrams).toEqual([{ text: 'hi', from: '10.0.0.1:1' }]);
      expect(rxOnly.datagrams).toEqual([]);
      expect(net.stats.unreachable).toBe(1);
    });

    it('datagrams longer than a slot and beyond the queue are dropped and counted', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2, slotSize: 64, queueLength: 3 });
      const to = SockAddr.from(b.local);
      a.send(Buffer.alloc(65), 0, 65, to);
      a.send(Buffer.alloc(64), 0, 64, to);
      const p = pack(['1', '2', '3', '4']);
      a.sendBatch(p.buffer, p.offsets, p.lengths, 4, to);
      const rx = new Collector();
      b.onBatch(rx.handler);
      await turns();
      expect(rx.datagrams.map((d) => d.text.length)).toEqual([64, 1, 1]);
      expect(b.counters().rxDrops).toBe(3);
    });

    it('poisons the slab and the sources after each batch', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2 });
      let kept: Buffer | undefined;
      let keptSrc: Uint8Array | undefined;
      b.onBatch((batch) => { kept = batch.frame(0); keptSrc = batch.sourceAddrs; });
      a.send(Buffer.from('abc'), 0, 3, SockAddr.from(b.local));
      await turns();
      expect(kept!.toString('latin1')).toBe('\xdd\xdd\xdd');
      expect(keptSrc![0]).toBe(0xdd);
    });

    it('pause holds datagrams; resume delivers them; close drops them', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2 });
      const rx = new Collector();
      b.onBatch(rx.handler);
      b.pause();
      expect(b.state).toBe('paused');
      a.send(Buffer.from('p'), 0, 1, SockAddr.from(b.local));
      await turns();
      expect(rx.datagrams).toEqual([]);
      expect(b.queued).toBe(1);
      b.resume();
      await turns();
      expect(rx.texts()).toEqual(['p']);
      b.close();
      b.close();
      expect(b.state).toBe('closed');
      expect(a.send(Buffer.from('q'), 0, 1, { address: '10.0.0.2', port: 2 })).toBe(true);
      expect(net.stats.unreachable).toBe(1);
      expect(() => b.send(Buffer.from('x'), 0, 1, SockAddr.from(a.local))).toThrow(expect.objectContaining({ code: 'UDP_CLOSED' }) as Error);
    });

    it('at most MAX_BATCHES_PER_WAKEUP batches per turn', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2, batchSize: 1 });
      const p = pack(Array.from({ length: 20 }, (_, i) => `${i}`));
      a.sendBatch(p.buffer, p.offsets, p.lengths, 20, SockAddr.from(b.local));
      let n = 0;
      b.onBatch(() => { n++; });
      await new Promise((r) => setImmediate(r));
      expect(n).toBe(MAX_BATCHES_PER_WAKEUP);
      await turns(Math.ceil(20 / MAX_BATCHES_PER_WAKEUP));
      expect(n).toBe(20);
    });
  });

  describe('send failures', () => {
    it('fails as the kernel does, with .sent and the one-line message', () => {
      net = new FakeUdpNetwork();
      const v4 = sock({ address: '10.0.0.1', port: 1 });
      const only6 = sock({ address: '::', port: 2, v6Only: true });
      const dests = new UdpDestinations(3);
      dests.set(0, SockAddr.from({ address: '10.0.0.2', port: 9 }));
      dests.set(1, SockAddr.from({ address: '10.0.0.2', port: 9 }));
      dests.set(2, SockAddr.from({ address: 'fd00::2', port: 9 }));
      const p = pack(['a', 'b', 'c']);
      let err: unknown;
      try { v4.sendBatch(p.buffer, p.offsets, p.lengths, 3, dests); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(UdpSendError);
      expect(err).toMatchObject({ code: 'UDP_SEND_FAILED', errno: 'EAFNOSUPPORT', sent: 2 });
      expect((err as Error).message).toMatch(/cannot send to IPv6 \[fd00::2\]:9 from an IPv4 socket/);
      expect(() => only6.send(Buffer.from('x'), 0, 1, { address: '10.0.0.2', port: 9 }))
        .toThrow(expect.objectContaining({ code: 'UDP_NO_ROUTE', errno: 'ENETUNREACH' }) as Error);
      expect(() => v4.send(Buffer.from('x'), 0, 1, { address: '10.0.0.2', port: 0 }))
        .toThrow(expect.objectContaining({ errno: 'EINVAL' }) as Error);
      expect(() => v4.send(Buffer.alloc(65508), 0, 65508, { address: '10.0.0.2', port: 9 }))
        .toThrow(expect.objectContaining({ errno: 'EMSGSIZE' }) as Error);
      expect(() => v4.send(Buffer.from('x'), 0, 1, { address: 'peer.example', port: 9 })).toThrow(/not an IPv4 or IPv6 address/);
      expect(() => v4.sendBatch(p.buffer, p.offsets, p.lengths, 4, SockAddr.from({ address: '10.0.0.2', port: 9 }))).toThrow(RangeError);
    });

    it('refused sends (setWritable(false)) count as txDrops', () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      a.setWritable(false);
      const p = pack(['a', 'b']);
      const to = SockAddr.from({ address: '10.0.0.2', port: 2 });
      expect(a.sendBatch(p.buffer, p.offsets, p.lengths, 2, to)).toBe(0);
      expect(a.send(Buffer.from('x'), 0, 1, to)).toBe(false);
      expect(a.counters()).toMatchObject({ txPackets: 0, txDrops: 3 });
    });

    it('failReading() stops receiving and reports UDP_READ_FAILED once', () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const errors: SystemError[] = [];
      a.onError((e) => errors.push(e));
      a.onBatch(() => undefined);
      a.failReading();
      a.failReading();
      expect(a.state).toBe('failed');
      expect(errors.map((e) => e.code)).toEqual(['UDP_READ_FAILED']);
    });
  });

  describe('conditions', () => {
    it('drops, duplicates and reorders as the hooks say', async () => {
      net = new FakeUdpNetwork();
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2 });
      const rx = new Collector();
      b.onBatch(rx.handler);
      net.conditions = {
        drop: (d) => d.data.toString() === '1',
        duplicate: (d) => (d.data.toString() === '2' ? 2 : 0),
        reorder: (d) => d.data.toString() === '3',
      };
      const p = pack(['0', '1', '2', '3', '4', '5']);
      a.sendBatch(p.buffer, p.offsets, p.lengths, 6, SockAddr.from(b.local));
      await turns();
      expect(rx.texts()).toEqual(['0', '2', '2', '2', '4', '3', '5']);
      expect(net.stats).toMatchObject({ sent: 6, dropped: 1, duplicated: 2, reordered: 1, delivered: 7 });
    });

    it('flush() releases a held datagram with nothing behind it', async () => {
      net = new FakeUdpNetwork({ conditions: { reorder: () => true } });
      const a = sock({ address: '10.0.0.1', port: 1 });
      const b = sock({ address: '10.0.0.2', port: 2 });
      const rx = new Collector();
      b.onBatch(rx.handler);
      a.send(Buffer.from('late'), 0, 4, SockAddr.from(b.local));
      await turns();
      expect(rx.texts()).toEqual([]);
      net.flush();
      await turns();
      expect(rx.texts()).toEqual(['late']);
    });

    it('randomConditions is reproducible from its seed and close to its rates', async () => {
      const run = async (seed: number): Promise<string[]> => {
        net = new FakeUdpNetwork({ conditions: randomConditions({ loss: 0.1, duplicate: 0.05, reorder: 0.05, seed }) });
        const a = sock({ address: '10.0.0.1', port: 1 });
        const b = sock({ address: '10.0.0.2', port: 2, batchSize: 256 });
        const rx = new Collector();
        b.onBatch(rx.handler);
        const p = pack(Array.from({ length: 2000 }, (_, i) => `${i}`));
        a.sendBatch(p.buffer, p.offsets, p.lengths, 2000, SockAddr.from(b.local));
        net.flush();
        await turns(20);
        a.close();
        b.close();
        return rx.texts();
      };
      const one = await run(42);
      expect(await run(42)).toEqual(one);
      expect(await run(43)).not.toEqual(one);
      expect(net.stats.dropped).toBeGreaterThan(120);
      expect(net.stats.dropped).toBeLessThan(280);
      expect(net.stats.duplicated).toBeGreaterThan(40);
      expect(net.stats.reordered).toBeGreaterThan(40);
    });
  });
});
