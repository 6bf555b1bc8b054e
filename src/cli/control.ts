/**
 * `nea control ...`: the control plane (docs/control-plane.md). `nea
 * control run` serves it; every other verb is a client of its API
 * (docs/control-api.md), with readable tables by default and `--json` for
 * scripts (the API's answer as is).
 *
 * Which control plane, from the first that gives it:
 *   --control FILE (a client file: {url, fingerprint, token}),
 *   --url URL --fingerprint SHA256 --token TOKEN,
 *   the environment (NEA_CONTROL_URL, NEA_CONTROL_FINGERPRINT, NEA_CONTROL_TOKEN),
 *   the local control plane's client file, /var/lib/nea-control/control.db.client.json
 *   (`nea control run` writes `<db>.client.json` with an admin token).
 *
 * Operations (failover, failback, ...) answer with a job at once; the verb
 * then follows it step by step (unless --no-wait) and exits 0 when it
 * succeeded, 1 when it ended otherwise (rolled back, failed, degraded),
 * with the reason.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Static } from '@sinclair/typebox';
import { buildControlApi } from '../control/api.js';
import { ControlPlane, SYSTEM } from '../control/control-plane.js';
import { FakeDriver, type HypervisorDriver } from '../control/driver.js';
import type {
  ApplianceView, AuditEntry, ControlTokenCreated, ControlTokenView, FailoverPlan, FailoverPlanBody, Host, IpPool, JobView, Network, PairingTokenAnswer,
  Plan, PlanRule, Replica, Subscription, TenantSummary, TenantView, VlanPool,
} from '../protocol/control-api.js';
import { apiRequest, type ApiTarget } from '../shared/api-client.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { NeaError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { loadOrCreateTls } from '../shared/tls.js';
import { register, UsageError } from './main.js';

export const DEFAULT_DB = '/var/lib/nea-control/control.db';
export const DEFAULT_CLIENT_FILE = `${DEFAULT_DB}.client.json`;
export const DEFAULT_PORT = 9443;
const clientFileOf = (db: string): string => `${db}.client.json`;

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

const TARGET_OPTIONS = { control: { type: 'string' }, url: { type: 'string' }, fingerprint: { type: 'string' }, token: { type: 'string' } } as const;
const TARGET_USAGE = '[--control FILE | --url https://HOST:PORT --fingerprint SHA256 --token TOKEN]';
const COMMON = { ...TARGET_OPTIONS, json: { type: 'boolean' } } as const;

/** Strict parsing with `npos` positional arguments (named in `what` for the message). */
export function parseCommand(args: string[], options: Options, what: string[] = []): { v: Values; pos: string[] } {
  let r: { values: Values; positionals: string[] };
  try {
    r = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (r.positionals.length < what.length) throw new UsageError(`${what[r.positionals.length]!} is required`);
  if (r.positionals.length > what.length) throw new UsageError(`unexpected argument "${r.positionals[what.length]!}"`);
  return { v: r.values, pos: r.positionals };
}

const str = (v: Values, k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);
const strs = (v: Values, k: string): string[] => (Array.isArray(v[k]) ? v[k].filter((x): x is string => typeof x === 'string') : typeof v[k] === 'string' ? [v[k]] : []);
function need(v: Values, k: string, what: string): string {
  const s = str(v, k);
  if (s === undefined) throw new UsageError(`--${k} ${what} is required`);
  return s;
}
function int(v: Values, k: string, what: string, dflt?: number): number {
  const s = str(v, k);
  if (s === undefined) {
    if (dflt !== undefined) return dflt;
    throw new UsageError(`--${k} ${what} is required`);
  }
  if (!/^-?\d+$/.test(s)) throw new UsageError(`--${k}: "${s}" is not an integer`);
  return Number(s);
}

interface ClientFile { url: string; fingerprint: string; token: string }

function readClientFile(file: string): Partial<ClientFile> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the control plane's client file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}): is \`nea control run\` running here, or give --control FILE, or --url, --fingerprint and --token (or NEA_CONTROL_URL, NEA_CONTROL_FINGERPRINT, NEA_CONTROL_TOKEN)`);
  }
  try {
    return JSON.parse(text) as Partial<ClientFile>;
  } catch {
    throw new UsageError(`${file} is not a control plane client file (JSON with url, fingerprint, token)`);
  }
}

/** The control plane to talk to (see the file comment). `own`: --url/--fingerprint/--token belong to the command, not the target. */
export function resolveControl(v: Values, env: NodeJS.ProcessEnv = process.env, own = false): ApiTarget & { token: string } {
  const file = str(v, 'control');
  const fromFile = file !== undefined ? readClientFile(file) : {};
  let url = (own ? undefined : str(v, 'url')) ?? fromFile.url ?? env.NEA_CONTROL_URL;
  let fingerprint = (own ? undefined : str(v, 'fingerprint')) ?? fromFile.fingerprint ?? env.NEA_CONTROL_FINGERPRINT;
  let token = (own ? undefined : str(v, 'token')) ?? fromFile.token ?? env.NEA_CONTROL_TOKEN;
  if (url !== undefined && fingerprint === undefined) throw new UsageError('--fingerprint SHA256 is required with --url (the control plane\'s certificate fingerprint, in its client file)');
  if (url === undefined || fingerprint === undefined || token === undefined) {
    const local = readClientFile(DEFAULT_CLIENT_FILE);
    url ??= local.url;
    fingerprint ??= local.fingerprint;
    token ??= local.token;
  }
  if (url === undefined || fingerprint === undefined || token === undefined) throw new UsageError('the control plane\'s url, fingerprint and token are required (--control FILE, or --url, --fingerprint, --token)');
  return { url, fingerprint, token };
}

