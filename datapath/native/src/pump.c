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
#include <sys/uio.h>
#include <unistd.h>

#include "tap.h"

#define BATCH 64                /* datagrams per recvmmsg */
#define FRAME_MAX 65536         /* largest datagram (or GRO train) and largest TAP frame */
#define TX_MSGS 1024            /* datagrams per sendmmsg (UIO_MAXIOV) */
#define TX_ARENA (4u << 20)     /* outgoing datagrams are laid out here, header + frame, contiguous */
#define TX_HEADROOM 32          /* room for the L2TP header in front of a frame read from a TAP */
#define TX_RESERVE (TX_HEADROOM + VNET_HDR_LEN + FRAME_MAX + 96 * 1024) /* read + segment one frame */
#define IPPROTO_L2TP 115
#define EV_STOP_TAG 0xffffffffu
#define TX_ROUNDS_PER_FD 4 /* batches read from one TAP before giving the others a turn */
#ifndef SOL_UDP
#define SOL_UDP IPPROTO_UDP
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif
#define UDP_GSO_MAX_SEGS 64

struct rx_batch {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  char ctrl[BATCH][64];
  uint8_t *buf; /* BATCH * FRAME_MAX */
};

struct tx_batch {
  struct mmsghdr msgs[TX_MSGS];
  struct iovec iov[TX_MSGS];
  struct l2tp_session *sess[TX_MSGS];
  uint32_t bytes[TX_MSGS]; /* frame bytes, for the counters */
  uint16_t segs[TX_MSGS];  /* datagrams in the message (> 1: a UDP GSO train) */
  char ctrl[TX_MSGS][CMSG_SPACE(sizeof(uint16_t))];
  uint8_t *arena;
  size_t used, floor; /* floor: bytes that must survive a flush (the super-frame being cut) */
  int n;
};

struct tunnel {
  struct tunnel_cfg cfg;
  int gso; /* UDP GSO for TSO super-frames (UDP encap with checksums) */
  int sock, stop_fd, epfd;
  pthread_t rx_thr, tx_thr;
  int rx_started, tx_started;
  pthread_rwlock_t lock;
  struct l2tp_session *slots[PUMP_MAX_SESSIONS];
  /* session ID -> slot + 1 (0 = empty), open addressing at load <= 1/2; rebuilt under the write lock on
   * every add/remove, so the per-packet lookup is O(1) however many sessions a tunnel holds */
  uint16_t index[PUMP_INDEX_SIZE];
  struct l2tp_session *last; /* rx lookup cache, rx thread only */
  struct tunnel_counters c;
  pump_event_fn ev;
  void *ev_ctx;
  struct rx_batch rx;
  struct tx_batch tx;
};

static inline void inc(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void st(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

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
    /* No SO_REUSEADDR: no other local socket may bind the tunnel's address and port beside it. */
    /* The kernel's L2TP sends UDP checksum 0 over IPv4 unless udp_csum is on. */
    if (cfg->family == AF_INET && !cfg->udp_checksum) setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one);
    /* Over IPv6 the kernel's tunnel (udp6_csum_rx off) and the ebpf backend send checksum 0 when the
     * tunnel has no checksums; the stack drops such datagrams unless the socket accepts them. */
    if (cfg->family == AF_INET6 && !cfg->udp_checksum &&
        setsockopt(fd, SOL_UDP, UDP_NO_CHECK6_RX, &one, sizeof one) < 0) {
      int e = errno;
      close(fd);
      return *what = "UDP_NO_CHECK6_RX", -e;
    }
    /* Receive trains of same-sized datagrams in one buffer where the stack coalesced them (GRO). */
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
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

static inline uint32_t sid_hash(uint32_t sid) { return (sid * 2654435761u) & (PUMP_INDEX_SIZE - 1); }

/* Caller holds the write lock. */
static void index_rebuild(struct tunnel *t) {
  memset(t->index, 0, sizeof t->index);
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (!t->slots[i]) continue;
    uint32_t h = sid_hash(t->slots[i]->session_id);
    while (t->index[h]) h = (h + 1) & (PUMP_INDEX_SIZE - 1);
    t->index[h] = (uint16_t)(i + 1);
  }
}

