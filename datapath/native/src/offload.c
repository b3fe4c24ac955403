#include "offload.h"

#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = v >> 8, p[1] = (uint8_t)v; }
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr32(uint8_t *p, uint32_t v) { p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (uint8_t)v; }

void vnet_parse(const uint8_t *p, struct vnet_hdr *h) {
  h->flags = p[0];
  h->gso_type = p[1];
  memcpy(&h->hdr_len, p + 2, 2);
  memcpy(&h->gso_size, p + 4, 2);
  memcpy(&h->csum_start, p + 6, 2);
  memcpy(&h->csum_offset, p + 8, 2);
}
void vnet_write(uint8_t *p, const struct vnet_hdr *h) {
  p[0] = h->flags;
  p[1] = h->gso_type;
  memcpy(p + 2, &h->hdr_len, 2);
  memcpy(p + 4, &h->gso_size, 2);
  memcpy(p + 6, &h->csum_start, 2);
  memcpy(p + 8, &h->csum_offset, 2);
}

/* Fold a sum of native-endian 32-bit words to a big-endian 16-bit one's-complement value. */
static uint64_t fold_native(uint64_t n) {
  n = (n & 0xffffffffu) + (n >> 32);
  n = (n & 0xffff) + (n >> 16);
  n = (n & 0xffff) + (n >> 16);
  n = (n & 0xffff) + (n >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  n = ((n & 0xff) << 8) | (n >> 8);
#endif
  return n;
}

/*
 * One's-complement sum of big-endian 16-bit words (len may be odd only for the last call).
 * The sum does not depend on byte order (RFC 1071), so the bulk is summed as native 32-bit words
 * into 64-bit accumulators (no carry is lost below 2^32 words; the compiler vectorises it), folded
 * and swapped to big endian once. With csum_copy, the pump's hottest code: every TCP segment is
 * summed on send (segmentation) and on receive (verify before merging).
 */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint64_t a = 0, b = 0;
  for (; len >= 8; p += 8, len -= 8) {
    uint32_t x, y;
    memcpy(&x, p, 4);
    memcpy(&y, p + 4, 4);
    a += x, b += y;
  }
  sum += fold_native(a + b);
  for (; len >= 2; p += 2, len -= 2) sum += rd16(p);
  if (len) sum += (uint64_t)p[0] << 8;
  return sum;
}

/* memcpy and csum_add(0, src, len) in one pass: the source is read once. */
static uint64_t csum_copy(uint8_t *dst, const uint8_t *src, size_t len) {
  uint64_t a = 0, b = 0;
  for (; len >= 8; src += 8, dst += 8, len -= 8) {
    uint32_t x, y;
    memcpy(&x, src, 4);
    memcpy(&y, src + 4, 4);
    memcpy(dst, &x, 4);
    memcpy(dst + 4, &y, 4);
    a += x, b += y;
  }
  memcpy(dst, src, len);
  return csum_add(fold_native(a + b), src, len);
}

static uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}
static uint64_t pseudo(const uint8_t *frame, size_t l3, int v6, uint32_t l4len) {
  uint64_t s = v6 ? csum_add(0, frame + l3 + 8, 32) : csum_add(0, frame + l3 + 12, 8);
  return s + 6 /* TCP */ + l4len;
}

int csum_finish(uint8_t *frame, size_t len, const struct vnet_hdr *h) {
  size_t start = h->csum_start, at = (size_t)h->csum_start + h->csum_offset;
  if (start >= len || at + 2 > len) return -1;
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, frame + start, len - start));
  wr16(frame + at, c);
  return 0;
}

/* Locate IP and TCP in an untagged Ethernet frame; returns 0 and fills l3/l4/v6, or -1. */
static int l3l4(const uint8_t *f, size_t len, size_t *l3, size_t *l4, int *v6) {
  if (len < 14 + 20) return -1;
  uint16_t et = rd16(f + 12);
  *l3 = 14;
  if (et == 0x0800) {
    size_t ihl = (size_t)(f[14] & 0x0f) * 4;
    if ((f[14] >> 4) != 4 || ihl < 20 || f[14 + 9] != 6) return -1;
    *l4 = 14 + ihl, *v6 = 0;
  } else if (et == 0x86dd) {
    if (len < 14 + 40 || f[14 + 6] != 6) return -1; /* no extension headers */
    *l4 = 14 + 40, *v6 = 1;
  } else {
    return -1;
  }
  if (*l4 + 20 > len) return -1;
  size_t thl = (size_t)(f[*l4 + 12] >> 4) * 4;
  if (thl < 20 || *l4 + thl > len) return -1;
  return 0;
}

