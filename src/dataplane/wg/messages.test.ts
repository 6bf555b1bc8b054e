import { describe, expect, it } from 'vitest';
import {
  COOKIE_REPLY_BYTES,
  INITIATION_BYTES,
  RESPONSE_BYTES,
  TRANSPORT_MIN_BYTES,
  decodeCookieReply,
  decodeInitiation,
  decodeMessage,
  decodeResponse,
  decodeTransport,
  encodeCookieReply,
  encodeInitiation,
  encodeResponse,
  messageType,
  paddedLength,
  transportMessageLength,
  writeTransportHeader,
} from './messages.js';

const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const initiation = encodeInitiation({
  senderIndex: 0x04030201,
  ephemeral: fill(32, 0xe1),
  encryptedStatic: fill(48, 0x51),
  encryptedTimestamp: fill(28, 0x71),
  mac1: fill(16, 0x11),
  mac2: fill(16, 0x22),
});
const response = encodeResponse({
  senderIndex: 0x0a0b0c0d,
  receiverIndex: 0x04030201,
  ephemeral: fill(32, 0xe2),
  encryptedNothing: fill(16, 0x0e),
  mac1: fill(16, 0x11),
  mac2: fill(16, 0x22),
});
const cookieReply = encodeCookieReply({ receiverIndex: 0x04030201, nonce: fill(24, 0x24), encryptedCookie: fill(32, 0xc0) });
const transport = new Uint8Array(TRANSPORT_MIN_BYTES + 16);
writeTransportHeader(transport, 0xdeadbeef, 0x89abcdef, 0x01234567);

describe('message layout', () => {
  it('sizes are 148, 92, 64 and ≥ 32', () => {
    expect([INITIATION_BYTES, RESPONSE_BYTES, COOKIE_REPLY_BYTES, TRANSPORT_MIN_BYTES]).toEqual([148, 92, 64, 32]);
    expect([initiation.length, response.length, cookieReply.length]).toEqual([148, 92, 64]);
  });

  it('initiation bytes: type 1, three zero bytes, little-endian sender, fields in order', () => {
    expect(toHex(initiation.subarray(0, 8))).toBe('0100000001020304');
    expect(initiation[8]).toBe(0xe1);
    expect(initiation[40]).toBe(0x51);
    expect(initiation[88]).toBe(0x71);
    expect(initiation[116]).toBe(0x11);
    expect(initiation[132]).toBe(0x22);
    const d = decodeInitiation(initiation);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.message.senderIndex).toBe(0x04030201);
    expect([d.message.ephemeral.length, d.message.encryptedStatic.length, d.message.encryptedTimestamp.length, d.message.mac1.length, d.message.mac2.length]).toEqual([32, 48, 28, 16, 16]);
  });

  it('response bytes', () => {
    expect(toHex(response.subarray(0, 12))).toBe('020000000d0c0b0a01020304');
    const d = decodeResponse(response);
    expect(d.ok && d.message.receiverIndex === 0x04030201 && d.message.senderIndex === 0x0a0b0c0d).toBe(true);
    expect(response[12]).toBe(0xe2);
    expect(response[44]).toBe(0x0e);
    expect(response[60]).toBe(0x11);
    expect(response[76]).toBe(0x22);
  });

  it('cookie reply bytes', () => {
    expect(toHex(cookieReply.subarray(0, 8))).toBe('0300000001020304');
    const d = decodeCookieReply(cookieReply);
    expect(d.ok && d.message.nonce.length === 24 && d.message.encryptedCookie.length === 32).toBe(true);
  });

  it('transport header: type 4, receiver, 64-bit little-endian counter', () => {
    expect(toHex(transport.subarray(0, 16))).toBe('04000000efbeadde' + 'efcdab8967452301');
    const d = decodeTransport(transport);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect([d.message.receiverIndex, d.message.counterLo, d.message.counterHi, d.message.ciphertext.length]).toEqual([0xdeadbeef, 0x89abcdef, 0x01234567, 32]);
  });

  it('payload padding: next multiple of 16, capped at the MTU', () => {
    const table: [number, number, number][] = [
      [0, Infinity, 0],
      [1, Infinity, 16],
      [16, Infinity, 16],
      [17, Infinity, 32],
      [1419, 1420, 1420],
      [1420, 1420, 1420],
      [1421, 1420, 1424],
    ];
    for (const [n, mtu, padded] of table) expect(paddedLength(n, mtu), `${n}/${mtu}`).toBe(padded);
    expect(transportMessageLength(0)).toBe(32);
    expect(transportMessageLength(1)).toBe(48);
  });
});

describe('strict decoding', () => {
  const valid = [initiation, response, cookieReply, transport];

  it('every truncation and extension of a handshake message is refused with a reason, never a throw', () => {
    for (const m of valid) {
      for (let n = 0; n < m.length; n++) {
        const r = decodeMessage(m.subarray(0, n));
        if (m === transport && n >= TRANSPORT_MIN_BYTES) expect(r.ok).toBe(true);
        else expect(r.ok, `type ${m[0]} length ${n}`).toBe(false);
      }
      const longer = new Uint8Array(m.length + 1);
      longer.set(m);
      expect(decodeMessage(longer).ok).toBe(m === transport);
    }
  });

  it('reasons', () => {
    expect(decodeMessage(new Uint8Array(0))).toEqual({ ok: false, reason: 'too-short' });
    expect(decodeMessage(Uint8Array.of(9, 0, 0, 0))).toEqual({ ok: false, reason: 'unknown-type' });
    expect(decodeMessage(Uint8Array.of(0, 0, 0, 0))).toEqual({ ok: false, reason: 'unknown-type' });
    expect(decodeMessage(initiation.subarray(0, 100))).toEqual({ ok: false, reason: 'bad-length' });
    expect(decodeInitiation(response)).toEqual({ ok: false, reason: 'wrong-type' });
    for (const at of [1, 2, 3]) {
      const m = initiation.slice();
      m[at] = 1;
      expect(messageType(m)).toBe(0);
      expect(decodeMessage(m)).toEqual({ ok: false, reason: 'reserved-not-zero' });
    }
  });

  it('random bytes never throw', () => {
    let x = 12345;
    for (let i = 0; i < 5000; i++) {
      const n = (x = (x * 1103515245 + 12345) >>> 0) % 200;
      const b = new Uint8Array(n);
      for (let j = 0; j < n; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      if (n > 0 && i % 2 === 0) {
        b[0] = 1 + (i % 4);
        b.fill(0, 1, Math.min(4, n));
      }
      expect(() => decodeMessage(b)).not.toThrow();
    }
  });
});
