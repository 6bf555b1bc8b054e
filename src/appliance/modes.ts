/**
 * Segment modes, the external interface and public IP rules in the
 * appliance's config (issue 5, docs/modes.md): their types, their
 * validation, and the pure functions that turn them into desired state
 * (firewall, kernel addresses and routes, kernel settings, announcements,
 * conntrack flushes). No I/O: `gateway.ts` applies what these compute.
 *
 * The fields live in the config file beside the others:
 *
 * ```json
 * { "role": "sp", "name": "sp-acme",
 *   "external": { "interface": "ext0", "addresses": ["203.0.113.2/24"],
 *                 "defaultRoute": { "ipv4": "203.0.113.1" }, "publicPool": ["203.0.113.16/28"] },
 *   "routeBetweenSegments": false,
 *   "segments": [{ "id": 10, "name": "web", "uplink": "c10",
 *                  "mode": "gateway", "internet": true, "gateway": { "ipv4": "10.1.0.1/24" } }],
 *   "publicRules": [{ "name": "web", "kind": "port", "segment": 10, "publicAddress": "203.0.113.17",
 *                     "protocol": "tcp", "publicPort": 80, "target": "10.1.0.10", "targetPort": 8080 }] }
 * ```
 *
 * Persistence across modes: `internet`, `gateway` and the public IP rules of
 * a segment are kept whatever its mode and act only in `gateway` mode, so a
 * failover or failback is a change of `mode` alone.
 *
 * Validation refuses with ValidationError `<file>: <field>: <what>`, naming
 * the field as written in the file (`publicRules[2].publicPort`).
 */
import type { DesiredFirewall, PublicRule, SegmentMode } from '../netconfig/nft-desired.js';
import type { DesiredLink, DesiredNetwork, DesiredRoute } from '../netconfig/desired.js';
import { IPS_SRC_NAT, type ConntrackFilter } from '../netconfig/conntrack.js';
import { formatCidr, formatIp, tryParseIp, type Family } from '../netconfig/ip.js';
import { NeaError, ValidationError } from '../shared/errors.js';
import type { ApplianceConfig, SegmentConfig } from './config.js';

export type { SegmentMode } from '../netconfig/nft-desired.js';

/** The production gateway of a segment, as `ADDRESS/PREFIX` per family. */
export interface GatewayAddresses {
  /** e.g. `10.1.0.1/24`: held on the segment's bridge in gateway mode. */
  ipv4?: string;
  /** e.g. `fd00:1::1/64`. */
  ipv6?: string;
}

/** A segment's fields of this file (part of `SegmentConfig`). */
export interface SegmentModeConfig {
  /**
   * `extend` (default): bridged to production through the tunnel, no address
   * of the appliance on it; `gateway`: the appliance holds the production
   * gateway address, routes, NATs, and the tunnel leg is cut; `isolated`:
   * nothing forwarded. SP appliances only, except `isolated`.
   */
  mode?: SegmentMode;
  /** In gateway mode, SNAT out of the external interface. Default false. */
  internet?: boolean;
  /** The production gateway the appliance takes over in gateway mode (required there). */
  gateway?: GatewayAddresses;
}

/** The interface facing the SP's network and the internet. */
export interface ExternalConfig {
  /** Interface name; it must exist. nea owns its addresses and routes. */
  interface: string;
  /** The appliance's own addresses on it (`ADDRESS/PREFIX`), at least one. */
  addresses: string[];
  /** Next hop of the default route per family; absent: no default route. */
  defaultRoute?: { ipv4?: string; ipv6?: string };
  /** Prefixes public IP rules may use (the SP's pool for this tenant). */
  publicPool?: string[];
}

/** A public IP rule as written in the config: the segment by id. */
export type PublicRuleConfig =
  | { kind: 'port'; name: string; segment: number; publicAddress: string; protocol: 'tcp' | 'udp'; publicPort: number; target: string; targetPort?: number }
  | { kind: 'address'; name: string; segment: number; publicAddress: string; target: string };

/** The appliance-level fields of this file (part of `ApplianceConfig`). */
export interface ApplianceModeConfig {
  external?: ExternalConfig;
  publicRules?: PublicRuleConfig[];
  /** Route between the segments in gateway mode. Default false. */
  routeBetweenSegments?: boolean;
}

/** Config fields of a segment parsed here (config.ts allows them). */
export const SEGMENT_MODE_FIELDS = ['mode', 'internet', 'gateway'] as const;
/** Top-level config fields parsed here. */
export const APPLIANCE_MODE_FIELDS = ['external', 'publicRules', 'routeBetweenSegments'] as const;

/** TCP port of the management API, protected from port mappings (the daemon's MANAGEMENT_PORT). */
export const MANAGEMENT_TCP_PORT = 8443;

/** TCP port of SSH: never mappable. */
export const SSH_PORT = 22;

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const RULE_NAME = /^[a-z0-9][a-z0-9_]{0,31}$/;

