/**
 * The control plane as one object: records, jobs, tokens and the audit log
 * over one database, the hypervisor driver, and the tenants' SP appliances.
 * The API (api.ts) and tests call this; it holds no state of its own that
 * the database does not (a restart loses nothing and resumes jobs).
 *
 * Every call that changes something writes an audit entry: who (the
 * token's name), when, what, the outcome. Operations answer with their job
 * at once; the job runs in the background and can be watched.
 */
import type { ApplianceBody, AuditEntry, ControlTokenCreate, ControlTokenCreated, ControlTokenView, FailoverPlanBody, FailoverRequest, JobView, NetworkBody } from '../protocol/control-api.js';
import { NeaError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { newBearer, parseBearer, secretMatches } from '../shared/secrets.js';
import { httpAppliance, type ApplianceApi } from './appliances.js';
import type { HypervisorDriver } from './driver.js';
import { jobView, JobRunner, type Job, type JobRunnerOptions } from './jobs.js';
import { executor, planFailback, planFailover, planPermanent, segmentBody, type Planned } from './operations.js';
import { Records } from './records.js';
import { openDb, writeTx, type Db } from './store.js';

/** Who is calling: from the bearer token. */
export interface Actor {
  name: string;
  scope: 'admin' | 'tenant';
  tenant?: string;
}

export const SYSTEM: Actor = { name: 'system', scope: 'admin' };

export interface ControlPlaneOptions {
  /** Database file (`:memory:` for tests). */
  db: string | Db;
  driver: HypervisorDriver;
  /** SP appliance client for a tenant; default: HTTPS to the registered appliance. */
  appliance?: (tenant: string, rec: { url: string; fingerprint: string; token: string }) => ApplianceApi;
  log?: Logger;
  jobs?: Omit<JobRunnerOptions, 'log' | 'onEnd'>;
  probeDeadlineMs?: number;
  probeTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export class ControlPlane {
  readonly db: Db;
  readonly records: Records;
  readonly jobs: JobRunner;
  readonly driver: HypervisorDriver;
  private readonly applianceFor: (tenant: string) => ApplianceApi;
  private readonly log: Logger | undefined;

  constructor(opts: ControlPlaneOptions) {
    this.db = typeof opts.db === 'string' ? openDb(opts.db) : opts.db;
    this.records = new Records(this.db);
    this.driver = opts.driver;
    this.log = opts.log;
    const make = opts.appliance ?? ((_t, rec) => httpAppliance({ url: rec.url, fingerprint: rec.fingerprint, token: rec.token }));
    this.applianceFor = (tenant) => make(tenant, this.records.appliance(tenant));
    this.jobs = new JobRunner(this.db, executor({
      records: this.records, driver: this.driver, appliance: this.applianceFor,
      ...(opts.probeDeadlineMs !== undefined && { probeDeadlineMs: opts.probeDeadlineMs }),
      ...(opts.probeTimeoutMs !== undefined && { probeTimeoutMs: opts.probeTimeoutMs }),
      ...(opts.sleep && { sleep: opts.sleep }),
    }), {
      ...opts.jobs, ...(opts.log && { log: opts.log.child('jobs') }),
      onEnd: (job) => { this.audit({ name: job.createdBy, scope: 'admin' }, `${job.kind}.end`, job.tenant, job.id, job.state, job.error); },
    });
  }

  /** Resumes the jobs a previous process left unfinished; returns their ids. */
  start(): string[] {
    const ids = this.jobs.resumeAll();
    for (const id of ids) {
      const j = this.jobs.get(id)!;
      this.audit(SYSTEM, `${j.kind}.resume`, j.tenant, id, j.state, 'resumed after a restart');
    }
    return ids;
  }

  async close(): Promise<void> {
    await this.jobs.close();
    await this.driver.close();
    this.db.close();
  }

  // --- audit ------------------------------------------------------------------

  audit(actor: Actor, action: string, tenant: string | undefined, target: string, outcome: string, detail?: string): void {
    this.db.prepare('INSERT INTO audit (at, actor, action, tenant, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(new Date().toISOString(), actor.name, action, tenant ?? null, target, outcome, detail ?? null);
  }

  auditLog(tenant?: string, limit = 200): AuditEntry[] {
    const rows = (tenant === undefined
      ? this.db.prepare('SELECT * FROM audit ORDER BY id DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM audit WHERE tenant = ? ORDER BY id DESC LIMIT ?').all(tenant, limit)) as { id: number; at: string; actor: string; action: string; tenant: string | null; target: string; outcome: string; detail: string | null }[];
    return rows.map((r) => ({ id: r.id, at: r.at, actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, ...(r.tenant !== null && { tenant: r.tenant }), ...(r.detail !== null && { detail: r.detail }) }));
  }

  /** Runs `fn`, auditing its outcome (ok, or the error's code and message). */
  async audited<T>(actor: Actor, action: string, tenant: string | undefined, target: string, fn: () => T | Promise<T>): Promise<T> {
    try {
      const r = await fn();
      this.audit(actor, action, tenant, target, 'ok');
      return r;
    } catch (e) {
      this.audit(actor, action, tenant, target, e instanceof NeaError ? e.code : 'error', (e as Error).message);
      throw e;
    }
  }

  // --- tokens -------------------------------------------------------------------

  createToken(body: ControlTokenCreate): ControlTokenCreated {
    if (body.scope === 'tenant' && !this.records.tenantExists(body.tenant)) throw new NeaError('CONTROL_NOT_FOUND', `tenant ${body.tenant} does not exist`);
    const b = newBearer();
    const createdAt = new Date().toISOString();
    this.db.prepare('INSERT INTO tokens (id, name, scope, tenant, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(b.id, body.name, body.scope, body.scope === 'tenant' ? body.tenant : null, b.hash, createdAt);
    return { id: b.id, name: body.name, scope: body.scope, ...(body.scope === 'tenant' && { tenant: body.tenant }), createdAt, token: b.token };
  }

  tokens(): ControlTokenView[] {
    const rows = this.db.prepare('SELECT * FROM tokens ORDER BY created_at').all() as { id: string; name: string; scope: 'admin' | 'tenant'; tenant: string | null; created_at: string; revoked_at: string | null }[];
    return rows.map((r) => ({ id: r.id, name: r.name, scope: r.scope, createdAt: r.created_at, ...(r.tenant !== null && { tenant: r.tenant }), ...(r.revoked_at !== null && { revokedAt: r.revoked_at }) }));
  }

  revokeToken(id: string): void {
    const r = this.db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id);
    if (r.changes === 0 && !this.tokens().some((t) => t.id === id)) throw new NeaError('CONTROL_NOT_FOUND', `token ${id} does not exist`);
  }

  hasTokens(): boolean {
    return this.db.prepare('SELECT 1 FROM tokens LIMIT 1').get() !== undefined;
  }

  /** Checks an Authorization header; throws API_AUTH_* for a missing, unknown or revoked token. */
  authenticate(header: string | undefined): Actor {
    if (header === undefined || header === '') throw new NeaError('API_AUTH_REQUIRED', 'send Authorization: Bearer TOKEN');
    const m = parseBearer(header);
    if (!m) throw new NeaError('API_AUTH_INVALID', 'the bearer token is not one this control plane issued');
    const row = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(m.id) as { name: string; scope: 'admin' | 'tenant'; tenant: string | null; hash: string; revoked_at: string | null } | undefined;
    if (!secretMatches(m.secret, row?.hash)) throw new NeaError('API_AUTH_INVALID', 'the bearer token is not one this control plane issued');
    if (row!.revoked_at !== null) throw new NeaError('API_TOKEN_REVOKED', `the bearer token was revoked at ${row!.revoked_at}`);
    return { name: row!.name, scope: row!.scope, ...(row!.tenant !== null && { tenant: row!.tenant }) };
  }

  // --- tenant resources that touch the SP appliance ------------------------------

  /** Registers the tenant's SP appliance after checking it answers with that pin and token. */
  async registerAppliance(tenant: string, body: ApplianceBody, check = true): Promise<void> {
    this.records.tenant(tenant);
    if (check) {
      const api = httpAppliance({ url: body.url, fingerprint: body.fingerprint, token: body.token }, 5000);
      const st = await api.status();
      if (st.role !== 'sp') throw new NeaError('CONTROL_CONFLICT', `${body.url} is a ${st.role} appliance; register the tenant's SP appliance`);
    }
    this.records.putAppliance(tenant, body);
  }

  /**
   * Creates or changes a production network: the SP appliance's segment
   * first (id = the VLAN, backed by that VLAN on the host's trunk, in the
   * network's current mode), then the record. A refused appliance change
   * leaves the record as it was.
   */
  async putNetwork(tenant: string, name: string, body: NetworkBody): Promise<void> {
    const rec = this.records.checkNetwork(tenant, name, body);
    const old = this.records.networks(tenant).find((n) => n.name === name);
    if (this.jobs.active(tenant)) throw new NeaError('CONTROL_BUSY', `tenant ${tenant} has an operation running; change networks after it`);
    const api = this.applianceFor(tenant);
    await api.putSegment(rec.vlan, segmentBody(rec, rec.mode, rec.internet && rec.mode === 'gateway'));
    if (old && old.vlan !== rec.vlan) await api.deleteSegment(old.vlan);
    this.records.putNetwork(rec);
  }

  async deleteNetwork(tenant: string, name: string): Promise<void> {
    const n = this.records.checkDeleteNetwork(tenant, name);
    await this.applianceFor(tenant).deleteSegment(n.vlan);
    this.records.deleteNetwork(tenant, name);
  }

  /** A one-time pairing token for the tenant appliance, minted by the SP appliance for all the tenant's networks. */
  async pairingToken(tenant: string, ttlSeconds: number): Promise<{ token: string; expiresAt: string; segments: number[] }> {
    const nets = this.records.networks(tenant);
    if (nets.length === 0) throw new NeaError('CONTROL_CONFLICT', `tenant ${tenant} has no production networks yet; define them first (the token carries them)`);
    const a = this.records.appliance(tenant);
    const segments = nets.map((n) => n.vlan);
    const t = await this.applianceFor(tenant).createPairingToken({ segments, ttlSeconds, ...(a.endpoint !== undefined && { endpoint: a.endpoint }), name: `${tenant}-site` });
    return { token: t.token, expiresAt: t.expiresAt, segments };
  }

  putFailoverPlan(tenant: string, name: string, body: FailoverPlanBody): ReturnType<Records['putFailoverPlan']> {
    return this.records.putFailoverPlan(tenant, name, body);
  }

  // --- operations -----------------------------------------------------------------

  private launch(tenant: string, request: unknown, actor: Actor, plan: () => Planned): JobView {
    const job = writeTx(this.db, () => {
      this.records.tenant(tenant);
      const active = this.jobs.active(tenant);
      if (active) throw new NeaError('CONTROL_BUSY', `tenant ${tenant}: ${active.kind} (job ${active.id}) is still ${active.state}; one operation at a time (nea control job show ${active.id})`);
      const p = plan();
      if (p.steps.length > 0) this.records.appliance(tenant); // throws CONTROL_NO_APPLIANCE: nothing to drive
      const j: Job = this.jobs.insert(tenant, p.kind, request, p.steps, actor.name);
      if (p.steps.length === 0) {
        j.state = 'succeeded';
        j.endedAt = j.createdAt;
        this.db.prepare('UPDATE jobs SET state = ?, ended_at = ?, error = ? WHERE id = ?').run('succeeded', j.endedAt, `nothing to do: ${p.nothing ?? ''}`, j.id);
        j.error = `nothing to do: ${p.nothing ?? ''}`;
      }
      return j;
    });
    this.audit(actor, `${job.kind}.start`, tenant, job.id, job.state === 'succeeded' ? 'nothing to do' : 'started', JSON.stringify(request));
    if (job.state === 'running') this.jobs.start(job.id);
    return jobView(job);
  }

  /** Refuses with the audit trail when the call fails before a job exists. */
  private guarded(actor: Actor, action: string, tenant: string, request: unknown, plan: () => Planned): JobView {
    try {
      return this.launch(tenant, request, actor, plan);
    } catch (e) {
      this.audit(actor, action, tenant, tenant, e instanceof NeaError ? e.code : 'error', (e as Error).message);
      throw e;
    }
  }

  failover(tenant: string, req: FailoverRequest, actor: Actor): JobView {
    return this.guarded(actor, `${req.kind}-failover`, tenant, req, () => planFailover(this.records, tenant, req));
  }

  failback(tenant: string, vms: string[] | undefined, actor: Actor): JobView {
    return this.guarded(actor, 'failback', tenant, { vms }, () => planFailback(this.records, tenant, vms, false));
  }

  undoFailover(tenant: string, vms: string[] | undefined, actor: Actor): JobView {
    return this.guarded(actor, 'undo-failover', tenant, { vms }, () => planFailback(this.records, tenant, vms, true));
  }

  permanentFailover(tenant: string, vms: string[] | undefined, actor: Actor): JobView {
    return this.guarded(actor, 'permanent-failover', tenant, { vms }, () => planPermanent(this.records, tenant, vms));
  }

  job(id: string): JobView {
    const j = this.jobs.get(id);
    if (!j) throw new NeaError('CONTROL_NOT_FOUND', `job ${id} does not exist`);
    return jobView(j);
  }

  /** Waits for a job to leave running/rolling-back in this process. */
  async waitJob(id: string): Promise<JobView> {
    await this.jobs.settled(id);
    return this.job(id);
  }
}
