/**
 * Table tests of segment modes in the config: what is accepted, what is
 * refused (with the field named), and the desired state computed from it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IPS_SRC_NAT } from '../netconfig/conntrack.js';
import type { DesiredFirewall } from '../netconfig/nft-desired.js';
import { normalizeFirewall } from '../netconfig/nft-desired.js';
import { renderRuleset } from '../netconfig/nft-render.js';
import { parseApplianceConfig, type ApplianceConfig } from './config.js';
import { desiredFirewall } from './daemon.js';
import { EXAMPLE_SP_CONFIG } from './modes-example.js';
import {
  announcements, checkRuntimeChange, conntrackFlushes, firewallWithModes, heldPublicAddresses, kernelSettings, networkWithModes, restartField, stillHeld,
} from './modes.js';

/** An SP appliance: web (gateway, internet), db (gateway), lab (extend), with rules. */
function sp(over: Record<string, unknown> = {}, segOver: Record<number, Record<string, unknown>> = {}): Record<string, unknown> {
  const segs = [
    { id: 10, name: 'web', uplink: 'c10', mode: 'gateway', internet: true, gateway: { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' } },
    { id: 20, name: 'db', uplink: 'c20', mode: 'gateway', gateway: { ipv4: '10.2.0.1/24' } },
    { id: 30, name: 'lab', uplink: 'c30' },
  ].map((s) => ({ ...s, ...segOver[s.id] }));
  return {
    role: 'sp', name: 'sp-acme',
    tunnel: { listenPort: 51820, peers: [] },
    external: { interface: 'ext0', addresses: ['203.0.113.2/24', '2001:db8:ff::2/64'], defaultRoute: { ipv4: '203.0.113.1', ipv6: '2001:db8:ff::1' }, publicPool: ['203.0.113.16/28', '2001:db8:ff:1::/64'] },
    publicRules: [
      { name: 'web', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.10', targetPort: 8080 },
      { name: 'web6', kind: 'port', segment: 10, publicAddress: '2001:db8:ff:1::17', protocol: 'tcp', publicPort: 80, target: 'fd00:1::10' },
      { name: 'db1', kind: 'address', segment: 20, publicAddress: '203.0.113.18', target: '10.2.0.10' },
    ],
    segments: segs,
    ...over,
  };
}

const parse = (raw: Record<string, unknown>): ApplianceConfig => parseApplianceConfig(raw, 'f');
const rule = (i: number, over: Record<string, unknown>): Record<string, unknown> => {
  const rules = structuredClone((sp().publicRules as Record<string, unknown>[]));
  rules[i] = { ...rules[i], ...over };
  return { publicRules: rules };
};
const addRule = (r: Record<string, unknown>): Record<string, unknown> => ({ publicRules: [...(sp().publicRules as unknown[]), r] });

describe('config: modes, external, public IP rules', () => {
  it('parses a full SP config, canonicalizing addresses', () => {
    const c = parse(sp({}, { 10: { gateway: { ipv4: '10.1.0.1/24', ipv6: 'FD00:1:0::1/64' } } }));
    expect(c.segments.map((s) => [s.id, s.mode, s.internet, s.gateway])).toEqual([
      [10, 'gateway', true, { ipv4: '10.1.0.1/24', ipv6: 'fd00:1::1/64' }],
      [20, 'gateway', undefined, { ipv4: '10.2.0.1/24' }],
      [30, undefined, undefined, undefined],
    ]);
    expect(c.external).toEqual({
      interface: 'ext0', addresses: ['203.0.113.2/24', '2001:db8:ff::2/64'],
      defaultRoute: { ipv4: '203.0.113.1', ipv6: '2001:db8:ff::1' }, publicPool: ['203.0.113.16/28', '2001:db8:ff:1::/64'],
    });
    expect(c.publicRules).toHaveLength(3);
  });

  it('keeps gateway, internet and rules of a segment in extend mode (a failover is a change of mode alone)', () => {
    const c = parse(sp({}, { 10: { mode: 'extend' }, 20: { mode: 'isolated' } }));
    expect(c.segments[0]).toMatchObject({ mode: 'extend', internet: true, gateway: { ipv4: '10.1.0.1/24' } });
    expect(c.publicRules).toHaveLength(3);
  });

  it('a tenant appliance may isolate a segment', () => {
    expect(parse({ role: 'tenant', name: 't', segments: [{ id: 1, name: 'a', mode: 'isolated' }] }).segments[0]!.mode).toBe('isolated');
  });

  it('allows UDP 22, TCP on the tunnel port, and port mappings of the appliance\'s own address', () => {
    expect(() => parse(sp(addRule({ name: 'u22', kind: 'port', segment: 10, publicAddress: '203.0.113.20', protocol: 'udp', publicPort: 22, target: '10.1.0.10' })))).not.toThrow();
    expect(() => parse(sp(addRule({ name: 't', kind: 'port', segment: 10, publicAddress: '203.0.113.20', protocol: 'tcp', publicPort: 51820, target: '10.1.0.10' })))).not.toThrow();
    expect(() => parse({
      ...sp(), external: { ...(sp().external as object), publicPool: ['203.0.113.0/24'] },
      publicRules: [{ name: 'own', kind: 'port', segment: 10, publicAddress: '203.0.113.2', protocol: 'tcp', publicPort: 80, target: '10.1.0.10' }],
    })).not.toThrow();
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['bad mode', sp({}, { 30: { mode: 'routed' } }), 'f: segments[2].mode: must be "extend", "gateway" or "isolated", got "routed"'],
    ['gateway mode without gateway', sp({}, { 30: { mode: 'gateway' } }), 'f: segments[2].gateway: a segment in gateway mode needs the production gateway address'],
    ['internet not a boolean', sp({}, { 30: { internet: 'yes' } }), 'f: segments[2].internet: must be true or false'],
    ['gateway of the wrong family', sp({}, { 20: { gateway: { ipv4: 'fd00::1/64' } } }), 'f: segments[1].gateway.ipv4: fd00::1/64 is not an IPv4 address'],
    ['gateway without prefix', sp({}, { 20: { gateway: { ipv4: '10.2.0.1' } } }), 'f: segments[1].gateway.ipv4: "10.2.0.1" is not ADDRESS/PREFIX'],
    ['gateway is the network address', sp({}, { 20: { gateway: { ipv4: '10.2.0.0/24' } } }), 'f: segments[1].gateway.ipv4: 10.2.0.0 is the network or broadcast address of 10.2.0.0/24'],
    ['gateway /32', sp({}, { 20: { gateway: { ipv4: '10.2.0.1/32' } } }), 'f: segments[1].gateway.ipv4: prefix length /32 must be 1..30'],
    ['empty gateway', sp({}, { 20: { gateway: {} } }), 'f: segments[1].gateway: give ipv4 and/or ipv6'],
    ['unknown gateway field', sp({}, { 20: { gateway: { ipv4: '10.2.0.1/24', mac: 'x' } } }), 'f: segments[1].gateway.mac: unknown field (allowed: ipv4, ipv6)'],
    ['link-local v6 gateway', sp({}, { 20: { gateway: { ipv6: 'fe80::1/64' } } }), 'f: segments[1].gateway.ipv6: a link-local address is not a gateway prefix'],
    ['overlapping gateway prefixes', sp({}, { 30: { gateway: { ipv4: '10.1.0.129/25' } } }), 'f: segments[2].gateway.ipv4: 10.1.0.128/25 overlaps 10.1.0.0/24 of segments[0].gateway.ipv4'],
    ['gateway prefix overlapping the external subnet', sp({}, { 30: { gateway: { ipv4: '203.0.113.200/25' } } }), 'f: segments[2].gateway.ipv4: 203.0.113.128/25 overlaps 203.0.113.0/24 of external.addresses[0]'],
    ['gateway mode on a tenant', { role: 'tenant', name: 't', segments: [{ id: 1, name: 'a', mode: 'gateway', gateway: { ipv4: '10.0.0.1/24' } }] }, 'f: segments[0].mode: gateway mode is for the SP appliance (role "sp")'],
    ['external on a tenant', { role: 'tenant', name: 't', segments: [], external: { interface: 'e', addresses: ['192.0.2.1/24'] } }, 'f: external: the external interface is for the SP appliance (role "sp")'],
    ['internet without external', { ...sp(), external: undefined, publicRules: [] }, 'f: segments[0].internet: internet access needs the external section'],
    ['external is a segment uplink', sp({ external: { interface: 'c30', addresses: ['203.0.113.2/24'] } }), 'f: external.interface: c30 is the uplink of segment 30 (segments[2])'],
    ['external without addresses', sp({ external: { interface: 'ext0', addresses: [] } }), "f: external.addresses: must be a non-empty array of the appliance's own ADDRESS/PREFIX"],
    ['default route off-link', sp({ external: { interface: 'ext0', addresses: ['203.0.113.2/24'], defaultRoute: { ipv4: '198.51.100.1' } } }),
      'f: external.defaultRoute.ipv4: next hop 198.51.100.1 is not in the subnets of external.addresses (203.0.113.0/24)'],
    ['unknown external field', sp({ external: { interface: 'ext0', addresses: ['203.0.113.2/24'], mtu: 1500 } }), 'f: external.mtu: unknown field (allowed: interface, addresses, defaultRoute, publicPool)'],
    ['rules without external', { ...sp({}, { 10: { internet: false } }), external: undefined }, 'f: publicRules: public IP rules need the external section'],
    ['port 22', sp(rule(0, { publicPort: 22 })), "f: publicRules[0].publicPort: tcp port 22 is the appliance's port for SSH and cannot be mapped"],
    ['management port', sp(rule(0, { publicPort: 8443 })), "f: publicRules[0].publicPort: tcp port 8443 is the appliance's port for the management API and cannot be mapped"],
    ['tunnel port', sp(rule(0, { protocol: 'udp', publicPort: 51820 })), "f: publicRules[0].publicPort: udp port 51820 is the appliance's port for the tunnel and cannot be mapped"],
    ['address outside the pool', sp(rule(0, { publicAddress: '203.0.113.99' })), 'f: publicRules[0].publicAddress: 203.0.113.99 is outside the public pool (203.0.113.16/28, 2001:db8:ff:1::/64)'],
    ['replica outside the segment', sp(rule(0, { target: '10.2.0.10' })), 'f: publicRules[0].target: replica 10.2.0.10 is outside segment 10 (10.1.0.0/24)'],
    ['target is the gateway', sp(rule(0, { target: '10.1.0.1' })), "f: publicRules[0].target: 10.1.0.1 is the segment's gateway address (the appliance), not a replica"],
    ['segment without a gateway of that family', sp(rule(2, { segment: 30, target: '10.3.0.5' })), 'f: publicRules[2].target: segment 30 has no IPv4 gateway address'],
    ['unknown segment', sp(rule(0, { segment: 99 })), 'f: publicRules[0].segment: 99 is not a configured segment id'],
    ['mixed families', sp(rule(0, { target: 'fd00:1::10' })), 'f: publicRules[0].target: fd00:1::10 is IPv6 but the public address 203.0.113.17 is IPv4'],
    ['overlapping port mappings', sp(addRule({ name: 'web2', kind: 'port', segment: 10, publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 80, target: '10.1.0.11' })),
      'f: publicRules[3].publicPort: tcp 203.0.113.17 port 80 is already mapped by rule web: the mappings overlap'],
    ['port mapping on a 1:1 address', sp(addRule({ name: 'p', kind: 'port', segment: 20, publicAddress: '203.0.113.18', protocol: 'tcp', publicPort: 80, target: '10.2.0.11' })),
      'f: publicRules[3].publicAddress: 203.0.113.18 is already mapped 1:1 by rule db1: the mappings overlap'],
    ['1:1 on a port-mapped address', sp(addRule({ name: 'w', kind: 'address', segment: 10, publicAddress: '203.0.113.17', target: '10.1.0.11' })),
      'f: publicRules[3].publicAddress: 203.0.113.17 is already mapped by rule web: the mappings overlap'],
    ['two 1:1 to one replica', sp(addRule({ name: 'db2', kind: 'address', segment: 20, publicAddress: '203.0.113.19', target: '10.2.0.10' })),
      'f: publicRules[3].target: replica 10.2.0.10 already has a 1:1 mapping (rule db1)'],
    ['1:1 of the appliance address', { ...sp(), external: { interface: 'ext0', addresses: ['203.0.113.2/24'], publicPool: ['203.0.113.0/24'] },
      publicRules: [{ name: 'x', kind: 'address', segment: 20, publicAddress: '203.0.113.2', target: '10.2.0.10' }] },
    "f: publicRules[0].publicAddress: 203.0.113.2 is the appliance's own address (external.addresses: SSH, management API, tunnel) and cannot be mapped 1:1"],
    ['duplicate rule name', sp(rule(1, { name: 'web' })), 'f: publicRules[1].name: rule name web is used twice'],
    ['bad rule name', sp(rule(0, { name: 'Web-1' })), 'f: publicRules[0].name: must be 1-32 of a-z, 0-9 and _'],
    ['bad kind', sp(rule(0, { kind: 'range' })), 'f: publicRules[0].kind: must be "port" (public address + protocol + port) or "address" (1:1, all ports), got "range"'],
    ['port field on a 1:1 rule', sp(rule(2, { publicPort: 80 })), 'f: publicRules[2].publicPort: unknown field (allowed: kind, name, segment, publicAddress, target)'],
    ['bad port', sp(rule(0, { publicPort: 70000 })), 'f: publicRules[0].publicPort: must be an integer from 1 to 65535'],
    ['bad protocol', sp(rule(0, { protocol: 'sctp' })), 'f: publicRules[0].protocol: must be "tcp" or "udp", got "sctp"'],
    ['routeBetweenSegments not a boolean', sp({ routeBetweenSegments: 1 }), 'f: routeBetweenSegments: must be true or false'],
  ];
  it.each(refusals)('refuses %s, naming the field', (_why, raw, msg) => {
    expect(() => parse(raw)).toThrow(msg);
  });
});

const BR = (id: number): string => `nea-br${id}`;
const TAP = (id: number): string => `nea-tap${id}`;

function base(c: ApplianceConfig): DesiredFirewall {
  return {
    appliance: 'sp_acme', appliancePorts: { managementTcp: 8443, tunnelUdp: 51820 },
    segments: c.segments.map((s) => ({ name: `seg${s.id}`, bridge: BR(s.id), ports: [TAP(s.id), `c${s.id}`], mode: 'extend' as const, mss: { ipv4: 1380, ipv6: 1360 } })),
  };
}

describe('desired state from modes', () => {
  const c = parse(sp());

  it('firewall: modes, internet, subnets from the gateways, tunnel ports, external, rules; the kernel-ready state renders', () => {
    const fw = firewallWithModes(base(c), c, TAP);
    expect(fw.segments.map((s) => [s.name, s.mode, s.internet, s.subnets, s.tunnelPorts])).toEqual([
      ['seg10', 'gateway', true, ['10.1.0.0/24', 'fd00:1::/64'], ['nea-tap10']],
      ['seg20', 'gateway', false, ['10.2.0.0/24'], ['nea-tap20']],
      ['seg30', 'extend', false, undefined, ['nea-tap30']],
    ]);
    expect(fw.external).toEqual({ name: 'ext0', applianceAddresses: ['203.0.113.2', '2001:db8:ff::2'], publicPool: ['203.0.113.16/28', '2001:db8:ff:1::/64'] });
    expect(fw.publicRules?.map((r) => `${r.name}:${r.segment}`)).toEqual(['web:seg10', 'web6:seg10', 'db1:seg20']);
    expect(() => normalizeFirewall(fw)).not.toThrow();
    const script = renderRuleset(fw);
    expect(script).toContain('ip daddr 203.0.113.17 tcp dport 80 counter dnat ip to 10.1.0.10:8080 comment "dnat-web"');
    expect(script).toContain('oifname "ext0" ip saddr 10.1.0.0/24 counter snat ip to 203.0.113.2 comment "masq-seg10-v4"');
    expect(script).toContain('oifname "ext0" ip6 saddr fd00:1::/64 counter snat ip6 to 2001:db8:ff::2 comment "masq-seg10-v6"');
    expect(script).toContain('iifname "nea-tap10" counter drop comment "cut-seg10-in"');
  });

  it('network: gateway addresses on gateway bridges only; external addresses, held public addresses, default routes', () => {
    const net = networkWithModes({ links: c.segments.map((s) => ({ kind: 'bridge', name: BR(s.id), up: true, addresses: [] })), routes: [], neighbours: [] }, c, BR);
    expect(net.links).toEqual([
      { kind: 'bridge', name: 'nea-br10', up: true, addresses: ['10.1.0.1/24', 'fd00:1::1/64'] },
      { kind: 'bridge', name: 'nea-br20', up: true, addresses: ['10.2.0.1/24'] },
      { kind: 'bridge', name: 'nea-br30', up: true, addresses: [] },
      { kind: 'existing', name: 'ext0', up: true, addresses: ['203.0.113.2/24', '2001:db8:ff::2/64', '203.0.113.17/32', '2001:db8:ff:1::17/128', '203.0.113.18/32'] },
    ]);
    expect(net.routes).toEqual([
      { dst: '0.0.0.0/0', via: '203.0.113.1', dev: 'ext0', src: '203.0.113.2' },
      { dst: '::/0', via: '2001:db8:ff::1', dev: 'ext0' },
    ]);
  });

  it('extend everywhere: no address on any bridge, no public address held', () => {
    const e = parse(sp({}, { 10: { mode: 'extend' }, 20: { mode: 'extend' } }));
    expect(heldPublicAddresses(e)).toEqual([]);
    const net = networkWithModes({ links: [{ kind: 'bridge', name: 'nea-br10', addresses: [] }] }, e, BR);
    expect(net.links[0]!.addresses).toEqual([]);
    expect(net.links[1]!.addresses).toEqual(['203.0.113.2/24', '2001:db8:ff::2/64']);
  });

  it('kernel settings: bridged frames out of the IP hooks; forwarding per family while a gateway needs it; per bridge arp_ignore and IPv6 only on IPv6 gateways', () => {
    expect(kernelSettings(c, BR)).toEqual([
      { path: 'net/bridge/bridge-nf-call-iptables', value: '0', optional: true },
      { path: 'net/bridge/bridge-nf-call-ip6tables', value: '0', optional: true },
      { path: 'net/bridge/bridge-nf-call-arptables', value: '0', optional: true },
      { path: 'net/ipv4/ip_forward', value: '1' },
      { path: 'net/ipv6/conf/all/forwarding', value: '1' },
      { path: 'net/ipv4/conf/nea-br10/arp_ignore', value: '1' },
      { path: 'net/ipv6/conf/nea-br10/disable_ipv6', value: '0' },
      { path: 'net/ipv4/conf/nea-br20/arp_ignore', value: '1' },
      { path: 'net/ipv6/conf/nea-br20/disable_ipv6', value: '1' },
      { path: 'net/ipv4/conf/nea-br30/arp_ignore', value: '1' },
      { path: 'net/ipv6/conf/nea-br30/disable_ipv6', value: '1' },
    ]);
    expect(kernelSettings(c, BR, (id) => [TAP(id), `c${id}`]).filter((s) => s.path.includes('/conf/nea-tap') || s.path.includes('/conf/c'))).toEqual(
      [10, 20, 30].flatMap((id) => [
        { path: `net/ipv6/conf/nea-tap${id}/disable_ipv6`, value: '1' },
        { path: `net/ipv6/conf/c${id}/disable_ipv6`, value: '1' },
      ]));
    const e = parse(sp({}, { 10: { mode: 'extend' }, 20: { mode: 'isolated' } }));
    expect(kernelSettings(e, BR).filter((s) => !s.path.includes('/conf/nea-') && !s.path.startsWith('net/bridge/'))).toEqual([]);
  });

  it('announcements: gateway addresses and public IPv4 addresses newly held; repeats only while still held', () => {
    const ext = parse(sp({}, { 10: { mode: 'extend' } }));
    expect(announcements(undefined, c, BR)).toEqual([
      { segment: 10, link: 'nea-br10', ipv4: '10.1.0.1', ipv6: 'fd00:1::1', router: true },
      { segment: 20, link: 'nea-br20', ipv4: '10.2.0.1', router: true },
      { link: 'ext0', ipv4: '203.0.113.17', router: false },
      { link: 'ext0', ipv4: '203.0.113.18', router: false },
    ]);
    expect(announcements(ext, c, BR)).toEqual([
      { segment: 10, link: 'nea-br10', ipv4: '10.1.0.1', ipv6: 'fd00:1::1', router: true },
      { link: 'ext0', ipv4: '203.0.113.17', router: false },
    ]);
    expect(announcements(c, ext, BR)).toEqual([]);
    expect(announcements(c, c, BR)).toEqual([]);
    const [gw, , pub] = announcements(undefined, c, BR);
    expect([stillHeld(c, gw!), stillHeld(ext, gw!), stillHeld(c, pub!), stillHeld(ext, pub!), stillHeld(undefined, gw!)]).toEqual([true, false, true, false, false]);
    const moved = parse(sp({}, { 10: { gateway: { ipv4: '10.1.0.254/24', ipv6: 'fd00:1::1/64' } } }));
    expect(stillHeld(moved, gw!)).toBe(false);
  });

  it('conntrack flushes: removed or changed rules, rules whose segment left gateway mode, lost internet', () => {
    expect(conntrackFlushes(c, c)).toEqual([]);
    const noWeb = parse({ ...sp(), publicRules: (sp().publicRules as unknown[]).slice(1) });
    expect(conntrackFlushes(c, noWeb)).toEqual([{ protocol: 6, original: { dst: '203.0.113.17', dstPort: 80 } }]);
    const moved = parse(sp(rule(0, { targetPort: 8081 })));
    expect(conntrackFlushes(c, moved)).toEqual([{ protocol: 6, original: { dst: '203.0.113.17', dstPort: 80 } }]);
    const dbExtend = parse(sp({}, { 20: { mode: 'extend' } }));
    expect(conntrackFlushes(c, dbExtend)).toEqual([{ original: { dst: '203.0.113.18' } }, { reply: { dst: '203.0.113.18' } }]);
    const noInternet = parse(sp({}, { 10: { internet: false } }));
    expect(conntrackFlushes(c, noInternet)).toEqual([{ statusAll: IPS_SRC_NAT, originalSrcIn: ['10.1.0.0/24', 'fd00:1::/64'] }]);
    // Gaining rules or internet flushes nothing.
    expect(conntrackFlushes(dbExtend, c)).toEqual([]);
  });

  it('runtime changes: modes, rules, external and routing apply; the rest takes a restart', () => {
    expect(restartField(c, parse(sp({ routeBetweenSegments: true }, { 30: { mode: 'isolated' } })))).toBeUndefined();
    expect(restartField(c, parse({ ...sp(), external: undefined, publicRules: [] , segments: (sp().segments as Record<string, unknown>[]).map((s) => ({ ...s, internet: false })) }))).toBeUndefined();
    expect(restartField(c, parse(sp({ name: 'other' })))).toBe('name');
    expect(restartField(c, parse(sp({ tunnel: { listenPort: 51821, peers: [] } })))).toBe('tunnel');
    expect(restartField(c, parse(sp({}, { 30: { uplink: 'c31' } })))).toBe('segments[2] (id, name or backing)');
    expect(restartField(c, parse({ ...sp(), segments: (sp().segments as unknown[]).slice(0, 2), publicRules: [] }))).toBe('segments (their number)');
    expect(() => { checkRuntimeChange(c, parse(sp({ name: 'other' }))); }).toThrow(/^name differs from the running appliance's: .*restart the appliance/);
  });
});

describe('docs/modes.md', () => {
  it('prints exactly the ruleset the appliance renders from its example config', () => {
    const doc = readFileSync(new URL('../../docs/modes.md', import.meta.url), 'utf8');
    const block = /<!-- rendered from src\/appliance\/modes-example.ts; modes.test.ts checks it -->\n```\n([\s\S]*?)```\n/.exec(doc)?.[1];
    const c = parseApplianceConfig(structuredClone(EXAMPLE_SP_CONFIG), 'example');
    expect(block).toBe(renderRuleset(firewallWithModes(desiredFirewall(c), c, TAP)));
  });
});
