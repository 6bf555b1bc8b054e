/**
 * Two tenants on one SP switch fabric, built for the segment scenarios
 * (segments-isolation.test.ts, segments-guards.test.ts).
 *
 * Both tenants use the SAME production subnets (web 10.10.0.0/24, db
 * 10.20.0.0/24), the SAME gateway addresses and the SAME host MACs, the same
 * segment ids (web 10, db 20) and even the same production VLAN id for db (20).
 * Only the cloud VLANs differ (the SP's VLAN pool): A 110/120, B 210/220.
 *
 *   tenant A site (switch "site-a")        WAN bridge 192.0.2.0/24       SP cloud host (switch "sp", shared)
 *   a-sweb ─acc 10─┐                                                     ┌─acc 110─ a-cweb
 *   a-sdb  ─acc 20─┤                                                     ├─acc 120─ a-cdb
 *   a-gw ─10,─20───┤                                                     │
 *   (atka ─trunk 10)┤                                                    │
 *                  └─trunk 10,20─ [a-ta] wan0 .11 ═══╗   ╔═══ .12 wan0 [a-sp] trunk0 ─trunk all─┤
 *                                                    ╠═wan═╣                                   │
 *   tenant B site (switch "site-b")                  ║     ║                                   │
 *   b-sweb ─acc 10─┐  ┌─acc 10── web0 (access)       ║     ║                                   ├─acc 210─ b-cweb
 *   b-sdb  ─acc 20─┤  │                              ║     ║   (atk ─trunk 110,999)───────────┤
 *   b-gw ─10,─20───┼──┘                              ║     ║                                   │
 *                  └─trunk 20──── [b-ta] wan0 .21 ═══╝   ╚═══ .22 wan0 [b-sp] trunk0 ─trunk all─┤
 *                                                                      [b-sp] db0 ───acc 220──┘─acc 220─ b-cdb
 *
 * Mapping (production network ⇄ segment ⇄ cloud VLAN):
 *   A web: site VLAN 10 ⇄ segment 10 ⇄ VLAN 110     A db: site VLAN 20 ⇄ segment 20 ⇄ VLAN 120
 *   B web: site access  ⇄ segment 10 ⇄ VLAN 210     B db: site VLAN 20 ⇄ segment 20 ⇄ access port (VLAN 220)
 * So both backings appear on both roles. The SP trunks carry every VLAN of the
 * fabric (a shared trunk port group): each SP appliance sees the other
 * tenant's VLANs and must drop them.
 *
 * One `nea lab fabric` process plays the three switches (its ports are TAPs it
 * creates inside the hosts' namespaces); four `nea appliance run` processes;
 * one python3 agent per host (TCP identity on :7000, UDP listener on :7001).
 * Hosts: sweb 10.10.0.11, cweb 10.10.0.12, sdb 10.20.0.11, cdb 10.20.0.12,
 * gw 10.10.0.1 + 10.20.0.1 (routes between web and db, production side).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApplianceStatus } from '../src/appliance/daemon.js';
import type { FabricStatus } from '../src/lab/fabric/fabric.js';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../src/dataplane/wg/crypto.js';
import { run, Topology, waitFor, type Netns, type NsProcess } from './harness.js';

export const NEA = fileURLToPath(new URL('../dist/cli/nea.js', import.meta.url));
export const PORT = 51820;

export type Tenant = 'a' | 'b';
export type HostRole = 'sweb' | 'sdb' | 'gw' | 'cweb' | 'cdb';
export type ApplianceRole = 'ta' | 'sp';

export const TENANTS: readonly Tenant[] = ['a', 'b'];
export const HOSTS: readonly HostRole[] = ['sweb', 'sdb', 'gw', 'cweb', 'cdb'];

/** Addresses, MACs and segment of each host (identical in both tenants). */
export const HOST_PLAN: Record<Exclude<HostRole, 'gw'>, { ip: string; mac: string; gw: string; segment: 'web' | 'db'; site: boolean }> = {
  sweb: { ip: '10.10.0.11', mac: '02:00:0a:0a:00:0b', gw: '10.10.0.1', segment: 'web', site: true },
  cweb: { ip: '10.10.0.12', mac: '02:00:0a:0a:00:0c', gw: '10.10.0.1', segment: 'web', site: false },
  sdb: { ip: '10.20.0.11', mac: '02:00:0a:14:00:0b', gw: '10.20.0.1', segment: 'db', site: true },
  cdb: { ip: '10.20.0.12', mac: '02:00:0a:14:00:0c', gw: '10.20.0.1', segment: 'db', site: false },
};
export const GW = { web: { ip: '10.10.0.1', mac: '02:00:0a:0a:00:01', dev: 'eth10' }, db: { ip: '10.20.0.1', mac: '02:00:0a:14:00:01', dev: 'eth20' } } as const;

