// AF_PACKET socket on one interface, for VLAN trunks in user space: batched
// receive that recovers each frame's outer VLAN tag, batched send that
// inserts a tag without copying the frame.
//
// JS: new PacketSocket(ifname, batchSize, slotSize, rcvbuf, flags, filter, onBatch, onError)
//   socket(AF_PACKET, SOCK_RAW, 0) (no frames queue before bind), then:
//   PACKET_AUXDATA on (the kernel's VLAN metadata of each frame),
//   PACKET_IGNORE_OUTGOING on (frames this host sends are not read back),
//   SO_RCVBUF(FORCE) = rcvbuf (0 = kernel default), the classic BPF
//   `filter` (a Uint8Array of sock_filter structs, or null) with
//   SO_ATTACH_FILTER, then bind(ETH_P_ALL, ifindex of ifname), then with
//   kFlagPromisc a PACKET_MR_PROMISC membership (dropped by the kernel when
//   the socket closes). Properties: .name, .ifindex, .slab, .lengths,
//   .counters (BatchSource), .tags (Uint32Array, see below).
//
// Receiving (BatchSource): recvmmsg() into slot i of the slab. On receive
// the kernel takes the outer 802.1Q/802.1ad tag out of the frame into skb
// metadata (skb_vlan_untag, before packet taps run), so the bytes read are
// the frame WITHOUT its outer tag; the tag comes back in the PACKET_AUXDATA
// control message (tp_vlan_tci, tp_vlan_tpid, TP_STATUS_VLAN_VALID,
// TP_STATUS_VLAN_TPID_VALID). tags[i] = (tpid << 16) | tci for a tagged
// frame, 0 for an untagged one (a TPID is never 0, so 0 is unambiguous).
// A frame that still carries its outer tag in its bytes (no metadata: a
// driver or path that did not untag) is normalized here: the tag is moved
// out of the bytes into tags[i], so JS sees one form. Inner tags (a
// double-tagged frame) stay in the bytes. Frames longer than a slot come
// back with MSG_TRUNC: dropped and counted in kRxDrops, and the batch is
// compacted so slots [0, count) are delivered frames. Outgoing frames are
// skipped even where PACKET_IGNORE_OUTGOING is missing (sll_pkttype).
//
// Sending:
//   send(buf, offset, length, tag) -> boolean
//   sendBatch(buf, offsets, lengths, count, tags) -> number
//       frame i = buf[offsets[i], offsets[i] + lengths[i]) with sendmmsg().
//       `tags` a number: the tag of every frame; a Uint32Array: tags[i] for
//       frame i. A tag is (tpid << 16) | tci as on receive; 0 sends the frame
//       as it is. A tag is inserted after the MAC addresses by the iovec
//       (12 bytes of the frame, 4 bytes of tag, the rest of the frame): the
//       frame is not copied. Returns how many frames the kernel took, in
//       order; stops at the first EAGAIN/ENOBUFS (the rest are counted in
//       kTxDrops: the caller's to retry or drop). Other errors throw an errno
//       error with .sent = frames sent before the failing one.
#include "batch_source.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <vector>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef TP_STATUS_VLAN_TPID_VALID
#define TP_STATUS_VLAN_TPID_VALID (1 << 6)
#endif

