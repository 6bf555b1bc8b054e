/**
 * TAP loop benchmark: the addon's batched path against a minimal C program,
 * on the same topology in the same run.
 *
 *   namespace nt-<pid36>_b-taploop (its own; deleted on every exit path)
 *     ta (TAP) ── br0 ── tb (TAP)        IPv6 off, forward_delay 0
 *
 * One round = write `batch` 64-byte frames into ta, then read them back from
 * tb; rounds repeat for `seconds`. C (ref.c): write() × batch, then poll() +
 * read() until the round is back. nea: `writeBatch` into ta, `onBatch` from
 * tb (batchSize = batch); the next round starts from the handler once the
 * round is back. A round whose frames stop arriving for 100 ms counts the rest
 * as lost (both sides). The two alternate, `reps` times each; medians of
 * frames received per second are compared.
 *
 * usage: npm run bench:tap [-- --batch 64 --seconds 3 --reps 3 --json]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openTap, packFrames, type PacketDevice } from '../../dataplane/tuntap.js';
import { withNetns } from '../../netconfig/netns.js';

const FRAME_LEN = 64;
const ROUND_TIMEOUT_MS = 100;
const WARMUP_TIMEOUT_MS = 5000;

interface RunResult {
  impl: 'c' | 'nea';
  batch: number;
  seconds: number;
  sent: number;
  received: number;
  fps: number;
}

/** The repository root: the first directory up from here holding binding.gyp. */
function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    if (dirname(dir) === dir) throw new Error('cannot find the repository root (binding.gyp)');
  }
}

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The benchmark's namespace: created once, deleted on exit, signal or error. */
class BenchNetns {
  /** `nt-<pid36>_...` so the netns test sweeper removes it if this process dies hard. */
  readonly name = `nt-${process.pid.toString(36)}_b-taploop`;
  private live = false;

