/**
 * The encrypted L2 tunnel between a tenant and an SP appliance, on a real kernel.
 *
 *  [prod] eth0 ─── p0 [tenant]              [sp] c0 ─── eth0 [cloud]
 *   198.51.100.1    │  nea-br10 ─ nea-tap10   nea-tap10 ─ nea-br10 │   198.51.100.2
 *                   │  `nea appliance run`    `nea appliance run`  │
 *                   wan0 192.0.2.1 ──── WAN veth, MTU 1500 ──── wan0 192.0.2.2
 *
 * The two hosts share one subnet across the tunnel (segment 10).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplianceStatus } from '../src/appliance/daemon.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import { Topology, waitFor, type Capture, type Netns, type NsProcess } from './harness.js';

const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));
const PORT = 51820;

interface Side {
  ns: Netns;
  dir: string;
  config: string;
  proc?: NsProcess;
}

describe('encrypted L2 tunnel (tenant ⟷ SP)', () => {
  let topo: Topology;
  let prod: Netns;
  let cloud: Netns;
  const sides: Record<'tenant' | 'sp', Side> = {} as Record<'tenant' | 'sp', Side>;
  const keys = { tenant: generatePrivateKey(), sp: generatePrivateKey() };

  const status = (s: Side): ApplianceStatus | undefined => {
    try { return JSON.parse(readFileSync(join(s.dir, 'status.json'), 'utf8')) as ApplianceStatus; } catch { return undefined; }
  };
  const start = (s: Side): NsProcess => {
    s.proc = s.ns.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', s.config, '--state-dir', s.dir], 'nea');
    return s.proc;
  };
  const ping = (from: Netns, to: string, args: string[] = []): Promise<{ code: number; stdout: string }> =>
    from.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', ...args, to], { allowFail: true });

  beforeAll(async () => {
    topo = new Topology('tunnel');
    prod = await topo.netns('prod');
    cloud = await topo.netns('cloud');
    for (const role of ['tenant', 'sp'] as const) {
      const dir = mkdtempSync(join(tmpdir(), `nea-${role}-`));
      sides[role] = { ns: await topo.netns(role), dir, config: join(dir, 'appliance.json') };
    }
    const t = sides.tenant;
    const s = sides.sp;
    await topo.veth(prod, 'eth0', t.ns, 'p0');
    await topo.veth(cloud, 'eth0', s.ns, 'c0');
    await topo.veth(t.ns, 'wan0', s.ns, 'wan0', { mtu: 1500 });
    await prod.ip('addr', 'add', '198.51.100.1/24', 'dev', 'eth0');
    await cloud.ip('addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    await t.ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'wan0');
    await s.ns.ip('addr', 'add', '192.0.2.2/24', 'dev', 'wan0');
    writeFileSync(t.config, JSON.stringify({
      role: 'tenant', name: 'tenant-a', privateKey: encodeKey(keys.tenant),
      tunnel: { listenPort: PORT, peers: [{ publicKey: encodeKey(publicKeyOf(keys.sp)), endpoint: `192.0.2.2:${PORT}`, segments: [10] }] },
      segments: [{ id: 10, name: 'servers', uplink: 'p0' }],
    }));
    writeFileSync(s.config, JSON.stringify({
      role: 'sp', name: 'sp-a', privateKey: encodeKey(keys.sp),
      tunnel: { listenPort: PORT, peers: [{ publicKey: encodeKey(publicKeyOf(keys.tenant)), segments: [10] }] },
      segments: [{ id: 10, name: 'servers', uplink: 'c0' }],
    }));
    start(s);
    start(t);
    await waitFor('both appliances running', () => status(t)?.tunnel && status(s)?.tunnel, { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    await topo.cleanup();
    for (const s of Object.values(sides)) rmSync(s.dir, { recursive: true, force: true });
    expect(topo.leftovers()).toEqual([]);
  });

  it('ARP and ping work between the hosts, both directions', async () => {
    await waitFor('ping prod → cloud', async () => (await ping(prod, '198.51.100.2', ['-c', '1'])).code === 0, { timeoutMs: 15_000 });
    expect((await ping(prod, '198.51.100.2')).code).toBe(0);
    expect((await ping(cloud, '198.51.100.1')).code).toBe(0);
    const neigh = await prod.ip('neigh', 'show', '198.51.100.2');
    expect(neigh.stdout).toMatch(/lladdr [0-9a-f:]{17}/);
    // Both sides report the handshake (the status file is rewritten every second).
    await waitFor('handshake in both statuses', () =>
      status(sides.tenant)?.tunnel?.peers[0]?.lastHandshakeAgoMs != null && status(sides.sp)?.tunnel?.peers[0]?.lastHandshakeAgoMs != null);
  });

  it('a full-size frame crosses the 1500-byte WAN: 1472-byte ping with DF set', async () => {
    const r = await ping(prod, '198.51.100.2', ['-M', 'do', '-s', '1472']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('1480 bytes from 198.51.100.2');
  });

  it('TCP and UDP (iperf3) work through the tunnel', async () => {
    const server = cloud.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', '198.51.100.2'], 'iperf3-server');
    await waitFor('iperf3 server', () => server.stdout.includes('listening'));
    const syns = await cloud.capture('eth0', ['tcp[tcpflags] & tcp-syn != 0']);
    const tcp = await prod.exec('iperf3', ['-c', '198.51.100.2', '-t', '2', '-J'], { timeoutMs: 30_000 });
    await syns.stop();
    // The SP appliance clamped the SYN's MSS (1460 from the host) so a full segment fits one WAN datagram.
    const pureSyns = (await syns.lines(['-v', 'tcp[tcpflags] == tcp-syn'])).join('\n');
    expect(pureSyns).toMatch(/mss 1380/);
    expect(pureSyns).not.toMatch(/mss 1460/);
    const tcpRes = JSON.parse(tcp.stdout) as { end: { sum_received: { bytes: number } } };
    expect(tcpRes.end.sum_received.bytes).toBeGreaterThan(1_000_000);
    await server.wait();
    const server2 = cloud.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', '198.51.100.2'], 'iperf3-server');
    await waitFor('iperf3 server', () => server2.stdout.includes('listening'));
    const udp = await prod.exec('iperf3', ['-c', '198.51.100.2', '-u', '-b', '20M', '-l', '1200', '-t', '2', '-J'], { timeoutMs: 30_000 });
    const udpRes = JSON.parse(udp.stdout) as { end: { sum: { packets: number; lost_percent: number } } };
    expect(udpRes.end.sum.packets).toBeGreaterThan(1000);
    expect(udpRes.end.sum.lost_percent).toBeLessThan(5);
    await server2.wait();
  });

  it('the WAN carries only UDP to the tunnel port, never the hosts\' plaintext', async () => {
    const cap = await sides.sp.ns.capture('wan0');
    const marker = '4e45412d53454352'; // "NEA-SECR" as ping's fill pattern
    expect((await ping(prod, '198.51.100.2', ['-p', marker, '-s', '200'])).code).toBe(0);
    await cap.stop();
    const lines = await cap.lines();
    expect(lines.length).toBeGreaterThan(0);
    const tunnelUdp = new RegExp(`192\\.0\\.2\\.[12]\\.${PORT} > 192\\.0\\.2\\.[12]\\.${PORT}: UDP`);
    // Anything else but the WAN link's own neighbour discovery is a leak.
    expect(lines.filter((l) => !tunnelUdp.test(l) && !/ethertype (ARP|IPv6)/.test(l))).toEqual([]);
    for (const hex of await cap.hexPackets()) expect(hex).not.toContain(marker.repeat(2));
  });

  describe('silence and replay', () => {
    let cap: Capture;
    let stranger: Netns;

    beforeAll(async () => {
      // A stranger on the WAN, beside the tenant.
      stranger = await topo.netns('stranger');
      await topo.veth(stranger, 'wan0', sides.sp.ns, 'wan1');
      await stranger.ip('addr', 'add', '192.0.2.66/24', 'dev', 'wan0');
      await sides.sp.ns.ip('addr', 'add', '192.0.2.65/24', 'dev', 'wan1');
    });

    it('replayed transport packets and a replayed initiation are rejected; nothing answers a stranger', async () => {
      // Capture a fresh handshake and some traffic from the tenant.
      cap = await sides.sp.ns.capture('wan0', ['udp', 'and', 'src', 'host', '192.0.2.1']);
      await sides.tenant.proc!.stop('SIGTERM');
      start(sides.tenant);
      await waitFor('traffic after the restart', async () => (await ping(prod, '198.51.100.2', ['-c', '1'])).code === 0, { timeoutMs: 15_000 });
      await cap.stop();
      const pkts = await cap.hexPackets();
      // UDP payload starts after Ethernet 14 + IPv4 20 + UDP 8 = 42 bytes (84 hex digits).
      const payloads = pkts.map((h) => h.slice(84));
      const initiation = payloads.find((p) => p.startsWith('01000000'));
      const transport = payloads.filter((p) => p.startsWith('04000000') && p.length > 64);
      expect(initiation).toBeDefined();
      expect(transport.length).toBeGreaterThan(0);

      const before = status(sides.sp)!.tunnel!.unauthenticatedDrops;
      const spCap = await sides.sp.ns.capture('wan1');
      const script = [
        'import socket, os, sys',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's.bind(("192.0.2.66", 40000))',
        'for h in sys.argv[1:]: s.sendto(bytes.fromhex(h), ("192.0.2.65", 51820))',
        'for i in range(2000):',
        '    n = (i * 37) % 300 + 1',
        '    b = bytearray(os.urandom(n))',
        '    if i % 3 == 0 and n > 4: b[0] = 1 + i % 4; b[1:4] = b"\\0\\0\\0"',
        '    s.sendto(bytes(b), ("192.0.2.65", 51820))',
      ].join('\n');
      await stranger.exec('python3', ['-c', script, initiation!, ...transport]);
      await waitFor('the SP counted the replays', () => {
        const d = status(sides.sp)!.tunnel!.unauthenticatedDrops;
        return (d.replay ?? 0) >= (before.replay ?? 0) + transport.length;
      });
      const drops = status(sides.sp)!.tunnel!.unauthenticatedDrops;
      expect((drops['replayed-timestamp'] ?? 0) + (drops['initiation-flood'] ?? 0)).toBeGreaterThan(
        (before['replayed-timestamp'] ?? 0) + (before['initiation-flood'] ?? 0));
      await spCap.stop();
      const replies = (await spCap.lines()).filter((l) => l.includes('192.0.2.65.51820 >'));
      expect(replies).toEqual([]);
      // The tunnel still works.
      expect((await ping(prod, '198.51.100.2')).code).toBe(0);
    });

    it('junk at the tunnel port does not disturb a running transfer', async () => {
      const server = cloud.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', '198.51.100.2'], 'iperf3-server');
      await waitFor('iperf3 server', () => server.stdout.includes('listening'));
      const transfer = prod.exec('iperf3', ['-c', '198.51.100.2', '-t', '3', '-J'], { timeoutMs: 30_000 });
      const flood = [
        'import socket, os, time',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        'end = time.time() + 2.5',
        'i = 0',
        'while time.time() < end:',
        '    b = bytearray(os.urandom(1 + (i * 53) % 1400))',
        '    b[0] = 1 + i % 4',
        '    s.sendto(bytes(b), ("192.0.2.65", 51820)); i += 1',
        'print(i)',
      ].join('\n');
      const sent = Number((await stranger.exec('python3', ['-c', flood])).stdout.trim());
      const res = JSON.parse((await transfer).stdout) as { end: { sum_received: { bytes: number } } };
      await server.wait();
      expect(sent).toBeGreaterThan(1000);
      // The transfer completed and moved real data while the junk arrived.
      expect(res.end.sum_received.bytes).toBeGreaterThan(5_000_000);
      expect((await ping(prod, '198.51.100.2')).code).toBe(0);
    });
  });

  it('a killed SP appliance restarted: traffic resumes within 10 s without operator action', async () => {
    await sides.sp.proc!.stop('SIGKILL');
    const t0 = Date.now();
    start(sides.sp);
    await waitFor('traffic resumes', async () => (await ping(prod, '198.51.100.2', ['-c', '1', '-W', '1'])).code === 0, { timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('roaming: the SP follows the tenant to its new address, on authenticated packets only', async () => {
    const t = sides.tenant.ns;
    await t.ip('addr', 'del', '192.0.2.1/24', 'dev', 'wan0');
    await t.ip('addr', 'add', '192.0.2.11/24', 'dev', 'wan0');
    await waitFor('traffic from the new address', async () => (await ping(prod, '198.51.100.2', ['-c', '1', '-W', '1'])).code === 0, { timeoutMs: 10_000 });
    await waitFor('the SP saw the new endpoint', () => status(sides.sp)!.tunnel!.peers[0]!.endpoint === `192.0.2.11:${PORT}`);
    expect((await ping(cloud, '198.51.100.1')).code).toBe(0);
  });
});
