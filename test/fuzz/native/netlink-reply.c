/* libFuzzer target: the only netlink parsing done in C, nl_reply_scan (lib/netlink/native), which
 * walks the nlmsghdrs of a reply datagram to find the request's messages and its end. The datagram
 * is copied into a block of exactly its length (netlink_socket.c's receive buffer is larger, so this
 * is the stricter check); everything after the headers is decoded in TypeScript. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "nl_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct input in = {data, size};
  uint32_t seq = in_u32(&in);
  /* netlink_socket.c receives into a malloc'ed buffer: the same (4-byte aligned) start */
  uint8_t *buf = exact_copy(in.p, in.left);
  int done = 0;
  int belongs = nl_reply_scan(buf, in.left, seq, &done);
  if (done && !belongs) abort(); /* only a message of the request can end it */
  free(buf);
  return 0;
}