int tso_init(struct tso *t, const uint8_t *frame, size_t len, const struct vnet_hdr *h) {
  if (h->gso_size == 0) return -1;
  if (l3l4(frame, len, &t->l3, &t->l4, &t->v6) < 0) return -1;
  if ((h->gso_type & ~VNET_GSO_ECN) != (t->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4)) return -1;
  t->frame = frame;
  t->len = len;
  t->hlen = t->l4 + (size_t)(frame[t->l4 + 12] >> 4) * 4;
  if (t->hlen >= len) return -1;
  t->mss = h->gso_size;
  t->off = t->hlen;
  t->i = 0;
  t->seq0 = rd32(frame + t->l4 + 4);
  t->id0 = t->v6 ? 0 : rd16(frame + t->l3 + 4);
  return (int)((len - t->hlen + t->mss - 1) / t->mss);
}

size_t tso_next(struct tso *t, uint8_t *out) {
  if (t->off >= t->len) return 0;
  size_t chunk = t->len - t->off < t->mss ? t->len - t->off : t->mss;
  int last = t->off + chunk >= t->len;
  memcpy(out, t->frame, t->hlen);
  /* the payload's sum comes with its copy; hlen - l4 (the TCP header) is even, so sums add up */
  uint64_t payload_sum = csum_copy(out + t->hlen, t->frame + t->off, chunk);
  size_t seg = t->hlen + chunk;
  uint8_t *ip = out + t->l3, *tcp = out + t->l4;
  if (t->v6) {
    wr16(ip + 4, (uint16_t)(seg - t->l3 - 40));
  } else {
    wr16(ip + 2, (uint16_t)(seg - t->l3));
    wr16(ip + 4, (uint16_t)(t->id0 + t->i));
    wr16(ip + 10, 0);
    wr16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, t->l4 - t->l3)));
  }
  wr32(tcp + 4, t->seq0 + (uint32_t)(t->off - t->hlen));
  if (!last) tcp[13] &= (uint8_t)~0x09; /* FIN, PSH only on the last segment */
  if (t->i > 0) tcp[13] &= (uint8_t)~0x80; /* CWR only on the first */
  wr16(tcp + 16, 0);
  uint32_t l4len = (uint32_t)(seg - t->l4);
  wr16(tcp + 16,
       (uint16_t)~csum_fold(pseudo(out, t->l3, t->v6, l4len) + csum_add(payload_sum, tcp, t->hlen - t->l4)));
  t->off += chunk;
  t->i++;
  return seg;
}

int gro_mergeable(const uint8_t *f, size_t len) {
  size_t l3, l4;
  int v6;
  if (l3l4(f, len, &l3, &l4, &v6) < 0) return 0;
  if (!v6) {
    if ((f[l3] & 0x0f) != 5) return 0;                 /* IP options */
    if (rd16(f + l3 + 6) & 0x3fff) return 0;           /* fragment */
    if ((size_t)rd16(f + l3 + 2) != len - l3) return 0; /* padding or bogus length */
  } else if ((size_t)rd16(f + l3 + 4) != len - l3 - 40) {
    return 0;
  }
  uint8_t flags = f[l4 + 13];
  if ((flags & 0x10) == 0 || (flags & 0xe7 & ~0x10)) return 0; /* ACK, optionally PSH; nothing else */
  size_t hlen = l4 + (size_t)(f[l4 + 12] >> 4) * 4;
  return hlen < len; /* has payload; the checksum is verified by gro_append, with the copy */
}


/* Merging drops the per-segment checksum: a frame not known good must verify first. */
static int tcp_ok(const uint8_t *f, size_t l3, size_t l4, int v6, size_t len, int trusted) {
  if (trusted) return 1;
  return csum_fold(pseudo(f, l3, v6, (uint32_t)(len - l4)) + csum_add(0, f + l4, len - l4)) == 0xffff;
}

