/**
 * The control plane's API (docs/control-api.md), a fastify app over one
 * {@link ControlPlane} (no socket: `listen` is the caller's; tests call
 * `inject()`).
 *
 * Request pipeline, in order (1, 3, 4 and the error mapping are the
 * appliance API's, src/shared/http-api.ts):
 *   1. rate limit per client address (429 with retry-after);
 *   2. authentication (preParsing, so an unauthenticated body is never
 *      parsed): the bearer token, checked in constant time
 *      (ControlPlane.authenticate); then authorization by the route's
 *      `access`:
 *        - `admin` (the default): SP admin tokens only; a tenant token gets
 *          403 API_FORBIDDEN;
 *        - `tenant`: SP admin tokens, and the tenant token of the tenant in
 *          the path; routes without a tenant in the path show a tenant
 *          token its own tenant's items only;
 *        - `any`: every valid token (plans, which tenants choose from).
 *      A tenant token naming another tenant in the path gets 404 "tenant
 *      X does not exist" whether X exists or not (names do not leak), before
 *      the 403 of an admin route;
 *   3. body parsing: JSON only, at most `bodyLimit` bytes (413), `__proto__`
 *      and `constructor.prototype` refused (400);
 *   4. schema validation (src/protocol/control-api.ts; unknown fields
 *      refused, no coercion);
 *   5. the handler. Every change is audited with the token's name and the
 *      outcome (ControlPlane.audited); operations audit themselves and
 *      answer 202 with their job at once. A request refused by
 *      authorization is audited too when it would have changed something.
 * Every error is problem+json with a registry code; input is never answered
 * with a 5xx.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  ApplianceBody, ApplianceView, AuditEntry, ControlTokenCreate, ControlTokenCreated, ControlTokenView, FailoverPlan, FailoverPlanBody,
  FailoverRequest, Host, HostBody, IpPool, IpPoolBody, JobView, Name, Network, NetworkBody, PairingTokenAnswer, PairingTokenRequest, Plan,
  PlanBody, Replica, ReplicaBody, ReplicaPowerView, Subscription, SubscriptionBody, TenantBody, TenantSummary, TenantView, VlanPool,
  VlanPoolBody, VmsRequest,
} from '../protocol/control-api.js';
import { Problem } from '../protocol/appliance-api.js';
import { NeaError } from '../shared/errors.js';
import { createHttpApi, type ApiApp } from '../shared/http-api.js';
import type { Logger } from '../shared/log.js';
import type { Actor, ControlPlane } from './control-plane.js';
import { jobView } from './jobs.js';
import type { NetworkRecord, ReplicaRecord } from './records.js';

export type ControlApiApp = ApiApp;

/** Who may call a route (file comment). */
export type Access = 'admin' | 'tenant' | 'any';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Control plane routes: who may call; default `admin`. */
    access?: Access;
    /** Control plane routes: the audit log's action for a change. */
    action?: string;
  }
}

export interface ControlApiOptions {
  cp: ControlPlane;
  log: Logger;
  /** TLS identity; absent: plain HTTP (tests with inject only). */
  tls?: { key: string; cert: string };
  /** Largest request body in bytes; default 65536. */
  bodyLimit?: number;
  /** Requests per client address per window; default 600 per 60000 ms. */
  rateLimit?: { max: number; windowMs: number };
  /**
   * Check that a tenant's SP appliance answers (with its pin, its token,
   * role sp) before registering it; default true. Tests whose appliances
   * are in-memory fakes turn it off.
   */
  checkAppliance?: boolean;
}

const ERRORS = { '4xx': Problem, '5xx': Problem } as const;
const NO_BODY = { 204: Type.Null(), ...ERRORS } as const;
const items = <T extends TSchema>(s: T) => Type.Object({ items: Type.Array(s) }, { additionalProperties: false });

