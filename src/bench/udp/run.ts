/**
 * UDP benchmark: node:dgram (one send() per datagram, one 'message' event per
 * datagram) against the addon's batched socket (sendmmsg / recvmmsg, one JS
 * call per batch), with a C program making the same system calls as the
 * ceiling, on the same topology in the same run.
 *
 *   nt-<pid36>_b-udpa                         nt-<pid36>_b-udpb
 *   ua 10.77.0.1/24  ════════ veth ════════  ub 10.77.0.2/24
 *   sender                                    receiver
 *
 * Both namespaces are this benchmark's own (IPv6 off so the kernel adds
 * nothing) and are deleted on every exit path (normal end, error, SIGINT,
 * SIGTERM; a hard kill leaves them to the netns test sweeper, which knows the
 * `nt-<pid36>_` prefix). One process drives both ends: each socket is opened
 * inside its namespace.
 *
 * One round = send `batch` datagrams from ua to ub, then receive them; the
 * next round starts once the round is back (from the receive handler). A
 * round that stalls for 100 ms counts its missing datagrams as lost. Rounds
 * repeat for `seconds`; the figure is datagrams received per second.
 * Implementations alternate, `reps` times each; medians are compared.
 *
 *   dgram        node:dgram, socket.send() per datagram, 'message' events
 *   nea          sendBatch (one sendmmsg per round) and onBatch (recvmmsg)
 *   nea+gro      as nea, the receiver asks for UDP_GRO (nothing to coalesce: what it costs)
 *   nea+gso      as nea, with UDP_SEGMENT: one GSO message per run of equal sizes
 *   nea+gso+gro  as nea+gso, and the receiver asks for UDP_GRO (coalesced messages split into slots)
 *   c, c+gso, c+gso+gro   ref.c: the same rounds and system calls without JavaScript
 *
 * usage: npm run bench:udp [-- --sizes 64,1400 --batch 64 --seconds 2 --reps 3 --impls dgram,c,nea,... --json]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SockAddr, openUdp, type UdpBatchSocket } from '../../dataplane/udp.js';
import { packFrames } from '../../dataplane/packet-device.js';
import { withNetns } from '../../netconfig/netns.js';

const ROUND_TIMEOUT_MS = 100;
const WARMUP_TIMEOUT_MS = 5000;
/** Receive slab of the GRO variants, datagrams (8 messages per recvmmsg). */
const GRO_RX_BATCH = 1024;
/** Socket buffers asked for by every implementation, bytes. */
const SOCKET_BUFFER = 4 * 1024 * 1024;
const SENDER = '10.77.0.1';
const RECEIVER = '10.77.0.2';
const IMPLS = ['dgram', 'c', 'nea', 'nea+gro', 'c+gso', 'nea+gso', 'c+gso+gro', 'nea+gso+gro'] as const;
type Impl = (typeof IMPLS)[number];

interface RunResult {
  impl: Impl;
  size: number;
  batch: number;
  seconds: number;
  sent: number;
  received: number;
  pps: number;
}

/** The repository root: the first directory up from here holding binding.gyp. */
function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    if (dirname(dir) === dir) throw new Error('cannot find the repository root (binding.gyp)');
  }
}

function buildRef(root: string): string {
  const out = join(root, 'build', 'bench');
  mkdirSync(out, { recursive: true });
  const bin = join(out, 'udp-ref');
  sh('gcc', ['-O2', '-Wall', '-Wextra', '-o', bin, join(root, 'src', 'bench', 'udp', 'ref.c')]);
  return bin;
}

