/**
 * The AF_PACKET socket of the addon on a real kernel: VLAN tags recovered on
 * receive, inserted on send, the trunk monitor's BPF filter, GRO off.
 *
 *   [nt-<run>-pk]
 *     python3 (oracle: raw frames, tags in the bytes) ── va ══ veth ══ vb ── PacketSocket (under test)
 *     tcpdump -e on va (oracle: the tags on the wire)
 *
 * The kernel takes the outer tag of a received frame out of its bytes into
 * skb metadata before packet sockets see it; the socket must report it from
 * PACKET_AUXDATA. Frames are written and judged by independent tools
 * (python3's socket module, tcpdump), never by the code under test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disableReceiveOffloads, openPacketSocket, type PacketSocket } from '../src/dataplane/packet-socket.js';
import { encodeBpf, trunkMonitorFilter } from '../src/dataplane/vlan/bpf.js';
import { withNetns } from '../src/netconfig/netns.js';
import { SystemError } from '../src/shared/errors.js';
import { Topology, waitFor, type Netns } from './harness.js';

interface Got { tag: string; hex: string; len: number }

const DST = 'ffffffffffff';
const SRC = '020000000001';
const payload = (marker: number): string => Buffer.alloc(46, marker).toString('hex');
/** A frame in hex with the given tags (hex, outermost first) before EtherType IPv4. */
const frameHex = (tags: string[], marker: number): string => DST + SRC + tags.join('') + '0800' + payload(marker);

