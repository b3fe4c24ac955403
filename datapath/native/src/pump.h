/* One tunnel = its sessions and a transmit thread outside the JS event loop, on an endpoint (the
 * socket and its receive thread, see endpoint.h; shared by IP tunnels between the same addresses):
 *   tx: epoll over the session TAPs -> read frames -> prepend the session header -> sendmmsg
 * Buffers are allocated once per tunnel and endpoint; nothing is allocated per packet. Sessions are
 * added and removed under the write locks of the tunnel and then the endpoint; each thread holds its
 * read lock while it processes a batch. */
#ifndef KL2TP_PUMP_H
#define KL2TP_PUMP_H
#include <pthread.h>
#include <stdint.h>

#include "endpoint.h"
#include "wire.h"

#define PUMP_MAX_SESSIONS 4096

struct tunnel;

/* Returns NULL and sets *err (-errno) and *what on failure. */
struct tunnel *tunnel_create(const struct tunnel_cfg *cfg, pump_event_fn ev, void *ev_ctx, int *err,
                             const char **what);
/* Takes ownership of s (malloc'ed, header initialised) and its tap_fd. -EEXIST when this tunnel, or
 * another on the same endpoint, has the session ID. */
int tunnel_add_session(struct tunnel *t, struct l2tp_session *s);
/* Removes the session; closes its TAP fd after clearing persistence unless keep_device. */
int tunnel_remove_session(struct tunnel *t, uint32_t session_id, int keep_device);
int tunnel_session_counters(struct tunnel *t, uint32_t session_id, struct l2tp_counters *out);
void tunnel_counters(struct tunnel *t, struct tunnel_counters *out);
/* Stops its thread, leaves the endpoint, removes every session (see keep_device) and frees t. */
void tunnel_destroy(struct tunnel *t, int keep_devices);
#endif
