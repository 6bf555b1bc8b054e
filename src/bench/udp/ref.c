/*
 * C reference for the UDP benchmark (see run.ts): the same rounds with the
 * same system calls as the addon, without JavaScript.
 *
 *   sender socket in netns A (SRC:0) --veth--> receiver socket in netns B (DST:PORT 0)
 *
 * Opens one socket in each namespace (setns before socket()), then for
 * `seconds` repeats one round: sendmmsg() `batch` datagrams of `size` bytes
 * (with "gso": as few messages with UDP_SEGMENT as the limits allow), then poll() + recvmmsg() on the
 * receiver until the round is back (or a poll waits 100 ms: the rest count as
 * lost; with "gro": UDP_GRO on, messages counted by their segments). Prints
 * one line of JSON:
 *   {"impl":"c","size":N,"batch":N,"seconds":S,"sent":..,"received":..,"pps":..}
 *
 * usage: ref NETNS_A SRC NETNS_B DST SIZE BATCH SECONDS [gso] [gro]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define SLOT_LEN 2048
#define GRO_BUF 65536
#define GRO_MSGS 8
#define ROUND_TIMEOUT_MS 100
#define SOCKET_BUFFER (4 * 1024 * 1024)

static void die(const char *what) { fprintf(stderr, "%s: %s\n", what, strerror(errno)); exit(2); }

/* A UDP socket bound to addr:0 inside the named namespace. */
static int open_in(const char *netns, const char *addr) {
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", netns);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) die(path);
  close(nsfd);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int v = SOCKET_BUFFER;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0) die("SO_RCVBUFFORCE");
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0) die("SO_SNDBUFFORCE");
  struct sockaddr_in sin = { .sin_family = AF_INET };
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) die("inet_pton");
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) die("bind");
  return fd;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char rxbuf[MAX_BATCH][SLOT_LEN];
static unsigned char grobuf[GRO_MSGS][GRO_BUF];
static struct mmsghdr rxm[MAX_BATCH];
static struct iovec rxv[MAX_BATCH];
static char groctl[GRO_MSGS][CMSG_SPACE(sizeof(int))];
static struct sockaddr_in6 rxname[MAX_BATCH]; /* sources, as the addon collects them */

/* Receives what the socket has now; returns datagrams received. */
static long drain(int fd, int gro) {
  long n = 0;
  for (;;) {
    int want = gro ? GRO_MSGS : MAX_BATCH;
    for (int i = 0; i < want; i++) {
      rxm[i].msg_hdr.msg_flags = 0;
      rxm[i].msg_hdr.msg_name = &rxname[i];
      rxm[i].msg_hdr.msg_namelen = sizeof rxname[i];
      if (gro) { rxm[i].msg_hdr.msg_control = groctl[i]; rxm[i].msg_hdr.msg_controllen = sizeof groctl[i]; }
    }
    int r = recvmmsg(fd, rxm, want, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return n;
      die("recvmmsg");
    }
    for (int i = 0; i < r; i++) {
      if (!gro) { n++; continue; }
      int seg = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&rxm[i].msg_hdr); c; c = CMSG_NXTHDR(&rxm[i].msg_hdr, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) memcpy(&seg, CMSG_DATA(c), sizeof seg);
      n += seg > 0 ? (rxm[i].msg_len + seg - 1) / seg : 1;
    }
    if (r < want) return n;
  }
}

int main(int argc, char **argv) {
  if (argc < 8) { fprintf(stderr, "usage: ref NETNS_A SRC NETNS_B DST SIZE BATCH SECONDS [gso] [gro]\n"); return 2; }
  int size = atoi(argv[5]), batch = atoi(argv[6]);
  double seconds = atof(argv[7]);
  int gso = 0, gro = 0;
  for (int i = 8; i < argc; i++) { if (!strcmp(argv[i], "gso")) gso = 1; if (!strcmp(argv[i], "gro")) gro = 1; }
  if (size < 1 || size > SLOT_LEN || batch < 1 || batch > MAX_BATCH || 0) { fprintf(stderr, "bad size or batch\n"); return 2; }

  int tx = open_in(argv[1], argv[2]);
  int rx = open_in(argv[3], argv[4]);
  if (gro) { int on = 1; if (setsockopt(rx, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) die("UDP_GRO"); }
  struct sockaddr_in dst;
  socklen_t dlen = sizeof dst;
  if (getsockname(rx, (struct sockaddr *)&dst, &dlen) < 0) die("getsockname");

  for (int i = 0; i < MAX_BATCH; i++) {
    rxv[i].iov_base = i < GRO_MSGS && gro ? (void *)grobuf[i] : (void *)rxbuf[i];
    rxv[i].iov_len = i < GRO_MSGS && gro ? GRO_BUF : SLOT_LEN;
    rxm[i].msg_hdr.msg_iov = &rxv[i];
    rxm[i].msg_hdr.msg_iovlen = 1;
  }
  static unsigned char payload[SLOT_LEN];
  memset(payload, 0x5a, sizeof payload);
  static struct mmsghdr txm[MAX_BATCH];
  static struct iovec txv[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    txv[i].iov_base = payload;
    txv[i].iov_len = size;
    txm[i].msg_hdr.msg_name = &dst;
    txm[i].msg_hdr.msg_namelen = sizeof dst;
    txm[i].msg_hdr.msg_iov = &txv[i];
    txm[i].msg_hdr.msg_iovlen = 1;
  }
  int msgs = batch;
  static char gsoctl[MAX_BATCH][CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
  if (gso) {
    /* runs of `per` iovecs, each one message cut into `size`-byte datagrams
       (at most 64 segments and 65000 bytes per message, as the addon does) */
    int per = 65000 / size < 64 ? 65000 / size : 64;
    msgs = 0;
    for (int first = 0; first < batch; first += per, msgs++) {
      struct msghdr *h = &txm[msgs].msg_hdr;
      h->msg_name = &dst;
      h->msg_namelen = sizeof dst;
      h->msg_iov = &txv[first];
      h->msg_iovlen = batch - first < per ? batch - first : per;
      h->msg_control = gsoctl[msgs];
      h->msg_controllen = sizeof gsoctl[msgs];
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)size;
      memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
  }

  long sent = 0, received = 0;
  struct pollfd pfd = { .fd = rx, .events = POLLIN };
  double t0 = now(), end = t0 + seconds;
  while (now() < end) {
    int r = sendmmsg(tx, txm, msgs, 0);
    if (r < 0) die("sendmmsg");
    sent += gso ? (r == msgs ? batch : 0) : r;
    long got = 0;
    while (got < batch) {
      int p = poll(&pfd, 1, ROUND_TIMEOUT_MS);
      if (p < 0) { if (errno == EINTR) continue; die("poll"); }
      if (p == 0) break; /* lost */
      got += drain(rx, gro);
    }
    received += got;
  }
  double elapsed = now() - t0;
  printf("{\"impl\":\"c%s%s\",\"size\":%d,\"batch\":%d,\"seconds\":%.3f,\"sent\":%ld,\"received\":%ld,\"pps\":%.0f}\n",
         gso ? "+gso" : "", gro ? "+gro" : "", size, batch, elapsed, sent, received, received / elapsed);
  return 0;
}