describe('packet socket on a real kernel', () => {
  let topo: Topology;
  let ns: Netns;
  const open: PacketSocket[] = [];

  /** Sends frames (hex) on `ifname` with python3's AF_PACKET socket: tags stay in the bytes as given. */
  const inject = (ifname: string, frames: string[], repeat = 1): Promise<unknown> => ns.exec('python3', ['-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
    `s.bind((${JSON.stringify(ifname)}, 0))`,
    `for _ in range(${repeat}):`,
    '    for h in sys.argv[1:]: s.send(bytes.fromhex(h))',
  ].join('\n'), ...frames]);

  const listen = (opts: Parameters<typeof openPacketSocket>[1] = {}): { sock: PacketSocket; got: Got[] } => {
    const sock = withNetns(ns.name, () => openPacketSocket('vb', opts));
    open.push(sock);
    const got: Got[] = [];
    sock.onBatch((b) => {
      for (let i = 0; i < b.count; i++) {
        const f = b.frame(i);
        // Keep only our test frames (source MAC 02:..:01), not the kernel's own IPv6 chatter.
        if (f.subarray(6, 12).toString('hex') === SRC) got.push({ tag: b.tags[i]!.toString(16), hex: f.toString('hex'), len: b.lengths[i]! });
      }
    });
    return { sock, got };
  };

  beforeAll(async () => {
    topo = new Topology('packet');
    ns = await topo.netns('pk');
    await ns.ip('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
    await ns.ip('link', 'set', 'va', 'up');
    await ns.ip('link', 'set', 'vb', 'up');
  });

  afterAll(async () => {
    for (const s of open) s.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('reports the outer tag the kernel took off (802.1Q with priority, 802.1ad), none for untagged, the inner tag stays in the bytes', async () => {
    const { sock, got } = listen();
    await inject('va', [
      frameHex(['8100a06e'], 1), // VLAN 110, priority 5
      frameHex(['88a8006e'], 2), // 802.1ad S-tag 110
      frameHex([], 3), // untagged
      frameHex(['8100006e', '810000d2'], 4), // double-tagged: 110 outside, 210 inside
    ]);
    await waitFor('4 frames', () => got.length >= 4);
    expect(got.map((g) => [g.tag, g.len])).toEqual([['8100a06e', 60], ['88a8006e', 60], ['0', 60], ['8100006e', 64]]);
    // The bytes come without the outer tag: EtherType IPv4 at byte 12, or the inner tag for the double-tagged one.
    expect(got.slice(0, 3).map((g) => g.hex.slice(24, 28))).toEqual(['0800', '0800', '0800']);
    expect(got[3]!.hex.slice(24, 36)).toBe('810000d20800');
    expect(sock.counters()).toMatchObject({ rxDrops: 0 });
    sock.close();
  });

  it('reads a burst in batches, full-size tagged frames included', async () => {
    const { sock, got } = listen({ batchSize: 64 });
    const big = DST + SRC + '8100006e' + '0800' + Buffer.alloc(1500, 7).toString('hex'); // 1518 bytes on the wire
    await inject('va', [big], 1);
    await inject('va', [frameHex(['8100006e'], 9)], 1000);
    await waitFor('1001 frames', () => got.length >= 1001, { timeoutMs: 15_000 });
    expect(got[0]).toMatchObject({ tag: '8100006e', len: 1514 });
    expect(got.slice(1).every((g) => g.tag === '8100006e' && g.len === 60)).toBe(true);
    const c = sock.counters();
    expect(c.rxBatches).toBeLessThan(c.rxFrames);
    sock.close();
  });

  it('sends frames with the tag inserted, per frame or for the batch; tcpdump sees the tags; nothing is read back', async () => {
    const { sock, got } = listen();
    const cap = await ns.capture('va', ['ether', 'src', '02:00:00:00:00:01']);
    const f = Buffer.from(frameHex([], 0x5a), 'hex');
    const buf = Buffer.concat([f, f, f]);
    const offsets = new Uint32Array([0, 60, 120]);
    const lengths = new Uint32Array([60, 60, 60]);
    expect(sock.sendBatch(buf, offsets, lengths, 3, new Uint32Array([0x8100006e, 0x88a80078, 0]))).toBe(3);
    expect(sock.sendBatch(buf, offsets, lengths, 2, 0x810000d2)).toBe(2);
    expect(sock.send(f, 0x8100e07b)).toBe(true);
    await waitFor('6 frames captured', async () => (await cap.lines()).length >= 6);
    await cap.stop();
    const lines = await cap.lines();
    const tags = lines.map((l) => {
      const m = /ethertype (802\.1Q(?:-QinQ)?|IPv4) \((0x[0-9a-f]+)\), length (\d+):(?: vlan (\d+), p (\d+),)?/.exec(l);
      return m ? `${m[2]!}${m[4] !== undefined ? ` vlan ${m[4]} p ${m[5]!}` : ''} len ${m[3]!}` : l;
    });
    expect(tags).toEqual([
      '0x8100 vlan 110 p 0 len 64', '0x88a8 vlan 120 p 0 len 64', '0x0800 len 60',
      '0x8100 vlan 210 p 0 len 64', '0x8100 vlan 210 p 0 len 64', '0x8100 vlan 123 p 7 len 64',
    ]);
    expect(sock.counters()).toMatchObject({ txFrames: 6, txDrops: 0 });
    expect(got).toEqual([]); // PACKET_IGNORE_OUTGOING: our own frames are not read back
    sock.close();
  });

  it('the trunk monitor filter lets through exactly the frames the trunk guard drops', async () => {
    const { sock, got } = listen({ filter: encodeBpf(trunkMonitorFilter([110, 120])) });
    await inject('va', [
      frameHex(['8100006e'], 1), // ours: filtered out
      frameHex(['81000078'], 2), // ours: filtered out
      frameHex([], 3), // untagged
      frameHex(['810000d2'], 4), // foreign VLAN 210
      frameHex(['88a8006e'], 5), // foreign TPID
      frameHex(['8100006e', '810000d2'], 6), // double-tagged
      frameHex(['8100006e', '88a800d2'], 7), // double-tagged, 802.1ad inside
    ]);
    await waitFor('5 frames', () => got.length >= 5);
    await new Promise((r) => setTimeout(r, 100));
    expect(got.map((g) => g.hex.slice(-2))).toEqual(['03', '04', '05', '06', '07']);
    // Cut to the monitor's 64 bytes (the 64-byte double-tagged frames fit whole).
    expect(got.map((g) => g.len)).toEqual([60, 60, 60, 64, 64]);
    sock.close();
  });

  it('turns GRO off on the trunk (read back with an independent ETHTOOL_GGRO ioctl)', async () => {
    const ggro = async (): Promise<number> => Number((await ns.exec('python3', ['-c', [
      'import socket, fcntl, struct, array',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'buf = array.array("B", struct.pack("II", 0x2b, 0))',
      'ifr = struct.pack("16sP", b"vb", buf.buffer_info()[0])',
      'fcntl.ioctl(s.fileno(), 0x8946, ifr)',
      'print(struct.unpack("II", buf.tobytes())[1])',
    ].join('\n')])).stdout.trim());
    await ns.exec('python3', ['-c', [
      'import socket, fcntl, struct, array',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'buf = array.array("B", struct.pack("II", 0x2c, 1))',
      'fcntl.ioctl(s.fileno(), 0x8946, struct.pack("16sP", b"vb", buf.buffer_info()[0]))',
    ].join('\n')]);
    expect(await ggro()).toBe(1);
    expect(withNetns(ns.name, () => disableReceiveOffloads('vb'))).toEqual({ gro: true, lro: true });
    expect(await ggro()).toBe(0);
  });

  it('errors: a missing interface, a closed socket, a runt', () => {
    let err: unknown;
    try { withNetns(ns.name, () => openPacketSocket('nosuch0')); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(SystemError);
    expect(err).toMatchObject({ code: 'PACKET_NO_DEVICE', errno: 'ENODEV' });
    expect((err as Error).message).toMatch(/cannot open a packet socket on 'nosuch0'.*no such interface/);
    const sock = withNetns(ns.name, () => openPacketSocket('vb'));
    expect(() => sock.send(Buffer.alloc(10))).toThrow(/at least 14 bytes/);
    sock.close();
    expect(() => sock.send(Buffer.alloc(60))).toThrow(expect.objectContaining({ code: 'PACKET_CLOSED' }) as Error);
  });
});