function fail(file: string, field: string, what: string): never {
  throw new ValidationError(`${file}: ${field}: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(file: string, at: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(file, `${at}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
}

// ---- prefixes ---------------------------------------------------------------

/** An `ADDRESS/PREFIX` taken apart. */
export interface HostPrefix {
  family: Family;
  /** The address as written, canonical. */
  address: string;
  bytes: Buffer;
  prefixLength: number;
  /** The network, canonical `NETWORK/PREFIX`. */
  network: string;
  networkBytes: Buffer;
}

function mask(bytes: Buffer, len: number): Buffer {
  const out = Buffer.from(bytes);
  for (let bit = len; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(1 << (7 - (bit & 7)));
  return out;
}

/** Parse `ADDRESS/PREFIX`; undefined when malformed. */
export function parseHostPrefix(text: string): HostPrefix | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const ip = tryParseIp(m[1]!);
  const len = Number(m[2]);
  if (!ip || len > ip.bytes.length * 8) return undefined;
  const networkBytes = mask(ip.bytes, len);
  return { family: ip.family, address: formatIp(ip.bytes), bytes: ip.bytes, prefixLength: len, network: formatCidr(networkBytes, len), networkBytes };
}

function contains(p: { networkBytes: Buffer; prefixLength: number }, addr: Buffer): boolean {
  return addr.length === p.networkBytes.length && mask(addr, p.prefixLength).equals(p.networkBytes);
}

function overlaps(a: HostPrefix, b: HostPrefix): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.prefixLength, b.prefixLength);
  return mask(a.networkBytes, len).equals(mask(b.networkBytes, len));
}

function hostPrefix(file: string, field: string, v: unknown, family?: Family): HostPrefix {
  if (typeof v !== 'string') fail(file, field, 'must be a string ADDRESS/PREFIX');
  const p = parseHostPrefix(v);
  if (!p) fail(file, field, `${JSON.stringify(v)} is not ADDRESS/PREFIX`);
  if (family !== undefined && p.family !== family) fail(file, field, `${v} is not an IPv${family} address`);
  return p;
}

function address(file: string, field: string, v: unknown): { family: Family; text: string; bytes: Buffer } {
  if (typeof v !== 'string') fail(file, field, 'must be an IP address string');
  const ip = tryParseIp(v);
  if (!ip) fail(file, field, `${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
  return { family: ip.family, text: formatIp(ip.bytes), bytes: ip.bytes };
}

/** The gateway prefixes of a segment (those given). */
export function gatewayPrefixes(s: SegmentModeConfig): HostPrefix[] {
  return [s.gateway?.ipv4, s.gateway?.ipv6].flatMap((t) => (t === undefined ? [] : [parseHostPrefix(t)!]));
}

// ---- parsing ----------------------------------------------------------------

/**
 * The mode fields of segment `at` (`segments[i]`) of `raw`. `role` refuses
 * what a tenant appliance cannot do. Returns only the fields given.
 */
export function parseSegmentModes(file: string, at: string, raw: Record<string, unknown>, role: string): SegmentModeConfig {
  const out: SegmentModeConfig = {};
  if (raw.mode !== undefined) {
    const m = raw.mode;
    if (m !== 'extend' && m !== 'gateway' && m !== 'isolated') fail(file, `${at}.mode`, `must be "extend", "gateway" or "isolated", got ${JSON.stringify(m)}`);
    if (m === 'gateway' && role !== 'sp') fail(file, `${at}.mode`, 'gateway mode is for the SP appliance (role "sp"): a tenant appliance only extends or isolates its networks');
    out.mode = m;
  }
  if (raw.internet !== undefined) {
    if (typeof raw.internet !== 'boolean') fail(file, `${at}.internet`, 'must be true or false');
    if (raw.internet && role !== 'sp') fail(file, `${at}.internet`, 'internet access is for the SP appliance (role "sp")');
    out.internet = raw.internet;
  }
  if (raw.gateway !== undefined) {
    const g = raw.gateway;
    if (role !== 'sp') fail(file, `${at}.gateway`, 'a gateway address is for the SP appliance (role "sp")');
    if (!isObject(g)) fail(file, `${at}.gateway`, 'must be an object { "ipv4": "ADDRESS/PREFIX", "ipv6": "ADDRESS/PREFIX" }');
    checkKeys(file, `${at}.gateway`, g, ['ipv4', 'ipv6']);
    if (g.ipv4 === undefined && g.ipv6 === undefined) fail(file, `${at}.gateway`, 'give ipv4 and/or ipv6');
    const gw: GatewayAddresses = {};
    if (g.ipv4 !== undefined) {
      const p = hostPrefix(file, `${at}.gateway.ipv4`, g.ipv4, 4);
      if (p.prefixLength < 1 || p.prefixLength > 30) fail(file, `${at}.gateway.ipv4`, `prefix length /${p.prefixLength} must be 1..30 (a LAN with hosts besides its gateway)`);
      const bcast = Buffer.from(p.networkBytes);
      for (let bit = p.prefixLength; bit < 32; bit++) bcast[bit >> 3]! |= 1 << (7 - (bit & 7));
      if (p.bytes.equals(p.networkBytes) || p.bytes.equals(bcast)) fail(file, `${at}.gateway.ipv4`, `${p.address} is the network or broadcast address of ${p.network}; give the gateway's own address`);
      gw.ipv4 = `${p.address}/${p.prefixLength}`;
    }
    if (g.ipv6 !== undefined) {
      const p = hostPrefix(file, `${at}.gateway.ipv6`, g.ipv6, 6);
      if (p.prefixLength < 1 || p.prefixLength > 127) fail(file, `${at}.gateway.ipv6`, `prefix length /${p.prefixLength} must be 1..127`);
      if (p.bytes.equals(p.networkBytes)) fail(file, `${at}.gateway.ipv6`, `${p.address} is the subnet-router anycast address of ${p.network}; give the gateway's own address`);
      if (p.bytes[0] === 0xfe && (p.bytes[1]! & 0xc0) === 0x80) fail(file, `${at}.gateway.ipv6`, 'a link-local address is not a gateway prefix; give the global (or ULA) one');
      gw.ipv6 = `${p.address}/${p.prefixLength}`;
    }
    out.gateway = gw;
  }
  if (out.mode === 'gateway' && !out.gateway) {
    fail(file, `${at}.gateway`, 'a segment in gateway mode needs the production gateway address it takes over ({ "ipv4": "ADDRESS/PREFIX" })');
  }
  return out;
}

