/**
 * Desired state of one appliance's firewall and NAT, and its validation.
 * Pure: no I/O.
 *
 * Ownership: an appliance owns exactly two nftables tables, `bridge nea_<id>`
 * and `inet nea_<id>` ({@link tableName}); nothing else in the namespace is
 * touched, so several appliances (and other software) share a namespace.
 *
 * Persistence across modes: a segment keeps its `internet` flag, its clamp
 * and the public IP rules that target it whatever its mode; they take effect
 * only in the mode they belong to (clamp in `extend`, internet and public IP
 * rules in `gateway`). Switching a mode is therefore a one-field change.
 *
 * Refusals (nothing is applied): every check below throws ValidationError
 * with a one-line message naming the offending item.
 */
import { ValidationError } from '../shared/errors.js';
import { formatCidr, formatIp, parseCidr, parseIp, type Family } from './ip.js';
import { checkLinkName } from './netlink.js';
import { checkMssClamp, type MssClamp } from './nft-mss.js';

/** How the appliance treats a segment (issue 5). */
export type SegmentMode = 'extend' | 'gateway' | 'isolated';

export interface FirewallSegment {
  /** Segment name: 1-32 of `a-z 0-9 _`, starting with a letter or digit; unique. Names counters. */
  name: string;
  /** The segment's Linux bridge in this namespace. */
  bridge: string;
  /**
   * The bridge's ports nea attached (tunnel TAP, cloud interface). The bridge
   * family rules match frames by ingress port; required (at least one) for
   * `extend` and `isolated`.
   */
  ports?: string[];
  /**
   * The ports among `ports` that lead to the tunnel (the segment's TAP). In
   * `gateway` mode no frame enters or leaves the segment through them, the
   * appliance's own included: production is cut off at L2 while the
   * appliance is the segment's gateway (docs/modes.md). Default none.
   */
  tunnelPorts?: string[];
  /**
   * - `extend`: bridged to production through the tunnel; TCP MSS clamped on
   *   SYNs entering from any port; the appliance forwards nothing at L3.
   * - `gateway`: the appliance is the segment's router: internet (if flagged),
   *   public IP rules and inter-segment routing apply; the `tunnelPorts` are
   *   cut off.
   * - `isolated`: nothing crosses the bridge between ports, nothing is routed.
   */
  mode: SegmentMode;
  /** SNAT out of the external interface (in `gateway` mode); default false. */
  internet?: boolean;
  /**
   * The segment's prefixes (`ADDRESS/PREFIX`, host bits ignored), IPv4 and/or
   * IPv6. Required in `gateway` mode and for segments that public IP rules
   * target: SNAT and hairpin match them, rule targets must lie in them.
   */
  subnets?: string[];
  /**
   * TCP MSS written into SYNs crossing the bridge (bytes), from
   * `computeMssClamp(wanMtu)`. Required in `extend` mode.
   */
  mss?: MssClamp;
}

/** public address + protocol + port → replica address + port (DNAT). */
export interface PortMapping {
  kind: 'port';
  /** Rule name: like a segment name; unique among rules. Names counters. */
  name: string;
  /** Segment of the replica. */
  segment: string;
  /** Public address (from `external.publicPool`). */
  publicAddress: string;
  protocol: 'tcp' | 'udp';
  /** Public port, 1..65535. */
  publicPort: number;
  /** Replica address, inside the segment's subnets, same family as `publicAddress`. */
  target: string;
  /** Replica port, 1..65535; default `publicPort`. */
  targetPort?: number;
}

/** A whole public address ↔ a replica address (DNAT in, SNAT out), all ports. */
export interface AddressMapping {
  kind: 'address';
  /** Rule name: like a segment name; unique among rules. */
  name: string;
  segment: string;
  publicAddress: string;
  target: string;
}

export type PublicRule = PortMapping | AddressMapping;

