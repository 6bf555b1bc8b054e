/**
 * The SP appliance config of docs/modes.md: every mode, a VLAN-backed
 * segment, internet, both kinds of public IP rule, routing between
 * segments. A test checks that the ruleset printed in the doc is exactly
 * what the appliance renders from it.
 */
export const EXAMPLE_SP_CONFIG = {
  role: 'sp',
  name: 'sp-acme',
  tunnel: { listenPort: 51820, peers: [{ publicKey: 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=', segments: [10, 20, 30] }] },
  external: {
    interface: 'ext0',
    addresses: ['203.0.113.2/24'],
    defaultRoute: { ipv4: '203.0.113.1' },
    publicPool: ['203.0.113.16/28'],
  },
  routeBetweenSegments: true,
  segments: [
    // Failed over: the appliance is the gateway, with internet.
    { id: 10, name: 'web', uplink: 'c10', mode: 'gateway', internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } },
    // Failed over, no internet: reachable only through its 1:1 address (and routing from web).
    { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'eth1', vlan: 120 }, mode: 'gateway', gateway: { ipv4: '10.2.0.1/24' } },
    // Still extended (partial failover); ready for a full failover: only `mode` changes then.
    { id: 30, name: 'office', uplink: 'c30', internet: true, gateway: { ipv4: '10.3.0.1/24' } },
    // A network under investigation: nothing crosses.
    { id: 40, name: 'quarantine', uplink: 'c40', mode: 'isolated' },
  ],
  publicRules: [
    { name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 },
    { name: 'db', kind: 'address', segment: 20, publicAddress: '203.0.113.18', target: '10.2.0.10' },
    { name: 'office', kind: 'port', segment: 30, publicAddress: '203.0.113.19', protocol: 'tcp', publicPort: 443, target: '10.3.0.20' },
  ],
} as const;
