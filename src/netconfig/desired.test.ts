/**
 * Table tests of the pure diff: kernel snapshot + desired state in, changes
 * out. No kernel involved.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import {
  LinkConflictError, LinkMissingError, OWNER_ALIAS, describeChange, normalizeDesired, plan,
  type Change, type DesiredNetwork, type KernelState,
} from './desired.js';
import type { Address, Link, Neighbour, Route } from './netlink.js';

function link(index: number, name: string, kind: string | undefined, over: Partial<Link> = {}): Link {
  return {
    index, name, kind, up: true, lowerUp: true, mtu: 1500, mac: `02:00:00:00:00:${index.toString(16).padStart(2, '0')}`,
    master: undefined, alias: kind === 'bridge' || kind === 'veth' ? OWNER_ALIAS : undefined,
    parentIndex: undefined, parentNetnsId: undefined, minMtu: 68, maxMtu: 65535, vlan: undefined, ...over,
  };
}

function addr(index: number, cidr: string, over: Partial<Address> = {}): Address {
  const [address = '', len = '0'] = cidr.split('/');
  const family = address.includes(':') ? 6 : 4;
  return {
    index, family, address, prefixLength: Number(len), cidr,
    scope: address.startsWith('fe80') ? 253 : 0, permanent: true, tentative: false, secondary: false, ...over,
  };
}

function route(over: Partial<Route> & Pick<Route, 'dst'>): Route {
  const family = over.dst.includes(':') ? 6 : 4;
  return {
    family, gateway: undefined, oif: undefined, src: undefined, table: 254, metric: family === 6 ? 1024 : 0,
    protocol: 4, scope: 0, type: 1, ...over,
  };
}

function neigh(index: number, address: string, mac: string | undefined, state = ['permanent']): Neighbour {
  return { index, family: address.includes(':') ? 6 : 4, address, mac, state, permanent: state.includes('permanent') };
}

function state(over: Partial<KernelState> = {}): KernelState {
  return { links: [link(1, 'lo', undefined, { mac: '00:00:00:00:00:00', mtu: 65536 })], addresses: [], routes: [], neighbours: [], ...over };
}

/** A namespace that already matches `converged` below. */
const convergedState = state({
  links: [
    link(1, 'lo', undefined),
    link(2, 'br0', 'bridge', { mtu: 9000 }),
    link(3, 'v0', 'veth', { master: 2, parentIndex: 4 }),
    link(4, 'v1', 'veth', { parentIndex: 3 }),
    link(5, 'tap0', 'tun', { master: 2, mac: '02:00:00:00:aa:01' }),
    link(6, 'eth0', undefined),
  ],
  addresses: [
    addr(1, '127.0.0.1/8'), addr(1, '::1/128'),
    addr(2, '10.0.0.1/24'), addr(2, 'fd00::1/64'), addr(2, 'fe80::1/64'),
    addr(6, '192.168.1.5/24'),
  ],
  routes: [
    route({ dst: '10.0.0.0/24', oif: 2, protocol: 2, scope: 253, src: '10.0.0.1' }),
    route({ dst: 'fd00::/64', oif: 2, protocol: 2, metric: 256 }),
    route({ dst: 'fe80::/64', oif: 2, protocol: 2, metric: 256 }),
    route({ dst: '10.0.0.1/32', oif: 2, protocol: 2, table: 255, type: 2 }),
    route({ dst: '0.0.0.0/0', oif: 2, gateway: '10.0.0.254' }),
    route({ dst: '::/0', oif: 2, gateway: 'fd00::fe' }),
    route({ dst: '192.168.1.0/24', oif: 6, protocol: 2 }),
  ],
  neighbours: [
    neigh(2, '10.0.0.9', '02:00:00:00:00:09'),
    neigh(2, '10.0.0.77', '02:00:00:00:00:77', ['reachable']),
    neigh(6, '192.168.1.1', '02:00:00:00:01:01', ['permanent']),
  ],
});

