import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildControlApi, type ControlApiApp } from '../control/api.js';
import { makeKit, seedSp, seedTenant, type Kit } from '../control/testkit.js';
import type { JobView } from '../protocol/control-api.js';
import { createLogger } from '../shared/log.js';
import { createSelfSigned } from '../shared/tls.js';
import { failoverPlanBody, formatJob, parseRule, parseVmDelay, resolveControl } from './control.js';
import { main } from './main.js';

const NEA = new URL('../../dist/cli/nea.js', import.meta.url).pathname;

describe('nea control: arguments', () => {
  it('reads --vm VM[:DELAY] and --rule KEY=VALUE,... as the API wants them', () => {
    expect(parseVmDelay('db2:30')).toEqual({ vm: 'db2', delaySeconds: 30 });
    expect(parseVmDelay('web1')).toEqual({ vm: 'web1', delaySeconds: 0 });
    expect(parseRule('name=web,kind=port,ip=198.51.100.10,proto=tcp,port=80,vm=web1,target-port=8080')).toEqual({
      name: 'web', kind: 'port', publicAddress: '198.51.100.10', protocol: 'tcp', publicPort: 80, vm: 'web1', targetPort: 8080,
    });
    expect(parseRule('name=mail,kind=address,ip=198.51.100.11,vm=web2')).toEqual({ name: 'mail', kind: 'address', publicAddress: '198.51.100.11', vm: 'web2' });
    expect(() => parseRule('name=web,kind=port,ip=198.51.100.10,vm=web1')).toThrow(/port= is missing/);
    expect(() => parseRule('name=web,colour=red')).toThrow(/unknown key colour/);
    expect(() => parseRule('name=web,kind=port,ip=1.2.3.4,port=http,vm=a')).toThrow(/port=http is not a port number/);
    expect(failoverPlanBody({ vm: ['db1:0', 'web1:5'], rule: ['name=x,kind=address,ip=198.51.100.10,vm=web1'], 'no-routing': true })).toEqual({
      vms: [{ vm: 'db1', delaySeconds: 0 }, { vm: 'web1', delaySeconds: 5 }],
      publicRules: [{ name: 'x', kind: 'address', publicAddress: '198.51.100.10', vm: 'web1' }], routeBetweenNetworks: false,
    });
    expect(() => failoverPlanBody({})).toThrow(/--vm VM\[:DELAY\]/);
    const dir = mkdtempSync(join(tmpdir(), 'nea-ctl-'));
    writeFileSync(join(dir, 'plan.json'), JSON.stringify({ vms: [{ vm: 'a', delaySeconds: 1 }], publicRules: [] }));
    expect(failoverPlanBody({ file: join(dir, 'plan.json') })).toEqual({ vms: [{ vm: 'a', delaySeconds: 1 }], publicRules: [] });
  });

  it('finds the control plane: --control FILE, then options, then the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nea-ctl-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ url: 'https://127.0.0.1:9443', fingerprint: 'cd'.repeat(32), token: 'nea_x' }));
    expect(resolveControl({ control: file }, {})).toEqual({ url: 'https://127.0.0.1:9443', fingerprint: 'cd'.repeat(32), token: 'nea_x' });
    expect(resolveControl({ control: file, token: 'nea_y' }, {}).token).toBe('nea_y');
    expect(resolveControl({ url: 'https://h:1', fingerprint: 'ef'.repeat(32), token: 't' }, {})).toEqual({ url: 'https://h:1', fingerprint: 'ef'.repeat(32), token: 't' });
    expect(resolveControl({}, { NEA_CONTROL_URL: 'https://e:2', NEA_CONTROL_FINGERPRINT: '01'.repeat(32), NEA_CONTROL_TOKEN: 'x' })).toEqual({ url: 'https://e:2', fingerprint: '01'.repeat(32), token: 'x' });
    // appliance register: --url/--fingerprint/--token are the appliance's, not the control plane's.
    expect(resolveControl({ control: file, url: 'https://sp:8443', token: 'app' }, {}, true)).toEqual({ url: 'https://127.0.0.1:9443', fingerprint: 'cd'.repeat(32), token: 'nea_x' });
    expect(() => resolveControl({ url: 'https://h:1' }, {})).toThrow(/--fingerprint SHA256 is required with --url/);
    expect(() => resolveControl({ control: join(dir, 'nope.json') }, {})).toThrow(/cannot read the control plane's client file .*nope\.json/);
  });

  it('shows a job with a mark per step', () => {
    const j: JobView = {
      id: 'job-1', tenant: 'acme', kind: 'partial-failover', state: 'rolled-back', createdBy: 'ops', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:03.000Z',
      request: {}, error: 'web1: power on: boom', progress: { done: 1, total: 2 },
      steps: [
        { title: 'tenant → partial site failover', state: 'undone', attempts: 1, startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:00.500Z' },
        { title: 'web1: power on', state: 'failed', attempts: 3, startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:00:03.000Z', detail: 'boom' },
      ],
    };
    expect(formatJob(j).split('\n')).toEqual([
      'job job-1: partial-failover of tenant acme by ops, rolled-back (1/2 steps)', '  web1: power on: boom',
      '  ↺ tenant → partial site failover  0.5 s', '  ✗ web1: power on  2.0 s  (boom)',
    ]);
  });
});

/** Runs `nea ARGS` in this process, capturing what it prints. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => { out.push(a.join(' ')); });
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => { err.push(a.join(' ')); });
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('nea control: operations follow their job', () => {
  let kit: Kit;
  let app: ControlApiApp;
  let file: string;

  beforeAll(async () => {
    kit = makeKit();
    seedSp(kit.cp);
    await seedTenant(kit.cp, 'acme');
    const tls = await createSelfSigned('test');
    app = await buildControlApi({ cp: kit.cp, log: createLogger({ sink: () => undefined }), tls, checkAppliance: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const token = kit.cp.createToken({ name: 'ops', scope: 'admin' }).token;
    file = join(mkdtempSync(join(tmpdir(), 'nea-ctl-')), 'c.json');
    writeFileSync(file, JSON.stringify({ url: `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`, fingerprint: tls.fingerprint, token }));
  });
  afterAll(async () => { await app.close(); });

  it('prints each step as it ends with ✓ and the time; exit 0 when the job succeeded', async () => {
    const r = await cli(['control', 'failover', '--tenant', 'acme', '--vm', 'web1', '--control', file]);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^job job-\w+: partial-failover of tenant acme \(5 steps\)$/);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}✓ web1: power on {2}\d+\.\d s$/));
    expect(lines.at(-1)).toMatch(/^job job-\w+ succeeded in \d+\.\d s$/);
    expect((await cli(['control', 'tenant', 'show', 'acme', '--control', file])).out).toMatch(/failover +partial/);
  });

  it('exit 1 with the reason when the job rolls back; --no-wait returns the job at once; job wait and show', async () => {
    kit.driver.failures.set('on:acme/db1', 5);
    const r = await cli(['control', 'failover', '--tenant', 'acme', '--vm', 'db1', '--control', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✗ db1: power on/);
    expect(r.out).toMatch(/↺ /);
    expect(r.err).toMatch(/^job job-\w+ rolled-back after \d+\.\d s: db1: power on: .*injected/);
    const started = await cli(['control', 'failback', '--tenant', 'acme', '--no-wait', '--json', '--control', file]);
    expect(started.code).toBe(0);
    const j = JSON.parse(started.out) as JobView;
    expect(j.kind).toBe('failback');
    const waited = await cli(['control', 'job', 'wait', j.id, '--control', file]);
    expect(waited.code).toBe(0);
    expect(waited.out).toMatch(/succeeded/);
    expect((await cli(['control', 'job', 'show', j.id, '--control', file])).out).toMatch(new RegExp(`^job ${j.id}: failback of tenant acme by ops, succeeded`));
    expect((await cli(['control', 'job', 'list', '--tenant', 'acme', '--control', file])).out.split('\n')).toHaveLength(4);
    // Bad arguments: exit 2 with the usage.
    expect((await cli(['control', 'failover', '--tenant', 'acme', '--control', file])).code).toBe(2);
    expect((await cli(['control', 'failover', '--tenant', 'acme', '--test', '--vm', 'web1', '--control', file])).code).toBe(2);
  });
});

/** Runs the built `nea` as a process. */
function nea(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [NEA, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('close', (code) => { resolve({ code: code ?? -1, out: out.trimEnd(), err: err.trimEnd() }); });
  });
}

async function startService(db: string): Promise<{ p: ChildProcess; log: () => string }> {
  const p = spawn(process.execPath, [NEA, 'control', 'run', '--driver', 'fake', '--db', db, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr.on('data', (d: Buffer) => { log += d.toString(); });
  const deadline = Date.now() + 30_000;
  while (!log.includes('control plane running')) {
    if (p.exitCode !== null || Date.now() > deadline) throw new Error(`nea control run did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { p, log: () => log };
}

async function stop(p: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((r) => p.once('exit', (code) => { r(code); }));
  p.kill('SIGTERM');
  return done;
}

describe('nea control run and the CLI as processes', () => {
  it('serves the API, writes a 0600 client file with a stable admin token; the CLI onboards SP resources and a tenant', async () => {
    expect(existsSync(NEA), 'run npm run build first').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'nea-ctl-run-'));
    const db = join(dir, 'control.db');
    const svc = await startService(db);
    try {
      const client = `${db}.client.json`;
      expect(statSync(client).mode & 0o777).toBe(0o600);
      expect(statSync(db).mode & 0o777).toBe(0o600);
      const info = JSON.parse(readFileSync(client, 'utf8')) as { url: string; fingerprint: string; token: string };
      expect(info.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const c = ['--control', client];
      for (const args of [
        ['host', 'put', 'h1', '--trunk', 'trunk0'],
        ['vlan-pool', 'put', 'inet', '--host', 'h1', '--first', '100', '--last', '199', '--internet'],
        ['vlan-pool', 'put', 'dark', '--host', 'h1', '--first', '200', '--last', '299'],
        ['ip-pool', 'put', 'pub', '--first', '198.51.100.10', '--last', '198.51.100.99'],
        ['plan', 'put', 'std', '--cpu', '8', '--memory-gb', '32', '--storage-gb', '500', '--networks-with-internet', '1', '--networks-without-internet', '1', '--public-ips', '2'],
        ['tenant', 'put', 'acme', '--description', 'ACME'],
        ['tenant', 'put', 'globex'],
        ['subscribe', '--tenant', 'acme', '--plan', 'std', '--host', 'h1'],
      ]) {
        const r = await nea(['control', ...args, ...c]);
        expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(0);
      }
      const pools = await nea(['control', 'vlan-pool', 'list', ...c]);
      expect(pools.out.split('\n')).toEqual(['  name  host  VLANs    internet  used', '  inet  h1    100-199  yes       1/100', '  dark  h1    200-299  no        1/100']);
      const show = await nea(['control', 'tenant', 'show', 'acme', ...c]);
      expect(show.out).toMatch(/^ {2}std +h1 +100 \(internet\), 200 +198\.51\.100\.10, 198\.51\.100\.11$/m);
      // A refusal: exit 1, the code and the reason on stderr; --json for scripts.
      const overlap = await nea(['control', 'vlan-pool', 'put', 'more', '--host', 'h1', '--first', '150', '--last', '160', ...c]);
      expect(overlap.code).toBe(1);
      expect(overlap.err).toMatch(/409 CONTROL_CONFLICT: VLANs 150-160 overlap pool inet \(100-199\) on host h1/);
      const plans = JSON.parse((await nea(['control', 'plan', 'list', '--json', ...c])).out) as { items: { name: string }[] };
      expect(plans.items.map((p) => p.name)).toEqual(['std']);
      // A tenant token, through the environment: its own tenant only.
      const tok = await nea(['control', 'token', 'create', '--name', 'acme-ops', '--tenant', 'acme', ...c]);
      expect(tok.code).toBe(0);
      const env = { NEA_CONTROL_URL: info.url, NEA_CONTROL_FINGERPRINT: info.fingerprint, NEA_CONTROL_TOKEN: tok.out };
      expect((await nea(['control', 'tenant', 'list'], env)).out.split('\n').map((l) => l.split(/ +/)[1])).toEqual(['name', 'acme']);
      const other = await nea(['control', 'tenant', 'show', 'globex'], env);
      expect([other.code, /404 CONTROL_NOT_FOUND: tenant globex does not exist/.test(other.err)]).toEqual([1, true]);
      expect((await nea(['control', 'host', 'list'], env)).err).toMatch(/403 API_FORBIDDEN/);
      const tokens = await nea(['control', 'token', 'list', ...c]);
      expect(tokens.out).toMatch(/local_admin +admin/);
      expect(tokens.out).not.toContain(tok.out);
      expect((await nea(['control', 'audit', '--tenant', 'acme', ...c])).out).toMatch(/local_admin +subscription\.put +acme +std +ok/);
      // Usage errors: exit 2.
      expect((await nea(['control', 'host', 'put', ...c])).code).toBe(2);
      // SIGTERM: a clean stop; the next start keeps the token of the client file.
      expect(await stop(svc.p)).toBe(0);
      const again = await startService(db);
      try {
        expect((JSON.parse(readFileSync(client, 'utf8')) as { token: string }).token).toBe(info.token);
        expect(again.log()).toMatch(/newToken=false/);
        expect((await nea(['control', 'tenant', 'list', ...c])).out).toMatch(/acme[\s\S]*globex/);
      } finally {
        await stop(again.p);
      }
    } finally {
      if (svc.p.exitCode === null) await stop(svc.p);
    }
  }, 120_000);
});
