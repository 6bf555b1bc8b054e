// A writer thread for a TAP/TUN queue: the JS thread copies frames into a
// ring and returns; the thread does the write() system calls.
//
// Why: a write to a TAP carries the kernel's whole delivery of the frame (the
// bridge, the veth, the receiving host's IP and transport layers) in the
// writer's time slice. On the receive side of the tunnel that was about three
// quarters of the appliance's time per 64-byte datagram (docs/performance.md,
// step 6), all of it on the thread that also reads the socket and opens the
// messages. With the writes on their own thread, the two halves run on two
// cores.
//
// Contracts:
// - One producer (the JS thread: Push, Publish, Stop) and one consumer (the
//   thread). Frames are written in the order they were pushed.
// - Push copies the frame; false when the ring has no room for it (the caller
//   counts it as dropped, as it would an EAGAIN from the kernel).
// - Publish makes pushed frames visible to the thread and wakes it if asleep.
// - Stop (also the destructor) ends the thread after the frame it is writing
//   and joins it; frames still in the ring are discarded. Call it before the
//   fd is closed.
// - Counters and the first write error are atomics the JS thread reads.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace nea {

class FrameWriter {
 public:
  // write(fd, frame, length) for one frame; length may carry flag bits the
  // function understands (the TAP's kWithHeader). Returns what write() does.
  using WriteFn = ssize_t (*)(int fd, bool vnet, const uint8_t* p, uint32_t length);

  FrameWriter(int fd, bool vnet, size_t ringBytes, uint32_t lengthMask, WriteFn write)
      : fd_(fd), vnet_(vnet), cap_(ringBytes & ~size_t{7}), mask_(lengthMask), write_(write),
        ring_(new uint8_t[cap_]) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FrameWriter() { Stop(); }

  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  // Producer: copies one frame (length & mask_ bytes at p) into the ring.
  bool Push(const uint8_t* p, uint32_t length) {
    const uint32_t bytes = length & mask_;
    const size_t need = kHeader + Align(bytes);
    if (need > cap_) return false;
    size_t off = head_ % cap_;
    size_t skip = off + need > cap_ ? cap_ - off : 0;  // records never wrap: skip to the start
    if (head_ + skip + need - tail_.load(std::memory_order_acquire) > cap_) return false;
    if (skip != 0) {
      Header(off, kSkip);
      head_ += skip;
      off = 0;
    }
    Header(off, length);
    memcpy(ring_.get() + off + kHeader, p, bytes);
    head_ += need;
    return true;
  }

  // Producer: hands what was pushed to the thread.
  void Publish() {
    published_.store(head_, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_one();
    }
  }

  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_seq_cst);
      wake_.notify_one();
    }
    thread_.join();
  }

  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> drops{0};
  // errno of the first write that failed for another reason than EAGAIN
  // since the JS thread last took it (0: none).
  std::atomic<int> error{0};

 private:
  static constexpr size_t kHeader = 8;                  // uint32 length, 4 bytes of padding
  static constexpr uint32_t kSkip = 0xffffffffu;        // the rest of the ring up to its end is unused
  static size_t Align(size_t n) { return (n + 7) & ~size_t{7}; }

  void Header(size_t off, uint32_t length) { memcpy(ring_.get() + off, &length, sizeof length); }

  void Run() {
    uint64_t tail = 0;
    for (;;) {
      if (stop_.load(std::memory_order_seq_cst)) return;
      uint64_t published = published_.load(std::memory_order_seq_cst);
      if (tail == published) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.store(true, std::memory_order_seq_cst);
        // No lost wake-up: either this check sees what Publish stored before
        // it read sleeping_, or Publish saw sleeping_ and notifies under the
        // mutex (all seq_cst), after this wait released it.
        wake_.wait(lock, [&] {
          return published_.load(std::memory_order_seq_cst) != tail || stop_.load(std::memory_order_seq_cst);
        });
        sleeping_.store(false, std::memory_order_seq_cst);
        continue;
      }
      while (tail != published && !stop_.load(std::memory_order_relaxed)) {
        const size_t off = tail % cap_;
        uint32_t length;
        memcpy(&length, ring_.get() + off, sizeof length);
        if (length == kSkip) {
          tail += cap_ - off;
        } else {
          WriteOne(ring_.get() + off + kHeader, length);
          tail += kHeader + Align(length & mask_);
        }
        tail_.store(tail, std::memory_order_release);
      }
    }
  }

  void WriteOne(const uint8_t* p, uint32_t length) {
    for (;;) {
      if (write_(fd_, vnet_, p, length) >= 0) {
        frames.fetch_add(1, std::memory_order_relaxed);
        bytes.fetch_add(length & mask_, std::memory_order_relaxed);
        return;
      }
      const int err = errno;
      if (err == EINTR) continue;
      drops.fetch_add(1, std::memory_order_relaxed);
      if (err != EAGAIN) {
        int none = 0;
        error.compare_exchange_strong(none, err, std::memory_order_relaxed);
      }
      return;
    }
  }

  const int fd_;
  const bool vnet_;
  const size_t cap_;
  const uint32_t mask_;
  const WriteFn write_;
  std::unique_ptr<uint8_t[]> ring_;
  uint64_t head_ = 0;                       // producer's write position (bytes ever pushed)
  std::atomic<uint64_t> published_{0};      // what the thread may write up to
  std::atomic<uint64_t> tail_{0};           // what the thread has written (the ring's free space)
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace nea
