/**
 * `nea bench --quick --systems direct,nea` as a smoke test: the whole bench
 * (topology, both systems, every measurement, table, JSON, chart)
 * runs and reports numbers. No timing is asserted: the machine is shared.
 *
 *   nb-<id>-h1 ── host [direct: br0 | nea: two appliances] wan ── wan [...] host ── nb-<id>-h2
 *   iperf3 -c, ping                                                              iperf3 -s
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from './harness.js';

const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));

interface SystemResult {
  name: string;
  error: string | null;
  tcp1_mbps: number | null;
  tcp4_mbps: number | null;
  udp64_pps: number | null;
  ping_idle_avg_ms: number | null;
  ping_load_p99_ms: number | null;
  cpu_s: number | null;
  peak_rss_mb: number | null;
}

describe('nea bench --quick over direct and nea', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nt-bench-'));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('measures both systems, writes the table, the JSON and the chart', async () => {
    const json = join(dir, 'quick.json');
    const r = await run(process.execPath, [NEA, 'bench', '--quick', '--systems', 'direct,nea', '--json', json], { timeoutMs: 300_000 });
    expect(r.stdout).toMatch(/TCP 1 stream \(Mbit\/s\)/);
    expect(r.stdout).toMatch(/nea\/direct/);
    const res = JSON.parse(readFileSync(json, 'utf8')) as { systems: SystemResult[]; options: { quick: boolean } };
    expect(res.options.quick).toBe(true);
    expect(res.systems.map((s) => s.name)).toEqual(['direct', 'nea']);
    for (const s of res.systems) {
      expect(s.error, s.name).toBeNull();
      for (const k of ['tcp1_mbps', 'tcp4_mbps', 'udp64_pps', 'ping_idle_avg_ms'] as const) expect(s[k], `${s.name} ${k}`).toBeGreaterThan(0);
    }
    const nea = res.systems[1]!;
    expect(nea.cpu_s).toBeGreaterThan(0);
    expect(nea.peak_rss_mb).toBeGreaterThan(0);
    expect(readFileSync(join(dir, 'quick.svg'), 'utf8')).toMatch(/^<svg/);
  }, 360_000);
});
