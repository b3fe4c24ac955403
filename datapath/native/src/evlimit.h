/* Token bucket for the pump's error events. A broken socket or a batch of vanished TAPs can raise an
 * event per packet or per session; the JS side only needs to hear about the first few and how many
 * followed. Pure (the caller passes the time and holds any lock), so a unit test can drive it. */
#ifndef KL2TP_EVLIMIT_H
#define KL2TP_EVLIMIT_H
#include <stdint.h>

struct ev_limit {
  uint32_t burst;       /* events let through at once */
  uint64_t interval_ns; /* one more event allowed per interval */
  uint32_t tokens;
  uint64_t last_ns;     /* when the last token was added */
  uint64_t suppressed;  /* dropped since the last event let through */
};

void ev_limit_init(struct ev_limit *l, uint32_t burst, uint64_t interval_ns, uint64_t now_ns);
/* 1: let the event through, *suppressed = events dropped before it (then reset); 0: drop and count it. */
int ev_limit_take(struct ev_limit *l, uint64_t now_ns, uint64_t *suppressed);
#endif
