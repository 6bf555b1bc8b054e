/**
 * The control plane's records: SP resources (hosts, VLAN and public IP
 * pools, plans), tenants, subscriptions and what they allocate, the
 * tenant's SP appliance, production networks, replicas and failover plans.
 * Synchronous, each call one transaction; input is already schema-checked
 * (src/protocol/control-api.ts), these calls check what a schema cannot:
 * references, overlaps, uniqueness across tenants, what is in use.
 *
 * Nothing here talks to an appliance: src/control/control-plane.ts does,
 * before or after the record changes, as each operation needs.
 */
import { Address4 } from 'ip-address';
import type {
  ApplianceBody, ApplianceView, CloudNetwork, FailoverPlan, FailoverPlanBody, Host, HostBody, IpPool, IpPoolBody,
  Network, NetworkBody, Plan, PlanBody, Replica, ReplicaBody, ReplicaState, SegmentMode, Subscription, TenantBody,
  TenantFailoverState, TenantSummary, TenantView, VlanPool, VlanPoolBody,
} from '../protocol/control-api.js';
import { NeaError, ValidationError } from '../shared/errors.js';
import { writeTx, type Db } from './store.js';

const now = (): string => new Date().toISOString();
const notFound = (what: string): never => { throw new NeaError('CONTROL_NOT_FOUND', `${what} does not exist`); };
const conflict = (what: string): never => { throw new NeaError('CONTROL_CONFLICT', what); };

function ipv4(text: string, field: string): Address4 {
  if (!Address4.isValid(text)) throw new ValidationError(`${field}: "${text}" is not an IPv4 address`);
  return new Address4(text);
}
const ipNumber = (a: Address4): number => Number(a.bigInt());
const ipText = (n: number): string => Address4.fromBigInt(BigInt(n)).correctForm();

/** A subnet `a.b.c.d/n` with its host bits zero; throws naming `field`. */
function subnetOf(text: string, field: string): Address4 {
  const s = ipv4(text, field);
  if (s.subnetMask < 8 || s.subnetMask > 30) throw new ValidationError(`${field}: prefix /${s.subnetMask} is out of range (8-30)`);
  if (s.startAddress().correctForm() !== s.addressMinusSuffix) throw new ValidationError(`${field}: ${text} has host bits set; the subnet is ${s.startAddress().correctForm()}/${s.subnetMask}`);
  return s;
}

/** The tenant's replica with what a driver and an appliance need of it. */
export interface ReplicaRecord extends Replica {
  tenant: string;
  host: string;
  trunk: string;
  vlan: number;
  gateway: string;
  subnet: string;
}

export interface NetworkRecord extends Network {
  tenant: string;
  trunk: string;
}

export interface ApplianceRecord extends ApplianceView {
  token: string;
}

interface NetworkRow { tenant: string; name: string; subnet: string; gateway: string; host: string; vlan: number; mode: string; internet: number; trunk: string }
interface ReplicaRow { tenant: string; name: string; network: string; address: string; mac: string; restore_point: string | null; state: string }

export class Records {
  constructor(readonly db: Db) {}

  // --- hosts ----------------------------------------------------------------

  putHost(name: string, body: HostBody): Host {
    writeTx(this.db, () => {
      const inUse = this.db.prepare('SELECT COUNT(*) AS n FROM vlans WHERE host = ?').get(name) as { n: number };
      const old = this.db.prepare('SELECT trunk FROM hosts WHERE name = ?').get(name) as { trunk: string } | undefined;
      if (old && old.trunk !== body.trunk && inUse.n > 0) conflict(`host ${name}: its trunk cannot change while ${inUse.n} VLAN(s) on it are allocated to tenants`);
      this.db.prepare(`INSERT INTO hosts (name, trunk, description, created_at) VALUES (?, ?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET trunk = excluded.trunk, description = excluded.description`).run(name, body.trunk, body.description ?? null, now());
    });
    return this.host(name);
  }

  host(name: string): Host {
    const r = this.db.prepare('SELECT name, trunk, description FROM hosts WHERE name = ?').get(name) as { name: string; trunk: string; description: string | null } | undefined;
    if (!r) return notFound(`host ${name}`);
    return { name: r.name, trunk: r.trunk, ...(r.description !== null && { description: r.description }) };
  }

  hosts(): Host[] {
    return (this.db.prepare('SELECT name FROM hosts ORDER BY name').all() as { name: string }[]).map((r) => this.host(r.name));
  }

