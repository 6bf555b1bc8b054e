/**
 * Helpers of the gateway scenarios (gateway.test.ts, mode-switch.test.ts,
 * reload.test.ts): hosts with an address and a default route, a tiny HTTP
 * service (python3 -m http.server) and fetches, appliances run as
 * `nea appliance run` processes with their config rewritten and SIGHUP'd,
 * and oracles read with `ip`, `nft` and /proc/net/nf_conntrack.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApplianceStatus } from '../src/appliance/daemon.js';
import { waitFor, type Netns, type NsProcess, type Topology } from './harness.js';

export const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));

/** Give `ns`'s `dev` an address (and a MAC, a default route). */
export async function host(ns: Netns, dev: string, cidr: string, opts: { gw?: string; mac?: string; v6?: string; gw6?: string } = {}): Promise<void> {
  if (opts.mac) await ns.ip('link', 'set', dev, 'address', opts.mac);
  await ns.ip('addr', 'add', cidr, 'dev', dev);
  if (opts.v6) await ns.ip('addr', 'add', opts.v6, 'dev', dev, 'nodad');
  await ns.ip('link', 'set', dev, 'up');
  if (opts.gw) await ns.ip('route', 'add', 'default', 'via', opts.gw);
  if (opts.gw6) await ns.ip('-6', 'route', 'add', 'default', 'via', opts.gw6);
}

/** An HTTP service in `ns` on `addr:port` answering `GET /` with `identity`. Resolves once it accepts connections. */
export async function httpService(topo: Topology, ns: Netns, addr: string, port: number, identity: string): Promise<NsProcess> {
  const dir = join(topo.workdir, `www-${ns.name}-${addr.replace(/:/g, '_')}-${port}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), `${identity}\n`);
  const p = ns.spawn('python3', ['-u', '-m', 'http.server', String(port), '--bind', addr, '--directory', dir], 'http.server');
  await waitFor(`http.server on ${addr}:${port}`, async () => (await fetchText(ns, `http://${addr.includes(':') ? `[${addr}]` : addr}:${port}/`, 1)) === identity);
  return p;
}

/**
 * GET `url` from inside `ns` (python3's urllib); the body trimmed, or
 * undefined when it failed (refused, timed out, unreachable).
 */
export async function fetchText(ns: Netns, url: string, timeoutS = 2): Promise<string | undefined> {
  const script = 'import sys, urllib.request\ntry:\n    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode().strip())\nexcept Exception as e:\n    print("FAIL", e, file=sys.stderr); sys.exit(1)';
  const r = await ns.exec('python3', ['-c', script, url, String(timeoutS)], { allowFail: true, timeoutMs: (timeoutS + 5) * 1000 });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** True when at least one of `count` pings from `ns` to `to` is answered. */
export async function pings(ns: Netns, to: string, count = 1, waitS = 1): Promise<boolean> {
  const r = await ns.exec('ping', ['-c', String(count), '-i', '0.2', '-W', String(waitS), to], { allowFail: true });
  return r.code === 0;
}

/** Source addresses python's http.server logged, one per request, in order. */
export function httpClients(p: NsProcess): string[] {
  return [...p.stderr.matchAll(/^(\S+) - - \[/gm)].map((m) => m[1]!);
}

/** One `nea appliance run` in a namespace, with its config file and state dir. */
export class ApplianceProc {
  readonly dir: string;
  readonly configFile: string;
  proc: NsProcess | undefined;
  config: Record<string, unknown>;

  constructor(readonly topo: Topology, readonly ns: Netns, readonly label: string, config: Record<string, unknown>, private readonly env: Record<string, string> = {}) {
    this.dir = join(topo.workdir, `app-${label}`);
    mkdirSync(this.dir, { recursive: true });
    this.configFile = join(this.dir, 'appliance.json');
    this.config = config;
    writeFileSync(this.configFile, JSON.stringify(config, null, 2));
  }

  /** Start it; resolves once it says it runs and its status file shows the network applied. */
  async start(): Promise<void> {
    const envArgs = Object.entries(this.env).map(([k, v]) => `${k}=${v}`);
    this.proc = this.ns.spawn('env', [...envArgs, process.execPath, NEA, 'appliance', 'run', '--config', this.configFile, '--state-dir', this.dir], `nea-${this.label}`);
    await waitFor(`${this.label} running`, () => (this.proc!.stderr.includes('appliance running') && this.status()?.pid === this.proc!.pid &&
      (this.status()?.network?.generation ?? 0) >= 1) || !this.proc!.running, { timeoutMs: 30_000 });
    if (!this.proc.running) throw new Error(`${this.label} exited: ${this.proc.stderr.trim()}`);
  }

  status(): ApplianceStatus | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'status.json'), 'utf8')) as ApplianceStatus;
    } catch {
      return undefined;
    }
  }

  /** The last apply's error, as the status shows it. */
  lastError(): { code: string; message: string } | null {
    return this.status()?.network?.lastError ?? null;
  }

  /**
   * Write `config` and SIGHUP the appliance; resolves with the outcome once
   * the status shows it: the new generation, or the refusal.
   */
  async reload(config: Record<string, unknown>): Promise<{ ok: true; generation: number } | { ok: false; code: string; message: string }> {
    const before = this.status()?.network;
    const gen = before?.generation ?? 0;
    const errAt = before?.lastError?.at;
    writeFileSync(this.configFile, JSON.stringify(config, null, 2));
    const proc = this.proc!;
    if (!proc.running) throw new Error(`${this.label} is not running: ${proc.stderr.trim().split('\n').slice(-5).join(' | ')}`);
    process.kill(proc.pid, 'SIGHUP');
    return waitFor(`${this.label} applied or refused the new config`, () => {
      if (!proc.running) throw new Error(`${this.label} exited: ${proc.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      const n = this.status()?.network;
      if (!n) return undefined;
      if (n.generation > gen) {
        this.config = config;
        return { ok: true as const, generation: n.generation };
      }
      if (n.lastError && n.lastError.at !== errAt) return { ok: false as const, code: n.lastError.code, message: n.lastError.message };
      return undefined;
    }, { timeoutMs: 20_000, intervalMs: 50 });
  }
}

/** The ruleset of table `nea_<id>` in `ns` without counters (`nft -s`), both families. */
export async function rulesetOf(ns: Netns, table: string): Promise<string> {
  const out: string[] = [];
  for (const family of ['bridge', 'inet']) out.push((await ns.exec('nft', ['-s', 'list', 'table', family, table], { allowFail: true })).stdout);
  return out.join('');
}

/** Addresses of `dev` in `ns` (global scope), sorted, as `ADDRESS/PREFIX`. */
export async function addressesOf(ns: Netns, dev: string): Promise<string[]> {
  const r = await ns.ip('-j', 'addr', 'show', 'dev', dev);
  const j = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** Lines of /proc/net/nf_conntrack in `ns` (the kernel's own text: an oracle independent of nea's ctnetlink client). */
export async function conntrackLines(ns: Netns): Promise<string[]> {
  const r = await ns.exec('cat', ['/proc/net/nf_conntrack'], { allowFail: true });
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}
