import { describe, expect, it } from 'vitest';
import { aead, aeadOpen, hash, publicKeyOf } from './crypto.js';
import {
  WG_CONSTRUCTION,
  WG_IDENTIFIER,
  ikPrelude,
  message1Length,
  message2Length,
  readMessage1,
  readMessage2,
  split,
  wireguardPrelude,
  writeMessage1,
  writeMessage2,
} from './noise.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * Test vector "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s" from the cacophony
 * vectors as shipped in github.com/mcginty/snow, tests/vectors/cacophony.txt
 * at commit aabed3159deec0a0dfe3d5601c43322d84700c94. (An older copy of that
 * file, commit 62fbfae2, has the same messages but handshake hashes in a
 * convention since corrected; the current one is h after the last MixHash.)
 * Messages 1 and 2 are the handshake; 3..6 are transport messages,
 * initiator first, nonces from 0.
 */
const CACOPHONY_IKPSK2 = {
  protocolName: 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s',
  prologue: '4a6f686e2047616c74',
  psk: '54686973206973206d7920417573747269616e20706572737065637469766521',
  initStatic: 'e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1',
  initEphemeral: '893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a',
  initRemoteStatic: '31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62',
  respStatic: '4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893',
  respEphemeral: 'bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b',
  handshakeHash: 'f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5',
  messages: [
    {
      payload: '4c756477696720766f6e204d69736573',
      ciphertext:
        'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f',
    },
    {
      payload: '4d757272617920526f746862617264',
      ciphertext: '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab0322217755c0632f365717edbf34d33e87a',
    },
    { payload: '462e20412e20486179656b', ciphertext: '8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7' },
    { payload: '4361726c204d656e676572', ciphertext: '07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef' },
    { payload: '4a65616e2d426170746973746520536179', ciphertext: '6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d' },
    { payload: '457567656e2042f6686d20766f6e2042617765726b', ciphertext: 'dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292' },
  ],
} as const;

