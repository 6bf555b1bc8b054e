import { describe, expect, it } from 'vitest';
import { COOKIE_LIFETIME_MS, COOKIE_SECRET_LIFETIME_MS, CookieChecker, CookieGenerator } from './cookie.js';
import { generateKeyPair } from './crypto.js';
import { endpointBytes, parseAddress, rateLimitKey } from './endpoint.js';
import { decodeCookieReply, encodeInitiation } from './messages.js';
import { HandshakeRateLimiter } from './ratelimit.js';
import { seededRandom } from './testkit.js';

const responder = generateKeyPair(seededRandom(11));
const src = { address: '192.0.2.10', port: 1234 };

function message(seed: number): Uint8Array {
  const f = (v: number, n: number): Uint8Array => new Uint8Array(n).fill(v);
  return encodeInitiation({ senderIndex: seed, ephemeral: f(seed, 32), encryptedStatic: f(2, 48), encryptedTimestamp: f(3, 28) });
}

/** Generator gets a cookie for `src` from the checker at `now`. */
function getCookie(checker: CookieChecker, gen: CookieGenerator, now: number): void {
  const m = message(1);
  gen.addMacs(m, now);
  const reply = decodeCookieReply(checker.createReply(m, 1, src, now));
  if (!reply.ok) throw new Error(reply.reason);
  expect(gen.consumeReply(reply.message, now)).toBe(true);
}

describe('mac1, mac2 and cookies', () => {
  it('mac1 is bound to the receiver key; any change to the covered bytes breaks it', () => {
    const checker = new CookieChecker(responder.publicKey, seededRandom(1));
    const m = message(7);
    new CookieGenerator(responder.publicKey).addMacs(m, 0);
    expect(checker.checkMac1(m)).toBe(true);
    const other = generateKeyPair(seededRandom(12));
    expect(new CookieChecker(other.publicKey).checkMac1(m)).toBe(false);
    for (const at of [0, 4, 50, 115, 116, 131]) {
      const bad = m.slice();
      bad[at] = bad[at]! ^ 1;
      expect(checker.checkMac1(bad), `byte ${at}`).toBe(false);
    }
    // mac2 is not covered by mac1.
    const m2 = m.slice();
    m2[140] = 1;
    expect(checker.checkMac1(m2)).toBe(true);
    expect(checker.checkMac1(new Uint8Array(31))).toBe(false);
  });

  it('without a cookie mac2 is zero; with one it verifies for that source only', () => {
    const checker = new CookieChecker(responder.publicKey, seededRandom(2));
    const gen = new CookieGenerator(responder.publicKey);
    const m = message(3);
    gen.addMacs(m, 0);
    expect(m.subarray(132).every((b) => b === 0)).toBe(true);
    expect(checker.checkMac2(m, src, 0)).toBe(false);
    getCookie(checker, gen, 0);
    const m2 = message(4);
    gen.addMacs(m2, 1000);
    expect(checker.checkMac2(m2, src, 1000)).toBe(true);
    expect(checker.checkMac2(m2, { ...src, port: 1235 }, 1000)).toBe(false);
    expect(checker.checkMac2(m2, { ...src, address: '192.0.2.11' }, 1000)).toBe(false);
  });

  it('the checker secret changes every 120 s, invalidating older cookies', () => {
    const checker = new CookieChecker(responder.publicKey, seededRandom(3));
    const gen = new CookieGenerator(responder.publicKey);
    getCookie(checker, gen, 0);
    const m = message(5);
    gen.addMacs(m, COOKIE_SECRET_LIFETIME_MS - 1);
    expect(checker.checkMac2(m, src, COOKIE_SECRET_LIFETIME_MS - 1)).toBe(true);
    expect(checker.checkMac2(m, src, COOKIE_SECRET_LIFETIME_MS)).toBe(false);
  });

  it('the generator uses a cookie for 120 s', () => {
    const checker = new CookieChecker(responder.publicKey, seededRandom(4));
    const gen = new CookieGenerator(responder.publicKey);
    getCookie(checker, gen, 0);
    expect(gen.hasCookie(COOKIE_LIFETIME_MS - 1)).toBe(true);
    expect(gen.hasCookie(COOKIE_LIFETIME_MS)).toBe(false);
    const m = message(6);
    gen.addMacs(m, COOKIE_LIFETIME_MS);
    expect(m.subarray(132).every((b) => b === 0)).toBe(true);
  });

  it('a cookie reply is bound to the mac1 it answers and to the responder key', () => {
    const checker = new CookieChecker(responder.publicKey, seededRandom(5));
    const gen = new CookieGenerator(responder.publicKey);
    const sent = message(8);
    gen.addMacs(sent, 0);
    // A reply to some other message (another mac1) does not open.
    const other = message(9);
    new CookieGenerator(responder.publicKey).addMacs(other, 0);
    const wrong = decodeCookieReply(checker.createReply(other, 9, src, 0));
    if (!wrong.ok) throw new Error(wrong.reason);
    expect(gen.consumeReply(wrong.message, 0)).toBe(false);
    // A reply from another key does not open either.
    const impostor = new CookieChecker(generateKeyPair(seededRandom(13)).publicKey, seededRandom(6));
    const imp = decodeCookieReply(impostor.createReply(sent, 8, src, 0));
    if (!imp.ok) throw new Error(imp.reason);
    expect(gen.consumeReply(imp.message, 0)).toBe(false);
    const right = decodeCookieReply(checker.createReply(sent, 8, src, 0));
    if (!right.ok) throw new Error(right.reason);
    expect(right.message.receiverIndex).toBe(8);
    expect(gen.consumeReply(right.message, 0)).toBe(true);
  });
});