static struct l2tp_session *lookup(struct tunnel *t, uint32_t sid) {
  struct l2tp_session *s = t->last;
  if (s && s->session_id == sid) return s;
  for (uint32_t h = sid_hash(sid);; h = (h + 1) & (PUMP_INDEX_SIZE - 1)) {
    uint16_t v = t->index[h];
    if (!v) return NULL; /* the load factor guarantees an empty entry */
    s = t->slots[v - 1];
    if (s && s->session_id == sid) return t->last = s;
  }
}

static int transient(int e) {
  /* A connected socket reports ICMP errors from the peer (port/protocol unreachable while the peer is
   * not up yet: ECONNREFUSED, ENOPROTOOPT, ...) once, as the result of a later call; those and memory
   * pressure are not failures of the tunnel. Only a broken descriptor or argument is. */
  return !(e == EBADF || e == EFAULT || e == EINVAL || e == ENOTSOCK);
}

/* Without offloads the TAP has no virtio header: one plain write per frame. */
static void tap_write_plain(struct l2tp_session *s, const uint8_t *frame, size_t len) {
  if (write(s->tap_fd, frame, len) < 0) inc(&s->c.rx_errors, 1);
}

/* With offloads: the virtio header, then the frame's pieces (a merge run's headers and payloads). */
static void emit_tap(void *ctx, const struct iovec *frame, int n, const struct vnet_hdr *h) {
  struct l2tp_session *s = ctx;
  uint8_t vh[VNET_HDR_LEN];
  vnet_write(vh, h);
  struct iovec iov[1 + 1 + GRO_MAX_SEGS];
  if (n > GRO_MAX_SEGS + 1) n = GRO_MAX_SEGS + 1; /* cannot happen: runs are at most GRO_MAX_SEGS */
  iov[0].iov_base = vh;
  iov[0].iov_len = sizeof vh;
  memcpy(iov + 1, frame, (size_t)n * sizeof iov[0]);
  if (writev(s->tap_fd, iov, 1 + n) < 0) inc(&s->c.rx_errors, 1);
}
static void gro_flush(struct l2tp_session *s) { gro_flush_to(&s->gro, emit_tap, s); }

/* Sessions holding a merge run during the current receive batch. */
struct pending {
  struct l2tp_session *s[PUMP_MAX_SESSIONS];
  int n;
};

static void deliver(struct l2tp_session *s, const uint8_t *frame, size_t len, int trusted, struct pending *pend) {
  inc(&s->c.rx_packets, 1);
  inc(&s->c.rx_bytes, len);
  if (!s->vnet) return tap_write_plain(s, frame, len);
  int was = s->gro.active;
  if (gro_offer(&s->gro, frame, len, trusted, emit_tap, s) && !was) {
    /* a new run: write it out at the end of the receive batch at the latest */
    if (pend->n < PUMP_MAX_SESSIONS)
      pend->s[pend->n++] = s;
    else
      gro_flush(s);
  }
}

/* trusted: p is one datagram of a UDP GRO train (see gro_append). */
static void rx_one(struct tunnel *t, uint8_t *p, size_t len, int trusted, struct pending *pend) {
  inc(&t->c.rx_packets, 1);
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
  deliver(s, p + payload, len - payload, trusted, pend);
}

/* The UDP GRO segment size of a received train, or 0 for a single datagram. */
static int gro_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v;
    }
  }
  return 0;
}

