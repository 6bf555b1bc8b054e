/**
 * Declarative network configuration of one namespace: the desired state as
 * data, and the pure diff `plan(current, desired) -> Change[]`.
 *
 * What the desired state owns (and so what `plan` may change or remove):
 * - its links: bridges, veths and VLAN devices it creates (marked with the alias
 *   `OWNER_ALIAS`, so a later desired state without them deletes them) and
 *   `existing` links made by someone else (TAPs from the TAP addon, NICs),
 *   which it configures but never creates or deletes;
 * - on those links, exactly: admin state, bridge membership, the listed
 *   addresses, the unicast routes leaving through them, and permanent
 *   neighbour entries. MTU and MAC only when given.
 *
 * What it leaves alone: every other link; on owned links, the kernel's own
 * addresses (IPv6 link-local, loopback) and SLAAC addresses (not permanent),
 * kernel routes (protocol kernel/redirect/ra, the local table) and learnt
 * (non-permanent) neighbour entries.
 *
 * Refusals (nothing is changed): invalid input (ValidationError), a link
 * that exists with another kind or another veth peer (LinkConflictError), an
 * `existing` link that is absent (LinkMissingError).
 */
import { NeaError, ValidationError } from '../shared/errors.js';
import {
  canonicalIp, canonicalMac, formatCidr, isV6LinkLocal, parseCidr, parseIp, parseMac, type Family,
} from './ip.js';
import {
  RTN_UNICAST, RTPROT_KERNEL, RTPROT_RA, RTPROT_REDIRECT, TABLE_LOCAL, TABLE_MAIN, checkLinkName, checkMtu, routeParts,
  type Address, type Link, type Neighbour, type Route,
} from './netlink.js';

/** IFLA_IFALIAS of the links the reconciler created; it deletes them once they leave the desired state. */
export const OWNER_ALIAS = 'nea-managed';

interface DesiredLinkCommon {
  /** Link name, 1-15 characters. */
  name: string;
  /** Administrative state; default true. */
  up?: boolean;
  /** MTU in bytes; absent: left as the kernel has it. */
  mtu?: number;
  /** MAC address; absent: left as the kernel has it. */
  mac?: string;
  /** The bridge this link is a port of (a link of this desired state); absent: not a port of anything. */
  master?: string;
  /** Exactly the addresses (`ADDRESS/PREFIX`) the link carries, besides the kernel's own. Default none. */
  addresses?: string[];
}

export interface DesiredBridge extends DesiredLinkCommon {
  kind: 'bridge';
}

/**
 * A veth pair, created from this end. The peer is created in `peerNetns`
 * when given (and is configured by that namespace's own desired state, as an
 * `existing` link); otherwise here, where it may be listed as a link too.
 */
export interface DesiredVeth extends DesiredLinkCommon {
  kind: 'veth';
  peer: string;
  /** Namespace name (under /run/netns) to create the peer in. */
  peerNetns?: string;
}

/** A link someone else creates (a TAP of the TAP addon, a NIC, the far end of a veth): configured, never created or deleted. */
export interface DesiredExisting extends DesiredLinkCommon {
  kind: 'existing';
}

/**
 * An 802.1Q VLAN device on `parent` (a trunk, itself a link of the desired
 * state). Needs a kernel with 802.1Q devices (`8021q`); where it has none, the
 * appliance tags in user space instead and never asks for this kind.
 */
export interface DesiredVlan extends DesiredLinkCommon {
  kind: 'vlan';
  /** The trunk the device tags frames on. */
  parent: string;
  /** VLAN id, 1..4094. */
  vlanId: number;
}

export type DesiredLink = DesiredBridge | DesiredVeth | DesiredExisting | DesiredVlan;

export interface DesiredRoute {
  /** Destination network `ADDRESS/PREFIX`, `0.0.0.0/0` / `::/0` for a default route, or `default` with `via`. */
  dst: string;
  /** Gateway; absent: directly connected. */
  via?: string;
  /** Output link: one of the desired links. */
  dev: string;
  /** Preferred source address. */
  src?: string;
  /** Default 0 (IPv4) / 1024 (IPv6). */
  metric?: number;
  /** Default main (254). */
  table?: number;
}

