/* Why tunnels between the same two addresses share one socket rather than each filtering its own
 * (a socket filter accepting only its sessions' IDs): every raw socket of the pair would still get a
 * clone of each datagram and run its filter on it; a classic filter holds at most 4096 instructions,
 * fewer than a tunnel's sessions can need; a datagram that no session owns (an unknown ID, a control
 * message, a malformed one) would have to pass exactly one filter, which then lists every other
 * tunnel's IDs; and every session change would reattach filters. Shared, each datagram costs one
 * receive and one lookup in one table, which session add/remove maintain anyway. */
#include "endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "demux.h"
#include "pump.h"

#define BATCH 64 /* datagrams per recvmmsg */
#define IPPROTO_L2TP 115
#ifndef SOL_UDP
#define SOL_UDP IPPROTO_UDP
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif

struct rx_batch {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  char ctrl[BATCH][64];
  uint8_t *buf; /* BATCH * FRAME_MAX */
};

struct member {
  struct tunnel_counters *c;
  pump_event_fn ev;
  void *ev_ctx;
};

/* What makes two IP tunnels share: the same addresses in the same network namespace. */
struct ep_key {
  int family;
  uint8_t local[16], remote[16];
  dev_t netns_dev;
  ino_t netns_ino;
};

struct endpoint {
  struct endpoint *next; /* in the registry (shared endpoints only) */
  struct ep_key key;
  int family, udp;
  int sock, stop_fd;
  pthread_t thr;
  int started;
  /* guards the fields below; the receive thread holds it (read) while it works through a batch */
  pthread_rwlock_t lock;
  int dead; /* the receive thread stopped: tunnels joining now get an endpoint of their own */
  struct demux demux;
  /* in joining order; the first counts the datagrams that no tunnel's session owns */
  struct member *members;
  int n_members, cap_members;
  struct demux_entry last; /* receive lookup cache (s == NULL: none); cleared on removal */
  struct rx_batch rx;
};