  deleteHost(name: string): void {
    writeTx(this.db, () => {
      this.host(name);
      const pools = this.db.prepare('SELECT name FROM vlan_pools WHERE host = ?').all(name) as { name: string }[];
      if (pools.length > 0) conflict(`host ${name} has VLAN pools (${pools.map((p) => p.name).join(', ')}); delete them first`);
      const subs = this.db.prepare('SELECT tenant FROM subscriptions WHERE host = ?').all(name) as { tenant: string }[];
      if (subs.length > 0) conflict(`host ${name} serves tenants (${subs.map((s) => s.tenant).join(', ')})`);
      this.db.prepare('DELETE FROM hosts WHERE name = ?').run(name);
    });
  }

  // --- VLAN pools -----------------------------------------------------------

  putVlanPool(name: string, body: VlanPoolBody): VlanPool {
    if (body.first > body.last) throw new ValidationError(`body.first: ${body.first} is above body.last ${body.last}`);
    writeTx(this.db, () => {
      this.host(body.host);
      const overlap = this.db.prepare('SELECT name, first, last FROM vlan_pools WHERE host = ? AND name != ? AND first <= ? AND last >= ?')
        .get(body.host, name, body.last, body.first) as { name: string; first: number; last: number } | undefined;
      if (overlap) conflict(`VLANs ${body.first}-${body.last} overlap pool ${overlap.name} (${overlap.first}-${overlap.last}) on host ${body.host}`);
      const old = this.db.prepare('SELECT host, internet FROM vlan_pools WHERE name = ?').get(name) as { host: string; internet: number } | undefined;
      const used = this.db.prepare('SELECT vlan FROM vlans WHERE pool = ? ORDER BY vlan').all(name) as { vlan: number }[];
      if (old && used.length > 0) {
        if (old.host !== body.host || Boolean(old.internet) !== body.internet) conflict(`pool ${name}: host and internet cannot change while ${used.length} VLAN(s) of it are allocated`);
        const outside = used.filter((u) => u.vlan < body.first || u.vlan > body.last);
        if (outside.length > 0) conflict(`pool ${name}: VLAN(s) ${outside.map((u) => u.vlan).join(', ')} are allocated and would fall outside ${body.first}-${body.last}`);
      }
      this.db.prepare(`INSERT INTO vlan_pools (name, host, first, last, internet) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET host = excluded.host, first = excluded.first, last = excluded.last, internet = excluded.internet`)
        .run(name, body.host, body.first, body.last, body.internet ? 1 : 0);
    });
    return this.vlanPool(name);
  }

  vlanPool(name: string): VlanPool {
    const r = this.db.prepare('SELECT name, host, first, last, internet, (SELECT COUNT(*) FROM vlans v WHERE v.pool = p.name) AS used FROM vlan_pools p WHERE name = ?')
      .get(name) as { name: string; host: string; first: number; last: number; internet: number; used: number } | undefined;
    if (!r) return notFound(`VLAN pool ${name}`);
    return { name: r.name, host: r.host, first: r.first, last: r.last, internet: Boolean(r.internet), used: r.used, size: r.last - r.first + 1 };
  }

  vlanPools(): VlanPool[] {
    return (this.db.prepare('SELECT name FROM vlan_pools ORDER BY host, first').all() as { name: string }[]).map((r) => this.vlanPool(r.name));
  }

  deleteVlanPool(name: string): void {
    writeTx(this.db, () => {
      const p = this.vlanPool(name);
      if (p.used > 0) conflict(`VLAN pool ${name}: ${p.used} VLAN(s) of it are allocated to tenants`);
      this.db.prepare('DELETE FROM vlan_pools WHERE name = ?').run(name);
    });
  }

  // --- public IP pools ------------------------------------------------------

  putIpPool(name: string, body: IpPoolBody): IpPool {
    const first = ipNumber(ipv4(body.first, 'body.first'));
    const last = ipNumber(ipv4(body.last, 'body.last'));
    if (first > last) throw new ValidationError(`body.first: ${body.first} is above body.last ${body.last}`);
    if (last - first >= 65536) throw new ValidationError('body.last: a pool holds at most 65536 addresses');
    writeTx(this.db, () => {
      const overlap = this.db.prepare('SELECT name, first, last FROM ip_pools WHERE name != ? AND first_n <= ? AND last_n >= ?').get(name, last, first) as { name: string; first: string; last: string } | undefined;
      if (overlap) conflict(`addresses ${body.first}-${body.last} overlap pool ${overlap.name} (${overlap.first}-${overlap.last})`);
      const outside = this.db.prepare('SELECT address FROM public_ips WHERE pool = ? AND (n < ? OR n > ?)').all(name, first, last) as { address: string }[];
      if (outside.length > 0) conflict(`pool ${name}: ${outside.map((o) => o.address).join(', ')} are allocated and would fall outside ${body.first}-${body.last}`);
      this.db.prepare(`INSERT INTO ip_pools (name, first, last, first_n, last_n, description) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET first = excluded.first, last = excluded.last, first_n = excluded.first_n, last_n = excluded.last_n, description = excluded.description`)
        .run(name, ipText(first), ipText(last), first, last, body.description ?? null);
    });
    return this.ipPool(name);
  }

