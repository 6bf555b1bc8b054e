/**
 * The `netns` hypervisor driver (src/control/driver.ts): a replica is a
 * network namespace on this machine, plugged into the cloud host's switch
 * (the lab fabric, src/lab/fabric) as an access port on the replica's
 * VLAN, with the production MAC and address, a default route via the
 * production gateway, and the lab VMs' identity service (vm-service.ts)
 * answering `GET /` with `{name, tenant, site: "cloud"}` on TCP 80.
 *
 * The services run in the driver's own process (the control plane's): each
 * listening socket is created inside its replica's namespace. After a
 * restart of that process the driver re-adopts the replicas whose
 * namespaces still exist: their services are opened again and their fabric
 * ports re-plugged if the fabric lost them.
 *
 * Config (JSON; `nea control run --driver netns --driver-config FILE`):
 *
 *   { "namespacePrefix": "nlab-r-",
 *     "stateDir": "/var/lib/nea-lab/driver",
 *     "hosts": { "cloud1": { "control": "/run/nea-lab/fabric.sock", "switch": "cloud" } } }
 *
 * - `namespacePrefix`: a replica's namespace is `<prefix><tenant>-<vm>`;
 * - `stateDir`: one record per replica the driver knows (for `list` and
 *   re-adoption), created if missing;
 * - `hosts`: per control-plane host, the fabric control socket and switch
 *   that host's replicas plug into;
 * - `httpPort` (optional, default 80): the identity service's port.
 *
 * A replica's NIC is `eth0` in its namespace; its fabric port is named
 * `r-<tenant>-<vm>`. Every call is idempotent.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { HypervisorDriver, ProbeResult, ProbeTarget, ReplicaInfo, ReplicaSpec } from '../control/driver.js';
import { Netlink } from '../netconfig/netlink.js';
import { createNetns, deleteNetns, listNetns } from '../netconfig/netns.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { ValidationError } from '../shared/errors.js';
import { fabricRequest } from './fabric/control.js';
import { pingFrom } from './icmp.js';
import { probe } from './probe.js';
import { closeServer, serveIdentity, VM_HTTP_PORT } from './vm-service.js';

export interface NetnsDriverHost {
  /** The fabric's control socket (`nea lab fabric --control PATH`). */
  control: string;
  /** The switch of the fabric that is this host's. */
  switch: string;
}

export interface NetnsDriverConfig {
  namespacePrefix: string;
  stateDir: string;
  hosts: Record<string, NetnsDriverHost>;
  /** TCP port of the replicas' identity service; default 80. */
  httpPort?: number;
}

/** The replica's NIC inside its namespace. */
export const REPLICA_NIC = 'eth0';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a driver config; throws ValidationError naming the field. */
export function parseNetnsDriverConfig(raw: unknown, file = 'driver config'): NetnsDriverConfig {
  const bad = (f: string, what: string): never => { throw new ValidationError(`${file}: ${f}: ${what}`); };
  if (!isObject(raw)) return bad('(top level)', 'must be a JSON object');
  for (const k of Object.keys(raw)) if (!['namespacePrefix', 'stateDir', 'hosts', 'httpPort'].includes(k)) bad(k, 'unknown field');
  if (typeof raw.namespacePrefix !== 'string' || !/^[A-Za-z0-9_.-]{1,40}$/.test(raw.namespacePrefix)) bad('namespacePrefix', 'must be 1-40 letters, digits, "_", "." or "-"');
  if (typeof raw.stateDir !== 'string' || !raw.stateDir.startsWith('/')) bad('stateDir', 'must be an absolute path');
  if (!isObject(raw.hosts) || Object.keys(raw.hosts).length === 0) bad('hosts', 'must map at least one host name to { control, switch }');
  const hosts: Record<string, NetnsDriverHost> = {};
  for (const [name, h] of Object.entries(raw.hosts as Record<string, unknown>)) {
    if (!isObject(h) || typeof h.control !== 'string' || typeof h.switch !== 'string') bad(`hosts.${name}`, 'must be { "control": SOCKET, "switch": NAME }');
    const host = h as { control: string; switch: string };
    hosts[name] = { control: host.control, switch: host.switch };
  }
  const cfg: NetnsDriverConfig = { namespacePrefix: raw.namespacePrefix as string, stateDir: raw.stateDir as string, hosts };
  if (raw.httpPort !== undefined) {
    if (typeof raw.httpPort !== 'number' || !Number.isInteger(raw.httpPort) || raw.httpPort < 1 || raw.httpPort > 65535) bad('httpPort', 'must be a TCP port');
    cfg.httpPort = raw.httpPort as number;
  }
  return cfg;
}

