/**
 * A thin, typed rtnetlink client over the `netlink` package: links,
 * addresses, routes, neighbour entries and link counters of one network
 * namespace.
 *
 * Contracts:
 * - One socket per client, bound to the namespace it was opened in
 *   (`Netlink.open({ netns })`); it stays there for its whole life.
 * - Requests are serialized: one request in flight per socket (the package
 *   keeps one multipart-reassembly buffer per socket and the kernel refuses a
 *   second concurrent dump with EBUSY). Callers may still issue calls
 *   concurrently; they are queued in call order.
 * - Links are named by `LinkRef`: a name (resolved per call) or an ifindex.
 * - Every kernel refusal becomes a `SystemError` with `code` NETLINK_FAILED
 *   (NETLINK_TIMEOUT when no reply came), `errno` the symbolic name
 *   (`EEXIST`, `EPERM`, ...), `syscall` the rtnetlink message type
 *   (`RTM_NEWLINK`, ...) and a one-line message saying what was attempted,
 *   in which namespace, and what the errno means there.
 * - Addresses are canonical strings (see ./ip.ts); counters are bigints.
 */
import { openSync, closeSync } from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import {
  AttrStream, Flags, FlagsGet, FlagsNew, createRtNetlink, getU32, ifla, rt,
  type NetlinkMessage, type RtNetlinkSocket, type StreamData,
} from 'netlink';
import { NeaError, SystemError, ValidationError, isNativeErrnoError } from '../shared/errors.js';
import {
  afOf, canonicalIp, familyOfAf, formatCidr, formatIp, formatMac, isNetworkAddress, parseCidr, parseIp, parseMac,
  type Family,
} from './ip.js';
import { netnsPath, withNetns } from './netns.js';

/** A link named by its name or by its ifindex. */
export type LinkRef = string | number;

/** Routing table ids (rtnetlink RT_TABLE_*). */
export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;

/** Route protocols (RTPROT_*) the netconfig layer cares about. */
export const RTPROT_REDIRECT = 1;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;
export const RTPROT_RA = 9;

/** Route scopes (RT_SCOPE_*). */
export const SCOPE_UNIVERSE = 0;
export const SCOPE_LINK = 253;
export const SCOPE_HOST = 254;
export const SCOPE_NOWHERE = 255;

/** Route types (RTN_*). */
export const RTN_UNICAST = 1;

/** Default per-request timeout in ms. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** Dumps interrupted by a concurrent change (NLM_F_DUMP_INTR) are retried this many times. */
const DUMP_RETRIES = 5;

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: `bridge`, `veth`, `tun` (TUN and TAP), ...; undefined for devices without one (physical NICs, `lo`). */
  kind: string | undefined;
  /** Administrative state (IFF_UP). */
  up: boolean;
  /** Carrier (IFF_LOWER_UP). */
  lowerUp: boolean;
  /** MTU in bytes. */
  mtu: number;
  /** Hardware address, lowercase colon-separated; undefined for links without one (TUN). */
  mac: string | undefined;
  /** Ifindex of the master (a bridge), or undefined. */
  master: number | undefined;
  /** IFLA_IFALIAS, or undefined when unset. */
  alias: string | undefined;
  /** IFLA_LINK: for a veth, the peer's ifindex (in the peer's namespace). */
  parentIndex: number | undefined;
  /** IFLA_LINK_NETNSID: set when `parentIndex` is in another namespace. */
  parentNetnsId: number | undefined;
  /** Smallest and largest MTU the driver accepts, when it says. */
  minMtu: number | undefined;
  maxMtu: number | undefined;
  /** For a VLAN device (kind `vlan`): its VLAN id and TPID (its parent, the trunk, is `parentIndex`). */
  vlan: { id: number; protocol: number } | undefined;
}

/** Link counters (IFLA_STATS64), since the link was created. */
export interface LinkStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxDropped: bigint;
  txDropped: bigint;
  rxErrors: bigint;
  txErrors: bigint;
}

export interface Address {
  /** Ifindex of the link the address is on. */
  index: number;
  family: Family;
  /** The address (IFA_LOCAL, else IFA_ADDRESS), canonical. */
  address: string;
  prefixLength: number;
  /** `address/prefixLength`. */
  cidr: string;
  /** RT_SCOPE_*: 0 global, 253 link, 254 host. */
  scope: number;
  /** IFA_F_PERMANENT: configured, not learnt (SLAAC addresses lack it). */
  permanent: boolean;
  /** IFA_F_TENTATIVE: IPv6 duplicate address detection still running. */
  tentative: boolean;
  /** IFA_F_SECONDARY: IPv4, not the first address of its subnet on the link (deleting the primary deletes it too). */
  secondary: boolean;
}

export interface Route {
  family: Family;
  /** Destination network, canonical CIDR; the default route is `0.0.0.0/0` or `::/0`. */
  dst: string;
  gateway: string | undefined;
  /** Output ifindex; undefined for routes without one (blackhole, multipath). */
  oif: number | undefined;
  /** Preferred source address. */
  src: string | undefined;
  table: number;
  /** RTA_PRIORITY; 0 when absent (IPv4). */
  metric: number;
  /** RTPROT_*. */
  protocol: number;
  /** RT_SCOPE_*. */
  scope: number;
  /** RTN_*. */
  type: number;
}