export interface DesiredNeighbour {
  /** One of the desired links. */
  dev: string;
  address: string;
  mac: string;
}

export interface DesiredNetwork {
  links: DesiredLink[];
  routes?: DesiredRoute[];
  neighbours?: DesiredNeighbour[];
}

/** What `plan` reads: one snapshot of the namespace. */
export interface KernelState {
  links: Link[];
  addresses: Address[];
  routes: Route[];
  neighbours: Neighbour[];
}

/** A route with every default filled in and every address canonical. */
export interface PlannedRoute {
  family: Family;
  dst: string;
  gateway?: string;
  dev: string;
  src?: string;
  table: number;
  metric: number;
}

/**
 * One kernel operation. Links are named (the applier resolves names when it
 * runs, after earlier changes created them). Ordered as the applier must run
 * them.
 */
export type Change =
  | { op: 'link-delete'; link: string }
  | { op: 'link-add'; link: string; kind: 'bridge'; mtu?: number; mac?: string }
  | { op: 'link-add'; link: string; kind: 'veth'; peer: string; peerNetns?: string; mtu?: number; mac?: string }
  | { op: 'link-add'; link: string; kind: 'vlan'; parent: string; vlanId: number; mtu?: number; mac?: string }
  | { op: 'link-own'; link: string }
  | { op: 'link-mtu'; link: string; mtu: number }
  | { op: 'link-mac'; link: string; mac: string }
  | { op: 'link-master'; link: string; master: string | null }
  | { op: 'link-state'; link: string; up: boolean }
  | { op: 'address-delete'; link: string; address: string }
  | { op: 'address-add'; link: string; address: string }
  | { op: 'route-delete'; route: PlannedRoute }
  | { op: 'route-add'; route: PlannedRoute }
  | { op: 'route-replace'; route: PlannedRoute }
  | { op: 'neighbour-delete'; dev: string; address: string }
  | { op: 'neighbour-add'; dev: string; address: string; mac: string }
  | { op: 'neighbour-replace'; dev: string; address: string; mac: string };

/** A link of the current state conflicts with the desired one (other kind, other veth peer, name taken). */
export class LinkConflictError extends NeaError {
  constructor(readonly link: string, message: string) {
    super('NETCONFIG_LINK_CONFLICT', message);
  }
}

/** An `existing` link of the desired state is not there. */
export class LinkMissingError extends NeaError {
  constructor(readonly link: string, message: string) {
    super('NETCONFIG_LINK_MISSING', message);
  }
}

// ---- normalization -------------------------------------------------------------

interface NormLink {
  name: string;
  kind: DesiredLink['kind'];
  peer: string | undefined;
  peerNetns: string | undefined;
  /** VLAN devices: the trunk and the VLAN id. */
  parent: string | undefined;
  vlanId: number | undefined;
  up: boolean;
  mtu: number | undefined;
  mac: string | undefined;
  master: string | undefined;
  /** Canonical CIDRs, in the given order. */
  addresses: string[];
}

interface NormNeighbour {
  dev: string;
  address: string;
  mac: string;
}

export interface NormalizedNetwork {
  links: NormLink[];
  routes: PlannedRoute[];
  neighbours: NormNeighbour[];
}

function routeKey(r: { table: number; dst: string; metric: number }): string {
  return `${r.table}|${r.dst}|${r.metric}`;
}

/**
 * Validate a desired state and bring it to canonical form (defaults filled,
 * addresses canonical). Pure; throws ValidationError naming the offending item.
 */
