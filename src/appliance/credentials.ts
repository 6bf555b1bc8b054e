/**
 * Credentials of the management API: bearer tokens (per client, revocable)
 * and one-time pairing tokens. Pure except the signing key's file.
 *
 * - Secrets are 32 random bytes. Only SHA-256(secret) is stored (a fast hash
 *   is right for high-entropy secrets; a slow password hash buys nothing).
 * - Each token names its record by a public id, so a check is one lookup and
 *   one constant-time comparison of hashes (timingSafeEqual); an unknown id
 *   is compared against a dummy hash, so the time does not tell whether an
 *   id exists.
 * - Bearer token text: `nea_<id>_<secret>`.
 * - Pairing token text: `neapair1.<payload>.<signature>` (base64url), the
 *   payload JSON {@link PairingPayload}, the signature Ed25519 (tweetnacl)
 *   over `neapair1.<payload>` by the SP appliance's signing key. The SP
 *   accepts only its own signature; the tenant checks the signature against
 *   the key in the payload (catches a damaged paste) and pins the SP's TLS
 *   certificate by the fingerprint in it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import type { TokenScope } from '../protocol/appliance-api.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { b64url, newBearer, newId, parseBearer, secretMatches, sha256Hex } from '../shared/secrets.js';
import { NeaError, ValidationError } from '../shared/errors.js';
import type { ApiTokenRecord, PairingTokenRecord } from './state.js';

export { newId, secretMatches, sha256Hex };

export const SIGNING_KEY_FILE = 'pairing.key';
const PAIRING_PREFIX = 'neapair1';

// --- bearer tokens ---------------------------------------------------------------

export interface NewApiToken {
  record: ApiTokenRecord;
  /** The token text; given to the client once, never stored. */
  token: string;
}

export function createApiToken(name: string, scope: TokenScope, now: Date): NewApiToken {
  const { id, token, hash } = newBearer();
  return { record: { id, name, scope, hash, createdAt: now.toISOString() }, token };
}

export type BearerCheck =
  | { ok: true; record: ApiTokenRecord }
  | { ok: false; code: 'API_AUTH_REQUIRED' | 'API_AUTH_INVALID' | 'API_TOKEN_REVOKED' };

/** Checks an `Authorization` header against the token records. */
export function checkBearer(header: string | undefined, records: readonly ApiTokenRecord[]): BearerCheck {
  if (header === undefined || header === '') return { ok: false, code: 'API_AUTH_REQUIRED' };
  const m = parseBearer(header);
  if (!m) return { ok: false, code: 'API_AUTH_INVALID' };
  const record = records.find((r) => r.id === m.id);
  if (!secretMatches(m.secret, record?.hash)) return { ok: false, code: 'API_AUTH_INVALID' };
  if (record!.revokedAt !== undefined) return { ok: false, code: 'API_TOKEN_REVOKED' };
  return { ok: true, record: record! };
}

// --- pairing tokens --------------------------------------------------------------

/** What a pairing token carries. */
export interface PairingPayload {
  v: 1;
  /** Record id on the SP appliance. */
  id: string;
  /** The secret (base64url); the SP stores only its hash. */
  s: string;
  /** The SP appliance's tunnel public key (base64). */
  sp: string;
  /** The SP appliance's tunnel endpoint `ADDR:PORT`, as the tenant reaches it. */
  ep: string;
  /** The SP appliance's API URL, as the tenant reaches it. */
  api: string;
  /** SHA-256 fingerprint of the SP's API certificate (hex, as `openssl x509 -fingerprint -sha256` without colons). */
  fp: string;
  /** Segments the tenant appliance will carry. */
  seg: number[];
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** The signing public key (Ed25519, base64). */
  sk: string;
}

