/**
 * A self-made SVG chart of a bench report: one panel of horizontal grouped
 * bars per theme (TCP throughput, UDP packet rate, latency), a group per
 * system, a bar per metric. Pure: report in, SVG text out.
 *
 * Scale: linear from 0. When a kernel reference (direct, vxlan) is more than
 * 3× the best tunnel, the axis stops at the tunnels' range so their bars stay
 * comparable; the off-scale bar is drawn to the edge with a break mark and its
 * value printed.
 */
import { METRICS, type BenchReport, type MetricKey, type SystemResult } from './metrics.js';

interface Panel {
  title: string;
  series: MetricKey[];
}

export const PANELS: readonly Panel[] = [
  { title: 'TCP throughput (Mbit/s, higher is better)', series: ['tcp1_mbps', 'tcp4_mbps'] },
  { title: 'UDP delivered at the highest offered rate (kpps, higher is better)', series: ['udp1400_pps', 'udp64_pps'] },
  { title: 'ping round-trip time (ms, lower is better)', series: ['ping_idle_avg_ms', 'ping_idle_p99_ms', 'ping_load_avg_ms', 'ping_load_p99_ms'] },
];

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759'];
const WIDTH = 900;
const LABEL_W = 150;
const VALUE_W = 110;
const PLOT_W = WIDTH - LABEL_W - VALUE_W;
const BAR_H = 12;
const BAR_GAP = 2;
const GROUP_GAP = 12;
const TITLE_H = 46;
const AXIS_H = 22;
const PANEL_GAP = 18;
/** A kernel reference more than this many times the best tunnel goes off scale. */
const OFF_SCALE_FACTOR = 3;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A round tick step (1, 2 or 5 × 10^k) giving about `n` ticks up to `max`. */
export function tickStep(max: number, n = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

function info(key: MetricKey): (typeof METRICS)[number] {
  return METRICS.find((m) => m.key === key)!;
}

function fmt(key: MetricKey, v: number): string {
  const m = info(key);
  const x = v * m.scale;
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** The axis maximum (in display units) of a panel. */
export function axisMax(systems: readonly SystemResult[], series: readonly MetricKey[]): number {
  const vals = (pred: (s: SystemResult) => boolean): number[] => systems.filter((s) => s.error === null && pred(s))
    .flatMap((s) => series.map((k) => (s[k] ?? 0) * info(k).scale));
  const all = Math.max(0, ...vals(() => true));
  const tunnels = Math.max(0, ...vals((s) => !s.kernel));
  if (tunnels > 0 && all > OFF_SCALE_FACTOR * tunnels) return tunnels * 1.15;
  return all > 0 ? all * 1.05 : 1;
}

function renderPanel(systems: readonly SystemResult[], p: Panel, top: number): { svg: string[]; height: number } {
  const out: string[] = [];
  const max = axisMax(systems, p.series);
  const groupH = p.series.length * (BAR_H + BAR_GAP) - BAR_GAP;
  const plotTop = top + TITLE_H;
  const plotH = systems.length * (groupH + GROUP_GAP);
  out.push(`<text x="10" y="${top + 18}" class="title">${escapeXml(p.title)}</text>`);
  // Legend.
  let lx = LABEL_W;
  p.series.forEach((k, i) => {
    out.push(`<rect x="${lx}" y="${top + 26}" width="10" height="10" fill="${COLORS[i % COLORS.length]!}"/>`);
    out.push(`<text x="${lx + 14}" y="${top + 35}" class="legend">${escapeXml(info(k).short)}</text>`);
    lx += 24 + info(k).short.length * 6.5;
  });
  // Grid and ticks.
  const step = tickStep(max);
  for (let t = 0; t <= max + 1e-9; t += step) {
    const x = LABEL_W + (t / max) * PLOT_W;
    out.push(`<line x1="${x.toFixed(1)}" y1="${plotTop - 4}" x2="${x.toFixed(1)}" y2="${plotTop + plotH}" class="grid"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${plotTop + plotH + 14}" class="tick">${escapeXml(Number(t.toPrecision(6)).toString())}</text>`);
  }
  systems.forEach((s, g) => {
    const gy = plotTop + g * (groupH + GROUP_GAP);
    const name = s.layer === 'L3' ? `${s.name} (L3)` : s.name;
    out.push(`<text x="${LABEL_W - 8}" y="${gy + groupH / 2 + 4}" class="sys">${escapeXml(name)}</text>`);
    if (s.error !== null) {
      out.push(`<text x="${LABEL_W + 6}" y="${gy + groupH / 2 + 4}" class="failed">failed</text>`);
      return;
    }
    p.series.forEach((k, i) => {
      const y = gy + i * (BAR_H + BAR_GAP);
      const v = s[k];
      if (v === null) {
        out.push(`<text x="${LABEL_W + 4}" y="${y + BAR_H - 2}" class="value">n.a.</text>`);
        return;
      }
      const d = v * info(k).scale;
      const off = d > max;
      const w = Math.max(0.5, (Math.min(d, max) / max) * PLOT_W);
      out.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[i % COLORS.length]!}"><title>${escapeXml(`${name} ${info(k).short}: ${fmt(k, v)}`)}</title></rect>`);
      if (off) {
        const bx = LABEL_W + w - 14;
        out.push(`<path d="M${bx} ${y + BAR_H + 1} l6 ${-BAR_H - 2} M${bx + 5} ${y + BAR_H + 1} l6 ${-BAR_H - 2}" class="break"/>`);
      }
      out.push(`<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${y + BAR_H - 2}" class="value">${escapeXml(fmt(k, v) + (off ? ' (off scale)' : ''))}</text>`);
    });
  });
  return { svg: out, height: TITLE_H + plotH + AXIS_H };
}

/** The chart as a standalone SVG document. */
export function renderSvg(r: BenchReport): string {
  const body: string[] = [];
  let y = 40;
  for (const p of PANELS) {
    const { svg, height } = renderPanel(r.systems, p, y);
    body.push(...svg);
    y += height + PANEL_GAP;
  }
  const height = Math.ceil(y);
  const sub = `${r.date.slice(0, 10)}, WAN MTU ${r.wanMtu}, ${r.options.durationS} s per test, median of ${r.options.reps}, ${r.machine.cpus} × ${r.machine.cpuModel}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.sub{font-size:11px;fill:#555}.legend,.tick,.value{font-size:11px}' +
      '.tick{text-anchor:middle;fill:#555}.sys{font-size:12px;text-anchor:end}.failed{font-size:12px;fill:#c00}' +
      '.grid{stroke:#ddd;stroke-width:1}.break{stroke:#fff;stroke-width:2}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="18" class="title">nea bench</text>`,
    `<text x="10" y="32" class="sub">${escapeXml(sub)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Where the chart goes: `--svg`, else beside `--json` (FILE.json → FILE.svg), else nowhere. */
export function svgPath(json: string | undefined, svg: string | undefined): string | undefined {
  if (svg !== undefined) return svg;
  if (json === undefined) return undefined;
  return json.endsWith('.json') ? `${json.slice(0, -5)}.svg` : `${json}.svg`;
}
