/**
 * The lab world: builds and tears down, in network namespaces on this
 * machine, the SP site and the tenants' production sites of plan.ts. It
 * starts the long-running processes (fabric, VM services, appliances, the
 * control plane) detached and records them by pid (procs.ts), so another
 * process can tear everything down, even after a crash: {@link teardown}
 * stops the recorded processes and deletes every namespace whose name
 * starts with the prefix (links, bridges and nft tables live inside them).
 *
 *                                 ┌──────────── management 192.0.2.0/24 (bridge in <p>-mgmt) ─────────────┐
 *   [<p>-control] control plane ──┤ .2                                      .10+i mgmt0 [<p>-<t>-sp] SP appliance
 *     + netns driver: replicas                                                      ext0 .2+i ──┐   trunk0
 *       <p>-r-<t>-<vm> plugged into                                                              │     │ trunk, all VLANs
 *       the fabric as access ports     [<p>-fabric] `nea lab fabric`, switch "cloud" ◄─────────────────┘
 *                                                                                                │
 *   [<p>-internet] .10 ── 203.0.113.0/24 ── [<p>-router] .1 ═══ external 198.51.100.0/24 (bridge in <p>-wan)
 *                                                                                                │
 *   [<p>-<t>-site] router: br-web 10.1.0.1 ─ web1 .11, web2 .12        wan0 .64+i [<p>-<t>-ta] tenant appliance
 *                          br-db  10.2.0.1 ─ db1 .11,  db2 .12 ─── lan1 (web), lan2 (db) ─┘
 *
 * The world builds in phases, because some of it needs what the control
 * plane allocates: {@link LabWorld.buildBase} (everything but the
 * appliances and the control plane), {@link LabWorld.startControlPlane},
 * {@link LabWorld.startSpAppliance} (its public pool comes from the
 * tenant's subscription), {@link LabWorld.startTenantAppliance} (its
 * segment ids are the cloud VLANs the control plane allocated).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createNetns, deleteNetns, listNetns } from '../netconfig/netns.js';
import { ApiError, apiRequest, type ApiTarget } from '../shared/api-client.js';
import { APPLIANCE_NODE_OPTIONS } from '../shared/node-options.js';
import { fabricRequest } from './fabric/control.js';
import { inNetns } from './hop.js';
import type { NetnsDriverConfig } from './netns-driver.js';
import { APPLIANCE_API_PORT, labPlan, TUNNEL_PORT, type LabPlan, type TenantPlan } from './plan.js';
import { probe, type Check, type CheckResult } from './probe.js';
import { isRunning, ProcTable } from './procs.js';
import type { VmIdentity } from './vm-service.js';

const execFileP = promisify(execFile);

/** The compiled CLI (from src/lab and dist/lab alike: both sit two levels below the root). */
export const NEA_BIN = fileURLToPath(new URL('../../dist/cli/nea.js', import.meta.url));

export interface LabWorldOptions {
  /** Namespace name prefix: `nlab` for `nea lab`; the netns tests use their run's prefix. */
  prefix: string;
  /** Where pids, logs, configs and the appliances' and control plane's state live. */
  stateDir: string;
  tenants: number;
  /** Node executable for the lab's processes; default this one. */
  node?: string;
}

/** One segment of a tenant appliance: a production network and the segment id (its cloud VLAN). */
export interface TenantSegment {
  network: 'web' | 'db';
  id: number;
}

/** Where the SP appliance's management API is and how to use it. */
export interface ApplianceAccess {
  url: string;
  fingerprint: string;
  token: string;
  endpoint: string;
}

