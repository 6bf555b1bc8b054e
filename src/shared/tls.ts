/**
 * The management API's TLS identity: a self-signed certificate (ECDSA
 * P-256, SHA-256, 10 years) made in-process on first start and kept in
 * `<state-dir>/tls/` (key 0600). Clients trust it by pinning its SHA-256
 * fingerprint ({@link fingerprintOf}), shown by `nea status` and carried in
 * pairing tokens; no CA is involved, so renaming or readdressing the
 * appliance changes nothing.
 */
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic } from './atomic-file.js';
import { NeaError, ValidationError } from './errors.js';

export const TLS_DIR = 'tls';
export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';

export interface TlsIdentity {
  /** PEM of the private key (PKCS#8). */
  key: string;
  /** PEM of the certificate. */
  cert: string;
  /** SHA-256 of the certificate (DER), lower-case hex without separators. */
  fingerprint: string;
}

/** A fingerprint as people paste it (`AB:CD:...`, any case) → lower-case hex. */
export function normalizeFingerprint(text: string): string {
  const hex = text.trim().replace(/^sha256[:/]/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ValidationError(`fingerprint "${text}" must be the certificate's SHA-256: 64 hex digits, colons allowed`);
  return hex;
}

export function fingerprintOf(certPem: string): string {
  return normalizeFingerprint(new X509Certificate(certPem).fingerprint256);
}

/** Makes a new self-signed certificate for `commonName`. */
export async function createSelfSigned(commonName: string, now = new Date()): Promise<TlsIdentity> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cn = commonName.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60) || 'nea';
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=${cn}`,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + 10 * 365 * 86400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  const pem = cert.toString('pem') + '\n';
  return { key, cert: pem, fingerprint: fingerprintOf(pem) };
}

/** The identity in `<dir>/tls/`, created on first use. A damaged pair is refused, never replaced silently (clients pin it). */
export async function loadOrCreateTls(dir: string, commonName: string): Promise<TlsIdentity> {
  const certFile = join(dir, TLS_DIR, CERT_FILE);
  const keyFile = join(dir, TLS_DIR, KEY_FILE);
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    const key = readFileSync(keyFile, 'utf8');
    try {
      const c = new X509Certificate(cert);
      if (!c.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
      return { key, cert, fingerprint: fingerprintOf(cert) };
    } catch (e) {
      throw new ValidationError(`${certFile}/${KEY_FILE}: ${(e as Error).message}; restore them, or delete both to make a new certificate (clients must then pin the new fingerprint)`, { cause: e });
    }
  }
  const id = await createSelfSigned(commonName);
  try {
    writeFileAtomic(keyFile, id.key, 0o600);
    writeFileAtomic(certFile, id.cert, 0o644);
  } catch (e) {
    throw new NeaError('STATE_WRITE_FAILED', `cannot write ${certFile} (${(e as NodeJS.ErrnoException).code ?? 'error'}); run as root or choose a writable --state-dir`, { cause: e });
  }
  return id;
}
