/**
 * The bench topology, built in four network namespaces for one system and
 * deleted after it:
 *
 *   nb-<run>-h1          nb-<run>-a1                 nb-<run>-a2          nb-<run>-h2
 *   eth0 ───────────── host   [system]   wan ───── wan   [system]   host ───────────── eth0
 *   198.51.100.1/24         (bridge or route)  192.0.2.1/24  192.0.2.2/24  (bridge or route)   198.51.100.2/24
 *
 * L2 systems bridge `host` with their tunnel port, so h1 and h2 share
 * 198.51.100.0/24. L3 systems route: h1 198.51.100.1/25 via a1's `host`
 * 198.51.100.126, h2 198.51.100.129/25 via a2's `host` 198.51.100.254.
 * The WAN veth has `wanMtu`; every other link 1500. All addresses are
 * documentation ranges and every link lives inside the bench's namespaces,
 * so nothing can leave the machine and deleting the namespaces deletes all.
 *
 * Namespaces, links and addresses are made through src/netconfig (netlink),
 * never with `ip`. Kernel settings per namespace: IPv6 off (no router
 * solicitations or MLD reports in the measurements), bridged frames not sent
 * through iptables (br_netfilter is loaded on this machine), and forwarding
 * on in a1/a2 for L3 systems.
 */
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttrStream, FlagsNew, createRtNetlink, ifla, type StreamData } from 'netlink';
import { parseIp } from '../netconfig/ip.js';
import { Netlink, checkLinkName, checkMtu, netlinkError } from '../netconfig/netlink.js';
import { createNetns, deleteNetns, listNetns, netnsPath, withNetns } from '../netconfig/netns.js';
import type { Layer } from './metrics.js';

/** Prefix of the bench's namespaces: `nb-<pid base 36>-<role>`. */
export const NS_PREFIX = 'nb-';
/** Prefix of the bench's temporary directories under the system temp dir. */
export const TMP_PREFIX = 'nea-bench-';
/** Where wireguard-go puts its control sockets (named after the interface). */
export const WG_SOCKET_DIR = '/var/run/wireguard';

export type Role = 'h1' | 'a1' | 'a2' | 'h2';
export const ROLES: readonly Role[] = ['h1', 'a1', 'a2', 'h2'];

/** Link names inside the namespaces. */
export const LINKS = { host: 'host', hostPeer: 'eth0', wan: 'wan' } as const;

export const WAN_ADDR = { a1: '192.0.2.1', a2: '192.0.2.2' } as const;
export const WAN_PREFIX = 24;

interface Addressing {
  h1: string; h2: string;
  /** CIDRs of the hosts' interfaces. */
  h1Cidr: string; h2Cidr: string;
  /** L3: the appliances' host-facing CIDRs and the hosts' subnets. */
  a1HostCidr?: string; a2HostCidr?: string;
  h1Subnet: string; h2Subnet: string;
}

export const ADDRESSING: Record<Layer, Addressing> = {
  L2: { h1: '198.51.100.1', h2: '198.51.100.2', h1Cidr: '198.51.100.1/24', h2Cidr: '198.51.100.2/24', h1Subnet: '198.51.100.0/24', h2Subnet: '198.51.100.0/24' },
  L3: {
    h1: '198.51.100.1', h2: '198.51.100.129', h1Cidr: '198.51.100.1/25', h2Cidr: '198.51.100.129/25',
    a1HostCidr: '198.51.100.126/25', a2HostCidr: '198.51.100.254/25', h1Subnet: '198.51.100.0/25', h2Subnet: '198.51.100.128/25',
  },
};

/** The run id in names: this process's pid in base 36. */
export function runId(pid = process.pid): string {
  return pid.toString(36);
}

export function nsName(id: string, role: Role): string {
  return `${NS_PREFIX}${id}-${role}`;
}