export interface ExternalInterface {
  /** The interface facing the SP's network / internet. */
  name: string;
  /**
   * The appliance's own addresses on it, where SSH, the management API and
   * the tunnel listen: a whole-address mapping of one of them is refused.
   * Segments with internet are SNATed to the first one of the packet's
   * family (to the interface's address of the kernel's choosing, `masquerade`,
   * when there is none of that family).
   */
  applianceAddresses?: string[];
  /** Prefixes public IP rules may use (the SP's pool for this tenant). */
  publicPool?: string[];
}

export interface DesiredFirewall {
  /** Appliance id: 1-32 of `a-z 0-9 _`. The tables are `nea_<id>`. */
  appliance: string;
  /**
   * The appliance's own service ports, which no port mapping may take
   * (TCP 22 is always protected too).
   */
  appliancePorts: {
    /** TCP port of the management API. */
    managementTcp: number;
    /** UDP port of the tunnel. */
    tunnelUdp: number;
  };
  /** Required when a `gateway` segment has internet or public IP rules exist. */
  external?: ExternalInterface;
  segments: FirewallSegment[];
  /** Route between the tenant's `gateway` segments; default false. */
  routeBetweenSegments?: boolean;
  publicRules?: PublicRule[];
}

/** TCP port of SSH, never mappable. */
export const SSH_PORT = 22;

const NAME_RE = /^[a-z0-9][a-z0-9_]{0,31}$/;

/** `nea_<id>`: the name of both of an appliance's tables. */
export function tableName(applianceId: string): string {
  return `nea_${checkApplianceId(applianceId)}`;
}

/** Validate an appliance id (1-32 of `a-z 0-9 _`, first a letter or digit). */
export function checkApplianceId(id: string): string {
  if (!NAME_RE.test(id)) throw new ValidationError(`appliance id "${id}" must be 1-32 characters of a-z, 0-9 and _, starting with a letter or digit`);
  return id;
}

function checkName(name: string, what: string): string {
  if (!NAME_RE.test(name)) throw new ValidationError(`${what} name "${name}" must be 1-32 characters of a-z, 0-9 and _, starting with a letter or digit`);
  return name;
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new ValidationError(`${what}: port ${p} must be an integer 1..65535`);
  return p;
}

// ---- normalized form -------------------------------------------------------

/** A prefix in canonical text and bytes. */
export interface Prefix {
  family: Family;
  /** Network address bytes (host bits cleared). */
  bytes: Buffer;
  prefixLength: number;
  /** Canonical `NETWORK/PREFIX`. */
  cidr: string;
}

export interface NormSegment {
  name: string;
  bridge: string;
  ports: string[];
  tunnelPorts: string[];
  mode: SegmentMode;
  internet: boolean;
  subnets: Prefix[];
  mss: MssClamp | undefined;
}

export interface NormPortMapping {
  kind: 'port';
  name: string;
  segment: string;
  family: Family;
  publicAddress: string;
  protocol: 'tcp' | 'udp';
  publicPort: number;
  target: string;
  targetPort: number;
}

export interface NormAddressMapping {
  kind: 'address';
  name: string;
  segment: string;
  family: Family;
  publicAddress: string;
  target: string;
}

export type NormRule = NormPortMapping | NormAddressMapping;

export interface NormFirewall {
  appliance: string;
  table: string;
  /** `snat`: per family, the appliance's first own address there (what segments with internet are SNATed to). */
  external: { name: string; snat: Partial<Record<Family, string>> } | undefined;
  segments: NormSegment[];
  routeBetweenSegments: boolean;
  rules: NormRule[];
}

