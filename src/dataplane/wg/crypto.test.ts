import { describe, expect, it } from 'vitest';
import { NeaError } from '../../shared/errors.js';
import {
  LowOrderKeyError,
  aead,
  aeadDecryptInto,
  aeadEncryptInto,
  aeadOpen,
  constantTimeEqual,
  decodeKey,
  dh,
  encodeKey,
  generateKeyPair,
  hash,
  hmac,
  kdf1,
  kdf2,
  kdf3,
  mac,
  newNonce,
  publicKeyOf,
  setNonceCounter,
  x25519,
  xaead,
  xaeadOpen,
} from './crypto.js';
import { seededRandom } from './testkit.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const range = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);

describe('HASH, MAC, HMAC, KDF', () => {
  it('BLAKE2s-256 published vectors', () => {
    // RFC 7693 Appendix B: BLAKE2s-256("abc").
    expect(toHex(hash(ascii('abc')))).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
    // BLAKE2 reference KATs (github.com/BLAKE2/BLAKE2, testvectors/blake2s-kat.txt): unkeyed empty input.
    expect(toHex(hash())).toBe('69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
    // Parts are concatenated.
    expect(toHex(hash(ascii('a'), ascii(''), ascii('bc')))).toBe(toHex(hash(ascii('abc'))));
  });

  it('MAC is keyed BLAKE2s with a 16-byte digest length (a parameter, not a truncation)', () => {
    // Computed with CPython's hashlib (the BLAKE2 reference code):
    //   hashlib.blake2s(msg, key=bytes(range(32)), digest_size=16).hexdigest()
    // The first also appears in independent BLAKE2s test tables.
    expect(toHex(mac(range(32)))).toBe('9536f9b267655743dee97b8a670f9f53');
    expect(toHex(mac(range(32), ascii('abc')))).toBe('61ba5f165c194692e09d12520cc4c74a');
    expect(toHex(mac(range(16), ascii('abc')))).toBe('75296c2d2c0f51210b383f386bc8b1ff');
  });

  it('HMAC-BLAKE2s (64-byte block)', () => {
    // CPython: hmac.new(key, msg, hashlib.blake2s).hexdigest(). The 65-byte
    // key case (hashed first) also appears in an independent WireGuard
    // implementation's test suite.
    expect(toHex(hmac(range(32), ascii('abc')))).toBe('82623be5bc0a391b24dce53e67d028eff92d586de0485ac37822e597d049c74f');
    expect(toHex(hmac(range(65), ascii('abc')))).toBe('44d87b3939dec16bc76cbd83e3982ac0a4eafab8a5b87c8c2adbd0da7d5c9695');
  });

  it('KDF1/2/3 are HKDF over HMAC-BLAKE2s', () => {
    // CPython: t0 = HMAC(ck, ikm); t_i = HMAC(t0, t_{i-1} ‖ i).
    const ck = new Uint8Array(32).fill(0x11);
    const ikm = new Uint8Array(32).fill(0x22);
    const [t1, t2, t3] = kdf3(ck, ikm);
    expect(toHex(t1)).toBe('689595aed4202060b80a81db830fdc731a7db549f99f474b38c01aeaf5a00d83');
    expect(toHex(t2)).toBe('33af33967dc440981ee10c21a2d67f1a37739b8738487a70e024c1b4a1549eeb');
    expect(toHex(t3)).toBe('5bb30adac22ee1ec3ad45a108d326e3dbe5d118b344c0e4fba2533b2fbea1de2');
    expect(kdf2(ck, ikm).map(toHex)).toEqual([toHex(t1), toHex(t2)]);
    expect(toHex(kdf1(ck, ikm))).toBe(toHex(t1));
    expect(toHex(kdf1(ck, new Uint8Array(0)))).toBe('d927742402ed71d8c026cececc54caf94252982b3c00a9a6895682e42b6e61b1');
  });
});

describe('X25519', () => {
  it('RFC 7748 §5.2 scalar multiplication vectors', () => {
    const out = new Uint8Array(32);
    expect(x25519(out, hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'), hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'))).toBe(true);
    expect(toHex(out)).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
    expect(toHex(dh(hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'), hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493')))).toBe(
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    );
  });

  it('RFC 7748 §6.1 Diffie-Hellman', () => {
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(toHex(publicKeyOf(alice))).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(publicKeyOf(bob))).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(toHex(dh(alice, publicKeyOf(bob)))).toBe(shared);
    expect(toHex(dh(bob, publicKeyOf(alice)))).toBe(shared);
  });

  // The curve25519 points of small order (D. J. Bernstein, "How do I
  // validate Curve25519 public keys?", cr.yp.to/ecdh.html; also the
  // canonical entries of libsodium's blacklist): 0, 1, the two points of
  // order 8, p − 1, p and p + 1 — then each again with bit 255 set, which
  // X25519 (RFC 7748 §5) masks off.
  const LOW_ORDER_CANONICAL = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];
  const LOW_ORDER = [
    ...LOW_ORDER_CANONICAL,
    ...LOW_ORDER_CANONICAL.map((h) => h.slice(0, 62) + (parseInt(h.slice(62), 16) | 0x80).toString(16).padStart(2, '0')),
  ];

  it('refuses every low-order public key with LOW_ORDER_KEY', () => {
    const me = generateKeyPair(seededRandom(5));
    for (const p of LOW_ORDER) {
      const out = new Uint8Array(32).fill(0xaa);
      expect(x25519(out, me.privateKey, hex(p)), p).toBe(false);
      expect(toHex(out)).toBe('00'.repeat(32));
      let caught: unknown;
      try {
        dh(me.privateKey, hex(p));
      } catch (e) {
        caught = e;
      }
      expect(caught, p).toBeInstanceOf(LowOrderKeyError);
      expect(caught).toBeInstanceOf(NeaError);
      expect((caught as NeaError).code).toBe('LOW_ORDER_KEY');
      expect((caught as NeaError).message).toBe('peer public key is a low-order point; refusing it');
    }
  });
});

