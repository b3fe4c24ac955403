#include "pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"

#define BATCH 64
#define FRAME_MAX 65536 /* largest TAP frame or datagram we handle */
#define IPPROTO_L2TP 115
#define EV_STOP_TAG 0xffffffffu
#define TX_ROUNDS_PER_FD 4 /* batches read from one TAP before giving the others a turn */

struct rx_batch {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint8_t *buf; /* BATCH * FRAME_MAX */
};

struct tx_batch {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH][2];
  uint8_t hdr[BATCH][L2TP_HDR_MAX];
  struct l2tp_session *sess[BATCH];
  uint8_t *buf; /* BATCH * FRAME_MAX */
  int n;
};

struct tunnel {
  struct tunnel_cfg cfg;
  int sock, stop_fd, epfd;
  pthread_t rx_thr, tx_thr;
  int rx_started, tx_started;
  pthread_rwlock_t lock;
  struct l2tp_session *slots[PUMP_MAX_SESSIONS];
  struct l2tp_session *last; /* rx lookup cache, rx thread only */
  struct tunnel_counters c;
  pump_event_fn ev;
  void *ev_ctx;
  struct rx_batch rx;
  struct tx_batch tx;
};

static inline void inc(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

static int sockaddr_of(int family, const char *addr, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    *len = sizeof *a;
    return inet_pton(AF_INET, addr, &a->sin_addr) == 1 ? 0 : -EINVAL;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  *len = sizeof *a;
  return inet_pton(AF_INET6, addr, &a->sin6_addr) == 1 ? 0 : -EINVAL;
}

static int open_socket(const struct tunnel_cfg *cfg, const char **what) {
  int fd = cfg->udp ? socket(cfg->family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP)
                    : socket(cfg->family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_L2TP);
  if (fd < 0) return *what = "socket", -errno;
  int one = 1, bufsz = 4 << 20;
  /* Large buffers absorb bursts between batches; FORCE works as root, the plain call is a fallback. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  if (cfg->udp) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* The kernel's L2TP sends UDP checksum 0 over IPv4 unless udp_csum is on. */
    if (cfg->family == AF_INET && !cfg->udp_checksum) setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one);
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (sockaddr_of(cfg->family, cfg->local, cfg->udp ? cfg->local_port : 0, &ss, &len) < 0) {
    close(fd);
    return *what = "local address", -EINVAL;
  }
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
    int e = errno;
    close(fd);
    return *what = "bind", -e;
  }
  if (sockaddr_of(cfg->family, cfg->remote, cfg->udp ? cfg->remote_port : 0, &ss, &len) < 0) {
    close(fd);
    return *what = "remote address", -EINVAL;
  }
  /* connect() makes the kernel filter datagrams from anyone but the peer (5-tuple / IP pair). */
  if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
    int e = errno;
    close(fd);
    return *what = "connect", -e;
  }
  return fd;
}

static struct l2tp_session *lookup(struct tunnel *t, uint32_t sid) {
  struct l2tp_session *s = t->last;
  if (s && s->session_id == sid) return s;
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    s = t->slots[i];
    if (s && s->session_id == sid) return t->last = s;
  }
  return NULL;
}

static int transient(int e) {
  /* A connected socket reports ICMP errors from the peer (port/protocol unreachable while the peer is
   * not up yet: ECONNREFUSED, ENOPROTOOPT, ...) once, as the result of a later call; those and memory
   * pressure are not failures of the tunnel. Only a broken descriptor or argument is. */
  return !(e == EBADF || e == EFAULT || e == EINVAL || e == ENOTSOCK);
}

static void rx_one(struct tunnel *t, uint8_t *p, size_t len, int flags) {
  inc(&t->c.rx_packets, 1);
  if (flags & MSG_TRUNC) return inc(&t->c.drops[DROP_OVERSIZED], 1);
  if (!t->cfg.udp && t->cfg.family == AF_INET) { /* raw IPv4 sockets deliver the IP header */
    if (len < 20) return inc(&t->c.drops[DROP_TRUNCATED], 1);
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl) return inc(&t->c.drops[DROP_TRUNCATED], 1);
    p += ihl, len -= ihl;
  }
  uint32_t sid = 0;
  size_t off = 0, payload = 0;
  int r = l2tp_locate(p, len, t->cfg.udp, &sid, &off);
  if (r != RX_OK) return inc(&t->c.drops[r], 1);
  struct l2tp_session *s = lookup(t, sid);
  if (!s) return inc(&t->c.drops[DROP_UNKNOWN_SESSION], 1);
  r = l2tp_verify(s, p, len, off, &payload);
  if (r != RX_OK) return inc(&s->c.drops[r], 1);
  ssize_t w = write(s->tap_fd, p + payload, len - payload);
  if (w < 0) return inc(&s->c.rx_errors, 1);
  inc(&s->c.rx_packets, 1);
  inc(&s->c.rx_bytes, len - payload);
}