/** The pid that owns a bench name (`nb-<pid36>-...`, `nea-bench-<pid36>-...`, `nbw<pid36>-...`), or undefined for other names. */
export function ownerPid(name: string): number | undefined {
  const m = /^(?:nb-|nea-bench-|nbw)([0-9a-z]+)-/.exec(name);
  if (!m) return undefined;
  const pid = parseInt(m[1]!, 36);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

export class Topology {
  readonly ns: Record<Role, string>;
  readonly addr: Addressing;
  private readonly clients = new Map<Role, Netlink>();
  private readonly made: string[] = [];

  constructor(readonly id: string, readonly layer: Layer, readonly wanMtu: number) {
    this.ns = { h1: nsName(id, 'h1'), a1: nsName(id, 'a1'), a2: nsName(id, 'a2'), h2: nsName(id, 'h2') };
    this.addr = ADDRESSING[layer];
  }

  /** The netlink client of a namespace (opened on first use, closed by `destroy`). */
  nl(role: Role): Netlink {
    let c = this.clients.get(role);
    if (!c) {
      c = Netlink.open({ netns: this.ns[role] });
      this.clients.set(role, c);
    }
    return c;
  }

  /** Write a sysctl of one namespace (/proc/sys/net is per namespace of the opener). */
  sysctl(role: Role, key: string, value: string): void {
    withNetns(this.ns[role], () => { writeFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, value); });
  }

  async build(): Promise<void> {
    for (const r of ROLES) {
      createNetns(this.ns[r]);
      this.made.push(this.ns[r]);
      this.sysctl(r, 'net.ipv6.conf.all.disable_ipv6', '1');
      this.sysctl(r, 'net.ipv6.conf.default.disable_ipv6', '1');
      await this.nl(r).setUp('lo', true);
    }
    for (const r of ['a1', 'a2'] as const) {
      for (const k of ['arptables', 'iptables', 'ip6tables']) {
        try { this.sysctl(r, `net.bridge.bridge-nf-call-${k}`, '0'); } catch { /* br_netfilter not loaded: nothing to turn off */ }
      }
      if (this.layer === 'L3') this.sysctl(r, 'net.ipv4.ip_forward', '1');
    }
    const a1 = this.nl('a1');
    const a2 = this.nl('a2');
    await a1.addVeth(LINKS.host, LINKS.hostPeer, { peerNetns: this.ns.h1 });
    await a2.addVeth(LINKS.host, LINKS.hostPeer, { peerNetns: this.ns.h2 });
    await a1.addVeth(LINKS.wan, LINKS.wan, { peerNetns: this.ns.a2, mtu: this.wanMtu, peerMtu: this.wanMtu });
    await a1.addAddress(LINKS.wan, `${WAN_ADDR.a1}/${WAN_PREFIX}`);
    await a2.addAddress(LINKS.wan, `${WAN_ADDR.a2}/${WAN_PREFIX}`);
    const h1 = this.nl('h1');
    const h2 = this.nl('h2');
    await h1.addAddress(LINKS.hostPeer, this.addr.h1Cidr);
    await h2.addAddress(LINKS.hostPeer, this.addr.h2Cidr);
    for (const [nl, link] of [[a1, LINKS.host], [a1, LINKS.wan], [a2, LINKS.host], [a2, LINKS.wan], [h1, LINKS.hostPeer], [h2, LINKS.hostPeer]] as const) {
      await nl.setUp(link, true);
    }
    if (this.addr.a1HostCidr !== undefined && this.addr.a2HostCidr !== undefined) {
      await a1.addAddress(LINKS.host, this.addr.a1HostCidr);
      await a2.addAddress(LINKS.host, this.addr.a2HostCidr);
      await h1.addRoute({ dst: '0.0.0.0/0', gateway: this.addr.a1HostCidr.split('/')[0]!, dev: LINKS.hostPeer });
      await h2.addRoute({ dst: '0.0.0.0/0', gateway: this.addr.a2HostCidr.split('/')[0]!, dev: LINKS.hostPeer });
    }
  }

  /** An L2 bridge in a1 or a2 holding `host` and the given ports, up. */
  async bridge(role: 'a1' | 'a2', name: string, ports: readonly string[]): Promise<void> {
    const nl = this.nl(role);
    await nl.addBridge(name);
    for (const p of [LINKS.host, ...ports]) {
      await nl.setMaster(p, name);
      await nl.setUp(p, true);
    }
    await nl.setUp(name, true);
  }

  /** Close the netlink clients and delete the namespaces (and with them every link). Synchronous; idempotent. */
  destroy(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    while (this.made.length > 0) {
      const n = this.made.pop()!;
      try { deleteNetns(n); } catch { /* already gone */ }
    }
  }
}

