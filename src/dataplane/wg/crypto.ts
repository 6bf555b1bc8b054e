/**
 * The cryptographic primitives of WireGuard (whitepaper §5.4), and nothing
 * else: no protocol state lives here.
 *
 * | name  | what                                   | from |
 * |-------|----------------------------------------|------|
 * | HASH  | BLAKE2s-256                            | @noble/hashes |
 * | MAC   | keyed BLAKE2s, 16-byte output          | @noble/hashes |
 * | HMAC  | HMAC over BLAKE2s (block 64, out 32)   | @noble/hashes |
 * | KDFn  | HKDF over HMAC-BLAKE2s, n = 1, 2, 3    | here |
 * | DH    | X25519                                 | tweetnacl |
 * | AEAD  | ChaCha20-Poly1305 (RFC 8439), nonce = 4 zero bytes ‖ 64-bit LE counter | sodium-native |
 * | XAEAD | XChaCha20-Poly1305, 24-byte nonce      | sodium-native |
 *
 * Two shapes of AEAD: allocating helpers for the handshake, and `*Into`
 * variants for transport data that write into caller-owned buffers with a
 * caller-owned 12-byte nonce buffer, so the per-packet path allocates nothing
 * but the subarray views it is given.
 *
 * Failure policy: decryption failures return `false`/`undefined`, never throw.
 * Only {@link dh} throws ({@link LowOrderKeyError}); the handshake uses the
 * non-throwing {@link x25519} instead.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import sodiumModule from 'sodium-native';
import nacl from 'tweetnacl';
import { NeaError } from '../../shared/errors.js';

/** Length in bytes of X25519 keys, HASH output, AEAD keys and chaining keys. */
export const KEY_BYTES = 32;
/** Length of a MAC output (mac1, mac2, cookie). */
export const MAC_BYTES = 16;
/** Length of the Poly1305 tag appended by AEAD and XAEAD. */
export const TAG_BYTES = 16;
/** Length of the AEAD nonce: 4 zero bytes then the 64-bit little-endian counter. */
export const NONCE_BYTES = 12;
/** Length of the XAEAD nonce. */
export const XNONCE_BYTES = 24;

/** A peer public key whose X25519 result is all zeros (a low-order point). */
export class LowOrderKeyError extends NeaError {
  constructor() {
    super('LOW_ORDER_KEY', 'peer public key is a low-order point; refusing it');
  }
}

/** A key string or byte array that is not a WireGuard key. */
export class InvalidKeyError extends NeaError {
  constructor(message: string) {
    super('INVALID_KEY', message);
  }
}

/** Source of random bytes: fills `buf` completely. Injected for tests. */
export type RandomFill = (buf: Uint8Array) => void;

/**
 * The part of sodium-native used here. Its bundled types predate the IETF
 * ChaCha20-Poly1305 functions and insist on `Buffer`; every function accepts
 * any Uint8Array view. `*_encrypt` returns bytes written; `*_decrypt` throws
 * when the tag does not verify.
 */
interface SodiumAead {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  randombytes_buf(buf: Uint8Array): void;
  sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean;
}
const sodium = sodiumModule as unknown as SodiumAead;

/** Operating-system randomness (libsodium's `randombytes_buf`). */
export const systemRandom: RandomFill = (buf) => {
  sodium.randombytes_buf(buf);
};

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------
// Hashing

/** HASH(parts[0] ‖ parts[1] ‖ …): BLAKE2s with a 32-byte output. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, parts…): keyed BLAKE2s with a 16-byte output (digest length is a BLAKE2 parameter, not a truncation). */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ key, dkLen: MAC_BYTES });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HMAC(key, parts…) over BLAKE2s-256 (RFC 2104 with a 64-byte block). */
export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = nobleHmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF1(key, input) = τ1 where τ0 = HMAC(key, input), τ1 = HMAC(τ0, 0x1). */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

/** KDF2(key, input) = (τ1, τ2), τ2 = HMAC(τ0, τ1 ‖ 0x2). */
export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

/** KDF3(key, input) = (τ1, τ2, τ3), τ3 = HMAC(τ0, τ2 ‖ 0x3). */
export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  const t3 = hmac(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}

// ---------------------------------------------------------------------------
// X25519

/** Clamps a 32-byte X25519 private key in place (as `wg genkey` does) and returns it. */
export function clampPrivateKey(k: Uint8Array): Uint8Array {
  k[0] = k[0]! & 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}

/** A fresh clamped private key. */
export function generatePrivateKey(random: RandomFill = systemRandom): Uint8Array {
  const k = new Uint8Array(KEY_BYTES);
  random(k);
  return clampPrivateKey(k);
}

// Captured once so that a test spying on `nacl.scalarMult` counts only
// Diffie-Hellman operations against a peer's point, not key derivation.
const scalarMultBase: (n: Uint8Array) => Uint8Array = nacl.scalarMult.base.bind(nacl.scalarMult);

/** The public key of a private key (scalar multiplication of the base point). */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  checkLength(privateKey, KEY_BYTES, 'private key');
  return scalarMultBase(privateKey);
}

export interface KeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function generateKeyPair(random: RandomFill = systemRandom): KeyPair {
  const privateKey = generatePrivateKey(random);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** True when every byte of `a` is zero; runs in time independent of the contents. */
export function isZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]!;
  return acc === 0;
}

