/**
 * `nea lab`: a complete DRaaS network on this machine (docs/lab.md). The
 * world (world.ts) is built in namespaces; the control plane is started
 * with the netns hypervisor driver; everything else is onboarded through
 * the control plane's API exactly as an SP would: cloud host, VLAN pools
 * with and without internet, a public IP pool, a plan, tenants and their
 * subscriptions, each tenant's SP appliance registered, production
 * networks mapped to the allocated VLANs, the replicas, a failover plan
 * with public IP rules, and the tenant appliance paired with a one-time
 * token from the control plane.
 *
 * The lab keeps what it did to production in `<stateDir>/lab.json` (which
 * production VMs it failed, which sites it took down), so that `nea lab
 * test` knows what each reachability check should find.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { FailoverRequest, JobView, ReplicaState, Subscription, TenantFailoverState, TenantView } from '../protocol/control-api.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { labPlan, type LabPlan, type TenantPlan } from './plan.js';
import { Progress, type ProgressSink } from './progress.js';
import type { Check, CheckResult } from './probe.js';
import { isRunning } from './procs.js';
import { LabWorld, teardown } from './world.js';

/** Namespace prefix and state dir of the lab `nea lab` runs. */
export const LAB_PREFIX = 'nlab';
export const LAB_STATE_DIR = '/run/nea-lab';
export const DEFAULT_TENANTS = 2;

/** Names the lab gives SP resources and plans. */
export const LAB_NAMES = { plan: 'standard', failoverPlan: 'site', vlanInternet: 'cloud1-internet', vlanPrivate: 'cloud1-private', ipPool: 'public' } as const;

/** What `lab.json` holds. */
export interface LabState {
  prefix: string;
  tenants: number;
  createdAt: string;
  /** Seconds `nea lab up` took. */
  buildSeconds?: number;
  ready: boolean;
  /** Per tenant: production VMs the lab failed (their NIC down), and whether the whole site is down. */
  production: Record<string, { failedVms: string[]; siteDown: boolean }>;
}

export interface LabContext {
  world: LabWorld;
  out: ProgressSink;
}

function stateFile(stateDir: string): string {
  return join(stateDir, 'lab.json');
}

export function readLabState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(stateDir), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeLabState(stateDir: string, s: LabState): void {
  writeFileAtomic(stateFile(stateDir), JSON.stringify(s, null, 2) + '\n', 0o600, { durable: false });
}

/** The lab that `stateDir` describes, or undefined when there is none. */
export function openLab(prefix: string, stateDir: string, out: ProgressSink = process.stdout): LabContext | undefined {
  const s = readLabState(stateDir);
  if (!s || s.prefix !== prefix) return undefined;
  return { world: new LabWorld({ prefix, stateDir, tenants: s.tenants }), out };
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length && errors.length === 0) {
      const item = items[next++]!;
      try { await fn(item); } catch (e) { errors.push(e); }
    }
  }));
  if (errors.length > 0) throw errors[0] as Error;
}