describe('AEAD and XAEAD', () => {
  const sunscreen = ascii("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");

  it('RFC 8439 §2.8.2 ChaCha20-Poly1305', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('070000004041424344454647');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const expected =
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116' +
      '1ae10b594f09e26a7e902ecbd0600691';
    const out = new Uint8Array(sunscreen.length + 16);
    expect(aeadEncryptInto(out, sunscreen, ad, key, nonce)).toBe(out.length);
    expect(toHex(out)).toBe(expected);
    const back = new Uint8Array(sunscreen.length);
    expect(aeadDecryptInto(back, out, ad, key, nonce)).toBe(true);
    expect(back).toEqual(sunscreen);
    out[5] = out[5]! ^ 1;
    expect(aeadDecryptInto(back, out, ad, key, nonce)).toBe(false);
    expect(aeadDecryptInto(back, out.subarray(0, 15), ad, key, nonce)).toBe(false);
  });

  it('draft-irtf-cfrg-xchacha-03 §A.3.1 XChaCha20-Poly1305', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const ct = xaead(key, nonce, sunscreen, ad);
    expect(toHex(ct)).toBe(
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e' +
        'c0875924c1c7987947deafd8780acf49',
    );
    expect(xaeadOpen(key, nonce, ct, ad)).toEqual(sunscreen);
    expect(xaeadOpen(key, nonce, ct, new Uint8Array(0))).toBeUndefined();
  });

  it('WireGuard nonce: 4 zero bytes then the 64-bit little-endian counter', () => {
    const n = newNonce();
    setNonceCounter(n, 0x04030201, 0x08070605);
    expect(toHex(n)).toBe('000000000102030405060708');
    setNonceCounter(n, 0xffffffff, 0xffffffff);
    expect(toHex(n)).toBe('00000000ffffffffffffffff');
    // aead(key, counter) uses that nonce.
    const key = new Uint8Array(32).fill(3);
    const direct = new Uint8Array(16 + 5);
    const nonce = newNonce();
    setNonceCounter(nonce, 7, 0);
    aeadEncryptInto(direct, ascii('hello'), new Uint8Array(0), key, nonce);
    expect(toHex(aead(key, 7, ascii('hello'), new Uint8Array(0)))).toBe(toHex(direct));
    expect(aeadOpen(key, 8, direct, new Uint8Array(0))).toBeUndefined();
  });
});

describe('keys as text, comparison', () => {
  it('round-trips keys in the 44-character base64 form wg uses', () => {
    const alicePub = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const text = encodeKey(alicePub);
    expect(text).toBe('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
    expect(decodeKey(text)).toEqual(alicePub);
    for (let i = 0; i < 20; i++) {
      const k = generateKeyPair(seededRandom(100 + i));
      expect(decodeKey(encodeKey(k.publicKey))).toEqual(k.publicKey);
      expect(decodeKey(encodeKey(k.privateKey))).toEqual(k.privateKey);
    }
  });

  it('refuses anything else with INVALID_KEY', () => {
    for (const bad of ['', 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo', 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=', 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==', ' hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=', 'hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=']) {
      expect(() => decodeKey(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }) as Error);
    }
  });

  it('generated private keys are clamped', () => {
    const k = generateKeyPair(seededRandom(9));
    expect(k.privateKey[0]! & 7).toBe(0);
    expect(k.privateKey[31]! & 0x80).toBe(0);
    expect(k.privateKey[31]! & 0x40).toBe(0x40);
  });

  it('constantTimeEqual', () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });
});
