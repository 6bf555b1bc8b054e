/**
 * Tenant isolation you can prove: two tenants with the same subnets, gateway
 * addresses, host MACs and segment ids, each with its own tenant appliance
 * and SP appliance, the SP appliances on ONE shared trunk fabric. The world
 * and its diagram are in segments-world.ts.
 *
 * Within a tenant every host pair reaches each other (ARP, ping, TCP,
 * broadcast; web ⇄ db through the production gateway); across tenants no
 * pair does; web and db stay apart at L2; captures (tcpdump -e, the
 * independent oracle) show each tenant's frames only with its own VLAN ids
 * on every trunk, and never on the other tenant's hosts.
 *
 * Run for each VLAN implementation: user space (always), kernel 802.1Q
 * devices (where the kernel has them; this one does not).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Capture } from './harness.js';
import {
  CLOUD_VLANS, GW, HOSTS, HOST_PLAN, SITE_VLANS, TENANTS, World, broadcast, identity, kernelHasVlanDevices, ping, readCapture,
  type HostRole, type Tenant,
} from './segments-world.js';

const kernelVlans = await kernelHasVlanDevices();

/** Every address of a tenant's hosts, and who answers it. */
const TARGETS: { ip: string; host: HostRole }[] = [
  { ip: HOST_PLAN.sweb.ip, host: 'sweb' }, { ip: HOST_PLAN.cweb.ip, host: 'cweb' },
  { ip: HOST_PLAN.sdb.ip, host: 'sdb' }, { ip: HOST_PLAN.cdb.ip, host: 'cdb' },
  { ip: GW.web.ip, host: 'gw' }, { ip: GW.db.ip, host: 'gw' },
];
/** ICMP fill pattern per tenant: identifies a tenant's frames in captures, whatever their addresses. */
const PATTERN: Record<Tenant, string> = { a: 'a1a1a1a1a1a1a1a1', b: 'b2b2b2b2b2b2b2b2' };
/** Broadcast payloads are `bc-<nonce>-<tenant>-<host>`: they identify a tenant's frames too. */
const nonce = Date.now().toString(36);
const bcastHex = (t: Tenant): string => Buffer.from(`bc-${nonce}-${t}-`).toString('hex');

async function limit<T>(n: number, jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < jobs.length) { const i = next++; out[i] = await jobs[i]!(); }
  }));
  return out;
}

