/* Shared by the libFuzzer targets: read typed values off the fuzzer's bytes (zero once they run
 * out), and build the Ethernet/IPv4|IPv6/TCP frames the offload code acts on, with valid checksums,
 * so the mutations start from frames that reach the deep paths (merging, segmenting). */
#ifndef KL2TP_FUZZ_INPUT_H
#define KL2TP_FUZZ_INPUT_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct input {
  const uint8_t *p;
  size_t left;
};

static inline uint8_t in_u8(struct input *in) {
  if (!in->left) return 0;
  in->left--;
  return *in->p++;
}
static inline uint16_t in_u16(struct input *in) { return (uint16_t)(in_u8(in) << 8 | in_u8(in)); }
static inline uint32_t in_u32(struct input *in) { return (uint32_t)in_u16(in) << 16 | in_u16(in); }
/* Up to n bytes into out; returns how many were copied. */
static inline size_t in_bytes(struct input *in, uint8_t *out, size_t n) {
  if (n > in->left) n = in->left;
  memcpy(out, in->p, n);
  in->p += n, in->left -= n;
  return n;
}

/* A copy in a heap block of exactly len bytes, so AddressSanitizer sees any read past the end. */
static inline uint8_t *exact_copy(const uint8_t *p, size_t len) {
  uint8_t *c = malloc(len ? len : 1);
  if (!c) abort();
  if (len) memcpy(c, p, len);
  return c;
}

static inline uint32_t csum_sum(uint32_t s, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) s += (uint32_t)p[n - 1] << 8;
  return s;
}
static inline uint16_t csum_end(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

/* Writes an untagged Ethernet + IPv4 (no options) or IPv6 + TCP (header tcp_hlen) frame with
 * payload_len bytes of payload taken from the input into out (at least 14 + 40 + 60 + payload_len
 * bytes); checksums valid unless bad_csum. Returns the frame length. */
static inline size_t build_tcp_frame(uint8_t *out, struct input *in, int v6, size_t tcp_hlen, uint32_t seq,
                                     size_t payload_len, uint8_t tcp_flags, int bad_csum) {
  static const uint8_t eth[14] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
  memcpy(out, eth, 14);
  size_t l3 = 14, iph = v6 ? 40 : 20, l4 = l3 + iph, len = l4 + tcp_hlen + payload_len;
  memset(out + l3, 0, iph + tcp_hlen);
  if (v6) {
    out[12] = 0x86, out[13] = 0xdd;
    out[l3] = 0x60;
    out[l3 + 4] = (uint8_t)((tcp_hlen + payload_len) >> 8), out[l3 + 5] = (uint8_t)(tcp_hlen + payload_len);
    out[l3 + 6] = 6, out[l3 + 7] = 64;
    out[l3 + 8] = 0xfd, out[l3 + 23] = 1, out[l3 + 24] = 0xfd, out[l3 + 39] = 2;
  } else {
    out[l3] = 0x45;
    out[l3 + 2] = (uint8_t)((len - l3) >> 8), out[l3 + 3] = (uint8_t)(len - l3);
    out[l3 + 6] = 0x40, out[l3 + 8] = 64, out[l3 + 9] = 6;
    out[l3 + 12] = 10, out[l3 + 15] = 1, out[l3 + 16] = 10, out[l3 + 19] = 2;
    uint16_t c = csum_end(csum_sum(0, out + l3, 20));
    out[l3 + 10] = (uint8_t)(c >> 8), out[l3 + 11] = (uint8_t)c;
  }
  uint8_t *t = out + l4;
  t[0] = 0x30, t[1] = 0x39, t[2] = 0x1f, t[3] = 0x90;
  t[4] = (uint8_t)(seq >> 24), t[5] = (uint8_t)(seq >> 16), t[6] = (uint8_t)(seq >> 8), t[7] = (uint8_t)seq;
  t[12] = (uint8_t)((tcp_hlen / 4) << 4), t[13] = tcp_flags, t[14] = 0xff, t[15] = 0xff;
  for (size_t i = 20; i + 1 < tcp_hlen; i += 2) t[i] = 1; /* NOP options */
  size_t got = in_bytes(in, t + tcp_hlen, payload_len);
  memset(t + tcp_hlen + got, 0xa5, payload_len - got);
  uint32_t s = v6 ? csum_sum(0, out + l3 + 8, 32) : csum_sum(0, out + l3 + 12, 8);
  s += 6 + (uint32_t)(tcp_hlen + payload_len);
  uint16_t c = csum_end(csum_sum(s, t, tcp_hlen + payload_len));
  if (bad_csum) c ^= 1;
  t[16] = (uint8_t)(c >> 8), t[17] = (uint8_t)c;
  return len;
}
#endif