export function normalizeDesired(d: DesiredNetwork): NormalizedNetwork {
  const links: NormLink[] = [];
  const byName = new Map<string, NormLink>();
  for (const l of d.links) {
    const what = `link ${l.name}`;
    checkLinkName(l.name, what);
    if (byName.has(l.name)) throw new ValidationError(`link ${l.name} is listed twice`);
    const kinds: readonly string[] = ['bridge', 'veth', 'existing', 'vlan'];
    if (!kinds.includes(l.kind)) throw new ValidationError(`${what}: kind must be bridge, veth, vlan or existing`);
    let parent: string | undefined;
    let vlanId: number | undefined;
    if (l.kind === 'vlan') {
      parent = checkLinkName(l.parent, `${what}: parent`);
      if (parent === l.name) throw new ValidationError(`${what}: a VLAN device cannot be its own parent`);
      if (!Number.isInteger(l.vlanId) || l.vlanId < 1 || l.vlanId > 4094) throw new ValidationError(`${what}: vlanId ${l.vlanId} must be an integer 1..4094`);
      vlanId = l.vlanId;
    }
    let peer: string | undefined;
    let peerNetns: string | undefined;
    if (l.kind === 'veth') {
      peer = checkLinkName(l.peer, `${what}: peer`);
      if (peer === l.name) throw new ValidationError(`${what}: a veth cannot be its own peer`);
      if (l.peerNetns !== undefined) {
        if (l.peerNetns === '' || l.peerNetns.includes('/')) throw new ValidationError(`${what}: peerNetns "${l.peerNetns}" is not a namespace name`);
        peerNetns = l.peerNetns;
      }
    }
    if (l.mtu !== undefined) checkMtu(l.mtu, what);
    let mac: string | undefined;
    if (l.mac !== undefined) {
      const b = parseMac(l.mac, `${what}: mac`);
      if ((b[0]! & 1) === 1 || b.every((x) => x === 0)) throw new ValidationError(`${what}: mac ${l.mac} is not a unicast address`);
      mac = canonicalMac(l.mac);
    }
    const addresses: string[] = [];
    for (const a of l.addresses ?? []) {
      const c = parseCidr(a, `${what}: address`);
      const cidr = formatCidr(c.bytes, c.prefixLength);
      if (addresses.includes(cidr)) throw new ValidationError(`${what}: address ${cidr} is listed twice`);
      addresses.push(cidr);
    }
    const n: NormLink = {
      name: l.name, kind: l.kind, peer, peerNetns, parent, vlanId, up: l.up ?? true, mtu: l.mtu, mac, master: l.master, addresses,
    };
    links.push(n);
    byName.set(n.name, n);
  }
  for (const l of links) {
    if (l.master !== undefined) {
      const m = byName.get(l.master);
      if (!m) throw new ValidationError(`link ${l.name}: master ${l.master} is not a link of the desired state`);
      if (m.name === l.name) throw new ValidationError(`link ${l.name} cannot be its own master`);
      if (m.kind === 'veth') throw new ValidationError(`link ${l.name}: master ${l.master} is a veth, not a bridge`);
    }
    if (l.kind === 'vlan') {
      const p = byName.get(l.parent ?? '');
      if (!p) throw new ValidationError(`link ${l.name}: parent ${l.parent ?? ''} is not a link of the desired state`);
      if (p.kind === 'bridge') throw new ValidationError(`link ${l.name}: parent ${l.parent ?? ''} is a bridge, not a trunk`);
      if (p.master !== undefined) throw new ValidationError(`link ${l.name}: parent ${l.parent ?? ''} is a port of bridge ${p.master}; a trunk cannot be a bridge port too`);
      const twin = links.find((o) => o !== l && o.kind === 'vlan' && o.parent === l.parent && o.vlanId === l.vlanId);
      if (twin) throw new ValidationError(`link ${l.name}: VLAN ${l.vlanId ?? 0} on ${l.parent ?? ''} is also link ${twin.name}`);
    }
    if (l.kind === 'veth' && l.peerNetns === undefined && l.peer !== undefined) {
      const p = byName.get(l.peer);
      if (p && p.kind === 'bridge') throw new ValidationError(`link ${l.name}: its veth peer ${l.peer} is listed as a bridge`);
      if (p && p.kind === 'veth' && (p.peer !== l.name || p.peerNetns !== undefined)) {
        throw new ValidationError(`link ${l.name}: its peer ${l.peer} is listed as a veth with another peer`);
      }
    }
  }

  const routes: PlannedRoute[] = [];
  const routeKeys = new Set<string>();
  for (const r of d.routes ?? []) {
    const what = `route ${r.dst}`;
    const p = routeParts({ dst: r.dst, ...(r.via !== undefined && { gateway: r.via }), ...(r.src !== undefined && { src: r.src }),
      ...(r.table !== undefined && { table: r.table }), ...(r.metric !== undefined && { metric: r.metric }) });
    const dev = byName.get(r.dev);
    if (!dev) throw new ValidationError(`${what}: dev ${r.dev} is not a link of the desired state`);
    if (!dev.up) throw new ValidationError(`${what}: dev ${r.dev} is desired down, and the kernel keeps no routes on a down link`);
    const pr: PlannedRoute = { family: p.family, dst: formatCidr(p.dst, p.dstLen), dev: r.dev, table: p.table, metric: p.metric };
    if (p.gateway) pr.gateway = canonicalIp(r.via ?? '');
    if (p.src) pr.src = canonicalIp(r.src ?? '');
    const key = routeKey(pr);
    if (routeKeys.has(key)) throw new ValidationError(`${what}: two routes to ${pr.dst} with metric ${pr.metric} in table ${pr.table}`);
    routeKeys.add(key);
    routes.push(pr);
  }

  const neighbours: NormNeighbour[] = [];
  const neighKeys = new Set<string>();
  for (const n of d.neighbours ?? []) {
    const what = `neighbour ${n.address}`;
    if (!byName.has(n.dev)) throw new ValidationError(`${what}: dev ${n.dev} is not a link of the desired state`);
    const address = canonicalIp(n.address, `${what}: address`);
    const mac = canonicalMac(n.mac, `${what}: mac`);
    const key = `${n.dev}|${address}`;
    if (neighKeys.has(key)) throw new ValidationError(`${what} on ${n.dev} is listed twice`);
    neighKeys.add(key);
    neighbours.push({ dev: n.dev, address, mac });
  }
  return { links, routes, neighbours };
}

