/* Offloads between the TAP (IFF_VNET_HDR) and the tunnel socket:
 *   TX: the TAP hands over TCP super-frames (TSO, up to 64 KiB) and checksum-partial frames; we cut
 *       them into MSS-sized Ethernet frames with complete checksums (tso_*), or finish the checksum.
 *   RX: consecutive in-order TCP segments of one flow are merged into one super-frame written to the
 *       TAP with a GSO virtio header (gro_*), so the stack behind the TAP handles one packet, not 45.
 * Only IPv4 without options and IPv6 without extension headers, TCP, untagged Ethernet are merged or
 * segmented; everything else passes one frame at a time. */
#ifndef KL2TP_OFFLOAD_H
#define KL2TP_OFFLOAD_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VNET_HDR_LEN 10 /* struct virtio_net_hdr, host byte order */
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_ECN 0x80
#define GRO_MAX_SEGS 64
#define GRO_MAX_LEN 65000 /* IP total length of a merged frame stays below 65535 */
#define GRO_HDR_MAX 256  /* Ethernet + IP + TCP headers of a run: its only copied bytes */

struct vnet_hdr {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

void vnet_parse(const uint8_t *p, struct vnet_hdr *h);
void vnet_write(uint8_t *p, const struct vnet_hdr *h);

/* Complete a checksum-partial frame in place; returns 0 or -1 if the offsets are bogus. */
int csum_finish(uint8_t *frame, size_t len, const struct vnet_hdr *h);

struct tso {
  const uint8_t *frame;
  size_t len, l3, l4, hlen, off;
  uint16_t mss, id0;
  uint32_t seq0;
  int v6, i;
};
/* Prepare to segment; returns the number of segments, or -1 if the frame is not a TCP super-frame
 * we can segment. */
int tso_init(struct tso *t, const uint8_t *frame, size_t len, const struct vnet_hdr *h);
/* Write the next segment (full Ethernet frame, checksums complete) to out; returns its length, 0 at end. */
size_t tso_next(struct tso *t, uint8_t *out);

/* A merge run: the first frame's headers (copied, rewritten at the end) and the payload of every
 * segment where it was received. The frames must stay in place until the run is emitted (the pump
 * emits every run before reusing its receive buffers), so merging copies nothing. */
struct gro {
  uint8_t *buf; /* GRO_HDR_MAX bytes, allocated with the session */
  /* the frame as written: iov[0] the headers in buf, iov[1 + i] the payload of segment i */
  struct iovec iov[1 + GRO_MAX_SEGS];
  size_t len, l3, l4, hlen;
  uint16_t mss;
  uint32_t next_seq;
  int v6, segs, active;
};
/* Try to append frame to g (starting a new run if g is empty). Returns 1 if taken, 0 if it does not
 * continue the run (or is too long), -1 if its TCP checksum fails (never merged). trusted: the frame
 * came in a UDP GRO train, whose checksum covering it the kernel verified (it builds trains only of
 * datagrams with a non-zero checksum), so its TCP checksum is taken as the sender computed it. */
int gro_append(struct gro *g, const uint8_t *frame, size_t len, int trusted);
/* Whether a frame could take part in a merge run (TCP data, ACK, no options we cannot carry). */
int gro_mergeable(const uint8_t *frame, size_t len);
/* Finalise the run for writing: fixes lengths/checksums, fills the virtio header. */
void gro_finish(struct gro *g, struct vnet_hdr *h);

/* Writes one frame, given in iovcnt pieces, with its virtio header (the TAP write, or a test's collector). */
typedef void (*gro_emit_fn)(void *ctx, const struct iovec *iov, int iovcnt, const struct vnet_hdr *h);
/* The receive path's one decision per frame: merge it into g's run, or emit the run and/or the frame
 * alone, in order. Returns 1 when g holds the frame (a run is active). */
int gro_offer(struct gro *g, const uint8_t *frame, size_t len, int trusted, gro_emit_fn emit, void *ctx);
/* Emit g's run, if any. */
void gro_flush_to(struct gro *g, gro_emit_fn emit, void *ctx);
#endif
