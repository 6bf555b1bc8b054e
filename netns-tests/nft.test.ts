/**
 * The nftables layer on a real kernel: NftApplier runs `nft` inside a test
 * namespace; `nft` and `tcpdump` run through `ip netns exec` as oracles.
 *
 *   [nt-<run>-ha]            [nt-<run>-br]  "the appliance"             [nt-<run>-hc]
 *   a0 10.60.0.1/24  ======  pa ─┐                                  ┌─ pc  ======  c0 10.60.0.2/24
 *      fd60::1/64               └──────────── br0 (bridge) ─────────┘                 fd60::2/64
 *   TCP client (python3)      tables bridge/inet nea_<n1>: segment "prod",  TCP server (python3), tcpdump
 *   tcpdump                   extend, ports pa+pc, MSS clamp for WAN 1500
 *                             later also nea_<n2> (another appliance)
 *
 *   [nt-<run>-ex]  the documented example ruleset (every rule kind), applied alone
 *
 * Veths are MTU 1500, so SYNs carry MSS 1460 (IPv4) / 1440 (IPv6); crossing
 * br0 they must be clamped to 1380 / 1360 (computeMssClamp(1500)).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftApplier, spawnNft, type NftRunner } from '../src/netconfig/nft-apply.js';
import type { DesiredFirewall } from '../src/netconfig/nft-desired.js';
import { EXAMPLE_FIREWALL } from '../src/netconfig/nft-example.js';
import { computeMssClamp } from '../src/netconfig/nft-mss.js';
import { ruleNames } from '../src/netconfig/nft-render.js';
import { Topology, run, waitFor, type Netns, type NsProcess } from './harness.js';

const PORT = 5001;

/** Echo server on all addresses (IPv4 and IPv6); prints "listening" when ready. */
const SERVER = `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', ${PORT}))
s.listen(16)
print('listening', flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(1000))
    c.close()
`;

/** Connect to argv[1]:argv[2] (MSS argv[3] when not 0), echo a probe, print the local port. */
const CLIENT = `
import socket, sys
addr, port, mss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_STREAM)
if mss:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
s.settimeout(5)
s.connect((addr, port))
s.sendall(b'nea-probe')
assert s.recv(100) == b'nea-probe'
print(s.getsockname()[1])
s.close()
`;

const clamp = computeMssClamp(1500);

