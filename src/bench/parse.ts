/**
 * Parsers for what the measuring tools print: iperf3's JSON (`-J`), ping's
 * per-reply lines and the kernel's /proc/PID/stat and /proc/PID/status.
 * Pure; a tool's own error becomes a `ToolError` carrying its message.
 */
import { mean, percentile } from './stats.js';

/** A measuring tool reported a failure (iperf3's `"error"`, unparseable output). */
export class ToolError extends Error {
  constructor(readonly tool: string, message: string) {
    super(`${tool}: ${message}`);
    this.name = 'ToolError';
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(obj: Record<string, unknown>, key: string, where: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ToolError('iperf3', `JSON without a number at ${where}.${key}`);
  return v;
}

function iperfEnd(text: string): { doc: Record<string, unknown>; end: Record<string, unknown> } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const firstLine = text.trim().split('\n')[0] ?? '';
    throw new ToolError('iperf3', `output is not JSON${firstLine ? ` (${firstLine.slice(0, 120)})` : ' (empty)'}`);
  }
  if (!isRecord(doc)) throw new ToolError('iperf3', 'JSON output is not an object');
  if (typeof doc.error === 'string') throw new ToolError('iperf3', doc.error);
  if (!isRecord(doc.end)) throw new ToolError('iperf3', 'JSON output without an "end" section');
  return { doc, end: doc.end };
}

export interface TcpResult {
  /** Goodput the receiver saw, in Mbit/s (10^6 bit/s). */
  mbps: number;
  /** TCP retransmissions counted by the sender, when iperf3 reports them. */
  retransmits: number | undefined;
  /** Length of the measured interval in seconds. */
  seconds: number;
}

/** A TCP test (`iperf3 -c ... -J [-P N]`): the receiver's sum over all streams. */
export function parseIperfTcp(text: string): TcpResult {
  const { end } = iperfEnd(text);
  const rx = end.sum_received;
  if (!isRecord(rx)) throw new ToolError('iperf3', 'TCP result without end.sum_received (was this a UDP test?)');
  const tx = isRecord(end.sum_sent) ? end.sum_sent : undefined;
  const retransmits = tx && typeof tx.retransmits === 'number' ? tx.retransmits : undefined;
  return { mbps: num(rx, 'bits_per_second', 'end.sum_received') / 1e6, retransmits, seconds: num(rx, 'seconds', 'end.sum_received') };
}

export interface UdpResult {
  /** Payload bytes per datagram (`-l`). */
  datagramBytes: number;
  /** Datagrams the client sent. */
  sent: number;
  /** Datagrams that never arrived (from the receiver's sequence numbers). */
  lost: number;
  /** Datagrams that arrived. */
  delivered: number;
  /** Rate the client managed to send, in datagrams per second. */
  offeredPps: number;
  /** Rate that arrived, in datagrams per second. */
  deliveredPps: number;
  /** Lost share of the sent datagrams, in % (0..100). */
  lossPct: number;
}

/** A UDP test (`iperf3 -u -l N -b RATE -J`): what was sent and what arrived. */
export function parseIperfUdp(text: string): UdpResult {
  const { doc, end } = iperfEnd(text);
  // iperf3 >= 3.11 splits the sides; older ones have one `sum` with the receiver's loss.
  const rx = isRecord(end.sum_received) ? end.sum_received : isRecord(end.sum) ? end.sum : undefined;
  const tx = isRecord(end.sum_sent) ? end.sum_sent : rx;
  if (!rx || !tx) throw new ToolError('iperf3', 'UDP result without end.sum_received or end.sum');
  if (rx.lost_packets === undefined) throw new ToolError('iperf3', 'UDP result without lost_packets (was this a TCP test?)');
  const start = isRecord(doc.start) && isRecord(doc.start.test_start) ? doc.start.test_start : {};
  const datagramBytes = typeof start.blksize === 'number' ? start.blksize : 0;
  const sent = num(tx, 'packets', 'end.sum_sent');
  const lost = Math.min(sent, Math.max(0, num(rx, 'lost_packets', 'end.sum_received')));
  const txSeconds = num(tx, 'seconds', 'end.sum_sent');
  const rxSeconds = num(rx, 'seconds', 'end.sum_received');
  const delivered = sent - lost;
  return {
    datagramBytes,
    sent,
    lost,
    delivered,
    offeredPps: txSeconds > 0 ? sent / txSeconds : 0,
    deliveredPps: rxSeconds > 0 ? delivered / rxSeconds : 0,
    lossPct: sent > 0 ? (100 * lost) / sent : 0,
  };
}

