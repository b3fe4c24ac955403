/* Test hooks: the pure packet functions (wire.c, offload.c, demux.c) exposed without sockets or TAPs, so that
 * unit tests (no root) can check header bytes and fuzz the parsers and the segment/merge code. An
 * addon of its own (l2tp_pump_selftest), so the production pump carries no test entry points. */
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "demux.h"
#include "evlimit.h"
#include "offload.h"
#include "wire.h"

static int get_u32(napi_env env, napi_value o, const char *k, uint32_t *v) {
  napi_value x;
  bool has = false;
  napi_has_named_property(env, o, k, &has);
  if (!has) return 0;
  napi_get_named_property(env, o, k, &x);
  return napi_get_value_uint32(env, x, v) == napi_ok;
}
static void get_bytes(napi_env env, napi_value o, const char *k, uint8_t *out, uint8_t *len) {
  napi_value x;
  bool has = false;
  void *d;
  size_t n = 0;
  *len = 0;
  napi_has_named_property(env, o, k, &has);
  if (!has) return;
  napi_get_named_property(env, o, k, &x);
  if (napi_get_buffer_info(env, x, &d, &n) != napi_ok || (n != 4 && n != 8)) return;
  memcpy(out, d, n);
  *len = (uint8_t)n;
}

/* cfg: { udp, sessionId, peerSessionId, cookie?, peerCookie?, l2specLength, sendSequence, requireSequence } */
static void session_from(napi_env env, napi_value o, struct l2tp_session *s) {
  uint32_t v = 0;
  memset(s, 0, sizeof *s);
  if (get_u32(env, o, "udp", &v)) s->udp = (uint8_t)v;
  get_u32(env, o, "sessionId", &s->session_id);
  get_u32(env, o, "peerSessionId", &s->peer_session_id);
  get_bytes(env, o, "cookie", s->cookie, &s->cookie_len);
  get_bytes(env, o, "peerCookie", s->peer_cookie, &s->peer_cookie_len);
  if (get_u32(env, o, "l2specLength", &v)) s->l2spec_len = v ? 4 : 0;
  if (get_u32(env, o, "sendSequence", &v)) s->send_seq = (uint8_t)v;
  if (get_u32(env, o, "requireSequence", &v)) s->recv_seq = (uint8_t)v;
  l2tp_session_init_header(s);
}

static napi_value buf(napi_env env, const void *p, size_t n) {
  napi_value b;
  napi_create_buffer_copy(env, n, p, NULL, &b);
  return b;
}

/* _testHeaders(cfg, count) -> Buffer[]: the headers of the next `count` frames. */
static napi_value t_headers(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], arr;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct l2tp_session s;
  session_from(env, argv[0], &s);
  uint32_t count = 1;
  napi_get_value_uint32(env, argv[1], &count);
  napi_create_array_with_length(env, count, &arr);
  for (uint32_t i = 0; i < count; i++) {
    uint8_t h[L2TP_HDR_MAX];
    size_t n = l2tp_build_header(&s, h);
    napi_set_element(env, arr, i, buf(env, h, n));
  }
  return arr;
}

/* _testReceive(cfg, packets[]) -> (number | Buffer)[]: drop reason index, or the delivered frame.
 * Sequence state carries over between packets like on one session. */
static napi_value t_receive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], arr;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct l2tp_session s;
  session_from(env, argv[0], &s);
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  napi_create_array_with_length(env, n, &arr);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e, r;
    void *d;
    size_t len;
    napi_get_element(env, argv[1], i, &e);
    napi_get_buffer_info(env, e, &d, &len);
    uint32_t sid = 0;
    size_t off = 0, payload = 0;
    int rc = l2tp_locate(d, len, s.udp, &sid, &off);
    if (rc == RX_OK && sid != s.session_id) rc = DROP_UNKNOWN_SESSION;
    if (rc == RX_OK) rc = l2tp_verify(&s, d, len, off, &payload);
    if (rc == RX_OK)
      r = buf(env, (uint8_t *)d + payload, len - payload);
    else
      napi_create_int32(env, rc, &r);
    napi_set_element(env, arr, i, r);
  }
  return arr;
}

/* _testSegment(frame, {gsoType, gsoSize, flags, csumStart, csumOffset}) -> Buffer[] | null */
static napi_value t_segment(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], arr, nul;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_null(env, &nul);
  void *d;
  size_t len;
  napi_get_buffer_info(env, argv[0], &d, &len);
  struct vnet_hdr h;
  memset(&h, 0, sizeof h);
  uint32_t v = 0;
  if (get_u32(env, argv[1], "gsoType", &v)) h.gso_type = (uint8_t)v;
  if (get_u32(env, argv[1], "gsoSize", &v)) h.gso_size = (uint16_t)v;
  if (get_u32(env, argv[1], "flags", &v)) h.flags = (uint8_t)v;
  if (get_u32(env, argv[1], "csumStart", &v)) h.csum_start = (uint16_t)v;
  if (get_u32(env, argv[1], "csumOffset", &v)) h.csum_offset = (uint16_t)v;
  if (h.gso_type == VNET_GSO_NONE) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, d, len);
    int rc = (h.flags & VNET_F_NEEDS_CSUM) ? csum_finish(copy, len, &h) : 0;
    napi_value r = rc < 0 ? nul : buf(env, copy, len);
    free(copy);
    if (rc < 0) return nul;
    napi_create_array_with_length(env, 1, &arr);
    napi_set_element(env, arr, 0, r);
    return arr;
  }
  struct tso ts;
  int n = tso_init(&ts, d, len, &h);
  if (n < 0) return nul;
  napi_create_array_with_length(env, (size_t)n, &arr);
  uint8_t *out = malloc(65536 + 256);
  for (uint32_t i = 0;; i++) {
    size_t seg = tso_next(&ts, out);
    if (!seg) break;
    napi_set_element(env, arr, i, buf(env, out, seg));
  }
  free(out);
  return arr;
}