/** What the driver keeps of a replica in its state dir. */
interface ReplicaRecord {
  spec: ReplicaSpec;
  power: 'on' | 'off';
}

const key = (tenant: string, name: string): string => `${tenant}/${name}`;

export class NetnsDriver implements HypervisorDriver {
  readonly name = 'netns';
  private readonly servers = new Map<string, Server>();
  /** Serializes the calls per replica (a job and a probe may overlap). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly config: NetnsDriverConfig) {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  }

  /** The replica's namespace name. */
  netnsOf(vm: { tenant: string; name: string }): string {
    return `${this.config.namespacePrefix}${vm.tenant}-${vm.name}`;
  }

  /** The replica's port on the cloud host's switch. */
  static portOf(vm: { tenant: string; name: string }): string {
    return `r-${vm.tenant}-${vm.name}`;
  }

  private recordFile(tenant: string, name: string): string {
    return join(this.config.stateDir, `${tenant}--${name}.json`);
  }

  private host(vm: ReplicaSpec): NetnsDriverHost {
    const h = this.config.hosts[vm.host];
    if (!h) throw new ValidationError(`netns driver: host ${vm.host} is not in the driver config (hosts: ${Object.keys(this.config.hosts).join(', ')})`);
    return h;
  }

  private serialized<T>(vm: { tenant: string; name: string }, fn: () => Promise<T>): Promise<T> {
    const k = key(vm.tenant, vm.name);
    const prev = this.locks.get(k) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(k, tail);
    void tail.then(() => { if (this.locks.get(k) === tail) this.locks.delete(k); });
    return next;
  }

  private write(rec: ReplicaRecord): void {
    writeFileAtomic(this.recordFile(rec.spec.tenant, rec.spec.name), JSON.stringify(rec, null, 2) + '\n', 0o600, { durable: false });
  }

  private records(): ReplicaRecord[] {
    let names: string[];
    try { names = readdirSync(this.config.stateDir); } catch { return []; }
    return names.filter((n) => n.endsWith('.json')).flatMap((n) => {
      try { return [JSON.parse(readFileSync(join(this.config.stateDir, n), 'utf8')) as ReplicaRecord]; } catch { return []; }
    });
  }

  powerOn(vm: ReplicaSpec): Promise<void> {
    return this.serialized(vm, async () => {
      const ns = this.netnsOf(vm);
      const fresh = !listNetns().includes(ns);
      if (fresh) createNetns(ns);
      try {
        await this.plug(vm);
        await this.configure(vm);
        await this.serve(vm);
      } catch (e) {
        if (fresh) await this.unplug(vm);
        throw e;
      }
      this.write({ spec: vm, power: 'on' });
    });
  }

  /** The replica's port on its host's switch, on its VLAN (re-plugged on another VLAN when it changed). */
  private async plug(vm: ReplicaSpec): Promise<void> {
    const h = this.host(vm);
    const port = { name: NetnsDriver.portOf(vm), netns: this.netnsOf(vm), interface: REPLICA_NIC, mode: 'access' as const, vlan: vm.vlan };
    try {
      await fabricRequest(h.control, { op: 'add-port', switch: h.switch, port });
    } catch (e) {
      if (!(e instanceof Error) || !/another configuration/.test(e.message)) throw e;
      await fabricRequest(h.control, { op: 'remove-port', switch: h.switch, port: port.name });
      await fabricRequest(h.control, { op: 'add-port', switch: h.switch, port });
    }
  }

  /** MAC, address, link up, default route via the gateway; what is there already is kept. */
  private async configure(vm: ReplicaSpec): Promise<void> {
    const nl = Netlink.open({ netns: this.netnsOf(vm) });
    try {
      await nl.setUp('lo', true);
      const link = await nl.link(REPLICA_NIC);
      if (!link) throw new Error(`replica ${vm.tenant}/${vm.name}: no ${REPLICA_NIC} in ${this.netnsOf(vm)} (the fabric did not plug it)`);
      if (link.mac?.toLowerCase() !== vm.mac.toLowerCase()) await nl.setMac(REPLICA_NIC, vm.mac);
      const have = await nl.addresses({ link: REPLICA_NIC, family: 4 });
      const want = vm.address;
      for (const a of have) if (`${a.address}/${a.prefixLength}` !== want) await nl.deleteAddress(REPLICA_NIC, `${a.address}/${a.prefixLength}`);
      if (!have.some((a) => `${a.address}/${a.prefixLength}` === want)) await nl.addAddress(REPLICA_NIC, want);
      await nl.setUp(REPLICA_NIC, true);
      await nl.replaceRoute({ dst: 'default', gateway: vm.gateway, dev: REPLICA_NIC });
    } finally {
      nl.close();
    }
  }

