/**
 * The batched transport path (the addon, OpenSSL's ChaCha20-Poly1305) must
 * produce byte for byte what the per-packet path (libsodium, checked against
 * RFC 8439 in crypto.test.ts) produces, and open what either sealed.
 */
import { describe, expect, it } from 'vitest';
import { Keypair } from './session.js';

const key = (b: number): Uint8Array => new Uint8Array(32).fill(b);
/** A sender and a receiver sharing keys, as a handshake would leave them. */
function pair(): { tx: Keypair; txSingle: Keypair; rx: Keypair } {
  return {
    tx: new Keypair(1, 0xdeadbeef, key(7), key(8), true, 0),
    txSingle: new Keypair(1, 0xdeadbeef, key(7), key(8), true, 0),
    rx: new Keypair(0xdeadbeef, 1, key(8), key(7), false, 0),
  };
}

const SLOT = 2048;
const sizes = [0, 1, 15, 16, 17, 60, 1400, 1434];

function layout(payloads: Uint8Array[]): { buf: Uint8Array; offsets: Uint32Array; lengths: Uint32Array } {
  const buf = new Uint8Array(SLOT * payloads.length);
  const offsets = new Uint32Array(payloads.length);
  const lengths = new Uint32Array(payloads.length);
  payloads.forEach((p, i) => { offsets[i] = i * SLOT; lengths[i] = p.length; buf.set(p, i * SLOT + 16); });
  return { buf, offsets, lengths };
}

describe('batched transport seal/open', () => {
  const payloads = sizes.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff));

  it('seals exactly as the per-packet path does (same headers, counters, padding, ciphertext, tags)', () => {
    const { tx, txSingle } = pair();
    const { buf, offsets, lengths } = layout(payloads);
    expect(tx.sealBatch(buf, offsets, lengths, payloads.length, 1, 1440)).toBe(payloads.length);
    payloads.forEach((p, i) => {
      const out = new Uint8Array(SLOT);
      const n = txSingle.seal(p, out, 1, 1440);
      expect(lengths[i]).toBe(n);
      expect(Buffer.from(buf.subarray(offsets[i], offsets[i]! + n)).toString('hex')).toBe(Buffer.from(out.subarray(0, n)).toString('hex'));
    });
    expect([tx.sendCounterLo, tx.sendCounterHi]).toEqual([payloads.length, 0]);
  });

  it('opens what it sealed, and refuses a flipped bit without touching the others', () => {
    const { tx, rx } = pair();
    const { buf, offsets, lengths } = layout(payloads);
    tx.sealBatch(buf, offsets, lengths, payloads.length, 1);
    buf[offsets[3]! + 20]! ^= 1;
    expect(rx.openBatch(buf, offsets, lengths, payloads.length)).toBe(payloads.length - 1);
    expect(lengths[3]).toBe(0xffffffff);
    payloads.forEach((p, i) => {
      if (i === 3) return;
      expect(lengths[i]! % 16).toBe(0);
      expect(buf.subarray(offsets[i]! + 16, offsets[i]! + 16 + p.length)).toEqual(p);
    });
  });

  it('carries the 64-bit counter across 2^32 and stops before REJECT_AFTER_MESSAGES', () => {
    const { tx } = pair();
    tx.sendCounterLo = 0xffff_fffe;
    const { buf, offsets, lengths } = layout(payloads.slice(0, 4));
    expect(tx.sealBatch(buf, offsets, lengths, 4, 1)).toBe(4);
    expect([tx.sendCounterLo, tx.sendCounterHi]).toEqual([2, 1]);
    expect(Buffer.from(buf.subarray(offsets[2]! + 8, offsets[2]! + 16)).toString('hex')).toBe('0000000001000000');
    const { tx: last } = pair();
    last.sendCounterHi = 0xffff_ffff;
    last.sendCounterLo = 0xffff_dfff - 2;
    const l2 = layout(payloads.slice(0, 4));
    expect(last.sealBatch(l2.buf, l2.offsets, l2.lengths, 4, 1)).toBe(2);
    expect(last.canSend(1)).toBe(false);
  });

  it('refuses to seal with an expired key, and never writes beyond the buffer', () => {
    const { tx } = pair();
    const { buf, offsets, lengths } = layout(payloads);
    expect(tx.sealBatch(buf, offsets, lengths, payloads.length, 180_000)).toBe(0);
    const small = new Uint8Array(100);
    expect(tx.sealBatch(small, new Uint32Array([0, 40]), new Uint32Array([20, 60]), 2, 1)).toBe(1);
  });

  it('opens nothing malformed: short, wrong type, beyond the buffer', () => {
    const { rx } = pair();
    const buf = new Uint8Array(64);
    buf[32] = 4;
    const lengths = new Uint32Array([20, 31, 64]);
    expect(rx.openBatch(buf, new Uint32Array([0, 32, 32]), lengths, 3)).toBe(0);
    expect([...lengths]).toEqual([0xffffffff, 0xffffffff, 0xffffffff]);
  });
});
