/**
 * One repetition of the measurements on a running system. Clients run in h1,
 * the iperf3 server in h2; each test is one tool run, one after another:
 *
 *   1. ping idle: ping -i 0.01 for the test duration
 *   2. TCP, 1 stream (iperf3 -c), with ping -i 0.01 alongside: "ping under load"
 *   3. TCP, 4 streams (-P 4)
 *   4. UDP 1400-byte datagrams at the highest rate the client can send (-b 0),
 *      then a short search for the highest rate with < 1 % loss
 *   5. the same with 64-byte datagrams
 *
 * The tunnel processes' CPU time (utime + stime of all their threads) is read
 * from /proc before and after each test. A failed test leaves its metrics
 * null and its message in `details.errors`; a tunnel process that dies ends
 * the repetition with an error.
 */
import { emptyMetrics, type RunDetails, type RunRecord } from './metrics.js';
import { ToolError, parseIperfTcp, parseIperfUdp, parsePing, type PingResult, type TcpResult, type UdpResult } from './parse.js';
import { cpuSeconds, peakRssMiB, type Proc, type ProcessTable } from './procs.js';
import type { Topology } from './topology.js';

/** ping interval in seconds (the shortest root may use without flooding). */
export const PING_INTERVAL_S = 0.01;
/** Seconds the ping under load starts after the TCP transfer and stops before its end. */
const LOAD_PING_MARGIN_S = 0.4;
/** UDP socket buffer asked of iperf3 on both ends (capped by net.core.[rw]mem_max). */
const UDP_SOCKET_BUFFER = '4M';
/** Loss below which a UDP rate counts as carried, in %. */
export const LOSS_LIMIT_PCT = 1;
/** iperf3's control port on h2. */
export const IPERF_PORT = 5201;
/** How long a client waits for the server to listen again, in ms, and how often a refused client retries. */
const SERVER_WAIT_MS = 5000;
const IPERF_RETRIES = 10;

export interface Durations {
  /** Seconds of each TCP test, the idle ping and the UDP tests at the highest rate. */
  testS: number;
  /** Probes of the < 1 % loss search and seconds of each. */
  searchSteps: number;
  searchStepS: number;
}

export function durations(testS: number, quick: boolean): Durations {
  return quick
    ? { testS, searchSteps: 2, searchStepS: 1 }
    : { testS, searchSteps: 4, searchStepS: Math.max(1, Math.round(testS / 3)) };
}

