/* The socket a tunnel sends and receives on, with its receive thread:
 *   rx: recvmmsg on the socket -> locate session id -> look it up -> verify cookie/sequence -> TAP
 * A UDP tunnel has one of its own (its ports already separate it from every other). Over IP (protocol
 * 115) the kernel hands every raw socket bound to an address pair a copy of each datagram of that
 * pair, so the tunnels between the same two addresses share one endpoint, and its lookup spans all
 * their sessions: each datagram is read once and counted once, by the tunnel owning its session. */
#ifndef KL2TP_ENDPOINT_H
#define KL2TP_ENDPOINT_H
#include <stdint.h>

#include "wire.h"

#define FRAME_MAX 65536 /* largest datagram (or GRO train) and largest TAP frame */

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
  /* datagrams for its sessions; the endpoint's first tunnel also counts those no tunnel owns */
  uint64_t rx_packets;
  uint64_t drops[DROP_COUNT]; /* drops before a session is known */
};

static inline void inc(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void st(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* A connected socket reports ICMP errors from the peer (port/protocol unreachable while the peer is
 * not up yet: ECONNREFUSED, ENOPROTOOPT, ...) once, as the result of a later call; those and memory
 * pressure are not failures of the tunnel. Only a broken descriptor or argument is. */
int sock_error_transient(int e);

struct endpoint;

/* The endpoint for cfg, shared with the tunnels already on its address pair (IP encap) or new; the
 * tunnel's counters c identify it from then on. NULL with *err (-errno) and *what on failure. */
struct endpoint *endpoint_join(const struct tunnel_cfg *cfg, struct tunnel_counters *c, pump_event_fn ev,
                               void *ev_ctx, int *err, const char **what);
/* Forgets the tunnel of c and its sessions (the receive thread no longer sees them on return); the
 * last tunnel to leave stops the thread and closes the socket. */
void endpoint_leave(struct endpoint *e, struct tunnel_counters *c);
int endpoint_socket(const struct endpoint *e);
/* -EEXIST when a tunnel of the endpoint already has the session ID. */
int endpoint_add_session(struct endpoint *e, struct l2tp_session *s, struct tunnel_counters *c);
/* On return the receive thread no longer holds s. */
void endpoint_remove_session(struct endpoint *e, uint32_t session_id);
#endif
