/**
 * The real ApplianceControl: the running appliance daemon (daemon.ts) driven
 * by desired states.
 *
 * apply(next), in order:
 *   1. the config it means ({@link configWithDesired}; refused as input,
 *      naming the field, when the config rules say no);
 *   2. segment modes, gateway addresses, public IP rules, routing: the
 *      daemon's own run-time apply (issue 5), given the peers it already
 *      runs, so a peer change alone never looks like a tunnel change to it;
 *   3. peers: added, removed or changed in the tunnel engine at run time
 *      (other peers keep their sessions);
 *   4. anything else the daemon cannot change at run time (a segment added
 *      or removed, a backing): the daemon is restarted in-process with the
 *      new config (the tunnel re-handshakes within a round trip); when that
 *      restart fails, the previous config is started again and the error
 *      reported.
 * A SIGHUP reload ({@link DaemonControl.reload}) keeps the daemon's own
 * rule: a change that takes a restart is refused, not restarted.
 */
import { NftApplier } from '../netconfig/nft-apply.js';
import type { Desired } from '../protocol/appliance-api.js';
import { NeaError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { ApplianceConfig, PeerConfig } from './config.js';
import { configWithDesired } from './desired-config.js';
import type { ApplianceControl, LiveStatus } from './manager.js';
import { sameItem } from './state.js';

/** The daemon as this file uses it (daemon.ts's Appliance; a fake in tests). */
export interface ApplianceLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): Promise<{
    publicKey: string;
    tunnel: { listenPort: number; peers: LiveStatus['peers']; segments: { id: number; counters: { toTunnel: number; fromTunnel: number; drops: Record<string, number> } }[]; unauthenticatedDrops: Record<string, number> } | null;
  }>;
  apply(next: ApplianceConfig | (() => ApplianceConfig)): Promise<unknown>;
  setPeers(peers: readonly PeerConfig[]): void;
}

export interface DaemonControlOptions {
  /** The config file's content (role, name, hardware; its desired part is replaced by the state's). */
  base: ApplianceConfig;
  make: (config: ApplianceConfig) => ApplianceLike;
  log: Logger;
  /** Reads the NAT rules' counters (rule name → hits); default: nft, best effort. */
  natCounters?: (config: ApplianceConfig) => Promise<Record<string, { packets: number; bytes: number }> | undefined>;
  /**
   * Called when an in-process restart failed and the previous config did not
   * start again either: the appliance runs nothing. The process should exit
   * so that its supervisor starts it afresh (from the persisted state, which
   * still holds the previous desired state).
   */
  onFatal?: (error: unknown) => void;
}

const peersOf = (c: ApplianceConfig): PeerConfig[] => c.tunnel?.peers ?? [];

function withPeers(c: ApplianceConfig, peers: PeerConfig[]): ApplianceConfig {
  return c.tunnel ? { ...c, tunnel: { ...c.tunnel, peers } } : c;
}

/** Hits of each public IP rule from the firewall's `dnat-<rule>` counters (nft-render.ts). */
export async function nftNatCounters(config: ApplianceConfig, firewallId: string): Promise<Record<string, { packets: number; bytes: number }> | undefined> {
  if (!config.publicRules?.length) return {};
  try {
    const counters = await new NftApplier(firewallId).readCounters();
    const out: Record<string, { packets: number; bytes: number }> = {};
    for (const r of config.publicRules) {
      const c = counters.get(`dnat-${r.name}`);
      if (c) out[r.name] = { packets: Number(c.packets), bytes: Number(c.bytes) };
    }
    return out;
  } catch {
    return undefined;
  }
}

export class DaemonControl implements ApplianceControl {
  readonly role: 'sp' | 'tenant';
  readonly name: string;
  private appliance: ApplianceLike | undefined;
  private base: ApplianceConfig;
  /** The config the daemon runs (desired state included). */
  private running: ApplianceConfig | undefined;
  /** The peers the daemon's run-time apply knows (those it started with). */
  private modesPeers: PeerConfig[] = [];
  private key = '';

