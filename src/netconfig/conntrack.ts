/**
 * A small ctnetlink client (NETLINK_NETFILTER, subsystem CTNETLINK): list
 * the connection tracking table of a namespace and delete entries from it.
 * What `conntrack -L` / `conntrack -D` do, without running them.
 *
 * Why list-then-delete: the kernel's "flush with a filter"
 * (IPCTNL_MSG_CT_DELETE without a tuple) filters only by mark, status,
 * zone and family; a CTA_FILTER with tuple fields is accepted in dumps only
 * (the flush answers EOPNOTSUPP). So, like conntrack-tools, the client dumps
 * the table (IPCTNL_MSG_CT_GET, NLM_F_DUMP), matches entries in JavaScript
 * ({@link matchesConntrack}, pure) and deletes each match by its original
 * tuple and id (IPCTNL_MSG_CT_DELETE with CTA_TUPLE_ORIG + CTA_ID). The id
 * makes the delete exact: an entry that ended and was replaced by a new one
 * with the same tuple between the dump and the delete is left alone
 * (ENOENT, counted as gone).
 *
 * Contracts:
 * - One socket per client, opened in the named namespace and bound to it for
 *   its whole life; requests are serialized (one in flight).
 * - Every kernel refusal is a SystemError (`CONNTRACK_FAILED`, errno name,
 *   message type as `syscall`); ENOENT on a delete is not an error (the
 *   entry already ended).
 * - Encoders and the parser are pure and exported for table tests.
 */
import { createNetlink, FlagsGet, type NetlinkMessage, type NetlinkSocket } from 'netlink';
import { SystemError, isNativeErrnoError } from '../shared/errors.js';
import { afOf, familyOfAf, formatIp, parseIp, type Family } from './ip.js';
import { errnoOf, DEFAULT_TIMEOUT_MS } from './netlink.js';
import { withNetns } from './netns.js';

/** NETLINK_NETFILTER (linux/netlink.h). */
export const NETLINK_NETFILTER = 12;
/** NFNL_SUBSYS_CTNETLINK (linux/netfilter/nfnetlink.h). */
const NFNL_SUBSYS_CTNETLINK = 1;
/** enum cntl_msg_types (linux/netfilter/nfnetlink_conntrack.h). */
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
/** Message types as sent: subsystem in the high byte. */
export const CT_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
export const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;

/** enum ctattr_type. */
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_ID = 12;
const CTA_ZONE = 18;
/** enum ctattr_tuple. */
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
/** enum ctattr_ip. */
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
/** enum ctattr_l4proto. */
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const CTA_PROTO_ICMP_ID = 4;
const CTA_PROTO_ICMP_TYPE = 5;
const CTA_PROTO_ICMP_CODE = 6;
const CTA_PROTO_ICMPV6_ID = 7;
const CTA_PROTO_ICMPV6_TYPE = 8;
const CTA_PROTO_ICMPV6_CODE = 9;

const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** IP protocol numbers nea names. */
export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;

/** Connection status bits (enum ip_conntrack_status) nea reads. */
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;

/** One direction of a connection. Ports for TCP/UDP (and other port protocols), `icmp` for ICMP/ICMPv6. */
export interface ConntrackTuple {
  family: Family;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...). */
  protocol: number;
  /** Canonical addresses. */
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  icmp?: { id: number; type: number; code: number };
}

/** One entry of the table. */
export interface ConntrackEntry {
  /** The kernel's id of the entry (CTA_ID). */
  id: number;
  /** As the first packet was seen (before NAT). */
  original: ConntrackTuple;
  /** As replies are expected (after NAT: the translated addresses show here). */
  reply: ConntrackTuple;
  /** IPS_* bits. */
  status: number;
  /** Conntrack zone; 0 by default. */
  zone: number;
}

/** A tuple pattern: every field given must match; absent fields match anything. */
export interface TuplePattern {
  src?: string;
  dst?: string;
  srcPort?: number;
  dstPort?: number;
}

