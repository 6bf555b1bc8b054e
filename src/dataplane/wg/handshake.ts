/**
 * WireGuard's framing of the Noise_IKpsk2 messages (whitepaper §5.4.2,
 * §5.4.3): the generic Noise message sits inside the WireGuard message
 * between a small header and mac1 ‖ mac2.
 *
 * ```
 * initiation: type(1) 000 | sender | [ e 32 | AEAD(s) 48 | AEAD(TAI64N) 28 ] | mac1 | mac2
 * response:   type(2) 000 | sender | receiver | [ e 32 | AEAD(ε) 16 ]       | mac1 | mac2
 * ```
 *
 * These functions build and read the bytes; they keep no state and never
 * throw on input from the network. MACs are added by the caller
 * (cookie.ts), which owns the cookie state.
 */
import { EMPTY_BYTES, KEY_BYTES } from './crypto.js';
import {
  INITIATION,
  INITIATION_BYTES,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  RESPONSE,
  RESPONSE_BYTES,
  writeU32,
  type InitiationMessage,
  type ResponseMessage,
} from './messages.js';
import {
  readMessage1,
  readMessage2,
  writeMessage1,
  writeMessage2,
  type CompletedHandshake,
  type InitiatorState,
  type NoiseResult,
  type ReadMessage1Params,
  type ResponderState,
  type SymmetricState,
} from './noise.js';
import { TAI64N_BYTES } from './tai64n.js';

export interface CreateInitiationParams {
  /** wireguardPrelude(responder's public key). */
  readonly prelude: SymmetricState;
  readonly localStaticPrivate: Uint8Array;
  readonly localStaticPublic: Uint8Array;
  readonly remoteStaticPublic: Uint8Array;
  /** DH(local static, remote static), precomputed per peer. */
  readonly staticStatic: Uint8Array;
  readonly senderIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  /** TAI64N, 12 bytes. */
  readonly timestamp: Uint8Array;
}

/** A 148-byte initiation with zero MACs, and the state to read the response with. */
export function createInitiation(p: CreateInitiationParams): NoiseResult<{ readonly bytes: Uint8Array; readonly state: InitiatorState }> {
  if (p.timestamp.length !== TAI64N_BYTES) return { ok: false, reason: 'bad-length' };
  const bytes = new Uint8Array(INITIATION_BYTES);
  bytes[0] = MESSAGE_INITIATION;
  writeU32(bytes, INITIATION.sender, p.senderIndex);
  const r = writeMessage1({
    prelude: p.prelude,
    localStaticPublic: p.localStaticPublic,
    localStaticPrivate: p.localStaticPrivate,
    remoteStaticPublic: p.remoteStaticPublic,
    ephemeralPrivate: p.ephemeralPrivate,
    staticStatic: p.staticStatic,
    payload: p.timestamp,
    out: bytes,
    offset: INITIATION.ephemeral,
  });
  return r.ok ? { ok: true, value: { bytes, state: r.value } } : r;
}

/**
 * Reads a decoded initiation (whose mac1 the caller has already checked).
 * The payload of a successful result is the 12-byte TAI64N timestamp.
 */
export function consumeInitiation<P>(
  msg: InitiationMessage,
  p: Omit<ReadMessage1Params<P>, 'message'>,
): NoiseResult<ResponderState<P>> {
  return readMessage1({ ...p, message: msg.bytes.subarray(INITIATION.ephemeral, INITIATION.mac1) });
}

export interface CreateResponseParams {
  readonly state: ResponderState<unknown>;
  readonly senderIndex: number;
  /** The initiator's sender index. */
  readonly receiverIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  /** 32 bytes; zeros without a preshared key. */
  readonly psk: Uint8Array;
}

/** A 92-byte response with zero MACs, and the completed handshake. */
export function createResponse(p: CreateResponseParams): NoiseResult<{ readonly bytes: Uint8Array; readonly handshake: CompletedHandshake }> {
  const bytes = new Uint8Array(RESPONSE_BYTES);
  bytes[0] = MESSAGE_RESPONSE;
  writeU32(bytes, RESPONSE.sender, p.senderIndex);
  writeU32(bytes, RESPONSE.receiver, p.receiverIndex);
  const r = writeMessage2({ state: p.state, ephemeralPrivate: p.ephemeralPrivate, psk: p.psk, payload: EMPTY_BYTES, out: bytes, offset: RESPONSE.ephemeral });
  return r.ok ? { ok: true, value: { bytes, handshake: r.value } } : r;
}

/** Reads a decoded response (mac1 already checked) against the initiator's state. */
export function consumeResponse(
  msg: ResponseMessage,
  state: InitiatorState,
  localStaticPrivate: Uint8Array,
  psk: Uint8Array,
): NoiseResult<CompletedHandshake> {
  return readMessage2({ state, localStaticPrivate, psk, message: msg.bytes.subarray(RESPONSE.ephemeral, RESPONSE.mac1) });
}

/** 32 zero bytes: the psk when none is configured. */
export function noPresharedKey(): Uint8Array {
  return new Uint8Array(KEY_BYTES);
}
