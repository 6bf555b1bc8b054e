import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NeaError } from '../../shared/errors.js';
import { loadOrCreateTls, normalizeFingerprint, type TlsIdentity } from '../../shared/tls.js';
import { apiRequest, ApiError } from '../../shared/api-client.js';
import { testApi, type TestApi } from './testkit.js';

describe('HTTPS with a pinned self-signed certificate (loopback)', () => {
  let t: TestApi;
  let tls: TlsIdentity;
  let url: string;
  let requests = 0;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nea-tls-'));
    tls = await loadOrCreateTls(dir, 'sp-a');
    t = await testApi({ dir, api: { tls } });
    t.app.addHook('onRequest', (_req, _reply, done) => { requests++; done(); });
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => { await t.app.close(); });

  it('makes the certificate once and keeps it (same fingerprint on reload)', async () => {
    expect(tls.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect((await loadOrCreateTls(t.dir, 'other')).fingerprint).toBe(tls.fingerprint);
  });

  it('a client pinning the fingerprint talks to the API', async () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await apiRequest<{ role: string }>({ url, fingerprint: tls.fingerprint, token: t.admin }, 'GET', '/v1/status');
    expect(r.body.role).toBe('sp');
    // Colon-separated upper case, as `openssl x509 -fingerprint -sha256` prints it, works too.
    const colons = tls.fingerprint.toUpperCase().match(/../g)!.join(':');
    expect(normalizeFingerprint(colons)).toBe(tls.fingerprint);
    expect((await apiRequest({ url, fingerprint: colons }, 'GET', '/v1/health')).status).toBe(200);
  });

  it('a wrong pin ends the connection before the request (and its token) is sent', async () => {
    const before = requests;
    await expect(apiRequest({ url, fingerprint: 'cd'.repeat(32), token: t.admin }, 'GET', '/v1/status')).rejects.toMatchObject({ code: 'API_PIN_MISMATCH' });
    expect(requests).toBe(before);
  });

  it('problems become ApiError with the appliance\'s code; a closed port is API_UNREACHABLE', async () => {
    const e = await apiRequest({ url, fingerprint: tls.fingerprint, token: 'nea_wrong' }, 'GET', '/v1/status').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ code: 'API_AUTH_INVALID', status: 401 });
    const u = await apiRequest({ url: 'https://127.0.0.1:1', fingerprint: tls.fingerprint }, 'GET', '/v1/health').catch((x: unknown) => x);
    expect(u).toBeInstanceOf(NeaError);
    expect((u as NeaError).code).toBe('API_UNREACHABLE');
    await expect(apiRequest({ url: 'http://127.0.0.1:1', fingerprint: tls.fingerprint }, 'GET', '/')).rejects.toThrow(/HTTPS only/);
  });
});