/** What a route is made of when adding, replacing or deleting one. */
export interface RouteSpec {
  /** Destination network `ADDRESS/PREFIX` (host bits zero); `default` needs `gateway` to say the family. */
  dst: string;
  gateway?: string;
  /** Output link. */
  dev: LinkRef;
  /** Preferred source address. */
  src?: string;
  /** Routing table id; default main (254). */
  table?: number;
  /** Route metric (priority); default 0 for IPv4, 1024 for IPv6 (what the kernel stores for 0). */
  metric?: number;
}

export interface Neighbour {
  index: number;
  family: Family;
  address: string;
  /** Link-layer address; undefined for entries without one (incomplete, failed). */
  mac: string | undefined;
  /** NUD_* state names: `permanent`, `reachable`, `stale`, `noarp`, ... */
  state: string[];
  permanent: boolean;
}

export interface NeighbourSpec {
  dev: LinkRef;
  address: string;
  mac: string;
}

export interface NetlinkOptions {
  /** Named namespace (`/run/netns/NAME`) to open the socket in; default: the caller's namespace. */
  netns?: string;
  /** Timeout in ms for one request/reply exchange; default 5000. */
  timeoutMs?: number;
}

export interface CreateLinkOptions {
  mtu?: number;
  mac?: string;
  /** Sets IFLA_IFALIAS right after creation (the reconciler's ownership mark). */
  alias?: string;
}

export interface CreateVethOptions extends CreateLinkOptions {
  /** Namespace to create the peer in: a name under /run/netns, or an open namespace fd (left open). */
  peerNetns?: string | { fd: number };
  /** MTU of the peer; default: the kernel's (like `ip link add ... mtu N type veth`, `mtu` sets this end only). */
  peerMtu?: number;
  peerMac?: string;
}

export interface AddressFilter {
  link?: LinkRef;
  family?: Family;
}

export interface RouteFilter {
  family?: Family;
  /** Only this table; default all tables. */
  table?: number;
}

export interface NeighbourFilter {
  link?: LinkRef;
  family?: Family;
}

const errnoNames: Map<number, [string, string]> = getSystemErrorMap();

function errnoDescription(name: string): string {
  for (const [, [n, desc]] of errnoNames) if (n === name) return desc;
  return 'unknown error';
}

/**
 * Pull the errno name out of what the package throws: its own
 * `Error('Request rejected: EEXIST')`, a send error (ErrnoException with
 * `code`), or its timeout `Error('Timeout has been reached')`.
 */
export function errnoOf(e: unknown): string {
  if (isNativeErrnoError(e)) return e.code;
  if (e instanceof Error) {
    const m = /^Request rejected: (\S+)$/.exec(e.message);
    if (m) {
      const name = m[1]!;
      if (/^-?\d+$/.test(name)) return errnoNames.get(-Math.abs(Number(name)))?.[0] ?? `errno ${name}`;
      return name;
    }
    if (e.message === 'Timeout has been reached') return 'ETIMEDOUT';
  }
  return 'EIO';
}

const generalHints: Record<string, string> = {
  EPERM: 'needs CAP_NET_ADMIN in this network namespace (run as root)',
  EACCES: 'needs CAP_NET_ADMIN in this network namespace (run as root)',
  ENODEV: 'no such link',
  EOPNOTSUPP: 'the kernel does not support this (missing module or link kind?)',
  ENETDOWN: 'the link is down',
  ENETUNREACH: 'the gateway is not reachable on that link (add an address in its subnet first)',
  ETIMEDOUT: 'the kernel did not answer in time',
  EBUSY: 'the kernel is busy with another request on this socket',
};

/** Build the SystemError for a failed request. Pure; exported for tests. */
export function netlinkError(e: unknown, syscall: string, what: string, hints: Record<string, string> = {}): SystemError {
  const errno = errnoOf(e);
  const hint = hints[errno] ?? generalHints[errno] ?? errnoDescription(errno);
  const code = errno === 'ETIMEDOUT' ? 'NETLINK_TIMEOUT' : 'NETLINK_FAILED';
  return new SystemError(code, errno, syscall, `${what}: ${errno} (${hint})`, { cause: e });
}

/** Parse raw rtnetlink replies; message types the package does not know are skipped. */
function parseAll(msgs: readonly NetlinkMessage[]): rt.Message[] {
  return msgs.flatMap((m) => {
    const name = rt.MessageType[m.type] as keyof typeof rt.MessageType | undefined;
    return name === undefined ? [] : [rt.parseMessage(rt.MessageType[name], m.data)];
  });
}

function attrs(data: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(data);
  return Buffer.concat(s.bufs);
}

function flagSet(flags: object | undefined, name: string): boolean {
  return flags !== undefined && (flags as Record<string, unknown>)[name] === true;
}

function enumNumber(v: number | string | undefined, table: Record<string, string | number>): number {
  if (typeof v === 'number') return v;
  if (v === undefined) return 0;
  const n = table[v];
  return typeof n === 'number' ? n : 0;
}

/** IFLA_* attribute types of a VLAN device's IFLA_INFO_DATA (linux/if_link.h). */
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_VLAN_ID = 1;
const IFLA_VLAN_PROTOCOL = 5;

/** One netlink attribute: length, type, payload, padding to 4 bytes. */
function nlattr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

/**
 * The IFLA_LINKINFO payload of an 802.1Q VLAN device: IFLA_INFO_KIND "vlan"
 * and IFLA_INFO_DATA { IFLA_VLAN_ID (u16, host order), IFLA_VLAN_PROTOCOL
 * (be16) }, byte for byte what iproute2 sends for `ip link add link T name N
 * type vlan id V protocol 802.1Q`. (The netlink package's formatVlan writes
 * the protocol in host order, which the kernel would refuse.) Pure.
 */
