/**
 * `nea bench`: nea against the L2 tunnels people run today, side by side on
 * one namespace topology (src/bench/, docs/bench.md).
 */
import { writeFileSync } from 'node:fs';
import { renderReport } from '../bench/report.js';
import { runBench } from '../bench/run.js';
import { renderSvg, svgPath } from '../bench/svg.js';
import { SYSTEMS } from '../bench/systems.js';
import { parse } from './appliance.js';
import { register, UsageError } from './main.js';

/** Seconds per test, and repetitions, of a full run and of `--quick`. */
const FULL = { durationS: 10, reps: 2 };
const QUICK = { durationS: 2, reps: 1 };

function positiveInt(v: unknown, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max}`);
  return n;
}

register({
  path: ['bench'],
  summary: 'benchmark nea against direct, vxlan, openvpn, tinc and wireguard-go (root)',
  usage: `nea bench [--systems ${SYSTEMS.map((s) => s.name).join(',')}] [--quick] [--duration S] [--reps N] [--wan-mtu BYTES] [--json FILE] [--svg FILE]\n` +
    `  --quick      smoke run: ${QUICK.durationS} s tests, ${QUICK.reps} repetition (about 15 s per system)\n` +
    `  --duration   seconds per test (default ${FULL.durationS}; ${QUICK.durationS} with --quick)\n` +
    `  --reps       repetitions, medians reported (default ${FULL.reps}; ${QUICK.reps} with --quick)\n` +
    '  --wan-mtu    MTU of the WAN link (default 1500)\n' +
    '  --json       write the results as JSON; the chart goes next to it (FILE.svg) unless --svg says where',
  async run(args) {
    const v = parse(args, {
      systems: { type: 'string' }, quick: { type: 'boolean' }, duration: { type: 'string' }, reps: { type: 'string' },
      'wan-mtu': { type: 'string' }, json: { type: 'string' }, svg: { type: 'string' },
    });
    const quick = v.quick === true;
    const names = typeof v.systems === 'string' ? v.systems.split(',').map((s) => s.trim()).filter((s) => s !== '') : SYSTEMS.map((s) => s.name);
    const unknown = names.filter((n) => !SYSTEMS.some((s) => s.name === n));
    if (unknown.length > 0) throw new UsageError(`unknown system ${unknown.join(', ')} (known: ${SYSTEMS.map((s) => s.name).join(', ')})`);
    if (names.length === 0) throw new UsageError('--systems names no system');
    if (new Set(names).size !== names.length) throw new UsageError('--systems names a system twice');
    const defaults = quick ? QUICK : FULL;
    const durationS = positiveInt(v.duration, '--duration', 1, 3600) ?? defaults.durationS;
    const reps = positiveInt(v.reps, '--reps', 1, 100) ?? defaults.reps;
    const wanMtu = positiveInt(v['wan-mtu'], '--wan-mtu', 1280, 9000) ?? 1500;
    const json = typeof v.json === 'string' ? v.json : undefined;
    const svg = svgPath(json, typeof v.svg === 'string' ? v.svg : undefined);

    const report = await runBench({ systems: names, durationS, reps, quick, wanMtu, command: ['nea', 'bench', ...args].join(' ') });
    console.log(renderReport(report));
    if (json !== undefined) {
      writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
      console.log(`\nresults: ${json}`);
    }
    if (svg !== undefined) {
      writeFileSync(svg, renderSvg(report));
      console.log(`${json === undefined ? '\n' : ''}chart: ${svg}`);
    }
    return report.systems.some((s) => s.error !== null) ? 1 : 0;
  },
});
