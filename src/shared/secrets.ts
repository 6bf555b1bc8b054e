/**
 * Bearer secrets, shared by the appliance's and the control plane's APIs.
 *
 * Secrets are 32 random bytes; only SHA-256(secret) is stored (a fast hash
 * is right for high-entropy secrets; a slow password hash buys nothing).
 * Each token names its record by a public id, so a check is one lookup and
 * one constant-time comparison of hashes; an unknown id is compared against
 * a dummy hash, so the time does not tell whether an id exists.
 * Token text: `nea_<id>_<secret>` (id 12, secret 43 base64url characters).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
const DUMMY_HASH = Buffer.from(sha256Hex('nea-dummy'), 'hex');

/** Compares SHA-256(secret) with a stored hex hash in constant time. */
export function secretMatches(secret: string, storedHex: string | undefined): boolean {
  const got = createHash('sha256').update(secret).digest();
  const want = storedHex === undefined ? DUMMY_HASH : Buffer.from(storedHex, 'hex');
  const equal = want.length === got.length && timingSafeEqual(got, want);
  return equal && storedHex !== undefined;
}

/** A public record id: 9 random bytes, base64url (12 characters). */
export function newId(): string {
  return b64url(randomBytes(9));
}

/** A new bearer token: its id, its text (shown once) and the hash to store. */
export function newBearer(): { id: string; token: string; hash: string } {
  const id = newId();
  const secret = b64url(randomBytes(32));
  return { id, token: `nea_${id}_${secret}`, hash: sha256Hex(secret) };
}

const BEARER_RE = /^Bearer nea_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43})$/;

/**
 * Splits an `Authorization` header into id and secret; undefined when it is
 * not a well-formed nea bearer token (after the same hashing work as a
 * well-formed one).
 */
export function parseBearer(header: string): { id: string; secret: string } | undefined {
  const m = BEARER_RE.exec(header);
  if (!m) {
    secretMatches('', undefined);
    return undefined;
  }
  return { id: m[1]!, secret: m[2]! };
}
