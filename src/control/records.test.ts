import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NeaError } from '../shared/errors.js';
import { Records } from './records.js';
import { openDb, SCHEMA_VERSION } from './store.js';
import { makeKit, seedSp, seedTenant } from './testkit.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return e instanceof NeaError ? `${e.code}: ${e.message}` : `other: ${String(e)}`;
  }
  return 'no error';
};

function sp(): Records {
  const r = new Records(openDb(':memory:'));
  r.putHost('h1', { trunk: 'trunk0' });
  r.putHost('h2', { trunk: 'trunk0' });
  return r;
}

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('database', () => {
  it('migrates a new file, reopens it without re-running migrations, refuses a newer schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nea-cp-'));
    dirs.push(dir);
    const file = join(dir, 'c.db');
    const a = openDb(file);
    new Records(a).putHost('h1', { trunk: 'trunk0' });
    a.close();
    const b = openDb(file);
    expect((b.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(SCHEMA_VERSION);
    expect(new Records(b).hosts().map((h) => h.name)).toEqual(['h1']);
    b.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(SCHEMA_VERSION + 1, 'x');
    b.close();
    expect(code(() => openDb(file))).toMatch(/^CONTROL_DB_FAILED: .*newer than this nea knows/);
  });
});

describe('pools', () => {
  it('refuses overlapping VLAN ranges on one host, allows them on another', () => {
    const r = sp();
    r.putVlanPool('a', { host: 'h1', first: 100, last: 199, internet: true });
    expect(code(() => r.putVlanPool('b', { host: 'h1', first: 150, last: 250, internet: false }))).toMatch(/^CONTROL_CONFLICT: VLANs 150-250 overlap pool a \(100-199\) on host h1/);
    expect(code(() => r.putVlanPool('b', { host: 'h1', first: 50, last: 100, internet: false }))).toMatch(/overlap pool a/);
    expect(r.putVlanPool('b', { host: 'h2', first: 150, last: 250, internet: false }).size).toBe(101);
    expect(r.putVlanPool('c', { host: 'h1', first: 200, last: 299, internet: false }).used).toBe(0);
    expect(code(() => r.putVlanPool('d', { host: 'h9', first: 1, last: 2, internet: false }))).toMatch(/^CONTROL_NOT_FOUND: host h9/);
    expect(code(() => r.putVlanPool('d', { host: 'h1', first: 20, last: 10, internet: false }))).toMatch(/^INVALID_INPUT: body.first/);
  });

  it('refuses overlapping public IP ranges', () => {
    const r = sp();
    r.putIpPool('a', { first: '198.51.100.10', last: '198.51.100.20' });
    expect(code(() => r.putIpPool('b', { first: '198.51.100.20', last: '198.51.100.30' }))).toMatch(/^CONTROL_CONFLICT: addresses .* overlap pool a/);
    expect(code(() => r.putIpPool('b', { first: '198.51.100.300', last: '198.51.100.30' }))).toMatch(/^INVALID_INPUT: body.first/);
    expect(r.putIpPool('b', { first: '198.51.100.21', last: '198.51.100.30' }).size).toBe(10);
  });
});