/** Cloud VLANs (the only thing that differs between the tenants). */
export const CLOUD_VLANS: Record<Tenant, { web: number; db: number }> = { a: { web: 110, db: 120 }, b: { web: 210, db: 220 } };
/** Production VLANs on each site's switch. */
export const SITE_VLANS = { web: 10, db: 20 } as const;

const WAN_IP: Record<Tenant, Record<ApplianceRole, string>> = { a: { ta: '192.0.2.11', sp: '192.0.2.12' }, b: { ta: '192.0.2.21', sp: '192.0.2.22' } };
export const ROGUE_WAN_IP = '192.0.2.99';

/**
 * A python3 host agent: answers TCP :7000 with its identity, prints every UDP
 * datagram received on :7001 (broadcasts included) as `got <payload> <src>`.
 */
const AGENT = [
  'import socket, select, sys',
  'name = sys.argv[1]',
  't = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7000)); t.listen(64)',
  'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); u.bind(("0.0.0.0", 7001))',
  'print("ready", flush=True)',
  'while True:',
  '    for s in select.select([t, u], [], [])[0]:',
  '        if s is t:',
  '            c, _ = t.accept(); c.sendall((name + "\\n").encode()); c.close()',
  '        else:',
  '            d, a = u.recvfrom(2048); print("got", d.decode(errors="replace"), a[0], flush=True)',
].join('\n');

export interface WorldOptions {
  /** `vlanDevices` of every appliance. */
  vlanDevices: 'auto' | 'kernel' | 'userspace';
  /** tunnel.macLimit of every appliance (absent: the default). */
  macLimit?: number;
  /** A rogue peer key SP-A accepts, for segment 20 only. */
  roguePublicKey?: Uint8Array;
  /** Add attacker ports: `atk` (SP fabric, trunk 110 and 999) and `atka` (site-a, trunk 10). */
  attackers?: boolean;
}

export interface Appliance {
  tenant: Tenant;
  role: ApplianceRole;
  ns: Netns;
  dir: string;
  config: string;
  proc?: NsProcess;
  publicKey: Uint8Array;
}

export class World {
  topo!: Topology;
  fabricNs!: Netns;
  fabric!: NsProcess;
  fabricStatusFile!: string;
  wan!: Netns;
  readonly hosts = new Map<string, Netns>();
  readonly agents = new Map<string, NsProcess>();
  readonly appliances = new Map<string, Appliance>();
  readonly attackers = new Map<string, Netns>();
  rogue: Netns | undefined;

  constructor(readonly scenario: string, readonly opts: WorldOptions) {}

  host(t: Tenant, h: HostRole): Netns {
    return this.hosts.get(`${t}-${h}`)!;
  }

  appliance(t: Tenant, r: ApplianceRole): Appliance {
    return this.appliances.get(`${t}-${r}`)!;
  }

  status(t: Tenant, r: ApplianceRole): ApplianceStatus | undefined {
    try { return JSON.parse(readFileSync(join(this.appliance(t, r).dir, 'status.json'), 'utf8')) as ApplianceStatus; } catch { return undefined; }
  }

  fabricStatus(): FabricStatus | undefined {
    try { return JSON.parse(readFileSync(this.fabricStatusFile, 'utf8')) as FabricStatus; } catch { return undefined; }
  }