  ipPool(name: string): IpPool {
    const r = this.db.prepare('SELECT name, first, last, first_n, last_n, description, (SELECT COUNT(*) FROM public_ips i WHERE i.pool = p.name) AS used FROM ip_pools p WHERE name = ?')
      .get(name) as { name: string; first: string; last: string; first_n: number; last_n: number; description: string | null; used: number } | undefined;
    if (!r) return notFound(`public IP pool ${name}`);
    return { name: r.name, first: r.first, last: r.last, ...(r.description !== null && { description: r.description }), used: r.used, size: r.last_n - r.first_n + 1 };
  }

  ipPools(): IpPool[] {
    return (this.db.prepare('SELECT name FROM ip_pools ORDER BY first_n').all() as { name: string }[]).map((r) => this.ipPool(r.name));
  }

  deleteIpPool(name: string): void {
    writeTx(this.db, () => {
      const p = this.ipPool(name);
      if (p.used > 0) conflict(`public IP pool ${name}: ${p.used} address(es) of it are allocated to tenants`);
      this.db.prepare('DELETE FROM ip_pools WHERE name = ?').run(name);
    });
  }

  // --- plans ----------------------------------------------------------------

  putPlan(name: string, body: PlanBody): Plan {
    if (body.networksWithInternet + body.networksWithoutInternet === 0) throw new ValidationError('body.networksWithInternet: a plan needs at least one network (with or without internet)');
    writeTx(this.db, () => {
      const subs = this.db.prepare('SELECT COUNT(*) AS n FROM subscriptions WHERE plan = ?').get(name) as { n: number };
      const old = this.db.prepare('SELECT body FROM plans WHERE name = ?').get(name) as { body: string } | undefined;
      if (old && subs.n > 0) {
        const o = JSON.parse(old.body) as PlanBody;
        if (o.networksWithInternet !== body.networksWithInternet || o.networksWithoutInternet !== body.networksWithoutInternet || o.publicIps !== body.publicIps) {
          conflict(`plan ${name}: its networks and public IPs cannot change while ${subs.n} tenant(s) subscribe to it (quotas can)`);
        }
      }
      this.db.prepare('INSERT INTO plans (name, body) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET body = excluded.body').run(name, JSON.stringify(body));
    });
    return this.plan(name);
  }

  plan(name: string): Plan {
    const r = this.db.prepare('SELECT body FROM plans WHERE name = ?').get(name) as { body: string } | undefined;
    if (!r) return notFound(`plan ${name}`);
    return { name, ...(JSON.parse(r.body) as PlanBody) };
  }

  plans(): Plan[] {
    return (this.db.prepare('SELECT name FROM plans ORDER BY name').all() as { name: string }[]).map((r) => this.plan(r.name));
  }

  deletePlan(name: string): void {
    writeTx(this.db, () => {
      this.plan(name);
      const subs = this.db.prepare('SELECT tenant FROM subscriptions WHERE plan = ?').all(name) as { tenant: string }[];
      if (subs.length > 0) conflict(`plan ${name} has subscribers (${subs.map((s) => s.tenant).join(', ')})`);
      this.db.prepare('DELETE FROM plans WHERE name = ?').run(name);
    });
  }

  // --- tenants --------------------------------------------------------------

  putTenant(name: string, body: TenantBody): TenantView {
    writeTx(this.db, () => {
      this.db.prepare(`INSERT INTO tenants (name, description, created_at) VALUES (?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET description = excluded.description`).run(name, body.description ?? null, now());
    });
    return this.tenant(name);
  }

  private tenantRow(name: string): { name: string; description: string | null; created_at: string; failover: TenantFailoverState; failover_plan: string | null } {
    const r = this.db.prepare('SELECT * FROM tenants WHERE name = ?').get(name) as ReturnType<Records['tenantRow']> | undefined;
    return r ?? notFound(`tenant ${name}`);
  }

  tenantExists(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM tenants WHERE name = ?').get(name) !== undefined;
  }

