/**
 * The processes a bench run starts: each is spawned inside a named network
 * namespace, tracked by pid and stopped by pid; nothing is ever matched by
 * name.
 *
 * Entering a namespace: the child is forked while the main thread is inside
 * the namespace (`withNetns(ns, () => spawn(...))`); a forked child keeps the
 * network namespace of the thread that forked it, so it runs there from its
 * first instruction, with no `ip netns exec` or `nsenter` in between and the
 * pid we track is the program's own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { withNetns } from '../netconfig/netns.js';
import { descendants, parseProcStat, parseVmHwmKiB, treeCpuTicks, type ProcStat } from './parse.js';

/** Bytes of a long-running process's output kept for error messages (the tail). */
const OUTPUT_TAIL_BYTES = 64 * 1024;
/** How long after its exit a process's output may still arrive, in ms. */
const CLOSE_AFTER_EXIT_MS = 1000;

export interface SpawnOptions {
  /** Name in progress lines and errors; default the command. */
  label?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Keep all output (short-lived measuring tools) instead of the last 64 KiB. */
  keepAll?: boolean;
}

/** A started process: output captured, exit observed, stopped by pid. */
export class Proc {
  readonly pid: number;
  readonly label: string;
  stdout = '';
  stderr = '';
  private code: number | null = null;
  private termSignal: NodeJS.Signals | null = null;
  private done = false;
  private readonly exited: Promise<void>;
  private readonly listeners = new Set<() => void>();

