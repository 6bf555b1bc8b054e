/**
 * netns test harness: builds real topologies in network namespaces.
 *
 * Rules (../shared/brief/testing.md):
 * - every name carries the run id, so parallel scenarios never collide;
 *   namespaces are `nt-<runId>-<base>`, links inside them are free to use
 *   short names because a namespace is private to its run;
 * - everything is created inside the run's namespaces (never in the host's),
 *   so deleting the namespaces removes every link; processes are tracked by
 *   pid and stopped by pid;
 * - `cleanup()` runs on every exit path (afterAll, process exit, signals) and
 *   `leftovers()` proves nothing survived;
 * - waits poll a condition with a deadline (`waitFor`), never fixed sleeps.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Prefix of every namespace a test run creates. */
export const NS_PREFIX = 'nt-';

let runCounter = 0;

/** A short id unique on this machine while this process lives: pid (base 36), `_`, a counter. */
function newRunId(): string {
  runCounter += 1;
  return `${process.pid.toString(36)}_${runCounter}`;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command and return its output; a non-zero exit throws unless `allowFail`. */
export async function run(cmd: string, args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
  try {
    const r = await execFileP(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number | string };
    const res = { stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: typeof err.code === 'number' ? err.code : -1 };
    if (opts.allowFail) return res;
    throw new Error(`${cmd} ${args.join(' ')} failed (${String(err.code)}): ${res.stderr.trim() || res.stdout.trim()}`);
  }
}

/** Poll `cond` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const interval = opts.intervalMs ?? 50;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A process started inside a namespace, stopped by its pid. */
export class NsProcess {
  readonly pid: number;
  stdout = '';
  stderr = '';
  private exitCode: number | null = null;
  private readonly exited: Promise<number>;

  constructor(readonly child: ChildProcess, readonly label: string) {
    if (child.pid === undefined) throw new Error(`${label}: failed to start`);
    this.pid = child.pid;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : -1);
        resolve(this.exitCode);
      });
    });
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /** Resolves with the exit code once the process has ended. */
  wait(): Promise<number> {
    return this.exited;
  }

  /** Send `signal` to the pid and wait (up to `graceMs`) for it to end; SIGKILL after that. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<number> {
    if (!this.running) return this.exitCode ?? -1;
    try { process.kill(this.pid, signal); } catch { /* already gone */ }
    const timer = new Promise<'timeout'>((r) => setTimeout(() => { r('timeout'); }, graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    return this.exited;
  }
}

/** A namespace of one run. `name` is the full namespace name. */
export class Netns {
  constructor(readonly topo: Topology, readonly name: string) {}

  /** Run a command inside this namespace. */
  exec(cmd: string, args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** `ip ...` inside this namespace (test oracle and topology set-up). */
  ip(...args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Start a long-running process inside this namespace; tracked and stopped by pid on cleanup. */
  spawn(cmd: string, args: readonly string[], label = cmd): NsProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new NsProcess(child, `${label}@${this.name}`);
    this.topo.track(p);
    return p;
  }

  /** Start a packet capture on `ifname`; resolves once tcpdump is listening. */
  async capture(ifname: string, filter: readonly string[] = []): Promise<Capture> {
    // Named from a counter taken before any await: concurrent captures never share a file.
    const file = join(this.topo.workdir, `${ifname}-${this.topo.nextCaptureId()}.pcap`);
    const proc = this.spawn('tcpdump', ['-i', ifname, '--immediate-mode', '-U', '-n', '-s', '0', '-w', file, ...filter], 'tcpdump');
    await waitFor(`tcpdump listening on ${ifname}`, () => proc.stderr.includes('listening on') || !proc.running, { timeoutMs: 10_000 });
    if (!proc.running) throw new Error(`tcpdump on ${ifname} exited: ${proc.stderr.trim()}`);
    const cap = new Capture(proc, file);
    this.topo.captures.push(cap);
    return cap;
  }

  /** Names of the links in this namespace. */
  async links(): Promise<string[]> {
    const r = await this.ip('-j', 'link', 'show');
    return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
  }
}

/** A finished or running tcpdump capture to a pcap file. */
export class Capture {
  constructor(readonly proc: NsProcess, readonly file: string) {}

  /** Stop capturing (flushes the file). */
  async stop(): Promise<void> {
    await this.proc.stop('SIGINT');
  }