describe('endpoints', () => {
  it('parses IPv4 and IPv6 text', () => {
    const table: [string, string | undefined][] = [
      ['192.0.2.1', 'c0000201'],
      ['0.0.0.0', '00000000'],
      ['256.0.0.1', undefined],
      ['1.2.3', undefined],
      ['01.2.3.4', undefined],
      ['::1', '00000000000000000000000000000001'],
      ['::', '00000000000000000000000000000000'],
      ['2001:db8::8a2e:370:7334', '20010db80000000000008a2e03707334'],
      ['fe80::1%eth0', 'fe800000000000000000000000000001'],
      ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201'],
      ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
      ['1:2:3:4:5:6:7:8:9', undefined],
      ['1::2::3', undefined],
      ['12345::', undefined],
      ['example.com', undefined],
    ];
    for (const [text, want] of table) {
      const got = parseAddress(text);
      expect(got ? Buffer.from(got).toString('hex') : undefined, text).toBe(want);
    }
  });

  it('cookie bytes: address then port big-endian', () => {
    expect(Buffer.from(endpointBytes({ address: '192.0.2.1', port: 0x1234 })).toString('hex')).toBe('c00002011234');
  });

  it('rate-limit keys: IPv4 (also mapped) per address, IPv6 per /64', () => {
    expect(rateLimitKey('::ffff:192.0.2.1')).toBe(rateLimitKey('192.0.2.1'));
    expect(rateLimitKey('192.0.2.1')).not.toBe(rateLimitKey('192.0.2.2'));
    expect(rateLimitKey('2001:db8:0:1::1')).toBe(rateLimitKey('2001:db8:0:1::2'));
    expect(rateLimitKey('2001:db8:0:1::1')).not.toBe(rateLimitKey('2001:db8:0:2::1'));
  });
});

describe('per-source handshake rate limit', () => {
  it('bursts of 5, then 20 per second', () => {
    const l = new HandshakeRateLimiter();
    let ok = 0;
    for (let i = 0; i < 10; i++) if (l.allow('a', 0)) ok++;
    expect(ok).toBe(5);
    expect(l.allow('a', 49)).toBe(false);
    expect(l.allow('a', 50)).toBe(true);
    expect(l.allow('b', 50)).toBe(true);
    let later = 0;
    for (let t = 100; t < 1100; t++) if (l.allow('a', t)) later++;
    expect(later).toBe(20);
  });

  it('memory stays bounded', () => {
    const l = new HandshakeRateLimiter(20, 5, 100);
    for (let i = 0; i < 1000; i++) l.allow(`s${i}`, 0);
    expect(l.size).toBe(100);
    expect(l.allow('late', 10)).toBe(false);
    expect(l.allow('late', 2000)).toBe(true);
    expect(l.size).toBe(1);
  });
});
