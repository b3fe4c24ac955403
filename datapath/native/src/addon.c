/* N-API surface of the pump. The JS side owns configuration and lifecycle; this file only converts
 * arguments, and forwards pump-thread events to a JS callback through a threadsafe function.
 *
 *   openTap(name, vnetHdr) -> { fd, name }   create (not yet persistent) or reattach a TAP, offloads set
 *   attachTapIn(netnsPath, name, vnetHdr) -> { fd, name }   reattach a persistent TAP in another netns
 *   setTapPersist(fd, bool), closeFd(fd)
 *   createTunnel(cfg, onEvent) -> handle     onEvent({ fatal, sessionId, errno, message, suppressed })
 *   addSession(handle, cfg)                   takes ownership of cfg.tapFd (vnetHdr: as opened)
 *   removeSession(handle, sessionId, keepDevice)
 *   sessionCounters(handle, sessionId) -> { txPackets, ..., drops: number[] } | undefined
 *   tunnelCounters(handle) -> { rxPackets, drops: number[] }
 *   eventStats(handle) -> { delivered, suppressed }
 *   closeTunnel(handle, keepDevices)
 */
#include <errno.h>
#include <net/if.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "napi_util.h"
#include "evlimit.h"
#include "pump.h"
#include "tap.h"

#define CHECK(call) NAPI_CHECK(env, call)

/* Events waiting for the JS thread are bounded: the threadsafe function's queue holds EVENT_QUEUE,
 * and non-fatal events leave room for the two fatal ones a tunnel can raise (one per thread), which
 * are never rate limited. Non-fatal events pass a token bucket of EVENT_BURST, refilled one per
 * EVENT_INTERVAL_NS; what is dropped is counted and reported with the next event let through. */
#define EVENT_QUEUE 16
#define EVENT_BURST 10
#define EVENT_INTERVAL_NS 1000000000ull

struct handle {
  struct tunnel *t;
  napi_threadsafe_function tsfn;
  pthread_mutex_t mu; /* guards lim, queued and the totals: both pump threads post events */
  struct ev_limit lim;
  int queued; /* posted, not yet run on the JS thread */
  uint64_t delivered, suppressed;
};

struct event {
  struct handle *h;
  int fatal, err;
  uint32_t session_id;
  uint64_t suppressed;
  char what[64];
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int get_prop(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return 0;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return 0;
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}
static uint32_t prop_u32(napi_env env, napi_value obj, const char *key, uint32_t dflt) {
  napi_value v;
  uint32_t r = dflt;
  if (get_prop(env, obj, key, &v)) napi_get_value_uint32(env, v, &r);
  return r;
}
static int prop_bool(napi_env env, napi_value obj, const char *key) {
  napi_value v;
  bool r = false;
  if (get_prop(env, obj, key, &v)) napi_get_value_bool(env, v, &r);
  return r;
}
static void prop_str(napi_env env, napi_value obj, const char *key, char *out, size_t len) {
  napi_value v;
  size_t n = 0;
  out[0] = 0;
  if (get_prop(env, obj, key, &v)) napi_get_value_string_utf8(env, v, out, len, &n);
}
/* Copies a Buffer property (0, 4 or 8 bytes) into out; returns its length or -1. */
static int prop_bytes(napi_env env, napi_value obj, const char *key, uint8_t *out) {
  napi_value v;
  if (!get_prop(env, obj, key, &v)) return 0;
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return -1;
  if (len != 0 && len != 4 && len != 8) return -1;
  memcpy(out, data, len);
  return (int)len;
}
static void set_num(napi_env env, napi_value obj, const char *key, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  napi_set_named_property(env, obj, key, v);
}
static napi_value drops_array(napi_env env, const uint64_t *drops) {
  napi_value arr;
  napi_create_array_with_length(env, DROP_COUNT, &arr);
  for (uint32_t i = 0; i < DROP_COUNT; i++) {
    napi_value v;
    napi_create_double(env, (double)drops[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

/* The arguments of a call whose first one is an open tunnel's handle: the handle, or NULL after throwing. */
static struct handle *handle_call(napi_env env, napi_callback_info info, size_t n, napi_value *argv,
                                  size_t *argc) {
  struct handle *h = NULL;
  if (!get_args(env, info, n, argv, argc)) return NULL;
  if (napi_get_value_external(env, argv[0], (void **)&h) != napi_ok || !h || !h->t) {
    napi_throw_error(env, NULL, "tunnel handle is closed or invalid");
    return NULL;
  }
  return h;
}

/* openTap(name, vnet) or, with netns, attachTapIn(netnsPath, name, vnet): argv starts at the name */
static napi_value tap_result(napi_env env, napi_value *argv, size_t argc, const char *netns) {
  char name[IFNAMSIZ] = {0}, actual[IFNAMSIZ] = {0};
  size_t n;
  bool vnet = false;
  /* a name that does not fit is refused, not cut: cut, it would name another device */
  CHECK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &n));
  if (n == 0 || n >= sizeof name) {
    napi_throw_type_error(env, NULL, "openTap: a TAP name is 1 to 15 bytes");
    return NULL;
  }
  CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n));
  if (argc > 1) napi_get_value_bool(env, argv[1], &vnet);
  int fd = netns ? tap_attach_in(netns, name, vnet, actual, sizeof actual)
                 : tap_open(name, vnet, actual, sizeof actual);
  if (fd < 0) return throw_errno_error(env, netns ? "attach TAP in netns" : "open TAP", fd);
  napi_value res, v;
  napi_create_object(env, &res);
  set_num(env, res, "fd", fd);
  napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, res, "name", v);
  return res;
}