interface Ctx {
  file: string;
  config: ApplianceConfig;
}

function parseExternal(ctx: Ctx, raw: unknown): ExternalConfig {
  const { file, config } = ctx;
  if (config.role !== 'sp') fail(file, 'external', 'the external interface is for the SP appliance (role "sp")');
  if (!isObject(raw)) fail(file, 'external', 'must be an object');
  checkKeys(file, 'external', raw, ['interface', 'addresses', 'defaultRoute', 'publicPool']);
  const ifname = raw.interface;
  if (typeof ifname !== 'string' || !IFNAME.test(ifname)) fail(file, 'external.interface', 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
  if (ifname.startsWith('nea-')) fail(file, 'external.interface', `${ifname}: names starting with nea- are the appliance's own links`);
  for (const [i, s] of config.segments.entries()) {
    const b = s.backing ?? (s.uplink === undefined ? undefined : { kind: 'access' as const, interface: s.uplink });
    if (b?.kind === 'access' && b.interface === ifname) fail(file, 'external.interface', `${ifname} is the uplink of segment ${s.id} (segments[${i}]); the external interface must be another one`);
    if (b?.kind === 'vlan' && b.trunk === ifname) fail(file, 'external.interface', `${ifname} is the VLAN trunk of segment ${s.id} (segments[${i}]); the external interface must be another one`);
  }
  if (config.tunnel?.l3?.device === ifname) fail(file, 'external.interface', `${ifname} is the tunnel's L3 device`);
  if (!Array.isArray(raw.addresses) || raw.addresses.length === 0) fail(file, 'external.addresses', "must be a non-empty array of the appliance's own ADDRESS/PREFIX");
  const addrs = raw.addresses.map((a: unknown, i) => {
    const p = hostPrefix(file, `external.addresses[${i}]`, a);
    if (p.family === 4 && p.prefixLength < 32 && p.bytes.equals(p.networkBytes)) fail(file, `external.addresses[${i}]`, `${p.address} is the network address of ${p.network}`);
    return p;
  });
  const seen = new Set<string>();
  for (const [i, p] of addrs.entries()) {
    if (seen.has(p.address)) fail(file, `external.addresses[${i}]`, `${p.address} is listed twice`);
    seen.add(p.address);
  }
  const ext: ExternalConfig = { interface: ifname, addresses: addrs.map((p) => `${p.address}/${p.prefixLength}`) };
  if (raw.defaultRoute !== undefined) {
    const d = raw.defaultRoute;
    if (!isObject(d)) fail(file, 'external.defaultRoute', 'must be an object { "ipv4": NEXT_HOP, "ipv6": NEXT_HOP }');
    checkKeys(file, 'external.defaultRoute', d, ['ipv4', 'ipv6']);
    const route: { ipv4?: string; ipv6?: string } = {};
    for (const fam of [4, 6] as const) {
      const key = fam === 4 ? 'ipv4' : 'ipv6';
      if (d[key] === undefined) continue;
      const field = `external.defaultRoute.${key}`;
      const a = address(file, field, d[key]);
      if (a.family !== fam) fail(file, field, `${a.text} is not an IPv${fam} address`);
      const own = addrs.filter((p) => p.family === fam);
      const onLink = (a.family === 6 && a.bytes[0] === 0xfe && (a.bytes[1]! & 0xc0) === 0x80) || own.some((p) => contains(p, a.bytes));
      if (!onLink) fail(file, field, `next hop ${a.text} is not in the subnets of external.addresses (${own.map((p) => p.network).join(', ') || `no IPv${fam} address`})`);
      if (own.some((p) => p.bytes.equals(a.bytes))) fail(file, field, `next hop ${a.text} is the appliance's own address`);
      route[key] = a.text;
    }
    ext.defaultRoute = route;
  }
  if (raw.publicPool !== undefined) {
    if (!Array.isArray(raw.publicPool)) fail(file, 'external.publicPool', 'must be an array of NETWORK/PREFIX');
    ext.publicPool = raw.publicPool.map((x: unknown, i) => hostPrefix(file, `external.publicPool[${i}]`, x).network);
  }
  return ext;
}

/** What the appliance's own service ports are (protected from port mappings). */
export interface AppliancePorts {
  managementTcp: number;
  tunnelUdp: number;
}

function parseRules(ctx: Ctx, raw: unknown, external: ExternalConfig | undefined, ports: AppliancePorts): PublicRuleConfig[] {
  const { file, config } = ctx;
  if (!Array.isArray(raw)) fail(file, 'publicRules', 'must be an array');
  if (raw.length > 0 && config.role !== 'sp') fail(file, 'publicRules', 'public IP rules are for the SP appliance (role "sp")');
  if (raw.length > 0 && !external) fail(file, 'publicRules', 'public IP rules need the external section (the interface that holds the public addresses)');
  const pool = (external?.publicPool ?? []).map((p) => parseHostPrefix(p)!);
  const own = (external?.addresses ?? []).map((p) => parseHostPrefix(p)!);
  const segs = new Map(config.segments.map((s) => [s.id, s]));
  const names = new Set<string>();
  /** `addr` → whole-address rule; `addr|proto|port` → port rule. */
  const claimed = new Map<string, string>();
  const wholeTargets = new Map<string, string>();
  return raw.map((r: unknown, i): PublicRuleConfig => {
    const at = `publicRules[${i}]`;
    if (!isObject(r)) fail(file, at, 'must be an object');
    if (r.kind !== 'port' && r.kind !== 'address') fail(file, `${at}.kind`, `must be "port" (public address + protocol + port) or "address" (1:1, all ports), got ${JSON.stringify(r.kind)}`);
    checkKeys(file, at, r, r.kind === 'port'
      ? ['kind', 'name', 'segment', 'publicAddress', 'protocol', 'publicPort', 'target', 'targetPort']
      : ['kind', 'name', 'segment', 'publicAddress', 'target']);
    if (typeof r.name !== 'string' || !RULE_NAME.test(r.name)) fail(file, `${at}.name`, 'must be 1-32 of a-z, 0-9 and _, starting with a letter or digit (it names the rule\'s counters)');
    if (names.has(r.name)) fail(file, `${at}.name`, `rule name ${r.name} is used twice`);
    names.add(r.name);
    const seg = typeof r.segment === 'number' ? segs.get(r.segment) : undefined;
    if (!seg) fail(file, `${at}.segment`, `${JSON.stringify(r.segment)} is not a configured segment id`);
    const pub = address(file, `${at}.publicAddress`, r.publicAddress);
    const tgt = address(file, `${at}.target`, r.target);
    if (pub.family !== tgt.family) fail(file, `${at}.target`, `${tgt.text} is IPv${tgt.family} but the public address ${pub.text} is IPv${pub.family}`);
    if (!pool.some((p) => contains(p, pub.bytes))) {
      fail(file, `${at}.publicAddress`, `${pub.text} is outside the public pool (${pool.map((p) => p.network).join(', ') || 'external.publicPool is empty'})`);
    }
    const prefixes = gatewayPrefixes(seg).filter((p) => p.family === tgt.family);
    if (prefixes.length === 0) fail(file, `${at}.target`, `segment ${seg.id} has no IPv${tgt.family} gateway address, so no subnet a replica ${tgt.text} could be in (set segments[].gateway)`);
    if (!prefixes.some((p) => contains(p, tgt.bytes))) fail(file, `${at}.target`, `replica ${tgt.text} is outside segment ${seg.id} (${prefixes.map((p) => p.network).join(', ')})`);
    if (prefixes.some((p) => p.bytes.equals(tgt.bytes))) fail(file, `${at}.target`, `${tgt.text} is the segment's gateway address (the appliance), not a replica`);
    if (r.kind === 'port') {
      if (r.protocol !== 'tcp' && r.protocol !== 'udp') fail(file, `${at}.protocol`, `must be "tcp" or "udp", got ${JSON.stringify(r.protocol)}`);
      const port = (field: string, v: unknown): number => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(file, `${at}.${field}`, 'must be an integer from 1 to 65535');
        return v;
      };
      const publicPort = port('publicPort', r.publicPort);
      const targetPort = r.targetPort === undefined ? undefined : port('targetPort', r.targetPort);
      const protectedBy = r.protocol === 'tcp'
        ? publicPort === SSH_PORT ? 'SSH' : publicPort === ports.managementTcp ? 'the management API' : undefined
        : publicPort === ports.tunnelUdp ? 'the tunnel' : undefined;
      if (protectedBy !== undefined) fail(file, `${at}.publicPort`, `${r.protocol} port ${publicPort} is the appliance's port for ${protectedBy} and cannot be mapped`);
      const whole = claimed.get(pub.text);
      if (whole !== undefined) fail(file, `${at}.publicAddress`, `${pub.text} is already mapped 1:1 by rule ${whole}: the mappings overlap`);
      const key = `${pub.text}|${r.protocol}|${publicPort}`;
      const prev = claimed.get(key);
      if (prev !== undefined) fail(file, `${at}.publicPort`, `${r.protocol} ${pub.text} port ${publicPort} is already mapped by rule ${prev}: the mappings overlap`);
      claimed.set(key, r.name);
      return {
        kind: 'port', name: r.name, segment: seg.id, publicAddress: pub.text, protocol: r.protocol, publicPort, target: tgt.text,
        ...(targetPort !== undefined && { targetPort }),
      };
    }
    if (own.some((p) => p.bytes.equals(pub.bytes))) {
      fail(file, `${at}.publicAddress`, `${pub.text} is the appliance's own address (external.addresses: SSH, management API, tunnel) and cannot be mapped 1:1`);
    }
    const taken = [...claimed].find(([k]) => k === pub.text || k.startsWith(`${pub.text}|`));
    if (taken) fail(file, `${at}.publicAddress`, `${pub.text} is already mapped by rule ${taken[1]}: the mappings overlap`);
    claimed.set(pub.text, r.name);
    const prevTarget = wholeTargets.get(tgt.text);
    if (prevTarget !== undefined) fail(file, `${at}.target`, `replica ${tgt.text} already has a 1:1 mapping (rule ${prevTarget}); one public address per replica`);
    wholeTargets.set(tgt.text, r.name);
    return { kind: 'address', name: r.name, segment: seg.id, publicAddress: pub.text, target: tgt.text };
  });
}