async function sh(cmd: string, args: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<string> {
  try {
    if (opts.input !== undefined) {
      return await new Promise<string>((resolve, reject) => {
        const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
          else resolve(stdout);
        });
        child.stdin?.end(opts.input);
      });
    }
    return (await execFileP(cmd, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** Runs `ip` commands in namespace `ns`, one batch (`ip -batch -`): fails on the first that fails. */
function ipBatch(ns: string, lines: readonly string[]): Promise<string> {
  return sh('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Thrown by a waitFor condition: stop waiting, this will not get better (a process exited). */
class Hopeless extends Error {}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof Hopeless) throw new Error(e.message);
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names what the file holds
function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export class LabWorld {
  readonly plan: LabPlan;
  readonly procs: ProcTable;
  private readonly node: string;

  constructor(readonly opts: LabWorldOptions) {
    this.plan = labPlan(opts.prefix, opts.tenants);
    this.procs = new ProcTable(opts.stateDir);
    this.node = opts.node ?? process.execPath;
  }

  get stateDir(): string { return this.opts.stateDir; }
  get fabricSocket(): string { return join(this.stateDir, 'fabric.sock'); }
  get controlDb(): string { return join(this.stateDir, 'control', 'control.db'); }
  get driverConfigFile(): string { return join(this.stateDir, 'control', 'driver.json'); }
  applianceDir(t: TenantPlan, role: 'sp' | 'ta'): string { return join(this.stateDir, 'appliances', `${t.name}-${role}`); }

  tenant(name: string): TenantPlan {
    const t = this.plan.tenants.find((x) => x.name === name);
    if (!t) throw new Error(`no tenant ${name} in the lab (tenants: ${this.plan.tenants.map((x) => x.name).join(', ')})`);
    return t;
  }

  /** Every namespace of this world's prefix that exists now (replicas included). */
  namespaces(): string[] {
    return listNetns().filter((n) => n.startsWith(`${this.plan.prefix}-`));
  }

  private async netns(name: string): Promise<void> {
    if (!listNetns().includes(name)) createNetns(name);
    await ipBatch(name, ['link set lo up']);
  }

  /** A veth pair `a:aIf` ⇄ `b:bIf`, both up. */
  private async veth(a: string, aIf: string, b: string, bIf: string): Promise<void> {
    await ipBatch(a, [`link add ${aIf} type veth peer name ${bIf} netns ${b}`, `link set ${aIf} up`]);
    await ipBatch(b, [`link set ${bIf} up`]);
  }

  private async sysctl(ns: string, settings: readonly string[]): Promise<void> {
    await sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings]);
  }

  // ---- phase 1: namespaces, networks, fabric, VM services -------------------------

  /**
   * Builds everything but the appliances and the control plane: the SP's
   * management and external networks, router and internet host, the
   * fabric (switch `cloud`), each tenant's production site (router, four
   * VMs) and the namespaces and links of its appliances, and one process
   * serving every VM's and the internet host's identity. `step` reports
   * progress.
   */
  async buildBase(step: <T>(name: string, fn: () => Promise<T>) => Promise<T> = (_n, fn) => fn()): Promise<void> {
    const p = this.plan;
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    await step('SP site: management and external networks, router, internet host', async () => {
      for (const n of [p.fabricNetns, p.mgmtNetns, p.wanNetns, p.routerNetns, p.internetNetns, p.controlNetns]) await this.netns(n);
      await ipBatch(p.mgmtNetns, ['link add br0 type bridge', 'link set br0 up']);
      await ipBatch(p.wanNetns, ['link add br0 type bridge', 'link set br0 up']);
      await this.veth(p.controlNetns, 'mgmt0', p.mgmtNetns, 'control');
      await ipBatch(p.mgmtNetns, ['link set control master br0']);
      await ipBatch(p.controlNetns, [`addr add ${p.controlAddress}/24 dev mgmt0`]);
      await this.veth(p.routerNetns, 'wan0', p.wanNetns, 'router');
      await ipBatch(p.wanNetns, ['link set router master br0']);
      await this.veth(p.routerNetns, 'inet0', p.internetNetns, 'eth0');
      await ipBatch(p.routerNetns, [`addr add ${p.routerWanAddress}/24 dev wan0`, `addr add ${p.routerInternetAddress}/24 dev inet0`]);
      await this.sysctl(p.routerNetns, ['net.ipv4.ip_forward=1']);
      await ipBatch(p.internetNetns, [`addr add ${p.internetAddress}/24 dev eth0`, `route add default via ${p.routerInternetAddress}`]);
    });
    await step('cloud host switch fabric (switch "cloud", control socket)', () => this.startFabric());
    await step(`production sites of ${p.tenants.length} tenant${p.tenants.length === 1 ? '' : 's'}: router, 2 networks, 4 VMs each`, async () => {
      for (const t of p.tenants) await this.buildSite(t);
    });
    await step('appliance namespaces: management, external and trunk ports', async () => {
      for (const t of p.tenants) await this.buildApplianceHosts(t);
    });
    await step(`VM services (${p.tenants.length * 4} VMs and the internet host)`, () => this.startServices());
  }

  private async startFabric(): Promise<void> {
    const p = this.plan;
    const config = join(this.stateDir, 'fabric.json');
    writeFileSync(config, JSON.stringify({ switches: [{ name: p.cloudSwitch, ports: [] }] }, null, 2) + '\n');
    const running = this.procs.get('fabric');
    if (!running || !isRunning(running)) {
      rmSync(this.fabricSocket, { force: true });
      this.procs.start('fabric', [this.node, NEA_BIN, 'lab', 'fabric', '--config', config, '--control', this.fabricSocket, '--status', join(this.stateDir, 'fabric-status.json')], { netns: p.fabricNetns });
    }
    await waitFor('the fabric\'s control socket', async () => {
      const r = this.procs.get('fabric');
      if (r && !isRunning(r)) throw new Hopeless(`the fabric exited: ${this.procs.tail('fabric')}`);
      await fabricRequest(this.fabricSocket, { op: 'list' }, 2000);
      return true;
    }, 20_000);
  }

  private async buildSite(t: TenantPlan): Promise<void> {
    await this.netns(t.siteNetns);
    const site: string[] = [];
    for (const n of t.networks) site.push(`link add ${n.bridge} type bridge`, `addr add ${n.gateway}/${n.prefixLength} dev ${n.bridge}`, `link set ${n.bridge} up`);
    await ipBatch(t.siteNetns, site);
    await this.sysctl(t.siteNetns, ['net.ipv4.ip_forward=1']);
    for (const vm of t.vms) {
      await this.netns(vm.netns);
      const net = t.networks.find((n) => n.name === vm.network)!;
      await this.veth(vm.netns, 'eth0', t.siteNetns, `v-${vm.name}`);
      await ipBatch(t.siteNetns, [`link set v-${vm.name} master ${net.bridge}`]);
      await ipBatch(vm.netns, [`link set eth0 address ${vm.mac}`, `addr add ${vm.cidr} dev eth0`, `route add default via ${vm.gateway}`]);
    }
  }

  private async buildApplianceHosts(t: TenantPlan): Promise<void> {
    const p = this.plan;
    await this.netns(t.spNetns);
    await this.netns(t.taNetns);
    // SP appliance: management, external (addresses are the appliance's own business), trunk from the fabric.
    await this.veth(t.spNetns, 'mgmt0', p.mgmtNetns, `sp-${t.index}`);
    await ipBatch(p.mgmtNetns, [`link set sp-${t.index} master br0`]);
    await ipBatch(t.spNetns, [`addr add ${t.spMgmtAddress}/24 dev mgmt0`]);
    await this.veth(t.spNetns, 'ext0', p.wanNetns, `sp-${t.index}`);
    await ipBatch(p.wanNetns, [`link set sp-${t.index} master br0`]);
    await fabricRequest(this.fabricSocket, { op: 'add-port', switch: p.cloudSwitch, port: { name: `sp-${t.name}`, netns: t.spNetns, interface: p.trunk, mode: 'trunk', vlans: 'all' } });
    await ipBatch(t.spNetns, [`link set ${p.trunk} up`]);
    // Tenant appliance: WAN, one access interface per production network.
    await this.veth(t.taNetns, 'wan0', p.wanNetns, `ta-${t.index}`);
    await ipBatch(p.wanNetns, [`link set ta-${t.index} master br0`]);
    await ipBatch(t.taNetns, [`addr add ${t.taWanAddress}/24 dev wan0`, `route add default via ${p.routerWanAddress}`]);
    for (const n of t.networks) {
      await this.veth(t.taNetns, n.applianceInterface, t.siteNetns, `ta-${n.name}`);
      await ipBatch(t.siteNetns, [`link set ta-${n.name} master ${n.bridge}`]);
    }
  }

  /** Identities served by the VM services process: every production VM and the internet host. */
  private identities(): (VmIdentity & { netns: string })[] {
    const p = this.plan;
    return [
      ...p.tenants.flatMap((t) => t.vms.map((vm) => ({ netns: vm.netns, name: vm.name, tenant: t.name, site: 'production' as const }))),
      { netns: p.internetNetns, name: 'internet', tenant: '-', site: 'internet' as const },
    ];
  }

  /** Starts the VM services process (idempotent: a running one is kept). */
  async startServices(): Promise<void> {
    const config = join(this.stateDir, 'services.json');
    const status = join(this.stateDir, 'services-status.json');
    writeFileSync(config, JSON.stringify(this.identities(), null, 2) + '\n');
    const r = this.procs.get('services');
    if (!r || !isRunning(r)) {
      rmSync(status, { force: true });
      this.procs.start('services', [this.node, NEA_BIN, 'lab', 'serve', '--config', config, '--status', status]);
    }
    const want = this.identities().length;
    await waitFor('the VM services', () => {
      const rec = this.procs.get('services');
      if (rec && !isRunning(rec)) throw new Hopeless(`the VM services exited: ${this.procs.tail('services')}`);
      return (readJson<{ serving: number }>(status)?.serving ?? 0) >= want ? true : undefined;
    }, 30_000);
  }

  // ---- phase 2: control plane ------------------------------------------------------

  /** The netns driver's config for this world. */
  driverConfig(): NetnsDriverConfig {
    return {
      namespacePrefix: this.plan.replicaPrefix,
      stateDir: join(this.stateDir, 'control', 'driver'),
      hosts: { [this.plan.host]: { control: this.fabricSocket, switch: this.plan.cloudSwitch } },
    };
  }

  /**
   * Starts `nea control run` in the control namespace with the netns
   * driver; resolves with its client info (URL, fingerprint, admin token)
   * once it answers.
   */
  async startControlPlane(): Promise<ApiTarget & { token: string }> {
    const p = this.plan;
    mkdirSync(join(this.stateDir, 'control'), { recursive: true, mode: 0o700 });
    writeFileSync(this.driverConfigFile, JSON.stringify(this.driverConfig(), null, 2) + '\n');
    const r = this.procs.get('control');
    if (!r || !isRunning(r)) {
      this.procs.start('control', [this.node, NEA_BIN, 'control', 'run', '--db', this.controlDb, '--listen', `${p.controlAddress}:${p.controlPort}`,
        '--driver', 'netns', '--driver-config', this.driverConfigFile], { netns: p.controlNetns });
    }
    // The client file survives a restart (its token is stable), so wait for the API itself to answer.
    return waitFor('the control plane', async () => {
      const rec = this.procs.get('control');
      if (rec && !isRunning(rec)) throw new Hopeless(`the control plane exited: ${this.procs.tail('control')}`);
      const client = this.controlClient();
      if (!client) return undefined;
      await inNetns(p.controlNetns, () => apiRequest(client, 'GET', '/v1/health'));
      return client;
    }, 30_000);
  }

  /** The control plane's client file (`<db>.client.json`), once written. */
  controlClient(): (ApiTarget & { token: string }) | undefined {
    return readJson<ApiTarget & { token: string }>(`${this.controlDb}.client.json`);
  }

  // ---- phase 3: appliances ---------------------------------------------------------

  /**
   * Starts tenant `t`'s SP appliance (no segments yet: the control plane
   * makes them), with `publicPool` (the tenant's public IPs) on its
   * external interface; resolves with what the control plane needs to
   * drive it (a fresh admin API token named `control_plane`).
   */
  async startSpAppliance(t: TenantPlan, publicPool: readonly string[]): Promise<ApplianceAccess> {
    const p = this.plan;
    const dir = this.applianceDir(t, 'sp');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const config = {
      role: 'sp', name: `sp-${t.name}`,
      tunnel: { listenPort: TUNNEL_PORT, peers: [] },
      external: { interface: 'ext0', addresses: [`${t.spExternalAddress}/24`], defaultRoute: { ipv4: p.routerWanAddress }, publicPool: publicPool.map((a) => (a.includes('/') ? a : `${a}/32`)) },
      segments: [],
    };
    writeFileSync(join(dir, 'appliance.json'), JSON.stringify(config, null, 2) + '\n');
    const endpoint = `${t.spExternalAddress}:${TUNNEL_PORT}`;
    await this.startAppliance(`${t.name}-sp`, t.spNetns, dir, this.spArgs(t));
    const info = readJson<{ fingerprint: string }>(join(dir, 'api.json'))!;
    const tokenFile = join(dir, 'control-plane.token');
    let token = existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '';
    if (token === '') {
      token = (await sh('ip', ['netns', 'exec', t.spNetns, this.node, NEA_BIN, 'api-token', 'create', '--name', 'control_plane', '--state-dir', dir])).trim();
      writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
    }
    return { url: `https://${t.spMgmtAddress}:${APPLIANCE_API_PORT}`, fingerprint: info.fingerprint, token, endpoint };
  }

  private spArgs(t: TenantPlan): string[] {
    return ['--api-listen', `0.0.0.0:${APPLIANCE_API_PORT}`, '--advertise-endpoint', `${t.spExternalAddress}:${TUNNEL_PORT}`,
      '--advertise-api', `https://${t.spExternalAddress}:${APPLIANCE_API_PORT}`];
  }

  /**
   * Starts an appliance that stopped (a crash, a kill) again, from its
   * config and state dir as they are: it comes back as it was, paired.
   */
  async restartAppliance(t: TenantPlan, role: 'sp' | 'ta'): Promise<void> {
    const dir = this.applianceDir(t, role);
    if (!existsSync(join(dir, 'appliance.json'))) throw new Error(`appliance ${t.name}-${role} was never started`);
    await (role === 'sp'
      ? this.startAppliance(`${t.name}-sp`, t.spNetns, dir, this.spArgs(t))
      : this.startAppliance(`${t.name}-ta`, t.taNetns, dir, ['--api-listen', `127.0.0.1:${APPLIANCE_API_PORT}`]));
  }

  /** Starts tenant `t`'s appliance with one segment per production network (ids from the control plane). */
  async startTenantAppliance(t: TenantPlan, segments: readonly TenantSegment[]): Promise<void> {
    const dir = this.applianceDir(t, 'ta');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const config = {
      role: 'tenant', name: `ta-${t.name}`,
      tunnel: { listenPort: TUNNEL_PORT, peers: [] },
      segments: segments.map((s) => ({ id: s.id, name: s.network, backing: { kind: 'access', interface: t.networks.find((n) => n.name === s.network)!.applianceInterface } })),
    };
    writeFileSync(join(dir, 'appliance.json'), JSON.stringify(config, null, 2) + '\n');
    await this.startAppliance(`${t.name}-ta`, t.taNetns, dir, ['--api-listen', `127.0.0.1:${APPLIANCE_API_PORT}`]);
  }

  private async startAppliance(name: string, netns: string, dir: string, extra: string[]): Promise<void> {
    const r = this.procs.get(name);
    if (r && isRunning(r)) return;
    const rec = this.procs.start(name, [this.node, ...APPLIANCE_NODE_OPTIONS, NEA_BIN, 'appliance', 'run', '--netns', netns, '--config', join(dir, 'appliance.json'), '--state-dir', dir, ...extra]);
    await waitFor(`appliance ${name}`, () => {
      if (!isRunning(rec)) throw new Hopeless(`appliance ${name} exited: ${this.procs.tail(name)}`);
      const s = readJson<{ pid: number }>(join(dir, 'status.json'));
      return s?.pid === rec.pid && existsSync(join(dir, 'api.json')) ? true : undefined;
    }, 60_000);
  }

  /** Runs `nea ARGS` inside namespace `ns`; resolves with its stdout. */
  nea(ns: string, args: readonly string[]): Promise<string> {
    return sh('ip', ['netns', 'exec', ns, this.node, NEA_BIN, ...args]);
  }

  /** Redeems a pairing token on tenant `t`'s appliance (`nea pair`). */
  async pair(t: TenantPlan, token: string): Promise<string> {
    return (await this.nea(t.taNetns, ['pair', token, '--state-dir', this.applianceDir(t, 'ta')])).trim();
  }

  /** An appliance's status file (role `sp` or `ta`). */
  applianceStatus(t: TenantPlan, role: 'sp' | 'ta'): { peers?: { up: boolean; name?: string }[]; tunnel?: { peers?: { up?: boolean }[] } } | undefined {
    return readJson(join(this.applianceDir(t, role), 'status.json'));
  }

  /** An appliance's management API view (`nea status --json`), read from inside its namespace. */
  async applianceView(t: TenantPlan, role: 'sp' | 'ta'): Promise<unknown> {
    return JSON.parse(await this.nea(role === 'sp' ? t.spNetns : t.taNetns, ['status', '--json', '--state-dir', this.applianceDir(t, role)])) as unknown;
  }

  // ---- failures and repairs of production ----------------------------------------------

  /** A production VM fails: its NIC goes down (its service keeps listening, unreachable). */
  async stopVm(t: TenantPlan, vm: string): Promise<void> {
    const v = t.vms.find((x) => x.name === vm);
    if (!v) throw new Error(`no VM ${vm} in tenant ${t.name}`);
    await ipBatch(v.netns, ['link set eth0 down']);
  }

  /** A production VM comes back: NIC up, default route again. */
  async startVm(t: TenantPlan, vm: string): Promise<void> {
    const v = t.vms.find((x) => x.name === vm);
    if (!v) throw new Error(`no VM ${vm} in tenant ${t.name}`);
    await ipBatch(v.netns, ['link set eth0 up', `route replace default via ${v.gateway}`]);
  }

  /** The whole production site goes dark: the tenant appliance stops, every VM's NIC and the site router go down. */
  async stopSite(t: TenantPlan): Promise<void> {
    await this.procs.stop(`${t.name}-ta`);
    for (const vm of t.vms) await this.stopVm(t, vm.name);
    await ipBatch(t.siteNetns, t.networks.map((n) => `link set ${n.bridge} down`));
  }

  /** The production site comes back: router, VMs (but those in `except`), the tenant appliance (from its state: still paired). */
  async startSite(t: TenantPlan, except: readonly string[] = []): Promise<void> {
    await ipBatch(t.siteNetns, t.networks.map((n) => `link set ${n.bridge} up`));
    for (const vm of t.vms) if (!except.includes(vm.name)) await this.startVm(t, vm.name);
    const dir = this.applianceDir(t, 'ta');
    await this.startAppliance(`${t.name}-ta`, t.taNetns, dir, ['--api-listen', `127.0.0.1:${APPLIANCE_API_PORT}`]);
  }

  /** True when tenant `t`'s production site runs (its appliance process is up). */
  siteUp(t: TenantPlan): boolean {
    const r = this.procs.get(`${t.name}-ta`);
    return r !== undefined && isRunning(r);
  }

  // ---- checks -----------------------------------------------------------------------

  /** Runs reachability checks from the world's namespaces (probe.ts). */
  probe(checks: readonly Check[]): Promise<CheckResult[]> {
    return probe(checks);
  }

  /** GET http://ADDRESS:PORT/ from namespace `ns`: the identity answer, or undefined. */
  async fetchIdentity(ns: string, address: string, port = 80, timeoutMs = 2000): Promise<(VmIdentity & { client: string }) | undefined> {
    const [r] = await probe([{ netns: ns, kind: 'http', address, port, timeoutMs }]);
    return r?.ok ? r.body as VmIdentity & { client: string } : undefined;
  }

  /** One ping from namespace `ns`. */
  async ping(ns: string, address: string, timeoutMs = 1000): Promise<boolean> {
    const [r] = await probe([{ netns: ns, kind: 'icmp', address, timeoutMs }]);
    return r?.ok ?? false;
  }

  /**
   * A control-plane API request, its socket opened inside the control
   * namespace (hop.ts: mind its contract). Resolves for 2xx; throws ApiError.
   */
  async controlApi<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const client = this.controlClient();
    if (!client) throw new Error('the control plane has not written its client file yet');
    // The API rate-limits per client address; the lab is one busy client: wait and retry a 429.
    for (let attempt = 0; ; attempt++) {
      try {
        return (await inNetns(this.plan.controlNetns, () => apiRequest<T>(client, method, path, body))).body;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 429 || attempt >= 30) throw e;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  // ---- teardown -----------------------------------------------------------------------

  /** Stops every process and deletes every namespace of this world and its state dir. */
  async teardown(): Promise<{ processes: string[]; namespaces: string[] }> {
    return teardown(this.plan.prefix, this.stateDir);
  }
}

/**
 * Removes a lab by prefix: stops the processes recorded in `stateDir` (by
 * pid; SIGTERM, SIGKILL after 5 s), deletes every namespace `<prefix>-*`
 * (the links, bridges and nft tables inside go with them), removes
 * `stateDir`. Safe on nothing and after a crash; idempotent.
 */
export async function teardown(prefix: string, stateDir: string): Promise<{ processes: string[]; namespaces: string[] }> {
  const procs = new ProcTable(stateDir);
  const processes = await procs.stopAll();
  const namespaces = listNetns().filter((n) => n.startsWith(`${prefix}-`));
  for (const n of namespaces) {
    try {
      deleteNetns(n);
    } catch {
      try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); } catch { /* raced */ }
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
  return { processes, namespaces };
}

