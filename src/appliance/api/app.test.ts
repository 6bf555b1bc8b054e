import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../dataplane/wg/crypto.js';
import { NeaError } from '../../shared/errors.js';
import { STATE_FILE } from '../state.js';
import { testApi, type TestApi } from './testkit.js';

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
const seg = { name: 'db', mode: 'extend', internet: false };
const stateBytes = (t: TestApi): string => readFileSync(join(t.dir, STATE_FILE), 'utf8');

describe('authentication', () => {
  it('health needs no token; everything else does (401 without, 401 wrong, 403 revoked)', async () => {
    const t = await testApi();
    expect((await t.app.inject({ url: '/v1/health' })).json()).toEqual({ status: 'ok' });
    const none = await t.app.inject({ url: '/v1/status' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(none.json()).toMatchObject({ code: 'API_AUTH_REQUIRED', status: 401 });
    for (const h of ['Bearer nope', `Bearer ${t.admin.slice(0, -1)}x`, `Basic ${t.admin}`, `Bearer ${t.admin} `]) {
      const r = await t.app.inject({ url: '/v1/status', headers: { authorization: h } });
      expect(r.statusCode, h).toBe(401);
      expect(r.json<{ code: string }>().code).toBe('API_AUTH_INVALID');
    }
    expect((await t.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/v1/status', headers: bearer(t.admin) })).statusCode).toBe(200);
  });

  it('a revoked token is refused from its next request on; replaying it stays refused', async () => {
    const t = await testApi();
    const created = await t.app.inject({ method: 'POST', url: '/v1/api-tokens', headers: bearer(t.admin), payload: { name: 'ctl', scope: 'admin' } });
    expect(created.statusCode).toBe(201);
    const { id, token } = created.json<{ id: string; token: string }>();
    expect((await t.app.inject({ url: '/v1/desired', headers: bearer(token) })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'DELETE', url: `/v1/api-tokens/${id}`, headers: bearer(t.admin) })).statusCode).toBe(204);
    for (let i = 0; i < 3; i++) {
      const r = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(token), payload: seg });
      expect(r.statusCode).toBe(403);
      expect(r.json<{ code: string }>().code).toBe('API_TOKEN_REVOKED');
    }
    expect(t.manager.snapshot().desired.segments.map((s) => s.id)).toEqual([10, 20]);
    // The listing shows the revocation, never a secret.
    const list = await t.app.inject({ url: '/v1/api-tokens', headers: bearer(t.admin) });
    expect(list.body).not.toContain(token.split('_').at(-1));
    expect(list.json<{ items: { id: string; revokedAt?: string }[] }>().items.find((x) => x.id === id)?.revokedAt).toBeDefined();
    // Only the hash is stored.
    expect(stateBytes(t)).not.toContain(token.split('_').at(-1));
  });

  it('a read token reads but may not write (403)', async () => {
    const t = await testApi();
    expect((await t.app.inject({ url: '/v1/segments', headers: bearer(t.reader) })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/metrics', headers: bearer(t.reader) })).statusCode).toBe(200);
    const r = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(t.reader), payload: seg });
    expect(r.statusCode).toBe(403);
    expect(r.json<{ code: string }>().code).toBe('API_FORBIDDEN');
  });

  it('no secret reaches the log', async () => {
    const t = await testApi();
    const c = await t.app.inject({ method: 'POST', url: '/v1/api-tokens', headers: bearer(t.admin), payload: { name: 'ctl', scope: 'read' } });
    const p = await t.app.inject({ method: 'POST', url: '/v1/pairing-tokens', headers: bearer(t.admin), payload: { segments: [10], ttlSeconds: 600 } });
    const psk = encodeKey(generatePrivateKey());
    await t.app.inject({ method: 'PUT', url: `/v1/peers/${encodeURIComponent(encodeKey(publicKeyOf(generatePrivateKey())))}`, headers: bearer(t.admin), payload: { segments: [10], presharedKey: psk } });
    const log = t.lines.join('\n');
    expect(log).toMatch(/API token issued/);
    expect(log).toMatch(/pairing token minted/);
    for (const secret of [c.json<{ token: string }>().token, p.json<{ token: string }>().token, psk, t.admin]) {
      expect(log).not.toContain(secret);
      expect(log).not.toContain(secret.slice(-20));
    }
  });
});

