/**
 * Segments of an appliance on the kernel: what each backing becomes
 * (docs/segments.md), how VLAN backings are implemented on this kernel, and
 * the desired kernel state. Pure except `chooseVlanImplementation`, which
 * asks the kernel.
 *
 *   access:  nea-br<id> ── nea-tap<id> (tunnel's local port)
 *                       └─ <interface>
 *   vlan, kernel devices:   nea-br<id> ── nea-tap<id>
 *                                      └─ nea-v<id> (802.1Q device, VLAN n on <trunk>)
 *   vlan, user space:       nea-br<id> ── nea-tap<id>
 *                                      └─ nea-v<id> (TAP) ⇄ VlanTrunk ⇄ packet socket on <trunk>
 */
import { OWNER_ALIAS, type DesiredLink, type DesiredNetwork } from '../netconfig/desired.js';
import { isVlanUnsupported, type Netlink } from '../netconfig/netlink.js';
import { NeaError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { segmentBacking, segmentLinkNames, type ApplianceConfig, type SegmentConfig } from './config.js';

/** How this appliance makes its VLAN backings. */
export type VlanImplementation = 'kernel' | 'userspace';

/** The VLAN segments of one trunk. */
export interface TrunkPlan {
  trunk: string;
  /** In config order: VLAN id, segment id, the segment's VLAN port (`nea-v<id>`). */
  ports: { vlan: number; segment: number; port: string }[];
}

/** VLAN backings grouped by trunk, trunks in the order they first appear. */
export function trunkPlans(config: ApplianceConfig): TrunkPlan[] {
  const by = new Map<string, TrunkPlan>();
  for (const s of config.segments) {
    const b = segmentBacking(s);
    if (b?.kind !== 'vlan') continue;
    let t = by.get(b.trunk);
    if (!t) { t = { trunk: b.trunk, ports: [] }; by.set(b.trunk, t); }
    t.ports.push({ vlan: b.vlan, segment: s.id, port: segmentLinkNames(s.id).vlanPort });
  }
  return [...by.values()];
}

/** The link bridged into the segment besides its TAP: the access interface, the VLAN port, or none. */
export function bridgedPort(s: SegmentConfig): string | undefined {
  const b = segmentBacking(s);
  if (!b) return undefined;
  return b.kind === 'access' ? b.interface : segmentLinkNames(s.id).vlanPort;
}

/**
 * The desired kernel state: per segment a bridge holding its TAP and its
 * backing's port, all up, no addresses (pure extension); every trunk up,
 * without addresses and outside any bridge (a trunk is dedicated to
 * segments); with kernel devices, one 802.1Q device per VLAN backing.
 */
export function desiredNetwork(config: ApplianceConfig, vlans: VlanImplementation = 'userspace'): DesiredNetwork {
  const links: DesiredLink[] = [];
  for (const t of trunkPlans(config)) links.push({ kind: 'existing', name: t.trunk, up: true, addresses: [] });
  for (const s of config.segments) {
    const { bridge, tap, vlanPort } = segmentLinkNames(s.id);
    links.push({ kind: 'bridge', name: bridge, up: true, addresses: [] });
    links.push({ kind: 'existing', name: tap, up: true, master: bridge, addresses: [] });
    const b = segmentBacking(s);
    if (b?.kind === 'access') links.push({ kind: 'existing', name: b.interface, up: true, master: bridge });
    if (b?.kind === 'vlan') {
      links.push(vlans === 'kernel'
        ? { kind: 'vlan', name: vlanPort, parent: b.trunk, vlanId: b.vlan, up: true, master: bridge, addresses: [] }
        : { kind: 'existing', name: vlanPort, up: true, master: bridge, addresses: [] });
    }
  }
  const l3 = config.tunnel?.l3;
  if (l3) links.push({ kind: 'existing', name: l3.device, up: true, addresses: l3.addresses });
  return { links, routes: [], neighbours: [] };
}

/**
 * True when this kernel makes 802.1Q devices: creates (and deletes at once) a
 * VLAN device on `trunk`. EOPNOTSUPP (no 8021q module) is false; other errors
 * are thrown.
 */
export async function probeKernelVlan(netlink: Netlink, trunk: string): Promise<boolean> {
  const name = `nea-vp${process.pid % 100000}`;
  try {
    await netlink.addVlan(name, trunk, 4094);
  } catch (e) {
    if (isVlanUnsupported(e)) return false;
    throw e;
  }
  await netlink.deleteLink(name);
  return true;
}

/**
 * Before user-space VLANs: 802.1Q devices this appliance made earlier under
 * the VLAN ports' names (kernel mode before a config change) are deleted, so
 * the TAPs can take the names. Devices it did not make are left alone (opening
 * the TAP then fails, naming the interface).
 */
async function removeKernelVlanPorts(netlink: Netlink, plans: readonly TrunkPlan[], log: Logger): Promise<void> {
  for (const p of plans.flatMap((t) => t.ports)) {
    const l = await netlink.link(p.port);
    if (l?.kind === 'vlan' && l.alias === OWNER_ALIAS) {
      await netlink.deleteLink(p.port);
      log.info('deleted the 802.1Q device of an earlier run: this run tags in user space', { link: p.port });
    }
  }
}

/**
 * How the VLAN backings are made, from `config.vlanDevices` and what the
 * kernel can do; null when the appliance has no VLAN backing. A missing
 * trunk is refused here, naming it and its segments.
 */
export async function chooseVlanImplementation(netlink: Netlink, config: ApplianceConfig, log: Logger): Promise<VlanImplementation | null> {
  const plans = trunkPlans(config);
  if (plans.length === 0) return null;
  for (const t of plans) {
    if (!(await netlink.link(t.trunk))) {
      throw new NeaError('NETCONFIG_LINK_MISSING',
        `trunk ${t.trunk} of segment${t.ports.length > 1 ? 's' : ''} ${t.ports.map((p) => p.segment).join(', ')} does not exist in this namespace: create it or fix the config`);
    }
  }
  const mode = config.vlanDevices ?? 'auto';
  if (mode === 'userspace') {
    await removeKernelVlanPorts(netlink, plans, log);
    return 'userspace';
  }
  const kernel = await probeKernelVlan(netlink, plans[0]!.trunk);
  if (mode === 'kernel' && !kernel) {
    throw new NeaError('VLAN_KERNEL_UNSUPPORTED',
      'config asks for kernel VLAN devices ("vlanDevices": "kernel") but this kernel has no 802.1Q devices (module 8021q): load it, or use "auto" or "userspace"');
  }
  const impl: VlanImplementation = kernel ? 'kernel' : 'userspace';
  if (impl === 'userspace') await removeKernelVlanPorts(netlink, plans, log);
  log.info('VLAN backings', { implementation: impl, mode, why: kernel ? '802.1Q devices available' : 'no 802.1Q devices in this kernel: tagging in user space' });
  return impl;
}
