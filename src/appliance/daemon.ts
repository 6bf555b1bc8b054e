/**
 * The appliance process (stage 1: segments' kernel presence and local port).
 *
 * Start, in order: open each segment's TAP (the local port the tunnel will
 * use), reconcile the kernel (per segment a bridge holding the TAP and the
 * uplink, all up, no addresses), start reading the TAPs, write the status
 * file every `statusIntervalMs`. Stop, in reverse. A failed start stops what
 * started, so nothing is left half-open.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openTap, openTun, type PacketDevice, type PacketDeviceCounters } from '../dataplane/tuntap.js';
import { TunnelEngine, type EngineStatus } from '../dataplane/tunnel/engine.js';
import { openTunnelSocket } from '../dataplane/tunnel/udp-socket.js';
import { decodeKey, encodeKey, publicKeyOf } from '../dataplane/wg/crypto.js';
import { Netlink } from '../netconfig/netlink.js';
import { reconcile } from '../netconfig/reconcile.js';
import { NftApplier } from '../netconfig/nft-apply.js';
import type { DesiredFirewall } from '../netconfig/nft-desired.js';
import { computeMssClamp } from '../netconfig/nft-mss.js';
import type { DesiredLink, DesiredNetwork } from '../netconfig/desired.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { Lifecycle } from '../shared/lifecycle.js';
import type { Logger } from '../shared/log.js';
import { parseEndpoint, segmentLinkNames, type ApplianceConfig } from './config.js';
import { loadOrCreatePrivateKey } from './keys.js';

export interface ApplianceOptions {
  config: ApplianceConfig;
  /** Directory for state and the status file. */
  stateDir: string;
  log: Logger;
  /** Interval between status file writes, in ms; default 1000. */
  statusIntervalMs?: number;
}

export interface SegmentStatus {
  id: number;
  name: string;
  bridge: string;
  tap: string;
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
  pid: number;
  startedAt: string;
  updatedAt: string;
  segments: SegmentStatus[];
}

/** The desired kernel state for the config: per segment a bridge with its TAP and uplink. */
export function desiredNetwork(config: ApplianceConfig): DesiredNetwork {
  const links: DesiredLink[] = [];
  for (const s of config.segments) {
    const { bridge, tap } = segmentLinkNames(s.id);
    links.push({ kind: 'bridge', name: bridge, up: true, addresses: [] });
    links.push({ kind: 'existing', name: tap, up: true, master: bridge, addresses: [] });
    if (s.uplink !== undefined) links.push({ kind: 'existing', name: s.uplink, up: true, master: bridge });
  }
  const l3 = config.tunnel?.l3;
  if (l3) links.push({ kind: 'existing', name: l3.device, up: true, addresses: l3.addresses });
  return { links, routes: [], neighbours: [] };
}

/** Management API port reserved from public IP mappings (the API itself comes with the daemon's next stage). */
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
      return {
        name: `seg${s.id}`, bridge, mode: 'extend' as const,
        ports: s.uplink === undefined ? [tap] : [tap, s.uplink],
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
  private l3: PacketDevice | undefined;
  private engine: TunnelEngine | undefined;
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
        name: 'taps',
        start: () => {
          for (const s of config.segments) this.taps.set(s.id, openTap(segmentLinkNames(s.id).tap));
          if (config.tunnel?.l3) this.l3 = openTun(config.tunnel.l3.device);
        },
        stop: () => {
          for (const t of this.taps.values()) t.close();
          this.taps.clear();
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
        start: async () => {
          const changes = await reconcile(this.netlink!, desiredNetwork(config), { log: log.child('netconfig') });
          log.info('kernel reconciled', { changes: changes.length });
        },
        stop: () => { /* links stay configured; the TAPs vanish when closed */ },
      })
      .add({
        name: 'firewall',
        start: async () => {
          const r = await new NftApplier(firewallId(config.name), { log: log.child('nft') }).apply(desiredFirewall(config));
          log.info('firewall applied', { changed: r.changed });
        },
        stop: () => { /* the ruleset stays, like the links; a restart re-applies it */ },
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
        uplink: s.uplink ?? null,
        local: tap ? tap.counters() : { rxFrames: 0, rxBytes: 0, rxBatches: 0, rxDrops: 0, txFrames: 0, txBytes: 0, txDrops: 0 },
        bridgeStats: st ? { rxPackets: String(st.rxPackets), txPackets: String(st.txPackets), rxBytes: String(st.rxBytes), txBytes: String(st.txBytes) } : null,
      });
    }
    return {
      name: config.name, role: config.role,
      publicKey: this.privateKey ? encodeKey(publicKeyOf(this.privateKey)) : '',
      tunnel: this.engine ? this.engine.status() : null,
      pid: process.pid, startedAt: this.startedAt, updatedAt: new Date().toISOString(), segments,
    };
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
