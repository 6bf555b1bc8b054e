/**
 * Jobs: every multi-step operation (failover, failback, ...) is a row in the
 * database with its whole list of steps, written before the first step runs
 * and after each step changes state. So a control plane that crashes or is
 * killed mid-operation finds, on restart, exactly where it stopped:
 *
 * - `running`: the step marked `running` (interrupted) is run again — every
 *   step is idempotent (an appliance PUT, a power-on, a state write) — and
 *   the job goes on;
 * - `rolling-back`: the undoing goes on where it stopped.
 *
 * A step that fails after its retries stops the job: the steps done so far
 * are undone in reverse order (each step carries its undo, computed when the
 * job was planned) and the job ends `rolled-back`; if undoing fails too, it
 * ends `failed` with both errors, for an operator. A check step marked
 * non-fatal (a replica that does not answer after a full site failover,
 * where undoing would switch off what works) leaves a warning and the job
 * ends `degraded`. Nobody is left with a half-done operation they do not
 * know about: the state is in the job, the tenant and the audit log.
 */
import { randomUUID } from 'node:crypto';
import type { JobState, JobView, StepState } from '../protocol/control-api.js';
import type { Logger } from '../shared/log.js';
import { NeaError } from '../shared/errors.js';
import type { Db } from './store.js';

/** What a step does; see operations.ts for each `op`. */
export type StepSpec =
  | { op: 'tenant-state'; failover: 'none' | 'partial' | 'full' | 'test'; plan?: string }
  | { op: 'segment'; network: string; mode: 'isolated' | 'extend' | 'gateway'; internet: boolean }
  | { op: 'routing'; betweenSegments: boolean }
  | { op: 'power-on'; vm: string }
  | { op: 'power-off'; vm: string }
  | { op: 'revert'; vm: string }
  | { op: 'replica-state'; vm: string; state: 'Normal' | 'Failover' | 'Failback' | 'Permanent' }
  | { op: 'delay'; seconds: number }
  | { op: 'rule'; name: string; rule: Record<string, unknown> }
  | { op: 'unrule'; name: string; rule: Record<string, unknown> }
  | { op: 'probe'; vm: string; kind: 'icmp' | 'tcp'; address: string; port?: number; fatal: boolean };

export interface Step {
  title: string;
  spec: StepSpec;
  undo?: StepSpec;
  state: StepState;
  attempts: number;
  startedAt?: string;
  endedAt?: string;
  detail?: string;
  /** Step-private data that must survive a restart (a delay's deadline). */
  data?: Record<string, string | number>;
}

export interface Job {
  id: string;
  tenant: string;
  kind: string;
  state: JobState;
  request: unknown;
  steps: Step[];
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  endedAt?: string;
  error?: string;
}

/** Runs one step's spec; returns a detail line; throws to fail it. A `warning` result marks a non-fatal check that did not pass. */
export type StepExecutor = (job: Job, step: Step, spec: StepSpec, save: () => void) => Promise<{ detail?: string; warning?: boolean }>;

export interface JobRunnerOptions {
  /** Attempts per step before it counts as failed (default 3). */
  attempts?: number;
  /** Pause between attempts in ms, doubled each time (default 1000). */
  retryDelayMs?: number;
  log?: Logger;
  /**
   * Test hook, called after each step's state is saved; throwing {@link Crash}
   * from it abandons the job there, as a killed process would.
   */
  afterSave?: (job: Job, step: Step) => void;
  /** Called when a job ends (any final state). */
  onEnd?: (job: Job) => void;
}

/** Thrown by a test hook to simulate the process dying at that point. */
export class Crash extends Error {}

const ACTIVE: readonly JobState[] = ['running', 'rolling-back'];
const nowIso = (): string => new Date().toISOString();

interface JobRow { id: string; tenant: string; kind: string; state: string; request: string; steps: string; created_by: string; created_at: string; updated_at: string; ended_at: string | null; error: string | null }

