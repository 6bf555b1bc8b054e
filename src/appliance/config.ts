/**
 * The appliance's configuration file (JSON): who it is and which segments it
 * serves. Validation is strict: unknown fields, wrong types and out-of-range
 * values are refused with a message naming the field, and nothing is applied.
 */
import { readFileSync } from 'node:fs';
import { parsePrefix } from '../dataplane/tunnel/prefix.js';
import { decodeKey } from '../dataplane/wg/crypto.js';
import { parseAddress, type Endpoint } from '../dataplane/wg/endpoint.js';
import { isVlanId } from '../protocol/vlan.js';
import { ValidationError } from '../shared/errors.js';
import {
  APPLIANCE_MODE_FIELDS, MANAGEMENT_TCP_PORT, SEGMENT_MODE_FIELDS, parseApplianceModes, parseSegmentModes,
  type ApplianceModeConfig, type SegmentModeConfig,
} from './modes.js';

/** Default most MACs learnt per segment. */
export const DEFAULT_MAC_LIMIT = 4096;

export type ApplianceRole = 'sp' | 'tenant';

/**
 * How a segment reaches its network on this appliance (docs/segments.md).
 * - `access`: a dedicated interface, bridged into the segment as it is
 *   (the production network's NIC on the tenant side, a cloud access port on
 *   the SP side);
 * - `vlan`: VLAN `vlan` on the trunk interface `trunk`: frames leave the
 *   trunk tagged with it, and only frames tagged with it enter the segment.
 */
export type SegmentBacking =
  | { kind: 'access'; interface: string }
  | { kind: 'vlan'; trunk: string; vlan: number };

/** Segment fields; `mode`, `internet` and `gateway` are in modes.ts. */
export interface SegmentConfig extends SegmentModeConfig {
  /** Segment id, 1..4094: the tenant network's id end to end, the same on both appliances. */
  id: number;
  /** Human name of the production network. */
  name: string;
  /** How the segment reaches its network; absent (and no `uplink`): the segment exists only inside the appliance (bridge and TAP). */
  backing?: SegmentBacking;
  /**
   * Older spelling of an `access` backing: the interface bridged into the
   * segment. Kept as written; {@link segmentBacking} reads either.
   */
  uplink?: string;
}

/**
 * How VLAN backings are made: `kernel` with 802.1Q devices (needs the 8021q
 * module), `userspace` with a packet socket on the trunk and a TAP per VLAN,
 * `auto` (default) the kernel's when it has them, else user space.
 */
export type VlanDevicesMode = 'auto' | 'kernel' | 'userspace';

export interface PeerConfig {
  /** The peer appliance's public key (base64, as `nea pubkey` prints). */
  publicKey: string;
  /** `HOST:PORT` or `[V6]:PORT` to reach the peer; absent: wait for the peer to connect. */
  endpoint?: string;
  /** Segments this peer carries; frames of other segments from it are dropped. */
  segments: number[];
  /** Optional preshared key (base64), mixed into the handshake. */
  presharedKey?: string;
  /** Persistent keepalive interval in seconds (for peers behind NAT); absent: off. */
  persistentKeepalive?: number;
  /** L3 mode: prefixes routed to this peer and allowed as sources from it. */
  allowedIps?: string[];
}

export interface TunnelConfig {
  /** UDP port of the tunnel; default 51820. */
  listenPort: number;
  /** Address to bind; default `0.0.0.0`. */
  listenAddress: string;
  /** MTU of the WAN path in bytes; default 1500. */
  wanMtu: number;
  /**
   * Most MACs learnt per segment (flood protection: beyond it new MACs are
   * not learnt, frames to them are flooded, and each refusal is counted);
   * absent: {@link DEFAULT_MAC_LIMIT}.
   */
  macLimit?: number;
  peers: PeerConfig[];
  /** L3 mode: a TUN device carrying IP packets to peers by their allowed IPs. */
  l3?: { device: string; addresses: string[] };
}

