import { describe, expect, it } from 'vitest';
import { OWNER_ALIAS, plan } from '../netconfig/desired.js';
import { netlinkError, type Link, type Netlink } from '../netconfig/netlink.js';
import { createLogger } from '../shared/log.js';
import { parseApplianceConfig } from './config.js';
import { desiredFirewall } from './daemon.js';
import { bridgedPort, chooseVlanImplementation, desiredNetwork, trunkPlans } from './segments.js';

const config = parseApplianceConfig({
  role: 'sp', name: 'sp-a', segments: [
    { id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 110 } },
    { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 120 } },
    { id: 30, name: 'dmz', backing: { kind: 'access', interface: 'eth2' } },
    { id: 40, name: 'old', uplink: 'eth3' },
    { id: 50, name: 'inside' },
  ],
});

describe('segments on the kernel', () => {
  it('groups VLAN backings by trunk', () => {
    expect(trunkPlans(config)).toEqual([{ trunk: 'trunk0', ports: [
      { vlan: 110, segment: 10, port: 'nea-v10' }, { vlan: 120, segment: 20, port: 'nea-v20' },
    ] }]);
  });

  it('bridges the access interface or the VLAN port next to the TAP', () => {
    expect(config.segments.map(bridgedPort)).toEqual(['nea-v10', 'nea-v20', 'eth2', 'eth3', undefined]);
  });

  it('user space: the VLAN ports are TAPs (existing links); the trunk is up, bare, outside bridges', () => {
    const d = desiredNetwork(config, 'userspace');
    expect(d.links.filter((l) => l.name === 'trunk0' || l.name.startsWith('nea-v'))).toEqual([
      { kind: 'existing', name: 'trunk0', up: true, addresses: [] },
      { kind: 'existing', name: 'nea-v10', up: true, master: 'nea-br10', addresses: [] },
      { kind: 'existing', name: 'nea-v20', up: true, master: 'nea-br20', addresses: [] },
    ]);
    expect(d.links.find((l) => l.name === 'eth2')).toEqual({ kind: 'existing', name: 'eth2', up: true, master: 'nea-br30' });
    expect(d.links.filter((l) => l.kind === 'bridge').map((l) => l.name)).toEqual(['nea-br10', 'nea-br20', 'nea-br30', 'nea-br40', 'nea-br50']);
  });

  it('kernel devices: one 802.1Q device per VLAN backing, on its trunk, in its bridge', () => {
    const d = desiredNetwork(config, 'kernel');
    expect(d.links.filter((l) => l.kind === 'vlan')).toEqual([
      { kind: 'vlan', name: 'nea-v10', parent: 'trunk0', vlanId: 110, up: true, master: 'nea-br10', addresses: [] },
      { kind: 'vlan', name: 'nea-v20', parent: 'trunk0', vlanId: 120, up: true, master: 'nea-br20', addresses: [] },
    ]);
    // The planner accepts it and creates the devices after the bridges.
    const lo = { index: 1, name: 'lo', kind: undefined, up: true, lowerUp: true, mtu: 65536, mac: undefined, master: undefined, alias: undefined,
      parentIndex: undefined, parentNetnsId: undefined, minMtu: undefined, maxMtu: undefined, vlan: undefined };
    const existing = ['trunk0', 'eth2', 'eth3', 'nea-tap10', 'nea-tap20', 'nea-tap30', 'nea-tap40', 'nea-tap50'].map((name, i) => ({ ...lo, index: i + 2, name, up: false }));
    const changes = plan({ links: [lo, ...existing], addresses: [], routes: [], neighbours: [] }, d);
    const adds = changes.filter((c) => c.op === 'link-add').map((c) => c.link);
    expect(adds).toEqual(['nea-br10', 'nea-v10', 'nea-br20', 'nea-v20', 'nea-br30', 'nea-br40', 'nea-br50']);
  });

  it('the firewall clamps MSS on frames from the TAP and from the backing port', () => {
    expect(desiredFirewall(config).segments.map((s) => s.ports)).toEqual([
      ['nea-tap10', 'nea-v10'], ['nea-tap20', 'nea-v20'], ['nea-tap30', 'eth2'], ['nea-tap40', 'eth3'], ['nea-tap50'],
    ]);
  });
});