function maskPrefix(bytes: Buffer, prefixLength: number): Buffer {
  const out = Buffer.from(bytes);
  for (let bit = prefixLength; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(1 << (7 - (bit & 7)));
  return out;
}

function toPrefix(s: string, what: string): Prefix {
  const c = parseCidr(s, what);
  const bytes = maskPrefix(c.bytes, c.prefixLength);
  return { family: c.family, bytes, prefixLength: c.prefixLength, cidr: formatCidr(bytes, c.prefixLength) };
}

/** True when `addr` (4 or 16 bytes) lies inside `p`. */
export function prefixContains(p: Prefix, addr: Buffer): boolean {
  return addr.length === p.bytes.length && maskPrefix(addr, p.prefixLength).equals(p.bytes);
}

/** The first address of each family, canonical. */
function snatAddresses(own: readonly { family: Family; bytes: Buffer }[]): Partial<Record<Family, string>> {
  const out: Partial<Record<Family, string>> = {};
  for (const a of own) out[a.family] ??= formatIp(a.bytes);
  return out;
}

/**
 * Validate a desired state and bring it to canonical form (defaults filled,
 * addresses canonical, prefixes masked). Throws ValidationError.
 */
export function normalizeFirewall(d: DesiredFirewall): NormFirewall {
  const appliance = checkApplianceId(d.appliance);
  const mgmt = checkPort(d.appliancePorts.managementTcp, 'management API');
  const tunnel = checkPort(d.appliancePorts.tunnelUdp, 'tunnel');

  const external = d.external === undefined ? undefined : {
    name: checkLinkName(d.external.name, 'external interface'),
    own: (d.external.applianceAddresses ?? []).map((a) => parseIp(a, 'external interface appliance address')),
    pool: (d.external.publicPool ?? []).map((p) => toPrefix(p, 'public pool prefix')),
  };

  const links = new Map<string, string>();
  const claimLink = (name: string, what: string): void => {
    checkLinkName(name, what);
    const prev = links.get(name);
    if (prev !== undefined) throw new ValidationError(`${what} ${name} is already used as ${prev}`);
    links.set(name, what);
  };
  if (external) claimLink(external.name, 'external interface');

  const segments: NormSegment[] = [];
  const byName = new Map<string, NormSegment>();
  for (const s of d.segments) {
    const name = checkName(s.name, 'segment');
    const what = `segment ${name}`;
    if (byName.has(name)) throw new ValidationError(`${what} is listed twice`);
    if (!(['extend', 'gateway', 'isolated'] as const).includes(s.mode)) throw new ValidationError(`${what}: mode must be extend, gateway or isolated`);
    claimLink(s.bridge, `bridge of ${what}`);
    const ports = s.ports ?? [];
    for (const p of ports) claimLink(p, `port of ${what}`);
    const tunnelPorts = s.tunnelPorts ?? [];
    for (const p of tunnelPorts) {
      if (!ports.includes(p)) throw new ValidationError(`${what}: tunnel port ${p} is not one of its ports (${ports.join(', ') || 'none'})`);
    }
    const subnets = (s.subnets ?? []).map((c) => toPrefix(c, `${what} subnet`));
    const seen = new Set<string>();
    for (const p of subnets) {
      if (seen.has(p.cidr)) throw new ValidationError(`${what}: subnet ${p.cidr} is listed twice`);
      seen.add(p.cidr);
    }
    const mss = s.mss === undefined ? undefined : checkMssClamp(s.mss, what);
    const internet = s.internet ?? false;
    if (s.mode === 'extend') {
      if (mss === undefined) throw new ValidationError(`${what}: an extend segment needs its MSS clamp (mss, from computeMssClamp)`);
      if (ports.length === 0) throw new ValidationError(`${what}: an extend segment needs its bridge ports (the clamp matches them)`);
    }
    if (s.mode === 'isolated' && ports.length === 0) throw new ValidationError(`${what}: an isolated segment needs its bridge ports (the isolation matches them)`);
    if (s.mode === 'gateway') {
      if (subnets.length === 0) throw new ValidationError(`${what}: a gateway segment needs its subnets`);
      if (internet && !external) throw new ValidationError(`${what} has internet but the appliance has no external interface`);
    }
    const seg: NormSegment = { name, bridge: s.bridge, ports: [...ports], tunnelPorts: [...new Set(tunnelPorts)], mode: s.mode, internet, subnets, mss };
    segments.push(seg);
    byName.set(name, seg);
  }

  const rules: NormRule[] = [];
  const ruleNames = new Set<string>();
  /** `addr` → whole-address rule name; `addr|proto|port` → port rule name. */
  const claimedPublic = new Map<string, string>();
  const wholeTargets = new Map<string, string>();
  for (const r of d.publicRules ?? []) {
    const name = checkName(r.name, 'public IP rule');
    const what = `public IP rule ${name}`;
    if (ruleNames.has(name)) throw new ValidationError(`${what} is listed twice`);
    ruleNames.add(name);
    if (!external) throw new ValidationError(`${what}: the appliance has no external interface`);
    const seg = byName.get(r.segment);
    if (!seg) throw new ValidationError(`${what}: segment ${r.segment} does not exist`);
    const pub = parseIp(r.publicAddress, `${what} public address`);
    const tgt = parseIp(r.target, `${what} target`);
    if (pub.family !== tgt.family) throw new ValidationError(`${what}: public address ${r.publicAddress} and target ${r.target} are of different families`);
    const publicAddress = formatIp(pub.bytes);
    const target = formatIp(tgt.bytes);
    if (!external.pool.some((p) => prefixContains(p, pub.bytes))) {
      throw new ValidationError(`${what}: public address ${publicAddress} is outside the public pool (${external.pool.map((p) => p.cidr).join(', ') || 'empty'})`);
    }
    if (!seg.subnets.some((p) => prefixContains(p, tgt.bytes))) {
      throw new ValidationError(`${what}: target ${target} is outside segment ${seg.name} (${seg.subnets.map((p) => p.cidr).join(', ') || 'no subnets'})`);
    }
    const kind: string = r.kind;
    if (kind !== 'port' && kind !== 'address') throw new ValidationError(`${what}: kind must be port or address`);
    if (r.kind === 'port') {
      if (!(['tcp', 'udp'] as const).includes(r.protocol)) throw new ValidationError(`${what}: protocol must be tcp or udp`);
      const publicPort = checkPort(r.publicPort, what);
      const targetPort = checkPort(r.targetPort ?? r.publicPort, what);
      const isProtected = r.protocol === 'tcp'
        ? publicPort === SSH_PORT ? 'SSH' : publicPort === mgmt ? 'the management API' : undefined
        : publicPort === tunnel ? 'the tunnel' : undefined;
      if (isProtected !== undefined) {
        throw new ValidationError(`${what}: ${r.protocol} port ${publicPort} is the appliance's port for ${isProtected} and cannot be mapped`);
      }
      const whole = claimedPublic.get(publicAddress);
      if (whole !== undefined) throw new ValidationError(`${what}: ${publicAddress} is already mapped whole by rule ${whole}`);
      const key = `${publicAddress}|${r.protocol}|${publicPort}`;
      const prev = claimedPublic.get(key);
      if (prev !== undefined) throw new ValidationError(`${what}: ${r.protocol} ${publicAddress} port ${publicPort} is already mapped by rule ${prev}`);
      claimedPublic.set(key, name);
      rules.push({ kind: 'port', name, segment: seg.name, family: pub.family, publicAddress, protocol: r.protocol, publicPort, target, targetPort });
    } else {
      if (external.own.some((a) => a.bytes.equals(pub.bytes))) {
        throw new ValidationError(`${what}: ${publicAddress} is the appliance's own address (SSH, management API, tunnel) and cannot be mapped whole`);
      }
      const prefix = `${publicAddress}|`;
      const taken = [...claimedPublic].find(([k]) => k === publicAddress || k.startsWith(prefix));
      if (taken) throw new ValidationError(`${what}: ${publicAddress} is already mapped by rule ${taken[1]}`);
      claimedPublic.set(publicAddress, name);
      const prevTarget = wholeTargets.get(target);
      if (prevTarget !== undefined) throw new ValidationError(`${what}: target ${target} already has a whole-address mapping (rule ${prevTarget})`);
      wholeTargets.set(target, name);
      rules.push({ kind: 'address', name, segment: seg.name, family: pub.family, publicAddress, target });
    }
  }

  return {
    appliance,
    table: tableName(appliance),
    external: external ? { name: external.name, snat: snatAddresses(external.own) } : undefined,
    segments,
    routeBetweenSegments: d.routeBetweenSegments ?? false,
    rules,
  };
}
