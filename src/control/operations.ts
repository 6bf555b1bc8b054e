/**
 * Failover operations as lists of steps (planning), and what each step does
 * (execution). Planning reads the records once, when the job is created, and
 * writes into each step its undo with the values it replaces, so a rollback
 * restores exactly what was there — also after a restart.
 *
 * What each operation does (docs/control-plane.md has the narrative):
 *
 * | operation | steps |
 * |---|---|
 * | partial failover (VMs) | tenant → partial; each VM's network → extend; per VM: state Failover, power on; per VM: probe its production gateway through the tunnel (fatal) |
 * | full failover (plan) | tenant → full; every network → gateway (internet as allocated); routing between networks (plan); per plan VM in order: delay, state Failover, power on; public IP rules; per VM: probe the SP gateway (non-fatal: degraded) |
 * | test failover (plan) | tenant → test; the plan's networks → gateway without internet (nothing reaches production or the internet); per VM: delay, state Failover, power on; probe (non-fatal) |
 * | failback (VMs or site) | per VM: state Failback; public IP rules removed, routing off (site); per VM: power off, state Normal; networks with no replica left in failover → isolated; tenant → none when none is left |
 * | undo failover | as failback, and each replica reverted to its restore point |
 * | permanent failover (VMs) | per VM: state Permanent (it stays on, its network stays as it is) |
 */
import { Address4 } from 'ip-address';
import type { PublicRuleBody, SegmentBody } from '../protocol/appliance-api.js';
import type { FailoverRequest, ReplicaState, TenantFailoverState } from '../protocol/control-api.js';
import { NeaError } from '../shared/errors.js';
import type { ApplianceApi } from './appliances.js';
import type { HypervisorDriver, ReplicaSpec } from './driver.js';
import type { Job, Step, StepExecutor, StepSpec } from './jobs.js';
import type { NetworkRecord, Records, ReplicaRecord } from './records.js';

export type PlannedStep = Omit<Step, 'state' | 'attempts'>;

export interface Planned {
  kind: string;
  steps: PlannedStep[];
  /** Why there is nothing to do, when steps is empty. */
  nothing?: string;
}

const busy = (msg: string): never => { throw new NeaError('CONTROL_BUSY', msg); };
const KIND_TEXT: Record<TenantFailoverState, string> = { none: 'no failover', partial: 'partial site failover', full: 'full site failover', test: 'test failover' };

function tenantStateSteps(from: { failover: TenantFailoverState; plan?: string }, to: TenantFailoverState, plan?: string): PlannedStep[] {
  if (from.failover === to && from.plan === plan) return [];
  return [{
    title: `tenant → ${KIND_TEXT[to]}${plan !== undefined ? ` (plan ${plan})` : ''}`,
    spec: { op: 'tenant-state', failover: to, ...(plan !== undefined && { plan }) },
    undo: { op: 'tenant-state', failover: from.failover, ...(from.plan !== undefined && { plan: from.plan }) },
  }];
}

function segmentStep(n: NetworkRecord, mode: 'isolated' | 'extend' | 'gateway', internet: boolean): PlannedStep {
  return {
    title: `network ${n.name} (VLAN ${n.vlan}) → ${mode}${mode === 'gateway' ? (internet ? ' with internet' : ' without internet') : ''}`,
    spec: { op: 'segment', network: n.name, mode, internet },
    undo: { op: 'segment', network: n.name, mode: n.mode, internet: n.internet },
  };
}

function stateStep(r: ReplicaRecord, state: ReplicaState): PlannedStep {
  return { title: `${r.name}: state ${state}`, spec: { op: 'replica-state', vm: r.name, state }, undo: { op: 'replica-state', vm: r.name, state: r.state } };
}

const powerOn = (r: ReplicaRecord): PlannedStep => ({ title: `${r.name}: power on`, spec: { op: 'power-on', vm: r.name }, undo: { op: 'power-off', vm: r.name } });
const powerOff = (r: ReplicaRecord): PlannedStep => ({ title: `${r.name}: power off`, spec: { op: 'power-off', vm: r.name }, undo: { op: 'power-on', vm: r.name } });

function probeStep(r: ReplicaRecord, fatal: boolean, via: string): PlannedStep {
  return { title: `${r.name}: check it reaches ${r.gateway} (${via})`, spec: { op: 'probe', vm: r.name, kind: 'icmp', address: r.gateway, fatal } };
}