export interface MeasureContext {
  topo: Topology;
  procs: ProcessTable;
  /** The tunnel processes (empty for kernel systems). */
  measured: readonly Proc[];
  /** `iperf3 -s` in h2, started with --forceflush so its banner shows when it listens. */
  server: Proc;
  d: Durations;
  log(msg: string): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function checkAlive(ctx: MeasureContext): void {
  for (const p of ctx.measured) {
    if (!p.running) throw new Error(`${p.label} ${p.status}: ${p.lastLine()}`);
  }
}

/** The iperf3 server has printed its banner since it last accepted a client (it re-opens its socket between tests). */
function serverListening(server: Proc): boolean {
  return server.stdout.lastIndexOf('Server listening') > server.stdout.lastIndexOf('Accepted connection');
}

/**
 * One iperf3 client run, started once the server listens again; retried
 * while the server is still busy with, or closing after, the previous test.
 */
async function iperf(ctx: MeasureContext, args: readonly string[], seconds: number): Promise<string> {
  const full = ['-c', ctx.topo.addr.h2, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '5000', ...args];
  for (let attempt = 0; ; attempt++) {
    for (let t = 0; !serverListening(ctx.server) && t < SERVER_WAIT_MS / 20; t++) {
      if (!ctx.server.running) throw new ToolError('iperf3', `the server ${ctx.server.status}: ${ctx.server.lastLine()}`);
      await sleep(20);
    }
    const r = await ctx.procs.run(ctx.topo.ns.h1, 'iperf3', full, (seconds + 20) * 1000, 'iperf3 client');
    if (r.code === null) throw new ToolError('iperf3', `no result within ${seconds + 20} s (killed)`);
    if (/server is busy|Connection refused/.test(r.stdout) && attempt < IPERF_RETRIES) {
      await sleep(300);
      continue;
    }
    return r.stdout;
  }
}

export async function tcp(ctx: MeasureContext, streams: number, seconds: number): Promise<TcpResult> {
  return parseIperfTcp(await iperf(ctx, streams > 1 ? ['-P', String(streams)] : [], seconds));
}

/** A UDP run at `pps` datagrams per second (0: as fast as the client can). */
export async function udp(ctx: MeasureContext, bytes: number, pps: number, seconds: number): Promise<UdpResult> {
  const bps = Math.round(pps * bytes * 8);
  return parseIperfUdp(await iperf(ctx, ['-u', '-l', String(bytes), '-b', String(bps), '-w', UDP_SOCKET_BUFFER], seconds));
}

/**
 * ping every 10 ms for `seconds`, stopped by SIGINT (ping's -w takes whole
 * seconds only, and the count a rate gives is off when the timer is coarse:
 * this VM grants one ping per ~17 ms at -i 0.01).
 */
export async function ping(ctx: MeasureContext, seconds: number): Promise<PingResult> {
  const r = await ctx.procs.run(ctx.topo.ns.h1, 'ping', ['-n', '-i', String(PING_INTERVAL_S), '-W', '1', ctx.topo.addr.h2],
    seconds * 1000 + 10_000, 'ping', seconds * 1000);
  const p = parsePing(r.stdout);
  if (p.received === 0) throw new ToolError('ping', `no reply from ${ctx.topo.addr.h2}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''}`);
  return p;
}

/**
 * The highest rate with < 1 % loss, by bisection between 0 and the rate the
 * client could offer, starting just under what arrived at that rate.
 * Returns the delivered pps of the best passing probe (null when none passed)
 * and every probe.
 */
export async function searchLossLimit(ctx: MeasureContext, bytes: number, max: UdpResult): Promise<{ okPps: number | null; probes: RunDetails['udp64_search'] }> {
  const probes: RunDetails['udp64_search'] = [];
  if (max.lossPct < LOSS_LIMIT_PCT) return { okPps: max.deliveredPps, probes };
  let lo = 0;
  let hi = max.offeredPps;
  let rate = 0.9 * max.deliveredPps;
  let okPps: number | null = null;
  for (let i = 0; i < ctx.d.searchSteps; i++) {
    checkAlive(ctx);
    const r = await udp(ctx, bytes, rate, ctx.d.searchStepS);
    probes.push({ pps: Math.round(rate), delivered_pps: Math.round(r.deliveredPps), loss_pct: r.lossPct });
    if (r.lossPct < LOSS_LIMIT_PCT) {
      okPps = Math.max(okPps ?? 0, r.deliveredPps);
      lo = rate;
    } else {
      hi = rate;
    }
    rate = (lo + hi) / 2;
  }
  return { okPps, probes };
}

/** Runs one repetition; `rep` is 1-based. */
export async function runRepetition(ctx: MeasureContext, rep: number): Promise<RunRecord> {
  const m = emptyMetrics();
  const kernel = ctx.measured.length === 0;
  const details: RunDetails = {
    tcp1_retransmits: null, tcp4_retransmits: null, udp1400_offered_pps: null, udp64_offered_pps: null,
    udp1400_search: [], udp64_search: [], ping_idle_replies: null, ping_idle_loss_pct: null, ping_load_replies: null, ping_load_loss_pct: null,
    cpu_s_by_test: kernel ? null : {}, errors: [],
  };
  const { testS } = ctx.d;

  /** Runs a test, charging the tunnel processes' CPU time to it; a tool failure is recorded, not thrown. */
  const test = async (name: string, fn: () => Promise<void>): Promise<void> => {
    checkAlive(ctx);
    const before = kernel ? 0 : cpuSeconds(ctx.measured);
    try {
      await fn();
    } catch (e) {
      checkAlive(ctx);
      details.errors.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      ctx.log(`  ${name}: failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    checkAlive(ctx);
    if (details.cpu_s_by_test) details.cpu_s_by_test[name] = cpuSeconds(ctx.measured) - before;
  };

  await test('ping idle', async () => {
    const p = await ping(ctx, testS);
    m.ping_idle_avg_ms = p.avgMs ?? null;
    m.ping_idle_p99_ms = p.p99Ms ?? null;
    details.ping_idle_replies = p.received;
    details.ping_idle_loss_pct = p.lossPct;
    ctx.log(`  ping idle: avg ${p.avgMs?.toFixed(3)} ms, p99 ${p.p99Ms?.toFixed(3)} ms, loss ${p.lossPct.toFixed(1)} %`);
  });
  await test('tcp 1 stream + ping', async () => {
    // ping starts once the transfer runs and ends before it does.
    const t = tcp(ctx, 1, testS);
    const p = sleep(LOAD_PING_MARGIN_S * 1000).then(() => ping(ctx, testS - 2 * LOAD_PING_MARGIN_S));
    const [tr, pr] = await Promise.allSettled([t, p]);
    if (tr.status === 'fulfilled') {
      m.tcp1_mbps = tr.value.mbps;
      details.tcp1_retransmits = tr.value.retransmits ?? null;
      ctx.log(`  tcp 1 stream: ${tr.value.mbps.toFixed(0)} Mbit/s`);
    }
    if (pr.status === 'fulfilled') {
      m.ping_load_avg_ms = pr.value.avgMs ?? null;
      m.ping_load_p99_ms = pr.value.p99Ms ?? null;
      details.ping_load_replies = pr.value.received;
      details.ping_load_loss_pct = pr.value.lossPct;
      ctx.log(`  ping under load: avg ${pr.value.avgMs?.toFixed(3)} ms, p99 ${pr.value.p99Ms?.toFixed(3)} ms, loss ${pr.value.lossPct.toFixed(1)} %`);
    }
    if (tr.status === 'rejected') throw tr.reason;
    if (pr.status === 'rejected') throw pr.reason;
  });
  await test('tcp 4 streams', async () => {
    const r = await tcp(ctx, 4, testS);
    m.tcp4_mbps = r.mbps;
    details.tcp4_retransmits = r.retransmits ?? null;
    ctx.log(`  tcp 4 streams: ${r.mbps.toFixed(0)} Mbit/s`);
  });
  for (const bytes of [1400, 64] as const) {
    await test(`udp ${bytes}`, async () => {
      const r = await udp(ctx, bytes, 0, testS);
      const s = await searchLossLimit(ctx, bytes, r);
      if (bytes === 1400) {
        m.udp1400_pps = r.deliveredPps; m.udp1400_loss_pct = r.lossPct; m.udp1400_ok_pps = s.okPps;
        details.udp1400_offered_pps = r.offeredPps; details.udp1400_search = s.probes;
      } else {
        m.udp64_pps = r.deliveredPps; m.udp64_loss_pct = r.lossPct; m.udp64_ok_pps = s.okPps;
        details.udp64_offered_pps = r.offeredPps; details.udp64_search = s.probes;
      }
      ctx.log(`  udp ${bytes} B: offered ${(r.offeredPps / 1e3).toFixed(1)} kpps, delivered ${(r.deliveredPps / 1e3).toFixed(1)} kpps, ` +
        `loss ${r.lossPct.toFixed(1)} %; < ${LOSS_LIMIT_PCT} % loss: ${s.okPps === null ? 'not found' : `${(s.okPps / 1e3).toFixed(1)} kpps`}`);
    });
  }
  if (details.cpu_s_by_test) m.cpu_s = Object.values(details.cpu_s_by_test).reduce((a, b) => a + b, 0);
  if (!kernel) m.peak_rss_mb = peakRssMiB(ctx.measured) ?? null;
  return { rep, ...m, details };
}
