import { describe, expect, it } from 'vitest';
import { formatLabStatus, formatMatrix, type LabStatusJson, type TenantMatrix } from './lab.js';

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
