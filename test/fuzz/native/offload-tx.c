/* libFuzzer target: the pump's transmit path for what a TAP hands over (the bytes come from pods on
 * the node): vnet_parse of the virtio header, then TSO segmentation (tso_init / tso_next) of GSO
 * frames, or csum_finish of checksum-partial ones, as pump.c's tx_drain runs them. The frame is a
 * TCP super-frame built from the input (valid headers, then optionally damaged) or raw bytes.
 * Checked beyond the sanitizers: segments are written into blocks of exactly header + MSS bytes, their
 * count matches what tso_init promised, and their payloads add up to the frame's payload. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "offload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct input in = {data, size};
  static uint8_t scratch[VNET_HDR_LEN + 14 + 40 + 60 + 65536];
  uint8_t mode = in_u8(&in);
  size_t len;
  uint8_t *vh = scratch, *f = scratch + VNET_HDR_LEN;
  if (mode & 1) {
    int v6 = (mode & 2) != 0;
    size_t thl = (mode & 4) ? 20 + 4 * (in_u8(&in) % 11) : 20;
    size_t payload = in_u16(&in) % 64000;
    len = build_tcp_frame(f, &in, v6, thl, in_u32(&in), payload, (mode & 8) ? in_u8(&in) : 0x18, 0);
    struct vnet_hdr h = {.flags = VNET_F_NEEDS_CSUM,
                         .gso_type = (uint8_t)(v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4),
                         .hdr_len = (uint16_t)(14 + (v6 ? 40 : 20) + thl),
                         .gso_size = (uint16_t)(536 + in_u16(&in) % 8465), /* MSS a stack uses */
                         .csum_start = (uint16_t)(14 + (v6 ? 40 : 20)),
                         .csum_offset = 16};
    if (mode & 0x10) h.gso_type = VNET_GSO_NONE;
    if (mode & 0x20) h.gso_type |= VNET_GSO_ECN;
    vnet_write(vh, &h);
    if ((mode & 0x40) && len) f[in_u16(&in) % len] ^= (uint8_t)(1u << (in_u8(&in) & 7));
    if (mode & 0x80) in_bytes(&in, vh, VNET_HDR_LEN); /* a hostile virtio header (any MSS) */
  } else {
    len = in_bytes(&in, scratch, sizeof scratch);
    if (len < VNET_HDR_LEN) return 0;
    len -= VNET_HDR_LEN;
  }
  if (len < 14) return 0; /* tx_drain counts these as errors before parsing */
  uint8_t *frame = exact_copy(f, len);
  struct vnet_hdr h;
  vnet_parse(vh, &h);
  if (h.gso_type != VNET_GSO_NONE) {
    struct tso t;
    int n = tso_init(&t, frame, len, &h);
    if (n >= 0) {
      assert(t.hlen < len);
      size_t payload = 0;
      int segs = 0;
      for (;;) {
        uint8_t *out = malloc(t.hlen + t.mss);
        size_t seg = tso_next(&t, out);
        free(out);
        if (!seg) break;
        assert(seg > t.hlen && seg <= t.hlen + t.mss);
        payload += seg - t.hlen;
        segs++;
      }
      assert(segs == n);
      assert(payload == len - t.hlen);
    }
  } else if (h.flags & VNET_F_NEEDS_CSUM) {
    csum_finish(frame, len, &h);
  }
  free(frame);
  return 0;
}