/**
 * The appliance-level fields of `raw` (external, publicRules,
 * routeBetweenSegments), checked against `config` (its segments, with
 * their mode fields already parsed). Also checks what spans segments:
 * gateway prefixes must not overlap each other or the external subnets, and
 * `internet` needs the external section. Returns only the fields given.
 */
export function parseApplianceModes(file: string, raw: Record<string, unknown>, config: ApplianceConfig, ports: AppliancePorts): ApplianceModeConfig {
  const ctx: Ctx = { file, config };
  const out: ApplianceModeConfig = {};
  if (raw.external !== undefined) out.external = parseExternal(ctx, raw.external);
  if (raw.routeBetweenSegments !== undefined) {
    if (typeof raw.routeBetweenSegments !== 'boolean') fail(file, 'routeBetweenSegments', 'must be true or false');
    if (raw.routeBetweenSegments && config.role !== 'sp') fail(file, 'routeBetweenSegments', 'routing between segments is for the SP appliance (role "sp")');
    out.routeBetweenSegments = raw.routeBetweenSegments;
  }
  const seen: { p: HostPrefix; field: string }[] = (out.external?.addresses ?? []).map((a, i) => ({ p: parseHostPrefix(a)!, field: `external.addresses[${i}]` }));
  for (const [i, s] of config.segments.entries()) {
    if (s.internet && !out.external) fail(file, `segments[${i}].internet`, 'internet access needs the external section (the interface replicas reach the internet through)');
    for (const fam of ['ipv4', 'ipv6'] as const) {
      const t = s.gateway?.[fam];
      if (t === undefined) continue;
      const p = parseHostPrefix(t)!;
      const clash = seen.find((x) => overlaps(x.p, p));
      if (clash) fail(file, `segments[${i}].gateway.${fam}`, `${p.network} overlaps ${clash.p.network} of ${clash.field}: the appliance could not route both`);
      seen.push({ p, field: `segments[${i}].gateway.${fam}` });
    }
  }
  if (raw.publicRules !== undefined) out.publicRules = parseRules(ctx, raw.publicRules, out.external, ports);
  return out;
}

