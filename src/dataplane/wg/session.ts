/**
 * Transport keypairs and the per-peer slots that hold them (whitepaper §5.4.6,
 * §6.1).
 *
 * A {@link Keypair} is what one handshake yields: a sending and a receiving
 * key, our index (the peer writes it as "receiver" on packets to us) and the
 * peer's, a 64-bit send counter and an anti-replay window. Its age limits
 * and counter limits are WireGuard's (timers.ts).
 *
 * A peer holds up to three ({@link KeypairSlots}):
 * - `current`: used to send; also accepted on receive.
 * - `previous`: the one `current` replaced; kept so packets already in
 *   flight under it still decrypt (no loss across a rekey).
 * - `next`: the responder's new keypair, not used to send until the
 *   initiator proves it has it by sending a packet under it (the whitepaper's
 *   key confirmation); that packet promotes it to `current`.
 *
 * Hot path: {@link Keypair.seal} and {@link Keypair.open} write into
 * caller-owned buffers, reuse one nonce buffer each and allocate nothing but
 * subarray views.
 */
import { native } from '../../native/index.js';
import { NONCE_BYTES, TAG_BYTES, aeadDecryptInto, aeadEncryptInto, setNonceCounter } from './crypto.js';
import { MESSAGE_TRANSPORT, TRANSPORT, TRANSPORT_HEADER_BYTES, paddedLength, readU32, writeTransportHeader } from './messages.js';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO, ReplayWindow, counterExhausted } from './replay.js';
import { REJECT_AFTER_TIME_MS, REKEY_AFTER_TIME_MS, REKEY_ON_RECEIVE_AGE_MS } from './timers.js';

/** 2^60 as the high half of a 64-bit counter (low half 0). */
const REKEY_AFTER_MESSAGES_HI = 0x1000_0000;

/** Why {@link Keypair.seal} refused: the key is too old or used up. */
export const SEAL_EXPIRED = -1;
/** Why {@link Keypair.seal} refused: `out` is too small. */
export const SEAL_NO_ROOM = -2;

/** Why {@link Keypair.open} refused. */
export type OpenFailure = 'expired' | 'replay' | 'auth-failed' | 'too-short' | 'no-room';

export class Keypair {
  /** Next send counter, low and high 32 bits. Only tests set these directly. */
  sendCounterLo = 0;
  sendCounterHi = 0;
  readonly replay = new ReplayWindow();
  private readonly sendNonce = new Uint8Array(NONCE_BYTES);
  private readonly recvNonce = new Uint8Array(NONCE_BYTES);
  private readonly sendKey: Uint8Array;
  private readonly recvKey: Uint8Array;

  /**
   * @param localIndex our index: the receiver field of packets sent to us under this key
   * @param remoteIndex the peer's index: the receiver field we write
   * @param isInitiator whether we initiated the handshake that made this key
   * @param createdAt monotonic ms when the keys were derived
   */
  constructor(
    readonly localIndex: number,
    readonly remoteIndex: number,
    sendKey: Uint8Array,
    recvKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly createdAt: number,
  ) {
    this.sendKey = sendKey;
    this.recvKey = recvKey;
  }

  /** Whether the key may still send at `now`: younger than REJECT_AFTER_TIME and counter below REJECT_AFTER_MESSAGES. */
  canSend(now: number): boolean {
    return now - this.createdAt < REJECT_AFTER_TIME_MS && !counterExhausted(this.sendCounterLo, this.sendCounterHi);
  }

  /** Whether packets under this key are still accepted at `now`. */
  canReceive(now: number): boolean {
    return now - this.createdAt < REJECT_AFTER_TIME_MS;
  }

  /**
   * Sending-side freshness: after 2^60 messages, or (initiator only) after
   * REKEY_AFTER_TIME, a new handshake should start.
   */
  wantsRekeyOnSend(now: number): boolean {
    return this.sendCounterHi >= REKEY_AFTER_MESSAGES_HI || (this.isInitiator && now - this.createdAt >= REKEY_AFTER_TIME_MS);
  }

  /** Receiving-side freshness: the initiator rekeys when receiving on a key older than 165 s. */
  wantsRekeyOnReceive(now: number): boolean {
    return this.isInitiator && now - this.createdAt >= REKEY_ON_RECEIVE_AGE_MS;
  }

  /**
   * Encrypts `payload` as one transport message into `out` and returns its
   * length, or {@link SEAL_EXPIRED} / {@link SEAL_NO_ROOM}. The payload is
   * zero-padded to a multiple of 16, capped at `padLimit` (the tunnel MTU).
   *
   * `payload` may already sit at `out[16..]` (then it is not copied); it must
   * not otherwise overlap `out`. Consumes one counter value on success.
   */
  seal(payload: Uint8Array, out: Uint8Array, now: number, padLimit = Number.POSITIVE_INFINITY): number {
    if (!this.canSend(now)) return SEAL_EXPIRED;
    const padded = paddedLength(payload.length, padLimit);
    const total = TRANSPORT_HEADER_BYTES + padded + TAG_BYTES;
    if (out.length < total) return SEAL_NO_ROOM;
    const lo = this.sendCounterLo;
    const hi = this.sendCounterHi;
    writeTransportHeader(out, this.remoteIndex, lo, hi);
    const inPlace = payload.buffer === out.buffer && payload.byteOffset === out.byteOffset + TRANSPORT_HEADER_BYTES;
    if (!inPlace) out.set(payload, TRANSPORT_HEADER_BYTES);
    out.fill(0, TRANSPORT_HEADER_BYTES + payload.length, TRANSPORT_HEADER_BYTES + padded);
    setNonceCounter(this.sendNonce, lo, hi);
    aeadEncryptInto(
      out.subarray(TRANSPORT_HEADER_BYTES, total),
      out.subarray(TRANSPORT_HEADER_BYTES, TRANSPORT_HEADER_BYTES + padded),
      null,
      this.sendKey,
      this.sendNonce,
    );
    if (lo === 0xffff_ffff) {
      this.sendCounterLo = 0;
      this.sendCounterHi = hi + 1;
    } else {
      this.sendCounterLo = lo + 1;
    }
    return total;
  }

