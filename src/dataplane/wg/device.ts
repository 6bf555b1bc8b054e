/**
 * A WireGuard device: our static key pair, the peers, the index table that
 * routes incoming packets to them, and the responder's defences. Pure: the
 * engine feeds it datagrams and the time, and sends what it returns.
 *
 * Receive path for a datagram from `src` at `now`:
 * ```
 * messageType(bytes)
 *   4 → decryptTransport: index → keypair → replay check → AEAD open → replay
 *       accept → peer timers / endpoint (roaming) / key confirmation
 *   1, 2, 3 → handleHandshakePacket:
 *       strict length → [1, 2] mac1 (before any DH) → [under load] mac2 or
 *       cookie reply, then per-source rate limit → Noise → timestamp and
 *       flood guard (initiations) → keys → reply
 *   else → drop
 * ```
 * Silence: every failure before authentication ends in a result with no
 * reply. The only replies are a response (to an authenticated initiation),
 * a keepalive confirming a session (to an authenticated response) and, under
 * load, a cookie reply (to a message with a valid mac1 only: the sender knows
 * our public key).
 *
 * Nothing here throws on network input; {@link Device.addPeer} throws on bad
 * configuration (LOW_ORDER_KEY, INVALID_KEY, DUPLICATE_PEER).
 */
import { NeaError } from '../../shared/errors.js';
import { InvalidKeyError, KEY_BYTES, dh, generatePrivateKey, publicKeyOf, systemRandom, type RandomFill } from './crypto.js';
import { CookieChecker } from './cookie.js';
import { rateLimitKey, type Endpoint } from './endpoint.js';
import { consumeInitiation, consumeResponse, createResponse } from './handshake.js';
import {
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  TRANSPORT,
  TRANSPORT_MIN_BYTES,
  decodeCookieReply,
  decodeInitiation,
  decodeMessage,
  decodeResponse,
  messageType,
  readU32,
  type DecodeFailure,
} from './messages.js';
import { split, wireguardPrelude, type NoiseFailure, type SymmetricState } from './noise.js';
import { Peer, type PeerConfig, type PeerHost, type PeerOutput } from './peer.js';
import { HandshakeRateLimiter } from './ratelimit.js';
import { Keypair, type OpenFailure } from './session.js';

export interface DeviceOptions {
  /** Our static private key (32 bytes, e.g. from `decodeKey`). */
  readonly privateKey: Uint8Array;
  /** Random bytes (ephemeral keys, indices, cookie secret and nonces, jitter). Default: the OS. */
  readonly random?: RandomFill;
  /** Wall clock in ms since the Unix epoch, for TAI64N timestamps. Default: Date.now. */
  readonly wallClock?: () => number;
  /** The engine's "under load" predicate: when true, handshakes need a valid mac2. Default: never. */
  readonly underLoad?: () => boolean;
  /** Round timestamps down to 2^24 ns (default true, as WireGuard does). */
  readonly whitenTimestamps?: boolean;
  /** Per-source handshake limiter used under load. */
  readonly rateLimiter?: HandshakeRateLimiter;
}

export type HandshakeDropReason =
  | DecodeFailure
  | NoiseFailure
  | 'not-handshake'
  | 'bad-mac1'
  | 'rate-limited'
  | 'replayed-timestamp'
  | 'initiation-flood'
  | 'unknown-index'
  | 'bad-cookie-reply';

export type HandshakeEvent =
  | { readonly type: 'dropped'; readonly reason: HandshakeDropReason }
  /** Under load: a cookie reply answers a message that had no valid mac2. */
  | { readonly type: 'cookie-sent' }
  /** We accepted an initiation; the reply is our response. */
  | { readonly type: 'initiation-accepted'; readonly peer: Peer }
  /** Our initiation was answered; the session is up; the reply is a keepalive confirming it. */
  | { readonly type: 'handshake-complete'; readonly peer: Peer }
  /** A cookie for a peer was stored; its next handshake message carries mac2. */
  | { readonly type: 'cookie-received'; readonly peer: Peer };

export interface HandshakeResult {
  /** Send this back to `src` (absent for every drop). */
  readonly reply?: Uint8Array;
  readonly event: HandshakeEvent;
}

