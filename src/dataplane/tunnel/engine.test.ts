/**
 * The engine end to end without a kernel: two (or three) sites over an
 * in-memory UDP network, TAPs replaced by in-memory device pairs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createFakePair, type FakeDevice } from '../fake-device.js';
import { generatePrivateKey, publicKeyOf } from '../wg/crypto.js';
import { createLogger } from '../../shared/log.js';
import { arpRequest, macBytes } from '../../protocol/ethernet.js';
import { TunnelEngine, type TunnelPeerConfig } from './engine.js';
import { FakeUdpNetwork } from './fake-socket.js';

interface Site {
  engine: TunnelEngine;
  pub: Uint8Array;
  address: string;
  /** The bridge side of each segment's TAP: write frames here, read what the engine delivers. */
  bridge: Map<number, FakeDevice>;
  got: Map<number, Uint8Array[]>;
}

const engines: TunnelEngine[] = [];
afterEach(() => { for (const e of engines.splice(0)) e.stop(); });

function site(net: FakeUdpNetwork, address: string, segments: number[], opts: { l3?: boolean; offload?: boolean } = {}): Site {
  const priv = generatePrivateKey();
  const segs = new Map<number, FakeDevice>();
  const bridge = new Map<number, FakeDevice>();
  const got = new Map<number, Uint8Array[]>();
  for (const id of segments) {
    const off = opts.offload === true ? { offload: true, slotSize: 70_000 } : {};
    const [app, br] = createFakePair({ name: `tap${id}`, ...off }, { name: `br${id}`, ...off });
    segs.set(id, app);
    bridge.set(id, br);
    got.set(id, []);
    br.onBatch((b) => { for (let i = 0; i < b.count; i++) got.get(id)!.push(new Uint8Array(b.frame(i))); });
  }
  const engine = new TunnelEngine({
    privateKey: priv, socket: net.bind(address, 51820), segments: segs, log: createLogger({ level: 'error' }),
    ...(opts.l3 && { l3: createFakePair({ kind: 'tun' }, { kind: 'tun' })[0] }),
  });
  engines.push(engine);
  engine.start();
  return { engine, pub: publicKeyOf(priv), address, bridge, got };
}

function connect(a: Site, b: Site, segments: number[], extra: Partial<TunnelPeerConfig> = {}): void {
  a.engine.addPeer({ publicKey: b.pub, endpoint: { address: b.address, port: 51820 }, segments, ...extra });
  b.engine.addPeer({ publicKey: a.pub, segments, ...extra });
}

function frame(dst: string, src: string, size: number, fill = 0x42): Uint8Array {
  const f = new Uint8Array(size).fill(fill);
  f.set(macBytes(dst), 0);
  f.set(macBytes(src), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

async function until(what: string, cond: () => boolean, net: FakeUdpNetwork): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await net.settle(5);
  }
  throw new Error(`never happened: ${what}`);
}

