// Shared helpers for the nea native addon: errors that carry the errno name.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace nea {

// Symbolic name of an errno value ("EBUSY"), or "E<number>" when unknown.
const char* ErrnoName(int err);

// Builds a JS Error whose .code is the errno name, .errno the number and
// .syscall the failing call; message is "<what>: <strerror> (<ENAME>)" plus an
// optional hint telling the user what to do.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall,
                       const std::string& what, const std::string& hint = "");

// Data of a typed array argument of type `want` (and its element count in
// *length), or nullptr after throwing a TypeError naming `what`.
template <typename T>
T* TypedArrayData(napi_env env, napi_value v, napi_typedarray_type want, size_t* length, const char* what) {
  bool is = false;
  napi_typedarray_type type;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, length, &data, nullptr, nullptr) != napi_ok || type != want) {
    const char* kind = want == napi_uint8_array    ? " must be a Uint8Array or Buffer"
                       : want == napi_uint16_array ? " must be a Uint16Array"
                                                   : " must be a Uint32Array";
    Napi::TypeError::New(env, std::string(what) + kind).ThrowAsJavaScriptException();
    return nullptr;
  }
  return static_cast<T*>(data);
}

// An integer argument in [0, 2^32-1] into *out, or false after throwing a TypeError naming `what`.
inline bool ToUint32(napi_env env, napi_value v, uint32_t* out, const char* what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 4294967295.0 || d != static_cast<uint32_t>(d)) {
    Napi::TypeError::New(env, std::string(what) + " must be an integer from 0 to 2^32-1").ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

// Each source file registers its exports here (called from addon.cc).
void InitNetns(Napi::Env env, Napi::Object exports);
void InitTunTap(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitAead(Napi::Env env, Napi::Object exports);
void InitPacket(Napi::Env env, Napi::Object exports);

}  // namespace nea