// ---- what the reconciler manages on owned links ---------------------------------

/** Addresses the kernel makes by itself: IPv6 link-local, loopback, SLAAC (not permanent). */
export function isKernelAddress(a: Address): boolean {
  if (!a.permanent) return true;
  const ip = parseIp(a.address);
  if (a.family === 6) return isV6LinkLocal(ip.bytes) || a.cidr === '::1/128';
  return a.cidr === '127.0.0.1/8';
}

/** Routes the kernel makes by itself: local table, protocol kernel/redirect/ra, non-unicast. */
export function isKernelRoute(r: Route): boolean {
  return r.table === TABLE_LOCAL || r.type !== RTN_UNICAST ||
    r.protocol === RTPROT_KERNEL || r.protocol === RTPROT_REDIRECT || r.protocol === RTPROT_RA;
}

function sameSubnet(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  if (x.family !== y.family || x.prefixLength !== y.prefixLength) return false;
  const net = (c: typeof x): Buffer => {
    const out = Buffer.from(c.bytes);
    for (let bit = c.prefixLength; bit < out.length * 8; bit++) out[bit >> 3] = out[bit >> 3]! & ~(1 << (7 - (bit & 7)));
    return out;
  };
  return net(x).equals(net(y));
}

// ---- plan -------------------------------------------------------------------------

/**
 * The changes that take `current` to `desired`, in the order they must be
 * applied: stale links deleted; links created; MTU, MAC, ownership mark;
 * bridge membership; admin state; routes, neighbours and addresses removed;
 * addresses, routes and neighbours added. Empty when the namespace already
 * matches. Pure; throws ValidationError, LinkConflictError, LinkMissingError.
 */
