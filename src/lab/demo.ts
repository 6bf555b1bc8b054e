/**
 * `nea demo`: one appliance process on this machine, fed by a simulated VM,
 * and its status. (The full lab, `nea lab up`, builds on the same pieces.)
 *
 *   [netns nea-demo]
 *     demo process ──TAP vm0──┐            (the "VM": writes ARP requests)
 *                             nea-br10 ── nea-tap10 ── appliance process
 *
 * Everything it makes (namespace, devices, the appliance process, its state
 * directory) is removed on every exit path, and an earlier demo's leftovers
 * are removed before it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApplianceConfig } from '../appliance/config.js';
import type { ApplianceStatus } from '../appliance/daemon.js';
import { openTap, type PacketDevice } from '../dataplane/tuntap.js';
import { Netlink } from '../netconfig/netlink.js';
import { createNetns, deleteNetns, listNetns, withNetns } from '../netconfig/netns.js';
import { arpRequest } from '../protocol/ethernet.js';
import { Progress } from './progress.js';
import { APPLIANCE_NODE_OPTIONS } from '../shared/node-options.js';

export const DEMO_NETNS = 'nea-demo';
const VM_TAP = 'vm0';
const SEGMENT = { id: 10, name: 'servers' };
const FRAMES = 1000;

/** The compiled CLI (from src/lab and dist/lab alike: both sit two levels below the root). */
const NEA_BIN = fileURLToPath(new URL('../../dist/cli/nea.js', import.meta.url));

async function poll<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readStatus(stateDir: string): ApplianceStatus | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'status.json'), 'utf8')) as ApplianceStatus;
  } catch {
    return undefined;
  }
}

export interface DemoResult {
  status: ApplianceStatus;
  framesSent: number;
}

/** Runs the demo; prints progress to `out`; returns the appliance's last status. */
export async function runDemo(out: { write(s: string): void } = process.stdout): Promise<DemoResult> {
  const progress = new Progress(out);
  const stateDir = mkdtempSync(join(tmpdir(), 'nea-demo-'));
  let vm: PacketDevice | undefined;
  let child: ChildProcess | undefined;
  let childExit: Promise<number> | undefined;
  try {
    await progress.step('remove leftovers of an earlier demo', () => {
      if (listNetns().includes(DEMO_NETNS)) deleteNetns(DEMO_NETNS);
    });
    await progress.step(`create namespace ${DEMO_NETNS}`, async () => {
      createNetns(DEMO_NETNS);
      const nl = Netlink.open({ netns: DEMO_NETNS });
      try { await nl.setUp('lo', true); } finally { nl.close(); }
    });
    await progress.step(`attach a simulated VM (TAP ${VM_TAP})`, () => {
      vm = withNetns(DEMO_NETNS, () => openTap(VM_TAP));
    });
    const config: ApplianceConfig = { role: 'tenant', name: 'demo-tenant', segments: [{ ...SEGMENT, uplink: VM_TAP }] };
    const configFile = join(stateDir, 'appliance.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    await progress.step('start the appliance process', async () => {
      const c = spawn(process.execPath, [...APPLIANCE_NODE_OPTIONS, NEA_BIN, 'appliance', 'run', '--netns', DEMO_NETNS, '--config', configFile, '--state-dir', stateDir],
        { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      let stderr = '';
      c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      childExit = new Promise((r) => c.on('exit', (code) => { r(code ?? -1); }));
      await poll('the appliance status', () => {
        if (c.exitCode !== null) throw new Error(`appliance exited with code ${c.exitCode}: ${stderr.trim().split('\n').pop() ?? ''}`);
        return readStatus(stateDir)?.segments.length === 1 ? true : undefined;
      }, 15_000);
    });
    await progress.step(`VM sends ${FRAMES} ARP requests into segment ${SEGMENT.id}`, async () => {
      const frame = arpRequest('02:00:00:00:0a:01', '192.0.2.10', '192.0.2.1');
      const buf = Buffer.alloc(frame.length * 100);
      const offsets = new Uint32Array(100);
      const lengths = new Uint32Array(100).fill(frame.length);
      for (let i = 0; i < 100; i++) { buf.set(frame, i * frame.length); offsets[i] = i * frame.length; }
      let sent = 0;
      while (sent < FRAMES) sent += vm!.writeBatch(buf, offsets, lengths, Math.min(100, FRAMES - sent));
      await poll(`the appliance to count ${FRAMES} frames`, () => {
        const s = readStatus(stateDir);
        return s && (s.segments[0]?.local.rxFrames ?? 0) >= FRAMES ? true : undefined;
      }, 10_000);
    });
    const status = readStatus(stateDir)!;
    await progress.step('stop the appliance (SIGTERM)', async () => {
      child!.kill('SIGTERM');
      const code = await childExit!;
      if (code !== 0) throw new Error(`appliance exited with code ${code}`);
    });
    return { status, framesSent: FRAMES };
  } finally {
    if (child && child.exitCode === null && child.pid !== undefined) {
      child.kill('SIGKILL');
      await childExit;
    }
    vm?.close();
    if (listNetns().includes(DEMO_NETNS)) deleteNetns(DEMO_NETNS);
    if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true });
  }
}
