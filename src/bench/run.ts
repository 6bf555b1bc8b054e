/**
 * `nea bench`: for each selected system, one after another, build the
 * topology, set the system up, wait until h1 reaches h2, run the
 * repetitions, then stop its processes and delete everything it made.
 *
 * Cleanup runs on every exit path: after each system (success or failure),
 * on SIGINT/SIGTERM (synchronously: SIGKILL by pid, delete the namespaces,
 * remove the files) and at process exit. Leftovers of an earlier run that
 * died hard are swept before the first system.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { cpus, hostname, release, tmpdir, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { IPERF_PORT, durations, runRepetition, type MeasureContext } from './measure.js';
import { emptyMetrics, summarize, type BenchReport, type MachineInfo, type RunRecord, type SystemResult } from './metrics.js';
import { ProcessTable, type Proc } from './procs.js';
import { SYSTEMS, type BenchSystem, type SystemContext } from './systems.js';
import { TMP_PREFIX, Topology, runId, sweepLeftovers } from './topology.js';

export interface BenchOptions {
  /** System names, in the order to run. */
  systems: readonly string[];
  /** Seconds per test. */
  durationS: number;
  reps: number;
  quick: boolean;
  /** WAN veth MTU in bytes. */
  wanMtu: number;
  /** The command line, recorded in the JSON. */
  command: string;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
}

/** Seconds to wait for h1 to reach h2 once a system is set up. */
const READY_TIMEOUT_S = 30;

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    hostname: hostname(),
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cpus: c.length,
    kernel: release(),
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
  };
}

function onPath(tool: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

/** What one system's run made; `release` undoes all of it synchronously. */
class SystemRun {
  readonly procs = new ProcessTable();
  readonly dir: string;
  readonly garbage: string[] = [];
  topo: Topology | undefined;

  constructor(name: string) {
    this.dir = mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${runId()}-${name}-`));
  }

  /** Graceful path: stop processes (SIGTERM, then SIGKILL), then `release`. */
  async close(): Promise<void> {
    await this.procs.stopAll();
    this.release();
  }

  /** Immediate path (signals, exit): SIGKILL, delete namespaces and files. Idempotent. */
  release(): void {
    this.procs.killAllNow();
    this.topo?.destroy();
    for (const g of this.garbage.splice(0)) rmSync(g, { force: true, recursive: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function waitReady(ctx: MeasureContext, sys: BenchSystem): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    for (const p of ctx.measured) if (!p.running) throw new Error(`${p.label} ${p.status}: ${p.lastLine()}`);
    const r = await ctx.procs.run(ctx.topo.ns.h1, 'ping', ['-n', '-c', '1', '-W', '1', ctx.topo.addr.h2], 5000);
    if (r.code === 0) return (Date.now() - t0) / 1000;
    if (Date.now() - t0 > READY_TIMEOUT_S * 1000) {
      const last = ctx.measured.map((p) => `${p.label}: ${p.lastLine()}`).join('; ');
      throw new Error(`h1 did not reach h2 (${ctx.topo.addr.h2}) through ${sys.name} within ${READY_TIMEOUT_S} s${last ? ` (${last})` : ''}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function runSystem(sys: BenchSystem, o: BenchOptions, run: SystemRun, log: (l: string) => void): Promise<SystemResult> {
  const base: SystemResult = {
    name: sys.name, layer: sys.layer, kernel: sys.kernel, error: null, note: sys.note, ...emptyMetrics(),
    spread: {}, processes: [], runs: [],
  };
  const missing = sys.tools.filter((t) => !onPath(t));
  if (missing.length > 0) return { ...base, error: `not installed: ${missing.join(', ')}` };
  const say = (l: string): void => { log(`[${sys.name}] ${l}`); };
  const topo = new Topology(runId(), sys.layer, o.wanMtu);
  run.topo = topo;
  await topo.build();
  const sctx: SystemContext = { topo, procs: run.procs, dir: run.dir, garbage: run.garbage, log: say };
  const measured: Proc[] = await sys.setup(sctx);
  base.processes = measured.map((p) => `${p.label} (pid ${p.pid})`);
  const server = run.procs.spawn(topo.ns.h2, 'iperf3', ['-s', '-B', topo.addr.h2, '-p', String(IPERF_PORT), '--forceflush'], { label: 'iperf3 server' });
  await server.waitForOutput(/Server listening/, 10_000);
  const mctx: MeasureContext = { topo, procs: run.procs, measured, server, d: durations(o.durationS, o.quick), log: say };
  const readyS = await waitReady(mctx, sys);
  say(`ready after ${readyS.toFixed(1)} s${measured.length > 0 ? `; measuring ${base.processes.join(', ')}` : ''}`);
  const runs: RunRecord[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    say(`repetition ${rep}/${o.reps}`);
    runs.push(await runRepetition(mctx, rep));
  }
  const { metrics, spread } = summarize(runs);
  return { ...base, ...metrics, spread, runs };
}

/** Runs the benchmark; never leaves a namespace, process or file behind. */
export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.log ?? ((l: string): void => { process.stderr.write(`${l}\n`); });
  if (process.getuid?.() !== 0) throw new Error('needs root: it builds network namespaces (run it with sudo)');
  for (const t of ['iperf3', 'ping']) if (!onPath(t)) throw new Error(`${t} is not installed (apt install iperf3 iputils-ping)`);
  const systems = o.systems.map((n) => {
    const s = SYSTEMS.find((x) => x.name === n);
    if (!s) throw new Error(`unknown system "${n}" (known: ${SYSTEMS.map((x) => x.name).join(', ')})`);
    return s;
  });
  const swept = sweepLeftovers();
  if (swept.length > 0) log(`removed leftovers of an earlier run: ${swept.join(', ')}`);

  let current: SystemRun | undefined;
  const onExit = (): void => { current?.release(); };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping and cleaning up`);
    current?.release();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    wanMtu: o.wanMtu,
    options: { durationS: o.durationS, reps: o.reps, quick: o.quick, command: o.command },
    systems: [],
  };
  try {
    for (const sys of systems) {
      log(`[${sys.name}] setting up`);
      const t0 = Date.now();
      const run = new SystemRun(sys.name);
      current = run;
      let result: SystemResult;
      try {
        result = await runSystem(sys, o, run, log);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        result = {
          name: sys.name, layer: sys.layer, kernel: sys.kernel, error: msg, note: sys.note, ...emptyMetrics(),
          spread: {}, processes: [], runs: [],
        };
      } finally {
        await run.close();
        current = undefined;
      }
      if (result.error !== null) log(`[${sys.name}] failed: ${result.error}`);
      log(`[${sys.name}] done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      report.systems.push(result);
    }
  } finally {
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return report;
}
