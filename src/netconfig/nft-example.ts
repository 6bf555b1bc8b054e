/**
 * An example firewall desired state that uses every feature: the example of
 * docs/nftables.md, the renderer's largest table test, and the netns test
 * that the kernel accepts every kind of rule the renderer writes.
 */
import type { DesiredFirewall } from './nft-desired.js';
import { computeMssClamp } from './nft-mss.js';

const wan1500 = computeMssClamp(1500);

export const EXAMPLE_FIREWALL: DesiredFirewall = {
  appliance: 'acme',
  appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
  external: { name: 'wan0', applianceAddresses: ['203.0.113.2'], publicPool: ['203.0.113.16/28', '2001:db8:ff::/64'] },
  routeBetweenSegments: true,
  segments: [
    // Partial failover: bridged to production, MSS clamped for a 1500-byte WAN.
    { name: 'lan', bridge: 'br-lan', ports: ['tap-lan', 'cloud-lan'], mode: 'extend', mss: { ipv4: wan1500.ipv4, ipv6: wan1500.ipv6 }, internet: true, subnets: ['10.1.0.0/24'] },
    // Full failover: the appliance is the gateway, with internet.
    // Production is cut off at the tunnel port while the appliance is the gateway.
    { name: 'web', bridge: 'br-web', ports: ['tap-web', 'cloud-web'], tunnelPorts: ['tap-web'], mode: 'gateway', internet: true, subnets: ['10.2.0.1/24', 'fd00:2::1/64'] },
    // Full failover, no internet; reachable through a whole-address mapping.
    { name: 'db', bridge: 'br-db', ports: ['tap-db'], mode: 'gateway', subnets: ['10.3.0.0/24'] },
    { name: 'lab', bridge: 'br-lab', ports: ['tap-lab'], mode: 'isolated' },
  ],
  publicRules: [
    { kind: 'port', name: 'https', segment: 'web', publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 443, target: '10.2.0.10', targetPort: 8443 },
    { kind: 'port', name: 'https6', segment: 'web', publicAddress: '2001:db8:ff::17', protocol: 'tcp', publicPort: 443, target: 'fd00:2::10' },
    { kind: 'address', name: 'db1', segment: 'db', publicAddress: '203.0.113.18', target: '10.3.0.5' },
  ],
};