export interface SigningKey {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** The appliance's Ed25519 signing key, from `<dir>/pairing.key` (a 32-byte seed, base64), generated on first use. */
export function loadOrCreateSigningKey(dir: string): SigningKey {
  const file = join(dir, SIGNING_KEY_FILE);
  if (existsSync(file)) {
    const seed = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (seed.length !== 32) throw new ValidationError(`${file}: must be base64 of a 32-byte Ed25519 seed; restore it, or delete it (unredeemed pairing tokens then stop working)`);
    return nacl.sign.keyPair.fromSeed(seed);
  }
  const seed = randomBytes(32);
  try {
    writeFileAtomic(file, seed.toString('base64') + '\n', 0o600);
  } catch (e) {
    throw new NeaError('STATE_WRITE_FAILED', `cannot write ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}); run as root or choose a writable --state-dir`, { cause: e });
  }
  return nacl.sign.keyPair.fromSeed(seed);
}

export interface MintOptions {
  key: SigningKey;
  spPublicKey: string;
  endpoint: string;
  apiUrl: string;
  fingerprint: string;
  segments: number[];
  name?: string;
  ttlSeconds: number;
  now: Date;
}

export function mintPairingToken(o: MintOptions): { record: PairingTokenRecord; token: string } {
  const id = newId();
  const secret = b64url(randomBytes(32));
  const exp = Math.floor(o.now.getTime() / 1000) + o.ttlSeconds;
  const payload: PairingPayload = {
    v: 1, id, s: secret, sp: o.spPublicKey, ep: o.endpoint, api: o.apiUrl, fp: o.fingerprint, seg: o.segments, exp, sk: Buffer.from(o.key.publicKey).toString('base64'),
  };
  const body = `${PAIRING_PREFIX}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const sig = nacl.sign.detached(Buffer.from(body), o.key.secretKey);
  const record: PairingTokenRecord = {
    id, hash: sha256Hex(secret), segments: o.segments, endpoint: o.endpoint,
    createdAt: o.now.toISOString(), expiresAt: new Date(exp * 1000).toISOString(),
    ...(o.name !== undefined && { name: o.name }),
  };
  return { record, token: `${body}.${b64url(sig)}` };
}

function invalid(why: string): NeaError {
  return new NeaError('PAIRING_TOKEN_INVALID', `not a valid pairing token: ${why}`);
}

/**
 * Decodes a pairing token and checks its signature: against `signer` (the
 * SP's own key) when given, else against the key it carries. Throws
 * PAIRING_TOKEN_INVALID. Does not check expiry or use.
 */
export function decodePairingToken(token: string, signer?: Uint8Array): PairingPayload {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || parts[0] !== PAIRING_PREFIX) throw invalid(`expected ${PAIRING_PREFIX}.<payload>.<signature>`);
  const sig = Buffer.from(parts[2]!, 'base64url');
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw invalid('the payload is not JSON (a damaged copy?)');
  }
  const p = payload as Partial<PairingPayload> | null;
  if (p === null || typeof p !== 'object' || p.v !== 1 || typeof p.id !== 'string' || typeof p.s !== 'string' || typeof p.sp !== 'string' ||
    typeof p.ep !== 'string' || typeof p.api !== 'string' || typeof p.fp !== 'string' || !Array.isArray(p.seg) ||
    !p.seg.every((x) => Number.isInteger(x)) || typeof p.exp !== 'number' || typeof p.sk !== 'string') {
    throw invalid('fields missing or of the wrong type');
  }
  const key = signer ?? Buffer.from(p.sk, 'base64');
  if (sig.length !== 64 || key.length !== 32 || !nacl.sign.detached.verify(Buffer.from(`${parts[0]}.${parts[1]!}`), sig, key)) {
    throw invalid('bad signature');
  }
  return p as PairingPayload;
}

export type PairingState = 'unused' | 'used' | 'expired' | 'revoked';

export function pairingState(r: PairingTokenRecord, now: Date): PairingState {
  if (r.usedAt !== undefined) return 'used';
  if (r.revokedAt !== undefined) return 'revoked';
  if (Date.parse(r.expiresAt) <= now.getTime()) return 'expired';
  return 'unused';
}
