import nacl from 'tweetnacl';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateKeyPair, generatePrivateKey } from './crypto.js';
import { CookieGenerator } from './cookie.js';
import { Device } from './device.js';
import { createInitiation } from './handshake.js';
import { COOKIE_REPLY_BYTES, INITIATION, decodeCookieReply, INITIATION_BYTES, RESPONSE_BYTES, TRANSPORT_MIN_BYTES, decodeTransport, writeTransportHeader } from './messages.js';
import { wireguardPrelude } from './noise.js';
import { NO_SESSION } from './peer.js';
import { tai64n } from './tai64n.js';
import { FakeClock, devicePair, handshake, initiationsOf, seededRandom, type Side } from './testkit.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const buf = (): Uint8Array => new Uint8Array(2048);

/** Encrypts `payload` from `from` and decrypts it at `to`; returns the plaintext (unpadded to `payload.length`). */
function send(from: Side, to: Side, payload: Uint8Array, now: number): Uint8Array {
  const out = buf();
  const n = from.peer.encryptTransport(payload, out, now);
  if (n < 0) throw new Error(`encrypt failed: ${n}`);
  const plain = buf();
  const r = to.device.decryptTransport(out.subarray(0, n), from.endpoint, now, plain);
  if (!r.ok) throw new Error(`decrypt failed: ${r.reason}`);
  expect(r.peer).toBe(to.peer);
  return plain.subarray(0, payload.length);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('handshake between two in-memory devices', () => {
  for (const psk of [undefined, new Uint8Array(32).fill(0x5c)]) {
    it(`completes in one round trip and carries data both ways (${psk ? 'with' : 'without'} PSK)`, () => {
      const { a, b, clock } = devicePair(psk ? { psk } : {});
      const { initiation, response, keepalive } = handshake(a, b, clock.now);
      expect([initiation.length, response.length, keepalive.length]).toEqual([INITIATION_BYTES, RESPONSE_BYTES, TRANSPORT_MIN_BYTES]);
      expect(a.peer.keypairs.current?.isInitiator).toBe(true);
      expect(b.peer.keypairs.current?.isInitiator).toBe(false); // confirmed by the keepalive
      expect(b.peer.keypairs.next).toBeUndefined();

      for (let i = 0; i < 50; i++) {
        const m = text(`a->b ${i} ${'x'.repeat(i * 7)}`);
        expect(send(a, b, m, clock.now)).toEqual(m);
        const n = text(`b->a ${i}`);
        expect(send(b, a, n, clock.now)).toEqual(n);
      }
    });
  }

  it('fails when the preshared keys differ, and nothing is replied to the bad response', () => {
    const clock = new FakeClock();
    const { a, b } = devicePair({ clock, psk: new Uint8Array(32).fill(1) });
    // Reconfigure B with another PSK for A.
    b.device.removePeer(b.peer);
    b.device.addPeer({ publicKey: a.keys.publicKey, presharedKey: new Uint8Array(32).fill(2) });
    a.peer.requestHandshake();
    const [init] = initiationsOf(a.peer.poll(0));
    const r1 = b.device.handleHandshakePacket(init!, a.endpoint, 0);
    expect(r1.event.type).toBe('initiation-accepted');
    const r2 = a.device.handleHandshakePacket(r1.reply!, b.endpoint, 0);
    expect(r2).toEqual({ event: { type: 'dropped', reason: 'decrypt-failed' } });
    expect(a.peer.keypairs.current).toBeUndefined();
  });

  it('a peer with no session asks for a handshake and reports NO_SESSION', () => {
    const { a } = devicePair();
    expect(a.peer.encryptTransport(text('hi'), buf(), 0)).toBe(NO_SESSION);
    expect(a.peer.nextTimerAt()).toBeLessThanOrEqual(0);
    expect(initiationsOf(a.peer.poll(0))).toHaveLength(1);
  });

  it('the responder cannot send before the initiator confirms; then it can', () => {
    const { a, b } = devicePair();
    a.peer.requestHandshake();
    const [init] = initiationsOf(a.peer.poll(0));
    const r1 = b.device.handleHandshakePacket(init!, a.endpoint, 0);
    expect(b.peer.encryptTransport(text('too early'), buf(), 0)).toBe(NO_SESSION);
    const r2 = a.device.handleHandshakePacket(r1.reply!, b.endpoint, 0);
    expect(r2.event.type).toBe('handshake-complete');
    expect(send(a, b, text('first'), 1)).toEqual(text('first'));
    expect(send(b, a, text('now ok'), 1)).toEqual(text('now ok'));
  });
});

describe('replay and flood protection', () => {
  it('a replayed initiation is refused (timestamp), with no reply, and the session survives', () => {
    const { a, b, clock } = devicePair();
    const { initiation } = handshake(a, b, 0);
    const keysBefore = b.peer.keypairs.current;
    clock.advance(1000);
    const r = b.device.handleHandshakePacket(initiation, a.endpoint, clock.now);
    expect(r).toEqual({ event: { type: 'dropped', reason: 'replayed-timestamp' } });
    expect(b.peer.keypairs.current).toBe(keysBefore);
    expect(send(a, b, text('still fine'), clock.now)).toEqual(text('still fine'));
  });

  it('captured transport packets re-injected are refused', () => {
    const { a, b } = devicePair();
    handshake(a, b, 0);
    const out = buf();
    const n = a.peer.encryptTransport(text('once'), out, 1);
    const pkt = out.slice(0, n);
    expect(b.device.decryptTransport(pkt, a.endpoint, 1, buf()).ok).toBe(true);
    expect(b.device.decryptTransport(pkt, a.endpoint, 2, buf())).toEqual({ ok: false, reason: 'replay' });
  });

  it('a flood of fresh initiations from a real peer: at most one per 20 ms accepted', () => {
    const { a, b } = devicePair();
    const gen = new CookieGenerator(b.keys.publicKey);
    const prelude = wireguardPrelude(b.keys.publicKey);
    const rnd = seededRandom(77);
    let accepted = 0;
    let replies = 0;
    // One initiation per ms for a second, each with a strictly greater timestamp.
    for (let ms = 0; ms < 1000; ms++) {
      const r = createInitiation({
        prelude,
        localStaticPrivate: a.keys.privateKey,
        localStaticPublic: a.keys.publicKey,
        remoteStaticPublic: b.keys.publicKey,
        staticStatic: a.peer.staticStatic,
        senderIndex: ms,
        ephemeralPrivate: generatePrivateKey(rnd),
        timestamp: tai64n(1_800_000_000, ms * 1_000_000),
      });
      if (!r.ok) throw new Error(r.reason);
      gen.addMacs(r.value.bytes, ms);
      const res = b.device.handleHandshakePacket(r.value.bytes, a.endpoint, ms);
      if (res.event.type === 'initiation-accepted') accepted++;
      else expect(res.event).toEqual({ type: 'dropped', reason: 'initiation-flood' });
      if (res.reply) replies++;
    }
    expect(accepted).toBe(50);
    expect(replies).toBe(accepted);
    // Only one `next` keypair is held at a time, whatever the flood.
    expect(b.device.indexCount).toBeLessThanOrEqual(4);
  });
});

describe('DoS defences', () => {
  it('a bad mac1 is dropped before any Diffie-Hellman', () => {
    const { a, b } = devicePair();
    a.peer.requestHandshake();
    const [init] = initiationsOf(a.peer.poll(0));
    const spy = vi.spyOn(nacl, 'scalarMult');
    const bad = init!.slice();
    bad[INITIATION.mac1] = bad[INITIATION.mac1]! ^ 0x80;
    const r = b.device.handleHandshakePacket(bad, a.endpoint, 0);
    expect(r).toEqual({ event: { type: 'dropped', reason: 'bad-mac1' } });
    expect(spy).not.toHaveBeenCalled();
    // Same packet with its mac1 intact does reach the DH (the spy works).
    expect(b.device.handleHandshakePacket(init!, a.endpoint, 0).event.type).toBe('initiation-accepted');
    expect(spy).toHaveBeenCalled();
  });

  it('under load, a valid mac1 without mac2 gets a cookie reply (no DH); with the cookie it is accepted', () => {
    let load = true;
    const clock = new FakeClock();
    const { a, b } = devicePair({ clock, deviceB: { underLoad: () => load } });
    a.peer.requestHandshake();
    const [init1] = initiationsOf(a.peer.poll(clock.now));
    const spy = vi.spyOn(nacl, 'scalarMult');
    const r1 = b.device.handleHandshakePacket(init1!, a.endpoint, clock.now);
    expect(r1.event).toEqual({ type: 'cookie-sent' });
    expect(r1.reply?.length).toBe(COOKIE_REPLY_BYTES);
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();

    // A stores the cookie; its retransmission 5 s later carries mac2.
    const r2 = a.device.handleHandshakePacket(r1.reply!, b.endpoint, clock.now);
    expect(r2.event.type).toBe('cookie-received');
    expect(a.peer.cookies.hasCookie(clock.now)).toBe(true);
    clock.advance(a.peer.nextTimerAt() - clock.now);
    const [init2] = initiationsOf(a.peer.poll(clock.now));
    expect(init2).toBeDefined();

    // Bound to the source address: from elsewhere it is just another cookie reply.
    const elsewhere = b.device.handleHandshakePacket(init2!, { address: '203.0.113.9', port: 51820 }, clock.now);
    expect(elsewhere.event).toEqual({ type: 'cookie-sent' });

    const r3 = b.device.handleHandshakePacket(init2!, a.endpoint, clock.now);
    expect(r3.event.type).toBe('initiation-accepted');
    const r4 = a.device.handleHandshakePacket(r3.reply!, b.endpoint, clock.now);
    expect(r4.event.type).toBe('handshake-complete');
    load = false;
    expect(send(a, b, text('through'), clock.now)).toEqual(text('through'));
  });

  it('a cookie reply that does not answer our last message is refused', () => {
    const { a, b } = devicePair({ deviceB: { underLoad: () => true } });
    a.peer.requestHandshake();
    const [init] = initiationsOf(a.peer.poll(0));
    const reply = b.device.handleHandshakePacket(init!, a.endpoint, 0).reply!;
    const tampered = reply.slice();
    tampered[40] = tampered[40]! ^ 1;
    expect(a.device.handleHandshakePacket(tampered, b.endpoint, 0)).toEqual({ event: { type: 'dropped', reason: 'bad-cookie-reply' } });
    expect(a.device.handleHandshakePacket(reply, b.endpoint, 0).event.type).toBe('cookie-received');
    // The same reply again: no outstanding mac1 any more.
    expect(a.device.handleHandshakePacket(reply, b.endpoint, 0)).toEqual({ event: { type: 'dropped', reason: 'bad-cookie-reply' } });
  });

  it('under load, even cookie holders are rate limited per source', () => {
    const { a, b } = devicePair({ deviceB: { underLoad: () => true } });
    const gen = new CookieGenerator(b.keys.publicKey);
    const prelude = wireguardPrelude(b.keys.publicKey);
    const rnd = seededRandom(3);
    const make = (i: number): Uint8Array => {
      const r = createInitiation({
        prelude,
        localStaticPrivate: a.keys.privateKey,
        localStaticPublic: a.keys.publicKey,
        remoteStaticPublic: b.keys.publicKey,
        staticStatic: a.peer.staticStatic,
        senderIndex: i,
        ephemeralPrivate: generatePrivateKey(rnd),
        timestamp: tai64n(1_800_000_000, i * 1_000_000),
      });
      if (!r.ok) throw new Error(r.reason);
      gen.addMacs(r.value.bytes, 0);
      return r.value.bytes;
    };
    const first = make(0);
    const cookie = decodeCookieReply(b.device.handleHandshakePacket(first, a.endpoint, 0).reply!);
    if (!cookie.ok) throw new Error(cookie.reason);
    expect(gen.consumeReply(cookie.message, 0)).toBe(true);
    const reasons = new Map<string, number>();
    for (let i = 1; i <= 40; i++) {
      const r = b.device.handleHandshakePacket(make(i), a.endpoint, 0);
      const k = r.event.type === 'dropped' ? r.event.reason : r.event.type;
      reasons.set(k, (reasons.get(k) ?? 0) + 1);
    }
    // A burst of 5 passes the limiter; of those the per-peer guard takes one (same instant).
    expect(reasons.get('rate-limited')).toBe(35);
    expect(reasons.get('initiation-flood')).toBe(4);
    expect(reasons.get('initiation-accepted')).toBe(1);
  });
});

describe('low-order keys', () => {
  const LOW_ORDER = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ].map((h) => new Uint8Array(Buffer.from(h, 'hex')));

  it('configuring a peer with a low-order public key fails with LOW_ORDER_KEY', () => {
    const dev = new Device({ privateKey: generateKeyPair(seededRandom(8)).privateKey, random: seededRandom(9) });
    for (const k of LOW_ORDER) {
      expect(() => dev.addPeer({ publicKey: k })).toThrow(expect.objectContaining({ code: 'LOW_ORDER_KEY', message: 'peer public key is a low-order point; refusing it' }) as Error);
    }
    expect(dev.peerList).toHaveLength(0);
  });

  it('an initiation with a low-order ephemeral (valid mac1) is dropped silently', () => {
    const { a, b } = devicePair();
    a.peer.requestHandshake();
    const [init] = initiationsOf(a.peer.poll(0));
    const gen = new CookieGenerator(b.keys.publicKey);
    for (const k of LOW_ORDER) {
      const bad = init!.slice();
      bad.set(k, INITIATION.ephemeral);
      gen.addMacs(bad, 0);
      const r = b.device.handleHandshakePacket(bad, a.endpoint, 0);
      expect(r).toEqual({ event: { type: 'dropped', reason: 'low-order' } });
    }
  });
});