/** Top-level fields; `external`, `publicRules` and `routeBetweenSegments` are in modes.ts. */
export interface ApplianceConfig extends ApplianceModeConfig {
  role: ApplianceRole;
  /** Appliance name, shown in status and logs. */
  name: string;
  /** Static private key (base64); absent: `<state-dir>/private.key`, generated on first start and kept. */
  privateKey?: string;
  /** How VLAN backings are made; absent: `auto`. */
  vlanDevices?: VlanDevicesMode;
  tunnel?: TunnelConfig;
  segments: SegmentConfig[];
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function fail(file: string, field: string, what: string): never {
  throw new ValidationError(`${file}: ${field}: ${what}`);
}

function checkKeys(file: string, at: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(file, at === '' ? k : `${at}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate parsed JSON as an appliance configuration; `file` names the source in errors. */
export function parseApplianceConfig(raw: unknown, file = 'config'): ApplianceConfig {
  if (!isObject(raw)) fail(file, '(top level)', 'must be a JSON object');
  checkKeys(file, '', raw, ['role', 'name', 'privateKey', 'vlanDevices', 'tunnel', 'segments', ...APPLIANCE_MODE_FIELDS]);
  const { role, name, segments } = raw;
  if (role !== 'sp' && role !== 'tenant') fail(file, 'role', `must be "sp" or "tenant", got ${JSON.stringify(role)}`);
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    fail(file, 'name', 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');
  }
  if (!Array.isArray(segments)) fail(file, 'segments', 'must be an array');
  const seen = new Set<number>();
  const uplinks = new Set<string>();
  const trunks = new Set<string>();
  const vlansSeen = new Set<string>();
  const out: SegmentConfig[] = segments.map((s: unknown, i) => {
    const at = `segments[${i}]`;
    if (!isObject(s)) fail(file, at, 'must be an object');
    checkKeys(file, at, s, ['id', 'name', 'backing', 'uplink', ...SEGMENT_MODE_FIELDS]);
    if (typeof s.id !== 'number' || !Number.isInteger(s.id) || s.id < 1 || s.id > 4094) fail(file, `${at}.id`, 'must be an integer from 1 to 4094');
    if (seen.has(s.id)) fail(file, `${at}.id`, `duplicate segment id ${s.id}`);
    seen.add(s.id);
    if (typeof s.name !== 'string' || s.name.length < 1 || s.name.length > 63) fail(file, `${at}.name`, 'must be a string of 1-63 characters');
    const seg: SegmentConfig = { id: s.id, name: s.name, ...parseSegmentModes(file, at, s, role) };
    if (s.uplink !== undefined && s.backing !== undefined) fail(file, `${at}.uplink`, 'give either uplink or backing, not both (uplink is the older spelling of an access backing)');
    if (s.uplink !== undefined) {
      if (typeof s.uplink !== 'string' || !IFNAME.test(s.uplink)) fail(file, `${at}.uplink`, 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
      if (uplinks.has(s.uplink)) fail(file, `${at}.uplink`, `interface ${s.uplink} is already the uplink of another segment`);
      uplinks.add(s.uplink);
      seg.uplink = s.uplink;
    }
    if (s.backing !== undefined) {
      seg.backing = parseBacking(file, `${at}.backing`, s.backing);
      if (seg.backing.kind === 'access') {
        if (uplinks.has(seg.backing.interface)) fail(file, `${at}.backing.interface`, `interface ${seg.backing.interface} is already the uplink of another segment`);
        uplinks.add(seg.backing.interface);
      } else {
        const key = `${seg.backing.trunk}/${seg.backing.vlan}`;
        if (vlansSeen.has(key)) fail(file, `${at}.backing.vlan`, `VLAN ${seg.backing.vlan} on ${seg.backing.trunk} already backs another segment`);
        vlansSeen.add(key);
        trunks.add(seg.backing.trunk);
      }
    }
    return seg;
  });
  for (const [i, s] of out.entries()) {
    const b = segmentBacking(s);
    if (b?.kind === 'access' && trunks.has(b.interface)) {
      fail(file, s.backing ? `segments[${i}].backing.interface` : `segments[${i}].uplink`, `interface ${b.interface} is a VLAN trunk of another segment; a trunk cannot also be an access interface`);
    }
  }
  const cfg: ApplianceConfig = { role, name, segments: out };
  if (raw.vlanDevices !== undefined) {
    const v = raw.vlanDevices;
    if (v !== 'auto' && v !== 'kernel' && v !== 'userspace') fail(file, 'vlanDevices', `must be "auto", "kernel" or "userspace", got ${JSON.stringify(v)}`);
    cfg.vlanDevices = v;
  }
  if (raw.privateKey !== undefined) cfg.privateKey = checkKey(file, 'privateKey', raw.privateKey);
  if (raw.tunnel !== undefined) cfg.tunnel = parseTunnel(file, raw.tunnel, seen);
  Object.assign(cfg, parseApplianceModes(file, raw, cfg, { managementTcp: MANAGEMENT_TCP_PORT, tunnelUdp: cfg.tunnel?.listenPort ?? 51820 }));
  return cfg;
}

function parseBacking(file: string, at: string, b: unknown): SegmentBacking {
  if (!isObject(b)) fail(file, at, 'must be an object with kind "access" or "vlan"');
  if (b.kind === 'access') {
    checkKeys(file, at, b, ['kind', 'interface']);
    if (typeof b.interface !== 'string' || !IFNAME.test(b.interface)) fail(file, `${at}.interface`, 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
    return { kind: 'access', interface: b.interface };
  }
  if (b.kind === 'vlan') {
    checkKeys(file, at, b, ['kind', 'trunk', 'vlan']);
    if (typeof b.trunk !== 'string' || !IFNAME.test(b.trunk)) fail(file, `${at}.trunk`, 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
    if (!isVlanId(b.vlan)) fail(file, `${at}.vlan`, 'must be an integer from 1 to 4094');
    return { kind: 'vlan', trunk: b.trunk, vlan: b.vlan };
  }
  fail(file, `${at}.kind`, `must be "access" or "vlan", got ${JSON.stringify(b.kind)}`);
}

/** A segment's backing, from `backing` or from the older `uplink`; undefined for an internal segment. */
export function segmentBacking(s: SegmentConfig): SegmentBacking | undefined {
  if (s.backing) return s.backing;
  return s.uplink === undefined ? undefined : { kind: 'access', interface: s.uplink };
}

function checkKey(file: string, field: string, v: unknown): string {
  if (typeof v !== 'string') fail(file, field, 'must be a base64 key string');
  try {
    decodeKey(v);
  } catch (e) {
    fail(file, field, (e as Error).message);
  }
  return v;
}

/** Parses `HOST:PORT` or `[V6]:PORT` with a literal IP address; undefined when malformed. */
export function parseEndpoint(text: string): Endpoint | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || !parseAddress(m[1]!)) return undefined;
  return { address: m[1]!, port };
}

function parseTunnel(file: string, raw: unknown, segmentIds: ReadonlySet<number>): TunnelConfig {
  if (!isObject(raw)) fail(file, 'tunnel', 'must be an object');
  checkKeys(file, 'tunnel', raw, ['listenPort', 'listenAddress', 'wanMtu', 'macLimit', 'peers', 'l3']);
  const port = raw.listenPort ?? 51820;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) fail(file, 'tunnel.listenPort', 'must be an integer from 1 to 65535');
  const addr = raw.listenAddress ?? '0.0.0.0';
  if (typeof addr !== 'string' || !parseAddress(addr)) fail(file, 'tunnel.listenAddress', 'must be an IPv4 or IPv6 address');
  const mtu = raw.wanMtu ?? 1500;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 9000) fail(file, 'tunnel.wanMtu', 'must be an integer from 576 to 9000');
  const macLimit = raw.macLimit;
  if (macLimit !== undefined && (typeof macLimit !== 'number' || !Number.isInteger(macLimit) || macLimit < 16 || macLimit > 1_000_000)) {
    fail(file, 'tunnel.macLimit', 'must be an integer from 16 to 1000000 MACs');
  }
  if (!Array.isArray(raw.peers)) fail(file, 'tunnel.peers', 'must be an array');
  const keys = new Set<string>();
  const peers = raw.peers.map((p: unknown, i): PeerConfig => {
    const at = `tunnel.peers[${i}]`;
    if (!isObject(p)) fail(file, at, 'must be an object');
    checkKeys(file, at, p, ['publicKey', 'endpoint', 'segments', 'presharedKey', 'persistentKeepalive', 'allowedIps']);
    const publicKey = checkKey(file, `${at}.publicKey`, p.publicKey);
    if (keys.has(publicKey)) fail(file, `${at}.publicKey`, 'duplicate peer');
    keys.add(publicKey);
    const peer: PeerConfig = { publicKey, segments: [] };
    if (!Array.isArray(p.segments)) fail(file, `${at}.segments`, 'must be an array of segment ids');
    for (const [j, id] of p.segments.entries()) {
      if (typeof id !== 'number' || !segmentIds.has(id)) fail(file, `${at}.segments[${j}]`, `${JSON.stringify(id)} is not a configured segment id`);
      peer.segments.push(id);
    }
    if (p.endpoint !== undefined) {
      if (typeof p.endpoint !== 'string' || !parseEndpoint(p.endpoint)) fail(file, `${at}.endpoint`, 'must be IPv4:PORT or [IPv6]:PORT');
      peer.endpoint = p.endpoint;
    }
    if (p.presharedKey !== undefined) peer.presharedKey = checkKey(file, `${at}.presharedKey`, p.presharedKey);
    if (p.persistentKeepalive !== undefined) {
      const k = p.persistentKeepalive;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > 65535) fail(file, `${at}.persistentKeepalive`, 'must be an integer from 1 to 65535 seconds');
      peer.persistentKeepalive = k;
    }
    if (p.allowedIps !== undefined) peer.allowedIps = checkPrefixes(file, `${at}.allowedIps`, p.allowedIps);
    return peer;
  });
  const t: TunnelConfig = { listenPort: port, listenAddress: addr, wanMtu: mtu, peers };
  if (macLimit !== undefined) t.macLimit = macLimit;
  if (raw.l3 !== undefined) {
    if (!isObject(raw.l3)) fail(file, 'tunnel.l3', 'must be an object');
    checkKeys(file, 'tunnel.l3', raw.l3, ['device', 'addresses']);
    const dev = raw.l3.device;
    if (typeof dev !== 'string' || !IFNAME.test(dev)) fail(file, 'tunnel.l3.device', 'must be an interface name');
    t.l3 = { device: dev, addresses: checkPrefixes(file, 'tunnel.l3.addresses', raw.l3.addresses ?? []) };
  }
  return t;
}

function checkPrefixes(file: string, field: string, v: unknown): string[] {
  if (!Array.isArray(v)) fail(file, field, 'must be an array of ADDRESS/PREFIX');
  return v.map((x: unknown, i) => {
    if (typeof x !== 'string') fail(file, `${field}[${i}]`, 'must be ADDRESS/PREFIX');
    try {
      parsePrefix(x);
    } catch (e) {
      fail(file, `${field}[${i}]`, (e as Error).message);
    }
    return x;
  });
}

/** Read and validate a configuration file. */
export function loadApplianceConfig(file: string): ApplianceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ValidationError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseApplianceConfig(raw, file);
}

/**
 * Kernel names of a segment's links (stable, so a restart finds them): its
 * bridge, its TAP (the tunnel's local port) and, for a VLAN backing, its
 * VLAN port (the 802.1Q device, or the TAP of the user-space trunk).
 */
export function segmentLinkNames(id: number): { bridge: string; tap: string; vlanPort: string } {
  return { bridge: `nea-br${id}`, tap: `nea-tap${id}`, vlanPort: `nea-v${id}` };
}