async function waitUntil(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The tunnel of tenant `t` as its SP appliance sees it: up when a handshake completed within the last 3 minutes. */
export function tunnelState(world: LabWorld, t: TenantPlan): { up: boolean; handshakeAgoMs: number | null } {
  const s = world.applianceStatus(t, 'sp') as { tunnel?: { peers?: { lastHandshakeAgoMs: number | null }[] } | null; updatedAt?: string } | undefined;
  const seenAgo = s?.tunnel?.peers?.[0]?.lastHandshakeAgoMs ?? null;
  // The status file is a snapshot: age its numbers by the time since it was written.
  const ago = seenAgo === null ? null : seenAgo + Math.max(0, Date.now() - Date.parse(s?.updatedAt ?? new Date().toISOString()));
  // The SP appliance calls a peer up for 180 s after a handshake; the lab knows better when it stopped the tenant's appliance.
  return { up: ago !== null && ago < 180_000 && world.siteUp(t), handshakeAgoMs: ago };
}

/** Waits for a handshake of tenant `t`'s tunnel that completed after `sinceMs` (epoch ms). */
async function waitHandshakeSince(world: LabWorld, t: TenantPlan, sinceMs: number, timeoutMs = 60_000): Promise<void> {
  await waitUntil(`a new handshake of ${t.name}'s tunnel`, () => {
    const s = tunnelState(world, t);
    return s.handshakeAgoMs !== null && s.handshakeAgoMs <= Date.now() - sinceMs;
  }, timeoutMs);
}

/** Processes the lab should be running now (a tenant appliance of a site the lab took down excepted) that are not. */
export function missingProcesses(ctx: LabContext): string[] {
  const s = readLabState(ctx.world.stateDir);
  const want = ['fabric', 'services', 'control', ...ctx.world.plan.tenants.flatMap((t) => [`${t.name}-sp`, ...(s?.production[t.name]?.siteDown === true ? [] : [`${t.name}-ta`])])];
  return want.filter((n) => {
    const r = ctx.world.procs.get(n);
    return r === undefined || !isRunning(r);
  });
}

/**
 * Restarts what stopped of a built lab (a crash, a kill, a reboot of one
 * process): appliances from their state dirs (still paired), the VM
 * services, the control plane (its driver re-adopts the replicas that
 * run). Undefined when the lab cannot be repaired that way (the fabric is
 * gone: every port with it).
 */
export async function labRepair(ctx: LabContext, progress: Progress): Promise<string[] | undefined> {
  const missing = missingProcesses(ctx);
  if (missing.includes('fabric')) return undefined;
  const w = ctx.world;
  for (const name of missing) {
    if (name === 'services') await progress.step('restart the VM services', () => w.startServices());
    else if (name === 'control') await progress.step('restart the control plane (its driver re-adopts the replicas)', () => w.startControlPlane());
    else {
      const [tenant, role] = [name.slice(0, name.lastIndexOf('-')), name.slice(name.lastIndexOf('-') + 1) as 'sp' | 'ta'];
      const since = Date.now();
      await progress.step(`restart appliance ${name} (from its state: still paired)`, async () => {
        const t = w.tenant(tenant);
        await w.restartAppliance(t, role);
        await waitHandshakeSince(w, t, since);
      });
    }
  }
  return missing;
}

// ---- up --------------------------------------------------------------------------

export interface UpOptions {
  prefix: string;
  stateDir: string;
  tenants: number;
  out?: ProgressSink;
}

/**
 * Builds the lab (or finds it built): `nea lab up`. Idempotent: a whole
 * lab of the same size is kept; anything else of this prefix (a partial
 * lab, a crashed one, another size) is removed first.
 */
export async function labUp(opts: UpOptions): Promise<{ ctx: LabContext; reused: boolean; seconds: number }> {
  const out = opts.out ?? process.stdout;
  labPlan(opts.prefix, opts.tenants); // validates the size before anything is touched
  const existing = openLab(opts.prefix, opts.stateDir, out);
  const progress = new Progress(out);
  const t0 = Date.now();
  if (existing && existing.world.plan.tenants.length === opts.tenants && readLabState(opts.stateDir)?.ready === true) {
    if (missingProcesses(existing).length === 0) {
      out.write(`The lab is already up (${opts.tenants} tenants); nothing to do.\n`);
      return { ctx: existing, reused: true, seconds: 0 };
    }
    out.write(`The lab is up but ${missingProcesses(existing).join(', ')} stopped: restarting\n`);
    const repaired = await labRepair(existing, progress);
    if (repaired !== undefined) return { ctx: existing, reused: true, seconds: Math.round((Date.now() - t0) / 100) / 10 };
    out.write('The lab\'s switch fabric is gone: building the lab afresh\n');
  }
  out.write(`Building the nea lab: ${opts.tenants} tenant${opts.tenants === 1 ? '' : 's'} (namespaces ${opts.prefix}-*, state in ${opts.stateDir})\n`);
  if (existing || new LabWorld({ prefix: opts.prefix, stateDir: opts.stateDir, tenants: 1 }).namespaces().length > 0 || existsSync(opts.stateDir)) {
    await progress.step('remove what an earlier lab left', () => teardown(opts.prefix, opts.stateDir));
  }
  const world = new LabWorld({ prefix: opts.prefix, stateDir: opts.stateDir, tenants: opts.tenants });
  const ctx: LabContext = { world, out };
  const state: LabState = {
    prefix: opts.prefix, tenants: opts.tenants, createdAt: new Date().toISOString(), ready: false,
    production: Object.fromEntries(world.plan.tenants.map((t) => [t.name, { failedVms: [], siteDown: false }])),
  };
  const step = <T>(name: string, fn: () => Promise<T>): Promise<T> => progress.step(name, fn);
  await world.buildBase(step);
  writeLabState(opts.stateDir, state);
  const p = world.plan;
  await step(`control plane (nea control run, netns driver) at https://${p.controlAddress}:${p.controlPort}`, () => world.startControlPlane());
  const api = <T = unknown>(method: string, path: string, body?: unknown): Promise<T> => world.controlApi<T>(method, path, body);
  await step('SP resources through the API: cloud host, VLAN pools with and without internet, public IP pool, plan', async () => {
    await api('PUT', `/v1/hosts/${p.host}`, { trunk: p.trunk, description: 'the lab\'s cloud host (switch "cloud" of the lab fabric)' });
    await api('PUT', `/v1/vlan-pools/${LAB_NAMES.vlanInternet}`, { host: p.host, first: 100, last: 199, internet: true });
    await api('PUT', `/v1/vlan-pools/${LAB_NAMES.vlanPrivate}`, { host: p.host, first: 200, last: 299, internet: false });
    await api('PUT', `/v1/ip-pools/${LAB_NAMES.ipPool}`, { first: p.publicIpFirst, last: p.publicIpLast, description: 'documentation addresses on the lab\'s external network' });
    await api('PUT', `/v1/plans/${LAB_NAMES.plan}`, { cpu: 8, memoryGb: 32, storageGb: 500, networksWithInternet: 1, networksWithoutInternet: 1, publicIps: 2 });
  });
  // Tenants in parallel (a few at a time): each one's steps run in order.
  await pool(p.tenants, 4, async (t) => {
    const seg = await step(`${t.name}: tenant, subscription, SP appliance, networks, replicas, failover plan`, () => onboardTenant(ctx, t));
    await step(`${t.name}: tenant appliance paired through the control plane (one-time token)`, async () => {
      await world.startTenantAppliance(t, seg);
      const { token } = await api<{ token: string }>('POST', `/v1/tenants/${t.name}/pairing-tokens`, { ttlSeconds: 600 });
      await world.pair(t, token);
    });
  });
  await step('tunnels up', async () => { await Promise.all(p.tenants.map((t) => waitHandshakeSince(world, t, t0))); });
  state.ready = true;
  state.buildSeconds = Math.round((Date.now() - t0) / 100) / 10;
  writeLabState(opts.stateDir, state);
  return { ctx, reused: false, seconds: state.buildSeconds };
}

/** One tenant through the control plane; resolves with its tenant appliance's segments. */
async function onboardTenant(ctx: LabContext, t: TenantPlan): Promise<{ network: 'web' | 'db'; id: number }[]> {
  const { world } = ctx;
  const p = world.plan;
  const api = <T = unknown>(method: string, path: string, body?: unknown): Promise<T> => world.controlApi<T>(method, path, body);
  const base = `/v1/tenants/${t.name}`;
  await api('PUT', base, { description: `lab tenant ${t.index}` });
  const sub = await api<Subscription>('PUT', `${base}/subscriptions/${LAB_NAMES.plan}`, { host: p.host });
  const access = await world.startSpAppliance(t, sub.publicIps);
  await api('PUT', `${base}/appliance`, access);
  const segments: { network: 'web' | 'db'; id: number }[] = [];
  for (const n of t.networks) {
    const vlan = sub.networks.find((c) => c.internet === n.internet && c.network === undefined)?.vlan ?? sub.networks.find((c) => c.internet === n.internet)?.vlan;
    if (vlan === undefined) throw new Error(`${t.name}: the subscription allocated no VLAN ${n.internet ? 'with' : 'without'} internet`);
    await api('PUT', `${base}/networks/${n.name}`, { subnet: n.subnet, gateway: n.gateway, vlan });
    segments.push({ network: n.name, id: vlan });
  }
  for (const vm of t.vms) await api('PUT', `${base}/replicas/${vm.name}`, { network: vm.network, address: vm.cidr, mac: vm.mac });
  const [webIp, dbIp] = sub.publicIps;
  if (webIp === undefined || dbIp === undefined) throw new Error(`${t.name}: the subscription allocated ${sub.publicIps.length} public IPs, the lab needs 2`);
  await api('PUT', `${base}/failover-plans/${LAB_NAMES.failoverPlan}`, {
    vms: t.vms.map((vm) => ({ vm: vm.name, delaySeconds: 0 })),
    publicRules: [
      { name: 'web', kind: 'port', publicAddress: webIp, protocol: 'tcp', publicPort: 80, vm: 'web1', targetPort: 80 },
      { name: 'db', kind: 'address', publicAddress: dbIp, vm: 'db1' },
    ],
    routeBetweenNetworks: true,
  });
  return segments;
}

// ---- status ------------------------------------------------------------------------

export interface LabStatusJson {
  prefix: string;
  controlPlane: { url: string; namespace: string };
  buildSeconds?: number;
  tenants: {
    name: string;
    failover: TenantFailoverState;
    appliances: {
      sp: { name: string; namespace: string; management: string; endpoint: string; tunnel: 'up' | 'down'; lastHandshakeAgoMs: number | null };
      tenant: { name: string; namespace: string; wan: string; running: boolean };
    };
    /** The SP appliance's segments: one per production network, id = its cloud VLAN. */
    segments: { id: number; name: string; subnet: string; gateway: string; vlan: number; internet: boolean; mode: string }[];
    replicas: { name: string; network: string; address: string; mac: string; state: ReplicaState; power: string }[];
    publicRules: { name: string; kind: string; publicAddress: string; publicPort?: number; protocol?: string; vm: string; targetPort?: number; active: boolean }[];
    production: { failedVms: string[]; siteDown: boolean };
  }[];
}

/** The lab's status as data (`nea lab status --json`). */
export async function labStatus(ctx: LabContext): Promise<LabStatusJson> {
  const { world } = ctx;
  const p = world.plan;
  const st = readLabState(world.stateDir);
  const client = world.controlClient();
  const power = await world.controlApi<{ items: { tenant: string; name: string; power: string }[] }>('GET', '/v1/replicas/power').catch(() => ({ items: [] }));
  const tenants = await Promise.all(p.tenants.map(async (t) => {
    const v = await world.controlApi<TenantView>('GET', `/v1/tenants/${t.name}`);
    const tun = tunnelState(world, t);
    const plan = v.failoverPlans.find((f) => f.name === LAB_NAMES.failoverPlan);
    return {
      name: t.name,
      failover: v.failover,
      appliances: {
        sp: { name: `sp-${t.name}`, namespace: t.spNetns, management: v.appliance?.url ?? '-', endpoint: v.appliance?.endpoint ?? '-', tunnel: tun.up ? 'up' as const : 'down' as const, lastHandshakeAgoMs: tun.handshakeAgoMs },
        tenant: { name: `ta-${t.name}`, namespace: t.taNetns, wan: t.taWanAddress, running: world.siteUp(t) },
      },
      segments: v.networks.map((n) => ({ id: n.vlan, name: n.name, subnet: n.subnet, gateway: n.gateway, vlan: n.vlan, internet: n.internet, mode: n.mode })),
      replicas: [...v.replicas].sort((x, y) => t.vms.findIndex((m) => m.name === x.name) - t.vms.findIndex((m) => m.name === y.name)).map((r) => ({
        name: r.name, network: r.network, address: r.address, mac: r.mac, state: r.state,
        power: power.items.find((x) => x.tenant === t.name && x.name === r.name)?.power ?? 'off',
      })),
      publicRules: (plan?.publicRules ?? []).map((r) => ({ ...r, active: v.failover === 'full' })),
      production: st?.production[t.name] ?? { failedVms: [], siteDown: false },
    };
  }));
  return {
    prefix: p.prefix,
    controlPlane: { url: client?.url ?? `https://${p.controlAddress}:${p.controlPort}`, namespace: p.controlNetns },
    ...(st?.buildSeconds !== undefined && { buildSeconds: st.buildSeconds }),
    tenants,
  };
}

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `  ${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)];
}

const FAILOVER_TEXT: Record<TenantFailoverState, string> = { none: 'none', partial: 'partial', full: 'full', test: 'test' };

/** The status screen for people. */
export function formatLabStatus(s: LabStatusJson): string {
  const ago = (ms: number | null): string => (ms === null ? 'never' : ms < 1000 ? 'just now' : `${Math.round(ms / 1000)} s ago`);
  const out: string[] = [];
  out.push(`nea lab: ${s.tenants.length} tenant${s.tenants.length === 1 ? '' : 's'}; control plane ${s.controlPlane.url} (namespace ${s.controlPlane.namespace})`);
  out.push('', 'tenants and appliances');
  out.push(...table(['tenant', 'failover', 'SP appliance', 'tunnel endpoint', 'tunnel', 'handshake', 'tenant appliance', 'production site'], s.tenants.map((t) => [
    t.name, FAILOVER_TEXT[t.failover], t.appliances.sp.name, t.appliances.sp.endpoint, t.appliances.sp.tunnel, ago(t.appliances.sp.lastHandshakeAgoMs),
    `${t.appliances.tenant.name} ${t.appliances.tenant.wan}`,
    t.production.siteDown ? 'down' : t.production.failedVms.length > 0 ? `up, failed: ${t.production.failedVms.join(',')}` : 'up',
  ])));
  out.push('', 'segments (production network ⇄ cloud VLAN on the SP appliance)');
  out.push(...table(['tenant', 'network', 'subnet', 'gateway', 'VLAN', 'internet', 'mode'], s.tenants.flatMap((t) => t.segments.map((n) => [
    t.name, n.name, n.subnet, n.gateway, String(n.vlan), n.internet ? 'yes' : 'no', n.mode,
  ]))));
  out.push('', 'replicas');
  out.push(...table(['tenant', 'vm', 'network', 'address', 'mac', 'state', 'power'], s.tenants.flatMap((t) => t.replicas.map((r) => [
    t.name, r.name, r.network, r.address, r.mac, r.state, r.power,
  ]))));
  out.push('', `public IP rules (failover plan "${LAB_NAMES.failoverPlan}"; active in full site failover)`);
  out.push(...table(['tenant', 'rule', 'public', 'replica', 'active'], s.tenants.flatMap((t) => t.publicRules.map((r) => [
    t.name, r.name, r.kind === 'port' ? `${r.publicAddress}:${r.publicPort ?? ''}/${r.protocol ?? ''}` : `${r.publicAddress} (1:1)`,
    r.kind === 'port' ? `${r.vm}:${r.targetPort ?? r.publicPort ?? ''}` : r.vm, r.active ? 'yes' : 'no',
  ]))));
  const a = s.tenants[0]?.name ?? 'acme';
  const b = s.tenants[1]?.name ?? a;
  out.push('', 'next');
  out.push(...[
    ['nea lab test', 'reachability matrix: who reaches whom, expected vs seen'],
    [`nea lab failover --tenant ${a} --vm web1`, 'partial failover: web1 fails in production, its replica starts in the cloud'],
    [`nea lab failover --tenant ${b} --full`, 'full site failover: the whole site goes dark, the cloud takes over'],
    [`nea lab failover --tenant ${a} --test`, 'test failover: a rehearsal in the cloud, production untouched'],
    [`nea lab failback --tenant ${a}`, 'back to production (ends a test failover too)'],
    ['nea lab status --json', 'this screen as JSON'],
    ['nea lab down', 'remove everything the lab made'],
  ].map(([c, d]) => `  ${c!.padEnd(44)} ${d!}`));
  return out.join('\n');
}

// ---- test: the reachability matrix ---------------------------------------------------

/** Where a VM runs: its production instance, its replica, both (a test failover), or neither. */
export type Where = 'production' | 'cloud' | 'both' | 'nowhere';

export interface MatrixCell {
  from: string;
  to: string;
  expected: string | null;
  seen: string | null;
  /** The client address the answering host saw (SNAT and public IP rules show here). */
  client?: string;
  ok: boolean;
}

export interface TenantMatrix {
  tenant: string;
  failover: TenantFailoverState;
  where: Record<string, Where>;
  columns: string[];
  rows: { from: string; cells: MatrixCell[] }[];
}

const INTERNET = 'internet';

/** One planned check of the matrix: from which row to which column, how, and who should answer. */
export interface PlannedCheck {
  from: string;
  to: string;
  check: Omit<Check, 'timeoutMs'>;
  /** `tenant/vm site`, `internet`, or null: nobody should answer. */
  expected: string | null;
}

/** What of a tenant the matrix needs from the control plane. */
export type TenantFacts = Pick<TenantView, 'failover' | 'replicas' | 'networks' | 'failoverPlans'>;

/**
 * The checks of one tenant's matrix and what each should find (pure): see
 * {@link labMatrix} for the rules. `prod` is what the lab did to production.
 */
export function plannedChecks(p: LabPlan, t: TenantPlan, v: TenantFacts, prod: { failedVms: string[]; siteDown: boolean }): { where: Record<string, Where>; columns: string[]; checks: PlannedCheck[] } {
  const where: Record<string, Where> = {};
  const prodLive = (vm: string): boolean => !prod.siteDown && !prod.failedVms.includes(vm);
  const cloudLive = (vm: string): boolean => {
    const r = v.replicas.find((x) => x.name === vm);
    return r !== undefined && (r.state === 'Failover' || r.state === 'Permanent');
  };
  for (const vm of t.vms) {
    const [pl, cl] = [prodLive(vm.name), cloudLive(vm.name)];
    where[vm.name] = pl && cl ? 'both' : cl ? 'cloud' : pl ? 'production' : 'nowhere';
  }
  const full = v.failover === 'full';
  const plan = v.failoverPlans.find((f) => f.name === LAB_NAMES.failoverPlan);
  const rules = plan?.publicRules ?? [];
  const columns = [...t.vms.map((vm) => vm.name), INTERNET, ...rules.map((r) => `${r.name} ${r.publicAddress}`)];
  const checks: PlannedCheck[] = [];
  /** Who answers `dst`'s address for a host at `side` on network `net`. */
  const answerer = (side: 'production' | 'cloud', net: string, dst: TenantPlan['vms'][number]): string | null => {
    const [pl, cl] = [prodLive(dst.name), cloudLive(dst.name)];
    const who = (site: 'production' | 'cloud'): string => `${t.name}/${dst.name} ${site}`;
    if (v.failover === 'test') {
      // The test's cloud segments are cut off from production and not routed between each other.
      if (side === 'production') return pl ? who('production') : null;
      return cl && dst.network === net ? who('cloud') : null;
    }
    if (side === 'cloud' && full) return cl ? who('cloud') : null;
    // Production and the extended segments are one network (partial failover, or none).
    return pl ? who('production') : cl && v.failover === 'partial' ? who('cloud') : null;
  };
  for (const src of t.vms) {
    const sides: ('production' | 'cloud')[] = [...(prodLive(src.name) ? ['production' as const] : []), ...(cloudLive(src.name) ? ['cloud' as const] : [])];
    for (const side of sides) {
      const netns = side === 'cloud' ? `${p.replicaPrefix}${t.name}-${src.name}` : src.netns;
      const from = `${src.name} (${side})`;
      for (const dst of t.vms) checks.push({ from, to: dst.name, check: { netns, kind: 'http', address: dst.address }, expected: answerer(side, src.network, dst) });
      const net = v.networks.find((n) => n.name === src.network);
      const internet = side === 'cloud' && full && net?.internet === true;
      checks.push({ from, to: INTERNET, check: { netns, kind: 'http', address: p.internetAddress }, expected: internet ? 'internet' : null });
    }
  }
  for (const r of rules) {
    const target = where[r.vm];
    checks.push({
      from: INTERNET, to: `${r.name} ${r.publicAddress}`,
      check: { netns: p.internetNetns, kind: 'http', address: r.publicAddress, port: r.kind === 'port' ? r.publicPort : 80 },
      expected: full && (target === 'cloud' || target === 'both') ? `${t.name}/${r.vm} cloud` : null,
    });
  }
  return { where, columns, checks };
}

/**
 * The reachability checks for the lab as it is now, with what each should
 * find (the lab's production state, the control plane's replica states
 * and failover kind), run from every VM's live instance and the internet
 * host; resolves with one matrix per tenant. Expected:
 * - a VM reaches every VM of its tenant, answered by that VM's live
 *   instance (production or cloud): on the production site, across the
 *   tunnel in a partial failover, in the cloud (routed between the
 *   networks) in a full one; never a VM of another tenant;
 * - in a test failover both instances of the plan's VMs run: production
 *   as before; each replica reaches the replicas of its own network only;
 * - a VM reaches the internet host only from the cloud in a full failover
 *   and on a network with internet; the internet host sees it from its SP
 *   appliance's address (SNAT);
 * - the internet host reaches the public IP rules' replicas only in a
 *   full failover.
 */
export async function labMatrix(ctx: LabContext, timeoutMs = 3000): Promise<TenantMatrix[]> {
  const { world } = ctx;
  const p = world.plan;
  const st = readLabState(world.stateDir);
  const views = await Promise.all(p.tenants.map((t) => world.controlApi<TenantView>('GET', `/v1/tenants/${t.name}`)));
  const checks: Check[] = [];
  const pending: { t: number; from: string; to: string; check: number; expected: string | null }[] = [];
  const matrices: TenantMatrix[] = p.tenants.map((t, ti) => {
    const v = views[ti]!;
    const planned = plannedChecks(p, t, v, st?.production[t.name] ?? { failedVms: [], siteDown: false });
    for (const c of planned.checks) {
      pending.push({ t: ti, from: c.from, to: c.to, check: checks.length, expected: c.expected });
      checks.push({ ...c.check, timeoutMs });
    }
    return { tenant: t.name, failover: v.failover, where: planned.where, columns: planned.columns, rows: [] };
  });
  const results: CheckResult[] = await world.probe(checks);
  // A network that just changed (a failover a moment ago) may still be learning: checks that did not find
  // what they expected get one more try after a second, and the second answer counts.
  const retry = pending.filter((c) => !agrees(results[c.check]!, c.expected));
  if (retry.length > 0) {
    await new Promise((r) => setTimeout(r, 1000));
    const again = await world.probe(retry.map((c) => checks[c.check]!));
    retry.forEach((c, i) => { results[c.check] = again[i]!; });
  }
  for (const c of pending) {
    const r = results[c.check]!;
    const body = r.body as { client?: string } | undefined;
    const seen = seenOf(r);
    const m = matrices[c.t]!;
    let row = m.rows.find((x) => x.from === c.from);
    if (!row) { row = { from: c.from, cells: [] }; m.rows.push(row); }
    row.cells.push({ from: c.from, to: c.to, expected: c.expected, seen, ...(body?.client !== undefined && { client: body.client }), ok: seen === c.expected });
  }
  return matrices;
}

/** Who answered a check, as the matrix writes it: `tenant/vm site`, `internet`, or null (nobody). */
function seenOf(r: CheckResult): string | null {
  const body = r.body as { name?: string; tenant?: string; site?: string } | undefined;
  return !r.ok ? null : body?.site === 'internet' ? 'internet' : `${body?.tenant ?? '?'}/${body?.name ?? '?'} ${body?.site ?? '?'}`;
}

function agrees(r: CheckResult, expected: string | null): boolean {
  return seenOf(r) === expected;
}

/** A matrix for people: ✓ reached as expected, · not reached as expected, ✗ with what was seen otherwise. */
export function formatMatrix(ms: readonly TenantMatrix[]): string {
  const out: string[] = [];
  for (const m of ms) {
    const cloud = Object.entries(m.where).filter(([, w]) => w === 'cloud' || w === 'both').map(([n]) => n);
    out.push(`${m.tenant}: failover ${FAILOVER_TEXT[m.failover]}${cloud.length > 0 ? `; in the cloud: ${cloud.join(', ')}` : ''}`);
    const cell = (c: MatrixCell | undefined): string => {
      if (!c) return '';
      if (c.ok && c.expected === null) return '·';
      if (c.ok && c.to === INTERNET) return `✓ as ${c.client ?? '?'}`;
      if (c.ok && c.from === INTERNET) return `✓ ${c.expected!.split(' ')[0]!.split('/')[1] ?? ''}`;
      if (c.ok) return `✓ ${c.expected!.split(' ')[1] ?? ''}`;
      return `✗ want ${c.expected ?? 'nothing'}, saw ${c.seen ?? 'nothing'}`;
    };
    const rows = m.rows.map((r) => [r.from, ...m.columns.map((col) => cell(r.cells.find((c) => c.to === col)))]);
    out.push(...table(['from \\ to', ...m.columns], rows), '');
  }
  const all = ms.flatMap((m) => m.rows.flatMap((r) => r.cells));
  const bad = all.filter((c) => !c.ok);
  out.push(`${all.length} checks: ${all.length - bad.length} as expected, ${bad.length} not`);
  out.push('(✓ SITE: reached, answered by the VM at that site, as expected; ✓ as ADDRESS: the internet host saw the VM as ADDRESS;',
    ' ✓ VM: a public IP answered by that VM; ·: not reached, as expected; ✗: not what was expected)');
  return out.join('\n');
}

// ---- failover and failback -------------------------------------------------------------

/** Follows a job to its end, printing each step as it ends; resolves with the final job. */
export async function followJob(ctx: LabContext, job: JobView, timeoutMs = 180_000): Promise<JobView> {
  const printed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  let j = job;
  ctx.out.write(`job ${j.id}: ${j.kind}\n`);
  for (;;) {
    j.steps.forEach((s, i) => {
      if (printed.has(i) || s.state === 'pending' || s.state === 'running') return;
      printed.add(i);
      const mark = s.state === 'done' ? '\u2713' : s.state === 'warning' ? '!' : s.state === 'undone' ? '\u21b6' : '\u2717';
      const ms = s.startedAt !== undefined && s.endedAt !== undefined ? ` (${Date.parse(s.endedAt) - Date.parse(s.startedAt)} ms)` : '';
      ctx.out.write(`  ${mark} ${s.title}${ms}${s.detail !== undefined && s.state !== 'done' ? `: ${s.detail}` : ''}\n`);
    });
    if (j.state !== 'running' && j.state !== 'rolling-back') break;
    if (Date.now() > deadline) throw new Error(`job ${j.id} still ${j.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 400));
    j = await ctx.world.controlApi<JobView>('GET', `/v1/jobs/${j.id}`);
  }
  ctx.out.write(`job ${j.id}: ${j.state}${j.error !== undefined ? `: ${j.error}` : ''} (${j.progress.done}/${j.progress.total} steps)\n`);
  return j;
}