export type TransportDropReason = OpenFailure | 'malformed' | 'unknown-index';

export type TransportResult =
  /** `length` bytes of (padded) plaintext were written to `out`; 0 is a keepalive. */
  | { readonly ok: true; readonly peer: Peer; readonly length: number }
  | { readonly ok: false; readonly reason: TransportDropReason };

export type DeviceOutput = PeerOutput & { readonly peer: Peer };

interface IndexEntry {
  readonly peer: Peer;
  keypair: Keypair | undefined;
}

/** Where a transport message goes: its peer and keypair (see {@link Device.routeTransport}). */
export type TransportRoute = Readonly<IndexEntry>;

function drop(reason: HandshakeDropReason): HandshakeResult {
  return { event: { type: 'dropped', reason } };
}

const keyId = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex');

export class Device implements PeerHost {
  readonly staticPrivate: Uint8Array;
  readonly staticPublic: Uint8Array;
  readonly random: RandomFill;
  readonly wallClock: () => number;
  readonly whitenTimestamps: boolean;
  private readonly underLoad: () => boolean;
  private readonly prelude: SymmetricState;
  private readonly checker: CookieChecker;
  private readonly limiter: HandshakeRateLimiter;
  private readonly peers = new Map<string, Peer>();
  private readonly indices = new Map<number, IndexEntry>();
  private readonly indexBytes = new Uint8Array(4);

  constructor(opts: DeviceOptions) {
    if (opts.privateKey.length !== KEY_BYTES) throw new InvalidKeyError(`private key must be ${KEY_BYTES} bytes`);
    this.staticPrivate = opts.privateKey.slice();
    this.staticPublic = publicKeyOf(this.staticPrivate);
    this.random = opts.random ?? systemRandom;
    this.wallClock = opts.wallClock ?? Date.now;
    this.whitenTimestamps = opts.whitenTimestamps ?? true;
    this.underLoad = opts.underLoad ?? (() => false);
    this.prelude = wireguardPrelude(this.staticPublic);
    this.checker = new CookieChecker(this.staticPublic, this.random);
    this.limiter = opts.rateLimiter ?? new HandshakeRateLimiter();
  }

  /** Our static public key. */
  get publicKey(): Uint8Array {
    return this.staticPublic.slice();
  }

  // --- configuration --------------------------------------------------------

  /**
   * Adds a peer. Throws LOW_ORDER_KEY (LowOrderKeyError) when its public key
   * is a low-order point, INVALID_KEY for wrong key sizes, DUPLICATE_PEER
   * when the key is already configured.
   */
  addPeer(config: PeerConfig): Peer {
    if (config.publicKey.length !== KEY_BYTES) throw new InvalidKeyError(`peer public key must be ${KEY_BYTES} bytes`);
    if (config.presharedKey && config.presharedKey.length !== KEY_BYTES) throw new InvalidKeyError(`preshared key must be ${KEY_BYTES} bytes`);
    const id = keyId(config.publicKey);
    if (this.peers.has(id)) throw new NeaError('DUPLICATE_PEER', 'a peer with this public key is already configured');
    const staticStatic = dh(this.staticPrivate, config.publicKey);
    const peer = new Peer(this, config, staticStatic);
    this.peers.set(id, peer);
    return peer;
  }

  /** Removes a peer: erases its keys and frees its indices. */
  removePeer(peer: Peer): void {
    const id = keyId(peer.publicKey);
    if (this.peers.get(id) !== peer) return;
    this.peers.delete(id);
    peer.close();
    for (const [i, e] of this.indices) if (e.peer === peer) this.indices.delete(i);
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(keyId(publicKey));
  }

  get peerList(): readonly Peer[] {
    return [...this.peers.values()];
  }

  // --- timers ---------------------------------------------------------------

  /** The earliest {@link Peer.nextTimerAt} over all peers (+Infinity: nothing due). */
  nextTimerAt(): number {
    let t = Number.POSITIVE_INFINITY;
    for (const p of this.peers.values()) t = Math.min(t, p.nextTimerAt());
    return t;
  }