function runC(impl: Impl, bin: string, ns: BenchTopology, size: number, batch: number, seconds: number): RunResult {
  const flags = impl.split('+').slice(1);
  const r = spawnSync(bin, [ns.a, SENDER, ns.b, RECEIVER, String(size), String(batch), String(seconds), ...flags], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ref.c failed (${r.status ?? r.signal ?? '?'}): ${r.stderr.trim()}`);
  return { ...(JSON.parse(r.stdout) as Omit<RunResult, 'impl'>), impl };
}

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The benchmark's two namespaces: created once, deleted on exit, signal or error. */
class BenchTopology {
  /** `nt-<pid36>_...` so the netns test sweeper removes them if this process dies hard. */
  readonly a = `nt-${process.pid.toString(36)}_b-udpa`;
  readonly b = `nt-${process.pid.toString(36)}_b-udpb`;
  private readonly created: string[] = [];

  create(): void {
    process.once('exit', () => { this.delete(); });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => { this.delete(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
    }
    for (const ns of [this.a, this.b]) {
      sh('ip', ['netns', 'add', ns]);
      this.created.push(ns);
      sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['-n', this.a, 'link', 'add', 'ua', 'type', 'veth', 'peer', 'name', 'ub', 'netns', this.b]);
    sh('ip', ['-n', this.a, 'addr', 'add', `${SENDER}/24`, 'dev', 'ua']);
    sh('ip', ['-n', this.b, 'addr', 'add', `${RECEIVER}/24`, 'dev', 'ub']);
    sh('ip', ['-n', this.a, 'link', 'set', 'ua', 'up']);
    sh('ip', ['-n', this.b, 'link', 'set', 'ub', 'up']);
  }

  delete(): void {
    for (const ns of this.created.splice(0).reverse()) {
      try { sh('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
    }
  }
}

/** What one implementation needs to run rounds: send one round, hear of received datagrams, close. */
interface Pair {
  /** Sends one round; returns how many datagrams the sender took. */
  sendRound(): number;
  /** Sets the receive callback (datagrams received in one call). */
  onReceive(cb: (n: number) => void): void;
  close(): void;
}

function payload(size: number): Buffer {
  const b = Buffer.alloc(size, 0x5a);
  b.write('nea-bench', 0, 'latin1');
  return b;
}

/** A dgram lookup that answers synchronously, so bind() creates the socket inside withNetns. */
function literalLookup(host: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, host, 4);
}

function dgramPair(ns: BenchTopology, size: number, batch: number): Pair {
  const open = (netns: string, address: string): dgram.Socket => withNetns(netns, () => {
    const s = dgram.createSocket({ type: 'udp4', lookup: literalLookup, recvBufferSize: SOCKET_BUFFER, sendBufferSize: SOCKET_BUFFER });
    s.bind({ address, port: 0, exclusive: true });
    return s;
  });
  const tx = open(ns.a, SENDER);
  const rx = open(ns.b, RECEIVER);
  const buf = payload(size);
  let port = 0;
  return {
    sendRound: () => {
      port ||= rx.address().port;
      for (let i = 0; i < batch; i++) tx.send(buf, 0, size, port, RECEIVER);
      return batch;
    },
    onReceive: (cb) => {
      rx.removeAllListeners('message');
      rx.on('message', () => { cb(1); });
    },
    close: () => { tx.close(); rx.close(); },
  };
}

function neaPair(ns: BenchTopology, size: number, batch: number, gso: boolean, gro: boolean): Pair {
  const tx: UdpBatchSocket = withNetns(ns.a, () => openUdp({ address: SENDER, port: 0, batchSize: batch, gso, rcvbuf: SOCKET_BUFFER, sndbuf: SOCKET_BUFFER }));
  // The receive slab holds one round (as in the TAP benchmark), so a full
  // round takes the addon's busy mode. With GRO, the addon receives one
  // message per 128 free slots (a message may carry 128 datagrams), so a
  // larger slab lets one recvmmsg take several messages.
  const rxBatch = gro ? Math.max(GRO_RX_BATCH, batch) : batch;
  const rx: UdpBatchSocket = withNetns(ns.b, () => openUdp({ address: RECEIVER, port: 0, batchSize: rxBatch, slotSize: 2048, gro, rcvbuf: SOCKET_BUFFER, sndbuf: SOCKET_BUFFER }));
  const frame = payload(size);
  const round = packFrames(Array.from({ length: batch }, () => frame));
  const dest = SockAddr.from(rx.local);
  return {
    sendRound: () => tx.sendBatch(round.buffer, round.offsets, round.lengths, batch, dest),
    onReceive: (cb) => { rx.onBatch((b) => { cb(b.count); }); },
    close: () => { tx.close(); rx.close(); },
  };
}

function makePair(impl: Exclude<Impl, `c${string}`>, ns: BenchTopology, size: number, batch: number): Pair {
  switch (impl) {
    case 'dgram': return dgramPair(ns, size, batch);
    case 'nea': return neaPair(ns, size, batch, false, false);
    case 'nea+gro': return neaPair(ns, size, batch, false, true);
    case 'nea+gso': return neaPair(ns, size, batch, true, false);
    case 'nea+gso+gro': return neaPair(ns, size, batch, true, true);
  }
}

const isC = (impl: Impl): impl is Extract<Impl, `c${string}`> => impl.startsWith('c');

/** One timed run: rounds of `batch` datagrams for `seconds`. */
async function runOne(impl: Exclude<Impl, `c${string}`>, ns: BenchTopology, size: number, batch: number, seconds: number): Promise<RunResult> {
  const pair = makePair(impl, ns, size, batch);
  try {
    // Warm-up: one round back (ARP resolved, sockets polled).
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      const deadline = Date.now() + WARMUP_TIMEOUT_MS;
      pair.onReceive((n) => { got += n; if (got >= batch) { clearInterval(timer); resolve(); } });
      const timer = setInterval(() => {
        if (Date.now() > deadline) { clearInterval(timer); reject(new Error(`${impl}: the warm-up round never came back`)); return; }
        got = 0;
        pair.sendRound();
      }, 20);
      pair.sendRound();
    });
    await new Promise((r) => setTimeout(r, 50)); // let stragglers of the warm-up arrive

    let sent = 0;
    let received = 0;
    let inRound = 0;
    let lastProgress = 0;
    let t0 = 0;
    let end = 0;
    let done = false;
    return await new Promise<RunResult>((resolve) => {
      const finish = (): void => {
        done = true;
        clearInterval(watchdog);
        const elapsed = (performance.now() - t0) / 1000;
        resolve({ impl, size, batch, seconds: elapsed, sent, received, pps: received / elapsed });
      };
      const next = (): void => {
        const now = performance.now();
        if (now >= end) { finish(); return; }
        inRound = 0;
        lastProgress = now;
        sent += pair.sendRound();
      };
      pair.onReceive((n) => {
        if (done) return;
        received += n;
        inRound += n;
        if (inRound >= batch) next();
      });
      // Losses: a round that stalls for ROUND_TIMEOUT_MS is given up.
      const watchdog = setInterval(() => {
        if (!done && performance.now() - lastProgress > ROUND_TIMEOUT_MS) next();
      }, ROUND_TIMEOUT_MS / 2);
      t0 = performance.now();
      end = t0 + seconds * 1000;
      next();
    });
  } finally {
    pair.close();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '64,1400' },
      batch: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '2' },
      reps: { type: 'string', default: '3' },
      impls: { type: 'string', default: IMPLS.join(',') },
      json: { type: 'boolean', default: false },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const batch = Number(values.batch);
  const seconds = Number(values.seconds);
  const reps = Number(values.reps);
  const impls = values.impls.split(',') as Impl[];
  if (sizes.some((s) => !Number.isInteger(s) || s < 16 || s > 1472)) throw new Error('--sizes must be integers from 16 to 1472 bytes (one datagram per 1500-byte frame)');
  if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new Error('--batch must be 1..1024 datagrams');
  if (!(seconds > 0) || !Number.isInteger(reps) || reps < 1) throw new Error('--seconds must be > 0 and --reps a positive integer');
  const unknown = impls.filter((i) => !IMPLS.includes(i));
  if (unknown.length > 0) throw new Error(`unknown --impls ${unknown.join(',')}; known: ${IMPLS.join(',')}`);
  if (process.getuid?.() !== 0) throw new Error('the UDP benchmark needs root (it builds network namespaces)');

  const bin = impls.some(isC) ? buildRef(repoRoot()) : '';
  const ns = new BenchTopology();
  try {
    ns.create();
    const results: RunResult[] = [];
    for (const size of sizes) {
      for (let i = 0; i < reps; i++) {
        for (const impl of impls) {
          const r = isC(impl) ? runC(impl, bin, ns, size, batch, seconds) : await runOne(impl, ns, size, batch, seconds);
          results.push(r);
          if (!values.json) console.log(`  ${String(size).padStart(4)} B  ${impl.padEnd(11)} rep ${i + 1}: ${fmt(r.pps)} datagrams/s (sent ${r.sent}, received ${r.received})`);
        }
      }
    }
    const rows = sizes.flatMap((size) => impls.map((impl) => {
      const pps = median(results.filter((r) => r.size === size && r.impl === impl).map((r) => r.pps));
      return { size, impl, pps: Math.round(pps), mbps: Math.round((pps * size * 8) / 1e6) };
    }));
    const pps = (size: number, impl: string): number | undefined => rows.find((r) => r.size === size && r.impl === impl)?.pps;
    const ratio = (a: number | undefined, b: number | undefined): number | null => (a && b ? Number((a / b).toFixed(3)) : null);
    const summary = {
      batch, seconds, reps,
      rows: rows.map((r) => ({
        ...r,
        vsDgram: ratio(r.pps, pps(r.size, 'dgram')),
        // nea against the C program making the same system calls
        vsC: r.impl.startsWith('nea') ? ratio(r.pps, pps(r.size, r.impl.replace('nea', 'c'))) : null,
      })),
      results,
    };
    if (values.json) {
      console.log(JSON.stringify(summary));
      return;
    }
    console.log(`\nveth between two namespaces, rounds of ${batch} datagrams, ${reps} x ${seconds} s, medians (payload Mbit/s):`);
    console.log('| size | implementation | datagrams/s | Mbit/s | vs dgram | nea / C |');
    console.log('|---:|---|---:|---:|---:|---:|');
    for (const r of summary.rows) {
      const vsC = r.vsC === null ? '' : `${(r.vsC * 100).toFixed(1)} %`;
      console.log(`| ${r.size} B | ${r.impl} | ${fmt(r.pps)} | ${fmt(r.mbps)} | ${r.vsDgram === null ? '—' : `${r.vsDgram.toFixed(2)}x`} | ${vsC} |`);
    }
  } finally {
    ns.delete();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
