import { describe, expect, it } from 'vitest';
import { METRICS, METRIC_KEYS, ratio, summarize } from './metrics.js';
import { bestOf, formatCell, renderMedians, renderRatios, renderReport, textTable } from './report.js';
import { report, system } from './testkit.js';

const info = (k: string): (typeof METRICS)[number] => METRICS.find((m) => m.key === k)!;

describe('summarize', () => {
  it('gives the median and min–max of each metric over the repetitions, null when never measured', () => {
    const runs = [
      { ...system('x', { tcp1_mbps: 900, ping_idle_p99_ms: 0.5 }) },
      { ...system('x', { tcp1_mbps: 1000, ping_idle_p99_ms: null }) },
      { ...system('x', { tcp1_mbps: 1300, ping_idle_p99_ms: 0.7 }) },
    ];
    const { metrics, spread } = summarize(runs);
    expect(metrics.tcp1_mbps).toBe(1000);
    expect(spread.tcp1_mbps).toEqual([900, 1300]);
    expect(metrics.ping_idle_p99_ms).toBeCloseTo(0.6);
    expect(metrics.cpu_s).toBeNull();
    expect(spread.cpu_s).toBeUndefined();
  });

  it('reports the peak RSS of the whole run, not a median of readings', () => {
    const { metrics } = summarize([system('x', { peak_rss_mb: 116.5 }), system('x', { peak_rss_mb: 130.8 })]);
    expect(metrics.peak_rss_mb).toBe(130.8);
  });

  it('knows every metric key once', () => {
    expect(new Set(METRIC_KEYS).size).toBe(METRIC_KEYS.length);
    expect(METRICS.map((m) => m.key)).toEqual([...METRIC_KEYS]);
  });
});

describe('ratio', () => {
  it.each([[10, 5, 2], [null, 5, null], [10, null, null], [10, 0, null]] as const)('%s / %s', (a, b, want) => {
    expect(ratio(a, b)).toBe(want);
  });
});

describe('textTable', () => {
  it('left-aligns the first column and right-aligns the others', () => {
    expect(textTable(['metric', 'a', 'bb'], [['x', '1', '22'], ['long name', '333', '4']])).toBe([
      'metric       a  bb',
      '---------  ---  --',
      'x            1  22',
      'long name  333   4',
    ].join('\n'));
  });
});

describe('formatCell', () => {
  it('shows the spread in parentheses when repetitions differ', () => {
    const s = system('openvpn', { tcp1_mbps: 812.4 }, { spread: { tcp1_mbps: [790.2, 845.9] } });
    s.runs.push({ ...s.runs[0]!, rep: 2 });
    expect(formatCell(info('tcp1_mbps'), s)).toBe('812 (790–846)');
  });

  it('scales packet rates to kpps and prints n.a. and failed', () => {
    expect(formatCell(info('udp64_pps'), system('x', { udp64_pps: 84_250 }))).toBe('84.3');
    expect(formatCell(info('cpu_s'), system('direct', {}, { kernel: true }))).toBe('n.a.');
    expect(formatCell(info('tcp1_mbps'), system('nea', {}, { error: 'boom' }))).toBe('failed');
  });
});

describe('renderMedians', () => {
  it('has a row per metric and a column per system, L3 systems marked', () => {
    const t = renderMedians([system('direct', { tcp1_mbps: 31000 }, { kernel: true }), system('wireguard-go', { tcp1_mbps: 800 }, { layer: 'L3' })]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^metric\s+direct\s+wireguard-go \(L3\)$/);
    expect(lines).toHaveLength(2 + METRICS.length);
    expect(t).toMatch(/TCP 1 stream \(Mbit\/s\) ↑\s+31000\s+800/);
    expect(t).toMatch(/ping idle p99 \(ms\) ↓/);
  });
});

describe('renderRatios', () => {
  const peers = [
    system('direct', { tcp1_mbps: 30000, cpu_s: null }, { kernel: true }),
    system('openvpn', { tcp1_mbps: 800, ping_load_p99_ms: 40, cpu_s: 10 }),
    system('tinc', { tcp1_mbps: 600, ping_load_p99_ms: 12, cpu_s: 8 }),
  ];

  it('divides nea by each peer and by the best userspace tunnel (direction-aware)', () => {
    const nea = system('nea', { tcp1_mbps: 1600, ping_load_p99_ms: 6, cpu_s: 4 });
    const t = renderRatios([...peers, nea])!;
    expect(t.split('\n')[0]).toMatch(/nea\/direct\s+nea\/openvpn\s+nea\/tinc\s+nea\/best tunnel$/);
    expect(t).toMatch(/TCP 1 stream \(Mbit\/s\) ↑\s+0\.05×\s+2\.00×\s+2\.67×\s+2\.00×/);
    // Latency: the best tunnel is the lowest (tinc, 12 ms).
    expect(t).toMatch(/ping under TCP load p99 \(ms\) ↓\s+n\.a\.\s+0\.15×\s+0\.50×\s+0\.50×/);
    expect(t).toMatch(/CPU of tunnel processes \(s\) ↓\s+n\.a\.\s+0\.40×\s+0\.50×\s+0\.50×/);
  });

  it('is absent when nea failed or did not run, and leaves out failed peers', () => {
    expect(renderRatios(peers)).toBeUndefined();
    expect(renderRatios([...peers, system('nea', {}, { error: 'appliance exited' })])).toBeUndefined();
    const t = renderRatios([system('nea', { tcp1_mbps: 1 }), system('openvpn', {}, { error: 'x' }), system('tinc', { tcp1_mbps: 2 })])!;
    expect(t).not.toContain('openvpn');
    expect(t).not.toContain('best tunnel');
  });

  it('bestOf ignores missing values', () => {
    expect(bestOf(info('tcp1_mbps'), [system('a', { tcp1_mbps: null }), system('b', { tcp1_mbps: 5 })])).toBe(5);
    expect(bestOf(info('tcp1_mbps'), [system('a', {})])).toBeNull();
  });
});

describe('renderReport', () => {
  it('heads the tables with the run\'s conditions and lists failures and notes', () => {
    const text = renderReport(report([
      system('direct', { tcp1_mbps: 30000 }, { kernel: true, note: 'the machine\'s limit' }),
      system('nea', {}, { error: 'nea a1 exited with code 1: tunnel: unknown field' }),
    ]));
    expect(text).toContain('WAN MTU 1500; 10 s per test; 2 repetitions (median, min–max in parentheses)');
    expect(text).toContain('nea: failed: nea a1 exited with code 1: tunnel: unknown field');
    expect(text).toContain('direct: the machine\'s limit');
    expect(text).toContain('direct: kernel data path');
    expect(text).not.toContain('nea ÷ peer');
  });
});
