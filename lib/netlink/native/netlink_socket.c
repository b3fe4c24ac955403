/*
 * The smallest native piece kube-l2tp needs to speak netlink: Node has no AF_NETLINK sockets.
 *
 * Why this and not a dependency: the npm "netlink" package is old, thin and unmaintained, and does
 * not know the l2tp family; libnl/libmnl bindings would pull a C library and its ABI into every
 * node image. Netlink messages are plain bytes, so ALL encoding and decoding (nlmsghdr, genlmsghdr,
 * attributes, nested stats, errors/extended ACK, multipart dumps) lives in TypeScript
 * (the .ts files of lib/netlink), where it is pure and unit-tested against captured kernel bytes. This file only
 * opens a socket, sends one request buffer and collects the reply datagrams until the request is
 * answered. It looks at no more than the 16-byte nlmsghdr of each reply (type and seq), to know
 * when to stop reading: NLMSG_DONE (end of a dump) or NLMSG_ERROR (error or ACK; the TypeScript
 * side always asks for an ACK) with the request's sequence number.
 *
 * The blocking send/recv runs in napi_async_work (the libuv thread pool), so the event loop is never
 * blocked; callers serialise requests per socket (lib/netlink/socket.ts).
 *
 * API: open(protocol) -> fd; openIn(protocol, netnsPath | netnsFd) -> fd; transact(fd, request Buffer)
 * -> Promise<Buffer[]>; close(fd); recvRequest(fd, maxBytes, timeoutMs) -> Promise<{data, fds}>.
 *
 * openIn makes the socket inside another network namespace (a pod's): a netlink socket belongs to
 * the namespace it was created in for its whole life, so only the socket() call has to happen there.
 * The calling (main) thread enters the namespace with setns(), creates and binds the socket, and
 * goes back, synchronously: no JavaScript runs meanwhile, and the pool threads never move. Given a
 * descriptor instead of a path (one the CNI shim opened in the runtime's mount namespace and passed
 * over the agent socket), it enters that namespace without looking at any path.
 *
 * recvRequest reads one newline-terminated request from a unix stream socket together with the
 * descriptors sent with it (SCM_RIGHTS): Node's sockets read with read(), which drops them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "napi_util.h"
#include "netns_util.h"
#include "nl_reply.h"

#define RECV_BUF (64 * 1024)
#define MAX_REPLY (64 * 1024 * 1024)

/* socket + bind + options; returns the fd, or -1 with *what and errno set */
static int make_socket(int proto, const char **what) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    *what = "socket(AF_NETLINK)";
    return -1;
  }
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    *what = "bind(AF_NETLINK)";
    return -1;
  }
  int one = 1;
  /* extended ACKs carry the attribute at fault; strict checking makes dumps honour filters */
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  int rcvbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  /* a request the kernel never answers must not hang a thread-pool thread forever */
  struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static napi_value nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t proto;
  NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &proto) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(protocol: number)");
    return NULL;
  }
  const char *what = NULL;
  int fd = make_socket(proto, &what);
  if (fd < 0) return throw_errno_error(env, what, errno);
  napi_value r;
  NAPI_CHECK(env, napi_create_int32(env, fd, &r));
  return r;
}

struct make_socket_args {
  int proto;
  const char *what; /* the failing call, when make_socket fails */
};

/* make_socket for netns_run_in: the fd, or -errno */
static int make_socket_cb(void *p) {
  struct make_socket_args *a = p;
  int fd = make_socket(a->proto, &a->what);
  return fd < 0 ? -errno : fd;
}

static napi_value nl_open_in(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t proto;
  char path[4096];
  size_t path_len = 0;
  napi_valuetype kind = napi_undefined;
  int32_t given_fd = -1;
  NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 2) napi_typeof(env, argv[1], &kind);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &proto) != napi_ok ||
      (kind == napi_number ? napi_get_value_int32(env, argv[1], &given_fd) != napi_ok || given_fd < 0
                           : napi_get_value_string_utf8(env, argv[1], path, sizeof path, &path_len) != napi_ok)) {
    napi_throw_type_error(env, NULL, "openIn(protocol: number, netns: string (path) | number (fd))");
    return NULL;
  }
  if (kind != napi_number && (path_len == 0 || path_len >= sizeof path - 1)) {
    napi_throw_range_error(env, NULL, "openIn: netnsPath is empty or too long");
    return NULL;
  }
  /* a given descriptor stays the caller's: only a path opened here is closed here */
  int target = kind == napi_number ? given_fd : open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) return throw_errno_error(env, "open(netns)", errno);
  struct make_socket_args args = {proto, NULL};
  const char *what = NULL;
  int fd = netns_run_in(target, make_socket_cb, &args, "netlink openIn", &what);
  if (kind != napi_number) close(target);
  if (fd < 0) return throw_errno_error(env, args.what ? args.what : what, fd);
  napi_value r;
  NAPI_CHECK(env, napi_create_int32(env, fd, &r));
  return r;
}

static napi_value nl_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "close(fd: number)");
    return NULL;
  }
  close(fd);
  return NULL;
}

