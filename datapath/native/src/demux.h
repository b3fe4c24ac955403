/* Session ID -> session, over the sessions of every tunnel that shares one socket: the receive path's
 * one lookup per datagram. Open addressing with linear probing at load <= 1/2 (grown by doubling),
 * removal by backward shift (no tombstones, so lookups never slow down with churn). Pure: the caller
 * serialises writers against readers (the endpoint's lock). */
#ifndef KL2TP_DEMUX_H
#define KL2TP_DEMUX_H
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct demux_entry {
  uint32_t sid;
  struct l2tp_session *s; /* NULL: empty */
  void *owner;            /* the tunnel the session belongs to (its counters) */
};

struct demux {
  struct demux_entry *tab;
  uint32_t mask, count;
  int shift; /* 32 - log2(table size): the hash keeps the product's high bits */
};

int demux_init(struct demux *d); /* -ENOMEM */
void demux_free(struct demux *d);
/* -EEXIST when sid is taken (by any owner), -ENOMEM when the table cannot grow. */
int demux_add(struct demux *d, uint32_t sid, struct l2tp_session *s, void *owner);
/* -ENOENT when absent. */
int demux_remove(struct demux *d, uint32_t sid);
/* Removes every entry of owner. */
void demux_remove_owner(struct demux *d, const void *owner);

static inline uint32_t demux_slot(const struct demux *d, uint32_t sid) {
  return (uint32_t)((sid * 2654435761u) >> d->shift) & d->mask;
}

static inline const struct demux_entry *demux_find(const struct demux *d, uint32_t sid) {
  for (uint32_t i = demux_slot(d, sid);; i = (i + 1) & d->mask) {
    const struct demux_entry *e = &d->tab[i];
    if (!e->s) return NULL; /* the load factor guarantees an empty entry */
    if (e->sid == sid) return e;
  }
}
#endif
