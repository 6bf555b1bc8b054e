import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../dataplane/wg/crypto.js';
import type { Desired } from '../protocol/appliance-api.js';
import { NeaError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { parseApplianceConfig, type ApplianceConfig, type PeerConfig } from './config.js';
import { DaemonControl, type ApplianceLike } from './daemon-control.js';
import { configWithDesired, desiredFromConfig } from './desired-config.js';
import { checkRuntimeChange, modeOf } from './modes.js';

const quiet = createLogger({ sink: () => undefined });
const key = (): string => encodeKey(publicKeyOf(generatePrivateKey()));

const BASE = parseApplianceConfig({
  role: 'sp', name: 'sp-a',
  tunnel: { listenPort: 51820, peers: [] },
  external: { interface: 'ext0', addresses: ['203.0.113.2/24'], publicPool: ['203.0.113.16/28'] },
  segments: [{ id: 10, name: 'web', uplink: 'c10', gateway: { ipv4: '10.1.0.1/24' } }, { id: 20, name: 'db', uplink: 'c20' }],
});

/** A daemon that keeps the run-time rules of the real one (modes.ts's checkRuntimeChange). */
class FakeAppliance implements ApplianceLike {
  static made: FakeAppliance[] = [];
  readonly applies: ApplianceConfig[] = [];
  readonly peerSets: PeerConfig[][] = [];
  running: ApplianceConfig;
  started = false;
  failStart = false;
  constructor(readonly config: ApplianceConfig) { this.running = config; FakeAppliance.made.push(this); }
  start(): Promise<void> { if (this.failStart) return Promise.reject(new Error('TAP busy')); this.started = true; return Promise.resolve(); }
  stop(): Promise<void> { this.started = false; return Promise.resolve(); }
  status(): ReturnType<ApplianceLike['status']> { return Promise.resolve({ publicKey: 'PK', tunnel: null }); }
  apply(next: ApplianceConfig | (() => ApplianceConfig)): Promise<unknown> {
    return Promise.resolve().then(() => {
      const c = typeof next === 'function' ? next() : next;
      checkRuntimeChange(this.running, c);
      this.running = c;
      this.applies.push(c);
      return {};
    });
  }
  setPeers(peers: readonly PeerConfig[]): void { this.peerSets.push([...peers]); }
}

async function started(failNext = false): Promise<{ control: DaemonControl; desired: Desired }> {
  FakeAppliance.made = [];
  const control = new DaemonControl({ base: BASE, log: quiet, make: (c) => { const a = new FakeAppliance(c); a.failStart = failNext && FakeAppliance.made.length === 2; return a; } });
  const desired = desiredFromConfig(BASE);
  await control.start(desired);
  return { control, desired };
}

describe('config ⇄ desired state', () => {
  it('round-trips the config file (uplink spelling and default mode kept)', () => {
    const c = configWithDesired(BASE, desiredFromConfig(BASE));
    expect(c).toEqual(BASE);
    expect(desiredFromConfig(BASE).segments[0]).toEqual({ id: 10, name: 'web', backing: { kind: 'access', interface: 'c10' }, mode: 'extend', internet: false, gateway: { ipv4: '10.1.0.1/24' } });
  });

  it('validates with the config\'s own rules, naming the field', () => {
    const d = desiredFromConfig(BASE);
    d.publicRules = [{ name: 'ssh', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 22, target: '10.1.0.10' }];
    expect(() => configWithDesired(BASE, d)).toThrow(/desired state: publicRules\[0\]\.publicPort: tcp port 22/);
    const t = parseApplianceConfig({ role: 'tenant', name: 't', segments: [{ id: 10, name: 'x' }] });
    const td = desiredFromConfig(t);
    td.peers = [{ publicKey: key(), segments: [10] }];
    expect(() => configWithDesired(t, td)).toThrow(/no tunnel section/);
  });
});

describe('DaemonControl', () => {
  it('a mode change goes to the daemon\'s run-time apply; nothing restarts', async () => {
    const { control, desired } = await started();
    const next = structuredClone(desired);
    next.segments[0]!.mode = 'gateway';
    next.segments[0]!.internet = true;
    await control.apply(next);
    const a = FakeAppliance.made[0]!;
    expect(FakeAppliance.made).toHaveLength(1);
    expect(a.applies.map((c) => modeOf(c.segments[0]!))).toEqual(['gateway']);
    expect(a.peerSets).toEqual([]);
    // The same state again: nothing to do.
    await control.apply(next);
    expect(a.applies).toHaveLength(1);
  });

  it('a peer change is made in the tunnel at run time; the daemon\'s apply never sees it as a tunnel change', async () => {
    const { control, desired } = await started();
    const k = key();
    const next = { ...desired, peers: [{ publicKey: k, name: 'tenant-a', segments: [10] }] };
    await control.apply(next);
    const a = FakeAppliance.made[0]!;
    expect(a.peerSets).toEqual([[{ publicKey: k, segments: [10] }]]);
    expect(a.applies).toEqual([]);
    // A mode change after it still passes the run-time check.
    const again = structuredClone(next);
    again.routing.betweenSegments = true;
    await control.apply(again);
    expect(a.applies).toHaveLength(1);
    expect(FakeAppliance.made).toHaveLength(1);
  });

  it('a new segment takes a restart: done in-process, with the new config', async () => {
    const { control, desired } = await started();
    const next = structuredClone(desired);
    next.segments.push({ id: 30, name: 'app', mode: 'extend', internet: false });
    await control.apply(next);
    expect(FakeAppliance.made).toHaveLength(2);
    expect(FakeAppliance.made[0]!.started).toBe(false);
    expect(FakeAppliance.made[1]!.started).toBe(true);
    expect(FakeAppliance.made[1]!.config.segments.map((s) => s.id)).toEqual([10, 20, 30]);
  });

  it('a restart whose new config does not start brings the previous one back and reports the error', async () => {
    const { control, desired } = await started(true);
    const next = structuredClone(desired);
    next.segments.push({ id: 30, name: 'app', mode: 'extend', internet: false });
    await expect(control.apply(next)).rejects.toThrow(/TAP busy/);
    const last = FakeAppliance.made.at(-1)!;
    expect(last.started).toBe(true);
    expect(last.config.segments.map((s) => s.id)).toEqual([10, 20]);
  });

  it('when the previous config does not start again either, onFatal is called', async () => {
    FakeAppliance.made = [];
    let fatal: unknown;
    const control = new DaemonControl({ base: BASE, log: quiet, onFatal: (e) => { fatal = e; }, make: (c) => { const a = new FakeAppliance(c); a.failStart = FakeAppliance.made.length > 1; return a; } });
    const desired = desiredFromConfig(BASE);
    await control.start(desired);
    const next = structuredClone(desired);
    next.segments.push({ id: 30, name: 'app', mode: 'extend', internet: false });
    await expect(control.apply(next)).rejects.toThrow(/TAP busy/);
    expect(fatal).toBeInstanceOf(Error);
    await expect(control.status()).rejects.toMatchObject({ code: 'API_RESTARTING' });
  });

  it('SIGHUP: the daemon\'s rules apply; a change that takes a restart is refused, not restarted', async () => {
    const { control } = await started();
    const r = await control.reload(() => ({ ...BASE, routeBetweenSegments: true }), (f) => desiredFromConfig(f));
    expect(r.desired.routing.betweenSegments).toBe(true);
    await expect(control.reload(() => ({ ...BASE, tunnel: { ...BASE.tunnel!, listenPort: 51999 } }), (f) => desiredFromConfig(f)))
      .rejects.toSatisfy((e: unknown) => e instanceof NeaError && e.code === 'APPLY_NEEDS_RESTART');
    expect(FakeAppliance.made).toHaveLength(1);
  });
});