/**
 * Read-modify-write of one tenant's production record in lab.json, under
 * an exclusive lock file (two `nea lab failover` commands for two tenants
 * may run at once). A lock older than 10 s is a crashed writer's: taken over.
 */
function updateProduction(ctx: LabContext, tenant: string, fn: (p: { failedVms: string[]; siteDown: boolean }) => void): void {
  const lock = join(ctx.world.stateDir, 'lab.json.lock');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = 0;
      try { age = Date.now() - statSync(lock).mtimeMs; } catch { continue; }
      if (age > 10_000 || Date.now() > deadline) { rmSync(lock, { force: true }); continue; }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    const s = readLabState(ctx.world.stateDir);
    if (!s) throw new Error('no lab state: is the lab up (nea lab up)?');
    const p = s.production[tenant] ?? { failedVms: [], siteDown: false };
    fn(p);
    s.production[tenant] = p;
    writeLabState(ctx.world.stateDir, s);
  } finally {
    rmSync(lock, { force: true });
  }
}

const jobOk = (j: JobView): boolean => j.state === 'succeeded' || j.state === 'degraded';

/**
 * Asks the control plane for a failover and follows its job; when the
 * request is refused or the job does not succeed, `restore` brings
 * production back as the lab had it.
 */
async function failoverOrRestore(ctx: LabContext, tenant: string, request: FailoverRequest, restore: () => Promise<void>): Promise<JobView> {
  let job: JobView;
  try {
    job = await ctx.world.controlApi<JobView>('POST', `/v1/tenants/${tenant}/failover`, request);
  } catch (e) {
    await restore();
    throw e;
  }
  const end = await followJob(ctx, job);
  if (!jobOk(end)) await restore();
  return end;
}

