// Batched WireGuard transport encryption and decryption (ChaCha20-Poly1305,
// RFC 8439, through the OpenSSL that Node itself links: EVP_chacha20_poly1305).
//
// Why here: sealing or opening one packet from JavaScript costs a native call
// with argument checks and buffer views per packet; a batch of packets for
// one keypair costs one call. The protocol decisions (which keypair, counter
// reservation, replay window, timers) stay in TypeScript (src/dataplane/wg/);
// this file only applies the AEAD to messages laid out in a caller's buffer.
//
// Message layout (WireGuard transport, type 4):
//   [0] type 4, [1..3] zero, [4..8) receiver index LE, [8..16) counter LE,
//   [16..16+P) ciphertext of the zero-padded payload, then the 16-byte tag.
// Nonce: 4 zero bytes || the 64-bit counter, little-endian.
#include "common.h"

#include <openssl/evp.h>

#include <cstdint>

namespace nea {

namespace {

constexpr uint32_t kHeader = 16;
constexpr uint32_t kTag = 16;
constexpr uint32_t kFailed = 0xffffffffu;

struct Ctx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~Ctx() { EVP_CIPHER_CTX_free(ctx); }
};

bool GetTyped(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u = ta.As<Napi::Uint8Array>();
  *data = u.Data();
  *len = u.ByteLength();
  return true;
}

bool GetU32(const Napi::Value& v, uint32_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint32_array) return false;
  Napi::Uint32Array u = ta.As<Napi::Uint32Array>();
  *data = u.Data();
  *len = u.ElementLength();
  return true;
}

void Nonce(uint8_t nonce[12], uint64_t counter) {
  for (int i = 0; i < 4; i++) nonce[i] = 0;
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

// One AEAD over buf[p, p+n) in place; the tag goes to / comes from tag.
bool Crypt(EVP_CIPHER_CTX* ctx, bool enc, const uint8_t nonce[12], uint8_t* p, uint32_t n, uint8_t* tag) {
  int outl = 0;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, enc ? 1 : 0) != 1) return false;
  if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTag, tag) != 1) return false;
  if (n > 0 && EVP_CipherUpdate(ctx, p, &outl, p, static_cast<int>(n)) != 1) return false;
  int fin = 0;
  if (EVP_CipherFinal_ex(ctx, p + outl, &fin) != 1) return false;
  if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTag, tag) != 1) return false;
  return true;
}

