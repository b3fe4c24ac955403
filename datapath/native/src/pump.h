/* One tunnel = one UDP (or IP protocol 115) socket and two threads outside the JS event loop:
 *   rx: recvmmsg on the socket -> locate session id -> verify cookie/sequence -> write to the TAP
 *   tx: epoll over the session TAPs -> read frames -> prepend the session header -> sendmmsg
 * Buffers are allocated once per tunnel; nothing is allocated per packet. Sessions are added and
 * removed under a write lock; the threads hold the read lock while they process a batch. */
#ifndef KL2TP_PUMP_H
#define KL2TP_PUMP_H
#include <pthread.h>
#include <stdint.h>

#include "wire.h"

#define PUMP_MAX_SESSIONS 4096
/* power of two, at least twice PUMP_MAX_SESSIONS (the session index stays at most half full) */
#define PUMP_INDEX_SIZE 8192

struct tunnel_cfg {
  int family; /* AF_INET or AF_INET6 */
  int udp;    /* 1 = UDP encap, 0 = IP protocol 115 */
  char local[64], remote[64];
  uint16_t local_port, remote_port;
  int udp_checksum;
};

/* Reported from a pump thread (to the JS side through a threadsafe function). */
typedef void (*pump_event_fn)(void *ctx, int fatal, uint32_t session_id, int err, const char *what);

struct tunnel_counters {
  uint64_t rx_packets; /* datagrams received on the socket */
  uint64_t drops[DROP_COUNT]; /* drops before a session is known */
};

struct tunnel;

/* Returns NULL and sets *err (-errno) and *what on failure. */
struct tunnel *tunnel_create(const struct tunnel_cfg *cfg, pump_event_fn ev, void *ev_ctx, int *err,
                             const char **what);
/* Takes ownership of s (malloc'ed, header initialised) and its tap_fd. */
int tunnel_add_session(struct tunnel *t, struct l2tp_session *s);
/* Removes the session; closes its TAP fd after clearing persistence unless keep_device. */
int tunnel_remove_session(struct tunnel *t, uint32_t session_id, int keep_device);
int tunnel_session_counters(struct tunnel *t, uint32_t session_id, struct l2tp_counters *out);
void tunnel_counters(struct tunnel *t, struct tunnel_counters *out);
/* Stops both threads, removes every session (see keep_device) and frees t. */
void tunnel_destroy(struct tunnel *t, int keep_devices);
#endif