/**
 * Partial failover of `vms` of tenant `t`: each production VM fails (its
 * NIC goes down), then the control plane fails it over. If the job does
 * not succeed, the production VMs come back.
 */
export async function labFailoverPartial(ctx: LabContext, tenant: string, vms: readonly string[]): Promise<JobView> {
  const t = ctx.world.tenant(tenant);
  for (const vm of vms) if (!t.vms.some((v) => v.name === vm)) throw new Error(`no VM ${vm} in tenant ${tenant} (VMs: ${t.vms.map((v) => v.name).join(', ')})`);
  const view = await ctx.world.controlApi<TenantView>('GET', `/v1/tenants/${tenant}`);
  if (view.failover !== 'none' && view.failover !== 'partial') throw new Error(`tenant ${tenant} is in a ${view.failover} failover: fail it back first (nea lab failback --tenant ${tenant})`);
  const out = view.replicas.filter((r) => vms.includes(r.name) && r.state !== 'Normal');
  if (out.length > 0) throw new Error(`${out.map((r) => `${r.name} is ${r.state}`).join(', ')}: fail it back first`);
  const progress = new Progress(ctx.out);
  await progress.step(`production: ${vms.join(', ')} of ${tenant} fail${vms.length === 1 ? 's' : ''} (NIC down)`, async () => {
    for (const vm of vms) await ctx.world.stopVm(t, vm);
  });
  updateProduction(ctx, tenant, (p) => { p.failedVms = [...new Set([...p.failedVms, ...vms])]; });
  const restore = async (): Promise<void> => {
    await progress.step('production: the VMs come back (the failover did not happen)', async () => {
      for (const vm of vms) await ctx.world.startVm(t, vm);
    });
    updateProduction(ctx, tenant, (p) => { p.failedVms = p.failedVms.filter((v) => !vms.includes(v)); });
  };
  return failoverOrRestore(ctx, tenant, { kind: 'partial', vms: [...vms] }, restore);
}