static void *rx_main(void *arg) {
  struct tunnel *t = arg;
  struct rx_batch *b = &t->rx;
  struct pending pend = {.n = 0};
  for (int i = 0; i < BATCH; i++) {
    b->iov[i].iov_base = b->buf + (size_t)i * FRAME_MAX;
    b->iov[i].iov_len = FRAME_MAX;
    memset(&b->msgs[i], 0, sizeof b->msgs[i]);
    b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
    b->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd pfd[2] = {{.fd = t->sock, .events = POLLIN}, {.fd = t->stop_fd, .events = POLLIN}};
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      b->msgs[i].msg_hdr.msg_control = b->ctrl[i];
      b->msgs[i].msg_hdr.msg_controllen = sizeof b->ctrl[i];
    }
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
    for (int i = 0; i < n; i++) {
      struct msghdr *m = &b->msgs[i].msg_hdr;
      uint8_t *p = b->buf + (size_t)i * FRAME_MAX;
      size_t len = b->msgs[i].msg_len;
      if (m->msg_flags & MSG_TRUNC) {
        inc(&t->c.rx_packets, 1);
        inc(&t->c.drops[DROP_OVERSIZED], 1);
        continue;
      }
      size_t seg = t->cfg.udp ? (size_t)gro_size(m) : 0;
      if (seg == 0 || seg >= len) {
        rx_one(t, p, len, 0, &pend);
      } else {
        for (size_t o = 0; o < len; o += seg) rx_one(t, p + o, len - o < seg ? len - o : seg, 1, &pend);
      }
    }
    for (int i = 0; i < pend.n; i++) gro_flush(pend.s[i]);
    pend.n = 0;
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
      inc(&b->sess[done]->c.tx_errors, b->segs[done]); /* the first message failed: count it, go on */
      if (!transient(e) && e != EAGAIN) t->ev(t->ev_ctx, 0, b->sess[done]->session_id, e, "sendmmsg");
      done++;
      continue;
    }
    for (int i = done; i < done + n; i++) {
      inc(&b->sess[i]->c.tx_packets, b->segs[i]);
      inc(&b->sess[i]->c.tx_bytes, b->bytes[i]);
    }
    done += n;
  }
  b->n = 0;
  b->used = b->floor;
}

/* Queue the datagram [base, base+len) (L2TP header + frame) of session s; with gso > 0, a train of
 * `segs` datagrams of gso bytes each (the last may be shorter) sent with UDP_SEGMENT. */
static void tx_queue(struct tunnel *t, struct l2tp_session *s, uint8_t *base, size_t len, size_t frame,
                     uint16_t gso, uint16_t segs) {
  struct tx_batch *b = &t->tx;
  struct msghdr *m = &b->msgs[b->n].msg_hdr;
  b->iov[b->n].iov_base = base;
  b->iov[b->n].iov_len = len;
  b->sess[b->n] = s;
  b->bytes[b->n] = (uint32_t)frame;
  b->segs[b->n] = segs;
  if (gso) {
    m->msg_control = b->ctrl[b->n];
    m->msg_controllen = sizeof b->ctrl[b->n];
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &gso, sizeof gso);
  } else {
    m->msg_control = NULL;
    m->msg_controllen = 0;
  }
  if (++b->n == TX_MSGS) tx_flush(t);
}

/* Cut a TSO super-frame (already in the arena, below floor) into datagrams after it. */
static void tx_segment(struct tunnel *t, struct l2tp_session *s, const uint8_t *frame, size_t len,
                       const struct vnet_hdr *h) {
  struct tx_batch *b = &t->tx;
  struct tso ts;
  int nsegs = tso_init(&ts, frame, len, h);
  if (nsegs < 0) {
    inc(&s->c.tx_errors, 1);
    return;
  }
  size_t hl = s->hdr_len, full = hl + ts.hlen + ts.mss;
  /* UDP GSO: the segments, each with its L2TP header, laid end to end and sent as one train. The
   * kernel refuses GSO on sockets without UDP checksums, so it is used only with udpChecksum. */
  /* One train must fit an IP datagram (64 KiB with the IP and UDP headers): several per super-frame. */
  size_t per_train = (0xffff - 8 - (t->cfg.family == AF_INET6 ? 40 : 20)) / full;
  if (per_train > UDP_GSO_MAX_SEGS) per_train = UDP_GSO_MAX_SEGS;
  if (t->gso && nsegs > 1 && per_train > 1) {
    for (;;) {
      if (b->used + per_train * full > TX_ARENA) tx_flush(t); /* a train is at most 64 KiB */
      uint8_t *start = b->arena + b->used, *out = start;
      size_t k = 0, seg = 0, bytes = 0;
      while (k < per_train && (seg = tso_next(&ts, out + hl)) != 0) {
        l2tp_build_header(s, out);
        out += hl + seg, bytes += seg, k++;
      }
      if (k == 0) break;
      b->used += (size_t)(out - start);
      tx_queue(t, s, start, (size_t)(out - start), bytes, k > 1 ? (uint16_t)full : 0, (uint16_t)k);
      if (seg == 0) break;
    }
    return;
  }
  for (;;) {
    if (b->used + full > TX_ARENA) tx_flush(t); /* keeps the super-frame */
    uint8_t *out = b->arena + b->used;
    size_t seg = tso_next(&ts, out + hl);
    if (seg == 0) break;
    l2tp_build_header(s, out);
    b->used += hl + seg;
    tx_queue(t, s, out, hl + seg, seg, 0, 1);
  }
}