const converged: DesiredNetwork = {
  links: [
    { name: 'br0', kind: 'bridge', mtu: 9000, addresses: ['10.0.0.1/24', 'fd00::1/64'] },
    { name: 'v0', kind: 'veth', peer: 'v1', master: 'br0' },
    { name: 'v1', kind: 'veth', peer: 'v0' },
    { name: 'tap0', kind: 'existing', master: 'br0', mac: '02:00:00:00:AA:01' },
  ],
  routes: [
    { dst: 'default', via: '10.0.0.254', dev: 'br0' },
    { dst: '::/0', via: 'fd00:0::fe', dev: 'br0' },
  ],
  neighbours: [{ dev: 'br0', address: '10.0.0.9', mac: '02:00:00:00:00:09' }],
};

/** `converged` with some edits. */
function desiredWith(edit: (d: DesiredNetwork) => void): DesiredNetwork {
  const d = structuredClone(converged);
  edit(d);
  return d;
}

/** `convergedState` with some edits. */
function stateWith(edit: (s: KernelState) => void): KernelState {
  const s = structuredClone(convergedState);
  edit(s);
  return s;
}

const linkOf = (s: KernelState, name: string): Link => s.links.find((l) => l.name === name)!;

interface Case {
  name: string;
  current: KernelState;
  desired: DesiredNetwork;
  want: Change[];
}

