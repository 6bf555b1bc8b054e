/**
 * The effectful half of the declarative layer: read the namespace, plan,
 * apply the plan in order.
 *
 * Failure policy: the plan is computed in full before anything is touched,
 * so refusals (invalid input, a conflicting or missing link) change nothing.
 * A kernel error while applying stops at the failing change and throws
 * ReconcileError listing what was applied; the namespace is then partly
 * converged, and the next reconcile (from a fresh snapshot) continues.
 */
import { NeaError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { OWNER_ALIAS, describeChange, plan, type Change, type DesiredNetwork, type KernelState, type PlannedRoute } from './desired.js';
import type { Netlink, RouteSpec } from './netlink.js';

/** The part of the Netlink client the reconciler uses (a seam for fakes). */
export type NetconfigClient = Pick<Netlink,
  'links' | 'addresses' | 'routes' | 'neighbours' | 'addBridge' | 'addVeth' | 'addVlan' | 'deleteLink' | 'setUp' | 'setMtu' | 'setMac' |
  'setMaster' | 'setAlias' | 'addAddress' | 'deleteAddress' | 'addRoute' | 'replaceRoute' | 'deleteRoute' | 'addNeighbour' |
  'replaceNeighbour' | 'deleteNeighbour'>;

/** Applying a change failed; `applied` lists the changes done before it. */
export class ReconcileError extends NeaError {
  constructor(readonly applied: readonly Change[], readonly failed: Change, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('NETCONFIG_APPLY_FAILED', `reconcile stopped at "${describeChange(failed)}" after ${applied.length} change(s): ${why}`, { cause });
  }
}

/** One snapshot of links, addresses, routes and neighbours. */
export async function readState(client: NetconfigClient): Promise<KernelState> {
  const links = await client.links();
  const addresses = await client.addresses();
  const routes = await client.routes();
  const neighbours = await client.neighbours();
  return { links, addresses, routes, neighbours };
}

function routeSpec(r: PlannedRoute): RouteSpec {
  const s: RouteSpec = { dst: r.dst, dev: r.dev, table: r.table, metric: r.metric };
  if (r.gateway !== undefined) s.gateway = r.gateway;
  if (r.src !== undefined) s.src = r.src;
  return s;
}

/** Run one change against the kernel. */
export async function applyChange(client: NetconfigClient, c: Change): Promise<void> {
  switch (c.op) {
    case 'link-delete': return client.deleteLink(c.link);
    case 'link-add': {
      const opts = { alias: OWNER_ALIAS, ...(c.mtu !== undefined && { mtu: c.mtu }), ...(c.mac !== undefined && { mac: c.mac }) };
      if (c.kind === 'bridge') await client.addBridge(c.link, opts);
      else if (c.kind === 'vlan') await client.addVlan(c.link, c.parent, c.vlanId, opts);
      else await client.addVeth(c.link, c.peer, { ...opts, ...(c.peerNetns !== undefined && { peerNetns: c.peerNetns }) });
      return;
    }
    case 'link-own': return client.setAlias(c.link, OWNER_ALIAS);
    case 'link-mtu': return client.setMtu(c.link, c.mtu);
    case 'link-mac': return client.setMac(c.link, c.mac);
    case 'link-master': return client.setMaster(c.link, c.master);
    case 'link-state': return client.setUp(c.link, c.up);
    case 'address-delete': return client.deleteAddress(c.link, c.address);
    case 'address-add': return client.addAddress(c.link, c.address);
    case 'route-delete': return client.deleteRoute(routeSpec(c.route));
    case 'route-add': return client.addRoute(routeSpec(c.route));
    case 'route-replace': return client.replaceRoute(routeSpec(c.route));
    case 'neighbour-delete': return client.deleteNeighbour({ dev: c.dev, address: c.address });
    case 'neighbour-add': return client.addNeighbour({ dev: c.dev, address: c.address, mac: c.mac });
    case 'neighbour-replace': return client.replaceNeighbour({ dev: c.dev, address: c.address, mac: c.mac });
  }
}

export interface ReconcileOptions {
  /** Each applied change is logged at info (`netconfig change`, `change=...`); a failing one at error. */
  log?: Logger;
}

/**
 * Bring the client's namespace to `desired`; returns the changes applied
 * (empty when it already matched). Idempotent: a second call with the same
 * desired state returns [] and touches nothing.
 */
export async function reconcile(client: NetconfigClient, desired: DesiredNetwork, opts: ReconcileOptions = {}): Promise<Change[]> {
  const changes = plan(await readState(client), desired);
  const applied: Change[] = [];
  for (const c of changes) {
    try {
      await applyChange(client, c);
    } catch (e) {
      const err = new ReconcileError(applied, c, e);
      opts.log?.error('netconfig change failed', { change: describeChange(c), error: err.message });
      throw err;
    }
    opts.log?.info('netconfig change', { change: describeChange(c) });
    applied.push(c);
  }
  return applied;
}
