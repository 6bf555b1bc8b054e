/**
 * Reachability checks made from inside network namespaces: an HTTP GET of a
 * lab VM's identity service, a TCP connect, or an ICMP echo, each from the
 * namespace of the host that is said to reach.
 *
 * How a socket ends up in a namespace: Node creates a TCP socket's file
 * descriptor one tick after `connect()` is called. {@link runChecks} enters
 * a namespace, starts all of that namespace's checks, lets the ticks run
 * (the descriptors are now created there), and leaves; then the next
 * namespace. Nothing else may create sockets meanwhile, so this runs in a
 * process of its own: {@link probe} starts `probe-agent.js` and hands it
 * the checks on stdin. ICMP sockets are created synchronously (icmp.ts).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { native } from '../native/index.js';
import { netnsPath } from '../netconfig/netns.js';
import { pingFrom } from './icmp.js';

export interface Check {
  /** Namespace to check from. */
  netns: string;
  kind: 'http' | 'tcp' | 'icmp';
  address: string;
  /** TCP port (http: default 80). */
  port?: number;
  /** Give up after this many ms; default 2000. */
  timeoutMs?: number;
}

export interface CheckResult {
  ok: boolean;
  /** Round trip (icmp), connect (tcp) or whole request (http) time in ms, when ok. */
  ms?: number;
  /** http: the response body parsed as JSON, when it is JSON. */
  body?: unknown;
  /** One line: what happened. */
  detail: string;
}

const DEFAULT_TIMEOUT_MS = 2000;

/** Starts one TCP or HTTP check; the socket is created on the next tick (in the namespace current then). */
function startTcp(c: Check): Promise<CheckResult> {
  const port = c.port ?? 80;
  const timeoutMs = c.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const what = `${c.kind} ${c.address}:${port}`;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = connect({ host: c.address, port });
    let data = '';
    let done = false;
    const finish = (r: CheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => { finish({ ok: false, detail: `${what}: no answer within ${timeoutMs} ms` }); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      if (c.kind === 'tcp') { finish({ ok: true, ms: performance.now() - t0, detail: `${what}: connected` }); return; }
      sock.write(`GET / HTTP/1.0\r\nHost: ${c.address}\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (d: string) => { data += d; });
    sock.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n', 2);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      if (status !== '200') { finish({ ok: false, detail: `${what}: answered ${status ?? 'garbage'}` }); return; }
      let parsed: unknown;
      try { parsed = JSON.parse(body); } catch { parsed = undefined; }
      finish({ ok: true, ms: performance.now() - t0, ...(parsed !== undefined && { body: parsed }), detail: `${what}: 200 ${body.trim().slice(0, 120)}` });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => { finish({ ok: false, detail: `${what}: ${e.code ?? e.message}` }); });
  });
}

/**
 * Runs `checks` from their namespaces, concurrently; results in the order
 * of `checks`. Moves this thread between namespaces while it starts them:
 * call it only in a process that does nothing else meanwhile (the probe
 * agent).
 */
export async function runChecks(checks: readonly Check[]): Promise<CheckResult[]> {
  const results: Promise<CheckResult>[] = new Array<Promise<CheckResult>>(checks.length);
  const byNs = new Map<string, number[]>();
  checks.forEach((c, i) => { byNs.set(c.netns, [...(byNs.get(c.netns) ?? []), i]); });
  const addon = native();
  for (const [ns, idx] of byNs) {
    let prev: number;
    try {
      prev = addon.enterNetns(netnsPath(ns));
    } catch (e) {
      for (const i of idx) results[i] = Promise.resolve({ ok: false, detail: `namespace ${ns}: ${e instanceof Error ? e.message : String(e)}` });
      continue;
    }
    try {
      for (const i of idx) {
        const c = checks[i]!;
        results[i] = c.kind === 'icmp'
          ? pingFrom(undefined, c.address, c.timeoutMs ?? DEFAULT_TIMEOUT_MS).then((ms) => (ms === undefined
            ? { ok: false, detail: `icmp ${c.address}: no reply within ${c.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` }
            : { ok: true, ms, detail: `icmp ${c.address}: reply in ${ms.toFixed(1)} ms` }))
          : startTcp(c);
      }
      // The connects' sockets are created in the ticks that follow; let them run here.
      await new Promise((r) => setImmediate(r));
    } finally {
      addon.leaveNetns(prev);
    }
  }
  return Promise.all(results);
}

/** The compiled agent (from src/lab and dist/lab alike: both sit two levels below the root). */
const AGENT = fileURLToPath(new URL('../../dist/lab/probe-agent.js', import.meta.url));

/** Runs `checks` in a probe agent process (safe from any process); results in order. */
export function probe(checks: readonly Check[]): Promise<CheckResult[]> {
  if (checks.length === 0) return Promise.resolve([]);
  const longest = Math.max(...checks.map((c) => c.timeoutMs ?? DEFAULT_TIMEOUT_MS));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, longest + 15_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) { reject(new Error(`probe agent exited with ${code}: ${err.trim()}`)); return; }
      try { resolve(JSON.parse(out) as CheckResult[]); } catch { reject(new Error(`probe agent: unreadable output: ${out.slice(0, 200)}`)); }
    });
    child.stdin.end(JSON.stringify(checks));
  });
}
