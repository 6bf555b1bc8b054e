/**
 * netconfig against a real kernel: the rtnetlink client and the reconciler,
 * checked through the client and through `ip -j` as an independent oracle.
 *
 * Each scenario gets fresh namespaces of this run (nt-<run>-<name>):
 *
 *   client round trip (ns "rt")          peer moves (ns "pa", "pb")
 *   +--------------------------------+   +-----------+      +-----------+
 *   | br0 (bridge) 10.20.0.1/24      |   | a0 ====== |======| b0        |  by name
 *   |   fd20::1/64                   |   | a1 ====== |======| b1        |  by fd
 *   |   `-- v0 (veth) == v1          |   +-----------+      +-----------+
 *   | routes: default, ::/0, 10.30/16|
 *   | neighbours 10.20.0.9, fd20::9  |
 *   +--------------------------------+
 *
 *   reconcile (ns "rc", "rc2", "wk")     counters (ns "sa", "sb")
 *   +--------------------------------+   +----------------+      +----------------+
 *   | br0 (bridge, mtu 1450)         |   | s0 10.50.0.1/24|======| t0 10.50.0.2/24|
 *   |   `-- v0 == v1 (same ns)       |   +----------------+      +----------------+
 *   | vx (veth) == px in ns "rc2"    |      ping s -> t; rx/tx counters must grow
 *   | default via, ::/0 via, neigh   |
 *   +--------------------------------+
 */
import { openSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemError } from '../src/shared/errors.js';
import { createLogger } from '../src/shared/log.js';
import { LinkConflictError, OWNER_ALIAS, describeChange, type DesiredNetwork } from '../src/netconfig/desired.js';
import { Netlink } from '../src/netconfig/netlink.js';
import { netnsPath } from '../src/netconfig/netns.js';
import { ReconcileError, reconcile } from '../src/netconfig/reconcile.js';
import { Topology, run, waitFor, type Netns } from './harness.js';

interface IpLink {
  ifname: string;
  mtu: number;
  address?: string;
  master?: string;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string };
  stats64?: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } };
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; tentative?: boolean }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
}
interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
}

async function ipJson<T>(ns: Netns, ...args: string[]): Promise<T> {
  const r = await ns.ip('-j', ...args);
  return JSON.parse(r.stdout || '[]') as T;
}

async function ipLink(ns: Netns, name: string): Promise<IpLink | undefined> {
  const all = await ipJson<IpLink[]>(ns, '-d', 'link', 'show');
  return all.find((l) => l.ifname === name);
}

