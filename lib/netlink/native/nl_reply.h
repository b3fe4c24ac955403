/* The only netlink parsing in C: walk the nlmsghdrs of one reply datagram (bytes from the kernel)
 * to tell whether it answers the request `seq` and whether it ends it (NLMSG_DONE, NLMSG_ERROR).
 * Pure, so the fuzz target (test/fuzz/native/netlink-reply.c) runs exactly this code. */
#ifndef KL2TP_NL_REPLY_H
#define KL2TP_NL_REPLY_H
#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 1 when a message of the datagram carries seq (sets *done when one ends the request). */
static inline int nl_reply_scan(const void *buf, size_t len, uint32_t seq, int *done) {
  int belongs = 0;
  int left = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
  for (const struct nlmsghdr *h = buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_seq != seq) continue; /* a stale reply of an earlier, timed-out request */
    belongs = 1;
    if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) *done = 1;
  }
  return belongs;
}
#endif