function fromRow(r: JobRow): Job {
  return {
    id: r.id, tenant: r.tenant, kind: r.kind, state: r.state as JobState, request: JSON.parse(r.request) as unknown,
    steps: JSON.parse(r.steps) as Step[], createdBy: r.created_by, createdAt: r.created_at, updatedAt: r.updated_at,
    ...(r.ended_at !== null && { endedAt: r.ended_at }), ...(r.error !== null && { error: r.error }),
  };
}

export function jobView(j: Job): JobView {
  const done = j.steps.filter((s) => s.state === 'done' || s.state === 'warning').length;
  return {
    id: j.id, tenant: j.tenant, kind: j.kind, state: j.state, createdBy: j.createdBy, createdAt: j.createdAt, updatedAt: j.updatedAt,
    ...(j.endedAt !== undefined && { endedAt: j.endedAt }), request: j.request, ...(j.error !== undefined && { error: j.error }),
    progress: { done, total: j.steps.length },
    steps: j.steps.map((s) => ({
      title: s.title, state: s.state, attempts: s.attempts, ...(s.startedAt !== undefined && { startedAt: s.startedAt }),
      ...(s.endedAt !== undefined && { endedAt: s.endedAt }), ...(s.detail !== undefined && { detail: s.detail }),
    })),
  };
}