// ---- desired state ----------------------------------------------------------

/** A segment's mode, defaulted. */
export function modeOf(s: SegmentModeConfig): SegmentMode {
  return s.mode ?? 'extend';
}

/** Firewall segment name of segment `id` (what counters are named after). */
export function firewallSegmentName(id: number): string {
  return `seg${id}`;
}

/** Rules whose segment is in gateway mode: the ones that act. */
export function activeRules(config: ApplianceConfig): PublicRuleConfig[] {
  const mode = new Map(config.segments.map((s) => [s.id, modeOf(s)]));
  return (config.publicRules ?? []).filter((r) => mode.get(r.segment) === 'gateway');
}

/**
 * The desired firewall: `base` (one extended segment `seg<id>` per config
 * segment, in config order, with its ports and clamp) with each segment's
 * mode, internet flag, subnets (its gateway prefixes) and tunnel port, the
 * external interface, the public IP rules and inter-segment routing.
 */
export function firewallWithModes(base: DesiredFirewall, config: ApplianceConfig, tunnelPort: (id: number) => string): DesiredFirewall {
  const byName = new Map(config.segments.map((s) => [firewallSegmentName(s.id), s]));
  const segments = base.segments.map((b) => {
    const s = byName.get(b.name);
    if (!s) return b;
    const tap = tunnelPort(s.id);
    const subnets = gatewayPrefixes(s).map((p) => p.network);
    return {
      ...b, mode: modeOf(s), internet: s.internet ?? false,
      ...(subnets.length > 0 && { subnets }),
      ...((b.ports ?? []).includes(tap) && { tunnelPorts: [tap] }),
    };
  });
  const out: DesiredFirewall = { ...base, segments };
  const ext = config.external;
  if (ext) {
    out.external = {
      name: ext.interface,
      applianceAddresses: ext.addresses.map((a) => parseHostPrefix(a)!.address),
      publicPool: ext.publicPool ?? [],
    };
  }
  if (config.routeBetweenSegments !== undefined) out.routeBetweenSegments = config.routeBetweenSegments;
  if (config.publicRules) {
    out.publicRules = config.publicRules.map((r): PublicRule => (r.kind === 'port'
      ? { ...r, segment: firewallSegmentName(r.segment) }
      : { ...r, segment: firewallSegmentName(r.segment) }));
  }
  return out;
}