/**
 * Which entries to match. Every field given must match. `family` and
 * `protocol` apply to the entry; `original`/`reply` to that direction's
 * tuple; `statusAll` requires all of these IPS_* bits.
 */
export interface ConntrackFilter {
  family?: Family;
  protocol?: number;
  original?: TuplePattern;
  reply?: TuplePattern;
  statusAll?: number;
  /** The original source lies in one of these prefixes (`ADDRESS/PREFIX`). */
  originalSrcIn?: string[];
}

// ---- pure encoding and parsing ----------------------------------------------

function nlattr(type: number, payload: Uint8Array): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  out.set(payload, 4);
  return out;
}

function nested(type: number, parts: Buffer[]): Buffer {
  return nlattr(type | NLA_F_NESTED, Buffer.concat(parts));
}

function u8(v: number): Buffer {
  return Buffer.from([v]);
}

function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

function be32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** struct nfgenmsg: family, version NFNETLINK_V0, res_id 0. */
export function nfgenmsg(family: Family | 0): Buffer {
  return Buffer.from([family === 0 ? 0 : afOf(family), 0, 0, 0]);
}

/** A CTA_TUPLE_ORIG/REPLY attribute for `t`. Pure. */
export function encodeTuple(type: number, t: ConntrackTuple): Buffer {
  const src = parseIp(t.src, 'conntrack source');
  const dst = parseIp(t.dst, 'conntrack destination');
  const ip = t.family === 4
    ? [nlattr(CTA_IP_V4_SRC, src.bytes), nlattr(CTA_IP_V4_DST, dst.bytes)]
    : [nlattr(CTA_IP_V6_SRC, src.bytes), nlattr(CTA_IP_V6_DST, dst.bytes)];
  const proto = [nlattr(CTA_PROTO_NUM, u8(t.protocol))];
  if (t.icmp) {
    const v6 = t.protocol === IPPROTO.icmpv6;
    proto.push(
      nlattr(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID, be16(t.icmp.id)),
      nlattr(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE, u8(t.icmp.type)),
      nlattr(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE, u8(t.icmp.code)),
    );
  } else if (t.srcPort !== undefined && t.dstPort !== undefined) {
    proto.push(nlattr(CTA_PROTO_SRC_PORT, be16(t.srcPort)), nlattr(CTA_PROTO_DST_PORT, be16(t.dstPort)));
  }
  return nested(type, [nested(CTA_TUPLE_IP, ip), nested(CTA_TUPLE_PROTO, proto)]);
}

/** The payload of an IPCTNL_MSG_CT_DELETE for exactly `e` (original tuple, zone, id). Pure. */
export function encodeDelete(e: ConntrackEntry): Buffer {
  const parts = [nfgenmsg(e.original.family), encodeTuple(CTA_TUPLE_ORIG, e.original)];
  if (e.zone !== 0) parts.push(nlattr(CTA_ZONE, be16(e.zone)));
  parts.push(nlattr(CTA_ID, be32(e.id)));
  return Buffer.concat(parts);
}

/** Attributes of a buffer as type → payload (the last of a type wins). */
function attrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let o = 0; o + 4 <= buf.length;) {
    const len = buf.readUInt16LE(o);
    if (len < 4 || o + len > buf.length) break;
    out.set(buf.readUInt16LE(o + 2) & NLA_TYPE_MASK, buf.subarray(o + 4, o + len));
    o += (len + 3) & ~3;
  }
  return out;
}

