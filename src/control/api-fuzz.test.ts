/**
 * Property-based fuzzing of every route of the control plane's API, from
 * the route's own schemas (the OpenAPI document the app serves): requests
 * drawn from the schemas — with names, addresses and VLANs that exist often
 * enough to get past the records' checks — then mutated (unknown fields,
 * missing fields, wrong types, random JSON, junk path parameters and query
 * strings, `__proto__`), with an admin token, either tenant's token, a junk
 * token or none. Over a control plane with the fake hypervisor and fake SP
 * appliances, two tenants onboarded. Properties:
 *   - the answer is 2xx or 4xx, never 5xx; a 4xx is problem+json;
 *   - a refused request (4xx) changes nothing: the same records (every
 *     table but the audit log), the same SP appliances;
 *   - a tenant token never gets another tenant's items;
 *   - nothing pollutes Object.prototype.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/log.js';
import { buildControlApi } from './api.js';
import type { ControlPlane } from './control-plane.js';
import { makeKit, seedSp, seedTenant } from './testkit.js';

interface Schema {
  type?: string; anyOf?: Schema[]; const?: unknown; enum?: unknown[]; pattern?: string; minLength?: number; maxLength?: number;
  minimum?: number; maximum?: number; items?: Schema; minItems?: number; maxItems?: number; uniqueItems?: boolean;
  properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean | Schema;
}
interface Operation {
  parameters?: { in: string; name: string; schema: Schema; required?: boolean }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}

/** Values that mean something here, by field or parameter name (the schema alone would rarely hit an existing item). */
const BY_NAME: Record<string, unknown[]> = {
  tenant: ['acme', 'globex', 'nobody'],
  name: ['h1', 'inet', 'dark', 'pub', 'std', 'lan', 'db', 'web1', 'web2', 'db1', 'site', 'new1'],
  plan: ['std', 'site', 'nope'],
  host: ['h1', 'h9'],
  network: ['lan', 'db', 'none'],
  vm: ['web1', 'web2', 'db1', 'db2', 'ghost'],
  trunk: ['trunk0', 'eth1'],
  vlan: [100, 101, 200, 201, 150],
  first: [100, 105, 300, '198.51.100.10', '198.51.100.30', '203.0.113.1'],
  last: [109, 120, 310, '198.51.100.19', '198.51.100.40', '203.0.113.9'],
  subnet: ['10.1.0.0/24', '10.3.0.0/24', '10.2.0.0/24', '10.1.0.5/24'],
  gateway: ['10.1.0.1', '10.3.0.1', '10.2.0.1'],
  address: ['10.1.0.31/24', '10.3.0.11/24', '10.2.0.21/24'],
  publicAddress: ['198.51.100.10', '198.51.100.12', '198.51.100.14'],
  url: ['https://192.0.2.10:8443'],
  fingerprint: ['ab'.repeat(32)],
  endpoint: ['198.51.100.2:51820'],
  ttlSeconds: [600, 3600],
};

function draw(s: Schema, key?: string, extra: Record<string, unknown[]> = {}): fc.Arbitrary<unknown> {
  const base = fromSchema(s, extra);
  // Hints of the schema's type (and pattern) only: `first` is a VLAN in one body, an address in another.
  const hint = (key !== undefined ? extra[key] ?? BY_NAME[key] ?? [] : []).filter((x) =>
    (s.type === 'integer' && typeof x === 'number') || (s.type === 'string' && typeof x === 'string' && (s.pattern === undefined || new RegExp(s.pattern).test(x))));
  return hint.length > 0 ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...hint) }, { weight: 1, arbitrary: base }) : base;
}

