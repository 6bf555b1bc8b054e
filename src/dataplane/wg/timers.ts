/**
 * WireGuard's per-peer timers (whitepaper §6) as a pure state machine.
 *
 * No setTimeout and no clock of its own: every input carries `now`
 * (monotonic milliseconds), {@link PeerTimers.nextDeadline} tells the engine
 * when to call {@link PeerTimers.poll} next, and `poll` returns the actions
 * that fell due. A deadline of +Infinity means "not armed".
 *
 * | timer | armed by | stopped by | on expiry |
 * |---|---|---|---|
 * | retransmit | an initiation sent: REKEY_TIMEOUT + jitter | handshake complete | REKEY_ATTEMPT_TIME after the first attempt: give up; else send a new initiation |
 * | keepalive | data received, if not armed: KEEPALIVE_TIMEOUT | any authenticated packet sent | send a keepalive; again if more data came meanwhile |
 * | new handshake | data sent, if not armed: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter | any authenticated packet received | send an initiation (the peer went quiet) |
 * | zero keys | keys derived: 3 × REJECT_AFTER_TIME; also on giving up | — | drop all keys |
 * | persistent keepalive | any authenticated packet sent or received (when configured) | — | send a keepalive |
 *
 * Jitter (0..333 ms) is drawn from an injected source so tests are exact.
 */

/** After this many messages on a key, the sender starts a new handshake (2^60). */
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
/** No message is sent or accepted with a counter at or beyond this (2^64 − 2^13 − 1). */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/** The initiator of the current session starts a new one when sending on a key this old. */
export const REKEY_AFTER_TIME_MS = 120_000;
/** A key this old is neither used nor accepted. */
export const REJECT_AFTER_TIME_MS = 180_000;
/** Handshake attempts stop this long after the first one. */
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** Wait before retransmitting an unanswered initiation (plus jitter). */
export const REKEY_TIMEOUT_MS = 5_000;
/** Upper bound of the jitter added to REKEY_TIMEOUT. */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 333;
/** Receive-only silence after which a keepalive is sent. */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** The initiator rekeys when it receives on a key older than this (165 s). */
export const REKEY_ON_RECEIVE_AGE_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** All key material is erased after this long without a new session (540 s). */
export const ZERO_KEYS_AFTER_MS = 3 * REJECT_AFTER_TIME_MS;

export type TimerAction =
  /** Send a handshake initiation; `retry` keeps the current attempt series (no new REKEY_ATTEMPT_TIME). */
  | { readonly type: 'send-initiation'; readonly retry: boolean }
  | { readonly type: 'send-keepalive' }
  /** Erase every keypair and any half-done handshake. */
  | { readonly type: 'zero-keys' }
  /** Handshake attempts exhausted: drop packets waiting for a session. */
  | { readonly type: 'give-up' };

export interface PeerTimersOptions {
  /** Returns a jitter in ms in [0, REKEY_TIMEOUT_JITTER_MAX_MS]. */
  readonly jitter: () => number;
  /** Persistent keepalive interval in ms; 0 or absent: off. */
  readonly persistentKeepaliveMs?: number;
}

const OFF = Number.POSITIVE_INFINITY;

export class PeerTimers {
  private retransmitAt = OFF;
  private keepaliveAt = OFF;
  private newHandshakeAt = OFF;
  private zeroKeysAt = OFF;
  private persistentAt = OFF;
  private needAnotherKeepalive = false;
  private attemptStart = Number.NEGATIVE_INFINITY;
  private lastInitiationAt = Number.NEGATIVE_INFINITY;
  private readonly jitter: () => number;
  private readonly persistentMs: number;

  constructor(opts: PeerTimersOptions) {
    this.jitter = opts.jitter;
    this.persistentMs = opts.persistentKeepaliveMs ?? 0;
  }

  // --- events -------------------------------------------------------------

  /** An initiation was sent. A non-retry starts a new attempt series. */
  handshakeInitiated(now: number, retry: boolean): void {
    if (!retry) this.attemptStart = now;
    this.lastInitiationAt = now;
    this.retransmitAt = now + REKEY_TIMEOUT_MS + this.boundedJitter();
  }