describe('subscriptions allocate and release', () => {
  function withPools(): Records {
    const r = sp();
    r.putVlanPool('inet', { host: 'h1', first: 100, last: 102, internet: true });
    r.putVlanPool('dark', { host: 'h1', first: 200, last: 203, internet: false });
    r.putIpPool('pub', { first: '198.51.100.10', last: '198.51.100.12' });
    r.putPlan('std', { cpu: 4, memoryGb: 8, storageGb: 100, networksWithInternet: 1, networksWithoutInternet: 2, publicIps: 1 });
    for (const t of ['a', 'b', 'c', 'd']) r.putTenant(t, {});
    return r;
  }

  it('gives each tenant its own VLANs and IPs, all or nothing, and names what ran out', () => {
    const r = withPools();
    const a = r.subscribe('a', 'std', 'h1');
    expect(a.networks.map((n) => [n.vlan, n.internet])).toEqual([[100, true], [200, false], [201, false]]);
    expect(a.publicIps).toEqual(['198.51.100.10']);
    const b = r.subscribe('b', 'std', 'h1');
    expect(b.networks.map((n) => n.vlan)).toEqual([101, 202, 203]);
    // Again: the same subscription, nothing more allocated.
    expect(r.subscribe('a', 'std', 'h1')).toEqual(a);
    // c gets the last internet VLAN but no VLAN without internet is left: nothing allocated at all.
    expect(code(() => r.subscribe('c', 'std', 'h1'))).toMatch(/^CONTROL_EXHAUSTED: host h1 has 0 free VLAN\(s\) without internet, plan std needs 2/);
    expect(r.subscriptions('c')).toEqual([]);
    expect(r.vlanPool('inet').used).toBe(2);
    // Released on unsubscribe, then reusable.
    r.unsubscribe('a', 'std');
    expect(r.vlanPool('inet').used).toBe(1);
    expect(r.ipPool('pub').used).toBe(1);
    expect(r.subscribe('c', 'std', 'h1').networks.map((n) => n.vlan)).toEqual([100, 200, 201]);
  });

  it('never gives one VLAN or IP to two tenants, even from two connections at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nea-cp-'));
    dirs.push(dir);
    const file = join(dir, 'c.db');
    const r1 = new Records(openDb(file));
    r1.putHost('h1', { trunk: 'trunk0' });
    r1.putVlanPool('inet', { host: 'h1', first: 100, last: 139, internet: true });
    r1.putIpPool('pub', { first: '198.51.100.1', last: '198.51.100.40' });
    r1.putPlan('one', { cpu: 1, memoryGb: 1, storageGb: 1, networksWithInternet: 1, networksWithoutInternet: 0, publicIps: 1 });
    const r2 = new Records(openDb(file));
    const tenants = Array.from({ length: 50 }, (_, i) => `t${i}`);
    for (const t of tenants) r1.putTenant(t, {});
    const results = tenants.map((t, i) => {
      const r = i % 2 === 0 ? r1 : r2;
      try {
        return r.subscribe(t, 'one', 'h1');
      } catch (e) {
        return (e as NeaError).code;
      }
    });
    const ok = results.filter((x) => typeof x !== 'string');
    expect(ok).toHaveLength(40);
    expect(results.filter((x) => x === 'CONTROL_EXHAUSTED')).toHaveLength(10);
    const vlans = ok.flatMap((s) => s.networks.map((n) => n.vlan));
    const ips = ok.flatMap((s) => s.publicIps);
    expect(new Set(vlans).size).toBe(40);
    expect(new Set(ips).size).toBe(40);
    // The schema itself refuses a second holder, whatever the code above does.
    expect(() => r2.db.prepare('INSERT INTO vlans (host, vlan, pool, tenant, plan, internet) VALUES (?, ?, ?, ?, ?, ?)').run('h1', vlans[0], 'inet', 't1', 'one', 1)).toThrow(/UNIQUE|PRIMARY KEY/);
    r1.db.close();
    r2.db.close();
  });

  it('refuses to release VLANs a network uses, or delete pools and plans in use', async () => {
    const { cp } = makeKit();
    seedSp(cp);
    await seedTenant(cp, 'acme');
    const r = cp.records;
    expect(code(() => { r.unsubscribe('acme', 'std'); })).toMatch(/^CONTROL_CONFLICT: tenant acme: VLAN\(s\) 100 \(network lan\), 200 \(network db\) of plan std are in use/);
    expect(code(() => { r.deleteVlanPool('inet'); })).toMatch(/^CONTROL_CONFLICT: VLAN pool inet: 1 VLAN/);
    expect(code(() => { r.deletePlan('std'); })).toMatch(/^CONTROL_CONFLICT: plan std has subscribers \(acme\)/);
    expect(code(() => { r.deleteHost('h1'); })).toMatch(/^CONTROL_CONFLICT: host h1 has VLAN pools/);
    expect(code(() => r.putPlan('std', { cpu: 8, memoryGb: 32, storageGb: 500, networksWithInternet: 2, networksWithoutInternet: 1, publicIps: 2 }))).toMatch(/cannot change while 1 tenant/);
    expect(r.putPlan('std', { cpu: 16, memoryGb: 64, storageGb: 900, networksWithInternet: 1, networksWithoutInternet: 1, publicIps: 2 }).cpu).toBe(16);
    expect(code(() => { r.deleteTenant('acme'); })).toMatch(/still subscribes to std/);
  });
});