static void *rx_main(void *arg) {
  struct tunnel *t = arg;
  struct rx_batch *b = &t->rx;
  for (int i = 0; i < BATCH; i++) {
    b->iov[i].iov_base = b->buf + (size_t)i * FRAME_MAX;
    b->iov[i].iov_len = FRAME_MAX;
    memset(&b->msgs[i], 0, sizeof b->msgs[i]);
    b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
    b->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd pfd[2] = {{.fd = t->sock, .events = POLLIN}, {.fd = t->stop_fd, .events = POLLIN}};
  for (;;) {
    int n = recvmmsg(t->sock, b->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EINTR) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
          t->ev(t->ev_ctx, 1, 0, errno, "poll (rx)");
          return NULL;
        }
        if (pfd[1].revents) return NULL; /* stop requested */
        continue;
      }
      if (transient(e)) continue;
      t->ev(t->ev_ctx, 1, 0, e, "recvmmsg");
      return NULL;
    }
    pthread_rwlock_rdlock(&t->lock);
    for (int i = 0; i < n; i++) rx_one(t, b->buf + (size_t)i * FRAME_MAX, b->msgs[i].msg_len, b->msgs[i].msg_hdr.msg_flags);
    pthread_rwlock_unlock(&t->lock);
  }
}

static void tx_flush(struct tunnel *t) {
  struct tx_batch *b = &t->tx;
  int done = 0;
  while (done < b->n) {
    int n = sendmmsg(t->sock, b->msgs + done, (unsigned)(b->n - done), 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      inc(&b->sess[done]->c.tx_errors, 1); /* the first message failed: count it and go on */
      if (!transient(e) && e != EAGAIN) t->ev(t->ev_ctx, 0, b->sess[done]->session_id, e, "sendmmsg");
      done++;
      continue;
    }
    for (int i = done; i < done + n; i++) {
      inc(&b->sess[i]->c.tx_packets, 1);
      inc(&b->sess[i]->c.tx_bytes, b->iov[i][1].iov_len);
    }
    done += n;
  }
  b->n = 0;
}

/* Read what one TAP has (bounded), flushing full batches. Returns -errno on a TAP failure. */
static int tx_drain(struct tunnel *t, struct l2tp_session *s) {
  struct tx_batch *b = &t->tx;
  for (int rounds = 0; rounds < TX_ROUNDS_PER_FD;) {
    uint8_t *frame = b->buf + (size_t)b->n * FRAME_MAX;
    ssize_t r = read(s->tap_fd, frame, FRAME_MAX);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -errno;
    }
    if (r < ETH_HLEN_MIN) {
      inc(&s->c.tx_errors, 1);
      continue;
    }
    size_t h = l2tp_build_header(s, b->hdr[b->n]);
    b->iov[b->n][0].iov_len = h;
    b->iov[b->n][1].iov_len = (size_t)r;
    b->sess[b->n] = s;
    if (++b->n == BATCH) {
      tx_flush(t);
      rounds++;
    }
  }
  return 0;
}

static void *tx_main(void *arg) {
  struct tunnel *t = arg;
  struct tx_batch *b = &t->tx;
  for (int i = 0; i < BATCH; i++) {
    memset(&b->msgs[i], 0, sizeof b->msgs[i]);
    b->iov[i][0].iov_base = b->hdr[i];
    b->iov[i][1].iov_base = b->buf + (size_t)i * FRAME_MAX;
    b->msgs[i].msg_hdr.msg_iov = b->iov[i];
    b->msgs[i].msg_hdr.msg_iovlen = 2;
  }
  struct epoll_event evs[32];
  for (;;) {
    int n = epoll_wait(t->epfd, evs, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      t->ev(t->ev_ctx, 1, 0, errno, "epoll_wait (tx)");
      return NULL;
    }
    pthread_rwlock_rdlock(&t->lock);
    for (int i = 0; i < n; i++) {
      uint32_t slot = evs[i].data.u32;
      if (slot == EV_STOP_TAG) {
        pthread_rwlock_unlock(&t->lock);
        return NULL;
      }
      struct l2tp_session *s = slot < PUMP_MAX_SESSIONS ? t->slots[slot] : NULL;
      if (!s) continue; /* removed since epoll_wait returned */
      int e = tx_drain(t, s);
      if (e < 0) {
        /* The TAP went away (deleted from outside) or broke: stop polling it and say so. */
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
        t->ev(t->ev_ctx, 0, s->session_id, -e, "read from TAP");
      }
    }
    if (b->n) tx_flush(t);
    pthread_rwlock_unlock(&t->lock);
  }
}