describe('silence towards malformed and unauthenticated input', () => {
  it('random bytes, truncations, extensions and bit flips of every message type: no reply, no throw', () => {
    const { a, b, clock } = devicePair({ deviceB: { underLoad: () => false } });
    const { initiation, response, keepalive } = handshake(a, b, 0);
    const out = buf();
    const dataLen = a.peer.encryptTransport(text('payload'), out, 0);
    const data = out.slice(0, dataLen);
    expect(b.device.decryptTransport(data, a.endpoint, 0, buf()).ok).toBe(true);
    const cookieDev = devicePair({ deviceB: { underLoad: () => true }, seed: 2 });
    cookieDev.a.peer.requestHandshake();
    const [ci] = initiationsOf(cookieDev.a.peer.poll(0));
    const cookieReply = cookieDev.b.device.handleHandshakePacket(ci!, cookieDev.a.endpoint, 0).reply!;

    const samples = [initiation, response, cookieReply, keepalive, data];
    const inputs: Uint8Array[] = [];
    for (const m of samples) {
      for (let n = 0; n < m.length; n++) inputs.push(m.slice(0, n));
      const longer = new Uint8Array(m.length + 1);
      longer.set(m);
      inputs.push(longer);
      for (let bit = 0; bit < m.length * 8; bit += 3) {
        const f = m.slice();
        f[bit >> 3] = f[bit >> 3]! ^ (1 << (bit & 7));
        inputs.push(f);
      }
    }
    const rnd = seededRandom(99);
    for (let i = 0; i < 3000; i++) {
      const len = new Uint8Array(1);
      rnd(len);
      const r = new Uint8Array(len[0]!);
      rnd(r);
      if (r.length >= 4 && i % 2 === 0) {
        r[0] = 1 + (i % 4);
        r.fill(0, 1, 4);
      }
      inputs.push(r);
    }
    // Random transport packets aimed at a live index.
    const live = decodeTransport(data);
    if (!live.ok) throw new Error('no live index');
    for (let i = 0; i < 200; i++) {
      const r = new Uint8Array(32 + (i % 64));
      rnd(r);
      writeTransportHeader(r, live.message.receiverIndex, i + 100, 0);
      inputs.push(r);
    }

    clock.advance(1);
    for (const dev of [a.device, b.device]) {
      for (const input of inputs) {
        let res: ReturnType<Device['handleHandshakePacket']> | undefined;
        expect(() => (res = dev.handleHandshakePacket(input, { address: '203.0.113.7', port: 4000 }, clock.now))).not.toThrow();
        expect(res?.reply, `handshake input ${Buffer.from(input.subarray(0, 8)).toString('hex')} len ${input.length}`).toBeUndefined();
        let t: ReturnType<Device['decryptTransport']> | undefined;
        expect(() => (t = dev.decryptTransport(input, { address: '203.0.113.7', port: 4000 }, clock.now, buf()))).not.toThrow();
        expect(t?.ok).toBe(false);
      }
    }
    // Nothing moved the endpoints, and the session still works.
    expect(a.peer.endpoint).toEqual(b.endpoint);
    expect(b.peer.endpoint).toEqual(a.endpoint);
    expect(send(a, b, text('alive'), clock.now)).toEqual(text('alive'));
  });
});