export function plan(current: KernelState, desired: DesiredNetwork): Change[] {
  const d = normalizeDesired(desired);
  const curByName = new Map(current.links.map((l) => [l.name, l]));
  const curByIndex = new Map(current.links.map((l) => [l.index, l]));
  const wanted = new Map(d.links.map((l) => [l.name, l]));

  // 1. Which desired links exist, which this plan creates, which come with a created veth.
  const creates: NormLink[] = [];
  const comesWithPeer = new Set<string>();
  for (const l of d.links) {
    const cur = curByName.get(l.name);
    if (l.kind === 'existing') continue;
    if (cur) {
      if (cur.kind !== l.kind) {
        throw new LinkConflictError(l.name, `link ${l.name} exists as a ${cur.kind ?? 'device without a kind'}, but the desired state wants a ${l.kind}: ` +
          'refusing to replace it (delete or rename it, or rename the desired link)');
      }
      if (l.kind === 'veth') {
        const peerHere = cur.parentNetnsId === undefined;
        const peerName = peerHere && cur.parentIndex !== undefined ? curByIndex.get(cur.parentIndex)?.name : undefined;
        if (l.peerNetns === undefined && peerName !== l.peer) {
          throw new LinkConflictError(l.name, `veth ${l.name} exists with peer ${peerName ?? 'in another namespace'}, but the desired peer is ${l.peer ?? ''} here: refusing to replace it`);
        }
        if (l.peerNetns !== undefined && peerHere) {
          throw new LinkConflictError(l.name, `veth ${l.name} exists with peer ${peerName ?? '?'} in this namespace, but the desired peer is in netns ${l.peerNetns}: refusing to replace it`);
        }
      }
      if (l.kind === 'vlan') {
        const parentName = cur.parentIndex !== undefined ? curByIndex.get(cur.parentIndex)?.name : undefined;
        if (parentName !== l.parent || cur.vlan?.id !== l.vlanId) {
          throw new LinkConflictError(l.name, `VLAN device ${l.name} exists as VLAN ${cur.vlan?.id ?? '?'} on ${parentName ?? '?'}, but the desired state wants VLAN ${l.vlanId ?? 0} on ${l.parent ?? ''}: refusing to replace it (delete it first)`);
        }
      }
      continue;
    }
    if (comesWithPeer.has(l.name)) continue;
    if (l.kind === 'veth' && l.peerNetns === undefined && l.peer !== undefined) {
      const taken = curByName.get(l.peer);
      if (taken) {
        throw new LinkConflictError(l.name, `cannot create veth ${l.name}: its peer name ${l.peer} is taken by an existing ${taken.kind ?? 'device'}`);
      }
      comesWithPeer.add(l.peer);
    }
    creates.push(l);
  }
  for (const l of d.links) {
    if (l.kind === 'existing' && !curByName.has(l.name) && !comesWithPeer.has(l.name)) {
      throw new LinkMissingError(l.name, `link ${l.name} should exist (made by the TAP addon or outside nea) but does not: create it first`);
    }
  }

  // Current link of a desired name, undefined when it is created by this plan.
  const cur = (name: string): Link | undefined => curByName.get(name);
  const nameOf = (index: number | undefined): string | undefined => (index === undefined ? undefined : curByIndex.get(index)?.name);

  const linkDeletes: Change[] = [];
  const linkAdds: Change[] = [];
  const linkProps: Change[] = [];
  const masters: Change[] = [];
  const states: Change[] = [];

  // 2. Links we created earlier that are no longer desired. A veth takes its peer with it.
  const gone = new Set<number>();
  for (const l of current.links) {
    if (l.alias !== OWNER_ALIAS || wanted.has(l.name) || (l.kind !== 'bridge' && l.kind !== 'veth' && l.kind !== 'vlan')) continue;
    if (gone.has(l.index)) continue;
    if (l.kind === 'veth' && l.parentNetnsId === undefined && l.parentIndex !== undefined) {
      const peer = curByIndex.get(l.parentIndex);
      if (peer && wanted.has(peer.name)) {
        throw new LinkConflictError(peer.name, `link ${peer.name} is desired, but it is the peer of veth ${l.name}, which is not desired any more and would take it along`);
      }
      gone.add(l.parentIndex);
    }
    gone.add(l.index);
    linkDeletes.push({ op: 'link-delete', link: l.name });
  }

  // 3. Per desired link: create, properties, membership, state.
  for (const l of creates) {
    if (l.kind === 'bridge') {
      linkAdds.push({ op: 'link-add', link: l.name, kind: 'bridge', ...(l.mtu !== undefined && { mtu: l.mtu }), ...(l.mac !== undefined && { mac: l.mac }) });
    } else if (l.kind === 'veth') {
      linkAdds.push({ op: 'link-add', link: l.name, kind: 'veth', peer: l.peer ?? '', ...(l.peerNetns !== undefined && { peerNetns: l.peerNetns }),
        ...(l.mtu !== undefined && { mtu: l.mtu }), ...(l.mac !== undefined && { mac: l.mac }) });
    } else if (l.kind === 'vlan') {
      linkAdds.push({ op: 'link-add', link: l.name, kind: 'vlan', parent: l.parent ?? '', vlanId: l.vlanId ?? 0,
        ...(l.mtu !== undefined && { mtu: l.mtu }), ...(l.mac !== undefined && { mac: l.mac }) });
    }
  }
  const created = new Set(creates.map((l) => l.name));
  for (const l of d.links) {
    const c = cur(l.name);
    if (!created.has(l.name)) {
      if (l.mtu !== undefined && c?.mtu !== l.mtu) linkProps.push({ op: 'link-mtu', link: l.name, mtu: l.mtu });
      if (l.mac !== undefined && c?.mac !== l.mac) linkProps.push({ op: 'link-mac', link: l.name, mac: l.mac });
      // Mark as ours: links of our kinds found without the mark, and veth peers listed as veths that come with a created pair.
      if (l.kind !== 'existing' && (c ? c.alias !== OWNER_ALIAS : comesWithPeer.has(l.name))) linkProps.push({ op: 'link-own', link: l.name });
    }
    const curMaster = nameOf(c?.master);
    if (curMaster !== l.master) masters.push({ op: 'link-master', link: l.name, master: l.master ?? null });
    if ((c?.up ?? false) !== l.up) states.push({ op: 'link-state', link: l.name, up: l.up });
  }

  // 4. Addresses on owned links.
  const addrDeletes: Change[] = [];
  const addrAdds: Change[] = [];
  for (const l of d.links) {
    const c = cur(l.name);
    const have = c ? current.addresses.filter((a) => a.index === c.index && !isKernelAddress(a)) : [];
    const haveCidrs = new Set(have.map((a) => a.cidr));
    const deleted = have.filter((a) => !l.addresses.includes(a.cidr));
    // Deleting an IPv4 primary address deletes the secondaries of its subnet with it.
    const takenAlong = (a: Address): boolean =>
      a.family === 4 && a.secondary && deleted.some((p) => p.family === 4 && !p.secondary && sameSubnet(p.cidr, a.cidr));
    for (const a of deleted) {
      if (!takenAlong(a)) addrDeletes.push({ op: 'address-delete', link: l.name, address: a.cidr });
    }
    for (const cidr of l.addresses) {
      const h = have.find((a) => a.cidr === cidr);
      if (!haveCidrs.has(cidr) || (h && takenAlong(h))) addrAdds.push({ op: 'address-add', link: l.name, address: cidr });
    }
  }

  // 5. Routes leaving through owned links.
  const routeDeletes: Change[] = [];
  const routeAdds: Change[] = [];
  const ownedIndex = new Set(d.links.flatMap((l) => { const c = cur(l.name); return c ? [c.index] : []; }));
  const managed = (r: Route): boolean => r.oif !== undefined && ownedIndex.has(r.oif) && !isKernelRoute(r);
  const curRoutes = new Map<string, Route>();
  for (const r of current.routes) {
    if (r.table === TABLE_LOCAL || r.type !== RTN_UNICAST) continue;
    const key = routeKey(r);
    // Prefer the managed route when the key is shared (IPv6 multipath siblings).
    if (!curRoutes.has(key) || managed(r)) curRoutes.set(key, r);
  }
  const wantedRouteKeys = new Set(d.routes.map(routeKey));
  for (const r of current.routes) {
    if (!managed(r) || wantedRouteKeys.has(routeKey(r))) continue;
    const dev = nameOf(r.oif) ?? '';
    const pr: PlannedRoute = { family: r.family, dst: r.dst, dev, table: r.table, metric: r.metric };
    if (r.gateway !== undefined) pr.gateway = r.gateway;
    if (r.src !== undefined) pr.src = r.src;
    routeDeletes.push({ op: 'route-delete', route: pr });
  }
  for (const r of d.routes) {
    const c = curRoutes.get(routeKey(r));
    if (!c) {
      routeAdds.push({ op: 'route-add', route: r });
    } else if (!managed(c) || nameOf(c.oif) !== r.dev || c.gateway !== r.gateway || c.src !== r.src) {
      routeAdds.push({ op: 'route-replace', route: r });
    }
  }

  // 6. Permanent neighbour entries on owned links.
  const neighDeletes: Change[] = [];
  const neighAdds: Change[] = [];
  const wantedNeigh = new Set(d.neighbours.map((n) => `${n.dev}|${n.address}`));
  for (const n of current.neighbours) {
    const dev = nameOf(n.index);
    if (dev === undefined || !wanted.has(dev) || !n.permanent || wantedNeigh.has(`${dev}|${n.address}`)) continue;
    neighDeletes.push({ op: 'neighbour-delete', dev, address: n.address });
  }
  for (const n of d.neighbours) {
    const c = cur(n.dev);
    const have = c ? current.neighbours.find((x) => x.index === c.index && x.address === n.address) : undefined;
    if (!have) neighAdds.push({ op: 'neighbour-add', dev: n.dev, address: n.address, mac: n.mac });
    else if (!have.permanent || have.mac !== n.mac) neighAdds.push({ op: 'neighbour-replace', dev: n.dev, address: n.address, mac: n.mac });
  }

  return [
    ...linkDeletes, ...linkAdds, ...linkProps, ...masters, ...states,
    ...routeDeletes, ...neighDeletes, ...addrDeletes,
    ...addrAdds, ...routeAdds, ...neighAdds,
  ];
}