for (const mode of ['userspace', 'kernel'] as const) {
  describe.skipIf(mode === 'kernel' && !kernelVlans)(`two tenants, identical addressing, one SP trunk fabric (${mode} VLANs)`, () => {
    const world = new World(`iso-${mode}`, { vlanDevices: mode });
    const caps = new Map<string, Capture>();

    beforeAll(async () => {
      await world.build();
      for (const t of TENANTS) for (const r of ['ta', 'sp'] as const) expect(world.status(t, r)?.vlanDevices).toBe(mode);
      // Captures on every trunk and on every host, running through all the tests below.
      for (const t of TENANTS) {
        for (const r of ['ta', 'sp'] as const) caps.set(`${t}-${r}-trunk`, await world.appliance(t, r).ns.capture('trunk0'));
        for (const h of HOSTS) {
          const ns = world.host(t, h);
          caps.set(`${t}-${h}`, await ns.capture(h === 'gw' ? 'any' : 'eth0'));
        }
      }
      await world.waitForTunnels();
    }, 120_000);

    afterAll(async () => {
      expect(await world.cleanup()).toEqual([]);
    });

    it('within each tenant every host reaches every address (ping, TCP) and the answer comes from its own tenant', async () => {
      const jobs = TENANTS.flatMap((t) => HOSTS.flatMap((from) => TARGETS.filter((x) => x.host !== from).map((x) => async () => {
        const src = world.host(t, from);
        const p = await ping(src, x.ip, ['-c', '2', '-p', PATTERN[t]]);
        const who = await identity(src, x.ip);
        return `${t}/${from} -> ${x.ip}: ping ${p.code === 0 ? 'ok' : 'FAILED'}, tcp ${who || 'none'}`;
      })));
      const got = await limit(8, jobs);
      const want = TENANTS.flatMap((t) => HOSTS.flatMap((from) => TARGETS.filter((x) => x.host !== from)
        .map((x) => `${t}/${from} -> ${x.ip}: ping ok, tcp ${t}/${x.host}`)));
      expect(got).toEqual(want);
    });

    it('ARP resolved every same-segment neighbour to the right MAC (the same MACs in both tenants)', async () => {
      for (const t of TENANTS) {
        const neigh = (await world.host(t, 'sweb').ip('-j', 'neigh', 'show', 'dev', 'eth0')).stdout;
        const entries = JSON.parse(neigh) as { dst: string; lladdr?: string }[];
        expect(entries.find((e) => e.dst === HOST_PLAN.cweb.ip)?.lladdr).toBe(HOST_PLAN.cweb.mac);
        expect(entries.find((e) => e.dst === GW.web.ip)?.lladdr).toBe(GW.web.mac);
        const cdb = JSON.parse((await world.host(t, 'cdb').ip('-j', 'neigh', 'show', 'dev', 'eth0')).stdout) as { dst: string; lladdr?: string }[];
        expect(cdb.find((e) => e.dst === HOST_PLAN.sdb.ip)?.lladdr).toBe(HOST_PLAN.sdb.mac);
      }
    });

    it('broadcasts reach exactly the hosts of their tenant and segment', async () => {
      const senders: [Tenant, Exclude<HostRole, 'gw'>][] = TENANTS.flatMap((t) => (['sweb', 'cweb', 'sdb', 'cdb'] as const).map((h): [Tenant, Exclude<HostRole, 'gw'>] => [t, h]));
      await Promise.all(senders.map(([t, h]) => broadcast(world.host(t, h), HOST_PLAN[h].segment === 'web' ? '10.10.0.255' : '10.20.0.255', `bc-${nonce}-${t}-${h}`)));
      const expected = (t: Tenant, h: HostRole): string[] => senders
        .filter(([st, sh]) => st === t && (h === 'gw' || HOST_PLAN[sh].segment === HOST_PLAN[h].segment))
        .map(([st, sh]) => `bc-${nonce}-${st}-${sh}`).sort();
      const received = (t: Tenant, h: HostRole): string[] => [...new Set(world.agents.get(`${t}-${h}`)!.stdout.split('\n')
        .map((l) => /^got (bc-\S+) /.exec(l)?.[1]).filter((x): x is string => x?.startsWith(`bc-${nonce}-`) === true))].sort();
      await new Promise((r) => setTimeout(r, 300));
      for (const t of TENANTS) for (const h of HOSTS) expect({ host: `${t}/${h}`, got: received(t, h) }).toEqual({ host: `${t}/${h}`, got: expected(t, h) });
    });

    it('web and db stay apart at L2: ARP for a db address on the web segment gets no answer', async () => {
      for (const t of TENANTS) {
        const web = world.host(t, 'sweb');
        await web.ip('route', 'add', `${HOST_PLAN.cdb.ip}/32`, 'dev', 'eth0');
        try {
          const r = await ping(web, HOST_PLAN.cdb.ip, ['-c', '2', '-W', '1']);
          expect(r.code).not.toBe(0);
          const n = JSON.parse((await web.ip('-j', 'neigh', 'show', HOST_PLAN.cdb.ip)).stdout) as { lladdr?: string }[];
          expect(n.every((e) => e.lladdr === undefined)).toBe(true);
        } finally {
          await web.ip('route', 'del', `${HOST_PLAN.cdb.ip}/32`, 'dev', 'eth0');
        }
      }
    });

    it('captures: each tenant\'s frames carry only its own VLAN ids on every trunk, and never reach the other tenant\'s hosts', async () => {
      for (const c of caps.values()) await c.stop();
      const own: Record<string, number[]> = {
        'a-ta-trunk': [SITE_VLANS.web, SITE_VLANS.db], 'b-ta-trunk': [SITE_VLANS.db],
        'a-sp-trunk': [CLOUD_VLANS.a.web, CLOUD_VLANS.a.db], 'b-sp-trunk': [CLOUD_VLANS.b.web, CLOUD_VLANS.b.db],
      };
      const marked = (hex: string, t: Tenant): boolean => hex.includes(PATTERN[t].repeat(2)) || hex.includes(bcastHex(t));
      for (const t of TENANTS) {
        const other: Tenant = t === 'a' ? 'b' : 'a';
        // Site trunks: the tenant's own production VLANs only; the other tenant never appears.
        const siteTrunk = await readCapture(caps.get(`${t}-ta-trunk`)!.file);
        const mine = siteTrunk.filter((p) => marked(p.hex, t));
        expect(mine.length).toBeGreaterThan(0);
        expect([...new Set(mine.map((p) => p.vlans.join('.')))].sort()).toEqual(own[`${t}-ta-trunk`]!.map(String).sort());
        expect(siteTrunk.filter((p) => marked(p.hex, other))).toEqual([]);
        // SP trunks carry the whole fabric (the other tenant's broadcasts too): each tenant's frames appear
        // only with that tenant's cloud VLANs, on its own SP's trunk and on the other's.
        for (const sp of TENANTS) {
          const pkts = (await readCapture(caps.get(`${sp}-sp-trunk`)!.file)).filter((p) => marked(p.hex, t));
          expect(pkts.length).toBeGreaterThan(0);
          for (const p of pkts) expect(p.vlans.length === 1 && [CLOUD_VLANS[t].web, CLOUD_VLANS[t].db].includes(p.vlans[0]!), p.line).toBe(true);
        }
        // Zero cross-tenant frames at the hosts.
        for (const h of HOSTS) {
          const pkts = await readCapture(caps.get(`${other}-${h}`)!.file);
          expect(pkts.length).toBeGreaterThan(0);
          expect(pkts.filter((p) => marked(p.hex, t)).map((p) => p.line)).toEqual([]);
        }
      }
      // The SP appliances dropped the other tenant's VLANs they were handed, and counted them.
      for (const t of TENANTS) expect(world.status(t, 'sp')!.trunks[0]!.drops['foreign-vlan']).toBeGreaterThan(0);
    });

    it('one tunnel per tenant carries both segments', () => {
      for (const t of TENANTS) {
        for (const r of ['ta', 'sp'] as const) {
          const s = world.status(t, r)!;
          expect(s.tunnel!.peers.map((p) => p.segments)).toEqual([[10, 20]]);
          expect(s.tunnel!.segments.map((g) => [g.id, g.counters.fromTunnel > 0, g.counters.toTunnel > 0])).toEqual([[10, true, true], [20, true, true]]);
        }
      }
      // The mapping as each appliance reports it.
      expect(world.status('a', 'sp')!.segments.map((s) => [s.id, s.backing])).toEqual([
        [10, { kind: 'vlan', trunk: 'trunk0', vlan: 110 }], [20, { kind: 'vlan', trunk: 'trunk0', vlan: 120 }]]);
      expect(world.status('b', 'sp')!.segments.map((s) => [s.id, s.backing])).toEqual([
        [10, { kind: 'vlan', trunk: 'trunk0', vlan: 210 }], [20, { kind: 'access', interface: 'db0' }]]);
      expect(world.status('b', 'ta')!.segments.map((s) => [s.id, s.backing])).toEqual([
        [10, { kind: 'access', interface: 'web0' }], [20, { kind: 'vlan', trunk: 'trunk0', vlan: 20 }]]);
    });
  });
}
