// Event-loop driven batch reader shared by the addon's packet sources: TAP/TUN
// devices (tuntap.cc) and UDP sockets (udp.cc, recvmmsg/sendmmsg).
//
// One BatchSource owns one non-blocking fd, a uv_poll handle on it and a read
// slab. When the fd is readable, the subclass's ReadBatch() fills the slab
// (batchSize slots of slotSize bytes, lengths in a Uint32Array) until EAGAIN or
// the slab is full, and the JS callback onBatch(count) runs ONCE for the whole
// batch. The slab Buffer, the lengths Uint32Array and the counters
// Float64Array are created once at open and shared with JS, so the hot path
// allocates nothing in JS.
//
// Contracts:
// - Ownership: the slab belongs to the source. Its contents (and lengths[])
//   are valid only during the onBatch call; the next batch overwrites them.
//   Copy what must outlive the call.
// - Fairness: at most kMaxBatchesPerWakeup batches per poll wake-up; frames
//   left in the kernel queue are read on the next loop iteration.
// - Backpressure: pause() stops the poll; frames then wait in the kernel's
//   queue (and the kernel drops beyond it). resume() starts it again.
// - Failure: a read error other than EAGAIN/EINTR stops reading for good and
//   calls onError(err) once with an errno error; writes may still work.
// - Lifetime: an open source keeps its JS object alive; close() (or env
//   teardown, through an env cleanup hook) stops polling and closes the fd.
//
// Subclasses (CRTP) implement:
//   ReadResult ReadBatch(uint32_t max);   // fill slots [0, max), count rx counters
//   static const char* ReadSyscall();     // name used in read errors ("read")
// may hide:
//   Napi::Error ReadFailure(env, err, syscall) const;  // wording of the onError error
// and list BaseMethods() in their DefineClass.
#pragma once
#include "common.h"

#include <uv.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace nea {

// Indexes into the counters Float64Array shared with JS (values are exact up
// to 2^53). Keep in sync with COUNTER_* in src/native/index.ts.
enum BatchCounter : uint32_t {
  kRxFrames = 0,   // frames delivered to onBatch
  kRxBytes,        // bytes of those frames
  kRxBatches,      // onBatch calls
  kRxDrops,        // frames read but dropped (longer than a slot)
  kTxFrames,       // frames the kernel accepted
  kTxBytes,        // bytes of those frames
  kTxDrops,        // frames refused with EAGAIN (the caller decides their fate)
  kCounterCount
};

// At most this many batches are delivered per poll wake-up, so one busy
// source cannot starve timers and other handles of the event loop. One: the
// loop then turns between the sources batch by batch, so a frame waiting on
// one side (a ping's reply, a TCP ack in the TAP) does not wait for several
// batches of the other side's bulk (docs/performance.md, step 5).
constexpr int kMaxBatchesPerWakeup = 1;
// Bounds of the slab geometry accepted at open.
constexpr uint32_t kMaxBatchSize = 4096;      // frames
constexpr uint32_t kMinSlotSize = 64;         // bytes
constexpr uint32_t kMaxSlotSize = 131072;     // bytes (a TAP with offloads reads 64 KiB super-frames)

// What ReadBatch() returns: frames placed in slots [0, count), and the errno
// that stopped reading (0 when it stopped at EAGAIN or a full slab).
struct ReadResult {
  uint32_t count;
  int err;
};

template <class Derived>
class BatchSource : public Napi::ObjectWrap<Derived> {
 public:
  explicit BatchSource(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}
  ~BatchSource() override { Shutdown(Teardown::kFinalizer); }

  BatchSource(const BatchSource&) = delete;
  BatchSource& operator=(const BatchSource&) = delete;

 protected:
  using Wrap = Napi::ObjectWrap<Derived>;

  // JS methods every source has; subclasses append theirs.
  static std::vector<typename Wrap::PropertyDescriptor> BaseMethods() {
    return {
        Wrap::InstanceMethod("pause", &BatchSource::Pause),
        Wrap::InstanceMethod("resume", &BatchSource::Resume),
        Wrap::InstanceMethod("close", &BatchSource::Close),
    };
  }

