/**
 * Property-based fuzzing of every route, from the route's own schemas (the
 * OpenAPI document the app serves): requests drawn from the schemas, then
 * mutated (unknown fields, missing fields, wrong types, random JSON, junk
 * path parameters, `__proto__`, bad tokens). Properties:
 *   - the answer is 2xx or 4xx, never 5xx;
 *   - a refused request (4xx) changes nothing: same state file bytes, same
 *     version, nothing applied to the appliance.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../dataplane/wg/crypto.js';
import { STATE_FILE } from '../state.js';
import { SP_BASE_CONFIG, testApi, type TestApi } from './testkit.js';

interface Schema {
  type?: string; anyOf?: Schema[]; const?: unknown; enum?: unknown[]; pattern?: string; minLength?: number; maxLength?: number;
  minimum?: number; maximum?: number; items?: Schema; minItems?: number; maxItems?: number; uniqueItems?: boolean;
  properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean | Schema;
}
interface Operation {
  parameters?: { in: string; name: string; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}
interface Route { method: string; path: string; op: Operation }

const VALID_KEYS = Array.from({ length: 4 }, () => encodeKey(publicKeyOf(generatePrivateKey())));

/** Schema patterns → values that also mean something (the schema alone would draw 923.452.703.8). */
const HINTS: [RegExp, string[]][] = [
  [/\{43\}/, VALID_KEYS],
  [/^\^\\d\{1,3\}\(\\\.\\d\{1,3\}\)\{3\}\/\\d\{1,2\}\$$/, ['10.1.0.1/24', '198.51.100.1/24']],
  [/^\^\[0-9a-fA-F:\]\+\//, ['fd00:1::1/64']],
  [/^\^\[0-9a-fA-F:.\]\+\$$/, ['203.0.113.5', '198.51.100.10', '2001:db8::5']],
  [/^\^\[0-9a-fA-F:.\]\+\//, ['10.0.0.0/8', '2001:db8::/32']],
  [/\\d\{1,5\}\$$/, ['192.0.2.1:51820', '[2001:db8::1]:51820']],
];

/** Values valid for `s` (as far as a schema can say). */
export function fromSchema(s: Schema): fc.Arbitrary<unknown> {
  if (s.anyOf) return fc.oneof(...s.anyOf.map(fromSchema));
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  switch (s.type) {
    case 'string': {
      // Meaningful values often (real keys, addresses), so requests also get past validation and change things.
      const hint = HINTS.find(([re]) => s.pattern !== undefined && re.test(s.pattern));
      if (hint && s.pattern !== undefined) return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...hint[1]) }, { weight: 1, arbitrary: fc.stringMatching(new RegExp(s.pattern)) });
      const min = s.minLength ?? 0;
      const base = s.pattern ? fc.stringMatching(new RegExp(s.pattern)) : fc.string({ minLength: min, maxLength: Math.max(min, Math.min(s.maxLength ?? 40, 40)) });
      return base.filter((x) => x.length >= (s.minLength ?? 0) && x.length <= (s.maxLength ?? Infinity));
    }
    case 'integer':
      // Segment ids: mostly the ones that exist.
      if (s.maximum === 4094) return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(10, 20) }, { weight: 1, arbitrary: fc.integer({ min: s.minimum ?? 1, max: 4094 }) });
      return fc.integer({ min: s.minimum ?? -1e6, max: Math.min(s.maximum ?? 1e6, 1e9) });
    case 'number': return fc.double({ noNaN: true });
    case 'boolean': return fc.boolean();
    case 'null': return fc.constant(null);
    case 'array': {
      const o = { minLength: s.minItems ?? 0, maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 4, 4)) };
      const item = s.items ? fromSchema(s.items) : fc.jsonValue();
      return s.uniqueItems ? fc.uniqueArray(item, { ...o, selector: (x) => JSON.stringify(x) }) : fc.array(item, o);
    }
    case 'object': {
      const props = s.properties ?? {};
      const arbs = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, fromSchema(v)]));
      return fc.record(arbs, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    default: return fc.jsonValue();
  }
}

/** A valid value, or one mutated to be (probably) invalid. */
function bodyArb(s: Schema | undefined): fc.Arbitrary<{ raw?: string; json?: unknown }> {
  const valid = s ? fromSchema(s) : fc.constant(undefined);
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

function paramArb(s: Schema): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fromSchema(s).map(String) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 60 }) },
    { weight: 1, arbitrary: fc.constantFrom('0', '4095', '99999', '-1', '..', '%00', 'a'.repeat(200)) },
  );
}