static napi_value open_tap(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, &argc)) return NULL;
  return tap_result(env, argv, argc, NULL);
}

static napi_value attach_tap_in(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, &argc)) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "attachTapIn(netnsPath: string, name: string, vnetHdr: boolean)");
    return NULL;
  }
  char netns[4096];
  size_t n;
  CHECK(napi_get_value_string_utf8(env, argv[0], netns, sizeof netns, &n));
  if (n == 0 || n >= sizeof netns - 1) {
    napi_throw_range_error(env, NULL, "attachTapIn: netnsPath is empty or too long");
    return NULL;
  }
  return tap_result(env, argv + 1, argc - 1, netns);
}

static napi_value set_tap_persist(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, &argc)) return NULL;
  int32_t fd;
  bool p;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_bool(env, argv[1], &p));
  int rc = tap_set_persist(fd, p);
  if (rc < 0) return throw_errno_error(env, "TUNSETPERSIST", rc);
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, &argc)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  close(fd);
  return NULL;
}

/* Runs on the JS thread for each event posted by a pump thread. */
static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  struct event *e = data;
  pthread_mutex_lock(&e->h->mu);
  e->h->queued--;
  pthread_mutex_unlock(&e->h->mu);
  if (env && cb) {
    napi_value obj, v, undef;
    napi_create_object(env, &obj);
    napi_get_boolean(env, e->fatal, &v);
    napi_set_named_property(env, obj, "fatal", v);
    set_num(env, obj, "sessionId", e->session_id);
    set_num(env, obj, "errno", e->err);
    char msg[192];
    snprintf(msg, sizeof msg, "%s: %s", e->what, strerror(e->err));
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, obj, "message", v);
    set_num(env, obj, "suppressed", (double)e->suppressed);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 1, &obj, NULL);
  }
  free(e);
}

