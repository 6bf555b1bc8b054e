/**
 * The appliance process: segments' kernel presence, their backings, the tunnel.
 *
 * Start, in order: decide how VLAN backings are made (kernel 802.1Q devices
 * or user space, segments.ts); open each segment's TAP (the local port the
 * tunnel will use) and, for user-space VLANs, each VLAN port; reconcile the
 * kernel and apply the firewall with the segments' modes (gateway.ts: per
 * segment a bridge holding the TAP and the backing's port, all up, an address
 * only in gateway mode); start the trunks (user space: the
 * VLAN trunk; kernel devices: the trunk monitor); start the tunnel; write the
 * status file every `statusIntervalMs`. Stop, in reverse. A failed start
 * stops what started, so nothing is left half-open. `apply(config)` changes
 * modes and public IP rules at run time without touching the tunnel.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openTap, openTun, type PacketDevice, type PacketDeviceCounters } from '../dataplane/tuntap.js';
import { disableReceiveOffloads, openPacketSocket } from '../dataplane/packet-socket.js';
import { TunnelEngine, type EngineStatus } from '../dataplane/tunnel/engine.js';
import { innerTagGuard } from '../dataplane/tunnel/guard.js';
import { encodeBpf, trunkMonitorFilter } from '../dataplane/vlan/bpf.js';
import { TrunkMonitor } from '../dataplane/vlan/monitor.js';
import { VlanTrunk, type TrunkStatus } from '../dataplane/vlan/trunk.js';
import { openTunnelSocket } from '../dataplane/tunnel/udp-socket.js';
import { decodeKey, encodeKey, publicKeyOf } from '../dataplane/wg/crypto.js';
import { Netlink } from '../netconfig/netlink.js';
import { NftApplier, spawnNft } from '../netconfig/nft-apply.js';
import type { DesiredFirewall } from '../netconfig/nft-desired.js';
import { computeMssClamp } from '../netconfig/nft-mss.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { NeaError } from '../shared/errors.js';
import { Lifecycle } from '../shared/lifecycle.js';
import type { Logger } from '../shared/log.js';
import { parseEndpoint, segmentBacking, segmentLinkNames, type ApplianceConfig, type PeerConfig, type SegmentBacking } from './config.js';
import { ModeController, kernelEffects, type ModeApplyReport, type ModesStatus } from './gateway.js';
import { loadOrCreatePrivateKey } from './keys.js';
import { bridgedPort, chooseVlanImplementation, desiredNetwork, trunkPlans, type VlanImplementation } from './segments.js';

export { desiredNetwork } from './segments.js';

export interface ApplianceOptions {
  config: ApplianceConfig;
  /** Directory for state and the status file. */
  stateDir: string;
  log: Logger;
  /** Interval between status file writes, in ms; default 1000. */
  statusIntervalMs?: number;
  /** The nft executable; default `nft` on PATH. */
  nftPath?: string;
}

export interface SegmentStatus {
  id: number;
  name: string;
  bridge: string;
  tap: string;
  /** The segment's backing as configured (an `uplink` shows as an access backing); null for an internal segment. */
  backing: SegmentBacking | null;
  /** The link bridged into the segment besides the TAP: the access interface or the VLAN port `nea-v<id>`; null without a backing. */
  uplink: string | null;
  /** Frames read from / written to the segment's TAP. */
  local: PacketDeviceCounters;
  /** Kernel counters of the segment's bridge. */
  bridgeStats: { rxPackets: string; txPackets: string; rxBytes: string; txBytes: string } | null;
}

export interface ApplianceStatus {
  name: string;
  role: ApplianceConfig['role'];
  /** The appliance's static public key (base64): what its peer configures. */
  publicKey: string;
  /** Tunnel peers and counters; null without a tunnel section. */
  tunnel: EngineStatus | null;
  /** How VLAN backings are made here; null without VLAN backings. */
  vlanDevices: VlanImplementation | null;
  /** VLAN trunks: frames, drops by reason (untagged, foreign-tpid, foreign-vlan, double-tagged, runt) and per-VLAN counters. */
  trunks: TrunkStatus[];
  /** Segment modes, public IP rules and the last apply (gateway.ts); null before the kernel step. */
  network: ModesStatus | null;
  pid: number;
  startedAt: string;
  updatedAt: string;
  segments: SegmentStatus[];
}