export interface PingResult {
  /** Echo requests sent. */
  transmitted: number;
  /** Distinct echo replies received (duplicates not counted). */
  received: number;
  /** Round-trip time of each reply in ms, in arrival order. */
  rttsMs: number[];
  /** Mean RTT in ms; undefined without replies. */
  avgMs: number | undefined;
  /** Nearest-rank 99th percentile RTT in ms; undefined without replies. */
  p99Ms: number | undefined;
  /** Requests without a reply, in % of those sent. */
  lossPct: number;
}

const PING_REPLY = /icmp_seq=(\d+)\b.*\btime[=<]([\d.]+) ms/;
const PING_SUMMARY = /(\d+) packets transmitted, (\d+) (?:packets )?received/;

/** iputils `ping -n` output; works on output cut short (no summary line) too. */
export function parsePing(text: string): PingResult {
  const rttsMs: number[] = [];
  let maxSeq = 0;
  let transmitted: number | undefined;
  for (const line of text.split('\n')) {
    const r = PING_REPLY.exec(line);
    if (r && !line.includes('DUP!')) {
      rttsMs.push(Number(r[2]));
      maxSeq = Math.max(maxSeq, Number(r[1]));
      continue;
    }
    const s = PING_SUMMARY.exec(line);
    if (s) transmitted = Number(s[1]);
  }
  const sent = transmitted ?? maxSeq;
  return {
    transmitted: sent,
    received: rttsMs.length,
    rttsMs,
    avgMs: mean(rttsMs),
    p99Ms: percentile(rttsMs, 99),
    lossPct: sent > 0 ? (100 * Math.max(0, sent - rttsMs.length)) / sent : 0,
  };
}

export interface ProcStat {
  ppid: number;
  /** Clock ticks this process (all its threads, live and exited) spent in user and kernel mode. */
  utime: number;
  stime: number;
  /** Clock ticks of its children that exited and were waited for. */
  cutime: number;
  cstime: number;
}

/** The fields of /proc/PID/stat a CPU account needs (times in clock ticks). */
export function parseProcStat(text: string): ProcStat {
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) throw new ToolError('/proc/PID/stat', 'no ")" after the command name');
  const f = text.slice(close + 2).trim().split(/\s+/).map(Number);
  // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
  const [ppid, utime, stime, cutime, cstime] = [f[1], f[11], f[12], f[13], f[14]];
  if (ppid === undefined || utime === undefined || stime === undefined || cutime === undefined || cstime === undefined ||
    ![ppid, utime, stime, cutime, cstime].every(Number.isFinite)) {
    throw new ToolError('/proc/PID/stat', 'ppid or CPU times are not numbers');
  }
  return { ppid, utime, stime, cutime, cstime };
}

/**
 * CPU ticks a process tree has used: for each live process its own time
 * (all threads) plus that of its children that already exited and were
 * reaped. Pure; `stats` maps pid → its /proc/PID/stat.
 */
export function treeCpuTicks(root: number, stats: ReadonlyMap<number, ProcStat>): number {
  let ticks = 0;
  for (const pid of descendants(root, stats)) {
    const s = stats.get(pid)!;
    ticks += s.utime + s.stime + s.cutime + s.cstime;
  }
  return ticks;
}

/** `root` and every live descendant of it that `stats` knows (root first). */
export function descendants(root: number, stats: ReadonlyMap<number, ProcStat>): number[] {
  if (!stats.has(root)) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const [pid, s] of stats) if (s.ppid === out[i] && !out.includes(pid)) out.push(pid);
  }
  return out;
}

/** Peak resident set (VmHWM) of /proc/PID/status in KiB; undefined for kernel threads and zombies. */
export function parseVmHwmKiB(text: string): number | undefined {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}