export function vlanLinkInfo(vlanId: number, protocol = 0x8100): Buffer {
  if (!Number.isInteger(vlanId) || vlanId < 1 || vlanId > 4094) throw new ValidationError(`VLAN id ${vlanId} must be an integer 1..4094`);
  if (protocol !== 0x8100 && protocol !== 0x88a8) throw new ValidationError(`VLAN protocol 0x${protocol.toString(16)} must be 0x8100 (802.1Q) or 0x88a8 (802.1ad)`);
  const id = Buffer.alloc(2);
  id.writeUInt16LE(vlanId);
  const proto = Buffer.alloc(2);
  proto.writeUInt16BE(protocol);
  const data = Buffer.concat([nlattr(IFLA_VLAN_ID, id), nlattr(IFLA_VLAN_PROTOCOL, proto)]);
  return Buffer.concat([nlattr(IFLA_INFO_KIND, Buffer.from('vlan')), nlattr(IFLA_INFO_DATA, data)]);
}

/** The VLAN id and protocol in a VLAN device's IFLA_INFO_DATA; undefined when absent. Pure. */
export function parseVlanInfoData(data: Buffer): { id: number; protocol: number } | undefined {
  let id: number | undefined;
  let protocol = 0x8100;
  for (let o = 0; o + 4 <= data.length;) {
    const len = data.readUInt16LE(o);
    const type = data.readUInt16LE(o + 2) & 0x3fff;
    if (len < 4 || o + len > data.length) break;
    if (type === IFLA_VLAN_ID && len >= 6) id = data.readUInt16LE(o + 4);
    if (type === IFLA_VLAN_PROTOCOL && len >= 6) protocol = data.readUInt16BE(o + 4);
    o += (len + 3) & ~3;
  }
  return id === undefined ? undefined : { id, protocol };
}

function toLink(m: rt.LinkMessage): Link {
  const a = m.attrs;
  const info = a.linkinfo ? ifla.parseInfo(a.linkinfo) : undefined;
  return {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    kind: info?.kind,
    up: flagSet(m.data.flags, 'up'),
    lowerUp: flagSet(m.data.flags, 'lowerUp'),
    mtu: a.mtu ?? 0,
    mac: a.address && a.address.length > 0 ? formatMac(a.address) : undefined,
    master: a.master !== undefined && a.master !== 0 ? a.master : undefined,
    alias: a.ifalias !== undefined && a.ifalias !== '' ? a.ifalias : undefined,
    parentIndex: a.link && a.link.length >= 4 ? getU32(a.link) : undefined,
    parentNetnsId: a.linkNetnsid,
    minMtu: a.minMtu,
    maxMtu: a.maxMtu,
    vlan: info?.kind === 'vlan' && info.data ? parseVlanInfoData(info.data) : undefined,
  };
}

function toAddress(m: rt.AddressMessage): Address | undefined {
  const family = familyOfAf(m.data.family ?? 0);
  const bytes = m.attrs.local ?? m.attrs.address;
  if (!family || !bytes) return undefined;
  const prefixLength = m.data.prefixlen ?? 0;
  // IFA_FLAGS (32 bit) supersedes ifa_flags (8 bit) when present.
  const flags = m.attrs.flags ?? m.data.flags;
  return {
    index: m.data.index ?? 0,
    family,
    address: formatIp(bytes),
    prefixLength,
    cidr: formatCidr(bytes, prefixLength),
    scope: m.data.scope ?? 0,
    permanent: flagSet(flags, 'permanent'),
    tentative: flagSet(flags, 'tentative'),
    secondary: flagSet(flags, 'secondary'),
  };
}

function toRoute(m: rt.RouteMessage): Route | undefined {
  const family = familyOfAf(m.data.family ?? 0);
  if (!family) return undefined;
  const dstLen = m.data.dstLen ?? 0;
  const dst = m.attrs.dst ?? Buffer.alloc(family === 4 ? 4 : 16);
  return {
    family,
    dst: formatCidr(dst, dstLen),
    gateway: m.attrs.gateway ? formatIp(m.attrs.gateway) : undefined,
    oif: m.attrs.oif,
    src: m.attrs.prefsrc ? formatIp(m.attrs.prefsrc) : undefined,
    table: m.attrs.table ?? m.data.table ?? 0,
    metric: m.attrs.priority ?? 0,
    protocol: enumNumber(m.data.protocol, rt.RouteProtocol),
    scope: enumNumber(m.data.scope, rt.RouteScope),
    type: enumNumber(m.data.type, rt.RouteType),
  };
}

function toNeighbour(m: rt.NeighborMessage): Neighbour | undefined {
  const family = familyOfAf(m.data.family ?? 0);
  if (!family || !m.attrs.dst) return undefined;
  const state = Object.entries(m.data.state ?? {}).filter(([k, v]) => v === true && k !== '__unknown').map(([k]) => k);
  return {
    index: m.data.ifindex ?? 0,
    family,
    address: formatIp(m.attrs.dst),
    mac: m.attrs.lladdr && m.attrs.lladdr.length > 0 ? formatMac(m.attrs.lladdr) : undefined,
    state,
    permanent: state.includes('permanent'),
  };
}

/** Normalized pieces of a RouteSpec, without the link. */
export interface RouteKeyParts {
  family: Family;
  dst: Buffer;
  dstLen: number;
  gateway: Buffer | undefined;
  src: Buffer | undefined;
  table: number;
  metric: number;
}