describe('nftables layer on a real kernel', () => {
  let topo: Topology;
  let ha: Netns;
  let br: Netns;
  let hc: Netns;
  let ex: Netns;
  let server: NsProcess;
  let n1: NftApplier;
  let n2: NftApplier;
  let example: NftApplier;
  let id1: string;
  let id2: string;
  let brNetfilter = false;
  const appliers: NftApplier[] = [];

  const desired1 = (): DesiredFirewall => ({
    appliance: id1,
    appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
    segments: [{ name: 'prod', bridge: 'br0', ports: ['pa', 'pc'], mode: 'extend', mss: { ipv4: clamp.ipv4, ipv6: clamp.ipv6 } }],
  });

  /** A second appliance in the same namespace: a gateway segment on another bridge, forward policy drop. */
  const desired2 = (): DesiredFirewall => ({
    appliance: id2,
    appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
    external: { name: 'wan9', publicPool: ['203.0.113.0/24'] },
    segments: [{ name: 'prod', bridge: 'br9', ports: ['p9'], mode: 'gateway', internet: true, subnets: ['10.99.0.1/24'] }],
    publicRules: [{ kind: 'port', name: 'web', segment: 'prod', publicAddress: '203.0.113.80', protocol: 'tcp', publicPort: 80, target: '10.99.0.80' }],
  });

  const listTable = async (ns: Netns, family: string, table: string): Promise<string> => (await ns.exec('nft', ['list', 'table', family, table])).stdout;
  const tables = async (ns?: Netns): Promise<string[]> => {
    const r = ns ? await ns.exec('nft', ['list', 'tables']) : await run('nft', ['list', 'tables']);
    return r.stdout.split('\n').filter((l) => l.startsWith('table ')).map((l) => l.slice('table '.length).trim()).sort();
  };
  const stripCounters = (s: string): string => s.replace(/counter packets \d+ bytes \d+/g, 'counter');
  /**
   * A table as the kernel holds it, for before/after comparisons while
   * unrelated frames (IPv6 ND, TCP teardown) may still tick counters: the
   * `nft -a` listing (with handles, so a re-created table shows) without
   * counter values, and the counter values apart.
   */
  const snapshot = async (ns: Netns, family: string, table: string): Promise<{ rules: string; counts: bigint[] }> => {
    const text = (await ns.exec('nft', ['-a', 'list', 'table', family, table])).stdout;
    return { rules: stripCounters(text), counts: [...text.matchAll(/counter packets (\d+) bytes \d+/g)].map((m) => BigInt(m[1]!)) };
  };
  /** Same rules, same handles, no counter went back (a replaced table restarts at zero). */
  const expectKept = (after: { rules: string; counts: bigint[] }, before: { rules: string; counts: bigint[] }): void => {
    expect(after.rules).toBe(before.rules);
    expect(after.counts.length).toBe(before.counts.length);
    after.counts.forEach((c, i) => { expect(c).toBeGreaterThanOrEqual(before.counts[i]!); });
  };

  /**
   * One TCP connection A → C (optionally with a smaller MSS of the client's
   * own) while both ends capture; returns the MSS of the SYN as C received
   * it and of the SYN-ACK as A received it.
   */
  async function connect(family: 4 | 6, clientMss = 0): Promise<{ synAtC: number; synAckAtA: number }> {
    const [src, dst] = family === 4 ? ['10.60.0.1', '10.60.0.2'] : ['fd60::1', 'fd60::2'];
    const capC = await hc.capture('c0', ['tcp', 'port', String(PORT)]);
    const capA = await ha.capture('a0', ['tcp', 'port', String(PORT)]);
    try {
      const r = await ha.exec('python3', ['-c', CLIENT, dst, String(PORT), String(clientMss)]);
      const localPort = r.stdout.trim();
      const mssOf = (lines: string[], re: RegExp): number | undefined => {
        const l = lines.find((x) => re.test(x));
        const m = l ? /mss (\d+)/.exec(l) : null;
        return m ? Number(m[1]) : undefined;
      };
      const esc = (s: string): string => s.replace(/[.:]/g, '\\$&');
      const synRe = new RegExp(`${esc(src)}\\.${localPort} > ${esc(dst)}\\.${PORT}: Flags \\[S\\]`);
      const synAckRe = new RegExp(`${esc(dst)}\\.${PORT} > ${esc(src)}\\.${localPort}: Flags \\[S\\.\\]`);
      const synAtC = await waitFor('the SYN in the capture on c0', async () => mssOf(await capC.lines(['-v']), synRe));
      const synAckAtA = await waitFor('the SYN-ACK in the capture on a0', async () => mssOf(await capA.lines(['-v']), synAckRe));
      return { synAtC, synAckAtA };
    } finally {
      await capC.stop();
      await capA.stop();
    }
  }

  beforeAll(async () => {
    topo = new Topology('nft');
    id1 = `a_${topo.runId}`;
    id2 = `b_${topo.runId}`;
    ha = await topo.netns('ha');
    br = await topo.netns('br');
    hc = await topo.netns('hc');
    ex = await topo.netns('ex');
    await topo.veth(ha, 'a0', br, 'pa');
    await topo.veth(hc, 'c0', br, 'pc');
    await topo.bridge(br, 'br0', ['pa', 'pc']);
    await ha.ip('addr', 'add', '10.60.0.1/24', 'dev', 'a0');
    await hc.ip('addr', 'add', '10.60.0.2/24', 'dev', 'c0');
    await ha.ip('addr', 'add', 'fd60::1/64', 'dev', 'a0', 'nodad');
    await hc.ip('addr', 'add', 'fd60::2/64', 'dev', 'c0', 'nodad');
    server = hc.spawn('python3', ['-u', '-c', SERVER], 'tcp-server');
    await waitFor('TCP server listening', () => server.stdout.includes('listening') || !server.running);
    expect(server.running).toBe(true);
    await waitFor('ping A -> C across the bridge', async () => (await ha.exec('ping', ['-c', '1', '-W', '1', '10.60.0.2'], { allowFail: true })).code === 0);
    const bnf = await br.exec('cat', ['/proc/sys/net/bridge/bridge-nf-call-iptables'], { allowFail: true });
    brNetfilter = bnf.stdout.trim() === '1';
    n1 = new NftApplier(id1, { netns: br.name });
    n2 = new NftApplier(id2, { netns: br.name });
    example = new NftApplier(EXAMPLE_FIREWALL.appliance, { netns: ex.name });
    appliers.push(n1, n2, example);
  });

  afterAll(async () => {
    // Remove our tables explicitly (they would also vanish with their namespaces), then the namespaces.
    for (const a of appliers) await a.remove().catch(() => undefined);
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
    expect((await tables()).filter((t) => t.includes(topo.runId) || t.endsWith(' nea_acme'))).toEqual([]);
  });

  it('applies inside the given namespace (nft forked from within withNetns), never in the host\'s', async () => {
    const r = await n1.apply(desired1());
    expect(r.changed).toBe(true);
    expect(await tables(br)).toEqual([`bridge nea_${id1}`, `inet nea_${id1}`]);
    expect((await tables()).filter((t) => t.includes(id1))).toEqual([]);
    const bridge = await listTable(br, 'bridge', `nea_${id1}`);
    expect(bridge).toContain(`comment "nea:${r.digest}"`);
    expect(bridge).toContain('iifname { "pa", "pc" } ether type ip tcp flags syn tcp option maxseg size > 1380 counter packets 0 bytes 0 tcp option maxseg size set 1380 comment "mss-prod-v4"');
    expect(bridge).toContain('iifname { "pa", "pc" } ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter packets 0 bytes 0 tcp option maxseg size set 1360 comment "mss-prod-v6"');
    expect(await listTable(br, 'inet', `nea_${id1}`)).toContain('policy drop;');
  });

  it('(a) clamps the MSS of IPv4 SYNs crossing the extended bridge, both directions; (e) counters grow', async () => {
    const before = await n1.readCounters();
    const got = await connect(4);
    expect(got).toEqual({ synAtC: clamp.ipv4, synAckAtA: clamp.ipv4 });
    const after = await n1.readCounters();
    expect(after.get('mss-prod-v4')!.packets - before.get('mss-prod-v4')!.packets).toBe(2n);
    expect(after.get('mss-prod-v4')!.bytes).toBeGreaterThan(before.get('mss-prod-v4')!.bytes);
    expect(after.get('mss-prod-v6')!.packets).toBe(before.get('mss-prod-v6')!.packets);
    expect(after.get('mss-prod-v4')).toMatchObject({ family: 'bridge', chain: 'forward' });
    if (brNetfilter) {
      // br_netfilter hands bridged IP to the inet forward hook: the policy-drop chain must let the segment's own traffic by.
      expect(after.get('bridged-prod')!.packets).toBeGreaterThan(before.get('bridged-prod')!.packets);
      expect(after.get('default-drop')!.packets).toBe(before.get('default-drop')!.packets);
    }
  });

  it('(a) clamps IPv6 SYNs to the IPv6 value', async () => {
    const before = await n1.readCounters();
    expect(await connect(6)).toEqual({ synAtC: clamp.ipv6, synAckAtA: clamp.ipv6 });
    const after = await n1.readCounters();
    expect(after.get('mss-prod-v6')!.packets - before.get('mss-prod-v6')!.packets).toBe(2n);
  });

  it('(a) never raises a smaller MSS', async () => {
    const got = await connect(4, 1200);
    expect(got.synAtC).toBe(1200);
    expect(got.synAckAtA).toBe(clamp.ipv4);
  });

  it('(b) applying the same state again changes nothing (same tables, counters kept); forced, the same rules anew', async () => {
    const bridge = await snapshot(br, 'bridge', `nea_${id1}`);
    const inet = await snapshot(br, 'inet', `nea_${id1}`);
    const plain = await listTable(br, 'bridge', `nea_${id1}`);
    const plainInet = stripCounters(await listTable(br, 'inet', `nea_${id1}`));
    expect(bridge.counts.some((c) => c > 0n)).toBe(true);
    expect((await n1.apply(desired1())).changed).toBe(false);
    expectKept(await snapshot(br, 'bridge', `nea_${id1}`), bridge);
    expectKept(await snapshot(br, 'inet', `nea_${id1}`), inet);
    // The clamp counters only move with TCP handshakes, so here the text is identical as is.
    expect(await listTable(br, 'bridge', `nea_${id1}`)).toBe(plain);
    expect((await n1.apply(desired1(), { force: true })).changed).toBe(true);
    const forced = await listTable(br, 'bridge', `nea_${id1}`);
    expect(stripCounters(forced)).toBe(stripCounters(plain));
    expect(forced).not.toMatch(/counter packets [1-9]/);
    expect(stripCounters(await listTable(br, 'inet', `nea_${id1}`))).toBe(plainInet);
    // Replaced, not kept: the table is a new one (new handle).
    expect((await snapshot(br, 'inet', `nea_${id1}`)).rules).not.toBe(inet.rules);
    expect((await n1.apply(desired1(), { force: true })).changed).toBe(true);
    expect(await listTable(br, 'bridge', `nea_${id1}`)).toBe(forced);
  });

  it('(c) a ruleset the kernel refuses changes nothing and reports nft\'s reason', async () => {
    await connect(4); // some counts, so a reset would show
    const bridge = await snapshot(br, 'bridge', `nea_${id1}`);
    const inet = await snapshot(br, 'inet', `nea_${id1}`);
    // A new state (another clamp) plus, past validation, a rule the kernel refuses: DNAT in a filter chain.
    const real = spawnNft({ netns: br.name });
    const injected: NftRunner = (args, input) => real(args, input === undefined ? input : `${input}add rule inet nea_${id1} forward ip daddr 192.0.2.1 dnat ip to 10.60.0.9\n`);
    const bad = new NftApplier(id1, { runner: injected });
    const other = { ...desired1(), segments: [{ ...desired1().segments[0]!, mss: { ipv4: 1300, ipv6: 1280 } }] };
    const err = await bad.apply(other).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'NftApplyError', code: 'NFT_APPLY_FAILED' });
    expect((err as Error).message).toMatch(new RegExp(`nft refused the ruleset of nea_${id1}, previous ruleset kept: .*Error: Could not process rule: Operation not supported`));
    expectKept(await snapshot(br, 'bridge', `nea_${id1}`), bridge);
    expectKept(await snapshot(br, 'inet', `nea_${id1}`), inet);
    // ... and it still works.
    expect((await connect(4)).synAtC).toBe(clamp.ipv4);
  });

  it('(c) a script nft cannot parse changes nothing either', async () => {
    const bridge = await snapshot(br, 'bridge', `nea_${id1}`);
    const inet = await snapshot(br, 'inet', `nea_${id1}`);
    const real = spawnNft({ netns: br.name });
    const bad = new NftApplier(id1, { runner: (args, input) => real(args, input === undefined ? input : `${input}add rule inet nea_${id1} forward counter acept\n`) });
    await expect(bad.apply({ ...desired1(), segments: [{ ...desired1().segments[0]!, ports: ['pa'] }] })).rejects.toThrow(/syntax error/);
    expectKept(await snapshot(br, 'bridge', `nea_${id1}`), bridge);
    expectKept(await snapshot(br, 'inet', `nea_${id1}`), inet);
  });

  it('(d) two appliances in one namespace: neither disturbs the other; removing one leaves the other', async () => {
    expect((await n2.apply(desired2())).changed).toBe(true);
    expect(await tables(br)).toEqual([`bridge nea_${id1}`, `bridge nea_${id2}`, `inet nea_${id1}`, `inet nea_${id2}`].sort());
    // Appliance 2's forward chain (policy drop) judges only its own bridge: appliance 1's segment still works.
    const before2 = await n2.readCounters();
    expect((await connect(4)).synAtC).toBe(clamp.ipv4);
    const after2 = await n2.readCounters();
    if (brNetfilter) expect(after2.get('not-ours')!.packets).toBeGreaterThan(before2.get('not-ours')!.packets);
    expect(after2.get('default-drop')!.packets).toBe(before2.get('default-drop')!.packets);
    expect([...after2.keys()]).toEqual(ruleNames(desired2()));

    const keep = await snapshot(br, 'inet', `nea_${id2}`);
    await n1.remove();
    expect(await tables(br)).toEqual([`bridge nea_${id2}`, `inet nea_${id2}`]);
    expectKept(await snapshot(br, 'inet', `nea_${id2}`), keep);
    await n1.remove(); // idempotent
    await expect(n1.readCounters()).rejects.toMatchObject({ code: 'NFT_READ_FAILED' });
    // Without appliance 1 the SYN crosses unclamped.
    expect((await connect(4)).synAtC).toBe(1460);
    // Back, from nothing.
    expect((await n1.apply(desired1())).changed).toBe(true);
    expect((await connect(4)).synAtC).toBe(clamp.ipv4);
  });

  it('the kernel accepts every rule kind the renderer writes (the documented example)', async () => {
    await example.apply(EXAMPLE_FIREWALL);
    const counters = await example.readCounters();
    expect([...counters.keys()]).toEqual(ruleNames(EXAMPLE_FIREWALL));
    const inet = await listTable(ex, 'inet', 'nea_acme');
    expect(inet).toContain('dnat ip to 10.2.0.10:8443 comment "dnat-https"');
    expect(inet).toContain('dnat ip6 to [fd00:2::10]:443 comment "dnat-https6"');
    expect(inet).toContain('snat ip to 203.0.113.18 comment "snat-db1"');
  });

  it('(f) remove leaves no table behind', async () => {
    for (const a of appliers) await a.remove();
    expect(await tables(br)).toEqual([]);
    expect(await tables(ex)).toEqual([]);
    // The kernel's own record too: nothing in the JSON listing.
    const j = JSON.parse((await br.exec('nft', ['-j', 'list', 'ruleset'])).stdout) as { nftables: object[] };
    expect(j.nftables.filter((o) => !('metainfo' in o))).toEqual([]);
  });
});