describe('TunnelEngine', () => {
  it('carries a broadcast ARP across, handshaking first and staging the frame meanwhile', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10]);
    const s = site(net, '192.0.2.2', [10]);
    connect(t, s, [10]);
    const arp = arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2');
    t.bridge.get(10)!.write(arp);
    await until('the ARP request at the SP side', () => s.got.get(10)!.length === 1, net);
    expect(s.got.get(10)![0]).toEqual(arp);
    const st = t.engine.status();
    expect(st.peers[0]!.lastHandshakeAgoMs).not.toBeNull();
    expect(st.peers[0]!.endpoint).toBe('192.0.2.2:51820');
    // The reply, unicast back, crosses too; the SP learnt where 02:..:01 is.
    const reply = frame('02:00:00:00:00:01', '02:00:00:00:00:02', 60);
    s.bridge.get(10)!.write(reply);
    await until('the reply at the tenant side', () => t.got.get(10)!.length === 1, net);
    expect(t.got.get(10)![0]).toEqual(reply);
  });

  it('sends only ciphertext: no plaintext marker crosses the network', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10]);
    const s = site(net, '192.0.2.2', [10]);
    connect(t, s, [10]);
    const marker = Buffer.from('NEA-PLAINTEXT-MARKER');
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', 200);
    f.set(marker, 100);
    t.bridge.get(10)!.write(f);
    await until('delivery', () => s.got.get(10)!.length === 1, net);
    for (const d of net.log) expect(Buffer.from(d.bytes).includes(marker)).toBe(false);
  });

  it('fragments a 1514-byte frame so every datagram fits a 1500-byte WAN, and reassembles it', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10]);
    const s = site(net, '192.0.2.2', [10]);
    connect(t, s, [10]);
    const big = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', 1514, 0x77);
    t.bridge.get(10)!.write(big);
    await until('the big frame', () => s.got.get(10)!.length === 1, net);
    expect(s.got.get(10)![0]).toEqual(big);
    // UDP payload + 28 bytes of IPv4/UDP headers ≤ 1500
    for (const d of net.log) expect(d.bytes.length + 28).toBeLessThanOrEqual(1500);
    expect(net.log.filter((d) => d.bytes[0] === 4 && d.bytes.length > 32).length).toBeGreaterThanOrEqual(2);
  });

  it('keeps tenant segments apart: a peer cannot send frames for a segment it does not carry', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10, 20]);
    const s = site(net, '192.0.2.2', [10, 20]);
    // The tenant believes it may send segment 20; the SP binds only 10 to this key.
    t.engine.addPeer({ publicKey: s.pub, endpoint: { address: s.address, port: 51820 }, segments: [10, 20] });
    s.engine.addPeer({ publicKey: t.pub, segments: [10] });
    t.bridge.get(20)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
    t.bridge.get(10)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
    await until('segment 10 delivered', () => s.got.get(10)!.length === 1, net);
    await net.settle();
    expect(s.got.get(20)).toEqual([]);
    expect(s.engine.status().peers[0]!.counters.drops['segment-not-owned']).toBe(1);
  });

  it('unicast goes only to the peer behind which the MAC was learnt; broadcast to all', async () => {
    const net = new FakeUdpNetwork();
    const hub = site(net, '192.0.2.1', [10]);
    const a = site(net, '192.0.2.2', [10]);
    const b = site(net, '192.0.2.3', [10]);
    connect(a, hub, [10]);
    connect(b, hub, [10]);
    // a's VM announces itself (broadcast): hub learns its MAC behind a; b sees the broadcast too? No: hub only
    // delivers to its own local port; peers are not bridged to each other through the hub's engine.
    a.bridge.get(10)!.write(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0a:01', 60));
    await until('hub local port got the broadcast', () => hub.got.get(10)!.length === 1, net);
    hub.bridge.get(10)!.write(frame('02:00:00:00:0a:01', '02:00:00:00:00:99', 60, 1));
    await until('a got the unicast', () => a.got.get(10)!.length === 1, net);
    await net.settle();
    expect(b.got.get(10)).toEqual([]);
    hub.bridge.get(10)!.write(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:99', 60, 2));
    await until('both got the broadcast', () => a.got.get(10)!.length === 2 && b.got.get(10)!.length === 1, net);
  });

  it('is silent towards strangers and garbage, and rejects replayed transport packets', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10]);
    const s = site(net, '192.0.2.2', [10]);
    connect(t, s, [10]);
    t.bridge.get(10)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
    await until('delivery', () => s.got.get(10)!.length === 1, net);
    const transport = net.log.filter((d) => d.bytes[0] === 4 && d.to.address === s.address && d.bytes.length > 32);
    const stranger = { address: '203.0.113.66', port: 4444 };
    const before = net.log.length;
    for (const d of transport) net.inject(d.from, d.to, d.bytes); // replay
    for (let i = 0; i < 200; i++) {
      const junk = new Uint8Array(1 + (i * 37) % 400).map((_, j) => (i * 31 + j * 7) & 0xff);
      if (i % 4 === 0) junk[0] = 1 + (i % 4); // also malformed handshake and transport types
      net.inject(stranger, { address: s.address, port: 51820 }, junk);
    }
    await net.settle();
    expect(s.got.get(10)!.length).toBe(1);
    const sentBySp = net.log.slice(before).filter((d) => d.from.address === s.address);
    expect(sentBySp).toEqual([]);
    expect(s.engine.status().unauthenticatedDrops).toMatchObject({ replay: transport.length });
  });

  it('in L3 mode carries IP packets to the peer owning the destination, and refuses spoofed sources', async () => {
    const net = new FakeUdpNetwork();
    const tunA = createFakePair({ kind: 'tun', name: 'tunA' }, { kind: 'tun', name: 'kernA' });
    const tunB = createFakePair({ kind: 'tun', name: 'tunB' }, { kind: 'tun', name: 'kernB' });
    const pa = generatePrivateKey();
    const pb = generatePrivateKey();
    const ea = new TunnelEngine({ privateKey: pa, socket: net.bind('192.0.2.1', 51820), segments: new Map(), l3: tunA[0], log: createLogger({ level: 'error' }) });
    const eb = new TunnelEngine({ privateKey: pb, socket: net.bind('192.0.2.2', 51820), segments: new Map(), l3: tunB[0], log: createLogger({ level: 'error' }) });
    engines.push(ea, eb);
    ea.start();
    eb.start();
    ea.addPeer({ publicKey: publicKeyOf(pb), endpoint: { address: '192.0.2.2', port: 51820 }, segments: [], allowedIps: ['10.9.0.2/32'] });
    eb.addPeer({ publicKey: publicKeyOf(pa), segments: [], allowedIps: ['10.9.0.1/32'] });
    const got: Uint8Array[] = [];
    tunB[1].onBatch((b) => { for (let i = 0; i < b.count; i++) got.push(new Uint8Array(b.frame(i))); });
    const ip = (src: number[], dst: number[]): Uint8Array => {
      const p = new Uint8Array(28);
      p[0] = 0x45; p[3] = 28; p[9] = 17;
      p.set(src, 12); p.set(dst, 16);
      return p;
    };
    tunA[1].write(ip([10, 9, 0, 1], [10, 9, 0, 2]));
    tunA[1].write(ip([10, 9, 0, 1], [10, 9, 0, 3])); // no peer owns 10.9.0.3: not sent
    await until('the packet at B', () => got.length === 1, net);
    expect(got[0]).toEqual(ip([10, 9, 0, 1], [10, 9, 0, 2]));
    tunA[1].write(ip([10, 9, 0, 7], [10, 9, 0, 2])); // spoofed source: B refuses it
    await net.settle();
    expect(got.length).toBe(1);
    expect(eb.status().peers[0]!.counters.drops['source-not-allowed']).toBe(1);
  });

  it('survives loss, duplication and reordering: duplicates are rejected, the rest delivered', async () => {
    const net = new FakeUdpNetwork();
    const t = site(net, '192.0.2.1', [10]);
    const s = site(net, '192.0.2.2', [10]);
    connect(t, s, [10]);
    t.bridge.get(10)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
    await until('session up', () => s.got.get(10)!.length === 1, net);
    let n = 0;
    net.fate = (d) => (d.bytes[0] !== 4 ? 'deliver' : n++ % 5 === 0 ? 'drop' : n % 5 === 1 ? 'duplicate' : 'deliver');
    net.reorder = true;
    for (let i = 0; i < 100; i++) t.bridge.get(10)!.write(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', 100, i));
    await net.settle(100);
    const got = s.got.get(10)!.slice(1);
    const seen = new Set(got.map((f) => f[50]));
    expect(seen.size).toBe(got.length); // no frame delivered twice
    expect(got.length).toBeGreaterThanOrEqual(75);
    expect(got.length).toBeLessThan(100);
  });

  describe('offloads (TCP super-frames whole through the tunnel)', () => {
    /** A virtio_net_hdr of a TCPv4 super-frame: GSO type 1, header 54 bytes, MSS 1448, checksum at 34 + 16. */
    const gsoHeader = Uint8Array.from([1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0]);

    it('turns offloads on once both ends said they accept offload frames, and carries a super-frame with its GSO header', async () => {
      const net = new FakeUdpNetwork();
      const t = site(net, '192.0.2.1', [10], { offload: true });
      const s = site(net, '192.0.2.2', [10], { offload: true });
      const heard: Uint8Array[] = [];
      s.bridge.get(10)!.onBatch((b) => {
        for (let i = 0; i < b.count; i++) {
          const o = b.offset(i);
          heard.push(new Uint8Array(b.buffer.subarray(o - 10, o + b.lengths[i]!)));
        }
      });
      connect(t, s, [10]);
      const tap = (x: Site): FakeDevice => (x.engine as unknown as { segments: Map<number, { device: FakeDevice }> }).segments.get(10)!.device;
      t.bridge.get(10)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
      await until('offloads on at both TAPs', () => tap(t).offloadOn && tap(s).offloadOn, net);
      const big = frame('02:00:00:00:00:02', '02:00:00:00:00:01', 60_000, 0x5a);
      t.bridge.get(10)!.writeWithHeader(gsoHeader, big);
      await until('the super-frame at the SP side', () => heard.some((f) => f.length === 60_010), net);
      const got = heard.find((f) => f.length === 60_010)!;
      expect(got.subarray(0, 10)).toEqual(gsoHeader);
      expect(got.subarray(10)).toEqual(big);
      // An ordinary frame arrives with a zero header.
      const small = frame('02:00:00:00:00:02', '02:00:00:00:00:01', 1514, 0x11);
      t.bridge.get(10)!.write(small);
      await until('the full-size frame', () => heard.some((f) => f.length === 1524), net);
      expect(heard.find((f) => f.length === 1524)!).toEqual(Uint8Array.from([...new Uint8Array(10), ...small]));
    });

    it('keeps offloads off towards a peer without them, and drops a super-frame read anyway', async () => {
      const net = new FakeUdpNetwork();
      const t = site(net, '192.0.2.1', [10], { offload: true });
      const s = site(net, '192.0.2.2', [10]);
      connect(t, s, [10]);
      t.bridge.get(10)!.write(arpRequest('02:00:00:00:00:01', '10.0.0.1', '10.0.0.2'));
      await until('the ARP request at the SP side', () => s.got.get(10)!.length === 1, net);
      s.bridge.get(10)!.write(frame('02:00:00:00:00:01', '02:00:00:00:00:02', 100));
      await until('the reply at the tenant side', () => t.got.get(10)!.length >= 1, net);
      const tap = (t.engine as unknown as { segments: Map<number, { device: FakeDevice }> }).segments.get(10)!.device;
      expect(tap.offloadOn).toBe(false);
      t.bridge.get(10)!.writeWithHeader(gsoHeader, frame('02:00:00:00:00:02', '02:00:00:00:00:01', 20_000));
      await until('the super-frame dropped', () => t.engine.status().peers[0]!.counters.drops['offload-not-accepted'] === 1, net);
      expect(s.got.get(10)!.every((f) => f.length < 2000)).toBe(true);
    });
  });
});
