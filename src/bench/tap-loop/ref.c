/*
 * C reference for the TAP loop benchmark (see run.ts).
 *
 *   tapA --(Linux bridge)--> tapB, all inside the runner's namespace.
 *
 * Attaches to the two existing TAP devices, then for `seconds` repeats one
 * round: write `batch` 64-byte frames into tapA (one write() each), then
 * drain tapB with poll() + read() until the round's frames are back (or a
 * poll waits 100 ms: the rest count as lost). Prints one line of JSON:
 *   {"impl":"c","batch":N,"seconds":S,"sent":..,"received":..,"fps":..}
 *
 * usage: ref TAP_A TAP_B BATCH SECONDS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN 64
#define SLOT_LEN 2048
#define ROUND_TIMEOUT_MS 100

static int open_tap(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/net/tun"); exit(2); }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) { fprintf(stderr, "TUNSETIFF %s: %s\n", name, strerror(errno)); exit(2); }
  return fd;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads everything tapB has now; returns the number of frames read. */
static long drain(int fd, unsigned char *buf) {
  long n = 0;
  for (;;) {
    ssize_t r = read(fd, buf, SLOT_LEN);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return n;
      perror("read"); exit(2);
    }
    n++;
  }
}

/* One round: `batch` writes, then poll/read until they are back. */
static void round_trip(int a, int b, const unsigned char *frame, long batch, unsigned char *buf,
                       long *sent, long *received) {
  for (long i = 0; i < batch; i++) {
    if (write(a, frame, FRAME_LEN) == FRAME_LEN) (*sent)++;
    else if (errno != EAGAIN && errno != EINTR) { perror("write"); exit(2); }
  }
  long got = 0;
  struct pollfd p = { .fd = b, .events = POLLIN };
  while (got < batch) {
    int rc = poll(&p, 1, ROUND_TIMEOUT_MS);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    got += drain(b, buf);
  }
  *received += got;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: %s TAP_A TAP_B BATCH SECONDS\n", argv[0]); return 2; }
  long batch = atol(argv[3]);
  double seconds = atof(argv[4]);
  int a = open_tap(argv[1]);
  int b = open_tap(argv[2]);
  unsigned char frame[FRAME_LEN] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5};
  unsigned char *buf = malloc(SLOT_LEN);

  /* Warm-up: wait until the bridge forwards (ports come up when we attach). */
  double deadline = now() + 5;
  for (;;) {
    long s = 0, r = 0;
    round_trip(a, b, frame, 1, buf, &s, &r);
    if (r > 0) break;
    if (now() > deadline) { fprintf(stderr, "bridge never forwarded\n"); return 3; }
  }
  drain(b, buf);

  long sent = 0, received = 0;
  double t0 = now(), t1;
  do {
    round_trip(a, b, frame, batch, buf, &sent, &received);
    t1 = now();
  } while (t1 - t0 < seconds);
  printf("{\"impl\":\"c\",\"batch\":%ld,\"seconds\":%.3f,\"sent\":%ld,\"received\":%ld,\"fps\":%.0f}\n",
         batch, t1 - t0, sent, received, received / (t1 - t0));
  return 0;
}
