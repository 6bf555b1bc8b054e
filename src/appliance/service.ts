/**
 * `nea appliance run` as a whole: the composition root that builds the real
 * parts and wires them.
 *
 * Start, in order:
 *   1. the state (state.json, or its previous copy, merged with what the
 *      config file changed: state.ts);
 *   2. the daemon, started with the config file's hardware part and the
 *      state's desired part (daemon-control.ts);
 *   3. the management API, when enabled: TLS identity and pairing key from
 *      the state dir, a local admin token in `<state-dir>/api-token` (for
 *      `nea status` and `nea pair` on the appliance itself), then listen;
 *      `<state-dir>/api.json` tells local clients where it listens and which
 *      certificate to pin.
 * Stop, in reverse. SIGHUP ({@link ApplianceService.reload}): the config file
 * is read again and what it changed is merged into the state and applied
 * (the daemon's run-time rules; a refusal changes nothing).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PairingRedeemed } from '../protocol/appliance-api.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import type { Logger } from '../shared/log.js';
import { buildApi, type ApiApp } from './api/app.js';
import { apiRequest } from '../shared/api-client.js';
import type { ApplianceConfig } from './config.js';
import { checkBearer, createApiToken, loadOrCreateSigningKey } from './credentials.js';
import { DaemonControl, type ApplianceLike } from './daemon-control.js';
import { desiredFromConfig } from './desired-config.js';
import { StateManager } from './manager.js';
import { mergeSeed, StateStore } from './state.js';
import { loadOrCreateTls } from '../shared/tls.js';

/** The local admin token's file in the state dir (0600). */
export const LOCAL_TOKEN_FILE = 'api-token';
/** Where the API listens and its certificate's fingerprint, for local clients. */
export const API_INFO_FILE = 'api.json';
export const DEFAULT_API_PORT = 8443;

export interface ApiInfo {
  url: string;
  fingerprint: string;
}

export interface ServiceOptions {
  config: ApplianceConfig;
  /** Reads the config file again (SIGHUP). */
  loadConfig: () => ApplianceConfig;
  stateDir: string;
  log: Logger;
  makeAppliance: (config: ApplianceConfig) => ApplianceLike;
  natCounters?: ConstructorParameters<typeof DaemonControl>[0]['natCounters'];
  /** See DaemonControlOptions.onFatal. */
  onFatal?: (error: unknown) => void;
  /** Where the API listens; null: no API. */
  api: { host: string; port: number } | null;
  /** Tunnel endpoint put in pairing tokens by default (`ADDR:PORT` as tenants reach this appliance). */
  advertiseEndpoint?: string;
  /** API URL put in pairing tokens by default. */
  advertiseApi?: string;
}

export class ApplianceService {
  private control: DaemonControl | undefined;
  private manager: StateManager | undefined;
  private app: ApiApp | undefined;
  /** The API's URL once it listens. */
  url: string | undefined;

  constructor(private readonly opts: ServiceOptions) {}

  async start(): Promise<void> {
    const { config, stateDir, log } = this.opts;
    const { store } = StateStore.open({ dir: stateDir, log: log.child('state') }, desiredFromConfig(config));
    const control = new DaemonControl({
      base: config, make: this.opts.makeAppliance, log,
      ...(this.opts.natCounters && { natCounters: this.opts.natCounters }),
      ...(this.opts.onFatal && { onFatal: this.opts.onFatal }),
    });
    await control.start(store.current.desired);
    this.control = control;
    const manager = new StateManager({ store, control, log: log.child('state') });
    this.manager = manager;
    try {
      if (this.opts.api) await this.startApi(this.opts.api);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async startApi(listen: { host: string; port: number }): Promise<void> {
    const { stateDir, log, config } = this.opts;
    const manager = this.manager!;
    const tls = await loadOrCreateTls(stateDir, config.name);
    await this.ensureLocalToken();
    const defaultApi = this.opts.advertiseApi ?? (listen.host !== '0.0.0.0' && listen.host !== '::' ? `https://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}` : undefined);
    const app = await buildApi({
      manager, log: log.child('api'), tls,
      pairing: {
        signingKey: loadOrCreateSigningKey(stateDir), fingerprint: tls.fingerprint,
        ...(this.opts.advertiseEndpoint !== undefined && { endpoint: this.opts.advertiseEndpoint }),
        ...(defaultApi !== undefined && { apiUrl: defaultApi }),
        redeem: async (target, body) => (await apiRequest<PairingRedeemed>({ url: target.url, fingerprint: target.fingerprint }, 'POST', '/v1/pairing/redeem', body)).body,
      },
    });
    this.app = app;
    await app.listen({ host: listen.host, port: listen.port });
    const local = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
    this.url = `https://${local.includes(':') ? `[${local}]` : local}:${listen.port}`;
    const info: ApiInfo = { url: this.url, fingerprint: tls.fingerprint };
    writeFileAtomic(join(stateDir, API_INFO_FILE), JSON.stringify(info, null, 2) + '\n', 0o644, { durable: false });
    log.info('management API listening', { address: `${listen.host}:${listen.port}`, fingerprint: tls.fingerprint });
  }

  /** `<state-dir>/api-token` holds a valid admin token for local clients; a new one replaces a missing or revoked one. */
  private async ensureLocalToken(): Promise<void> {
    const file = join(this.opts.stateDir, LOCAL_TOKEN_FILE);
    const manager = this.manager!;
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (checkBearer(`Bearer ${text}`, manager.snapshot().apiTokens).ok) return;
    }
    const t = createApiToken('local_admin', 'admin', manager.now());
    await manager.change('local admin token', (d) => {
      for (const r of d.apiTokens) if (r.name === 'local_admin' && r.revokedAt === undefined) r.revokedAt = manager.now().toISOString();
      d.apiTokens.push(t.record);
    });
    writeFileAtomic(file, t.token + '\n', 0o600);
    this.opts.log.info('local admin token written', { file, id: t.record.id });
  }

  /** SIGHUP: merge what the config file changed into the state and apply it. */
  async reload(): Promise<void> {
    const manager = this.manager!;
    const control = this.control!;
    await manager.change('config file reload', async (d) => {
      const r = await control.reload(this.opts.loadConfig, (file) => mergeSeed(d.desired, d.seed, desiredFromConfig(file)).desired);
      d.desired = r.desired;
      d.seed = desiredFromConfig(r.file);
    }, { alreadyApplied: true });
  }

  async stop(): Promise<void> {
    await this.app?.close();
    this.app = undefined;
    await this.control?.stop();
    this.control = undefined;
  }
}

/** `ADDR:PORT` or `[V6]:PORT` or `off` → the API's listen address. */
export function parseListen(text: string): { host: string; port: number } | null {
  if (text === 'off') return null;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) throw new Error(`--api-listen: "${text}" must be ADDR:PORT, [V6]:PORT or off`);
  return { host: m[1]!, port };
}