describe('choosing how VLAN backings are made', () => {
  const log = createLogger({ sink: () => undefined });
  const link = (name: string, over: Partial<Link> = {}): Link => ({
    index: 2, name, kind: undefined, up: true, lowerUp: true, mtu: 1500, mac: undefined, master: undefined, alias: undefined,
    parentIndex: undefined, parentNetnsId: undefined, minMtu: undefined, maxMtu: undefined, vlan: undefined, ...over,
  });
  /** A netlink client with `links`, whose addVlan succeeds or answers EOPNOTSUPP; records what it was asked. */
  function fakeNetlink(links: Link[], vlanDevices: boolean): { nl: Netlink; calls: string[] } {
    const calls: string[] = [];
    const nl = {
      link: (name: string) => Promise.resolve(links.find((l) => l.name === name)),
      addVlan: (name: string, parent: string, id: number) => {
        calls.push(`addVlan ${name} ${parent} ${id}`);
        return vlanDevices ? Promise.resolve(link(name)) : Promise.reject(netlinkError(new Error('Request rejected: -95'), 'RTM_NEWLINK', 'add vlan'));
      },
      deleteLink: (name: string) => { calls.push(`deleteLink ${name}`); return Promise.resolve(); },
    } as unknown as Netlink;
    return { nl, calls };
  }
  const vlanConfig = (vlanDevices?: 'auto' | 'kernel' | 'userspace'): Parameters<typeof chooseVlanImplementation>[1] => parseApplianceConfig({
    role: 'tenant', name: 't', ...(vlanDevices && { vlanDevices }), segments: [{ id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 10 } }],
  });

  it('no VLAN backing: nothing to choose, nothing asked', async () => {
    const { nl, calls } = fakeNetlink([], true);
    expect(await chooseVlanImplementation(nl, parseApplianceConfig({ role: 'sp', name: 's', segments: [{ id: 1, name: 'x', uplink: 'eth1' }] }), log)).toBeNull();
    expect(calls).toEqual([]);
  });

  it('auto: kernel devices when a probe device can be made (and is deleted at once)', async () => {
    const { nl, calls } = fakeNetlink([link('trunk0')], true);
    expect(await chooseVlanImplementation(nl, vlanConfig(), log)).toBe('kernel');
    expect(calls).toEqual([`addVlan nea-vp${process.pid % 100000} trunk0 4094`, `deleteLink nea-vp${process.pid % 100000}`]);
  });

  it('auto: user space when the kernel answers EOPNOTSUPP; an 802.1Q device of an earlier run under a VLAN port name is deleted', async () => {
    const { nl, calls } = fakeNetlink([link('trunk0'), link('nea-v10', { kind: 'vlan', alias: OWNER_ALIAS })], false);
    expect(await chooseVlanImplementation(nl, vlanConfig(), log)).toBe('userspace');
    expect(calls.slice(1)).toEqual(['deleteLink nea-v10']);
  });

  it('userspace: no probe; a VLAN device someone else made is left alone', async () => {
    const { nl, calls } = fakeNetlink([link('trunk0'), link('nea-v10', { kind: 'vlan' })], true);
    expect(await chooseVlanImplementation(nl, vlanConfig('userspace'), log)).toBe('userspace');
    expect(calls).toEqual([]);
  });

  it('kernel, on a kernel without 802.1Q devices: VLAN_KERNEL_UNSUPPORTED saying what to do', async () => {
    const { nl } = fakeNetlink([link('trunk0')], false);
    await expect(chooseVlanImplementation(nl, vlanConfig('kernel'), log)).rejects.toMatchObject({
      code: 'VLAN_KERNEL_UNSUPPORTED', message: expect.stringContaining('load it, or use "auto" or "userspace"') as string,
    });
  });

  it('a missing trunk: refused naming it and its segments', async () => {
    const { nl } = fakeNetlink([], true);
    await expect(chooseVlanImplementation(nl, vlanConfig(), log)).rejects.toMatchObject({
      code: 'NETCONFIG_LINK_MISSING', message: 'trunk trunk0 of segment 10 does not exist in this namespace: create it or fix the config',
    });
  });
});
