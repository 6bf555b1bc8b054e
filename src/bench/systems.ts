/**
 * The systems `nea bench` compares. Each is a plug-in: on a freshly built
 * topology (./topology.ts) `setup` makes the system carry h1 ⟷ h2 traffic and
 * returns the processes whose CPU time and memory are measured (none for
 * kernel data paths). The runner stops every process it started and deletes
 * the namespaces afterwards, so a system's teardown is only needed for what
 * lives outside them (`ctx.garbage`).
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openvpnConfig, neaConfig, pkiCommands, tincConf, tincHost, wgMtu, wgSetArgs } from './configs.js';
import { rsaKeyPair, x25519KeyPair } from './keys.js';
import type { Layer } from './metrics.js';
import type { Proc, ProcessTable } from './procs.js';
import { LINKS, WAN_ADDR, WAN_PREFIX, WG_SOCKET_DIR, addVxlan, type Topology } from './topology.js';
import { APPLIANCE_NODE_OPTIONS } from '../shared/node-options.js';

export interface SystemContext {
  topo: Topology;
  procs: ProcessTable;
  /** This system's private directory (configs, keys, state); removed afterwards. */
  dir: string;
  /** Paths outside `dir` to remove afterwards (on every exit path). */
  garbage: string[];
  /** A progress line. */
  log(msg: string): void;
}

export interface BenchSystem {
  readonly name: string;
  readonly layer: Layer;
  /** Kernel data path: no process to measure. */
  readonly kernel: boolean;
  /** Printed under the table. */
  readonly note: string | null;
  /** Programs it needs on PATH. */
  readonly tools: readonly string[];
  setup(ctx: SystemContext): Promise<Proc[]>;
}

/** Ends of the tunnel: a1 starts (client, tenant), a2 answers (server, SP). */
const ENDS = [
  { role: 'a1', local: WAN_ADDR.a1, remote: WAN_ADDR.a2 },
  { role: 'a2', local: WAN_ADDR.a2, remote: WAN_ADDR.a1 },
] as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until a program has created its device in the namespace; fail early if it exits. */
async function waitForLink(ctx: SystemContext, role: 'a1' | 'a2', name: string, proc: Proc, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ctx.topo.nl(role).link(name)) return;
    if (!proc.running) throw new Error(`${proc.label} ${proc.status} before creating ${name}: ${proc.lastLine()}`);
    if (Date.now() > deadline) throw new Error(`${proc.label} did not create ${name} within ${timeoutMs} ms: ${proc.lastLine()}`);
    await sleep(50);
  }
}

const direct: BenchSystem = {
  name: 'direct',
  layer: 'L2',
  kernel: true,
  note: 'no tunnel: a1 and a2 bridge the hosts straight onto the WAN veth (the machine\'s limit)',
  tools: [],
  async setup(ctx) {
    for (const e of ENDS) {
      await ctx.topo.nl(e.role).deleteAddress(LINKS.wan, `${e.local}/${WAN_PREFIX}`);
      await ctx.topo.bridge(e.role, 'br0', [LINKS.wan]);
    }
    return [];
  },
};

const vxlan: BenchSystem = {
  name: 'vxlan',
  layer: 'L2',
  kernel: true,
  note: 'kernel VXLAN (VNI 10, UDP 4789), unencrypted',
  tools: [],
  async setup(ctx) {
    for (const e of ENDS) {
      await addVxlan(ctx.topo.ns[e.role], 'vx0', { vni: 10, local: e.local, remote: e.remote, port: 4789, mtu: 1500 });
      await ctx.topo.bridge(e.role, 'br0', ['vx0']);
    }
    return [];
  },
};

/** Socket buffers asked of OpenVPN, in bytes. */
const OPENVPN_SOCKET_BUFFER = 4 * 1024 * 1024;