function parseTuple(buf: Buffer, family: Family): ConntrackTuple | undefined {
  const a = attrs(buf);
  const ip = a.get(CTA_TUPLE_IP);
  const proto = a.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) return undefined;
  const ipa = attrs(ip);
  const src = ipa.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = ipa.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  const pa = attrs(proto);
  const num = pa.get(CTA_PROTO_NUM);
  if (!src || !dst || !num) return undefined;
  const t: ConntrackTuple = { family, protocol: num[0]!, src: formatIp(src), dst: formatIp(dst) };
  const sp = pa.get(CTA_PROTO_SRC_PORT);
  const dp = pa.get(CTA_PROTO_DST_PORT);
  if (sp && dp && sp.length >= 2 && dp.length >= 2) {
    t.srcPort = sp.readUInt16BE(0);
    t.dstPort = dp.readUInt16BE(0);
  }
  const v6 = t.protocol === IPPROTO.icmpv6;
  const id = pa.get(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID);
  const type = pa.get(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE);
  const code = pa.get(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE);
  if (id && type && code && id.length >= 2) t.icmp = { id: id.readUInt16BE(0), type: type[0]!, code: code[0]! };
  return t;
}

/** One IPCTNL_MSG_CT_NEW message of a dump (nfgenmsg + attributes) → an entry; undefined when incomplete. Pure. */
export function parseConntrackMessage(data: Buffer): ConntrackEntry | undefined {
  if (data.length < 4) return undefined;
  const family = familyOfAf(data[0]!);
  if (!family) return undefined;
  const a = attrs(data.subarray(4));
  const orig = a.get(CTA_TUPLE_ORIG);
  const reply = a.get(CTA_TUPLE_REPLY);
  const id = a.get(CTA_ID);
  if (!orig || !reply || !id || id.length < 4) return undefined;
  const original = parseTuple(orig, family);
  const rep = parseTuple(reply, family);
  if (!original || !rep) return undefined;
  const status = a.get(CTA_STATUS);
  const zone = a.get(CTA_ZONE);
  return {
    id: id.readUInt32BE(0), original, reply: rep,
    status: status && status.length >= 4 ? status.readUInt32BE(0) : 0,
    zone: zone && zone.length >= 2 ? zone.readUInt16BE(0) : 0,
  };
}

function tupleMatches(t: ConntrackTuple, p: TuplePattern | undefined): boolean {
  if (!p) return true;
  if (p.src !== undefined && parseIp(p.src).bytes.compare(parseIp(t.src).bytes) !== 0) return false;
  if (p.dst !== undefined && parseIp(p.dst).bytes.compare(parseIp(t.dst).bytes) !== 0) return false;
  if (p.srcPort !== undefined && t.srcPort !== p.srcPort) return false;
  if (p.dstPort !== undefined && t.dstPort !== p.dstPort) return false;
  return true;
}

function inPrefix(addr: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const a = parseIp(addr).bytes;
  const n = parseIp(net!).bytes;
  if (a.length !== n.length) return false;
  const bits = Number(len);
  for (let i = 0; i < bits; i++) {
    const mask = 1 << (7 - (i & 7));
    if ((a[i >> 3]! & mask) !== (n[i >> 3]! & mask)) return false;
  }
  return true;
}

/** True when `e` matches every field `f` gives. Pure. */
export function matchesConntrack(e: ConntrackEntry, f: ConntrackFilter): boolean {
  if (f.family !== undefined && e.original.family !== f.family) return false;
  if (f.protocol !== undefined && e.original.protocol !== f.protocol) return false;
  if (f.statusAll !== undefined && (e.status & f.statusAll) !== f.statusAll) return false;
  if (f.originalSrcIn !== undefined && !f.originalSrcIn.some((c) => inPrefix(e.original.src, c))) return false;
  return tupleMatches(e.original, f.original) && tupleMatches(e.reply, f.reply);
}

// ---- the client -------------------------------------------------------------

export interface ConntrackOptions {
  /** Named namespace to open the socket in; default: the caller's. */
  netns?: string;
  /** Per-request timeout in ms; default 5000. */
  timeoutMs?: number;
}

