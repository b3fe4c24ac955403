#include "evlimit.h"

void ev_limit_init(struct ev_limit *l, uint32_t burst, uint64_t interval_ns, uint64_t now_ns) {
  l->burst = burst ? burst : 1;
  l->interval_ns = interval_ns ? interval_ns : 1;
  l->tokens = l->burst;
  l->last_ns = now_ns;
  l->suppressed = 0;
}

int ev_limit_take(struct ev_limit *l, uint64_t now_ns, uint64_t *suppressed) {
  if (now_ns > l->last_ns) {
    uint64_t add = (now_ns - l->last_ns) / l->interval_ns;
    if (add) {
      uint64_t t = l->tokens + add;
      l->tokens = t > l->burst ? l->burst : (uint32_t)t;
      /* keep the remainder, so that a steady trickle still earns its tokens */
      l->last_ns = l->tokens == l->burst ? now_ns : l->last_ns + add * l->interval_ns;
    }
  }
  if (!l->tokens) {
    l->suppressed++;
    return 0;
  }
  l->tokens--;
  *suppressed = l->suppressed;
  l->suppressed = 0;
  return 1;
}