/** One line for logs: `add bridge br0`, `set br0 mtu 9000`, ... */
export function describeChange(c: Change): string {
  const route = (r: PlannedRoute): string =>
    `${r.dst}${r.gateway !== undefined ? ` via ${r.gateway}` : ''} dev ${r.dev}${r.src !== undefined ? ` src ${r.src}` : ''}` +
    `${r.table !== TABLE_MAIN ? ` table ${r.table}` : ''} metric ${r.metric}`;
  switch (c.op) {
    case 'link-delete': return `delete link ${c.link}`;
    case 'link-add': {
      const extra = `${c.mtu !== undefined ? ` mtu ${c.mtu}` : ''}${c.mac !== undefined ? ` address ${c.mac}` : ''}`;
      if (c.kind === 'vlan') return `add vlan ${c.link} id ${c.vlanId} on ${c.parent}${extra}`;
      return c.kind === 'bridge' ? `add bridge ${c.link}${extra}`
        : `add veth ${c.link} peer ${c.peer}${c.peerNetns !== undefined ? ` in netns ${c.peerNetns}` : ''}${extra}`;
    }
    case 'link-own': return `mark ${c.link} as managed`;
    case 'link-mtu': return `set ${c.link} mtu ${c.mtu}`;
    case 'link-mac': return `set ${c.link} address ${c.mac}`;
    case 'link-master': return c.master === null ? `release ${c.link} from its master` : `set ${c.link} master ${c.master}`;
    case 'link-state': return `set ${c.link} ${c.up ? 'up' : 'down'}`;
    case 'address-delete': return `delete address ${c.address} from ${c.link}`;
    case 'address-add': return `add address ${c.address} to ${c.link}`;
    case 'route-delete': return `delete route ${route(c.route)}`;
    case 'route-add': return `add route ${route(c.route)}`;
    case 'route-replace': return `replace route ${route(c.route)}`;
    case 'neighbour-delete': return `delete neighbour ${c.address} dev ${c.dev}`;
    case 'neighbour-add': return `add neighbour ${c.address} lladdr ${c.mac} dev ${c.dev}`;
    case 'neighbour-replace': return `replace neighbour ${c.address} lladdr ${c.mac} dev ${c.dev}`;
  }
}
