import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../dataplane/wg/crypto.js';
import { decodePairingToken, sha256Hex } from '../credentials.js';
import { redeemVia, testApi, type TestApi } from './testkit.js';

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

async function pair(opts: { now?: () => Date } = {}): Promise<{ sp: TestApi; tenant: TestApi }> {
  const sp = await testApi({ role: 'sp', name: 'sp-a', ...opts });
  const tenant = await testApi({ role: 'tenant', name: 'tenant-a', redeem: redeemVia(() => sp.app), ...opts });
  return { sp, tenant };
}

async function mint(sp: TestApi, body: Record<string, unknown> = { segments: [10, 20], ttlSeconds: 600 }): Promise<{ id: string; token: string }> {
  const r = await sp.app.inject({ method: 'POST', url: '/v1/pairing-tokens', headers: bearer(sp.admin), payload: body });
  expect(r.statusCode).toBe(201);
  return r.json();
}

const tenantKey = (): string => encodeKey(publicKeyOf(generatePrivateKey()));

describe('pairing', () => {
  it('a token brings both sides to know each other: the SP gets the tenant as a peer, the tenant the SP with its endpoint', async () => {
    const { sp, tenant } = await pair();
    const { token } = await mint(sp);
    const r = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } });
    expect(r.statusCode).toBe(200);
    expect(sp.manager.snapshot().desired.peers).toEqual([{ publicKey: tenant.control.publicKey(), segments: [10, 20], name: 'tenant-a' }]);
    expect(tenant.manager.snapshot().desired.peers).toEqual([{
      publicKey: sp.control.publicKey(), name: 'sp-a', endpoint: '192.0.2.2:51820', segments: [10, 20], persistentKeepalive: 25,
    }]);
    expect(sp.control.applied.at(-1)?.peers).toHaveLength(1);
    expect(tenant.control.applied.at(-1)?.peers).toHaveLength(1);
    const list = (await sp.app.inject({ url: '/v1/pairing-tokens', headers: bearer(sp.admin) })).json<{ items: { state: string; usedBy: string }[] }>();
    expect(list.items).toEqual([expect.objectContaining({ state: 'used', usedBy: tenant.control.publicKey() })]);
    expect(sp.lines.join('\n')).toMatch(/pairing token redeemed .*peer=/);
  });

  it('the token carries the SP endpoint, API URL, certificate fingerprint and key, signed; only its hash is stored', async () => {
    const { sp } = await pair();
    const { token, id } = await mint(sp);
    const p = decodePairingToken(token);
    expect(p).toMatchObject({ id, ep: '192.0.2.2:51820', api: 'https://192.0.2.2:8443', fp: 'ab'.repeat(32), sp: sp.control.publicKey(), seg: [10, 20] });
    const files = readdirSync(sp.dir).filter((f) => f.startsWith('state.json')).map((f) => readFileSync(join(sp.dir, f), 'utf8')).join('\n');
    expect(files).not.toContain(p.s);
    expect(files).not.toContain(token);
    expect(files).toContain(sha256Hex(p.s));
  });

  it('single use: a second redemption is refused (410 PAIRING_TOKEN_USED), also from another key', async () => {
    const { sp, tenant } = await pair();
    const { token } = await mint(sp);
    expect((await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } })).statusCode).toBe(200);
    const again = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } });
    expect(again.statusCode).toBe(410);
    expect(again.json<{ code: string }>().code).toBe('PAIRING_TOKEN_USED');
    const other = await sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token, publicKey: tenantKey() } });
    expect(other.statusCode).toBe(410);
    expect(sp.manager.snapshot().desired.peers).toHaveLength(1);
  });

  it('two concurrent redemptions: exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      const { sp } = await pair();
      const { token } = await mint(sp);
      const keys = Array.from({ length: 8 }, tenantKey);
      const rs = await Promise.all(keys.map((k) => sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token, publicKey: k } })));
      const codes = rs.map((r) => r.statusCode).sort();
      expect(codes).toEqual([200, 410, 410, 410, 410, 410, 410, 410]);
      const winner = keys[rs.findIndex((r) => r.statusCode === 200)]!;
      expect(sp.manager.snapshot().desired.peers.map((p) => p.publicKey)).toEqual([winner]);
    }
  });

  it('an expired token is refused, by the tenant before it calls the SP and by the SP', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const { sp, tenant } = await pair({ now: () => now });
    const { token } = await mint(sp, { segments: [10], ttlSeconds: 60 });
    now = new Date('2026-01-01T00:01:01Z');
    const t = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } });
    expect(t.statusCode).toBe(410);
    expect(t.json<{ code: string }>().code).toBe('PAIRING_TOKEN_EXPIRED');
    const s = await sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token, publicKey: tenantKey() } });
    expect(s.json<{ code: string }>().code).toBe('PAIRING_TOKEN_EXPIRED');
    expect(sp.manager.snapshot().desired.peers).toEqual([]);
  });

  it('a revoked token is refused', async () => {
    const { sp, tenant } = await pair();
    const { token, id } = await mint(sp);
    expect((await sp.app.inject({ method: 'DELETE', url: `/v1/pairing-tokens/${id}`, headers: bearer(sp.admin) })).statusCode).toBe(204);
    const r = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } });
    expect(r.statusCode).toBe(410);
    expect(r.json<{ code: string }>().code).toBe('PAIRING_TOKEN_REVOKED');
    expect(tenant.manager.snapshot().desired.peers).toEqual([]);
  });

  it('a forged or altered token is refused (401): other signer, changed segments, wrong secret', async () => {
    const { sp } = await pair();
    const other = await testApi({ role: 'sp' });
    const { token: foreign } = await mint(other);
    const { token } = await mint(sp, { segments: [10], ttlSeconds: 600 });
    const [pre, payload, sig] = token.split('.') as [string, string, string];
    const p = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const altered = `${pre}.${Buffer.from(JSON.stringify({ ...p, seg: [10, 20] })).toString('base64url')}.${sig}`;
    const guessed = `${pre}.${Buffer.from(JSON.stringify({ ...p, s: 'A'.repeat(43) })).toString('base64url')}.${sig}`;
    for (const t of [foreign, altered, guessed, `neapair1.e30.${'A'.repeat(86)}`, 'x'.repeat(40)]) {
      const r = await sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token: t, publicKey: tenantKey() } });
      expect(r.statusCode, t.slice(0, 30)).toBe(401);
      expect(r.json<{ code: string }>().code).toBe('PAIRING_TOKEN_INVALID');
    }
    expect(sp.manager.snapshot().desired.peers).toEqual([]);
    // The real token still works afterwards.
    expect((await sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token, publicKey: tenantKey() } })).statusCode).toBe(200);
  });

  it('roles: a tenant does not mint, an SP does not pair; a token for a segment the tenant lacks is refused', async () => {
    const { sp, tenant } = await pair();
    expect((await tenant.app.inject({ method: 'POST', url: '/v1/pairing-tokens', headers: bearer(tenant.admin), payload: { segments: [10], ttlSeconds: 600 } })).json<{ code: string }>().code).toBe('PAIRING_WRONG_ROLE');
    const { token } = await mint(sp);
    expect((await sp.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(sp.admin), payload: { token } })).json<{ code: string }>().code).toBe('PAIRING_WRONG_ROLE');
    await sp.app.inject({ method: 'PUT', url: '/v1/segments/30', headers: bearer(sp.admin), payload: { name: 'x', mode: 'extend', internet: false } });
    const { token: t30 } = await mint(sp, { segments: [30], ttlSeconds: 600 });
    const r = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token: t30 } });
    expect(r.statusCode).toBe(409);
    expect(r.json<{ detail: string }>().detail).toMatch(/segment 30/);
    // Nothing was redeemed: the token is still unused.
    expect((await sp.app.inject({ url: '/v1/pairing-tokens', headers: bearer(sp.admin) })).json<{ items: { state: string }[] }>().items.at(-1)?.state).toBe('unused');
  });

  it('an SP that cannot apply the new peer leaves the token unused (the tenant may retry)', async () => {
    const { sp, tenant } = await pair();
    const { token } = await mint(sp);
    sp.control.failWith = new Error('kernel said no');
    const r = await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } });
    expect(r.statusCode).toBe(502);
    expect(r.json<{ code: string }>().code).toBe('PAIRING_FAILED');
    sp.control.failWith = undefined;
    expect((await tenant.app.inject({ method: 'POST', url: '/v1/pairings', headers: bearer(tenant.admin), payload: { token } })).statusCode).toBe(200);
  });

  it('redemption is rate limited per client address', async () => {
    const sp = await testApi({ role: 'sp', api: { redeemRateMax: 3 } });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await sp.app.inject({ method: 'POST', url: '/v1/pairing/redeem', payload: { token: 'neapair1.AAAAAAAAAAAAAAAAAAAA.AA', publicKey: tenantKey() } })).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
  });
});

describe('bounded credential records', () => {
  it('many issued and revoked API tokens: live ones all kept, old revoked ones dropped, state stays valid', async () => {
    const t = await testApi();
    for (let i = 0; i < 300; i++) {
      const c = await t.manager.change('test', (d) => {
        const rec = { id: `tok${String(i).padStart(8, '0')}`, name: 'x', scope: 'read' as const, hash: 'ab'.repeat(32), createdAt: new Date().toISOString(), revokedAt: new Date(Date.now() + i).toISOString() };
        d.apiTokens.push(rec);
        return d.apiTokens.length;
      });
      expect(c).toBeLessThan(1024);
    }
    const r = await t.app.inject({ method: 'POST', url: '/v1/api-tokens', headers: bearer(t.admin), payload: { name: 'last', scope: 'admin' } });
    expect(r.statusCode).toBe(201);
    const toks = t.manager.snapshot().apiTokens;
    expect(toks.filter((x) => x.revokedAt !== undefined)).toHaveLength(256);
    expect(toks.filter((x) => x.revokedAt === undefined).map((x) => x.name).sort()).toEqual(['admin', 'last', 'reader']);
  });
});