describe('Noise_IKpsk2 against the cacophony vector', () => {
  const v = CACOPHONY_IKPSK2;
  const initStatic = hex(v.initStatic);
  const respStatic = hex(v.respStatic);
  const respPublic = publicKeyOf(respStatic);
  const initPublic = publicKeyOf(initStatic);
  const psk = hex(v.psk);
  const m = v.messages;

  it('responder public key matches the vector', () => {
    expect(toHex(respPublic)).toBe(v.initRemoteStatic);
  });

  it('reproduces both handshake messages, the handshake hash and the transport messages', () => {
    const prelude = ikPrelude(v.protocolName, hex(v.prologue), respPublic);

    // message 1, written by the initiator
    const p1 = hex(m[0].payload);
    const msg1 = new Uint8Array(message1Length(p1.length));
    const w1 = writeMessage1({
      prelude,
      localStaticPublic: initPublic,
      localStaticPrivate: initStatic,
      remoteStaticPublic: respPublic,
      ephemeralPrivate: hex(v.initEphemeral),
      payload: p1,
      out: msg1,
      offset: 0,
    });
    expect(w1.ok).toBe(true);
    if (!w1.ok) return;
    expect(toHex(msg1)).toBe(m[0].ciphertext);

    // message 1, read by the responder
    const r1 = readMessage1({
      prelude,
      localStaticPrivate: respStatic,
      message: msg1,
      resolve: (s) => (toHex(s) === toHex(initPublic) ? { context: 'initiator' } : undefined),
    });
    expect(r1.ok).toBe(true);
    if (!r1.ok) return;
    expect(toHex(r1.value.payload)).toBe(m[0].payload);
    expect(r1.value.context).toBe('initiator');

    // message 2, written by the responder
    const p2 = hex(m[1].payload);
    const msg2 = new Uint8Array(message2Length(p2.length));
    const w2 = writeMessage2({ state: r1.value, ephemeralPrivate: hex(v.respEphemeral), psk, payload: p2, out: msg2, offset: 0 });
    expect(w2.ok).toBe(true);
    if (!w2.ok) return;
    expect(toHex(msg2)).toBe(m[1].ciphertext);
    expect(toHex(w2.value.h)).toBe(v.handshakeHash);

    // message 2, read by the initiator
    const r2 = readMessage2({ state: w1.value, localStaticPrivate: initStatic, psk, message: msg2 });
    expect(r2.ok).toBe(true);
    if (!r2.ok) return;
    expect(toHex(r2.value.payload)).toBe(m[1].payload);
    expect(toHex(r2.value.h)).toBe(v.handshakeHash);
    expect(toHex(r2.value.ck)).toBe(toHex(w2.value.ck));

    // transport: initiator sends with the first key, responder with the second
    const [i2r, r2i] = split(r2.value.ck);
    const empty = new Uint8Array(0);
    let iNonce = 0;
    let rNonce = 0;
    for (let i = 2; i < m.length; i++) {
      const msg = m[i]!;
      const fromInitiator = i % 2 === 0;
      const key = fromInitiator ? i2r : r2i;
      const n = fromInitiator ? iNonce++ : rNonce++;
      const ct = aead(key, n, hex(msg.payload), empty);
      expect(toHex(ct), `transport message ${i + 1}`).toBe(msg.ciphertext);
      expect(toHex(aeadOpen(key, n, ct, empty) ?? empty)).toBe(msg.payload);
    }
  });

  it('refuses a tampered message 1 and an unknown initiator', () => {
    const prelude = ikPrelude(v.protocolName, hex(v.prologue), respPublic);
    const msg1 = hex(m[0].ciphertext);
    for (const at of [0, 40, msg1.length - 1]) {
      const bad = msg1.slice();
      bad[at] = bad[at]! ^ 1;
      const r = readMessage1({ prelude, localStaticPrivate: respStatic, message: bad, resolve: () => ({ context: 0 }) });
      expect(r.ok).toBe(false);
    }
    const unknown = readMessage1({ prelude, localStaticPrivate: respStatic, message: msg1, resolve: () => undefined });
    expect(unknown).toEqual({ ok: false, reason: 'unknown-static' });
    const short = readMessage1({ prelude, localStaticPrivate: respStatic, message: msg1.subarray(0, 95), resolve: () => ({ context: 0 }) });
    expect(short).toEqual({ ok: false, reason: 'bad-length' });
  });
});

describe('WireGuard constants', () => {
  // Ci = HASH(Construction) and HASH(Ci ‖ Identifier), as published in the
  // rustyguard implementation (github.com/conradludgate/rustyguard,
  // crypto CONSTRUCTION_HASH / IDENTIFIER_HASH), an independent source.
  it('Ci and HASH(Ci ‖ Identifier)', () => {
    const ci = hash(new TextEncoder().encode(WG_CONSTRUCTION));
    expect(toHex(ci)).toBe(
      toHex(Uint8Array.from([96, 226, 109, 174, 243, 39, 239, 192, 46, 195, 53, 226, 160, 37, 210, 208, 22, 235, 66, 6, 248, 114, 119, 245, 45, 56, 209, 152, 139, 120, 205, 54])),
    );
    const hi = hash(ci, new TextEncoder().encode(WG_IDENTIFIER));
    expect(toHex(hi)).toBe(
      toHex(Uint8Array.from([34, 17, 179, 97, 8, 26, 197, 102, 105, 18, 67, 219, 69, 138, 213, 50, 45, 156, 108, 102, 34, 147, 232, 183, 14, 225, 156, 101, 186, 7, 158, 243])),
    );
    const resp = new Uint8Array(32).fill(7);
    const prelude = wireguardPrelude(resp);
    expect(toHex(prelude.ck)).toBe(toHex(ci));
    expect(toHex(prelude.h)).toBe(toHex(hash(hi, resp)));
  });
});
