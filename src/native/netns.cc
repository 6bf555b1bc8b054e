// Network namespace switching for the calling thread.
//
// Contract: setns(CLONE_NEWNET) moves only the calling (JS main) thread.
// Sockets and TAP devices created while switched stay bound to that
// namespace after switching back, which is how one process configures
// several namespaces (tests, the lab). libuv's pool threads are unaffected.
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

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

static const char kNetnsDir[] = "/run/netns";

static bool ValidNetnsName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

// createNetns(name: string): void
// Creates a named network namespace, as `ip netns add NAME` does: a new
// namespace, made by unshare() on a short-lived thread (the caller's thread
// never changes namespace), bind-mounted on /run/netns/NAME so it lives on
// without a process. EEXIST when the name is taken.
static Napi::Value CreateNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "createNetns(name): name must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!ValidNetnsName(name)) {
    ErrnoError(env, EINVAL, "createNetns", "invalid network namespace name '" + name + "'",
               "use 1-200 characters without '/'").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (mkdir(kNetnsDir, 0755) < 0 && errno != EEXIST) {
    ErrnoError(env, errno, "mkdir", std::string("cannot create ") + kNetnsDir).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = std::string(kNetnsDir) + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    ErrnoError(env, err, "open", "cannot create network namespace " + name,
               err == EEXIST ? "a namespace of that name exists" : (err == EACCES || err == EPERM) ? "run as root" : "")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  close(fd);
  int err = 0;
  const char* failed = nullptr;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) < 0) { err = errno; failed = "unshare"; return; }
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0) { err = errno; failed = "mount"; }
  });
  t.join();
  if (failed != nullptr) {
    unlink(path.c_str());
    ErrnoError(env, err, failed, "cannot create network namespace " + name,
               err == EPERM ? "needs CAP_SYS_ADMIN (run as root)" : "").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// deleteNetns(name: string): boolean
// Removes a named network namespace (as `ip netns del`); the namespace itself
// ends when no process or open fd holds it. Returns false when there was none.
static Napi::Value DeleteNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "deleteNetns(name): name must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!ValidNetnsName(name)) {
    ErrnoError(env, EINVAL, "deleteNetns", "invalid network namespace name '" + name + "'").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = std::string(kNetnsDir) + "/" + name;
  if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
    ErrnoError(env, errno, "umount2", "cannot delete network namespace " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (unlink(path.c_str()) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ErrnoError(env, errno, "unlink", "cannot delete network namespace " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("createNetns", Napi::Function::New(env, CreateNetns, "createNetns"));
  exports.Set("deleteNetns", Napi::Function::New(env, DeleteNetns, "deleteNetns"));
  exports.Set("enterNetns", Napi::Function::New(env, EnterNetns, "enterNetns"));
  exports.Set("leaveNetns", Napi::Function::New(env, LeaveNetns, "leaveNetns"));
}

}  // namespace nea
