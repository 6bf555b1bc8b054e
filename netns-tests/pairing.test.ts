/**
 * The appliance daemon with its management API, on a real kernel: pairing
 * brings the tunnel up; kill -9 of either appliance and a restart bring the
 * tunnel and the rules back from the state file, with no operator action; a
 * truncated state file is detected and the previous state used.
 *
 *  [prod] eth0 ─── p0 [tenant]                       [sp] c0 ─── eth0 [cloud]
 *   198.51.100.1     nea-br10 (seg 10)          nea-br10 (seg 10)    198.51.100.2
 *                    nea-br20 (seg 20)          nea-br20 (seg 20, isolated by the API)
 *                    API 127.0.0.1:8443         API 192.0.2.2:8443
 *                    wan0 192.0.2.1 ─────── WAN ─────── wan0 192.0.2.2 (tunnel :51820)
 *
 * Neither config names a peer: the SP mints a token (`nea pairing-token
 * create`), the tenant redeems it (`nea pair TOKEN`), which registers its key
 * with the SP over HTTPS pinned to the SP's certificate.
 */
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StateFile } from '../src/appliance/state.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import type { StatusView } from '../src/protocol/appliance-api.js';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';

const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../dist/shared/api-client.js', import.meta.url));
const TARGET = fileURLToPath(new URL('../dist/cli/api-commands.js', import.meta.url));

interface Side {
  ns: Netns;
  dir: string;
  config: string;
  args: string[];
  proc?: NsProcess;
}

