/**
 * The terminal report of `nea bench`: one table of medians (a row per metric,
 * a column per system, min–max spread in parentheses) and, when nea ran, a
 * table of ratios nea ÷ each peer. Pure: report in, text out.
 */
import { METRICS, ratio, type BenchReport, type MetricInfo, type SystemResult } from './metrics.js';

/** A value for display: scaled, fixed digits; null is "n.a.". */
export function formatValue(info: MetricInfo, v: number | null): string {
  return v === null ? 'n.a.' : (v * info.scale).toFixed(info.digits);
}

/** "median (min–max)", or just the median when the repetitions agree or there was one. */
export function formatCell(info: MetricInfo, s: SystemResult): string {
  if (s.error !== null) return 'failed';
  const v = s[info.key];
  const sp = s.spread[info.key];
  const m = formatValue(info, v);
  if (!sp || s.runs.length < 2) return m;
  const lo = formatValue(info, sp[0]);
  const hi = formatValue(info, sp[1]);
  return lo === hi ? m : `${m} (${lo}–${hi})`;
}

export function formatRatio(r: number | null): string {
  return r === null ? 'n.a.' : `${r.toFixed(2)}×`;
}

/** Columns separated by two spaces; the first left-aligned, the others right-aligned (cells are BMP text: one code unit, one column). */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((cell, c) => {
    const pad = widths[c]! - cell.length;
    return c === 0 ? cell + ' '.repeat(pad) : ' '.repeat(pad) + cell;
  }).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function label(info: MetricInfo): string {
  return `${info.label} ${info.better === 'higher' ? '↑' : '↓'}`;
}

/** The best peer value of a metric among `peers` (highest or lowest as the metric wants). */
export function bestOf(info: MetricInfo, peers: readonly SystemResult[]): number | null {
  const xs = peers.map((p) => p[info.key]).filter((v): v is number => v !== null);
  if (xs.length === 0) return null;
  return info.better === 'higher' ? Math.max(...xs) : Math.min(...xs);
}

/** The medians table: a row per metric, a column per system. */
export function renderMedians(systems: readonly SystemResult[]): string {
  const header = ['metric', ...systems.map((s) => (s.layer === 'L3' ? `${s.name} (L3)` : s.name))];
  return textTable(header, METRICS.map((m) => [label(m), ...systems.map((s) => formatCell(m, s))]));
}

/**
 * Ratios nea ÷ each peer that ran, plus nea ÷ the best userspace tunnel
 * (peers that are neither kernel data paths nor nea). Undefined when nea did
 * not run or failed, or no peer ran.
 */
export function renderRatios(systems: readonly SystemResult[]): string | undefined {
  const nea = systems.find((s) => s.name === 'nea' && s.error === null);
  const peers = systems.filter((s) => s.name !== 'nea' && s.error === null);
  if (!nea || peers.length === 0) return undefined;
  const tunnels = peers.filter((s) => !s.kernel);
  const header = ['metric (nea ÷ peer)', ...peers.map((p) => `nea/${p.name}`), ...(tunnels.length > 1 ? ['nea/best tunnel'] : [])];
  const rows = METRICS.map((m) => [
    label(m),
    ...peers.map((p) => formatRatio(ratio(nea[m.key], p[m.key]))),
    ...(tunnels.length > 1 ? [formatRatio(ratio(nea[m.key], bestOf(m, tunnels)))] : []),
  ]);
  return textTable(header, rows);
}

/** The whole terminal report: heading, medians, ratios, notes. */
export function renderReport(r: BenchReport): string {
  const { durationS, reps } = r.options;
  const out: string[] = [
    `nea bench, ${r.date}, ${r.machine.cpus} × ${r.machine.cpuModel}, kernel ${r.machine.kernel}`,
    `WAN MTU ${r.wanMtu}; ${durationS} s per test; ${reps} repetition${reps === 1 ? '' : 's'}` +
      (reps > 1 ? ' (median, min–max in parentheses)' : '') + '; ↑ higher is better, ↓ lower is better',
    '',
    renderMedians(r.systems),
  ];
  const ratios = renderRatios(r.systems);
  if (ratios !== undefined) out.push('', ratios);
  const notes: string[] = [];
  for (const s of r.systems) {
    if (s.error !== null) notes.push(`${s.name}: failed: ${s.error}`);
    else if (s.note !== null) notes.push(`${s.name}: ${s.note}`);
    for (const run of s.runs) for (const e of run.details.errors) notes.push(`${s.name}, repetition ${run.rep}: ${e}`);
  }
  const kernel = r.systems.filter((s) => s.kernel).map((s) => s.name);
  if (kernel.length > 0) notes.push(`${kernel.join(', ')}: kernel data path, no tunnel process: CPU and RSS n.a.`);
  if (notes.length > 0) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  return out.join('\n');
}
