/**
 * TAP/TUN devices of the native addon on a real kernel.
 *
 *   ns "a"                                         ns "b"
 *   tap0 (nea) ──┐
 *   mq0 q0,q1 ───┼── br0 ── va ════ veth ════ vb   tcpdump, AF_PACKET sender
 *                │
 *   tun0 (nea)  10.9.0.1/24 (routed, not bridged)
 *
 *   ns "c"
 *   tin (nea) ── br1 ── tout (nea, txqueuelen 16384)      10,000-frame burst
 *
 * IPv6 is off in every namespace so the kernel adds no frames of its own.
 * Frames use the local experimental EtherType 0x88b5 unless they must be IP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { native } from '../src/native/index.js';
import { withNetns } from '../src/netconfig/netns.js';
import { SystemError } from '../src/shared/errors.js';
import {
  copyFrames,
  openQueues,
  openTap,
  openTun,
  packFrames,
  toTunError,
  type PacketBatch,
  type PacketDevice,
} from '../src/dataplane/tuntap.js';
import { Topology, run, waitFor, type Netns } from './harness.js';

const ETHERTYPE = 0x88b5;
const TAP_MAC = '02:00:00:00:01:01';
const B_MAC = '02:00:00:00:02:02';
const UNKNOWN_MAC = '02:00:00:00:0a:0a';

function mac(s: string): Buffer {
  return Buffer.from(s.replaceAll(':', ''), 'hex');
}

/** An Ethernet frame dst <- src, EtherType 0x88b5, payload = tag (padded to 60 bytes). */
function etherFrame(dst: string, src: string, tag: string): Buffer {
  const f = Buffer.alloc(Math.max(60, 14 + tag.length));
  mac(dst).copy(f, 0);
  mac(src).copy(f, 6);
  f.writeUInt16BE(ETHERTYPE, 12);
  f.write(tag, 14, 'latin1');
  return f;
}

/** Payload tag of one of our frames, or undefined for anything else. */
function tagOf(f: Buffer): string | undefined {
  if (f.length < 14 || f.readUInt16BE(12) !== ETHERTYPE) return undefined;
  const end = f.indexOf(0, 14);
  return f.subarray(14, end < 0 ? f.length : end).toString('latin1');
}

/** Send raw frames (hex) out of `ifname` in `ns` with an AF_PACKET socket. */
async function sendRaw(ns: Netns, ifname: string, frames: readonly Buffer[]): Promise<void> {
  const code = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nfor h in sys.argv[2:]: s.send(bytes.fromhex(h))';
  await ns.exec('python3', ['-c', code, ifname, ...frames.map((f) => f.toString('hex'))]);
}

/** IPv4/UDP frame dst <- src with a correct header checksum (the bridge may validate it). */
function udpFrame(dstMac: string, srcMac: string, sport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + 4);
  mac(dstMac).copy(f, 0);
  mac(srcMac).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ip = f.subarray(14, 34);
  ip[0] = 0x45;
  ip.writeUInt16BE(32, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([10, 0, 0, 2]).copy(ip, 12);
  Buffer.from([10, 0, 0, 1]).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(12, 38);
  f.write('mq!!', 42, 'latin1');
  return f;
}

/** Collects copies of every frame a device delivers, and the batch sizes. */
class Collector {
  readonly frames: Buffer[] = [];
  readonly batchSizes: number[] = [];
  readonly handler = (batch: PacketBatch): void => {
    this.batchSizes.push(batch.count);
    this.frames.push(...copyFrames(batch));
  };

  tags(): string[] {
    return this.frames.map(tagOf).filter((t): t is string => t !== undefined);
  }
}

