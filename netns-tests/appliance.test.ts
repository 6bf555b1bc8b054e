/**
 * The appliance process on a real kernel.
 *
 *   [nt-<run>-app]
 *     test process ──TAP vm0──┐
 *                             nea-br10 ── nea-tap10 ── `nea appliance run` (pid)
 *                             nea-br20 ── nea-tap20
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplianceStatus } from '../src/appliance/daemon.js';
import { openTap, type PacketDevice } from '../src/dataplane/tuntap.js';
import { withNetns } from '../src/netconfig/netns.js';
import { arpRequest } from '../src/protocol/ethernet.js';
import { listNetns, run, Topology, waitFor, type Netns, type NsProcess } from './harness.js';

const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));

interface IpLink { ifname: string; master?: string; operstate: string; flags: string[] }

describe('nea appliance run', () => {
  let topo: Topology;
  let ns: Netns;
  let vm: PacketDevice;
  let dir: string;
  let configFile: string;

  const status = (): ApplianceStatus | undefined => {
    try { return JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) as ApplianceStatus; } catch { return undefined; }
  };
  const start = (cfg = configFile): NsProcess => ns.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', cfg, '--state-dir', dir], 'nea');
  const links = async (): Promise<IpLink[]> => JSON.parse((await ns.ip('-j', 'link', 'show')).stdout) as IpLink[];

  beforeAll(async () => {
    topo = new Topology('appliance');
    ns = await topo.netns('app');
    vm = withNetns(ns.name, () => openTap('vm0'));
    dir = mkdtempSync(join(tmpdir(), 'nea-app-'));
    configFile = join(dir, 'appliance.json');
    writeFileSync(configFile, JSON.stringify({
      role: 'tenant', name: 't1', segments: [{ id: 10, name: 'servers', uplink: 'vm0' }, { id: 20, name: 'dmz' }],
    }));
  });

  afterAll(async () => {
    vm.close();
    await topo.cleanup();
    rmSync(dir, { recursive: true, force: true });
    expect(topo.leftovers()).toEqual([]);
  });

  it('builds each segment (bridge + local port + uplink) and counts frames from the production side', async () => {
    const app = start();
    const s = await waitFor('status with two segments', () => (status()?.segments.length === 2 ? status() : undefined));
    expect(s).toMatchObject({ name: 't1', role: 'tenant', pid: app.pid });
    // Independent oracle: the kernel's view through `ip`.
    const l = await links();
    const by = (n: string): IpLink | undefined => l.find((x) => x.ifname === n);
    expect(by('nea-tap10')?.master).toBe('nea-br10');
    expect(by('vm0')?.master).toBe('nea-br10');
    expect(by('nea-tap20')?.master).toBe('nea-br20');
    expect(by('nea-br10')?.flags).toContain('UP');

    const f = arpRequest('02:00:00:00:0a:01', '192.0.2.10', '192.0.2.1');
    for (let i = 0; i < 50; i++) expect(vm.write(f)).toBe(true);
    await waitFor('50 frames on segment 10', () => (status()?.segments.find((g) => g.id === 10)?.local.rxFrames ?? 0) >= 50);
    // Segment 20 has no uplink: nothing of segment 10 leaks into it.
    expect(status()?.segments.find((g) => g.id === 20)?.local.rxFrames ?? -1).toBeLessThan(50);

    expect(await app.stop('SIGTERM')).toBe(0);
  });

  it('after kill -9 a restart converges to the same kernel state without duplicating anything', async () => {
    const first = start();
    await waitFor('status', () => status()?.pid === first.pid);
    const before = (await links()).map((l) => `${l.ifname}@${l.master ?? ''}`).sort();
    await first.stop('SIGKILL');
    const second = start();
    await waitFor('status of the restarted appliance', () => status()?.pid === second.pid);
    const after = (await links()).map((l) => `${l.ifname}@${l.master ?? ''}`).sort();
    expect(after).toEqual(before);
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('refuses a bad config naming the field, and creates nothing', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ role: 'tenant', name: 't1', segments: [{ id: 99999, name: 'x' }] }));
    const p = start(bad);
    expect(await p.wait()).toBe(1);
    expect(p.stderr).toContain('segments[0].id: must be an integer from 1 to 4094');
    expect((await links()).map((l) => l.ifname)).not.toContain('nea-br99999');
  });
});

describe('errors a user of `nea appliance run` sees', () => {
  let dir: string;
  let cfg: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nea-err-'));
    cfg = join(dir, 'a.json');
    writeFileSync(cfg, JSON.stringify({ role: 'tenant', name: 't1', segments: [{ id: 10, name: 'servers' }] }));
    chmodSync(dir, 0o755); // readable by the unprivileged user of the non-root case
  });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';

  it('no /dev/net/tun: one line saying to load the tun module', async () => {
    // A private mount namespace hides /dev/net from this one process only.
    const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      `mount -t tmpfs none /dev/net && exec ${process.execPath} ${NEA} appliance run --config ${cfg} --state-dir ${dir}`], { allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(lastLine(r.stderr)).toMatch(/cannot open \/dev\/net\/tun .*\(ENOENT\); load the tun module \(modprobe tun\)/);
  });

  it('not root: one line saying to run as root', async () => {
    const r = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all',
      process.execPath, NEA, 'appliance', 'run', '--config', cfg, '--state-dir', join(dir, 'nobody')], { allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(lastLine(r.stderr)).toMatch(/\((EACCES|EPERM)\); .*run as root/);
  });

  it('interface name taken: one line naming the interface and what to do', async () => {
    const topo = new Topology('app-err');
    try {
      const ns = await topo.netns('x');
      await ns.ip('link', 'add', 'nea-tap10', 'type', 'veth', 'peer', 'name', 'other');
      const r = await ns.exec(process.execPath, [NEA, 'appliance', 'run', '--config', cfg, '--state-dir', dir], { allowFail: true });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(lastLine(r.stderr)).toMatch(/nea-tap10 is already in use by another link .*: pick another name or delete that link/);
    } finally {
      await topo.cleanup();
    }
  });
});

describe('nea demo', () => {
  it('runs one appliance, shows its status with the frames it read, and leaves nothing behind', async () => {
    const r = await run(process.execPath, [NEA, 'demo', '--json'], { timeoutMs: 60_000 });
    const out = JSON.parse(r.stdout) as { framesSent: number; status: ApplianceStatus };
    expect(out.status.segments[0]?.local.rxFrames).toBeGreaterThanOrEqual(out.framesSent);
    expect(listNetns()).not.toContain('nea-demo');
  });
});