  /** Polls every peer that has something due at `now`. */
  poll(now: number): DeviceOutput[] {
    const out: DeviceOutput[] = [];
    for (const peer of this.peers.values()) {
      if (peer.nextTimerAt() > now) continue;
      for (const o of peer.poll(now)) out.push({ ...o, peer });
    }
    return out;
  }

  // --- receive ----------------------------------------------------------------

  /**
   * Decrypts a transport message into `out` (room for the ciphertext length
   * minus 32; may be `bytes.subarray(16)`). Never throws.
   */
  decryptTransport(bytes: Uint8Array, src: Endpoint, now: number, out: Uint8Array): TransportResult {
    if (bytes.length < TRANSPORT_MIN_BYTES || messageType(bytes) !== MESSAGE_TRANSPORT) return { ok: false, reason: 'malformed' };
    const entry = this.indices.get(readU32(bytes, TRANSPORT.receiver));
    const kp = entry?.keypair;
    if (!entry || !kp) return { ok: false, reason: 'unknown-index' };
    const r = kp.open(bytes, out, now);
    if (typeof r === 'string') return { ok: false, reason: r };
    entry.peer.transportReceived(kp, r, src, now);
    return { ok: true, peer: entry.peer, length: r };
  }

  /**
   * Batched receive, step 1: the keypair a transport message at
   * `buf[off, off + len)` is for, if it may be opened now (index known, key
   * fresh, counter not replayed). Allocates nothing; never throws.
   */
  routeTransport(buf: Uint8Array, off: number, len: number, now: number): TransportRoute | TransportDropReason {
    if (len < TRANSPORT_MIN_BYTES || buf[off] !== MESSAGE_TRANSPORT) return 'malformed';
    const entry = this.indices.get(readU32(buf, off + TRANSPORT.receiver));
    const kp = entry?.keypair;
    if (!entry || !kp) return 'unknown-index';
    const why = kp.mayOpen(readU32(buf, off + TRANSPORT.counter), readU32(buf, off + TRANSPORT.counter + 4), now);
    return why ?? entry;
  }

  /**
   * Batched receive, step 3 (after the keypair's openBatch verified the
   * message): moves the replay window and tells the peer (timers, key
   * confirmation, roaming). False when the message was a replay after all (a
   * duplicate within the batch): drop it.
   */
  transportOpened(peer: Peer, kp: Keypair, buf: Uint8Array, off: number, plaintextLength: number, src: Endpoint, now: number): boolean {
    if (!kp.acceptOpened(readU32(buf, off + TRANSPORT.counter), readU32(buf, off + TRANSPORT.counter + 4))) return false;
    peer.transportReceived(kp, plaintextLength, src, now);
    return true;
  }

  /** Handles a handshake message (types 1, 2, 3). Never throws; drops have no reply. */
  handleHandshakePacket(bytes: Uint8Array, src: Endpoint, now: number): HandshakeResult {
    switch (messageType(bytes)) {
      case MESSAGE_INITIATION:
        return this.handleInitiation(bytes, src, now);
      case MESSAGE_RESPONSE:
        return this.handleResponse(bytes, src, now);
      case MESSAGE_COOKIE_REPLY:
        return this.handleCookieReply(bytes, now);
      case MESSAGE_TRANSPORT:
        return drop('not-handshake');
      default: {
        const d = decodeMessage(bytes);
        return drop(d.ok ? 'unknown-type' : d.reason);
      }
    }
  }

  /**
   * mac1, then under load mac2 (else a cookie reply) and the per-source
   * limit. Returns undefined when the message may be processed.
   */
  private screen(bytes: Uint8Array, senderIndex: number, src: Endpoint, now: number): HandshakeResult | undefined {
    if (!this.checker.checkMac1(bytes)) return drop('bad-mac1');
    if (!this.underLoad()) return undefined;
    if (!this.checker.checkMac2(bytes, src, now)) {
      return { reply: this.checker.createReply(bytes, senderIndex, src, now), event: { type: 'cookie-sent' } };
    }
    if (!this.limiter.allow(rateLimitKey(src.address), now)) return drop('rate-limited');
    return undefined;
  }

