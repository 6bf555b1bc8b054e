import { describe, expect, it } from 'vitest';
import { plan } from '../netconfig/desired.js';
import { parseApplianceConfig } from './config.js';
import { desiredFirewall } from './daemon.js';
import { bridgedPort, desiredNetwork, trunkPlans } from './segments.js';

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
