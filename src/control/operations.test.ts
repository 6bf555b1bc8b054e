import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobView } from '../protocol/control-api.js';
import { NeaError } from '../shared/errors.js';
import { FakeAppliance } from './appliances.js';
import { SYSTEM, type ControlPlane } from './control-plane.js';
import { FakeDriver } from './driver.js';
import { Crash } from './jobs.js';
import { makeKit, seedSp, seedTenant, type Kit } from './testkit.js';

async function onboarded(t = 'acme'): Promise<Kit> {
  const kit = makeKit();
  seedSp(kit.cp);
  await seedTenant(kit.cp, t);
  return kit;
}

const power = (k: Kit): Record<string, string> => Object.fromEntries([...k.driver.power].sort());
const states = (cp: ControlPlane, t = 'acme'): Record<string, string> => Object.fromEntries(cp.records.replicas(t).map((r) => [r.name, r.state]));
const modes = (k: Kit, t = 'acme'): Record<number, string> => Object.fromEntries([...k.appliance(t).segments].map(([id, s]) => [id, `${s.mode}${s.internet ? '+internet' : ''}`]));
const run = async (cp: ControlPlane, j: JobView): Promise<JobView> => cp.waitJob(j.id);

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof NeaError ? `${e.code}: ${e.message}` : String(e);
  }
  return 'accepted';
}

describe('partial site failover', () => {
  it('powers on the VM, extends only its network, checks it reaches the production gateway', async () => {
    const k = await onboarded();
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, { name: 'ops', scope: 'admin' }));
    expect(j.state).toBe('succeeded');
    expect(j.steps.map((s) => s.title)).toEqual([
      'tenant → partial site failover', 'network lan (VLAN 100) → extend', 'web1: state Failover', 'web1: power on',
      'web1: check it reaches 10.1.0.1 (the production gateway, through the tunnel)',
    ]);
    expect(modes(k)).toEqual({ 100: 'extend', 200: 'isolated' });
    expect(power(k)).toEqual({ 'acme/web1': 'on' });
    expect(states(k.cp)).toEqual({ db1: 'Normal', db2: 'Normal', web1: 'Failover', web2: 'Normal' });
    expect(k.cp.records.tenant('acme').failover).toBe('partial');
    // Another VM joins the partial failover; the same one again is nothing to do.
    expect((await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['db1'] }, SYSTEM))).state).toBe('succeeded');
    expect(modes(k)).toEqual({ 100: 'extend', 200: 'extend' });
    const again = await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, SYSTEM));
    expect([again.state, again.progress.total, again.error]).toEqual(['succeeded', 0, 'nothing to do: web1 already in failover']);
  });

  it('one kind of failover at a time, one operation at a time, with a message that says why', async () => {
    const k = await onboarded();
    await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, SYSTEM));
    expect(refusal(() => k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM)))
      .toBe('CONTROL_BUSY: tenant acme is in partial site failover; fail back or undo it before a full site failover — one kind of failover at a time');
    expect(refusal(() => k.cp.failover('acme', { kind: 'test', plan: 'site' }, SYSTEM))).toMatch(/^CONTROL_BUSY: tenant acme is in partial site failover/);
    // While a job runs, anything else for the tenant waits its turn.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const slow = new FakeDriver();
    const orig = slow.powerOn.bind(slow);
    slow.powerOn = async (vm) => { await gate; return orig(vm); };
    const k2 = makeKit(':memory:', {}, slow);
    seedSp(k2.cp);
    await seedTenant(k2.cp, 'acme');
    const j = k2.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, SYSTEM);
    expect(refusal(() => k2.cp.failback('acme', undefined, SYSTEM))).toMatch(new RegExp(`^CONTROL_BUSY: tenant acme: partial-failover \\(job ${j.id}\\) is still running`));
    release();
    expect((await k2.cp.waitJob(j.id)).state).toBe('succeeded');
    // The refusals are in the audit log with who asked.
    expect(k.cp.auditLog('acme').filter((a) => a.outcome === 'CONTROL_BUSY').map((a) => a.action)).toEqual(['test-failover', 'full-failover']);
  });

  it('a replica that cannot reach production is undone: nothing stays half failed over', async () => {
    const k = await onboarded();
    const before = k.appliance('acme').snapshot();
    k.driver.unreachable.add('acme/web1');
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, SYSTEM));
    expect(j.state).toBe('rolled-back');
    expect(j.error).toMatch(/^web1: check it reaches 10\.1\.0\.1 .*: web1 does not answer: icmp 10\.1\.0\.1: no answer/);
    expect(j.steps.map((s) => s.state)).toEqual(['undone', 'undone', 'undone', 'undone', 'failed']);
    expect(k.appliance('acme').snapshot()).toEqual(before);
    expect(power(k)).toEqual({ 'acme/web1': 'off' });
    expect(states(k.cp)).toEqual({ db1: 'Normal', db2: 'Normal', web1: 'Normal', web2: 'Normal' });
    expect(k.cp.records.tenant('acme').failover).toBe('none');
    expect(k.cp.auditLog('acme')[0]).toMatchObject({ action: 'partial-failover.end', outcome: 'rolled-back' });
  });
});

