// Batched UDP socket for the tunnel's hot path: recvmmsg into the shared slab,
// sendmmsg from caller buffers, one JS callback per received batch.
//
// JS: new UdpSocket(address, port, v6Only, batchSize, slotSize, rcvbuf, sndbuf,
//                   flags, onBatch, onError)
//   creates a non-blocking SOCK_DGRAM socket of the family of `address`
//   (IPv4 text -> AF_INET; IPv6 text -> AF_INET6, with IPV6_V6ONLY set to
//   `v6Only`), leaves SO_REUSEADDR off, sets the buffer sizes (rcvbuf/sndbuf
//   in bytes, 0 = keep the kernel default; SO_*BUFFORCE first, which needs
//   CAP_NET_ADMIN, then SO_*BUF, which the kernel caps at net.core.*mem_max)
//   and binds address:port (port 0 = an ephemeral port). Properties:
//   .family (4 | 6), .address, .port (what getsockname() reports), .rcvbuf,
//   .sndbuf (what the kernel reports: twice the size asked, see socket(7)),
//   .slab, .lengths, .counters (BatchSource), .srcAddrs, .srcPorts.
//
// Address layout (sources, destinations): 16 bytes per datagram holding the
// IPv6 form of the address (an IPv4 address as ::ffff:a.b.c.d, the
// IPv4-mapped form, whatever the socket's family), and the port in host order
// in a Uint16Array. The scope id of link-local IPv6 addresses is not carried.
//
// Receiving (BatchSource): recvmmsg() into slot i of the slab (length in
// lengths[i]) and its source into srcAddrs[16i, 16i + 16) / srcPorts[i].
// A datagram longer than a slot comes back with MSG_TRUNC: it is dropped and
// counted in kRxDrops, and the batch is compacted so that slots [0, count)
// are all delivered datagrams.
//
// Sending:
//   send(buf, offset, length, addr, port) -> boolean
//       one datagram to addr (16 bytes at addr[0]) : port; false when the
//       kernel refused it (EAGAIN: socket send buffer full).
//   sendBatch(buf, offsets, lengths, count, addrs, ports) -> number
//       datagram i = buf[offsets[i], offsets[i] + lengths[i]) with sendmmsg().
//       `ports` a number: every datagram goes to addrs[0, 16) : ports;
//       `ports` a Uint16Array: datagram i goes to addrs[16i, 16i + 16) : ports[i].
//       Returns how many were sent, in order; stops at the first EAGAIN (the
//       rest are counted in kTxDrops and are the caller's to retry or drop).
//       Any other error throws an errno error with .sent = datagrams sent
//       before the failing one (which is datagram .sent).
#include "batch_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <vector>

namespace nea {

namespace {

// sendmmsg/recvmmsg take at most UIO_MAXIOV (1024) messages per call.
constexpr uint32_t kMaxMessagesPerCall = 1024;
// Bytes of one address in the shared address arrays.
constexpr size_t kAddrBytes = 16;

// Flags of the constructor's `flags` argument (kept in sync with index.ts).
constexpr uint32_t kFlagGso = 1;  // UDP_SEGMENT on runs of sendBatch (SendRunsGso)
constexpr uint32_t kFlagGro = 2;  // UDP_GRO on receive (ReadBatchGro)
constexpr uint32_t kFlagDelay = 4;  // SO_TIMESTAMPNS: rxDelay[0] = queueing delay of each batch's first datagram


bool IsV4Mapped(const uint8_t* a) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a, kPrefix, 12) == 0;
}

// "a.b.c.d" for an IPv4-mapped address, the IPv6 text otherwise.
std::string AddrText(const uint8_t* a) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (IsV4Mapped(a)) inet_ntop(AF_INET, a + 12, text, sizeof text);
  else inet_ntop(AF_INET6, a, text, sizeof text);
  return text;
}

std::string EndpointText(const uint8_t* a, uint16_t port) {
  std::string t = AddrText(a);
  return (IsV4Mapped(a) ? t : "[" + t + "]") + ":" + std::to_string(port);
}

// The shared 16-byte form of a received source address.
void StoreSource(const sockaddr_in6& name, uint8_t* addr, uint16_t* port) {
  if (name.sin6_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(name);
    memset(addr, 0, 10);
    addr[10] = 0xff;
    addr[11] = 0xff;
    memcpy(addr + 12, &v4.sin_addr, 4);
    *port = ntohs(v4.sin_port);
  } else {
    memcpy(addr, &name.sin6_addr, 16);
    *port = ntohs(name.sin6_port);
  }
}

}  // namespace

