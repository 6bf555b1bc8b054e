// Network namespace switching for the calling thread.
//
// Contract: setns(CLONE_NEWNET) moves only the calling (JS main) thread.
// Sockets and TAP devices created while switched stay bound to that
// namespace after switching back, which is how one process configures
// several namespaces (tests, the lab). libuv's pool threads are unaffected.
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace nea {

// enterNetns(path: string): number
// Switches the calling thread into the namespace at `path` (for example
// /run/netns/NAME) and returns an fd of the namespace it left; hand that fd
// to leaveNetns() to switch back.
static Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "enterNetns(path): path must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int prev = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (prev < 0) {
    ErrnoError(env, errno, "open", "cannot open /proc/thread-self/ns/net").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(prev);
    ErrnoError(env, err, "open", "cannot open network namespace " + path,
               err == ENOENT ? "create it first (ip netns add NAME)" : "")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    close(prev);
    close(target);
    ErrnoError(env, err, "setns", "cannot enter network namespace " + path,
               err == EPERM ? "needs CAP_SYS_ADMIN (run as root)" : "")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  close(target);
  return Napi::Number::New(env, prev);
}

// leaveNetns(fd: number): void — switches back to the namespace `fd` refers
// to and closes it.
static Napi::Value LeaveNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "leaveNetns(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc < 0) {
    ErrnoError(env, err, "setns", "cannot return to the previous network namespace").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("enterNetns", Napi::Function::New(env, EnterNetns, "enterNetns"));
  exports.Set("leaveNetns", Napi::Function::New(env, LeaveNetns, "leaveNetns"));
}

}  // namespace nea
