/**
 * One WireGuard peer: its keys and keypairs, its handshake in progress, its
 * cookie state, the guard against replayed or flooding initiations, and its
 * timers. Pure: no sockets, no clock; every call takes `now` (monotonic ms).
 *
 * The engine talks to a peer in three ways:
 * 1. {@link Peer.encryptTransport} for each outgoing payload. A negative
 *    result means "no usable session": the engine keeps the payload queued
 *    (its own bounded queue) and the peer has noted that a handshake is
 *    wanted.
 * 2. {@link Peer.poll} whenever `now ≥` {@link Peer.nextTimerAt}: it returns
 *    the packets to send to {@link Peer.endpoint} (initiations, keepalives)
 *    and events ("gave up": drop the queue; "keys zeroed").
 * 3. Incoming packets go through the {@link Device}, which finds the peer.
 *
 * Ownership: packets returned by `poll` are fresh buffers the engine owns.
 */
import { generatePrivateKey, type RandomFill } from './crypto.js';
import { CookieGenerator } from './cookie.js';
import { sameEndpoint, type Endpoint } from './endpoint.js';
import { createInitiation, noPresharedKey } from './handshake.js';
import { TRANSPORT_MIN_BYTES } from './messages.js';
import { wireguardPrelude, type InitiatorState, type SymmetricState } from './noise.js';
import { Keypair, KeypairSlots, SEAL_NO_ROOM } from './session.js';
import { InitiationGuard, tai64nFromUnixMs } from './tai64n.js';
import { PeerTimers, REKEY_TIMEOUT_JITTER_MAX_MS } from './timers.js';

/** {@link Peer.encryptTransport}: no current keypair that may send; a handshake has been requested. */
export const NO_SESSION = -1;
/** {@link Peer.encryptTransport}: the output buffer is too small. */
export const NO_ROOM = -2;

export interface PeerConfig {
  /** The peer's static public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Optional preshared key (32 bytes); all zeros when absent, as in WireGuard. */
  readonly presharedKey?: Uint8Array;
  /** Where to send until the peer is heard from (it then follows authenticated packets). */
  readonly endpoint?: Endpoint;
  /** Persistent keepalive interval in ms; 0 or absent: off. */
  readonly persistentKeepaliveMs?: number;
  /** Largest padded payload in bytes (the tunnel MTU); padding to 16 never goes beyond it. */
  readonly mtu?: number;
}

export type PeerOutput =
  | { readonly type: 'packet'; readonly kind: 'initiation' | 'keepalive'; readonly packet: Uint8Array }
  /** Handshake attempts exhausted (REKEY_ATTEMPT_TIME): drop payloads queued for this peer. */
  | { readonly type: 'gave-up' }
  /** All key material erased after 3 × REJECT_AFTER_TIME without a new session. */
  | { readonly type: 'keys-zeroed' };

/** What a peer needs from its device. Implemented by {@link Device}. */
export interface PeerHost {
  readonly staticPrivate: Uint8Array;
  readonly staticPublic: Uint8Array;
  readonly random: RandomFill;
  /** Wall clock, ms since the Unix epoch (TAI64N timestamps only). */
  readonly wallClock: () => number;
  readonly whitenTimestamps: boolean;
  /** A fresh random index routed to this peer (no keypair yet). */
  allocateIndex(peer: Peer): number;
  /** Routes transport packets for `kp.localIndex` to `kp`. */
  bindKeypair(peer: Peer, kp: Keypair): void;
  releaseIndex(index: number): void;
}

interface PendingInitiation {
  readonly localIndex: number;
  readonly state: InitiatorState;
}

const EMPTY = new Uint8Array(0);

export class Peer {
  readonly publicKey: Uint8Array;
  /** Where packets for this peer go; updated only by authenticated packets. */
  endpoint: Endpoint | undefined;
  readonly keypairs: KeypairSlots;
  readonly timers: PeerTimers;
  readonly cookies: CookieGenerator;
  readonly initiations = new InitiationGuard();
  /** Monotonic ms of the last completed handshake, if any. */
  lastHandshakeAt: number | undefined;
  /** @internal wireguardPrelude(publicKey), precomputed. */
  readonly prelude: SymmetricState;
  /** @internal DH(our static, peer static), precomputed; never all zeros. */
  readonly staticStatic: Uint8Array;
  /** @internal the preshared key (zeros when none). */
  readonly psk: Uint8Array;
  /** @internal our outstanding initiation, if any. */
  pending: PendingInitiation | undefined;
  private handshakeWanted = false;
  private sentLastMinuteHandshake = false;
  private readonly mtu: number;