/** ctnetlink client for one namespace. `close()` when done. */
export class Conntrack {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly sock: NetlinkSocket, readonly netns: string | undefined, private readonly timeoutMs: number) {}

  static open(opts: ConntrackOptions = {}): Conntrack {
    let sock: NetlinkSocket;
    try {
      sock = withNetns(opts.netns, () => createNetlink(NETLINK_NETFILTER));
    } catch (e) {
      const errno = isNativeErrnoError(e) ? e.code : 'EIO';
      throw new SystemError('CONNTRACK_FAILED', errno, 'socket',
        `cannot open a ctnetlink socket${opts.netns ? ` in netns ${opts.netns}` : ''}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return new Conntrack(sock, opts.netns, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.socket.close();
  }

  private where(): string {
    return this.netns ? ` in netns ${this.netns}` : '';
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private fail(e: unknown, syscall: string, what: string): SystemError {
    const errno = errnoOf(e);
    const hint = errno === 'EPERM' || errno === 'EACCES' ? 'needs CAP_NET_ADMIN in this network namespace (run as root)'
      : errno === 'ETIMEDOUT' ? 'the kernel did not answer in time'
        : errno === 'EPROTONOSUPPORT' || errno === 'EOPNOTSUPP' ? 'no ctnetlink in this kernel (module nf_conntrack_netlink)' : errno;
    return new SystemError('CONNTRACK_FAILED', errno, syscall, `${what}${this.where()}: ${errno} (${hint})`, { cause: e });
  }

  /** Every entry of the table (both families unless `family`), optionally only those matching `filter`. */
  async list(filter?: ConntrackFilter): Promise<ConntrackEntry[]> {
    if (this.closed) throw new SystemError('CONNTRACK_FAILED', 'EBADF', 'IPCTNL_MSG_CT_GET', 'list conntrack entries: the client is closed');
    return this.serialize(async () => {
      let msgs: NetlinkMessage[];
      try {
        [msgs] = await this.sock.request(CT_GET, [nfgenmsg(filter?.family ?? 0)], { flags: FlagsGet.DUMP, timeout: this.timeoutMs });
      } catch (e) {
        throw this.fail(e, 'IPCTNL_MSG_CT_GET', 'list conntrack entries');
      }
      const out: ConntrackEntry[] = [];
      for (const m of msgs) {
        if (m.type !== CT_NEW) continue;
        const e = parseConntrackMessage(m.data);
        if (e && (!filter || matchesConntrack(e, filter))) out.push(e);
      }
      return out;
    });
  }

  /** Delete exactly `e` (tuple and id). False when it no longer exists. */
  async delete(e: ConntrackEntry): Promise<boolean> {
    if (this.closed) throw new SystemError('CONNTRACK_FAILED', 'EBADF', 'IPCTNL_MSG_CT_DELETE', 'delete a conntrack entry: the client is closed');
    return this.serialize(async () => {
      try {
        await this.sock.request(CT_DELETE, [encodeDelete(e)], { flags: 0, timeout: this.timeoutMs });
        return true;
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return false;
        throw this.fail(err, 'IPCTNL_MSG_CT_DELETE', `delete conntrack entry ${describe(e)}`);
      }
    });
  }

  /**
   * Delete every entry matching any of `filters`; returns how many were
   * deleted (entries that ended meanwhile are not counted). No filters:
   * nothing is deleted.
   */
  async deleteMatching(filters: readonly ConntrackFilter[]): Promise<number> {
    if (filters.length === 0) return 0;
    const entries = await this.list();
    let n = 0;
    for (const e of entries) {
      if (filters.some((f) => matchesConntrack(e, f)) && (await this.delete(e))) n++;
    }
    return n;
  }
}

/** `tcp 198.51.100.10:40000 -> 203.0.113.17:80`, for logs and messages. */
export function describe(e: ConntrackEntry): string {
  const t = e.original;
  const p = t.protocol === IPPROTO.tcp ? 'tcp' : t.protocol === IPPROTO.udp ? 'udp' : t.protocol === IPPROTO.icmp ? 'icmp' : t.protocol === IPPROTO.icmpv6 ? 'icmpv6' : `proto ${t.protocol}`;
  const hp = (a: string, port: number | undefined): string => (port === undefined ? a : t.family === 6 ? `[${a}]:${port}` : `${a}:${port}`);
  return `${p} ${hp(t.src, t.srcPort)} -> ${hp(t.dst, t.dstPort)}`;
}