/** Management API port (default of `--api-listen`), reserved from public IP mappings. */
export const MANAGEMENT_PORT = 8443;

/** The appliance's id in nftables table names (`nea_<id>`): its name, lower-cased, other characters as `_`. */
export function firewallId(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_]/g, '_').replace(/^_+/, '').slice(0, 32) || 'appliance';
}

/** The desired firewall: every segment is extended, with TCP MSS clamped for the WAN path. */
export function desiredFirewall(config: ApplianceConfig): DesiredFirewall {
  const mss = computeMssClamp(config.tunnel?.wanMtu ?? 1500);
  return {
    appliance: firewallId(config.name),
    appliancePorts: { managementTcp: MANAGEMENT_PORT, tunnelUdp: config.tunnel?.listenPort ?? 51820 },
    segments: config.segments.map((s) => {
      const { bridge, tap } = segmentLinkNames(s.id);
      const port = bridgedPort(s);
      return {
        name: `seg${s.id}`, bridge, mode: 'extend' as const,
        ports: port === undefined ? [tap] : [tap, port],
        mss: { ipv4: mss.ipv4, ipv6: mss.ipv6 },
      };
    }),
  };
}

/** Peers' last authenticated endpoints, in the state directory. */
export const ENDPOINTS_FILE = 'endpoints.json';

export class Appliance {
  private readonly lifecycle = new Lifecycle();
  private readonly taps = new Map<number, PacketDevice>();
  /** User-space VLAN ports (`nea-v<id>`), by segment id. */
  private readonly vlanPorts = new Map<number, PacketDevice>();
  private readonly trunks: (VlanTrunk | TrunkMonitor)[] = [];
  private vlanImpl: VlanImplementation | null = null;
  private l3: PacketDevice | undefined;
  private modes: ModeController | undefined;
  private engine: TunnelEngine | undefined;
  /** The peers set by setPeers(); undefined: the config's. */
  private peersNow: PeerConfig[] | undefined;
  private privateKey: Uint8Array | undefined;
  private netlink: Netlink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private savedEndpoints: string | undefined;
  private readonly startedAt = new Date().toISOString();
  readonly statusFile: string;

