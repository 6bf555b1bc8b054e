/**
 * The Noise_IKpsk2 handshake (Noise Protocol Framework rev. 34, §7.5 and
 * §9), generic in its protocol name, prologue, payloads and ephemeral keys,
 * with the 25519 / ChaChaPoly / BLAKE2s functions of {@link ./crypto.ts}.
 *
 * ```
 * IKpsk2:
 *   <- s
 *   ...
 *   -> e, es, s, ss        message 1: e (32) ‖ AEAD(s) (48) ‖ AEAD(payload) (n+16)
 *   <- e, ee, se, psk      message 2: e (32) ‖ AEAD(payload) (n+16)
 * ```
 *
 * With a psk modifier Noise also mixes each `e` into the chaining key
 * (MixKey(e.public)); WireGuard's equations do the same (C := KDF1(C, E)).
 * Every AEAD in the handshake uses nonce 0 with the running hash as
 * associated data, because each is done under a freshly derived key.
 *
 * WireGuard is this handshake with protocol name {@link WG_CONSTRUCTION},
 * prologue {@link WG_IDENTIFIER}, a 12-byte TAI64N payload in message 1 and
 * an empty payload in message 2; see handshake.ts for the framing.
 *
 * Functions return a result value instead of throwing: a failure (a
 * low-order point, a tag that does not verify, an unknown static key) is an
 * ordinary outcome for packets from the network.
 */
import {
  EMPTY_BYTES,
  KEY_BYTES,
  TAG_BYTES,
  aead,
  aeadOpen,
  hash,
  kdf1,
  kdf2,
  kdf3,
  publicKeyOf,
  x25519,
} from './crypto.js';

/** WireGuard's protocol name: Construction. */
export const WG_CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
/** WireGuard's prologue: Identifier. */
export const WG_IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';

/** Bytes of message 1 for a payload of `n` bytes. */
export function message1Length(payloadLength: number): number {
  return KEY_BYTES + KEY_BYTES + TAG_BYTES + payloadLength + TAG_BYTES;
}

/** Bytes of message 2 for a payload of `n` bytes. */
export function message2Length(payloadLength: number): number {
  return KEY_BYTES + payloadLength + TAG_BYTES;
}

/** The chaining key `ck` and handshake hash `h` (32 bytes each). */
export interface SymmetricState {
  readonly ck: Uint8Array;
  readonly h: Uint8Array;
}

export type NoiseFailure = 'bad-length' | 'low-order' | 'decrypt-failed' | 'unknown-static';

export type NoiseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: NoiseFailure };

function failure(reason: NoiseFailure): { ok: false; reason: NoiseFailure } {
  return { ok: false, reason };
}

const utf8 = new TextEncoder();

/**
 * InitializeSymmetric(protocolName), MixHash(prologue) and the IK
 * pre-message MixHash(responder static). Depends only on constants and the
 * responder's public key, so callers compute it once per responder key.
 */
export function ikPrelude(protocolName: string | Uint8Array, prologue: Uint8Array, responderStatic: Uint8Array): SymmetricState {
  const name = typeof protocolName === 'string' ? utf8.encode(protocolName) : protocolName;
  let h: Uint8Array;
  if (name.length <= KEY_BYTES) {
    h = new Uint8Array(KEY_BYTES);
    h.set(name);
  } else {
    h = hash(name);
  }
  const ck = h.slice();
  h = hash(h, prologue);
  h = hash(h, responderStatic);
  return { ck, h };
}

/** WireGuard's prelude for a responder key: Ci, and Hi = HASH(HASH(Ci ‖ Identifier) ‖ Spub_r). */
export function wireguardPrelude(responderStatic: Uint8Array): SymmetricState {
  return ikPrelude(WG_CONSTRUCTION, utf8.encode(WG_IDENTIFIER), responderStatic);
}

/** DH into a fresh buffer, or undefined for a low-order result. */
function dhOrFail(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  const out = new Uint8Array(KEY_BYTES);
  return x25519(out, privateKey, publicKey) ? out : undefined;
}

/** MixKey(ikm) keeping only the chaining key; wipes `ikm`. */
function mixKey1(ck: Uint8Array, ikm: Uint8Array): Uint8Array {
  const next = kdf1(ck, ikm);
  ikm.fill(0);
  return next;
}

/** MixKey(ikm) returning (ck, k); wipes `ikm`. */
function mixKey2(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const r = kdf2(ck, ikm);
  ikm.fill(0);
  return r;
}

// ---------------------------------------------------------------------------
// Message 1

