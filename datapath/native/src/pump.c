#include "pump.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tap.h"

#define TX_BATCH 64             /* frames read from one TAP per round */
#define TX_MSGS 1024            /* datagrams per sendmmsg (UIO_MAXIOV) */
#define TX_ARENA (4u << 20)     /* outgoing datagrams are laid out here, header + frame, contiguous */
#define TX_HEADROOM 32          /* room for the L2TP header in front of a frame read from a TAP */
#define TX_RESERVE (TX_HEADROOM + VNET_HDR_LEN + FRAME_MAX + 96 * 1024) /* read + segment one frame */
#define EV_STOP_TAG 0xffffffffu
#define TX_ROUNDS_PER_FD 4 /* batches read from one TAP before giving the others a turn */
#ifndef SOL_UDP
#define SOL_UDP IPPROTO_UDP
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define UDP_GSO_MAX_SEGS 64

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
  struct endpoint *ep;
  int sock; /* the endpoint's */
  int stop_fd, epfd;
  pthread_t tx_thr;
  int tx_started;
  pthread_rwlock_t lock;
  struct l2tp_session *slots[PUMP_MAX_SESSIONS];
  struct tunnel_counters c; /* its own; the endpoint's receive thread counts into them */
  pump_event_fn ev;
  void *ev_ctx;
  struct tx_batch tx;
};

static void tx_flush(struct tunnel *t) {
  struct tx_batch *b = &t->tx;
  int done = 0;
  while (done < b->n) {
    int n = sendmmsg(t->sock, b->msgs + done, (unsigned)(b->n - done), 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      inc(&b->sess[done]->c.tx_errors, b->segs[done]); /* the first message failed: count it, go on */
      if (!sock_error_transient(e) && e != EAGAIN) t->ev(t->ev_ctx, 0, b->sess[done]->session_id, e, "sendmmsg");
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
  for (int frames = 0; frames < TX_ROUNDS_PER_FD * TX_BATCH; frames++) {
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
  /* Writers (session add/remove) must not starve behind the always-busy transmit thread. */
  pthread_rwlockattr_t la;
  pthread_rwlockattr_init(&la);
  pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&t->lock, &la);
  pthread_rwlockattr_destroy(&la);
  t->tx.arena = malloc(TX_ARENA);
  if (!t->tx.arena) {
    *err = -ENOMEM, *what = "buffers";
    goto fail;
  }
  t->gso = cfg->udp && (cfg->udp_checksum || cfg->family == AF_INET6); /* IPv6 UDP always has checksums */
  t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  t->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (t->stop_fd < 0 || t->epfd < 0) {
    *err = -errno, *what = "eventfd/epoll";
    goto fail;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = EV_STOP_TAG};
  epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->stop_fd, &e);
  t->ep = endpoint_join(cfg, &t->c, ev, ev_ctx, err, what);
  if (!t->ep) goto fail;
  t->sock = endpoint_socket(t->ep);
  int rc = pthread_create(&t->tx_thr, NULL, tx_main, t);
  if (rc) {
    *err = -rc, *what = "pthread_create";
    goto fail;
  }
  t->tx_started = 1;
  /* named so that top -H, perf and /proc show the datapath's own CPU apart from the agent's */
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
  int free_slot = -1, rc = 0;
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (t->slots[i] && t->slots[i]->session_id == s->session_id) {
      rc = -EEXIST;
      goto out;
    }
    if (!t->slots[i] && free_slot < 0) free_slot = i;
  }
  if (free_slot < 0) {
    rc = -ENOSPC;
    goto out;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)free_slot};
  if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->tap_fd, &e) < 0) {
    rc = -errno;
    goto out;
  }
  rc = endpoint_add_session(t->ep, s, &t->c); /* -EEXIST: another tunnel on the addresses has the ID */
  if (rc < 0) {
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
    goto out;
  }
  t->slots[free_slot] = s;
out:
  pthread_rwlock_unlock(&t->lock);
  return rc;
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
  if (s) endpoint_remove_session(t->ep, session_id);
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
  if (t->tx_started) pthread_join(t->tx_thr, NULL);
  if (t->ep) endpoint_leave(t->ep, &t->c); /* the receive thread no longer sees its sessions */
  for (int i = 0; i < PUMP_MAX_SESSIONS; i++) {
    if (t->slots[i]) release_session(t->slots[i], keep_devices);
    t->slots[i] = NULL;
  }
  if (t->stop_fd >= 0) close(t->stop_fd);
  if (t->epfd >= 0) close(t->epfd);
  pthread_rwlock_destroy(&t->lock);
  free(t->tx.arena);
  free(t);
}