namespace nea {

namespace {

// sendmmsg/recvmmsg take at most UIO_MAXIOV (1024) messages per call.
constexpr uint32_t kMaxMessagesPerCall = 1024;
// Flags of the constructor's `flags` argument (kept in sync with index of packet.ts).
constexpr uint32_t kFlagPromisc = 1;
// Smallest frame: two MAC addresses and an EtherType.
constexpr uint32_t kMinFrame = 14;
// Longest classic BPF program the kernel accepts (BPF_MAXINSNS).
constexpr size_t kMaxFilterInsns = 4096;


bool IsTagType(uint16_t type) { return type == ETH_P_8021Q || type == ETH_P_8021AD || type == 0x9100; }

// Control buffer of one received message: room for one tpacket_auxdata.
struct AuxControl {
  alignas(cmsghdr) uint8_t bytes[CMSG_SPACE(sizeof(tpacket_auxdata))];
};

}  // namespace

class PacketSocket : public BatchSource<PacketSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    auto props = BaseMethods();
    props.push_back(InstanceMethod("send", &PacketSocket::Send));
    props.push_back(InstanceMethod("sendBatch", &PacketSocket::SendBatch));
    return DefineClass(env, "PacketSocket", props);
  }

  explicit PacketSocket(const Napi::CallbackInfo& info) : BatchSource<PacketSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 8 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() ||
        !info[3].IsNumber() || !info[4].IsNumber() || !info[6].IsFunction() || !info[7].IsFunction()) {
      Napi::TypeError::New(env,
                           "new PacketSocket(ifname: string, batchSize: number, slotSize: number, rcvbuf: number, "
                           "flags: number, filter: Uint8Array | null, onBatch: function, onError: function)")
          .ThrowAsJavaScriptException();
      return;
    }
    name_ = info[0].As<Napi::String>().Utf8Value();
    uint32_t batchSize, slotSize, rcvbuf, flags;
    if (!ToUint32(env, info[1], &batchSize, "batchSize") || !ToUint32(env, info[2], &slotSize, "slotSize") ||
        !ToUint32(env, info[3], &rcvbuf, "rcvbuf") || !ToUint32(env, info[4], &flags, "flags"))
      return;
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
    if (rcvbuf > 0x3fffffff) {
      Napi::RangeError::New(env, "rcvbuf must be at most 2^30-1 bytes").ThrowAsJavaScriptException();
      return;
    }
    std::vector<sock_filter> program;
    if (!info[5].IsNull() && !info[5].IsUndefined()) {
      size_t n = 0;
      auto* bytes = TypedArrayData<uint8_t>(env, info[5], napi_uint8_array, &n, "filter");
      if (bytes == nullptr) return;
      if (n == 0 || n % sizeof(sock_filter) != 0 || n / sizeof(sock_filter) > kMaxFilterInsns) {
        Napi::RangeError::New(env, "filter must hold 1.." + std::to_string(kMaxFilterInsns) +
                                       " instructions of 8 bytes (struct sock_filter)")
            .ThrowAsJavaScriptException();
        return;
      }
      program.resize(n / sizeof(sock_filter));
      memcpy(program.data(), bytes, n);
    }
    if (name_.empty() || name_.size() >= IFNAMSIZ) {
      ErrnoError(env, name_.empty() ? EINVAL : ENAMETOOLONG, "if_nametoindex",
                 "cannot open a packet socket on '" + name_ + "'", "not a valid interface name (1-15 characters)")
          .ThrowAsJavaScriptException();
      return;
    }
    ifindex_ = static_cast<int>(if_nametoindex(name_.c_str()));
    if (ifindex_ == 0) {
      int err = errno == 0 ? ENODEV : errno;
      ErrnoError(env, err, "if_nametoindex", "cannot open a packet socket on '" + name_ + "'",
                 "no such interface in this network namespace")
          .ThrowAsJavaScriptException();
      return;
    }
    const std::string where = "packet socket on " + name_;

    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int err = errno;
      ErrnoError(env, err, "socket", "cannot create a " + where,
                 err == EPERM || err == EACCES ? "packet sockets need CAP_NET_RAW: run as root" : "")
          .ThrowAsJavaScriptException();
      return;
    }
    auto fail = [&](int err, const char* syscall, const std::string& what, const std::string& hint) {
      ::close(fd);
      ErrnoError(env, err, syscall, what, hint).ThrowAsJavaScriptException();
    };
    const int on = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &on, sizeof on) < 0) {
      fail(errno, "setsockopt", "cannot enable PACKET_AUXDATA on the " + where, "");
      return;
    }
    // Linux 4.20+; older kernels: outgoing frames are skipped by their sll_pkttype.
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof on);
    if (rcvbuf > 0) {
      const int v = static_cast<int>(rcvbuf);
      if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0) {
        fail(errno, "setsockopt", "cannot set the receive buffer of the " + where, "");
        return;
      }
    }
    if (!program.empty()) {
      sock_fprog prog{};
      prog.len = static_cast<unsigned short>(program.size());
      prog.filter = program.data();
      if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) {
        fail(errno, "setsockopt", "cannot attach the BPF filter to the " + where,
             errno == EINVAL ? "the kernel refused the program as invalid" : "");
        return;
      }
    }
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = ifindex_;
    if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) < 0) {
      int err = errno;
      fail(err, "bind", "cannot bind the " + where,
           err == ENODEV ? "the interface disappeared" : err == ENETDOWN ? "the interface is down" : "");
      return;
    }
    if ((flags & kFlagPromisc) != 0) {
      packet_mreq mr{};
      mr.mr_ifindex = ifindex_;
      mr.mr_type = PACKET_MR_PROMISC;
      if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
        fail(errno, "setsockopt", "cannot put " + name_ + " in promiscuous mode", "");
        return;
      }
    }

    Napi::Object self = info.This().As<Napi::Object>();
    if (!Attach(env, self, fd, batchSize, slotSize, info[6].As<Napi::Function>(), info[7].As<Napi::Function>(),
                "nea.Packet")) {
      return;
    }
    Napi::Uint32Array tags = Napi::Uint32Array::New(env, batchSize);
    if (env.IsExceptionPending()) return;
    tags_ = tags.Data();
    rxMsgs_.resize(batchSize);
    rxIov_.resize(batchSize);
    rxNames_.resize(batchSize);
    rxControl_.resize(batchSize);
    for (uint32_t i = 0; i < batchSize; ++i) {
      rxIov_[i].iov_base = Slot(i);
      rxIov_[i].iov_len = slotSize;
      msghdr& h = rxMsgs_[i].msg_hdr;
      h.msg_name = &rxNames_[i];
      h.msg_iov = &rxIov_[i];
      h.msg_iovlen = 1;
    }
    self.Set("tags", tags);
    self.Set("name", Napi::String::New(env, name_));
    self.Set("ifindex", Napi::Number::New(env, ifindex_));
    where_ = where;
  }

  static const char* ReadSyscall() { return "recvmmsg"; }

  Napi::Error ReadFailure(Napi::Env env, int err, const char* syscall) const {
    return ErrnoError(env, err, syscall, "receiving on the " + where_ + " failed; receiving stopped",
                      err == ENETDOWN || err == ENXIO || err == ENODEV
                          ? "the interface went away: close and reopen the socket"
                          : "close and reopen the socket");
  }

  // Receives frames into slots [0, max) until EAGAIN or the slab is full.
  ReadResult ReadBatch(uint32_t max) {
    const int fd = Fd();
    uint32_t n = 0;
    double bytes = 0;
    int err = 0;
    while (n < max) {
      const uint32_t want = std::min(max - n, kMaxMessagesPerCall);
      for (uint32_t j = n; j < n + want; ++j) {
        msghdr& h = rxMsgs_[j].msg_hdr;
        h.msg_namelen = sizeof(sockaddr_ll);
        h.msg_control = rxControl_[j].bytes;
        h.msg_controllen = sizeof(AuxControl);
        h.msg_flags = 0;
      }
      int r = recvmmsg(fd, &rxMsgs_[n], want, MSG_DONTWAIT, nullptr);
      if (r < 0) {
        if (errno == EINTR) continue;
        // ENETDOWN: the interface went down with frames queued; the socket
        // stays usable and reads again once it is up.
        if (errno != EAGAIN && errno != ENETDOWN && errno != ENOBUFS && errno != ENOMEM) err = errno;
        break;
      }
      // Keep slots [0, n) dense: a skipped frame leaves a hole that the
      // frames after it move down into (rare: oversize or outgoing frames).
      uint32_t kept = n;
      for (uint32_t j = n; j < n + static_cast<uint32_t>(r); ++j) {
        const mmsghdr& m = rxMsgs_[j];
        if (rxNames_[j].sll_pkttype == PACKET_OUTGOING) continue;
        if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0 || m.msg_len < kMinFrame) {
          counters_[kRxDrops] += 1;
          continue;
        }
        uint32_t len = m.msg_len;
        if (kept != j) memmove(Slot(kept), Slot(j), len);
        tags_[kept] = OuterTag(m.msg_hdr, Slot(kept), &len);
        lengths_[kept] = len;
        bytes += len;
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
  // The outer tag of a received frame as (tpid << 16) | tci, 0 when untagged.
  // From the auxdata when the kernel untagged it; else from the bytes, which
  // are then shifted over the tag (*len shrinks by 4).
  static uint32_t OuterTag(const msghdr& h, uint8_t* frame, uint32_t* len) {
    for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(&h)); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
      if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA ||
          c->cmsg_len < CMSG_LEN(sizeof(tpacket_auxdata)))
        continue;
      tpacket_auxdata aux;
      memcpy(&aux, CMSG_DATA(c), sizeof aux);
      if ((aux.tp_status & TP_STATUS_VLAN_VALID) != 0) {
        const uint32_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) != 0 ? aux.tp_vlan_tpid : ETH_P_8021Q;
        return (tpid << 16) | aux.tp_vlan_tci;
      }
      break;
    }
    const uint16_t type = static_cast<uint16_t>((frame[12] << 8) | frame[13]);
    if (!IsTagType(type) || *len < kMinFrame + 4) return 0;
    const uint32_t tci = static_cast<uint32_t>((frame[14] << 8) | frame[15]);
    memmove(frame + 12, frame + 16, *len - 16);
    *len -= 4;
    return (uint32_t{type} << 16) | tci;
  }

  static Napi::Value ThrowClosed(Napi::Env env, const char* what) {
    ErrnoError(env, EBADF, "sendmmsg", std::string(what) + "(): the packet socket is closed").ThrowAsJavaScriptException();
    return Napi::Value();
  }

  Napi::Error SendError(Napi::Env env, int err, const char* syscall, const std::string& what, uint32_t length) const {
    std::string hint;
    switch (err) {
      case EMSGSIZE:
        hint = "a frame of " + std::to_string(length) + " bytes is longer than the MTU of " + name_ + " allows";
        break;
      case ENETDOWN:
        hint = name_ + " is down: bring it up (ip link set " + name_ + " up)";
        break;
      case ENXIO:
      case ENODEV:
        hint = name_ + " was deleted: close and reopen the socket";
        break;
      case EINVAL:
        hint = "the frame is shorter than an Ethernet header";
        break;
      default:
        break;
    }
    return ErrnoError(env, err, syscall, what, hint);
  }

  // Fills the iovecs of one message: the frame, or the frame with a 4-byte
  // tag (from tagBytes) inserted after its MAC addresses.
  static size_t FrameIov(uint8_t* frame, uint32_t length, uint32_t tag, uint8_t* tagBytes, iovec* iov) {
    if (tag == 0) {
      iov[0].iov_base = frame;
      iov[0].iov_len = length;
      return 1;
    }
    tagBytes[0] = static_cast<uint8_t>(tag >> 24);
    tagBytes[1] = static_cast<uint8_t>(tag >> 16);
    tagBytes[2] = static_cast<uint8_t>(tag >> 8);
    tagBytes[3] = static_cast<uint8_t>(tag);
    iov[0].iov_base = frame;
    iov[0].iov_len = 12;
    iov[1].iov_base = tagBytes;
    iov[1].iov_len = 4;
    iov[2].iov_base = frame + 12;
    iov[2].iov_len = length - 12;
    return 3;
  }

  // send(buf, offset, length, tag) -> boolean
  Napi::Value Send(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "send");
    if (info.Length() < 4) {
      Napi::TypeError::New(env, "send(buf, offset, length, tag)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    size_t bufLen = 0;
    uint32_t offset, length, tag;
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr || !ToUint32(env, info[1], &offset, "offset") || !ToUint32(env, info[2], &length, "length") ||
        !ToUint32(env, info[3], &tag, "tag"))
      return Napi::Value();
    if (uint64_t{offset} + length > bufLen) {
      Napi::RangeError::New(env, "send(): offset + length is beyond the end of buf").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (length < kMinFrame) {
      Napi::RangeError::New(env, "send(): a frame has at least 14 bytes").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    iovec iov[3];
    uint8_t tagBytes[4];
    msghdr h{};
    h.msg_iov = iov;
    h.msg_iovlen = FrameIov(buf + offset, length, tag, tagBytes, iov);
    for (;;) {
      ssize_t w = sendmsg(Fd(), &h, MSG_DONTWAIT);
      if (w >= 0) {
        counters_[kTxFrames] += 1;
        counters_[kTxBytes] += length + (tag != 0 ? 4 : 0);
        return Napi::Boolean::New(env, true);
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS) {
        counters_[kTxDrops] += 1;
        return Napi::Boolean::New(env, false);
      }
      Napi::Error e = SendError(env, errno, "sendmsg", "sending a frame on the " + where_ + " failed", length);
      e.Set("sent", Napi::Number::New(env, 0));
      e.ThrowAsJavaScriptException();
      return Napi::Value();
    }
  }

  // sendBatch(buf, offsets, lengths, count, tags) -> number
  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (!IsOpen()) return ThrowClosed(info.Env(), "sendBatch");
    if (info.Length() < 5) {
      Napi::TypeError::New(env, "sendBatch(buf, offsets, lengths, count, tags)").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    size_t bufLen = 0, nOffsets = 0, nLengths = 0, nTags = 0;
    uint32_t count, oneTag = 0;
    auto* buf = TypedArrayData<uint8_t>(env, info[0], napi_uint8_array, &bufLen, "buf");
    if (buf == nullptr) return Napi::Value();
    auto* offsets = TypedArrayData<uint32_t>(env, info[1], napi_uint32_array, &nOffsets, "offsets");
    if (offsets == nullptr) return Napi::Value();
    auto* lengths = TypedArrayData<uint32_t>(env, info[2], napi_uint32_array, &nLengths, "lengths");
    if (lengths == nullptr || !ToUint32(env, info[3], &count, "count")) return Napi::Value();
    const uint32_t* tags = nullptr;
    if (info[4].IsNumber()) {
      if (!ToUint32(env, info[4], &oneTag, "tag")) return Napi::Value();
    } else {
      tags = TypedArrayData<uint32_t>(env, info[4], napi_uint32_array, &nTags, "tags");
      if (tags == nullptr) return Napi::Value();
    }
    if (count > nOffsets || count > nLengths || (tags != nullptr && count > nTags)) {
      Napi::RangeError::New(env, "sendBatch(): count is larger than offsets, lengths or tags")
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    for (uint32_t i = 0; i < count; ++i) {
      if (uint64_t{offsets[i]} + lengths[i] > bufLen) {
        Napi::RangeError::New(env, "sendBatch(): frame " + std::to_string(i) + " is beyond the end of buf")
            .ThrowAsJavaScriptException();
        return Napi::Value();
      }
      if (lengths[i] < kMinFrame) {
        Napi::RangeError::New(env, "sendBatch(): frame " + std::to_string(i) + " is shorter than 14 bytes")
            .ThrowAsJavaScriptException();
        return Napi::Value();
      }
    }
    const uint32_t chunk = std::min(count, kMaxMessagesPerCall);
    if (txMsgs_.size() < chunk) {
      txMsgs_.resize(chunk);
      txIov_.resize(size_t{chunk} * 3);
      txTags_.resize(size_t{chunk} * 4);
    }
    uint32_t sent = 0;
    double bytes = 0;
    int err = 0;
    while (sent < count) {
      const uint32_t want = std::min(count - sent, kMaxMessagesPerCall);
      for (uint32_t k = 0; k < want; ++k) {
        const uint32_t i = sent + k;
        const uint32_t tag = tags != nullptr ? tags[i] : oneTag;
        msghdr& h = txMsgs_[k].msg_hdr;
        h = msghdr{};
        h.msg_iov = &txIov_[size_t{k} * 3];
        h.msg_iovlen = FrameIov(buf + offsets[i], lengths[i], tag, &txTags_[size_t{k} * 4], h.msg_iov);
      }
      int r = sendmmsg(Fd(), txMsgs_.data(), want, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      for (uint32_t k = 0; k < static_cast<uint32_t>(r); ++k) {
        const uint32_t i = sent + k;
        bytes += lengths[i] + ((tags != nullptr ? tags[i] : oneTag) != 0 ? 4 : 0);
      }
      sent += static_cast<uint32_t>(r);
      if (static_cast<uint32_t>(r) < want) {
        // sendmmsg reports an error after the first message only as a short
        // count: the next call (starting at the failed frame) tells which.
        continue;
      }
    }
    counters_[kTxFrames] += sent;
    counters_[kTxBytes] += bytes;
    if (err == EAGAIN || err == ENOBUFS) {
      counters_[kTxDrops] += count - sent;
    } else if (err != 0) {
      Napi::Error e = SendError(env, err, "sendmmsg",
                                "sending frame " + std::to_string(sent) + " on the " + where_ + " failed",
                                lengths[sent]);
      e.Set("sent", Napi::Number::New(env, sent));
      e.ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return Napi::Number::New(env, sent);
  }

  std::string name_;
  std::string where_;
  int ifindex_ = 0;
  uint32_t* tags_ = nullptr;
  std::vector<mmsghdr> rxMsgs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_ll> rxNames_;
  std::vector<AuxControl> rxControl_;
  std::vector<mmsghdr> txMsgs_;
  std::vector<iovec> txIov_;
  std::vector<uint8_t> txTags_;
};

namespace {

// One legacy ethtool get/set (struct ethtool_value) on `ifname`; 0 or errno.
int EthtoolValue(int fd, const std::string& ifname, uint32_t cmd, uint32_t* data) {
  ethtool_value v{};
  v.cmd = cmd;
  v.data = *data;
  ifreq ifr{};
  memcpy(ifr.ifr_name, ifname.data(), std::min(ifname.size(), size_t{IFNAMSIZ - 1}));
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) return errno;
  *data = v.data;
  return 0;
}

}  // namespace

// disableReceiveOffloads(ifname) -> { gro: boolean, lro: boolean }
//   Turns GRO and LRO off on `ifname` (legacy SIOCETHTOOL calls, as
//   `ethtool -K IF gro off lro off`): a packet socket reads frames as the
//   driver hands them over, and coalesced super-frames would not fit a slot
//   or a tag. Each field says whether the feature is off now (false when the
//   device has no such switch: it never coalesces that way). Other errors
//   throw an errno error.
static Napi::Value DisableReceiveOffloads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "disableReceiveOffloads(ifname: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ) {
    ErrnoError(env, EINVAL, "SIOCETHTOOL", "cannot change offloads of '" + name + "'", "not a valid interface name")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ErrnoError(env, errno, "socket", "cannot change offloads of " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto unsupported = [](int err) { return err == EOPNOTSUPP || err == EINVAL; };
  Napi::Object out = Napi::Object::New(env);
  uint32_t off = 0;
  int err = EthtoolValue(fd, name, ETHTOOL_SGRO, &off);
  if (err != 0 && !unsupported(err)) {
    ::close(fd);
    ErrnoError(env, err, "SIOCETHTOOL", "cannot turn GRO off on " + name,
               err == ENODEV ? "no such interface in this network namespace" : "")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  out.Set("gro", Napi::Boolean::New(env, err == 0));
  uint32_t flags = 0;
  err = EthtoolValue(fd, name, ETHTOOL_GFLAGS, &flags);
  bool lroOff = false;
  if (err == 0) {
    if ((flags & ETH_FLAG_LRO) == 0) {
      lroOff = true;
    } else {
      flags &= ~static_cast<uint32_t>(ETH_FLAG_LRO);
      err = EthtoolValue(fd, name, ETHTOOL_SFLAGS, &flags);
      lroOff = err == 0;
    }
  }
  ::close(fd);
  if (err != 0 && !unsupported(err)) {
    ErrnoError(env, err, "SIOCETHTOOL", "cannot turn LRO off on " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  out.Set("lro", Napi::Boolean::New(env, lroOff));
  return out;
}

void InitPacket(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketSocket", PacketSocket::Define(env));
  exports.Set("disableReceiveOffloads", Napi::Function::New(env, DisableReceiveOffloads, "disableReceiveOffloads"));
}

}  // namespace nea