describe('drop reasons', () => {
  it('says why a datagram was dropped', () => {
    const { a } = devicePair();
    const src = { address: '203.0.113.7', port: 4000 };
    const reason = (b: Uint8Array): string => {
      const r = a.device.handleHandshakePacket(b, src, 0);
      expect(r.reply).toBeUndefined();
      return r.event.type === 'dropped' ? r.event.reason : r.event.type;
    };
    expect(reason(Uint8Array.of(1))).toBe('too-short');
    expect(reason(Uint8Array.of(1, 1, 0, 0))).toBe('reserved-not-zero');
    expect(reason(Uint8Array.of(7, 0, 0, 0))).toBe('unknown-type');
    expect(reason(new Uint8Array(32).fill(0).fill(4, 0, 1))).toBe('not-handshake');
    expect(reason(new Uint8Array(147).fill(0).fill(1, 0, 1))).toBe('bad-length');
    expect(reason(new Uint8Array(148).fill(0).fill(1, 0, 1))).toBe('bad-mac1');
    expect(a.device.decryptTransport(Uint8Array.of(4, 0, 0, 0), src, 0, buf())).toEqual({ ok: false, reason: 'malformed' });
    expect(a.device.decryptTransport(new Uint8Array(32).fill(4, 0, 1), src, 0, buf())).toEqual({ ok: false, reason: 'unknown-index' });
  });
});

