/* Fuzz harness for the pump's receive path (datapath/native/src/wire.c): l2tp_locate, then
 * l2tp_verify when the session ID is the configured one, exactly as pump.c calls them. Built with
 * -fsanitize=address,undefined by test/fuzz/native-wire.ts, which drives it over stdin/stdout.
 *
 * Each request (little-endian), one at a time:
 *   u8 udp, u8 peer_cookie_len, u8 l2spec_len, u8 recv_seq, u8 peer_cookie[8],
 *   u32 session_id, u32 nr, u32 nr_oos, i32 nr_oos_count, i32 reorder_skip, u32 len, u8 packet[len]
 * Each answer (9 x 32 bits, host byte order; the reader assumes a little-endian host):
 *   locate result, sid, off, verify result (VERIFY_NOT_CALLED when not called), payload offset,
 *   nr, nr_oos, nr_oos_count, reorder_skip (the session's receive state afterwards)
 * The packet is copied into a heap block of exactly len bytes so that ASan sees any over-read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

#define VERIFY_NOT_CALLED (-100)
#define REQ_HDR 36

static int read_full(uint8_t *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(0, p + got, n - got);
    if (r <= 0) return got == 0 && r == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int main(void) {
  uint8_t h[REQ_HDR];
  for (;;) {
    int r = read_full(h, REQ_HDR);
    if (r == 0) return 0;
    if (r < 0) return 2;
    struct l2tp_session s;
    memset(&s, 0, sizeof s);
    s.udp = h[0];
    s.peer_cookie_len = h[1];
    s.l2spec_len = h[2];
    s.recv_seq = h[3];
    memcpy(s.peer_cookie, h + 4, 8);
    s.session_id = le32(h + 12);
    s.nr = le32(h + 16);
    s.nr_oos = le32(h + 20);
    s.nr_oos_count = (int32_t)le32(h + 24);
    s.reorder_skip = (int32_t)le32(h + 28);
    uint32_t len = le32(h + 32);
    if (s.peer_cookie_len > 8 || len > (1u << 20)) return 3;
    l2tp_session_init_header(&s);
    uint8_t *pkt = malloc(len ? len : 1);
    if (!pkt) return 4;
    if (len && read_full(pkt, len) != 1) return 2;
    if (!len) {
      free(pkt);
      pkt = malloc(0); /* a zero-byte block: any read of it is reported */
    }
    uint32_t sid = 0;
    size_t off = 0, payload = 0;
    int32_t out[9];
    out[0] = l2tp_locate(pkt, len, s.udp, &sid, &off);
    out[3] = VERIFY_NOT_CALLED;
    if (out[0] == RX_OK && sid == s.session_id) out[3] = l2tp_verify(&s, pkt, len, off, &payload);
    out[1] = (int32_t)sid;
    out[2] = (int32_t)off;
    out[4] = (int32_t)payload;
    out[5] = (int32_t)s.nr;
    out[6] = (int32_t)s.nr_oos;
    out[7] = s.nr_oos_count;
    out[8] = s.reorder_skip;
    free(pkt);
    if (write(1, out, sizeof out) != (ssize_t)sizeof out) return 5;
  }
}
