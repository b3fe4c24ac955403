/* L2TPv3 data message layout (RFC 3931, byte-identical to Linux l2tp_core/l2tp_eth).
 *
 *   UDP: [ver/flags 0x0003][reserved 0x0000][session id][cookie 0|4|8][l2spec 0|4][ethernet]
 *   IP:  [session id (0 = control)][cookie 0|4|8][l2spec 0|4][ethernet]
 *   l2spec (default sublayer): |x|S|xxxxxx|24-bit sequence|, S = 0x40000000, all zero when not sequencing.
 *
 * The header a session sends is computed once (a template) when the session is added; the per-packet
 * work is a memcpy plus, when sequencing, one 32-bit store. */
#ifndef KL2TP_WIRE_H
#define KL2TP_WIRE_H
#include <stddef.h>
#include <stdint.h>

#include "offload.h"

/* Same order as DROP_REASONS in datapath/backend/types.ts. */
enum drop_reason {
  DROP_UNKNOWN_SESSION = 0,
  DROP_BAD_COOKIE,
  DROP_TRUNCATED,
  DROP_BAD_VERSION,
  DROP_CONTROL,
  DROP_SEQUENCE,
  DROP_OVERSIZED,
  DROP_BAD_SOURCE,
  DROP_COUNT
};
#define RX_OK (-1)

#define L2TP_HDR_MAX 24 /* 4 (udp flags) + 4 (session) + 8 (cookie) + 4 (l2spec) rounded up */
#define L2TP_SEQ_MASK 0x00ffffffu
#define L2TP_SEQ_S 0x40000000u
#define ETH_HLEN_MIN 14

struct l2tp_counters {
  uint64_t tx_packets, tx_bytes, tx_errors;
  uint64_t rx_packets, rx_bytes, rx_errors;
  uint64_t drops[DROP_COUNT];
  uint64_t tap_lost; /* 1 once the TAP could no longer be read: the pump stopped polling it */
};

struct l2tp_session {
  uint32_t session_id;      /* ours: what we accept */
  uint32_t peer_session_id; /* what we put on the wire */
  uint8_t cookie[8], cookie_len;           /* what we send */
  uint8_t peer_cookie[8], peer_cookie_len; /* what we expect */
  uint8_t l2spec_len;                      /* 0 (none) or 4 (default) */
  uint8_t send_seq, recv_seq;
  uint8_t udp;
  uint8_t hdr[L2TP_HDR_MAX]; /* template of the transmitted header */
  uint8_t hdr_len;
  uint8_t rx_hdr_len; /* bytes after the session id on receive: peer cookie + l2spec */
  /* sequence state: ns written by the TX thread only, nr/oos by the RX thread only */
  uint32_t ns, nr, nr_oos;
  int nr_oos_count, reorder_skip;
  int tap_fd;
  uint8_t vnet; /* the TAP carries virtio headers (TSO in, GSO out) */
  struct gro gro; /* receive merge run (vnet only) */
  struct l2tp_counters c;
};

/* Fill hdr/hdr_len/rx_hdr_len from the parameters. */
void l2tp_session_init_header(struct l2tp_session *s);

/* Write the header for the next frame into out (>= hdr_len bytes); returns hdr_len. */
size_t l2tp_build_header(struct l2tp_session *s, uint8_t *out);

/* Find the session id of a received L2TP message (p = UDP payload, or IP payload for encap ip).
 * Returns RX_OK with *sid and *off (offset just after the session id), or a drop reason. */
int l2tp_locate(const uint8_t *p, size_t len, int udp, uint32_t *sid, size_t *off);

/* Check cookie and sequence for a message addressed to s; on RX_OK *payload is the ethernet frame
 * offset. Updates the session's receive sequence state. */
int l2tp_verify(struct l2tp_session *s, const uint8_t *p, size_t len, size_t off, size_t *payload);

#endif
