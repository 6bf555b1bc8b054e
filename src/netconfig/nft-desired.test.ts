/**
 * Validation of the firewall desired state: what is accepted, how it is
 * normalized, and a table of refusals with their messages.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import { normalizeFirewall, tableName, type DesiredFirewall, type FirewallSegment, type PublicRule } from './nft-desired.js';

const MSS = { ipv4: 1380, ipv6: 1360 };

function base(over: Partial<DesiredFirewall> = {}): DesiredFirewall {
  return {
    appliance: 't1',
    appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
    external: { name: 'wan0', applianceAddresses: ['203.0.113.2', '2001:db8:ff::2'], publicPool: ['203.0.113.0/24', '2001:db8:ff::/64'] },
    segments: [
      { name: 'web', bridge: 'br-web', ports: ['tap-web'], mode: 'gateway', internet: true, subnets: ['10.2.0.1/24', 'fd00:2::1/64'], mss: MSS },
      { name: 'lan', bridge: 'br-lan', ports: ['tap-lan', 'eth-lan'], mode: 'extend', subnets: ['10.1.0.0/24'], mss: MSS },
    ],
    ...over,
  };
}

function withRules(...rules: PublicRule[]): DesiredFirewall {
  return base({ publicRules: rules });
}

function withSegment(s: Partial<FirewallSegment>): DesiredFirewall {
  return base({ segments: [{ name: 's', bridge: 'br-s', ports: ['p-s'], mode: 'gateway', subnets: ['10.9.0.0/24'], ...s }] });
}

function noExternal(d: DesiredFirewall): DesiredFirewall {
  const { external: _external, ...rest } = d;
  return rest;
}

const port = (over: Partial<Extract<PublicRule, { kind: 'port' }>> = {}): PublicRule => ({
  kind: 'port', name: 'https', segment: 'web', publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 443, target: '10.2.0.10', ...over,
});
const whole = (over: Partial<Extract<PublicRule, { kind: 'address' }>> = {}): PublicRule => ({
  kind: 'address', name: 'db', segment: 'web', publicAddress: '203.0.113.18', target: '10.2.0.20', ...over,
});

describe('tableName', () => {
  it('prefixes the appliance id', () => {
    expect(tableName('tenant_42')).toBe('nea_tenant_42');
  });
  it.each(['', 'Tenant', 'a-b', '_a', 'a b', 'a'.repeat(33), 'a;b', 'ä'])('refuses id %j', (id) => {
    expect(() => tableName(id)).toThrow(ValidationError);
  });
});

describe('normalizeFirewall', () => {
  it('fills defaults, masks subnets and canonicalizes addresses', () => {
    const n = normalizeFirewall(withRules(
      port({ publicAddress: '2001:DB8:FF:0::17', target: 'FD00:2:0::10', name: 'six' }),
      port(),
    ));
    expect(n.table).toBe('nea_t1');
    expect(n.routeBetweenSegments).toBe(false);
    expect(n.segments[0]!.subnets.map((p) => p.cidr)).toEqual(['10.2.0.0/24', 'fd00:2::/64']);
    expect(n.segments[1]!.internet).toBe(false);
    expect(n.rules).toEqual([
      { kind: 'port', name: 'six', segment: 'web', family: 6, publicAddress: '2001:db8:ff::17', protocol: 'tcp', publicPort: 443, target: 'fd00:2::10', targetPort: 443 },
      { kind: 'port', name: 'https', segment: 'web', family: 4, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 443, target: '10.2.0.10', targetPort: 443 },
    ]);
  });

  it('keeps internet, clamp and rules of a segment in another mode (they persist across mode switches)', () => {
    const d = base({
      segments: [{ name: 'web', bridge: 'br-web', ports: ['tap-web'], mode: 'extend', internet: true, subnets: ['10.2.0.0/24'], mss: MSS }],
      publicRules: [port()],
    });
    const n = normalizeFirewall(d);
    expect(n.segments[0]!.internet).toBe(true);
    expect(n.rules).toHaveLength(1);
  });

  it('accepts an isolated segment without subnets and an extend segment with internet but no external interface', () => {
    expect(() => normalizeFirewall({
      appliance: 'x', appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
      segments: [
        { name: 'a', bridge: 'br-a', ports: ['pa'], mode: 'isolated' },
        { name: 'b', bridge: 'br-b', ports: ['pb'], mode: 'extend', internet: true, mss: MSS },
      ],
    })).not.toThrow();
  });

  it('allows a port mapping of port 22 over UDP, and of the tunnel port over TCP', () => {
    expect(() => normalizeFirewall(withRules(port({ protocol: 'udp', publicPort: 22 }), port({ name: 'b', publicPort: 51820 })))).not.toThrow();
  });

  it('allows port mappings on the appliance address, other than the protected ports', () => {
    expect(() => normalizeFirewall(withRules(port({ publicAddress: '203.0.113.2' })))).not.toThrow();
  });

  const refusals: [string, DesiredFirewall, RegExp][] = [
    ['bad appliance id', base({ appliance: 'T-1' }), /appliance id "T-1" must be 1-32 characters/],
    ['bad management port', base({ appliancePorts: { managementTcp: 0, tunnelUdp: 51820 } }), /management API: port 0/],
    ['bad external name', base({ external: { name: 'a/b' } }), /external interface: "a\/b" is not a valid link name/],
    ['bad segment name', withSegment({ name: 'Web' }), /segment name "Web"/],
    ['duplicate segment', base({ segments: [...base().segments, { ...base().segments[0]!, bridge: 'br-x', ports: ['x'] }] }), /segment web is listed twice/],
    ['bad mode', withSegment({ mode: 'routed' as 'gateway' }), /segment s: mode must be extend, gateway or isolated/],
    ['bridge shared by two segments', base({ segments: [...base().segments, { name: 'x', bridge: 'br-web', ports: ['px'], mode: 'isolated' }] }), /bridge of segment x br-web is already used as bridge of segment web/],
    ['port shared', base({ segments: [...base().segments, { name: 'x', bridge: 'br-x', ports: ['tap-lan'], mode: 'isolated' }] }), /port of segment x tap-lan is already used as port of segment lan/],
    ['external used as a port', withSegment({ ports: ['wan0'] }), /port of segment s wan0 is already used as external interface/],
    ['bad subnet', withSegment({ subnets: ['10.9.0.0'] }), /segment s subnet "10.9.0.0" needs a prefix length/],
    ['duplicate subnet', withSegment({ subnets: ['10.9.0.0/24', '10.9.0.7/24'] }), /subnet 10.9.0.0\/24 is listed twice/],
    ['extend without clamp', withSegment({ mode: 'extend' }), /extend segment needs its MSS clamp/],
    ['extend without ports', withSegment({ mode: 'extend', mss: MSS, ports: [] }), /extend segment needs its bridge ports/],
    ['isolated without ports', withSegment({ mode: 'isolated', ports: [] }), /isolated segment needs its bridge ports/],
    ['tunnel port not a port', withSegment({ tunnelPorts: ['tap-x'] }), /segment s: tunnel port tap-x is not one of its ports/],
    ['gateway without subnets', withSegment({ subnets: [] }), /gateway segment needs its subnets/],
    ['internet without external', noExternal(withSegment({ internet: true })), /segment s has internet but the appliance has no external interface/],
    ['bad clamp', withSegment({ mss: { ipv4: 100, ipv6: 1360 } }), /segment s: IPv4 MSS 100/],
    ['SSH', withRules(port({ publicPort: 22 })), /public IP rule https: tcp port 22 is the appliance's port for SSH and cannot be mapped/],
    ['management API', withRules(port({ publicPort: 8443 })), /tcp port 8443 is the appliance's port for the management API/],
    ['tunnel', withRules(port({ protocol: 'udp', publicPort: 51820 })), /udp port 51820 is the appliance's port for the tunnel/],
    ['whole appliance address', withRules(whole({ publicAddress: '203.0.113.2' })), /203.0.113.2 is the appliance's own address .* cannot be mapped whole/],
    ['whole appliance v6 address', withRules(whole({ publicAddress: '2001:db8:ff:0::2', target: 'fd00:2::20' })), /2001:db8:ff::2 is the appliance's own address/],
    ['outside the pool', withRules(port({ publicAddress: '198.51.100.7' })), /public address 198.51.100.7 is outside the public pool \(203.0.113.0\/24, 2001:db8:ff::\/64\)/],
    ['no pool', { ...withRules(port()), external: { name: 'wan0' } }, /outside the public pool \(empty\)/],
    ['replica outside the segment', withRules(port({ target: '10.1.0.5' })), /target 10.1.0.5 is outside segment web \(10.2.0.0\/24, fd00:2::\/64\)/],
    ['target of a segment without subnets', base({ segments: [{ name: 'i', bridge: 'br-i', ports: ['pi'], mode: 'isolated' }], publicRules: [port({ segment: 'i' })] }), /outside segment i \(no subnets\)/],
    ['unknown segment', withRules(port({ segment: 'nope' })), /public IP rule https: segment nope does not exist/],
    ['mixed families', withRules(port({ target: 'fd00:2::10' })), /are of different families/],
    ['rule without external', noExternal({ ...withSegment({}), publicRules: [port({ segment: 's', target: '10.9.0.5' })] }), /public IP rule https: the appliance has no external interface/],
    ['duplicate rule name', withRules(port(), port({ publicPort: 444 })), /public IP rule https is listed twice/],
    ['bad rule name', withRules(port({ name: 'web-1' })), /public IP rule name "web-1"/],
    ['overlapping port mappings', withRules(port(), port({ name: 'b', target: '10.2.0.11' })), /rule b: tcp 203.0.113.17 port 443 is already mapped by rule https/],
    ['port mapping on a whole-mapped address', withRules(whole({ publicAddress: '203.0.113.17' }), port()), /rule https: 203.0.113.17 is already mapped whole by rule db/],
    ['whole mapping on a port-mapped address', withRules(port(), whole({ publicAddress: '203.0.113.17' })), /rule db: 203.0.113.17 is already mapped by rule https/],
    ['two whole mappings of one address', withRules(whole(), whole({ name: 'db2', target: '10.2.0.21' })), /rule db2: 203.0.113.18 is already mapped by rule db/],
    ['two whole mappings to one replica', withRules(whole(), whole({ name: 'db2', publicAddress: '203.0.113.19' })), /target 10.2.0.20 already has a whole-address mapping \(rule db\)/],
    ['bad port', withRules(port({ publicPort: 65536 })), /port 65536 must be an integer 1..65535/],
    ['bad target port', withRules(port({ targetPort: 0 })), /port 0 must be an integer/],
    ['bad protocol', withRules(port({ protocol: 'sctp' as 'tcp' })), /protocol must be tcp or udp/],
    ['bad kind', withRules({ ...whole(), kind: 'range' } as unknown as PublicRule), /kind must be port or address/],
    ['bad public address', withRules(port({ publicAddress: '203.0.113.300' })), /public address "203.0.113.300" is not an IPv4 or IPv6 address/],
  ];
  for (const [why, d, re] of refusals) {
    it(`refuses: ${why}`, () => {
      let err: unknown;
      try { normalizeFirewall(d); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(re);
    });
  }
});
