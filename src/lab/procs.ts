/**
 * The lab's long-running processes (fabric, appliances, control plane, VM
 * services): started detached, so that they outlive `nea lab up`, each
 * recorded in `<stateDir>/pids/<name>.json` with its pid and the kernel's
 * start time of that pid, so that `nea lab down` (another process, maybe
 * after a crash) stops exactly them by pid and never a stranger that
 * reused a pid. Output goes to `<stateDir>/logs/<name>.log`.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcRecord {
  name: string;
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, identifies the process. */
  startTime: string;
  argv: string[];
  log: string;
}

/** The start time of `pid`, or undefined when there is no such process. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its closing one.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when the process a record names still runs (same pid, same start time, not a zombie). */
export function isRunning(r: Pick<ProcRecord, 'pid' | 'startTime'>): boolean {
  if (procStartTime(r.pid) !== r.startTime) return false;
  try {
    const stat = readFileSync(`/proc/${r.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class ProcTable {
  constructor(readonly stateDir: string) {}

  private get pidDir(): string { return join(this.stateDir, 'pids'); }
  get logDir(): string { return join(this.stateDir, 'logs'); }

  /**
   * Starts `argv` detached (in namespace `netns` through `nsenter --net`,
   * which keeps the pid), output appended to its log; records it under
   * `name`. A running process of that name is left alone and returned.
   */
  start(name: string, argv: string[], opts: { netns?: string; env?: Record<string, string> } = {}): ProcRecord {
    const had = this.get(name);
    if (had && isRunning(had)) return had;
    mkdirSync(this.pidDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    const log = join(this.logDir, `${name}.log`);
    const fd = openSync(log, 'a');
    // nsenter enters the network namespace only: `ip netns exec` would also give the process a mount
    // namespace of its own, where namespaces it creates (the netns driver's replicas) stay invisible.
    const full = opts.netns !== undefined ? ['nsenter', `--net=/run/netns/${opts.netns}`, '--', ...argv] : argv;
    const child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.env } });
    closeSync(fd);
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${name} (${full.join(' ')})`);
    const rec: ProcRecord = { name, pid: child.pid, startTime: procStartTime(child.pid) ?? '?', argv: full, log };
    writeFileSync(join(this.pidDir, `${name}.json`), JSON.stringify(rec, null, 2) + '\n');
    return rec;
  }

  get(name: string): ProcRecord | undefined {
    try {
      return JSON.parse(readFileSync(join(this.pidDir, `${name}.json`), 'utf8')) as ProcRecord;
    } catch {
      return undefined;
    }
  }

  list(): ProcRecord[] {
    let names: string[];
    try { names = readdirSync(this.pidDir); } catch { return []; }
    return names.filter((n) => n.endsWith('.json')).flatMap((n) => {
      const r = this.get(n.slice(0, -5));
      return r ? [r] : [];
    });
  }

  /** The last lines of a process's log (for error messages). */
  tail(name: string, lines = 5): string {
    const r = this.get(name);
    if (!r) return '';
    try {
      return readFileSync(r.log, 'utf8').trim().split('\n').slice(-lines).join(' | ');
    } catch {
      return '';
    }
  }

  /**
   * Stops the recorded process by pid: `signal`, then SIGKILL after
   * `graceMs`; forgets it. True when it was running.
   */
  async stop(name: string, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<boolean> {
    const r = this.get(name);
    if (!r) return false;
    const was = isRunning(r);
    if (was) {
      try { process.kill(r.pid, signal); } catch { /* gone */ }
      const deadline = Date.now() + graceMs;
      while (isRunning(r) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      if (isRunning(r)) {
        try { process.kill(r.pid, 'SIGKILL'); } catch { /* gone */ }
        while (isRunning(r)) await new Promise((res) => setTimeout(res, 20));
      }
    }
    rmSync(join(this.pidDir, `${name}.json`), { force: true });
    return was;
  }

  /** Stops every recorded process (in parallel). */
  async stopAll(graceMs = 5000): Promise<string[]> {
    const names = this.list().map((r) => r.name);
    const stopped = await Promise.all(names.map(async (n) => ((await this.stop(n, 'SIGTERM', graceMs)) ? n : undefined)));
    return stopped.filter((n): n is string => n !== undefined);
  }
}