  /**
   * Decoded packets, one line each, with link-level headers (`tcpdump -r -e -nn`).
   * Readable while the capture runs: packets are written as they arrive.
   */
  async lines(extra: readonly string[] = []): Promise<string[]> {
    const r = await run('tcpdump', ['-r', this.file, '-e', '-nn', ...extra], { allowFail: true });
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Packets with their bytes in hex (`tcpdump -r -e -nn -xx`), one string per packet. */
  async hexPackets(): Promise<string[]> {
    const r = await run('tcpdump', ['-r', this.file, '-nn', '-xx'], { allowFail: true });
    const pkts: string[] = [];
    let cur = '';
    for (const line of r.stdout.split('\n')) {
      const m = /^\s+0x[0-9a-f]+:\s+(.*)$/.exec(line);
      if (m) cur += m[1]!.replace(/\s+/g, '');
      else if (line.trim() !== '') { if (cur) pkts.push(cur); cur = ''; }
    }
    if (cur) pkts.push(cur);
    return pkts;
  }
}

const liveTopologies = new Set<Topology>();

/**
 * One scenario's world. Create it in `beforeAll`, call `cleanup()` in
 * `afterAll`; process exit and SIGINT/SIGTERM clean up too.
 */
export class Topology {
  readonly runId = newRunId();
  readonly workdir: string;
  readonly captures: Capture[] = [];
  private captureIds = 0;
  private readonly namespaces: Netns[] = [];
  private readonly procs: NsProcess[] = [];

  constructor(readonly scenario: string) {
    this.workdir = mkdtempSync(join(tmpdir(), `nea-${scenario}-`));
    liveTopologies.add(this);
    installExitHooks();
  }

  /** A number for a capture file, unique in this run. */
  nextCaptureId(): number {
    return this.captureIds++;
  }

  /** Full name of a namespace of this run. */
  nsName(base: string): string {
    return `${NS_PREFIX}${this.runId}-${base}`;
  }

  /** Create a namespace with loopback up. */
  async netns(base: string): Promise<Netns> {
    const name = this.nsName(base);
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(this, name);
    this.namespaces.push(ns);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** A veth pair with one end in each namespace, both up. */
  async veth(a: Netns, aName: string, b: Netns, bName: string, opts: { mtu?: number } = {}): Promise<void> {
    await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
    for (const [ns, n] of [[a, aName], [b, bName]] as const) {
      if (opts.mtu !== undefined) await ns.ip('link', 'set', n, 'mtu', String(opts.mtu));
      await ns.ip('link', 'set', n, 'up');
    }
  }

  /** A Linux bridge in `ns`, up, with `ports` enslaved. */
  async bridge(ns: Netns, name: string, ports: readonly string[] = []): Promise<void> {
    await ns.ip('link', 'add', name, 'type', 'bridge');
    for (const p of ports) await ns.ip('link', 'set', p, 'master', name);
    await ns.ip('link', 'set', name, 'up');
  }

  /** Called by Netns.spawn: the process is stopped on cleanup. */
  track(p: NsProcess): void {
    this.procs.push(p);
  }

  /** Stop every process (by pid), delete every namespace, remove the work dir. */
  async cleanup(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', 2000)));
    for (const ns of this.namespaces.splice(0).reverse()) {
      await run('ip', ['netns', 'del', ns.name], { allowFail: true });
    }
    rmSync(this.workdir, { recursive: true, force: true });
    liveTopologies.delete(this);
  }

  /** Synchronous last-resort cleanup for process exit. */
  cleanupSync(): void {
    for (const p of this.procs) if (p.running) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const ns of this.namespaces.splice(0)) {
      try { execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' }); } catch { /* gone */ }
    }
    rmSync(this.workdir, { recursive: true, force: true });
    liveTopologies.delete(this);
  }

  /** What of this run still exists: namespaces, running processes, work dir. Empty when clean. */
  leftovers(): string[] {
    const left: string[] = [];
    const prefix = `${NS_PREFIX}${this.runId}-`;
    for (const n of listNetns()) if (n.startsWith(prefix)) left.push(`netns ${n}`);
    for (const p of this.procs) if (p.running || pidAlive(p.pid)) left.push(`process ${p.label} pid ${p.pid}`);
    if (existsSync(this.workdir)) left.push(`dir ${this.workdir}`);
    return left;
  }
}

/** Names of all named network namespaces on the machine. */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Host links whose name carries a run id marker; tests must never leave any. */
export async function hostLinksWith(marker: string): Promise<string[]> {
  const r = await run('ip', ['-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.includes(marker));
}

/**
 * Delete namespaces left by earlier runs that crashed: a namespace
 * `nt-<pid36>_<n>-...` whose pid is no longer alive. Called from the global
 * setup, so a crashed run never blocks the next one.
 */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const n of listNetns()) {
    if (!n.startsWith(NS_PREFIX)) continue;
    const pid = parseInt(n.slice(NS_PREFIX.length).split('_')[0] ?? '', 36);
    const owned = pid > 1 && pidAlive(pid);
    if (!owned) {
      try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); removed.push(n); } catch { /* raced */ }
    }
  }
  return removed;
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const all = (): void => { for (const t of [...liveTopologies]) t.cleanupSync(); };
  process.on('exit', all);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { all(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
  }
}

/** True when the test process may build namespaces (root with CAP_SYS_ADMIN). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
