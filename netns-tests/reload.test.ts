/**
 * Runtime changes of an SP appliance (SIGHUP): failed ruleset applies leave
 * everything as it was, probes running through a storm of reloads never see
 * isolation missing, bad rules are refused naming the field, routing between
 * segments when asked.
 *
 *   [client] 198.51.100.10 ── c0 [inet] pa 203.0.113.1 ── ext0 203.0.113.2 [sp]   pool 203.0.113.16/28
 *     sp: nea-br10 gateway 10.1.0.1/24, internet ── c10 ── [r1] 10.1.0.10   http :8080
 *         nea-br20 gateway 10.2.0.1/24           ── c20 ── [r2] 10.2.0.10
 *         nea-br30 isolated                      ── c30 ── [i1] 10.3.0.1 (broadcasts)
 *
 * Probes that must never pass: r2 (no internet) pinging the internet, the
 * client pinging r2, i1's broadcasts reaching the tunnel port of its
 * isolated segment (the TAP's frame counter). One that must always pass:
 * r1 pinging the internet.
 *
 * `nft` is reached through NEA_NFT, a wrapper that, while a fault file
 * exists, appends a rule with an invalid address (10.2.0.1/33) to the
 * scripts nea sends: to every one (`all`: the `nft -c` check refuses) or
 * only to real applies (`apply`: the check passes, the apply is refused
 * after the removals step, so the rollback runs).
 */
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';
import { ApplianceProc, NEA, addressesOf, fetchText, host, httpService, pings, rulesetOf } from './gateway-kit.js';

const TABLE = 'nea_sp_r';
const NONET = '6e6f6e6574'; // "nonet": the payload of r2's probe, which must never leave

const WEB = { name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 };
const EXTRA = { name: 'extra', kind: 'port', segment: 10, publicAddress: '203.0.113.19', protocol: 'tcp', publicPort: 8080, target: '10.1.0.10' };

function config(over: { rules?: Record<string, unknown>[]; route?: boolean; listenPort?: number } = {}): Record<string, unknown> {
  return {
    role: 'sp', name: 'sp-r',
    ...(over.listenPort !== undefined && { tunnel: { listenPort: over.listenPort, peers: [] } }),
    external: { interface: 'ext0', addresses: ['203.0.113.2/24'], defaultRoute: { ipv4: '203.0.113.1' }, publicPool: ['203.0.113.16/28'] },
    routeBetweenSegments: over.route ?? false,
    segments: [
      { id: 10, name: 'web', uplink: 'c10', mode: 'gateway', internet: true, gateway: { ipv4: '10.1.0.1/24' } },
      { id: 20, name: 'db', uplink: 'c20', mode: 'gateway', gateway: { ipv4: '10.2.0.1/24' } },
      { id: 30, name: 'lab', uplink: 'c30', mode: 'isolated' },
    ],
    publicRules: over.rules ?? [WEB],
  };
}

