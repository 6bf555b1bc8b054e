// TAP (Ethernet) and TUN (IP) devices: one object per queue.
//
// JS: new TunTap(name, tun, multiQueue, batchSize, slotSize, onBatch, onError[, vnetHdr])
//   opens /dev/net/tun (O_RDWR | O_NONBLOCK | O_CLOEXEC) and attaches queue to
//   the interface `name` with IFF_NO_PI (no packet-information header: slots
//   hold bare Ethernet frames for a TAP, bare IP packets for a TUN), creating
//   it if needed. With multiQueue (IFF_MULTI_QUEUE), open the same name again
//   for each further queue; the kernel spreads flows over the queues.
//   A non-persistent device disappears when its last queue closes.
//
// vnetHdr (IFF_VNET_HDR, little-endian): every frame crosses the fd with a
// 10-byte struct virtio_net_hdr in front. Slot i then holds that header at
// i*slotSize and the frame at i*slotSize + 10 (lengths[] count the frame
// only). On read, a frame without GSO whose checksum the kernel left to us
// (NEEDS_CSUM) gets it computed here and its header zeroed, so JS sees a
// finished frame and a zero header; a GSO super-frame (only after
// setOffload(true)) keeps its header for JS to carry. On write, a length with
// bit 31 set (kWithHeader) means the frame starts with its own header;
// otherwise a zero header is written in front (writev).
//   setOffload(on) -> TUNSETOFFLOAD: CSUM|TSO4|TSO6 when on (the kernel
//   hands over TCP super-frames up to 64 KiB), none when off.
//
// Reading is inherited from BatchSource (uv_poll + slab + one onBatch(count)
// per batch). Writing:
//   write(buf, offset, length) -> boolean   false when the kernel refused the
//                                           frame (EAGAIN): the caller decides
//   writeBatch(buf, offsets, lengths, count) -> number of frames written, in
//                                           order; stops at the first EAGAIN
//                                           (the rest are the caller's: retry
//                                           later or drop)
// Other write errors throw an errno error; writeBatch's error carries
// .written, the number of frames written before the failing one.
//   startWriter(ringBytes)                  from now on, write and writeBatch
//                                           copy the frames into a ring of
//                                           ringBytes and return; a writer
//                                           thread does the system calls, in
//                                           order (frame_writer.h). A frame
//                                           the ring has no room for counts as
//                                           refused (as EAGAIN); an error of
//                                           the thread's writes is thrown by
//                                           the next write or writeBatch.
//   syncCounters()                          brings the tx counters up to what
//                                           the writer thread has done (in
//                                           writer mode they move only then,
//                                           and at close)
#include "batch_source.h"
#include "frame_writer.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

