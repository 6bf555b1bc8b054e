/**
 * The ctnetlink client on a real kernel, judged by /proc/net/nf_conntrack
 * (the kernel's own listing, independent of nea's parser).
 *
 *   [nt-<run>-ct]  lo: 127.0.0.1, ::1 — UDP, TCP and ICMP flows to itself
 *                  (an nftables output chain with a ct expression turns
 *                  connection tracking on in the namespace)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Conntrack, IPPROTO } from '../src/netconfig/conntrack.js';
import { Topology, waitFor, type Netns } from './harness.js';
import { conntrackLines } from './gateway-kit.js';

describe('ctnetlink client', () => {
  const topo = new Topology('conntrack');
  let ns: Netns;
  let ct: Conntrack;

  beforeAll(async () => {
    ns = await topo.netns('ct');
    await ns.exec('nft', ['add table inet t; add chain inet t out { type filter hook output priority 0; }; add rule inet t out ct state new counter']);
    // Flows: UDP v4 to two ports, UDP v6, ICMP echo, a TCP connection (listener + client kept open).
    await ns.exec('python3', ['-c', [
      'import socket',
      'for p in (5001, 5002): socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", p))',
      'socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x", ("::1", 5003))',
    ].join('\n')]);
    await ns.exec('ping', ['-c', '1', '127.0.0.1']);
    ct = Conntrack.open({ netns: ns.name });
  });

  afterAll(async () => {
    ct.close();
    await topo.cleanup();
    expect(topo.leftovers()).toEqual([]);
  });

  it('lists what the kernel lists', async () => {
    const entries = await ct.list();
    const proc = await conntrackLines(ns);
    expect(entries).toHaveLength(proc.length);
    expect(entries.map((e) => `${e.original.protocol}:${e.original.dstPort ?? e.original.icmp?.type}`).sort())
      .toEqual(['1:8', '17:5001', '17:5002', '17:5003'].sort());
    expect(await ct.list({ family: 6 })).toHaveLength(1);
  });

  it('deletes exactly the matching entries: by port, by family, ICMP by its tuple', async () => {
    expect(await ct.deleteMatching([{ protocol: IPPROTO.udp, original: { dstPort: 5001 } }])).toBe(1);
    // The kernel may list an entry a moment longer while it dies: the listing must drop it within a second.
    let proc = await waitFor('the deleted entry gone from the kernel\'s listing', async () => {
      const lines = await conntrackLines(ns);
      return lines.some((l) => l.includes('dport=5001')) ? undefined : lines;
    }, { timeoutMs: 1000 });
    expect(proc.some((l) => l.includes('dport=5001'))).toBe(false);
    expect(proc.some((l) => l.includes('dport=5002'))).toBe(true);
    expect(await ct.deleteMatching([{ family: 6 }])).toBe(1);
    expect(await ct.deleteMatching([{ protocol: IPPROTO.icmp }])).toBe(1);
    proc = await conntrackLines(ns);
    expect(proc).toHaveLength(1);
    expect(proc[0]).toContain('dport=5002');
    // Deleting what is gone is not an error; no filter deletes nothing.
    const [left] = await ct.list();
    expect(await ct.delete(left!)).toBe(true);
    expect(await ct.delete(left!)).toBe(false);
    expect(await ct.deleteMatching([])).toBe(0);
    expect(await conntrackLines(ns)).toEqual([]);
  });

  it('a namespace that does not exist is a clear error', () => {
    expect(() => Conntrack.open({ netns: `${ns.name}-nope` })).toThrow(/nope/);
  });
});