  tenant(name: string): TenantView {
    const t = this.tenantRow(name);
    const appliance = this.applianceOrUndefined(name);
    return {
      name: t.name, ...(t.description !== null && { description: t.description }), createdAt: t.created_at,
      failover: t.failover, ...(t.failover_plan !== null && { failoverPlan: t.failover_plan }),
      subscriptions: this.subscriptions(name),
      ...(appliance && { appliance: { url: appliance.url, fingerprint: appliance.fingerprint, registeredAt: appliance.registeredAt, ...(appliance.endpoint !== undefined && { endpoint: appliance.endpoint }) } }),
      networks: this.networks(name).map(({ tenant: _t, trunk: _k, ...n }) => n),
      replicas: this.replicas(name).map((r) => ({ name: r.name, network: r.network, address: r.address, mac: r.mac, state: r.state, ...(r.restorePoint !== undefined && { restorePoint: r.restorePoint }) })),
      failoverPlans: this.failoverPlans(name),
    };
  }

  tenants(): TenantSummary[] {
    const rows = this.db.prepare(`SELECT t.name, t.failover,
        (SELECT COUNT(*) FROM networks n WHERE n.tenant = t.name) AS networks,
        (SELECT COUNT(*) FROM replicas r WHERE r.tenant = t.name) AS replicas,
        (SELECT COUNT(*) FROM appliances a WHERE a.tenant = t.name) AS appliance
      FROM tenants t ORDER BY t.name`).all() as { name: string; failover: TenantFailoverState; networks: number; replicas: number; appliance: number }[];
    return rows.map((r) => ({ ...r, appliance: r.appliance > 0 }));
  }

  /** Deletes a tenant with nothing left: no subscription, network, replica, job running. */
  deleteTenant(name: string): void {
    writeTx(this.db, () => {
      const t = this.tenantRow(name);
      if (t.failover !== 'none') conflict(`tenant ${name} is in ${t.failover} failover; fail back first`);
      const subs = this.subscriptions(name);
      if (subs.length > 0) conflict(`tenant ${name} still subscribes to ${subs.map((s) => s.plan).join(', ')}; unsubscribe first (that releases its VLANs and public IPs)`);
      for (const table of ['failover_plans', 'appliances']) this.db.prepare(`DELETE FROM ${table} WHERE tenant = ?`).run(name);
      this.db.prepare('DELETE FROM tokens WHERE tenant = ?').run(name);
      this.db.prepare('DELETE FROM tenants WHERE name = ?').run(name);
    });
  }

  setTenantFailover(name: string, failover: TenantFailoverState, plan: string | undefined): void {
    this.db.prepare('UPDATE tenants SET failover = ?, failover_plan = ? WHERE name = ?').run(failover, plan ?? null, name);
  }

  tenantFailover(name: string): { failover: TenantFailoverState; plan?: string } {
    const t = this.tenantRow(name);
    return { failover: t.failover, ...(t.failover_plan !== null && { plan: t.failover_plan }) };
  }

  // --- subscriptions and allocation -----------------------------------------

  /**
   * Subscribes `tenant` to `plan` on `host`: allocates the plan's networks
   * (lowest free VLANs of the host's pools with, then without internet) and
   * public IPs (lowest free addresses), all or nothing. Subscribing again to
   * the same plan on the same host returns the existing subscription.
   */
  subscribe(tenant: string, planName: string, host: string): Subscription {
    writeTx(this.db, () => {
      this.tenantRow(tenant);
      const plan = this.plan(planName);
      this.host(host);
      const existing = this.db.prepare('SELECT host FROM subscriptions WHERE tenant = ? AND plan = ?').get(tenant, planName) as { host: string } | undefined;
      if (existing) {
        if (existing.host !== host) conflict(`tenant ${tenant} subscribes to ${planName} on host ${existing.host}; unsubscribe first to move it`);
        return;
      }
      this.db.prepare('INSERT INTO subscriptions (tenant, plan, host, created_at) VALUES (?, ?, ?, ?)').run(tenant, planName, host, now());
      for (const internet of [true, false]) {
        const want = internet ? plan.networksWithInternet : plan.networksWithoutInternet;
        if (want === 0) continue;
        const free = this.freeVlans(host, internet, want);
        if (free.length < want) {
          throw new NeaError('CONTROL_EXHAUSTED', `host ${host} has ${free.length} free VLAN(s) ${internet ? 'with' : 'without'} internet, plan ${planName} needs ${want}; add a pool or widen one (nothing was allocated)`);
        }
        const ins = this.db.prepare('INSERT INTO vlans (host, vlan, pool, tenant, plan, internet) VALUES (?, ?, ?, ?, ?, ?)');
        for (const f of free) ins.run(host, f.vlan, f.pool, tenant, planName, internet ? 1 : 0);
      }
      if (plan.publicIps > 0) {
        const free = this.freeIps(plan.publicIps);
        if (free.length < plan.publicIps) throw new NeaError('CONTROL_EXHAUSTED', `the public IP pools have ${free.length} free address(es), plan ${planName} needs ${plan.publicIps}; add a pool or widen one (nothing was allocated)`);
        const ins = this.db.prepare('INSERT INTO public_ips (address, n, pool, tenant, plan) VALUES (?, ?, ?, ?, ?)');
        for (const f of free) ins.run(ipText(f.n), f.n, f.pool, tenant, planName);
      }
    });
    return this.subscription(tenant, planName);
  }