function replicasNamed(records: Records, tenant: string, names: readonly string[]): ReplicaRecord[] {
  const all = new Map(records.replicas(tenant).map((r) => [r.name, r]));
  return names.map((n) => all.get(n) ?? (() => { throw new NeaError('CONTROL_NOT_FOUND', `tenant ${tenant} has no replica ${n}`); })());
}

/** Public IP rule of a plan → the appliance's rule. */
export function applianceRule(rule: { kind: 'port' | 'address'; publicAddress: string; vm: string; protocol?: 'tcp' | 'udp'; publicPort?: number; targetPort?: number }, r: ReplicaRecord): PublicRuleBody {
  const target = r.address.split('/')[0]!;
  if (rule.kind === 'address') return { kind: 'address', segment: r.vlan, publicAddress: rule.publicAddress, target };
  return {
    kind: 'port', segment: r.vlan, publicAddress: rule.publicAddress, protocol: rule.protocol!, publicPort: rule.publicPort!, target,
    ...(rule.targetPort !== undefined && { targetPort: rule.targetPort }),
  };
}

/** Plans a failover of `req`'s kind; refuses what contradicts the tenant's state (CONTROL_BUSY). */
export function planFailover(records: Records, tenant: string, req: FailoverRequest): Planned {
  const cur = records.tenantFailover(tenant);
  const nets = new Map(records.networks(tenant).map((n) => [n.name, n]));
  if (req.kind === 'partial') {
    if (cur.failover === 'full' || cur.failover === 'test') busy(`tenant ${tenant} is in ${KIND_TEXT[cur.failover]} (plan ${cur.plan ?? '?'}); fail back or undo it before a partial site failover — one kind of failover at a time`);
    const vms = replicasNamed(records, tenant, req.vms);
    const perm = vms.filter((r) => r.state === 'Permanent');
    if (perm.length > 0) throw new NeaError('CONTROL_CONFLICT', `replica(s) ${perm.map((r) => r.name).join(', ')} are in permanent failover already`);
    const todo = vms.filter((r) => r.state !== 'Failover');
    if (todo.length === 0) return { kind: 'partial-failover', steps: [], nothing: `${vms.map((r) => r.name).join(', ')} already in failover` };
    const steps: PlannedStep[] = [...tenantStateSteps(cur, 'partial')];
    for (const name of new Set(todo.map((r) => r.network))) {
      const n = nets.get(name)!;
      if (n.mode !== 'extend') steps.push(segmentStep(n, 'extend', n.internet));
    }
    for (const r of todo) steps.push(stateStep(r, 'Failover'), powerOn(r));
    for (const r of todo) steps.push(probeStep(r, true, 'the production gateway, through the tunnel'));
    return { kind: 'partial-failover', steps };
  }
  const plan = records.failoverPlan(tenant, req.plan);
  const kind = req.kind === 'full' ? 'full-failover' : 'test-failover';
  if (cur.failover !== 'none' && !(cur.failover === req.kind && cur.plan === req.plan)) {
    busy(`tenant ${tenant} is in ${KIND_TEXT[cur.failover]}${cur.plan !== undefined ? ` (plan ${cur.plan})` : ''}; fail back or undo it before a ${KIND_TEXT[req.kind]} — one kind of failover at a time`);
  }
  const vms = replicasNamed(records, tenant, plan.vms.map((v) => v.vm));
  if (cur.failover === req.kind && vms.every((r) => r.state === 'Failover' || r.state === 'Permanent')) {
    return { kind, steps: [], nothing: `tenant ${tenant} is in ${KIND_TEXT[req.kind]} with plan ${req.plan} already` };
  }
  const steps: PlannedStep[] = [...tenantStateSteps(cur, req.kind, req.plan)];
  const full = req.kind === 'full';
  const netNames = full ? [...nets.keys()] : [...new Set(vms.map((r) => r.network))];
  for (const name of netNames) {
    const n = nets.get(name)!;
    const internet = full && n.internet;
    if (n.mode !== 'gateway') steps.push(segmentStep(n, 'gateway', internet));
  }
  const route = full && (plan.routeBetweenNetworks ?? true);
  if (route) steps.push({ title: 'routing between networks on', spec: { op: 'routing', betweenSegments: true }, undo: { op: 'routing', betweenSegments: false } });
  plan.vms.forEach((v, i) => {
    const r = vms[i]!;
    if (r.state === 'Failover' || r.state === 'Permanent') return;
    if (v.delaySeconds > 0) steps.push({ title: `wait ${v.delaySeconds} s before ${r.name}`, spec: { op: 'delay', seconds: v.delaySeconds } });
    steps.push(stateStep(r, 'Failover'), powerOn(r));
  });
  if (full) {
    for (const rule of plan.publicRules) {
      const r = vms.find((x) => x.name === rule.vm)!;
      const body = applianceRule(rule, r);
      steps.push({
        title: `public IP rule ${rule.name}: ${rule.publicAddress}${rule.kind === 'port' ? `:${rule.publicPort} ${rule.protocol}` : ''} → ${r.name}`,
        spec: { op: 'rule', name: rule.name, rule: { ...body } }, undo: { op: 'unrule', name: rule.name, rule: { ...body } },
      });
    }
  }
  for (const r of vms) steps.push(probeStep(r, false, full ? 'the SP appliance as gateway' : 'the isolated test network'));
  return { kind, steps };
}