struct tunnel *tunnel_create(const struct tunnel_cfg *cfg, pump_event_fn ev, void *ev_ctx, int *err,
                             const char **what) {
  struct tunnel *t = calloc(1, sizeof *t);
  if (!t) return *err = -ENOMEM, *what = "calloc", NULL;
  t->cfg = *cfg;
  t->ev = ev;
  t->ev_ctx = ev_ctx;
  t->sock = t->stop_fd = t->epfd = -1;
  /* Writers (session add/remove) must not starve behind the two always-busy reader threads. */
  pthread_rwlockattr_t la;
  pthread_rwlockattr_init(&la);
  pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&t->lock, &la);
  pthread_rwlockattr_destroy(&la);
  t->rx.buf = malloc((size_t)BATCH * FRAME_MAX);
  t->tx.buf = malloc((size_t)BATCH * FRAME_MAX);
  if (!t->rx.buf || !t->tx.buf) {
    *err = -ENOMEM, *what = "buffers";
    goto fail;
  }
  t->sock = open_socket(cfg, what);
  if (t->sock < 0) {
    *err = t->sock;
    goto fail;
  }
  t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  t->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (t->stop_fd < 0 || t->epfd < 0) {
    *err = -errno, *what = "eventfd/epoll";
    goto fail;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = EV_STOP_TAG};
  epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->stop_fd, &e);
  int rc = pthread_create(&t->rx_thr, NULL, rx_main, t);
  if (rc) {
    *err = -rc, *what = "pthread_create";
    goto fail;
  }
  t->rx_started = 1;
  rc = pthread_create(&t->tx_thr, NULL, tx_main, t);
  if (rc) {
    *err = -rc, *what = "pthread_create";
    goto fail;
  }
  t->tx_started = 1;
  return t;
fail:
  tunnel_destroy(t, 1);
  return NULL;
}

int tunnel_add_session(struct tunnel *t, struct l2tp_session *s) {
  s->udp = (uint8_t)t->cfg.udp;
  l2tp_session_init_header(s);
  pthread_rwlock_wrlock(&t->lock);
  int free_slot = -1;
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (t->slots[i] && t->slots[i]->session_id == s->session_id) {
      pthread_rwlock_unlock(&t->lock);
      return -EEXIST;
    }
    if (!t->slots[i] && free_slot < 0) free_slot = i;
  }
  if (free_slot < 0) {
    pthread_rwlock_unlock(&t->lock);
    return -ENOSPC;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)free_slot};
  if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->tap_fd, &e) < 0) {
    int err = -errno;
    pthread_rwlock_unlock(&t->lock);
    return err;
  }
  t->slots[free_slot] = s;
  pthread_rwlock_unlock(&t->lock);
  return 0;
}

static void release_session(struct l2tp_session *s, int keep_device) {
  if (!keep_device) tap_set_persist(s->tap_fd, 0); /* the last close then deletes the netdev */
  close(s->tap_fd);
  free(s);
}

int tunnel_remove_session(struct tunnel *t, uint32_t session_id, int keep_device) {
  struct l2tp_session *s = NULL;
  pthread_rwlock_wrlock(&t->lock);
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (t->slots[i] && t->slots[i]->session_id == session_id) {
      s = t->slots[i];
      t->slots[i] = NULL;
      epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
      break;
    }
  }
  if (s && t->last == s) t->last = NULL;
  pthread_rwlock_unlock(&t->lock);
  if (!s) return -ENOENT;
  release_session(s, keep_device);
  return 0;
}

int tunnel_session_counters(struct tunnel *t, uint32_t session_id, struct l2tp_counters *out) {
  int rc = -ENOENT;
  pthread_rwlock_rdlock(&t->lock);
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    struct l2tp_session *s = t->slots[i];
    if (s && s->session_id == session_id) {
      const uint64_t *src = (const uint64_t *)&s->c;
      uint64_t *dst = (uint64_t *)out;
      for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++) dst[k] = ld(src + k);
      rc = 0;
      break;
    }
  }
  pthread_rwlock_unlock(&t->lock);
  return rc;
}

void tunnel_counters(struct tunnel *t, struct tunnel_counters *out) {
  out->rx_packets = ld(&t->c.rx_packets);
  for (int i = 0; i < DROP_COUNT; i++) out->drops[i] = ld(&t->c.drops[i]);
}

void tunnel_destroy(struct tunnel *t, int keep_devices) {
  if (t->stop_fd >= 0) {
    uint64_t one = 1;
    if (write(t->stop_fd, &one, sizeof one) < 0) { /* cannot fail for a fresh eventfd */
    }
  }
  if (t->rx_started) pthread_join(t->rx_thr, NULL);
  if (t->tx_started) pthread_join(t->tx_thr, NULL);
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (t->slots[i]) release_session(t->slots[i], keep_devices);
    t->slots[i] = NULL;
  }
  if (t->sock >= 0) close(t->sock);
  if (t->stop_fd >= 0) close(t->stop_fd);
  if (t->epfd >= 0) close(t->epfd);
  pthread_rwlock_destroy(&t->lock);
  free(t->rx.buf);
  free(t->tx.buf);
  free(t);
}
