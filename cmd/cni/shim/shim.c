/*
 * kube-l2tp CNI plugin executable: a small native shim. It answers VERSION itself and forwards every
 * other command (its CNI_* environment and stdin) to the node agent over a unix socket, then prints
 * the agent's answer and exits with the agent's exit code. Protocol: lib/agent-protocol.ts.
 *
 * What it can check alone it checks first (config.c: command, required environment, decodable JSON,
 * supported cniVersion), so those answers do not depend on the agent being up.
 * Agent unreachable: ADD/CHECK/GC print CNI error 11 (try again later), STATUS prints 50 (not
 * available), DEL succeeds (a DEL that failed would keep the pod from being torn down while no
 * agent runs) and leaves its request beside the socket for the agent to serve when it starts
 * (DEFERRED_DEL_DIR): only the agent can release the IPAM allocation and the attachment record.
 * Socket: /run/kube-l2tp/cni.sock, or the config's top-level "agentSocket" under /run/kube-l2tp/.
 *
 * The pod's network namespace goes as a descriptor: this process runs where the runtime does and
 * can open CNI_NETNS, the agent's container may not see that path (containerd keeps pod netns under
 * its state dir with netns_mounts_under_state_dir). ADD, CHECK and DEL open it and send it with the
 * request (SCM_RIGHTS, request key "netnsFd":1); when it cannot be opened the request says why
 * ("netnsErrno", "netnsError") and the agent answers by the command (ADD fails, DEL carries on).
 * No dependencies beyond libc; built static.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "versions.h"

#define PROTOCOL_VERSION 1
#define IO_TIMEOUT_S 120

static const char *forwarded[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
                                  "CNI_ARGS",    "CNI_PATH",        "CNI_NETNS_OVERRIDE", NULL};

struct buf {
  char *p;
  size_t len, cap;
};

static void die_oom(void) {
  fputs("{\"level\":50,\"name\":\"cni-shim\",\"msg\":\"out of memory\"}\n", stderr);
  exit(1);
}

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die_oom();
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* JSON string body (no quotes). */
static void put_json_str(struct buf *b, const char *s, size_t n) {
  char esc[8];
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\' || c < 0x20) {
      put(b, s + start, i - start);
      if (c == '"') puts_(b, "\\\"");
      else if (c == '\\') puts_(b, "\\\\");
      else if (c == '\n') puts_(b, "\\n");
      else if (c == '\t') puts_(b, "\\t");
      else if (c == '\r') puts_(b, "\\r");
      else {
        snprintf(esc, sizeof esc, "\\u%04x", c);
        puts_(b, esc);
      }
      start = i + 1;
    }
  }
  put(b, s + start, n - start);
}

static char version[32] = CURRENT_VERSION;

