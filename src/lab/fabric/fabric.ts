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
      const pat = `${at}.ports[${j}]`;
      if (!isObject(p)) return bad(pat, 'must be an object');
      if (typeof p.name !== 'string' || !NAME.test(p.name)) bad(`${pat}.name`, 'must be 1-63 letters, digits, "_", "." or "-"');
      if (typeof p.interface !== 'string' || !IFNAME.test(p.interface)) bad(`${pat}.interface`, 'must be an interface name');
      const netns = p.netns;
      if (netns !== undefined && (typeof netns !== 'string' || !NAME.test(netns))) bad(`${pat}.netns`, 'must be a namespace name');
      const where = typeof netns === 'string' ? netns : 'this namespace';
      const key = `${where}/${String(p.interface)}`;
      if (seen.has(key)) bad(`${pat}.interface`, `${String(p.interface)} in ${where} is already a port`);
      seen.add(key);
      const base = { name: p.name as string, interface: p.interface as string, ...(p.netns !== undefined && { netns: p.netns as string }) };
      if (p.mode === 'access') {
        if (!isVlanId(p.vlan)) bad(`${pat}.vlan`, 'must be an integer from 1 to 4094');
        return { ...base, mode: 'access', vlan: p.vlan as number };
      }
      if (p.mode === 'trunk') {
        const vlans = p.vlans;
        if (vlans !== 'all' && (!Array.isArray(vlans) || !vlans.every(isVlanId))) bad(`${pat}.vlans`, 'must be "all" or an array of VLAN ids 1..4094');
        if (p.native !== undefined && !isVlanId(p.native)) bad(`${pat}.native`, 'must be a VLAN id 1..4094');
        return { ...base, mode: 'trunk', vlans: vlans as number[] | 'all', ...(p.native !== undefined && { native: p.native as number }) };
      }
      return bad(`${pat}.mode`, 'must be "access" or "trunk"');
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

export class Fabric {
  private readonly switches: FabricSwitch[] = [];
  private readonly devices: PacketDevice[] = [];

  constructor(private readonly config: FabricConfig) {}

  /** Creates every port's TAP in its namespace and starts switching; all or nothing. */
  start(): void {
    try {
      for (const s of this.config.switches) {
        const ports = s.ports.map((p) => {
          const device = withNetns(p.netns, () => openTap(p.interface, { batchSize: 64 }));
          this.devices.push(device);
          return { cfg: p, device };
        });
        const sw = new FabricSwitch(s.name, ports, s.macLimit !== undefined ? { macLimit: s.macLimit } : {});
        this.switches.push(sw);
      }
    } catch (e) {
      this.stop();
      throw e;
    }
    for (const sw of this.switches) sw.start();
  }

  stop(): void {
    for (const d of this.devices.splice(0)) d.close();
    this.switches.length = 0;
  }

  status(): FabricStatus {
    return { pid: process.pid, switches: this.switches.map((s) => s.status()) };
  }
}
