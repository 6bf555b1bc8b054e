/**
 * The lab's user-space VLAN switch (`nea lab fabric`) on a real kernel, judged
 * by tcpdump -e (the tags on the wire) and python3 raw sockets, never by the
 * switch's own code.
 *
 *   [h10] eth0 ─ access 10 ─┐
 *   [h20] eth0 ─ access 20 ─┤  `nea lab fabric` (pid; its ports are TAPs it
 *   [tr]  eth0 ─ trunk 10,20┤   creates inside each host's namespace)
 *   [nat] eth0 ─ trunk 20, native 10
 *   [dyn] eth0 ─ access 10, plugged in and out at run time (--control SOCKET)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fabricRequest } from '../src/lab/fabric/control.js';
import type { FabricStatus } from '../src/lab/fabric/fabric.js';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';
import { NEA, injectFrames, markerFrame, readCapture } from './segments-world.js';

describe('lab fabric: a user-space 802.1Q switch', () => {
  let topo: Topology;
  const ns: Record<string, Netns> = {};
  let fabric: NsProcess;
  let statusFile: string;
  let control: string;
  const status = (): FabricStatus | undefined => { try { return JSON.parse(readFileSync(statusFile, 'utf8')) as FabricStatus; } catch { return undefined; } };

  beforeAll(async () => {
    topo = new Topology('fabric');
    for (const n of ['fab', 'h10', 'h20', 'tr', 'nat', 'dyn']) ns[n] = await topo.netns(n);
    control = join(topo.workdir, 'fabric.sock');
    const config = join(topo.workdir, 'fabric.json');
    statusFile = join(topo.workdir, 'status.json');
    const port = (n: string, mode: object): object => ({ name: n, netns: ns[n]!.name, interface: 'eth0', ...mode });
    writeFileSync(config, JSON.stringify({ switches: [{ name: 'sw', ports: [
      port('h10', { mode: 'access', vlan: 10 }), port('h20', { mode: 'access', vlan: 20 }),
      port('tr', { mode: 'trunk', vlans: [10, 20] }), port('nat', { mode: 'trunk', vlans: [20], native: 10 }),
    ] }] }));
    fabric = ns.fab!.spawn(process.execPath, [NEA, 'lab', 'fabric', '--config', config, '--status', statusFile, '--control', control], 'fabric');
    await waitFor('fabric up', () => status()?.switches[0]?.ports.length === 4, { timeoutMs: 15_000 });
    for (const n of ['h10', 'h20', 'tr', 'nat']) {
      // No IPv6 chatter (router solicitations, MLD): every frame on the ports is one of the test's.
      await ns[n]!.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ns[n]!.ip('link', 'set', 'eth0', 'up');
    }
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('tags what leaves a trunk with the access port\'s VLAN; untags what it delivers to access ports; never mixes VLANs', async () => {
    const caps = Object.fromEntries(await Promise.all(['h10', 'h20', 'tr', 'nat'].map(async (n) => [n, await ns[n]!.capture('eth0')] as const)));
    await injectFrames(ns.h10!, 'eth0', [markerFrame('02:00:00:00:00:10', 'aa10')]);
    await injectFrames(ns.h20!, 'eth0', [markerFrame('02:00:00:00:00:20', 'aa20')]);
    await injectFrames(ns.tr!, 'eth0', [markerFrame('02:00:00:00:00:30', 'aa30', ['8100000a'])]);
    await injectFrames(ns.tr!, 'eth0', [markerFrame('02:00:00:00:00:31', 'aa31', ['81000014'])]);
    await injectFrames(ns.nat!, 'eth0', [markerFrame('02:00:00:00:00:40', 'aa40')]); // untagged: native VLAN 10
    await waitFor('the trunk saw 3 frames', async () => (await readCapture(caps.tr!.file)).length >= 3);
    await new Promise((r) => setTimeout(r, 200));
    for (const c of Object.values(caps)) await c.stop();
    const seen = async (n: string): Promise<string[]> => (await readCapture(caps[n]!.file))
      .map((p) => `${/ethertype (?:802\.1Q|Unknown)[^,]*, length \d+: (?:vlan (\d+))?/.exec(p.line)?.[1] ?? '-'} ${p.hex.slice(p.vlans.length > 0 ? 36 : 28, p.vlans.length > 0 ? 40 : 32)}`).sort();
    // Each host sees its own frame (sent) and what the switch delivered to it; tags as tcpdump decodes them.
    expect(await seen('h10')).toEqual(['- aa10', '- aa30', '- aa40']);
    expect(await seen('h20')).toEqual(['- aa20', '- aa31']);
    expect(await seen('tr')).toEqual(['10 aa10', '10 aa30', '10 aa40', '20 aa20', '20 aa31']);
    expect(await seen('nat')).toEqual(['- aa10', '- aa30', '- aa40', '20 aa20', '20 aa31']);
  });

  it('drops and counts tagged frames on access ports and VLANs a trunk does not allow', async () => {
    await injectFrames(ns.h10!, 'eth0', [markerFrame('02:00:00:00:00:10', 'bb10', ['8100000a'])], 3);
    await injectFrames(ns.tr!, 'eth0', [markerFrame('02:00:00:00:00:30', 'bb30', ['8100001e'])], 4);
    await injectFrames(ns.tr!, 'eth0', [markerFrame('02:00:00:00:00:30', 'bb31')], 5);
    await waitFor('counted', () => {
      const d = Object.fromEntries(status()!.switches[0]!.ports.map((p) => [p.name, p.drops]));
      return d.h10?.['tagged-on-access'] === 3 && d.tr?.['vlan-not-allowed'] === 4 && d.tr['untagged-on-trunk'] === 5;
    });
  });

  it('plugs a port in and out at run time through its control socket (idempotent; bad requests refused)', async () => {
    const port = { name: 'dyn', netns: ns.dyn!.name, interface: 'eth0', mode: 'access' as const, vlan: 10 };
    expect(await fabricRequest(control, { op: 'add-port', switch: 'sw', port })).toEqual({ ok: true, changed: true });
    expect(await fabricRequest(control, { op: 'add-port', switch: 'sw', port })).toEqual({ ok: true, changed: false });
    await expect(fabricRequest(control, { op: 'add-port', switch: 'sw', port: { ...port, vlan: 20 } })).rejects.toThrow(/exists with another configuration/);
    await expect(fabricRequest(control, { op: 'add-port', switch: 'nope', port })).rejects.toThrow(/no switch nope/);
    await expect(fabricRequest(control, { op: 'add-port', switch: 'sw', port: { ...port, vlan: 5000 } })).rejects.toThrow(/port\.vlan/);
    expect(await ns.dyn!.links()).toEqual(['lo', 'eth0']);
    // VLAN 10's access port h10 and the new port reach each other; VLAN 20's h20 does not see them.
    await ns.dyn!.ip('addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
    await ns.dyn!.ip('link', 'set', 'eth0', 'up');
    await ns.h10!.ip('addr', 'add', '192.0.2.1/24', 'dev', 'eth0');
    await ns.h20!.ip('addr', 'add', '192.0.2.3/24', 'dev', 'eth0');
    await waitFor('ping over the new port', async () => (await ns.h10!.exec('ping', ['-c', '1', '-W', '1', '192.0.2.2'], { allowFail: true })).code === 0);
    expect((await ns.h20!.exec('ping', ['-c', '1', '-W', '1', '192.0.2.2'], { allowFail: true })).code).not.toBe(0);
    expect((await fabricRequest(control, { op: 'list' })).ports!.sw!.map((p) => p.name)).toEqual(['h10', 'h20', 'tr', 'nat', 'dyn']);
    await waitFor('status shows the port', () => status()?.switches[0]?.ports.some((p) => p.name === 'dyn'));
    expect(await fabricRequest(control, { op: 'remove-port', switch: 'sw', port: 'dyn' })).toEqual({ ok: true, changed: true });
    expect(await fabricRequest(control, { op: 'remove-port', switch: 'sw', port: 'dyn' })).toEqual({ ok: true, changed: false });
    expect(await ns.dyn!.links()).toEqual(['lo']);
    expect((await ns.h10!.exec('ping', ['-c', '1', '-W', '1', '192.0.2.2'], { allowFail: true })).code).not.toBe(0);
  });

  it('stops on SIGTERM and its ports disappear with it', async () => {
    expect(await fabric.stop('SIGTERM')).toBe(0);
    for (const n of ['h10', 'h20', 'tr', 'nat', 'dyn']) expect(await ns[n]!.links()).toEqual(['lo']);
  });
});
