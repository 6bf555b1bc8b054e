import { describe, expect, it } from 'vitest';
import { formatLabStatus, formatMatrix, plannedChecks, type LabStatusJson, type TenantFacts, type TenantMatrix } from './lab.js';
import { labPlan } from './plan.js';

const status: LabStatusJson = {
  prefix: 'nlab', controlPlane: { url: 'https://192.0.2.2:9443', namespace: 'nlab-control' },
  tenants: [{
    name: 'acme', failover: 'partial',
    appliances: {
      sp: { name: 'sp-acme', namespace: 'nlab-acme-sp', management: 'https://192.0.2.11:8443', endpoint: '198.51.100.3:51820', tunnel: 'up', lastHandshakeAgoMs: 4000 },
      tenant: { name: 'ta-acme', namespace: 'nlab-acme-ta', wan: '198.51.100.65', running: true },
    },
    segments: [{ id: 100, name: 'web', subnet: '10.1.0.0/24', gateway: '10.1.0.1', vlan: 100, internet: true, mode: 'extend' }],
    replicas: [{ name: 'web1', network: 'web', address: '10.1.0.11/24', mac: '02:00:0a:01:00:0b', state: 'Failover', power: 'on' }],
    publicRules: [{ name: 'web', kind: 'port', publicAddress: '198.51.100.129', publicPort: 80, protocol: 'tcp', vm: 'web1', targetPort: 80, active: false }],
    production: { failedVms: ['web1'], siteDown: false },
  }],
};

describe('lab status screen', () => {
  it('shows tenants, tunnels, segments with modes, replicas with states, public IP rules and what to try next', () => {
    const text = formatLabStatus(status);
    expect(text).toMatch(/acme +partial +sp-acme +198\.51\.100\.3:51820 +up +4 s ago +ta-acme 198\.51\.100\.65 +up, failed: web1/);
    expect(text).toMatch(/acme +web +10\.1\.0\.0\/24 +10\.1\.0\.1 +100 +yes +extend/);
    expect(text).toMatch(/acme +web1 +web +10\.1\.0\.11\/24 +02:00:0a:01:00:0b +Failover +on/);
    expect(text).toMatch(/acme +web +198\.51\.100\.129:80\/tcp +web1:80 +no/);
    expect(text).toMatch(/nea lab failover --tenant acme --vm web1/);
  });
});

describe('reachability matrix', () => {
  const m: TenantMatrix[] = [{
    tenant: 'acme', failover: 'full', where: { web1: 'cloud' }, columns: ['web1', 'internet', 'web 198.51.100.129'],
    rows: [
      { from: 'web1 (cloud)', cells: [
        { from: 'web1 (cloud)', to: 'web1', expected: 'acme/web1 cloud', seen: 'acme/web1 cloud', ok: true },
        { from: 'web1 (cloud)', to: 'internet', expected: 'internet', seen: 'internet', client: '198.51.100.3', ok: true },
      ] },
      { from: 'internet', cells: [{ from: 'internet', to: 'web 198.51.100.129', expected: 'acme/web1 cloud', seen: 'globex/web1 cloud', ok: false }] },
    ],
  }];

  it('marks what was as expected and says what was seen otherwise', () => {
    const text = formatMatrix(m);
    expect(text).toMatch(/web1 \(cloud\) +✓ cloud +✓ as 198\.51\.100\.3/);
    expect(text).toMatch(/internet +✗ want acme\/web1 cloud, saw globex\/web1 cloud/);
    expect(text).toMatch(/3 checks: 2 as expected, 1 not/);
  });
});

describe('what the matrix expects', () => {
  const p = labPlan('nlab', 1);
  const t = p.tenants[0]!;
  const facts = (failover: TenantFacts['failover'], out: string[]): TenantFacts => ({
    failover,
    replicas: t.vms.map((vm) => ({ name: vm.name, network: vm.network, address: vm.cidr, mac: vm.mac, state: out.includes(vm.name) ? 'Failover' as const : 'Normal' as const })),
    networks: t.networks.map((n) => ({ name: n.name, subnet: n.subnet, gateway: n.gateway, vlan: n.internet ? 100 : 200, host: 'cloud1', internet: n.internet, mode: 'isolated' as const })),
    failoverPlans: [{ name: 'site', vms: t.vms.map((vm) => ({ vm: vm.name, delaySeconds: 0 })), routeBetweenNetworks: true, publicRules: [
      { name: 'web', kind: 'port', publicAddress: '198.51.100.129', protocol: 'tcp', publicPort: 80, vm: 'web1', targetPort: 80 },
      { name: 'db', kind: 'address', publicAddress: '198.51.100.130', vm: 'db1' },
    ] }],
  });
  const all = ['web1', 'web2', 'db1', 'db2'];
  const expect1 = (f: TenantFacts, prod: { failedVms: string[]; siteDown: boolean }, from: string, to: string): string | null | undefined =>
    plannedChecks(p, t, f, prod).checks.find((c) => c.from === from && c.to === to)?.expected;

  it.each([
    // failover, in the cloud, production failed / site down, from, to, expected (undefined: no such row)
    ['none', [], [], false, 'web1 (production)', 'db2', 'acme/db2 production'],
    ['none', [], [], false, 'web1 (production)', 'internet', null],
    ['none', [], [], false, 'internet', 'web 198.51.100.129', null],
    ['partial', ['web1'], ['web1'], false, 'web2 (production)', 'web1', 'acme/web1 cloud'],
    ['partial', ['web1'], ['web1'], false, 'web1 (cloud)', 'db1', 'acme/db1 production'],
    ['partial', ['web1'], ['web1'], false, 'web1 (production)', 'web2', undefined],
    ['partial', ['web1'], ['web1'], false, 'web1 (cloud)', 'internet', null],
    ['full', all, [], true, 'db1 (cloud)', 'web2', 'acme/web2 cloud'],
    ['full', all, [], true, 'web2 (cloud)', 'internet', 'internet'],
    ['full', all, [], true, 'db2 (cloud)', 'internet', null],
    ['full', all, [], true, 'internet', 'db 198.51.100.130', 'acme/db1 cloud'],
    ['test', all, [], false, 'web2 (production)', 'web1', 'acme/web1 production'],
    ['test', all, [], false, 'web2 (cloud)', 'web1', 'acme/web1 cloud'],
    ['test', all, [], false, 'web2 (cloud)', 'db1', null],
    ['test', all, [], false, 'internet', 'web 198.51.100.129', null],
  ] as const)('%s failover (cloud: %j, failed: %j, site down: %s): %s → %s expects %s', (failover, out, failed, siteDown, from, to, want) => {
    expect(expect1(facts(failover, [...out]), { failedVms: [...failed], siteDown }, from, to)).toBe(want);
  });

  it('checks from the replica\'s namespace when the VM runs in the cloud', () => {
    const c = plannedChecks(p, t, facts('partial', ['web1']), { failedVms: ['web1'], siteDown: false }).checks.find((x) => x.from === 'web1 (cloud)');
    expect(c?.check.netns).toBe('nlab-r-acme-web1');
  });
});
