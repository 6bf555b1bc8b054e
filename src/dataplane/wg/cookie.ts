/**
 * mac1, mac2 and cookies: WireGuard's defence of the responder's CPU
 * (whitepaper §5.3, §5.4.4, §5.4.7).
 *
 * Every handshake message ends in mac1 ‖ mac2 (16 bytes each):
 * - mac1 = MAC(HASH("mac1----" ‖ receiver's static public key), message up to mac1).
 *   It proves the sender knows the receiver's public key. The receiver checks
 *   it before any Diffie-Hellman and silently drops the message if it fails.
 * - mac2 = MAC(cookie, message up to mac2), or zeros without a cookie.
 *
 * Under load (the engine decides, e.g. many queued handshakes) the responder
 * answers a message that has a valid mac1 but no valid mac2 with a cookie
 * reply instead of processing it. The cookie is MAC(secret, source address ‖
 * port) with a secret replaced every {@link COOKIE_SECRET_LIFETIME_MS}; it is
 * sent encrypted under HASH("cookie--" ‖ responder's public key) with the
 * answered message's mac1 as associated data, so only the sender of that
 * message can use it. The sender stores it for {@link COOKIE_LIFETIME_MS} and
 * puts mac2 on its next messages; from then on it costs the attacker a
 * round trip from a real address per handshake attempt.
 */
import {
  MAC_BYTES,
  XNONCE_BYTES,
  constantTimeEqual,
  hash,
  mac,
  systemRandom,
  xaead,
  xaeadOpen,
  type RandomFill,
} from './crypto.js';
import { endpointBytes, type Endpoint } from './endpoint.js';
import { encodeCookieReply, type CookieReplyMessage } from './messages.js';

/** The responder's cookie secret is replaced after this many ms. */
export const COOKIE_SECRET_LIFETIME_MS = 120_000;
/** A received cookie is used for mac2 for this many ms. */
export const COOKIE_LIFETIME_MS = 120_000;

const LABEL_MAC1 = new TextEncoder().encode('mac1----');
const LABEL_COOKIE = new TextEncoder().encode('cookie--');

/** HASH("mac1----" ‖ publicKey): the key of mac1 on messages sent to `publicKey`. */
export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(LABEL_MAC1, publicKey);
}

/** HASH("cookie--" ‖ publicKey): the key of cookie replies sent by `publicKey`. */
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(LABEL_COOKIE, publicKey);
}

/** Offset of mac1 in a handshake message of this length. */
function mac1At(length: number): number {
  return length - 2 * MAC_BYTES;
}

/** The receiving side: verifies mac1/mac2 and issues cookie replies. */
export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private readonly secret = new Uint8Array(32);
  private secretAt = Number.NEGATIVE_INFINITY;

  /** `localPublicKey`: this device's static public key. */
  constructor(localPublicKey: Uint8Array, private readonly random: RandomFill = systemRandom) {
    this.mac1Key = mac1Key(localPublicKey);
    this.cookieKey = cookieKey(localPublicKey);
  }

  /** Is mac1 of this handshake message (initiation or response) valid? Cheap: one keyed BLAKE2s. */
  checkMac1(message: Uint8Array): boolean {
    if (message.length < 2 * MAC_BYTES) return false;
    const at = mac1At(message.length);
    const expected = mac(this.mac1Key, message.subarray(0, at));
    return constantTimeEqual(expected, message.subarray(at, at + MAC_BYTES));
  }

  /** Is mac2 valid for the cookie `src` would hold now? (`now`: monotonic ms.) */
  checkMac2(message: Uint8Array, src: Endpoint, now: number): boolean {
    if (message.length < 2 * MAC_BYTES) return false;
    const at = message.length - MAC_BYTES;
    const expected = mac(this.cookieFor(src, now), message.subarray(0, at));
    return constantTimeEqual(expected, message.subarray(at));
  }

  /**
   * A cookie reply (64 bytes) to `message`, whose sender index is
   * `senderIndex`, for the source it came from. Call only for a message whose
   * mac1 is valid.
   */
  createReply(message: Uint8Array, senderIndex: number, src: Endpoint, now: number): Uint8Array {
    const at = mac1At(message.length);
    const nonce = new Uint8Array(XNONCE_BYTES);
    this.random(nonce);
    const encryptedCookie = xaead(this.cookieKey, nonce, this.cookieFor(src, now), message.subarray(at, at + MAC_BYTES));
    return encodeCookieReply({ receiverIndex: senderIndex, nonce, encryptedCookie });
  }

  private cookieFor(src: Endpoint, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_SECRET_LIFETIME_MS) {
      this.random(this.secret);
      this.secretAt = now;
    }
    return mac(this.secret, endpointBytes(src));
  }
}

/** The sending side, one per peer: writes mac1/mac2 and takes in cookie replies. */
export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | undefined;
  private cookieAt = Number.NEGATIVE_INFINITY;
  private lastMac1: Uint8Array | undefined;

  /** `remotePublicKey`: the static public key of the peer messages go to. */
  constructor(remotePublicKey: Uint8Array) {
    this.mac1Key = mac1Key(remotePublicKey);
    this.cookieKey = cookieKey(remotePublicKey);
  }

  /** Fills the last 32 bytes of `message` (mac1, then mac2 or zeros) and remembers mac1 for a cookie reply. */
  addMacs(message: Uint8Array, now: number): void {
    const at = mac1At(message.length);
    const m1 = mac(this.mac1Key, message.subarray(0, at));
    message.set(m1, at);
    this.lastMac1 = m1;
    const m2At = at + MAC_BYTES;
    if (this.cookie && now - this.cookieAt < COOKIE_LIFETIME_MS) {
      message.set(mac(this.cookie, message.subarray(0, m2At)), m2At);
    } else {
      message.fill(0, m2At);
    }
  }

  /**
   * Takes in a cookie reply to the last message sent. Returns false (and
   * changes nothing) unless it decrypts with that message's mac1.
   */
  consumeReply(reply: CookieReplyMessage, now: number): boolean {
    if (!this.lastMac1) return false;
    const cookie = xaeadOpen(this.cookieKey, reply.nonce, reply.encryptedCookie, this.lastMac1);
    if (!cookie || cookie.length !== MAC_BYTES) return false;
    this.cookie = cookie;
    this.cookieAt = now;
    this.lastMac1 = undefined;
    return true;
  }

  /** Whether a stored cookie will be used for mac2 at `now`. */
  hasCookie(now: number): boolean {
    return this.cookie !== undefined && now - this.cookieAt < COOKIE_LIFETIME_MS;
  }
}