/**
 * X25519(privateKey, publicKey) into `out` (32 bytes). Returns false, with
 * `out` zeroed, when the result is all zeros: the public key is a low-order
 * point and the "shared" secret is known to anyone (tweetnacl does not
 * check this itself).
 */
export function x25519(out: Uint8Array, privateKey: Uint8Array, publicKey: Uint8Array): boolean {
  if (privateKey.length !== KEY_BYTES || publicKey.length !== KEY_BYTES || out.length !== KEY_BYTES) return false;
  const s = nacl.scalarMult(privateKey, publicKey);
  out.set(s);
  s.fill(0);
  return !isZero(out);
}

/** DH(privateKey, publicKey); throws {@link LowOrderKeyError} (code LOW_ORDER_KEY) on an all-zero result. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkLength(privateKey, KEY_BYTES, 'private key');
  checkLength(publicKey, KEY_BYTES, 'public key');
  const out = new Uint8Array(KEY_BYTES);
  if (!x25519(out, privateKey, publicKey)) throw new LowOrderKeyError();
  return out;
}

// ---------------------------------------------------------------------------
// AEAD

/** Writes a 64-bit little-endian counter (as two uint32 halves) into bytes 4..11 of a 12-byte nonce; bytes 0..3 stay zero. */
export function setNonceCounter(nonce: Uint8Array, counterLo: number, counterHi: number): void {
  nonce[4] = counterLo & 0xff;
  nonce[5] = (counterLo >>> 8) & 0xff;
  nonce[6] = (counterLo >>> 16) & 0xff;
  nonce[7] = counterLo >>> 24;
  nonce[8] = counterHi & 0xff;
  nonce[9] = (counterHi >>> 8) & 0xff;
  nonce[10] = (counterHi >>> 16) & 0xff;
  nonce[11] = counterHi >>> 24;
}

/** A fresh all-zero 12-byte nonce buffer for {@link setNonceCounter}. */
export function newNonce(): Uint8Array {
  return new Uint8Array(NONCE_BYTES);
}

/**
 * AEAD encryption into `out` (length ≥ plaintext + 16; may be the same
 * memory as `plaintext`, in place). Returns the bytes written.
 */
export function aeadEncryptInto(out: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | null, key: Uint8Array, nonce: Uint8Array): number {
  const n = plaintext.length + TAG_BYTES;
  return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.length === n ? out : out.subarray(0, n), plaintext, ad, null, nonce, key);
}

/**
 * AEAD decryption into `out` (length ≥ ciphertext − 16). Returns false, and
 * never throws, when the tag does not verify or the ciphertext is shorter
 * than a tag.
 */
export function aeadDecryptInto(out: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | null, key: Uint8Array, nonce: Uint8Array): boolean {
  const n = ciphertext.length - TAG_BYTES;
  if (n < 0 || out.length < n) return false;
  try {
    // libsodium wants the plaintext buffer exactly as long as the plaintext.
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out.length === n ? out : out.subarray(0, n), null, ciphertext, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}

function counterNonce(counter: number): Uint8Array {
  const n = newNonce();
  setNonceCounter(n, counter >>> 0, Math.floor(counter / 0x1_0000_0000) >>> 0);
  return n;
}

/** AEAD(key, counter, plaintext, ad) = ciphertext ‖ tag (allocating; handshake use). */
export function aead(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAG_BYTES);
  aeadEncryptInto(out, plaintext, ad, key, counterNonce(counter));
  return out;
}

/** Inverse of {@link aead}; undefined when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
  if (ciphertext.length < TAG_BYTES) return undefined;
  const out = new Uint8Array(ciphertext.length - TAG_BYTES);
  return aeadDecryptInto(out, ciphertext, ad, key, counterNonce(counter)) ? out : undefined;
}

/** XAEAD(key, nonce24, plaintext, ad) = ciphertext ‖ tag. */
export function xaead(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  checkLength(nonce, XNONCE_BYTES, 'XAEAD nonce');
  const out = new Uint8Array(plaintext.length + TAG_BYTES);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
  return out;
}

/** Inverse of {@link xaead}; undefined when authentication fails. */
export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
  if (ciphertext.length < TAG_BYTES || nonce.length !== XNONCE_BYTES) return undefined;
  const out = new Uint8Array(ciphertext.length - TAG_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key);
    return out;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Comparison and key text

/** Constant-time equality (false for different lengths, which are not secret). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length === 0) return true;
  return sodium.sodium_memcmp(a, b);
}

// 43 base64 digits carry 258 bits; the last digit's two low bits must be zero.
const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A key as `wg` prints it: 44 characters of standard base64 with one `=`. */
export function encodeKey(key: Uint8Array): string {
  checkLength(key, KEY_BYTES, 'key');
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/** Parses a key as `wg` accepts it (canonical 44-character base64); throws {@link InvalidKeyError}. */
export function decodeKey(text: string): Uint8Array {
  if (!KEY_BASE64.test(text)) throw new InvalidKeyError('key must be 44 characters of base64 encoding 32 bytes (as `wg genkey` prints)');
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function checkLength(a: Uint8Array, n: number, what: string): void {
  if (a.length !== n) throw new InvalidKeyError(`${what} must be ${n} bytes, got ${a.length}`);
}

export { EMPTY as EMPTY_BYTES };