const cases: Case[] = [
  { name: 'nothing desired, nothing to do', current: state(), desired: { links: [] }, want: [] },
  { name: 'a matching namespace needs no change (idempotence)', current: convergedState, desired: converged, want: [] },
  {
    name: 'a new bridge: created with MTU and MAC, brought up, addressed',
    current: state(),
    desired: { links: [{ name: 'br0', kind: 'bridge', mtu: 9000, mac: '02:00:00:00:00:AA', addresses: ['10.0.0.1/24', 'fd00::1/64'] }] },
    want: [
      { op: 'link-add', link: 'br0', kind: 'bridge', mtu: 9000, mac: '02:00:00:00:00:aa' },
      { op: 'link-state', link: 'br0', up: true },
      { op: 'address-add', link: 'br0', address: '10.0.0.1/24' },
      { op: 'address-add', link: 'br0', address: 'fd00::1/64' },
    ],
  },
  {
    name: 'a new veth pair listed from both ends is created once; the far end is marked as ours',
    current: state(),
    desired: { links: [
      { name: 'br0', kind: 'bridge' },
      { name: 'v0', kind: 'veth', peer: 'v1', master: 'br0' },
      { name: 'v1', kind: 'veth', peer: 'v0', mtu: 1400, up: false },
    ] },
    want: [
      { op: 'link-add', link: 'br0', kind: 'bridge' },
      { op: 'link-add', link: 'v0', kind: 'veth', peer: 'v1' },
      { op: 'link-mtu', link: 'v1', mtu: 1400 },
      { op: 'link-own', link: 'v1' },
      { op: 'link-master', link: 'v0', master: 'br0' },
      { op: 'link-state', link: 'br0', up: true },
      { op: 'link-state', link: 'v0', up: true },
    ],
  },
  {
    name: 'a veth whose peer goes to another namespace; an existing link may be that far end here',
    current: state(),
    desired: { links: [{ name: 'v0', kind: 'veth', peer: 'p0', peerNetns: 'other', up: false }] },
    want: [{ op: 'link-add', link: 'v0', kind: 'veth', peer: 'p0', peerNetns: 'other' }],
  },
  {
    name: 'an existing veth end created in the peer namespace is configured as existing',
    current: state({ links: [link(1, 'lo', undefined), link(7, 'p0', 'veth', { alias: undefined, parentIndex: 3, parentNetnsId: 0, up: false })] }),
    desired: { links: [{ name: 'p0', kind: 'existing', addresses: ['10.9.0.2/24'] }] },
    want: [
      { op: 'link-state', link: 'p0', up: true },
      { op: 'address-add', link: 'p0', address: '10.9.0.2/24' },
    ],
  },
  {
    name: 'out-of-band MTU and MAC changes are put back, nothing else',
    current: stateWith((s) => { linkOf(s, 'br0').mtu = 1500; linkOf(s, 'tap0').mac = '02:00:00:00:bb:01'; }),
    desired: converged,
    want: [
      { op: 'link-mtu', link: 'br0', mtu: 9000 },
      { op: 'link-mac', link: 'tap0', mac: '02:00:00:00:aa:01' },
    ],
  },
  {
    name: 'MTU and MAC not given are left as the kernel has them',
    current: stateWith((s) => { linkOf(s, 'v0').mtu = 1300; linkOf(s, 'v0').mac = '02:00:00:00:cc:01'; }),
    desired: converged,
    want: [],
  },
  {
    name: 'a link set down out of band comes back up; one desired down goes down',
    current: stateWith((s) => { linkOf(s, 'v0').up = false; }),
    desired: desiredWith((d) => { d.links[3]!.up = false; }),
    want: [
      { op: 'link-state', link: 'v0', up: true },
      { op: 'link-state', link: 'tap0', up: false },
    ],
  },
  {
    name: 'bridge membership: released out of band is restored; a port no longer desired is released',
    current: stateWith((s) => { linkOf(s, 'v0').master = undefined; }),
    desired: desiredWith((d) => { delete d.links[3]!.master; }),
    want: [
      { op: 'link-master', link: 'v0', master: 'br0' },
      { op: 'link-master', link: 'tap0', master: null },
    ],
  },
  {
    name: 'extra addresses on owned links go; kernel link-local, SLAAC and other links stay',
    current: stateWith((s) => {
      s.addresses.push(addr(2, '10.0.0.50/24', { secondary: true }), addr(2, 'fd00::abcd/64', { permanent: false }), addr(5, '10.5.0.1/24'),
        addr(6, '192.168.1.6/24', { secondary: true }));
      s.addresses = s.addresses.filter((a) => a.cidr !== 'fd00::1/64');
    }),
    desired: converged,
    want: [
      { op: 'address-delete', link: 'br0', address: '10.0.0.50/24' },
      { op: 'address-delete', link: 'tap0', address: '10.5.0.1/24' },
      { op: 'address-add', link: 'br0', address: 'fd00::1/64' },
    ],
  },
  {
    name: 'an address whose prefix changed is deleted and added',
    current: stateWith((s) => { s.addresses = s.addresses.map((a) => (a.cidr === '10.0.0.1/24' ? addr(2, '10.0.0.1/16') : a)); }),
    desired: converged,
    want: [
      { op: 'address-delete', link: 'br0', address: '10.0.0.1/16' },
      { op: 'address-add', link: 'br0', address: '10.0.0.1/24' },
    ],
  },
  {
    name: 'deleting an IPv4 primary takes its secondaries along: kept ones are added back, unwanted ones not deleted twice',
    current: stateWith((s) => {
      s.addresses.push(addr(2, '10.0.0.2/24', { secondary: true }), addr(2, '10.0.0.3/24', { secondary: true }));
    }),
    desired: desiredWith((d) => { d.links[0]!.addresses = ['10.0.0.2/24', 'fd00::1/64']; }),
    want: [
      { op: 'address-delete', link: 'br0', address: '10.0.0.1/24' },
      { op: 'address-add', link: 'br0', address: '10.0.0.2/24' },
    ],
  },
  {
    name: 'routes: missing added, changed gateway replaced, extra static removed, kernel routes and other links untouched',
    current: stateWith((s) => {
      s.routes = s.routes.filter((r) => r.dst !== '::/0');
      s.routes.find((r) => r.dst === '0.0.0.0/0')!.gateway = '10.0.0.253';
      s.routes.push(route({ dst: '10.99.0.0/16', oif: 2, protocol: 3, gateway: '10.0.0.254' }));
      s.routes.push(route({ dst: '10.98.0.0/16', oif: 6, protocol: 3, gateway: '192.168.1.1' }));
      s.routes.push(route({ dst: '2001:db8::/32', oif: 2, protocol: 9, gateway: 'fe80::1' }));
    }),
    desired: converged,
    want: [
      { op: 'route-delete', route: { family: 4, dst: '10.99.0.0/16', gateway: '10.0.0.254', dev: 'br0', table: 254, metric: 0 } },
      { op: 'route-replace', route: { family: 4, dst: '0.0.0.0/0', gateway: '10.0.0.254', dev: 'br0', table: 254, metric: 0 } },
      { op: 'route-add', route: { family: 6, dst: '::/0', gateway: 'fd00::fe', dev: 'br0', table: 254, metric: 1024 } },
    ],
  },
  {
    name: 'a desired route that an unowned link holds is taken over (replace), not added',
    current: stateWith((s) => { s.routes.find((r) => r.dst === '0.0.0.0/0')!.oif = 6; }),
    desired: converged,
    want: [{ op: 'route-replace', route: { family: 4, dst: '0.0.0.0/0', gateway: '10.0.0.254', dev: 'br0', table: 254, metric: 0 } }],
  },
  {
    name: 'routes in other tables on owned links are managed too; metric is part of the key',
    current: stateWith((s) => { s.routes.push(route({ dst: '10.1.0.0/16', oif: 2, table: 100 })); }),
    desired: desiredWith((d) => { d.routes!.push({ dst: '10.1.0.0/16', dev: 'br0', table: 100, metric: 5 }); }),
    want: [
      { op: 'route-delete', route: { family: 4, dst: '10.1.0.0/16', dev: 'br0', table: 100, metric: 0 } },
      { op: 'route-add', route: { family: 4, dst: '10.1.0.0/16', dev: 'br0', table: 100, metric: 5 } },
    ],
  },
  {
    name: 'neighbours: missing added, changed MAC replaced, learnt entry made permanent, extra permanent removed, learnt ones kept',
    current: stateWith((s) => {
      s.neighbours = [
        neigh(2, '10.0.0.9', '02:00:00:00:00:10'),
        neigh(2, '10.0.0.10', '02:00:00:00:00:10', ['stale']),
        neigh(2, '10.0.0.11', '02:00:00:00:00:11'),
        neigh(2, '10.0.0.77', '02:00:00:00:00:77', ['reachable']),
        neigh(6, '192.168.1.1', '02:00:00:00:01:01'),
      ];
    }),
    desired: desiredWith((d) => {
      d.neighbours!.push({ dev: 'br0', address: '10.0.0.10', mac: '02:00:00:00:00:10' }, { dev: 'br0', address: 'fd00::9', mac: '02:00:00:00:00:09' });
    }),
    want: [
      { op: 'neighbour-delete', dev: 'br0', address: '10.0.0.11' },
      { op: 'neighbour-replace', dev: 'br0', address: '10.0.0.9', mac: '02:00:00:00:00:09' },
      { op: 'neighbour-replace', dev: 'br0', address: '10.0.0.10', mac: '02:00:00:00:00:10' },
      { op: 'neighbour-add', dev: 'br0', address: 'fd00::9', mac: '02:00:00:00:00:09' },
    ],
  },
  {
    name: 'links we created that left the desired state are deleted (a veth pair once); others are not',
    current: stateWith((s) => {
      s.links.push(link(8, 'old0', 'veth', { parentIndex: 9 }), link(9, 'old1', 'veth', { parentIndex: 8 }), link(10, 'oldbr', 'bridge'),
        link(11, 'theirs', 'bridge', { alias: undefined }), link(12, 'tapx', 'tun', { alias: OWNER_ALIAS }));
    }),
    desired: converged,
    want: [{ op: 'link-delete', link: 'old0' }, { op: 'link-delete', link: 'oldbr' }],
  },
  {
    name: 'a link of the right kind without our mark is adopted',
    current: stateWith((s) => { linkOf(s, 'br0').alias = 'made by hand'; }),
    desired: converged,
    want: [{ op: 'link-own', link: 'br0' }],
  },
  {
    name: 'existing links are never marked, created or deleted',
    current: stateWith((s) => { linkOf(s, 'tap0').alias = undefined; }),
    desired: converged,
    want: [],
  },
];

