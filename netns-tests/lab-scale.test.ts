/**
 * `nea lab up --tenants 20` on this machine: every tenant with its own SP
 * appliance and tenant appliance, all paired through one control plane;
 * `nea lab test` passes (20 × 22 checks), a full failover of one tenant and
 * a partial one of another keep every other tenant as it was; `nea lab
 * down` leaves nothing. Prints the time to build and the memory the lab's
 * processes use (a report, not an assertion). NEA_LAB_SCALE_TENANTS
 * changes the size.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TenantMatrix } from '../src/lab/lab.js';
import { ProcTable } from '../src/lab/procs.js';
import { listNetns, run, Topology, type ExecResult } from './harness.js';
import { NEA } from './segments-world.js';

const TENANTS = Number(process.env.NEA_LAB_SCALE_TENANTS ?? '20');

/** Resident (RSS) and proportional (PSS: shared pages divided among their users) memory of a pid in KiB; 0 when gone. */
function memKiB(pid: number): { rss: number; pss: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { rss: Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0), pss: Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0) };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

describe(`nea lab at scale: ${TENANTS} tenants`, { timeout: 600_000 }, () => {
  let topo: Topology;
  let prefix: string;
  let stateDir: string;
  const lab = (args: string[]): Promise<ExecResult> =>
    run(process.execPath, [NEA, 'lab', ...args, '--prefix', prefix, '--state-dir', stateDir], { allowFail: true, timeoutMs: 590_000 });
  const bad = (m: TenantMatrix[]): string[] => m.flatMap((x) => x.rows.flatMap((r) => r.cells.filter((c) => !c.ok).map((c) => `${x.tenant}: ${c.from} -> ${c.to}: want ${c.expected ?? '-'} saw ${c.seen ?? '-'}`)));

  beforeAll(() => {
    topo = new Topology('lab-scale');
    prefix = topo.nsName('lab');
    stateDir = join(topo.workdir, 'lab');
  });

  afterAll(async () => {
    await lab(['down']);
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it(`nea lab up --tenants ${TENANTS} completes; nea lab test passes`, async () => {
    const t0 = Date.now();
    const up = await lab(['up', '--tenants', String(TENANTS)]);
    const seconds = (Date.now() - t0) / 1000;
    expect(up.code, up.stdout.split('\n').filter((l) => l.includes('✗')).join('\n') + up.stderr).toBe(0);
    const procs = new ProcTable(stateDir).list();
    const mem = procs.map((p) => memKiB(p.pid)).reduce((a, b) => ({ rss: a.rss + b.rss, pss: a.pss + b.pss }), { rss: 0, pss: 0 });
    console.log(`lab of ${TENANTS} tenants: up in ${seconds.toFixed(1)} s; ${procs.length} processes, ${(mem.pss / 1024).toFixed(0)} MiB proportional (${(mem.rss / 1024).toFixed(0)} MiB resident, shared pages counted in each); ${listNetns().filter((n) => n.startsWith(`${prefix}-`)).length} namespaces`);
    const r = await lab(['test', '--json']);
    const m = JSON.parse(r.stdout) as TenantMatrix[];
    expect(bad(m)).toEqual([]);
    expect(r.code).toBe(0);
    expect(m.flatMap((x) => x.rows.flatMap((row) => row.cells)).length).toBe(TENANTS * 22);
  });

  it('a full failover of the last tenant and a partial one of the first leave the others as they were', async () => {
    const last = `tenant${TENANTS}`;
    expect((await lab(['failover', '--tenant', TENANTS > 8 ? last : 'globex', '--full'])).code).toBe(0);
    expect((await lab(['failover', '--tenant', 'acme', '--vm', 'db2'])).code).toBe(0);
    const r = await lab(['test', '--json']);
    const m = JSON.parse(r.stdout) as TenantMatrix[];
    expect(bad(m)).toEqual([]);
    expect(m.filter((x) => x.failover !== 'none').map((x) => `${x.tenant}:${x.failover}`).sort()).toEqual(['acme:partial', `${TENANTS > 8 ? last : 'globex'}:full`].sort());
  });

  it('nea lab down leaves nothing', async () => {
    expect((await lab(['down'])).code).toBe(0);
    expect(listNetns().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  });
});