  create(): void {
    process.once('exit', () => { this.delete(); });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => { this.delete(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
    }
    sh('ip', ['netns', 'add', this.name]);
    this.live = true;
    const ip = (...args: string[]): string => sh('ip', ['-n', this.name, ...args]);
    sh('ip', ['netns', 'exec', this.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0');
    for (const t of ['ta', 'tb']) {
      ip('tuntap', 'add', 'dev', t, 'mode', 'tap'); // persistent: both implementations attach to it
      ip('link', 'set', t, 'master', 'br0', 'up');
    }
    ip('link', 'set', 'br0', 'up');
  }

  delete(): void {
    if (!this.live) return;
    this.live = false;
    try { sh('ip', ['netns', 'del', this.name]); } catch { /* already gone */ }
  }
}

function buildRef(root: string): string {
  const out = join(root, 'build', 'bench');
  mkdirSync(out, { recursive: true });
  const bin = join(out, 'tap-loop-ref');
  sh('gcc', ['-O2', '-Wall', '-Wextra', '-o', bin, join(root, 'src', 'bench', 'tap-loop', 'ref.c')]);
  return bin;
}

function runC(ns: string, bin: string, batch: number, seconds: number): RunResult {
  const r = spawnSync('ip', ['netns', 'exec', ns, bin, 'ta', 'tb', String(batch), String(seconds)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ref.c failed (${r.status ?? r.signal ?? '?'}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as RunResult;
}

/** One timed run of the addon's batched path. */
async function runNea(ns: string, batch: number, seconds: number): Promise<RunResult> {
  const [ta, tb] = withNetns<[PacketDevice, PacketDevice]>(ns, () => [openTap('ta', { batchSize: batch }), openTap('tb', { batchSize: batch })]);
  try {
    const frame = Buffer.alloc(FRAME_LEN);
    Buffer.from('020000000002020000000001', 'hex').copy(frame, 0);
    frame.writeUInt16BE(0x88b5, 12);
    const round = packFrames(Array.from({ length: batch }, () => frame));
    const one = packFrames([frame]);

    // Warm-up: the bridge forwards once both ports have a reader attached.
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + WARMUP_TIMEOUT_MS;
      tb.onBatch(() => { clearInterval(timer); resolve(); });
      const timer = setInterval(() => {
        if (Date.now() > deadline) { clearInterval(timer); reject(new Error('the bridge never forwarded')); return; }
        ta.writeBatch(one.buffer, one.offsets, one.lengths, 1);
      }, 10);
    });
    await new Promise((r) => setTimeout(r, 50)); // let stragglers of the warm-up arrive

    let sent = 0;
    let received = 0;
    let inRound = 0;
    let lastProgress = 0;
    let t0 = 0;
    let end = 0;
    return await new Promise<RunResult>((resolve) => {
      const finish = (): void => {
        clearInterval(watchdog);
        const elapsed = (performance.now() - t0) / 1000;
        resolve({ impl: 'nea', batch, seconds: elapsed, sent, received, fps: received / elapsed });
      };
      const next = (): void => {
        const now = performance.now();
        if (now >= end) { finish(); return; }
        inRound = 0;
        lastProgress = now;
        sent += ta.writeBatch(round.buffer, round.offsets, round.lengths, batch);
      };
      tb.onBatch((b) => {
        received += b.count;
        inRound += b.count;
        if (inRound >= batch) next();
      });
      // Losses: a round that stalls for ROUND_TIMEOUT_MS is given up (as ref.c's poll timeout).
      const watchdog = setInterval(() => {
        if (performance.now() - lastProgress > ROUND_TIMEOUT_MS) next();
      }, ROUND_TIMEOUT_MS / 2);
      t0 = performance.now();
      end = t0 + seconds * 1000;
      next();
    });
  } finally {
    ta.close();
    tb.close();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      batch: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '3' },
      reps: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  const batch = Number(values.batch);
  const seconds = Number(values.seconds);
  const reps = Number(values.reps);
  if (!Number.isInteger(batch) || batch < 1 || batch > 1000) throw new Error('--batch must be 1..1000 frames (the TAP queue holds 1000)');
  if (!(seconds > 0) || !Number.isInteger(reps) || reps < 1) throw new Error('--seconds must be > 0 and --reps a positive integer');
  if (process.getuid?.() !== 0) throw new Error('the TAP loop benchmark needs root (namespaces and TAP devices)');

  const root = repoRoot();
  const bin = buildRef(root);
  const ns = new BenchNetns();
  try {
    ns.create();
    const results: RunResult[] = [];
    for (let i = 0; i < reps; i++) {
      for (const r of [runC(ns.name, bin, batch, seconds), await runNea(ns.name, batch, seconds)]) {
        results.push(r);
        if (!values.json) console.log(`  ${r.impl.padEnd(3)} rep ${i + 1}: ${Math.round(r.fps).toLocaleString('en-US')} frames/s (sent ${r.sent}, received ${r.received})`);
      }
    }
    const c = median(results.filter((r) => r.impl === 'c').map((r) => r.fps));
    const nea = median(results.filter((r) => r.impl === 'nea').map((r) => r.fps));
    const summary = { batch, seconds, reps, frameBytes: FRAME_LEN, cFps: Math.round(c), neaFps: Math.round(nea), ratio: Number((nea / c).toFixed(3)), results };
    if (values.json) {
      console.log(JSON.stringify(summary));
    } else {
      console.log(`TAP -> bridge -> TAP, ${FRAME_LEN}-byte frames, batch ${batch}, ${reps} x ${seconds} s, medians:`);
      console.log(`  C reference: ${summary.cFps.toLocaleString('en-US')} frames/s`);
      console.log(`  nea addon:   ${summary.neaFps.toLocaleString('en-US')} frames/s`);
      console.log(`  nea / C:     ${(summary.ratio * 100).toFixed(1)} %`);
    }
  } finally {
    ns.delete();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