  // Takes ownership of `fd` (non-blocking) and sets up the poll handle, the
  // slab, lengths and counters (also exposed on `self` as .slab, .lengths,
  // .counters). Starts paused. On failure closes fd, leaves a JS exception
  // pending and returns false.
  bool Attach(Napi::Env env, Napi::Object self, int fd, uint32_t batchSize, uint32_t slotSize,
              Napi::Function onBatch, Napi::Function onError, const char* resourceName) {
    fd_ = fd;
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Shutdown(Teardown::kFinalizer);
      Napi::Error::New(env, "cannot get the libuv event loop").ThrowAsJavaScriptException();
      return false;
    }
    auto* poll = new uv_poll_t;
    int rc = uv_poll_init(loop, poll, fd);
    if (rc != 0) {
      delete poll;
      Shutdown(Teardown::kFinalizer);
      ErrnoError(env, -rc, "uv_poll_init", "cannot watch the device fd").ThrowAsJavaScriptException();
      return false;
    }
    poll->data = this;
    poll_ = poll;

    batchSize_ = batchSize;
    slotSize_ = slotSize;
    Napi::Buffer<uint8_t> slab = Napi::Buffer<uint8_t>::New(env, size_t{batchSize} * slotSize);
    Napi::Uint32Array lengths = Napi::Uint32Array::New(env, batchSize);
    Napi::Float64Array counters = Napi::Float64Array::New(env, kCounterCount);
    if (env.IsExceptionPending()) {
      Shutdown(Teardown::kFinalizer);
      return false;
    }
    slab_ = slab.Data();
    lengths_ = lengths.Data();
    counters_ = counters.Data();
    for (uint32_t i = 0; i < kCounterCount; ++i) counters_[i] = 0;
    // Properties of the wrapper keep the arrays alive as long as this object.
    self.Set("slab", slab);
    self.Set("lengths", lengths);
    self.Set("counters", counters);