const NameParams = Type.Object({ name: Name });
const TenantParams = Type.Object({ tenant: Name });
const TenantItemParams = Type.Object({ tenant: Name, name: Name });
const SubscriptionParams = Type.Object({ tenant: Name, plan: Name });
const TokenParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{12}$', description: 'token id (nea control token list)' }) });
const JobParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'job id, e.g. job-1a2b3c4d' }) });
const Limit = Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'at most this many, newest first (1-9999; default 100 jobs, 200 audit entries)' });
const ListQuery = Type.Object({
  tenant: Type.Optional(Type.String({ ...Name, description: "only this tenant's (a tenant token: always its own)" })),
  limit: Type.Optional(Limit),
}, { additionalProperties: false });

const notFound = (what: string): NeaError => new NeaError('CONTROL_NOT_FOUND', `${what} does not exist`);

function networkView(n: NetworkRecord): Network {
  return { name: n.name, subnet: n.subnet, gateway: n.gateway, vlan: n.vlan, host: n.host, internet: n.internet, mode: n.mode };
}

function replicaView(r: ReplicaRecord): Replica {
  return { name: r.name, network: r.network, address: r.address, mac: r.mac, state: r.state, ...(r.restorePoint !== undefined && { restorePoint: r.restorePoint }) };
}

/** True when `get` finds the item (it throws CONTROL_NOT_FOUND otherwise). */
function exists(get: () => unknown): boolean {
  try {
    get();
    return true;
  } catch (e) {
    if (e instanceof NeaError && e.code === 'CONTROL_NOT_FOUND') return false;
    throw e;
  }
}