typedef struct {
  int fd;
  char *req;
  size_t req_len;
  uint32_t seq;
  /* replies: datagrams concatenated, with their lengths */
  char *out;
  size_t out_len, out_cap;
  size_t *lens;
  size_t n, lens_cap;
  int err; /* errno of a failed syscall, 0 when fine */
  const char *what;
  napi_deferred deferred;
  napi_async_work work;
} transact_t;

static int push(transact_t *t, const char *buf, size_t len) {
  if (t->out_len + len > MAX_REPLY) return ENOBUFS;
  if (t->out_len + len > t->out_cap) {
    size_t cap = t->out_cap ? t->out_cap : RECV_BUF;
    while (cap < t->out_len + len) cap *= 2;
    char *p = realloc(t->out, cap);
    if (!p) return ENOMEM;
    t->out = p;
    t->out_cap = cap;
  }
  if (t->n == t->lens_cap) {
    size_t cap = t->lens_cap ? t->lens_cap * 2 : 8;
    size_t *p = realloc(t->lens, cap * sizeof *p);
    if (!p) return ENOMEM;
    t->lens = p;
    t->lens_cap = cap;
  }
  memcpy(t->out + t->out_len, buf, len);
  t->out_len += len;
  t->lens[t->n++] = len;
  return 0;
}

static void do_transact(napi_env env, void *data) {
  (void)env;
  transact_t *t = data;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t s;
  do {
    s = sendto(t->fd, t->req, t->req_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (s < 0 && errno == EINTR);
  if (s < 0) {
    t->err = errno;
    t->what = "sendto(netlink)";
    return;
  }
  char *buf = malloc(RECV_BUF);
  if (!buf) {
    t->err = ENOMEM;
    t->what = "malloc";
    return;
  }
  for (;;) {
    ssize_t r = recv(t->fd, buf, RECV_BUF, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      t->err = errno;
      t->what = errno == EAGAIN ? "recv(netlink): no answer from the kernel" : "recv(netlink)";
      break;
    }
    int done = 0;
    if (nl_reply_scan(buf, (size_t)r, t->seq, &done)) {
      int e = push(t, buf, (size_t)r);
      if (e) {
        t->err = e;
        t->what = "reply too large";
        break;
      }
    }
    if (done) break;
  }
  free(buf);
}

static void complete_transact(napi_env env, napi_status status, void *data) {
  transact_t *t = data;
  if (status != napi_ok || t->err) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s: %s", t->what ? t->what : "netlink", strerror(t->err ? t->err : EIO));
    napi_value e, m, code;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, NULL, m, &e);
    napi_create_int32(env, t->err ? t->err : EIO, &code);
    napi_set_named_property(env, e, "errno", code);
    napi_reject_deferred(env, t->deferred, e);
  } else {
    napi_value arr;
    napi_create_array_with_length(env, t->n, &arr);
    size_t off = 0;
    for (size_t i = 0; i < t->n; i++) {
      napi_value b;
      void *dst;
      napi_create_buffer_copy(env, t->lens[i], t->out + off, &dst, &b);
      napi_set_element(env, arr, (uint32_t)i, b);
      off += t->lens[i];
    }
    napi_resolve_deferred(env, t->deferred, arr);
  }
  napi_delete_async_work(env, t->work);
  free(t->req);
  free(t->out);
  free(t->lens);
  free(t);
}

static napi_value nl_transact(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  void *data;
  size_t len;
  bool is_buf = false;
  NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf) {
    napi_throw_type_error(env, NULL, "transact(fd: number, request: Buffer)");
    return NULL;
  }
  NAPI_CHECK(env, napi_get_buffer_info(env, argv[1], &data, &len));
  if (len < sizeof(struct nlmsghdr)) {
    napi_throw_range_error(env, NULL, "request shorter than a netlink header");
    return NULL;
  }
  transact_t *t = calloc(1, sizeof *t);
  if (!t || !(t->req = malloc(len))) {
    free(t);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(t->req, data, len);
  t->req_len = len;
  t->fd = fd;
  t->seq = ((struct nlmsghdr *)t->req)->nlmsg_seq;
  napi_value promise, name;
  NAPI_CHECK(env, napi_create_promise(env, &t->deferred, &promise));
  NAPI_CHECK(env, napi_create_string_utf8(env, "netlink.transact", NAPI_AUTO_LENGTH, &name));
  NAPI_CHECK(env, napi_create_async_work(env, NULL, name, do_transact, complete_transact, t, &t->work));
  NAPI_CHECK(env, napi_queue_async_work(env, t->work));
  return promise;
}

/*
 * ---- recvRequest: one request line and its SCM_RIGHTS descriptors from a unix stream socket, and
 * the credentials of the process that connected (SO_PEERCRED, taken by the kernel at connect) ----
 */

#define MAX_FDS 4