  constructor(private readonly opts: ApplianceOptions) {
    this.statusFile = join(opts.stateDir, 'status.json');
    const { config, log } = opts;
    this.lifecycle
      .add({
        name: 'netlink',
        start: () => { this.netlink = Netlink.open(); },
        stop: () => { this.netlink?.close(); this.netlink = undefined; },
      })
      .add({
        name: 'vlan-devices',
        start: async () => { this.vlanImpl = await chooseVlanImplementation(this.netlink!, config, log.child('segments')); },
        stop: () => { /* nothing held */ },
      })
      .add({
        name: 'taps',
        start: () => {
          for (const s of config.segments) {
            this.taps.set(s.id, openTap(segmentLinkNames(s.id).tap, { offload: true, writerThread: true }));
            if (this.vlanImpl === 'userspace' && segmentBacking(s)?.kind === 'vlan') this.vlanPorts.set(s.id, openTap(segmentLinkNames(s.id).vlanPort));
          }
          if (config.tunnel?.l3) this.l3 = openTun(config.tunnel.l3.device);
        },
        stop: () => {
          for (const t of this.taps.values()) t.close();
          this.taps.clear();
          for (const t of this.vlanPorts.values()) t.close();
          this.vlanPorts.clear();
          this.l3?.close();
          this.l3 = undefined;
        },
      })
      .add({
        name: 'key',
        start: () => {
          const k = loadOrCreatePrivateKey(config.privateKey, opts.stateDir);
          this.privateKey = k.privateKey;
          if (k.source === 'generated') log.info('generated the appliance key', { publicKey: encodeKey(publicKeyOf(k.privateKey)) });
        },
        stop: () => { this.privateKey?.fill(0); },
      })
      .add({
        name: 'kernel',
        // Links, addresses, routes, kernel settings and the ruleset, in the order of gateway.ts.
        start: async () => {
          this.modes = this.createModeController();
          const r = await this.modes.apply(config);
          log.info('kernel reconciled', { changes: r.kernelChanges, firewallChanged: r.firewallChanged });
        },
        // Links, addresses and the ruleset stay; the TAPs vanish when closed; a restart re-applies.
        stop: () => { this.modes?.stop(); },
      })
      .add({
        name: 'trunks',
        start: () => { this.startTrunks(); },
        stop: () => {
          for (const t of this.trunks.splice(0)) t.stop();
        },
      })
      .add({
        name: 'tunnel',
        start: () => {
          const t = config.tunnel;
          if (!t) {
            // No tunnel: frames from the local side are only counted.
            for (const d of this.taps.values()) d.onBatch(() => { /* counted by the device */ });
            return;
          }
          const socket = openTunnelSocket({ address: t.listenAddress, port: t.listenPort, wanMtu: t.wanMtu });
          const engine = new TunnelEngine({
            privateKey: this.privateKey!, socket, segments: this.taps, wanMtu: t.wanMtu, log: log.child('tunnel'),
            guard: innerTagGuard,
            ...(t.macLimit !== undefined && { macTable: { maxEntries: t.macLimit } }),
            ...(this.l3 && { l3: this.l3 }),
          });
          this.engine = engine;
          const learnt = this.loadEndpoints();
          try {
            for (const p of t.peers) {
              // The configured endpoint, else the one last seen (so a restarted SP reaches its tenant at once).
              const text = p.endpoint ?? learnt[p.publicKey];
              const endpoint = text === undefined ? undefined : parseEndpoint(text);
              engine.addPeer({
                publicKey: decodeKey(p.publicKey), segments: p.segments,
                ...(endpoint && { endpoint }),
                ...(p.presharedKey !== undefined && { presharedKey: decodeKey(p.presharedKey) }),
                ...(p.persistentKeepalive !== undefined && { persistentKeepaliveMs: p.persistentKeepalive * 1000 }),
                ...(p.allowedIps && { allowedIps: p.allowedIps }),
              });
            }
          } catch (e) {
            engine.stop();
            this.engine = undefined;
            throw e;
          }
          engine.start();
          log.info('tunnel listening', { port: socket.port, peers: t.peers.length, publicKey: encodeKey(engine.device.publicKey) });
        },
        stop: () => {
          this.engine?.stop();
          this.engine = undefined;
          for (const d of this.taps.values()) d.pause();
        },
      })
      .add({
        name: 'status',
        start: async () => {
          await this.writeStatus();
          this.timer = setInterval(() => { this.writeStatus().catch((e: unknown) => { log.warn('status write failed', { error: String(e) }); }); },
            opts.statusIntervalMs ?? 1000);
        },
        stop: () => { clearInterval(this.timer); },
      });
  }

  start(): Promise<void> {
    return this.lifecycle.start();
  }

  /** The network side (gateway.ts): segment modes, gateway takeover, public IP rules. */
  private createModeController(): ModeController {
    const { config, log, nftPath } = this.opts;
    const firewall = new NftApplier(firewallId(config.name), { log: log.child('nft'), ...(nftPath !== undefined && { runner: spawnNft({ nftPath }) }) });
    return new ModeController({
      baseNetwork: (c) => desiredNetwork(c, this.vlanImpl ?? 'userspace'),
      baseFirewall: desiredFirewall,
      bridgeOf: (id) => segmentLinkNames(id).bridge,
      tunnelPortOf: (id) => segmentLinkNames(id).tap,
      effects: kernelEffects({ netlink: this.netlink!, firewall, log: log.child('netconfig') }),
      log: log.child('modes'),
    });
  }