  private freeVlans(host: string, internet: boolean, want: number): { vlan: number; pool: string }[] {
    const pools = this.db.prepare('SELECT name, first, last FROM vlan_pools WHERE host = ? AND internet = ? ORDER BY first').all(host, internet ? 1 : 0) as { name: string; first: number; last: number }[];
    const used = new Set((this.db.prepare('SELECT vlan FROM vlans WHERE host = ?').all(host) as { vlan: number }[]).map((r) => r.vlan));
    const out: { vlan: number; pool: string }[] = [];
    for (const p of pools) {
      for (let v = p.first; v <= p.last && out.length < want; v++) if (!used.has(v)) out.push({ vlan: v, pool: p.name });
    }
    return out;
  }

  private freeIps(want: number): { n: number; pool: string }[] {
    const pools = this.db.prepare('SELECT name, first_n, last_n FROM ip_pools ORDER BY first_n').all() as { name: string; first_n: number; last_n: number }[];
    const used = new Set((this.db.prepare('SELECT n FROM public_ips').all() as { n: number }[]).map((r) => r.n));
    const out: { n: number; pool: string }[] = [];
    for (const p of pools) {
      for (let n = p.first_n; n <= p.last_n && out.length < want; n++) if (!used.has(n)) out.push({ n, pool: p.name });
    }
    return out;
  }

  subscription(tenant: string, plan: string): Subscription {
    const s = this.db.prepare('SELECT plan, host, created_at FROM subscriptions WHERE tenant = ? AND plan = ?').get(tenant, plan) as { plan: string; host: string; created_at: string } | undefined;
    if (!s) return notFound(`subscription of tenant ${tenant} to plan ${plan}`);
    const nets = this.db.prepare(`SELECT v.host, v.vlan, v.internet, n.name AS network FROM vlans v
      LEFT JOIN networks n ON n.host = v.host AND n.vlan = v.vlan WHERE v.tenant = ? AND v.plan = ? ORDER BY v.vlan`).all(tenant, plan) as { host: string; vlan: number; internet: number; network: string | null }[];
    const ips = this.db.prepare('SELECT address FROM public_ips WHERE tenant = ? AND plan = ? ORDER BY n').all(tenant, plan) as { address: string }[];
    return {
      plan: s.plan, host: s.host, createdAt: s.created_at,
      networks: nets.map((n): CloudNetwork => ({ host: n.host, vlan: n.vlan, internet: Boolean(n.internet), plan, ...(n.network !== null && { network: n.network }) })),
      publicIps: ips.map((i) => i.address),
    };
  }

  subscriptions(tenant: string): Subscription[] {
    return (this.db.prepare('SELECT plan FROM subscriptions WHERE tenant = ? ORDER BY created_at, plan').all(tenant) as { plan: string }[]).map((r) => this.subscription(tenant, r.plan));
  }

  /** Releases the subscription's VLANs and public IPs; refused while a production network uses one of its VLANs. */
  unsubscribe(tenant: string, plan: string): void {
    writeTx(this.db, () => {
      const s = this.subscription(tenant, plan);
      const used = s.networks.filter((n) => n.network !== undefined);
      if (used.length > 0) conflict(`tenant ${tenant}: VLAN(s) ${used.map((n) => `${n.vlan} (network ${n.network ?? ''})`).join(', ')} of plan ${plan} are in use; delete those networks first`);
      this.db.prepare('DELETE FROM public_ips WHERE tenant = ? AND plan = ?').run(tenant, plan);
      this.db.prepare('DELETE FROM vlans WHERE tenant = ? AND plan = ?').run(tenant, plan);
      this.db.prepare('DELETE FROM subscriptions WHERE tenant = ? AND plan = ?').run(tenant, plan);
    });
  }

