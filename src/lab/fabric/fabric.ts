/**
 * The lab fabric: one or more independent {@link FabricSwitch}es (an SP's
 * switch fabric, a production site's switch), each port a TAP that the
 * fabric creates inside the namespace of the host it serves, so the host
 * sees an ordinary interface (`eth0`, `trunk0`) and the fabric holds the
 * other end. Run by `nea lab fabric --config FILE` as its own process (tests
 * start it and stop it by pid); the TAPs disappear with it.
 *
 * Config (JSON):
 *   { "switches": [ { "name": "sp", "macLimit": 8192, "ports": [
 *       { "name": "sp-a", "netns": "sp-a", "interface": "trunk0", "mode": "trunk", "vlans": "all" },
 *       { "name": "web1", "netns": "web1", "interface": "eth0", "mode": "access", "vlan": 110 } ] } ] }
 */
import { readFileSync } from 'node:fs';
import { openTap } from '../../dataplane/tuntap.js';
import type { PacketDevice } from '../../dataplane/packet-device.js';
import { withNetns } from '../../netconfig/netns.js';
import { isVlanId } from '../../protocol/vlan.js';
import { ValidationError } from '../../shared/errors.js';
import { FabricSwitch, type FabricPortConfig, type FabricSwitchStatus } from './switch.js';

export type FabricPortSpec = FabricPortConfig & {
  /** Namespace of the host the port serves (`/run/netns/NAME`); absent: the fabric's own. */
  netns?: string;
  /** The host's interface: a TAP the fabric creates there. */
  interface: string;
};

export interface FabricConfig {
  switches: { name: string; macLimit?: number; ports: FabricPortSpec[] }[];
}

const NAME = /^[A-Za-z0-9_.-]{1,63}$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate one port (`at` names it in errors); throws ValidationError naming the field. */
export function parsePortSpec(p: unknown, at: string): FabricPortSpec {
  const bad = (field: string, what: string): never => { throw new ValidationError(`fabric config: ${field}: ${what}`); };
  if (!isObject(p)) return bad(at, 'must be an object');
  if (typeof p.name !== 'string' || !NAME.test(p.name)) bad(`${at}.name`, 'must be 1-63 letters, digits, "_", "." or "-"');
  if (typeof p.interface !== 'string' || !IFNAME.test(p.interface)) bad(`${at}.interface`, 'must be an interface name');
  const netns = p.netns;
  if (netns !== undefined && (typeof netns !== 'string' || !NAME.test(netns))) bad(`${at}.netns`, 'must be a namespace name');
  const base = { name: p.name as string, interface: p.interface as string, ...(netns !== undefined && { netns: netns as string }) };
  if (p.mode === 'access') {
    if (!isVlanId(p.vlan)) bad(`${at}.vlan`, 'must be an integer from 1 to 4094');
    return { ...base, mode: 'access', vlan: p.vlan as number };
  }
  if (p.mode === 'trunk') {
    const vlans = p.vlans;
    if (vlans !== 'all' && (!Array.isArray(vlans) || !vlans.every(isVlanId))) bad(`${at}.vlans`, 'must be "all" or an array of VLAN ids 1..4094');
    if (p.native !== undefined && !isVlanId(p.native)) bad(`${at}.native`, 'must be a VLAN id 1..4094');
    return { ...base, mode: 'trunk', vlans: vlans as number[] | 'all', ...(p.native !== undefined && { native: p.native as number }) };
  }
  return bad(`${at}.mode`, 'must be "access" or "trunk"');
}