  /**
   * Seals `count` messages in `buf` at once (the batched form of
   * {@link seal}, through the addon): message i starts at `offsets[i]`, its
   * payload of `lengths[i]` bytes sits at `offsets[i] + 16`; on return
   * `lengths[i]` is the message length. Counters are assigned in order.
   * Returns how many were sealed: 0 when the key may not send, fewer than
   * `count` when the counter reaches REJECT_AFTER_MESSAGES or a message would
   * not fit `buf`.
   */
  sealBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, now: number, padLimit = Number.POSITIVE_INFINITY): number {
    if (!this.canSend(now)) return 0;
    const lo = this.sendCounterLo;
    const hi = this.sendCounterHi;
    const room = hi === REJECT_AFTER_MESSAGES_HI ? REJECT_AFTER_MESSAGES_LO - lo : count;
    const n = native().sealBatch(buf, offsets, lengths, Math.min(count, room), this.sendKey, this.remoteIndex, lo, hi,
      Number.isFinite(padLimit) ? padLimit : 0xffff_ffff);
    const next = lo + n;
    if (next > 0xffff_ffff) {
      this.sendCounterLo = next - 0x1_0000_0000;
      this.sendCounterHi = hi + 1;
    } else {
      this.sendCounterLo = next;
    }
    return n;
  }

  /**
   * Before a batched open: whether a message with counter (lo, hi) may be
   * decrypted under this key at `now` (fresh key, counter inside or ahead of
   * the replay window). The window moves only in {@link acceptOpened}.
   */
  mayOpen(lo: number, hi: number, now: number): OpenFailure | undefined {
    if (!this.canReceive(now)) return 'expired';
    return this.replay.check(lo, hi) ? undefined : 'replay';
  }

  /** Opens `count` whole messages of this key in place (the addon); see NativeBinding.openBatch. */
  openBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    return native().openBatch(buf, offsets, lengths, count, this.recvKey);
  }

  /** After a message verified: moves the replay window; false when it was a replay after all (a duplicate in the batch). */
  acceptOpened(lo: number, hi: number): boolean {
    return this.replay.accept(lo, hi);
  }

  /**
   * Decrypts a transport message (already known to carry our index) into
   * `out` and returns the padded plaintext length, or an {@link OpenFailure}.
   * Replays and counters outside the window are refused before decrypting;
   * the window only moves after the tag verified. `out` may be
   * `packet.subarray(16)` (in place).
   */
  open(packet: Uint8Array, out: Uint8Array, now: number): number | OpenFailure {
    if (packet.length < TRANSPORT_HEADER_BYTES + TAG_BYTES || packet[0] !== MESSAGE_TRANSPORT) return 'too-short';
    if (!this.canReceive(now)) return 'expired';
    const lo = readU32(packet, TRANSPORT.counter);
    const hi = readU32(packet, TRANSPORT.counter + 4);
    if (!this.replay.check(lo, hi)) return 'replay';
    const length = packet.length - TRANSPORT_HEADER_BYTES - TAG_BYTES;
    if (out.length < length) return 'no-room';
    setNonceCounter(this.recvNonce, lo, hi);
    if (!aeadDecryptInto(out, packet.subarray(TRANSPORT_HEADER_BYTES), null, this.recvKey, this.recvNonce)) return 'auth-failed';
    if (!this.replay.accept(lo, hi)) return 'replay';
    return length;
  }

  /** Erases both keys; the keypair is unusable afterwards. */
  zero(): void {
    this.sendKey.fill(0);
    this.recvKey.fill(0);
    this.sendCounterLo = REJECT_AFTER_MESSAGES_LO;
    this.sendCounterHi = REJECT_AFTER_MESSAGES_HI;
  }
}

/** The three keypair slots of one peer. Dropped keypairs go to `onDrop` (release the index, then zero). */
export class KeypairSlots {
  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;

  constructor(private readonly onDrop: (kp: Keypair) => void) {}

  /**
   * We initiated and received a valid response: the new keypair is usable at
   * once. What the peer may still send under stays decryptable: an
   * unconfirmed `next` (the peer may have taken it as its current) or else
   * the old `current`.
   */
  installAsInitiator(kp: Keypair): void {
    if (this.next) {
      this.drop(this.previous);
      this.previous = this.next;
      this.next = undefined;
      this.drop(this.current);
    } else {
      this.drop(this.previous);
      this.previous = this.current;
    }
    this.current = kp;
  }

  /** We responded: the new keypair waits in `next` for confirmation; a stale `next` is dropped. */
  installAsResponder(kp: Keypair): void {
    this.drop(this.next);
    this.next = kp;
  }

  /** A packet authenticated under `next` arrived: promote it. Returns whether anything changed. */
  confirmNext(kp: Keypair): boolean {
    if (this.next !== kp) return false;
    this.drop(this.previous);
    this.previous = this.current;
    this.current = kp;
    this.next = undefined;
    return true;
  }

  /** Drops every keypair. */
  clear(): void {
    this.drop(this.previous);
    this.drop(this.current);
    this.drop(this.next);
    this.previous = this.current = this.next = undefined;
  }

  private drop(kp: Keypair | undefined): void {
    if (kp) this.onDrop(kp);
  }
}