  /** Created by {@link Device.addPeer}, which validates the keys. */
  constructor(
    private readonly host: PeerHost,
    config: PeerConfig,
    staticStatic: Uint8Array,
  ) {
    this.publicKey = config.publicKey.slice();
    this.endpoint = config.endpoint;
    this.psk = config.presharedKey ? config.presharedKey.slice() : noPresharedKey();
    this.mtu = config.mtu ?? Number.POSITIVE_INFINITY;
    this.staticStatic = staticStatic;
    this.prelude = wireguardPrelude(this.publicKey);
    this.cookies = new CookieGenerator(this.publicKey);
    this.keypairs = new KeypairSlots((kp) => {
      host.releaseIndex(kp.localIndex);
      kp.zero();
    });
    const jitterBytes = new Uint8Array(2);
    this.timers = new PeerTimers({
      jitter: () => {
        host.random(jitterBytes);
        return ((jitterBytes[0]! << 8) | jitterBytes[1]!) % (REKEY_TIMEOUT_JITTER_MAX_MS + 1);
      },
      ...(config.persistentKeepaliveMs !== undefined ? { persistentKeepaliveMs: config.persistentKeepaliveMs } : {}),
    });
  }

  // --- sending ------------------------------------------------------------

  /**
   * Encrypts one payload for this peer into `out` (needs 32 + padded payload
   * bytes) and returns the message length, or {@link NO_SESSION} /
   * {@link NO_ROOM}. `payload` may already sit at `out[16..]`.
   *
   * Side effects: timers see the packet; a handshake is requested when there
   * is no usable session or the key is due for a rekey (sent by `poll`).
   */
  encryptTransport(payload: Uint8Array, out: Uint8Array, now: number): number {
    const kp = this.keypairs.current;
    if (!kp?.canSend(now)) {
      this.handshakeWanted = true;
      return NO_SESSION;
    }
    const n = kp.seal(payload, out, now, this.mtu);
    if (n < 0) {
      if (n === SEAL_NO_ROOM) return NO_ROOM;
      this.handshakeWanted = true;
      return NO_SESSION;
    }
    this.timers.authenticatedPacketSent(now);
    if (payload.length > 0) this.timers.dataSent(now);
    if (kp.wantsRekeyOnSend(now)) this.handshakeWanted = true;
    return n;
  }