describe('full site failover and failback', () => {
  it('takes over the gateways, powers on in plan order with delays, maps public IPs, then fails back to exactly what was', async () => {
    const k = await onboarded();
    const before = k.appliance('acme').snapshot();
    const ips = k.cp.records.subscriptions('acme')[0]!.publicIps;
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'full', plan: 'site' }, { name: 'tenant-admin', scope: 'tenant', tenant: 'acme' }));
    expect(j.state).toBe('succeeded');
    expect(j.createdBy).toBe('tenant-admin');
    expect(modes(k)).toEqual({ 100: 'gateway+internet', 200: 'gateway' });
    expect(k.appliance('acme').routing).toEqual({ betweenSegments: true });
    expect(k.appliance('acme').snapshot().rules).toEqual([
      ['web', { kind: 'port', segment: 100, publicAddress: ips[0], protocol: 'tcp', publicPort: 80, target: '10.1.0.11', targetPort: 8080 }],
      ['web2_all', { kind: 'address', segment: 100, publicAddress: ips[1], target: '10.1.0.12' }],
    ]);
    expect(k.driver.calls.filter((c) => c.startsWith('on:'))).toEqual(['on:acme/db1', 'on:acme/db2', 'on:acme/web1', 'on:acme/web2']);
    expect(j.steps.map((s) => s.title)).toContain('wait 5 s before db2');
    expect(k.cp.records.tenant('acme')).toMatchObject({ failover: 'full', failoverPlan: 'site' });

    const fb = await run(k.cp, k.cp.failback('acme', undefined, SYSTEM));
    expect(fb.state).toBe('succeeded');
    expect(k.appliance('acme').snapshot()).toEqual(before);
    expect(power(k)).toEqual({ 'acme/db1': 'off', 'acme/db2': 'off', 'acme/web1': 'off', 'acme/web2': 'off' });
    expect(states(k.cp)).toEqual({ db1: 'Normal', db2: 'Normal', web1: 'Normal', web2: 'Normal' });
    expect(k.cp.records.tenant('acme').failover).toBe('none');
    expect(k.cp.records.tenant('acme').failoverPlan).toBeUndefined();
    // Failing back again: nothing to do, no error.
    expect((await run(k.cp, k.cp.failback('acme', undefined, SYSTEM))).error).toBe('nothing to do: tenant acme has nothing in failover');
  });

  it('a replica that does not answer leaves the failover degraded, not undone (production is gone)', async () => {
    const k = await onboarded();
    k.driver.unreachable.add('acme/db2');
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM));
    expect(j.state).toBe('degraded');
    expect(j.steps.filter((s) => s.state === 'warning').map((s) => s.detail)).toEqual(['db2 does not answer: icmp 10.2.0.1: no answer']);
    expect(power(k)).toEqual({ 'acme/db1': 'on', 'acme/db2': 'on', 'acme/web1': 'on', 'acme/web2': 'on' });
    expect(k.cp.records.tenant('acme').failover).toBe('full');
  });

  it('a step that keeps failing is retried, then everything done is undone in reverse order', async () => {
    const k = await onboarded();
    const before = k.appliance('acme').snapshot();
    k.driver.failures.set('on:acme/web2', 2);
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM));
    expect(j.state).toBe('rolled-back');
    expect(j.error).toBe('web2: power on: on of acme/web2 failed (injected)');
    expect(j.steps.find((s) => s.title === 'web2: power on')).toMatchObject({ state: 'failed', attempts: 2 });
    expect(k.appliance('acme').snapshot()).toEqual(before);
    expect(Object.values(power(k)).every((p) => p === 'off')).toBe(true);
    expect(k.driver.calls.filter((c) => c.startsWith('off:'))).toEqual(['off:acme/web1', 'off:acme/db2', 'off:acme/db1']);
    expect(k.cp.records.tenant('acme').failover).toBe('none');
  });

  it('an undo that fails too ends the job failed, for an operator, with both errors', async () => {
    const k = await onboarded();
    k.driver.failures.set('on:acme/web2', 2);
    k.driver.failures.set('off:acme/db2', 5);
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM));
    expect(j.state).toBe('failed');
    expect(j.error).toBe('web2: power on: on of acme/web2 failed (injected); undoing "db2: power on" failed too: off of acme/db2 failed (injected)');
    expect(k.cp.auditLog('acme')[0]).toMatchObject({ action: 'full-failover.end', outcome: 'failed' });
  });

  it('test failover: the plan on isolated networks (gateway without internet, no public IPs); undo reverts the replicas', async () => {
    const k = await onboarded();
    const before = k.appliance('acme').snapshot();
    const j = await run(k.cp, k.cp.failover('acme', { kind: 'test', plan: 'site' }, SYSTEM));
    expect(j.state).toBe('succeeded');
    expect(modes(k)).toEqual({ 100: 'gateway', 200: 'gateway' });
    expect(k.appliance('acme').rules.size).toBe(0);
    expect(k.appliance('acme').routing.betweenSegments).toBe(false);
    expect(refusal(() => k.cp.failover('acme', { kind: 'partial', vms: ['web1'] }, SYSTEM))).toMatch(/^CONTROL_BUSY: tenant acme is in test failover \(plan site\)/);
    expect(refusal(() => k.cp.failback('acme', ['web1'], SYSTEM))).toMatch(/it fails back as a whole/);
    const u = await run(k.cp, k.cp.undoFailover('acme', undefined, SYSTEM));
    expect(u.state).toBe('succeeded');
    expect(k.driver.calls.filter((c) => c.startsWith('revert:'))).toHaveLength(4);
    expect(k.appliance('acme').snapshot()).toEqual(before);
    expect(k.cp.records.tenant('acme').failover).toBe('none');
  });

  it('permanent failover keeps the replica on and refuses to fail it back', async () => {
    const k = await onboarded();
    await run(k.cp, k.cp.failover('acme', { kind: 'partial', vms: ['web1', 'web2'] }, SYSTEM));
    expect((await run(k.cp, k.cp.permanentFailover('acme', ['web1'], SYSTEM))).state).toBe('succeeded');
    expect(states(k.cp)).toMatchObject({ web1: 'Permanent', web2: 'Failover' });
    expect(refusal(() => k.cp.failback('acme', ['web1'], SYSTEM))).toMatch(/^CONTROL_CONFLICT: replica\(s\) web1 are in permanent failover/);
    // Failing back web2: web1 stays on, so its network stays extended and the tenant stays in partial failover.
    expect((await run(k.cp, k.cp.failback('acme', ['web2'], SYSTEM))).state).toBe('succeeded');
    expect(power(k)).toEqual({ 'acme/web1': 'on', 'acme/web2': 'off' });
    expect(modes(k)).toEqual({ 100: 'extend', 200: 'isolated' });
  });
});

