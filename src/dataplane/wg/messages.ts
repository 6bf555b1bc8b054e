/**
 * WireGuard's four UDP message formats (whitepaper §5.4). All integers are
 * little-endian. The first four bytes are the type as a 32-bit word: one
 * type byte and three reserved bytes that must be zero.
 *
 * ```
 * 1 initiation (148 B)  type | sender | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
 * 2 response   (92 B)   type | sender | receiver | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
 * 3 cookie     (64 B)   type | receiver | nonce 24 | cookie 16+16
 * 4 transport  (≥32 B)  type | receiver | counter u64 | ciphertext (padded payload)+16
 * ```
 *
 * Decoders never throw and never copy: a decoded message holds views into
 * the datagram it came from, valid as long as the caller keeps that buffer
 * unchanged. Lengths are checked exactly (handshake messages) or as a
 * minimum (transport); anything else is a {@link DecodeFailure}.
 */

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_BYTES = 148;
export const RESPONSE_BYTES = 92;
export const COOKIE_REPLY_BYTES = 64;
/** Type, receiver index and counter. */
export const TRANSPORT_HEADER_BYTES = 16;
/** A keepalive: header and the tag of an empty payload. */
export const TRANSPORT_MIN_BYTES = TRANSPORT_HEADER_BYTES + 16;
/** Transport payloads are zero-padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;

/** Byte offsets inside an initiation. */
export const INITIATION = {
  sender: 4,
  ephemeral: 8,
  encryptedStatic: 40,
  encryptedTimestamp: 88,
  mac1: 116,
  mac2: 132,
} as const;

/** Byte offsets inside a response. */
export const RESPONSE = {
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  encryptedNothing: 44,
  mac1: 60,
  mac2: 76,
} as const;

/** Byte offsets inside a cookie reply. */
export const COOKIE_REPLY = {
  receiver: 4,
  nonce: 8,
  encryptedCookie: 32,
} as const;

/** Byte offsets inside a transport message. */
export const TRANSPORT = {
  receiver: 4,
  counter: 8,
  ciphertext: 16,
} as const;