describe('appliance daemon: pairing, management API, persistence', () => {
  let topo: Topology;
  let prod: Netns;
  let cloud: Netns;
  const sides = {} as Record<'tenant' | 'sp', Side>;
  let token = '';

  const start = async (s: Side): Promise<void> => {
    s.proc = s.ns.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', s.config, '--state-dir', s.dir, ...s.args], 'nea');
    const pid = s.proc.pid;
    await waitFor('appliance and API up', () => {
      if (!s.proc!.running) throw new Error(`exited: ${s.proc!.stderr}`);
      try {
        return (JSON.parse(readFileSync(join(s.dir, 'status.json'), 'utf8')) as { pid: number }).pid === pid && readFileSync(join(s.dir, 'api.json'), 'utf8').includes('https');
      } catch { return false; }
    }, { timeoutMs: 20_000 });
    await waitFor('API answers', async () => (await nea(s, ['status', '--json'], true)).code === 0, { timeoutMs: 10_000 });
  };
  const nea = (s: Side, args: string[], allowFail = false): Promise<{ code: number; stdout: string; stderr: string }> =>
    s.ns.exec(process.execPath, [NEA, ...args, ...(args[0] === 'pair' || args[0] === 'status' || args[0] === 'pairing-token' || args[0] === 'api-token' ? ['--state-dir', s.dir] : [])], { allowFail });
  const status = async (s: Side): Promise<StatusView> => JSON.parse((await nea(s, ['status', '--json'])).stdout) as StatusView;
  /** One API request from inside the side's namespace, with its local admin token. */
  const api = async (s: Side, method: string, path: string, body?: unknown): Promise<unknown> => {
    const script = `const { apiRequest } = await import(${JSON.stringify(CLIENT)}); const { resolveTarget } = await import(${JSON.stringify(TARGET)});
      const r = await apiRequest(resolveTarget({ 'state-dir': ${JSON.stringify(s.dir)} }), ${JSON.stringify(method)}, ${JSON.stringify(path)}, ${body === undefined ? 'undefined' : JSON.stringify(body)});
      console.log(JSON.stringify(r.body ?? null));`;
    return JSON.parse((await s.ns.exec(process.execPath, ['--input-type=module', '-e', script])).stdout) as unknown;
  };
  const stateOf = (s: Side): StateFile => JSON.parse(readFileSync(join(s.dir, 'state.json'), 'utf8')) as StateFile;
  const ping = async (count = 1): Promise<boolean> => (await prod.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '1', '198.51.100.2'], { allowFail: true })).code === 0;

  beforeAll(async () => {
    topo = new Topology('pairing');
    prod = await topo.netns('prod');
    cloud = await topo.netns('cloud');
    for (const role of ['tenant', 'sp'] as const) {
      const dir = join(topo.workdir, role);
      sides[role] = { ns: await topo.netns(role), dir, config: join(topo.workdir, `${role}.json`), args: [] };
    }
    const t = sides.tenant;
    const s = sides.sp;
    await topo.veth(prod, 'eth0', t.ns, 'p0');
    await topo.veth(cloud, 'eth0', s.ns, 'c0');
    await topo.veth(t.ns, 'wan0', s.ns, 'wan0');
    await prod.ip('addr', 'add', '198.51.100.1/24', 'dev', 'eth0');
    await cloud.ip('addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    await t.ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'wan0');
    await s.ns.ip('addr', 'add', '192.0.2.2/24', 'dev', 'wan0');
    const segs = (uplink: string): unknown[] => [{ id: 10, name: 'servers', uplink }, { id: 20, name: 'dmz' }];
    writeFileSync(t.config, JSON.stringify({ role: 'tenant', name: 'tenant-a', tunnel: { listenPort: 51820, peers: [] }, segments: segs('p0') }));
    writeFileSync(s.config, JSON.stringify({ role: 'sp', name: 'sp-a', tunnel: { listenPort: 51820, peers: [] }, segments: segs('c0') }));
    s.args = ['--api-listen', '192.0.2.2:8443', '--advertise-endpoint', '192.0.2.2:51820'];
    t.args = ['--api-listen', '127.0.0.1:8443'];
    await start(s);
    await start(t);
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('unpaired: no peers, no traffic', async () => {
    expect((await status(sides.sp)).peers).toEqual([]);
    expect(await ping()).toBe(false);
  });

  it('a pairing token brings the tunnel up: nea pairing-token create on the SP, nea pair on the tenant', async () => {
    const minted = await nea(sides.sp, ['pairing-token', 'create', '--segments', '10,20', '--ttl', '600']);
    token = minted.stdout.trim();
    expect(token).toMatch(/^neapair1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(minted.stderr).toMatch(/valid until/);
    const paired = await nea(sides.tenant, ['pair', token]);
    expect(paired.stdout).toMatch(/paired with SP appliance sp-a .* at 192\.0\.2\.2:51820, segments 10,20/);
    await waitFor('traffic through the tunnel', () => ping(), { timeoutMs: 15_000 });
    const sp = await status(sides.sp);
    expect(sp.peers).toMatchObject([{ name: 'tenant-a', up: true, segments: [10, 20] }]);
    // Only the token's hash is kept on the SP.
    const secret = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { s: string }).s;
    expect(readFileSync(join(sides.sp.dir, 'state.json'), 'utf8')).not.toContain(secret);
    // The readable status table.
    const table = (await nea(sides.tenant, ['status'])).stdout;
    expect(table).toMatch(/appliance tenant-a \(role tenant/);
    expect(table).toMatch(/sp-a +\S+ +up +192\.0\.2\.2:51820/);
    expect(table).toMatch(/10 +servers +extend +no/);
  });

  it('the token is single use', async () => {
    const again = await nea(sides.tenant, ['pair', token], true);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/PAIRING_TOKEN_USED/);
  });

  it('two concurrent redemptions of one token over the WAN: exactly one wins', async () => {
    const spare = (await nea(sides.sp, ['pairing-token', 'create', '--segments', '20', '--ttl', '600'])).stdout.trim();
    const info = JSON.parse(readFileSync(join(sides.sp.dir, 'api.json'), 'utf8')) as { fingerprint: string };
    const keys = Array.from({ length: 4 }, () => encodeKey(publicKeyOf(generatePrivateKey())));
    const script = `const { apiRequest } = await import(${JSON.stringify(CLIENT)});
      const target = { url: 'https://192.0.2.2:8443', fingerprint: ${JSON.stringify(info.fingerprint)} };
      const out = await Promise.all(${JSON.stringify(keys)}.map((k) => apiRequest(target, 'POST', '/v1/pairing/redeem', { token: ${JSON.stringify(spare)}, publicKey: k })
        .then((r) => String(r.status), (e) => String(e.status ?? e.code))));
      console.log(JSON.stringify(out));`;
    const codes = JSON.parse((await sides.tenant.ns.exec(process.execPath, ['--input-type=module', '-e', script])).stdout) as string[];
    expect([...codes].sort()).toEqual(['200', '410', '410', '410']);
    const peers = (await status(sides.sp)).peers.map((p) => p.publicKey);
    expect(keys.filter((k) => peers.includes(k))).toHaveLength(1);
    // Remove the winner again (it is no real appliance).
    await api(sides.sp, 'DELETE', `/v1/peers/${encodeURIComponent(keys[codes.indexOf('200')]!)}`);
  });

  it('a rule set through the API (segment 20 isolated) is in the SP\'s firewall', async () => {
    await api(sides.sp, 'PUT', '/v1/segments/20', { name: 'dmz', mode: 'isolated', internet: false });
    const rules = (await sides.sp.ns.exec('nft', ['list', 'ruleset'])).stdout;
    expect(rules).toMatch(/isolated-seg20/);
  });

  it('kill -9 of the SP and a restart: tunnel and rules back without operator action, state file intact', async () => {
    const before = stateOf(sides.sp);
    await sides.sp.proc!.stop('SIGKILL');
    expect(await ping()).toBe(false);
    await start(sides.sp);
    expect(stateOf(sides.sp)).toEqual(before);
    await waitFor('traffic resumes', () => ping(), { timeoutMs: 15_000 });
    expect((await sides.sp.ns.exec('nft', ['list', 'ruleset'])).stdout).toMatch(/isolated-seg20/);
    expect((await status(sides.sp)).segments.find((s) => s.id === 20)?.mode).toBe('isolated');
  });

  it('kill -9 of the tenant and a restart: tunnel back, state file intact', async () => {
    const before = stateOf(sides.tenant);
    await sides.tenant.proc!.stop('SIGKILL');
    await start(sides.tenant);
    expect(stateOf(sides.tenant)).toEqual(before);
    await waitFor('traffic resumes', () => ping(), { timeoutMs: 15_000 });
  });

  it('a truncated state file is detected and the previous state used: the tunnel still comes back', async () => {
    // One more change, so that the previous state too has the SP peer.
    await nea(sides.tenant, ['api-token', 'create', '--name', 'ops', '--scope', 'read']);
    const good = stateOf(sides.tenant);
    await sides.tenant.proc!.stop('SIGKILL');
    const file = join(sides.tenant.dir, 'state.json');
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    await start(sides.tenant);
    expect(sides.tenant.proc!.stderr).toMatch(/state file refused; using the previous good state .*not valid JSON/);
    expect(readdirSync(sides.tenant.dir).some((f) => f.startsWith('state.json.bad-'))).toBe(true);
    const now = stateOf(sides.tenant);
    expect(now.desired.peers.map((p) => p.publicKey)).toEqual(good.desired.peers.map((p) => p.publicKey));
    expect(now.version).toBe(good.version);
    await waitFor('traffic resumes', () => ping(), { timeoutMs: 15_000 });
  });

  it('an API flood does not disturb tunnel traffic (the flood is rate limited)', async () => {
    const server = cloud.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', '198.51.100.2'], 'iperf3-server');
    await waitFor('iperf3 server', () => server.stdout.includes('listening'));
    const transfer = prod.exec('iperf3', ['-c', '198.51.100.2', '-t', '4', '-J'], { timeoutMs: 30_000 });
    // From the tenant's WAN address: 1000 requests (well over the limit of 600 a minute) on 16 keep-alive
    // connections, wrong tokens and junk bodies; at least 3 s, so that it overlaps the transfer.
    const flood = `import https from 'node:https';
      const agent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });
      const codes = {}; const start = Date.now(); let n = 0;
      const more = () => n < 1000 || Date.now() - start < 3000;
      const one = () => new Promise((res) => {
        const put = n++ % 2 === 0;
        const req = https.request({ host: '192.0.2.2', port: 8443, path: put ? '/v1/segments/10' : '/v1/status', method: put ? 'PUT' : 'GET', agent,
          headers: { authorization: 'Bearer nea_AAAAAAAAAAAA_' + 'A'.repeat(43), ...(put && { 'content-type': 'application/json' }) } }, (r) => { r.resume(); r.on('end', () => { codes[r.statusCode] = (codes[r.statusCode] ?? 0) + 1; res(); }); });
        req.on('error', () => { codes.error = (codes.error ?? 0) + 1; res(); });
        req.end(put ? '{"name":"x"}' : undefined);
      });
      await Promise.all(Array.from({ length: 16 }, async () => { while (more()) await one(); }));
      console.log(JSON.stringify(codes));`;
    const codes = JSON.parse((await sides.tenant.ns.exec(process.execPath, ['--input-type=module', '-e', flood], { timeoutMs: 60_000 })).stdout) as Record<string, number>;
    const res = JSON.parse((await transfer).stdout) as { end: { sum_received: { bytes: number } } };
    await server.wait();
    expect(codes['429'] ?? 0, JSON.stringify(codes)).toBeGreaterThan(300);
    expect(Object.keys(codes).filter((c) => c !== '401' && c !== '429')).toEqual([]);
    expect(res.end.sum_received.bytes).toBeGreaterThan(5_000_000);
    expect(await ping(3)).toBe(true);
  });

  it('the management API refuses a missing or wrong token, and a revoked one', async () => {
    const created = await nea(sides.sp, ['api-token', 'create', '--name', 'ctl']);
    const tok = created.stdout.trim();
    const id = /API token (\S+);/.exec(created.stderr)![1]!;
    const info = JSON.parse(readFileSync(join(sides.sp.dir, 'api.json'), 'utf8')) as { url: string; fingerprint: string };
    const as = (t: string): Promise<{ code: number; stderr: string }> => nea(sides.sp, ['status', '--url', info.url, '--fingerprint', info.fingerprint, '--token', t], true);
    expect((await as(tok)).code).toBe(0);
    expect((await as('nea_wrong')).stderr).toMatch(/401 API_AUTH_INVALID/);
    await nea(sides.sp, ['api-token', 'revoke', id]);
    expect((await as(tok)).stderr).toMatch(/403 API_TOKEN_REVOKED/);
    // A wrong pin: refused before anything is sent.
    expect((await nea(sides.sp, ['status', '--url', info.url, '--fingerprint', 'ab'.repeat(32), '--token', tok], true)).stderr).toMatch(/not the pinned/);
  });
});
