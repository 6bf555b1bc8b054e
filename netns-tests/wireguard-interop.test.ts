/**
 * Wire compatibility: nea in L3 mode against stock WireGuard (wireguard-go,
 * configured with `wg`), each side initiating in turn.
 *
 *  [nea]  nea-l3 (TUN) 10.9.0.1/24            [wg]  wg0 (wireguard-go) 10.9.0.2/24
 *         `nea appliance run`                        `wireguard-go -f wg0`
 *         wan0 192.0.2.1 ─────────── veth ─────────── wan0 192.0.2.2
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import { Topology, waitFor, type Netns, type NsProcess } from './harness.js';

const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));

describe('interoperability with wireguard-go', () => {
  let topo: Topology;
  let neaNs: Netns;
  let wgNs: Netns;
  let dir: string;
  const neaKey = generatePrivateKey();
  const wgKey = generatePrivateKey();
  let running: NsProcess[] = [];

  beforeAll(async () => {
    topo = new Topology('wgio');
    neaNs = await topo.netns('nea');
    wgNs = await topo.netns('wg');
    await topo.veth(neaNs, 'wan0', wgNs, 'wan0');
    await neaNs.ip('addr', 'add', '192.0.2.1/24', 'dev', 'wan0');
    await wgNs.ip('addr', 'add', '192.0.2.2/24', 'dev', 'wan0');
    dir = mkdtempSync(join(tmpdir(), 'nea-wgio-'));
    writeFileSync(join(dir, 'wg.key'), encodeKey(wgKey) + '\n', { mode: 0o600 });
  });

  afterEach(async () => {
    for (const p of running) await p.stop('SIGTERM');
    running = [];
    await wgNs.ip('link', 'del', 'wg0').catch(() => undefined);
  });

  afterAll(async () => {
    await topo.cleanup();
    rmSync(dir, { recursive: true, force: true });
    expect(topo.leftovers()).toEqual([]);
  });

  async function startBoth(neaInitiates: boolean): Promise<void> {
    const config = join(dir, 'nea.json');
    writeFileSync(config, JSON.stringify({
      role: 'tenant', name: 'interop', privateKey: encodeKey(neaKey), segments: [],
      tunnel: {
        listenPort: 51820, l3: { device: 'nea-l3', addresses: ['10.9.0.1/24'] },
        peers: [{ publicKey: encodeKey(publicKeyOf(wgKey)), segments: [], allowedIps: ['10.9.0.2/32'], ...(neaInitiates && { endpoint: '192.0.2.2:51820' }) }],
      },
    }));
    const nea = neaNs.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', config, '--state-dir', dir], 'nea');
    const wg = wgNs.spawn('env', ['WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1', 'wireguard-go', '-f', 'wg0'], 'wireguard-go');
    running.push(nea, wg);
    await waitFor('wg0 created by wireguard-go', async () => (await wgNs.links()).includes('wg0'));
    await wgNs.exec('wg', ['set', 'wg0', 'private-key', join(dir, 'wg.key'), 'listen-port', '51820', 'peer', encodeKey(publicKeyOf(neaKey)),
      'allowed-ips', '10.9.0.1/32', ...(neaInitiates ? [] : ['endpoint', '192.0.2.1:51820'])]);
    await wgNs.ip('addr', 'add', '10.9.0.2/24', 'dev', 'wg0');
    await wgNs.ip('link', 'set', 'wg0', 'up');
    await waitFor('nea-l3 up', async () => (await neaNs.links()).includes('nea-l3'), { timeoutMs: 15_000 });
  }

  const latestHandshake = async (): Promise<number> => {
    const r = await wgNs.exec('wg', ['show', 'wg0', 'latest-handshakes']);
    return Number(r.stdout.trim().split(/\s+/)[1] ?? 0);
  };

  it('nea initiates: handshake completes and pings flow both ways', async () => {
    await startBoth(true);
    await waitFor('ping nea → wireguard-go', async () =>
      (await neaNs.exec('ping', ['-c', '1', '-W', '1', '10.9.0.2'], { allowFail: true })).code === 0, { timeoutMs: 15_000 });
    expect(await latestHandshake()).toBeGreaterThan(0);
    expect((await wgNs.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.9.0.1'], { allowFail: true })).code).toBe(0);
  });

  it('wireguard-go initiates: handshake completes and pings flow both ways', async () => {
    await startBoth(false);
    await waitFor('ping wireguard-go → nea', async () =>
      (await wgNs.exec('ping', ['-c', '1', '-W', '1', '10.9.0.1'], { allowFail: true })).code === 0, { timeoutMs: 15_000 });
    expect(await latestHandshake()).toBeGreaterThan(0);
    expect((await neaNs.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.9.0.2'], { allowFail: true })).code).toBe(0);
    // Larger packets too (padding and lengths as WireGuard expects).
    expect((await wgNs.exec('ping', ['-c', '2', '-s', '1300', '-W', '2', '10.9.0.1'], { allowFail: true })).code).toBe(0);
  });
});