/* Shared endpoints; join and leave hold reg_mu, so a member count read under it is stable. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct endpoint *registry;

int sock_error_transient(int e) { return !(e == EBADF || e == EFAULT || e == EINVAL || e == ENOTSOCK); }

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

/* 0 with the key of an IP tunnel, -1 when the tunnel never shares (UDP, or no namespace identity). */
static int key_of(const struct tunnel_cfg *cfg, struct ep_key *k) {
  memset(k, 0, sizeof *k); /* compared with memcmp: no stray padding bytes */
  struct stat st;
  if (cfg->udp || stat("/proc/thread-self/ns/net", &st) < 0) return -1;
  k->family = cfg->family;
  k->netns_dev = st.st_dev;
  k->netns_ino = st.st_ino;
  if (inet_pton(cfg->family, cfg->local, k->local) != 1 || inet_pton(cfg->family, cfg->remote, k->remote) != 1)
    return -1; /* open_socket refuses it */
  return 0;
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

/* ---- receive path ---- */

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

static const struct demux_entry *lookup(struct endpoint *e, uint32_t sid) {
  if (e->last.s && e->last.sid == sid) return &e->last;
  const struct demux_entry *d = demux_find(&e->demux, sid);
  if (d) e->last = *d;
  return d;
}

/* Counts a datagram no session took: on the endpoint's first tunnel, so that it is counted once. */
static void drop(struct endpoint *e, int reason) {
  struct tunnel_counters *c = e->members[0].c;
  inc(&c->rx_packets, 1);
  inc(&c->drops[reason], 1);
}

/* trusted: p is one datagram of a UDP GRO train (see gro_append). */
static void rx_one(struct endpoint *e, uint8_t *p, size_t len, int trusted, struct pending *pend) {
  if (!e->udp && e->family == AF_INET) { /* raw IPv4 sockets deliver the IP header */
    if (len < 20) return drop(e, DROP_TRUNCATED);
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl) return drop(e, DROP_TRUNCATED);
    p += ihl, len -= ihl;
  }
  uint32_t sid = 0;
  size_t off = 0, payload = 0;
  int r = l2tp_locate(p, len, e->udp, &sid, &off);
  if (r != RX_OK) return drop(e, r);
  const struct demux_entry *d = lookup(e, sid);
  if (!d) return drop(e, DROP_UNKNOWN_SESSION);
  struct l2tp_session *s = d->s;
  inc(&((struct tunnel_counters *)d->owner)->rx_packets, 1);
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

/* The receive thread stopped: every tunnel on the endpoint stopped receiving; each is told. */
static void *rx_fail(struct endpoint *e, int err, const char *what) {
  pthread_rwlock_wrlock(&e->lock);
  e->dead = 1;
  for (int i = 0; i < e->n_members; i++) e->members[i].ev(e->members[i].ev_ctx, 1, 0, err, what);
  pthread_rwlock_unlock(&e->lock);
  return NULL;
}

static void *rx_main(void *arg) {
  struct endpoint *e = arg;
  struct rx_batch *b = &e->rx;
  struct pending pend = {.n = 0};
  for (int i = 0; i < BATCH; i++) {
    b->iov[i].iov_base = b->buf + (size_t)i * FRAME_MAX;
    b->iov[i].iov_len = FRAME_MAX;
    memset(&b->msgs[i], 0, sizeof b->msgs[i]);
    b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
    b->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd pfd[2] = {{.fd = e->sock, .events = POLLIN}, {.fd = e->stop_fd, .events = POLLIN}};
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      b->msgs[i].msg_hdr.msg_control = b->ctrl[i];
      b->msgs[i].msg_hdr.msg_controllen = sizeof b->ctrl[i];
    }
    int n = recvmmsg(e->sock, b->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      int err = errno;
      if (err == EAGAIN || err == EINTR) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) return rx_fail(e, errno, "poll (rx)");
        if (pfd[1].revents) return NULL; /* stop requested */
        continue;
      }
      if (sock_error_transient(err)) continue;
      return rx_fail(e, err, "recvmmsg");
    }
    pthread_rwlock_rdlock(&e->lock);
    for (int i = 0; i < n; i++) {
      struct msghdr *m = &b->msgs[i].msg_hdr;
      uint8_t *p = b->buf + (size_t)i * FRAME_MAX;
      size_t len = b->msgs[i].msg_len;
      if (m->msg_flags & MSG_TRUNC) {
        drop(e, DROP_OVERSIZED);
        continue;
      }
      size_t seg = e->udp ? (size_t)gro_size(m) : 0;
      if (seg == 0 || seg >= len) {
        rx_one(e, p, len, 0, &pend);
      } else {
        for (size_t o = 0; o < len; o += seg) rx_one(e, p + o, len - o < seg ? len - o : seg, 1, &pend);
      }
    }
    for (int i = 0; i < pend.n; i++) gro_flush(pend.s[i]);
    pend.n = 0;
    pthread_rwlock_unlock(&e->lock);
  }
}

/* ---- lifecycle ---- */

static void endpoint_free(struct endpoint *e) {
  if (e->started) {
    uint64_t one = 1;
    if (write(e->stop_fd, &one, sizeof one) < 0) { /* cannot fail for a fresh eventfd */
    }
    pthread_join(e->thr, NULL);
  }
  if (e->sock >= 0) close(e->sock);
  if (e->stop_fd >= 0) close(e->stop_fd);
  pthread_rwlock_destroy(&e->lock);
  demux_free(&e->demux);
  free(e->members);
  free(e->rx.buf);
  free(e);
}

/* A new endpoint with its socket, no thread yet. */
static struct endpoint *endpoint_open(const struct tunnel_cfg *cfg, int *err, const char **what) {
  struct endpoint *e = calloc(1, sizeof *e);
  if (!e) return *err = -ENOMEM, *what = "calloc", NULL;
  e->family = cfg->family;
  e->udp = cfg->udp;
  e->sock = e->stop_fd = -1;
  /* Writers (session add/remove) must not starve behind the always-busy receive thread. */
  pthread_rwlockattr_t la;
  pthread_rwlockattr_init(&la);
  pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&e->lock, &la);
  pthread_rwlockattr_destroy(&la);
  e->rx.buf = malloc((size_t)BATCH * FRAME_MAX);
  if (!e->rx.buf || demux_init(&e->demux) < 0) {
    *err = -ENOMEM, *what = "buffers";
    goto fail;
  }
  e->sock = open_socket(cfg, what);
  if (e->sock < 0) {
    *err = e->sock;
    goto fail;
  }
  e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->stop_fd < 0) {
    *err = -errno, *what = "eventfd";
    goto fail;
  }
  return e;
