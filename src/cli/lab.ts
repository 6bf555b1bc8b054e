/**
 * `nea lab ...`: the lab (docs/lab.md). `nea lab fabric` is in fabric.ts.
 */
import {
  DEFAULT_TENANTS, formatLabStatus, formatMatrix, LAB_PREFIX, LAB_STATE_DIR, labDown, labFailback, labFailoverFull, labFailoverPartial, labFailoverTest,
  labMatrix, labStatus, labUp, openLab, type LabContext,
} from '../lab/lab.js';
import { MAX_TENANTS } from '../lab/plan.js';
import { loadServices, serveAll } from '../lab/services.js';
import { createLogger } from '../shared/log.js';
import { parse } from './appliance.js';
import { register, UsageError } from './main.js';

register({
  path: ['lab', 'serve'],
  summary: 'serve the lab VMs\' identity service (HTTP :80) inside their namespaces until SIGTERM (started by nea lab up)',
  usage: 'nea lab serve --config FILE [--status FILE]',
  async run(args) {
    const v = parse(args, { config: { type: 'string' }, status: { type: 'string' } });
    if (typeof v.config !== 'string') throw new UsageError('--config FILE is required');
    const log = createLogger().child('lab-serve');
    const specs = loadServices(v.config);
    const close = await serveAll(specs, typeof v.status === 'string' ? v.status : undefined);
    log.info('serving', { hosts: specs.length });
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => { resolve(); });
      process.once('SIGINT', () => { resolve(); });
    });
    await close();
    return 0;
  },
});

// ---- the lab's commands ------------------------------------------------------------

const LAB_OPTIONS = { prefix: { type: 'string' }, 'state-dir': { type: 'string' } } as const;
const LAB_USAGE = '[--prefix NAME] [--state-dir DIR]';

function where(v: Record<string, unknown>): { prefix: string; stateDir: string } {
  const prefix = typeof v.prefix === 'string' ? v.prefix : process.env.NEA_LAB_PREFIX ?? LAB_PREFIX;
  if (!/^[a-z0-9][a-z0-9_-]{0,23}$/.test(prefix)) throw new UsageError('--prefix: 1-24 of a-z, 0-9, "_", "-"');
  return { prefix, stateDir: typeof v['state-dir'] === 'string' ? v['state-dir'] : process.env.NEA_LAB_STATE_DIR ?? LAB_STATE_DIR };
}

function open(v: Record<string, unknown>): LabContext {
  const w = where(v);
  const ctx = openLab(w.prefix, w.stateDir);
  if (!ctx) throw new Error(`no lab here (${w.stateDir}): start one with \`nea lab up\``);
  return ctx;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the lab builds network namespaces: run it as root');
}

register({
  path: ['lab', 'up'],
  summary: 'build the lab: an SP site, a control plane and N tenants with production sites, onboarded and paired; then its status',
  usage: `nea lab up [--tenants N] ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, { tenants: { type: 'string' }, ...LAB_OPTIONS });
    const tenants = typeof v.tenants === 'string' ? Number(v.tenants) : DEFAULT_TENANTS;
    if (!Number.isInteger(tenants) || tenants < 1 || tenants > MAX_TENANTS) throw new UsageError(`--tenants: 1..${MAX_TENANTS}`);
    requireRoot();
    const w = where(v);
    const { ctx, seconds, reused } = await labUp({ ...w, tenants });
    if (!reused) process.stdout.write(`\nThe lab is up (${seconds} s).\n\n`);
    process.stdout.write(formatLabStatus(await labStatus(ctx)) + '\n');
    return 0;
  },
});

register({
  path: ['lab', 'status'],
  summary: 'the lab\'s tenants, appliances, tunnels, segments and modes, replicas, public IP rules',
  usage: `nea lab status [--json] ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, { json: { type: 'boolean' }, ...LAB_OPTIONS });
    const s = await labStatus(open(v));
    process.stdout.write((v.json === true ? JSON.stringify(s, null, 2) : formatLabStatus(s)) + '\n');
    return 0;
  },
});

register({
  path: ['lab', 'test'],
  summary: 'reachability matrix of the lab: who reaches whom, expected vs seen (exit 1 on a mismatch)',
  usage: `nea lab test [--json] ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, { json: { type: 'boolean' }, ...LAB_OPTIONS });
    const m = await labMatrix(open(v));
    process.stdout.write((v.json === true ? JSON.stringify(m, null, 2) : formatMatrix(m)) + '\n');
    return m.every((x) => x.rows.every((r) => r.cells.every((c) => c.ok))) ? 0 : 1;
  },
});

register({
  path: ['lab', 'failover'],
  summary: 'fail a tenant over: some VMs (partial, --vm), the whole site (--full) or a rehearsal beside production (--test), through the control plane',
  usage: `nea lab failover --tenant T (--vm V [--vm V ...] | --full | --test) ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, { tenant: { type: 'string' }, vm: { type: 'string', multiple: true }, full: { type: 'boolean' }, test: { type: 'boolean' }, ...LAB_OPTIONS });
    if (typeof v.tenant !== 'string') throw new UsageError('--tenant T is required');
    const vms = (v.vm ?? []) as string[];
    if ([vms.length > 0, v.full === true, v.test === true].filter(Boolean).length !== 1) {
      throw new UsageError('give --vm V (partial failover), --full (full site failover) or --test (test failover: a rehearsal beside production)');
    }
    requireRoot();
    const ctx = open(v);
    const job = v.full === true ? await labFailoverFull(ctx, v.tenant) : v.test === true ? await labFailoverTest(ctx, v.tenant) : await labFailoverPartial(ctx, v.tenant, vms);
    return job.state === 'succeeded' || job.state === 'degraded' ? 0 : 1;
  },
});

register({
  path: ['lab', 'failback'],
  summary: 'fail a tenant back to production: some VMs (--vm) or all in failover',
  usage: `nea lab failback --tenant T [--vm V ...] ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, { tenant: { type: 'string' }, vm: { type: 'string', multiple: true }, ...LAB_OPTIONS });
    if (typeof v.tenant !== 'string') throw new UsageError('--tenant T is required');
    requireRoot();
    const job = await labFailback(open(v), v.tenant, (v.vm ?? []) as string[]);
    return job.state === 'succeeded' || job.state === 'degraded' ? 0 : 1;
  },
});

register({
  path: ['lab', 'down'],
  summary: 'remove every namespace, link, process and nft table the lab made (also after a crash; fine on nothing)',
  usage: `nea lab down ${LAB_USAGE}`,
  async run(args) {
    const v = parse(args, LAB_OPTIONS);
    requireRoot();
    const w = where(v);
    const r = await labDown(w.prefix, w.stateDir);
    process.stdout.write(`removed ${r.processes.length} processes and ${r.namespaces.length} namespaces\n`);
    return 0;
  },
});
