/**
 * Keys for the benchmarked systems, made in-process: X25519 pairs (nea,
 * wireguard-go; base64 as `wg genkey`/`wg pubkey` print them) and RSA pairs
 * (tinc 1.0, PKCS#1 PEM as `tincd -K` writes them). OpenVPN's certificates
 * come from the openssl CLI (./pki.ts).
 */
import { generateKeyPairSync } from 'node:crypto';
import nacl from 'tweetnacl';

export interface X25519Pair {
  /** 32 bytes, base64, clamped as RFC 7748 (and `wg genkey`) clamp it. */
  privateKey: string;
  /** 32 bytes, base64: the private key times the base point. */
  publicKey: string;
}

/** Clamp a 32-byte X25519 scalar in place (RFC 7748 §5) and return it. */
export function clampX25519(k: Uint8Array): Uint8Array {
  k[0] = k[0]! & 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}

/** The public key of a base64 private key (as `wg pubkey`). */
export function x25519Public(privateKey: string): string {
  const k = Buffer.from(privateKey, 'base64');
  if (k.length !== 32) throw new RangeError(`an X25519 private key is 32 bytes, got ${k.length}`);
  return Buffer.from(nacl.scalarMult.base(k)).toString('base64');
}

export function x25519KeyPair(seed: Uint8Array = nacl.randomBytes(32)): X25519Pair {
  const k = clampX25519(Uint8Array.from(seed));
  const privateKey = Buffer.from(k).toString('base64');
  return { privateKey, publicKey: x25519Public(privateKey) };
}

export interface RsaPair {
  /** `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1). */
  privatePem: string;
  /** `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1), the form tinc 1.0 reads from a host file. */
  publicPem: string;
}

/** An RSA pair of `bits` bits (tinc 1.0's default size is 2048). */
export function rsaKeyPair(bits = 2048): RsaPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'pkcs1', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}