  publicIpsOf(tenant: string): Set<string> {
    return new Set((this.db.prepare('SELECT address FROM public_ips WHERE tenant = ?').all(tenant) as { address: string }[]).map((r) => r.address));
  }

  // --- the tenant's SP appliance --------------------------------------------

  putAppliance(tenant: string, body: ApplianceBody): void {
    writeTx(this.db, () => {
      this.tenantRow(tenant);
      this.db.prepare(`INSERT INTO appliances (tenant, url, fingerprint, token, endpoint, registered_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(tenant) DO UPDATE SET url = excluded.url, fingerprint = excluded.fingerprint, token = excluded.token, endpoint = excluded.endpoint, registered_at = excluded.registered_at`)
        .run(tenant, body.url, body.fingerprint, body.token, body.endpoint ?? null, now());
    });
  }

  applianceOrUndefined(tenant: string): ApplianceRecord | undefined {
    const r = this.db.prepare('SELECT * FROM appliances WHERE tenant = ?').get(tenant) as { url: string; fingerprint: string; token: string; endpoint: string | null; registered_at: string } | undefined;
    return r && { url: r.url, fingerprint: r.fingerprint, token: r.token, registeredAt: r.registered_at, ...(r.endpoint !== null && { endpoint: r.endpoint }) };
  }

  appliance(tenant: string): ApplianceRecord {
    this.tenantRow(tenant);
    const a = this.applianceOrUndefined(tenant);
    if (!a) throw new NeaError('CONTROL_NO_APPLIANCE', `tenant ${tenant} has no SP appliance registered (PUT /v1/tenants/${tenant}/appliance, or nea control appliance register)`);
    return a;
  }

  // --- production networks --------------------------------------------------

  /** Checks a network change; returns the record it would write (nothing written). */
  checkNetwork(tenant: string, name: string, body: NetworkBody): NetworkRecord {
    const t = this.tenantRow(tenant);
    const subnet = subnetOf(body.subnet, 'body.subnet');
    const gw = ipv4(body.gateway, 'body.gateway');
    if (!gw.isInSubnet(subnet)) throw new ValidationError(`body.gateway: ${body.gateway} is not in ${body.subnet}`);
    if (gw.correctForm() === subnet.startAddress().correctForm() || gw.correctForm() === subnet.endAddress().correctForm()) throw new ValidationError(`body.gateway: ${body.gateway} is the network or broadcast address of ${body.subnet}`);
    const v = this.db.prepare('SELECT v.host, v.internet, h.trunk FROM vlans v JOIN hosts h ON h.name = v.host WHERE v.tenant = ? AND v.vlan = ?').get(tenant, body.vlan) as { host: string; internet: number; trunk: string } | undefined;
    if (!v) conflict(`VLAN ${body.vlan} is not allocated to tenant ${tenant}; its VLANs: ${this.subscriptions(tenant).flatMap((s) => s.networks.map((n) => n.vlan)).join(', ') || 'none (subscribe to a plan first)'}`);
    const other = this.db.prepare('SELECT name FROM networks WHERE tenant = ? AND vlan = ? AND name != ?').get(tenant, body.vlan, name) as { name: string } | undefined;
    if (other) conflict(`VLAN ${body.vlan} already carries network ${other.name} of tenant ${tenant}`);
    for (const n of this.networks(tenant)) {
      if (n.name === name) continue;
      const s = new Address4(n.subnet);
      if (subnet.isInSubnet(s) || s.isInSubnet(subnet)) conflict(`subnet ${body.subnet} overlaps network ${n.name} (${n.subnet}) of tenant ${tenant}`);
    }
    const old = this.networks(tenant).find((n) => n.name === name);
    if (old) {
      const reps = this.replicas(tenant).filter((r) => r.network === name);
      if (t.failover !== 'none' && (old.vlan !== body.vlan || old.subnet !== body.subnet || old.gateway !== body.gateway)) conflict(`network ${name} cannot change while tenant ${tenant} is in ${t.failover} failover`);
      const outside = reps.filter((r) => !new Address4(r.address).isInSubnet(subnet));
      if (outside.length > 0) conflict(`network ${name}: replicas ${outside.map((r) => r.name).join(', ')} would be outside ${body.subnet}`);
    }
    return { tenant, name, subnet: body.subnet, gateway: body.gateway, vlan: body.vlan, host: v!.host, trunk: v!.trunk, internet: Boolean(v!.internet), mode: old?.mode ?? 'isolated' };
  }

