/**
 * The fabric's control socket: a hypervisor (the lab's netns driver) plugs
 * a VM's NIC into a switch at run time, as an access port on the VM's VLAN,
 * and unplugs it again.
 *
 * Protocol: a unix stream socket; each request is one JSON line, answered by
 * one JSON line, in order; several requests may share a connection.
 *
 *   {"op":"add-port","switch":"cloud","port":{"name":"r-t1-vm1","netns":"nlab-r-t1-vm1","interface":"eth0","mode":"access","vlan":100}}
 *   {"op":"remove-port","switch":"cloud","port":"r-t1-vm1"}
 *   {"op":"list"}
 *
 * Answers: `{"ok":true,"changed":BOOL}` (add/remove: false when the port
 * was already there / already gone: both are idempotent), `{"ok":true,
 * "ports":{SWITCH:[PORT...]}}` (list), or `{"ok":false,"error":"why"}`.
 * Lines longer than {@link MAX_LINE} bytes close the connection.
 */
import { existsSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { ValidationError } from '../../shared/errors.js';
import { parsePortSpec, type Fabric, type FabricPortSpec } from './fabric.js';

/** Longest request line accepted, in bytes. */
export const MAX_LINE = 64 * 1024;

export type FabricRequest =
  | { op: 'add-port'; switch: string; port: FabricPortSpec }
  | { op: 'remove-port'; switch: string; port: string }
  | { op: 'list' };

export type FabricAnswer =
  | { ok: true; changed?: boolean; ports?: Record<string, FabricPortSpec[]> }
  | { ok: false; error: string };

/** Validates a request line's JSON; throws ValidationError. */
export function parseFabricRequest(raw: unknown): FabricRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ValidationError('request must be a JSON object');
  const r = raw as Record<string, unknown>;
  if (r.op === 'list') return { op: 'list' };
  if (typeof r.switch !== 'string' || r.switch === '') throw new ValidationError('switch: must be a switch name');
  if (r.op === 'add-port') return { op: 'add-port', switch: r.switch, port: parsePortSpec(r.port, 'port') };
  if (r.op === 'remove-port') {
    if (typeof r.port !== 'string' || r.port === '') throw new ValidationError('port: must be a port name');
    return { op: 'remove-port', switch: r.switch, port: r.port };
  }
  throw new ValidationError('op: must be "add-port", "remove-port" or "list"');
}

/** Executes one request line against `fabric`. Never throws. */
export function handleFabricLine(fabric: Fabric, line: string): FabricAnswer {
  try {
    const req = parseFabricRequest(JSON.parse(line));
    switch (req.op) {
      case 'list': return { ok: true, ports: fabric.ports() };
      case 'add-port': return { ok: true, changed: fabric.addPort(req.switch, req.port) };
      case 'remove-port': return { ok: true, changed: fabric.removePort(req.switch, req.port) };
    }
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Serves `fabric`'s control socket at `path` (a stale socket file is replaced). */
export async function serveFabricControl(fabric: Fabric, path: string, onRequest?: (line: string, answer: FabricAnswer) => void): Promise<Server> {
  if (existsSync(path)) rmSync(path);
  const server = createServer((sock: Socket) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE && !buf.includes('\n')) { sock.destroy(); return; }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        const answer = handleFabricLine(fabric, line);
        onRequest?.(line, answer);
        sock.write(JSON.stringify(answer) + '\n');
      }
    });
    sock.on('error', () => { /* the client went away */ });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  return server;
}

/** Sends one request to the fabric at `path`; resolves with its answer, rejects when the fabric cannot be reached or answers an error. */
export function fabricRequest(path: string, req: FabricRequest, timeoutMs = 10_000): Promise<FabricAnswer & { ok: true }> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`fabric ${path}: no answer within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => { sock.write(JSON.stringify(req) + '\n'); });
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      let a: FabricAnswer;
      try {
        a = JSON.parse(buf.slice(0, nl)) as FabricAnswer;
      } catch {
        reject(new Error(`fabric ${path}: unreadable answer`));
        return;
      }
      if (a.ok) resolve(a);
      else reject(new Error(`fabric ${path}: ${a.error}`));
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(new Error(`fabric ${path}: ${e.message}`)); });
  });
}