    onBatch_ = Napi::Persistent(onBatch);
    onError_ = Napi::Persistent(onError);
    async_ = std::make_unique<Napi::AsyncContext>(env, resourceName, self);
    env_ = env;
    napi_add_env_cleanup_hook(env, &BatchSource::OnEnvTeardown, this);
    hookInstalled_ = true;
    this->Ref();  // an open source stays alive until close()
    state_ = State::kPaused;
    return true;
  }

  // Runs before the fd is closed (a subclass hides it to stop its own users
  // of the fd first).
  void BeforeClose() {}

  // The error handed to onError when reading stops for good. A subclass may
  // hide this with its own wording (CRTP: resolved at compile time).
  Napi::Error ReadFailure(Napi::Env env, int err, const char* syscall) const {
    return ErrnoError(env, err, syscall, "reading from the device failed; reading stopped",
                      err == EBADF || err == EBADFD ? "the interface was probably deleted: close and reopen the device"
                                                    : "close and reopen the device");
  }

  bool IsOpen() const { return state_ != State::kClosed && fd_ >= 0; }
  int Fd() const { return fd_; }
  uint8_t* Slot(uint32_t i) const { return slab_ + size_t{i} * slotSize_; }
  uint32_t SlotSize() const { return slotSize_; }

  uint32_t* lengths_ = nullptr;
  double* counters_ = nullptr;

 private:
  enum class State { kPaused, kReading, kFailed, kClosed };
  enum class Teardown { kUser, kEnv, kFinalizer };

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (state_ == State::kReading) {
      uv_poll_stop(poll_);
      state_ = State::kPaused;
    }
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_ == State::kClosed) {
      ErrnoError(env, EBADF, "uv_poll_start", "cannot resume reading", "the device is closed")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (state_ == State::kPaused) {
      int rc = uv_poll_start(poll_, UV_READABLE, &BatchSource::OnPoll);
      if (rc != 0) {
        ErrnoError(env, -rc, "uv_poll_start", "cannot start reading").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      state_ = State::kReading;
    }
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(Teardown::kUser);
    return info.Env().Undefined();
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<BatchSource*>(handle->data);
    if (self != nullptr) self->Drain(status);
  }

  // One poll wake-up: up to kMaxBatchesPerWakeup batches, one onBatch each.
  //
  // Busy mode: when a batch fills the slab, more frames are likely on the
  // way, so the fd leaves epoll (uv_poll_stop) until the end of this wake-up.
  // Otherwise every frame the kernel queues meanwhile (often frames the JS
  // callback itself causes) would run the epoll wake-up callback. Two
  // epoll_ctl calls per busy wake-up buy that back many times over; a quiet
  // wake-up (slab not full) stays registered and costs nothing extra.
  void Drain(int status) {
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    Napi::Object recv = this->Value();  // pins the wrapper while JS runs
    Napi::CallbackScope callbackScope(env, *async_);  // microtasks run once, at the end
    if (status < 0) {
      Fail(env, recv, -status, "poll");
      return;
    }
    bool detached = false;
    for (int b = 0; b < kMaxBatchesPerWakeup && state_ == State::kReading; ++b) {
      ReadResult r = static_cast<Derived*>(this)->ReadBatch(batchSize_);
      if (r.count == batchSize_ && !detached) {
        uv_poll_stop(poll_);
        detached = true;
      }
      if (r.count > 0) {
        counters_[kRxBatches] += 1;
        napi_value argv[1];
        napi_create_uint32(env, r.count, &argv[0]);
        napi_value result;
        if (napi_call_function(env, recv, onBatch_.Value(), 1, argv, &result) != napi_ok) RaiseUncaught(env);
      }
      if (r.err != 0) {
        if (state_ == State::kReading) Fail(env, recv, r.err, Derived::ReadSyscall());
        break;
      }
      if (r.count < batchSize_) break;  // drained: the kernel said EAGAIN
    }
    // Re-arm after busy mode, unless JS paused, closed or reading failed.
    if (detached && state_ == State::kReading) {
      int rc = uv_poll_start(poll_, UV_READABLE, &BatchSource::OnPoll);
      if (rc != 0) Fail(env, recv, -rc, "uv_poll_start");
    }
  }

  // A read error ends reading for good; JS hears about it once.
  void Fail(Napi::Env env, Napi::Object recv, int err, const char* syscall) {
    if (state_ == State::kReading) uv_poll_stop(poll_);
    if (state_ == State::kClosed) return;
    state_ = State::kFailed;
    Napi::Error e = static_cast<Derived*>(this)->ReadFailure(env, err, syscall);
    napi_value argv[1] = {e.Value()};
    napi_value result;
    if (napi_call_function(env, recv, onError_.Value(), 1, argv, &result) != napi_ok) RaiseUncaught(env);
  }

  // An exception thrown by a JS callback has no JS caller to go to: report it
  // like an exception thrown by an event handler ('uncaughtException').
  static void RaiseUncaught(Napi::Env env) {
    if (!env.IsExceptionPending()) return;
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }

  static void OnEnvTeardown(void* arg) {
    auto* self = static_cast<BatchSource*>(arg);
    self->hookInstalled_ = false;  // Node drops the hook after running it
    self->Shutdown(Teardown::kEnv);
  }

  // Stops polling, closes the fd and releases what JS holds. Idempotent.
  void Shutdown(Teardown how) {
    // (Not from the destructor: the subclass is gone by then, and its members
    // were destroyed first, which stops their users of the fd.)
    if (fd_ >= 0 && how != Teardown::kFinalizer) static_cast<Derived*>(this)->BeforeClose();
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    bool wasOpen = state_ != State::kClosed && env_ != nullptr;
    state_ = State::kClosed;
    if (hookInstalled_) {
      napi_remove_env_cleanup_hook(env_, &BatchSource::OnEnvTeardown, this);
      hookInstalled_ = false;
    }
    if (how == Teardown::kUser) {
      async_.reset();
      onBatch_.Reset();
      onError_.Reset();
      if (wasOpen) this->Unref();
    } else if (how == Teardown::kEnv) {
      // The environment is going away: leave JS-side handles to its teardown.
      (void)async_.release();
    }
  }

  napi_env env_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  State state_ = State::kClosed;
  bool hookInstalled_ = false;
  uint8_t* slab_ = nullptr;
  uint32_t batchSize_ = 0;
  uint32_t slotSize_ = 0;
  Napi::FunctionReference onBatch_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

}  // namespace nea
