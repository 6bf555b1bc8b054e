/**
 * The control plane end to end, on the lab's world (real appliances, the
 * netns hypervisor driver, the control plane as its own process): two
 * tenants with identical production subnets, gateways and MACs, each with
 * two production networks (web with internet, db without) and four VMs.
 *
 *   [control] nea control run ── mgmt ── [acme-sp]  [globex-sp] ── trunk0 ══ fabric "cloud" ══ replicas r-<tenant>-<vm>
 *   [internet] 203.0.113.10 ── [router] ── external 198.51.100.0/24 ── SP appliances, tenant appliances
 *   [acme-site] web 10.1.0.0/24, db 10.2.0.0/24 ── [acme-ta]          [globex-site] the same ── [globex-ta]
 *
 * What a user checks: both production sites go dark and both tenants fail
 * over fully at the same time — acme with its own tenant token, globex by
 * the SP on its behalf; replicas keep their addresses, reach the internet
 * (SNAT to their own SP appliance's address) and each other across the
 * networks, the internet host reaches each tenant's replica through that
 * tenant's public IP, and nothing of one tenant answers the other. Failback
 * brings back exactly the reachability of before. A second run started by
 * the SP for acme works the same. (Partial failover, status and the matrix
 * through the CLI: lab.test.ts.)
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns } from '../src/lab/hop.js';
import { labDown, labMatrix, labUp, tunnelState, type LabContext, type TenantMatrix } from '../src/lab/lab.js';
import type { TenantPlan } from '../src/lab/plan.js';
import type { JobView, TenantView, ControlTokenCreated } from '../src/protocol/control-api.js';
import { apiRequest, ApiError, type ApiTarget } from '../src/shared/api-client.js';
import { listNetns, Topology, waitFor } from './harness.js';

const quiet = { write: (): boolean => true };

describe('control plane: full site failover of two tenants at once, failback, and again', () => {
  let topo: Topology;
  let prefix: string;
  let ctx: LabContext;
  let admin: ApiTarget;
  let acmeToken: ApiTarget;
  let before: TenantMatrix[];

  // The control plane listens in its namespace: requests are opened from there (src/lab/hop.ts).
  const as = async <T>(who: ApiTarget, method: string, path: string, body?: unknown): Promise<T> =>
    (await inNetns(ctx.world.plan.controlNetns, () => apiRequest<T>(who, method, path, body))).body;
  const wait = async (who: ApiTarget, job: JobView): Promise<JobView> => {
    let j = job;
    await waitFor(`job ${job.id} (${job.kind}) to end`, async () => {
      j = await as<JobView>(who, 'GET', `/v1/jobs/${job.id}`);
      return j.state !== 'running' && j.state !== 'rolling-back';
    }, { timeoutMs: 180_000, intervalMs: 500 });
    return j;
  };
  const replicaNs = (tenant: string, vm: string): string => `${ctx.world.plan.replicaPrefix}${tenant}-${vm}`;
  const t = (name: string): TenantPlan => ctx.world.tenant(name);
  const cells = (m: TenantMatrix[]): string[] => m.flatMap((x) => x.rows.flatMap((r) => r.cells.map((c) => `${x.tenant} ${r.from} -> ${c.to}: ${c.seen ?? '-'}`))).sort();

  beforeAll(async () => {
    topo = new Topology('ctl');
    prefix = topo.nsName('lab');
    ({ ctx } = await labUp({ prefix, stateDir: join(topo.workdir, 'lab'), tenants: 2, out: quiet }));
    const client = ctx.world.controlClient()!;
    admin = { url: client.url, fingerprint: client.fingerprint, token: client.token };
    const created = await as<ControlTokenCreated>(admin, 'POST', '/v1/tokens', { name: 'acme-ops', scope: 'tenant', tenant: 'acme' });
    acmeToken = { ...admin, token: created.token };
    before = await labMatrix(ctx);
  }, 600_000);

  afterAll(async () => {
    await labDown(prefix, join(topo.workdir, 'lab'), quiet);
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  }, 120_000);

  it('before any failover: production reaches production; the lab matrix is all as expected', () => {
    expect(before.flatMap((m) => m.rows.flatMap((r) => r.cells.filter((c) => !c.ok)))).toEqual([]);
  });

  it("a tenant token sees only its own tenant, and cannot fail another one over", async () => {
    const seen = await as<{ items: { name: string }[] }>(acmeToken, 'GET', '/v1/tenants');
    expect(seen.items.map((x) => x.name)).toEqual(['acme']);
    await expect(as(acmeToken, 'GET', '/v1/tenants/globex')).rejects.toMatchObject({ status: 404 });
    await expect(as(acmeToken, 'POST', '/v1/tenants/globex/failover', { kind: 'full', plan: 'site' })).rejects.toBeInstanceOf(ApiError);
    expect((await as<TenantView>(admin, 'GET', '/v1/tenants/globex')).failover).toBe('none');
  });

  async function fullFailoverBoth(acmeBy: ApiTarget): Promise<void> {
    await Promise.all([ctx.world.stopSite(t('acme')), ctx.world.stopSite(t('globex'))]);
    const [ja, jg] = await Promise.all([
      as<JobView>(acmeBy, 'POST', '/v1/tenants/acme/failover', { kind: 'full', plan: 'site' }),
      as<JobView>(admin, 'POST', '/v1/tenants/globex/failover', { kind: 'full', plan: 'site' }),
    ]);
    const [ea, eg] = await Promise.all([wait(acmeBy, ja), wait(admin, jg)]);
    expect([ea.state, eg.state], `${ea.error ?? ''} ${eg.error ?? ''}`).toEqual(['succeeded', 'succeeded']);
  }

  async function checkCloudSites(): Promise<void> {
    const w = ctx.world;
    for (const name of ['acme', 'globex']) {
      const plan = t(name);
      const view = await as<TenantView>(admin, 'GET', `/v1/tenants/${name}`);
      expect(view.failover).toBe('full');
      expect(view.networks.map((n) => n.mode)).toEqual(['gateway', 'gateway']);
      expect(view.replicas.map((r) => r.state)).toEqual(['Failover', 'Failover', 'Failover', 'Failover']);
      // The replicas keep their production addresses and reach each other across the networks (routed by the SP appliance).
      const web1 = await w.fetchIdentity(replicaNs(name, 'web1'), '10.2.0.12');
      expect(web1 && `${web1.tenant}/${web1.name} ${web1.site} from ${web1.client}`).toBe(`${name}/db2 cloud from 10.1.0.11`);
      const db1 = await w.fetchIdentity(replicaNs(name, 'db1'), '10.1.0.12');
      expect(db1 && `${db1.tenant}/${db1.name} ${db1.site}`).toBe(`${name}/web2 cloud`);
      // The internet: SNAT to this tenant's own SP appliance (web has internet); db has none.
      const out = await w.fetchIdentity(replicaNs(name, 'web2'), w.plan.internetAddress);
      expect(out && `${out.name} from ${out.client}`).toBe(`internet from ${plan.spExternalAddress}`);
      expect(await w.fetchIdentity(replicaNs(name, 'db2'), w.plan.internetAddress, 80, 1500)).toBeUndefined();
      // The internet host reaches this tenant's replica through this tenant's public IP rules.
      const rules = view.failoverPlans.find((p) => p.name === 'site')!.publicRules;
      expect(rules.length).toBeGreaterThan(0);
      for (const rule of rules) {
        const port = rule.kind === 'port' ? rule.publicPort : 80;
        const got = await w.fetchIdentity(w.plan.internetNetns, rule.publicAddress, port);
        expect(got && `${rule.publicAddress}:${port} -> ${got.tenant}/${got.name} ${got.site}`).toBe(`${rule.publicAddress}:${port} -> ${name}/${rule.vm} cloud`);
      }
    }
    // The production sites are gone: nothing answers there.
    expect(await ctx.world.ping(t('acme').vms[0]!.netns, '10.1.0.1', 500)).toBe(false);
  }

  it('both sites go dark; acme fails over with its own token and globex by the SP, at the same time; neither sees the other', async () => {
    await fullFailoverBoth(acmeToken);
    await checkCloudSites();
    const list = (await as<{ items: JobView[] }>(admin, 'GET', '/v1/jobs')).items;
    expect(list.find((j) => j.tenant === 'acme' && j.kind === 'full-failover')?.createdBy).toBe('acme-ops');
    expect(list.find((j) => j.tenant === 'globex' && j.kind === 'full-failover')?.createdBy).not.toBe('acme-ops');
  });

  async function failbackBoth(): Promise<void> {
    const since = Date.now();
    const [ja, jg] = await Promise.all(['acme', 'globex'].map((n) => as<JobView>(admin, 'POST', `/v1/tenants/${n}/failback`, {})));
    const ends = await Promise.all([wait(admin, ja!), wait(admin, jg!)]);
    expect(ends.map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
    await Promise.all([ctx.world.startSite(t('acme')), ctx.world.startSite(t('globex'))]);
    for (const name of ['acme', 'globex']) {
      await waitFor(`${name}'s tunnel up again (a handshake after the site came back)`, () => {
        const s = tunnelState(ctx.world, t(name));
        return s.up && s.handshakeAgoMs !== null && s.handshakeAgoMs <= Date.now() - since;
      }, { timeoutMs: 60_000 });
    }
  }

  it('failback: replicas off, networks isolated, and exactly the reachability of before the failover', async () => {
    await failbackBoth();
    for (const name of ['acme', 'globex']) {
      const view = await as<TenantView>(admin, 'GET', `/v1/tenants/${name}`);
      expect([view.failover, ...view.networks.map((n) => n.mode), ...view.replicas.map((r) => r.state)]).toEqual(['none', 'isolated', 'isolated', 'Normal', 'Normal', 'Normal', 'Normal']);
    }
    expect(listNetns().filter((n) => n.startsWith(ctx.world.plan.replicaPrefix))).toEqual([]);
    let after: TenantMatrix[] = [];
    await waitFor('the matrix of before the failover', async () => {
      after = await labMatrix(ctx);
      return cells(after).join('\n') === cells(before).join('\n');
    }, { timeoutMs: 60_000, intervalMs: 2000 }).catch(() => undefined);
    expect(cells(after)).toEqual(cells(before));
  });

  it('a second run, started by the SP on acme\'s behalf, works the same', async () => {
    await fullFailoverBoth(admin);
    await checkCloudSites();
    await failbackBoth();
    const entries = (await as<{ items: { action: string; actor: string }[] }>(admin, 'GET', '/v1/audit?tenant=acme')).items;
    const starts = entries.filter((a) => a.action === 'full-failover.start').map((a) => a.actor);
    expect(starts).toHaveLength(2);
    expect(starts).toContain('acme-ops');
  });
});