  /**
   * Apply a changed config at run time, without touching the tunnel: segment
   * modes, internet, gateway addresses, the external section, public IP
   * rules, routing between segments (docs/modes.md). Any other change is
   * refused (APPLY_NEEDS_RESTART); a refused or failed apply leaves the
   * running state as it was. `next` may be a function that reads it (it
   * runs when earlier applies are done; what it throws counts as a refusal).
   */
  apply(next: ApplianceConfig | (() => ApplianceConfig)): Promise<ModeApplyReport> {
    if (!this.modes) return Promise.reject(new NeaError('APPLY_NEEDS_RESTART', 'the appliance is not started: start it with this config instead'));
    return this.modes.apply(next);
  }

  /**
   * Replaces the tunnel's peers at run time (pairing, the management API):
   * peers no longer listed are removed (their sessions end), new ones added,
   * changed ones re-added; the others keep their sessions. Every key is
   * checked before anything changes.
   */
  setPeers(peers: readonly PeerConfig[]): void {
    const engine = this.engine;
    if (!engine) throw new NeaError('APPLY_NEEDS_RESTART', 'this appliance runs no tunnel: add a tunnel section to its config and restart it');
    for (const p of peers) {
      decodeKey(p.publicKey);
      if (p.presharedKey !== undefined) decodeKey(p.presharedKey);
    }
    const key = (p: PeerConfig): string => JSON.stringify(p, Object.keys(p).sort());
    const now = new Map((this.peersNow ?? this.opts.config.tunnel?.peers ?? []).map((p) => [p.publicKey, key(p)]));
    const next = new Map(peers.map((p) => [p.publicKey, p]));
    const learnt = this.loadEndpoints();
    let removed = 0;
    let added = 0;
    for (const [k, text] of now) {
      const n = next.get(k);
      if (n === undefined || key(n) !== text) { engine.removePeer(decodeKey(k)); removed++; }
    }
    for (const [k, p] of next) {
      if (now.get(k) === key(p)) continue;
      const text = p.endpoint ?? learnt[k];
      const endpoint = text === undefined ? undefined : parseEndpoint(text);
      engine.addPeer({
        publicKey: decodeKey(k), segments: p.segments,
        ...(endpoint && { endpoint }),
        ...(p.presharedKey !== undefined && { presharedKey: decodeKey(p.presharedKey) }),
        ...(p.persistentKeepalive !== undefined && { persistentKeepaliveMs: p.persistentKeepalive * 1000 }),
        ...(p.allowedIps && { allowedIps: p.allowedIps }),
      });
      added++;
    }
    this.peersNow = [...peers];
    if (added + removed > 0) this.opts.log.info('tunnel peers changed', { peers: peers.length, added, removed });
  }

  /**
   * Per trunk: with user-space VLANs, GRO/LRO off (a packet socket must see
   * frames as they are on the wire) and a VlanTrunk joining the trunk's
   * packet socket to the segments' VLAN ports; with kernel devices, a monitor
   * counting what the kernel drops. All or nothing.
   */
  private startTrunks(): void {
    const { log } = this.opts;
    try {
      for (const plan of trunkPlans(this.opts.config)) {
        const tlog = log.child('trunk');
        if (this.vlanImpl === 'kernel') {
          const socket = openPacketSocket(plan.trunk, { filter: encodeBpf(trunkMonitorFilter(plan.ports.map((p) => p.vlan))), rcvbuf: 256 * 1024 });
          const m = new TrunkMonitor({ trunk: plan.trunk, socket, ports: plan.ports, log: tlog });
          this.trunks.push(m);
          m.start();
        } else {
          const offloads = disableReceiveOffloads(plan.trunk);
          const socket = openPacketSocket(plan.trunk, { promiscuous: true });
          const t = new VlanTrunk({
            trunk: plan.trunk, socket, log: tlog,
            ports: plan.ports.map((p) => ({ vlan: p.vlan, segment: p.segment, device: this.vlanPorts.get(p.segment)! })),
          });
          this.trunks.push(t);
          t.start();
          tlog.info('trunk up (user-space VLANs)', { trunk: plan.trunk, vlans: plan.ports.map((p) => p.vlan).join(','), groOff: offloads.gro, lroOff: offloads.lro });
        }
      }
    } catch (e) {
      for (const t of this.trunks.splice(0)) t.stop();
      throw e;
    }
  }