  constructor(readonly child: ChildProcess, label: string, keepAll: boolean) {
    if (child.pid === undefined) throw new Error(`${label}: could not start`);
    this.pid = child.pid;
    this.label = label;
    const keep = (s: string): string => (keepAll || s.length <= OUTPUT_TAIL_BYTES ? s : s.slice(-OUTPUT_TAIL_BYTES));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout = keep(this.stdout + d); this.notify(); });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr = keep(this.stderr + d); this.notify(); });
    // Done at 'exit'; output is complete at 'close', which a grandchild holding
    // the pipes could delay for ever, hence the bound.
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.code = code;
        this.termSignal = signal;
        this.done = true;
        this.notify();
        setTimeout(resolve, CLOSE_AFTER_EXIT_MS).unref();
      });
      child.on('close', () => { resolve(); });
    });
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  get running(): boolean {
    return !this.done;
  }

  /** "exited with code 1" / "killed by SIGKILL" / "running". */
  get status(): string {
    if (!this.done) return 'running';
    return this.termSignal !== null ? `killed by ${this.termSignal}` : `exited with code ${this.code ?? -1}`;
  }

  get exitCode(): number | null {
    return this.code;
  }

  /** Last non-empty line of the output, for error messages. */
  lastLine(): string {
    const lines = `${this.stdout}\n${this.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return lines[lines.length - 1] ?? '';
  }

  wait(): Promise<void> {
    return this.exited;
  }

  /** Resolves when `re` matches the output; rejects on exit or after `timeoutMs`. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (err) reject(err); else resolve();
      };
      const check = (): void => {
        if (re.test(this.stdout) || re.test(this.stderr)) finish();
        else if (this.done) finish(new Error(`${this.label} ${this.status} before printing ${String(re)}: ${this.lastLine()}`));
      };
      const timer = setTimeout(() => { finish(new Error(`${this.label} did not print ${String(re)} within ${timeoutMs} ms: ${this.lastLine()}`)); }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** Signal the pid, wait `graceMs`, then SIGKILL. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (this.done) return;
    try { process.kill(this.pid, signal); } catch { /* already gone */ }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => { timer = setTimeout(() => { r('late'); }, graceMs); });
    const r = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (r === 'late') {
      this.killNow();
      await this.exited;
    }
  }

  /** Send a signal to the pid if it still runs. */
  signal(sig: NodeJS.Signals): void {
    if (this.done) return;
    try { process.kill(this.pid, sig); } catch { /* already gone */ }
  }

  /** SIGKILL now (the synchronous path for signal handlers). */
  killNow(): void {
    if (this.done) return;
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Every process of one system's run, so that all of them are stopped whatever happens. */
export class ProcessTable {
  private readonly procs: Proc[] = [];

  /** Start `cmd` inside network namespace `ns` (undefined: this process's namespace). */
  spawn(ns: string | undefined, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Proc {
    const label = opts.label ?? cmd;
    const env = opts.env ? { ...process.env, ...opts.env } : process.env;
    const child = withNetns(ns, () => spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
    // A spawn failure (ENOENT) is reported through 'error'; the missing pid says so synchronously.
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`${label}: cannot start ${cmd} (is it installed?)`);
    const p = new Proc(child, label, opts.keepAll ?? false);
    this.procs.push(p);
    void p.wait().then(() => {
      const i = this.procs.indexOf(p);
      if (i >= 0) this.procs.splice(i, 1);
    });
    return p;
  }

  /**
   * Run `cmd` to completion inside `ns`; SIGKILL after `timeoutMs`. Never
   * throws for a non-zero exit. With `interruptAfterMs`, SIGINT is sent then
   * (for tools that print their summary when interrupted, like ping).
   */
  async run(ns: string | undefined, cmd: string, args: readonly string[], timeoutMs: number, label = cmd,
    interruptAfterMs?: number): Promise<RunResult> {
    const p = this.spawn(ns, cmd, args, { label, keepAll: true });
    const kill = setTimeout(() => { p.killNow(); }, timeoutMs);
    const interrupt = interruptAfterMs === undefined ? undefined : setTimeout(() => { p.signal('SIGINT'); }, interruptAfterMs);
    await p.wait();
    clearTimeout(kill);
    clearTimeout(interrupt);
    return { stdout: p.stdout, stderr: p.stderr, code: p.exitCode };
  }

  /** Like `run`, but a non-zero exit throws with the tool's last line. */
  async check(ns: string | undefined, cmd: string, args: readonly string[], timeoutMs: number, label = cmd): Promise<string> {
    const r = await this.run(ns, cmd, args, timeoutMs, label);
    if (r.code !== 0) {
      const last = `${r.stdout}\n${r.stderr}`.trim().split('\n').pop() ?? '';
      throw new Error(`${label} ${[cmd, ...args].join(' ')} failed (${r.code === null ? 'killed' : `code ${r.code}`}): ${last}`);
    }
    return r.stdout;
  }

  /** Stop every live process, newest first. */
  async stopAll(): Promise<void> {
    for (const p of [...this.procs].reverse()) await p.stop();
  }

  /** SIGKILL every live process now (signal and exit paths). */
  killAllNow(): void {
    for (const p of this.procs) p.killNow();
  }
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of /proc/PID/stat times (`getconf CLK_TCK`; 100 on Linux/x86). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout.trim());
    clockTicks = r.status === 0 && Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** /proc/PID/stat of every process now (those that vanish meanwhile are skipped). */
function allStats(): Map<number, ProcStat> {
  const m = new Map<number, ProcStat>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try { m.set(Number(e), parseProcStat(readFileSync(`/proc/${e}/stat`, 'utf8'))); } catch { /* exited meanwhile */ }
  }
  return m;
}

/**
 * CPU seconds (user + system, all threads) used so far by the processes and
 * their descendants (live ones, and exited ones their parent reaped), so a
 * system that forks workers is charged for them too.
 */
export function cpuSeconds(procs: readonly Proc[]): number {
  const stats = allStats();
  let ticks = 0;
  for (const p of procs) ticks += treeCpuTicks(p.pid, stats);
  return ticks / clkTck();
}

/**
 * Peak resident memory of the largest measured process tree, in MiB: per
 * process the sum of VmHWM over it and its live descendants (an upper bound:
 * their peaks need not coincide); undefined when none can be read.
 */
export function peakRssMiB(procs: readonly Proc[]): number | undefined {
  const stats = allStats();
  let max: number | undefined;
  for (const p of procs) {
    let sum: number | undefined;
    for (const pid of descendants(p.pid, stats)) {
      let kib: number | undefined;
      try { kib = parseVmHwmKiB(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { kib = undefined; }
      if (kib !== undefined) sum = (sum ?? 0) + kib / 1024;
    }
    if (sum !== undefined) max = Math.max(max ?? 0, sum);
  }
  return max;
}