fail:
  endpoint_free(e);
  return NULL;
}

/* Caller holds e->lock (write). */
static int add_member(struct endpoint *e, struct tunnel_counters *c, pump_event_fn ev, void *ev_ctx) {
  if (e->n_members == e->cap_members) {
    int cap = e->cap_members ? 2 * e->cap_members : 4;
    struct member *m = realloc(e->members, (size_t)cap * sizeof *m);
    if (!m) return -ENOMEM;
    e->members = m, e->cap_members = cap;
  }
  e->members[e->n_members++] = (struct member){.c = c, .ev = ev, .ev_ctx = ev_ctx};
  return 0;
}

struct endpoint *endpoint_join(const struct tunnel_cfg *cfg, struct tunnel_counters *c, pump_event_fn ev,
                               void *ev_ctx, int *err, const char **what) {
  struct ep_key key;
  int shareable = key_of(cfg, &key) == 0;
  pthread_mutex_lock(&reg_mu);
  for (struct endpoint *e = shareable ? registry : NULL; e; e = e->next) {
    if (memcmp(&e->key, &key, sizeof key) != 0) continue;
    pthread_rwlock_wrlock(&e->lock);
    int rc = e->dead ? -EPIPE : add_member(e, c, ev, ev_ctx);
    pthread_rwlock_unlock(&e->lock);
    if (rc == -EPIPE) continue; /* its thread stopped (its tunnels are told): a new one below */
    pthread_mutex_unlock(&reg_mu);
    if (rc < 0) return *err = rc, *what = "join endpoint", NULL;
    return e;
  }
  struct endpoint *e = endpoint_open(cfg, err, what);
  if (!e) goto out;
  int rc = add_member(e, c, ev, ev_ctx); /* before the thread: it counts on a first member */
  *what = rc ? "join endpoint" : "pthread_create";
  if (!rc) rc = -pthread_create(&e->thr, NULL, rx_main, e);
  if (rc) {
    endpoint_free(e);
    e = NULL;
    *err = rc;
    goto out;
  }
  e->started = 1;
  /* named so that top -H, perf and /proc show the datapath's own CPU apart from the agent's */
  pthread_setname_np(e->thr, "l2tp-rx");
  if (shareable) {
    memcpy(&e->key, &key, sizeof key); /* bytes, padding included: compared with memcmp */
    e->next = registry;
    registry = e;
  }
out:
  pthread_mutex_unlock(&reg_mu);
  return e;
}

void endpoint_leave(struct endpoint *e, struct tunnel_counters *c) {
  pthread_mutex_lock(&reg_mu);
  if (e->n_members == 1) { /* the last: nobody else reads it, and its thread stops before it goes */
    for (struct endpoint **p = &registry; *p; p = &(*p)->next) {
      if (*p == e) {
        *p = e->next;
        break;
      }
    }
    pthread_mutex_unlock(&reg_mu);
    endpoint_free(e);
    return;
  }
  pthread_rwlock_wrlock(&e->lock);
  demux_remove_owner(&e->demux, c);
  e->last.s = NULL;
  for (int i = 0; i < e->n_members; i++) {
    if (e->members[i].c != c) continue;
    /* keep the joining order: the next oldest takes over the datagrams no session owns */
    memmove(e->members + i, e->members + i + 1, (size_t)(e->n_members - i - 1) * sizeof *e->members);
    e->n_members--;
    break;
  }
  pthread_rwlock_unlock(&e->lock);
  pthread_mutex_unlock(&reg_mu);
}

int endpoint_socket(const struct endpoint *e) { return e->sock; }

int endpoint_add_session(struct endpoint *e, struct l2tp_session *s, struct tunnel_counters *c) {
  pthread_rwlock_wrlock(&e->lock);
  int rc = demux_add(&e->demux, s->session_id, s, c);
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

void endpoint_remove_session(struct endpoint *e, uint32_t session_id) {
  pthread_rwlock_wrlock(&e->lock);
  demux_remove(&e->demux, session_id);
  if (e->last.sid == session_id) e->last.s = NULL;
  pthread_rwlock_unlock(&e->lock);
}