export interface InitiationMessage {
  readonly type: typeof MESSAGE_INITIATION;
  readonly bytes: Uint8Array;
  readonly senderIndex: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedStatic: Uint8Array;
  readonly encryptedTimestamp: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

export interface ResponseMessage {
  readonly type: typeof MESSAGE_RESPONSE;
  readonly bytes: Uint8Array;
  readonly senderIndex: number;
  readonly receiverIndex: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedNothing: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

export interface CookieReplyMessage {
  readonly type: typeof MESSAGE_COOKIE_REPLY;
  readonly bytes: Uint8Array;
  readonly receiverIndex: number;
  readonly nonce: Uint8Array;
  readonly encryptedCookie: Uint8Array;
}

export interface TransportMessage {
  readonly type: typeof MESSAGE_TRANSPORT;
  readonly bytes: Uint8Array;
  readonly receiverIndex: number;
  /** Low and high 32 bits of the 64-bit counter. */
  readonly counterLo: number;
  readonly counterHi: number;
  readonly ciphertext: Uint8Array;
}

export type Message = InitiationMessage | ResponseMessage | CookieReplyMessage | TransportMessage;

/** Why a datagram is not a well-formed WireGuard message. */
export type DecodeFailure = 'too-short' | 'unknown-type' | 'reserved-not-zero' | 'wrong-type' | 'bad-length';

export type Decoded<T> = { readonly ok: true; readonly message: T } | { readonly ok: false; readonly reason: DecodeFailure };

/** Reads a little-endian uint32. The caller guarantees `o + 4 ≤ b.length`. */
export function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = v >>> 24;
}

/**
 * The message type of a datagram (1..4), or 0 when it is shorter than four
 * bytes, its type is unknown or its reserved bytes are not zero.
 */
export function messageType(b: Uint8Array): number {
  if (b.length < 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 0;
  const t = b[0]!;
  return t >= MESSAGE_INITIATION && t <= MESSAGE_TRANSPORT ? t : 0;
}

function headerFailure(b: Uint8Array): DecodeFailure {
  if (b.length < 4) return 'too-short';
  if (b[0]! < MESSAGE_INITIATION || b[0]! > MESSAGE_TRANSPORT) return 'unknown-type';
  return 'reserved-not-zero';
}

function fail(reason: DecodeFailure): { ok: false; reason: DecodeFailure } {
  return { ok: false, reason };
}

export function decodeInitiation(b: Uint8Array): Decoded<InitiationMessage> {
  if (messageType(b) !== MESSAGE_INITIATION) return fail(messageType(b) === 0 ? headerFailure(b) : 'wrong-type');
  if (b.length !== INITIATION_BYTES) return fail('bad-length');
  return {
    ok: true,
    message: {
      type: MESSAGE_INITIATION,
      bytes: b,
      senderIndex: readU32(b, INITIATION.sender),
      ephemeral: b.subarray(INITIATION.ephemeral, INITIATION.encryptedStatic),
      encryptedStatic: b.subarray(INITIATION.encryptedStatic, INITIATION.encryptedTimestamp),
      encryptedTimestamp: b.subarray(INITIATION.encryptedTimestamp, INITIATION.mac1),
      mac1: b.subarray(INITIATION.mac1, INITIATION.mac2),
      mac2: b.subarray(INITIATION.mac2, INITIATION_BYTES),
    },
  };
}

export function decodeResponse(b: Uint8Array): Decoded<ResponseMessage> {
  if (messageType(b) !== MESSAGE_RESPONSE) return fail(messageType(b) === 0 ? headerFailure(b) : 'wrong-type');
  if (b.length !== RESPONSE_BYTES) return fail('bad-length');
  return {
    ok: true,
    message: {
      type: MESSAGE_RESPONSE,
      bytes: b,
      senderIndex: readU32(b, RESPONSE.sender),
      receiverIndex: readU32(b, RESPONSE.receiver),
      ephemeral: b.subarray(RESPONSE.ephemeral, RESPONSE.encryptedNothing),
      encryptedNothing: b.subarray(RESPONSE.encryptedNothing, RESPONSE.mac1),
      mac1: b.subarray(RESPONSE.mac1, RESPONSE.mac2),
      mac2: b.subarray(RESPONSE.mac2, RESPONSE_BYTES),
    },
  };
}

export function decodeCookieReply(b: Uint8Array): Decoded<CookieReplyMessage> {
  if (messageType(b) !== MESSAGE_COOKIE_REPLY) return fail(messageType(b) === 0 ? headerFailure(b) : 'wrong-type');
  if (b.length !== COOKIE_REPLY_BYTES) return fail('bad-length');
  return {
    ok: true,
    message: {
      type: MESSAGE_COOKIE_REPLY,
      bytes: b,
      receiverIndex: readU32(b, COOKIE_REPLY.receiver),
      nonce: b.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.encryptedCookie),
      encryptedCookie: b.subarray(COOKIE_REPLY.encryptedCookie, COOKIE_REPLY_BYTES),
    },
  };
}

export function decodeTransport(b: Uint8Array): Decoded<TransportMessage> {
  if (messageType(b) !== MESSAGE_TRANSPORT) return fail(messageType(b) === 0 ? headerFailure(b) : 'wrong-type');
  if (b.length < TRANSPORT_MIN_BYTES) return fail('bad-length');
  return {
    ok: true,
    message: {
      type: MESSAGE_TRANSPORT,
      bytes: b,
      receiverIndex: readU32(b, TRANSPORT.receiver),
      counterLo: readU32(b, TRANSPORT.counter),
      counterHi: readU32(b, TRANSPORT.counter + 4),
      ciphertext: b.subarray(TRANSPORT.ciphertext),
    },
  };
}

/** Decodes any of the four messages. */
export function decodeMessage(b: Uint8Array): Decoded<Message> {
  switch (messageType(b)) {
    case MESSAGE_INITIATION:
      return decodeInitiation(b);
    case MESSAGE_RESPONSE:
      return decodeResponse(b);
    case MESSAGE_COOKIE_REPLY:
      return decodeCookieReply(b);
    case MESSAGE_TRANSPORT:
      return decodeTransport(b);
    default:
      return fail(headerFailure(b));
  }
}

// ---------------------------------------------------------------------------
// Encoding

function header(size: number, type: number): Uint8Array {
  const b = new Uint8Array(size);
  b[0] = type;
  return b;
}

function put(b: Uint8Array, at: number, field: Uint8Array, len: number, what: string): void {
  if (field.length !== len) throw new RangeError(`${what} must be ${len} bytes, got ${field.length}`);
  b.set(field, at);
}

export interface InitiationFields {
  senderIndex: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1?: Uint8Array;
  mac2?: Uint8Array;
}

/** A 148-byte initiation; absent MACs are left zero. Throws RangeError on wrong field sizes (a programming error). */
export function encodeInitiation(f: InitiationFields): Uint8Array {
  const b = header(INITIATION_BYTES, MESSAGE_INITIATION);
  writeU32(b, INITIATION.sender, f.senderIndex);
  put(b, INITIATION.ephemeral, f.ephemeral, 32, 'ephemeral');
  put(b, INITIATION.encryptedStatic, f.encryptedStatic, 48, 'encrypted static');
  put(b, INITIATION.encryptedTimestamp, f.encryptedTimestamp, 28, 'encrypted timestamp');
  if (f.mac1) put(b, INITIATION.mac1, f.mac1, 16, 'mac1');
  if (f.mac2) put(b, INITIATION.mac2, f.mac2, 16, 'mac2');
  return b;
}

export interface ResponseFields {
  senderIndex: number;
  receiverIndex: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1?: Uint8Array;
  mac2?: Uint8Array;
}

/** A 92-byte response; absent MACs are left zero. */
export function encodeResponse(f: ResponseFields): Uint8Array {
  const b = header(RESPONSE_BYTES, MESSAGE_RESPONSE);
  writeU32(b, RESPONSE.sender, f.senderIndex);
  writeU32(b, RESPONSE.receiver, f.receiverIndex);
  put(b, RESPONSE.ephemeral, f.ephemeral, 32, 'ephemeral');
  put(b, RESPONSE.encryptedNothing, f.encryptedNothing, 16, 'encrypted nothing');
  if (f.mac1) put(b, RESPONSE.mac1, f.mac1, 16, 'mac1');
  if (f.mac2) put(b, RESPONSE.mac2, f.mac2, 16, 'mac2');
  return b;
}

export interface CookieReplyFields {
  receiverIndex: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}

export function encodeCookieReply(f: CookieReplyFields): Uint8Array {
  const b = header(COOKIE_REPLY_BYTES, MESSAGE_COOKIE_REPLY);
  writeU32(b, COOKIE_REPLY.receiver, f.receiverIndex);
  put(b, COOKIE_REPLY.nonce, f.nonce, 24, 'nonce');
  put(b, COOKIE_REPLY.encryptedCookie, f.encryptedCookie, 32, 'encrypted cookie');
  return b;
}

/** Writes the 16-byte transport header (type 4, receiver index, counter) at the start of `out`. */
export function writeTransportHeader(out: Uint8Array, receiverIndex: number, counterLo: number, counterHi: number): void {
  out[0] = MESSAGE_TRANSPORT;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  writeU32(out, TRANSPORT.receiver, receiverIndex);
  writeU32(out, TRANSPORT.counter, counterLo);
  writeU32(out, TRANSPORT.counter + 4, counterHi);
}

/**
 * The length a payload is padded to before encryption: the next multiple of
 * 16, but never beyond `limit` (the tunnel MTU) when the payload itself fits
 * under it. A keepalive (0) stays 0.
 */
export function paddedLength(payloadLength: number, limit = Number.POSITIVE_INFINITY): number {
  const padded = (payloadLength + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > limit && payloadLength <= limit) return limit;
  return padded;
}

/** Bytes of a transport message carrying a payload of this length. */
export function transportMessageLength(payloadLength: number, limit = Number.POSITIVE_INFINITY): number {
  return TRANSPORT_HEADER_BYTES + paddedLength(payloadLength, limit) + 16;
}