  putNetwork(n: NetworkRecord): void {
    writeTx(this.db, () => {
      this.db.prepare(`INSERT INTO networks (tenant, name, subnet, gateway, host, vlan, mode) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(tenant, name) DO UPDATE SET subnet = excluded.subnet, gateway = excluded.gateway, host = excluded.host, vlan = excluded.vlan`)
        .run(n.tenant, n.name, n.subnet, n.gateway, n.host, n.vlan, n.mode);
    });
  }

  networks(tenant: string): NetworkRecord[] {
    const rows = this.db.prepare(`SELECT n.*, v.internet, h.trunk FROM networks n JOIN vlans v ON v.host = n.host AND v.vlan = n.vlan
      JOIN hosts h ON h.name = n.host WHERE n.tenant = ? ORDER BY n.vlan`).all(tenant) as NetworkRow[];
    return rows.map((r) => ({ tenant: r.tenant, name: r.name, subnet: r.subnet, gateway: r.gateway, host: r.host, vlan: r.vlan, trunk: r.trunk, internet: Boolean(r.internet), mode: r.mode as SegmentMode }));
  }

  network(tenant: string, name: string): NetworkRecord {
    return this.networks(tenant).find((n) => n.name === name) ?? notFound(`network ${name} of tenant ${tenant}`);
  }

  checkDeleteNetwork(tenant: string, name: string): NetworkRecord {
    const n = this.network(tenant, name);
    const reps = this.replicas(tenant).filter((r) => r.network === name);
    if (reps.length > 0) conflict(`network ${name} has replicas (${reps.map((r) => r.name).join(', ')}); delete or move them first`);
    if (n.mode !== 'isolated') conflict(`network ${name} is in ${n.mode} mode (a failover); fail back first`);
    return n;
  }

  deleteNetwork(tenant: string, name: string): void {
    this.db.prepare('DELETE FROM networks WHERE tenant = ? AND name = ?').run(tenant, name);
  }

  setNetworkMode(tenant: string, name: string, mode: SegmentMode): void {
    this.db.prepare('UPDATE networks SET mode = ? WHERE tenant = ? AND name = ?').run(mode, tenant, name);
  }

  // --- replicas -------------------------------------------------------------

  putReplica(tenant: string, name: string, body: ReplicaBody): Replica {
    writeTx(this.db, () => {
      const net = this.network(tenant, body.network);
      const addr = ipv4(body.address, 'body.address');
      const subnet = new Address4(net.subnet);
      if (!addr.isInSubnet(subnet) || addr.subnetMask !== subnet.subnetMask) throw new ValidationError(`body.address: ${body.address} is not an address of network ${net.name} (${net.subnet}, same prefix length)`);
      if (addr.addressMinusSuffix === net.gateway) throw new ValidationError(`body.address: ${addr.addressMinusSuffix} is the gateway of network ${net.name}`);
      const clash = this.replicas(tenant).find((r) => r.name !== name && (r.mac === body.mac || (r.network === body.network && r.address.split('/')[0] === addr.addressMinusSuffix)));
      if (clash) conflict(`replica ${clash.name} of tenant ${tenant} already has ${clash.mac === body.mac ? `MAC ${body.mac}` : `address ${clash.address}`}`);
      const old = this.replicas(tenant).find((r) => r.name === name);
      if (old && old.state !== 'Normal' && (old.network !== body.network || old.address !== body.address || old.mac !== body.mac)) conflict(`replica ${name} is in state ${old.state}; its network, address and MAC can change only in Normal`);
      this.db.prepare(`INSERT INTO replicas (tenant, name, network, address, mac, restore_point) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(tenant, name) DO UPDATE SET network = excluded.network, address = excluded.address, mac = excluded.mac, restore_point = excluded.restore_point`)
        .run(tenant, name, body.network, body.address, body.mac, body.restorePoint ?? null);
    });
    const r = this.replica(tenant, name);
    return { name: r.name, network: r.network, address: r.address, mac: r.mac, state: r.state, ...(r.restorePoint !== undefined && { restorePoint: r.restorePoint }) };
  }

  replicas(tenant: string): ReplicaRecord[] {
    const nets = new Map(this.networks(tenant).map((n) => [n.name, n]));
    const rows = this.db.prepare('SELECT * FROM replicas WHERE tenant = ? ORDER BY name').all(tenant) as ReplicaRow[];
    return rows.map((r) => {
      const n = nets.get(r.network)!;
      return {
        tenant, name: r.name, network: r.network, address: r.address, mac: r.mac, state: r.state as ReplicaState,
        ...(r.restore_point !== null && { restorePoint: r.restore_point }),
        host: n.host, trunk: n.trunk, vlan: n.vlan, gateway: n.gateway, subnet: n.subnet,
      };
    });
  }