// sealBatch(buf, offsets, lengths, count, key, receiver, counterLo, counterHi, padLimit): number
// In: message i starts at offsets[i]; its payload (lengths[i] bytes) is at
// offset + 16. Out: header written, payload zero-padded to a multiple of 16
// (never beyond max(payload, padLimit)) and encrypted in place, tag appended,
// lengths[i] = whole message length. Counters counterLo/Hi, +1, +2, ...
// Returns the number sealed (all, unless a message would not fit `buf`:
// then it stops there and the rest are untouched).
Napi::Value SealBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* buf; size_t bufLen; uint32_t* offs; size_t nOffs; uint32_t* lens; size_t nLens; uint8_t* key; size_t keyLen;
  if (info.Length() < 9 || !GetTyped(info[0], &buf, &bufLen) || !GetU32(info[1], &offs, &nOffs) || !GetU32(info[2], &lens, &nLens) ||
      !info[3].IsNumber() || !GetTyped(info[4], &key, &keyLen) || keyLen != 32 || !info[5].IsNumber() || !info[6].IsNumber() ||
      !info[7].IsNumber() || !info[8].IsNumber()) {
    Napi::TypeError::New(env, "sealBatch(buf, offsets, lengths, count, key32, receiver, counterLo, counterHi, padLimit)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t count = info[3].As<Napi::Number>().Uint32Value();
  if (count > nOffs || count > nLens) {
    Napi::RangeError::New(env, "sealBatch: count exceeds offsets/lengths").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t receiver = info[5].As<Napi::Number>().Uint32Value();
  uint64_t counter = (static_cast<uint64_t>(info[7].As<Napi::Number>().Uint32Value()) << 32) | info[6].As<Napi::Number>().Uint32Value();
  double padLimitD = info[8].As<Napi::Number>().DoubleValue();
  uint64_t padLimit = padLimitD >= 4294967295.0 ? UINT32_MAX : static_cast<uint64_t>(padLimitD < 0 ? 0 : padLimitD);

  static thread_local Ctx c;
  if (EVP_CipherInit_ex(c.ctx, EVP_chacha20_poly1305(), nullptr, key, nullptr, 1) != 1) {
    Napi::Error::New(env, "sealBatch: cipher initialisation failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t nonce[12];
  uint32_t done = 0;
  for (; done < count; done++, counter++) {
    uint64_t off = offs[done];
    uint64_t p = lens[done];
    uint64_t padded = (p + 15) & ~static_cast<uint64_t>(15);
    uint64_t cap = p > padLimit ? p : padLimit;
    if (padded > cap) padded = cap;
    if (off + kHeader + padded + kTag > bufLen) break;
    uint8_t* m = buf + off;
    m[0] = 4; m[1] = 0; m[2] = 0; m[3] = 0;
    for (int i = 0; i < 4; i++) m[4 + i] = static_cast<uint8_t>(receiver >> (8 * i));
    for (int i = 0; i < 8; i++) m[8 + i] = static_cast<uint8_t>(counter >> (8 * i));
    memset(m + kHeader + p, 0, padded - p);
    Nonce(nonce, counter);
    if (!Crypt(c.ctx, true, nonce, m + kHeader, static_cast<uint32_t>(padded), m + kHeader + padded)) break;
    lens[done] = static_cast<uint32_t>(kHeader + padded + kTag);
  }
  return Napi::Number::New(env, done);
}

// openBatch(buf, offsets, lengths, count, key): number
// In: message i (a whole transport message, lengths[i] bytes) at offsets[i].
// Out: the plaintext in place at offset + 16 and lengths[i] = its (padded)
// length, or lengths[i] = 0xffffffff when the tag does not verify or the
// message is malformed. The counter is read from each header. Returns the
// number that verified. Never throws on packet contents.
Napi::Value OpenBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* buf; size_t bufLen; uint32_t* offs; size_t nOffs; uint32_t* lens; size_t nLens; uint8_t* key; size_t keyLen;
  if (info.Length() < 5 || !GetTyped(info[0], &buf, &bufLen) || !GetU32(info[1], &offs, &nOffs) || !GetU32(info[2], &lens, &nLens) ||
      !info[3].IsNumber() || !GetTyped(info[4], &key, &keyLen) || keyLen != 32) {
    Napi::TypeError::New(env, "openBatch(buf, offsets, lengths, count, key32)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t count = info[3].As<Napi::Number>().Uint32Value();
  if (count > nOffs || count > nLens) {
    Napi::RangeError::New(env, "openBatch: count exceeds offsets/lengths").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  static thread_local Ctx c;
  if (EVP_CipherInit_ex(c.ctx, EVP_chacha20_poly1305(), nullptr, key, nullptr, 0) != 1) {
    Napi::Error::New(env, "openBatch: cipher initialisation failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t nonce[12];
  uint32_t ok = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t off = offs[i];
    uint64_t n = lens[i];
    if (n < kHeader + kTag || off + n > bufLen || buf[off] != 4) { lens[i] = kFailed; continue; }
    uint8_t* m = buf + off;
    uint64_t counter = 0;
    for (int k = 7; k >= 0; k--) counter = (counter << 8) | m[8 + k];
    Nonce(nonce, counter);
    uint32_t p = static_cast<uint32_t>(n - kHeader - kTag);
    if (!Crypt(c.ctx, false, nonce, m + kHeader, p, m + kHeader + p)) { lens[i] = kFailed; continue; }
    lens[i] = p;
    ok++;
  }
  return Napi::Number::New(env, ok);
}

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("sealBatch", Napi::Function::New(env, SealBatch, "sealBatch"));
  exports.Set("openBatch", Napi::Function::New(env, OpenBatch, "openBatch"));
}

}  // namespace nea