  private handleInitiation(bytes: Uint8Array, src: Endpoint, now: number): HandshakeResult {
    const d = decodeInitiation(bytes);
    if (!d.ok) return drop(d.reason);
    const msg = d.message;
    const screened = this.screen(bytes, msg.senderIndex, src, now);
    if (screened) return screened;

    const r = consumeInitiation<Peer>(msg, {
      prelude: this.prelude,
      localStaticPrivate: this.staticPrivate,
      resolve: (s) => {
        const peer = this.peers.get(keyId(s));
        return peer ? { context: peer, staticStatic: peer.staticStatic } : undefined;
      },
    });
    if (!r.ok) return drop(r.reason);
    const peer = r.value.context;
    const timestamp = r.value.payload;
    const verdict = peer.initiations.check(timestamp, now);
    if (verdict !== 'accept') return drop(verdict);

    const localIndex = this.allocateIndex(peer);
    const ephemeralPrivate = generatePrivateKey(this.random);
    const resp = createResponse({
      state: r.value,
      senderIndex: localIndex,
      receiverIndex: msg.senderIndex,
      ephemeralPrivate,
      psk: peer.psk,
    });
    ephemeralPrivate.fill(0);
    if (!resp.ok) {
      this.releaseIndex(localIndex);
      return drop(resp.reason);
    }
    peer.initiations.commit(timestamp, now);
    peer.cookies.addMacs(resp.value.bytes, now);
    const [initiatorToResponder, responderToInitiator] = split(resp.value.handshake.ck);
    const kp = new Keypair(localIndex, msg.senderIndex, responderToInitiator, initiatorToResponder, false, now);
    peer.respondedWith(kp, src, now);
    return { reply: resp.value.bytes, event: { type: 'initiation-accepted', peer } };
  }

  private handleResponse(bytes: Uint8Array, src: Endpoint, now: number): HandshakeResult {
    const d = decodeResponse(bytes);
    if (!d.ok) return drop(d.reason);
    const msg = d.message;
    const screened = this.screen(bytes, msg.senderIndex, src, now);
    if (screened) return screened;

    const entry = this.indices.get(msg.receiverIndex);
    const pending = entry?.peer.pending;
    if (!entry || entry.keypair || pending?.localIndex !== msg.receiverIndex) return drop('unknown-index');
    const peer = entry.peer;
    const r = consumeResponse(msg, pending.state, this.staticPrivate, peer.psk);
    if (!r.ok) return drop(r.reason);
    const [initiatorToResponder, responderToInitiator] = split(r.value.ck);
    const kp = new Keypair(pending.localIndex, msg.senderIndex, initiatorToResponder, responderToInitiator, true, now);
    const keepalive = peer.completedWith(kp, src, now);
    const event = { type: 'handshake-complete', peer } as const;
    return keepalive ? { reply: keepalive, event } : { event };
  }

  private handleCookieReply(bytes: Uint8Array, now: number): HandshakeResult {
    const d = decodeCookieReply(bytes);
    if (!d.ok) return drop(d.reason);
    const entry = this.indices.get(d.message.receiverIndex);
    if (!entry) return drop('unknown-index');
    if (!entry.peer.cookies.consumeReply(d.message, now)) return drop('bad-cookie-reply');
    return { event: { type: 'cookie-received', peer: entry.peer } };
  }

  // --- PeerHost ------------------------------------------------------------------

  /** @internal */
  allocateIndex(peer: Peer): number {
    for (;;) {
      this.random(this.indexBytes);
      const i = readU32(this.indexBytes, 0);
      if (!this.indices.has(i)) {
        this.indices.set(i, { peer, keypair: undefined });
        return i;
      }
    }
  }

  /** @internal */
  bindKeypair(peer: Peer, kp: Keypair): void {
    const e = this.indices.get(kp.localIndex);
    if (e?.peer === peer) e.keypair = kp;
    else this.indices.set(kp.localIndex, { peer, keypair: kp });
  }

  /** @internal */
  releaseIndex(index: number): void {
    this.indices.delete(index);
  }

  /** Indices in use (diagnostics; bounded by 4 per peer). */
  get indexCount(): number {
    return this.indices.size;
  }
}
