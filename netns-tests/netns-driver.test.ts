/**
 * The netns hypervisor driver (src/lab/netns-driver.ts) on a real kernel,
 * with a real fabric process: replicas are namespaces plugged into the
 * cloud switch as access ports on their VLAN, with the production MAC,
 * address and gateway, serving their identity from the driver's process.
 *
 *   `nea lab fabric` (switch "cloud", --control SOCKET)
 *     ├─ access 100 ─ [r-acme-web1] eth0 10.1.0.11  02:00:0a:01:00:0b
 *     ├─ access 100 ─ [r-acme-web2] eth0 10.1.0.12
 *     ├─ access 100 ─ [gw]          eth0 10.1.0.1   (a stand-in production gateway)
 *     └─ access 200 ─ [r-globex-web1] eth0 10.1.0.11 (same address and MAC, another tenant's VLAN)
 *
 * Judged from outside the driver: `ip` in the namespaces, python3 HTTP
 * clients, the fabric's own port list.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaSpec } from '../src/control/driver.js';
import { fabricRequest } from '../src/lab/fabric/control.js';
import { createNetnsDriver, type NetnsDriver } from '../src/lab/netns-driver.js';
import { fetchText, pings } from './gateway-kit.js';
import { listNetns, Netns, Topology, waitFor, type NsProcess } from './harness.js';
import { NEA } from './segments-world.js';

const spec = (tenant: string, name: string, vlan: number, address: string, mac = '02:00:0a:01:00:0b'): ReplicaSpec =>
  ({ tenant, name, host: 'cloud1', trunk: 'trunk0', vlan, address, mac, gateway: '10.1.0.1' });

describe('netns hypervisor driver', () => {
  let topo: Topology;
  let fab: Netns;
  let gw: Netns;
  let fabric: NsProcess;
  let socket: string;
  let configFile: string;
  let driver: NetnsDriver;
  const web1 = spec('acme', 'web1', 100, '10.1.0.11/24');
  const web2 = spec('acme', 'web2', 100, '10.1.0.12/24', '02:00:0a:01:00:0c');
  const other = spec('globex', 'web1', 200, '10.1.0.11/24');
  const nsOf = (s: ReplicaSpec): Netns => new Netns(topo, driver.netnsOf(s));

  beforeAll(async () => {
    topo = new Topology('netns-driver');
    fab = await topo.netns('fab');
    gw = await topo.netns('gw');
    socket = join(topo.workdir, 'fabric.sock');
    const config = join(topo.workdir, 'fabric.json');
    writeFileSync(config, JSON.stringify({ switches: [{ name: 'cloud', ports: [{ name: 'gw', netns: gw.name, interface: 'eth0', mode: 'access', vlan: 100 }] }] }));
    fabric = fab.spawn(process.execPath, [NEA, 'lab', 'fabric', '--config', config, '--control', socket], 'fabric');
    await waitFor('fabric control socket', async () => (await fabricRequest(socket, { op: 'list' })).ok, { timeoutMs: 15_000 });
    await gw.ip('addr', 'add', '10.1.0.1/24', 'dev', 'eth0');
    await gw.ip('link', 'set', 'eth0', 'up');
    configFile = join(topo.workdir, 'driver.json');
    writeFileSync(configFile, JSON.stringify({ namespacePrefix: topo.nsName('r-'), stateDir: join(topo.workdir, 'driver'), hosts: { cloud1: { control: socket, switch: 'cloud' } } }));
    driver = await createNetnsDriver(configFile);
  });

  afterAll(async () => {
    await driver.destroyAll();
    await driver.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('powers a replica on: its namespace, the port on its VLAN, MAC, address, default route, identity service', async () => {
    await driver.powerOn(web1);
    await driver.powerOn(web1); // idempotent
    const ns = driver.netnsOf(web1);
    expect(listNetns()).toContain(ns);
    const r = await new Netns(topo, ns).ip('-j', 'addr', 'show', 'dev', 'eth0');
    const link = (JSON.parse(r.stdout) as { address: string; addr_info: { local: string; prefixlen: number; family: string }[] }[])[0]!;
    expect(link.address).toBe('02:00:0a:01:00:0b');
    expect(link.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.1.0.11/24']);
    expect((await new Netns(topo, ns).ip('route', 'show', 'default')).stdout).toMatch(/default via 10\.1\.0\.1 dev eth0/);
    const ports = (await fabricRequest(socket, { op: 'list' })).ports!.cloud!;
    expect(ports.find((p) => p.name === 'r-acme-web1')).toMatchObject({ mode: 'access', vlan: 100, netns: ns, interface: 'eth0' });
    // The stand-in gateway reaches it on VLAN 100 and gets its identity.
    expect(await pings(gw, '10.1.0.11', 3)).toBe(true);
    expect(JSON.parse((await fetchText(gw, 'http://10.1.0.11/'))!)).toMatchObject({ name: 'web1', tenant: 'acme', site: 'cloud', client: '10.1.0.1' });
    expect(await driver.list()).toEqual([{ tenant: 'acme', name: 'web1', host: 'cloud1', power: 'on' }]);
  });

  it('probes from the replica\'s position: ICMP and TCP; unreachable targets fail without throwing', async () => {
    await driver.powerOn(web2);
    const icmp = await driver.probe(web1, { kind: 'icmp', address: '10.1.0.1' }, 2000);
    expect(icmp).toMatchObject({ ok: true });
    const tcp = await driver.probe(web1, { kind: 'tcp', address: '10.1.0.12', port: 80 }, 2000);
    expect(tcp).toMatchObject({ ok: true });
    expect(await driver.probe(web1, { kind: 'icmp', address: '10.1.0.99' }, 500)).toMatchObject({ ok: false });
    expect(await driver.probe(web1, { kind: 'tcp', address: '10.1.0.1', port: 81 }, 1000)).toMatchObject({ ok: false });
  });

  it('keeps tenants apart: the same address and MAC on another VLAN is another host', async () => {
    await driver.powerOn(other);
    const body = await fetchText(nsOf(web2), 'http://10.1.0.11/');
    expect(JSON.parse(body!)).toMatchObject({ tenant: 'acme', name: 'web1' });
    expect(await driver.probe(other, { kind: 'icmp', address: '10.1.0.1' }, 1000)).toMatchObject({ ok: false });
    expect(await driver.probe(other, { kind: 'tcp', address: '10.1.0.12', port: 80 }, 1000)).toMatchObject({ ok: false });
  });

  it('re-adopts running replicas after a restart of the driver\'s process', async () => {
    await driver.close();
    expect(await fetchText(gw, 'http://10.1.0.11/', 1)).toBeUndefined();
    driver = await createNetnsDriver(configFile);
    expect(JSON.parse((await fetchText(gw, 'http://10.1.0.11/'))!)).toMatchObject({ name: 'web1', site: 'cloud' });
    expect((await driver.list()).filter((r) => r.power === 'on').map((r) => `${r.tenant}/${r.name}`).sort()).toEqual(['acme/web1', 'acme/web2', 'globex/web1']);
  });

  it('powers off: port unplugged, namespace gone, listed as off; again is fine; revert too', async () => {
    await driver.powerOff(web1);
    await driver.powerOff(web1);
    expect(listNetns()).not.toContain(driver.netnsOf(web1));
    expect((await fabricRequest(socket, { op: 'list' })).ports!.cloud!.map((p) => p.name).sort()).toEqual(['gw', 'r-acme-web2', 'r-globex-web1']);
    expect(await pings(gw, '10.1.0.11', 1)).toBe(false);
    expect((await driver.list()).find((r) => r.tenant === 'acme' && r.name === 'web1')?.power).toBe('off');
    expect(await driver.probe(web1, { kind: 'icmp', address: '10.1.0.1' }, 500)).toMatchObject({ ok: false, detail: expect.stringMatching(/is off/) as unknown });
    await driver.revert(web2);
    expect(listNetns()).not.toContain(driver.netnsOf(web2));
    // On again after off: a fresh namespace on the same VLAN.
    await driver.powerOn(web1);
    expect(await pings(gw, '10.1.0.11', 3)).toBe(true);
  });

  it('refuses a host it does not know, and leaves nothing behind', async () => {
    await expect(driver.powerOn({ ...web2, host: 'nowhere' })).rejects.toThrow(/host nowhere is not in the driver config/);
    expect(listNetns()).not.toContain(driver.netnsOf(web2));
    expect(fabric.running).toBe(true);
  });
});