describe('tenant records', () => {
  it('validates networks, replicas and failover plans against what the tenant has', async () => {
    const { cp } = makeKit();
    seedSp(cp);
    await seedTenant(cp, 'acme');
    cp.records.putTenant('other', {});
    cp.records.subscribe('other', 'std', 'h1');
    const r = cp.records;
    expect(code(() => r.checkNetwork('acme', 'x', { subnet: '10.3.0.0/24', gateway: '10.3.0.1', vlan: 101 }))).toMatch(/^CONTROL_CONFLICT: VLAN 101 is not allocated to tenant acme; its VLANs: 100, 200/);
    expect(code(() => r.checkNetwork('acme', 'x', { subnet: '10.3.0.0/24', gateway: '10.3.0.1', vlan: 100 }))).toMatch(/VLAN 100 already carries network lan/);
    expect(code(() => r.checkNetwork('acme', 'lan', { subnet: '10.1.0.5/24', gateway: '10.1.0.1', vlan: 100 }))).toMatch(/^INVALID_INPUT: body.subnet: 10.1.0.5\/24 has host bits set/);
    expect(code(() => r.checkNetwork('acme', 'lan', { subnet: '10.1.0.0/24', gateway: '10.9.0.1', vlan: 100 }))).toMatch(/^INVALID_INPUT: body.gateway: 10.9.0.1 is not in 10.1.0.0\/24/);
    expect(code(() => r.checkNetwork('acme', 'db', { subnet: '10.1.0.0/16', gateway: '10.1.0.1', vlan: 200 }))).toMatch(/overlaps network lan/);
    expect(code(() => r.putReplica('acme', 'web3', { network: 'lan', address: '10.2.0.5/24', mac: '02:00:00:00:00:99' }))).toMatch(/^INVALID_INPUT: body.address: 10.2.0.5\/24 is not an address of network lan/);
    expect(code(() => r.putReplica('acme', 'web3', { network: 'lan', address: '10.1.0.11/24', mac: '02:00:00:00:00:99' }))).toMatch(/replica web1 of tenant acme already has address 10.1.0.11\/24/);
    expect(code(() => r.putReplica('acme', 'web3', { network: 'lan', address: '10.1.0.1/24', mac: '02:00:00:00:00:99' }))).toMatch(/is the gateway of network lan/);
    expect(code(() => r.putReplica('acme', 'web3', { network: 'nope', address: '10.1.0.9/24', mac: '02:00:00:00:00:99' }))).toMatch(/^CONTROL_NOT_FOUND: network nope of tenant acme/);
    const otherIp = r.subscriptions('other')[0]!.publicIps[0]!;
    expect(code(() => r.putFailoverPlan('acme', 'p', { vms: [{ vm: 'web1', delaySeconds: 0 }], publicRules: [{ name: 'x', kind: 'address', publicAddress: otherIp, vm: 'web1' }] })))
      .toMatch(new RegExp(`^CONTROL_CONFLICT: body.publicRules\\[0\\].publicAddress: ${otherIp.replace(/\./g, '\\.')} is not one of tenant acme's public IPs`));
    expect(code(() => r.putFailoverPlan('acme', 'p', { vms: [{ vm: 'web1', delaySeconds: 0 }, { vm: 'web1', delaySeconds: 1 }], publicRules: [] }))).toMatch(/listed twice/);
    expect(code(() => r.putFailoverPlan('acme', 'p', { vms: [{ vm: 'ghost', delaySeconds: 0 }], publicRules: [] }))).toMatch(/has no replica ghost/);
    const mine = r.publicIpsOf('acme');
    const ip = [...mine][0]!;
    expect(code(() => r.putFailoverPlan('acme', 'p', {
      vms: [{ vm: 'web1', delaySeconds: 0 }, { vm: 'web2', delaySeconds: 0 }],
      publicRules: [{ name: 'a', kind: 'address', publicAddress: ip, vm: 'web1' }, { name: 'b', kind: 'port', publicAddress: ip, protocol: 'tcp', publicPort: 80, vm: 'web2' }],
    }))).toMatch(/already used by another rule|already mapped/);
    expect(code(() => r.putFailoverPlan('acme', 'p', { vms: [{ vm: 'web1', delaySeconds: 0 }], publicRules: [{ name: 'a', kind: 'address', publicAddress: ip, vm: 'web2' }] }))).toMatch(/web2 is not in this plan's vms/);
    // Nothing of the refused plans was stored.
    expect(r.failoverPlans('acme').map((p) => p.name)).toEqual(['site']);
  });

  it('a production network becomes an isolated segment on the SP appliance, on the VLAN of the host trunk', async () => {
    const { cp, appliance } = makeKit();
    seedSp(cp);
    await seedTenant(cp, 'acme');
    expect(appliance('acme').snapshot().segments).toEqual([
      [100, { name: 'lan', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 100 }, mode: 'isolated', internet: false, gateway: { ipv4: '10.1.0.1/24' } }],
      [200, { name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: 200 }, mode: 'isolated', internet: false, gateway: { ipv4: '10.2.0.1/24' } }],
    ]);
    // A refused appliance change leaves the record unchanged.
    appliance('acme').failures.set('PUT /v1/segments/100', 1);
    await expect(cp.putNetwork('acme', 'lan', { subnet: '10.1.0.0/24', gateway: '10.1.0.254', vlan: 100 })).rejects.toThrow(/refused/);
    expect(cp.records.network('acme', 'lan').gateway).toBe('10.1.0.1');
    await cp.putNetwork('acme', 'lan', { subnet: '10.1.0.0/24', gateway: '10.1.0.254', vlan: 100 });
    expect(appliance('acme').segments.get(100)?.gateway).toEqual({ ipv4: '10.1.0.254/24' });
  });
});