describe('desired-state resources', () => {
  it('PUT is idempotent: the same body twice is one change, one version, one ETag', async () => {
    const t = await testApi();
    const r1 = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(t.admin), payload: seg });
    expect(r1.statusCode).toBe(201);
    const v = t.store.version;
    const applied = t.control.applied.length;
    const r2 = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(t.admin), payload: seg });
    expect(r2.statusCode).toBe(200);
    expect(r2.headers.etag).toBe(r1.headers.etag);
    expect(t.store.version).toBe(v);
    expect(t.control.applied.length).toBe(applied);
    expect(t.lines.filter((l) => l.includes('item=segment:30'))).toHaveLength(1);
  });

  it('ETag / If-Match: a writer with a stale version gets 412 and changes nothing', async () => {
    const t = await testApi();
    const g = await t.app.inject({ url: '/v1/segments/10', headers: bearer(t.admin) });
    const etag = g.headers.etag as string;
    expect(etag).toMatch(/^"\d+"$/);
    const a = await t.app.inject({ method: 'PUT', url: '/v1/segments/10', headers: { ...bearer(t.admin), 'if-match': etag }, payload: { ...seg, name: 'writer-a' } });
    expect(a.statusCode).toBe(200);
    expect(a.headers.etag).not.toBe(etag);
    const before = stateBytes(t);
    const b = await t.app.inject({ method: 'PUT', url: '/v1/segments/10', headers: { ...bearer(t.admin), 'if-match': etag }, payload: { ...seg, name: 'writer-b' } });
    expect(b.statusCode).toBe(412);
    expect(b.json<{ code: string }>().code).toBe('API_PRECONDITION_FAILED');
    expect(stateBytes(t)).toBe(before);
    expect((await t.app.inject({ url: '/v1/segments/10', headers: bearer(t.admin) })).json<{ name: string }>().name).toBe('writer-a');
    // If-None-Match: * creates only.
    expect((await t.app.inject({ method: 'PUT', url: '/v1/segments/10', headers: { ...bearer(t.admin), 'if-none-match': '*' }, payload: seg })).statusCode).toBe(412);
    expect((await t.app.inject({ method: 'PUT', url: '/v1/segments/40', headers: { ...bearer(t.admin), 'if-none-match': '*' }, payload: seg })).statusCode).toBe(201);
    // The whole desired state has its own ETag.
    const d = await t.app.inject({ url: '/v1/desired', headers: bearer(t.admin) });
    const body = d.json<Record<string, unknown>>();
    Reflect.deleteProperty(body, 'version');
    expect((await t.app.inject({ method: 'PUT', url: '/v1/desired', headers: { ...bearer(t.admin), 'if-match': '"1"' }, payload: body })).statusCode).toBe(412);
    expect((await t.app.inject({ method: 'PUT', url: '/v1/desired', headers: { ...bearer(t.admin), 'if-match': d.headers.etag as string }, payload: body })).statusCode).toBe(200);
  });

  it('peers, public rules and routing: create, read, delete; a segment in use cannot be deleted (409)', async () => {
    const t = await testApi();
    const k = encodeKey(publicKeyOf(generatePrivateKey()));
    const url = `/v1/peers/${encodeURIComponent(k)}`;
    const put = await t.app.inject({ method: 'PUT', url, headers: bearer(t.admin), payload: { segments: [10], endpoint: '192.0.2.9:51820', presharedKey: encodeKey(generatePrivateKey()) } });
    expect(put.statusCode).toBe(201);
    expect(put.json()).toEqual({ publicKey: k, segments: [10], endpoint: '192.0.2.9:51820', hasPresharedKey: true });
    // base64url in the path names the same peer.
    expect((await t.app.inject({ url: `/v1/peers/${Buffer.from(k, 'base64').toString('base64url')}`, headers: bearer(t.admin) })).statusCode).toBe(200);
    const rule = { kind: 'port', segment: 10, publicAddress: '203.0.113.5', protocol: 'tcp', publicPort: 443, target: '198.51.100.10', targetPort: 8443 };
    expect((await t.app.inject({ method: 'PUT', url: '/v1/public-rules/web', headers: bearer(t.admin), payload: rule })).statusCode).toBe(201);
    expect((await t.app.inject({ method: 'PUT', url: '/v1/routing', headers: bearer(t.admin), payload: { betweenSegments: true } })).json()).toEqual({ betweenSegments: true });
    const del = await t.app.inject({ method: 'DELETE', url: '/v1/segments/10', headers: bearer(t.admin) });
    expect(del.statusCode).toBe(409);
    expect(del.json<{ detail: string }>().detail).toMatch(/carried by peer/);
    expect((await t.app.inject({ method: 'DELETE', url, headers: bearer(t.admin) })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'DELETE', url, headers: bearer(t.admin) })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/segments/10', headers: bearer(t.admin) })).json<{ detail: string }>().detail).toMatch(/public rule web/);
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/public-rules/web', headers: bearer(t.admin) })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/segments/10', headers: bearer(t.admin) })).statusCode).toBe(204);
    expect(t.control.applied.at(-1)?.segments.map((s) => s.id)).toEqual([20]);
  });

  it('a change the appliance refuses is a 4xx and changes nothing; a failure of the appliance is a 5xx and counted', async () => {
    const t = await testApi();
    const before = stateBytes(t);
    const r = await t.app.inject({ method: 'PUT', url: '/v1/public-rules/ssh', headers: bearer(t.admin), payload: { kind: 'port', segment: 10, publicAddress: '203.0.113.5', protocol: 'tcp', publicPort: 22, target: '198.51.100.10' } });
    expect(r.statusCode).toBe(400);
    expect(r.json<{ detail: string }>().detail).toMatch(/port 22/);
    expect(stateBytes(t)).toBe(before);
    t.control.failWith = new NeaError('NFT_APPLY_FAILED', 'nft: syntax error');
    const f = await t.app.inject({ method: 'PUT', url: '/v1/routing', headers: bearer(t.admin), payload: { betweenSegments: true } });
    expect(f.statusCode).toBe(500);
    expect(f.json<{ code: string }>().code).toBe('NFT_APPLY_FAILED');
    expect(stateBytes(t)).toBe(before);
    const m = await t.app.inject({ url: '/metrics', headers: bearer(t.admin) });
    expect(m.body).toMatch(/^nea_reconcile_errors_total 2$/m);
    expect((await t.app.inject({ url: '/v1/status', headers: bearer(t.admin) })).json()).toMatchObject({ reconcileErrors: 2, lastReconcileError: 'nft: syntax error' });
  });

  it('semantic refusals name the item and field', async () => {
    const t = await testApi();
    const r = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(t.admin), payload: { ...seg, mode: 'gateway' } });
    expect(r.statusCode).toBe(400);
    expect(r.json<{ detail: string }>().detail).toBe('segment 30: gateway: a segment in gateway mode needs the production gateway address (gateway.ipv4 and/or gateway.ipv6)');
    const p = await t.app.inject({ method: 'PUT', url: `/v1/peers/${'A'.repeat(43)}=`, headers: bearer(t.admin), payload: { segments: [10] } });
    expect(p.json<{ detail: string }>().detail).toMatch(/publicKey: is a low-order X25519 point/);
  });
});