/* Read what one TAP has (bounded), queueing datagrams. Returns -errno on a TAP failure. */
static int tx_drain(struct tunnel *t, struct l2tp_session *s) {
  struct tx_batch *b = &t->tx;
  for (int frames = 0; frames < TX_ROUNDS_PER_FD * BATCH; frames++) {
    if (b->used + TX_RESERVE > TX_ARENA) tx_flush(t);
    /* Frame lands at base + TX_HEADROOM; the virtio header (if any) just before it, where the L2TP
     * header is written afterwards. */
    uint8_t *base = b->arena + b->used;
    uint8_t *rd = base + TX_HEADROOM - (s->vnet ? VNET_HDR_LEN : 0);
    ssize_t r = read(s->tap_fd, rd, FRAME_MAX + (s->vnet ? VNET_HDR_LEN : 0));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -errno;
    }
    uint8_t *frame = base + TX_HEADROOM;
    size_t len = (size_t)r - (s->vnet ? VNET_HDR_LEN : 0);
    if ((size_t)r < (s->vnet ? VNET_HDR_LEN : 0) + ETH_HLEN_MIN) {
      inc(&s->c.tx_errors, 1);
      continue;
    }
    if (s->vnet) {
      struct vnet_hdr h;
      vnet_parse(rd, &h);
      if (h.gso_type != VNET_GSO_NONE) {
        b->used += TX_HEADROOM + len;
        b->floor = b->used;
        tx_segment(t, s, frame, len, &h);
        b->floor = 0;
        continue;
      }
      if ((h.flags & VNET_F_NEEDS_CSUM) && csum_finish(frame, len, &h) < 0) {
        inc(&s->c.tx_errors, 1);
        continue;
      }
    }
    uint8_t *hdr = frame - s->hdr_len;
    l2tp_build_header(s, hdr);
    b->used += TX_HEADROOM + len;
    tx_queue(t, s, hdr, s->hdr_len + len, len, 0, 1);
  }
  return 0;
}

static void *tx_main(void *arg) {
  struct tunnel *t = arg;
  struct tx_batch *b = &t->tx;
  for (int i = 0; i < TX_MSGS; i++) {
    memset(&b->msgs[i], 0, sizeof b->msgs[i]);
    b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
    b->msgs[i].msg_hdr.msg_iovlen = 1;
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
        st(&s->c.tap_lost, 1); /* state, not only an event: events may be rate limited */
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
  t->tx.arena = malloc(TX_ARENA);
  if (!t->rx.buf || !t->tx.arena) {
    *err = -ENOMEM, *what = "buffers";
    goto fail;
  }
  t->gso = cfg->udp && (cfg->udp_checksum || cfg->family == AF_INET6); /* IPv6 UDP always has checksums */
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
  /* named so that top -H, perf and /proc show the datapath's own CPU apart from the agent's */
  pthread_setname_np(t->rx_thr, "l2tp-rx");
  rc = pthread_create(&t->tx_thr, NULL, tx_main, t);
  if (rc) {
    *err = -rc, *what = "pthread_create";
    goto fail;
  }
  t->tx_started = 1;
  pthread_setname_np(t->tx_thr, "l2tp-tx");
  return t;
fail:
  tunnel_destroy(t, 1);
  return NULL;
}

int tunnel_add_session(struct tunnel *t, struct l2tp_session *s) {
  s->udp = (uint8_t)t->cfg.udp;
  l2tp_session_init_header(s);
  if (s->vnet && !s->gro.buf && !(s->gro.buf = malloc(GRO_HDR_MAX))) return -ENOMEM;
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
  index_rebuild(t);
  pthread_rwlock_unlock(&t->lock);
  return 0;
}

static void release_session(struct l2tp_session *s, int keep_device) {
  if (!keep_device) tap_set_persist(s->tap_fd, 0); /* the last close then deletes the netdev */
  close(s->tap_fd);
  free(s->gro.buf);
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
  if (s) index_rebuild(t);
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
  free(t->tx.arena);
  free(t);
}