  constructor(private readonly opts: DaemonControlOptions) {
    this.base = opts.base;
    this.role = opts.base.role;
    this.name = opts.base.name;
  }

  /** Starts the daemon with the base config and `desired`. */
  async start(desired: Desired): Promise<void> {
    await this.startWith(configWithDesired(this.base, desired));
  }

  private async startWith(config: ApplianceConfig): Promise<void> {
    const a = this.opts.make(config);
    await a.start();
    this.appliance = a;
    this.running = config;
    this.modesPeers = peersOf(config);
    this.key = (await a.status()).publicKey;
  }

  async stop(): Promise<void> {
    await this.appliance?.stop();
    this.appliance = undefined;
  }

  publicKey(): string {
    return this.key;
  }

  /** The config the daemon runs. */
  get config(): ApplianceConfig | undefined {
    return this.running;
  }

  async status(): Promise<LiveStatus> {
    const a = this.started();
    const s = await a.status();
    const natHits = await (this.opts.natCounters ?? (() => Promise.resolve(undefined)))(this.running!);
    return {
      publicKey: s.publicKey,
      listenPort: s.tunnel?.listenPort ?? null,
      peers: s.tunnel?.peers ?? [],
      segments: (s.tunnel?.segments ?? []).map((g) => ({ id: g.id, toTunnel: g.counters.toTunnel, fromTunnel: g.counters.fromTunnel, drops: g.counters.drops })),
      unauthenticatedDrops: s.tunnel?.unauthenticatedDrops ?? {},
      ...(natHits && { natHits }),
    };
  }

  private started(): ApplianceLike {
    if (!this.appliance || !this.running) throw new NeaError('API_RESTARTING', 'the appliance is restarting to apply a change; retry in a moment');
    return this.appliance;
  }

  async apply(next: Desired): Promise<void> {
    const a = this.started();
    const running = this.running!;
    const config = configWithDesired(this.base, next);
    if (sameItem(config, running)) return;
    const forModes = withPeers(config, this.modesPeers);
    try {
      if (!sameItem(forModes, withPeers(running, this.modesPeers))) await a.apply(forModes);
    } catch (e) {
      if (e instanceof NeaError && e.code === 'APPLY_NEEDS_RESTART') {
        await this.restart(config, e.message);
        return;
      }
      throw e;
    }
    if (!sameItem(peersOf(config), peersOf(running))) a.setPeers(peersOf(config));
    this.running = config;
  }

  private async restart(config: ApplianceConfig, why: string): Promise<void> {
    const { log } = this.opts;
    const previous = this.running!;
    log.info('restarting the appliance in-process for a change it cannot make at run time', { reason: why.split(':')[0] });
    await this.stop();
    try {
      await this.startWith(config);
    } catch (e) {
      log.error('the new config did not start; starting the previous one again', { error: e instanceof Error ? e.message : String(e) });
      try {
        await this.startWith(previous);
      } catch (e2) {
        log.error('the previous config did not start again either; the appliance runs nothing', { error: e2 instanceof Error ? e2.message : String(e2) });
        this.opts.onFatal?.(e2);
      }
      throw e;
    }
  }

  /**
   * SIGHUP: `load` reads the config file, `merge` makes the desired state of
   * it; the daemon applies the result with its own rules (a refusal,
   * including what `load` or `merge` throws, is recorded in its status).
   * Resolves with what was applied.
   */
  async reload(load: () => ApplianceConfig, merge: (fileConfig: ApplianceConfig) => Desired): Promise<{ file: ApplianceConfig; desired: Desired }> {
    const a = this.started();
    let out: { file: ApplianceConfig; desired: Desired; config: ApplianceConfig } | undefined;
    await a.apply(() => {
      const file = load();
      const desired = merge(file);
      const config = configWithDesired(file, desired);
      out = { file, desired, config };
      return withPeers(config, this.modesPeers);
    });
    const r = out!;
    if (!sameItem(peersOf(r.config), peersOf(this.running!))) a.setPeers(peersOf(r.config));
    this.base = r.file;
    this.running = r.config;
    return { file: r.file, desired: r.desired };
  }
}