describe('runtime changes: failed applies, probes through reloads, refusals', () => {
  const topo = new Topology('reload');
  const ns: Record<string, Netns> = {};
  let sp: ApplianceProc;
  const fault = (): string => join(topo.workdir, 'nft-fault');
  const probes: Record<string, NsProcess> = {};

  /** What must not change when an apply fails or is refused. */
  const snapshot = async (): Promise<{ ruleset: string; ext: string[]; br10: string[]; gen: number | undefined }> => ({
    ruleset: await rulesetOf(ns.sp!, TABLE), ext: await addressesOf(ns.sp!, 'ext0'), br10: await addressesOf(ns.sp!, 'nea-br10'),
    gen: sp.status()?.network?.generation,
  });

  beforeAll(async () => {
    for (const n of ['client', 'inet', 'sp', 'r1', 'r2', 'i1']) ns[n] = await topo.netns(n);
    await topo.veth(ns.client!, 'eth0', ns.inet!, 'c0');
    await host(ns.client!, 'eth0', '198.51.100.10/24', { gw: '198.51.100.1' });
    await ns.inet!.ip('addr', 'add', '198.51.100.1/24', 'dev', 'c0');
    await topo.veth(ns.inet!, 'pa', ns.sp!, 'ext0');
    await ns.inet!.ip('addr', 'add', '203.0.113.1/24', 'dev', 'pa');
    await ns.inet!.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await topo.veth(ns.sp!, 'c10', ns.r1!, 'eth0');
    await host(ns.r1!, 'eth0', '10.1.0.10/24', { gw: '10.1.0.1' });
    await topo.veth(ns.sp!, 'c20', ns.r2!, 'eth0');
    await host(ns.r2!, 'eth0', '10.2.0.10/24', { gw: '10.2.0.1' });
    await topo.veth(ns.sp!, 'c30', ns.i1!, 'eth0');
    await host(ns.i1!, 'eth0', '10.3.0.1/24');
    await httpService(topo, ns.r1!, '10.1.0.10', 8080, 'replica r1');

    const wrapper = join(topo.workdir, 'nft-wrapper.sh');
    writeFileSync(wrapper, [
      '#!/bin/sh',
      `F=${fault()}`,
      'if [ -f "$F" ] && { [ "$1" = "-f" ] || { [ "$1" = "-c" ] && [ "$(cat "$F")" = all ]; }; }; then',
      `  { cat; echo 'add rule inet ${TABLE} forward ip daddr 10.2.0.1/33 counter accept'; } | nft "$@"`,
      '  exit $?',
      'fi',
      'exec nft "$@"',
    ].join('\n') + '\n');
    chmodSync(wrapper, 0o755);
    sp = new ApplianceProc(topo, ns.sp!, 'sp', config(), { NEA_NFT: wrapper });
    await sp.start();
    expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('replica r1');
  });

  afterAll(async () => {
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });


  it('a storm of reloads with two failed applies: probes never see isolation missing, the allowed path never breaks', async () => {
    const capOut = await ns.inet!.capture('pa', ['icmp']);
    const capR2 = await ns.r2!.capture('eth0', ['icmp', 'and', 'src', 'host', '198.51.100.10']);
    // Must never pass: r2 (no internet) to the internet; the client to r2 directly.
    probes.r2 = ns.r2!.spawn('ping', ['-i', '0.02', '-p', NONET, '198.51.100.10'], 'probe-r2');
    probes.in = ns.client!.spawn('ping', ['-i', '0.02', '10.2.0.10'], 'probe-in');
    // Must always pass: r1 (internet) to the client.
    probes.r1 = ns.r1!.spawn('ping', ['-i', '0.02', '198.51.100.10'], 'probe-r1');
    // Must never cross the isolated segment's bridge: i1's broadcasts to the tunnel port.
    probes.i1 = ns.i1!.spawn('ping', ['-b', '-i', '0.02', '10.3.0.255'], 'probe-i1');
    const c30rx = async (): Promise<number> => (JSON.parse((await ns.sp!.ip('-j', '-s', 'link', 'show', 'c30')).stdout) as { stats64: { rx: { packets: number } } }[])[0]!.stats64.rx.packets;
    const c30Before = await c30rx();
    const tapRx = (): number => sp.status()?.segments.find((s) => s.id === 30)?.local.rxFrames ?? -1;
    expect(tapRx()).toBe(0);
    await waitFor('r1 probe answered', () => /bytes from 198\.51\.100\.10/.test(probes.r1!.stdout));

    let ok = 0;
    for (let i = 0; i < 12; i++) {
      const r = await sp.reload(config({ rules: i % 2 === 0 ? [WEB, EXTRA] : [WEB], route: i % 3 === 0 }));
      expect(r.ok).toBe(true);
      ok++;
      if (i === 4 || i === 8) {
        // A failed apply in the middle of the storm: first refused at the check, then at the apply itself (rollback).
        const kind = i === 4 ? 'all' : 'apply';
        const before = await snapshot();
        writeFileSync(fault(), kind);
        const bad = await sp.reload(config({ rules: i % 2 === 0 ? [WEB] : [WEB, EXTRA], route: !(i % 3 === 0) }));
        rmSync(fault());
        expect(bad).toMatchObject({ ok: false, code: 'NFT_APPLY_FAILED' });
        expect((bad as { message: string }).message).toMatch(/nft refused the ruleset( check)? of nea_sp_r, previous ruleset kept: .*Prefix length 33 is invalid/);
        const after = await snapshot();
        expect(after).toEqual(before);
        expect(await fetchText(ns.client!, 'http://203.0.113.17/')).toBe('replica r1');
        expect(await fetchText(ns.client!, 'http://203.0.113.19:8080/', 1)).toBe(i % 2 === 0 ? 'replica r1' : undefined);
      }
    }
    expect(ok).toBe(12);
    const sentR1 = (): number => [...probes.r1!.stdout.matchAll(/icmp_seq=/g)].length;
    const before = sentR1();
    await waitFor('r1 probe still answered', () => sentR1() > before + 5);
    for (const p of Object.values(probes)) await p.stop('SIGINT');
    await capOut.stop();
    await capR2.stop();
    // Nothing of r2's probe ever left towards the internet, and the client never reached r2.
    expect((await capOut.hexPackets()).filter((h) => h.includes(NONET.repeat(2)))).toEqual([]);
    expect(await capR2.lines()).toEqual([]);
    expect(probes.in.stdout).not.toMatch(/bytes from/);
    // i1's broadcasts reached the appliance (hundreds), none crossed to the tunnel port.
    expect((await c30rx()) - c30Before).toBeGreaterThan(100);
    await waitFor('a fresh status', () => Date.parse(sp.status()!.updatedAt) > Date.now() - 500);
    expect(tapRx()).toBe(0);
    // The allowed path kept working through every reload (ping prints its loss on SIGINT).
    const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(probes.r1.stdout)?.[1];
    expect(Number(loss)).toBeLessThan(2);
    expect(sp.status()?.network?.generation).toBe(13);
  });

  const refusals: [string, Record<string, unknown>, string, string][] = [
    ['overlapping mappings', config({ rules: [WEB, { ...WEB, name: 'web2', target: '10.1.0.11' }] }), 'INVALID_INPUT',
      'publicRules[1].publicPort: tcp 203.0.113.17 port 80 is already mapped by rule web: the mappings overlap'],
    ['port 22', config({ rules: [WEB, { ...EXTRA, publicPort: 22 }] }), 'INVALID_INPUT',
      "publicRules[1].publicPort: tcp port 22 is the appliance's port for SSH and cannot be mapped"],
    ['address outside the pool', config({ rules: [WEB, { ...EXTRA, publicAddress: '203.0.113.99' }] }), 'INVALID_INPUT',
      'publicRules[1].publicAddress: 203.0.113.99 is outside the public pool (203.0.113.16/28)'],
    ['replica outside the segment', config({ rules: [WEB, { ...EXTRA, target: '10.2.0.10' }] }), 'INVALID_INPUT',
      'publicRules[1].target: replica 10.2.0.10 is outside segment 10 (10.1.0.0/24)'],
    ['a change that takes a restart', config({ listenPort: 51999 }), 'APPLY_NEEDS_RESTART', 'tunnel differs from the running appliance'],
    ['not JSON', { broken: true }, 'INVALID_INPUT', 'broken: unknown field'],
  ];
  it.each(refusals)('refuses %s with a clear message, changing nothing', async (_why, cfg, code, message) => {
    const before = await snapshot();
    const r = await sp.reload(cfg);
    expect(r).toMatchObject({ ok: false, code });
    expect((r as { message: string }).message).toContain(message);
    expect(await snapshot()).toEqual(before);
    expect(sp.proc!.running).toBe(true);
  });

  it('routes between segments only when asked', async () => {
    expect(await sp.reload(config({ route: false }))).toMatchObject({ ok: true });
    expect(await pings(ns.r1!, '10.2.0.10', 2)).toBe(false);
    expect(await sp.reload(config({ route: true }))).toMatchObject({ ok: true });
    expect(await pings(ns.r1!, '10.2.0.10', 2)).toBe(true);
    expect(await pings(ns.r2!, '10.1.0.10', 2)).toBe(true);
    // The isolated segment is never routed.
    expect(await pings(ns.r1!, '10.3.0.1', 1)).toBe(false);
  });

  it('a bad rule in the config at start: one line naming the field, exit 1, no table created', async () => {
    const other = await topo.netns('bad');
    const file = join(topo.workdir, 'bad.json');
    writeFileSync(file, JSON.stringify(config({ rules: [{ ...WEB, publicPort: 22 }] })));
    const r = await other.exec(process.execPath, [NEA, 'appliance', 'run', '--config', file, '--state-dir', join(topo.workdir, 'bad')], { allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toContain("publicRules[0].publicPort: tcp port 22 is the appliance's port for SSH and cannot be mapped");
    expect((await other.exec('nft', ['list', 'tables'])).stdout).toBe('');
  });
});