/**
 * `fw` with every segment isolated, no public IP rule and no routing: what
 * the appliance installs first when it starts, before it creates bridges or
 * enslaves ports, so that no frame crosses a segment before its real rules
 * are in place (the real ruleset replaces it a few steps later).
 */
export function closedFirewall(fw: DesiredFirewall): DesiredFirewall {
  return {
    ...fw,
    segments: fw.segments.map((s) => ({ ...s, mode: 'isolated' as const, internet: false })),
    publicRules: [],
    routeBetweenSegments: false,
  };
}

/** The public addresses held on the external interface: those of the rules that act, as /32 or /128. */
export function heldPublicAddresses(config: ApplianceConfig): string[] {
  const out = new Set<string>();
  for (const r of activeRules(config)) out.add(`${r.publicAddress}/${r.publicAddress.includes(':') ? 128 : 32}`);
  return [...out];
}

/**
 * The desired kernel state: `base` (bridges, ports; no addresses) with the
 * gateway addresses on the bridges of segments in gateway mode, and the
 * external interface with the appliance's addresses, the held public
 * addresses and the default routes. `bridgeOf(id)` names a segment's bridge.
 */
export function networkWithModes(base: DesiredNetwork, config: ApplianceConfig, bridgeOf: (id: number) => string): DesiredNetwork {
  const gatewayAddrs = new Map<string, string[]>();
  for (const s of config.segments) {
    if (modeOf(s) !== 'gateway' || !s.gateway) continue;
    gatewayAddrs.set(bridgeOf(s.id), [s.gateway.ipv4, s.gateway.ipv6].filter((a): a is string => a !== undefined));
  }
  const links: DesiredLink[] = base.links.map((l) => {
    const a = gatewayAddrs.get(l.name);
    return a ? { ...l, addresses: [...(l.addresses ?? []), ...a] } : l;
  });
  const routes: DesiredRoute[] = [...(base.routes ?? [])];
  const ext = config.external;
  if (ext) {
    const addresses = [...ext.addresses, ...heldPublicAddresses(config).filter((h) => !ext.addresses.some((a) => a.split('/')[0] === h.split('/')[0]))];
    const i = links.findIndex((l) => l.name === ext.interface);
    const link: DesiredLink = { kind: 'existing', name: ext.interface, up: true, addresses };
    if (i >= 0) links[i] = { ...links[i]!, addresses }; else links.push(link);
    // The appliance's own IPv4 traffic leaves from its own address, never from a held public one. (Not for
    // IPv6: the kernel refuses a preferred source that is still tentative, as a new address is during DAD.)
    const v4 = ext.addresses.map((a) => parseHostPrefix(a)!).find((p) => p.family === 4)?.address;
    if (ext.defaultRoute?.ipv4) routes.push({ dst: '0.0.0.0/0', via: ext.defaultRoute.ipv4, dev: ext.interface, ...(v4 !== undefined && { src: v4 }) });
    if (ext.defaultRoute?.ipv6) routes.push({ dst: '::/0', via: ext.defaultRoute.ipv6, dev: ext.interface });
  }
  return { ...base, links, routes };
}