async function routesOf(t: TestApi): Promise<Route[]> {
  await t.app.ready();
  const doc = t.app.swagger() as { paths: Record<string, Record<string, Operation>> };
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
}

function stateBytes(t: TestApi): string {
  return readFileSync(join(t.dir, STATE_FILE), 'utf8');
}

async function fuzz(role: 'sp' | 'tenant', daemonConfig?: unknown): Promise<void> {
  const t = await testApi({ role, api: { rateLimit: { max: 1e9, windowMs: 60_000 }, redeemRateMax: 1e9 }, ...(daemonConfig !== undefined && { daemonConfig }) });
  const routes = await routesOf(t);
  expect(routes.length).toBeGreaterThan(20);
  const seen = new Map<string, Set<number>>();
  for (const r of routes) {
    if (process.env.NEA_FUZZ_DEBUG) console.error('fuzz', r.method, r.path);
    const pathParams = (r.op.parameters ?? []).filter((p) => p.in === 'path');
    const body = r.op.requestBody?.content['application/json']?.schema;
    const arb = fc.record({
      params: fc.tuple(...pathParams.map((p) => paramArb(p.schema))),
      body: bodyArb(body),
      auth: fc.oneof({ weight: 8, arbitrary: fc.constant('admin') }, { weight: 1, arbitrary: fc.constantFrom('none', 'junk', 'reader') }),
      ifMatch: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('"1"', '"2"', '*', 'garbage', '"999"') }),
    });
    await fc.assert(fc.asyncProperty(arb, async (c) => {
      let url = r.path;
      pathParams.forEach((p, i) => { url = url.replace(`{${p.name}}`, encodeURIComponent(c.params[i]!)); });
      const before = { bytes: stateBytes(t), version: t.store.version, applied: t.control.applied.length };
      const headers: Record<string, string> = {};
      if (c.auth === 'admin') headers.authorization = `Bearer ${t.admin}`;
      if (c.auth === 'reader') headers.authorization = `Bearer ${t.reader}`;
      if (c.auth === 'junk') headers.authorization = 'Bearer nea_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
      if (c.ifMatch !== undefined) headers['if-match'] = c.ifMatch;
      const hasBody = r.method === 'PUT' || r.method === 'POST';
      if (hasBody) headers['content-type'] = 'application/json';
      const payload = !hasBody ? undefined : c.body.raw ?? JSON.stringify(c.body.json ?? null);
      const res = await t.app.inject({ method: r.method as 'GET', url, headers, ...(payload !== undefined && { payload }) });
      const key = `${r.method} ${r.path}`;
      if (!seen.has(key)) seen.set(key, new Set());
      seen.get(key)!.add(res.statusCode);
      expect(res.statusCode, `${r.method} ${url} ${payload ?? ''} → ${res.body}`).toBeLessThan(500);
      expect(res.statusCode).toBeGreaterThanOrEqual(200);
      if (process.env.NEA_FUZZ_DEBUG && r.method === "PUT" && res.statusCode === 400) console.error("D", url, payload, res.json<{ detail: string }>().detail);
      if (res.statusCode >= 400) {
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(stateBytes(t), `${r.method} ${url} changed state`).toBe(before.bytes);
        expect(t.store.version).toBe(before.version);
        expect(t.control.applied.length).toBe(before.applied);
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    }), { numRuns: Number(process.env.NEA_FUZZ_RUNS ?? 100), seed: Number(process.env.NEA_FUZZ_SEED ?? 0x6ea) + (role === 'sp' ? 1 : 2) + (daemonConfig === undefined ? 0 : 2), endOnFailure: true });
  }
  // The fuzzer reached past validation: some writes succeeded.
  const ok = [...seen.entries()].filter(([k, s]) => /^(PUT|POST)/.test(k) && [...s].some((c) => c < 300)).map(([k]) => k);
  if (process.env.NEA_FUZZ_DEBUG) console.error([...seen.entries()].map(([k, s]) => `${k}: ${[...s].join(",")}`).join("\n"));
  expect(ok.length).toBeGreaterThanOrEqual(4);
}

describe('API fuzzing from the route schemas (fast-check)', () => {
  it('SP appliance: every route answers 2xx or 4xx, and a refused request changes nothing', async () => { await fuzz('sp'); }, 120_000);
  it('tenant appliance: the same', async () => { await fuzz('tenant'); }, 120_000);
  it('SP appliance through the real DaemonControl (config mapping, the config parser\'s rules, run-time rules): the same', async () => {
    await fuzz('sp', SP_BASE_CONFIG);
  }, 120_000);
});