function fromSchema(s: Schema, extra: Record<string, unknown[]>): fc.Arbitrary<unknown> {
  if (s.anyOf) return fc.oneof(...s.anyOf.map((x) => fromSchema(x, extra)));
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  switch (s.type) {
    case 'string': {
      const min = s.minLength ?? 0;
      const base = s.pattern !== undefined ? fc.stringMatching(new RegExp(s.pattern)) : fc.string({ minLength: min, maxLength: Math.max(min, Math.min(s.maxLength ?? 40, 40)) });
      return base.filter((x) => x.length >= min && x.length <= (s.maxLength ?? Infinity));
    }
    case 'integer': return fc.integer({ min: s.minimum ?? -1e6, max: Math.min(s.maximum ?? 1e6, 1e9) });
    case 'number': return fc.double({ noNaN: true });
    case 'boolean': return fc.boolean();
    case 'null': return fc.constant(null);
    case 'array': {
      const o = { minLength: s.minItems ?? 0, maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 3, 3)) };
      const item = s.items ? fromSchema(s.items, extra) : fc.jsonValue();
      return s.uniqueItems ? fc.uniqueArray(item, { ...o, selector: (x) => JSON.stringify(x) }) : fc.array(item, o);
    }
    case 'object': {
      const props = s.properties ?? {};
      const arbs = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, draw(v, k, extra)]));
      return fc.record(arbs, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    default: return fc.jsonValue();
  }
}

/** A valid body, or one mutated to be (probably) invalid. */
function bodyArb(s: Schema | undefined, extra: Record<string, unknown[]>): fc.Arbitrary<{ raw?: string; json?: unknown }> {
  const valid = s ? fromSchema(s, extra) : fc.constant(undefined);
  const mutated = valid.chain((v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fc.constant(v);
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj);
    return fc.oneof(
      fc.record({ k: fc.string({ minLength: 1, maxLength: 8 }), x: fc.jsonValue() }).map(({ k, x }) => ({ ...obj, [`u_${k}`]: x })),
      keys.length ? fc.constantFrom(...keys).map((k) => { const c = { ...obj }; Reflect.deleteProperty(c, k); return c; }) : fc.constant(obj),
      keys.length ? fc.tuple(fc.constantFrom(...keys), fc.jsonValue()).map(([k, x]) => ({ ...obj, [k]: x })) : fc.constant(obj),
    );
  });
  return fc.oneof(
    { weight: 8, arbitrary: valid.map((json) => ({ json })) },
    { weight: 4, arbitrary: mutated.map((json) => ({ json })) },
    { weight: 1, arbitrary: fc.jsonValue().map((json) => ({ json })) },
    { weight: 1, arbitrary: valid.map((v) => ({ raw: JSON.stringify(v ?? {}).replace(/^\{/, '{"__proto__":{"polluted":1},') })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 50 }).map((raw) => ({ raw })) },
  );
}

function paramArb(name: string, s: Schema, extra: Record<string, unknown[]>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: draw(s, name, extra).map(String) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 60 }) },
    { weight: 1, arbitrary: fc.constantFrom('..', '%00', 'a'.repeat(200), 'ACME', '-x') },
  );
}