  async build(): Promise<void> {
    const topo = new Topology(this.scenario);
    this.topo = topo;
    const nsList: Promise<unknown>[] = [];
    const mk = (base: string, put: (ns: Netns) => void): void => { nsList.push(topo.netns(base).then(put)); };
    mk('fab', (ns) => { this.fabricNs = ns; });
    mk('wan', (ns) => { this.wan = ns; });
    for (const t of TENANTS) {
      for (const h of HOSTS) mk(`${t}-${h}`, (ns) => { this.hosts.set(`${t}-${h}`, ns); });
      for (const r of ['ta', 'sp'] as const) {
        mk(`${t}-${r}`, (ns) => {
          const dir = join(topo.workdir, `${t}-${r}`);
          this.appliances.set(`${t}-${r}`, { tenant: t, role: r, ns, dir, config: join(dir, 'appliance.json'), publicKey: new Uint8Array() });
        });
      }
    }
    if (this.opts.attackers) for (const a of ['atk', 'atka']) mk(a, (ns) => { this.attackers.set(a, ns); });
    if (this.opts.roguePublicKey) mk('rogue', (ns) => { this.rogue = ns; });
    await Promise.all(nsList);

    // WAN: one bridge, every appliance (and the rogue) on it.
    await topo.bridge(this.wan, 'wan');
    const wanMembers: [Netns, string, string][] = [];
    for (const t of TENANTS) for (const r of ['ta', 'sp'] as const) wanMembers.push([this.appliance(t, r).ns, `p-${t}${r}`, WAN_IP[t][r]]);
    if (this.rogue) wanMembers.push([this.rogue, 'p-rogue', ROGUE_WAN_IP]);
    await Promise.all(wanMembers.map(async ([ns, port, ip]) => {
      await topo.veth(ns, 'wan0', this.wan, port);
      await this.wan.ip('link', 'set', port, 'master', 'wan');
      await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'wan0');
    }));

    // The fabric: three switches, ports created inside the hosts' namespaces.
    const port = (name: string, ns: Netns, ifname: string, mode: object): object => ({ name, netns: ns.name, interface: ifname, ...mode });
    const acc = (vlan: number): object => ({ mode: 'access', vlan });
    const trunk = (vlans: number[] | 'all'): object => ({ mode: 'trunk', vlans });
    const spPorts = [
      port('a-sp', this.appliance('a', 'sp').ns, 'trunk0', trunk('all')),
      port('b-sp', this.appliance('b', 'sp').ns, 'trunk0', trunk('all')),
      port('b-sp-db', this.appliance('b', 'sp').ns, 'db0', acc(CLOUD_VLANS.b.db)),
      ...TENANTS.flatMap((t) => [port(`${t}-cweb`, this.host(t, 'cweb'), 'eth0', acc(CLOUD_VLANS[t].web)), port(`${t}-cdb`, this.host(t, 'cdb'), 'eth0', acc(CLOUD_VLANS[t].db))]),
    ];
    const site = (t: Tenant): object[] => [
      port(`${t}-sweb`, this.host(t, 'sweb'), 'eth0', acc(SITE_VLANS.web)),
      port(`${t}-sdb`, this.host(t, 'sdb'), 'eth0', acc(SITE_VLANS.db)),
      port(`${t}-gw10`, this.host(t, 'gw'), GW.web.dev, acc(SITE_VLANS.web)),
      port(`${t}-gw20`, this.host(t, 'gw'), GW.db.dev, acc(SITE_VLANS.db)),
    ];
    const siteA = [...site('a'), port('a-ta', this.appliance('a', 'ta').ns, 'trunk0', trunk([SITE_VLANS.web, SITE_VLANS.db]))];
    const siteB = [...site('b'), port('b-ta', this.appliance('b', 'ta').ns, 'trunk0', trunk([SITE_VLANS.db])),
      port('b-ta-web', this.appliance('b', 'ta').ns, 'web0', acc(SITE_VLANS.web))];
    if (this.opts.attackers) {
      spPorts.push(port('atk', this.attackers.get('atk')!, 'eth0', trunk([CLOUD_VLANS.a.web, 999])));
      siteA.push(port('atka', this.attackers.get('atka')!, 'eth0', trunk([SITE_VLANS.web])));
    }
    const fabricConfig = join(topo.workdir, 'fabric.json');
    this.fabricStatusFile = join(topo.workdir, 'fabric-status.json');
    writeFileSync(fabricConfig, JSON.stringify({ switches: [
      { name: 'sp', ports: spPorts }, { name: 'site-a', ports: siteA }, { name: 'site-b', ports: siteB },
    ] }));
    this.fabric = this.fabricNs.spawn(process.execPath, [NEA, 'lab', 'fabric', '--config', fabricConfig, '--status', this.fabricStatusFile], 'fabric');
    await waitFor('the fabric up', () => {
      if (!this.fabric.running) throw new Error(`the fabric exited: ${this.fabric.stderr.trim()}`);
      return this.fabricStatus()?.switches.length === 3;
    }, { timeoutMs: 15_000 });