/* Called on a pump thread: never blocks, allocates only for an event let through. */
static void post_event(void *ctx, int fatal, uint32_t session_id, int err, const char *what) {
  struct handle *h = ctx;
  uint64_t before = 0;
  pthread_mutex_lock(&h->mu);
  int pass = fatal || (h->queued < EVENT_QUEUE - 2 && ev_limit_take(&h->lim, now_ns(), &before));
  if (!pass && !fatal && h->queued >= EVENT_QUEUE - 2) h->lim.suppressed++; /* queue full: count it too */
  if (pass) h->queued++;
  pthread_mutex_unlock(&h->mu);
  if (!pass) return;
  struct event *e = malloc(sizeof *e);
  if (e) {
    e->h = h, e->fatal = fatal, e->err = err, e->session_id = session_id, e->suppressed = before;
    snprintf(e->what, sizeof e->what, "%s", what);
    if (napi_call_threadsafe_function(h->tsfn, e, napi_tsfn_nonblocking) == napi_ok) {
      pthread_mutex_lock(&h->mu);
      h->delivered++, h->suppressed += before;
      pthread_mutex_unlock(&h->mu);
      return;
    }
    free(e);
  }
  pthread_mutex_lock(&h->mu); /* not queued after all: report it with the next one */
  h->queued--;
  h->lim.suppressed += 1 + before;
  pthread_mutex_unlock(&h->mu);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  struct handle *h = data;
  if (h->t) {
    tunnel_destroy(h->t, 1); /* garbage-collected while open: keep devices, never delete silently */
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
  }
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static napi_value create_tunnel(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, &argc)) return NULL;
  struct tunnel_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  char encap[8];
  prop_str(env, argv[0], "encap", encap, sizeof encap);
  cfg.udp = strcmp(encap, "ip") != 0;
  cfg.family = prop_u32(env, argv[0], "family", 4) == 6 ? AF_INET6 : AF_INET;
  prop_str(env, argv[0], "local", cfg.local, sizeof cfg.local);
  prop_str(env, argv[0], "remote", cfg.remote, sizeof cfg.remote);
  cfg.local_port = (uint16_t)prop_u32(env, argv[0], "localPort", 0);
  cfg.remote_port = (uint16_t)prop_u32(env, argv[0], "remotePort", 0);
  cfg.udp_checksum = prop_bool(env, argv[0], "udpChecksum");

  struct handle *h = calloc(1, sizeof *h);
  if (!h) return throw_errno_error(env, "calloc", ENOMEM);
  pthread_mutex_init(&h->mu, NULL);
  ev_limit_init(&h->lim, EVENT_BURST, EVENT_INTERVAL_NS, now_ns());
  napi_value name;
  napi_create_string_utf8(env, "kube-l2tp-pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, EVENT_QUEUE, 1, NULL, NULL, NULL, call_js,
                                      &h->tsfn) != napi_ok) {
    pthread_mutex_destroy(&h->mu);
    free(h);
    napi_throw_error(env, NULL, "cannot create threadsafe function");
    return NULL;
  }
  int err = 0;
  const char *what = "";
  h->t = tunnel_create(&cfg, post_event, h, &err, &what);
  if (!h->t) {
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return throw_errno_error(env, what, err);
  }
  napi_value ext;
  CHECK(napi_create_external(env, h, finalize_handle, NULL, &ext));
  return ext;
}

static napi_value add_session(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  struct handle *h = handle_call(env, info, 2, argv, &argc);
  if (!h) return NULL;
  struct l2tp_session *s = calloc(1, sizeof *s);
  if (!s) return throw_errno_error(env, "calloc", ENOMEM);
  napi_value o = argv[1];
  s->session_id = prop_u32(env, o, "sessionId", 0);
  s->peer_session_id = prop_u32(env, o, "peerSessionId", 0);
  int cl = prop_bytes(env, o, "cookie", s->cookie);
  int pcl = prop_bytes(env, o, "peerCookie", s->peer_cookie);
  if (cl < 0 || pcl < 0 || s->session_id == 0 || s->peer_session_id == 0) {
    free(s);
    napi_throw_error(env, NULL, "invalid session parameters");
    return NULL;
  }
  s->cookie_len = (uint8_t)cl;
  s->peer_cookie_len = (uint8_t)pcl;
  s->l2spec_len = prop_u32(env, o, "l2specLength", 4) ? 4 : 0;
  s->send_seq = (uint8_t)prop_bool(env, o, "sendSequence");
  s->recv_seq = (uint8_t)prop_bool(env, o, "requireSequence");
  s->tap_fd = (int)prop_u32(env, o, "tapFd", (uint32_t)-1);
  s->vnet = (uint8_t)prop_bool(env, o, "vnetHdr");
  int rc = tunnel_add_session(h->t, s);
  if (rc < 0) {
    free(s->gro.buf);
    free(s);
    /* over IP, tunnels between the same addresses share one session ID space, as in the kernel */
    return throw_errno_error(env, rc == -EEXIST ? "add session (ID in use on this tunnel's addresses)" : "add session",
                             rc);
  }
  return NULL;
}

