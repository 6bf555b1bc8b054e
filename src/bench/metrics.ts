/**
 * What `nea bench` reports: the metric catalogue (key, label, unit, which
 * direction is better), the result records written to JSON, and how the
 * repetitions of one system are summarized (median and min–max spread).
 */
import { median, range } from './stats.js';

/** Keys of the reported metrics; also the JSON field names (snake_case, unit suffixed). */
export const METRIC_KEYS = [
  'tcp1_mbps', 'tcp4_mbps',
  'udp1400_pps', 'udp1400_loss_pct', 'udp1400_ok_pps',
  'udp64_pps', 'udp64_loss_pct', 'udp64_ok_pps',
  'ping_idle_avg_ms', 'ping_idle_p99_ms', 'ping_load_avg_ms', 'ping_load_p99_ms',
  'cpu_s', 'peak_rss_mb',
] as const;

export type MetricKey = (typeof METRIC_KEYS)[number];

/** One value per metric; null when not measured (a kernel system's CPU) or not measurable (a failed test). */
export type Metrics = Record<MetricKey, number | null>;

export interface MetricInfo {
  key: MetricKey;
  /** Row label on the terminal, with the display unit. */
  label: string;
  /** Short label for the chart. */
  short: string;
  /** Display value = stored value × scale (pps are shown in kpps). */
  scale: number;
  /** Digits after the decimal point on the terminal. */
  digits: number;
  better: 'higher' | 'lower';
}

export const METRICS: readonly MetricInfo[] = [
  { key: 'tcp1_mbps', label: 'TCP 1 stream (Mbit/s)', short: 'TCP 1 stream', scale: 1, digits: 0, better: 'higher' },
  { key: 'tcp4_mbps', label: 'TCP 4 streams (Mbit/s)', short: 'TCP 4 streams', scale: 1, digits: 0, better: 'higher' },
  { key: 'udp1400_pps', label: 'UDP 1400 B delivered, max offered (kpps)', short: 'UDP 1400 B', scale: 1e-3, digits: 1, better: 'higher' },
  { key: 'udp1400_loss_pct', label: 'UDP 1400 B loss, max offered (%)', short: 'UDP 1400 B loss', scale: 1, digits: 1, better: 'lower' },
  { key: 'udp1400_ok_pps', label: 'UDP 1400 B highest rate < 1 % loss (kpps)', short: 'UDP 1400 B <1% loss', scale: 1e-3, digits: 1, better: 'higher' },
  { key: 'udp64_pps', label: 'UDP 64 B delivered, max offered (kpps)', short: 'UDP 64 B', scale: 1e-3, digits: 1, better: 'higher' },
  { key: 'udp64_loss_pct', label: 'UDP 64 B loss, max offered (%)', short: 'UDP 64 B loss', scale: 1, digits: 1, better: 'lower' },
  { key: 'udp64_ok_pps', label: 'UDP 64 B highest rate < 1 % loss (kpps)', short: 'UDP 64 B <1% loss', scale: 1e-3, digits: 1, better: 'higher' },
  { key: 'ping_idle_avg_ms', label: 'ping idle avg (ms)', short: 'ping idle avg', scale: 1, digits: 3, better: 'lower' },
  { key: 'ping_idle_p99_ms', label: 'ping idle p99 (ms)', short: 'ping idle p99', scale: 1, digits: 3, better: 'lower' },
  { key: 'ping_load_avg_ms', label: 'ping under TCP load avg (ms)', short: 'ping load avg', scale: 1, digits: 3, better: 'lower' },
  { key: 'ping_load_p99_ms', label: 'ping under TCP load p99 (ms)', short: 'ping load p99', scale: 1, digits: 3, better: 'lower' },
  { key: 'cpu_s', label: 'CPU of tunnel processes (s)', short: 'CPU', scale: 1, digits: 1, better: 'lower' },
  { key: 'peak_rss_mb', label: 'peak RSS, larger end (MiB)', short: 'peak RSS', scale: 1, digits: 1, better: 'lower' },
];

/** A system's data path: bridged hosts in one subnet (L2) or routed hosts in two (L3). */
export type Layer = 'L2' | 'L3';

/** Details of one repetition beyond the metrics (kept in the JSON for a reader who doubts a median). */
export interface RunDetails {
  tcp1_retransmits: number | null;
  tcp4_retransmits: number | null;
  udp1400_offered_pps: number | null;
  udp64_offered_pps: number | null;
  /** Offered rate (pps) → loss % of each probe of the < 1 % loss search. */
  udp1400_search: { pps: number; delivered_pps: number; loss_pct: number }[];
  udp64_search: { pps: number; delivered_pps: number; loss_pct: number }[];
  /** Replies the RTT statistics are made of, and the share of pings without one (%). */
  ping_idle_replies: number | null;
  ping_idle_loss_pct: number | null;
  ping_load_replies: number | null;
  ping_load_loss_pct: number | null;
  /** CPU seconds of the tunnel processes during each test (null for kernel systems). */
  cpu_s_by_test: Record<string, number> | null;
  /** Tests that failed, with the tool's message. */
  errors: string[];
}

export interface RunRecord extends Metrics {
  /** 1-based repetition number. */
  rep: number;
  details: RunDetails;
}

export interface SystemResult extends Metrics {
  name: string;
  layer: Layer;
  /** True when the data path is the kernel's (no tunnel processes: CPU and memory are n.a.). */
  kernel: boolean;
  /** Why the system could not be measured (set-up failed, never became ready); null when it ran. */
  error: string | null;
  /** What a reader must know to compare it (e.g. "L3: hosts routed, not bridged"). */
  note: string | null;
  /** Per metric, the smallest and largest value over the repetitions. */
  spread: Partial<Record<MetricKey, [number, number]>>;
  /** The measured processes, as `label (pid N)`. */
  processes: string[];
  runs: RunRecord[];
}

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cpus: number;
  kernel: string;
  memoryMiB: number;
  node: string;
}

export interface BenchReport {
  /** ISO 8601 time the run started. */
  date: string;
  machine: MachineInfo;
  /** MTU of the WAN veth in bytes. */
  wanMtu: number;
  /** Seconds per test, repetitions, --quick, and the command line. */
  options: { durationS: number; reps: number; quick: boolean; command: string };
  systems: SystemResult[];
}

export function emptyMetrics(): Metrics {
  return Object.fromEntries(METRIC_KEYS.map((k) => [k, null])) as Metrics;
}

/**
 * Metrics summarized by their largest value instead of the median: a peak
 * read after each repetition only grows (VmHWM), so the last, largest reading
 * is the peak of the whole run.
 */
const PEAK_METRICS: ReadonlySet<MetricKey> = new Set(['peak_rss_mb']);

/** Medians (peaks: maxima) and min–max spread of the repetitions; a metric without values stays null. */
export function summarize(runs: readonly Metrics[]): { metrics: Metrics; spread: SystemResult['spread'] } {
  const metrics = emptyMetrics();
  const spread: SystemResult['spread'] = {};
  for (const k of METRIC_KEYS) {
    const xs = runs.map((r) => r[k]).filter((v): v is number => v !== null);
    metrics[k] = (PEAK_METRICS.has(k) ? range(xs)?.[1] : median(xs)) ?? null;
    const r = range(xs);
    if (r) spread[k] = r;
  }
  return { metrics, spread };
}

/** nea ÷ peer, or null when either is missing or the peer's value is 0. */
export function ratio(nea: number | null, peer: number | null): number | null {
  if (nea === null || peer === null || peer === 0) return null;
  return nea / peer;
}
