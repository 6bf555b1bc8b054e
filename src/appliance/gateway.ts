/**
 * The appliance's network side at run time: segment modes, gateway
 * takeover, internet access and public IP rules, applied to the kernel in an
 * order that never opens a gap (docs/modes.md). The tunnel engine is not
 * involved: switching a mode changes links' addresses, kernel settings and
 * the ruleset, never the tunnel's sockets, TAPs or sessions.
 *
 * `apply(next)`, one at a time (later calls wait for earlier ones):
 *   0. refuse, changing nothing: a change outside the runtime fields
 *      (APPLY_NEEDS_RESTART), an invalid state (ValidationError), a ruleset
 *      the kernel would not take (`nft -c`, NftApplyError);
 *   (first apply of the process only) the closed ruleset: every segment
 *      isolated, so nothing crosses a bridge while it is being built;
 *   1. removals: addresses and routes `next` no longer has leave the kernel
 *      (the gateway address of a segment going back to extend, public
 *      addresses no longer mapped) — before the firewall lets production
 *      back in, so an address is never held on an extended segment;
 *   2. kernel settings: forwarding, per-bridge ARP, IPv6 off — but not
 *      IPv6 on (see 4);
 *   3. the ruleset, atomically (nft -f): the old one stays until the new one
 *      is whole;
 *   4. IPv6 on for a bridge that becomes an IPv6 gateway, then additions:
 *      new gateway addresses, public addresses, routes — after the firewall
 *      cut the segment's tunnel port, so the appliance never answers for the
 *      gateway towards production, and production never hears the bridge's
 *      first IPv6 packets (the duplicate address detection of its link-local
 *      address goes out as IPv6 comes on; an IPv6 address can only be added
 *      once IPv6 is on);
 *   5. announcements of newly held addresses: gateways (gratuitous ARP,
 *      unsolicited NA), public IPv4 addresses (gratuitous ARP on the
 *      external interface); sent 3 times, 1 s apart: Linux ignores an update
 *      within 1 s of the last one;
 *   6. conntrack entries of what stopped acting are deleted (a removed
 *      mapping's connections stop at once, both directions).
 *
 * Failure policy: a refusal in step 0 changes nothing. A failure in steps
 * 1-4 puts the previous state back (its addresses, settings and ruleset),
 * best effort, and rethrows: the appliance keeps running as it was. Steps 5
 * and 6 are best effort: failures are logged and counted in the status, the
 * new state stands.
 */
