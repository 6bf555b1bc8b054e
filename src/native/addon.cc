// Entry point of the nea native addon: small, synchronous wrappers for the
// Linux syscalls Node lacks. Each file registers its own exports.
#include "common.h"

namespace nea {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(EBADF) E(EAGAIN)
    E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR)
    E(EINVAL) E(ENFILE) E(EMFILE) E(ENOSPC) E(EPIPE) E(ERANGE) E(ENAMETOOLONG)
    E(ENOSYS) E(EOPNOTSUPP) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
    E(ENETUNREACH) E(ENOBUFS) E(EMSGSIZE) E(ECONNREFUSED) E(EHOSTUNREACH)
    E(EPROTONOSUPPORT) E(EAFNOSUPPORT) E(ENOTCONN) E(ETIMEDOUT) E(EBADFD)
#undef E
    default: {
      static thread_local char buf[16];
      snprintf(buf, sizeof buf, "E%d", err);
      return buf;
    }
  }
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall,
                       const std::string& what, const std::string& hint) {
  std::string msg = what + ": " + strerror(err) + " (" + ErrnoName(err) + ")";
  if (!hint.empty()) msg += "; " + hint;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace nea

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nea::InitNetns(env, exports);
  nea::InitTunTap(env, exports);
  nea::InitUdp(env, exports);
  nea::InitAead(env, exports);
  nea::InitPacket(env, exports);
  return exports;
}

NODE_API_MODULE(nea_native, Init)