/** Validate and normalize a route's addresses, table and metric. Pure; throws ValidationError. */
export function routeParts(r: Omit<RouteSpec, 'dev'>): RouteKeyParts {
  const gw = r.gateway !== undefined ? parseIp(r.gateway, 'route gateway') : undefined;
  let family: Family;
  let dst: Buffer;
  let dstLen: number;
  if (r.dst === 'default') {
    if (!gw) throw new ValidationError('route "default" without a gateway: write 0.0.0.0/0 or ::/0 to say the family');
    family = gw.family;
    dst = Buffer.alloc(family === 4 ? 4 : 16);
    dstLen = 0;
  } else {
    const c = parseCidr(r.dst, 'route destination');
    if (!isNetworkAddress(c.bytes, c.prefixLength)) {
      throw new ValidationError(`route destination ${r.dst} has host bits set: write the network address`);
    }
    family = c.family;
    dst = c.bytes;
    dstLen = c.prefixLength;
  }
  if (gw && gw.family !== family) throw new ValidationError(`route ${r.dst}: gateway ${r.gateway ?? ''} is not IPv${family}`);
  const src = r.src !== undefined ? parseIp(r.src, 'route source') : undefined;
  if (src && src.family !== family) throw new ValidationError(`route ${r.dst}: source ${r.src ?? ''} is not IPv${family}`);
  const table = r.table ?? TABLE_MAIN;
  if (!Number.isInteger(table) || table < 1 || table > 0xffffffff || table === TABLE_LOCAL) {
    throw new ValidationError(`route ${r.dst}: table ${table} must be 1..4294967295 and not local (255)`);
  }
  let metric = r.metric ?? 0;
  if (!Number.isInteger(metric) || metric < 0 || metric > 0xffffffff) {
    throw new ValidationError(`route ${r.dst}: metric ${metric} must be 0..4294967295`);
  }
  // The kernel stores IPv6 routes added with metric 0 as 1024 (IP6_RT_PRIO_USER).
  if (family === 6 && metric === 0) metric = 1024;
  return { family, dst, dstLen, gateway: gw?.bytes, src: src?.bytes, table, metric };
}

type Payload = (out: AttrStream) => void;

/**
 * The rtnetlink client. Create with `Netlink.open()`, `close()` when done
 * (an unclosed socket does not keep the process alive).
 */
