/**
 * Table tests of the renderer: desired state in, exact `nft -f` text out.
 * A few cases compare the whole script; the rest compare the exact rule
 * lines of each chain (same text, less repetition).
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import type { DesiredFirewall, FirewallSegment, PublicRule } from './nft-desired.js';
import { computeMssClamp } from './nft-mss.js';
import { layoutRuleset, renderRemoval, renderRuleset, ruleNames } from './nft-render.js';
import { normalizeFirewall } from './nft-desired.js';
import { EXAMPLE_FIREWALL as EXAMPLE } from './nft-example.js';

const clamp = computeMssClamp(1500);
const MSS = { ipv4: clamp.ipv4, ipv6: clamp.ipv6 };
const PORTS = { managementTcp: 8443, tunnelUdp: 51820 };

function fw(segments: FirewallSegment[], over: Partial<DesiredFirewall> = {}): DesiredFirewall {
  return { appliance: 'a1', appliancePorts: PORTS, external: { name: 'wan0', publicPool: ['203.0.113.0/24', '2001:db8:ff::/64'] }, segments, ...over };
}

const extend = (name: string, ports: string[] = [`tap-${name}`], over: Partial<FirewallSegment> = {}): FirewallSegment =>
  ({ name, bridge: `br-${name}`, ports, mode: 'extend', mss: MSS, ...over });
const gateway = (name: string, subnets: string[], over: Partial<FirewallSegment> = {}): FirewallSegment =>
  ({ name, bridge: `br-${name}`, ports: [`tap-${name}`], mode: 'gateway', subnets, ...over });

/** Rule lines of each chain of a rendered script, keyed `family chain`. */
function chains(script: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let family = '';
  let key = '';
  for (const line of script.split('\n')) {
    const t = /^table (bridge|inet) \S+ \{$/.exec(line);
    if (t) { family = t[1]!; continue; }
    const c = /^\tchain (\S+) \{$/.exec(line);
    if (c) { key = `${family} ${c[1]!}`; out[key] = []; continue; }
    if (line === '\t}') { key = ''; continue; }
    if (key && line.startsWith('\t\t') && !line.startsWith('\t\ttype ')) out[key]!.push(line.slice(2));
  }
  return out;
}

const FWD_HEAD = 'iifname != ';
const FWD_TAIL = [
  'ct state established ct direction reply counter accept comment "replies"',
  'ct state related counter accept comment "related"',
  'counter drop comment "default-drop"',
];

describe('renderRuleset: whole scripts', () => {
  it('issue 3: one extended segment, no external interface', () => {
    const d: DesiredFirewall = {
      appliance: 't1', appliancePorts: PORTS,
      segments: [{ name: 'prod', bridge: 'br0', ports: ['tap0', 'eth1'], mode: 'extend', mss: MSS }],
    };
    expect(renderRuleset(d)).toBe(`# nea appliance t1: generated from its desired state; replaced as a whole on every change.
table bridge nea_t1 {}
delete table bridge nea_t1
table inet nea_t1 {}
delete table inet nea_t1

table bridge nea_t1 {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname { "tap0", "eth1" } ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-prod-v4"
		iifname { "tap0", "eth1" } ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-prod-v6"
	}
}

table inet nea_t1 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname != "br0" oifname != "br0" counter accept comment "not-ours"
		iifname "br0" oifname "br0" counter accept comment "bridged-prod"
		ct state invalid counter drop comment "invalid"
		ct state established ct direction reply counter accept comment "replies"
		ct state related counter accept comment "related"
		counter drop comment "default-drop"
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`);
  });

  it('an appliance without segments: empty bridge chain, forward judges nothing', () => {
    const d: DesiredFirewall = { appliance: 'empty', appliancePorts: PORTS, segments: [] };
    expect(renderRuleset(d, { tag: 'ab12' })).toBe(`# nea appliance empty: generated from its desired state; replaced as a whole on every change.
table bridge nea_empty {}
delete table bridge nea_empty
table inet nea_empty {}
delete table inet nea_empty

table bridge nea_empty {
	comment "nea:ab12"
	chain forward {
		type filter hook forward priority filter; policy accept;
	}
}

table inet nea_empty {
	comment "nea:ab12"
	chain forward {
		type filter hook forward priority filter; policy drop;
		counter accept comment "not-ours"
		ct state invalid counter drop comment "invalid"
		ct state established ct direction reply counter accept comment "replies"
		ct state related counter accept comment "related"
		counter drop comment "default-drop"
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`);
  });

  it('the documented example (all modes, routing, every kind of public IP rule)', () => {
    expect(renderRuleset(EXAMPLE)).toBe(`# nea appliance acme: generated from its desired state; replaced as a whole on every change.
table bridge nea_acme {}
delete table bridge nea_acme
table inet nea_acme {}
delete table inet nea_acme

table bridge nea_acme {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname { "tap-lan", "cloud-lan" } ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-lan-v4"
		iifname { "tap-lan", "cloud-lan" } ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-lan-v6"
		iifname "tap-web" counter drop comment "cut-web-in"
		oifname "tap-web" counter drop comment "cut-web-out"
		iifname "tap-lab" counter drop comment "isolated-lab"
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oifname "tap-web" counter drop comment "cut-web-local"
		oifname "tap-lab" counter drop comment "isolated-lab-local"
	}
}

table inet nea_acme {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname != { "br-lan", "br-web", "br-db", "br-lab" } oifname != { "br-lan", "br-web", "br-db", "br-lab" } counter accept comment "not-ours"
		iifname "br-lan" oifname "br-lan" counter accept comment "bridged-lan"
		iifname "br-web" oifname "br-web" counter accept comment "bridged-web"
		iifname "br-db" oifname "br-db" counter accept comment "bridged-db"
		ct state invalid counter drop comment "invalid"
		iifname "br-web" oifname "wan0" counter accept comment "internet-web"
		iifname { "br-web", "br-db" } oifname { "br-web", "br-db" } counter accept comment "routed"
		oifname "br-web" ip daddr 10.2.0.10 tcp dport 8443 ct status dnat ct original ip daddr 203.0.113.17 counter accept comment "map-https"
		oifname "br-web" ip6 daddr fd00:2::10 tcp dport 443 ct status dnat ct original ip6 daddr 2001:db8:ff::17 counter accept comment "map-https6"
		oifname "br-db" ip daddr 10.3.0.5 ct status dnat ct original ip daddr 203.0.113.18 counter accept comment "map-db1"
		ct state established ct direction reply counter accept comment "replies"
		ct state related counter accept comment "related"
		counter drop comment "default-drop"
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 203.0.113.17 tcp dport 443 counter dnat ip to 10.2.0.10:8443 comment "dnat-https"
		ip6 daddr 2001:db8:ff::17 tcp dport 443 counter dnat ip6 to [fd00:2::10]:443 comment "dnat-https6"
		ip daddr 203.0.113.18 counter dnat ip to 10.3.0.5 comment "dnat-db1"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" ip saddr 10.3.0.5 counter snat ip to 203.0.113.18 comment "snat-db1"
		ip saddr 10.2.0.0/24 ip daddr 10.2.0.0/24 ct status dnat counter masquerade comment "hairpin-web-v4"
		ip6 saddr fd00:2::/64 ip6 daddr fd00:2::/64 ct status dnat counter masquerade comment "hairpin-web-v6"
		ip saddr 10.3.0.0/24 ip daddr 10.3.0.0/24 ct status dnat counter masquerade comment "hairpin-db-v4"
		oifname "wan0" ip saddr 10.2.0.0/24 counter snat ip to 203.0.113.2 comment "masq-web-v4"
		oifname "wan0" ip6 saddr fd00:2::/64 counter masquerade comment "masq-web-v6"
	}
}
`);
  });
});

describe('renderRuleset: chains by case', () => {
  const cases: { why: string; d: DesiredFirewall; expect: Record<string, string[]> }[] = [
    {
      why: 'extend, one port: the clamp matches that port alone; another WAN MTU gives other values',
      d: fw([extend('x', ['tap9'], { mss: { ipv4: computeMssClamp(1420).ipv4, ipv6: computeMssClamp(1420).ipv6 } })]),
      expect: {
        'bridge forward': [
          'iifname "tap9" ether type ip tcp flags syn tcp option maxseg size > 1300 counter tcp option maxseg size set 1300 comment "mss-x-v4"',
          'iifname "tap9" ether type ip6 tcp flags syn tcp option maxseg size > 1280 counter tcp option maxseg size set 1280 comment "mss-x-v6"',
        ],
        'inet forward': [
          'iifname != "br-x" oifname != "br-x" counter accept comment "not-ours"',
          'iifname "br-x" oifname "br-x" counter accept comment "bridged-x"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'extend with internet, subnets and public IP rules: none of them act outside gateway mode',
      d: fw([extend('x', ['t'], { internet: true, subnets: ['10.0.0.0/24'] })], {
        publicRules: [{ kind: 'port', name: 'p', segment: 'x', publicAddress: '203.0.113.9', protocol: 'tcp', publicPort: 80, target: '10.0.0.9' }],
      }),
      expect: {
        'bridge forward': [
          'iifname "t" ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-x-v4"',
          'iifname "t" ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-x-v6"',
        ],
        'inet forward': [
          'iifname != "br-x" oifname != "br-x" counter accept comment "not-ours"',
          'iifname "br-x" oifname "br-x" counter accept comment "bridged-x"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'two extended segments of one tenant: one clamp pair each, no routing between them',
      d: fw([extend('a'), extend('b', ['tap-b', 'eth-b'])], { routeBetweenSegments: true }),
      expect: {
        'bridge forward': [
          'iifname "tap-a" ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-a-v4"',
          'iifname "tap-a" ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-a-v6"',
          'iifname { "tap-b", "eth-b" } ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-b-v4"',
          'iifname { "tap-b", "eth-b" } ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-b-v6"',
        ],
        'inet forward': [
          'iifname != { "br-a", "br-b" } oifname != { "br-a", "br-b" } counter accept comment "not-ours"',
          'iifname "br-a" oifname "br-a" counter accept comment "bridged-a"',
          'iifname "br-b" oifname "br-b" counter accept comment "bridged-b"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'tunnel ports cut only in gateway mode: in and out at the bridge, and the appliance\'s own frames',
      d: fw([
        gateway('g', ['10.6.0.0/24'], { ports: ['tap-g', 'eth-g'], tunnelPorts: ['tap-g'] }),
        extend('e', ['tap-e', 'eth-e'], { tunnelPorts: ['tap-e'] }),
        { name: 'i', bridge: 'br-i', ports: ['tap-i'], tunnelPorts: ['tap-i'], mode: 'isolated' },
      ]),
      expect: {
        'bridge forward': [
          'iifname "tap-g" counter drop comment "cut-g-in"',
          'oifname "tap-g" counter drop comment "cut-g-out"',
          'iifname { "tap-e", "eth-e" } ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-e-v4"',
          'iifname { "tap-e", "eth-e" } ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-e-v6"',
          'iifname "tap-i" counter drop comment "isolated-i"',
        ],
        'bridge output': ['oifname "tap-g" counter drop comment "cut-g-local"', 'oifname "tap-i" counter drop comment "isolated-i-local"'],
        'inet forward': [
          'iifname != { "br-g", "br-e", "br-i" } oifname != { "br-g", "br-e", "br-i" } counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'iifname "br-e" oifname "br-e" counter accept comment "bridged-e"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'isolated: frames from its ports dropped at the bridge, nothing bridged or routed at L3',
      d: fw([{ name: 'q', bridge: 'br-q', ports: ['tq', 'eq'], mode: 'isolated', internet: true, subnets: ['10.5.0.0/24'], mss: MSS }]),
      expect: {
        'bridge forward': ['iifname { "tq", "eq" } counter drop comment "isolated-q"'],
        'bridge output': ['oifname { "tq", "eq" } counter drop comment "isolated-q-local"'],
        'inet forward': [
          'iifname != "br-q" oifname != "br-q" counter accept comment "not-ours"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'gateway without internet: bridged within the segment only',
      d: fw([gateway('g', ['10.7.0.1/24'])]),
      expect: {
        'bridge forward': [],
        'inet forward': [
          'iifname != "br-g" oifname != "br-g" counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'gateway with internet, two IPv4 prefixes and one IPv6: SNAT per family, prefixes as a set',
      d: fw([gateway('g', ['10.7.0.1/24', '10.8.0.0/16', 'fd00:7::1/64'], { internet: true })]),
      expect: {
        'bridge forward': [],
        'inet forward': [
          'iifname != "br-g" oifname != "br-g" counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          'iifname "br-g" oifname "wan0" counter accept comment "internet-g"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [
          'oifname "wan0" ip saddr { 10.7.0.0/24, 10.8.0.0/16 } counter masquerade comment "masq-g-v4"',
          'oifname "wan0" ip6 saddr fd00:7::/64 counter masquerade comment "masq-g-v6"',
        ],
      },
    },
    {
      why: 'gateway with internet and the appliance\'s own addresses: SNAT to the first of each family (masquerade where none)',
      d: fw([gateway('g', ['10.7.0.1/24', 'fd00:7::1/64'], { internet: true })], {
        external: { name: 'wan0', applianceAddresses: ['203.0.113.2', '203.0.113.3'], publicPool: ['203.0.113.0/24'] },
      }),
      expect: {
        'bridge forward': [],
        'inet forward': [
          'iifname != "br-g" oifname != "br-g" counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          'iifname "br-g" oifname "wan0" counter accept comment "internet-g"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [
          'oifname "wan0" ip saddr 10.7.0.0/24 counter snat ip to 203.0.113.2 comment "masq-g-v4"',
          'oifname "wan0" ip6 saddr fd00:7::/64 counter masquerade comment "masq-g-v6"',
        ],
      },
    },
    {
      why: 'routing between segments: only gateway segments take part, none when fewer than two',
      d: fw([gateway('a', ['10.1.0.0/24']), extend('e'), gateway('b', ['10.2.0.0/24']), gateway('c', ['10.3.0.0/24'])], { routeBetweenSegments: true }),
      expect: {
        'bridge forward': [
          'iifname "tap-e" ether type ip tcp flags syn tcp option maxseg size > 1380 counter tcp option maxseg size set 1380 comment "mss-e-v4"',
          'iifname "tap-e" ether type ip6 tcp flags syn tcp option maxseg size > 1360 counter tcp option maxseg size set 1360 comment "mss-e-v6"',
        ],
        'inet forward': [
          'iifname != { "br-a", "br-e", "br-b", "br-c" } oifname != { "br-a", "br-e", "br-b", "br-c" } counter accept comment "not-ours"',
          'iifname "br-a" oifname "br-a" counter accept comment "bridged-a"',
          'iifname "br-e" oifname "br-e" counter accept comment "bridged-e"',
          'iifname "br-b" oifname "br-b" counter accept comment "bridged-b"',
          'iifname "br-c" oifname "br-c" counter accept comment "bridged-c"',
          'ct state invalid counter drop comment "invalid"',
          'iifname { "br-a", "br-b", "br-c" } oifname { "br-a", "br-b", "br-c" } counter accept comment "routed"',
          ...FWD_TAIL,
        ],
        'inet prerouting': [],
        'inet postrouting': [],
      },
    },
    {
      why: 'UDP port mapping with the default target port; hairpin for its segment',
      d: fw([gateway('g', ['10.7.0.0/24'])], {
        publicRules: [{ kind: 'port', name: 'dns', segment: 'g', publicAddress: '203.0.113.53', protocol: 'udp', publicPort: 53, target: '10.7.0.53' }],
      }),
      expect: {
        'bridge forward': [],
        'inet forward': [
          'iifname != "br-g" oifname != "br-g" counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          'oifname "br-g" ip daddr 10.7.0.53 udp dport 53 ct status dnat ct original ip daddr 203.0.113.53 counter accept comment "map-dns"',
          ...FWD_TAIL,
        ],
        'inet prerouting': ['ip daddr 203.0.113.53 udp dport 53 counter dnat ip to 10.7.0.53:53 comment "dnat-dns"'],
        'inet postrouting': ['ip saddr 10.7.0.0/24 ip daddr 10.7.0.0/24 ct status dnat counter masquerade comment "hairpin-g-v4"'],
      },
    },
    {
      why: 'IPv6 whole-address mapping: DNAT, SNAT back to the public address, hairpin v6 only',
      d: fw([gateway('g', ['10.7.0.0/24', 'fd00:7::/64'])], {
        publicRules: [{ kind: 'address', name: 'vm6', segment: 'g', publicAddress: '2001:db8:ff::6', target: 'fd00:7::6' }],
      }),
      expect: {
        'bridge forward': [],
        'inet forward': [
          'iifname != "br-g" oifname != "br-g" counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          'oifname "br-g" ip6 daddr fd00:7::6 ct status dnat ct original ip6 daddr 2001:db8:ff::6 counter accept comment "map-vm6"',
          ...FWD_TAIL,
        ],
        'inet prerouting': ['ip6 daddr 2001:db8:ff::6 counter dnat ip6 to fd00:7::6 comment "dnat-vm6"'],
        'inet postrouting': [
          'oifname "wan0" ip6 saddr fd00:7::6 counter snat ip6 to 2001:db8:ff::6 comment "snat-vm6"',
          'ip6 saddr fd00:7::/64 ip6 daddr fd00:7::/64 ct status dnat counter masquerade comment "hairpin-g-v6"',
        ],
      },
    },
    {
      why: 'rules of a gateway segment act, rules of an isolated one do not',
      d: fw([gateway('g', ['10.7.0.0/24']), { name: 'i', bridge: 'br-i', ports: ['ti'], mode: 'isolated', subnets: ['10.8.0.0/24'] }], {
        publicRules: [
          { kind: 'address', name: 'on', segment: 'g', publicAddress: '203.0.113.7', target: '10.7.0.7' },
          { kind: 'address', name: 'off', segment: 'i', publicAddress: '203.0.113.8', target: '10.8.0.8' },
        ],
      }),
      expect: {
        'bridge forward': ['iifname "ti" counter drop comment "isolated-i"'],
        'bridge output': ['oifname "ti" counter drop comment "isolated-i-local"'],
        'inet forward': [
          'iifname != { "br-g", "br-i" } oifname != { "br-g", "br-i" } counter accept comment "not-ours"',
          'iifname "br-g" oifname "br-g" counter accept comment "bridged-g"',
          'ct state invalid counter drop comment "invalid"',
          'oifname "br-g" ip daddr 10.7.0.7 ct status dnat ct original ip daddr 203.0.113.7 counter accept comment "map-on"',
          ...FWD_TAIL,
        ],
        'inet prerouting': ['ip daddr 203.0.113.7 counter dnat ip to 10.7.0.7 comment "dnat-on"'],
        'inet postrouting': [
          'oifname "wan0" ip saddr 10.7.0.7 counter snat ip to 203.0.113.7 comment "snat-on"',
          'ip saddr 10.7.0.0/24 ip daddr 10.7.0.0/24 ct status dnat counter masquerade comment "hairpin-g-v4"',
        ],
      },
    },
  ];
  for (const c of cases) {
    it(c.why, () => {
      const got = chains(renderRuleset(c.d));
      expect(got).toEqual(c.expect);
      expect(got['inet forward']![0]!.startsWith(FWD_HEAD) || got['inet forward']![0] === 'counter accept comment "not-ours"').toBe(true);
    });
  }
});

describe('renderRuleset: contracts', () => {
  it('is deterministic: equal states render equal text', () => {
    expect(renderRuleset(structuredClone(EXAMPLE))).toBe(renderRuleset(EXAMPLE));
  });

  it('starts by ensuring and deleting both tables, so one script installs or replaces', () => {
    const lines = renderRuleset(EXAMPLE).split('\n');
    expect(lines.slice(1, 5)).toEqual(['table bridge nea_acme {}', 'delete table bridge nea_acme', 'table inet nea_acme {}', 'delete table inet nea_acme']);
  });

  it('names the tables after the appliance, so appliances never share one', () => {
    const other = renderRuleset({ ...EXAMPLE, appliance: 'globex' });
    expect(other).not.toContain('nea_acme');
    expect(other).toContain('table inet nea_globex {');
  });

  it('puts a counter and a unique comment on every rule', () => {
    const script = renderRuleset(EXAMPLE);
    const rules = Object.values(chains(script)).flat();
    expect(rules.length).toBeGreaterThan(20);
    for (const r of rules) expect(r).toMatch(/ counter .*comment "[a-z0-9_-]+"$|^counter .*comment "[a-z0-9_-]+"$/);
    const names = rules.map((r) => /comment "([^"]+)"$/.exec(r)![1]);
    expect(new Set(names).size).toBe(names.length);
    expect(ruleNames(EXAMPLE)).toEqual(names);
  });

  it('writes the tag as both tables\' comment', () => {
    const s = renderRuleset(EXAMPLE, { tag: 'deadbeef' });
    expect(s.match(/^\tcomment "nea:deadbeef"$/gm)).toHaveLength(2);
    expect(() => renderRuleset(EXAMPLE, { tag: 'NOT HEX' })).toThrow(/tag/);
  });

  it('refuses an invalid state with ValidationError before rendering anything', () => {
    expect(() => renderRuleset({ ...EXAMPLE, publicRules: [{ kind: 'port', name: 'ssh', segment: 'web', publicAddress: '203.0.113.17', protocol: 'tcp', publicPort: 22, target: '10.2.0.10' } satisfies PublicRule] }))
      .toThrow(ValidationError);
  });

  it('layout lists the chains in order; the bridge output chain only with a cut tunnel port or an isolated segment', () => {
    expect(layoutRuleset(normalizeFirewall(EXAMPLE)).map((c) => `${c.family} ${c.chain}`))
      .toEqual(['bridge forward', 'bridge output', 'inet forward', 'inet prerouting', 'inet postrouting']);
    const noCut = { ...EXAMPLE, segments: EXAMPLE.segments.filter((s) => s.mode !== 'isolated').map((s) => ({ ...s, tunnelPorts: [] })) };
    expect(layoutRuleset(normalizeFirewall(noCut)).map((c) => `${c.family} ${c.chain}`))
      .toEqual(['bridge forward', 'inet forward', 'inet prerouting', 'inet postrouting']);
  });
});

describe('renderRemoval', () => {
  it('deletes both tables whether or not they exist, in one script', () => {
    expect(renderRemoval('nea_t1')).toBe('table bridge nea_t1 {}\ndelete table bridge nea_t1\ntable inet nea_t1 {}\ndelete table inet nea_t1\n');
  });
});