export interface WriteMessage1Params {
  /** {@link ikPrelude} for the responder's static key; not modified. */
  readonly prelude: SymmetricState;
  readonly localStaticPublic: Uint8Array;
  readonly localStaticPrivate: Uint8Array;
  readonly remoteStaticPublic: Uint8Array;
  /** The ephemeral private key (random in production, fixed in test vectors). */
  readonly ephemeralPrivate: Uint8Array;
  /** DH(local static, remote static), if precomputed. */
  readonly staticStatic?: Uint8Array;
  readonly payload: Uint8Array;
  /** Receives the message at `offset`; needs {@link message1Length} bytes there. */
  readonly out: Uint8Array;
  readonly offset: number;
}

/** What the initiator keeps between message 1 and message 2. */
export interface InitiatorState extends SymmetricState {
  readonly ephemeralPrivate: Uint8Array;
  readonly ephemeralPublic: Uint8Array;
}

/** Initiator: -> e, es, s, ss, payload. */
export function writeMessage1(p: WriteMessage1Params): NoiseResult<InitiatorState> {
  let ck = p.prelude.ck;
  let h = p.prelude.h;
  let at = p.offset;
  const ephemeralPublic = publicKeyOf(p.ephemeralPrivate);

  // e
  h = hash(h, ephemeralPublic);
  ck = kdf1(ck, ephemeralPublic);
  p.out.set(ephemeralPublic, at);
  at += KEY_BYTES;

  // es
  const es = dhOrFail(p.ephemeralPrivate, p.remoteStaticPublic);
  if (!es) return failure('low-order');
  let k: Uint8Array;
  [ck, k] = mixKey2(ck, es);

  // s
  const encryptedStatic = aead(k, 0, p.localStaticPublic, h);
  k.fill(0);
  p.out.set(encryptedStatic, at);
  at += encryptedStatic.length;
  h = hash(h, encryptedStatic);

  // ss
  const ss = p.staticStatic ? p.staticStatic.slice() : dhOrFail(p.localStaticPrivate, p.remoteStaticPublic);
  if (!ss) return failure('low-order');
  [ck, k] = mixKey2(ck, ss);

  // payload
  const encryptedPayload = aead(k, 0, p.payload, h);
  k.fill(0);
  p.out.set(encryptedPayload, at);
  h = hash(h, encryptedPayload);

  return { ok: true, value: { ck, h, ephemeralPrivate: p.ephemeralPrivate, ephemeralPublic } };
}

/** What the responder learns from message 1 and keeps for message 2. */
export interface ResponderState<P> extends SymmetricState {
  readonly remoteEphemeral: Uint8Array;
  readonly remoteStatic: Uint8Array;
  readonly payload: Uint8Array;
  /** What `resolve` returned for the initiator's static key. */
  readonly context: P;
}

export interface ReadMessage1Params<P> {
  /** {@link ikPrelude} for the local (responder) static key. */
  readonly prelude: SymmetricState;
  readonly localStaticPrivate: Uint8Array;
  /** Exactly the Noise message (no framing). */
  readonly message: Uint8Array;
  /**
   * Called with the initiator's decrypted static key: who is it? Return
   * undefined to refuse an unknown key (before the second DH).
   */
  readonly resolve: (initiatorStatic: Uint8Array) => { readonly context: P; readonly staticStatic?: Uint8Array } | undefined;
}

/** Responder: reads -> e, es, s, ss, payload. */
export function readMessage1<P>(p: ReadMessage1Params<P>): NoiseResult<ResponderState<P>> {
  const m = p.message;
  if (m.length < message1Length(0)) return failure('bad-length');
  let ck = p.prelude.ck;
  let h = p.prelude.h;

  // e
  const remoteEphemeral = m.slice(0, KEY_BYTES);
  h = hash(h, remoteEphemeral);
  ck = kdf1(ck, remoteEphemeral);

  // es
  const es = dhOrFail(p.localStaticPrivate, remoteEphemeral);
  if (!es) return failure('low-order');
  let k: Uint8Array;
  [ck, k] = mixKey2(ck, es);

  // s
  const encryptedStatic = m.subarray(KEY_BYTES, KEY_BYTES + KEY_BYTES + TAG_BYTES);
  const remoteStatic = aeadOpen(k, 0, encryptedStatic, h);
  k.fill(0);
  if (!remoteStatic) return failure('decrypt-failed');
  h = hash(h, encryptedStatic);

  const who = p.resolve(remoteStatic);
  if (!who) return failure('unknown-static');

  // ss
  const ss = who.staticStatic ? who.staticStatic.slice() : dhOrFail(p.localStaticPrivate, remoteStatic);
  if (!ss) return failure('low-order');
  [ck, k] = mixKey2(ck, ss);

  // payload
  const encryptedPayload = m.subarray(KEY_BYTES + KEY_BYTES + TAG_BYTES);
  const payload = aeadOpen(k, 0, encryptedPayload, h);
  k.fill(0);
  if (!payload) return failure('decrypt-failed');
  h = hash(h, encryptedPayload);

  return { ok: true, value: { ck, h, remoteEphemeral, remoteStatic, payload, context: who.context } };
}

