/**
 * ICMP echo (ping) from inside a network namespace, without a ping process:
 * a raw ICMP socket (the `raw-socket` package) is created while the thread
 * is inside the namespace, so it lives there; sending and receiving happen
 * afterwards, from anywhere. One socket per ping; replies are matched by
 * source address, identifier and sequence number.
 */
import { createRequire } from 'node:module';
import { withNetns } from '../netconfig/netns.js';

interface RawSocket {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (err: Error | null, bytes: number) => void): void;
  on(ev: 'message', fn: (buf: Buffer, source: string) => void): void;
  on(ev: 'error', fn: (err: Error) => void): void;
  close(): void;
}
interface RawModule {
  createSocket(opts: { protocol: number }): RawSocket;
  Protocol: { ICMP: number };
}

let rawModule: RawModule | undefined;
function raw(): RawModule {
  rawModule ??= createRequire(import.meta.url)('raw-socket') as RawModule;
  return rawModule;
}

/** Internet checksum (RFC 1071) of buf. */
export function inetChecksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length % 2 === 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ICMP echo request with `id`, `seq` and 16 bytes of payload. */
export function echoRequest(id: number, seq: number): Buffer {
  const b = Buffer.alloc(24);
  b[0] = 8;
  b.writeUInt16BE(id & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  b.write('nea-lab-ping....', 8, 'latin1');
  b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

/** True when `pkt` (an IPv4 packet as a raw socket delivers it) is the echo reply to id/seq. */
export function isEchoReply(pkt: Buffer, id: number, seq: number): boolean {
  if (pkt.length < 20) return false;
  const ihl = (pkt[0]! & 0x0f) * 4;
  if (pkt.length < ihl + 8) return false;
  return pkt[ihl] === 0 && pkt.readUInt16BE(ihl + 4) === (id & 0xffff) && pkt.readUInt16BE(ihl + 6) === (seq & 0xffff);
}

let nextId = (process.pid * 7) & 0xffff;

/**
 * Pings `address` once from namespace `netns` (undefined: this one).
 * Resolves with the round trip in ms, or undefined after `timeoutMs`
 * without a reply. Never throws for an unreachable address.
 */
export function pingFrom(netns: string | undefined, address: string, timeoutMs: number): Promise<number | undefined> {
  const mod = raw();
  const sock = withNetns(netns, () => mod.createSocket({ protocol: mod.Protocol.ICMP }));
  nextId = (nextId + 1) & 0xffff;
  const id = nextId;
  const seq = 1;
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: number | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { sock.close(); } catch { /* closed */ }
      resolve(v);
    };
    const timer = setTimeout(() => { finish(undefined); }, timeoutMs);
    sock.on('message', (buf, source) => {
      if (source === address && isEchoReply(buf, id, seq)) finish(performance.now() - t0);
    });
    sock.on('error', () => { finish(undefined); });
    const req = echoRequest(id, seq);
    sock.send(req, 0, req.length, address, (err) => { if (err) finish(undefined); });
  });
}