/**
 * Plans a failback (or, with `undo`, an undo of the failover: the same plus
 * each replica reverted to its restore point) of `vms`, or of every replica
 * in failover when absent.
 */
export function planFailback(records: Records, tenant: string, vmNames: readonly string[] | undefined, undo: boolean): Planned {
  const cur = records.tenantFailover(tenant);
  const kind = undo ? 'undo-failover' : 'failback';
  const all = records.replicas(tenant);
  const vms = vmNames === undefined ? all.filter((r) => r.state === 'Failover' || r.state === 'Failback') : replicasNamed(records, tenant, vmNames);
  const perm = vms.filter((r) => r.state === 'Permanent');
  if (perm.length > 0) throw new NeaError('CONTROL_CONFLICT', `replica(s) ${perm.map((r) => r.name).join(', ')} are in permanent failover: they have become the production VMs and do not fail back`);
  const todo = vms.filter((r) => r.state === 'Failover' || r.state === 'Failback');
  const site = vmNames === undefined || cur.failover === 'full' || cur.failover === 'test';
  if (vmNames !== undefined && site && todo.length < all.filter((r) => r.state === 'Failover' || r.state === 'Failback').length) {
    busy(`tenant ${tenant} is in ${KIND_TEXT[cur.failover]}: it fails back as a whole (omit the VM list)`);
  }
  if (todo.length === 0 && cur.failover === 'none') return { kind, steps: [], nothing: `tenant ${tenant} has nothing in failover` };
  const steps: PlannedStep[] = [];
  for (const r of todo) if (r.state !== 'Failback') steps.push(stateStep(r, 'Failback'));
  const left = all.filter((r) => (r.state === 'Failover' || r.state === 'Permanent') && !todo.some((t) => t.name === r.name));
  if (site) {
    if (cur.failover === 'full' && cur.plan !== undefined) {
      let plan;
      try { plan = records.failoverPlan(tenant, cur.plan); } catch { plan = undefined; }
      for (const rule of plan?.publicRules ?? []) {
        const r = all.find((x) => x.name === rule.vm);
        if (!r) continue;
        const body = applianceRule(rule, r);
        steps.push({ title: `public IP rule ${rule.name} removed`, spec: { op: 'unrule', name: rule.name, rule: { ...body } }, undo: { op: 'rule', name: rule.name, rule: { ...body } } });
      }
      steps.push({ title: 'routing between networks off', spec: { op: 'routing', betweenSegments: false }, undo: { op: 'routing', betweenSegments: true } });
    }
  }
  for (const r of [...todo].reverse()) {
    steps.push(powerOff(r));
    if (undo) steps.push({ title: `${r.name}: revert to ${r.restorePoint ?? 'the latest restore point'}`, spec: { op: 'revert', vm: r.name } });
  }
  for (const n of records.networks(tenant)) {
    if (n.mode === 'isolated') continue;
    if (left.some((r) => r.network === n.name)) continue;
    steps.push(segmentStep(n, 'isolated', n.internet));
  }
  for (const r of todo) steps.push({ ...stateStep(r, 'Normal'), undo: { op: 'replica-state', vm: r.name, state: r.state === 'Failback' ? 'Failover' : r.state } });
  if (left.length === 0) steps.push(...tenantStateSteps(cur, 'none'));
  return { kind, steps };
}