/** Let the event loop run: immediates, the poll phase and a timer. Used only to show that nothing happens. */
async function idleTurns(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitForwarding(ns: Netns, port: string): Promise<void> {
  await waitFor(`bridge port ${port} forwarding`, async () => {
    const r = await run('bridge', ['-n', ns.name, '-j', 'link', 'show', 'dev', port]);
    return (JSON.parse(r.stdout) as { state?: string }[]).some((l) => l.state === 'forwarding');
  });
}

async function disableIpv6(ns: Netns): Promise<void> {
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

describe('TAP/TUN devices on a real kernel', () => {
  const topo = new Topology('tuntap');
  const opened: PacketDevice[] = [];
  let a: Netns;
  let b: Netns;
  let c: Netns;

  /** Open a device inside `ns` (the fd stays bound to that namespace). */
  function openIn<T extends PacketDevice | PacketDevice[]>(ns: Netns, fn: () => T): T {
    const d = withNetns(ns.name, fn);
    opened.push(...(Array.isArray(d) ? d : [d]));
    return d;
  }

  /** `total` frames numbered 0.. (a big-endian counter after the Ethernet header), packed for writeBatch. */
  function numberedBurst(total: number): ReturnType<typeof packFrames> {
    return packFrames(Array.from({ length: total }, (_, i) => {
      const f = etherFrame(UNKNOWN_MAC, TAP_MAC, '');
      f.writeUInt32BE(i, 14);
      return f;
    }));
  }

  /** Counts the numbered frames `dev` receives and whether they came in order (the batch handler). */
  function countNumbered(dev: PacketDevice): { received: number; inOrder: boolean; batches: number; largest: number } {
    const seen = { received: 0, inOrder: true, batches: 0, largest: 0 };
    dev.onBatch((batch) => {
      seen.batches++;
      seen.largest = Math.max(seen.largest, batch.count);
      for (let i = 0; i < batch.count; i++) {
        const off = batch.offset(i);
        if (batch.buffer.readUInt16BE(off + 12) !== ETHERTYPE) continue;
        if (batch.buffer.readUInt32BE(off + 14) !== seen.received) seen.inOrder = false;
        seen.received++;
      }
    });
    return seen;
  }

  async function enslave(ns: Netns, port: string, bridge: string): Promise<void> {
    await ns.ip('link', 'set', port, 'master', bridge, 'up');
    await waitForwarding(ns, port);
  }

  beforeAll(async () => {
    a = await topo.netns('a');
    b = await topo.netns('b');
    c = await topo.netns('c');
    for (const ns of [a, b, c]) await disableIpv6(ns);
    await topo.veth(a, 'va', b, 'vb');
    await topo.bridge(a, 'br0', ['va']);
    await a.ip('link', 'set', 'br0', 'type', 'bridge', 'forward_delay', '0');
    await topo.bridge(c, 'br1');
    await c.ip('link', 'set', 'br1', 'type', 'bridge', 'forward_delay', '0');
  });

  afterAll(async () => {
    for (const d of opened) d.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('a frame written to a TAP in ns a reaches ns b, and a frame sent from b comes back as a batch', async () => {
    const tap = openIn(a, () => openTap('tap0'));
    expect(tap).toMatchObject({ name: 'tap0', kind: 'tap', state: 'idle' });
    expect(await a.links()).toContain('tap0');
    const rx = new Collector();
    tap.onBatch(rx.handler);
    await enslave(a, 'tap0', 'br0');

    const cap = await b.capture('vb', ['ether', 'proto', String(ETHERTYPE)]);
    expect(tap.write(etherFrame(B_MAC, TAP_MAC, 'hello-from-tap'))).toBe(true);
    const lines = await waitFor('the frame in the capture on vb', async () => {
      const l = await cap.lines();
      return l.length > 0 ? l : undefined;
    });
    expect(lines[0]).toContain(`${TAP_MAC} > ${B_MAC}`);
    expect((await cap.hexPackets())[0]).toContain(Buffer.from('hello-from-tap').toString('hex'));
    await cap.stop();

    await sendRaw(b, 'vb', [etherFrame(TAP_MAC, B_MAC, 'hello-from-b')]);
    await waitFor('the frame from b on the TAP', () => rx.tags().includes('hello-from-b'));
    expect(rx.frames.find((f) => tagOf(f) === 'hello-from-b')!.subarray(0, 12).toString('hex'))
      .toBe(mac(TAP_MAC).toString('hex') + mac(B_MAC).toString('hex'));
    expect(tap.counters()).toMatchObject({ txFrames: 1, txBytes: 60, rxDrops: 0 });
    expect(tap.counters().rxFrames).toBe(rx.frames.length);
  });

  it('a burst of 10,000 frames through TAP -> bridge -> TAP arrives complete, in order, in batches', async () => {
    const total = 10_000;
    const batchSize = 64;
    const tin = openIn(c, () => openTap('tin', { batchSize }));
    const tout = openIn(c, () => openTap('tout', { batchSize }));
    await c.ip('link', 'set', 'tout', 'txqueuelen', '16384'); // the whole burst fits the kernel queue
    await enslave(c, 'tin', 'br1');
    await enslave(c, 'tout', 'br1');

    const seen = countNumbered(tout);
    const p = numberedBurst(total);
    let written = 0;
    while (written < total) {
      const n = Math.min(1000, total - written);
      written += tin.writeBatch(p.buffer, p.offsets.subarray(written, written + n), p.lengths.subarray(written, written + n), n);
    }
    expect(written).toBe(total);

    await waitFor(`${total} frames on tout`, () => seen.received >= total, { timeoutMs: 20_000 });
    expect(seen.received).toBe(total);
    expect(seen.inOrder).toBe(true);
    expect(seen.batches).toBeLessThan(total);
    expect(seen.largest).toBeLessThanOrEqual(batchSize);
    expect(tin.counters()).toMatchObject({ txFrames: total, txBytes: total * 60, txDrops: 0 });
    expect(tout.counters()).toMatchObject({ rxDrops: 0, rxBatches: seen.batches });
    console.log(`burst: ${total} frames in ${seen.batches} batches (largest ${seen.largest})`);
  });

  it('through a writer thread, a burst of 10,000 frames arrives complete, in order, and is counted', async () => {
    const total = 10_000;
    const win = openIn(c, () => openTap('win', { writerThread: true }));
    const wout = openIn(c, () => openTap('wout'));
    await c.ip('link', 'set', 'wout', 'txqueuelen', '16384');
    await enslave(c, 'win', 'br1');
    await enslave(c, 'wout', 'br1');
    const seen = countNumbered(wout);
    const p = numberedBurst(total);
    // The writes return as soon as the frames are in the ring (4 MiB: all of them fit).
    let written = 0;
    for (let s = 0; s < total; s += 1000) written += win.writeBatch(p.buffer, p.offsets.subarray(s, s + 1000), p.lengths.subarray(s, s + 1000), 1000);
    expect(written).toBe(total);
    p.buffer.fill(0); // the ring holds copies: the caller's buffer is free at once
    await waitFor(`${total} frames on wout`, () => seen.received >= total, { timeoutMs: 20_000 });
    expect(seen.received).toBe(total);
    expect(seen.inOrder).toBe(true);
    expect(win.counters()).toMatchObject({ txFrames: total, txBytes: total * 60, txDrops: 0 });
    win.close();
    expect(win.counters()).toMatchObject({ txFrames: total });
  });

  it('through a writer thread, a failed write is thrown by the next write; close() with frames queued is clean', async () => {
    const d = openIn(a, () => openTap('twdown', { writerThread: true }));
    expect(d.write(etherFrame(B_MAC, TAP_MAC, 'x'))).toBe(true); // queued; the thread's write() meets a down link
    let err: unknown;
    await waitFor('the error of the thread\'s write', () => {
      try { d.write(etherFrame(B_MAC, TAP_MAC, 'y')); } catch (e) { err = e; }
      return err !== undefined;
    });
    expect(err).toMatchObject({ code: 'TUN_LINK_DOWN', errno: 'EIO', written: 0 });
    expect((err as Error).message).toMatch(/writer thread.*ip link set twdown up/);
    const p = packFrames(Array.from({ length: 500 }, () => etherFrame(B_MAC, TAP_MAC, 'z')));
    expect(d.writeBatch(p.buffer, p.offsets, p.lengths, 500)).toBe(500);
    d.close();
    expect(d.state).toBe('closed');
    expect(() => d.write(etherFrame(B_MAC, TAP_MAC, 'x'))).toThrow(expect.objectContaining({ code: 'TUN_CLOSED' }) as Error);
  });

  it('pause() holds frames in the kernel queue; resume() delivers them', async () => {
    const tin = opened.find((d) => d.name === 'tin')!;
    const tout = opened.find((d) => d.name === 'tout')!;
    const rx = new Collector();
    tout.onBatch(rx.handler);
    tout.pause();
    expect(tout.state).toBe('paused');
    for (let i = 0; i < 10; i++) tin.write(etherFrame(UNKNOWN_MAC, TAP_MAC, `p${i}`));
    await idleTurns(100);
    expect(rx.frames).toEqual([]);
    tout.resume();
    await waitFor('10 frames after resume', () => rx.tags().length === 10);
    expect(rx.tags()).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}`));
  });

  it('pause() inside the handler of a full batch stops delivery; resume() delivers the rest', async () => {
    const tin = opened.find((d) => d.name === 'tin')!;
    const d = openIn(c, () => openTap('tpause', { batchSize: 16 }));
    let ours = 0;
    let pausedAt: number | undefined; // size of the batch whose handler paused
    let batchesWhilePaused = 0;
    d.onBatch((batch) => {
      if (d.state === 'paused') batchesWhilePaused++;
      for (let i = 0; i < batch.count; i++) if (tagOf(batch.frame(i))?.startsWith('q')) ours++;
      if (pausedAt === undefined && ours > 0) {
        pausedAt = batch.count;
        d.pause();
      }
    });
    await enslave(c, 'tpause', 'br1');
    const p = packFrames(Array.from({ length: 100 }, (_, i) => etherFrame(UNKNOWN_MAC, TAP_MAC, `q${i}`)));
    expect(tin.writeBatch(p.buffer, p.offsets, p.lengths, p.count)).toBe(100);
    await waitFor('the first batch', () => pausedAt !== undefined);
    await idleTurns(100);
    expect(pausedAt).toBe(16);
    expect(ours).toBeLessThanOrEqual(16);
    expect(batchesWhilePaused).toBe(0);
    d.resume();
    await waitFor('all 100 frames', () => ours === 100);
    d.close();
  });

  it('close() inside the batch handler is safe: no further batches, the device goes away', async () => {
    const tin = opened.find((d) => d.name === 'tin')!;
    const d = openIn(c, () => openTap('tclose2', { batchSize: 16 }));
    let batches = 0;
    d.onBatch(() => { batches++; d.close(); });
    await enslave(c, 'tclose2', 'br1');
    const p = packFrames(Array.from({ length: 100 }, (_, i) => etherFrame(UNKNOWN_MAC, TAP_MAC, `c${i}`)));
    tin.writeBatch(p.buffer, p.offsets, p.lengths, p.count);
    await waitFor('tclose2 gone', async () => !(await c.links()).includes('tclose2'));
    expect(batches).toBe(1);
    expect(d.state).toBe('closed');
  });

  it('frames longer than a slot are dropped and counted; a frame of exactly a slot is delivered', async () => {
    const tin = opened.find((d) => d.name === 'tin')!;
    const small = openIn(c, () => openTap('tsmall', { slotSize: 128, batchSize: 2 }));
    const rx = new Collector();
    small.onBatch(rx.handler);
    await enslave(c, 'tsmall', 'br1');
    const sized = (len: number, tag: string): Buffer => {
      const f = Buffer.alloc(len);
      etherFrame(UNKNOWN_MAC, TAP_MAC, tag).copy(f, 0, 0, 20);
      return f;
    };
    // Both read paths: read() for the first slot of a batch, readv() for the last.
    for (const [len, tag] of [[100, 's1'], [200, 'x1'], [128, 's2'], [129, 'x2'], [128, 's3']] as const) tin.write(sized(len, tag));
    const ours = (): Buffer[] => rx.frames.filter((f) => tagOf(f)?.startsWith('s') === true);
    await waitFor('3 frames that fit', () => ours().length === 3);
    expect(ours().map((f) => [f.length, f.subarray(14, 16).toString('latin1')])).toEqual([[100, 's1'], [128, 's2'], [128, 's3']]);
    expect(small.counters().rxDrops).toBe(2);
    small.close();
  });

  it('two queues of a multi-queue TAP both receive and both send', async () => {
    const [q0, q1] = openIn(a, () => openQueues('tap', 'mq0', 2)) as [PacketDevice, PacketDevice];
    const rx0 = new Collector();
    const rx1 = new Collector();
    q0.onBatch(rx0.handler);
    q1.onBatch(rx1.handler);
    await enslave(a, 'mq0', 'br0');

    // 64 UDP flows: the kernel spreads them over the queues by flow hash.
    const flows = Array.from({ length: 64 }, (_, i) => udpFrame(UNKNOWN_MAC, B_MAC, 1000 + i));
    await sendRaw(b, 'vb', flows);
    const isOurs = (f: Buffer): boolean => f.length >= 46 && f.readUInt16BE(12) === 0x0800 && f.subarray(42, 46).toString('latin1') === 'mq!!';
    await waitFor('64 flows over the two queues', () => rx0.frames.filter(isOurs).length + rx1.frames.filter(isOurs).length === 64);
    expect(rx0.frames.filter(isOurs).length).toBeGreaterThan(0);
    expect(rx1.frames.filter(isOurs).length).toBeGreaterThan(0);

    const cap = await b.capture('vb', ['ether', 'proto', String(ETHERTYPE)]);
    expect(q0.write(etherFrame(B_MAC, TAP_MAC, 'from-q0'))).toBe(true);
    expect(q1.write(etherFrame(B_MAC, TAP_MAC, 'from-q1'))).toBe(true);
    await waitFor('both frames on vb', async () => (await cap.hexPackets()).length === 2);
    const hex = (await cap.hexPackets()).join(' ');
    expect(hex).toContain(Buffer.from('from-q0').toString('hex'));
    expect(hex).toContain(Buffer.from('from-q1').toString('hex'));
    await cap.stop();
  });

  it('a TUN device delivers IP packets routed to it', async () => {
    const tun = openIn(a, () => openTun('tun0'));
    const rx = new Collector();
    tun.onBatch(rx.handler);
    await a.ip('addr', 'add', '10.9.0.1/24', 'dev', 'tun0');
    await a.ip('link', 'set', 'tun0', 'up');
    await a.exec('ping', ['-c', '1', '-W', '0.2', '10.9.0.2'], { allowFail: true });
    const pkt = await waitFor('the ICMP echo on tun0', () => rx.frames.find((f) => f[0] === 0x45 && f[9] === 1));
    expect(pkt.subarray(16, 20)).toEqual(Buffer.from([10, 9, 0, 2]));
  });

  describe('errors', () => {
    function openError(fn: () => unknown): SystemError {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(SystemError);
        return e as SystemError;
      }
      throw new Error('expected the open to fail');
    }

    it('a TAP named like an existing veth: TUN_BUSY', () => {
      const e = openError(() => openIn(a, () => openTap('va')));
      expect(e).toMatchObject({ code: 'TUN_BUSY', errno: 'EINVAL', syscall: 'TUNSETIFF' });
      expect(e.message).toMatch(/interface name va is already in use by another link/);
      expect(e.message).not.toContain('\n');
    });

    it('the same non-multi-queue TAP opened twice: TUN_BUSY', () => {
      const e = openError(() => openIn(a, () => openTap('tap0')));
      expect(e).toMatchObject({ code: 'TUN_BUSY', errno: 'EBUSY' });
      expect(e.message).toMatch(/interface name tap0 is already in use by an open TAP \(not multi-queue\)/);
      expect(e.message).not.toContain('\n');
    });

    it('a queue without multi-queue on a multi-queue TAP: TUN_BUSY', () => {
      const e = openError(() => openIn(a, () => openTap('mq0')));
      expect(e).toMatchObject({ code: 'TUN_BUSY', errno: 'EINVAL' });
    });

    it('a name longer than 15 characters: TUN_NAME_INVALID, also from the addon itself', () => {
      expect(openError(() => openIn(a, () => openTap('tap-name-too-long'))).code).toBe('TUN_NAME_INVALID');
      const { TunTap } = native();
      let raw: unknown;
      try { withNetns(a.name, () => new TunTap('tap-name-too-long', false, false, 8, 2048, () => undefined, () => undefined)); } catch (err) { raw = err; }
      expect(raw).toMatchObject({ code: 'ENAMETOOLONG', syscall: 'TUNSETIFF' });
      expect(toTunError('open', raw)).toMatchObject({ code: 'TUN_NAME_INVALID' });
    });

    it('without root: TUN_NO_PERMISSION and a message that says to run as root', async () => {
      const addon = new URL('../build/Release/nea_native.node', import.meta.url).pathname;
      const script = `const a = require(${JSON.stringify(addon)});
try { new a.TunTap('tapnp', false, false, 8, 2048, () => {}, () => {}); console.log('{}'); }
catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, code: e.code, errno: e.errno, syscall: e.syscall })); }`;
      const r = await a.exec('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
        process.execPath, '-e', script]);
      const raw = Object.assign(new Error(), JSON.parse(r.stdout) as Record<string, unknown>);
      const e = toTunError('open', raw);
      expect(e).toMatchObject({ code: 'TUN_NO_PERMISSION' });
      expect((e as SystemError).message).toMatch(/run as root/);
      expect(await a.links()).not.toContain('tapnp');
    });

    it('writes to a closed device: TUN_CLOSED', () => {
      const d = openIn(a, () => openTap('tclose'));
      d.close();
      d.close();
      expect(() => d.write(etherFrame(B_MAC, TAP_MAC, 'x'))).toThrow(expect.objectContaining({ code: 'TUN_CLOSED' }) as Error);
      expect(d.state).toBe('closed');
    });

    it('writes while the link is down: TUN_LINK_DOWN saying how to bring it up', () => {
      const d = openIn(a, () => openTap('tdown'));
      let err: unknown;
      try { d.write(etherFrame(B_MAC, TAP_MAC, 'x')); } catch (e) { err = e; }
      expect(err).toMatchObject({ code: 'TUN_LINK_DOWN', errno: 'EIO', written: 0 });
      expect((err as Error).message).toMatch(/ip link set tdown up/);
      d.close();
    });
  });

  it('deleting the link under an open queue: TUN_READ_FAILED once, then writes fail', async () => {
    const d = openIn(a, () => openTap('tdel'));
    const errors: SystemError[] = [];
    d.onError((e) => errors.push(e));
    d.onBatch(() => undefined);
    await a.ip('link', 'del', 'tdel');
    await waitFor('the read error', () => errors.length > 0);
    await idleTurns(50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'TUN_READ_FAILED' });
    expect(errors[0]!.message).toMatch(/deleted: close and reopen the device/);
    expect(d.state).toBe('failed');
    expect(() => d.write(etherFrame(B_MAC, TAP_MAC, 'x'))).toThrow(expect.objectContaining({ code: 'TUN_WRITE_FAILED', errno: 'EBADFD' }) as Error);
    d.close();
  });

  it('closing the last queue removes the device; a worker that exits closes what it opened', async () => {
    const d = openIn(a, () => openTap('tgone'));
    expect(await a.links()).toContain('tgone');
    d.close();
    await waitFor('tgone gone', async () => !(await a.links()).includes('tgone'));

    const addon = new URL('../build/Release/nea_native.node', import.meta.url).pathname;
    const w = new Worker(`const { parentPort } = require('node:worker_threads');
const a = require(${JSON.stringify(addon)});
const prev = a.enterNetns(${JSON.stringify(`/run/netns/${a.name}`)}); // this worker thread only
const t = new a.TunTap('tworker', false, false, 8, 2048, () => {}, () => {});
a.leaveNetns(prev);
t.resume();
parentPort.postMessage(t.name);`, { eval: true });
    const opened = await new Promise<unknown>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    expect(opened).toBe('tworker');
    expect(await a.links()).toContain('tworker');
    await w.terminate();
    await waitFor('tworker gone after the worker ended', async () => !(await a.links()).includes('tworker'));
  });
});