class UdpSocket : public BatchSource<UdpSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    auto props = BaseMethods();
    props.push_back(InstanceMethod("send", &UdpSocket::Send));
    props.push_back(InstanceMethod("sendBatch", &UdpSocket::SendBatch));
    return DefineClass(env, "UdpSocket", props);
  }

  explicit UdpSocket(const Napi::CallbackInfo& info) : BatchSource<UdpSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 10 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean() ||
        !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsNumber() || !info[6].IsNumber() ||
        !info[7].IsNumber() || !info[8].IsFunction() || !info[9].IsFunction()) {
      Napi::TypeError::New(env,
                           "new UdpSocket(address: string, port: number, v6Only: boolean, batchSize: number, "
                           "slotSize: number, rcvbuf: number, sndbuf: number, flags: number, onBatch: function, "
                           "onError: function)")
          .ThrowAsJavaScriptException();
      return;
    }
    std::string address = info[0].As<Napi::String>().Utf8Value();
    uint32_t port, batchSize, slotSize, rcvbuf, sndbuf, flags;
    if (!ToUint32(env, info[1], &port, "port") || !ToUint32(env, info[3], &batchSize, "batchSize") ||
        !ToUint32(env, info[4], &slotSize, "slotSize") || !ToUint32(env, info[5], &rcvbuf, "rcvbuf") ||
        !ToUint32(env, info[6], &sndbuf, "sndbuf") || !ToUint32(env, info[7], &flags, "flags"))
      return;
    bool v6Only = info[2].As<Napi::Boolean>().Value();
    if (port > 65535) {
      Napi::RangeError::New(env, "port must be 0..65535").ThrowAsJavaScriptException();
      return;
    }
    if (batchSize < 1 || batchSize > kMaxBatchSize) {
      Napi::RangeError::New(env, "batchSize must be 1.." + std::to_string(kMaxBatchSize) + " datagrams")
          .ThrowAsJavaScriptException();
      return;
    }
    if (slotSize < kMinSlotSize || slotSize > kMaxSlotSize) {
      Napi::RangeError::New(env, "slotSize must be " + std::to_string(kMinSlotSize) + ".." +
                                     std::to_string(kMaxSlotSize) + " bytes")
          .ThrowAsJavaScriptException();
      return;
    }
    if ((flags & kFlagGro) != 0 && batchSize < kGroMaxSegments) {
      Napi::RangeError::New(env, "gro needs batchSize >= " + std::to_string(kGroMaxSegments) +
                                     " (one coalesced message can hold that many datagrams)")
          .ThrowAsJavaScriptException();
      return;
    }
    if (rcvbuf > 0x3fffffff || sndbuf > 0x3fffffff) {
      Napi::RangeError::New(env, "rcvbuf and sndbuf must be at most 2^30-1 bytes").ThrowAsJavaScriptException();
      return;
    }

    sockaddr_in6 local{};
    socklen_t localLen;
    in_addr v4{};
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
      family_ = AF_INET;
      auto& sin = reinterpret_cast<sockaddr_in&>(local);
      sin.sin_family = AF_INET;
      sin.sin_port = htons(static_cast<uint16_t>(port));
      sin.sin_addr = v4;
      localLen = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &local.sin6_addr) == 1) {
      family_ = AF_INET6;
      local.sin6_family = AF_INET6;
      local.sin6_port = htons(static_cast<uint16_t>(port));
      localLen = sizeof(sockaddr_in6);
    } else {
      ErrnoError(env, EINVAL, "inet_pton", "cannot open a UDP socket on '" + address + "'",
                 "not an IPv4 or IPv6 address (no host names, no %zone)")
          .ThrowAsJavaScriptException();
      return;
    }
    const std::string where = "UDP port " + std::to_string(port) + " on " + address;

    int fd = socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
      int err = errno;
      ErrnoError(env, err, "socket", "cannot create a UDP socket for " + address,
                 err == EAFNOSUPPORT ? "IPv6 is disabled on this host" : "")
          .ThrowAsJavaScriptException();
      return;
    }
    auto fail = [&](int err, const char* syscall, const std::string& what, const std::string& hint) {
      ::close(fd);
      ErrnoError(env, err, syscall, what, hint).ThrowAsJavaScriptException();
    };
    const int off = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &off, sizeof off) < 0) {
      fail(errno, "setsockopt", "cannot clear SO_REUSEADDR on " + where, "");
      return;
    }
    if (family_ == AF_INET6) {
      const int only = v6Only ? 1 : 0;
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only) < 0) {
        fail(errno, "setsockopt", "cannot set IPV6_V6ONLY on " + where, "");
        return;
      }
    }
    if (!SetBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) || !SetBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf)) {
      fail(errno, "setsockopt", "cannot set the socket buffer sizes of " + where, "");
      return;
    }
    if ((flags & kFlagGro) != 0) {
      const int on = 1;
      if (setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) {
        fail(errno, "setsockopt", "cannot enable UDP_GRO on " + where, "the kernel lacks UDP GRO (Linux 5.0+)");
        return;
      }
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), localLen) < 0) {
      int err = errno;
      std::string hint;
      switch (err) {
        case EADDRINUSE:
          hint = "another socket holds it: stop that program, or pick another port (0 picks a free one)";
          break;
        case EACCES:
          hint = "ports below net.ipv4.ip_unprivileged_port_start (usually 1024) need CAP_NET_BIND_SERVICE: "
                 "run as root or pick a higher port";
          break;
        case EADDRNOTAVAIL:
          hint = "address " + address + " is not on this host/namespace: add it to an interface or bind " +
                 (family_ == AF_INET ? "0.0.0.0" : "::");
          break;
        default:
          break;
      }
      fail(err, "bind", err == EADDRINUSE ? where + " is in use" : "cannot bind " + where, hint);
      return;
    }
    sockaddr_in6 bound{};
    socklen_t boundLen = sizeof bound;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLen) < 0) {
      fail(errno, "getsockname", "cannot read the bound address of " + where, "");
      return;
    }
    uint8_t boundAddr[kAddrBytes];
    uint16_t boundPort;
    StoreSource(bound, boundAddr, &boundPort);
    int actualRcv = 0, actualSnd = 0;
    socklen_t optLen = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actualRcv, &optLen);
    optLen = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &actualSnd, &optLen);

    Napi::Object self = info.This().As<Napi::Object>();
    if (!Attach(env, self, fd, batchSize, slotSize, info[8].As<Napi::Function>(), info[9].As<Napi::Function>(),
                "nea.Udp")) {
      return;
    }
    Napi::Uint8Array srcAddrs = Napi::Uint8Array::New(env, size_t{batchSize} * kAddrBytes);
    Napi::Uint16Array srcPorts = Napi::Uint16Array::New(env, batchSize);
    if (env.IsExceptionPending()) return;
    srcAddrs_ = srcAddrs.Data();
    srcPorts_ = srcPorts.Data();
    gso_ = (flags & kFlagGso) != 0;
    gro_ = (flags & kFlagGro) != 0;
    delay_ = (flags & kFlagDelay) != 0 && !gro_;
    Napi::Float64Array rxDelay = Napi::Float64Array::New(env, 1);
    if (env.IsExceptionPending()) return;
    rxDelayMs_ = rxDelay.Data();
    rxDelayMs_[0] = -1;
    self.Set("rxDelay", rxDelay);
    if (delay_) {
      int on = 1;
      if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) delay_ = false;
    }

    rxMsgs_.resize(batchSize);
    rxIov_.resize(batchSize);
    rxNames_.resize(batchSize);
    for (uint32_t i = 0; i < batchSize; ++i) {
      rxIov_[i].iov_base = Slot(i);
      rxIov_[i].iov_len = slotSize;
      msghdr& h = rxMsgs_[i].msg_hdr;
      h.msg_name = &rxNames_[i];
      h.msg_iov = &rxIov_[i];
      h.msg_iovlen = 1;
    }
    if (gso_ || gro_) InitOffload();

    self.Set("srcAddrs", srcAddrs);
    self.Set("srcPorts", srcPorts);
    self.Set("family", Napi::Number::New(env, family_ == AF_INET ? 4 : 6));
    self.Set("address", Napi::String::New(env, AddrText(boundAddr)));
    self.Set("port", Napi::Number::New(env, boundPort));
    self.Set("rcvbuf", Napi::Number::New(env, actualRcv));
    self.Set("sndbuf", Napi::Number::New(env, actualSnd));
    where_ = "UDP port " + std::to_string(boundPort) + " on " + address;
  }

  static const char* ReadSyscall() { return "recvmmsg"; }

  Napi::Error ReadFailure(Napi::Env env, int err, const char* syscall) const {
    return ErrnoError(env, err, syscall, "receiving on " + where_ + " failed; receiving stopped",
                      "close and reopen the socket");
  }

  // Receives datagrams into slots [0, max) until EAGAIN or the slab is full.
  ReadResult ReadBatch(uint32_t max) {
    if (gro_) return ReadBatchGro(max);
    const int fd = Fd();
    uint32_t n = 0;
    double bytes = 0;
    int err = 0;
    while (n < max) {
      const uint32_t want = std::min(max - n, kMaxMessagesPerCall);
      for (uint32_t j = n; j < n + want; ++j) {
        rxMsgs_[j].msg_hdr.msg_namelen = sizeof(sockaddr_in6);
        rxMsgs_[j].msg_hdr.msg_flags = 0;
      }
      // The batch's first datagram carries its receive time (the oldest: the queue is FIFO).
      const bool stamp = delay_ && n == 0;
      if (stamp) {
        rxMsgs_[0].msg_hdr.msg_control = stampCmsg_.buf;
        rxMsgs_[0].msg_hdr.msg_controllen = sizeof stampCmsg_.buf;
      }
      int r = recvmmsg(fd, &rxMsgs_[n], want, MSG_DONTWAIT, nullptr);
      if (stamp) {
        rxDelayMs_[0] = r > 0 ? DelayMs(rxMsgs_[0].msg_hdr) : -1;
        rxMsgs_[0].msg_hdr.msg_control = nullptr;
        rxMsgs_[0].msg_hdr.msg_controllen = 0;
      }
      if (r < 0) {
        if (errno == EINTR) continue;
        if (!IsTransientReadError(errno)) err = errno;
        break;
      }
      // Keep slots [0, n) dense: a truncated datagram leaves a hole that the
      // datagrams after it move down into (rare: only oversize datagrams).
      uint32_t kept = n;
      for (uint32_t j = n; j < n + static_cast<uint32_t>(r); ++j) {
        const mmsghdr& m = rxMsgs_[j];
        if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
          counters_[kRxDrops] += 1;
          continue;
        }
        if (kept != j) memmove(Slot(kept), Slot(j), m.msg_len);
        lengths_[kept] = m.msg_len;
        StoreSource(rxNames_[j], srcAddrs_ + size_t{kept} * kAddrBytes, srcPorts_ + kept);
        bytes += m.msg_len;
        ++kept;
      }
      n = kept;
      if (static_cast<uint32_t>(r) < want) break;  // the queue is empty
    }
    counters_[kRxFrames] += n;
    counters_[kRxBytes] += bytes;
    return {n, err};
  }

 private:
  // Milliseconds between the kernel's receive timestamp (SCM_TIMESTAMPNS,
  // CLOCK_REALTIME) of a message and now; -1 without one.
  static double DelayMs(const msghdr& h) {
    for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(&h)); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts, now;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        clock_gettime(CLOCK_REALTIME, &now);
        double ms = static_cast<double>(now.tv_sec - ts.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec - ts.tv_nsec) / 1e6;
        return ms < 0 ? 0 : ms;
      }
    }
    return -1;
  }

  // Errors a receive can report for an earlier datagram or a passing ICMP
  // message; the socket stays usable, so they end the batch, not reading.
  static bool IsTransientReadError(int err) {
    return err == EAGAIN || err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
           err == ENETDOWN || err == EPERM || err == ENOMEM || err == ENOBUFS;
  }

  // SO_*BUFFORCE (CAP_NET_ADMIN: beyond net.core.*mem_max), else SO_*BUF.
  static bool SetBuffer(int fd, int forceOpt, int opt, uint32_t bytes) {
    if (bytes == 0) return true;
    const int v = static_cast<int>(bytes);
    if (setsockopt(fd, SOL_SOCKET, forceOpt, &v, sizeof v) == 0) return true;
    return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v) == 0;
  }

  // Fills `name` with the destination addr:port in the socket's family.
  // Returns 0, or EAFNOSUPPORT for an IPv6 address on an IPv4 socket.
  int MakeName(const uint8_t* addr, uint16_t port, sockaddr_in6* name, socklen_t* len) const {
    if (family_ == AF_INET) {
      if (!IsV4Mapped(addr)) return EAFNOSUPPORT;
      auto* sin = reinterpret_cast<sockaddr_in*>(name);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      memcpy(&sin->sin_addr, addr + 12, 4);
      *len = sizeof(sockaddr_in);
    } else {
      name->sin6_family = AF_INET6;
      name->sin6_port = htons(port);
      name->sin6_flowinfo = 0;
      memcpy(&name->sin6_addr, addr, 16);
      name->sin6_scope_id = 0;
      *len = sizeof(sockaddr_in6);
    }
    return 0;
  }

  Napi::Error SendError(Napi::Env env, int err, const char* syscall, const std::string& what, const uint8_t* addr,
                        uint16_t port, uint32_t length) const {
    std::string dest = EndpointText(addr, port);
    std::string hint;
    switch (err) {
      case ENETUNREACH:
      case EHOSTUNREACH:
      case ENETDOWN:
        hint = "no route to " + dest + " from this namespace: check the routes (ip route get " + AddrText(addr) + ")";
        break;
      case EMSGSIZE:
        hint = "a datagram of " + std::to_string(length) +
               " bytes is too long (UDP carries at most 65507 bytes over IPv4, 65527 over IPv6; less when the "
               "path does not fragment)";
        break;
      case EAFNOSUPPORT:
        hint = "cannot send to IPv6 " + dest + " from an IPv4 socket: bind to :: to use both families";
        break;
      case EPERM:
        hint = "a firewall rule (nftables) in this namespace refused the datagram to " + dest;
        break;
      case EACCES:
        hint = dest + " is a broadcast address (SO_BROADCAST is off)";
        break;
      case EINVAL:
        hint = "the kernel refused the destination " + dest + " (port 0?) or the datagram";
        break;
      case EADDRNOTAVAIL:
        hint = "cannot reach " + dest + " from " + where_;
        break;
      default:
        hint = "destination " + dest;
        break;
    }
    return ErrnoError(env, err, syscall, what, hint);
  }

  static Napi::Value ThrowClosed(Napi::Env env, const char* what) {
    ErrnoError(env, EBADF, "sendmmsg", std::string(what) + "(): the UDP socket is closed").ThrowAsJavaScriptException();
    return Napi::Value();
  }

  // send(buf, offset, length, addr, port) -> boolean
  Napi::Value Send(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "send");
    if (info.Length() < 5) {
      Napi::TypeError::New(env, "send(buf, offset, length, addr, port)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    size_t bufLen = 0, addrLen = 0;
    uint32_t offset, length, port;
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr || !ToUint32(env, info[1], &offset, "offset") || !ToUint32(env, info[2], &length, "length"))
      return Napi::Value();
    auto* addr = TypedArrayData<uint8_t>(env, info[3], napi_uint8_array, &addrLen, "addr");
    if (addr == nullptr || !ToUint32(env, info[4], &port, "port")) return Napi::Value();
    if (uint64_t{offset} + length > bufLen) {
      Napi::RangeError::New(env, "send(): offset + length is beyond the end of buf").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (addrLen < kAddrBytes || port > 65535) {
      Napi::RangeError::New(env, "send(): addr must hold 16 bytes and port be 0..65535").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    sockaddr_in6 name{};
    socklen_t nameLen = 0;
    int err = MakeName(addr, static_cast<uint16_t>(port), &name, &nameLen);
    if (err == 0) {
      for (;;) {
        ssize_t w = sendto(Fd(), buf + offset, length, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&name), nameLen);
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
        err = errno;
        break;
      }
    }
    Napi::Error e = SendError(env, err, "sendto", "sending a datagram from " + where_ + " failed", addr,
                              static_cast<uint16_t>(port), length);
    e.Set("sent", Napi::Number::New(env, 0));
    e.ThrowAsJavaScriptException();
    return Napi::Value();
  }

  // sendBatch(buf, offsets, lengths, count, addrs, ports) -> number
  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "sendBatch");
    if (info.Length() < 6) {
      Napi::TypeError::New(env, "sendBatch(buf, offsets, lengths, count, addrs, ports)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    size_t bufLen = 0, nOffsets = 0, nLengths = 0, addrLen = 0, nPorts = 0;
    uint32_t count, onePort = 0;
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr) return Napi::Value();
    auto* offsets = TypedArrayData<uint32_t>(env, info[1], napi_uint32_array, &nOffsets, "offsets");
    if (offsets == nullptr) return Napi::Value();
    auto* lengths = TypedArrayData<uint32_t>(env, info[2], napi_uint32_array, &nLengths, "lengths");
    if (lengths == nullptr || !ToUint32(env, info[3], &count, "count")) return Napi::Value();
    auto* addrs = TypedArrayData<uint8_t>(env, info[4], napi_uint8_array, &addrLen, "addrs");
    if (addrs == nullptr) return Napi::Value();
    const bool single = info[5].IsNumber();
    const uint16_t* ports = nullptr;
    if (single) {
      if (!ToUint32(env, info[5], &onePort, "port")) return Napi::Value();
    } else {
      ports = TypedArrayData<uint16_t>(env, info[5], napi_uint16_array, &nPorts, "ports");
      if (ports == nullptr) return Napi::Value();
    }
    if (count > nOffsets || count > nLengths) {
      Napi::RangeError::New(env, "sendBatch(): count is larger than offsets or lengths").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (single ? (addrLen < kAddrBytes || onePort > 65535) : (addrLen < size_t{count} * kAddrBytes || nPorts < count)) {
      Napi::RangeError::New(env, single ? "sendBatch(): addrs must hold 16 bytes and port be 0..65535"
                                        : "sendBatch(): addrs must hold 16 bytes and ports one entry per datagram")
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    for (uint32_t i = 0; i < count; ++i) {
      if (uint64_t{offsets[i]} + lengths[i] > bufLen) {
        Napi::RangeError::New(env, "sendBatch(): datagram " + std::to_string(i) + " is beyond the end of buf")
            .ThrowAsJavaScriptException();
        return Napi::Value();
      }
    }
    Batch b{buf, offsets, lengths, count, addrs, ports, static_cast<uint16_t>(onePort)};
    uint32_t sent = 0;
    int err = gso_ ? SendRunsGso(b, &sent) : SendPlain(b, &sent);
    double bytes = 0;
    for (uint32_t i = 0; i < sent; ++i) bytes += lengths[i];
    counters_[kTxFrames] += sent;
    counters_[kTxBytes] += bytes;
    if (err == EAGAIN) {
      counters_[kTxDrops] += count - sent;
    } else if (err != 0) {
      const uint8_t* a = single ? addrs : addrs + size_t{sent} * kAddrBytes;
      uint16_t p = single ? b.onePort : ports[sent];
      Napi::Error e = SendError(env, err, "sendmmsg", "sending datagram " + std::to_string(sent) + " from " + where_ + " failed",
                                a, p, lengths[sent]);
      e.Set("sent", Napi::Number::New(env, sent));
      e.ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return Napi::Number::New(env, sent);
  }

  // One sendBatch call's arguments, checked.
  struct Batch {
    const uint8_t* buf;
    const uint32_t* offsets;
    const uint32_t* lengths;
    uint32_t count;
    const uint8_t* addrs;
    const uint16_t* ports;  // nullptr: one destination, addrs[0, 16) : onePort
    uint16_t onePort;
    const uint8_t* Addr(uint32_t i) const { return ports == nullptr ? addrs : addrs + size_t{i} * kAddrBytes; }
    uint16_t Port(uint32_t i) const { return ports == nullptr ? onePort : ports[i]; }
  };

  // sendmmsg, one message per datagram, up to kMaxMessagesPerCall per call.
  // Sets *sent to the datagrams sent in order; returns 0, EAGAIN, or the
  // errno of datagram *sent.
  int SendPlain(const Batch& b, uint32_t* sent) {
    if (txMsgs_.empty()) {
      txMsgs_.resize(kMaxMessagesPerCall);
      txIov_.resize(kMaxMessagesPerCall);
      txNames_.resize(kMaxMessagesPerCall);
    }
    uint32_t i = 0;
    while (i < b.count) {
      // Build messages for datagrams [i, i + k).
      uint32_t k = 0;
      int badDest = 0;
      socklen_t oneLen = 0;
      if (b.ports == nullptr) {
        badDest = MakeName(b.addrs, b.onePort, &txNames_[0], &oneLen);
        if (badDest != 0) {
          *sent = i;
          return badDest;
        }
      }
      while (i + k < b.count && k < kMaxMessagesPerCall) {
        const uint32_t d = i + k;
        msghdr& h = txMsgs_[k].msg_hdr;
        if (b.ports == nullptr) {
          h.msg_name = &txNames_[0];
          h.msg_namelen = oneLen;
        } else {
          socklen_t len = 0;
          badDest = MakeName(b.Addr(d), b.Port(d), &txNames_[k], &len);
          if (badDest != 0) break;
          h.msg_name = &txNames_[k];
          h.msg_namelen = len;
        }
        txIov_[k].iov_base = const_cast<uint8_t*>(b.buf + b.offsets[d]);
        txIov_[k].iov_len = b.lengths[d];
        h.msg_iov = &txIov_[k];
        h.msg_iovlen = 1;
        h.msg_control = nullptr;
        h.msg_controllen = 0;
        h.msg_flags = 0;
        ++k;
      }
      if (k == 0) {
        *sent = i;
        return badDest;
      }
      int r = sendmmsg(Fd(), txMsgs_.data(), k, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        *sent = i;
        return errno;
      }
      // A short count means datagram i + r failed; the next call reports why.
      i += static_cast<uint32_t>(r);
    }
    *sent = i;
    return 0;
  }

  // ---- Offload (flags kFlagGso / kFlagGro; off by default) ----

  void InitOffload() {
    if (gso_) {
      txMsgs_.resize(kMaxMessagesPerCall);
      txIov_.resize(kMaxMessagesPerCall);
      txNames_.resize(kMaxMessagesPerCall);
      txCmsg_.resize(kMaxMessagesPerCall);
      txFirst_.resize(kMaxMessagesPerCall + 1);
    }
    if (gro_) {
      groBuf_.resize(size_t{kGroMessages} * kGroBufBytes);
      groMsgs_.resize(kGroMessages);
      groIov_.resize(kGroMessages);
      groNames_.resize(kGroMessages);
      groCmsg_.resize(kGroMessages);
      for (uint32_t i = 0; i < kGroMessages; ++i) {
        groIov_[i].iov_base = groBuf_.data() + size_t{i} * kGroBufBytes;
        groIov_[i].iov_len = kGroBufBytes;
        msghdr& h = groMsgs_[i].msg_hdr;
        h.msg_name = &groNames_[i];
        h.msg_iov = &groIov_[i];
        h.msg_iovlen = 1;
      }
    }
  }

  // GSO send: a run of datagrams to one destination whose lengths are all
  // equal (the last may be shorter) goes out as ONE message with UDP_SEGMENT
  // = that length; the kernel (or the NIC) cuts it into datagrams. Other
  // datagrams go out as plain messages of the same sendmmsg call. A run is
  // at most kMaxGsoSegments datagrams and kMaxGsoBytes bytes, and its size at
  // most gsoMaxSize_ (learned: the kernel refuses a segment size beyond the
  // path MTU with EMSGSIZE, and then the run is resent plain). Returns as
  // SendPlain.
  int SendRunsGso(const Batch& b, uint32_t* sent) {
    uint32_t i = 0;
    while (i < b.count) {
      uint32_t k = 0;       // messages built
      uint32_t iovs = 0;    // iovecs used
      uint32_t d = i;       // next datagram
      int badDest = 0;
      while (d < b.count && k < kMaxMessagesPerCall && iovs < kMaxMessagesPerCall) {
        socklen_t len = 0;
        badDest = MakeName(b.Addr(d), b.Port(d), &txNames_[k], &len);
        if (badDest != 0) break;
        const uint32_t size = b.lengths[d];
        uint32_t e = d + 1;
        if (size > 0 && size <= gsoMaxSize_) {
          uint32_t bytes = size;
          while (e < b.count && e - d < kMaxGsoSegments && iovs + (e - d) < kMaxMessagesPerCall &&
                 b.lengths[e] <= size && b.lengths[e] > 0 && bytes + b.lengths[e] <= kMaxGsoBytes &&
                 SameDest(b, d, e)) {
            bytes += b.lengths[e];
            const bool last = b.lengths[e] < size;
            ++e;
            if (last) break;  // only the last segment may be shorter
          }
        }
        msghdr& h = txMsgs_[k].msg_hdr;
        h.msg_name = &txNames_[k];
        h.msg_namelen = len;
        h.msg_iov = &txIov_[iovs];
        h.msg_iovlen = e - d;
        for (uint32_t x = d; x < e; ++x, ++iovs) {
          txIov_[iovs].iov_base = const_cast<uint8_t*>(b.buf + b.offsets[x]);
          txIov_[iovs].iov_len = b.lengths[x];
        }
        if (e - d > 1) {
          GsoCmsg& c = txCmsg_[k];
          h.msg_control = c.buf;
          h.msg_controllen = sizeof c.buf;
          cmsghdr* cm = CMSG_FIRSTHDR(&h);
          cm->cmsg_level = SOL_UDP;
          cm->cmsg_type = UDP_SEGMENT;
          cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
          const uint16_t seg = static_cast<uint16_t>(size);
          memcpy(CMSG_DATA(cm), &seg, sizeof seg);
        } else {
          h.msg_control = nullptr;
          h.msg_controllen = 0;
        }
        h.msg_flags = 0;
        txFirst_[k] = d;
        ++k;
        d = e;
      }
      txFirst_[k] = d;
      if (k == 0) {
        *sent = i;
        return badDest;
      }
      int r = sendmmsg(Fd(), txMsgs_.data(), k, MSG_DONTWAIT);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        const uint32_t segs = txFirst_[1] - txFirst_[0];
        if ((err == EMSGSIZE || err == EINVAL || err == EIO) && segs > 1) {
          // The first message was a GSO run the kernel refused: EMSGSIZE
          // (EINVAL before Linux 6.x) when the segment size exceeds the path
          // MTU, EIO when the device has no checksum offload. Send the run
          // plain and remember the limit.
          Batch run = b;
          run.count = i + segs;
          uint32_t plainSent = 0;
          int e2 = SendPlainFrom(run, i, &plainSent);
          if (e2 != 0) {  // not a GSO matter: the datagram itself fails
            *sent = plainSent;
            return e2;
          }
          gsoMaxSize_ = err == EIO ? 0 : b.lengths[i] - 1;
          i = plainSent;
          continue;
        }
        *sent = i;
        return err;
      }
      i = txFirst_[r];
    }
    *sent = i;
    return 0;
  }

  static bool SameDest(const Batch& b, uint32_t x, uint32_t y) {
    return b.ports == nullptr ||
           (b.ports[x] == b.ports[y] && memcmp(b.Addr(x), b.Addr(y), kAddrBytes) == 0);
  }

  // SendPlain for datagrams [from, b.count).
  int SendPlainFrom(const Batch& b, uint32_t from, uint32_t* sent) {
    Batch rest = b;
    rest.buf = b.buf;
    rest.offsets = b.offsets + from;
    rest.lengths = b.lengths + from;
    rest.count = b.count - from;
    if (b.ports != nullptr) {
      rest.addrs = b.addrs + size_t{from} * kAddrBytes;
      rest.ports = b.ports + from;
    }
    uint32_t n = 0;
    int err = SendPlain(rest, &n);
    *sent = from + n;
    return err;
  }

  // GRO receive: with UDP_GRO the kernel may hand over several datagrams of
  // one flow as one message (a UDP_GRO cmsg gives their size; the last may be
  // shorter). recvmmsg() lands messages in 64 KiB scratch buffers and their
  // datagrams are copied out into slots. A message is received only while
  // kGroMaxSegments slots are free, so every datagram of it finds a slot
  // (batchSize >= kGroMaxSegments is checked at open); a message with more
  // segments than that (no kernel sends one) loses the excess, counted in
  // kRxDrops, as do datagrams longer than a slot.
  ReadResult ReadBatchGro(uint32_t max) {
    const int fd = Fd();
    const uint32_t slotSize = SlotSize();
    uint32_t n = 0;
    double bytes = 0;
    int err = 0;
    while (max - n >= kGroMaxSegments) {
      const uint32_t want = std::min(kGroMessages, (max - n) / kGroMaxSegments);
      for (uint32_t j = 0; j < want; ++j) {
        msghdr& h = groMsgs_[j].msg_hdr;
        h.msg_namelen = sizeof(sockaddr_in6);
        h.msg_control = groCmsg_[j].buf;
        h.msg_controllen = sizeof groCmsg_[j].buf;
        h.msg_flags = 0;
      }
      int r = recvmmsg(fd, groMsgs_.data(), want, MSG_DONTWAIT, nullptr);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (!IsTransientReadError(errno)) err = errno;
        break;
      }
      for (uint32_t j = 0; j < static_cast<uint32_t>(r); ++j) {
        mmsghdr& m = groMsgs_[j];
        const uint8_t* data = static_cast<const uint8_t*>(groIov_[j].iov_base);
        const uint32_t total = m.msg_len;
        const uint32_t gso = GroSize(m);
        const uint32_t seg = gso != 0 ? gso : std::max<uint32_t>(total, 1);
        uint32_t off = 0;
        do {
          const uint32_t len = std::min(seg, total - off);
          if (len > slotSize || n == max || (m.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
            counters_[kRxDrops] += 1;
          } else {
            memcpy(Slot(n), data + off, len);
            lengths_[n] = len;
            StoreSource(groNames_[j], srcAddrs_ + size_t{n} * kAddrBytes, srcPorts_ + n);
            bytes += len;
            ++n;
          }
          off += len;
        } while (off < total);
      }
      if (static_cast<uint32_t>(r) < want) break;  // the queue is empty
    }
    counters_[kRxFrames] += n;
    counters_[kRxBytes] += bytes;
    return {n, err};
  }

  // The UDP_GRO segment size of a received message, or 0 (one datagram).
  static uint32_t GroSize(mmsghdr& m) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr); c != nullptr; c = CMSG_NXTHDR(&m.msg_hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int v = 0;
        memcpy(&v, CMSG_DATA(c), sizeof v);
        return v > 0 ? static_cast<uint32_t>(v) : 0;
      }
    }
    return 0;
  }

  // Most datagrams in one GSO message (the kernel's UDP_MAX_SEGMENTS is 64 on
  // older kernels), and most payload bytes in one (below 65507, IPv4's limit).
  static constexpr uint32_t kMaxGsoSegments = 64;
  static constexpr uint32_t kMaxGsoBytes = 65000;
  // GRO: messages per recvmmsg, bytes per scratch buffer (a whole UDP
  // datagram), and most datagrams per message (the kernel's UDP_MAX_SEGMENTS
  // is 128 on recent kernels; GRO itself stops at 64).
  static constexpr uint32_t kGroMessages = 8;
  static constexpr uint32_t kGroMaxSegments = 128;
  static constexpr uint32_t kGroBufBytes = 65536;

  struct GsoCmsg {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
  };
  struct GroCmsg {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
  };

  int family_ = AF_INET;
  bool gso_ = false;
  bool gro_ = false;
  std::string where_;
  uint8_t* srcAddrs_ = nullptr;
  uint16_t* srcPorts_ = nullptr;
  bool delay_ = false;
  double* rxDelayMs_ = nullptr;
  struct alignas(cmsghdr) {
    uint8_t buf[CMSG_SPACE(sizeof(timespec))];
  } stampCmsg_{};
  std::vector<mmsghdr> rxMsgs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_in6> rxNames_;
  std::vector<mmsghdr> txMsgs_;
  std::vector<iovec> txIov_;
  std::vector<sockaddr_in6> txNames_;
  // GSO state.
  std::vector<GsoCmsg> txCmsg_;
  std::vector<uint32_t> txFirst_;  // first datagram of each message built
  uint32_t gsoMaxSize_ = 65535;    // largest segment size tried with GSO (bytes)
  // GRO scratch buffers.
  std::vector<uint8_t> groBuf_;
  std::vector<mmsghdr> groMsgs_;
  std::vector<iovec> groIov_;
  std::vector<sockaddr_in6> groNames_;
  std::vector<GroCmsg> groCmsg_;
};

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocket", UdpSocket::Define(env));
}

}  // namespace nea