/** Full site failover of tenant `t`: its production site goes dark, then the control plane fails over by the lab's plan. */
export async function labFailoverFull(ctx: LabContext, tenant: string): Promise<JobView> {
  const t = ctx.world.tenant(tenant);
  const view = await ctx.world.controlApi<TenantView>('GET', `/v1/tenants/${tenant}`);
  if (view.failover !== 'none') throw new Error(`tenant ${tenant} is in a ${view.failover} failover: fail it back first (nea lab failback --tenant ${tenant})`);
  const progress = new Progress(ctx.out);
  await progress.step(`production: the site of ${tenant} goes dark (tenant appliance stopped, VMs and router down)`, () => ctx.world.stopSite(t));
  updateProduction(ctx, tenant, (p) => { p.siteDown = true; });
  const restore = async (): Promise<void> => {
    const failed = readLabState(ctx.world.stateDir)?.production[tenant]?.failedVms ?? [];
    await progress.step('production: the site comes back (the failover did not happen)', () => ctx.world.startSite(t, failed));
    updateProduction(ctx, tenant, (p) => { p.siteDown = false; });
  };
  return failoverOrRestore(ctx, tenant, { kind: 'full', plan: LAB_NAMES.failoverPlan }, restore);
}

/**
 * Test failover of tenant `t` (a disaster rehearsal): production keeps
 * running untouched; the plan's replicas start in the cloud on their
 * networks in gateway mode, cut off from production and the internet.
 * `nea lab failback` ends it (the control plane's undo: replicas off and
 * reverted).
 */