export class Netlink {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly sock: RtNetlinkSocket, readonly netns: string | undefined, private readonly timeoutMs: number) {}

  /** Open a socket in the caller's namespace, or in the named one. */
  static open(opts: NetlinkOptions = {}): Netlink {
    let sock: RtNetlinkSocket;
    try {
      sock = withNetns(opts.netns, () => createRtNetlink());
    } catch (e) {
      if (e instanceof NeaError) throw e;
      const errno = isNativeErrnoError(e) ? e.code : 'EIO';
      const syscall = isNativeErrnoError(e) ? e.syscall : 'socket';
      const msg = e instanceof Error ? e.message : String(e);
      throw new SystemError('NETLINK_OPEN_FAILED', errno, syscall, `cannot open an rtnetlink socket${opts.netns ? ` in netns ${opts.netns}` : ''}: ${msg}`, { cause: e });
    }
    return new Netlink(sock, opts.netns, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  /** Close the socket; pending requests are abandoned, later calls throw. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.socket.close();
  }

  private where(): string {
    return this.netns ? ` in netns ${this.netns}` : '';
  }

  /** Run `fn` after every earlier request of this client has settled. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** One request/ACK exchange. Errors become SystemError naming `what`. */
  private async request(type: rt.MessageType, payload: Payload, flags: number, syscall: string, what: string,
    hints?: Record<string, string>): Promise<rt.Message[]> {
    if (this.closed) throw new NeaError('NETLINK_CLOSED', `${what}: the netlink client is closed`);
    return this.serialize(async () => {
      const out = new AttrStream();
      payload(out);
      try {
        const [msgs] = await this.sock.socket.request(type, out.bufs, { flags, timeout: this.timeoutMs });
        return parseAll(msgs);
      } catch (e) {
        throw netlinkError(e, syscall, `${what}${this.where()}`, hints);
      }
    });
  }

  /** A dump; retried while the kernel flags it inconsistent (NLM_F_DUMP_INTR). */
  private async dump(type: rt.MessageType, payload: Payload, syscall: string, what: string): Promise<rt.Message[]> {
    if (this.closed) throw new NeaError('NETLINK_CLOSED', `${what}: the netlink client is closed`);
    return this.serialize(async () => {
      for (let attempt = 0; ; attempt++) {
        const out = new AttrStream();
        payload(out);
        let msgs;
        try {
          [msgs] = await this.sock.socket.request(type, out.bufs, { flags: FlagsGet.DUMP, timeout: this.timeoutMs });
        } catch (e) {
          throw netlinkError(e, syscall, `${what}${this.where()}`);
        }
        const interrupted = msgs.some((m) => (m.flags & Flags.DUMP_INTR) !== 0);
        if (interrupted && attempt < DUMP_RETRIES) continue;
        if (interrupted) {
          throw new SystemError('NETLINK_FAILED', 'EAGAIN', syscall, `${what}${this.where()}: EAGAIN (state kept changing during ${DUMP_RETRIES + 1} dumps)`);
        }
        return parseAll(msgs);
      }
    });
  }

  // ---- links ----------------------------------------------------------------

  /** All links of the namespace. */
  async links(): Promise<Link[]> {
    const msgs = await this.dump(rt.MessageType.GETLINK, (o) => { rt.formatLinkMessage({ kind: 'link', data: {}, attrs: {} }, o); },
      'RTM_GETLINK', 'list links');
    return msgs.flatMap((m) => (m.kind === 'link' ? [toLink(m)] : []));
  }

  private async getLinkMessage(ref: LinkRef, what: string): Promise<rt.LinkMessage | undefined> {
    const data: rt.Link = typeof ref === 'number' ? { index: ref } : {};
    const la: ifla.LinkAttrs = typeof ref === 'string' ? { ifname: ref } : {};
    try {
      const msgs = await this.request(rt.MessageType.GETLINK, (o) => { rt.formatLinkMessage({ kind: 'link', data, attrs: la }, o); },
        0, 'RTM_GETLINK', what);
      const m = msgs[0];
      return m?.kind === 'link' ? m : undefined;
    } catch (e) {
      if (e instanceof SystemError && e.errno === 'ENODEV') return undefined;
      throw e;
    }
  }

  /** The link named `ref`, or undefined when there is none. */
  async link(ref: LinkRef): Promise<Link | undefined> {
    const m = await this.getLinkMessage(ref, `look up link ${ref}`);
    return m ? toLink(m) : undefined;
  }

  private noSuchLink(ref: LinkRef, what: string, syscall: string): SystemError {
    return new SystemError('NETLINK_FAILED', 'ENODEV', syscall, `${what}${this.where()}: ENODEV (no link ${typeof ref === 'number' ? `with ifindex ${ref}` : `named ${ref}`})`);
  }

  /** The ifindex of `ref`; SystemError ENODEV when there is no such link. */
  async linkIndex(ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') return ref;
    const l = await this.link(ref);
    if (!l) throw this.noSuchLink(ref, `look up link ${ref}`, 'RTM_GETLINK');
    return l.index;
  }

  private async resolve(ref: LinkRef, what: string, syscall: string): Promise<number> {
    if (typeof ref === 'number') return ref;
    const l = await this.link(ref);
    if (!l) throw this.noSuchLink(ref, what, syscall);
    return l.index;
  }

  /** Counters of `ref` (IFLA_STATS64). */
  async linkStats(ref: LinkRef): Promise<LinkStats> {
    const what = `read counters of ${ref}`;
    const m = await this.getLinkMessage(ref, what);
    if (!m) throw this.noSuchLink(ref, what, 'RTM_GETLINK');
    const s = m.attrs.stats64 ?? m.attrs.stats;
    const n = (v: bigint | number | undefined): bigint => (typeof v === 'bigint' ? v : BigInt(v ?? 0));
    return {
      rxPackets: n(s?.rxPackets), txPackets: n(s?.txPackets), rxBytes: n(s?.rxBytes), txBytes: n(s?.txBytes),
      rxDropped: n(s?.rxDropped), txDropped: n(s?.txDropped), rxErrors: n(s?.rxErrors), txErrors: n(s?.txErrors),
    };
  }

  /** Why a create failed with EEXIST: what holds the name (or, for a veth, the peer name) now. */
  private async existsHint(name: string, kind: string, peer?: { name: string; elsewhere: boolean }): Promise<Record<string, string>> {
    const describe = (l: Link): string =>
      l.kind === kind ? `also a ${kind}` : `as a ${l.kind ?? 'device without a kind'}, not a ${kind}`;
    let hint = `a link named ${name} already exists`;
    try {
      const l = await this.link(name);
      if (l) {
        hint = `a link named ${name} already exists (${describe(l)})`;
      } else if (peer && !peer.elsewhere) {
        const p = await this.link(peer.name);
        hint = `the peer name ${peer.name} is taken${p ? ` by a ${p.kind ?? 'device without a kind'}` : ''}`;
      } else if (peer) {
        hint = `the peer name ${peer.name} is taken in the peer's namespace`;
      }
    } catch { /* keep the generic hint */ }
    return { EEXIST: hint };
  }

  private async newLink(name: string, kind: string, what: string, la: ifla.LinkAttrs, alias: string | undefined,
    peer?: { name: string; elsewhere: boolean }): Promise<Link> {
    try {
      await this.request(rt.MessageType.NEWLINK, (o) => { rt.formatLinkMessage({ kind: 'link', data: {}, attrs: la }, o); },
        FlagsNew.CREATE | FlagsNew.EXCL, 'RTM_NEWLINK', what);
    } catch (e) {
      if (e instanceof SystemError && e.errno === 'EEXIST') {
        throw netlinkError(e.cause, 'RTM_NEWLINK', `${what}${this.where()}`, await this.existsHint(name, kind, peer));
      }
      throw e;
    }
    // IFLA_IFALIAS is ignored by RTM_NEWLINK; it takes a second request.
    if (alias !== undefined) await this.setAlias(name, alias);
    const l = await this.link(name);
    if (!l) throw this.noSuchLink(name, what, 'RTM_NEWLINK');
    return l;
  }

  private static baseAttrs(name: string, o: CreateLinkOptions, what: string): ifla.LinkAttrs {
    checkLinkName(name, what);
    const la: ifla.LinkAttrs = { ifname: name };
    if (o.mtu !== undefined) la.mtu = checkMtu(o.mtu, what);
    if (o.mac !== undefined) la.address = parseMac(o.mac);
    return la;
  }

  /** Create a Linux bridge (down). EEXIST says what holds the name. */
  async addBridge(name: string, opts: CreateLinkOptions = {}): Promise<Link> {
    const what = `add bridge ${name}`;
    const la = Netlink.baseAttrs(name, opts, what);
    la.linkinfo = attrs(ifla.formatInfo({ kind: 'bridge' }));
    return this.newLink(name, 'bridge', what, la, opts.alias);
  }

  /**
   * Create an 802.1Q VLAN device `name` on `parent` (down), tagging with
   * `vlanId`. On a kernel without 802.1Q devices (no `8021q` module) this
   * fails with EOPNOTSUPP; `isVlanUnsupported(e)` recognizes that.
   */
  async addVlan(name: string, parent: LinkRef, vlanId: number, opts: CreateLinkOptions = {}): Promise<Link> {
    const what = `add vlan ${name} (id ${vlanId} on ${parent})`;
    const la = Netlink.baseAttrs(name, opts, what);
    const linkinfo = vlanLinkInfo(vlanId);
    const index = await this.resolve(parent, what, 'RTM_NEWLINK');
    const link = Buffer.alloc(4);
    link.writeUInt32LE(index);
    la.link = link;
    la.linkinfo = linkinfo;
    try {
      return await this.newLink(name, 'vlan', what, la, opts.alias);
    } catch (e) {
      if (isVlanUnsupported(e)) {
        const hint = 'this kernel has no 802.1Q VLAN devices (module 8021q): VLANs must be tagged in user space';
        throw netlinkError((e as SystemError).cause, 'RTM_NEWLINK', `${what}${this.where()}`, { EOPNOTSUPP: hint, ENOTSUP: hint });
      }
      throw e;
    }
  }

  /**
   * Create a veth pair `name` <-> `peer` (both down). With `peerNetns` the
   * peer is created directly in that namespace. Returns the local end.
   */
  async addVeth(name: string, peer: string, opts: CreateVethOptions = {}): Promise<Link> {
    const what = `add veth ${name} (peer ${peer}${opts.peerNetns !== undefined ? ` in ${typeof opts.peerNetns === 'string' ? `netns ${opts.peerNetns}` : `netns fd ${opts.peerNetns.fd}`}` : ''})`;
    const la = Netlink.baseAttrs(name, opts, what);
    const peerOpts: CreateLinkOptions = {};
    if (opts.peerMtu !== undefined) peerOpts.mtu = opts.peerMtu;
    if (opts.peerMac !== undefined) peerOpts.mac = opts.peerMac;
    const pa = Netlink.baseAttrs(peer, peerOpts, what);
    let fd: number | undefined;
    let ownFd = false;
    if (typeof opts.peerNetns === 'string') {
      try {
        fd = openSync(netnsPath(opts.peerNetns), 'r');
      } catch (e) {
        const errno = isNativeErrnoError(e) ? e.code : 'EIO';
        throw new SystemError('NETLINK_FAILED', errno, 'open', `${what}: cannot open netns ${opts.peerNetns} (${errno})`, { cause: e });
      }
      ownFd = true;
    } else if (opts.peerNetns !== undefined) {
      fd = opts.peerNetns.fd;
    }
    try {
      if (fd !== undefined) pa.netNsFd = fd;
      // VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's IFLA_* attributes.
      const peerMsg = Buffer.concat([rt.formatLink({}), attrs(ifla.formatLinkAttrs(pa))]);
      la.linkinfo = attrs(ifla.formatInfo({ kind: 'veth', data: attrs(ifla.formatVethInfo({ peer: peerMsg })) }));
      return await this.newLink(name, 'veth', what, la, opts.alias, { name: peer, elsewhere: fd !== undefined });
    } finally {
      if (ownFd && fd !== undefined) closeSync(fd);
    }
  }

  /** Delete a link (for a veth, both ends). */
  async deleteLink(ref: LinkRef): Promise<void> {
    const what = `delete link ${ref}`;
    const index = await this.resolve(ref, what, 'RTM_DELLINK');
    await this.request(rt.MessageType.DELLINK, (o) => { rt.formatLinkMessage({ kind: 'link', data: { index }, attrs: {} }, o); },
      0, 'RTM_DELLINK', what);
  }

  private async setLink(ref: LinkRef, what: string, data: rt.Link, la: ifla.LinkAttrs, hints?: Record<string, string>): Promise<void> {
    const index = await this.resolve(ref, what, 'RTM_SETLINK');
    await this.request(rt.MessageType.SETLINK, (o) => { rt.formatLinkMessage({ kind: 'link', data: { ...data, index }, attrs: la }, o); },
      0, 'RTM_SETLINK', what, hints);
  }

  /** Set the administrative state (IFF_UP). */
  async setUp(ref: LinkRef, up: boolean): Promise<void> {
    await this.setLink(ref, `set ${ref} ${up ? 'up' : 'down'}`, { flags: up ? { up: true } : {}, change: { up: true } }, {});
  }

  async setMtu(ref: LinkRef, mtu: number): Promise<void> {
    const what = `set ${ref} mtu ${mtu}`;
    await this.setLink(ref, what, {}, { mtu: checkMtu(mtu, what) }, { EINVAL: 'MTU outside what the link accepts (see its minmtu/maxmtu)' });
  }

  async setMac(ref: LinkRef, mac: string): Promise<void> {
    await this.setLink(ref, `set ${ref} address ${mac}`, {}, { address: parseMac(mac) },
      { EADDRNOTAVAIL: 'not a usable unicast MAC address', EBUSY: 'the link must be down to change its address' });
  }

  /** Enslave `ref` to bridge `master`, or release it with `null`. */
  async setMaster(ref: LinkRef, master: LinkRef | null): Promise<void> {
    const what = master === null ? `release ${ref} from its master` : `set ${ref} master ${master}`;
    const m = master === null ? 0 : await this.resolve(master, what, 'RTM_SETLINK');
    await this.setLink(ref, what, {}, { master: m }, { ELOOP: 'that would make a loop of masters', EBUSY: 'the link already has another master' });
  }

  /** Set IFLA_IFALIAS (free text, at most 255 bytes). */
  async setAlias(ref: LinkRef, alias: string): Promise<void> {
    if (Buffer.byteLength(alias) > 255) throw new ValidationError(`alias of ${ref} is longer than 255 bytes`);
    await this.setLink(ref, `set ${ref} alias ${alias}`, {}, { ifalias: alias });
  }

  // ---- addresses ------------------------------------------------------------

  /** Addresses of the namespace, optionally of one link and/or one family. */
  async addresses(filter: AddressFilter = {}): Promise<Address[]> {
    const index = filter.link !== undefined ? await this.resolve(filter.link, 'list addresses', 'RTM_GETADDR') : undefined;
    const data: rt.Address = filter.family !== undefined ? { family: afOf(filter.family) } : {};
    const msgs = await this.dump(rt.MessageType.GETADDR, (o) => { rt.formatAddressMessage({ kind: 'address', data, attrs: {} }, o); },
      'RTM_GETADDR', 'list addresses');
    return msgs.flatMap((m) => {
      const a = m.kind === 'address' ? toAddress(m) : undefined;
      if (!a) return [];
      if (index !== undefined && a.index !== index) return [];
      if (filter.family !== undefined && a.family !== filter.family) return [];
      return [a];
    });
  }

  private async addressRequest(type: rt.MessageType, link: LinkRef, cidr: string, add: boolean): Promise<void> {
    const what = `${add ? 'add' : 'delete'} address ${cidr} ${add ? 'to' : 'from'} ${link}`;
    const c = parseCidr(cidr);
    const syscall = add ? 'RTM_NEWADDR' : 'RTM_DELADDR';
    const index = await this.resolve(link, what, syscall);
    const aa: rt.AddressAttrs = { local: c.bytes, address: c.bytes };
    if (add && c.family === 4 && c.prefixLength < 31) {
      // Directed broadcast, as `ip addr add ... brd +` and every DHCP client set it.
      const b = Buffer.from(c.bytes);
      for (let bit = c.prefixLength; bit < 32; bit++) b[bit >> 3] = b[bit >> 3]! | (1 << (7 - (bit & 7)));
      aa.broadcast = b;
    }
    await this.request(type, (o) => {
      rt.formatAddressMessage({ kind: 'address', data: { family: afOf(c.family), prefixlen: c.prefixLength, index }, attrs: aa }, o);
    }, add ? FlagsNew.CREATE | FlagsNew.EXCL : 0, syscall, what,
    { EEXIST: 'the link already has that address', EADDRNOTAVAIL: 'the link has no such address' });
  }

  /** Add `ADDRESS/PREFIX` to a link (IPv6: with duplicate address detection, so tentative at first). */
  async addAddress(link: LinkRef, cidr: string): Promise<void> {
    await this.addressRequest(rt.MessageType.NEWADDR, link, cidr, true);
  }

  async deleteAddress(link: LinkRef, cidr: string): Promise<void> {
    await this.addressRequest(rt.MessageType.DELADDR, link, cidr, false);
  }

  // ---- routes ---------------------------------------------------------------

  /** Routes of the namespace (all tables unless filtered, including the kernel's local table). */
  async routes(filter: RouteFilter = {}): Promise<Route[]> {
    const data: rt.Route = filter.family !== undefined ? { family: afOf(filter.family) } : {};
    const msgs = await this.dump(rt.MessageType.GETROUTE, (o) => { rt.formatRouteMessage({ kind: 'route', data, attrs: {} }, o); },
      'RTM_GETROUTE', 'list routes');
    return msgs.flatMap((m) => {
      const r = m.kind === 'route' ? toRoute(m) : undefined;
      if (!r) return [];
      if (filter.family !== undefined && r.family !== filter.family) return [];
      if (filter.table !== undefined && r.table !== filter.table) return [];
      return [r];
    });
  }

  private async routeRequest(op: 'add' | 'replace' | 'delete', spec: RouteSpec): Promise<void> {
    const p = routeParts(spec);
    const via = p.gateway ? ` via ${formatIp(p.gateway)}` : '';
    const table = p.table !== TABLE_MAIN ? ` table ${p.table}` : '';
    const what = `${op} route ${formatCidr(p.dst, p.dstLen)}${via} dev ${spec.dev}${table}`;
    const syscall = op === 'delete' ? 'RTM_DELROUTE' : 'RTM_NEWROUTE';
    const oif = await this.resolve(spec.dev, what, syscall);
    const data: rt.Route = {
      family: afOf(p.family), dstLen: p.dstLen,
      // rtm_table is 8 bits; larger ids travel in RTA_TABLE (RT_TABLE_COMPAT in the header).
      table: p.table < 256 ? p.table : 252,
    };
    if (op === 'delete') {
      // Protocol 0 (left out), type UNSPEC and scope NOWHERE match any.
      data.scope = 'NOWHERE';
      data.type = 'UNSPEC';
    } else {
      data.protocol = 'STATIC';
      data.scope = p.family === 4 && !p.gateway ? 'LINK' : 'UNIVERSE';
      data.type = 'UNICAST';
    }
    const ra: rt.RouteAttrs = { table: p.table, oif };
    if (p.dstLen > 0) ra.dst = p.dst;
    if (p.gateway) ra.gateway = p.gateway;
    if (p.src) ra.prefsrc = p.src;
    if (p.metric !== 0) ra.priority = p.metric;
    const flags = op === 'add' ? FlagsNew.CREATE | FlagsNew.EXCL : op === 'replace' ? FlagsNew.CREATE | FlagsNew.REPLACE : 0;
    await this.request(op === 'delete' ? rt.MessageType.DELROUTE : rt.MessageType.NEWROUTE,
      (o) => { rt.formatRouteMessage({ kind: 'route', data, attrs: ra }, o); }, flags, syscall, what,
      { EEXIST: 'a route to that destination with that metric already exists in that table', ESRCH: 'no such route',
        EINVAL: 'the kernel refused the route as invalid (is the source address on this host?)' });
  }

  /** Add a unicast route (protocol static). EEXIST when one with the same destination, table and metric exists. */
  async addRoute(spec: RouteSpec): Promise<void> {
    await this.routeRequest('add', spec);
  }

  /** Add or overwrite the route with this destination, table and metric. */
  async replaceRoute(spec: RouteSpec): Promise<void> {
    await this.routeRequest('replace', spec);
  }

  /** Delete the route matching destination, table, metric, link and (when given) gateway. */
  async deleteRoute(spec: RouteSpec): Promise<void> {
    await this.routeRequest('delete', spec);
  }

  // ---- neighbours -----------------------------------------------------------

  async neighbours(filter: NeighbourFilter = {}): Promise<Neighbour[]> {
    const index = filter.link !== undefined ? await this.resolve(filter.link, 'list neighbours', 'RTM_GETNEIGH') : undefined;
    const data: rt.Neighbor = filter.family !== undefined ? { family: afOf(filter.family) } : {};
    const msgs = await this.dump(rt.MessageType.GETNEIGH, (o) => { rt.formatNeighborMessage({ kind: 'neighbor', data, attrs: {} }, o); },
      'RTM_GETNEIGH', 'list neighbours');
    return msgs.flatMap((m) => {
      const n = m.kind === 'neighbor' ? toNeighbour(m) : undefined;
      if (!n) return [];
      if (index !== undefined && n.index !== index) return [];
      if (filter.family !== undefined && n.family !== filter.family) return [];
      return [n];
    });
  }

  private async neighbourRequest(op: 'add' | 'replace' | 'delete', spec: { dev: LinkRef; address: string; mac?: string }): Promise<void> {
    const ip = parseIp(spec.address, 'neighbour address');
    const what = `${op} permanent neighbour ${canonicalIp(spec.address)}${spec.mac !== undefined ? ` lladdr ${spec.mac}` : ''} dev ${spec.dev}`;
    const syscall = op === 'delete' ? 'RTM_DELNEIGH' : 'RTM_NEWNEIGH';
    const ifindex = await this.resolve(spec.dev, what, syscall);
    const na: rt.NeighborAttrs = { dst: ip.bytes };
    if (spec.mac !== undefined) na.lladdr = parseMac(spec.mac);
    const flags = op === 'add' ? FlagsNew.CREATE | FlagsNew.EXCL : op === 'replace' ? FlagsNew.CREATE | FlagsNew.REPLACE : 0;
    await this.request(op === 'delete' ? rt.MessageType.DELNEIGH : rt.MessageType.NEWNEIGH, (o) => {
      rt.formatNeighborMessage({ kind: 'neighbor', data: { family: afOf(ip.family), ifindex, state: op === 'delete' ? {} : { permanent: true } }, attrs: na }, o);
    }, flags, syscall, what, { EEXIST: 'an entry for that address exists on the link', ENOENT: 'no such neighbour entry' });
  }

  /** Add a permanent neighbour entry (ARP / NDP). EEXIST when the address has an entry on that link. */
  async addNeighbour(spec: NeighbourSpec): Promise<void> {
    await this.neighbourRequest('add', spec);
  }

  /** Add or overwrite the permanent entry for that address on that link. */
  async replaceNeighbour(spec: NeighbourSpec): Promise<void> {
    await this.neighbourRequest('replace', spec);
  }

  async deleteNeighbour(spec: { dev: LinkRef; address: string }): Promise<void> {
    await this.neighbourRequest('delete', spec);
  }
}

/**
 * True when `e` says the kernel cannot make 802.1Q VLAN devices: EOPNOTSUPP
 * from RTM_NEWLINK (Node names errno 95 ENOTSUP, its alias) in {@link Netlink.addVlan}.
 */
export function isVlanUnsupported(e: unknown): boolean {
  return e instanceof SystemError && (e.errno === 'EOPNOTSUPP' || e.errno === 'ENOTSUP') && e.syscall === 'RTM_NEWLINK';
}

/** Validate a link name as the kernel does (1..15 bytes, no `/`, `:` or whitespace, not `.`/`..`). */
export function checkLinkName(name: string, what = 'link name'): string {
  if (name === '' || Buffer.byteLength(name) > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new ValidationError(`${what}: "${name}" is not a valid link name (1-15 characters, no '/', ':' or spaces)`);
  }
  return name;
}

/** Validate an MTU in bytes (68..65535, the IPv4 minimum to the 16-bit maximum). */
export function checkMtu(mtu: number, what = 'mtu'): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new ValidationError(`${what}: MTU ${mtu} must be an integer 68..65535`);
  return mtu;
}
