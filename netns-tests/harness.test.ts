/**
 * The harness itself: what every scenario relies on.
 *
 *   [nt-<run>-a] a0 ──veth── b0 [nt-<run>-b]
 *    10.99.0.1/24           10.99.0.2/24
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetns, run, sweepStaleNamespaces, Topology, waitFor, type Netns } from './harness.js';

describe('netns harness', () => {
  let topo: Topology;
  let a: Netns;
  let b: Netns;

  beforeAll(async () => {
    topo = new Topology('harness');
    a = await topo.netns('a');
    b = await topo.netns('b');
    await topo.veth(a, 'a0', b, 'b0');
    await a.ip('addr', 'add', '10.99.0.1/24', 'dev', 'a0');
    await b.ip('addr', 'add', '10.99.0.2/24', 'dev', 'b0');
  });

  afterAll(async () => {
    await topo.cleanup();
  });

  it('names carry the run id and stay inside the run', async () => {
    expect(a.name).toContain(topo.runId);
    expect(listNetns()).toEqual(expect.arrayContaining([a.name, b.name]));
    expect(await a.links()).toEqual(expect.arrayContaining(['lo', 'a0']));
  });

  it('hosts in two namespaces reach each other, and a capture sees it', async () => {
    const cap = await b.capture('b0', ['icmp']);
    await a.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.99.0.2']);
    await waitFor('two echo requests in the capture', async () =>
      (await cap.lines()).filter((l) => l.includes('ICMP echo request')).length === 2);
    await cap.stop();
  });

  it('a spawned process is stopped by its pid', async () => {
    const p = b.spawn('sleep', ['600']);
    expect(p.running).toBe(true);
    const code = await p.stop();
    expect(p.running).toBe(false);
    expect(code).not.toBe(0);
  });

  it('waitFor fails with what it waited for once the deadline passes', async () => {
    await expect(waitFor('the impossible', () => false, { timeoutMs: 100 })).rejects.toThrow(/timed out after 100 ms waiting for the impossible/);
  });

  it('a namespace left by a dead run is swept; a live run is not touched', async () => {
    // A pid that certainly is not alive: a child that has already exited.
    const child = spawn('true');
    const deadPid = await new Promise<number>((r) => child.on('exit', () => { r(child.pid!); }));
    const stale = `nt-${deadPid.toString(36)}_1-stale`;
    await run('ip', ['netns', 'add', stale]);
    const removed = sweepStaleNamespaces();
    expect(removed).toContain(stale);
    expect(removed).not.toContain(a.name);
    expect(listNetns()).not.toContain(stale);
    expect(listNetns()).toContain(a.name);
  });

  it('cleanup leaves nothing of the run behind', async () => {
    const t = new Topology('harness-cleanup');
    const x = await t.netns('x');
    const y = await t.netns('y');
    await t.veth(x, 'x0', y, 'y0');
    x.spawn('sleep', ['600']);
    await x.capture('x0');
    expect(t.leftovers().length).toBeGreaterThan(0);
    await t.cleanup();
    expect(t.leftovers()).toEqual([]);
  });
});
