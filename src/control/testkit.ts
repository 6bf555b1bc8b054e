/**
 * A control plane over an in-memory (or temporary file) database with the
 * fake hypervisor and a fake SP appliance per tenant, and a tenant onboarded
 * the way the lab does it: two production networks (one with internet), four
 * replicas, a full failover plan with public IP rules. For unit tests.
 */
import { FakeAppliance } from './appliances.js';
import { ControlPlane, type ControlPlaneOptions } from './control-plane.js';
import { FakeDriver } from './driver.js';

export interface Kit {
  cp: ControlPlane;
  driver: FakeDriver;
  appliances: Map<string, FakeAppliance>;
  appliance: (tenant: string) => FakeAppliance;
}

export function makeKit(db: string = ':memory:', opts: Partial<ControlPlaneOptions> = {}, driver = new FakeDriver(), appliances = new Map<string, FakeAppliance>()): Kit {
  const get = (t: string): FakeAppliance => {
    let a = appliances.get(t);
    if (!a) { a = new FakeAppliance(); appliances.set(t, a); }
    return a;
  };
  const cp = new ControlPlane({
    db, driver, appliance: (t) => get(t), probeDeadlineMs: 0, sleep: () => Promise.resolve(),
    jobs: { attempts: 2, retryDelayMs: 1 }, ...opts,
  });
  return { cp, driver, appliances, appliance: get };
}

/** SP resources: host h1 (trunk0), VLANs 100-109 with and 200-209 without internet, 198.51.100.10-19, plan "std". */
export function seedSp(cp: ControlPlane): void {
  cp.records.putHost('h1', { trunk: 'trunk0' });
  cp.records.putVlanPool('inet', { host: 'h1', first: 100, last: 109, internet: true });
  cp.records.putVlanPool('dark', { host: 'h1', first: 200, last: 209, internet: false });
  cp.records.putIpPool('pub', { first: '198.51.100.10', last: '198.51.100.19' });
  cp.records.putPlan('std', { cpu: 8, memoryGb: 32, storageGb: 500, networksWithInternet: 1, networksWithoutInternet: 1, publicIps: 2 });
}

/** Tenant `t` on plan std: networks lan (internet) and db, replicas web1, web2 (lan), db1, db2 (db), plan "site". */
export async function seedTenant(cp: ControlPlane, t: string): Promise<void> {
  cp.records.putTenant(t, {});
  const sub = cp.records.subscribe(t, 'std', 'h1');
  cp.records.putAppliance(t, { url: `https://${t}.invalid:8443`, fingerprint: 'ab'.repeat(32), token: 'nea_test_token_x' });
  const withNet = sub.networks.find((n) => n.internet)!.vlan;
  const without = sub.networks.find((n) => !n.internet)!.vlan;
  await cp.putNetwork(t, 'lan', { subnet: '10.1.0.0/24', gateway: '10.1.0.1', vlan: withNet });
  await cp.putNetwork(t, 'db', { subnet: '10.2.0.0/24', gateway: '10.2.0.1', vlan: without });
  cp.records.putReplica(t, 'web1', { network: 'lan', address: '10.1.0.11/24', mac: '02:00:00:01:00:11' });
  cp.records.putReplica(t, 'web2', { network: 'lan', address: '10.1.0.12/24', mac: '02:00:00:01:00:12' });
  cp.records.putReplica(t, 'db1', { network: 'db', address: '10.2.0.21/24', mac: '02:00:00:02:00:21' });
  cp.records.putReplica(t, 'db2', { network: 'db', address: '10.2.0.22/24', mac: '02:00:00:02:00:22' });
  const [ip1, ip2] = sub.publicIps as [string, string];
  cp.putFailoverPlan(t, 'site', {
    vms: [{ vm: 'db1', delaySeconds: 0 }, { vm: 'db2', delaySeconds: 5 }, { vm: 'web1', delaySeconds: 0 }, { vm: 'web2', delaySeconds: 0 }],
    publicRules: [
      { name: 'web', kind: 'port', publicAddress: ip1, protocol: 'tcp', publicPort: 80, vm: 'web1', targetPort: 8080 },
      { name: 'web2_all', kind: 'address', publicAddress: ip2, vm: 'web2' },
    ],
  });
}