import { openPacketSocket } from '../dataplane/packet-socket.js';
import { Conntrack, type ConntrackFilter } from '../netconfig/conntrack.js';
import type { DesiredNetwork, DesiredRoute } from '../netconfig/desired.js';
import { parseIp, canonicalIp } from '../netconfig/ip.js';
import type { Netlink } from '../netconfig/netlink.js';
import type { ApplyResult } from '../netconfig/nft-apply.js';
import type { DesiredFirewall } from '../netconfig/nft-desired.js';
import { reconcile } from '../netconfig/reconcile.js';
import { withNetns } from '../netconfig/netns.js';
import { arpAnnouncement } from '../protocol/ethernet.js';
import { unsolicitedNeighbourAdvert } from '../protocol/ndp.js';
import { NeaError, SystemError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { writeFileSync } from 'node:fs';
import type { ApplianceConfig } from './config.js';
import {
  activeRules, announcements, checkRuntimeChange, closedFirewall, conntrackFlushes, firewallSegmentName, firewallWithModes, heldPublicAddresses, kernelSettings, modeOf,
  networkWithModes, stillHeld, type Announcement, type GatewayAddresses, type SegmentMode, type SysctlSetting,
} from './modes.js';

/** A setting that turns IPv6 on for a link: applied only once the ruleset is in (step 4). */
function turnsIpv6On(s: SysctlSetting): boolean {
  return s.path.endsWith('/disable_ipv6') && s.value === '0';
}

/** Announcements per newly held address, and the gap between them in ms. */
export const ANNOUNCE_REPEATS = 3;
export const ANNOUNCE_INTERVAL_MS = 1000;

/** What the kernel holds now on the links the desired state lists. */
export interface KernelSnapshot {
  /** Link name → its addresses (`ADDRESS/PREFIX`, canonical), the kernel's own left out. */
  addresses: Map<string, string[]>;
  /** Unicast routes by output link: `dst|via|dev`, canonical. */
  routes: Set<string>;
}

/** The effects the controller drives: the real ones in {@link kernelEffects}, fakes in tests. */
export interface ModeEffects {
  snapshot(links: readonly string[]): Promise<KernelSnapshot>;
  reconcile(desired: DesiredNetwork): Promise<number>;
  checkFirewall(d: DesiredFirewall): Promise<void>;
  applyFirewall(d: DesiredFirewall): Promise<ApplyResult>;
  sysctl(s: SysctlSetting): void;
  /** Send one round of announcements for `a` on its link. */
  announce(a: Announcement): Promise<void>;
  deleteConntrack(filters: readonly ConntrackFilter[]): Promise<number>;
}

export interface ModeControllerOptions {
  /** The kernel links of the segments, without modes: bridges, ports, no addresses. */
  baseNetwork(config: ApplianceConfig): DesiredNetwork;
  /** The firewall without modes: every segment extended, with its ports and clamp. */
  baseFirewall(config: ApplianceConfig): DesiredFirewall;
  bridgeOf(segment: number): string;
  tunnelPortOf(segment: number): string;
  effects: ModeEffects;
  log: Logger;
  /** Timers for repeated announcements; default setTimeout (unref'd). */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

export interface SegmentModeStatus {
  id: number;
  mode: SegmentMode;
  internet: boolean;
  gateway: GatewayAddresses | null;
}

/** The network side in the appliance status. */
export interface ModesStatus {
  /** Successful applies since start (1 after the start). */
  generation: number;
  appliedAt: string | null;
  /** The last refused or failed apply since the last success; null after a success. */
  lastError: { code: string; message: string; at: string } | null;
  segments: SegmentModeStatus[];
  routeBetweenSegments: boolean;
  /** Public IP rules configured / acting (their segment in gateway mode). */
  publicRules: { configured: number; active: number };
  /** Public addresses held on the external interface. */
  publicAddresses: string[];
  announcements: { sent: number; failed: number };
  conntrack: { deleted: number; failed: number };
}

/** What one apply did. */
export interface ModeApplyReport {
  generation: number;
  firewallChanged: boolean;
  kernelChanges: number;
  announced: Announcement[];
  conntrackDeleted: number;
}

function routeKey(r: { dst: string; via?: string | undefined; dev: string }): string {
  return `${r.dst}|${r.via ?? ''}|${r.dev}`;
}

/** `next`'s network with only what the kernel holds already: what the removals step makes of it. */
export function removalsOnly(next: DesiredNetwork, now: KernelSnapshot): DesiredNetwork {
  const canon = (a: string): string => {
    const [ip, len] = a.split('/');
    return `${canonicalIp(ip!)}/${len!}`;
  };
  return {
    ...next,
    links: next.links.map((l) => {
      const held = new Set((now.addresses.get(l.name) ?? []).map(canon));
      return { ...l, addresses: (l.addresses ?? []).filter((a) => held.has(canon(a))) };
    }),
    routes: (next.routes ?? []).filter((r: DesiredRoute) => now.routes.has(routeKey(r))),
  };
}

/** Runs applies of modes and rules against the kernel (see the file comment for the order). */
export class ModeController {
  private running: ApplianceConfig | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly timers = new Set<{ cancel(): void }>();
  private generation = 0;
  private appliedAt: string | null = null;
  private lastError: ModesStatus['lastError'] = null;
  private readonly counts = { announced: 0, announceFailed: 0, ctDeleted: 0, ctFailed: 0 };

  constructor(private readonly opts: ModeControllerOptions) {}

  /** The config last applied; undefined before the first apply. */
  get config(): ApplianceConfig | undefined {
    return this.running;
  }

  /**
   * Make the kernel match `next` (serialized with other applies). `next` may
   * be a function that reads it (a config file) when its turn comes; what
   * it throws is a refusal like any other (in the status, nothing changed).
   */
  apply(next: ApplianceConfig | (() => ApplianceConfig)): Promise<ModeApplyReport> {
    const run = this.tail.then(() => this.applyNow(next), () => this.applyNow(next));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Cancel pending announcements. */
  stop(): void {
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }

  /** Kernel settings of `c`; the bridge ports are those of the base firewall. */
  private settings(c: ApplianceConfig): SysctlSetting[] {
    const fw = this.opts.baseFirewall(c);
    const portsOf = (id: number): readonly string[] => fw.segments.find((s) => s.name === firewallSegmentName(id))?.ports ?? [];
    return kernelSettings(c, (id) => this.opts.bridgeOf(id), portsOf);
  }

  private desired(c: ApplianceConfig): { net: DesiredNetwork; fw: DesiredFirewall } {
    const o = this.opts;
    return {
      net: networkWithModes(o.baseNetwork(c), c, (id) => o.bridgeOf(id)),
      fw: firewallWithModes(o.baseFirewall(c), c, (id) => o.tunnelPortOf(id)),
    };
  }

  private async applyNow(input: ApplianceConfig | (() => ApplianceConfig)): Promise<ModeApplyReport> {
    const { effects: fx, log } = this.opts;
    const prev = this.running;
    try {
      // 0. Refusals: nothing changed yet.
      const next = typeof input === 'function' ? input() : input;
      if (prev) checkRuntimeChange(prev, next);
      const want = this.desired(next);
      await fx.checkFirewall(want.fw);
      const old = prev ? this.desired(prev) : undefined;

      let kernelChanges = 0;
      let firewallChanged = false;
      let firewallApplied = false;
      const settings = this.settings(next);
      const early = settings.filter((s) => !turnsIpv6On(s));
      try {
        // Starting: closed until the real ruleset is in.
        if (!prev) await fx.applyFirewall(closedFirewall(want.fw));
        // Settings of links that exist already (a TAP is down until step 1 brings it up: its IPv6 goes off first).
        for (const s of early) fx.sysctl({ ...s, optional: true });
        // 1. Removals only.
        const now = await fx.snapshot(want.net.links.map((l) => l.name));
        kernelChanges += await fx.reconcile(removalsOnly(want.net, now));
        // 2. Kernel settings, every link there now; IPv6 stays off until the ruleset is in.
        for (const s of early) fx.sysctl(s);
        // 3. The ruleset.
        firewallChanged = (await fx.applyFirewall(want.fw)).changed;
        firewallApplied = true;
        // 4. IPv6 on where a gateway needs it, then additions.
        for (const s of settings) if (turnsIpv6On(s)) fx.sysctl(s);
        kernelChanges += await fx.reconcile(want.net);
      } catch (e) {
        if (old && prev) await this.restore(prev, old, firewallApplied);
        throw e;
      }
      this.running = next;
      this.generation += 1;
      this.appliedAt = new Date().toISOString();
      this.lastError = null;

      // 5. Announcements, repeated.
      const announced = announcements(prev, next, (id) => this.opts.bridgeOf(id));
      for (const a of announced) this.announce(a, ANNOUNCE_REPEATS);

      // 6. Conntrack entries of what stopped acting.
      let conntrackDeleted = 0;
      const flushes = prev ? conntrackFlushes(prev, next) : [];
      if (flushes.length > 0) {
        try {
          conntrackDeleted = await fx.deleteConntrack(flushes);
          this.counts.ctDeleted += conntrackDeleted;
        } catch (e) {
          this.counts.ctFailed += 1;
          log.error('conntrack entries of removed rules could not be deleted; their flows end when the entries time out', { error: String(e) });
        }
      }
      const report = { generation: this.generation, firewallChanged, kernelChanges, announced, conntrackDeleted };
      log.info('network modes applied', {
        generation: report.generation, firewallChanged, kernelChanges,
        modes: next.segments.map((s) => `${s.id}:${modeOf(s)}`).join(','), announced: announced.length, conntrackDeleted,
      });
      return report;
    } catch (e) {
      const code = e instanceof NeaError ? e.code : 'INTERNAL';
      this.lastError = { code, message: e instanceof Error ? e.message : String(e), at: new Date().toISOString() };
      log.error('network modes not applied; the previous state stands', { code, error: this.lastError.message });
      throw e;
    }
  }

  /** Put the previous state back after a failed step (best effort; failures logged). */
  private async restore(prev: ApplianceConfig, old: { net: DesiredNetwork; fw: DesiredFirewall }, firewallApplied: boolean): Promise<void> {
    const { effects: fx, log } = this.opts;
    const settings = this.settings(prev);
    const steps: [string, () => Promise<unknown>][] = [
      ['kernel settings', () => { for (const s of settings) if (!turnsIpv6On(s)) fx.sysctl(s); return Promise.resolve(); }],
      // The ruleset only when the new one went in (a refused one left the old in place).
      ...(firewallApplied ? [['ruleset', () => fx.applyFirewall(old.fw)] as [string, () => Promise<unknown>]] : []),
      ['IPv6 of gateway bridges', () => { for (const s of settings) if (turnsIpv6On(s)) fx.sysctl(s); return Promise.resolve(); }],
      ['addresses and routes', () => fx.reconcile(old.net)],
    ];
    let ok = true;
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (e) {
        ok = false;
        log.error(`restoring the previous ${what} failed; the next apply or a restart converges`, { error: String(e) });
      }
    }
    if (ok) log.warn('previous network state restored after a failed apply');
  }

  private announce(a: Announcement, left: number): void {
    const { effects: fx, log } = this.opts;
    fx.announce(a).then(() => { this.counts.announced += 1; }, (e: unknown) => {
      this.counts.announceFailed += 1;
      log.warn('announcement failed', { link: a.link, ipv4: a.ipv4, ipv6: a.ipv6, error: String(e) });
    });
    if (left <= 1) return;
    const set = this.opts.setTimer ?? ((fn, ms) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return { cancel: () => { clearTimeout(t); } };
    });
    const timer = set(() => {
      this.timers.delete(timer);
      // Still held? A later apply may have given the address up.
      if (stillHeld(this.running, a)) this.announce(a, left - 1);
    }, ANNOUNCE_INTERVAL_MS);
    this.timers.add(timer);
  }

  status(): ModesStatus {
    const c = this.running;
    return {
      generation: this.generation,
      appliedAt: this.appliedAt,
      lastError: this.lastError,
      segments: (c?.segments ?? []).map((s) => ({ id: s.id, mode: modeOf(s), internet: s.internet ?? false, gateway: s.gateway ?? null })),
      routeBetweenSegments: c?.routeBetweenSegments ?? false,
      publicRules: { configured: c?.publicRules?.length ?? 0, active: c ? activeRules(c).length : 0 },
      publicAddresses: c ? heldPublicAddresses(c) : [],
      announcements: { sent: this.counts.announced, failed: this.counts.announceFailed },
      conntrack: { deleted: this.counts.ctDeleted, failed: this.counts.ctFailed },
    };
  }
}

// ---- the real effects -----------------------------------------------------------

/** Write `value` to /proc/sys/`path` (in the process's network namespace). */
export function writeSysctl(s: SysctlSetting): void {
  try {
    writeFileSync(`/proc/sys/${s.path}`, s.value);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (s.optional && errno === 'ENOENT') return;
    throw new SystemError('SYSCTL_FAILED', errno, 'write', `cannot set ${s.path.replace(/\//g, '.')} = ${s.value}: ${errno}${errno === 'EACCES' || errno === 'EROFS' ? ' (needs root, and /proc/sys writable)' : ''}`, { cause: e });
  }
}

/**
 * Send one round of announcements on `a.link`: a gratuitous ARP for the
 * IPv4 address and an unsolicited NA for the IPv6 one, from the link's MAC,
 * through a packet socket on the link itself. A bridge floods them to its
 * ports (the bridge output chain keeps them off a cut tunnel port).
 */
export async function announceOnLink(netlink: Netlink, a: Announcement): Promise<void> {
  const link = await netlink.link(a.link);
  if (!link?.mac) throw new NeaError('NETCONFIG_LINK_MISSING', `cannot announce on ${a.link}: no such link, or it has no MAC`);
  const frames: Uint8Array[] = [];
  if (a.ipv4 !== undefined) frames.push(arpAnnouncement(link.mac, a.ipv4));
  if (a.ipv6 !== undefined) frames.push(unsolicitedNeighbourAdvert(link.mac, parseIp(a.ipv6).bytes, { router: a.router }));
  const sock = withNetns(netlink.netns, () => openPacketSocket(a.link, { batchSize: 1, rcvbuf: 0 }));
  try {
    for (const f of frames) if (!sock.send(f)) throw new SystemError('PACKET_SEND_FAILED', 'EAGAIN', 'sendmmsg', `announcement on ${a.link} refused (queue full)`);
  } finally {
    sock.close();
  }
}

/** What the daemon passes to build the real effects. */
export interface KernelEffectsOptions {
  netlink: Netlink;
  firewall: { check(d: DesiredFirewall): Promise<void>; apply(d: DesiredFirewall): Promise<ApplyResult> };
  log: Logger;
}

/** The real effects: netlink reconcile, nft, /proc/sys, packet sockets, ctnetlink. */
export function kernelEffects(o: KernelEffectsOptions): ModeEffects {
  return {
    async snapshot(names) {
      const links = await o.netlink.links();
      const byIndex = new Map(links.map((l) => [l.index, l.name]));
      const wanted = new Set(names);
      const addresses = new Map<string, string[]>();
      for (const a of await o.netlink.addresses()) {
        const name = byIndex.get(a.index);
        if (name === undefined || !wanted.has(name) || !a.permanent) continue;
        addresses.set(name, [...(addresses.get(name) ?? []), a.cidr]);
      }
      const routes = new Set<string>();
      for (const r of await o.netlink.routes()) {
        const dev = r.oif === undefined ? undefined : byIndex.get(r.oif);
        if (dev === undefined || !wanted.has(dev)) continue;
        routes.add(routeKey({ dst: r.dst, via: r.gateway, dev }));
      }
      return { addresses, routes };
    },
    async reconcile(desired) {
      return (await reconcile(o.netlink, desired, { log: o.log })).length;
    },
    checkFirewall: (d) => o.firewall.check(d),
    applyFirewall: (d) => o.firewall.apply(d),
    sysctl: writeSysctl,
    announce: (a) => announceOnLink(o.netlink, a),
    async deleteConntrack(filters) {
      const ct = Conntrack.open(o.netlink.netns === undefined ? {} : { netns: o.netlink.netns });
      try {
        return await ct.deleteMatching(filters);
      } finally {
        ct.close();
      }
    },
  };
}
