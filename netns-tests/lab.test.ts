/**
 * `nea lab` end to end, as a user runs it (the CLI as a child process):
 * up, up again (one lab), status, the reachability matrix, a partial
 * failover, a full failover of the other tenant at the same time,
 * failbacks, down; then a lab killed while it builds, removed by `down`.
 * The matrix is checked after every change: every check as expected, and
 * a few cells named explicitly (who answered, from which site).
 *
 * The lab's topology (docs/lab.md), two tenants with identical production
 * subnets, gateways and MACs:
 *
 *   [control] control plane + netns driver ── mgmt 192.0.2.0/24 ── [acme-sp] [globex-sp] ── trunk0 ══ fabric "cloud" ══ replicas
 *   [internet] 203.0.113.10 ── [router] ── external 198.51.100.0/24 ── SP appliances' ext0, tenant appliances' wan0
 *   [acme-site] web 10.1.0.0/24 (web1, web2), db 10.2.0.0/24 (db1, db2) ── [acme-ta] lan1, lan2     (globex: the same)
 *
 * Names carry this run's prefix (`nt-<run>-lab-...`), so the harness's
 * leftover check covers every namespace the lab and its driver make.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabStatusJson, TenantMatrix } from '../src/lab/lab.js';
import { isRunning, ProcTable } from '../src/lab/procs.js';
import { listNetns, run, Topology, waitFor, type ExecResult } from './harness.js';
import { NEA } from './segments-world.js';

describe('nea lab: up, test, partial and full failover, failback, down', { timeout: 240_000 }, () => {
  let topo: Topology;
  let prefix: string;
  let stateDir: string;
  const lab = (args: string[], timeoutMs = 300_000): Promise<ExecResult> =>
    run(process.execPath, [NEA, 'lab', ...args, '--prefix', prefix, '--state-dir', stateDir], { allowFail: true, timeoutMs });
  const status = async (): Promise<LabStatusJson> => JSON.parse((await lab(['status', '--json'])).stdout) as LabStatusJson;
  const matrix = async (): Promise<{ code: number; m: TenantMatrix[]; text: string }> => {
    const r = await lab(['test', '--json']);
    const m = JSON.parse(r.stdout) as TenantMatrix[];
    const bad = m.flatMap((x) => x.rows.flatMap((row) => row.cells.filter((c) => !c.ok).map((c) => `${x.tenant}: ${c.from} -> ${c.to}: want ${c.expected ?? '-'} saw ${c.seen ?? '-'}`)));
    return { code: r.code, m, text: bad.join('\n') };
  };
  const seen = (m: TenantMatrix[], tenant: string, from: string, to: string): string | null | undefined =>
    m.find((x) => x.tenant === tenant)?.rows.find((r) => r.from === from)?.cells.find((c) => c.to === to)?.seen;
  const ours = (): string[] => listNetns().filter((n) => n.startsWith(`${prefix}-`));

  beforeAll(() => {
    topo = new Topology('lab');
    prefix = topo.nsName('lab');
    stateDir = join(topo.workdir, 'lab');
  });

  afterAll(async () => {
    await lab(['down']);
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('nea lab up builds two tenants and prints progress, then the status screen', async () => {
    const r = await lab(['up', '--tenants', '2']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/✓ control plane .* \(\d+ ms\)/);
    expect(r.stdout).toMatch(/✓ acme: tenant appliance paired through the control plane/);
    expect(r.stdout).toMatch(/✓ tunnels up/);
    for (const section of ['tenants and appliances', 'segments', 'replicas', 'public IP rules', 'next']) expect(r.stdout).toContain(section);
    expect(r.stdout).toMatch(/nea lab failover --tenant acme --vm web1/);
  });

  it('nea lab up again keeps the one lab', async () => {
    const before = ours().sort();
    const r = await lab(['up', '--tenants', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/already up/);
    expect(ours().sort()).toEqual(before);
  });

  it('status --json: tenants with their appliances, segments isolated, replicas Normal and off, tunnels up', async () => {
    const s = await status();
    expect(s.tenants.map((t) => t.name)).toEqual(['acme', 'globex']);
    for (const t of s.tenants) {
      expect(t.failover).toBe('none');
      expect(t.appliances.sp.tunnel).toBe('up');
      expect(t.segments.map((n) => [n.name, n.subnet, n.gateway, n.internet, n.mode])).toEqual([
        ['web', '10.1.0.0/24', '10.1.0.1', true, 'isolated'], ['db', '10.2.0.0/24', '10.2.0.1', false, 'isolated']]);
      expect(t.replicas.map((r) => [r.name, r.state, r.power])).toEqual([['web1', 'Normal', 'off'], ['web2', 'Normal', 'off'], ['db1', 'Normal', 'off'], ['db2', 'Normal', 'off']]);
      expect(t.publicRules.map((r) => [r.name, r.kind, r.active])).toEqual([['web', 'port', false], ['db', 'address', false]]);
    }
    // Same subnets, different cloud VLANs.
    expect(new Set(s.tenants.flatMap((t) => t.segments.map((n) => n.vlan))).size).toBe(4);
  });

  it('nea lab test: production reaches production, nothing reaches the internet or the public IPs', async () => {
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'acme', 'web1 (production)', 'db2')).toBe('acme/db2 production');
    expect(seen(m, 'globex', 'db1 (production)', 'web1')).toBe('globex/web1 production');
    expect(seen(m, 'acme', 'web1 (production)', 'internet')).toBeNull();
    const human = await lab(['test']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/\d+ checks: \d+ as expected, 0 not/);
  });

  it('partial failover of acme/web1: its replica keeps the address and talks to production across the tunnel', async () => {
    const r = await lab(['failover', '--tenant', 'acme', '--vm', 'web1']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/job \S+: succeeded/);
    const s = await status();
    const acme = s.tenants.find((t) => t.name === 'acme')!;
    expect(acme.failover).toBe('partial');
    expect(acme.replicas.find((x) => x.name === 'web1')).toMatchObject({ state: 'Failover', power: 'on' });
    expect(acme.segments.find((n) => n.name === 'web')?.mode).toBe('extend');
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'acme', 'web2 (production)', 'web1')).toBe('acme/web1 cloud');
    expect(seen(m, 'acme', 'web1 (cloud)', 'web2')).toBe('acme/web2 production');
    expect(seen(m, 'acme', 'web1 (cloud)', 'db1')).toBe('acme/db1 production');
    expect(seen(m, 'globex', 'web2 (production)', 'web1')).toBe('globex/web1 production');
  });

  it('a full failover of acme while it is in a partial one is refused before production is touched', async () => {
    const r = await lab(['failover', '--tenant', 'acme', '--full']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/acme is in a partial failover: fail it back first/);
    const acme = (await status()).tenants.find((t) => t.name === 'acme')!;
    expect([acme.failover, acme.production.siteDown, acme.appliances.tenant.running]).toEqual(['partial', false, true]);
  });

  it('kill -9 of the control plane and of an SP appliance: nea lab up restarts them; the replica is re-adopted and answers again', async () => {
    const procs = new ProcTable(stateDir);
    const victims = [procs.get('control')!, procs.get('globex-sp')!];
    for (const v of victims) process.kill(v.pid, 'SIGKILL');
    await waitFor('both gone', () => victims.every((v) => !isRunning(v)));
    const r = await lab(['up', '--tenants', '2']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ restart the control plane \(its driver re-adopts the replicas\)/);
    expect(r.stdout).toMatch(/✓ restart appliance globex-sp/);
    const acme = (await status()).tenants.find((t) => t.name === 'acme')!;
    expect(acme.replicas.find((x) => x.name === 'web1')).toMatchObject({ state: 'Failover', power: 'on' });
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'acme', 'web2 (production)', 'web1')).toBe('acme/web1 cloud');
  });

  it('full failover of globex meanwhile: its replicas run the site in the cloud, with internet and public IPs; acme is untouched', async () => {
    const r = await lab(['failover', '--tenant', 'globex', '--full']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = await status();
    const globex = s.tenants.find((t) => t.name === 'globex')!;
    expect(globex.failover).toBe('full');
    expect(globex.segments.map((n) => n.mode)).toEqual(['gateway', 'gateway']);
    expect(globex.replicas.every((x) => x.state === 'Failover' && x.power === 'on')).toBe(true);
    expect(globex.publicRules.every((x) => x.active)).toBe(true);
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'globex', 'web1 (cloud)', 'internet')).toBe('internet');
    expect(seen(m, 'globex', 'db2 (cloud)', 'web2')).toBe('globex/web2 cloud');
    const webRule = globex.publicRules.find((x) => x.name === 'web')!;
    expect(seen(m, 'globex', 'internet', `web ${webRule.publicAddress}`)).toBe('globex/web1 cloud');
    expect(seen(m, 'acme', 'web1 (cloud)', 'db1')).toBe('acme/db1 production');
  });

  it('failback of both: production answers again, the replicas are off, the segments isolated', async () => {
    for (const t of ['acme', 'globex']) {
      const r = await lab(['failback', '--tenant', t]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    const s = await status();
    for (const t of s.tenants) {
      expect(t.failover).toBe('none');
      expect(t.segments.map((n) => n.mode)).toEqual(['isolated', 'isolated']);
      expect(t.replicas.map((x) => `${x.state}/${x.power}`)).toEqual(Array(4).fill('Normal/off'));
      expect(t.appliances.sp.tunnel).toBe('up');
    }
    expect(listNetns().filter((n) => n.startsWith(`${prefix}-r-`))).toEqual([]);
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'globex', 'web2 (production)', 'web1')).toBe('globex/web1 production');
  });

  it('a test failover rehearses beside production: replicas in the cloud, cut off; production untouched; failback undoes it', async () => {
    const r = await lab(['failover', '--tenant', 'acme', '--test']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const acme = (await status()).tenants.find((t) => t.name === 'acme')!;
    expect(acme.failover).toBe('test');
    expect(acme.segments.map((n) => n.mode)).toEqual(['gateway', 'gateway']);
    const { code, m, text } = await matrix();
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(seen(m, 'acme', 'web2 (production)', 'web1')).toBe('acme/web1 production');
    expect(seen(m, 'acme', 'web2 (cloud)', 'web1')).toBe('acme/web1 cloud');
    expect(seen(m, 'acme', 'web2 (cloud)', 'db1')).toBeNull();
    expect(seen(m, 'acme', 'web1 (cloud)', 'internet')).toBeNull();
    expect((await lab(['failback', '--tenant', 'acme'])).code).toBe(0);
    const after = (await status()).tenants.find((t) => t.name === 'acme')!;
    expect([after.failover, ...after.replicas.map((x) => x.state)]).toEqual(['none', 'Normal', 'Normal', 'Normal', 'Normal']);
    expect((await matrix()).code).toBe(0);
  });

  it('nea lab down removes everything; down again is fine', async () => {
    const procs = new ProcTable(stateDir).list();
    expect(procs.length).toBeGreaterThan(0);
    const r = await lab(['down']);
    expect(r.code).toBe(0);
    expect(ours()).toEqual([]);
    expect(procs.filter(isRunning).map((p) => p.name)).toEqual([]);
    expect(existsSync(stateDir)).toBe(false);
    expect((await lab(['down'])).code).toBe(0);
  });

  it('a lab killed while it builds is removed by nea lab down', async () => {
    const builder = spawn(process.execPath, [NEA, 'lab', 'up', '--tenants', '1', '--prefix', prefix, '--state-dir', stateDir], { stdio: 'ignore' });
    const ended = new Promise((r) => builder.on('exit', r));
    // Wait until the fabric and the VM services run, then kill the builder.
    await waitFor('the lab half built', () => new ProcTable(stateDir).list().some((p) => p.name === 'services'), { timeoutMs: 60_000 });
    builder.kill('SIGKILL');
    await ended;
    const left = new ProcTable(stateDir).list();
    expect(left.some(isRunning)).toBe(true);
    expect(ours().length).toBeGreaterThan(0);
    expect((await lab(['down'])).code).toBe(0);
    expect(ours()).toEqual([]);
    expect(left.filter(isRunning)).toEqual([]);
  });
});