  replica(tenant: string, name: string): ReplicaRecord {
    this.tenantRow(tenant);
    return this.replicas(tenant).find((r) => r.name === name) ?? notFound(`replica ${name} of tenant ${tenant}`);
  }

  deleteReplica(tenant: string, name: string): void {
    writeTx(this.db, () => {
      const r = this.replica(tenant, name);
      if (r.state === 'Failover' || r.state === 'Failback') conflict(`replica ${name} is in state ${r.state}; fail it back first`);
      const plans = this.failoverPlans(tenant).filter((p) => p.vms.some((v) => v.vm === name));
      if (plans.length > 0) conflict(`replica ${name} is in failover plan(s) ${plans.map((p) => p.name).join(', ')}; remove it there first`);
      this.db.prepare('DELETE FROM replicas WHERE tenant = ? AND name = ?').run(tenant, name);
    });
  }

  setReplicaState(tenant: string, name: string, state: ReplicaState): void {
    this.db.prepare('UPDATE replicas SET state = ? WHERE tenant = ? AND name = ?').run(state, tenant, name);
  }

  // --- failover plans -------------------------------------------------------

  putFailoverPlan(tenant: string, name: string, body: FailoverPlanBody): FailoverPlan {
    writeTx(this.db, () => {
      this.tenantRow(tenant);
      const reps = new Map(this.replicas(tenant).map((r) => [r.name, r]));
      const seen = new Set<string>();
      body.vms.forEach((v, i) => {
        if (!reps.has(v.vm)) conflict(`body.vms[${i}].vm: tenant ${tenant} has no replica ${v.vm}`);
        if (seen.has(v.vm)) throw new ValidationError(`body.vms[${i}].vm: ${v.vm} is listed twice`);
        seen.add(v.vm);
      });
      const ips = this.publicIpsOf(tenant);
      const names = new Set<string>();
      const ports = new Set<string>();
      const whole = new Set<string>();
      body.publicRules.forEach((r, i) => {
        const at = `body.publicRules[${i}]`;
        if (names.has(r.name)) throw new ValidationError(`${at}.name: ${r.name} is used twice`);
        names.add(r.name);
        if (!ips.has(r.publicAddress)) conflict(`${at}.publicAddress: ${r.publicAddress} is not one of tenant ${tenant}'s public IPs (${[...ips].join(', ') || 'none: subscribe to a plan with public IPs'})`);
        if (!seen.has(r.vm)) conflict(`${at}.vm: ${r.vm} is not in this plan's vms`);
        if (r.kind === 'address') {
          if (whole.has(r.publicAddress) || [...ports].some((p) => p.startsWith(`${r.publicAddress}/`))) conflict(`${at}: ${r.publicAddress} is already used by another rule of this plan`);
          whole.add(r.publicAddress);
        } else {
          const key = `${r.publicAddress}/${r.protocol}/${r.publicPort}`;
          if (whole.has(r.publicAddress) || ports.has(key)) conflict(`${at}: ${r.protocol} ${r.publicAddress}:${r.publicPort} is already mapped by another rule of this plan`);
          ports.add(key);
        }
      });
      this.db.prepare('INSERT INTO failover_plans (tenant, name, body) VALUES (?, ?, ?) ON CONFLICT(tenant, name) DO UPDATE SET body = excluded.body').run(tenant, name, JSON.stringify(body));
    });
    return this.failoverPlan(tenant, name);
  }

  failoverPlan(tenant: string, name: string): FailoverPlan {
    this.tenantRow(tenant);
    const r = this.db.prepare('SELECT body FROM failover_plans WHERE tenant = ? AND name = ?').get(tenant, name) as { body: string } | undefined;
    if (!r) return notFound(`failover plan ${name} of tenant ${tenant}`);
    return { name, ...(JSON.parse(r.body) as FailoverPlanBody) };
  }

  failoverPlans(tenant: string): FailoverPlan[] {
    return (this.db.prepare('SELECT name FROM failover_plans WHERE tenant = ? ORDER BY name').all(tenant) as { name: string }[]).map((r) => this.failoverPlan(tenant, r.name));
  }

  deleteFailoverPlan(tenant: string, name: string): void {
    writeTx(this.db, () => {
      this.failoverPlan(tenant, name);
      const t = this.tenantRow(tenant);
      if (t.failover_plan === name) conflict(`failover plan ${name} is in use by the ${t.failover} failover in progress`);
      this.db.prepare('DELETE FROM failover_plans WHERE tenant = ? AND name = ?').run(tenant, name);
    });
  }
}