  private async serve(vm: ReplicaSpec): Promise<void> {
    const k = key(vm.tenant, vm.name);
    if (this.servers.has(k)) return;
    this.servers.set(k, await serveIdentity(this.netnsOf(vm), { name: vm.name, tenant: vm.tenant, site: 'cloud' }, this.config.httpPort ?? VM_HTTP_PORT));
  }

  /** Closes the service, unplugs the port, deletes the namespace. */
  private async unplug(vm: ReplicaSpec): Promise<void> {
    const k = key(vm.tenant, vm.name);
    const server = this.servers.get(k);
    this.servers.delete(k);
    if (server) await closeServer(server);
    const h = this.config.hosts[vm.host];
    if (h) {
      try {
        await fabricRequest(h.control, { op: 'remove-port', switch: h.switch, port: NetnsDriver.portOf(vm) });
      } catch {
        // The fabric is gone: its ports went with it.
      }
    }
    deleteNetns(this.netnsOf(vm));
  }

  powerOff(vm: ReplicaSpec): Promise<void> {
    return this.serialized(vm, async () => {
      await this.unplug(vm);
      this.write({ spec: vm, power: 'off' });
    });
  }

  /** Namespaces keep no disk: reverting is powering off (the next power-on starts afresh). */
  revert(vm: ReplicaSpec): Promise<void> {
    return this.powerOff(vm);
  }

  list(): Promise<ReplicaInfo[]> {
    const present = new Set(listNetns());
    return Promise.resolve(this.records().map((r) => ({
      tenant: r.spec.tenant, name: r.spec.name, host: r.spec.host,
      power: r.power === 'on' && present.has(this.netnsOf(r.spec)) ? 'on' as const : 'off' as const,
    })));
  }

  async probe(vm: ReplicaSpec, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
    const ns = this.netnsOf(vm);
    if (!listNetns().includes(ns) || !this.servers.has(key(vm.tenant, vm.name))) return { ok: false, detail: `${target.kind} ${target.address}: replica ${vm.tenant}/${vm.name} is off` };
    if (target.kind === 'icmp') {
      const ms = await pingFrom(ns, target.address, timeoutMs);
      return ms === undefined ? { ok: false, detail: `icmp ${target.address}: no reply within ${timeoutMs} ms` } : { ok: true, ms, detail: `icmp ${target.address}: reply in ${ms.toFixed(1)} ms` };
    }
    try {
      const [r] = await probe([{ netns: ns, kind: 'tcp', address: target.address, port: target.port ?? 80, timeoutMs }]);
      return { ok: r!.ok, ...(r!.ms !== undefined && { ms: r!.ms }), detail: r!.detail };
    } catch (e) {
      return { ok: false, detail: `tcp ${target.address}:${target.port ?? 80}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  /**
   * Re-adopts the replicas that are on and whose namespaces exist (after a
   * restart of this process): services opened again, ports re-plugged and
   * addresses set again where the fabric lost them. Returns their keys.
   */
  async adopt(): Promise<string[]> {
    const present = new Set(listNetns());
    const adopted: string[] = [];
    for (const r of this.records()) {
      if (r.power !== 'on' || !present.has(this.netnsOf(r.spec))) continue;
      await this.powerOn(r.spec);
      adopted.push(key(r.spec.tenant, r.spec.name));
    }
    return adopted;
  }

  /** Closes the services (the replicas' namespaces and ports stay: a new driver re-adopts them). */
  async close(): Promise<void> {
    const servers = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(servers.map(closeServer));
  }

  /** Removes every replica this driver knows (power off), and their records. */
  async destroyAll(): Promise<void> {
    for (const r of this.records()) {
      await this.powerOff(r.spec);
      rmSync(this.recordFile(r.spec.tenant, r.spec.name), { force: true });
    }
  }
}

/** Loads a driver config file. */
export function loadNetnsDriverConfig(file: string): NetnsDriverConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ValidationError(`cannot read netns driver config ${file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return parseNetnsDriverConfig(raw, file);
}

/**
 * The factory `nea control run --driver netns --driver-config FILE` calls:
 * loads the config and re-adopts the replicas still running.
 */
export async function createNetnsDriver(configFile: string): Promise<NetnsDriver> {
  const driver = new NetnsDriver(loadNetnsDriverConfig(configFile));
  await driver.adopt();
  return driver;
}