export async function labFailoverTest(ctx: LabContext, tenant: string): Promise<JobView> {
  ctx.world.tenant(tenant);
  const view = await ctx.world.controlApi<TenantView>('GET', `/v1/tenants/${tenant}`);
  if (view.failover !== 'none') throw new Error(`tenant ${tenant} is in a ${view.failover} failover: fail it back first (nea lab failback --tenant ${tenant})`);
  const job = await ctx.world.controlApi<JobView>('POST', `/v1/tenants/${tenant}/failover`, { kind: 'test', plan: LAB_NAMES.failoverPlan });
  return followJob(ctx, job);
}

/**
 * Failback of tenant `t` (the VMs given, or all in failover): the control
 * plane powers the replicas off and isolates their networks; then
 * production comes back (the VMs' NICs, or the whole site with its tenant
 * appliance, whose tunnel comes up again).
 */
export async function labFailback(ctx: LabContext, tenant: string, vms?: readonly string[]): Promise<JobView> {
  const t = ctx.world.tenant(tenant);
  const before = await ctx.world.controlApi<TenantView>('GET', `/v1/tenants/${tenant}`);
  // A test failover is ended by undoing it (replicas reverted: the rehearsal leaves nothing behind).
  const op = before.failover === 'test' ? 'undo-failover' : 'failback';
  const job = await ctx.world.controlApi<JobView>('POST', `/v1/tenants/${tenant}/${op}`, vms && vms.length > 0 ? { vms } : {});
  const end = await followJob(ctx, job);
  if (!jobOk(end)) return end;
  const progress = new Progress(ctx.out);
  const st = readLabState(ctx.world.stateDir)?.production[tenant] ?? { failedVms: [], siteDown: false };
  const view = await ctx.world.controlApi<TenantView>('GET', `/v1/tenants/${tenant}`);
  const stillOut = new Set(view.replicas.filter((r) => r.state === 'Failover' || r.state === 'Permanent').map((r) => r.name));
  if (st.siteDown && stillOut.size === 0) {
    const since = Date.now();
    await progress.step(`production: the site of ${tenant} comes back (router, VMs, tenant appliance)`, () => ctx.world.startSite(t));
    await progress.step('tunnel up again (a new handshake)', () => waitHandshakeSince(ctx.world, t, since));
    updateProduction(ctx, tenant, (p) => { p.siteDown = false; p.failedVms = []; });
  } else {
    const back = st.failedVms.filter((v) => !stillOut.has(v));
    if (back.length > 0) {
      await progress.step(`production: ${back.join(', ')} of ${tenant} back up`, async () => {
        for (const vm of back) await ctx.world.startVm(t, vm);
      });
    }
    updateProduction(ctx, tenant, (p) => { p.failedVms = p.failedVms.filter((v) => stillOut.has(v)); });
  }
  return end;
}

// ---- down --------------------------------------------------------------------------------

/** Removes the lab: processes by pid, namespaces by prefix, the state dir. Fine on nothing. */
export async function labDown(prefix: string, stateDir: string, out: ProgressSink = process.stdout): Promise<{ processes: string[]; namespaces: string[] }> {
  const progress = new Progress(out);
  return progress.step(`remove the lab (processes recorded in ${stateDir}, namespaces ${prefix}-*)`, () => teardown(prefix, stateDir));
}

