/**
 * One appliance with VLAN and access backings on a real kernel: how it picks
 * the VLAN implementation, what it refuses, and that a restart converges.
 *
 *   [nt-<run>-app]
 *     trunk0 ══ veth ══ sw0 (python3 + tcpdump: the "switch")
 *     nea-br10 ── nea-tap10, nea-v10 (VLAN 110 on trunk0)
 *     nea-br20 ── nea-tap20, nea-v20 (VLAN 120 on trunk0)
 *     nea-br30 ── nea-tap30, acc0 (access)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplianceStatus } from '../src/appliance/daemon.js';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';
import { NEA, injectFrames, kernelHasVlanDevices, markerFrame, readCapture } from './segments-world.js';

const kernelVlans = await kernelHasVlanDevices();

interface IpLink { ifname: string; master?: string; linkinfo?: { info_kind?: string; info_data?: { id?: number } } }

describe('an appliance with VLAN and access backings', () => {
  let topo: Topology;
  let ns: Netns;
  let dir: string;
  const config = (extra: object = {}, segments?: object[]): string => {
    const file = join(dir, `cfg-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({
      role: 'sp', name: 'sp-x', segments: segments ?? [
        { id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 110 } },
        { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 120 } },
        { id: 30, name: 'legacy', backing: { kind: 'access', interface: 'acc0' } },
      ], ...extra,
    }));
    return file;
  };
  const start = (cfg: string): NsProcess => ns.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', cfg, '--state-dir', dir], 'nea');
  const status = (): ApplianceStatus | undefined => { try { return JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) as ApplianceStatus; } catch { return undefined; } };
  const links = async (): Promise<IpLink[]> => JSON.parse((await ns.ip('-j', '-d', 'link', 'show')).stdout) as IpLink[];

  beforeAll(async () => {
    topo = new Topology('vlanback');
    ns = await topo.netns('app');
    dir = topo.workdir;
    await ns.ip('link', 'add', 'trunk0', 'type', 'veth', 'peer', 'name', 'sw0');
    await ns.ip('link', 'add', 'acc0', 'type', 'veth', 'peer', 'name', 'acc1');
    for (const l of ['sw0', 'acc1']) await ns.ip('link', 'set', l, 'up');
    await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it.skipIf(kernelVlans)('"vlanDevices": "kernel" on a kernel without 802.1Q devices: one line saying so, nothing created', async () => {
    const p = start(config({ vlanDevices: 'kernel' }));
    expect(await p.wait()).toBe(1);
    expect(p.stderr.trim().split('\n').pop()).toMatch(/"vlanDevices": "kernel".*this kernel has no 802\.1Q devices \(module 8021q\): load it, or use "auto" or "userspace"/);
    expect((await links()).map((l) => l.ifname).filter((n) => n.startsWith('nea-'))).toEqual([]);
  });

  it('a missing trunk: one line naming it and its segments, nothing created', async () => {
    const p = start(config({}, [{ id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'nosuch0', vlan: 110 } }, { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'nosuch0', vlan: 120 } }]));
    expect(await p.wait()).toBe(1);
    expect(p.stderr.trim().split('\n').pop()).toContain('trunk nosuch0 of segments 10, 20 does not exist in this namespace');
    expect((await links()).map((l) => l.ifname).filter((n) => n.startsWith('nea-'))).toEqual([]);
  });

  it(`auto: ${kernelVlans ? 'kernel 802.1Q devices' : 'user space (this kernel has no 802.1Q devices)'}; the backings are bridged; tags on the trunk as tcpdump sees them`, async () => {
    const cfg = config();
    const first = start(cfg);
    const s = await waitFor('status', () => (status()?.pid === first.pid ? status() : undefined), { timeoutMs: 15_000 });
    expect(s.vlanDevices).toBe(kernelVlans ? 'kernel' : 'userspace');
    expect(s.segments.map((g) => [g.id, g.uplink])).toEqual([[10, 'nea-v10'], [20, 'nea-v20'], [30, 'acc0']]);
    const l = await links();
    const by = (n: string): IpLink | undefined => l.find((x) => x.ifname === n);
    expect([by('nea-v10')?.master, by('nea-v20')?.master, by('acc0')?.master, by('trunk0')?.master]).toEqual(['nea-br10', 'nea-br20', 'nea-br30', undefined]);
    expect(by('nea-v10')?.linkinfo?.info_kind).toBe(kernelVlans ? 'vlan' : 'tun');
    if (kernelVlans) expect(by('nea-v10')?.linkinfo?.info_data?.id).toBe(110);

    // VLAN 120 from the switch side reaches segment 20's bridge untagged; segment 10 sees nothing of it.
    const br20 = await ns.capture('nea-br20');
    const br10 = await ns.capture('nea-br10');
    const trunk = await ns.capture('sw0');
    await injectFrames(ns, 'sw0', [markerFrame('02:00:00:00:77:01', 'c1c1c1c1', ['81000078'])], 3);
    // And the bridge's own broadcast (an ARP request from an address on nea-br10) leaves tagged 110.
    await ns.ip('addr', 'add', '10.10.0.1/24', 'dev', 'nea-br10');
    await ns.exec('ping', ['-c', '1', '-W', '1', '10.10.0.77'], { allowFail: true });
    await waitFor('the ARP request on the trunk', async () => (await readCapture(trunk.file)).some((p) => p.line.includes('ARP')));
    for (const c of [br20, br10, trunk]) await c.stop();
    expect((await readCapture(br20.file)).filter((p) => p.hex.includes('c1c1c1c1')).map((p) => p.vlans)).toEqual([[], [], []]);
    expect((await readCapture(br10.file)).filter((p) => p.hex.includes('c1c1c1c1'))).toEqual([]);
    const arps = (await readCapture(trunk.file)).filter((p) => p.line.includes('Request who-has 10.10.0.77'));
    expect(arps.length).toBeGreaterThan(0);
    expect(arps.every((p) => p.vlans.length === 1 && p.vlans[0] === 110)).toBe(true);
    await ns.ip('addr', 'del', '10.10.0.1/24', 'dev', 'nea-br10');

    // kill -9 and restart: the same links, nothing duplicated, still working.
    const before = (await links()).map((x) => `${x.ifname}@${x.master ?? ''}`).sort();
    await first.stop('SIGKILL');
    const second = start(cfg);
    await waitFor('status of the restarted appliance', () => status()?.pid === second.pid, { timeoutMs: 15_000 });
    expect((await links()).map((x) => `${x.ifname}@${x.master ?? ''}`).sort()).toEqual(before);
    await injectFrames(ns, 'sw0', [markerFrame('02:00:00:00:77:02', 'c2c2c2c2', ['81000078'])], 2);
    await waitFor('the restarted trunk forwards VLAN 120', () => (status()?.trunks[0]?.ports.find((p) => p.vlan === 120)?.fromTrunk ?? 0) >= 2 || kernelVlans);
    expect(await second.stop('SIGTERM')).toBe(0);
  });
});
