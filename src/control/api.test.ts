import { describe, expect, it } from 'vitest';
import type { AuditEntry, JobView, TenantSummary } from '../protocol/control-api.js';
import { createLogger } from '../shared/log.js';
import { buildControlApi, type ControlApiApp } from './api.js';
import type { ControlPlane } from './control-plane.js';
import { makeKit, seedSp, seedTenant, type Kit } from './testkit.js';

interface Env extends Kit {
  app: ControlApiApp;
  admin: string;
  /** Tenant tokens of acme and globex. */
  acme: string;
  globex: string;
  lines: string[];
}

async function env(o: { bodyLimit?: number; rateLimit?: { max: number; windowMs: number }; seed?: boolean } = {}): Promise<Env> {
  const kit = makeKit();
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: (l) => lines.push(l) });
  if (o.seed !== false) {
    seedSp(kit.cp);
    await seedTenant(kit.cp, 'acme');
    await seedTenant(kit.cp, 'globex');
  } else {
    kit.cp.records.putTenant('acme', {});
    kit.cp.records.putTenant('globex', {});
  }
  const admin = kit.cp.createToken({ name: 'sp-ops', scope: 'admin' }).token;
  const acme = kit.cp.createToken({ name: 'acme-ops', scope: 'tenant', tenant: 'acme' }).token;
  const globex = kit.cp.createToken({ name: 'globex-ops', scope: 'tenant', tenant: 'globex' }).token;
  const app = await buildControlApi({
    cp: kit.cp, log, checkAppliance: false, rateLimit: o.rateLimit ?? { max: 1e9, windowMs: 60_000 },
    ...(o.bodyLimit !== undefined && { bodyLimit: o.bodyLimit }),
  });
  return { ...kit, app, admin, acme, globex, lines };
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
async function call(e: Env, token: string | undefined, method: Method, url: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> & { items?: unknown[] }; headers: Record<string, unknown> }> {
  const res = await e.app.inject({
    method, url,
    headers: { ...(token !== undefined && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  });
  return { status: res.statusCode, json: res.body === '' ? {} : res.json(), headers: res.headers };
}

/** Every table but the audit log, as text: "the database did not change". */
function dump(cp: ControlPlane): string {
  const tables = (cp.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit', 'sqlite_sequence') ORDER BY name").all() as { name: string }[]).map((t) => t.name);
  return JSON.stringify(tables.map((t) => [t, cp.db.prepare(`SELECT * FROM ${t}`).all()]));
}

const lastAudit = (cp: ControlPlane): AuditEntry => cp.auditLog(undefined, 1)[0]!;

describe('control API: authentication', () => {
  it('health and the OpenAPI document need no token; everything else does', async () => {
    const e = await env();
    expect(await call(e, undefined, 'GET', '/v1/health')).toMatchObject({ status: 200, json: { status: 'ok' } });
    const doc = await call(e, undefined, 'GET', '/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.json.paths as object)).toContain('/v1/tenants/{tenant}/failover');
    const none = await call(e, undefined, 'GET', '/v1/tenants');
    expect(none).toMatchObject({ status: 401, json: { code: 'API_AUTH_REQUIRED' } });
    expect(none.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await call(e, 'nea_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'GET', '/v1/tenants')).toMatchObject({ status: 401, json: { code: 'API_AUTH_INVALID' } });
    expect(await call(e, 'garbage', 'GET', '/v1/tenants')).toMatchObject({ status: 401, json: { code: 'API_AUTH_INVALID' } });
    // A wrong secret for a real id is the same answer as an unknown id.
    const wrong = e.admin.slice(0, -4) + 'AAAA';
    expect(await call(e, wrong, 'GET', '/v1/tenants')).toMatchObject({ status: 401, json: { code: 'API_AUTH_INVALID' } });
    // An unauthenticated body is never parsed: no 400 for junk, a 401.
    const junk = await e.app.inject({ method: 'PUT', url: '/v1/hosts/h9', headers: { 'content-type': 'application/json' }, payload: '{bad' });
    expect(junk.statusCode).toBe(401);
  });

  it('a revoked token is refused at once (403); the last admin token cannot be revoked', async () => {
    const e = await env({ seed: false });
    const extra = await call(e, e.admin, 'POST', '/v1/tokens', { name: 'robot', scope: 'admin' });
    expect(extra.status).toBe(201);
    expect(extra.json.token).toMatch(/^nea_/);
    const listed = await call(e, e.admin, 'GET', '/v1/tokens');
    expect(JSON.stringify(listed.json)).not.toMatch(/nea_|hash/);
    expect(listed.json.items!.map((t) => (t as { name: string }).name)).toEqual(['sp-ops', 'acme-ops', 'globex-ops', 'robot']);
    expect((await call(e, extra.json.token as string, 'GET', '/v1/tokens')).status).toBe(200);
    expect((await call(e, e.admin, 'DELETE', `/v1/tokens/${extra.json.id as string}`)).status).toBe(204);
    expect(await call(e, extra.json.token as string, 'GET', '/v1/tokens')).toMatchObject({ status: 403, json: { code: 'API_TOKEN_REVOKED' } });
    const self = e.cp.tokens().find((t) => t.name === 'sp-ops')!;
    expect(await call(e, e.admin, 'DELETE', `/v1/tokens/${self.id}`)).toMatchObject({ status: 409, json: { code: 'CONTROL_CONFLICT', detail: expect.stringMatching(/last admin token/) as unknown } });
    expect(await call(e, e.admin, 'DELETE', '/v1/tokens/AAAAAAAAAAAA')).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND' } });
    expect(await call(e, e.admin, 'POST', '/v1/tokens', { name: 'x', scope: 'tenant', tenant: 'nobody' })).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND' } });
    // Tenant tokens do not manage tokens.
    expect(await call(e, e.acme, 'POST', '/v1/tokens', { name: 'mine', scope: 'tenant', tenant: 'acme' })).toMatchObject({ status: 403, json: { code: 'API_FORBIDDEN' } });
  });
});

describe('control API: tenants see only their own tenant', () => {
  it('lists, reads and changes only its own; another tenant is 404 whether it exists or not', async () => {
    const e = await env();
    const list = await call(e, e.acme, 'GET', '/v1/tenants');
    expect((list.json.items as TenantSummary[]).map((t) => t.name)).toEqual(['acme']);
    expect(((await call(e, e.admin, 'GET', '/v1/tenants')).json.items as TenantSummary[]).map((t) => t.name)).toEqual(['acme', 'globex']);
    expect((await call(e, e.acme, 'GET', '/v1/tenants/acme')).status).toBe(200);
    const other = await call(e, e.acme, 'GET', '/v1/tenants/globex');
    const nobody = await call(e, e.acme, 'GET', '/v1/tenants/nobody');
    expect(other).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND', detail: 'tenant globex does not exist' } });
    expect(nobody).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND', detail: 'tenant nobody does not exist' } });
    // The admin gets the same answer for a tenant that does not exist.
    expect((await call(e, e.admin, 'GET', '/v1/tenants/nobody')).json.detail).toBe('tenant nobody does not exist');
    for (const [m, url, body] of [
      ['GET', '/v1/tenants/globex/networks'], ['GET', '/v1/tenants/globex/replicas/web1'], ['GET', '/v1/tenants/globex/failover-plans/site'],
      ['PUT', '/v1/tenants/globex/replicas/web1', { network: 'lan', address: '10.1.0.99/24', mac: '02:00:00:01:00:99' }],
      ['DELETE', '/v1/tenants/globex/failover-plans/site'], ['POST', '/v1/tenants/globex/failover', { kind: 'partial', vms: ['web1'] }],
      ['POST', '/v1/tenants/globex/pairing-tokens', { ttlSeconds: 600 }], ['GET', '/v1/tenants/globex/appliance'],
      ['PUT', '/v1/tenants/globex/subscriptions/std', { host: 'h1' }],
    ] as [Method, string, unknown?][]) {
      expect(await call(e, e.acme, m, url, body), `${m} ${url}`).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND', detail: 'tenant globex does not exist' } });
    }
    expect(e.cp.records.replica('globex', 'web1').address).toBe('10.1.0.11/24');
    expect(e.cp.records.failoverPlans('globex').map((p) => p.name)).toEqual(['site']);
  });

  it("cannot read or write the SP's resources (403) but reads plans; its own networks, replicas and plans it manages", async () => {
    const e = await env();
    const before = dump(e.cp);
    for (const [m, url, body] of [
      ['GET', '/v1/hosts'], ['PUT', '/v1/hosts/h2', { trunk: 'eth9' }], ['DELETE', '/v1/vlan-pools/inet'], ['GET', '/v1/ip-pools/pub'],
      ['PUT', '/v1/plans/big', { cpu: 1, memoryGb: 1, storageGb: 1, networksWithInternet: 1, networksWithoutInternet: 0, publicIps: 0 }],
      ['PUT', '/v1/tenants/acme', { description: 'mine now' }], ['DELETE', '/v1/tenants/acme'], ['PUT', '/v1/tenants/acme/subscriptions/std', { host: 'h1' }],
      ['DELETE', '/v1/tenants/acme/subscriptions/std'], ['GET', '/v1/tenants/acme/appliance'], ['GET', '/v1/tokens'], ['GET', '/v1/replicas/power'],
      ['PUT', '/v1/tenants/acme/appliance', { url: 'https://192.0.2.9:8443', fingerprint: 'cd'.repeat(32), token: 'nea_someone_else' }],
    ] as [Method, string, unknown?][]) {
      expect(await call(e, e.acme, m, url, body), `${m} ${url}`).toMatchObject({ status: 403, json: { code: 'API_FORBIDDEN' } });
    }
    expect(dump(e.cp)).toBe(before);
    // Attempts to change something are in the audit log, with the token's name.
    expect(lastAudit(e.cp)).toMatchObject({ actor: 'acme-ops', action: 'appliance.register', tenant: 'acme', target: '/v1/tenants/acme/appliance', outcome: 'API_FORBIDDEN' });
    expect((await call(e, e.acme, 'GET', '/v1/plans')).json.items).toHaveLength(1);
    expect((await call(e, e.acme, 'GET', '/v1/plans/std')).json).toMatchObject({ name: 'std', publicIps: 2 });
    // Its own resources.
    expect(await call(e, e.acme, 'PUT', '/v1/tenants/acme/replicas/web3', { network: 'lan', address: '10.1.0.13/24', mac: '02:00:00:01:00:13' })).toMatchObject({ status: 201, json: { name: 'web3', state: 'Normal' } });
    expect((await call(e, e.acme, 'PUT', '/v1/tenants/acme/replicas/web3', { network: 'lan', address: '10.1.0.14/24', mac: '02:00:00:01:00:13' })).status).toBe(200);
    expect(lastAudit(e.cp)).toMatchObject({ actor: 'acme-ops', action: 'replica.put', tenant: 'acme', target: 'web3', outcome: 'ok' });
    expect((await call(e, e.acme, 'GET', '/v1/tenants/acme/replicas')).json.items).toHaveLength(5);
    expect(await call(e, e.acme, 'PUT', '/v1/tenants/acme/failover-plans/web', { vms: [{ vm: 'web3', delaySeconds: 0 }], publicRules: [] })).toMatchObject({ status: 201 });
    expect((await call(e, e.acme, 'DELETE', '/v1/tenants/acme/failover-plans/web')).status).toBe(204);
    expect((await call(e, e.acme, 'DELETE', '/v1/tenants/acme/replicas/web3')).status).toBe(204);
  });

  it('runs its own failover; sees its own jobs and audit entries only', async () => {
    const e = await env();
    const started = await call(e, e.acme, 'POST', '/v1/tenants/acme/failover', { kind: 'partial', vms: ['web1'] });
    expect(started).toMatchObject({ status: 202, json: { tenant: 'acme', kind: 'partial-failover', createdBy: 'acme-ops' } });
    const id = started.json.id as string;
    expect((await e.cp.waitJob(id)).state).toBe('succeeded');
    const g = await call(e, e.admin, 'POST', '/v1/tenants/globex/failover', { kind: 'test', plan: 'site' });
    expect(g.status).toBe(202);
    await e.cp.waitJob(g.json.id as string);
    expect(await call(e, e.acme, 'GET', `/v1/jobs/${id}`)).toMatchObject({ status: 200, json: { id, state: 'succeeded', progress: { done: 5, total: 5 } } });
    expect(await call(e, e.acme, 'GET', `/v1/jobs/${g.json.id as string}`)).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND' } });
    expect(((await call(e, e.acme, 'GET', '/v1/jobs')).json.items as JobView[]).map((j) => j.tenant)).toEqual(['acme']);
    expect((await call(e, e.acme, 'GET', '/v1/jobs?tenant=globex')).json.items).toEqual([]);
    expect(((await call(e, e.admin, 'GET', '/v1/jobs')).json.items as JobView[]).map((j) => j.tenant)).toEqual(['globex', 'acme']);
    expect(((await call(e, e.admin, 'GET', '/v1/jobs?tenant=globex&limit=5')).json.items as JobView[]).map((j) => j.tenant)).toEqual(['globex']);
    const audit = (await call(e, e.acme, 'GET', '/v1/audit')).json.items as AuditEntry[];
    expect(new Set(audit.map((a) => a.tenant))).toEqual(new Set(['acme']));
    expect(audit.map((a) => [a.actor, a.action, a.outcome]).slice(0, 2)).toEqual([['acme-ops', 'partial-failover.end', 'succeeded'], ['acme-ops', 'partial-failover.start', 'started']]);
    expect((await call(e, e.acme, 'GET', '/v1/audit?tenant=globex')).json.items).toEqual([]);
    // The SP fails it back on the tenant's behalf.
    const back = await call(e, e.admin, 'POST', '/v1/tenants/acme/failback', {});
    expect(back).toMatchObject({ status: 202, json: { kind: 'failback', createdBy: 'sp-ops' } });
    expect((await e.cp.waitJob(back.json.id as string)).state).toBe('succeeded');
    expect(e.cp.records.tenant('acme').failover).toBe('none');
    // Operations that cannot start are 4xx with the reason, and audited.
    expect(await call(e, e.acme, 'POST', '/v1/tenants/acme/failover', { kind: 'full', plan: 'nope' })).toMatchObject({ status: 404, json: { code: 'CONTROL_NOT_FOUND' } });
    expect(lastAudit(e.cp)).toMatchObject({ actor: 'acme-ops', action: 'full-failover', outcome: 'CONTROL_NOT_FOUND' });
    expect(await call(e, e.acme, 'POST', '/v1/tenants/acme/undo-failover', {})).toMatchObject({ status: 202, json: { state: 'succeeded', error: expect.stringMatching(/^nothing to do/) as unknown } });
    expect((await call(e, e.acme, 'POST', '/v1/tenants/acme/permanent-failover', { vms: ['web1'] })).status).toBeGreaterThanOrEqual(400);
  });
});

describe('control API: the SP onboards a tenant', () => {
  it('resources, a tenant, a subscription, the appliance, networks, replicas, a plan, a pairing token; PUT is 201 then 200', async () => {
    const e = await env({ seed: false });
    const a = e.admin;
    expect((await call(e, a, 'PUT', '/v1/hosts/h1', { trunk: 'trunk0', description: 'rack 1' })).status).toBe(201);
    expect((await call(e, a, 'PUT', '/v1/hosts/h1', { trunk: 'trunk0' })).status).toBe(200);
    expect(await call(e, a, 'PUT', '/v1/vlan-pools/inet', { host: 'h1', first: 100, last: 109, internet: true })).toMatchObject({ status: 201, json: { used: 0, size: 10 } });
    expect((await call(e, a, 'PUT', '/v1/vlan-pools/dark', { host: 'h1', first: 200, last: 209, internet: false })).status).toBe(201);
    expect(await call(e, a, 'PUT', '/v1/ip-pools/pub', { first: '198.51.100.10', last: '198.51.100.19' })).toMatchObject({ status: 201, json: { size: 10 } });
    expect((await call(e, a, 'PUT', '/v1/plans/std', { cpu: 8, memoryGb: 32, storageGb: 500, networksWithInternet: 1, networksWithoutInternet: 1, publicIps: 2 })).status).toBe(201);
    expect((await call(e, a, 'PUT', '/v1/tenants/initech', { description: 'Initech' })).status).toBe(201);
    const sub = await call(e, a, 'PUT', '/v1/tenants/initech/subscriptions/std', { host: 'h1' });
    expect(sub).toMatchObject({ status: 201, json: { plan: 'std', host: 'h1', publicIps: ['198.51.100.10', '198.51.100.11'] } });
    expect((await call(e, a, 'PUT', '/v1/tenants/initech/subscriptions/std', { host: 'h1' })).status).toBe(200);
    const reg = await call(e, a, 'PUT', '/v1/tenants/initech/appliance', { url: 'https://192.0.2.10:8443', fingerprint: 'ab'.repeat(32), token: 'nea_secret_of_the_appliance' });
    expect(reg.status).toBe(201);
    expect(JSON.stringify(reg.json)).not.toContain('nea_secret');
    expect(JSON.stringify((await call(e, a, 'GET', '/v1/tenants/initech/appliance')).json)).not.toContain('nea_secret');
    expect(JSON.stringify((await call(e, a, 'GET', '/v1/tenants/initech')).json)).not.toContain('nea_secret');
    expect(await call(e, a, 'PUT', '/v1/tenants/initech/networks/lan', { subnet: '10.1.0.0/24', gateway: '10.1.0.1', vlan: 100 })).toMatchObject({ status: 201, json: { name: 'lan', host: 'h1', internet: true, mode: 'isolated' } });
    expect(e.appliance('initech').segments.get(100)).toMatchObject({ mode: 'isolated' });
    expect((await call(e, a, 'PUT', '/v1/tenants/initech/replicas/web1', { network: 'lan', address: '10.1.0.11/24', mac: '02:00:00:01:00:11' })).status).toBe(201);
    expect((await call(e, a, 'PUT', '/v1/tenants/initech/failover-plans/site', {
      vms: [{ vm: 'web1', delaySeconds: 0 }], publicRules: [{ name: 'web', kind: 'port', publicAddress: '198.51.100.10', protocol: 'tcp', publicPort: 80, vm: 'web1' }],
    })).status).toBe(201);
    expect(await call(e, a, 'POST', '/v1/tenants/initech/pairing-tokens', { ttlSeconds: 600 })).toMatchObject({ status: 201, json: { segments: [100], token: expect.stringMatching(/^neapair1\./) as unknown } });
    const t = (await call(e, a, 'GET', '/v1/tenants/initech')).json;
    expect(t).toMatchObject({ name: 'initech', failover: 'none', networks: [{ name: 'lan' }], replicas: [{ name: 'web1' }], failoverPlans: [{ name: 'site' }] });
    expect((await call(e, a, 'GET', '/v1/tenants/initech/subscriptions')).json.items).toHaveLength(1);
    expect((await call(e, a, 'GET', '/v1/vlan-pools/inet')).json).toMatchObject({ used: 1 });
    expect(e.cp.auditLog('initech').map((x) => `${x.actor} ${x.action} ${x.target} ${x.outcome}`).reverse()).toEqual([
      'sp-ops tenant.put initech ok', 'sp-ops subscription.put std ok', 'sp-ops subscription.put std ok', 'sp-ops appliance.register https://192.0.2.10:8443 ok',
      'sp-ops network.put lan ok', 'sp-ops replica.put web1 ok', 'sp-ops failover-plan.put site ok', 'sp-ops pairing-token.create initech ok',
    ]);
    // Deleting in the wrong order is refused, naming what is in the way.
    expect(await call(e, a, 'DELETE', '/v1/tenants/initech')).toMatchObject({ status: 409, json: { detail: expect.stringMatching(/still subscribes to std/) as unknown } });
    expect(await call(e, a, 'DELETE', '/v1/tenants/initech/networks/lan')).toMatchObject({ status: 409, json: { detail: expect.stringMatching(/has replicas \(web1\)/) as unknown } });
    for (const url of ['/v1/tenants/initech/failover-plans/site', '/v1/tenants/initech/replicas/web1', '/v1/tenants/initech/networks/lan', '/v1/tenants/initech/subscriptions/std', '/v1/tenants/initech']) {
      expect((await call(e, a, 'DELETE', url)).status, url).toBe(204);
    }
    expect(e.appliance('initech').segments.size).toBe(0);
    expect((await call(e, a, 'GET', '/v1/tenants/initech')).status).toBe(404);
    expect((await call(e, a, 'DELETE', '/v1/hosts/h1')).json.detail).toMatch(/has VLAN pools/);
    expect((await call(e, a, 'GET', '/v1/replicas/power')).json).toEqual({ items: [] });
  });
});

describe('control API: bad input', () => {
  it('unknown fields, wrong types, __proto__, constructor.prototype, bad JSON: 400 naming the field; nothing changes', async () => {
    const e = await env();
    const before = dump(e.cp);
    const bad: [string, unknown, RegExp][] = [
      ['/v1/hosts/h2', { trunk: 'eth1', extra: 1 }, /body\.extra: unknown field/],
      ['/v1/hosts/h2', { trunk: 7 }, /body\.trunk: must be string/],
      ['/v1/hosts/h2', {}, /body\.trunk: required/],
      ['/v1/plans/p2', { cpu: '8', memoryGb: 1, storageGb: 1, networksWithInternet: 1, networksWithoutInternet: 0, publicIps: 0 }, /body\.cpu: must be integer/],
      ['/v1/hosts/H_2', { trunk: 'eth1' }, /params\.name: must match pattern/],
      ['/v1/tenants/acme/networks/n2', { subnet: '10.9.0.0/24', gateway: '10.9.0.1', vlan: 100, mode: 'extend' }, /body\.mode: unknown field/],
    ];
    for (const [url, body, re] of bad) {
      const r = await call(e, e.admin, 'PUT', url, body);
      expect([r.status, r.json.code], url).toEqual([400, 'INVALID_INPUT']);
      expect(r.json.detail, url).toMatch(re);
    }
    for (const payload of ['{"__proto__":{"admin":true},"trunk":"eth1"}', '{"trunk":"eth1","constructor":{"prototype":{"x":1}}}', '{"trunk":', '']) {
      const r = await e.app.inject({ method: 'PUT', url: '/v1/hosts/h2', headers: { authorization: `Bearer ${e.admin}`, 'content-type': 'application/json' }, payload });
      expect(r.statusCode, payload).toBe(400);
      expect(r.json<{ code: string }>().code).toBe('INVALID_INPUT');
    }
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    const text = await e.app.inject({ method: 'PUT', url: '/v1/hosts/h2', headers: { authorization: `Bearer ${e.admin}`, 'content-type': 'text/plain' }, payload: 'trunk=eth1' });
    expect([text.statusCode, text.json<{ code: string }>().code]).toEqual([415, 'API_UNSUPPORTED_MEDIA_TYPE']);
    expect(await call(e, e.admin, 'GET', '/v1/jobs?limit=0')).toMatchObject({ status: 400 });
    expect(await call(e, e.admin, 'GET', '/v1/jobs?colour=red')).toMatchObject({ status: 400, json: { detail: expect.stringMatching(/querystring\.colour: unknown field/) as unknown } });
    expect(await call(e, e.admin, 'GET', '/v1/nothing')).toMatchObject({ status: 404, json: { code: 'API_NOT_FOUND' } });
    expect(await call(e, e.admin, 'POST', '/v1/tenants/acme/failover', { kind: 'partial', vms: ['web1', 'web1'] })).toMatchObject({ status: 400 });
    expect(dump(e.cp)).toBe(before);
  });

  it('a body over the limit is 413; too many requests are 429', async () => {
    const e = await env({ bodyLimit: 1024, rateLimit: { max: 5, windowMs: 60_000 } });
    const big = await call(e, e.admin, 'PUT', '/v1/hosts/h2', { trunk: 'eth1', description: 'x'.repeat(2000) });
    expect([big.status, big.json.code]).toEqual([413, 'API_BODY_TOO_LARGE']);
    let last = 0;
    for (let i = 0; i < 6; i++) last = (await call(e, undefined, 'GET', '/v1/health')).status;
    expect(last).toBe(429);
  });

  it('a change the records or the SP appliance refuse leaves the database as it was, and is audited', async () => {
    const e = await env();
    const before = dump(e.cp);
    expect(await call(e, e.admin, 'PUT', '/v1/vlan-pools/more', { host: 'h1', first: 105, last: 120, internet: true })).toMatchObject({ status: 409, json: { code: 'CONTROL_CONFLICT', detail: expect.stringMatching(/overlap pool inet/) as unknown } });
    expect(lastAudit(e.cp)).toMatchObject({ actor: 'sp-ops', action: 'vlan-pool.put', target: 'more', outcome: 'CONTROL_CONFLICT' });
    expect(await call(e, e.admin, 'PUT', '/v1/tenants/acme/subscriptions/std', { host: 'h2' })).toMatchObject({ status: 404 });
    e.appliance('acme').failures.set('PUT /v1/segments/100', 1);
    expect(await call(e, e.acme, 'PUT', '/v1/tenants/acme/networks/lan', { subnet: '10.1.0.0/24', gateway: '10.1.0.254', vlan: 100 })).toMatchObject({ status: 502, json: { code: 'CONTROL_APPLIANCE_FAILED' } });
    expect(lastAudit(e.cp)).toMatchObject({ actor: 'acme-ops', action: 'network.put', tenant: 'acme', outcome: 'CONTROL_APPLIANCE_FAILED' });
    expect(await call(e, e.acme, 'PUT', '/v1/tenants/acme/networks/x', { subnet: '10.1.0.0/25', gateway: '10.1.0.1', vlan: 100 })).toMatchObject({ status: 409 });
    expect(await call(e, e.admin, 'PUT', '/v1/ip-pools/p2', { first: '198.51.100.300', last: '198.51.100.1' })).toMatchObject({ status: 400 });
    expect(dump(e.cp)).toBe(before);
  });
});