describe('roaming', () => {
  it('the endpoint follows authenticated packets only', () => {
    const { a, b } = devicePair();
    handshake(a, b, 0);
    const moved = { address: '203.0.113.50', port: 40000 };
    const out = buf();
    const n = a.peer.encryptTransport(text('from a new address'), out, 1);
    const forged = out.slice(0, n);
    forged[n - 1] = forged[n - 1]! ^ 1;
    expect(b.device.decryptTransport(forged, { address: '198.18.0.1', port: 1 }, 1, buf()).ok).toBe(false);
    expect(b.peer.endpoint).toEqual(a.endpoint);
    expect(b.device.decryptTransport(out.subarray(0, n), moved, 1, buf()).ok).toBe(true);
    expect(b.peer.endpoint).toEqual(moved);
  });
});

describe('timers through the device (fake clock)', () => {
  it('the initiator rekeys when sending at 120 s; the responder does not', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    clock.advance(119_999);
    send(a, b, text('x'), clock.now);
    send(b, a, text('y'), clock.now);
    expect(initiationsOf(a.peer.poll(clock.now))).toHaveLength(0);
    clock.advance(1);
    send(b, a, text('y'), clock.now);
    expect(initiationsOf(b.peer.poll(clock.now))).toHaveLength(0);
    send(a, b, text('x'), clock.now);
    expect(initiationsOf(a.peer.poll(clock.now))).toHaveLength(1);
  });

  it('keys are refused at 180 s, for sending and receiving', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    clock.advance(179_999);
    const out = buf();
    const n = a.peer.encryptTransport(text('last call'), out, clock.now);
    expect(n).toBeGreaterThan(0);
    clock.advance(1);
    expect(b.device.decryptTransport(out.subarray(0, n), a.endpoint, clock.now, buf())).toEqual({ ok: false, reason: 'expired' });
    expect(a.peer.encryptTransport(text('too late'), buf(), clock.now)).toBe(NO_SESSION);
    expect(b.peer.encryptTransport(text('too late'), buf(), clock.now)).toBe(NO_SESSION);
  });

  it('rekey after 2^60 messages; no sending at REJECT_AFTER_MESSAGES', () => {
    const { a, b } = devicePair();
    handshake(a, b, 0);
    const kp = a.peer.keypairs.current!;
    kp.sendCounterHi = 0x0fff_ffff;
    kp.sendCounterLo = 0xffff_fffe;
    // (10 s on, so the one-initiation-per-5-s limit is not what decides.)
    send(a, b, text('2^60 - 2'), 10_000);
    expect(initiationsOf(a.peer.poll(10_000))).toHaveLength(0);
    send(a, b, text('2^60 - 1'), 10_000);
    expect(initiationsOf(a.peer.poll(10_000))).toHaveLength(1);
    const bk = b.peer.keypairs.current!;
    bk.sendCounterHi = 0xffff_ffff;
    bk.sendCounterLo = 0xffff_dffe;
    send(b, a, text('last counter'), 10_000);
    expect(b.peer.encryptTransport(text('one too many'), buf(), 10_000)).toBe(NO_SESSION);
  });

  it('an unanswered initiation is retried every 5 s + jitter and abandoned at 90 s', () => {
    const { a, clock } = devicePair();
    expect(a.peer.encryptTransport(text('queued'), buf(), 0)).toBe(NO_SESSION);
    const sent: number[] = [];
    let gaveUpAt = -1;
    while (clock.now < 200_000) {
      const t = a.peer.nextTimerAt();
      if (t === Infinity) break;
      clock.now = Math.max(clock.now, t);
      for (const o of a.peer.poll(clock.now)) {
        if (o.type === 'packet' && o.kind === 'initiation') sent.push(clock.now);
        if (o.type === 'gave-up') gaveUpAt = clock.now;
      }
      if (gaveUpAt >= 0) break;
    }
    expect(sent[0]).toBe(0);
    for (let i = 1; i < sent.length; i++) {
      expect(sent[i]! - sent[i - 1]!).toBeGreaterThanOrEqual(5000);
      expect(sent[i]! - sent[i - 1]!).toBeLessThanOrEqual(5333);
    }
    expect(sent[sent.length - 1]).toBeLessThan(90_000);
    expect(gaveUpAt).toBeGreaterThanOrEqual(90_000);
    expect(gaveUpAt).toBeLessThanOrEqual(95_333);
    expect(sent.length).toBeGreaterThanOrEqual(17);
    expect(sent.length).toBeLessThanOrEqual(19);
    // Each retry is a new initiation (new ephemeral, new index).
    expect(a.device.indexCount).toBe(0);
  });

  it('a lost response is recovered by the retransmission', () => {
    const { a, b, clock } = devicePair();
    a.peer.requestHandshake();
    const [i1] = initiationsOf(a.peer.poll(0));
    b.device.handleHandshakePacket(i1!, a.endpoint, 0); // response lost
    clock.now = a.peer.nextTimerAt();
    const [i2] = initiationsOf(a.peer.poll(clock.now));
    const r = b.device.handleHandshakePacket(i2!, a.endpoint, clock.now);
    expect(r.event.type).toBe('initiation-accepted');
    expect(a.device.handleHandshakePacket(r.reply!, b.endpoint, clock.now).event.type).toBe('handshake-complete');
  });

  it('keepalive after 10 s of receive-only', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    send(a, b, text('data'), 0);
    clock.now = b.peer.nextTimerAt();
    expect(clock.now).toBe(10_000);
    const outs = b.peer.poll(clock.now);
    const ka = outs.find((o) => o.type === 'packet' && o.kind === 'keepalive');
    expect(ka).toBeDefined();
    if (ka?.type !== 'packet') return;
    const r = a.device.decryptTransport(ka.packet, b.endpoint, clock.now, buf());
    expect(r.ok && r.length === 0).toBe(true);
  });

  it('the initiator starts a new handshake when receiving on a key older than 165 s', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    clock.now = 164_999;
    send(b, a, text('x'), clock.now);
    expect(initiationsOf(a.peer.poll(clock.now))).toHaveLength(0);
    clock.now = 165_000;
    send(b, a, text('x'), clock.now);
    expect(initiationsOf(a.peer.poll(clock.now))).toHaveLength(1);
  });

  it('key material is erased 3 × 180 s after the last handshake', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    clock.now = 539_999;
    expect(a.peer.poll(clock.now).filter((o) => o.type === 'keys-zeroed')).toHaveLength(0);
    clock.now = 540_000;
    expect(a.peer.poll(clock.now).filter((o) => o.type === 'keys-zeroed')).toHaveLength(1);
    expect(a.peer.keypairs.current).toBeUndefined();
    expect(a.device.indexCount).toBe(0);
  });
});