    // Hosts: MACs, addresses, routes, agents.
    await Promise.all(TENANTS.flatMap((t) => HOSTS.map(async (h) => {
      const ns = this.host(t, h);
      if (h === 'gw') {
        for (const seg of ['web', 'db'] as const) {
          const g = GW[seg];
          await ns.ip('link', 'set', g.dev, 'address', g.mac);
          await ns.ip('addr', 'add', `${g.ip}/24`, 'dev', g.dev);
          await ns.ip('link', 'set', g.dev, 'up');
        }
        await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      } else {
        const p = HOST_PLAN[h];
        await ns.ip('link', 'set', 'eth0', 'address', p.mac);
        await ns.ip('addr', 'add', `${p.ip}/24`, 'dev', 'eth0');
        await ns.ip('link', 'set', 'eth0', 'up');
        await ns.ip('route', 'add', 'default', 'via', p.gw);
      }
      const agent = ns.spawn('python3', ['-u', '-c', AGENT, `${t}/${h}`], `agent-${t}-${h}`);
      this.agents.set(`${t}-${h}`, agent);
    })));
    for (const a of this.attackers.values()) await a.ip('link', 'set', 'eth0', 'up');

    // Appliances.
    const keys = new Map<string, Uint8Array>();
    for (const k of this.appliances.keys()) keys.set(k, generatePrivateKey());
    for (const a of this.appliances.values()) a.publicKey = publicKeyOf(keys.get(`${a.tenant}-${a.role}`)!);
    for (const a of this.appliances.values()) {
      const other = this.appliance(a.tenant, a.role === 'ta' ? 'sp' : 'ta');
      const v = CLOUD_VLANS[a.tenant];
      const segments = a.role === 'sp'
        ? [
          { id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: v.web } },
          a.tenant === 'a' ? { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: v.db } } : { id: 20, name: 'db', backing: { kind: 'access', interface: 'db0' } },
        ]
        : [
          a.tenant === 'a' ? { id: 10, name: 'web', backing: { kind: 'vlan', trunk: 'trunk0', vlan: SITE_VLANS.web } } : { id: 10, name: 'web', backing: { kind: 'access', interface: 'web0' } },
          { id: 20, name: 'db', backing: { kind: 'vlan', trunk: 'trunk0', vlan: SITE_VLANS.db } },
        ];
      const peers: object[] = [{
        publicKey: encodeKey(other.publicKey), segments: [10, 20],
        ...(a.role === 'ta' && { endpoint: `${WAN_IP[a.tenant].sp}:${PORT}` }),
      }];
      if (a.tenant === 'a' && a.role === 'sp' && this.opts.roguePublicKey) peers.push({ publicKey: encodeKey(this.opts.roguePublicKey), segments: [20] });
      await run('mkdir', ['-p', a.dir]);
      writeFileSync(a.config, JSON.stringify({
        role: a.role === 'ta' ? 'tenant' : 'sp', name: `${a.tenant}-${a.role}`, privateKey: encodeKey(keys.get(`${a.tenant}-${a.role}`)!),
        vlanDevices: this.opts.vlanDevices, segments,
        tunnel: { listenPort: PORT, peers, ...(this.opts.macLimit !== undefined && { macLimit: this.opts.macLimit }) },
      }));
    }
    for (const a of this.appliances.values()) this.start(a);
    await waitFor('four appliances running', () => [...this.appliances.values()].every((a) => {
      if (!a.proc!.running) throw new Error(`${a.tenant}-${a.role} exited: ${a.proc!.stderr.trim().split('\n').pop() ?? ''}`);
      return this.status(a.tenant, a.role)?.tunnel;
    }), { timeoutMs: 30_000 });
    await waitFor('host agents ready', () => [...this.agents.values()].every((p) => p.stdout.includes('ready')), { timeoutMs: 15_000 });
  }

  start(a: Appliance): NsProcess {
    a.proc = a.ns.spawn(process.execPath, [NEA, 'appliance', 'run', '--config', a.config, '--state-dir', a.dir], `nea-${a.tenant}-${a.role}`);
    return a.proc;
  }

  /** Waits until every segment of both tenants carries a ping from the site to the cloud. */
  async waitForTunnels(): Promise<void> {
    await Promise.all(TENANTS.flatMap((t) => (['web', 'db'] as const).map((seg) => {
      const from = this.host(t, seg === 'web' ? 'sweb' : 'sdb');
      const to = HOST_PLAN[seg === 'web' ? 'cweb' : 'cdb'].ip;
      return waitFor(`${t} ${seg}: ping site → cloud`, async () => (await ping(from, to, ['-c', '1', '-W', '1'])).code === 0, { timeoutMs: 30_000, intervalMs: 200 });
    })));
  }

  async cleanup(): Promise<string[]> {
    await this.topo.cleanup();
    return this.topo.leftovers();
  }
}