describe('plan', () => {
  it.each(cases)('$name', ({ current, desired, want }) => {
    expect(plan(current, desired)).toEqual(want);
  });

  it('every change has a one-line description', () => {
    const all = cases.flatMap((c) => plan(c.current, c.desired));
    for (const c of all) expect(describeChange(c)).toMatch(/^[a-z]+ [^\n]+$/);
    expect(describeChange({ op: 'route-add', route: { family: 4, dst: '0.0.0.0/0', gateway: '10.0.0.1', dev: 'br0', table: 254, metric: 0 } }))
      .toBe('add route 0.0.0.0/0 via 10.0.0.1 dev br0 metric 0');
  });
});

describe('plan: 802.1Q VLAN devices', () => {
  const trunkState = (...more: Link[]): KernelState => state({ links: [link(1, 'lo', undefined), link(2, 'trunk0', undefined, { up: false }), ...more] });
  const desired: DesiredNetwork = { links: [
    { name: 'trunk0', kind: 'existing' },
    { name: 'nea-br10', kind: 'bridge' },
    { name: 'nea-v10', kind: 'vlan', parent: 'trunk0', vlanId: 110, master: 'nea-br10' },
  ] };

  it('creates the VLAN device on its trunk, bridges it and brings everything up', () => {
    expect(plan(trunkState(), desired)).toEqual([
      { op: 'link-add', link: 'nea-br10', kind: 'bridge' },
      { op: 'link-add', link: 'nea-v10', kind: 'vlan', parent: 'trunk0', vlanId: 110 },
      { op: 'link-master', link: 'nea-v10', master: 'nea-br10' },
      { op: 'link-state', link: 'trunk0', up: true },
      { op: 'link-state', link: 'nea-br10', up: true },
      { op: 'link-state', link: 'nea-v10', up: true },
    ]);
    expect(describeChange({ op: 'link-add', link: 'nea-v10', kind: 'vlan', parent: 'trunk0', vlanId: 110 })).toBe('add vlan nea-v10 id 110 on trunk0');
  });

  it('is idempotent once the device exists', () => {
    const cur = trunkState(link(3, 'nea-br10', 'bridge'), link(4, 'nea-v10', 'vlan', { master: 3, parentIndex: 2, vlan: { id: 110, protocol: 0x8100 }, alias: OWNER_ALIAS }));
    cur.links[1]!.up = true;
    expect(plan(cur, desired)).toEqual([]);
  });

  it('deletes a VLAN device it made once it leaves the desired state, adopts an unmarked one', () => {
    const mine = link(4, 'nea-v20', 'vlan', { parentIndex: 2, vlan: { id: 120, protocol: 0x8100 }, alias: OWNER_ALIAS });
    expect(plan(trunkState(mine), { links: [{ name: 'trunk0', kind: 'existing' }] })).toContainEqual({ op: 'link-delete', link: 'nea-v20' });
    const byHand = link(4, 'nea-v10', 'vlan', { parentIndex: 2, vlan: { id: 110, protocol: 0x8100 } });
    expect(plan(trunkState(byHand), { links: [{ name: 'trunk0', kind: 'existing' }, { name: 'nea-v10', kind: 'vlan', parent: 'trunk0', vlanId: 110 }] }))
      .toContainEqual({ op: 'link-own', link: 'nea-v10' });
  });

  it('refuses a device with that name but another VLAN id or trunk', () => {
    const other = link(4, 'nea-v10', 'vlan', { parentIndex: 2, vlan: { id: 111, protocol: 0x8100 }, alias: OWNER_ALIAS });
    const run = (): Change[] => plan(trunkState(link(3, 'nea-br10', 'bridge'), other), desired);
    expect(run).toThrow(LinkConflictError);
    expect(run).toThrow('VLAN device nea-v10 exists as VLAN 111 on trunk0, but the desired state wants VLAN 110 on trunk0');
  });
});

