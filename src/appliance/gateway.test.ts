/**
 * The mode controller against fake effects: the order of the steps, what a
 * refusal or a failure leaves, announcements and conntrack flushes.
 */
import { describe, expect, it } from 'vitest';
import type { DesiredNetwork } from '../netconfig/desired.js';
import { NftApplyError } from '../netconfig/nft-apply.js';
import type { DesiredFirewall } from '../netconfig/nft-desired.js';
import { normalizeFirewall } from '../netconfig/nft-desired.js';
import { createLogger } from '../shared/log.js';
import { parseApplianceConfig, type ApplianceConfig } from './config.js';
import { ModeController, removalsOnly, type KernelSnapshot, type ModeEffects } from './gateway.js';

function config(mode: string, extra: Record<string, unknown> = {}, rules = true): ApplianceConfig {
  return parseApplianceConfig({
    role: 'sp', name: 'sp1',
    external: { interface: 'ext0', addresses: ['203.0.113.2/24'], defaultRoute: { ipv4: '203.0.113.1' }, publicPool: ['203.0.113.16/28'] },
    segments: [{ id: 10, name: 'web', uplink: 'c10', mode, internet: true, gateway: { ipv4: '10.1.0.1/24' } }],
    publicRules: rules ? [{ name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10' }] : [],
    ...extra,
  }, 'test');
}

/** A fake kernel: addresses per link as reconcile leaves them; records every effect in order. */
class FakeKernel implements ModeEffects {
  readonly log: string[] = [];
  readonly addrs = new Map<string, string[]>();
  routes = new Set<string>();
  failFirewall: string | undefined;
  failCheck: string | undefined;
  ruleset = '';

  snapshot(): Promise<KernelSnapshot> {
    this.log.push('snapshot');
    return Promise.resolve({ addresses: new Map(this.addrs), routes: new Set(this.routes) });
  }
  reconcile(d: DesiredNetwork): Promise<number> {
    let n = 0;
    for (const l of d.links) {
      const want = l.addresses ?? [];
      const had = this.addrs.get(l.name) ?? [];
      n += want.filter((a) => !had.includes(a)).length + had.filter((a) => !want.includes(a)).length;
      this.addrs.set(l.name, [...want]);
    }
    this.routes = new Set((d.routes ?? []).map((r) => `${r.dst}|${r.via ?? ''}|${r.dev}`));
    this.log.push(`reconcile ${d.links.map((l) => `${l.name}=[${(l.addresses ?? []).join(',')}]`).join(' ')} routes=${d.routes?.length ?? 0}`);
    return Promise.resolve(n);
  }
  checkFirewall(d: DesiredFirewall): Promise<void> {
    normalizeFirewall(d);
    this.log.push('nft check');
    return this.failCheck ? Promise.reject(new NftApplyError('nea_sp1', this.failCheck, 'ruleset check')) : Promise.resolve();
  }
  applyFirewall(d: DesiredFirewall): Promise<{ changed: boolean; digest: string }> {
    if (this.failFirewall) return Promise.reject(new NftApplyError('nea_sp1', this.failFirewall));
    this.ruleset = d.segments.map((s) => `${s.name}:${s.mode}`).join(',');
    this.log.push(`nft apply ${this.ruleset}`);
    return Promise.resolve({ changed: true, digest: 'x' });
  }
  readonly settings = new Map<string, string>();
  sysctl(s: { path: string; value: string; optional?: boolean }): void {
    this.settings.set(s.path, s.value);
    if (s.path.includes('forward') || (s.path.endsWith('/disable_ipv6') && s.value === '0')) this.log.push(`sysctl ${s.path}=${s.value}${s.optional ? ' (if present)' : ''}`);
  }
  readonly announced: string[] = [];
  announce(a: { link: string; ipv4?: string }): Promise<void> {
    this.announced.push(`${a.link} ${a.ipv4 ?? ''}`);
    return Promise.resolve();
  }
  readonly flushed: unknown[] = [];
  deleteConntrack(f: readonly unknown[]): Promise<number> {
    this.flushed.push(...f);
    this.log.push(`conntrack ${f.length}`);
    return Promise.resolve(f.length);
  }
}

const base = (c: ApplianceConfig): DesiredNetwork => ({ links: c.segments.map((s) => ({ kind: 'bridge' as const, name: `nea-br${s.id}`, addresses: [] })) });
const fwBase = (c: ApplianceConfig): DesiredFirewall => ({
  appliance: 'sp1', appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
  segments: c.segments.map((s) => ({ name: `seg${s.id}`, bridge: `nea-br${s.id}`, ports: [`nea-tap${s.id}`, 'c10'], mode: 'extend' as const, mss: { ipv4: 1380, ipv6: 1360 } })),
});

function controller(k: FakeKernel, timers: (() => void)[] = []): ModeController {
  return new ModeController({
    baseNetwork: base, baseFirewall: fwBase, bridgeOf: (id) => `nea-br${id}`, tunnelPortOf: (id) => `nea-tap${id}`,
    effects: k, log: createLogger({ sink: () => { /* quiet */ } }),
    setTimer: (fn) => { timers.push(fn); return { cancel: () => { /* kept */ } }; },
  });
}

describe('ModeController', () => {
  it('extend → gateway: removals, settings, ruleset, then addresses; announces the gateway 3 times', async () => {
    const k = new FakeKernel();
    const timers: (() => void)[] = [];
    const c = controller(k, timers);
    await c.apply(config('extend'));
    // Starting: closed (every segment isolated) before any link is touched, then the real ruleset.
    expect(k.log).toEqual([
      'nft check',
      'nft apply seg10:isolated',
      'snapshot',
      'reconcile nea-br10=[] ext0=[] routes=0',
      'nft apply seg10:extend',
      'reconcile nea-br10=[] ext0=[203.0.113.2/24] routes=1',
    ]);
    expect(k.addrs.get('nea-br10')).toEqual([]);
    k.log.length = 0;
    const r = await c.apply(config('gateway'));
    expect(k.log).toEqual([
      'nft check',
      'sysctl net/ipv4/ip_forward=1 (if present)',
      'snapshot',
      'reconcile nea-br10=[] ext0=[203.0.113.2/24] routes=1',
      'sysctl net/ipv4/ip_forward=1',
      'nft apply seg10:gateway',
      'reconcile nea-br10=[10.1.0.1/24] ext0=[203.0.113.2/24,203.0.113.17/32] routes=1',
    ]);
    expect(r).toMatchObject({ generation: 2, firewallChanged: true, kernelChanges: 2, conntrackDeleted: 0 });
    expect(k.settings.get('net/ipv6/conf/nea-tap10/disable_ipv6')).toBe('1');
    expect(k.settings.get('net/ipv6/conf/c10/disable_ipv6')).toBe('1');
    expect(k.settings.get('net/ipv4/conf/nea-br10/arp_ignore')).toBe('1');
    await Promise.resolve();
    expect(k.announced).toEqual(['nea-br10 10.1.0.1', 'ext0 203.0.113.17']);
    while (timers.length > 0) timers.shift()!();
    await Promise.resolve();
    expect(k.announced).toHaveLength(6);
    expect(c.status()).toMatchObject({ generation: 2, lastError: null, segments: [{ id: 10, mode: 'gateway', internet: true }], publicAddresses: ['203.0.113.17/32'], publicRules: { configured: 1, active: 1 } });
  });

  it('extend → IPv6 gateway: IPv6 comes on for the bridge only after the ruleset cut the tunnel port (its first packets never reach production)', async () => {
    const k = new FakeKernel();
    const c = controller(k);
    const v6 = (mode: string): ApplianceConfig => parseApplianceConfig({
      role: 'sp', name: 'sp1',
      external: { interface: 'ext0', addresses: ['203.0.113.2/24'], defaultRoute: { ipv4: '203.0.113.1' }, publicPool: ['203.0.113.16/28'] },
      segments: [{ id: 10, name: 'web', uplink: 'c10', mode, internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } }],
    }, 'test');
    await c.apply(v6('extend'));
    expect(k.log.filter((l) => l.includes('disable_ipv6'))).toEqual([]);
    k.log.length = 0;
    await c.apply(v6('gateway'));
    const ruleset = k.log.indexOf('nft apply seg10:gateway');
    const ipv6On = k.log.indexOf('sysctl net/ipv6/conf/nea-br10/disable_ipv6=0');
    expect(ruleset).toBeGreaterThan(0);
    expect(ipv6On).toBeGreaterThan(ruleset);
    expect(k.log.filter((l) => l.includes('disable_ipv6'))).toHaveLength(1);
    expect(k.log.at(-1)).toMatch(/^reconcile nea-br10=\[10\.1\.0\.1\/24,fd00:1::1\/64\]/);
    k.log.length = 0;
    await c.apply(v6('extend'));
    expect(k.settings.get('net/ipv6/conf/nea-br10/disable_ipv6')).toBe('1');
  });

  it('gateway → extend: the gateway address goes before the ruleset lets production back in; flows of the rules and of internet are flushed', async () => {
    const k = new FakeKernel();
    const c = controller(k);
    await c.apply(config('gateway'));
    k.log.length = 0;
    await c.apply(config('extend'));
    expect(k.log).toEqual([
      'nft check',
      'snapshot',
      'reconcile nea-br10=[] ext0=[203.0.113.2/24] routes=1',
      'nft apply seg10:extend',
      'reconcile nea-br10=[] ext0=[203.0.113.2/24] routes=1',
      'conntrack 2',
    ]);
    expect(k.flushed).toEqual([
      { protocol: 6, original: { dst: '203.0.113.17', dstPort: 80 } },
      { statusAll: 16, originalSrcIn: ['10.1.0.0/24'] },
    ]);
  });

  it('applying the same state again changes no address and flushes nothing', async () => {
    const k = new FakeKernel();
    const c = controller(k);
    await c.apply(config('gateway'));
    const r = await c.apply(config('gateway'));
    expect(r.kernelChanges).toBe(0);
    expect(k.flushed).toEqual([]);
  });

  it('refusals change nothing: a restart field, an invalid state, a ruleset nft -c refuses', async () => {
    const k = new FakeKernel();
    const c = controller(k);
    await c.apply(config('gateway'));
    const before = { addrs: structuredClone([...k.addrs]), ruleset: k.ruleset, log: k.log.length };
    await expect(c.apply(config('gateway', { name: 'sp2' }))).rejects.toMatchObject({ code: 'APPLY_NEEDS_RESTART' });
    k.failCheck = 'Error: syntax error';
    await expect(c.apply(config('extend'))).rejects.toThrow(/nft refused the ruleset check/);
    expect({ addrs: [...k.addrs], ruleset: k.ruleset }).toEqual({ addrs: before.addrs, ruleset: before.ruleset });
    expect(k.log.slice(before.log)).toEqual(['nft check']);
    expect(c.status().lastError).toMatchObject({ code: 'NFT_APPLY_FAILED' });
    expect(c.status().generation).toBe(1);
    expect(c.config?.segments[0]?.mode).toBe('gateway');
  });

  it('a ruleset the kernel refuses at apply: the removed addresses come back, the error is reported', async () => {
    const k = new FakeKernel();
    const c = controller(k);
    await c.apply(config('gateway'));
    k.failFirewall = 'Error: Could not process rule';
    await expect(c.apply(config('extend', {}, false))).rejects.toThrow(/previous ruleset kept/);
    expect(k.addrs.get('nea-br10')).toEqual(['10.1.0.1/24']);
    expect(k.addrs.get('ext0')).toEqual(['203.0.113.2/24', '203.0.113.17/32']);
    expect(c.status()).toMatchObject({ generation: 1, lastError: { code: 'NFT_APPLY_FAILED' }, segments: [{ mode: 'gateway' }] });
    // The next good apply clears the error.
    k.failFirewall = undefined;
    await c.apply(config('extend'));
    expect(c.status().lastError).toBeNull();
  });
});

describe('removalsOnly', () => {
  it('keeps only addresses and routes the kernel holds (compared canonically)', () => {
    const next: DesiredNetwork = {
      links: [{ kind: 'existing', name: 'ext0', addresses: ['203.0.113.2/24', '2001:DB8::2/64', '203.0.113.17/32'] }],
      routes: [{ dst: '0.0.0.0/0', via: '203.0.113.1', dev: 'ext0' }, { dst: '::/0', via: '2001:db8::1', dev: 'ext0' }],
    };
    const now: KernelSnapshot = { addresses: new Map([['ext0', ['203.0.113.2/24', '2001:db8::2/64', '198.51.100.9/24']]]), routes: new Set(['0.0.0.0/0|203.0.113.1|ext0']) };
    expect(removalsOnly(next, now)).toEqual({
      links: [{ kind: 'existing', name: 'ext0', addresses: ['203.0.113.2/24', '2001:DB8::2/64'] }],
      routes: [{ dst: '0.0.0.0/0', via: '203.0.113.1', dev: 'ext0' }],
    });
  });
});
