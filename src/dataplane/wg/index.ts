/**
 * nea's WireGuard protocol core: pure (no sockets, no timers, no clock of
 * its own), wire-compatible with WireGuard. The tunnel engine drives a
 * {@link Device}; see docs/protocol.md.
 *
 * Layers, bottom up:
 * - crypto.ts     HASH, MAC, HMAC, KDFn, DH, AEAD, XAEAD, key text
 * - noise.ts      generic Noise_IKpsk2 (checked against published vectors)
 * - messages.ts   the four message formats, strict decoders
 * - handshake.ts  WireGuard framing of the Noise messages
 * - cookie.ts     mac1 / mac2 / cookie replies; ratelimit.ts per-source limit
 * - tai64n.ts     timestamps and the per-peer initiation guard
 * - replay.ts     anti-replay window
 * - session.ts    keypairs (transport encrypt/decrypt) and their slots
 * - timers.ts     the timer state machine
 * - peer.ts, device.ts  the API the engine uses
 */
export {
  InvalidKeyError,
  LowOrderKeyError,
  decodeKey,
  encodeKey,
  generateKeyPair,
  generatePrivateKey,
  publicKeyOf,
  systemRandom,
  type KeyPair,
  type RandomFill,
} from './crypto.js';
export { sameEndpoint, type Endpoint } from './endpoint.js';
export {
  Device,
  type DeviceOptions,
  type DeviceOutput,
  type HandshakeDropReason,
  type HandshakeEvent,
  type HandshakeResult,
  type TransportDropReason,
  type TransportResult,
} from './device.js';
export { NO_ROOM, NO_SESSION, Peer, type PeerConfig, type PeerOutput } from './peer.js';
export {
  COOKIE_REPLY_BYTES,
  INITIATION_BYTES,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  RESPONSE_BYTES,
  TRANSPORT_HEADER_BYTES,
  TRANSPORT_MIN_BYTES,
  messageType,
  transportMessageLength,
} from './messages.js';
export { HandshakeRateLimiter } from './ratelimit.js';
export {
  KEEPALIVE_TIMEOUT_MS,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_MS,
} from './timers.js';