// --- output --------------------------------------------------------------------------

export function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return '  (none)';
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `  ${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

const yes = (b: boolean): string => (b ? 'yes' : 'no');
const secs = (from?: string, to?: string): string => {
  if (from === undefined || to === undefined) return '';
  return `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1)} s`;
};

/** A tenant for people: what it has, what it is in. */
export function formatTenant(t: TenantView): string {
  const out = [`tenant ${t.name}${t.description !== undefined ? ` (${t.description})` : ''}, created ${t.createdAt}`];
  out.push(`  failover    ${t.failover}${t.failoverPlan !== undefined ? ` (plan ${t.failoverPlan})` : ''}`);
  out.push(`  appliance   ${t.appliance ? `${t.appliance.url} (sha256 ${t.appliance.fingerprint})${t.appliance.endpoint !== undefined ? `, tunnel endpoint ${t.appliance.endpoint}` : ''}` : 'none registered'}`);
  out.push('', 'subscriptions', table(['plan', 'host', 'VLANs', 'public IPs'], t.subscriptions.map((s) => [
    s.plan, s.host, s.networks.map((n) => `${n.vlan}${n.internet ? ' (internet)' : ''}${n.network !== undefined ? ` = ${n.network}` : ''}`).join(', ') || '-', s.publicIps.join(', ') || '-',
  ])));
  out.push('', 'networks', networksTable(t.networks));
  out.push('', 'replicas', replicasTable(t.replicas));
  out.push('', 'failover plans', table(['name', 'boot order', 'public IP rules'], t.failoverPlans.map((p) => [
    p.name, p.vms.map((v) => (v.delaySeconds > 0 ? `${v.vm} (+${v.delaySeconds} s)` : v.vm)).join(', '), String(p.publicRules.length),
  ])));
  return out.join('\n');
}

const networksTable = (ns: Network[]): string => table(['name', 'subnet', 'gateway', 'host', 'vlan', 'internet', 'mode'], ns.map((n) => [n.name, n.subnet, n.gateway, n.host, String(n.vlan), yes(n.internet), n.mode]));
const replicasTable = (rs: Replica[]): string => table(['name', 'network', 'address', 'mac', 'state', 'restore point'], rs.map((r) => [r.name, r.network, r.address, r.mac, r.state, r.restorePoint ?? '-']));

function ruleText(r: PlanRule): string {
  return r.kind === 'port' ? `${r.name}: ${r.protocol} ${r.publicAddress}:${r.publicPort} → ${r.vm}:${r.targetPort ?? r.publicPort}` : `${r.name}: ${r.publicAddress} → ${r.vm} (1:1)`;
}

export function formatFailoverPlan(p: FailoverPlan): string {
  return [
    `failover plan ${p.name} (routing between networks: ${p.routeBetweenNetworks === false ? 'off' : 'on'})`,
    '', 'boot order', table(['#', 'vm', 'delay'], p.vms.map((v, i) => [String(i + 1), v.vm, `${v.delaySeconds} s`])),
    '', 'public IP rules', p.publicRules.length === 0 ? '  (none)' : p.publicRules.map((r) => `  ${ruleText(r)}`).join('\n'),
  ].join('\n');
}

const STEP_MARK: Record<string, string> = { done: '✓', warning: '⚠', failed: '✗', undone: '↺', running: '…', pending: ' ' };

export function formatJob(j: JobView): string {
  const out = [`job ${j.id}: ${j.kind} of tenant ${j.tenant} by ${j.createdBy}, ${j.state} (${j.progress.done}/${j.progress.total} steps)${j.error !== undefined ? `\n  ${j.error}` : ''}`];
  for (const s of j.steps) out.push(`  ${STEP_MARK[s.state] ?? '?'} ${s.title}${s.endedAt !== undefined ? `  ${secs(s.startedAt, s.endedAt)}` : ''}${s.detail !== undefined ? `  (${s.detail})` : ''}`);
  return out.join('\n');
}

// --- the client ----------------------------------------------------------------------

type Target = ApiTarget & { token: string };
const enc = encodeURIComponent;

async function api<T>(t: Target, method: string, path: string, body?: unknown): Promise<T> {
  return (await apiRequest<T>(t, method, path, body)).body;
}

/** Prints the API's answer as JSON (`--json`) or as text for people. */
function show(v: Values, body: unknown, text: () => string): void {
  console.log(v.json === true ? JSON.stringify(body, null, 2) : text());
}

const FINAL = new Set(['succeeded', 'degraded', 'rolled-back', 'failed']);

/**
 * Follows a job until it ends, printing each step as it starts and ends
 * (unless `quiet`); resolves with the final job.
 */
export async function followJob(t: Target, first: JobView, o: { quiet?: boolean; pollMs?: number; print?: (line: string) => void } = {}): Promise<JobView> {
  const print = o.print ?? ((l: string) => { console.log(l); });
  const seen = new Map<number, string>();
  let j = first;
  if (!o.quiet) print(`job ${j.id}: ${j.kind} of tenant ${j.tenant} (${j.steps.length} steps)`);
  for (;;) {
    if (!o.quiet) {
      j.steps.forEach((s, i) => {
        const prev = seen.get(i);
        if (prev === s.state || (s.state === 'pending' && prev === undefined)) return;
        seen.set(i, s.state);
        const time = s.endedAt !== undefined && s.state !== 'running' ? `  ${secs(s.startedAt, s.endedAt)}` : '';
        const detail = s.detail !== undefined && s.state !== 'running' ? `  (${s.detail})` : '';
        print(`  ${STEP_MARK[s.state] ?? '?'} ${s.title}${time}${detail}`);
      });
    }
    if (FINAL.has(j.state)) return j;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
    j = await api<JobView>(t, 'GET', `/v1/jobs/${enc(j.id)}`);
  }
}

/** The exit code of an ended job, printing the outcome. */
function jobOutcome(v: Values, j: JobView): number {
  if (v.json === true) console.log(JSON.stringify(j, null, 2));
  const took = secs(j.createdAt, j.endedAt);
  if (j.state === 'succeeded') {
    if (v.json !== true) console.log(`job ${j.id} succeeded${took !== '' ? ` in ${took}` : ''}${j.error !== undefined ? ` (${j.error})` : ''}`);
    return 0;
  }
  console.error(`job ${j.id} ${j.state}${took !== '' ? ` after ${took}` : ''}: ${j.error ?? (j.state === 'degraded' ? 'some replicas did not answer their check' : 'see nea control job show')}`);
  return 1;
}

async function operation(v: Values, t: Target, path: string, body: unknown): Promise<number> {
  const j = await api<JobView>(t, 'POST', path, body);
  if (v['no-wait'] === true) {
    show(v, j, () => `job ${j.id} started (${j.kind}, ${j.steps.length} steps); follow it with: nea control job wait ${j.id}`);
    return 0;
  }
  return jobOutcome(v, await followJob(t, j, { quiet: v.json === true }));
}

// --- commands ------------------------------------------------------------------------

interface Verb {
  path: string[];
  summary: string;
  usage: string;
  options?: Options;
  positionals?: string[];
  /** --url/--fingerprint/--token are the command's own (appliance register). */
  ownTarget?: boolean;
  run(v: Values, pos: string[], t: () => Target): Promise<number>;
}

function verb(c: Verb): void {
  register({
    path: ['control', ...c.path],
    summary: c.summary,
    usage: `nea control ${c.path.join(' ')} ${c.usage} ${c.ownTarget === true ? '[--control FILE]' : TARGET_USAGE} [--json]`.replace(/ {2,}/g, ' '),
    async run(args) {
      const { v, pos } = parseCommand(args, { ...COMMON, ...c.options }, c.positionals ?? []);
      return c.run(v, pos, () => resolveControl(v, process.env, c.ownTarget === true));
    },
  });
}

/** put / list / delete / show of a resource named by a positional NAME. */
function putListDelete<T>(o: {
  noun: string; what: string; path: (v: Values, name?: string) => string; tenant?: boolean;
  putUsage: string; putOptions: Options; body: (v: Values) => unknown;
  head: string[]; row: (x: T) => string[]; detail?: (x: T) => string;
}): void {
  const tenantOpt: Options = o.tenant === true ? { tenant: { type: 'string' } } : {};
  const tenantUsage = o.tenant === true ? ' --tenant T' : '';
  const one = (x: T): string => o.detail?.(x) ?? table(o.head, [o.row(x)]);
  verb({
    path: [o.noun, 'put'], summary: `create or change a ${o.what}`, usage: `NAME${tenantUsage} ${o.putUsage}`, positionals: ['NAME'],
    options: { ...tenantOpt, ...o.putOptions },
    async run(v, [name], t) {
      const body = o.body(v);
      const r = await api<T>(t(), 'PUT', o.path(v, name), body);
      show(v, r, () => one(r));
      return 0;
    },
  });
  verb({
    path: [o.noun, 'list'], summary: `list ${o.what}s`, usage: tenantUsage, options: tenantOpt,
    async run(v, _p, t) {
      const r = await api<{ items: T[] }>(t(), 'GET', o.path(v));
      show(v, r, () => table(o.head, r.items.map(o.row)));
      return 0;
    },
  });
  verb({
    path: [o.noun, 'show'], summary: `show a ${o.what}`, usage: `NAME${tenantUsage}`, positionals: ['NAME'], options: tenantOpt,
    async run(v, [name], t) {
      const r = await api<T>(t(), 'GET', o.path(v, name));
      show(v, r, () => one(r));
      return 0;
    },
  });
  verb({
    path: [o.noun, 'delete'], summary: `delete a ${o.what}`, usage: `NAME${tenantUsage}`, positionals: ['NAME'], options: tenantOpt,
    async run(v, [name], t) {
      await api(t(), 'DELETE', o.path(v, name));
      if (v.json !== true) console.log(`${o.what} ${name!} deleted`);
      return 0;
    },
  });
}

const tenantPath = (v: Values, kind: string, name?: string): string => `/v1/tenants/${enc(need(v, 'tenant', 'T'))}/${kind}${name !== undefined ? `/${enc(name)}` : ''}`;
const spPath = (kind: string) => (_v: Values, name?: string): string => `/v1/${kind}${name !== undefined ? `/${enc(name)}` : ''}`;
const withDescription = (v: Values): { description?: string } => (str(v, 'description') !== undefined ? { description: str(v, 'description')! } : {});

putListDelete<Host>({
  noun: 'host', what: 'cloud host', path: spPath('hosts'), putUsage: '--trunk IFNAME [--description TEXT]',
  putOptions: { trunk: { type: 'string' }, description: { type: 'string' } },
  body: (v) => ({ trunk: need(v, 'trunk', 'IFNAME'), ...withDescription(v) }),
  head: ['name', 'trunk', 'description'], row: (h) => [h.name, h.trunk, h.description ?? ''],
});

putListDelete<VlanPool>({
  noun: 'vlan-pool', what: 'VLAN pool', path: spPath('vlan-pools'), putUsage: '--host H --first VLAN --last VLAN [--internet]',
  putOptions: { host: { type: 'string' }, first: { type: 'string' }, last: { type: 'string' }, internet: { type: 'boolean' } },
  body: (v) => ({ host: need(v, 'host', 'H'), first: int(v, 'first', 'VLAN'), last: int(v, 'last', 'VLAN'), internet: v.internet === true }),
  head: ['name', 'host', 'VLANs', 'internet', 'used'], row: (p) => [p.name, p.host, `${p.first}-${p.last}`, yes(p.internet), `${p.used}/${p.size}`],
});

putListDelete<IpPool>({
  noun: 'ip-pool', what: 'public IP pool', path: spPath('ip-pools'), putUsage: '--first IPV4 --last IPV4 [--description TEXT]',
  putOptions: { first: { type: 'string' }, last: { type: 'string' }, description: { type: 'string' } },
  body: (v) => ({ first: need(v, 'first', 'IPV4'), last: need(v, 'last', 'IPV4'), ...withDescription(v) }),
  head: ['name', 'addresses', 'used', 'description'], row: (p) => [p.name, `${p.first}-${p.last}`, `${p.used}/${p.size}`, p.description ?? ''],
});

putListDelete<Plan>({
  noun: 'plan', what: 'hardware plan', path: spPath('plans'),
  putUsage: '--cpu N --memory-gb N --storage-gb N --networks-with-internet N --networks-without-internet N --public-ips N',
  putOptions: {
    cpu: { type: 'string' }, 'memory-gb': { type: 'string' }, 'storage-gb': { type: 'string' },
    'networks-with-internet': { type: 'string' }, 'networks-without-internet': { type: 'string' }, 'public-ips': { type: 'string' },
  },
  body: (v) => ({
    cpu: int(v, 'cpu', 'N'), memoryGb: int(v, 'memory-gb', 'N'), storageGb: int(v, 'storage-gb', 'N'),
    networksWithInternet: int(v, 'networks-with-internet', 'N', 0), networksWithoutInternet: int(v, 'networks-without-internet', 'N', 0), publicIps: int(v, 'public-ips', 'N', 0),
  }),
  head: ['name', 'cpu', 'memory', 'storage', 'networks (internet)', 'networks (none)', 'public IPs'],
  row: (p) => [p.name, String(p.cpu), `${p.memoryGb} GB`, `${p.storageGb} GB`, String(p.networksWithInternet), String(p.networksWithoutInternet), String(p.publicIps)],
});

// Tenants.
verb({
  path: ['tenant', 'put'], summary: 'create or change a tenant', usage: 'NAME [--description TEXT]', positionals: ['NAME'], options: { description: { type: 'string' } },
  async run(v, [name], t) {
    const r = await api<TenantView>(t(), 'PUT', `/v1/tenants/${enc(name!)}`, withDescription(v));
    show(v, r, () => `tenant ${r.name} saved`);
    return 0;
  },
});
verb({
  path: ['tenant', 'list'], summary: 'list tenants (a tenant token: its own)', usage: '',
  async run(v, _p, t) {
    const r = await api<{ items: TenantSummary[] }>(t(), 'GET', '/v1/tenants');
    show(v, r, () => table(['name', 'failover', 'networks', 'replicas', 'appliance'], r.items.map((x) => [x.name, x.failover, String(x.networks), String(x.replicas), yes(x.appliance)])));
    return 0;
  },
});
verb({
  path: ['tenant', 'show'], summary: 'a tenant: subscriptions, appliance, networks, replicas, failover plans', usage: 'NAME', positionals: ['NAME'],
  async run(v, [name], t) {
    const r = await api<TenantView>(t(), 'GET', `/v1/tenants/${enc(name!)}`);
    show(v, r, () => formatTenant(r));
    return 0;
  },
});
verb({
  path: ['tenant', 'delete'], summary: 'delete a tenant (once it has no subscription; its tokens go with it)', usage: 'NAME', positionals: ['NAME'],
  async run(v, [name], t) {
    await api(t(), 'DELETE', `/v1/tenants/${enc(name!)}`);
    if (v.json !== true) console.log(`tenant ${name!} deleted`);
    return 0;
  },
});

// Subscriptions.
const SUB_OPTIONS = { tenant: { type: 'string' }, plan: { type: 'string' }, host: { type: 'string' } } as const;
async function subscribe(v: Values, t: Target): Promise<number> {
  const r = await api<Subscription>(t, 'PUT', `/v1/tenants/${enc(need(v, 'tenant', 'T'))}/subscriptions/${enc(need(v, 'plan', 'P'))}`, { host: need(v, 'host', 'H') });
  show(v, r, () => `tenant ${str(v, 'tenant')!} subscribes to plan ${r.plan} on host ${r.host}\n` + table(['VLAN', 'internet', 'network'], r.networks.map((n) => [String(n.vlan), yes(n.internet), n.network ?? '-'])) + `\n  public IPs: ${r.publicIps.join(', ') || 'none'}`);
  return 0;
}
async function unsubscribe(v: Values, t: Target): Promise<number> {
  await api(t, 'DELETE', `/v1/tenants/${enc(need(v, 'tenant', 'T'))}/subscriptions/${enc(need(v, 'plan', 'P'))}`);
  if (v.json !== true) console.log(`tenant ${str(v, 'tenant')!} unsubscribed from plan ${str(v, 'plan')!}; its VLANs and public IPs are released`);
  return 0;
}
for (const path of [['subscribe'], ['subscription', 'put']]) {
  verb({ path, summary: "subscribe a tenant to a plan on a host (allocates the plan's VLANs and public IPs)", usage: '--tenant T --plan P --host H', options: SUB_OPTIONS, run: (v, _p, t) => subscribe(v, t()) });
}
for (const path of [['unsubscribe'], ['subscription', 'delete']]) {
  verb({ path, summary: "end a subscription (releases its VLANs and public IPs)", usage: '--tenant T --plan P', options: SUB_OPTIONS, run: (v, _p, t) => unsubscribe(v, t()) });
}

// The tenant's SP appliance.
verb({
  path: ['appliance', 'register'], summary: "register a tenant's SP appliance (checked: it must answer with that pin and token)",
  usage: '--tenant T --url https://HOST:PORT --fingerprint SHA256 --token TOKEN [--endpoint ADDR:PORT]', ownTarget: true,
  options: { tenant: { type: 'string' }, endpoint: { type: 'string' } },
  async run(v, _p, t) {
    const body = {
      url: need(v, 'url', 'https://HOST:PORT (the SP appliance\'s API)'), fingerprint: need(v, 'fingerprint', 'SHA256 (the SP appliance\'s certificate)'),
      token: need(v, 'token', 'TOKEN (an admin token of the SP appliance)'), ...(str(v, 'endpoint') !== undefined && { endpoint: str(v, 'endpoint')! }),
    };
    const r = await api<ApplianceView>(t(), 'PUT', `/v1/tenants/${enc(need(v, 'tenant', 'T'))}/appliance`, body);
    show(v, r, () => `SP appliance ${r.url} registered for tenant ${str(v, 'tenant')!}`);
    return 0;
  },
});
verb({
  path: ['appliance', 'show'], summary: "a tenant's SP appliance (never its token)", usage: '--tenant T', options: { tenant: { type: 'string' } },
  async run(v, _p, t) {
    const r = await api<ApplianceView>(t(), 'GET', `/v1/tenants/${enc(need(v, 'tenant', 'T'))}/appliance`);
    show(v, r, () => `  url          ${r.url}\n  fingerprint  ${r.fingerprint}\n  endpoint     ${r.endpoint ?? '-'}\n  registered   ${r.registeredAt}`);
    return 0;
  },
});

// Production networks, replicas.
putListDelete<Network>({
  noun: 'network', what: 'production network', tenant: true, path: (v, n) => tenantPath(v, 'networks', n),
  putUsage: '--subnet CIDR --gateway IPV4 --vlan VLAN', putOptions: { subnet: { type: 'string' }, gateway: { type: 'string' }, vlan: { type: 'string' } },
  body: (v) => ({ subnet: need(v, 'subnet', 'CIDR'), gateway: need(v, 'gateway', 'IPV4'), vlan: int(v, 'vlan', 'VLAN') }),
  head: ['name', 'subnet', 'gateway', 'host', 'vlan', 'internet', 'mode'], row: (n) => [n.name, n.subnet, n.gateway, n.host, String(n.vlan), yes(n.internet), n.mode],
});
putListDelete<Replica>({
  noun: 'replica', what: 'replica', tenant: true, path: (v, n) => tenantPath(v, 'replicas', n),
  putUsage: '--network N --address IPV4/PREFIX --mac MAC [--restore-point RP]',
  putOptions: { network: { type: 'string' }, address: { type: 'string' }, mac: { type: 'string' }, 'restore-point': { type: 'string' } },
  body: (v) => ({
    network: need(v, 'network', 'N'), address: need(v, 'address', 'IPV4/PREFIX'), mac: need(v, 'mac', 'MAC'),
    ...(str(v, 'restore-point') !== undefined && { restorePoint: str(v, 'restore-point')! }),
  }),
  head: ['name', 'network', 'address', 'mac', 'state', 'restore point'], row: (r) => [r.name, r.network, r.address, r.mac, r.state, r.restorePoint ?? '-'],
});
verb({
  path: ['replica', 'power'], summary: 'replicas as the hypervisor driver sees them, with their power state', usage: '',
  async run(v, _p, t) {
    const r = await api<{ items: { tenant: string; name: string; host: string; power: string }[] }>(t(), 'GET', '/v1/replicas/power');
    show(v, r, () => table(['tenant', 'name', 'host', 'power'], r.items.map((x) => [x.tenant, x.name, x.host, x.power])));
    return 0;
  },
});

// Failover plans.
/** `db2:30` → {vm: db2, delaySeconds: 30}. */
export function parseVmDelay(text: string): { vm: string; delaySeconds: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`--vm "${text}": VM[:DELAY_SECONDS]`);
  return { vm: m[1]!, delaySeconds: Number(m[2] ?? 0) };
}

/** `name=web,kind=port,ip=198.51.100.10,proto=tcp,port=80,vm=web1[,target-port=8080]` → a plan rule. */
export function parseRule(text: string): PlanRule {
  const kv = new Map<string, string>();
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new UsageError(`--rule "${text}": KEY=VALUE pairs separated by commas (name, kind, ip, proto, port, vm, target-port)`);
    kv.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  const get = (k: string): string => {
    const x = kv.get(k);
    if (x === undefined) throw new UsageError(`--rule "${text}": ${k}= is missing`);
    return x;
  };
  const known = new Set(['name', 'kind', 'ip', 'proto', 'port', 'vm', 'target-port']);
  const unknown = [...kv.keys()].filter((k) => !known.has(k));
  if (unknown.length > 0) throw new UsageError(`--rule "${text}": unknown key ${unknown.join(', ')} (name, kind, ip, proto, port, vm, target-port)`);
  const num = (k: string, s: string): number => {
    if (!/^\d+$/.test(s)) throw new UsageError(`--rule "${text}": ${k}=${s} is not a port number`);
    return Number(s);
  };
  const kind = kv.get('kind') ?? (kv.has('port') ? 'port' : 'address');
  if (kind === 'address') return { name: get('name'), kind: 'address', publicAddress: get('ip'), vm: get('vm') };
  if (kind !== 'port') throw new UsageError(`--rule "${text}": kind=${kind}: port or address`);
  const proto = kv.get('proto') ?? 'tcp';
  if (proto !== 'tcp' && proto !== 'udp') throw new UsageError(`--rule "${text}": proto=${proto}: tcp or udp`);
  return {
    name: get('name'), kind: 'port', publicAddress: get('ip'), protocol: proto, publicPort: num('port', get('port')), vm: get('vm'),
    ...(kv.has('target-port') && { targetPort: num('target-port', get('target-port')) }),
  };
}

export function failoverPlanBody(v: Values): FailoverPlanBody {
  const file = str(v, 'file');
  if (file !== undefined) {
    if (strs(v, 'vm').length > 0 || strs(v, 'rule').length > 0) throw new UsageError('--file and --vm/--rule: one or the other');
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as FailoverPlanBody;
    } catch (e) {
      throw new UsageError(`--file ${file}: ${(e as Error).message}`);
    }
  }
  const vms = strs(v, 'vm').map(parseVmDelay);
  if (vms.length === 0) throw new UsageError('--vm VM[:DELAY] (in boot order, repeated) or --file plan.json is required');
  return { vms, publicRules: strs(v, 'rule').map(parseRule), ...(v['no-routing'] === true && { routeBetweenNetworks: false }) };
}

verb({
  path: ['failover-plan', 'put'], summary: 'create or change a failover plan: VMs in boot order with delays, public IP rules',
  usage: 'NAME --tenant T (--vm VM[:DELAY]... [--rule name=N,kind=port|address,ip=IP[,proto=tcp|udp,port=P,target-port=P],vm=VM]... [--no-routing] | --file plan.json)',
  positionals: ['NAME'],
  options: { tenant: { type: 'string' }, vm: { type: 'string', multiple: true }, rule: { type: 'string', multiple: true }, 'no-routing': { type: 'boolean' }, file: { type: 'string' } },
  async run(v, [name], t) {
    const r = await api<FailoverPlan>(t(), 'PUT', tenantPath(v, 'failover-plans', name), failoverPlanBody(v));
    show(v, r, () => formatFailoverPlan(r));
    return 0;
  },
});
verb({
  path: ['failover-plan', 'show'], summary: 'a failover plan', usage: 'NAME --tenant T', positionals: ['NAME'], options: { tenant: { type: 'string' } },
  async run(v, [name], t) {
    const r = await api<FailoverPlan>(t(), 'GET', tenantPath(v, 'failover-plans', name));
    show(v, r, () => formatFailoverPlan(r));
    return 0;
  },
});
verb({
  path: ['failover-plan', 'list'], summary: "a tenant's failover plans", usage: '--tenant T', options: { tenant: { type: 'string' } },
  async run(v, _p, t) {
    const r = await api<{ items: FailoverPlan[] }>(t(), 'GET', tenantPath(v, 'failover-plans'));
    show(v, r, () => table(['name', 'boot order', 'public IP rules'], r.items.map((p) => [p.name, p.vms.map((x) => x.vm).join(', '), String(p.publicRules.length)])));
    return 0;
  },
});
verb({
  path: ['failover-plan', 'delete'], summary: 'delete a failover plan', usage: 'NAME --tenant T', positionals: ['NAME'], options: { tenant: { type: 'string' } },
  async run(v, [name], t) {
    await api(t(), 'DELETE', tenantPath(v, 'failover-plans', name));
    if (v.json !== true) console.log(`failover plan ${name!} deleted`);
    return 0;
  },
});

// Pairing.
verb({
  path: ['pairing-token'], summary: "a one-time pairing token for a tenant appliance, from the tenant's SP appliance (printed once)",
  usage: '--tenant T [--ttl SECONDS]', options: { tenant: { type: 'string' }, ttl: { type: 'string' } },
  async run(v, _p, t) {
    const r = await api<Static<typeof PairingTokenAnswer>>(t(), 'POST', tenantPath(v, 'pairing-tokens'), { ttlSeconds: int(v, 'ttl', 'SECONDS', 3600) });
    show(v, r, () => r.token);
    if (v.json !== true) console.error(`pairing token for segments ${r.segments.join(',')}, valid until ${r.expiresAt}; on the tenant appliance: nea pair TOKEN`);
    return 0;
  },
});

// Operations.
const OP_OPTIONS = { tenant: { type: 'string' }, vm: { type: 'string', multiple: true }, 'no-wait': { type: 'boolean' } } as const;
verb({
  path: ['failover'], summary: 'fail over: some VMs (partial), the site by a failover plan (full), or a test of a plan; follows the job',
  usage: '--tenant T (--vm VM [--vm VM2 ...] | --plan P | --test --plan P) [--no-wait]',
  options: { ...OP_OPTIONS, plan: { type: 'string' }, test: { type: 'boolean' } },
  async run(v, _p, t) {
    const vms = strs(v, 'vm');
    const plan = str(v, 'plan');
    if ((vms.length > 0) === (plan !== undefined)) throw new UsageError('either --vm VM (partial site failover) or --plan P (full, or with --test a test failover)');
    if (v.test === true && plan === undefined) throw new UsageError('--test needs --plan P');
    const body = plan !== undefined ? { kind: v.test === true ? 'test' : 'full', plan } : { kind: 'partial', vms };
    return operation(v, t(), tenantPath(v, 'failover'), body);
  },
});
for (const [name, summary] of [
  ['failback', 'fail back replicas in failover to production (all, or --vm ones); follows the job'],
  ['undo-failover', 'undo a failover: replicas off and reverted to their restore point; follows the job'],
  ['permanent-failover', 'make a failover permanent: the replicas stay as production in the cloud; follows the job'],
] as const) {
  verb({
    path: [name], summary, usage: '--tenant T [--vm VM ...] [--no-wait]', options: OP_OPTIONS,
    run(v, _p, t) {
      const vms = strs(v, 'vm');
      return operation(v, t(), tenantPath(v, name), vms.length > 0 ? { vms } : {});
    },
  });
}

// Jobs, audit.
verb({
  path: ['job', 'show'], summary: 'a job with its steps', usage: 'ID', positionals: ['ID'],
  async run(v, [id], t) {
    const r = await api<JobView>(t(), 'GET', `/v1/jobs/${enc(id!)}`);
    show(v, r, () => formatJob(r));
    return 0;
  },
});
verb({
  path: ['job', 'wait'], summary: 'follow a job until it ends (exit 0: succeeded, 1: otherwise)', usage: 'ID', positionals: ['ID'],
  async run(v, [id], t) {
    const target = t();
    const j = await api<JobView>(target, 'GET', `/v1/jobs/${enc(id!)}`);
    return jobOutcome(v, await followJob(target, j, { quiet: v.json === true }));
  },
});
verb({
  path: ['job', 'list'], summary: 'jobs, newest first', usage: '[--tenant T] [--limit N]', options: { tenant: { type: 'string' }, limit: { type: 'string' } },
  async run(v, _p, t) {
    const q = new URLSearchParams({ ...(str(v, 'tenant') !== undefined && { tenant: str(v, 'tenant')! }), ...(str(v, 'limit') !== undefined && { limit: str(v, 'limit')! }) }).toString();
    const r = await api<{ items: JobView[] }>(t(), 'GET', `/v1/jobs${q !== '' ? `?${q}` : ''}`);
    show(v, r, () => table(['id', 'tenant', 'kind', 'state', 'steps', 'by', 'started', 'took'], r.items.map((j) => [
      j.id, j.tenant, j.kind, j.state, `${j.progress.done}/${j.progress.total}`, j.createdBy, j.createdAt, secs(j.createdAt, j.endedAt) || '-',
    ])));
    return 0;
  },
});
verb({
  path: ['audit'], summary: 'the audit log, newest first: who changed what, with the outcome', usage: '[--tenant T] [--limit N]',
  options: { tenant: { type: 'string' }, limit: { type: 'string' } },
  async run(v, _p, t) {
    const q = new URLSearchParams({ ...(str(v, 'tenant') !== undefined && { tenant: str(v, 'tenant')! }), ...(str(v, 'limit') !== undefined && { limit: str(v, 'limit')! }) }).toString();
    const r = await api<{ items: AuditEntry[] }>(t(), 'GET', `/v1/audit${q !== '' ? `?${q}` : ''}`);
    show(v, r, () => table(['at', 'actor', 'action', 'tenant', 'target', 'outcome', 'detail'], r.items.map((a) => [
      a.at, a.actor, a.action, a.tenant ?? '-', a.target, a.outcome, (a.detail ?? '').slice(0, 80),
    ])));
    return 0;
  },
});

// Tokens.
verb({
  path: ['token', 'create'], summary: "issue an API token: the SP's (admin) or one tenant's (--tenant); printed once",
  usage: '--name NAME [--tenant T | --scope admin]', options: { name: { type: 'string' }, tenant: { type: 'string' }, scope: { type: 'string' } },
  async run(v, _p, t) {
    const tenant = str(v, 'tenant');
    const scope = str(v, 'scope') ?? (tenant !== undefined ? 'tenant' : 'admin');
    if (scope !== 'admin' && scope !== 'tenant') throw new UsageError('--scope: admin or tenant');
    if (scope === 'tenant' && tenant === undefined) throw new UsageError('--tenant T is required for a tenant token');
    if (scope === 'admin' && tenant !== undefined) throw new UsageError('an admin token is not one tenant\'s: drop --tenant or --scope admin');
    const r = await api<ControlTokenCreated>(t(), 'POST', '/v1/tokens', { name: need(v, 'name', 'NAME'), scope, ...(tenant !== undefined && { tenant }) });
    show(v, r, () => r.token);
    if (v.json !== true) console.error(`token ${r.id} (${r.tenant !== undefined ? `tenant ${r.tenant}` : 'admin'}); revoke with: nea control token revoke ${r.id}`);
    return 0;
  },
});
verb({
  path: ['token', 'list'], summary: 'list API tokens (never their secrets)', usage: '',
  async run(v, _p, t) {
    const r = await api<{ items: ControlTokenView[] }>(t(), 'GET', '/v1/tokens');
    show(v, r, () => table(['id', 'name', 'scope', 'tenant', 'created', 'revoked'], r.items.map((x) => [x.id, x.name, x.scope, x.tenant ?? '-', x.createdAt, x.revokedAt ?? '-'])));
    return 0;
  },
});
verb({
  path: ['token', 'revoke'], summary: 'revoke an API token (its next request is refused)', usage: 'ID', positionals: ['ID'],
  async run(v, [id], t) {
    await api(t(), 'DELETE', `/v1/tokens/${enc(id!)}`);
    if (v.json !== true) console.log(`token ${id!} revoked`);
    return 0;
  },
});

// --- the service -----------------------------------------------------------------------

/** `ADDR:PORT` or `[V6]:PORT` (port 0: any free port). */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new UsageError(`--listen: "${text}" must be ADDR:PORT or [V6]:PORT`);
  return { host: m[1]!, port };
}

/** The driver `--driver` and `--driver-config` name (checked before anything is created). */
function driverChoice(name: string | undefined, config: string | undefined): { kind: 'fake' } | { kind: 'netns'; config: string } {
  const driver = name ?? (config !== undefined ? 'netns' : undefined);
  if (driver === 'fake') return { kind: 'fake' };
  if (driver === 'netns') {
    if (config === undefined) throw new UsageError('--driver netns needs --driver-config FILE (docs/control-plane.md)');
    return { kind: 'netns', config };
  }
  throw new UsageError(driver === undefined ? '--driver netns|fake is required (netns: with --driver-config FILE)' : `--driver ${driver}: netns or fake`);
}

async function makeDriver(c: ReturnType<typeof driverChoice>): Promise<HypervisorDriver> {
  if (c.kind === 'fake') return new FakeDriver();
  const m = await import('../lab/netns-driver.js');
  return m.createNetnsDriver(c.config);
}

/**
 * The bootstrap admin token of `<db>.client.json`: the one already there
 * while it still authenticates as an admin, else a new one (also on the
 * very first start, when there are no tokens at all).
 */
export function clientToken(cp: ControlPlane, file: string): { token: string; created: boolean } {
  if (existsSync(file)) {
    try {
      const token = (JSON.parse(readFileSync(file, 'utf8')) as Partial<ClientFile>).token;
      if (typeof token === 'string' && cp.authenticate(`Bearer ${token}`).scope === 'admin') return { token, created: false };
    } catch { /* damaged, unknown or revoked: a new one */ }
  }
  const t = cp.createToken({ name: 'local_admin', scope: 'admin' });
  cp.audit(SYSTEM, 'token.create', undefined, t.name, 'ok', `admin token ${t.id} for ${file}`);
  return { token: t.token, created: true };
}

register({
  path: ['control', 'run'],
  summary: "run the SP's control plane (API over HTTPS) until SIGTERM; unfinished jobs resume",
  usage: `nea control run [--db FILE (default ${DEFAULT_DB})] [--listen ADDR:PORT (default 0.0.0.0:${DEFAULT_PORT})] [--tls-dir DIR (default: the database's)] --driver netns|fake [--driver-config FILE]`,
  async run(args) {
    const { v } = parseCommand(args, { db: { type: 'string' }, listen: { type: 'string' }, 'tls-dir': { type: 'string' }, driver: { type: 'string' }, 'driver-config': { type: 'string' } });
    const db = str(v, 'db') ?? DEFAULT_DB;
    const listen = parseListenAddress(str(v, 'listen') ?? `0.0.0.0:${DEFAULT_PORT}`);
    const choice = driverChoice(str(v, 'driver'), str(v, 'driver-config'));
    const log = createLogger().child('control');
    mkdirSync(dirname(db), { recursive: true, mode: 0o700 });
    // The database holds the SP appliances' tokens: 0600 (SQLite gives its -wal and -shm files the same mode).
    if (!existsSync(db)) closeSync(openSync(db, 'a', 0o600));
    const tls = await loadOrCreateTls(str(v, 'tls-dir') ?? dirname(db), 'nea-control');
    const driver = await makeDriver(choice);
    let cp: ControlPlane;
    try {
      cp = new ControlPlane({ db, driver, log });
    } catch (e) {
      await driver.close();
      throw e;
    }
    let stopSignal: string | undefined;
    let wake = (): void => { /* replaced below */ };
    const onSignal = (sig: string): void => { stopSignal = sig; wake(); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const app = await buildControlApi({ cp, log: log.child('api'), tls });
    try {
      const resumed = cp.start();
      if (resumed.length > 0) log.info('resuming unfinished jobs', { jobs: resumed.join(',') });
      await app.listen({ host: listen.host, port: listen.port });
    } catch (e) {
      await app.close();
      await cp.close();
      throw e instanceof NeaError ? e : new NeaError('INVALID_INPUT', `cannot serve on ${listen.host}:${listen.port}: ${(e as Error).message}`, { cause: e });
    }
    const port = (app.server.address() as AddressInfo).port;
    const local = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
    const url = `https://${local.includes(':') ? `[${local}]` : local}:${port}`;
    const file = clientFileOf(db);
    const { token, created } = clientToken(cp, file);
    writeFileAtomic(file, JSON.stringify({ url, fingerprint: tls.fingerprint, token } satisfies ClientFile, null, 2) + '\n', 0o600);
    log.info('control plane running', { address: `${listen.host}:${port}`, fingerprint: tls.fingerprint, driver: driver.name, db, client: file, newToken: created });
    if (stopSignal === undefined) await new Promise<void>((resolve) => { wake = resolve; });
    log.info('stopping: jobs stop at a step boundary and resume on the next start', { signal: stopSignal });
    await app.close();
    await cp.close();
    log.info('stopped');
    return 0;
  },
});