export function ping(from: Netns, to: string, args: string[] = []): Promise<{ code: number; stdout: string }> {
  return from.exec('ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', ...args, to], { allowFail: true });
}

/** TCP identity of whoever answers `ip`:7000 from `from`, or `''` when nobody does. */
export async function identity(from: Netns, ip: string): Promise<string> {
  const r = await from.exec('python3', ['-c',
    `import socket\ntry:\n    s = socket.create_connection((${JSON.stringify(ip)}, 7000), timeout=3); print(s.recv(100).decode().strip())\nexcept OSError: print("")`],
  { allowFail: true, timeoutMs: 10_000 });
  return r.stdout.trim();
}

/** Sends one UDP broadcast with `marker` to `bcast`:7001 from `from`. */
export async function broadcast(from: Netns, bcast: string, marker: string, times = 3): Promise<void> {
  await from.exec('python3', ['-c', [
    'import socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)',
    `for _ in range(${times}): s.sendto(${JSON.stringify(marker)}.encode(), (${JSON.stringify(bcast)}, 7001)); time.sleep(0.05)`,
  ].join('\n')]);
}

/** Raw frames (hex, tags in the bytes) sent `repeat` times on `ifname` of `ns` with python3's AF_PACKET socket. */
export async function injectFrames(ns: Netns, ifname: string, frames: string[], repeat = 1): Promise<void> {
  await ns.exec('python3', ['-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
    `s.bind((${JSON.stringify(ifname)}, 0))`,
    `for _ in range(${repeat}):`,
    '    for h in sys.argv[1:]: s.send(bytes.fromhex(h))',
  ].join('\n'), ...frames]);
}

/** A broadcast frame (hex) from `src` carrying `marker` (hex), with VLAN tags (e.g. `8100006e`) outermost first. */
export function markerFrame(src: string, marker: string, tags: string[] = [], ethertype = '88b5'): string {
  const body = Buffer.alloc(46, 0);
  Buffer.from(marker, 'hex').copy(body, 0);
  return 'ffffffffffff' + src.replace(/:/g, '') + tags.join('') + ethertype + body.toString('hex');
}

/** One captured packet: tcpdump's `-e` header line (with its VLAN tags) and the packet's bytes in hex. */
export interface CapturedPacket {
  line: string;
  /** VLAN ids tcpdump decoded, outermost first. */
  vlans: number[];
  hex: string;
}

/** Reads a pcap with tcpdump -e -nn -xx (the independent oracle for tags on the wire). */
export async function readCapture(file: string): Promise<CapturedPacket[]> {
  const r = await run('tcpdump', ['-r', file, '-e', '-nn', '-xx'], { allowFail: true });
  const out: CapturedPacket[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+0x[0-9a-f]+:\s+(.*)$/.exec(line);
    if (m) { if (out.length > 0) out[out.length - 1]!.hex += m[1]!.replace(/\s+/g, ''); continue; }
    if (line.trim() === '') continue;
    out.push({ line, vlans: [...line.matchAll(/vlan (\d+), p \d+/g)].map((v) => Number(v[1])), hex: '' });
  }
  return out;
}

/** True when this kernel can make 802.1Q devices (tried in a throwaway namespace). */
export async function kernelHasVlanDevices(): Promise<boolean> {
  const name = `nt-${process.pid.toString(36)}_vlanprobe`;
  await run('ip', ['netns', 'add', name]);
  try {
    await run('ip', ['-n', name, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    const r = await run('ip', ['-n', name, 'link', 'add', 'link', 'p0', 'name', 'p0.5', 'type', 'vlan', 'id', '5'], { allowFail: true });
    return r.code === 0;
  } finally {
    await run('ip', ['netns', 'del', name], { allowFail: true });
  }
}