describe('plan refuses, changing nothing', () => {
  it('a link that exists with another kind', () => {
    const current = state({ links: [link(1, 'lo', undefined), link(2, 'br0', 'veth', { parentIndex: 3 }), link(3, 'x', 'veth', { parentIndex: 2 })] });
    const run = (): Change[] => plan(current, { links: [{ name: 'br0', kind: 'bridge' }] });
    expect(run).toThrow(LinkConflictError);
    expect(run).toThrow('link br0 exists as a veth, but the desired state wants a bridge');
  });
  it('a device without a kind where a bridge is wanted', () => {
    expect(() => plan(convergedState, { links: [{ name: 'eth0', kind: 'bridge' }] })).toThrow(/eth0 exists as a device without a kind/);
  });
  it('a veth that exists with another peer', () => {
    const current = state({ links: [link(1, 'lo', undefined), link(2, 'v0', 'veth', { parentIndex: 3 }), link(3, 'z', 'veth', { parentIndex: 2 })] });
    expect(() => plan(current, { links: [{ name: 'v0', kind: 'veth', peer: 'v1' }] })).toThrow(/veth v0 exists with peer z/);
  });
  it('a veth whose peer name is taken', () => {
    const current = state({ links: [link(1, 'lo', undefined), link(2, 'v1', 'bridge')] });
    expect(() => plan(current, { links: [{ name: 'v0', kind: 'veth', peer: 'v1' }] })).toThrow(/peer name v1 is taken by an existing bridge/);
  });
  it('an existing link that is absent', () => {
    const run = (): Change[] => plan(state(), { links: [{ name: 'tap0', kind: 'existing' }] });
    expect(run).toThrow(LinkMissingError);
    expect(run).toThrow(/tap0 should exist/);
  });
  it('removing one end of a veth pair whose other end stays desired', () => {
    const current = state({ links: [link(1, 'lo', undefined), link(2, 'v0', 'veth', { parentIndex: 3 }), link(3, 'v1', 'veth', { parentIndex: 2 })] });
    expect(() => plan(current, { links: [{ name: 'v1', kind: 'existing' }] })).toThrow(/peer of veth v0/);
  });
});