  /**
   * The batched form of {@link encryptTransport}: seals `count` messages laid
   * out in `buf` (see Keypair.sealBatch) under the current key. Returns how
   * many were sealed, or {@link NO_SESSION} (nothing sealed; a handshake has
   * been requested). Timers see one send.
   */
  sealBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, now: number): number {
    const kp = this.keypairs.current;
    const n = kp ? kp.sealBatch(buf, offsets, lengths, count, now, this.mtu) : 0;
    if (n === 0) {
      this.handshakeWanted = true;
      return NO_SESSION;
    }
    this.timers.authenticatedPacketSent(now);
    this.timers.dataSent(now);
    if (n < count || kp!.wantsRekeyOnSend(now)) this.handshakeWanted = true;
    return n;
  }

  /** A keepalive (empty transport message) under the current key, or undefined without a session. */
  keepalive(now: number): Uint8Array | undefined {
    const out = new Uint8Array(TRANSPORT_MIN_BYTES);
    return this.encryptTransport(EMPTY, out, now) === TRANSPORT_MIN_BYTES ? out : undefined;
  }

  /**
   * Asks for a handshake now (e.g. on configuration). It is sent by the next
   * {@link poll}, subject to the one-per-REKEY_TIMEOUT limit.
   */
  requestHandshake(): void {
    this.handshakeWanted = true;
  }

  // --- timers -------------------------------------------------------------

  /** When {@link poll} has work next (monotonic ms; +Infinity: nothing armed). */
  nextTimerAt(): number {
    const t = this.timers.nextDeadline();
    if (!this.handshakeWanted) return t;
    const allowedAt = this.timers.handshakeInProgress ? Number.NEGATIVE_INFINITY : this.timers.initiationAllowedAt();
    return Math.min(t, allowedAt);
  }

  /** Runs what is due at `now`; returns packets to send and events, in order. */
  poll(now: number): PeerOutput[] {
    const out: PeerOutput[] = [];
    for (const a of this.timers.poll(now)) {
      switch (a.type) {
        case 'send-initiation':
          if (a.retry) this.sendInitiation(now, true, out);
          else this.handshakeWanted = true;
          break;
        case 'send-keepalive': {
          const k = this.keepalive(now);
          if (k) out.push({ type: 'packet', kind: 'keepalive', packet: k });
          break;
        }
        case 'give-up':
          this.dropPending();
          this.handshakeWanted = false;
          out.push({ type: 'gave-up' });
          break;
        case 'zero-keys':
          this.zeroKeys();
          out.push({ type: 'keys-zeroed' });
          break;
      }
    }
    if (this.handshakeWanted) {
      if (this.timers.handshakeInProgress) {
        this.handshakeWanted = false;
      } else if (this.timers.initiationAllowed(now)) {
        this.handshakeWanted = false;
        this.sendInitiation(now, false, out);
      }
    }
    return out;
  }

  // --- called by the Device ----------------------------------------------

  /** @internal A transport packet under `kp` authenticated (`length` = padded plaintext bytes). */
  transportReceived(kp: Keypair, length: number, src: Endpoint, now: number): void {
    if (!sameEndpoint(this.endpoint, src)) this.endpoint = src;
    if (this.keypairs.confirmNext(kp)) {
      this.timers.handshakeComplete();
      this.lastHandshakeAt = now;
      this.sentLastMinuteHandshake = false;
    }
    this.timers.authenticatedPacketReceived(now);
    if (length > 0) this.timers.dataReceived(now);
    if (kp === this.keypairs.current && kp.wantsRekeyOnReceive(now) && !this.sentLastMinuteHandshake) {
      this.sentLastMinuteHandshake = true;
      this.handshakeWanted = true;
    }
  }

  /** @internal We responded to an initiation and derived `kp` (waits in `next`). */
  respondedWith(kp: Keypair, src: Endpoint, now: number): void {
    this.endpoint = src;
    this.host.bindKeypair(this, kp);
    this.keypairs.installAsResponder(kp);
    this.timers.authenticatedPacketReceived(now);
    this.timers.sessionDerived(now);
    this.timers.authenticatedPacketSent(now);
  }

  /** @internal Our initiation was answered and `kp` derived; returns the confirming keepalive. */
  completedWith(kp: Keypair, src: Endpoint, now: number): Uint8Array | undefined {
    this.dropPending();
    this.endpoint = src;
    this.host.bindKeypair(this, kp);
    this.keypairs.installAsInitiator(kp);
    this.lastHandshakeAt = now;
    this.sentLastMinuteHandshake = false;
    this.timers.authenticatedPacketReceived(now);
    this.timers.handshakeComplete();
    this.timers.sessionDerived(now);
    return this.keepalive(now);
  }

  /** @internal The peer is being removed. */
  close(): void {
    this.timers.stop();
    this.zeroKeys();
  }

  // --- internals ------------------------------------------------------------

  private sendInitiation(now: number, retry: boolean, out: PeerOutput[]): void {
    this.dropPending();
    const localIndex = this.host.allocateIndex(this);
    const ephemeralPrivate = generatePrivateKey(this.host.random);
    const r = createInitiation({
      prelude: this.prelude,
      localStaticPrivate: this.host.staticPrivate,
      localStaticPublic: this.host.staticPublic,
      remoteStaticPublic: this.publicKey,
      staticStatic: this.staticStatic,
      senderIndex: localIndex,
      ephemeralPrivate,
      timestamp: tai64nFromUnixMs(this.host.wallClock(), this.host.whitenTimestamps),
    });
    if (!r.ok) {
      // Unreachable with a validated peer key; never send a broken message.
      this.host.releaseIndex(localIndex);
      ephemeralPrivate.fill(0);
      return;
    }
    this.cookies.addMacs(r.value.bytes, now);
    this.pending = { localIndex, state: r.value.state };
    this.timers.handshakeInitiated(now, retry);
    this.timers.authenticatedPacketSent(now);
    out.push({ type: 'packet', kind: 'initiation', packet: r.value.bytes });
  }

  private dropPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.host.releaseIndex(p.localIndex);
    p.state.ephemeralPrivate.fill(0);
  }

  private zeroKeys(): void {
    this.dropPending();
    this.keypairs.clear();
    this.handshakeWanted = false;
    this.sentLastMinuteHandshake = false;
  }
}