/** Validate a fabric config; throws ValidationError naming the field. */
export function parseFabricConfig(raw: unknown): FabricConfig {
  const bad = (at: string, what: string): never => { throw new ValidationError(`fabric config: ${at}: ${what}`); };
  if (!isObject(raw) || !Array.isArray(raw.switches)) bad('switches', 'must be an array');
  const seen = new Set<string>();
  const switches = (raw as { switches: unknown[] }).switches.map((s, i) => {
    const at = `switches[${i}]`;
    if (!isObject(s) || typeof s.name !== 'string' || !NAME.test(s.name)) return bad(`${at}.name`, 'must be 1-63 letters, digits, "_", "." or "-"');
    if (s.macLimit !== undefined && (typeof s.macLimit !== 'number' || !Number.isInteger(s.macLimit) || s.macLimit < 1)) bad(`${at}.macLimit`, 'must be a positive integer');
    if (!Array.isArray(s.ports)) bad(`${at}.ports`, 'must be an array');
    const ports = (s.ports as unknown[]).map((p, j): FabricPortSpec => {
      const port = parsePortSpec(p, `${at}.ports[${j}]`);
      const where = port.netns ?? 'this namespace';
      const key = `${where}/${port.interface}`;
      if (seen.has(key)) bad(`${at}.ports[${j}].interface`, `${port.interface} in ${where} is already a port`);
      seen.add(key);
      return port;
    });
    return { name: s.name, ports, ...(s.macLimit !== undefined && { macLimit: s.macLimit as number }) };
  });
  return { switches };
}

export function loadFabricConfig(file: string): FabricConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ValidationError(`cannot read fabric config ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseFabricConfig(raw);
}

export interface FabricStatus {
  pid: number;
  switches: FabricSwitchStatus[];
}

/** Two port specs describe the same port (an add-port repeated is then a no-op). */
function samePort(a: FabricPortSpec, b: FabricPortSpec): boolean {
  return JSON.stringify({ ...a, vlans: a.mode === 'trunk' ? a.vlans : undefined }) === JSON.stringify({ ...b, vlans: b.mode === 'trunk' ? b.vlans : undefined });
}

export class Fabric {
  private readonly switches = new Map<string, FabricSwitch>();
  /** Ports as configured or added, per switch. */
  private readonly specs = new Map<string, Map<string, FabricPortSpec>>();

  constructor(private readonly config: FabricConfig) {}

  /** Creates every port's TAP in its namespace and starts switching; all or nothing. */
  start(): void {
    const opened: PacketDevice[] = [];
    try {
      for (const s of this.config.switches) {
        const ports = s.ports.map((p) => {
          const device = withNetns(p.netns, () => openTap(p.interface, { batchSize: 64 }));
          opened.push(device);
          return { cfg: p, device };
        });
        const sw = new FabricSwitch(s.name, ports, s.macLimit !== undefined ? { macLimit: s.macLimit } : {});
        this.switches.set(s.name, sw);
        this.specs.set(s.name, new Map(s.ports.map((p) => [p.name, p])));
      }
    } catch (e) {
      for (const d of opened) d.close();
      this.switches.clear();
      throw e;
    }
    for (const sw of this.switches.values()) sw.start();
  }

  /**
   * Plugs a port in at run time: creates its TAP in the host's namespace
   * and adds it to `switchName`. Idempotent: the same spec again changes
   * nothing; another spec under an existing name is refused.
   * @returns false when the port was there already.
   */
  addPort(switchName: string, spec: FabricPortSpec): boolean {
    const sw = this.switches.get(switchName);
    const specs = this.specs.get(switchName);
    if (!sw || !specs) throw new ValidationError(`no switch ${switchName} in this fabric`);
    const had = specs.get(spec.name);
    if (had) {
      if (samePort(had, spec)) return false;
      throw new ValidationError(`switch ${switchName}: port ${spec.name} exists with another configuration`);
    }
    const device = withNetns(spec.netns, () => openTap(spec.interface, { batchSize: 64 }));
    try {
      sw.addPort({ cfg: spec, device });
    } catch (e) {
      device.close();
      throw e;
    }
    specs.set(spec.name, spec);
    return true;
  }

  /** Unplugs a port: its TAP disappears from the host. False when there was none. */
  removePort(switchName: string, name: string): boolean {
    const sw = this.switches.get(switchName);
    if (!sw) throw new ValidationError(`no switch ${switchName} in this fabric`);
    this.specs.get(switchName)?.delete(name);
    return sw.removePort(name);
  }

  /** The ports of each switch as configured or added. */
  ports(): Record<string, FabricPortSpec[]> {
    return Object.fromEntries([...this.specs].map(([n, m]) => [n, [...m.values()]]));
  }

  stop(): void {
    for (const sw of this.switches.values()) sw.stop();
    this.switches.clear();
    this.specs.clear();
  }

  status(): FabricStatus {
    return { pid: process.pid, switches: [...this.switches.values()].map((s) => s.status()) };
  }
}
