/**
 * Full site failover and failback on the SP appliance, switched at run time
 * (SIGHUP) while traffic runs, with the tunnel session untouched.
 *
 *   production site                                  SP
 *   [prod]   10.1.0.20 ──┐                           ┌── c10 ── [replica] 10.1.0.10, fd00:1::10
 *   [prodgw] 10.1.0.1  ──┤ [site] sw ── p0 [tenant]  [sp] nea-br10     (gateway 10.1.0.1, fd00:1::1)
 *            fd00:1::1   │            wan0 192.0.2.1 ── wan0 192.0.2.2
 *                                                       ext0 203.0.113.2 ── [inet] 203.0.113.1 / 198.51.100.1
 *                                                                                    └── [client] 198.51.100.10
 *
 * Segment 10 (`servers`) is extended through the tunnel. `prodgw` is the
 * production gateway, authoritative during partial failover. The site is
 * "lost" by taking prodgw down; the SP switches segment 10 to gateway mode
 * (it takes over 10.1.0.1 and fd00:1::1, announces them, cuts the tunnel
 * leg, SNATs to the internet, maps 203.0.113.17:80 to the replica); on
 * failback it switches back to extend and prodgw returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';
import { ApplianceProc, addressesOf, fetchText, host, httpClients, httpService, pings } from './gateway-kit.js';

const PORT = 51820;

describe('mode switch extend → gateway → extend under traffic, tunnel session unchanged', () => {
  const topo = new Topology('modeswitch');
  const ns: Record<string, Netns> = {};
  const keys = { tenant: generatePrivateKey(), sp: generatePrivateKey() };
  let tenant: ApplianceProc;
  let sp: ApplianceProc;
  let internetWeb: NsProcess;
  let replicaWeb: NsProcess;
  let probe: NsProcess;
  const marks: Record<string, number> = {};

  const spSegment = (mode: string): Record<string, unknown> =>
    ({ id: 10, name: 'servers', uplink: 'c10', mode, internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } });
  const spConfig = (mode: string): Record<string, unknown> => ({
    role: 'sp', name: 'sp-a', privateKey: encodeKey(keys.sp),
    tunnel: { listenPort: PORT, peers: [{ publicKey: encodeKey(publicKeyOf(keys.tenant)), segments: [10] }] },
    external: { interface: 'ext0', addresses: ['203.0.113.2/24'], defaultRoute: { ipv4: '203.0.113.1' }, publicPool: ['203.0.113.16/28'] },
    segments: [spSegment(mode)],
    publicRules: [{ name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 }],
  });
  const handshakes = (a: ApplianceProc): number | undefined => a.status()?.tunnel?.peers[0]?.counters.handshakes;
  const macOf = async (n: Netns, dev: string): Promise<string> => (JSON.parse((await n.ip('-j', 'link', 'show', dev)).stdout) as { address: string }[])[0]!.address;
  const neighbourMac = async (n: Netns, addr: string): Promise<string | undefined> =>
    /lladdr (\S+)/.exec((await n.ip('neigh', 'show', addr, 'dev', 'eth0')).stdout)?.[1];
  /** Replies of the background probe (replica → prod) received between two instants (ms since the epoch). */
  const probeReplies = (from: number, to: number): number =>
    [...probe.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from 10\.1\.0\.20/gm)].map((m) => Number(m[1]) * 1000).filter((t) => t >= from && t < to).length;

  beforeAll(async () => {
    for (const n of ['prod', 'prodgw', 'site', 'tenant', 'sp', 'replica', 'inet', 'client']) ns[n] = await topo.netns(n);
    await topo.veth(ns.site!, 'h1', ns.prod!, 'eth0');
    await topo.veth(ns.site!, 'h2', ns.prodgw!, 'eth0');
    await topo.veth(ns.site!, 't0', ns.tenant!, 'p0');
    await topo.bridge(ns.site!, 'sw', ['h1', 'h2', 't0']);
    await host(ns.prod!, 'eth0', '10.1.0.20/24', { gw: '10.1.0.1' });
    await host(ns.prodgw!, 'eth0', '10.1.0.1/24', { v6: 'fd00:1::1/64' });
    await topo.veth(ns.tenant!, 'wan0', ns.sp!, 'wan0');
    await ns.tenant!.ip('addr', 'add', '192.0.2.1/24', 'dev', 'wan0');
    await ns.sp!.ip('addr', 'add', '192.0.2.2/24', 'dev', 'wan0');
    await topo.veth(ns.sp!, 'c10', ns.replica!, 'eth0');
    await host(ns.replica!, 'eth0', '10.1.0.10/24', { gw: '10.1.0.1', v6: 'fd00:1::10/64', gw6: 'fd00:1::1' });
    await topo.veth(ns.sp!, 'ext0', ns.inet!, 'pa');
    await ns.inet!.ip('addr', 'add', '203.0.113.1/24', 'dev', 'pa');
    await topo.veth(ns.inet!, 'c0', ns.client!, 'eth0');
    await ns.inet!.ip('addr', 'add', '198.51.100.1/24', 'dev', 'c0');
    await ns.inet!.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await host(ns.client!, 'eth0', '198.51.100.10/24', { gw: '198.51.100.1' });
    internetWeb = await httpService(topo, ns.client!, '198.51.100.10', 8000, 'the internet');
    replicaWeb = await httpService(topo, ns.replica!, '10.1.0.10', 8080, 'the replica');

    tenant = new ApplianceProc(topo, ns.tenant!, 'tenant', {
      role: 'tenant', name: 'tenant-a', privateKey: encodeKey(keys.tenant),
      tunnel: { listenPort: PORT, peers: [{ publicKey: encodeKey(publicKeyOf(keys.sp)), endpoint: `192.0.2.2:${PORT}`, segments: [10] }] },
      segments: [{ id: 10, name: 'servers', uplink: 'p0' }],
    });
    sp = new ApplianceProc(topo, ns.sp!, 'sp', spConfig('extend'));
    await Promise.all([sp.start(), tenant.start()]);
    await waitFor('replica ⇄ production through the tunnel', () => pings(ns.replica!, '10.1.0.20'), { timeoutMs: 15_000 });
    await waitFor('handshake counted on both sides', () => (handshakes(sp) ?? 0) >= 1 && (handshakes(tenant) ?? 0) >= 1);
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('extend: production ⇄ replica at L2, the production gateway answers, the SP holds no address on the segment', async () => {
    expect(await pings(ns.replica!, '10.1.0.20', 3)).toBe(true);
    expect(await pings(ns.prod!, '10.1.0.10', 3)).toBe(true);
    expect(await pings(ns.replica!, '10.1.0.1')).toBe(true);
    expect(await pings(ns.replica!, 'fd00:1::1')).toBe(true);
    expect(await neighbourMac(ns.replica!, '10.1.0.1')).toBe(await macOf(ns.prodgw!, 'eth0'));
    // No address of the appliance on the segment, not even an IPv6 link-local one.
    expect(await addressesOf(ns.sp!, 'nea-br10')).toEqual([]);
    expect((await ns.sp!.ip('-6', 'addr', 'show', 'dev', 'nea-br10')).stdout).toBe('');
    // No public mapping in extend mode.
    expect(await fetchText(ns.client!, 'http://203.0.113.17/', 1)).toBeUndefined();
    expect(sp.status()?.network?.segments).toEqual([{ id: 10, mode: 'extend', internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } }]);
    // Take the marks once the start-up handshake has settled: the status files are rewritten every
    // second, and an initiation retried at start-up (REKEY_TIMEOUT, 5 s) may still complete. Counts
    // unchanged across 6 s of fresh status files mean the session in use is the one the switch must keep.
    const settled = async (): Promise<string> => {
      const t = Date.now();
      await waitFor('fresh status files', () => Date.parse(sp.status()!.updatedAt) > t && Date.parse(tenant.status()!.updatedAt) > t, { timeoutMs: 5000 });
      return `${handshakes(sp)}/${handshakes(tenant)}`;
    };
    await waitFor('handshake counts settled', async () => {
      const a = await settled();
      await new Promise((r) => setTimeout(r, 6000));
      return a === (await settled());
    }, { timeoutMs: 40_000 });
    marks.handshakesSp = handshakes(sp)!;
    marks.handshakesTenant = handshakes(tenant)!;
    marks.spPid = sp.status()!.pid;
    // Background traffic for the whole sequence: the replica pings production every 50 ms.
    probe = ns.replica!.spawn('ping', ['-D', '-i', '0.05', '-W', '1', '10.1.0.20'], 'probe');
    marks.extendStart = Date.now();
    await waitFor('probe answered', () => probeReplies(marks.extendStart!, Date.now() + 1) >= 5);
  });

  it('site lost → gateway: the SP takes over 10.1.0.1 and fd00:1::1 (GARP, NA), replicas reach the internet, production is cut off', async () => {
    await ns.prodgw!.ip('link', 'set', 'eth0', 'down');
    const replicaCap = await ns.replica!.capture('eth0', ['arp', 'or', 'icmp6']);
    const prodCap = await ns.prod!.capture('eth0', ['arp', 'or', 'icmp6']);
    const routerCap = await ns.inet!.capture('pa', ['arp']);
    marks.gatewayAt = Date.now();
    expect(await sp.reload(spConfig('gateway'))).toMatchObject({ ok: true });
    const spMac = await macOf(ns.sp!, 'nea-br10');
    // The replica's cached entries move to the SP without it asking (announcements), within the first announcement round.
    await waitFor('replica neighbour 10.1.0.1 → SP', async () => (await neighbourMac(ns.replica!, '10.1.0.1')) === spMac, { timeoutMs: 3000, intervalMs: 20 });
    await waitFor('replica neighbour fd00:1::1 → SP', async () => (await neighbourMac(ns.replica!, 'fd00:1::1')) === spMac, { timeoutMs: 3000, intervalMs: 20 });
    expect(await addressesOf(ns.sp!, 'nea-br10')).toEqual(['10.1.0.1/24', 'fd00:1::1/64']);
    // Gateway behaviour: out to the internet as the SP's address, reachable through the public address.
    expect(await pings(ns.replica!, '198.51.100.10', 3)).toBe(true);
    expect(await fetchText(ns.replica!, 'http://198.51.100.10:8000/')).toBe('the internet');
    expect(httpClients(internetWeb).at(-1)).toBe('203.0.113.2');
    expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('the replica');
    expect(httpClients(replicaWeb).at(-1)).toBe('198.51.100.10');
    await waitFor('the SP answers on its IPv6 gateway address', () => pings(ns.replica!, 'fd00:1::1'), { timeoutMs: 5000 });
    // Production is cut off: no L2 path, and production never hears the takeover.
    expect(await pings(ns.prod!, '10.1.0.10', 2)).toBe(false);
    expect(await pings(ns.prod!, '10.1.0.1', 2)).toBe(false);
    await waitFor('three announcement rounds', async () => {
      const l = await replicaCap.lines();
      return l.filter((x) => /who-has 10\.1\.0\.1 tell 10\.1\.0\.1|Announcement,? 10\.1\.0\.1/.test(x)).length >= 3 &&
        l.filter((x) => x.includes('neighbor advertisement, tgt is fd00:1::1')).length >= 3;
    }, { timeoutMs: 5000 });
    // The public address is announced to the SP's router too.
    await waitFor('public address announced on the external interface', async () =>
      (await routerCap.lines()).filter((x) => /who-has 203\.0\.113\.17 tell 203\.0\.113\.17|Announcement,? 203\.0\.113\.17/.test(x)).length >= 3, { timeoutMs: 5000 });
    await replicaCap.stop();
    await prodCap.stop();
    await routerCap.stop();
    const spFrames = (await prodCap.lines()).filter((l) => l.includes(spMac));
    expect(spFrames).toEqual([]);
    // The tunnel was not touched: same process, same session.
    expect(sp.status()!.pid).toBe(marks.spPid);
    expect(handshakes(sp)).toBe(marks.handshakesSp);
    expect(handshakes(tenant)).toBe(marks.handshakesTenant);
  });

  it('failback → extend: the address leaves the segment, production ⇄ replica again, no public mapping, same tunnel session', async () => {
    await new Promise((r) => setTimeout(r, 1000));
    marks.extendAgainAt = Date.now();
    expect(await sp.reload(spConfig('extend'))).toMatchObject({ ok: true });
    await ns.prodgw!.ip('link', 'set', 'eth0', 'up');
    expect(await addressesOf(ns.sp!, 'nea-br10')).toEqual([]);
    expect((await ns.sp!.ip('-6', 'addr', 'show', 'dev', 'nea-br10')).stdout).toBe('');
    await waitFor('replica ⇄ production again', () => pings(ns.replica!, '10.1.0.20'), { timeoutMs: 5000 });
    expect(await pings(ns.prod!, '10.1.0.10', 3)).toBe(true);
    expect(await fetchText(ns.client!, 'http://203.0.113.17/', 1)).toBeUndefined();
    await waitFor('probe answered again', () => probeReplies(marks.extendAgainAt!, Date.now() + 1) >= 5);
    const end = Date.now();
    await probe.stop('SIGINT');
    // The probe ran throughout: answered in extend, never while the segment was the SP's (after the switch settled), answered again.
    expect(probeReplies(marks.extendStart!, marks.gatewayAt!)).toBeGreaterThan(5);
    expect(probeReplies(marks.gatewayAt! + 500, marks.extendAgainAt)).toBe(0);
    expect(probeReplies(marks.extendAgainAt, end + 1)).toBeGreaterThan(5);
    expect(sp.status()!.pid).toBe(marks.spPid);
    expect(handshakes(sp)).toBe(marks.handshakesSp);
    expect(handshakes(tenant)).toBe(marks.handshakesTenant);
    expect(sp.status()?.network).toMatchObject({ generation: 3, lastError: null, publicAddresses: [] });
  });
});