const openvpn: BenchSystem = {
  name: 'openvpn',
  layer: 'L2',
  kernel: false,
  note: 'OpenVPN 2.6, TAP, UDP, AES-256-GCM, TLS (P-256 certificates), fast-io, 4 MiB socket buffers',
  tools: ['openvpn', 'openssl'],
  async setup(ctx) {
    const pki = join(ctx.dir, 'pki');
    mkdirSync(pki);
    for (const c of pkiCommands(pki)) {
      if (c.ext) writeFileSync(c.ext.file, c.ext.text);
      await ctx.procs.check(undefined, 'openssl', c.args, 30_000);
    }
    const procs: Proc[] = [];
    for (const e of ENDS) {
      const who = e.role === 'a1' ? 'client' : 'server';
      const file = join(ctx.dir, `openvpn-${e.role}.conf`);
      writeFileSync(file, openvpnConfig({
        role: who, dev: 'ovpn0', local: e.local, remote: e.remote, port: 1194, wanMtu: ctx.topo.wanMtu,
        ca: join(pki, 'ca.crt'), cert: join(pki, `${who}.crt`), key: join(pki, `${who}.key`), socketBuffer: OPENVPN_SOCKET_BUFFER,
      }));
      procs.push(ctx.procs.spawn(ctx.topo.ns[e.role], 'openvpn', ['--config', file], { label: `openvpn ${e.role}` }));
    }
    for (const [i, e] of ENDS.entries()) {
      await waitForLink(ctx, e.role, 'ovpn0', procs[i]!);
      await ctx.topo.bridge(e.role, 'br0', ['ovpn0']);
    }
    await Promise.all(procs.map((p) => p.waitForOutput(/Initialization Sequence Completed/, 30_000)));
    return procs;
  },
};

const tinc: BenchSystem = {
  name: 'tinc',
  layer: 'L2',
  kernel: false,
  note: 'tinc 1.0, switch mode, AES-256-CBC + HMAC-SHA256, RSA-2048 node keys',
  tools: ['tincd'],
  async setup(ctx) {
    const keys = { a1: rsaKeyPair(), a2: rsaKeyPair() };
    const procs: Proc[] = [];
    for (const e of ENDS) {
      const conf = join(ctx.dir, `tinc-${e.role}`);
      mkdirSync(join(conf, 'hosts'), { recursive: true });
      const keyFile = join(conf, 'rsa_key.priv');
      writeFileSync(keyFile, keys[e.role].privatePem, { mode: 0o600 });
      writeFileSync(join(conf, 'tinc.conf'), tincConf({
        name: e.role, iface: 'tinc0', local: e.local, remote: e.remote, port: 655, wanMtu: ctx.topo.wanMtu,
        privateKeyFile: keyFile, ...(e.role === 'a1' ? { connectTo: 'a2' } : {}),
      }));
      for (const h of ENDS) writeFileSync(join(conf, 'hosts', h.role), tincHost(h.local, 655, keys[h.role].publicPem));
      procs.push(ctx.procs.spawn(ctx.topo.ns[e.role], 'tincd',
        ['-c', conf, '-D', '-d', '1', `--pidfile=${join(conf, 'tinc.pid')}`], { label: `tincd ${e.role}` }));
    }
    for (const [i, e] of ENDS.entries()) {
      await waitForLink(ctx, e.role, 'tinc0', procs[i]!);
      await ctx.topo.bridge(e.role, 'br0', ['tinc0']);
    }
    return procs;
  },
};