static void log_stderr(int level, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf b = {0};
  char head[128];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  snprintf(head, sizeof head, "{\"level\":%d,\"time\":%lld,\"pid\":%d,\"name\":\"cni-shim\",\"msg\":\"", level,
           (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000, (int)getpid());
  puts_(&b, head);
  put_json_str(&b, msg, strlen(msg));
  puts_(&b, "\"}\n");
  fwrite(b.p, 1, b.len, stderr);
  free(b.p);
}

static int cni_error(int code, const char *msg, const char *details) {
  struct buf b = {0};
  char head[96];
  snprintf(head, sizeof head, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version, code);
  puts_(&b, head);
  put_json_str(&b, msg, strlen(msg));
  puts_(&b, "\"");
  if (details && *details) {
    puts_(&b, ",\"details\":\"");
    put_json_str(&b, details, strlen(details));
    puts_(&b, "\"");
  }
  puts_(&b, "}\n");
  fwrite(b.p, 1, b.len, stdout);
  fflush(stdout);
  free(b.p);
  return 1;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The request, with the netns descriptor (if any) riding on its first bytes. */
static int send_request(int fd, const char *p, size_t n, int pass_fd) {
  if (pass_fd >= 0) {
    union {
      struct cmsghdr align;
      char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    ssize_t w;
    do w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return write_all(fd, p, n);
}

static long json_int(const char *hdr, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(hdr, pat);
  if (!p) return -1;
  p += strlen(pat);
  while (*p == ' ') p++;
  char *end;
  long v = strtol(p, &end, 10);
  return end == p ? -1 : v;
}

/*
 * A DEL no agent took: the request line (`base`, everything but its closing brace; no netns, which
 * will be gone) goes to a file of its own in DEFERRED_DEL_DIR beside the socket, written under a
 * temporary name and renamed, so the agent reads only whole requests. Root-only: 0700 dir, 0600 file.
 */
static int defer_del(const char *sock, const char *base, size_t n, char *where, size_t wsz) {
  const char *slash = strrchr(sock, '/');
  if (!slash) return -1;
  char dir[SHIM_SOCKET_MAX + 32], tmp[SHIM_SOCKET_MAX + 64], final[SHIM_SOCKET_MAX + 64];
  snprintf(dir, sizeof dir, "%.*s/%s", (int)(slash - sock), sock, DEFERRED_DEL_DIR);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -1;
  snprintf(tmp, sizeof tmp, "%s/.del-XXXXXX", dir);
  int fd = mkstemp(tmp);
  if (fd < 0) return -1;
  int ok = write_all(fd, base, n) == 0 && write_all(fd, "}\n", 2) == 0 && fsync(fd) == 0;
  close(fd);
  snprintf(final, sizeof final, "%s/%s.req", dir, strrchr(tmp, '/') + 2);
  if (!ok || rename(tmp, final) < 0) {
    unlink(tmp);
    return -1;
  }
  snprintf(where, wsz, "%s", final);
  return 0;
}

/* The agent is unreachable: answer by the command's policy. `base`: the request, for a DEL. */
static int agent_down(const char *cmd, const char *sock, const char *why, const char *base, size_t n) {
  char details[256];
  snprintf(details, sizeof details, "%s: %s", sock, why);
  if (strcmp(cmd, "DEL") == 0) {
    char where[SHIM_SOCKET_MAX + 64];
    if (defer_del(sock, base, n, where, sizeof where) == 0)
      log_stderr(40, "kube-l2tp agent unreachable on DEL (%s); the agent finishes it when it starts (%s)", details,
                 where);
    else
      log_stderr(40, "kube-l2tp agent unreachable on DEL (%s); could not leave it for the agent: %s", details,
                 strerror(errno));
    return 0;
  }
  log_stderr(50, "kube-l2tp agent unreachable (%s)", details);
  if (strcmp(cmd, "STATUS") == 0) return cni_error(50, "kube-l2tp node agent is not available", details);
  return cni_error(11, "kube-l2tp node agent is unreachable; try again later", details);
}

int main(void) {
  struct buf in = {0};
  const char *cmd = getenv("CNI_COMMAND");
  char tmp[65536];

  /* stdin (the runtime may give none for VERSION) */
  for (;;) {
    ssize_t r = read(0, tmp, sizeof tmp);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EBADF) break;
      return cni_error(5, "reading stdin failed", strerror(errno));
    }
    if (r == 0) break;
    put(&in, tmp, (size_t)r);
  }
  if (!in.p) puts_(&in, "");
  struct shim_env env = {cmd, getenv("CNI_CONTAINERID"), getenv("CNI_NETNS"), getenv("CNI_IFNAME"),
                         getenv("CNI_PATH")};
  struct shim_decision d;
  shim_decide(&env, in.p, in.len, &d);
  strcpy(version, d.version);
  if (d.action == SHIM_ERROR) return cni_error(d.code, d.msg, NULL);
  if (d.action == SHIM_DONE) {
    log_stderr(40, "DEL of a config ADD refuses, which made nothing: %s", d.msg);
    return 0;
  }
  if (d.action == SHIM_VERSION) {
    printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", version, SUPPORTED);
    return 0;
  }
  const char *sockpath = d.socket;

  int netns_fd = -1;
  const char *netns = getenv("CNI_NETNS");
  int wants_netns = !strcmp(cmd, "ADD") || !strcmp(cmd, "CHECK") || !strcmp(cmd, "DEL");
  int netns_errno = 0;
  if (wants_netns && netns && *netns) {
    netns_fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) netns_errno = errno;
  }

  /* request: {"v":1,"env":{...},"stdin":"..."[,"netnsFd":1 | ,"netnsErrno":N,"netnsError":"..."]}\n */
  struct buf req = {0};
  char head[32];
  snprintf(head, sizeof head, "{\"v\":%d,\"env\":{", PROTOCOL_VERSION);
  puts_(&req, head);
  int first = 1;
  for (const char **k = forwarded; *k; k++) {
    const char *val = getenv(*k);
    if (!val) continue;
    if (!first) puts_(&req, ",");
    first = 0;
    puts_(&req, "\"");
    puts_(&req, *k);
    puts_(&req, "\":\"");
    put_json_str(&req, val, strlen(val));
    puts_(&req, "\"");
  }
  puts_(&req, "},\"stdin\":\"");
  put_json_str(&req, in.p, in.len);
  puts_(&req, "\"");
  size_t base_len = req.len; /* what a deferred DEL keeps */
  if (netns_fd >= 0) puts_(&req, ",\"netnsFd\":1");
  else if (netns_errno) {
    char e[64];
    snprintf(e, sizeof e, ",\"netnsErrno\":%d,\"netnsError\":\"", netns_errno);
    puts_(&req, e);
    const char *m = strerror(netns_errno);
    put_json_str(&req, m, strlen(m));
    puts_(&req, "\"");
  }
  puts_(&req, "}\n");

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return agent_down(cmd, sockpath, strerror(errno), req.p, base_len);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, sockpath);
  struct timeval to = {IO_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof to);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &to, sizeof to);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    return agent_down(cmd, sockpath, strerror(errno), req.p, base_len);
  if (send_request(fd, req.p, req.len, netns_fd) < 0)
    return agent_down(cmd, sockpath, strerror(errno), req.p, base_len);
  if (netns_fd >= 0) close(netns_fd);
  shutdown(fd, SHUT_WR);

  struct buf resp = {0};
  for (;;) {
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      log_stderr(50, "reading the agent's answer failed: %s", strerror(e));
      return cni_error(11, "kube-l2tp node agent did not answer; try again later", strerror(e));
    }
    if (r == 0) break;
    put(&resp, tmp, (size_t)r);
  }
  close(fd);
  char *nl = resp.p ? memchr(resp.p, '\n', resp.len) : NULL;
  if (!nl) return cni_error(11, "kube-l2tp node agent closed the connection without an answer; try again later", NULL);
  *nl = 0;
  long code = json_int(resp.p, "exitCode");
  long nbytes = json_int(resp.p, "stdoutBytes");
  long vers = json_int(resp.p, "v");
  size_t have = resp.len - (size_t)(nl + 1 - resp.p);
  if (vers != PROTOCOL_VERSION || code < 0 || code > 255 || nbytes < 0 || (size_t)nbytes != have)
    return cni_error(11, "kube-l2tp node agent sent a malformed answer; try again later", resp.p);
  if (write_all(1, nl + 1, have) < 0) return 1;
  return (int)code;
}