namespace nea {

namespace {

constexpr const char* kTunPath = "/dev/net/tun";
constexpr uint32_t kVnetHdrLen = 10;  // struct virtio_net_hdr
constexpr uint32_t kWithHeader = 0x80000000u;
constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
const uint8_t kZeroHdr[kVnetHdrLen] = {};

inline uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// One frame; with a virtio header, `length` may carry kWithHeader (the frame
// starts with its own header), else a zero header goes first.
ssize_t WriteTapFrame(int fd, bool vnet, const uint8_t* p, uint32_t length) {
  if (!vnet) return ::write(fd, p, length);
  if ((length & kWithHeader) != 0) return ::write(fd, p, length & ~kWithHeader);
  struct iovec v[2];
  v[0].iov_base = const_cast<uint8_t*>(kZeroHdr);
  v[0].iov_len = kVnetHdrLen;
  v[1].iov_base = const_cast<uint8_t*>(p);
  v[1].iov_len = length;
  return ::writev(fd, v, 2);
}

// Bounds of startWriter's ring.
constexpr double kMinRingBytes = 256 * 1024;
constexpr double kMaxRingBytes = 256 * 1024 * 1024;

// Finishes a partial checksum: the one's complement sum of frame[start, len)
// (the field at start + offset holds the pseudo-header sum) goes into that
// field. False when the offsets do not fit the frame.
bool FinishChecksum(uint8_t* frame, uint32_t len, uint32_t start, uint32_t offset) {
  if (start >= len || uint64_t{start} + offset + 2 > len) return false;
  uint64_t sum = 0;
  const uint8_t* p = frame + start;
  uint32_t n = len - start;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    // Sum 16-bit big-endian words: byte-swap each 32-bit half into host order.
    uint32_t lo = static_cast<uint32_t>(w), hi = static_cast<uint32_t>(w >> 32);
    sum += __builtin_bswap32(lo);
    sum += __builtin_bswap32(hi);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    sum += static_cast<uint32_t>((p[0] << 8) | p[1]);
    p += 2;
    n -= 2;
  }
  if (n == 1) sum += static_cast<uint32_t>(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint16_t c = static_cast<uint16_t>(~sum);
  if (c == 0) c = 0xffff;  // equivalent in one's complement; required for UDP
  frame[start + offset] = static_cast<uint8_t>(c >> 8);
  frame[start + offset + 1] = static_cast<uint8_t>(c);
  return true;
}

}  // namespace

class TunTap : public BatchSource<TunTap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    auto props = BaseMethods();
    props.push_back(InstanceMethod("write", &TunTap::Write));
    props.push_back(InstanceMethod("writeBatch", &TunTap::WriteBatch));
    props.push_back(InstanceMethod("setOffload", &TunTap::SetOffload));
    props.push_back(InstanceMethod("startWriter", &TunTap::StartWriter));
    props.push_back(InstanceMethod("syncCounters", &TunTap::SyncCounters));
    return DefineClass(env, "TunTap", props);
  }

  explicit TunTap(const Napi::CallbackInfo& info) : BatchSource<TunTap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 7 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsBoolean() ||
        !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsFunction() || !info[6].IsFunction()) {
      Napi::TypeError::New(env,
                           "new TunTap(name: string, tun: boolean, multiQueue: boolean, batchSize: number, "
                           "slotSize: number, onBatch: function, onError: function)")
          .ThrowAsJavaScriptException();
      return;
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    bool tun = info[1].As<Napi::Boolean>().Value();
    bool multiQueue = info[2].As<Napi::Boolean>().Value();
    uint32_t batchSize = info[3].As<Napi::Number>().Uint32Value();
    uint32_t slotSize = info[4].As<Napi::Number>().Uint32Value();
    const bool vnet = info.Length() > 7 && info[7].IsBoolean() && info[7].As<Napi::Boolean>().Value();
    const char* kind = tun ? "TUN" : "TAP";

    if (batchSize < 1 || batchSize > kMaxBatchSize) {
      Napi::RangeError::New(env, "batchSize must be 1.." + std::to_string(kMaxBatchSize) + " frames")
          .ThrowAsJavaScriptException();
      return;
    }
    if (slotSize < kMinSlotSize || slotSize > kMaxSlotSize) {
      Napi::RangeError::New(env, "slotSize must be " + std::to_string(kMinSlotSize) + ".." +
                                     std::to_string(kMaxSlotSize) + " bytes")
          .ThrowAsJavaScriptException();
      return;
    }
    // Checked up front: the kernel would silently truncate a long name.
    if (name.size() >= IFNAMSIZ) {
      ErrnoError(env, ENAMETOOLONG, "TUNSETIFF",
                 std::string("cannot open ") + kind + " '" + name + "': the name has " + std::to_string(name.size()) +
                     " characters",
                 "Linux interface names have at most " + std::to_string(IFNAMSIZ - 1) + " characters")
          .ThrowAsJavaScriptException();
      return;
    }

    int fd = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      std::string hint;
      if (err == ENOENT || err == ENODEV || err == ENXIO)
        hint = "load the tun module (modprobe tun) or create the node (mknod /dev/net/tun c 10 200)";
      else if (err == EACCES || err == EPERM)
        hint = "TAP/TUN devices need root (access to /dev/net/tun and CAP_NET_ADMIN): run as root";
      ErrnoError(env, err, "open", std::string("cannot open ") + kTunPath + " for " + kind + " '" + name + "'", hint)
          .ThrowAsJavaScriptException();
      return;
    }

    struct ifreq ifr {};
    ifr.ifr_flags = static_cast<short>((tun ? IFF_TUN : IFF_TAP) | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0) |
                                       (vnet ? IFF_VNET_HDR : 0));
    memcpy(ifr.ifr_name, name.data(), name.size());
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int err = errno;
      close(fd);
      std::string hint;
      switch (err) {
        case EPERM:
        case EACCES:
          hint = std::string("creating or attaching to ") + kind + " devices needs CAP_NET_ADMIN: run as root";
          break;
        case EBUSY:
          hint = "interface name " + name + " is already in use by an open " + kind +
                 " (not multi-queue): close it or pick another name";
          break;
        case EINVAL:
          hint = "interface name " + name + " is already in use by another link (not a " + kind +
                 " with the same multi-queue setting): pick another name or delete that link";
          break;
        default:
          break;
      }
      ErrnoError(env, err, "TUNSETIFF", std::string("cannot open ") + kind + " '" + name + "'", hint)
          .ThrowAsJavaScriptException();
      return;
    }
    ifr.ifr_name[IFNAMSIZ - 1] = '\0';
    if (vnet) {
      int size = kVnetHdrLen, le = 1;
      (void)ioctl(fd, TUNSETVNETLE, &le);  // little-endian fields on every architecture (native on x86)
      if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
        int err = errno;
        close(fd);
        ErrnoError(env, err, "TUNSETVNETHDRSZ", std::string("cannot set up the virtio header of ") + kind + " '" + name + "'")
            .ThrowAsJavaScriptException();
        return;
      }
    }
    vnet_ = vnet;

    Napi::Object self = info.This().As<Napi::Object>();
    if (!Attach(env, self, fd, batchSize, slotSize, info[5].As<Napi::Function>(), info[6].As<Napi::Function>(),
                tun ? "nea.Tun" : "nea.Tap")) {
      return;
    }
    name_ = ifr.ifr_name;
    kind_ = kind;
    self.Set("name", Napi::String::New(env, name_));
    self.Set("vnetHdr", Napi::Boolean::New(env, vnet));
  }

  static const char* ReadSyscall() { return "read"; }

  // Reads frames into slots [0, max) (max <= the slab's slots) until EAGAIN
  // or the slab is full. Each read offers one byte more than a slot: a frame
  // that fills it is longer than a slot, came back truncated (the kernel
  // copies what fits), and is dropped and counted in kRxDrops. That extra
  // byte lands in the next slot, which is free; the last slot reads with
  // readv() into a scratch byte instead.
  ReadResult ReadBatch(uint32_t max) {
    const int fd = Fd();
    const uint32_t slotSize = SlotSize();
    struct iovec last[2];
    last[0].iov_base = Slot(max - 1);
    last[0].iov_len = slotSize;
    last[1].iov_base = &overflow_;
    last[1].iov_len = 1;
    const uint32_t hdr = vnet_ ? kVnetHdrLen : 0;
    uint32_t n = 0;
    double bytes = 0;
    int err = 0;
    while (n < max) {
      ssize_t r = n + 1 < max ? read(fd, Slot(n), slotSize + 1) : readv(fd, last, 2);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) err = errno;
        break;
      }
      if (r == 0) continue;
      if (static_cast<size_t>(r) > slotSize || static_cast<size_t>(r) <= hdr) {
        counters_[kRxDrops] += 1;
        continue;
      }
      uint32_t len = static_cast<uint32_t>(r) - hdr;
      if (vnet_) {
        uint8_t* h = Slot(n);
        if (h[1] == 0) {  // VIRTIO_NET_HDR_GSO_NONE
          if ((h[0] & kNeedsCsum) != 0 && !FinishChecksum(h + kVnetHdrLen, len, Le16(h + 6), Le16(h + 8))) {
            counters_[kRxDrops] += 1;
            continue;
          }
          memset(h, 0, kVnetHdrLen);
        }
      }
      lengths_[n++] = len;
      bytes += static_cast<double>(len);
    }
    counters_[kRxFrames] += n;
    counters_[kRxBytes] += bytes;
    return {n, err};
  }

 private:
  // write(buf, offset, length) -> boolean
  Napi::Value Write(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "write");
    size_t bufLen = 0;
    uint32_t offset, length;
    if (info.Length() < 3) {
      Napi::TypeError::New(env, "write(buf, offset, length)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr || !ToUint32(env, info[1], &offset, "offset") || !ToUint32(env, info[2], &length, "length"))
      return Napi::Value();
    if (uint64_t{offset} + length > bufLen) {
      Napi::RangeError::New(env, "write(): offset + length is beyond the end of buf").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (writer_) {
      if (ThrowWriterError(env)) return Napi::Value();
      return Napi::Boolean::New(env, Enqueue(buf, &offset, &length, 1) == 1);
    }
    for (;;) {
      ssize_t w = WriteFrame(buf + offset, length);
      if (w >= 0) {
        counters_[kTxFrames] += 1;
        counters_[kTxBytes] += length;
        return Napi::Boolean::New(env, true);
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        counters_[kTxDrops] += 1;
        return Napi::Boolean::New(env, false);
      }
      WriteError(env, errno, "writing a frame to " + kind_ + " " + name_ + " failed").ThrowAsJavaScriptException();
      return Napi::Value();
    }
  }

  // writeBatch(buf, offsets, lengths, count) -> number
  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "writeBatch");
    if (info.Length() < 4) {
      Napi::TypeError::New(env, "writeBatch(buf, offsets, lengths, count)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    size_t bufLen = 0, nOffsets = 0, nLengths = 0;
    uint32_t count;
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr) return Napi::Value();
    auto* offsets = TypedArrayData<uint32_t>(env, info[1], napi_uint32_array, &nOffsets, "offsets");
    if (offsets == nullptr) return Napi::Value();
    auto* lengths = TypedArrayData<uint32_t>(env, info[2], napi_uint32_array, &nLengths, "lengths");
    if (lengths == nullptr || !ToUint32(env, info[3], &count, "count")) return Napi::Value();
    if (count > nOffsets || count > nLengths) {
      Napi::RangeError::New(env, "writeBatch(): count is larger than offsets or lengths").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    for (uint32_t i = 0; i < count; ++i) {
      if (uint64_t{offsets[i]} + (lengths[i] & ~kWithHeader) > bufLen || (!vnet_ && (lengths[i] & kWithHeader) != 0)) {
        Napi::RangeError::New(env, "writeBatch(): frame " + std::to_string(i) + " is beyond the end of buf")
            .ThrowAsJavaScriptException();
        return Napi::Value();
      }
    }
    if (writer_) {
      if (ThrowWriterError(env)) return Napi::Value();
      return Napi::Number::New(env, Enqueue(buf, offsets, lengths, count));
    }
    uint32_t i = 0;
    double bytes = 0;
    int err = 0;
    while (i < count) {
      ssize_t w = WriteFrame(buf + offsets[i], lengths[i]);
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      bytes += lengths[i] & ~kWithHeader;
      ++i;
    }
    counters_[kTxFrames] += i;
    counters_[kTxBytes] += bytes;
    if (err == EAGAIN) {
      counters_[kTxDrops] += count - i;
    } else if (err != 0) {
      Napi::Error e = WriteError(env, err, "writing frame " + std::to_string(i) + " to " + kind_ + " " + name_ + " failed");
      e.Set("written", Napi::Number::New(env, i));
      e.ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return Napi::Number::New(env, i);
  }

  ssize_t WriteFrame(const uint8_t* p, uint32_t length) { return WriteTapFrame(Fd(), vnet_, p, length); }

  // startWriter(ringBytes)
  Napi::Value StartWriter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!IsOpen()) return ThrowClosed(env, "startWriter");
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "startWriter(ringBytes: number)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    const double ring = info[0].As<Napi::Number>().DoubleValue();
    if (!(ring >= kMinRingBytes && ring <= kMaxRingBytes)) {
      Napi::RangeError::New(env, "startWriter(): ringBytes must be " + std::to_string(static_cast<int>(kMinRingBytes)) +
                                     ".." + std::to_string(static_cast<int>(kMaxRingBytes)))
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (writer_) return env.Undefined();
    for (int k = 0; k < 3; ++k) txBase_[k] = counters_[kTxFrames + k];
    try {
      writer_ = std::make_unique<FrameWriter>(Fd(), vnet_, static_cast<size_t>(ring), vnet_ ? ~kWithHeader : ~0u,
                                              &WriteTapFrame);
    } catch (const std::exception& e) {  // no memory for the ring, or no thread (std::system_error)
      Napi::Error::New(env, std::string("startWriter(): cannot start the writer thread of ") + kind_ + " " + name_ + ": " +
                                e.what())
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return env.Undefined();
  }

  // syncCounters()
  Napi::Value SyncCounters(const Napi::CallbackInfo& info) {
    if (writer_) SyncWriterCounters();
    return info.Env().Undefined();
  }

  void SyncWriterCounters() {
    counters_[kTxFrames] = txBase_[0] + static_cast<double>(writer_->frames.load(std::memory_order_relaxed));
    counters_[kTxBytes] = txBase_[1] + static_cast<double>(writer_->bytes.load(std::memory_order_relaxed));
    counters_[kTxDrops] = txBase_[2] + static_cast<double>(writer_->drops.load(std::memory_order_relaxed));
  }

  // Writer mode: copies frames into the ring, in order, until one does not
  // fit (it and the rest are refused, counted as drops); returns how many went in.
  uint32_t Enqueue(const uint8_t* buf, const uint32_t* offsets, const uint32_t* lengths, uint32_t count) {
    uint32_t n = 0;
    while (n < count && writer_->Push(buf + offsets[n], lengths[n])) ++n;
    if (n > 0) writer_->Publish();
    if (n < count) writer_->drops.fetch_add(count - n, std::memory_order_relaxed);
    return n;
  }

  // Throws the writer thread's first failed write since the last call, if
  // any (a plain load first: the hot path pays no read-modify-write).
  bool ThrowWriterError(napi_env env) {
    if (writer_->error.load(std::memory_order_relaxed) == 0) return false;
    const int err = writer_->error.exchange(0, std::memory_order_relaxed);
    if (err == 0) return false;
    Napi::Error e = WriteError(env, err, "writing a frame to " + kind_ + " " + name_ + " failed (writer thread)");
    e.Set("written", Napi::Number::New(env, 0));
    e.ThrowAsJavaScriptException();
    return true;
  }

 public:
  // Called by BatchSource::Shutdown before the fd is closed.
  void BeforeClose() {
    if (!writer_) return;
    writer_->Stop();
    SyncWriterCounters();
    writer_.reset();
  }

 private:
  // setOffload(on: boolean)
  Napi::Value SetOffload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!IsOpen()) return ThrowClosed(env, "setOffload");
    if (!vnet_) {
      Napi::Error::New(env, "setOffload(): the device was opened without a virtio header").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    bool on = info.Length() > 0 && info[0].ToBoolean().Value();
    unsigned long flags = on ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) : 0;
    if (ioctl(Fd(), TUNSETOFFLOAD, flags) < 0) {
      ErrnoError(env, errno, "TUNSETOFFLOAD", "cannot change the offloads of " + kind_ + " " + name_)
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return env.Undefined();
  }

  Napi::Error WriteError(Napi::Env env, int err, const std::string& what) const {
    std::string hint;
    if (err == EIO) hint = "the interface is down: bring it up (ip link set " + name_ + " up)";
    else if (err == EINVAL) hint = "the frame is shorter than a header or longer than the device accepts";
    else if (err == EBADFD) hint = "the interface was deleted: close and reopen the device";
    return ErrnoError(env, err, "write", what, hint);
  }

  static Napi::Value ThrowClosed(Napi::Env env, const char* what) {
    ErrnoError(env, EBADF, "write", std::string(what) + "(): the device is closed").ThrowAsJavaScriptException();
    return Napi::Value();
  }

  std::string name_;
  std::string kind_;
  uint8_t overflow_ = 0;  // receives the byte beyond the last slot (see ReadBatch)
  bool vnet_ = false;     // IFF_VNET_HDR: a virtio_net_hdr in front of every frame
  std::unique_ptr<FrameWriter> writer_;  // startWriter(): writes go through a thread
  double txBase_[3] = {0, 0, 0};         // tx counters when the writer started
};

// Keeps this shared object mapped for the life of the process. A worker
// thread's teardown unloads its addons (dlclose) before libuv runs the close
// callbacks of handles closed during that teardown; those callbacks live in
// this file, so the object must outlive every environment that loaded it.
static void PinAddon() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&PinAddon), &info) != 0 && info.dli_fname != nullptr) {
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}

void InitTunTap(Napi::Env env, Napi::Object exports) {
  PinAddon();
  exports.Set("TunTap", TunTap::Define(env));
  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxBatchSize", Napi::Number::New(env, kMaxBatchSize));
  limits.Set("minSlotSize", Napi::Number::New(env, kMinSlotSize));
  limits.Set("maxSlotSize", Napi::Number::New(env, kMaxSlotSize));
  limits.Set("maxBatchesPerWakeup", Napi::Number::New(env, kMaxBatchesPerWakeup));
  exports.Set("tunTapLimits", limits);
}

}  // namespace nea