/** Plans making `vms` (in failover) permanent. */
export function planPermanent(records: Records, tenant: string, vmNames: readonly string[] | undefined): Planned {
  const all = records.replicas(tenant);
  const vms = vmNames === undefined ? all.filter((r) => r.state === 'Failover') : replicasNamed(records, tenant, vmNames);
  const wrong = vms.filter((r) => r.state !== 'Failover' && r.state !== 'Permanent');
  if (wrong.length > 0) throw new NeaError('CONTROL_CONFLICT', `replica(s) ${wrong.map((r) => `${r.name} (${r.state})`).join(', ')} are not in failover; only a replica in failover can become permanent`);
  if (records.tenantFailover(tenant).failover === 'test') busy(`tenant ${tenant} is in a test failover; a test does not become permanent — undo it`);
  const todo = vms.filter((r) => r.state === 'Failover');
  if (todo.length === 0) return { kind: 'permanent-failover', steps: [], nothing: 'nothing in failover to make permanent' };
  return { kind: 'permanent-failover', steps: todo.map((r) => stateStep(r, 'Permanent')) };
}

/** What the driver needs of a replica. */
export function replicaSpec(r: ReplicaRecord): ReplicaSpec {
  return {
    tenant: r.tenant, name: r.name, host: r.host, trunk: r.trunk, vlan: r.vlan, address: r.address, mac: r.mac, gateway: r.gateway,
    ...(r.restorePoint !== undefined && { restorePoint: r.restorePoint }),
  };
}

/** The appliance's segment for a production network in `mode`. */
export function segmentBody(n: NetworkRecord, mode: 'isolated' | 'extend' | 'gateway', internet: boolean): SegmentBody {
  const prefix = new Address4(n.subnet).subnetMask;
  return { name: n.name, backing: { kind: 'vlan', trunk: n.trunk, vlan: n.vlan }, mode, internet: mode === 'gateway' && internet, gateway: { ipv4: `${n.gateway}/${prefix}` } };
}

export interface ExecutorDeps {
  records: Records;
  driver: HypervisorDriver;
  appliance: (tenant: string) => ApplianceApi;
  /** How long a probe keeps trying (ms; default 60 s) and each try's timeout. */
  probeDeadlineMs?: number;
  probeTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Executes steps against the records, the hypervisor and the SP appliance. */
export function executor(d: ExecutorDeps): StepExecutor {
  const sleep = d.sleep ?? defaultSleep;
  return async (job: Job, step: Step, spec: StepSpec, save: () => void) => {
    const t = job.tenant;
    switch (spec.op) {
      case 'tenant-state':
        d.records.setTenantFailover(t, spec.failover, spec.plan);
        return {};
      case 'segment': {
        const n = d.records.network(t, spec.network);
        await d.appliance(t).putSegment(n.vlan, segmentBody(n, spec.mode, spec.internet));
        d.records.setNetworkMode(t, n.name, spec.mode);
        return { detail: `segment ${n.vlan} in ${spec.mode} mode` };
      }
      case 'routing':
        await d.appliance(t).putRouting({ betweenSegments: spec.betweenSegments });
        return {};
      case 'power-on':
        await d.driver.powerOn(replicaSpec(d.records.replica(t, spec.vm)));
        return {};
      case 'power-off':
        await d.driver.powerOff(replicaSpec(d.records.replica(t, spec.vm)));
        return {};
      case 'revert':
        await d.driver.revert(replicaSpec(d.records.replica(t, spec.vm)));
        return {};
      case 'replica-state':
        d.records.setReplicaState(t, spec.vm, spec.state);
        return {};
      case 'delay': {
        step.data ??= {};
        if (typeof step.data.until !== 'number') {
          step.data.until = Date.now() + spec.seconds * 1000;
          save();
        }
        const left = step.data.until - Date.now();
        if (left > 0) await sleep(left);
        return {};
      }
      case 'rule':
        await d.appliance(t).putRule(spec.name, spec.rule as unknown as PublicRuleBody);
        return {};
      case 'unrule':
        await d.appliance(t).deleteRule(spec.name);
        return {};
      case 'probe': {
        const vm = replicaSpec(d.records.replica(t, spec.vm));
        const deadline = Date.now() + (d.probeDeadlineMs ?? 60_000);
        let last = '';
        for (;;) {
          const r = await d.driver.probe(vm, { kind: spec.kind, address: spec.address, ...(spec.port !== undefined && { port: spec.port }) }, d.probeTimeoutMs ?? 1000);
          if (r.ok) return { detail: r.detail };
          last = r.detail;
          if (Date.now() >= deadline) break;
          await sleep(500);
        }
        if (spec.fatal) throw new Error(`${spec.vm} does not answer: ${last}`);
        return { detail: `${spec.vm} does not answer: ${last}`, warning: true };
      }
    }
  };
}