describe('hardening', () => {
  it('unknown fields, wrong types, __proto__, constructor.prototype, bad JSON: 400 naming the field; nothing changes', async () => {
    const t = await testApi();
    const before = stateBytes(t);
    const cases: [string, string, RegExp][] = [
      [JSON.stringify({ ...seg, color: 'red' }), 'application/json', /^body\.color: unknown field$/],
      [JSON.stringify({ ...seg, internet: 'yes' }), 'application/json', /^body\.internet: must be boolean$/],
      [JSON.stringify({ ...seg, mode: undefined }), 'application/json', /^body\.mode: required$/],
      ['{"name":"x","mode":"extend","internet":false,"__proto__":{"admin":true}}', 'application/json', /prototype/i],
      ['{"name":"x","mode":"extend","internet":false,"constructor":{"prototype":{"admin":true}}}', 'application/json', /prototype|constructor/i],
      ['{"name":', 'application/json', /JSON/],
    ];
    for (const [payload, type, re] of cases) {
      const r = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: { ...bearer(t.admin), 'content-type': type }, payload });
      expect(r.statusCode, payload).toBe(400);
      expect(r.json<{ detail: string; code: string }>().detail, payload).toMatch(re);
      expect(r.json<{ code: string }>().code).toBe('INVALID_INPUT');
    }
    const wrongType = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: { ...bearer(t.admin), 'content-type': 'text/plain' }, payload: 'hello' });
    expect(wrongType.statusCode).toBe(415);
    expect((await t.app.inject({ method: 'PUT', url: '/v1/segments/5000', headers: bearer(t.admin), payload: seg })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'PUT', url: '/v1/segments/x', headers: bearer(t.admin), payload: seg })).statusCode).toBe(400);
    expect(stateBytes(t)).toBe(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('a body over the limit is answered 413', async () => {
    const t = await testApi({ api: { bodyLimit: 1024 } });
    const r = await t.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(t.admin), payload: { ...seg, name: 'x'.repeat(2000) } });
    expect(r.statusCode).toBe(413);
    expect(r.json<{ code: string }>().code).toBe('API_BODY_TOO_LARGE');
  });

  it('a client over the rate limit gets 429 with retry-after; unauthenticated floods count too', async () => {
    const t = await testApi({ api: { rateLimit: { max: 5, windowMs: 60_000 } } });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await t.app.inject({ url: '/v1/status', headers: bearer(i % 2 ? t.admin : 'wrong') })).statusCode);
    expect(codes.slice(0, 5).every((c) => c === 200 || c === 401)).toBe(true);
    expect(codes.slice(5)).toEqual([429, 429, 429]);
    const r = await t.app.inject({ url: '/v1/status', headers: bearer(t.admin) });
    expect(r.json<{ code: string }>().code).toBe('API_RATE_LIMITED');
    expect(r.headers['retry-after']).toBeDefined();
    // Another client is unaffected.
    expect((await t.app.inject({ url: '/v1/status', headers: bearer(t.admin), remoteAddress: '192.0.2.77' })).statusCode).toBe(200);
  });

  it('unknown routes are a problem 404', async () => {
    const t = await testApi();
    const r = await t.app.inject({ url: '/v1/nope', headers: bearer(t.admin) });
    expect(r.statusCode).toBe(404);
    expect(r.json<{ code: string }>().code).toBe('API_NOT_FOUND');
  });
});