/* Collects what the receive path would write to a TAP, as JS objects. */
struct collect {
  napi_env env;
  napi_value arr;
  uint32_t k;
};
static void collect_emit(void *ctx, const struct iovec *iov, int n, const struct vnet_hdr *h) {
  struct collect *c = ctx;
  napi_env env = c->env;
  napi_value o, x;
  size_t len = 0;
  for (int i = 0; i < n; i++) len += iov[i].iov_len;
  uint8_t *frame = malloc(len ? len : 1);
  if (!frame) return;
  for (size_t i = 0, at = 0; i < (size_t)n; at += iov[i].iov_len, i++) memcpy(frame + at, iov[i].iov_base, iov[i].iov_len);
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "frame", buf(env, frame, len));
  free(frame);
  const struct {
    const char *name;
    uint32_t v;
  } fields[] = {{"gsoType", h->gso_type},     {"gsoSize", h->gso_size},       {"hdrLen", h->hdr_len},
                {"csumStart", h->csum_start}, {"csumOffset", h->csum_offset}, {"flags", h->flags}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    napi_create_uint32(env, fields[i].v, &x);
    napi_set_named_property(env, o, fields[i].name, x);
  }
  napi_set_element(env, c->arr, c->k++, o);
}

/* _testMerge(frames[], trusted?) -> { frame: Buffer, gsoType, gsoSize, hdrLen, csumStart, csumOffset,
 * flags }[]: exactly what the receive path (gro_offer, the pump's own code) would write to a TAP.
 * trusted: the frames came in a UDP GRO train. */
static napi_value t_merge(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool tb = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &tb);
  int trusted = tb;
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  struct collect c = {.env = env};
  napi_create_array(env, &c.arr);
  struct gro g;
  memset(&g, 0, sizeof g);
  g.buf = malloc(GRO_HDR_MAX);
  if (!g.buf) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    void *d;
    size_t len;
    napi_get_element(env, argv[0], i, &e);
    napi_get_buffer_info(env, e, &d, &len);
    gro_offer(&g, d, len, trusted, collect_emit, &c);
  }
  gro_flush_to(&g, collect_emit, &c);
  free(g.buf);
  return c.arr;
}

/* _testEventLimit(burst, intervalMs, timesMs[]) -> number[]: per event, -1 when dropped, else the count
 * of events dropped before it. */
static napi_value t_event_limit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], arr;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t burst = 0, interval = 0, n = 0;
  napi_get_value_uint32(env, argv[0], &burst);
  napi_get_value_uint32(env, argv[1], &interval);
  napi_get_array_length(env, argv[2], &n);
  struct ev_limit l;
  ev_limit_init(&l, burst, (uint64_t)interval * 1000000, 0);
  napi_create_array_with_length(env, n, &arr);
  for (uint32_t i = 0; i < n; i++) {
    napi_value x, r;
    double t = 0;
    napi_get_element(env, argv[2], i, &x);
    napi_get_value_double(env, x, &t);
    uint64_t before = 0;
    int ok = ev_limit_take(&l, (uint64_t)(t * 1e6), &before);
    napi_create_double(env, ok ? (double)before : -1, &r);
    napi_set_element(env, arr, i, r);
  }
  return arr;
}

/* _testDemux(ops: [kind, sid, owner][]) -> number[]: one result per op. kind 0 add (0 or -errno),
 * 1 remove (0 or -errno), 2 find (the owner, or -1), 3 remove every entry of owner (entries left). */
static napi_value t_demux(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], arr;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  napi_create_array_with_length(env, n, &arr);
  static struct l2tp_session dummy;
  struct demux d;
  if (demux_init(&d) < 0) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value op, x, r;
    uint32_t v[3] = {0, 0, 0};
    napi_get_element(env, argv[0], i, &op);
    for (uint32_t k = 0; k < 3; k++) {
      napi_get_element(env, op, k, &x);
      napi_get_value_uint32(env, x, &v[k]);
    }
    void *owner = (void *)(uintptr_t)(v[2] + 1);
    double res = 0;
    if (v[0] == 0) res = demux_add(&d, v[1], &dummy, owner);
    if (v[0] == 1) res = demux_remove(&d, v[1]);
    if (v[0] == 2) {
      const struct demux_entry *e = demux_find(&d, v[1]);
      res = e ? (double)((uintptr_t)e->owner - 1) : -1;
    }
    if (v[0] == 3) {
      demux_remove_owner(&d, owner);
      res = d.count;
    }
    napi_create_double(env, res, &r);
    napi_set_element(env, arr, i, r);
  }
  demux_free(&d);
  return arr;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"_testHeaders", t_headers}, {"_testReceive", t_receive}, {"_testSegment", t_segment}, {"_testMerge", t_merge},
             {"_testEventLimit", t_event_limit}, {"_testDemux", t_demux}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
