/**
 * Test kit for the management API: a fake appliance behind ApplianceControl
 * and a ready API (temporary state dir, an admin token). Used by the unit
 * tests; no kernel, no socket.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../dataplane/wg/crypto.js';
import type { Desired, PairingRedeemed } from '../../protocol/appliance-api.js';
import type { ErrorCode } from '../../shared/error-codes.js';
import { NeaError } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/log.js';
import { createApiToken, loadOrCreateSigningKey } from '../credentials.js';
import { parseApplianceConfig, type ApplianceConfig } from '../config.js';
import { DaemonControl, type ApplianceLike } from '../daemon-control.js';
import { StateManager, type ApplianceControl, type LiveStatus } from '../manager.js';
import { checkRuntimeChange } from '../modes.js';
import { StateStore } from '../state.js';
import { buildApi, type ApiApp, type ApiOptions } from './app.js';
import { ApiError } from '../../shared/api-client.js';

export class FakeControl implements ApplianceControl {
  readonly applied: Desired[] = [];
  /** When set, apply() throws it (once per call). */
  failWith: Error | undefined;
  readonly key = generatePrivateKey();

  constructor(readonly role: 'sp' | 'tenant', readonly name: string) {}

  publicKey(): string {
    return encodeKey(publicKeyOf(this.key));
  }

  status(): Promise<LiveStatus> {
    const last = this.applied.at(-1);
    return Promise.resolve({
      publicKey: this.publicKey(), listenPort: 51820,
      peers: (last?.peers ?? []).map((p) => ({
        publicKey: p.publicKey, endpoint: p.endpoint ?? null, segments: p.segments, lastHandshakeAgoMs: 1200,
        counters: { rxPackets: 10, rxBytes: 1000, txPackets: 12, txBytes: 1300, handshakes: 1, drops: { 'segment-not-owned': 2 } },
      })),
      segments: (last?.segments ?? []).map((s) => ({ id: s.id, toTunnel: 5, fromTunnel: 6, drops: {} })),
      unauthenticatedDrops: { 'bad-mac1': 3 },
      natHits: Object.fromEntries((last?.publicRules ?? []).map((r) => [r.name, { packets: 7, bytes: 700 }])),
    });
  }

  apply(next: Desired): Promise<void> {
    if (this.failWith) return Promise.reject(this.failWith);
    if (next.publicRules.some((r) => r.kind === 'port' && r.publicPort === 22)) {
      return Promise.reject(new NeaError('INVALID_INPUT', 'public rule: port 22 is the appliance\'s SSH port'));
    }
    this.applied.push(structuredClone(next));
    return Promise.resolve();
  }
}

/**
 * A daemon that keeps the real one's run-time rules (modes.ts) without a
 * kernel: what DaemonControl drives in tests.
 */
export class FakeDaemon implements ApplianceLike {
  running: ApplianceConfig;
  constructor(config: ApplianceConfig) { this.running = config; }
  start(): Promise<void> { return Promise.resolve(); }
  stop(): Promise<void> { return Promise.resolve(); }
  status(): ReturnType<ApplianceLike['status']> { return Promise.resolve({ publicKey: 'K'.repeat(43) + '=', tunnel: null }); }
  apply(next: ApplianceConfig | (() => ApplianceConfig)): Promise<unknown> {
    return Promise.resolve().then(() => {
      const c = typeof next === 'function' ? next() : next;
      checkRuntimeChange(this.running, c);
      this.running = c;
      return {};
    });
  }
  setPeers(): void { /* accepted */ }
}

/** FakeControl whose applies go through the real DaemonControl first (config mapping and validation, run-time rules). */
export class DaemonBackedControl extends FakeControl {
  readonly daemon: DaemonControl;
  constructor(role: 'sp' | 'tenant', name: string, base: ApplianceConfig, log: Logger) {
    super(role, name);
    this.daemon = new DaemonControl({ base, log, make: (c) => new FakeDaemon(c) });
  }
  override async apply(next: Desired): Promise<void> {
    await this.daemon.apply(next);
    await super.apply(next);
  }
}

/** An SP config matching {@link SEED}, with an external interface and a public pool. */
export const SP_BASE_CONFIG = {
  role: 'sp', name: 'sp-a', tunnel: { listenPort: 51820, peers: [] },
  external: { interface: 'ext0', addresses: ['203.0.113.2/24'], publicPool: ['203.0.113.0/24'] },
  segments: [{ id: 10, name: 'servers', uplink: 'c10', gateway: { ipv4: '198.51.100.1/24' } }, { id: 20, name: 'dmz', uplink: 'c20' }],
};

export const SEED: Desired = {
  segments: [
    { id: 10, name: 'servers', mode: 'extend', internet: false, gateway: { ipv4: '198.51.100.1/24' } },
    { id: 20, name: 'dmz', mode: 'extend', internet: false },
  ],
  publicRules: [], peers: [], routing: { betweenSegments: false },
};

export interface TestApi {
  app: ApiApp;
  manager: StateManager;
  store: StateStore;
  control: FakeControl;
  dir: string;
  /** An admin bearer token. */
  admin: string;
  /** A read-only bearer token. */
  reader: string;
  lines: string[];
  log: Logger;
}

export interface TestApiOptions {
  role?: 'sp' | 'tenant';
  name?: string;
  seed?: Desired;
  now?: () => Date;
  dir?: string;
  redeem?: ApiOptions['pairing']['redeem'];
  /** Drive a real DaemonControl (over a FakeDaemon) with this config file content. */
  daemonConfig?: unknown;
  api?: Partial<Omit<ApiOptions, 'manager' | 'log' | 'pairing'>>;
}

export async function testApi(o: TestApiOptions = {}): Promise<TestApi> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'nea-api-'));
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: (l) => lines.push(l) });
  const base = o.daemonConfig === undefined ? undefined : parseApplianceConfig(o.daemonConfig);
  const control = base ? new DaemonBackedControl(o.role ?? 'sp', o.name ?? 'sp-a', base, log) : new FakeControl(o.role ?? 'sp', o.name ?? 'sp-a');
  const { store } = StateStore.open({ dir, log, ...(o.now && { now: () => o.now!().getTime() }) }, o.seed ?? SEED);
  if (control instanceof DaemonBackedControl) await control.daemon.start(store.current.desired);
  const manager = new StateManager({ store, control, log, ...(o.now && { now: o.now }) });
  await manager.reconcile();
  const admin = createApiToken('admin', 'admin', new Date());
  const reader = createApiToken('reader', 'read', new Date());
  await manager.change('test setup', (d) => { d.apiTokens.push(admin.record, reader.record); });
  const app = await buildApi({
    manager, log,
    pairing: {
      signingKey: loadOrCreateSigningKey(dir), fingerprint: 'ab'.repeat(32), endpoint: '192.0.2.2:51820', apiUrl: 'https://192.0.2.2:8443',
      redeem: o.redeem ?? (() => Promise.reject(new Error('no SP in this test'))),
    },
    ...o.api,
  });
  return { app, manager, store, control, dir, admin: admin.token, reader: reader.token, lines, log };
}

/** A redeem function that calls another test API through inject(). */
export function redeemVia(sp: () => ApiApp): ApiOptions['pairing']['redeem'] {
  return async (_target, body) => {
    const r = await sp().inject({ method: 'POST', url: '/v1/pairing/redeem', payload: body });
    if (r.statusCode !== 200) {
      const p = r.json<{ code: string; detail: string }>();
      throw new ApiError(p.code as ErrorCode, r.statusCode, p.detail);
    }
    return r.json<PairingRedeemed>();
  };
}
