import { describe, expect, it } from 'vitest';
import {
  KEEPALIVE_TIMEOUT_MS,
  PeerTimers,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEYS_AFTER_MS,
  type TimerAction,
} from './timers.js';

/** Runs the timers' own deadlines until `until`, collecting (time, action). */
function run(t: PeerTimers, from: number, until: number): [number, TimerAction][] {
  const seen: [number, TimerAction][] = [];
  let now = from;
  for (;;) {
    const next = t.nextDeadline();
    if (next > until) return seen;
    now = Math.max(now, next);
    for (const a of t.poll(now)) {
      seen.push([now, a]);
      if (a.type === 'send-initiation' && a.retry) t.handshakeInitiated(now, true);
    }
  }
}

function jitters(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('PeerTimers (pure, fake clock)', () => {
  it('retransmits an unanswered initiation every REKEY_TIMEOUT + jitter and gives up after REKEY_ATTEMPT_TIME', () => {
    const t = new PeerTimers({ jitter: jitters(0, 333, 100) });
    t.handshakeInitiated(0, false);
    const events = run(t, 0, 700_000);
    const sends = events.filter(([, a]) => a.type === 'send-initiation').map(([at]) => at);
    const gaps = sends.map((at, i) => at - (i === 0 ? 0 : sends[i - 1]!));
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS);
      expect(g).toBeLessThanOrEqual(REKEY_TIMEOUT_MS + 333);
    }
    expect(sends.every((at) => at < REKEY_ATTEMPT_TIME_MS)).toBe(true);
    const giveUp = events.filter(([, a]) => a.type === 'give-up');
    expect(giveUp).toHaveLength(1);
    const [gaveUpAt] = giveUp[0]!;
    expect(gaveUpAt).toBeGreaterThanOrEqual(REKEY_ATTEMPT_TIME_MS);
    expect(gaveUpAt).toBeLessThanOrEqual(REKEY_ATTEMPT_TIME_MS + REKEY_TIMEOUT_MS + 333);
    // 1 initial + 17 retries fit in 90 s with these jitters.
    expect(sends.length + 1).toBe(18);
    // Giving up arms the key eraser.
    expect(events.some(([at, a]) => a.type === 'zero-keys' && at === gaveUpAt + ZERO_KEYS_AFTER_MS)).toBe(true);
    expect(t.handshakeInProgress).toBe(false);
  });

  it('jitter is exact and bounded', () => {
    const t = new PeerTimers({ jitter: jitters(5000) });
    t.handshakeInitiated(1000, false);
    expect(t.nextDeadline()).toBe(1000 + REKEY_TIMEOUT_MS + 333);
  });

  it('a completed handshake stops retransmission', () => {
    const t = new PeerTimers({ jitter: jitters(0) });
    t.handshakeInitiated(0, false);
    t.handshakeComplete();
    t.sessionDerived(10);
    expect(run(t, 0, ZERO_KEYS_AFTER_MS - 1)).toEqual([]);
    expect(run(t, 0, ZERO_KEYS_AFTER_MS + 10)).toEqual([[ZERO_KEYS_AFTER_MS + 10, { type: 'zero-keys' }]]);
  });

  it('keepalive after KEEPALIVE_TIMEOUT of receive-only; none if we sent meanwhile', () => {
    const t = new PeerTimers({ jitter: jitters(0) });
    t.dataReceived(1000);
    expect(run(t, 1000, 100_000)).toEqual([[1000 + KEEPALIVE_TIMEOUT_MS, { type: 'send-keepalive' }]]);

    const u = new PeerTimers({ jitter: jitters(0) });
    u.dataReceived(1000);
    u.authenticatedPacketSent(5000);
    expect(run(u, 1000, 100_000)).toEqual([]);

    // More data while the timer runs: a second keepalive follows.
    const v = new PeerTimers({ jitter: jitters(0) });
    v.dataReceived(0);
    v.dataReceived(4000);
    expect(run(v, 0, 100_000).map(([at]) => at)).toEqual([10_000, 20_000]);
  });

  it('data sent with no answer for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (+ jitter) starts a new handshake', () => {
    const t = new PeerTimers({ jitter: jitters(200) });
    t.dataSent(0);
    t.dataSent(3000); // already armed: no change
    expect(run(t, 0, 100_000)).toEqual([[15_200, { type: 'send-initiation', retry: false }]]);

    const u = new PeerTimers({ jitter: jitters(200) });
    u.dataSent(0);
    u.authenticatedPacketReceived(14_000);
    expect(run(u, 0, 100_000)).toEqual([]);
  });

  it('persistent keepalive after each packet in either direction', () => {
    const t = new PeerTimers({ jitter: jitters(0), persistentKeepaliveMs: 25_000 });
    t.authenticatedPacketReceived(0);
    t.authenticatedPacketSent(10_000);
    expect(run(t, 0, 40_000)).toEqual([[35_000, { type: 'send-keepalive' }]]);
  });

  it('at most one initiation per REKEY_TIMEOUT', () => {
    const t = new PeerTimers({ jitter: jitters(0) });
    expect(t.initiationAllowed(0)).toBe(true);
    t.handshakeInitiated(0, false);
    expect(t.initiationAllowed(4999)).toBe(false);
    expect(t.initiationAllowed(5000)).toBe(true);
    expect(t.initiationAllowedAt()).toBe(5000);
  });
});
