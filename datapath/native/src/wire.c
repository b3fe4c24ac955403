#include "wire.h"

#include <string.h>

static inline void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
static inline uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void l2tp_session_init_header(struct l2tp_session *s) {
  uint8_t *h = s->hdr;
  size_t n = 0;
  if (s->udp) {
    h[0] = 0x00, h[1] = 0x03, h[2] = 0x00, h[3] = 0x00; /* T=0 L=0 S=0, version 3, reserved */
    n = 4;
  }
  put32(h + n, s->peer_session_id);
  n += 4;
  memcpy(h + n, s->cookie, s->cookie_len);
  n += s->cookie_len;
  if (s->l2spec_len) {
    put32(h + n, 0);
    n += 4;
  }
  s->hdr_len = (uint8_t)n;
  s->rx_hdr_len = (uint8_t)(s->peer_cookie_len + s->l2spec_len);
}

size_t l2tp_build_header(struct l2tp_session *s, uint8_t *out) {
  memcpy(out, s->hdr, s->hdr_len);
  if (s->send_seq && s->l2spec_len) {
    put32(out + s->hdr_len - 4, L2TP_SEQ_S | (s->ns & L2TP_SEQ_MASK));
    s->ns = (s->ns + 1) & L2TP_SEQ_MASK;
  }
  return s->hdr_len;
}

int l2tp_locate(const uint8_t *p, size_t len, int udp, uint32_t *sid, size_t *off) {
  if (udp) {
    if (len < 2) return DROP_TRUNCATED;
    if (p[0] & 0x80) return DROP_CONTROL;     /* T bit: control message */
    if ((p[1] & 0x0f) != 3) return DROP_BAD_VERSION;
    if (len < 8) return DROP_TRUNCATED;
    *sid = get32(p + 4);
    *off = 8;
  } else {
    if (len < 4) return DROP_TRUNCATED;
    *sid = get32(p);
    if (*sid == 0) return DROP_CONTROL; /* session id 0 over IP: control message */
    *off = 4;
  }
  return RX_OK;
}

/* The kernel's l2tp_recv_data_seq with reorder_timeout 0: accept ns == nr; drop others, but after
 * more than 4 consecutive out-of-sequence packets take the peer's numbering (resynchronise). */
static int seq_check(struct l2tp_session *s, uint32_t ns) {
  uint32_t window = L2TP_SEQ_MASK / 2 + 1;
  uint32_t nws = (ns - s->nr) & L2TP_SEQ_MASK;
  if (nws >= window) return DROP_SEQUENCE; /* behind us: old or duplicate */
  if (ns != s->nr) {
    if (ns == ((s->nr_oos + 1) & L2TP_SEQ_MASK))
      s->nr_oos_count++;
    else
      s->nr_oos_count = 0;
    s->nr_oos = ns;
    if (s->nr_oos_count > 4) s->reorder_skip = 1;
    if (!s->reorder_skip) return DROP_SEQUENCE;
  }
  s->reorder_skip = 0;
  s->nr_oos_count = 0;
  s->nr = (ns + 1) & L2TP_SEQ_MASK;
  return RX_OK;
}

int l2tp_verify(struct l2tp_session *s, const uint8_t *p, size_t len, size_t off, size_t *payload) {
  if (len < off + s->rx_hdr_len + ETH_HLEN_MIN) return DROP_TRUNCATED;
  if (s->peer_cookie_len && memcmp(p + off, s->peer_cookie, s->peer_cookie_len) != 0) return DROP_BAD_COOKIE;
  off += s->peer_cookie_len;
  if (s->l2spec_len) {
    uint32_t w = get32(p + off);
    off += 4;
    if (s->recv_seq) {
      if (!(w & L2TP_SEQ_S)) return DROP_SEQUENCE; /* we require sequence numbers */
      int r = seq_check(s, w & L2TP_SEQ_MASK);
      if (r != RX_OK) return r;
    }
  } else if (s->recv_seq) {
    return DROP_SEQUENCE;
  }
  *payload = off;
  return RX_OK;
}
