/* libFuzzer target: the pump's receive path on one session, as pump.c's rx_one runs it: the raw
 * IPv4 header skip (IP encapsulation), l2tp_locate, l2tp_verify (cookie, sublayer, the sequence state
 * machine across packets) and, for frames that pass, gro_offer / gro_flush_to (segment merging into
 * virtio-header super-frames). Each input is a session configuration followed by a batch of packets;
 * a packet is raw bytes or a valid header for the session around a TCP frame, optionally damaged.
 * Checked beyond the sanitizers: every packet ends in exactly one outcome, and every merged frame
 * is at most 64 KiB with a virtio header that lies inside it. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "offload.h"
#include "wire.h"

#define MAX_PACKETS 96

static size_t emitted;

static void collect(void *ctx, const struct iovec *iov, int n, const struct vnet_hdr *h) {
  (void)ctx;
  size_t total = 0;
  volatile uint8_t sink = 0;
  for (int i = 0; i < n; i++) {
    const uint8_t *b = iov[i].iov_base;
    for (size_t k = 0; k < iov[i].iov_len; k++) sink ^= b[k]; /* every byte must be readable */
    total += iov[i].iov_len;
  }
  (void)sink;
  assert(total <= 65535 + 14);
  if (h->gso_type != VNET_GSO_NONE) assert(h->hdr_len < total && h->gso_size > 0);
  if (h->flags & VNET_F_NEEDS_CSUM) assert((size_t)h->csum_start + h->csum_offset + 2 <= total);
  emitted++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct input in = {data, size};
  struct l2tp_session s, peer;
  memset(&s, 0, sizeof s);
  uint8_t cfg = in_u8(&in);
  s.udp = cfg & 1;
  int raw_v4 = !s.udp && (cfg & 2); /* raw IPv4 sockets deliver the IP header */
  s.session_id = 0x00c0ffee;
  s.peer_session_id = 0x00beef00;
  static const uint8_t lens[4] = {0, 4, 8, 8};
  s.peer_cookie_len = lens[(cfg >> 2) & 3];
  s.cookie_len = lens[(cfg >> 4) & 3];
  in_bytes(&in, s.peer_cookie, 8);
  memcpy(s.cookie, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
  s.l2spec_len = (cfg & 0x40) ? 4 : 0;
  s.recv_seq = (cfg & 0x80) ? 1 : 0;
  s.vnet = 1;
  s.nr = in_u32(&in) & L2TP_SEQ_MASK;
  l2tp_session_init_header(&s);
  s.gro.buf = malloc(GRO_HDR_MAX);
  /* the peer: what it sends is what s expects */
  peer = s;
  peer.session_id = s.peer_session_id, peer.peer_session_id = s.session_id;
  memcpy(peer.cookie, s.peer_cookie, 8);
  peer.cookie_len = s.peer_cookie_len;
  peer.send_seq = s.recv_seq;
  peer.ns = s.nr;
  l2tp_session_init_header(&peer);

  uint8_t *pkts[MAX_PACKETS];
  int npkts = 0;
  static uint8_t scratch[20 + L2TP_HDR_MAX + 14 + 40 + 60 + 9000];
  uint32_t tcp_seq = in_u32(&in);
  while (in.left && npkts < MAX_PACKETS) {
    uint8_t mode = in_u8(&in);
    size_t len = 0, ip = raw_v4 ? 20 : 0;
    if (raw_v4) {
      memset(scratch, 0, 20);
      scratch[0] = (mode & 0x10) ? in_u8(&in) : 0x45; /* sometimes a bogus IHL */
    }
    if (mode & 1) { /* authentic header, then a TCP frame or raw bytes */
      size_t hl = l2tp_build_header(&peer, scratch + ip);
      if (mode & 0x20) peer.ns = in_u32(&in) & L2TP_SEQ_MASK; /* jump: out-of-order traffic */
      size_t fl;
      if (mode & 2) {
        size_t payload = in_u16(&in) % 1500;
        size_t thl = (mode & 0x40) ? 20 + 4 * (in_u8(&in) % 11) : 20;
        fl = build_tcp_frame(scratch + ip + hl, &in, (mode & 4) != 0, thl, tcp_seq, payload,
                             (mode & 0x80) ? in_u8(&in) : 0x10, (mode & 8) && (in_u8(&in) & 1));
        tcp_seq += (uint32_t)payload;
      } else {
        fl = in_bytes(&in, scratch + ip + hl, in_u16(&in) % 2000);
      }
      len = ip + hl + fl;
      if ((mode & 8) && len) scratch[in_u16(&in) % len] ^= (uint8_t)(1u << (in_u8(&in) & 7));
    } else {
      len = ip + in_bytes(&in, scratch + ip, in_u16(&in) % 9000);
    }
    pkts[npkts] = exact_copy(scratch, len);
    uint8_t *p = pkts[npkts++];
    int trusted = (mode & 0x40) && s.udp; /* one datagram of a UDP GRO train */
    /* rx_one */
    if (raw_v4) {
      if (len < 20) continue;
      size_t ihl = (size_t)(p[0] & 0x0f) * 4;
      if (ihl < 20 || len < ihl) continue;
      p += ihl, len -= ihl;
    }
    uint32_t sid = 0;
    size_t off = 0, payload = 0;
    int r = l2tp_locate(p, len, s.udp, &sid, &off);
    if (r != RX_OK) {
      assert(r >= 0 && r < DROP_COUNT);
      continue;
    }
    assert(off <= len);
    if (sid != s.session_id) continue;
    r = l2tp_verify(&s, p, len, off, &payload);
    if (r != RX_OK) {
      assert(r >= 0 && r < DROP_COUNT);
      continue;
    }
    assert(payload + ETH_HLEN_MIN <= len);
    gro_offer(&s.gro, p + payload, len - payload, trusted, collect, NULL);
    if (mode & 0x10 && !raw_v4) gro_flush_to(&s.gro, collect, NULL); /* end of a receive batch */
  }
  gro_flush_to(&s.gro, collect, NULL); /* the pump emits every run before reusing its buffers */
  for (int i = 0; i < npkts; i++) free(pkts[i]);
  free(s.gro.buf);
  return 0;
}