/** One sysctl under /proc/sys: path relative to it (`net/ipv4/ip_forward`) and value. */
export interface SysctlSetting {
  path: string;
  value: string;
  /** Absent from this kernel is fine (a module not loaded): skipped. */
  optional?: boolean;
}

/**
 * Kernel settings: IPv6 off on every bridge port (the TAP, the VLAN port,
 * the access interface: a port never holds an address, and its own IPv6
 * link-local chatter would reach the segment); IPv4 forwarding on while a segment is in gateway mode,
 * IPv6 forwarding while one has an IPv6 gateway (never turned off again:
 * other software may rely on it; the forward chain is default-deny for the
 * appliance's bridges anyway); on every segment bridge, ARP answered only
 * for addresses on that bridge (`arp_ignore=1`: an extended segment never
 * learns of the appliance's other addresses) and IPv6 off unless the
 * segment is an IPv6 gateway (no link-local address of the appliance on
 * extended or isolated segments). And, where br_netfilter is loaded,
 * bridged frames stay out of the IP hooks (`bridge-nf-call-*=0`, per
 * namespace): bridged traffic is L2 (the bridge family table judges it),
 * only routed traffic meets conntrack and NAT. With br_netfilter's IP hooks
 * on, a DNAT to a replica behind the same bridge port as the client
 * (hairpin) is turned into a bridged frame the bridge never sends back out
 * of its ingress port, and every extended frame would be tracked.
 */
export function kernelSettings(config: ApplianceConfig, bridgeOf: (id: number) => string, portsOf: (id: number) => readonly string[] = () => []): SysctlSetting[] {
  const gw = config.segments.filter((s) => modeOf(s) === 'gateway');
  const out: SysctlSetting[] = ['iptables', 'ip6tables', 'arptables'].map((t) => ({ path: `net/bridge/bridge-nf-call-${t}`, value: '0', optional: true }));
  if (gw.length > 0) out.push({ path: 'net/ipv4/ip_forward', value: '1' });
  if (gw.some((s) => s.gateway?.ipv6 !== undefined)) out.push({ path: 'net/ipv6/conf/all/forwarding', value: '1' });
  for (const s of config.segments) {
    const br = bridgeOf(s.id);
    const v6 = modeOf(s) === 'gateway' && s.gateway?.ipv6 !== undefined;
    out.push({ path: `net/ipv4/conf/${br}/arp_ignore`, value: '1' });
    out.push({ path: `net/ipv6/conf/${br}/disable_ipv6`, value: v6 ? '0' : '1' });
    for (const p of portsOf(s.id)) out.push({ path: `net/ipv6/conf/${p}/disable_ipv6`, value: '1' });
  }
  return out;
}

/** Addresses to announce on one link after the appliance took them over. */
export interface Announcement {
  /** The segment whose gateway they are; absent for public addresses on the external interface. */
  segment?: number;
  /** The link to announce on: the segment's bridge, or the external interface. */
  link: string;
  ipv4?: string;
  ipv6?: string;
  /** The NA's Router flag: set for a gateway. */
  router: boolean;
}

/**
 * Addresses that `next` holds and `prev` did not (all of them when `prev`
 * is undefined), to announce so that neighbours' caches move to the
 * appliance at once: gateway addresses on their segments' bridges (gratuitous
 * ARP, unsolicited NA), and public IPv4 addresses on the external interface
 * (gratuitous ARP: the SP's router may hold another MAC for an address that
 * moved, from another appliance of an HA pair, say). Public IPv6 addresses
 * are not announced: they are still tentative (duplicate address detection)
 * when they appear, and an NA for a tentative address is not allowed
 * (RFC 4862); routers find them by neighbour discovery.
 */
export function announcements(prev: ApplianceConfig | undefined, next: ApplianceConfig, bridgeOf: (id: number) => string): Announcement[] {
  const held = (c: ApplianceConfig | undefined, id: number): GatewayAddresses => {
    const s = c?.segments.find((x) => x.id === id);
    return s && modeOf(s) === 'gateway' && s.gateway ? s.gateway : {};
  };
  const out: Announcement[] = [];
  for (const s of next.segments) {
    const now = held(next, s.id);
    const before = prev ? held(prev, s.id) : {};
    const a: Announcement = { segment: s.id, link: bridgeOf(s.id), router: true };
    if (now.ipv4 !== undefined && now.ipv4 !== before.ipv4) a.ipv4 = now.ipv4.split('/')[0]!;
    if (now.ipv6 !== undefined && now.ipv6 !== before.ipv6) a.ipv6 = parseHostPrefix(now.ipv6)!.address;
    if (a.ipv4 !== undefined || a.ipv6 !== undefined) out.push(a);
  }
  if (next.external) {
    const before = new Set(prev ? heldPublicAddresses(prev) : []);
    for (const h of heldPublicAddresses(next)) {
      if (before.has(h) || h.includes(':')) continue;
      out.push({ link: next.external.interface, ipv4: h.split('/')[0]!, router: false });
    }
  }
  return out;
}