int gro_append(struct gro *g, const uint8_t *f, size_t len, int trusted) {
  if (!g->active) {
    if (len > GRO_MAX_LEN) return 0;
    size_t l3, l4;
    int v6;
    if (l3l4(f, len, &l3, &l4, &v6) < 0) return 0;
    size_t hlen = l4 + (size_t)(f[l4 + 12] >> 4) * 4;
    if (hlen > GRO_HDR_MAX) return 0;
    if (!tcp_ok(f, l3, l4, v6, len, trusted)) return -1;
    g->l3 = l3, g->l4 = l4, g->v6 = v6, g->hlen = hlen;
    memcpy(g->buf, f, hlen); /* the headers are rewritten by gro_finish; payloads stay in place */
    g->iov[0] = (struct iovec){.iov_base = g->buf, .iov_len = hlen};
    g->iov[1] = (struct iovec){.iov_base = (void *)(f + hlen), .iov_len = len - hlen};
    g->len = len;
    g->mss = (uint16_t)(len - hlen);
    g->next_seq = rd32(f + l4 + 4) + g->mss;
    g->segs = 1;
    g->active = 1;
    return 1;
  }
  if (g->segs >= GRO_MAX_SEGS || len < g->hlen || g->len + len - g->hlen > GRO_MAX_LEN) return 0;
  const uint8_t *a = g->buf, *b = f;
  size_t l3 = g->l3, l4 = g->l4;
  if ((b[l4 + 12] >> 4) * 4 != (int)(g->hlen - l4)) return 0;
  if (memcmp(a, b, 14)) return 0; /* Ethernet header */
  if (g->v6) {
    if (memcmp(a + l3, b + l3, 4) || memcmp(a + l3 + 6, b + l3 + 6, 34)) return 0;
  } else {
    if (memcmp(a + l3, b + l3, 2) || memcmp(a + l3 + 6, b + l3 + 6, 4) || memcmp(a + l3 + 12, b + l3 + 12, 8))
      return 0;
  }
  if (memcmp(a + l4, b + l4, 4) || rd32(b + l4 + 4) != g->next_seq) return 0; /* ports, sequence */
  if (memcmp(a + l4 + 8, b + l4 + 8, 4)) return 0;                             /* ack */
  if (a[l4 + 12] != b[l4 + 12] || (a[l4 + 13] & ~0x08) != (b[l4 + 13] & ~0x08)) return 0;
  if (a[l4 + 13] & 0x08) return 0; /* the run already ended with PSH */
  if (memcmp(a + l4 + 14, b + l4 + 14, 2)) return 0; /* window */
  if (memcmp(a + l4 + 20, b + l4 + 20, g->hlen - l4 - 20)) return 0; /* options (timestamps) */
  size_t pay = len - g->hlen;
  if (pay > g->mss) return 0;
  if ((g->len - g->hlen) % g->mss) return 0; /* a short segment already ended the run */
  if (!tcp_ok(b, l3, l4, g->v6, len, trusted)) return -1;
  g->iov[1 + g->segs] = (struct iovec){.iov_base = (void *)(b + g->hlen), .iov_len = pay};
  g->len += pay;
  g->next_seq += (uint32_t)pay;
  g->buf[l4 + 13] |= b[l4 + 13] & 0x08;
  g->segs++;
  return 1;
}

void gro_finish(struct gro *g, struct vnet_hdr *h) {
  memset(h, 0, sizeof *h);
  if (g->segs > 1) {
    uint8_t *ip = g->buf + g->l3, *tcp = g->buf + g->l4;
    if (g->v6) {
      wr16(ip + 4, (uint16_t)(g->len - g->l3 - 40));
    } else {
      wr16(ip + 2, (uint16_t)(g->len - g->l3));
      wr16(ip + 10, 0);
      wr16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, g->l4 - g->l3)));
    }
    /* Checksum-partial: the field holds the pseudo-header sum, the stack treats the data as verified. */
    wr16(tcp + 16, csum_fold(pseudo(g->buf, g->l3, g->v6, (uint32_t)(g->len - g->l4))));
    h->flags = VNET_F_NEEDS_CSUM;
    h->gso_type = g->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
    h->hdr_len = (uint16_t)g->hlen;
    h->gso_size = g->mss;
    h->csum_start = (uint16_t)g->l4;
    h->csum_offset = 16;
  }
  g->active = 0;
}

void gro_flush_to(struct gro *g, gro_emit_fn emit, void *ctx) {
  if (!g->active) return;
  struct vnet_hdr h;
  gro_finish(g, &h);
  emit(ctx, g->iov, 1 + g->segs, &h);
}

int gro_offer(struct gro *g, const uint8_t *frame, size_t len, int trusted, gro_emit_fn emit, void *ctx) {
  static const struct vnet_hdr none;
  int r = gro_mergeable(frame, len) ? gro_append(g, frame, len, trusted) : -1;
  if (r == 0 && g->active) { /* does not continue the run: end it, start another */
    gro_flush_to(g, emit, ctx);
    r = gro_append(g, frame, len, trusted);
  }
  if (r > 0) return 1;
  gro_flush_to(g, emit, ctx); /* keeps the order of the session's frames */
  struct iovec one = {.iov_base = (void *)frame, .iov_len = len};
  emit(ctx, &one, 1, &none);
  return 0;
}