/** Every table but the audit log. */
function dump(cp: ControlPlane): string {
  const tables = (cp.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit', 'sqlite_sequence') ORDER BY name").all() as { name: string }[]).map((t) => t.name);
  return JSON.stringify(tables.map((t) => [t, cp.db.prepare(`SELECT * FROM ${t}`).all()]));
}

describe('control API fuzzing from the route schemas (fast-check)', () => {
  it('every route answers 2xx or 4xx; a refused request changes nothing; a tenant token sees only its tenant', async () => {
    const kit = makeKit();
    seedSp(kit.cp);
    await seedTenant(kit.cp, 'acme');
    await seedTenant(kit.cp, 'globex');
    const tokens = {
      admin: kit.cp.createToken({ name: 'sp-ops', scope: 'admin' }),
      acme: kit.cp.createToken({ name: 'acme-ops', scope: 'tenant', tenant: 'acme' }),
      globex: kit.cp.createToken({ name: 'globex-ops', scope: 'tenant', tenant: 'globex' }),
    };
    const lines: string[] = [];
    const app = await buildControlApi({ cp: kit.cp, log: createLogger({ sink: (l) => lines.push(l) }), checkAppliance: false, rateLimit: { max: 1e9, windowMs: 60_000 } });
    await app.ready();
    const doc = app.swagger() as { paths: Record<string, Record<string, Operation>> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
    expect(routes.length).toBeGreaterThan(45);
    const appliances = (): string => JSON.stringify([...kit.appliances].map(([t, a]) => [t, a.snapshot()]));
    const seen = new Map<string, Set<number>>();
    for (const r of routes) {
      // Ids that exist now (tokens, jobs) are drawn often.
      const extra = { id: [...kit.cp.tokens().map((t) => t.id), ...kit.cp.jobs.list().map((j) => j.id), 'job-00000000'] };
      const pathParams = (r.op.parameters ?? []).filter((p) => p.in === 'path');
      const queryParams = (r.op.parameters ?? []).filter((p) => p.in === 'query');
      const body = r.op.requestBody?.content['application/json']?.schema;
      const arb = fc.record({
        params: fc.tuple(...pathParams.map((p) => paramArb(p.name, p.schema, extra))),
        query: fc.tuple(...queryParams.map((p) => fc.option(paramArb(p.name, p.schema, extra), { nil: undefined }))),
        junkQuery: fc.oneof({ weight: 9, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('&x=1', '&limit=-1', '&tenant=%00') }),
        body: bodyArb(body, extra),
        auth: fc.oneof({ weight: 5, arbitrary: fc.constant('admin') }, { weight: 4, arbitrary: fc.constantFrom('acme', 'globex') }, { weight: 1, arbitrary: fc.constantFrom('none', 'junk') }),
      });
      await fc.assert(fc.asyncProperty(arb, async (c) => {
        let url = r.path;
        pathParams.forEach((p, i) => { url = url.replace(`{${p.name}}`, encodeURIComponent(c.params[i]!)); });
        const q = queryParams.map((p, i) => (c.query[i] !== undefined ? `${p.name}=${encodeURIComponent(c.query[i])}` : '')).filter(Boolean).join('&') + c.junkQuery;
        if (q !== '') url += `?${q.replace(/^&/, '')}`;
        const before = { db: dump(kit.cp), appliances: appliances() };
        const headers: Record<string, string> = {};
        if (c.auth === 'admin' || c.auth === 'acme' || c.auth === 'globex') headers.authorization = `Bearer ${tokens[c.auth].token}`;
        if (c.auth === 'junk') headers.authorization = 'Bearer nea_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
        const hasBody = r.method === 'PUT' || r.method === 'POST';
        if (hasBody) headers['content-type'] = 'application/json';
        const payload = !hasBody ? undefined : c.body.raw ?? JSON.stringify(c.body.json ?? null);
        const res = await app.inject({ method: r.method as 'GET', url, headers, ...(payload !== undefined && { payload }) });
        const key = `${r.method} ${r.path}`;
        if (!seen.has(key)) seen.set(key, new Set());
        seen.get(key)!.add(res.statusCode);
        const what = `${c.auth} ${r.method} ${url} ${payload ?? ''} → ${res.statusCode} ${res.body.slice(0, 300)}`;
        expect(res.statusCode, what).toBeLessThan(500);
        expect(res.statusCode, what).toBeGreaterThanOrEqual(200);
        if (res.statusCode === 202) await kit.cp.waitJob(res.json<{ id: string }>().id);
        if (res.statusCode >= 400) {
          expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
          expect(dump(kit.cp), `${what}: changed the records`).toBe(before.db);
          expect(appliances(), `${what}: changed an SP appliance`).toBe(before.appliances);
        }
        // A tenant token gets nothing of the other tenant.
        if ((c.auth === 'acme' || c.auth === 'globex') && res.statusCode < 300 && r.method === 'GET') {
          const other = c.auth === 'acme' ? 'globex' : 'acme';
          expect(res.body, what).not.toMatch(new RegExp(`"(tenant|name)":"${other}"`));
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }), { numRuns: Number(process.env.NEA_FUZZ_RUNS ?? 100), seed: Number(process.env.NEA_FUZZ_SEED ?? 0xc0de), endOnFailure: true });
    }
    // The fuzzer reached past validation and the records' checks: writes succeeded on many routes.
    const ok = [...seen.entries()].filter(([k, s]) => /^(PUT|POST|DELETE)/.test(k) && [...s].some((code) => code < 300)).map(([k]) => k);
    if (process.env.NEA_FUZZ_DEBUG) console.error([...seen.entries()].map(([k, s]) => `${k}: ${[...s].sort().join(',')}`).join('\n'));
    expect(ok.length).toBeGreaterThanOrEqual(15);
    expect(lines.filter((l) => l.includes('API request failed'))).toEqual([]);
  }, 300_000);
});