describe('normalizeDesired refuses invalid input', () => {
  const bad: [string, DesiredNetwork, RegExp][] = [
    ['duplicate link', { links: [{ name: 'a', kind: 'bridge' }, { name: 'a', kind: 'bridge' }] }, /listed twice/],
    ['bad name', { links: [{ name: 'a/b', kind: 'bridge' }] }, /not a valid link name/],
    ['bad kind', { links: [{ name: 'a', kind: 'vxlan' } as unknown as DesiredNetwork['links'][number]] }, /kind must be/],
    ['bad mtu', { links: [{ name: 'a', kind: 'bridge', mtu: 20 }] }, /MTU 20/],
    ['multicast mac', { links: [{ name: 'a', kind: 'bridge', mac: '01:00:5e:00:00:01' }] }, /not a unicast/],
    ['bad address', { links: [{ name: 'a', kind: 'bridge', addresses: ['10.0.0.1'] }] }, /prefix length/],
    ['duplicate address', { links: [{ name: 'a', kind: 'bridge', addresses: ['fd00::1/64', 'FD00:0::1/64'] }] }, /listed twice/],
    ['unknown master', { links: [{ name: 'a', kind: 'bridge', master: 'b' }] }, /master b is not a link/],
    ['veth as master', { links: [{ name: 'a', kind: 'veth', peer: 'b', master: 'c' }, { name: 'c', kind: 'veth', peer: 'd' }] }, /is a veth, not a bridge/],
    ['veth own peer', { links: [{ name: 'a', kind: 'veth', peer: 'a' }] }, /own peer/],
    ['veth peer listed as bridge', { links: [{ name: 'a', kind: 'veth', peer: 'b' }, { name: 'b', kind: 'bridge' }] }, /listed as a bridge/],
    ['veth peers disagree', { links: [{ name: 'a', kind: 'veth', peer: 'b' }, { name: 'b', kind: 'veth', peer: 'c' }] }, /another peer/],
    ['vlan without a listed parent', { links: [{ name: 'v', kind: 'vlan', parent: 'trunk0', vlanId: 10 }] }, /parent trunk0 is not a link/],
    ['vlan id 0', { links: [{ name: 't', kind: 'existing' }, { name: 'v', kind: 'vlan', parent: 't', vlanId: 0 }] }, /vlanId 0 must be/],
    ['vlan id 4095', { links: [{ name: 't', kind: 'existing' }, { name: 'v', kind: 'vlan', parent: 't', vlanId: 4095 }] }, /vlanId 4095 must be/],
    ['vlan on a bridge', { links: [{ name: 'b', kind: 'bridge' }, { name: 'v', kind: 'vlan', parent: 'b', vlanId: 5 }] }, /is a bridge, not a trunk/],
    ['vlan on a bridge port', { links: [{ name: 'b', kind: 'bridge' }, { name: 't', kind: 'existing', master: 'b' }, { name: 'v', kind: 'vlan', parent: 't', vlanId: 5 }] }, /cannot be a bridge port too/],
    ['the same VLAN twice on a trunk', { links: [{ name: 't', kind: 'existing' }, { name: 'v', kind: 'vlan', parent: 't', vlanId: 5 }, { name: 'w', kind: 'vlan', parent: 't', vlanId: 5 }] }, /VLAN 5 on t is also link/],
    ['route dev unknown', { links: [], routes: [{ dst: '10.0.0.0/8', dev: 'x' }] }, /dev x is not a link/],
    ['route on a down link', { links: [{ name: 'a', kind: 'bridge', up: false }], routes: [{ dst: '10.0.0.0/8', dev: 'a' }] }, /desired down/],
    ['duplicate route', { links: [{ name: 'a', kind: 'bridge' }], routes: [{ dst: '::/0', via: 'fd00::1', dev: 'a' }, { dst: 'default', via: 'fd00::2', dev: 'a', metric: 1024 }] }, /two routes/],
    ['neighbour dev unknown', { links: [], neighbours: [{ dev: 'x', address: '10.0.0.1', mac: '02:00:00:00:00:01' }] }, /dev x is not a link/],
    ['neighbour bad mac', { links: [{ name: 'a', kind: 'bridge' }], neighbours: [{ dev: 'a', address: '10.0.0.1', mac: 'nope' }] }, /not six hex bytes/],
    ['duplicate neighbour', { links: [{ name: 'a', kind: 'bridge' }], neighbours: [
      { dev: 'a', address: 'fd00::1', mac: '02:00:00:00:00:01' }, { dev: 'a', address: 'fd00:0::1', mac: '02:00:00:00:00:02' }] }, /listed twice/],
  ];
  it.each(bad)('%s', (_name, d, msg) => {
    expect(() => normalizeDesired(d)).toThrow(ValidationError);
    expect(() => normalizeDesired(d)).toThrow(msg);
    expect(() => plan(state(), d)).toThrow(ValidationError);
  });

  it('fills defaults and canonicalizes', () => {
    const n = normalizeDesired({
      links: [{ name: 'a', kind: 'bridge', mac: '02:AA:00:00:00:01', addresses: ['FD00:0:0::1/64'] }],
      routes: [{ dst: 'default', via: 'FD00::FE', dev: 'a' }],
      neighbours: [{ dev: 'a', address: 'FD00::9', mac: '02-00-00-00-00-09' }],
    });
    expect(n.links[0]).toMatchObject({ up: true, mac: '02:aa:00:00:00:01', addresses: ['fd00::1/64'] });
    expect(n.routes[0]).toEqual({ family: 6, dst: '::/0', gateway: 'fd00::fe', dev: 'a', table: 254, metric: 1024 });
    expect(n.neighbours[0]).toEqual({ dev: 'a', address: 'fd00::9', mac: '02:00:00:00:00:09' });
  });
});
