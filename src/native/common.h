// Shared helpers for the nea native addon: errors that carry the errno name.
#pragma once
#include <napi.h>
#include <cerrno>
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

// Each source file registers its exports here (called from addon.cc).
void InitNetns(Napi::Env env, Napi::Object exports);
void InitTunTap(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitAead(Napi::Env env, Napi::Object exports);
void InitPacket(Napi::Env env, Napi::Object exports);

}  // namespace nea