describe('crash between any two steps', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  /** The world outside the control plane (hypervisor, SP appliance) survives its crash. */
  interface World { driver: FakeDriver; appliances: Map<string, FakeAppliance> }
  const world = (): World => ({ driver: new FakeDriver(), appliances: new Map() });

  async function scenario(file: string, w: World, crashAt: number | undefined): Promise<{ saves: number; crashed: boolean }> {
    const st = { saves: 0, crashed: false };
    const k = makeKit(file, { jobs: { attempts: 2, retryDelayMs: 1, afterSave: () => { if (++st.saves === crashAt) { st.crashed = true; throw new Crash(); } } } }, w.driver, w.appliances);
    seedSp(k.cp);
    await seedTenant(k.cp, 'acme');
    const ops: (() => JobView)[] = [
      () => k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM),
      () => k.cp.failback('acme', undefined, SYSTEM),
    ];
    for (const op of ops) {
      const j = op();
      await k.cp.jobs.settled(j.id);
      if (st.crashed) break;
    }
    k.cp.db.close();
    return st;
  }

  async function restartAndFinish(file: string, w: World): Promise<Kit> {
    const k = makeKit(file, {}, w.driver, w.appliances);
    for (const id of k.cp.start()) await k.cp.jobs.settled(id);
    // Then the operations that had not started yet, as the operator would re-issue them.
    const t = k.cp.records.tenant('acme');
    const lastKinds = k.cp.jobs.list('acme').map((j) => j.kind);
    if (!lastKinds.includes('failback')) {
      if (t.failover === 'none' && !lastKinds.includes('full-failover')) await k.cp.waitJob(k.cp.failover('acme', { kind: 'full', plan: 'site' }, SYSTEM).id);
      await k.cp.waitJob(k.cp.failback('acme', undefined, SYSTEM).id);
    }
    return k;
  }

  const snapshot = (k: Kit, w: World): unknown => ({
    appliance: w.appliances.get('acme')!.snapshot(),
    power: Object.fromEntries([...w.driver.power].sort()),
    tenant: JSON.parse(JSON.stringify(k.cp.records.tenant('acme'), (key, v: unknown) => (key === 'createdAt' || key === 'registeredAt' ? 'T' : v))) as unknown,
    jobs: k.cp.jobs.list('acme').map((j) => j.state),
  });

  it('restarting converges to the same result as a run without a crash, whichever step the crash hit', async () => {
    // tmpfs: a few hundred databases with fsync on every commit.
    const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'nea-crash-'));
    dirs.push(dir);
    const ref = world();
    const { saves } = await scenario(join(dir, 'ref.db'), ref, undefined);
    const refKit = makeKit(join(dir, 'ref.db'), {}, ref.driver, ref.appliances);
    const want = snapshot(refKit, ref);
    refKit.cp.db.close();
    expect(saves).toBeGreaterThan(30);
    for (let at = 1; at <= saves; at++) {
      const w = world();
      const file = join(dir, `crash-${at}.db`);
      const r = await scenario(file, w, at);
      expect(r.crashed).toBe(true);
      const k = await restartAndFinish(file, w);
      const got = snapshot(k, w) as { jobs: string[] };
      expect({ at, ...got, jobs: got.jobs.filter((s) => s !== 'succeeded') }).toEqual({ at, ...(want as object), jobs: [] });
      expect(k.cp.jobs.list('acme').every((j) => j.state === 'succeeded')).toBe(true);
      // Nobody is left not knowing: a resumed job says so in the audit log.
      if (k.cp.auditLog('acme').some((a) => a.action.endsWith('.resume'))) expect(k.cp.auditLog('acme').find((a) => a.action.endsWith('.resume'))!.detail).toBe('resumed after a restart');
      k.cp.db.close();
    }
  }, 180_000);
});