static napi_value remove_session(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[3];
  struct handle *h = handle_call(env, info, 3, argv, &argc);
  if (!h) return NULL;
  uint32_t sid;
  bool keep = false;
  CHECK(napi_get_value_uint32(env, argv[1], &sid));
  if (argc > 2) napi_get_value_bool(env, argv[2], &keep);
  napi_value r;
  napi_get_boolean(env, tunnel_remove_session(h->t, sid, keep) == 0, &r);
  return r;
}

static napi_value session_counters(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  struct handle *h = handle_call(env, info, 2, argv, &argc);
  if (!h) return NULL;
  uint32_t sid;
  CHECK(napi_get_value_uint32(env, argv[1], &sid));
  struct l2tp_counters c;
  if (tunnel_session_counters(h->t, sid, &c) < 0) return NULL;
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "txPackets", (double)c.tx_packets);
  set_num(env, o, "txBytes", (double)c.tx_bytes);
  set_num(env, o, "txErrors", (double)c.tx_errors);
  set_num(env, o, "rxPackets", (double)c.rx_packets);
  set_num(env, o, "rxBytes", (double)c.rx_bytes);
  set_num(env, o, "rxErrors", (double)c.rx_errors);
  napi_set_named_property(env, o, "drops", drops_array(env, c.drops));
  napi_value lost;
  napi_get_boolean(env, c.tap_lost != 0, &lost);
  napi_set_named_property(env, o, "tapLost", lost);
  return o;
}

static napi_value event_stats(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[1];
  struct handle *h = handle_call(env, info, 1, argv, &argc);
  if (!h) return NULL;
  pthread_mutex_lock(&h->mu);
  double delivered = (double)h->delivered, suppressed = (double)(h->suppressed + h->lim.suppressed);
  pthread_mutex_unlock(&h->mu);
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "delivered", delivered);
  set_num(env, o, "suppressed", suppressed);
  return o;
}

static napi_value tunnel_counters_js(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[1];
  struct handle *h = handle_call(env, info, 1, argv, &argc);
  if (!h) return NULL;
  struct tunnel_counters c;
  tunnel_counters(h->t, &c);
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "rxPackets", (double)c.rx_packets);
  napi_set_named_property(env, o, "drops", drops_array(env, c.drops));
  return o;
}

static napi_value close_tunnel(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, &argc)) return NULL;
  struct handle *h = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&h) != napi_ok || !h) return NULL;
  if (!h->t) return NULL; /* already closed */
  bool keep = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &keep);
  tunnel_destroy(h->t, keep);
  h->t = NULL;
  napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"openTap", open_tap},
      {"attachTapIn", attach_tap_in},
      {"setTapPersist", set_tap_persist},
      {"closeFd", close_fd},
      {"createTunnel", create_tunnel},
      {"addSession", add_session},
      {"removeSession", remove_session},
      {"sessionCounters", session_counters},
      {"tunnelCounters", tunnel_counters_js},
      {"eventStats", event_stats},
      {"closeTunnel", close_tunnel},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
    CHECK(napi_set_named_property(env, exports, fns[i].name, f));
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