// ---------------------------------------------------------------------------
// Message 2

export interface WriteMessage2Params {
  /** The state {@link readMessage1} returned. */
  readonly state: SymmetricState & { readonly remoteEphemeral: Uint8Array; readonly remoteStatic: Uint8Array };
  readonly ephemeralPrivate: Uint8Array;
  /** 32 bytes; all zeros when no preshared key is configured. */
  readonly psk: Uint8Array;
  readonly payload: Uint8Array;
  /** Receives the message at `offset`; needs {@link message2Length} bytes there. */
  readonly out: Uint8Array;
  readonly offset: number;
}

/** The final handshake state: `ck` feeds {@link split}, `h` is the handshake hash. */
export interface CompletedHandshake extends SymmetricState {
  readonly ephemeralPublic: Uint8Array;
}

/** Responder: <- e, ee, se, psk, payload. */
export function writeMessage2(p: WriteMessage2Params): NoiseResult<CompletedHandshake> {
  let ck = p.state.ck;
  let h = p.state.h;
  const ephemeralPublic = publicKeyOf(p.ephemeralPrivate);

  // e
  h = hash(h, ephemeralPublic);
  ck = kdf1(ck, ephemeralPublic);
  p.out.set(ephemeralPublic, p.offset);

  // ee, se
  const ee = dhOrFail(p.ephemeralPrivate, p.state.remoteEphemeral);
  if (!ee) return failure('low-order');
  ck = mixKey1(ck, ee);
  const se = dhOrFail(p.ephemeralPrivate, p.state.remoteStatic);
  if (!se) return failure('low-order');
  ck = mixKey1(ck, se);

  // psk
  const [ck2, tau, k] = kdf3(ck, p.psk);
  ck = ck2;
  h = hash(h, tau);

  // payload
  const encryptedPayload = aead(k, 0, p.payload, h);
  k.fill(0);
  p.out.set(encryptedPayload, p.offset + KEY_BYTES);
  h = hash(h, encryptedPayload);

  return { ok: true, value: { ck, h, ephemeralPublic } };
}

export interface ReadMessage2Params {
  readonly state: InitiatorState;
  readonly localStaticPrivate: Uint8Array;
  readonly psk: Uint8Array;
  /** Exactly the Noise message (no framing). */
  readonly message: Uint8Array;
}

/** Initiator: reads <- e, ee, se, psk, payload. */
export function readMessage2(p: ReadMessage2Params): NoiseResult<CompletedHandshake & { readonly payload: Uint8Array }> {
  const m = p.message;
  if (m.length < message2Length(0)) return failure('bad-length');
  let ck = p.state.ck;
  let h = p.state.h;

  // e
  const remoteEphemeral = m.slice(0, KEY_BYTES);
  h = hash(h, remoteEphemeral);
  ck = kdf1(ck, remoteEphemeral);

  // ee, se
  const ee = dhOrFail(p.state.ephemeralPrivate, remoteEphemeral);
  if (!ee) return failure('low-order');
  ck = mixKey1(ck, ee);
  const se = dhOrFail(p.localStaticPrivate, remoteEphemeral);
  if (!se) return failure('low-order');
  ck = mixKey1(ck, se);

  // psk
  const [ck2, tau, k] = kdf3(ck, p.psk);
  ck = ck2;
  h = hash(h, tau);

  // payload
  const encryptedPayload = m.subarray(KEY_BYTES);
  const payload = aeadOpen(k, 0, encryptedPayload, h);
  k.fill(0);
  if (!payload) return failure('decrypt-failed');
  h = hash(h, encryptedPayload);

  return { ok: true, value: { ck, h, ephemeralPublic: remoteEphemeral, payload } };
}

/**
 * Split(): the two transport keys. The first encrypts initiator → responder,
 * the second responder → initiator.
 */
export function split(ck: Uint8Array): [initiatorToResponder: Uint8Array, responderToInitiator: Uint8Array] {
  return kdf2(ck, EMPTY_BYTES);
}