export class JobRunner {
  private readonly running = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly db: Db, private readonly exec: StepExecutor, private readonly opts: JobRunnerOptions = {}) {}

  /** The job running or rolling back for `tenant`, if any. */
  active(tenant: string): Job | undefined {
    const r = this.db.prepare(`SELECT * FROM jobs WHERE tenant = ? AND state IN (${ACTIVE.map(() => '?').join(',')}) ORDER BY created_at LIMIT 1`).get(tenant, ...ACTIVE) as JobRow | undefined;
    return r && fromRow(r);
  }

  /**
   * Inserts a job (inside the caller's transaction, so that checking the
   * tenant's state and claiming it is one atomic step) — call {@link start}
   * after the transaction commits.
   */
  insert(tenant: string, kind: string, request: unknown, steps: Omit<Step, 'state' | 'attempts'>[], actor: string): Job {
    const other = this.active(tenant);
    if (other) throw new NeaError('CONTROL_BUSY', `tenant ${tenant}: ${other.kind} (job ${other.id}) is still ${other.state}; wait for it (nea control job show ${other.id})`);
    const t = nowIso();
    const job: Job = {
      id: `job-${randomUUID().slice(0, 8)}`, tenant, kind, state: 'running', request, createdBy: actor, createdAt: t, updatedAt: t,
      steps: steps.map((s) => ({ ...s, state: 'pending', attempts: 0 })),
    };
    this.db.prepare('INSERT INTO jobs (id, tenant, kind, state, request, steps, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(job.id, tenant, kind, job.state, JSON.stringify(request), JSON.stringify(job.steps), actor, t, t);
    return job;
  }

  /** Starts (or resumes) running a job in the background. */
  start(id: string): void {
    if (this.closed || this.running.has(id)) return;
    const p = this.run(id).catch((e: unknown) => {
      if (!(e instanceof Crash)) this.opts.log?.error('job runner failed', { job: id, error: (e as Error).message });
    }).finally(() => this.running.delete(id));
    this.running.set(id, p);
  }

  /** Resumes every job a previous process left running or rolling back. */
  resumeAll(): string[] {
    const rows = this.db.prepare(`SELECT id FROM jobs WHERE state IN (${ACTIVE.map(() => '?').join(',')}) ORDER BY created_at`).all(...ACTIVE) as { id: string }[];
    for (const r of rows) this.start(r.id);
    return rows.map((r) => r.id);
  }

  get(id: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r && fromRow(r);
  }

  list(tenant?: string, limit = 100): Job[] {
    const rows = tenant === undefined
      ? this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?').all(limit) as JobRow[]
      : this.db.prepare('SELECT * FROM jobs WHERE tenant = ? ORDER BY created_at DESC LIMIT ?').all(tenant, limit) as JobRow[];
    return rows.map(fromRow);
  }

  /** Resolves when the job is no longer running in this process. */
  async settled(id: string): Promise<Job | undefined> {
    await this.running.get(id);
    return this.get(id);
  }

  /** Stops taking new work and waits for the jobs in flight to reach a step boundary... or the end. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running.values()]);
  }

  private save(job: Job, step?: Step): void {
    job.updatedAt = nowIso();
    this.db.prepare('UPDATE jobs SET state = ?, steps = ?, updated_at = ?, ended_at = ?, error = ? WHERE id = ?')
      .run(job.state, JSON.stringify(job.steps), job.updatedAt, job.endedAt ?? null, job.error ?? null, job.id);
    if (step) this.opts.afterSave?.(job, step);
  }

  private async attempt(job: Job, step: Step, spec: StepSpec): Promise<{ detail?: string; warning?: boolean }> {
    const attempts = this.opts.attempts ?? 3;
    let delay = this.opts.retryDelayMs ?? 1000;
    for (;;) {
      step.attempts++;
      try {
        return await this.exec(job, step, spec, () => { this.save(job); });
      } catch (e) {
        if (e instanceof Crash) throw e;
        step.detail = (e as Error).message;
        if (step.attempts >= attempts || this.closed) throw e;
        this.opts.log?.warn('step failed, retrying', { job: job.id, step: step.title, attempt: step.attempts, error: step.detail });
        this.save(job);
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }

  private async run(id: string): Promise<void> {
    const job = this.get(id);
    if (!job || !ACTIVE.includes(job.state)) return;
    const log = this.opts.log;
    if (job.state === 'running') {
      log?.info('job running', { job: job.id, kind: job.kind, tenant: job.tenant });
      for (const step of job.steps) {
        if (step.state !== 'pending' && step.state !== 'running') continue;
        if (this.closed) return;
        step.state = 'running';
        step.startedAt ??= nowIso();
        this.save(job, step);
        try {
          const r = await this.attempt(job, step, step.spec);
          step.state = r.warning === true ? 'warning' : 'done';
          if (r.detail !== undefined) step.detail = r.detail;
          step.endedAt = nowIso();
          this.save(job, step);
        } catch (e) {
          if (e instanceof Crash) throw e;
          step.state = 'failed';
          step.endedAt = nowIso();
          job.error = `${step.title}: ${(e as Error).message}`;
          job.state = 'rolling-back';
          log?.warn('job step failed; undoing', { job: job.id, step: step.title, error: (e as Error).message });
          this.save(job, step);
          break;
        }
      }
      if (job.state === 'running') {
        job.state = job.steps.some((s) => s.state === 'warning') ? 'degraded' : 'succeeded';
        job.endedAt = nowIso();
        this.save(job);
        log?.info('job ended', { job: job.id, state: job.state });
        this.opts.onEnd?.(job);
        return;
      }
    }
    // Rolling back: undo done steps, last first.
    for (const step of [...job.steps].reverse()) {
      if (step.state !== 'done' && step.state !== 'warning') continue;
      if (this.closed) return;
      if (step.undo) {
        try {
          const r = await this.attempt(job, step, step.undo);
          if (r.detail !== undefined) step.detail = `undone: ${r.detail}`;
        } catch (e) {
          if (e instanceof Crash) throw e;
          job.state = 'failed';
          job.error = `${job.error ?? 'failed'}; undoing "${step.title}" failed too: ${(e as Error).message}`;
          job.endedAt = nowIso();
          this.save(job, step);
          log?.error('job failed and could not be undone; an operator must look', { job: job.id, error: job.error });
          this.opts.onEnd?.(job);
          return;
        }
      }
      step.state = 'undone';
      this.save(job, step);
    }
    job.state = 'rolled-back';
    job.endedAt = nowIso();
    this.save(job);
    log?.info('job rolled back', { job: job.id, error: job.error });
    this.opts.onEnd?.(job);
  }
}
