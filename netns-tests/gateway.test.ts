/**
 * Full site failover on the SP side: the appliance as the replicas'
 * gateway, their way to the internet, public IP rules, and two tenants with
 * identical replica subnets, on a real kernel.
 *
 *   [client] eth0 198.51.100.10 ──── c0 198.51.100.1 [inet] (router)
 *            2001:db8:c::10              2001:db8:c::1
 *                                        br-pub 203.0.113.1/24, 2001:db8:ff::1/64 (the SP's provider network)
 *                                        ├─ pa ──── ext0 203.0.113.2 [spA] pool 203.0.113.16/28
 *                                        │          2001:db8:ff::2        2001:db8:ff::100/120
 *                                        └─ pb ──── ext0 203.0.113.3 [spB] pool 203.0.113.32/28
 *   tenant A (spA):
 *     nea-br10 (gateway 10.1.0.1/24, fd00:1::1/64, internet) ── c10 ── [cloudA] sw ─┬─ [a1] 10.1.0.10, fd00:1::10
 *                                                                     │        http :8080 "A a1" (v4 and v6), push :9100
 *                                                                     └─ [a11] 10.1.0.11
 *     nea-br20 (gateway 10.2.0.1/24, no internet) ── c20 ── [a2] 10.2.0.10 http :8081, :9000
 *   tenant B (spB):
 *     nea-br10 (gateway 10.1.0.1/24, internet) ── c10 ── [b1] 10.1.0.10 http :8080 "B b1"
 *                                                 (same address and MAC as a1)
 *
 * Public IP rules: A  203.0.113.17 tcp/80 → a1:8080, 203.0.113.17 tcp/9100 → a1:9100, 203.0.113.18 1:1 → a2,
 *                     [2001:db8:ff::117] tcp/80 → [fd00:1::10]:8080;
 *                  B  203.0.113.33 tcp/80 → b1:8080.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';
import { ApplianceProc, conntrackLines, fetchText, host, httpClients, httpService, pings } from './gateway-kit.js';

const SAME_MAC = '02:00:00:00:10:10';

function spConfig(name: string, ext: string, pool: string, rules: Record<string, unknown>[], segments: Record<string, unknown>[], v6?: { ext: string; pool: string }): Record<string, unknown> {
  return {
    role: 'sp', name,
    external: {
      interface: 'ext0', addresses: [`${ext}/24`, ...(v6 ? [`${v6.ext}/64`] : [])],
      defaultRoute: { ipv4: '203.0.113.1', ...(v6 && { ipv6: '2001:db8:ff::1' }) }, publicPool: [pool, ...(v6 ? [v6.pool] : [])],
    },
    segments, publicRules: rules,
  };
}

const A_RULES = [
  { name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 },
  { name: 'push', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 9100, target: '10.1.0.10' },
  { name: 'db', kind: 'address', segment: 20, publicAddress: '203.0.113.18', target: '10.2.0.10' },
  { name: 'web6', kind: 'port', segment: 10, publicAddress: '2001:db8:ff::117', protocol: 'tcp', publicPort: 80, target: 'fd00:1::10', targetPort: 8080 },
];
const A_V6 = { ext: '2001:db8:ff::2', pool: '2001:db8:ff::100/120' };
const A_SEGMENTS = [
  { id: 10, name: 'web', uplink: 'c10', mode: 'gateway', internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } },
  { id: 20, name: 'db', uplink: 'c20', mode: 'gateway', gateway: { ipv4: '10.2.0.1/24' } },
];
const B_RULES = [{ name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.33', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 }];
const B_SEGMENTS = [{ id: 10, name: 'web', uplink: 'c10', mode: 'gateway', internet: true, gateway: { ipv4: '10.1.0.1/24' } }];

describe('gateway takeover, internet and public IP rules (two tenants, identical subnets)', () => {
  const topo = new Topology('gateway');
  const ns: Record<string, Netns> = {};
  let spA: ApplianceProc;
  let spB: ApplianceProc;
  let internetWeb: NsProcess;
  let internetWeb6: NsProcess;
  const web: Record<string, NsProcess> = {};

  beforeAll(async () => {
    for (const n of ['client', 'inet', 'spA', 'spB', 'cloudA', 'a1', 'a11', 'a2', 'b1']) ns[n] = await topo.netns(n);
    // The internet: a router between the client's network and the SP's provider network.
    await topo.veth(ns.client!, 'eth0', ns.inet!, 'c0');
    await host(ns.client!, 'eth0', '198.51.100.10/24', { gw: '198.51.100.1', v6: '2001:db8:c::10/64', gw6: '2001:db8:c::1' });
    await ns.inet!.ip('addr', 'add', '198.51.100.1/24', 'dev', 'c0');
    await ns.inet!.ip('addr', 'add', '2001:db8:c::1/64', 'dev', 'c0', 'nodad');
    await topo.veth(ns.inet!, 'pa', ns.spA!, 'ext0');
    await topo.veth(ns.inet!, 'pb', ns.spB!, 'ext0');
    await topo.bridge(ns.inet!, 'br-pub', ['pa', 'pb']);
    await ns.inet!.ip('addr', 'add', '203.0.113.1/24', 'dev', 'br-pub');
    await ns.inet!.ip('addr', 'add', '2001:db8:ff::1/64', 'dev', 'br-pub', 'nodad');
    await ns.inet!.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // Tenant A's cloud: segment 10 on a switch with two replicas, segment 20 with one.
    await topo.veth(ns.spA!, 'c10', ns.cloudA!, 'uplink');
    await topo.veth(ns.cloudA!, 'p1', ns.a1!, 'eth0');
    await topo.veth(ns.cloudA!, 'p11', ns.a11!, 'eth0');
    await topo.bridge(ns.cloudA!, 'sw', ['uplink', 'p1', 'p11']);
    await host(ns.a1!, 'eth0', '10.1.0.10/24', { gw: '10.1.0.1', mac: SAME_MAC, v6: 'fd00:1::10/64', gw6: 'fd00:1::1' });
    await host(ns.a11!, 'eth0', '10.1.0.11/24', { gw: '10.1.0.1' });
    await topo.veth(ns.spA!, 'c20', ns.a2!, 'eth0');
    await host(ns.a2!, 'eth0', '10.2.0.10/24', { gw: '10.2.0.1' });
    // Tenant B: the same subnet, address and MAC.
    await topo.veth(ns.spB!, 'c10', ns.b1!, 'eth0');
    await host(ns.b1!, 'eth0', '10.1.0.10/24', { gw: '10.1.0.1', mac: SAME_MAC });

    internetWeb = await httpService(topo, ns.client!, '198.51.100.10', 8000, 'the internet');
    internetWeb6 = await httpService(topo, ns.client!, '2001:db8:c::10', 8000, 'the internet over IPv6');
    web.a1 = await httpService(topo, ns.a1!, '10.1.0.10', 8080, 'replica a1 of tenant A');
    web.a1v6 = await httpService(topo, ns.a1!, 'fd00:1::10', 8080, 'replica a1 of tenant A over IPv6');
    web.a2 = await httpService(topo, ns.a2!, '10.2.0.10', 8081, 'replica a2 of tenant A, port 8081');
    web.a2b = await httpService(topo, ns.a2!, '10.2.0.10', 9000, 'replica a2 of tenant A, port 9000');
    web.b1 = await httpService(topo, ns.b1!, '10.1.0.10', 8080, 'replica b1 of tenant B');
    // A pushing service on a1: a line every 20 ms to whoever connects, until the connection breaks.
    ns.a1!.spawn('python3', ['-u', '-c', [
      'import socket, threading, time',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.1.0.10", 9100)); s.listen()',
      'def serve(c):',
      '    i = 0',
      '    try:',
      '        while True:',
      '            c.sendall(b"line %d\\n" % i); i += 1; time.sleep(0.02)',
      '    except OSError as e:',
      '        print("push ended:", e, flush=True)',
      'while True:',
      '    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()',
    ].join('\n')], 'push');

    spA = new ApplianceProc(topo, ns.spA!, 'spA', spConfig('sp-a', '203.0.113.2', '203.0.113.16/28', A_RULES, A_SEGMENTS, A_V6));
    spB = new ApplianceProc(topo, ns.spB!, 'spB', spConfig('sp-b', '203.0.113.3', '203.0.113.32/28', B_RULES, B_SEGMENTS));
    await Promise.all([spA.start(), spB.start()]);
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('the appliance holds the gateway address, its own and the mapped public addresses; nothing on the provider network answers for a replica', async () => {
    const addrs = (await ns.spA!.ip('-j', 'addr')).stdout;
    expect(addrs).toContain('"local":"10.1.0.1","prefixlen":24');
    expect(addrs).toContain('"local":"203.0.113.17","prefixlen":32');
    expect(addrs).toContain('"local":"203.0.113.18","prefixlen":32');
    // The router resolves the public addresses to the right appliance (ARP answered on ext0).
    expect(await pings(ns.inet!, '203.0.113.17')).toBe(true);
    expect(await pings(ns.inet!, '203.0.113.33')).toBe(true);
    const neigh = (await ns.inet!.ip('neigh', 'show', 'dev', 'br-pub')).stdout;
    const macOf = async (n: Netns): Promise<string> => (JSON.parse((await n.ip('-j', 'link', 'show', 'ext0')).stdout) as { address: string }[])[0]!.address;
    expect(neigh).toMatch(new RegExp(`203\\.0\\.113\\.17 lladdr ${await macOf(ns.spA!)}`));
    expect(neigh).toMatch(new RegExp(`203\\.0\\.113\\.33 lladdr ${await macOf(ns.spB!)}`));
    expect(spA.status()?.network).toMatchObject({ generation: 1, lastError: null, publicAddresses: ['203.0.113.17/32', '203.0.113.18/32', '2001:db8:ff::117/128'] });
  });

  it('gateway + internet: a replica pings and fetches from the internet host, which sees the SP\'s public address', async () => {
    expect(await pings(ns.a1!, '198.51.100.10', 3)).toBe(true);
    expect(await fetchText(ns.a1!, 'http://198.51.100.10:8000/')).toBe('the internet');
    expect(await fetchText(ns.b1!, 'http://198.51.100.10:8000/')).toBe('the internet');
    expect(httpClients(internetWeb)).toEqual(expect.arrayContaining(['203.0.113.2', '203.0.113.3']));
    expect(httpClients(internetWeb).filter((a) => a.startsWith('10.'))).toEqual([]);
  });

  it('without internet: no way out (ping, TCP), and nothing of it reaches the internet side', async () => {
    const cap = await ns.inet!.capture('br-pub', ['icmp', 'or', 'tcp', 'port', '8000']);
    const served = httpClients(internetWeb).length;
    expect(await pings(ns.a2!, '198.51.100.10', 3)).toBe(false);
    expect(await fetchText(ns.a2!, 'http://198.51.100.10:8000/', 1)).toBeUndefined();
    await cap.stop();
    expect(await cap.lines()).toEqual([]);
    expect(httpClients(internetWeb)).toHaveLength(served);
  });

  it('IPv6: a replica reaches the internet host through NAT66 as the SP\'s address; a public IPv6 port mapping reaches the replica', async () => {
    // The SP's IPv6 addresses finish duplicate address detection first.
    await waitFor('IPv6 egress', async () => (await fetchText(ns.a1!, 'http://[2001:db8:c::10]:8000/', 1)) === 'the internet over IPv6', { timeoutMs: 10_000 });
    // (The client's own requests are http.server's readiness checks.)
    const seen = httpClients(internetWeb6).filter((a) => a !== '2001:db8:c::10');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((a) => a !== '2001:db8:ff::2')).toEqual([]);
    await waitFor('IPv6 mapping', async () => (await fetchText(ns.client!, 'http://[2001:db8:ff::117]/', 1)) === 'replica a1 of tenant A over IPv6', { timeoutMs: 10_000 });
    expect(httpClients(web.a1v6!)).toContain('2001:db8:c::10');
  });

  it('public IP:port reaches the replica\'s TCP service; other ports of that address do not', async () => {
    expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('replica a1 of tenant A');
    expect(httpClients(web.a1!)).toContain('198.51.100.10');
    expect(await fetchText(ns.client!, 'http://203.0.113.17:8080/', 1)).toBeUndefined();
  });

  it('1:1 mapping: every port and ICMP of the public address reach the replica', async () => {
    expect(await fetchText(ns.client!, 'http://203.0.113.18:8081/')).toBe('replica a2 of tenant A, port 8081');
    expect(await fetchText(ns.client!, 'http://203.0.113.18:9000/')).toBe('replica a2 of tenant A, port 9000');
    const cap = await ns.a2!.capture('eth0', ['icmp']);
    expect(await pings(ns.client!, '203.0.113.18', 2)).toBe(true);
    await cap.stop();
    expect((await cap.lines()).some((l) => l.includes('198.51.100.10 > 10.2.0.10: ICMP echo request'))).toBe(true);
  });

  it('tenants with identical replica addresses: each public address reaches only its own tenant\'s replica', async () => {
    const capA = await ns.a1!.capture('eth0', ['host', '198.51.100.10']);
    const capB = await ns.b1!.capture('eth0', ['host', '198.51.100.10']);
    const servedA = httpClients(web.a1!).length;
    const servedB = httpClients(web.b1!).length;
    for (let i = 0; i < 5; i++) {
      expect(await fetchText(ns.client!, 'http://203.0.113.33/')).toBe('replica b1 of tenant B');
    }
    await capA.stop();
    expect(await capA.lines()).toEqual([]);
    expect(httpClients(web.a1!)).toHaveLength(servedA);
    const capA2 = await ns.a1!.capture('eth0', ['host', '198.51.100.10']);
    for (let i = 0; i < 5; i++) {
      expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('replica a1 of tenant A');
    }
    await capA2.stop();
    await capB.stop();
    // B's replica saw exactly its own 5 requests, none of A's.
    expect(httpClients(web.b1!)).toHaveLength(servedB + 5);
    expect((await capB.lines()).filter((l) => /> 10\.1\.0\.10\.8080: Flags \[S\]/.test(l))).toHaveLength(5);
    // Tenant A's public address on tenant B's appliance (or the reverse) goes nowhere.
    expect(await fetchText(ns.client!, 'http://203.0.113.33:9100/', 1)).toBeUndefined();
  });

  it('hairpin: replicas reach a replica through its public address, from the same segment and from another', async () => {
    expect(await fetchText(ns.a11!, 'http://203.0.113.17/')).toBe('replica a1 of tenant A');
    expect(await fetchText(ns.a2!, 'http://203.0.113.17/')).toBe('replica a1 of tenant A');
    // Without routeBetweenSegments, the replica's own address stays out of reach from the other segment.
    expect(await fetchText(ns.a2!, 'http://10.1.0.10:8080/', 1)).toBeUndefined();
  });

  it('removing a mapping stops its established flow at once (conntrack entries deleted), other rules keep working', async () => {
    // An established TCP flow through the mapping: the replica pushes a line every 20 ms.
    const reader = ns.client!.spawn('python3', ['-u', '-c', [
      'import socket, sys, time',
      's = socket.create_connection(("203.0.113.17", 9100), timeout=30)',
      'n = 0',
      'try:',
      '    while True:',
      '        d = s.recv(4096)',
      '        if not d: break',
      '        n += d.count(b"\\n"); print("lines", n, flush=True)',
      'except OSError as e:',
      '    print("ended:", e, flush=True)',
    ].join('\n')], 'push-reader');
    const lines = (): number => Number(/lines (\d+)\n(?![\s\S]*lines)/.exec(reader.stdout)?.[1] ?? 0);
    await waitFor('the pushed flow runs', () => lines() > 20);
    const tracked = (await conntrackLines(ns.spA!)).filter((l) => l.includes('dst=203.0.113.17') && l.includes('dport=9100'));
    expect(tracked.length).toBe(1);
    expect(tracked[0]).toContain('ESTABLISHED');

    const r = await spA.reload(spConfig('sp-a', '203.0.113.2', '203.0.113.16/28', A_RULES.filter((x) => x.name !== 'push'), A_SEGMENTS, A_V6));
    expect(r).toMatchObject({ ok: true, generation: 2 });
    expect(spA.status()?.network?.conntrack.deleted).toBeGreaterThanOrEqual(1);
    expect((await conntrackLines(ns.spA!)).filter((l) => l.includes('dst=203.0.113.17') && l.includes('dport=9100'))).toEqual([]);
    // The flow stops: within a second nothing more arrives.
    await new Promise((res) => setTimeout(res, 1000));
    const after = lines();
    await new Promise((res) => setTimeout(res, 1500));
    expect(lines()).toBe(after);
    // A new connection is refused or times out; the web rule still works.
    const again = await ns.client!.exec('python3', ['-c', 'import socket; socket.create_connection(("203.0.113.17", 9100), timeout=2)'], { allowFail: true });
    expect(again.code).not.toBe(0);
    expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('replica a1 of tenant A');
    await reader.stop();
  });
});