const wireguardGo: BenchSystem = {
  name: 'wireguard-go',
  layer: 'L3',
  kernel: false,
  note: 'L3: hosts routed through the tunnel (two /25 subnets), not bridged; wireguard-go MTU = WAN MTU - 60',
  tools: ['wireguard-go', 'wg'],
  async setup(ctx) {
    const keys = { a1: x25519KeyPair(), a2: x25519KeyPair() };
    const iface = { a1: `nbw${ctx.topo.id}-a`, a2: `nbw${ctx.topo.id}-b` };
    const subnet = { a1: ctx.topo.addr.h1Subnet, a2: ctx.topo.addr.h2Subnet };
    const procs: Proc[] = [];
    for (const e of ENDS) {
      ctx.garbage.push(join(WG_SOCKET_DIR, `${iface[e.role]}.sock`));
      procs.push(ctx.procs.spawn(ctx.topo.ns[e.role], 'wireguard-go', ['-f', iface[e.role]], {
        label: `wireguard-go ${e.role}`,
        env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
      }));
    }
    for (const [i, e] of ENDS.entries()) {
      const peer = e.role === 'a1' ? 'a2' : 'a1';
      const name = iface[e.role];
      await waitForLink(ctx, e.role, name, procs[i]!);
      const sock = join(WG_SOCKET_DIR, `${name}.sock`);
      for (let t = 0; !existsSync(sock); t++) {
        if (t > 200) throw new Error(`wireguard-go ${e.role} did not open ${sock}`);
        await sleep(25);
      }
      const keyFile = join(ctx.dir, `wg-${e.role}.key`);
      writeFileSync(keyFile, `${keys[e.role].privateKey}\n`, { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      await ctx.procs.check(ctx.topo.ns[e.role], 'wg', wgSetArgs({
        iface: name, local: e.local, remote: e.remote, port: 51820, wanMtu: ctx.topo.wanMtu,
        privateKeyFile: keyFile, peerPublicKey: keys[peer].publicKey, peerSubnet: subnet[peer],
      }), 10_000);
      const nl = ctx.topo.nl(e.role);
      await nl.setMtu(name, wgMtu(ctx.topo.wanMtu));
      await nl.setUp(name, true);
      await nl.addRoute({ dst: subnet[peer], dev: name });
    }
    return procs;
  },
};

/** The compiled CLI (dist/bench/systems.js → dist/cli/nea.js). */
const NEA_BIN = fileURLToPath(new URL('../cli/nea.js', import.meta.url));

/**
 * Node options of the appliances: the image's (APPLIANCE_NODE_OPTIONS), then
 * extra ones from NEA_BENCH_NODE_ARGS (split on spaces), for profiling:
 * `NEA_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'`.
 */
export function neaNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  return [...APPLIANCE_NODE_OPTIONS, ...(env['NEA_BENCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '')];
}

const nea: BenchSystem = {
  name: 'nea',
  layer: 'L2',
  kernel: false,
  note: 'two `nea appliance run` processes (tenant a1, SP a2), segment 10 bridged by the appliances',
  tools: [],
  setup(ctx) {
    if (!existsSync(NEA_BIN)) throw new Error(`${NEA_BIN} is missing: run \`npm run build\``);
    const keys = { a1: x25519KeyPair(), a2: x25519KeyPair() };
    const procs: Proc[] = [];
    for (const e of ENDS) {
      const peer = e.role === 'a1' ? 'a2' : 'a1';
      const file = join(ctx.dir, `nea-${e.role}.json`);
      const state = join(ctx.dir, `nea-${e.role}-state`);
      mkdirSync(state);
      writeFileSync(file, `${JSON.stringify(neaConfig({
        role: e.role === 'a1' ? 'tenant' : 'sp', name: `bench-${e.role}`, privateKey: keys[e.role].privateKey,
        peerPublicKey: keys[peer].publicKey, local: e.local, remote: e.remote, port: 51820, wanMtu: ctx.topo.wanMtu,
        segmentId: 10, uplink: LINKS.host,
      }), null, 2)}\n`);
      // The appliance enters its namespace itself (--netns), before it opens anything.
      procs.push(ctx.procs.spawn(undefined, process.execPath,
        [...neaNodeArgs(), NEA_BIN, 'appliance', 'run', '--netns', ctx.topo.ns[e.role], '--config', file, '--state-dir', state], { label: `nea ${e.role}` }));
    }
    return Promise.resolve(procs);
  },
};

/** All systems, in the order they run. */
export const SYSTEMS: readonly BenchSystem[] = [direct, vxlan, nea, openvpn, tinc, wireguardGo];

export function systemNamed(name: string): BenchSystem | undefined {
  return SYSTEMS.find((s) => s.name === name);
}