  /** A handshake completed: as initiator on a valid response, as responder on the first packet with the new key. */
  handshakeComplete(): void {
    this.retransmitAt = OFF;
    this.attemptStart = Number.NEGATIVE_INFINITY;
  }

  /** New transport keys were derived (either role). */
  sessionDerived(now: number): void {
    this.zeroKeysAt = now + ZERO_KEYS_AFTER_MS;
  }

  /** A transport message with a non-empty payload was sent. */
  dataSent(now: number): void {
    if (this.newHandshakeAt === OFF) this.newHandshakeAt = now + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.boundedJitter();
  }

  /** A transport message with a non-empty payload was received and authenticated. */
  dataReceived(now: number): void {
    if (this.keepaliveAt === OFF) this.keepaliveAt = now + KEEPALIVE_TIMEOUT_MS;
    else this.needAnotherKeepalive = true;
  }

  /** Any authenticated packet (transport, keepalive or handshake) was sent. */
  authenticatedPacketSent(now: number): void {
    this.keepaliveAt = OFF;
    this.needAnotherKeepalive = false;
    this.traversal(now);
  }

  /** Any authenticated packet was received. */
  authenticatedPacketReceived(now: number): void {
    this.newHandshakeAt = OFF;
    this.traversal(now);
  }

  /** The peer is removed: nothing is due any more. */
  stop(): void {
    this.retransmitAt = OFF;
    this.keepaliveAt = OFF;
    this.newHandshakeAt = OFF;
    this.zeroKeysAt = OFF;
    this.persistentAt = OFF;
    this.needAnotherKeepalive = false;
  }

  // --- queries ------------------------------------------------------------

  /** An initiation is outstanding and will be retransmitted. */
  get handshakeInProgress(): boolean {
    return this.retransmitAt !== OFF;
  }

  /** At most one initiation per REKEY_TIMEOUT. */
  initiationAllowed(now: number): boolean {
    return now - this.lastInitiationAt >= REKEY_TIMEOUT_MS;
  }

  /** When {@link initiationAllowed} next becomes true. */
  initiationAllowedAt(): number {
    return this.lastInitiationAt + REKEY_TIMEOUT_MS;
  }

  /** The earliest armed deadline, or +Infinity. */
  nextDeadline(): number {
    return Math.min(this.retransmitAt, this.keepaliveAt, this.newHandshakeAt, this.zeroKeysAt, this.persistentAt);
  }

  /** The actions due at `now`, in a fixed order; each fired timer is disarmed or re-armed. */
  poll(now: number): TimerAction[] {
    const actions: TimerAction[] = [];
    if (this.retransmitAt <= now) {
      this.retransmitAt = OFF;
      if (now - this.attemptStart >= REKEY_ATTEMPT_TIME_MS) {
        actions.push({ type: 'give-up' });
        this.keepaliveAt = OFF;
        this.needAnotherKeepalive = false;
        if (this.zeroKeysAt === OFF) this.zeroKeysAt = now + ZERO_KEYS_AFTER_MS;
      } else {
        actions.push({ type: 'send-initiation', retry: true });
      }
    }
    let keepalive = false;
    if (this.keepaliveAt <= now) {
      keepalive = true;
      this.keepaliveAt = OFF;
      if (this.needAnotherKeepalive) {
        this.needAnotherKeepalive = false;
        this.keepaliveAt = now + KEEPALIVE_TIMEOUT_MS;
      }
    }
    if (this.persistentAt <= now) {
      keepalive = true;
      this.persistentAt = OFF;
    }
    if (keepalive) actions.push({ type: 'send-keepalive' });
    if (this.newHandshakeAt <= now) {
      this.newHandshakeAt = OFF;
      actions.push({ type: 'send-initiation', retry: false });
    }
    if (this.zeroKeysAt <= now) {
      this.zeroKeysAt = OFF;
      actions.push({ type: 'zero-keys' });
    }
    return actions;
  }

  private traversal(now: number): void {
    if (this.persistentMs > 0) this.persistentAt = now + this.persistentMs;
  }

  private boundedJitter(): number {
    const j = this.jitter();
    return Math.min(REKEY_TIMEOUT_JITTER_MAX_MS, Math.max(0, j));
  }
}
