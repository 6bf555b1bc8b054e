/**
 * In-memory fakes for driving the WireGuard core without sockets or real
 * time: a seeded random source, a fake clock, and a pair of devices wired
 * to each other. Used by this folder's tests; usable by the engine's tests.
 */
import { generateKeyPair, type KeyPair, type RandomFill } from './crypto.js';
import { Device, type DeviceOptions } from './device.js';
import type { Endpoint } from './endpoint.js';
import type { Peer } from './peer.js';

/** A deterministic byte stream (xorshift32); not for production keys. */
export function seededRandom(seed: number): RandomFill {
  let s = seed >>> 0 || 0x9e3779b9;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      buf[i] = s & 0xff;
    }
  };
}

/** Monotonic and wall clocks that move only when told. */
export class FakeClock {
  /** Monotonic ms. */
  now = 0;
  /** Wall clock at monotonic 0, ms since the epoch. */
  wallBase = Date.UTC(2025, 0, 1);

  wall = (): number => this.wallBase + this.now;

  advance(ms: number): number {
    this.now += ms;
    return this.now;
  }
}

export interface Side {
  readonly device: Device;
  readonly keys: KeyPair;
  /** The other side as this device's peer. */
  readonly peer: Peer;
  readonly endpoint: Endpoint;
}

export interface PairOptions {
  readonly psk?: Uint8Array;
  readonly seed?: number;
  readonly clock?: FakeClock;
  readonly deviceA?: Partial<DeviceOptions>;
  readonly deviceB?: Partial<DeviceOptions>;
  readonly persistentKeepaliveMs?: number;
}

/** Two devices that know each other: A at 192.0.2.1:51820, B at 198.51.100.2:51820. */
export function devicePair(opts: PairOptions = {}): { a: Side; b: Side; clock: FakeClock } {
  const clock = opts.clock ?? new FakeClock();
  const seed = opts.seed ?? 1;
  const keysA = generateKeyPair(seededRandom(seed * 7919));
  const keysB = generateKeyPair(seededRandom(seed * 104729));
  const epA: Endpoint = { address: '192.0.2.1', port: 51820 };
  const epB: Endpoint = { address: '198.51.100.2', port: 51820 };
  const devA = new Device({ privateKey: keysA.privateKey, random: seededRandom(seed * 31), wallClock: clock.wall, ...opts.deviceA });
  const devB = new Device({ privateKey: keysB.privateKey, random: seededRandom(seed * 37), wallClock: clock.wall, ...opts.deviceB });
  const extra = {
    ...(opts.psk ? { presharedKey: opts.psk } : {}),
    ...(opts.persistentKeepaliveMs !== undefined ? { persistentKeepaliveMs: opts.persistentKeepaliveMs } : {}),
  };
  const peerBonA = devA.addPeer({ publicKey: keysB.publicKey, endpoint: epB, ...extra });
  const peerAonB = devB.addPeer({ publicKey: keysA.publicKey, endpoint: epA, ...extra });
  return {
    a: { device: devA, keys: keysA, peer: peerBonA, endpoint: epA },
    b: { device: devB, keys: keysB, peer: peerAonB, endpoint: epB },
    clock,
  };
}

/** The initiation packets among a peer's poll outputs. */
export function initiationsOf(outputs: readonly { type: string; kind?: string; packet?: Uint8Array }[]): Uint8Array[] {
  return outputs.flatMap((o) => (o.type === 'packet' && o.kind === 'initiation' && o.packet ? [o.packet] : []));
}

/**
 * Runs a full handshake: A initiates, B responds, A confirms with a
 * keepalive that B decrypts. Returns the packets exchanged.
 */
export function handshake(a: Side, b: Side, now: number): { initiation: Uint8Array; response: Uint8Array; keepalive: Uint8Array } {
  a.peer.requestHandshake();
  const [initiation] = initiationsOf(a.peer.poll(now));
  if (!initiation) throw new Error('no initiation sent');
  const r1 = b.device.handleHandshakePacket(initiation, a.endpoint, now);
  if (!r1.reply || r1.event.type !== 'initiation-accepted') throw new Error(`initiation not accepted: ${r1.event.type === 'dropped' ? r1.event.reason : r1.event.type}`);
  const r2 = a.device.handleHandshakePacket(r1.reply, b.endpoint, now);
  if (!r2.reply || r2.event.type !== 'handshake-complete') throw new Error(`response not accepted: ${r2.event.type === 'dropped' ? r2.event.reason : r2.event.type}`);
  const out = new Uint8Array(64);
  const r3 = b.device.decryptTransport(r2.reply, a.endpoint, now, out);
  if (!r3.ok || r3.length !== 0) throw new Error('keepalive not accepted');
  return { initiation, response: r1.reply, keepalive: r2.reply };
}