describe('rekey without loss', () => {
  it('packets in flight under the old key still decrypt; the new key is used after confirmation', () => {
    const { a, b, clock } = devicePair();
    handshake(a, b, 0);
    const oldA = a.peer.keypairs.current!;
    const oldB = b.peer.keypairs.current!;
    clock.now = 120_000;

    const seal = (s: Side, msg: string): Uint8Array => {
      const out = buf();
      const n = s.peer.encryptTransport(text(msg), out, clock.now);
      expect(n).toBeGreaterThan(0);
      return out.slice(0, n);
    };
    const open = (s: Side, from: Side, pkt: Uint8Array, msg: string): void => {
      const plain = buf();
      const r = s.device.decryptTransport(pkt, from.endpoint, clock.now, plain);
      expect(r.ok, msg).toBe(true);
      expect(new TextDecoder().decode(plain.subarray(0, text(msg).length))).toBe(msg);
    };

    // A sends at 120 s: still under the old key, and a rekey is due.
    const a1 = seal(a, 'a1 old key');
    const [init] = initiationsOf(a.peer.poll(clock.now));
    expect(init).toBeDefined();
    const b1 = seal(b, 'b1 old key');
    // B takes the initiation: new keys wait in `next`; B still sends under the old key.
    const resp = b.device.handleHandshakePacket(init!, a.endpoint, clock.now).reply!;
    expect(b.peer.keypairs.next).toBeDefined();
    const b2 = seal(b, 'b2 old key, after responding');
    expect(b.peer.keypairs.current).toBe(oldB);
    // A gets the response: switches to the new key, keeps the old one as previous.
    const confirm = a.device.handleHandshakePacket(resp, b.endpoint, clock.now).reply!;
    expect(a.peer.keypairs.current).not.toBe(oldA);
    expect(a.peer.keypairs.previous).toBe(oldA);
    const a2 = seal(a, 'a2 new key');
    // Old-key packets arrive late, in both directions, around the confirmation.
    open(b, a, a1, 'a1 old key');
    open(a, b, b1, 'b1 old key');
    open(b, a, a2, 'a2 new key'); // confirms at B (the keepalive is still in flight)
    expect(b.peer.keypairs.current).not.toBe(oldB);
    expect(b.peer.keypairs.previous).toBe(oldB);
    open(b, a, confirm, '');
    open(a, b, b2, 'b2 old key, after responding');
    const b3 = seal(b, 'b3 new key');
    open(a, b, b3, 'b3 new key');
  });
});
