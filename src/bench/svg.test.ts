import { describe, expect, it } from 'vitest';
import { PANELS, axisMax, escapeXml, renderSvg, svgPath, tickStep } from './svg.js';
import { report, system } from './testkit.js';

const rects = (svg: string): number => (svg.match(/<rect [^>]*fill="#(?!fff")/g) ?? []).length;

describe('renderSvg', () => {
  const systems = [
    system('direct', { tcp1_mbps: 31000, tcp4_mbps: 32000, udp1400_pps: 90000, udp64_pps: 90000, ping_idle_avg_ms: 0.05, ping_idle_p99_ms: 0.1, ping_load_avg_ms: 0.05, ping_load_p99_ms: 0.1 }, { kernel: true }),
    system('openvpn', { tcp1_mbps: 800, tcp4_mbps: 850, udp1400_pps: 30000, udp64_pps: 30000, ping_idle_avg_ms: 0.3, ping_idle_p99_ms: 1, ping_load_avg_ms: 19, ping_load_p99_ms: 46 }),
    system('wireguard-go', { tcp1_mbps: 500, tcp4_mbps: 300, udp1400_pps: 20000, udp64_pps: 25000, ping_idle_avg_ms: 0.8, ping_idle_p99_ms: 6, ping_load_avg_ms: 3, ping_load_p99_ms: 8 }, { layer: 'L3' }),
    system('nea', {}, { error: 'did not start' }),
  ];
  const svg = renderSvg(report(systems));

  it('is one SVG document with a bar per measured value and a legend swatch per series', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    const series = PANELS.reduce((n, p) => n + p.series.length, 0);
    // 3 measured systems × all series, plus one legend swatch per series.
    expect(rects(svg)).toBe(3 * series + series);
  });

  it('names each system once per panel, marks L3 and failures', () => {
    expect(svg.match(/>openvpn</g)).toHaveLength(PANELS.length);
    expect(svg).toContain('>wireguard-go (L3)<');
    expect(svg.match(/class="failed">failed</g)).toHaveLength(PANELS.length);
  });

  it('keeps tunnels readable when a kernel reference is far ahead: its bar goes off scale', () => {
    expect(axisMax(systems, ['tcp1_mbps', 'tcp4_mbps'])).toBeCloseTo(850 * 1.15);
    expect(svg).toContain('31000 (off scale)');
    expect(svg).toContain('class="break"');
    // Latency: the kernel values are the small ones, nothing is off scale.
    expect(axisMax(systems, ['ping_load_p99_ms'])).toBeCloseTo(46 * 1.05);
  });

  it('escapes text', () => {
    expect(escapeXml('a<b & "c"')).toBe('a&lt;b &amp; &quot;c&quot;');
    const odd = renderSvg(report([system('x<y>', { tcp1_mbps: 1 })]));
    expect(odd).toContain('x&lt;y&gt;');
    expect(odd).not.toContain('x<y>');
  });
});

describe('tickStep', () => {
  it.each([[1000, 200], [977.5, 200], [48.3, 10], [0.21, 0.05], [0, 1]])('max %s → step %s', (max, step) => {
    expect(tickStep(max)).toBeCloseTo(step, 10);
  });
});

describe('svgPath', () => {
  it.each([
    [undefined, undefined, undefined],
    ['out/r.json', undefined, 'out/r.svg'],
    ['out/r', undefined, 'out/r.svg'],
    ['out/r.json', 'chart.svg', 'chart.svg'],
    [undefined, 'chart.svg', 'chart.svg'],
  ])('--json %s --svg %s → %s', (json, svg, want) => {
    expect(svgPath(json, svg)).toBe(want);
  });
});