typedef struct {
  int fd;
  size_t max;
  int timeout_ms;
  char *buf;
  size_t len, cap;
  int fds[MAX_FDS];
  int nfds;
  int eof;
  int err;
  const char *what;
  struct ucred peer;
  int have_peer;
  napi_deferred deferred;
  napi_async_work work;
} recv_t;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keep_fds(recv_t *t, struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *in = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < n; i++) {
      if (t->nfds < MAX_FDS) t->fds[t->nfds++] = in[i];
      else close(in[i]); /* more than any request carries: not kept, not leaked */
    }
  }
}

static void do_recv(napi_env env, void *data) {
  (void)env;
  recv_t *t = data;
  long long deadline = now_ms() + t->timeout_ms;
  union {
    struct cmsghdr align;
    char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      t->err = ETIMEDOUT;
      t->what = "no complete request in time";
      return;
    }
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    int pr = poll(&p, 1, (int)left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) {
      t->err = errno;
      t->what = "poll";
      return;
    }
    if (pr == 0) continue;
    if (t->cap - t->len < 4096) {
      size_t cap = t->cap ? t->cap * 2 : 16384;
      char *nb = realloc(t->buf, cap);
      if (!nb) {
        t->err = ENOMEM;
        t->what = "malloc";
        return;
      }
      t->buf = nb;
      t->cap = cap;
    }
    struct iovec iov = {.iov_base = t->buf + t->len, .iov_len = t->cap - t->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t r = recvmsg(t->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      t->err = errno;
      t->what = "recvmsg";
      return;
    }
    keep_fds(t, &mh);
    if (r == 0) {
      t->eof = 1;
      return;
    }
    int newline = memchr(t->buf + t->len, '\n', (size_t)r) != NULL;
    t->len += (size_t)r;
    if (newline) return;
    if (t->len > t->max) {
      t->err = EMSGSIZE;
      t->what = "request too large";
      return;
    }
  }
}

static void complete_recv(napi_env env, napi_status status, void *data) {
  recv_t *t = data;
  if (status != napi_ok || t->err) {
    for (int i = 0; i < t->nfds; i++) close(t->fds[i]);
    char msg[200];
    int e = t->err ? t->err : EIO;
    snprintf(msg, sizeof msg, "%s: %s", t->what ? t->what : "recvRequest", strerror(e));
    napi_value err, m, code;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, NULL, m, &err);
    napi_create_int32(env, e, &code);
    napi_set_named_property(env, err, "errno", code);
    napi_reject_deferred(env, t->deferred, err);
  } else {
    napi_value out, buf, fds, eof;
    void *dst;
    napi_create_object(env, &out);
    napi_create_buffer_copy(env, t->len, t->buf ? t->buf : "", &dst, &buf);
    napi_create_array_with_length(env, (size_t)t->nfds, &fds);
    for (int i = 0; i < t->nfds; i++) {
      napi_value v;
      napi_create_int32(env, t->fds[i], &v);
      napi_set_element(env, fds, (uint32_t)i, v);
    }
    napi_get_boolean(env, t->eof != 0, &eof);
    if (t->have_peer) {
      napi_value uid, pid;
      napi_create_uint32(env, t->peer.uid, &uid);
      napi_create_int32(env, t->peer.pid, &pid);
      napi_set_named_property(env, out, "peerUid", uid);
      napi_set_named_property(env, out, "peerPid", pid);
    }
    napi_set_named_property(env, out, "data", buf);
    napi_set_named_property(env, out, "fds", fds);
    napi_set_named_property(env, out, "eof", eof);
    napi_resolve_deferred(env, t->deferred, out);
  }
  napi_delete_async_work(env, t->work);
  close(t->fd);
  free(t->buf);
  free(t);
}

static napi_value nl_recv_request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, timeout_ms;
  int64_t max;
  NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &max) != napi_ok ||
      napi_get_value_int32(env, argv[2], &timeout_ms) != napi_ok || fd < 0 || max <= 0 || timeout_ms < 0) {
    napi_throw_type_error(env, NULL, "recvRequest(fd: number, maxBytes: number, timeoutMs: number)");
    return NULL;
  }
  recv_t *t = calloc(1, sizeof *t);
  if (!t) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  /* the pool thread reads its own duplicate: the caller may close its descriptor meanwhile (and
   * the number be reused) without the thread reading somebody else's file */
  t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (t->fd < 0) {
    int e = errno;
    free(t);
    return throw_errno_error(env, "recvRequest: dup", e);
  }
  socklen_t cl = sizeof t->peer;
  t->have_peer = getsockopt(t->fd, SOL_SOCKET, SO_PEERCRED, &t->peer, &cl) == 0;
  t->max = (size_t)max;
  t->timeout_ms = timeout_ms;
  napi_value promise, name;
  NAPI_CHECK(env, napi_create_promise(env, &t->deferred, &promise));
  NAPI_CHECK(env, napi_create_string_utf8(env, "netlink.recvRequest", NAPI_AUTO_LENGTH, &name));
  NAPI_CHECK(env, napi_create_async_work(env, NULL, name, do_recv, complete_recv, t, &t->work));
  NAPI_CHECK(env, napi_queue_async_work(env, t->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, nl_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openIn", NULL, nl_open_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"transact", NULL, nl_transact, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, nl_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvRequest", NULL, nl_recv_request, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