function attrs(data: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(data);
  return Buffer.concat(s.bufs);
}

export interface VxlanSpec {
  /** VXLAN network identifier (24 bits). */
  vni: number;
  local: string;
  remote: string;
  /** UDP destination port (IANA: 4789). */
  port: number;
  mtu: number;
}

/** The IFLA_LINKINFO of a unicast VXLAN link (kind vxlan, learning on, DF unset). Pure; exported for tests. */
export function vxlanLinkInfo(v: VxlanSpec): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(v.port);
  return attrs(ifla.formatInfo({
    kind: 'vxlan',
    data: attrs(ifla.formatVxlan({ id: v.vni, local: parseIp(v.local).bytes, group: parseIp(v.remote).bytes, port, learning: 1, ttl: 64 })),
  }));
}

/**
 * Create a VXLAN link in a namespace. src/netconfig's client has no VXLAN
 * call (the appliance needs none), so this builds the IFLA_LINKINFO the same
 * way it builds a veth's and sends RTM_NEWLINK on a socket of its own.
 * No lower device is named: with one, the kernel caps the MTU at the lower
 * device's minus 50, and the hosts need 1500.
 */
export async function addVxlan(ns: string, name: string, v: VxlanSpec): Promise<void> {
  const what = `add vxlan ${name} (vni ${v.vni}, ${v.local} -> ${v.remote}:${v.port}) in netns ${ns}`;
  checkLinkName(name, what);
  const sock = withNetns(ns, () => createRtNetlink());
  try {
    await sock.newLink({}, { ifname: name, mtu: checkMtu(v.mtu, what), linkinfo: vxlanLinkInfo(v) },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL });
  } catch (e) {
    throw netlinkError(e, 'RTM_NEWLINK', what, { EOPNOTSUPP: 'the kernel has no vxlan support' });
  } finally {
    sock.socket.close();
  }
}

function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bench');
  } catch {
    return false;
  }
}

/** Pids of the processes whose network namespace is the named one. */
export function pidsInNetns(name: string): number[] {
  let ino: number;
  try { ino = statSync(netnsPath(name)).ino; } catch { return []; }
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/net`) === `net:[${ino}]`) pids.push(Number(e));
    } catch { /* gone, or a kernel thread */ }
  }
  return pids;
}

/**
 * Remove what an earlier bench run left when it died hard: its namespaces
 * (after SIGKILLing, by pid, the processes still inside them), its temporary
 * directories and wireguard-go's stale control sockets. Names whose owner pid
 * still runs a bench are left alone. Returns what was removed.
 */
export function sweepLeftovers(): string[] {
  const removed: string[] = [];
  const stale = (name: string): boolean => {
    const pid = ownerPid(name);
    return pid !== undefined && pid !== process.pid && !alive(pid);
  };
  for (const n of listNetns()) {
    if (!n.startsWith(NS_PREFIX) || !stale(n)) continue;
    for (const pid of pidsInNetns(n)) {
      try { process.kill(pid, 'SIGKILL'); removed.push(`process ${pid} in netns ${n}`); } catch { /* gone */ }
    }
    try { deleteNetns(n); removed.push(`netns ${n}`); } catch { /* raced with another sweeper */ }
  }
  for (const d of readdirSync(tmpdir())) {
    if (!d.startsWith(TMP_PREFIX) || !stale(d)) continue;
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
    removed.push(`directory ${join(tmpdir(), d)}`);
  }
  let socks: string[] = [];
  try { socks = readdirSync(WG_SOCKET_DIR); } catch { /* no wireguard-go ever ran */ }
  for (const s of socks) {
    if (!s.startsWith('nbw') || !stale(s)) continue;
    rmSync(join(WG_SOCKET_DIR, s), { force: true });
    removed.push(`socket ${join(WG_SOCKET_DIR, s)}`);
  }
  return removed;
}