/** True while `c` still holds what `a` announces (repeats stop once an address is given up). */
export function stillHeld(c: ApplianceConfig | undefined, a: Announcement): boolean {
  if (!c) return false;
  if (a.segment === undefined) return a.ipv4 !== undefined && heldPublicAddresses(c).includes(`${a.ipv4}/32`);
  const s = c.segments.find((x) => x.id === a.segment);
  if (!s || modeOf(s) !== 'gateway' || !s.gateway) return false;
  return (a.ipv4 === undefined || s.gateway.ipv4?.split('/')[0] === a.ipv4) &&
    (a.ipv6 === undefined || (s.gateway.ipv6 !== undefined && parseHostPrefix(s.gateway.ipv6)!.address === a.ipv6));
}

function ruleKey(r: PublicRuleConfig): string {
  return JSON.stringify(r.kind === 'port'
    ? [r.kind, r.name, r.segment, r.publicAddress, r.protocol, r.publicPort, r.target, r.targetPort ?? r.publicPort]
    : [r.kind, r.name, r.segment, r.publicAddress, r.target]);
}

/**
 * Conntrack entries to delete when going from `prev` to `next`, so that
 * what stopped acting stops its existing flows too:
 * - a public IP rule that acted and no longer does (removed, changed, or
 *   its segment left gateway mode): connections to its public address (and
 *   protocol and port); for a 1:1 mapping also those its replica opened
 *   (SNATed to the public address);
 * - a segment whose internet access ended (flag off, or it left gateway
 *   mode): its masqueraded connections (source in its subnets, SRC_NAT).
 */
export function conntrackFlushes(prev: ApplianceConfig, next: ApplianceConfig): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  const still = new Set(activeRules(next).map(ruleKey));
  for (const r of activeRules(prev)) {
    if (still.has(ruleKey(r))) continue;
    if (r.kind === 'port') {
      out.push({ protocol: r.protocol === 'tcp' ? 6 : 17, original: { dst: r.publicAddress, dstPort: r.publicPort } });
    } else {
      out.push({ original: { dst: r.publicAddress } }, { reply: { dst: r.publicAddress } });
    }
  }
  const egress = (c: ApplianceConfig, id: number): string[] => {
    const s = c.segments.find((x) => x.id === id);
    return s && modeOf(s) === 'gateway' && s.internet && c.external ? gatewayPrefixes(s).map((p) => p.network) : [];
  };
  for (const s of prev.segments) {
    const before = egress(prev, s.id);
    const after = new Set(egress(next, s.id));
    const lost = before.filter((p) => !after.has(p));
    if (lost.length > 0) out.push({ statusAll: IPS_SRC_NAT, originalSrcIn: lost });
  }
  return out;
}

/** Segment fields a runtime apply may change. */
const RUNTIME_SEGMENT_FIELDS: readonly string[] = SEGMENT_MODE_FIELDS;
/** Top-level fields a runtime apply may change. */
const RUNTIME_FIELDS: readonly string[] = [...APPLIANCE_MODE_FIELDS, 'segments'];

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (isObject(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x));
}

/**
 * The first field that differs between the running config and `next`
 * outside what a runtime apply changes (modes, internet, gateway, external,
 * public IP rules, routing); undefined when there is none. Segments are
 * compared by position: adding, removing or reordering one takes a restart.
 */
export function restartField(running: ApplianceConfig, next: ApplianceConfig): string | undefined {
  const a = running as unknown as Record<string, unknown>;
  const b = next as unknown as Record<string, unknown>;
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (RUNTIME_FIELDS.includes(k)) continue;
    if (stable(a[k]) !== stable(b[k])) return k;
  }
  if (running.segments.length !== next.segments.length) return 'segments (their number)';
  const strip = (s: SegmentConfig): Record<string, unknown> =>
    Object.fromEntries(Object.entries(s).filter(([k]) => !RUNTIME_SEGMENT_FIELDS.includes(k)));
  for (const [i, s] of running.segments.entries()) {
    if (stable(strip(s)) !== stable(strip(next.segments[i]!))) return `segments[${i}] (id, name or backing)`;
  }
  return undefined;
}

/** Refuses `next` when it changes a field that takes a restart (APPLY_NEEDS_RESTART); nothing is changed. */
export function checkRuntimeChange(running: ApplianceConfig, next: ApplianceConfig): void {
  const f = restartField(running, next);
  if (f !== undefined) {
    throw new NeaError('APPLY_NEEDS_RESTART',
      `${f} differs from the running appliance's: only segment modes, internet, gateway addresses, the external section, public IP rules and routeBetweenSegments change at run time; restart the appliance for the rest (nothing was changed)`);
  }
}
