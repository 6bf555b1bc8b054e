/**
 * AEAD throughput from Node, side by side in one run: which library the
 * tunnel's transport path should use (docs/protocol.md records the result).
 *
 *   node:crypto   createCipheriv('chacha20-poly1305') per packet
 *   sodium-native crypto_aead_chacha20poly1305_ietf_encrypt_detached (libsodium)
 *   tweetnacl     secretbox (XSalsa20-Poly1305; tweetnacl has no ChaCha20-Poly1305 —
 *                 the nearest construction it offers, for scale only)
 *
 * Usage: node dist/bench/aead/run.js [--size BYTES] [--seconds S]
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import sodiumModule from 'sodium-native';
import nacl from 'tweetnacl';

const { values } = parseArgs({ options: { size: { type: 'string', default: '1400' }, seconds: { type: 'string', default: '2' } } });
const size = Number(values.size);
const seconds = Number(values.seconds);

type Seal = (counter: number) => void;

/** The part of sodium-native used here (its bundled types predate the IETF AEAD). */
interface SodiumIetf {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(c: Uint8Array, mac: Uint8Array, m: Uint8Array, ad: null, nsec: null, npub: Uint8Array, k: Uint8Array): void;
}
const sodium = sodiumModule as unknown as SodiumIetf;

function measure(name: string, seal: Seal): number {
  const rates: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const end = performance.now() + seconds * 1000;
    let n = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 256; i++) seal(n++);
    }
    rates.push(n / seconds);
  }
  rates.sort((a, b) => a - b);
  const median = rates[1]!;
  console.log(`  ${name.padEnd(14)} ${Math.round(median).toLocaleString('en-US').padStart(10)} packets/s  ${((median * size * 8) / 1e9).toFixed(2)} Gbit/s`);
  return median;
}

const key = randomBytes(32);
const plain = randomBytes(size);
const out = Buffer.alloc(size);
const tag = Buffer.alloc(16);
const nonce = Buffer.alloc(12);

console.log(`AEAD seal of ${size}-byte packets, one core, median of 3 x ${seconds} s:`);
const node = measure('node:crypto', (c) => {
  nonce.writeUInt32LE(c, 4);
  const ci = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  ci.update(plain);
  ci.final();
  ci.getAuthTag();
});
const sod = measure('sodium-native', (c) => {
  nonce.writeUInt32LE(c, 4);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, tag, plain, null, null, nonce, key);
});
const nkey = new Uint8Array(32);
const nnonce = new Uint8Array(24);
const tw = measure('tweetnacl', (c) => {
  nnonce[0] = c & 0xff;
  nacl.secretbox(plain, nnonce, nkey);
});
console.log(`sodium-native / node:crypto = ${(sod / node).toFixed(2)}x, sodium-native / tweetnacl = ${(sod / tw).toFixed(2)}x`);