export async function buildControlApi(opts: ControlApiOptions): Promise<ControlApiApp> {
  const { cp, log } = opts;
  const app = await createHttpApi({
    log, server: 'the control plane',
    title: 'nea control plane API',
    description: "The SP's control plane: network resources, plans, tenants, their SP appliances, networks, replicas, failover plans, failover operations and their jobs (docs/control-api.md).",
    ...(opts.tls && { tls: opts.tls }),
    ...(opts.bodyLimit !== undefined && { bodyLimit: opts.bodyLimit }),
    ...(opts.rateLimit && { rateLimit: opts.rateLimit }),
    securitySchemes: { admin: "an SP admin token: every route", tenant: "a tenant token: its own tenant's items and operations, and the plans" },
  });
  // Each route's access in the OpenAPI document: the schemes whose tokens may call it.
  app.addHook('onRoute', (route) => {
    if (route.config?.public === true || !route.schema) return;
    route.schema.security = (route.config?.access ?? 'admin') === 'admin' ? [{ admin: [] }] : [{ admin: [] }, { tenant: [] }];
  });

  const actors = new WeakMap<FastifyRequest, Actor>();
  const actorOf = (req: FastifyRequest): Actor => {
    const a = actors.get(req);
    if (!a) throw new NeaError('API_AUTH_REQUIRED', 'send Authorization: Bearer TOKEN');
    return a;
  };

  app.addHook('preParsing', async (req, _reply, payload) => {
    if (req.routeOptions.config.public === true || req.is404) return payload;
    const actor = cp.authenticate(req.headers.authorization);
    actors.set(req, actor);
    if (actor.scope === 'admin') return payload;
    const access = req.routeOptions.config.access ?? 'admin';
    const tenant = (req.params as Record<string, string | undefined>).tenant;
    let denied: NeaError | undefined;
    if (tenant !== undefined && tenant !== actor.tenant) denied = notFound(`tenant ${tenant}`);
    else if (access === 'admin') denied = new NeaError('API_FORBIDDEN', `token "${actor.name}" is tenant ${actor.tenant ?? '?'}'s; ${req.method} ${req.routeOptions.url ?? ''} is for the SP's admin tokens`);
    if (denied) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        cp.audit(actor, req.routeOptions.config.action ?? `${req.method} ${req.routeOptions.url ?? ''}`, actor.tenant, req.url.split('?')[0] ?? '', denied.code, denied.message);
      }
      throw denied;
    }
    return payload;
  });

  /** Runs a change, auditing it under the route's action. */
  const change = <T>(req: FastifyRequest, tenant: string | undefined, target: string, fn: () => T | Promise<T>): Promise<T> =>
    cp.audited(actorOf(req), req.routeOptions.config.action ?? `${req.method} ${req.routeOptions.url ?? ''}`, tenant, target, fn);
  const requireTenant = (t: string): void => {
    if (!cp.records.tenantExists(t)) throw notFound(`tenant ${t}`);
  };
  /** The tenant a tenant token is limited to; undefined for an admin. */
  const ownTenant = (req: FastifyRequest): string | undefined => {
    const a = actorOf(req);
    return a.scope === 'tenant' ? a.tenant ?? '' : undefined;
  };

  // --- health, OpenAPI ------------------------------------------------------------

  app.get('/v1/health', {
    config: { public: true },
    schema: { summary: 'liveness (no authentication)', tags: ['status'], security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }), ...ERRORS } },
  }, () => ({ status: 'ok' as const }));

  app.get('/v1/openapi.json', {
    config: { public: true },
    schema: { summary: 'this API as an OpenAPI 3 document', tags: ['status'], security: [], hide: true },
  }, () => app.swagger());

  // --- tokens ---------------------------------------------------------------------

  app.get('/v1/tokens', {
    schema: { summary: 'list API tokens (never their secrets)', tags: ['tokens'], response: { 200: items(ControlTokenView), ...ERRORS } },
  }, () => ({ items: cp.tokens() }));

  app.post('/v1/tokens', {
    config: { action: 'token.create' },
    schema: { summary: 'issue a token: scope admin (the SP) or tenant (one tenant; shown once)', tags: ['tokens'], body: ControlTokenCreate, response: { 201: ControlTokenCreated, ...ERRORS } },
  }, async (req, reply) => {
    const b = req.body;
    const t = await change(req, b.scope === 'tenant' ? b.tenant : undefined, b.name, () => cp.createToken(b));
    log.info('API token issued', { id: t.id, name: t.name, scope: t.scope, tenant: t.tenant });
    return reply.code(201).send(t);
  });

  app.delete('/v1/tokens/:id', {
    config: { action: 'token.revoke' },
    schema: { summary: 'revoke a token (its next request is refused; the last admin token cannot be)', tags: ['tokens'], params: TokenParams, response: NO_BODY },
  }, async (req, reply) => {
    const { id } = req.params;
    const tok = cp.tokens().find((t) => t.id === id);
    await change(req, tok?.tenant, id, () => {
      if (tok?.scope === 'admin' && tok.revokedAt === undefined && !cp.tokens().some((t) => t.id !== id && t.scope === 'admin' && t.revokedAt === undefined)) {
        throw new NeaError('CONTROL_CONFLICT', `token ${id} (${tok.name}) is the last admin token; issue another first`);
      }
      cp.revokeToken(id);
    });
    log.info('API token revoked', { id });
    return reply.code(204).send(null);
  });

  // --- SP resources: hosts, VLAN pools, public IP pools, plans ---------------------

  /** GET list, GET, PUT (201 created / 200 replaced), DELETE of one kind of SP resource. */
  const spResource = <B extends TSchema, V extends TSchema>(o: {
    path: string; kind: string; what: string; body: B; view: V; read: Access;
    put: (name: string, body: Static<B>) => Static<V>; get: (name: string) => Static<V>; list: () => Static<V>[]; del: (name: string) => void;
  }): void => {
    app.get(`/v1/${o.path}`, {
      config: { access: o.read },
      schema: { summary: `list ${o.what}s`, tags: ['sp'], response: { 200: items(o.view), ...ERRORS } },
    }, () => ({ items: o.list() }));
    app.get(`/v1/${o.path}/:name`, {
      config: { access: o.read },
      schema: { summary: `one ${o.what}`, tags: ['sp'], params: NameParams, response: { 200: o.view, ...ERRORS } },
    }, (req) => o.get(req.params.name) as never);
    app.put(`/v1/${o.path}/:name`, {
      config: { action: `${o.kind}.put` },
      schema: { summary: `create or change a ${o.what}`, tags: ['sp'], params: NameParams, body: o.body, response: { 200: o.view, 201: o.view, ...ERRORS } },
    // (Typed by hand: the type provider cannot resolve the reply type of a generic schema.)
    }, (async (req: FastifyRequest<{ Params: { name: string }; Body: Static<B> }>, reply: FastifyReply) => {
      const { name } = req.params;
      const existed = exists(() => o.get(name));
      const v = await change(req, undefined, name, () => o.put(name, req.body));
      return reply.code(existed ? 200 : 201).send(v);
    }) as never);
    app.delete(`/v1/${o.path}/:name`, {
      config: { action: `${o.kind}.delete` },
      schema: { summary: `delete a ${o.what} (refused while in use)`, tags: ['sp'], params: NameParams, response: NO_BODY },
    }, async (req, reply) => {
      await change(req, undefined, req.params.name, () => { o.del(req.params.name); });
      return reply.code(204).send(null);
    });
  };
  const r = cp.records;
  spResource({ path: 'hosts', kind: 'host', what: 'cloud host', body: HostBody, view: Host, read: 'admin', put: (n, b) => r.putHost(n, b), get: (n) => r.host(n), list: () => r.hosts(), del: (n) => { r.deleteHost(n); } });
  spResource({ path: 'vlan-pools', kind: 'vlan-pool', what: 'VLAN pool', body: VlanPoolBody, view: VlanPool, read: 'admin', put: (n, b) => r.putVlanPool(n, b), get: (n) => r.vlanPool(n), list: () => r.vlanPools(), del: (n) => { r.deleteVlanPool(n); } });
  spResource({ path: 'ip-pools', kind: 'ip-pool', what: 'public IP pool', body: IpPoolBody, view: IpPool, read: 'admin', put: (n, b) => r.putIpPool(n, b), get: (n) => r.ipPool(n), list: () => r.ipPools(), del: (n) => { r.deleteIpPool(n); } });
  spResource({ path: 'plans', kind: 'plan', what: 'hardware plan', body: PlanBody, view: Plan, read: 'any', put: (n, b) => r.putPlan(n, b), get: (n) => r.plan(n), list: () => r.plans(), del: (n) => { r.deletePlan(n); } });

  // --- tenants and subscriptions --------------------------------------------------

  app.get('/v1/tenants', {
    config: { access: 'tenant' },
    schema: { summary: 'list tenants (a tenant token: its own)', tags: ['tenants'], response: { 200: items(TenantSummary), ...ERRORS } },
  }, (req) => {
    const own = ownTenant(req);
    return { items: r.tenants().filter((t) => own === undefined || t.name === own) };
  });
  app.get('/v1/tenants/:tenant', {
    config: { access: 'tenant' },
    schema: { summary: 'one tenant with its subscriptions, appliance, networks, replicas and failover plans', tags: ['tenants'], params: TenantParams, response: { 200: TenantView, ...ERRORS } },
  }, (req) => r.tenant(req.params.tenant));
  app.put('/v1/tenants/:tenant', {
    config: { action: 'tenant.put' },
    schema: { summary: 'create or change a tenant', tags: ['tenants'], params: TenantParams, body: TenantBody, response: { 200: TenantView, 201: TenantView, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant } = req.params;
    const existed = r.tenantExists(tenant);
    const v = await change(req, tenant, tenant, () => r.putTenant(tenant, req.body));
    return reply.code(existed ? 200 : 201).send(v);
  });
  app.delete('/v1/tenants/:tenant', {
    config: { action: 'tenant.delete' },
    schema: { summary: 'delete a tenant (refused until it has no subscription and is in no failover; its tokens go with it)', tags: ['tenants'], params: TenantParams, response: NO_BODY },
  }, async (req, reply) => {
    const { tenant } = req.params;
    await change(req, tenant, tenant, () => {
      const active = cp.jobs.active(tenant);
      if (active) throw new NeaError('CONTROL_BUSY', `tenant ${tenant}: ${active.kind} (job ${active.id}) is still ${active.state}`);
      r.deleteTenant(tenant);
    });
    return reply.code(204).send(null);
  });

  app.get('/v1/tenants/:tenant/subscriptions', {
    config: { access: 'tenant' },
    schema: { summary: "the tenant's subscriptions with the VLANs and public IPs they allocated", tags: ['tenants'], params: TenantParams, response: { 200: items(Subscription), ...ERRORS } },
  }, (req) => { requireTenant(req.params.tenant); return { items: r.subscriptions(req.params.tenant) }; });
  app.put('/v1/tenants/:tenant/subscriptions/:plan', {
    config: { action: 'subscription.put' },
    schema: { summary: "subscribe the tenant to a plan on a host: allocates the plan's VLANs and public IPs, all or nothing", tags: ['tenants'], params: SubscriptionParams, body: SubscriptionBody, response: { 200: Subscription, 201: Subscription, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant, plan } = req.params;
    const existed = exists(() => r.subscription(tenant, plan));
    const v = await change(req, tenant, plan, () => r.subscribe(tenant, plan, req.body.host));
    return reply.code(existed ? 200 : 201).send(v);
  });
  app.delete('/v1/tenants/:tenant/subscriptions/:plan', {
    config: { action: 'subscription.delete' },
    schema: { summary: "unsubscribe: releases the plan's VLANs and public IPs (refused while a network uses one)", tags: ['tenants'], params: SubscriptionParams, response: NO_BODY },
  }, async (req, reply) => {
    const { tenant, plan } = req.params;
    await change(req, tenant, plan, () => { requireTenant(tenant); r.unsubscribe(tenant, plan); });
    return reply.code(204).send(null);
  });

  // --- the tenant's SP appliance ----------------------------------------------------

  const applianceView = (tenant: string): ApplianceView => {
    requireTenant(tenant);
    const a = r.applianceOrUndefined(tenant);
    if (!a) throw new NeaError('CONTROL_NOT_FOUND', `tenant ${tenant} has no SP appliance registered`);
    return { url: a.url, fingerprint: a.fingerprint, registeredAt: a.registeredAt, ...(a.endpoint !== undefined && { endpoint: a.endpoint }) };
  };
  app.get('/v1/tenants/:tenant/appliance', {
    schema: { summary: "the tenant's SP appliance (never its token)", tags: ['tenants'], params: TenantParams, response: { 200: ApplianceView, ...ERRORS } },
  }, (req) => applianceView(req.params.tenant));
  app.put('/v1/tenants/:tenant/appliance', {
    config: { action: 'appliance.register' },
    schema: { summary: "register the tenant's SP appliance (its management API must answer with that pin and token, as an SP appliance)", tags: ['tenants'], params: TenantParams, body: ApplianceBody, response: { 200: ApplianceView, 201: ApplianceView, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant } = req.params;
    const existed = r.applianceOrUndefined(tenant) !== undefined;
    await change(req, tenant, req.body.url, () => cp.registerAppliance(tenant, req.body, opts.checkAppliance ?? true));
    return reply.code(existed ? 200 : 201).send(applianceView(tenant));
  });

  // --- production networks ----------------------------------------------------------

  app.get('/v1/tenants/:tenant/networks', {
    config: { access: 'tenant' },
    schema: { summary: "the tenant's production networks", tags: ['networks'], params: TenantParams, response: { 200: items(Network), ...ERRORS } },
  }, (req) => { requireTenant(req.params.tenant); return { items: r.networks(req.params.tenant).map(networkView) }; });
  app.get('/v1/tenants/:tenant/networks/:name', {
    config: { access: 'tenant' },
    schema: { summary: 'one production network', tags: ['networks'], params: TenantItemParams, response: { 200: Network, ...ERRORS } },
  }, (req) => { requireTenant(req.params.tenant); return networkView(r.network(req.params.tenant, req.params.name)); });
  app.put('/v1/tenants/:tenant/networks/:name', {
    config: { access: 'tenant', action: 'network.put' },
    schema: { summary: "create or change a production network on one of the tenant's VLANs (the SP appliance's segment first)", tags: ['networks'], params: TenantItemParams, body: NetworkBody, response: { 200: Network, 201: Network, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    requireTenant(tenant);
    const existed = exists(() => r.network(tenant, name));
    await change(req, tenant, name, () => cp.putNetwork(tenant, name, req.body));
    return reply.code(existed ? 200 : 201).send(networkView(r.network(tenant, name)));
  });
  app.delete('/v1/tenants/:tenant/networks/:name', {
    config: { access: 'tenant', action: 'network.delete' },
    schema: { summary: 'delete a production network (refused while replicas use it or it is in failover)', tags: ['networks'], params: TenantItemParams, response: NO_BODY },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    await change(req, tenant, name, async () => { requireTenant(tenant); await cp.deleteNetwork(tenant, name); });
    return reply.code(204).send(null);
  });

  // --- replicas ----------------------------------------------------------------------

  app.get('/v1/tenants/:tenant/replicas', {
    config: { access: 'tenant' },
    schema: { summary: "the tenant's replicas and their states", tags: ['replicas'], params: TenantParams, response: { 200: items(Replica), ...ERRORS } },
  }, (req) => { requireTenant(req.params.tenant); return { items: r.replicas(req.params.tenant).map(replicaView) }; });
  app.get('/v1/tenants/:tenant/replicas/:name', {
    config: { access: 'tenant' },
    schema: { summary: 'one replica', tags: ['replicas'], params: TenantItemParams, response: { 200: Replica, ...ERRORS } },
  }, (req) => replicaView(r.replica(req.params.tenant, req.params.name)));
  app.put('/v1/tenants/:tenant/replicas/:name', {
    config: { access: 'tenant', action: 'replica.put' },
    schema: { summary: 'create or change a replica: its production network, address and MAC (which change only in state Normal)', tags: ['replicas'], params: TenantItemParams, body: ReplicaBody, response: { 200: Replica, 201: Replica, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    requireTenant(tenant);
    const existed = exists(() => r.replica(tenant, name));
    const v = await change(req, tenant, name, () => r.putReplica(tenant, name, req.body));
    return reply.code(existed ? 200 : 201).send(v);
  });
  app.delete('/v1/tenants/:tenant/replicas/:name', {
    config: { access: 'tenant', action: 'replica.delete' },
    schema: { summary: 'delete a replica (refused in failover or while a failover plan lists it)', tags: ['replicas'], params: TenantItemParams, response: NO_BODY },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    await change(req, tenant, name, () => { r.deleteReplica(tenant, name); });
    return reply.code(204).send(null);
  });

  // --- failover plans ---------------------------------------------------------------

  app.get('/v1/tenants/:tenant/failover-plans', {
    config: { access: 'tenant' },
    schema: { summary: "the tenant's failover plans", tags: ['failover'], params: TenantParams, response: { 200: items(FailoverPlan), ...ERRORS } },
  }, (req) => { requireTenant(req.params.tenant); return { items: r.failoverPlans(req.params.tenant) }; });
  app.get('/v1/tenants/:tenant/failover-plans/:name', {
    config: { access: 'tenant' },
    schema: { summary: 'one failover plan', tags: ['failover'], params: TenantItemParams, response: { 200: FailoverPlan, ...ERRORS } },
  }, (req) => r.failoverPlan(req.params.tenant, req.params.name));
  app.put('/v1/tenants/:tenant/failover-plans/:name', {
    config: { access: 'tenant', action: 'failover-plan.put' },
    schema: { summary: 'create or change a failover plan: replicas in boot order with delays, public IP rules', tags: ['failover'], params: TenantItemParams, body: FailoverPlanBody, response: { 200: FailoverPlan, 201: FailoverPlan, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    requireTenant(tenant);
    const existed = exists(() => r.failoverPlan(tenant, name));
    const v = await change(req, tenant, name, () => cp.putFailoverPlan(tenant, name, req.body));
    return reply.code(existed ? 200 : 201).send(v);
  });
  app.delete('/v1/tenants/:tenant/failover-plans/:name', {
    config: { access: 'tenant', action: 'failover-plan.delete' },
    schema: { summary: 'delete a failover plan (refused while its failover is in progress)', tags: ['failover'], params: TenantItemParams, response: NO_BODY },
  }, async (req, reply) => {
    const { tenant, name } = req.params;
    await change(req, tenant, name, () => { r.deleteFailoverPlan(tenant, name); });
    return reply.code(204).send(null);
  });

  // --- pairing ------------------------------------------------------------------------

  app.post('/v1/tenants/:tenant/pairing-tokens', {
    config: { access: 'tenant', action: 'pairing-token.create' },
    schema: { summary: "a one-time pairing token for the tenant appliance, minted by the tenant's SP appliance for all its networks (shown once)", tags: ['tenants'], params: TenantParams, body: PairingTokenRequest, response: { 201: PairingTokenAnswer, ...ERRORS } },
  }, async (req, reply) => {
    const { tenant } = req.params;
    const t = await change(req, tenant, tenant, () => { requireTenant(tenant); return cp.pairingToken(tenant, req.body.ttlSeconds); });
    return reply.code(201).send(t);
  });

  // --- operations and jobs ------------------------------------------------------------

  const OPERATION = { 202: JobView, ...ERRORS } as const;
  app.post('/v1/tenants/:tenant/failover', {
    config: { access: 'tenant', action: 'failover' },
    schema: { summary: 'start a failover: partial (some replicas), full (the site, by a failover plan) or test (a full one, isolated); answers its job', tags: ['operations'], params: TenantParams, body: FailoverRequest, response: OPERATION },
  }, (req, reply) => { void reply.code(202); return cp.failover(req.params.tenant, req.body, actorOf(req)); });
  app.post('/v1/tenants/:tenant/failback', {
    config: { access: 'tenant', action: 'failback' },
    schema: { summary: 'start failing back replicas in failover (all when vms is absent) to production; answers its job', tags: ['operations'], params: TenantParams, body: VmsRequest, response: OPERATION },
  }, (req, reply) => { void reply.code(202); return cp.failback(req.params.tenant, req.body.vms, actorOf(req)); });
  app.post('/v1/tenants/:tenant/undo-failover', {
    config: { access: 'tenant', action: 'undo-failover' },
    schema: { summary: 'start undoing a failover: replicas off and reverted to their restore point, production as before; answers its job', tags: ['operations'], params: TenantParams, body: VmsRequest, response: OPERATION },
  }, (req, reply) => { void reply.code(202); return cp.undoFailover(req.params.tenant, req.body.vms, actorOf(req)); });
  app.post('/v1/tenants/:tenant/permanent-failover', {
    config: { access: 'tenant', action: 'permanent-failover' },
    schema: { summary: 'start making a failover permanent: the replicas become production in the cloud; answers its job', tags: ['operations'], params: TenantParams, body: VmsRequest, response: OPERATION },
  }, (req, reply) => { void reply.code(202); return cp.permanentFailover(req.params.tenant, req.body.vms, actorOf(req)); });

  app.get('/v1/jobs', {
    config: { access: 'tenant' },
    schema: { summary: 'jobs, newest first (a tenant token: its own)', tags: ['operations'], querystring: ListQuery, response: { 200: items(JobView), ...ERRORS } },
  }, (req) => {
    const own = ownTenant(req);
    if (own !== undefined && req.query.tenant !== undefined && req.query.tenant !== own) return { items: [] };
    return { items: cp.jobs.list(own ?? req.query.tenant, req.query.limit !== undefined ? Number(req.query.limit) : 100).map(jobView) };
  });
  app.get('/v1/jobs/:id', {
    config: { access: 'tenant' },
    schema: { summary: 'one job with its steps (poll it to follow an operation)', tags: ['operations'], params: JobParams, response: { 200: JobView, ...ERRORS } },
  }, (req) => {
    const j = cp.job(req.params.id);
    const own = ownTenant(req);
    if (own !== undefined && j.tenant !== own) throw notFound(`job ${req.params.id}`);
    return j;
  });

  app.get('/v1/audit', {
    config: { access: 'tenant' },
    schema: { summary: 'the audit log, newest first: who changed what, with the outcome (a tenant token: its own tenant)', tags: ['audit'], querystring: ListQuery, response: { 200: items(AuditEntry), ...ERRORS } },
  }, (req) => {
    const own = ownTenant(req);
    if (own !== undefined && req.query.tenant !== undefined && req.query.tenant !== own) return { items: [] };
    return { items: cp.auditLog(own ?? req.query.tenant, req.query.limit !== undefined ? Number(req.query.limit) : 200) };
  });

  app.get('/v1/replicas/power', {
    schema: { summary: 'replicas as the hypervisor driver sees them, with their power state', tags: ['replicas'], response: { 200: items(ReplicaPowerView), ...ERRORS } },
  }, async () => ({ items: await cp.driver.list() }));

  return app;
}