async function ipAddrs(ns: Netns, dev: string): Promise<string[]> {
  const all = await ipJson<IpAddr[]>(ns, 'addr', 'show', 'dev', dev);
  return all.flatMap((l) => l.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`)).sort();
}

/** `ip -j -d link/addr/route/neigh` of a namespace, minus counters that tick by themselves (bridge timers). */
async function snapshot(ns: Netns): Promise<string> {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).filter(([k]) => !k.endsWith('_timer')).map(([k, x]) => [k, strip(x)]));
    }
    return v;
  };
  const parts = await Promise.all([
    ipJson(ns, '-d', 'link', 'show'),
    ipJson(ns, 'addr', 'show'),
    ipJson(ns, 'route', 'show', 'table', 'all'),
    ipJson(ns, '-6', 'route', 'show', 'table', 'all'),
    ipJson(ns, 'neigh', 'show', 'nud', 'permanent'),
  ]);
  return JSON.stringify(strip(parts), null, 1);
}

/** Wait until IPv6 duplicate address detection is over on every address (tentative flags go). */
async function dadDone(ns: Netns): Promise<void> {
  await waitFor(`DAD done in ${ns.name}`, async () => {
    const all = await ipJson<IpAddr[]>(ns, 'addr', 'show');
    return all.every((l) => l.addr_info.every((a) => a.tentative !== true));
  }, { timeoutMs: 10_000 });
}

describe('netconfig on a real kernel', () => {
  let topo: Topology;
  const clients: Netlink[] = [];
  const open = (ns: Netns): Netlink => {
    const c = Netlink.open({ netns: ns.name });
    clients.push(c);
    return c;
  };

  /** Links of the host namespace: switching namespaces must never leave anything there. */
  const hostLinks = async (): Promise<string[]> =>
    (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
  let hostBefore: string[] = [];

  beforeAll(async () => {
    topo = new Topology('netconfig');
    hostBefore = await hostLinks();
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
    // Other suites may add and remove host links of their own meanwhile; none of ours may be there.
    const ours = ['br0', 'v0', 'v1', 'v9', 'a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'vx', 'px', 's0', 't0', 'tap0', 'wrong0', 'theirs0'];
    expect((await hostLinks()).filter((l) => ours.includes(l) && !hostBefore.includes(l))).toEqual([]);
  });

  it('client round trip: bridge, veth, mtu/mac/up, master, v4+v6 addresses, routes, permanent neighbours; then delete', async () => {
    const ns = await topo.netns('rt');
    const nl = open(ns);

    const br = await nl.addBridge('br0');
    expect(br).toMatchObject({ name: 'br0', kind: 'bridge', up: false });
    const v0 = await nl.addVeth('v0', 'v1', { mtu: 1450 });
    expect(v0).toMatchObject({ name: 'v0', kind: 'veth', mtu: 1450 });
    expect((await nl.link('v1'))?.index).toBe(v0.parentIndex);

    await nl.setMtu('v0', 1400);
    await nl.setMac('v0', '02:00:00:00:20:01');
    await nl.setMaster('v0', 'br0');
    await nl.setUp('v0', true);
    await nl.setUp('v1', true);
    await nl.setMtu(br.index, 1400);
    await nl.setUp('br0', true);
    await nl.addAddress('br0', '10.20.0.1/24');
    await nl.addAddress('br0', 'fd20::1/64');
    await nl.addRoute({ dst: 'default', gateway: '10.20.0.254', dev: 'br0' });
    await nl.addRoute({ dst: '::/0', gateway: 'fd20::fe', dev: 'br0' });
    await nl.addRoute({ dst: '10.30.0.0/16', gateway: '10.20.0.253', dev: 'br0', metric: 50 });
    await nl.addRoute({ dst: '10.31.0.0/16', dev: 'br0', table: 1000 });
    await nl.addNeighbour({ dev: 'br0', address: '10.20.0.9', mac: '02:00:00:00:20:09' });
    await nl.addNeighbour({ dev: 'br0', address: 'fd20::9', mac: '02:00:00:00:20:0a' });

    // Read back through the client.
    const v0now = await nl.link('v0');
    expect(v0now).toMatchObject({ kind: 'veth', mtu: 1400, mac: '02:00:00:00:20:01', master: br.index, up: true });
    expect(await nl.link('br0')).toMatchObject({ kind: 'bridge', up: true, mtu: 1400 });
    expect((await nl.addresses({ link: 'br0' })).map((a) => a.cidr)).toEqual(expect.arrayContaining(['10.20.0.1/24', 'fd20::1/64']));
    const routes = await nl.routes();
    expect(routes).toEqual(expect.arrayContaining([
      expect.objectContaining({ family: 4, dst: '0.0.0.0/0', gateway: '10.20.0.254', oif: br.index, table: 254, metric: 0, protocol: 4 }),
      expect.objectContaining({ family: 6, dst: '::/0', gateway: 'fd20::fe', oif: br.index, metric: 1024 }),
      expect.objectContaining({ family: 4, dst: '10.30.0.0/16', gateway: '10.20.0.253', metric: 50 }),
      expect.objectContaining({ family: 4, dst: '10.31.0.0/16', table: 1000, scope: 253 }),
    ]));
    expect(await nl.routes({ table: 1000 })).toHaveLength(1);
    expect(await nl.neighbours({ link: 'br0' })).toEqual(expect.arrayContaining([
      expect.objectContaining({ family: 4, address: '10.20.0.9', mac: '02:00:00:00:20:09', permanent: true }),
      expect.objectContaining({ family: 6, address: 'fd20::9', mac: '02:00:00:00:20:0a', permanent: true }),
    ]));

    // The same through ip -j.
    expect(await ipLink(ns, 'v0')).toMatchObject({ mtu: 1400, address: '02:00:00:00:20:01', master: 'br0', linkinfo: { info_kind: 'veth' } });
    expect((await ipLink(ns, 'v0'))?.flags).toContain('UP');
    expect(await ipLink(ns, 'br0')).toMatchObject({ linkinfo: { info_kind: 'bridge' } });
    expect(await ipAddrs(ns, 'br0')).toEqual(['10.20.0.1/24', 'fd20::1/64']);
    expect(await ipJson<IpRoute[]>(ns, 'route', 'show')).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.20.0.254', dev: 'br0', protocol: 'static' }),
      expect.objectContaining({ dst: '10.30.0.0/16', gateway: '10.20.0.253', metric: 50 }),
    ]));
    expect(await ipJson<IpRoute[]>(ns, 'route', 'show', 'table', '1000')).toEqual([expect.objectContaining({ dst: '10.31.0.0/16', dev: 'br0' })]);
    expect(await ipJson<IpRoute[]>(ns, '-6', 'route', 'show')).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: 'fd20::fe', dev: 'br0', metric: 1024 }),
    ]));
    expect(await ipJson<IpNeigh[]>(ns, 'neigh', 'show', 'dev', 'br0', 'nud', 'permanent')).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '10.20.0.9', lladdr: '02:00:00:00:20:09', state: ['PERMANENT'] }),
      expect.objectContaining({ dst: 'fd20::9', lladdr: '02:00:00:00:20:0a', state: ['PERMANENT'] }),
    ]));

    // Replace in place.
    await nl.replaceRoute({ dst: '10.30.0.0/16', gateway: '10.20.0.252', dev: 'br0', metric: 50 });
    await nl.replaceNeighbour({ dev: 'br0', address: '10.20.0.9', mac: '02:00:00:00:20:99' });
    expect(await ipJson<IpRoute[]>(ns, 'route', 'show', '10.30.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.20.0.252' })]);
    expect(await ipJson<IpNeigh[]>(ns, 'neigh', 'show', '10.20.0.9', 'dev', 'br0')).toEqual([expect.objectContaining({ lladdr: '02:00:00:00:20:99' })]);

    // Delete everything again, checking each is gone.
    await nl.deleteNeighbour({ dev: 'br0', address: '10.20.0.9' });
    await nl.deleteNeighbour({ dev: 'br0', address: 'fd20::9' });
    expect(await ipJson<IpNeigh[]>(ns, 'neigh', 'show', 'dev', 'br0', 'nud', 'permanent')).toEqual([]);
    await nl.deleteRoute({ dst: '0.0.0.0/0', gateway: '10.20.0.254', dev: 'br0' });
    await nl.deleteRoute({ dst: '::/0', dev: 'br0' });
    await nl.deleteRoute({ dst: '10.30.0.0/16', dev: 'br0', metric: 50 });
    await nl.deleteRoute({ dst: '10.31.0.0/16', dev: 'br0', table: 1000 });
    expect((await nl.routes()).filter((r) => r.protocol === 4)).toEqual([]);
    expect(await ipJson<IpRoute[]>(ns, 'route', 'show', 'proto', 'static', 'table', 'all')).toEqual([]);
    await nl.deleteAddress('br0', '10.20.0.1/24');
    await nl.deleteAddress('br0', 'fd20::1/64');
    expect(await ipAddrs(ns, 'br0')).toEqual([]);
    await nl.setMaster('v0', null);
    expect((await nl.link('v0'))?.master).toBeUndefined();
    expect((await ipLink(ns, 'v0'))?.master).toBeUndefined();
    await nl.setUp('v0', false);
    expect((await ipLink(ns, 'v0'))?.flags).not.toContain('UP');
    await nl.deleteLink('v0');
    expect(await nl.link('v0')).toBeUndefined();
    expect(await nl.link('v1')).toBeUndefined(); // a veth goes with its peer
    await nl.deleteLink('br0');
    expect(await ns.links()).toEqual(['lo']);
  });

  it('client errors are SystemErrors with the errno and a one-line message', async () => {
    const ns = await topo.netns('er');
    const nl = open(ns);
    await nl.addBridge('br0');
    await nl.addVeth('v0', 'v1');

    const errOf = async (p: Promise<unknown>): Promise<SystemError> => {
      try {
        await p;
      } catch (e) {
        expect(e).toBeInstanceOf(SystemError);
        expect((e as Error).message).not.toContain('\n');
        return e as SystemError;
      }
      throw new Error('expected a failure');
    };
    const same = await errOf(nl.addBridge('br0'));
    expect([same.errno, same.syscall, same.code]).toEqual(['EEXIST', 'RTM_NEWLINK', 'NETLINK_FAILED']);
    expect(same.message).toBe(`add bridge br0 in netns ${ns.name}: EEXIST (a link named br0 already exists (also a bridge))`);
    const other = await errOf(nl.addBridge('v0'));
    expect(other.message).toContain('EEXIST (a link named v0 already exists (as a veth, not a bridge))');
    const peerTaken = await errOf(nl.addVeth('v9', 'br0'));
    expect(peerTaken.errno).toBe('EEXIST');
    expect(peerTaken.message).toContain('EEXIST (the peer name br0 is taken by a bridge)');
    expect((await errOf(nl.setMtu('nope0', 1500))).message).toContain('ENODEV (no link named nope0)');
    await ns.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
    const mtu = await errOf(nl.setMtu('tap0', 65535)); // a TAP takes at most 65521
    expect(mtu.errno).toBe('EINVAL');
    expect(mtu.message).toContain('MTU outside what the link accepts');
    expect((await nl.link('tap0'))?.maxMtu).toBe(65521);
    expect((await errOf(nl.deleteAddress('br0', '10.99.0.1/24'))).errno).toBe('EADDRNOTAVAIL');
    expect((await errOf(nl.deleteRoute({ dst: '10.99.0.0/16', dev: 'br0' }))).errno).toBe('ESRCH');
    expect((await errOf(nl.addRoute({ dst: '10.99.0.0/16', gateway: '10.98.0.1', dev: 'br0' }))).errno).toMatch(/^(ENETUNREACH|ENETDOWN)$/);
    expect((await errOf(nl.deleteNeighbour({ dev: 'br0', address: '10.99.0.1' }))).errno).toBe('ENOENT');
    await nl.addAddress('br0', '10.20.0.1/24');
    expect((await errOf(nl.addAddress('br0', '10.20.0.1/24'))).message).toContain('EEXIST (the link already has that address)');
    expect((await ns.links()).sort()).toEqual(['br0', 'lo', 'tap0', 'v0', 'v1']);
  });

  it('creates a veth with its peer in another namespace, by name and by fd', async () => {
    const a = await topo.netns('pa');
    const b = await topo.netns('pb');
    const nl = open(a);
    const a0 = await nl.addVeth('a0', 'b0', { peerNetns: b.name, mac: '02:00:00:00:0a:00', peerMac: '02:00:00:00:0b:00', peerMtu: 1300 });
    expect(a0.parentNetnsId).toBeDefined();
    const fd = openSync(netnsPath(b.name), 'r');
    try {
      await nl.addVeth('a1', 'b1', { peerNetns: { fd } });
    } finally {
      closeSync(fd);
    }
    expect(await a.links()).toEqual(['lo', 'a0', 'a1']);
    expect(await b.links()).toEqual(['lo', 'b0', 'b1']);
    expect(await ipLink(b, 'b0')).toMatchObject({ address: '02:00:00:00:0b:00', mtu: 1300, linkinfo: { info_kind: 'veth' } });
    const nb = open(b);
    expect(await nb.link('b0')).toMatchObject({ kind: 'veth', mac: '02:00:00:00:0b:00', mtu: 1300, parentIndex: a0.index });
    const missing = nl.addVeth('a2', 'b2', { peerNetns: 'nt-no-such-namespace' });
    await expect(missing).rejects.toThrow(/cannot open netns nt-no-such-namespace \(ENOENT\)/);
  });

  it('refuses to open in a namespace that does not exist', () => {
    expect(() => Netlink.open({ netns: 'nt-no-such-namespace' })).toThrow(/cannot open network namespace/);
  });

  describe('reconcile', () => {
    let ns: Netns;
    let far: Netns;
    let nl: Netlink;
    const desired = (): DesiredNetwork => ({
      links: [
        { name: 'br0', kind: 'bridge', mtu: 1450, mac: '02:00:00:00:40:01', addresses: ['10.40.0.1/24', '10.40.0.2/24', 'fd40::1/64'] },
        { name: 'v0', kind: 'veth', peer: 'v1', master: 'br0', mtu: 1450 },
        { name: 'v1', kind: 'veth', peer: 'v0', mtu: 1450 },
        { name: 'vx', kind: 'veth', peer: 'px', peerNetns: far.name, addresses: ['10.41.0.1/30'] },
      ],
      routes: [
        { dst: 'default', via: '10.40.0.254', dev: 'br0' },
        { dst: '::/0', via: 'fd40::fe', dev: 'br0' },
        { dst: '10.42.0.0/16', via: '10.41.0.2', dev: 'vx', metric: 20 },
      ],
      neighbours: [
        { dev: 'br0', address: '10.40.0.254', mac: '02:00:00:00:40:fe' },
        { dev: 'br0', address: 'fd40::fe', mac: '02:00:00:00:40:fe' },
      ],
    });

    beforeAll(async () => {
      ns = await topo.netns('rc');
      far = await topo.netns('rc2');
      nl = open(ns);
    });

    it('applies a desired state from scratch; the kernel shows it', async () => {
      const changes = await reconcile(nl, desired());
      expect(changes.map(describeChange)).toEqual([
        'add bridge br0 mtu 1450 address 02:00:00:00:40:01',
        'add veth v0 peer v1 mtu 1450',
        `add veth vx peer px in netns ${far.name}`,
        'set v1 mtu 1450',
        'mark v1 as managed',
        'set v0 master br0',
        'set br0 up',
        'set v0 up',
        'set v1 up',
        'set vx up',
        'add address 10.40.0.1/24 to br0',
        'add address 10.40.0.2/24 to br0',
        'add address fd40::1/64 to br0',
        'add address 10.41.0.1/30 to vx',
        'add route 0.0.0.0/0 via 10.40.0.254 dev br0 metric 0',
        'add route ::/0 via fd40::fe dev br0 metric 1024',
        'add route 10.42.0.0/16 via 10.41.0.2 dev vx metric 20',
        'add neighbour 10.40.0.254 lladdr 02:00:00:00:40:fe dev br0',
        'add neighbour fd40::fe lladdr 02:00:00:00:40:fe dev br0',
      ]);
      expect(await ipLink(ns, 'br0')).toMatchObject({ mtu: 1450, address: '02:00:00:00:40:01', ifalias: OWNER_ALIAS, linkinfo: { info_kind: 'bridge' } });
      expect(await ipLink(ns, 'v0')).toMatchObject({ mtu: 1450, master: 'br0', ifalias: OWNER_ALIAS });
      expect(await ipLink(ns, 'v1')).toMatchObject({ mtu: 1450, ifalias: OWNER_ALIAS });
      expect(await far.links()).toEqual(['lo', 'px']);
      expect(await ipAddrs(ns, 'br0')).toEqual(['10.40.0.1/24', '10.40.0.2/24', 'fd40::1/64']);
      expect(await ipJson<IpRoute[]>(ns, 'route', 'show', 'default')).toEqual([expect.objectContaining({ gateway: '10.40.0.254', dev: 'br0' })]);
      expect(await ipJson<IpRoute[]>(ns, 'route', 'show', '10.42.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.41.0.2', dev: 'vx', metric: 20 })]);
      expect(await ipJson<IpRoute[]>(ns, '-6', 'route', 'show', 'default')).toEqual([expect.objectContaining({ gateway: 'fd40::fe', dev: 'br0' })]);
      expect((await ipJson<IpNeigh[]>(ns, 'neigh', 'show', 'nud', 'permanent')).map((n) => `${n.dst} ${n.lladdr ?? ''}`).sort())
        .toEqual(['10.40.0.254 02:00:00:00:40:fe', 'fd40::fe 02:00:00:00:40:fe']);
    });

    it('is idempotent: a second apply changes nothing, and ip -j -d shows the same state', async () => {
      await dadDone(ns);
      const before = await snapshot(ns);
      expect(await reconcile(nl, desired())).toEqual([]);
      expect(await snapshot(ns)).toBe(before);
      expect(await reconcile(nl, desired())).toEqual([]);
    });

    it('converges after out-of-band changes, fixing exactly those', async () => {
      await ns.ip('link', 'set', 'br0', 'mtu', '1400');
      await ns.ip('addr', 'del', 'fd40::1/64', 'dev', 'br0');
      await ns.ip('addr', 'add', '10.40.0.77/24', 'dev', 'br0');
      await ns.ip('route', 'del', '10.42.0.0/16');
      await ns.ip('route', 'add', '10.43.0.0/16', 'via', '10.40.0.254', 'dev', 'br0');
      await ns.ip('link', 'set', 'v0', 'nomaster');
      await ns.ip('neigh', 'replace', '10.40.0.254', 'lladdr', '02:00:00:00:40:ee', 'dev', 'br0', 'nud', 'permanent');
      await ns.ip('link', 'set', 'vx', 'down');
      const changes = await reconcile(nl, desired());
      expect(changes.map(describeChange)).toEqual([
        'set br0 mtu 1450',
        'set v0 master br0',
        'set vx up',
        'delete route 10.43.0.0/16 via 10.40.0.254 dev br0 metric 0',
        'delete address 10.40.0.77/24 from br0',
        'add address fd40::1/64 to br0',
        // Deleted above (setting vx down would have flushed it too); it comes back once.
        'add route 10.42.0.0/16 via 10.41.0.2 dev vx metric 20',
        'replace neighbour 10.40.0.254 lladdr 02:00:00:00:40:fe dev br0',
      ]);
      expect(await reconcile(nl, desired())).toEqual([]);
      expect(await ipLink(ns, 'br0')).toMatchObject({ mtu: 1450 });
      expect(await ipLink(ns, 'v0')).toMatchObject({ master: 'br0' });
      await dadDone(ns);
      expect(await ipAddrs(ns, 'br0')).toEqual(['10.40.0.1/24', '10.40.0.2/24', 'fd40::1/64']);
    });

    it('leaves kernel-made addresses and routes alone', async () => {
      await waitFor('IPv6 link-local on br0', async () =>
        (await ipJson<IpAddr[]>(ns, 'addr', 'show', 'dev', 'br0'))[0]?.addr_info.some((a) => a.scope === 'link'));
      const kernelRoutes = await ipJson<IpRoute[]>(ns, 'route', 'show', 'proto', 'kernel');
      expect(kernelRoutes.length).toBeGreaterThan(0);
      expect(await reconcile(nl, desired())).toEqual([]);
      expect(await ipJson<IpRoute[]>(ns, 'route', 'show', 'proto', 'kernel')).toEqual(kernelRoutes);
      expect((await ipJson<IpAddr[]>(ns, 'addr', 'show', 'dev', 'br0'))[0]?.addr_info.some((a) => a.scope === 'link')).toBe(true);
    });

    it('refuses a link that exists with another kind, changing nothing', async () => {
      await ns.ip('link', 'add', 'wrong0', 'type', 'veth', 'peer', 'name', 'wrong1');
      const before = await snapshot(ns);
      const d = desired();
      d.links.push({ name: 'wrong0', kind: 'bridge', addresses: ['10.44.0.1/24'] });
      d.links[0]!.mtu = 1500; // would be a change, were the plan not refused
      const run = reconcile(nl, d);
      await expect(run).rejects.toThrow(LinkConflictError);
      await expect(reconcile(nl, d)).rejects.toThrow('link wrong0 exists as a veth, but the desired state wants a bridge: refusing to replace it');
      expect(await snapshot(ns)).toBe(before);
      await ns.ip('link', 'del', 'wrong0');
    });

    it('deletes links it created once they leave the desired state, and only those', async () => {
      await ns.ip('link', 'add', 'theirs0', 'type', 'bridge');
      const d = desired();
      d.links = d.links.filter((l) => l.name !== 'v0' && l.name !== 'v1');
      const changes = await reconcile(nl, d);
      // One delete takes the pair; which end is named depends on the kernel's ifindex order.
      expect(changes.map(describeChange)).toEqual([expect.stringMatching(/^delete link v[01]$/)]);
      expect(await ns.links()).not.toContain('v0');
      expect(await ns.links()).toEqual(expect.arrayContaining(['br0', 'vx', 'theirs0']));
      expect(await ns.links()).not.toContain('v1');
      expect(await reconcile(nl, d)).toEqual([]);
    });
  });

  it('stops at a change the kernel refuses, says what was applied, and converges once the cause is fixed', async () => {
    const ns = await topo.netns('rf');
    const nl = open(ns);
    const d: DesiredNetwork = {
      links: [{ name: 'br0', kind: 'bridge', addresses: ['10.60.0.1/24'] }],
      // 10.61.0.1 is not on any link: the kernel refuses the route.
      routes: [{ dst: '10.62.0.0/16', via: '10.61.0.1', dev: 'br0' }],
    };
    const lines: string[] = [];
    const log = createLogger({ level: 'info', sink: (l) => { lines.push(l); } });
    let err: unknown;
    try {
      await reconcile(nl, d, { log });
    } catch (e) {
      err = e;
    }
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/INFO {2}netconfig change change="add bridge br0"$/);
    expect(lines[3]).toMatch(/ERROR netconfig change failed change="add route 10\.62\.0\.0\/16 via 10\.61\.0\.1 dev br0 metric 0" error=".*ENETUNREACH/);
    expect(err).toBeInstanceOf(ReconcileError);
    const re = err as ReconcileError;
    expect(re.code).toBe('NETCONFIG_APPLY_FAILED');
    expect(re.applied.map(describeChange)).toEqual(['add bridge br0', 'set br0 up', 'add address 10.60.0.1/24 to br0']);
    expect(describeChange(re.failed)).toBe('add route 10.62.0.0/16 via 10.61.0.1 dev br0 metric 0');
    expect((re.cause as SystemError).errno).toBe('ENETUNREACH');
    expect(re.message).toMatch(/^reconcile stopped at "add route 10\.62\.0\.0\/16 via 10\.61\.0\.1 dev br0 metric 0" after 3 change\(s\): .*ENETUNREACH/);
    expect(re.message).not.toContain('\n');
    d.links[0]!.addresses = ['10.60.0.1/24', '10.61.0.2/24'];
    expect((await reconcile(nl, d)).map(describeChange)).toEqual([
      'add address 10.61.0.2/24 to br0', 'add route 10.62.0.0/16 via 10.61.0.1 dev br0 metric 0',
    ]);
    expect(await reconcile(nl, d)).toEqual([]);
  });

  it('configures a link someone else created (existing) without creating or deleting it', async () => {
    const ns = await topo.netns('ex');
    await ns.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
    const nl = open(ns);
    const d: DesiredNetwork = {
      links: [
        { name: 'br0', kind: 'bridge' },
        { name: 'tap0', kind: 'existing', mtu: 1400, mac: '02:00:00:00:70:01', master: 'br0', addresses: ['10.70.0.1/24'] },
      ],
    };
    expect((await reconcile(nl, d)).map(describeChange)).toEqual([
      'add bridge br0', 'set tap0 mtu 1400', 'set tap0 address 02:00:00:00:70:01', 'set tap0 master br0',
      'set br0 up', 'set tap0 up', 'add address 10.70.0.1/24 to tap0',
    ]);
    expect(await ipLink(ns, 'tap0')).toMatchObject({ mtu: 1400, address: '02:00:00:00:70:01', master: 'br0', linkinfo: { info_kind: 'tun' } });
    expect((await ipLink(ns, 'tap0'))?.ifalias).toBeUndefined();
    expect(await reconcile(nl, d)).toEqual([]);
    expect((await reconcile(nl, { links: [] })).map(describeChange)).toEqual(['delete link br0']);
    expect(await ns.links()).toContain('tap0');
    await expect(reconcile(nl, { links: [{ name: 'tap9', kind: 'existing' }] })).rejects.toThrow(/tap9 should exist/);
  });

  it('link counters reflect traffic across a veth', async () => {
    const a = await topo.netns('sa');
    const b = await topo.netns('sb');
    const na = open(a);
    const nb = open(b);
    expect(await reconcile(na, { links: [{ name: 's0', kind: 'veth', peer: 't0', peerNetns: b.name, addresses: ['10.50.0.1/24'] }] })).not.toEqual([]);
    expect(await reconcile(nb, { links: [{ name: 't0', kind: 'existing', addresses: ['10.50.0.2/24'] }] })).not.toEqual([]);
    const before = await na.linkStats('s0');
    const peerBefore = await nb.linkStats('t0');
    await a.exec('ping', ['-c', '5', '-i', '0.2', '-W', '2', '10.50.0.2']);
    const after = await na.linkStats('s0');
    const peerAfter = await nb.linkStats('t0');
    expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(5n);
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(5n);
    expect(after.txBytes - before.txBytes).toBeGreaterThanOrEqual(5n * 98n); // ICMP echo of 84 bytes + 14 of Ethernet
    expect(peerAfter.rxPackets - peerBefore.rxPackets).toBeGreaterThanOrEqual(5n);
    expect(after.rxErrors + after.txErrors).toBe(0n);
    // The oracle agrees (read after ours, so its counters are at least ours).
    const ip = (await ipJson<IpLink[]>(a, '-s', 'link', 'show', 's0'))[0];
    expect(BigInt(ip?.stats64?.tx.packets ?? 0)).toBeGreaterThanOrEqual(after.txPackets);
    expect(BigInt(ip?.stats64?.rx.bytes ?? 0)).toBeGreaterThanOrEqual(after.rxBytes);
  });
});
