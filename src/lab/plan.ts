/**
 * The lab's plan: every name and address of the lab world for N tenants,
 * computed from a name prefix alone (pure; world.ts builds it, lab.ts
 * onboards it). All addresses are documentation addresses or the tenants'
 * private production subnets.
 *
 *   management 192.0.2.0/24      control plane .2, SP appliance of tenant i .(10+i)
 *   external   198.51.100.0/24   router .1, SP appliance i .(2+i), tenant appliance i .(64+i),
 *                                public IPs .129-.254 (the control plane's IP pool)
 *   internet   203.0.113.0/24    router .1, internet host .10
 *   production (every tenant)    web 10.1.0.0/24 (gw .1), db 10.2.0.0/24 (gw .1);
 *                                VMs web1 .11, web2 .12 on web, db1 .11, db2 .12 on db
 *
 * Namespaces are `<prefix>-<role>` and `<prefix>-<tenant>-<role>`; the
 * netns driver's replicas are `<prefix>-r-<tenant>-<vm>`. Interfaces live
 * inside them, so their names are short and fixed.
 */

/** Most tenants a lab holds (public IPs: 2 each from .129-.254; appliances' addresses). */
export const MAX_TENANTS = 60;

/** Names of the first tenants; later ones are `tenant<N>`. */
const TENANT_NAMES = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'wonka'];

export function tenantName(i: number): string {
  return TENANT_NAMES[i - 1] ?? `tenant${i}`;
}

export interface NetworkPlan {
  name: 'web' | 'db';
  subnet: string;
  gateway: string;
  prefixLength: number;
  /** Interface of the site router's bridge for this network (gateway address on it). */
  bridge: string;
  /** The tenant appliance's access interface on it. */
  applianceInterface: string;
  /** Pool kind its cloud VLAN comes from. */
  internet: boolean;
}

export interface VmPlan {
  name: string;
  network: 'web' | 'db';
  address: string;
  /** `address/prefix`. */
  cidr: string;
  gateway: string;
  mac: string;
  netns: string;
}

export interface TenantPlan {
  index: number;
  name: string;
  spNetns: string;
  taNetns: string;
  siteNetns: string;
  spMgmtAddress: string;
  spExternalAddress: string;
  taWanAddress: string;
  networks: NetworkPlan[];
  vms: VmPlan[];
}

export interface LabPlan {
  prefix: string;
  fabricNetns: string;
  mgmtNetns: string;
  wanNetns: string;
  routerNetns: string;
  internetNetns: string;
  controlNetns: string;
  /** Replica namespaces: `<replicaPrefix><tenant>-<vm>`. */
  replicaPrefix: string;
  controlAddress: string;
  controlPort: number;
  routerWanAddress: string;
  routerInternetAddress: string;
  internetAddress: string;
  /** The control plane's name for the cloud host. */
  host: string;
  /** The cloud host's switch in the fabric. */
  cloudSwitch: string;
  /** The SP appliances' trunk interface. */
  trunk: string;
  publicIpFirst: string;
  publicIpLast: string;
  tenants: TenantPlan[];
}

export const MGMT_PREFIX = '192.0.2';
export const WAN_PREFIX = '198.51.100';
export const INTERNET_PREFIX = '203.0.113';
export const TUNNEL_PORT = 51820;
export const APPLIANCE_API_PORT = 8443;

const NETWORKS: readonly NetworkPlan[] = [
  { name: 'web', subnet: '10.1.0.0/24', gateway: '10.1.0.1', prefixLength: 24, bridge: 'br-web', applianceInterface: 'lan1', internet: true },
  { name: 'db', subnet: '10.2.0.0/24', gateway: '10.2.0.1', prefixLength: 24, bridge: 'br-db', applianceInterface: 'lan2', internet: false },
];

const VMS: readonly { name: string; network: 'web' | 'db'; host: number; mac: string }[] = [
  { name: 'web1', network: 'web', host: 11, mac: '02:00:0a:01:00:0b' },
  { name: 'web2', network: 'web', host: 12, mac: '02:00:0a:01:00:0c' },
  { name: 'db1', network: 'db', host: 11, mac: '02:00:0a:02:00:0b' },
  { name: 'db2', network: 'db', host: 12, mac: '02:00:0a:02:00:0c' },
];

/** The whole lab for `tenants` tenants under namespace prefix `prefix`. */
export function labPlan(prefix: string, tenants: number): LabPlan {
  if (!Number.isInteger(tenants) || tenants < 1 || tenants > MAX_TENANTS) throw new RangeError(`tenants: must be 1..${MAX_TENANTS}`);
  const ns = (role: string): string => `${prefix}-${role}`;
  const list: TenantPlan[] = [];
  for (let i = 1; i <= tenants; i++) {
    const name = tenantName(i);
    const networks = NETWORKS.map((n) => ({ ...n }));
    list.push({
      index: i, name,
      spNetns: ns(`${name}-sp`), taNetns: ns(`${name}-ta`), siteNetns: ns(`${name}-site`),
      spMgmtAddress: `${MGMT_PREFIX}.${10 + i}`, spExternalAddress: `${WAN_PREFIX}.${2 + i}`, taWanAddress: `${WAN_PREFIX}.${64 + i}`,
      networks,
      vms: VMS.map((v) => {
        const net = networks.find((n) => n.name === v.network)!;
        const address = `${net.subnet.split('.').slice(0, 3).join('.')}.${v.host}`;
        return { name: v.name, network: v.network, address, cidr: `${address}/${net.prefixLength}`, gateway: net.gateway, mac: v.mac, netns: ns(`${name}-${v.name}`) };
      }),
    });
  }
  return {
    prefix,
    fabricNetns: ns('fabric'), mgmtNetns: ns('mgmt'), wanNetns: ns('wan'), routerNetns: ns('router'), internetNetns: ns('internet'), controlNetns: ns('control'),
    replicaPrefix: `${prefix}-r-`,
    controlAddress: `${MGMT_PREFIX}.2`, controlPort: 9443,
    routerWanAddress: `${WAN_PREFIX}.1`, routerInternetAddress: `${INTERNET_PREFIX}.1`, internetAddress: `${INTERNET_PREFIX}.10`,
    host: 'cloud1', cloudSwitch: 'cloud', trunk: 'trunk0',
    publicIpFirst: `${WAN_PREFIX}.129`, publicIpLast: `${WAN_PREFIX}.254`,
    tenants: list,
  };
}