  stop(): Promise<void> {
    return this.lifecycle.stop();
  }

  async status(): Promise<ApplianceStatus> {
    const { config } = this.opts;
    const segments: SegmentStatus[] = [];
    for (const s of config.segments) {
      const names = segmentLinkNames(s.id);
      const tap = this.taps.get(s.id);
      const st = this.netlink ? await this.netlink.linkStats(names.bridge).catch(() => undefined) : undefined;
      segments.push({
        id: s.id,
        name: s.name,
        bridge: names.bridge,
        tap: names.tap,
        backing: segmentBacking(s) ?? null,
        uplink: bridgedPort(s) ?? null,
        local: tap ? tap.counters() : { rxFrames: 0, rxBytes: 0, rxBatches: 0, rxDrops: 0, txFrames: 0, txBytes: 0, txDrops: 0 },
        bridgeStats: st ? { rxPackets: String(st.rxPackets), txPackets: String(st.txPackets), rxBytes: String(st.rxBytes), txBytes: String(st.txBytes) } : null,
      });
    }
    return {
      name: config.name, role: config.role,
      publicKey: this.privateKey ? encodeKey(publicKeyOf(this.privateKey)) : '',
      tunnel: this.engine ? this.engine.status() : null,
      vlanDevices: this.vlanImpl,
      trunks: await this.trunkStatus(),
      network: this.modes?.status() ?? null,
      pid: process.pid, startedAt: this.startedAt, updatedAt: new Date().toISOString(), segments,
    };
  }

  /** The trunks' status; with kernel VLAN devices, the per-VLAN frame counts are the devices' own (kernel counters). */
  private async trunkStatus(): Promise<TrunkStatus[]> {
    const out = this.trunks.map((t) => t.status());
    if (this.vlanImpl !== 'kernel' || !this.netlink) return out;
    for (const t of out) {
      for (const p of t.ports) {
        const st = await this.netlink.linkStats(p.port).catch(() => undefined);
        if (st) { p.fromTrunk = Number(st.rxPackets); p.toTrunk = Number(st.txPackets); }
      }
    }
    return out;
  }

  private async writeStatus(): Promise<void> {
    const st = await this.status();
    writeFileAtomic(this.statusFile, JSON.stringify(st, null, 2) + '\n', 0o644, { durable: false });
    if (st.tunnel) this.saveEndpoints(st.tunnel);
  }

  private get endpointsFile(): string {
    return join(this.opts.stateDir, ENDPOINTS_FILE);
  }

  /** Peers' last authenticated endpoints (public key → `ADDR:PORT`); empty when none or unreadable. */
  private loadEndpoints(): Record<string, string> {
    try {
      const raw = JSON.parse(readFileSync(this.endpointsFile, 'utf8')) as unknown;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return {};
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(raw)) if (typeof v === 'string' && parseEndpoint(v)) out[k] = v;
      return out;
    } catch {
      return {};
    }
  }

  /** Persists the peers' endpoints when they changed (durably: a restart relies on them). */
  private saveEndpoints(t: EngineStatus): void {
    const now: Record<string, string> = {};
    for (const p of t.peers) if (p.endpoint !== null) now[p.publicKey] = p.endpoint;
    const text = JSON.stringify(now, null, 2) + '\n';
    if (text === this.savedEndpoints) return;
    writeFileAtomic(this.endpointsFile, text, 0o600);
    this.savedEndpoints = text;
  }
}