describe('status, metrics, OpenAPI', () => {
  it('status shows peers with handshake and counters, segments with modes, rules with hits', async () => {
    const t = await testApi();
    const k = encodeKey(publicKeyOf(generatePrivateKey()));
    await t.app.inject({ method: 'PUT', url: `/v1/peers/${encodeURIComponent(k)}`, headers: bearer(t.admin), payload: { name: 'tenant-a', segments: [10] } });
    await t.app.inject({ method: 'PUT', url: '/v1/public-rules/web', headers: bearer(t.admin), payload: { kind: 'address', segment: 10, publicAddress: '203.0.113.5', target: '198.51.100.10' } });
    const s = (await t.app.inject({ url: '/v1/status', headers: bearer(t.admin) })).json<Record<string, unknown>>();
    expect(s).toMatchObject({
      name: 'sp-a', role: 'sp', publicKey: t.control.publicKey(), listenPort: 51820,
      peers: [{ publicKey: k, name: 'tenant-a', up: true, lastHandshakeAgoMs: 1200, handshakes: 1, counters: { rxBytes: 1000, txBytes: 1300 } }],
      segments: [{ id: 10, name: 'servers', mode: 'extend', internet: false, toTunnel: 5 }, { id: 20, mode: 'extend' }],
      publicRules: [{ name: 'web', kind: 'address', hits: { packets: 7, bytes: 700 } }],
    });
  });

  it('metrics: Prometheus text with tunnel, drops, NAT hits and reconcile families', async () => {
    const t = await testApi();
    const k = encodeKey(publicKeyOf(generatePrivateKey()));
    await t.app.inject({ method: 'PUT', url: `/v1/peers/${encodeURIComponent(k)}`, headers: bearer(t.admin), payload: { name: 'tenant "a"', segments: [10] } });
    await t.app.inject({ method: 'PUT', url: '/v1/public-rules/web', headers: bearer(t.admin), payload: { kind: 'address', segment: 10, publicAddress: '203.0.113.5', target: '198.51.100.10' } });
    const r = await t.app.inject({ url: '/metrics', headers: bearer(t.admin) });
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = r.body;
    expect(body).toContain(`nea_tunnel_peer_up{peer="${k}",name="tenant \\"a\\""} 1`);
    expect(body).toContain(`nea_tunnel_handshakes_total{peer="${k}",name="tenant \\"a\\""} 1`);
    expect(body).toContain(`nea_tunnel_drops_total{scope="peer",peer="${k}",name="tenant \\"a\\"",reason="segment-not-owned"} 2`);
    expect(body).toContain('nea_tunnel_drops_total{scope="unauthenticated",peer="",name="",reason="bad-mac1"} 3');
    expect(body).toContain('nea_segment_frames_total{segment="10",direction="to_tunnel"} 5');
    expect(body).toContain('nea_nat_rule_hits_packets_total{rule="web"} 7');
    expect(body).toMatch(/^nea_reconcile_errors_total 0$/m);
    expect(body).toMatch(/^# TYPE nea_tunnel_rx_bytes_total counter$/m);
    // Every sample line is `name{labels} number`.
    for (const line of body.trim().split('\n').filter((l) => !l.startsWith('#'))) expect(line).toMatch(/^[a-z_]+(\{.*\})? -?\d+(\.\d+)?(e[+-]?\d+)?$/);
  });

  it('serves its OpenAPI document with every route', async () => {
    const t = await testApi();
    const doc = (await t.app.inject({ url: '/v1/openapi.json' })).json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining([
      '/v1/health', '/v1/status', '/metrics', '/v1/desired', '/v1/segments/{id}', '/v1/public-rules/{name}', '/v1/peers/{publicKey}',
      '/v1/routing', '/v1/api-tokens', '/v1/pairing-tokens', '/v1/pairing/redeem', '/v1/pairings',
    ]));
  });
});
