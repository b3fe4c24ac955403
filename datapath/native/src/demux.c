#include "demux.h"

#include <errno.h>
#include <stdlib.h>

#define DEMUX_MIN_BITS 4

static int alloc_table(struct demux *d, int bits) {
  struct demux_entry *tab = calloc((size_t)1 << bits, sizeof *tab);
  if (!tab) return -ENOMEM;
  d->tab = tab;
  d->mask = (1u << bits) - 1;
  d->shift = 32 - bits;
  d->count = 0;
  return 0;
}

int demux_init(struct demux *d) { return alloc_table(d, DEMUX_MIN_BITS); }

void demux_free(struct demux *d) {
  free(d->tab);
  d->tab = NULL;
  d->count = 0;
}

static void place(struct demux *d, const struct demux_entry *e) {
  uint32_t i = demux_slot(d, e->sid);
  while (d->tab[i].s) i = (i + 1) & d->mask;
  d->tab[i] = *e;
  d->count++;
}

/* Rehash into a table of 2^bits entries. */
static int grow(struct demux *d, int bits) {
  struct demux old = *d;
  if (alloc_table(d, bits) < 0) {
    *d = old;
    return -ENOMEM;
  }
  for (uint32_t i = 0; i <= old.mask; i++)
    if (old.tab[i].s) place(d, &old.tab[i]);
  free(old.tab);
  return 0;
}

int demux_add(struct demux *d, uint32_t sid, struct l2tp_session *s, void *owner) {
  if (demux_find(d, sid)) return -EEXIST;
  if ((d->count + 1) * 2 > d->mask + 1) {
    int rc = grow(d, 33 - d->shift);
    if (rc < 0) return rc;
  }
  struct demux_entry e = {.sid = sid, .s = s, .owner = owner};
  place(d, &e);
  return 0;
}

/* Is slot k (where an entry hashes to) cyclically in (i, j]? Then the entry at j may stay there. */
static int between(uint32_t i, uint32_t k, uint32_t j) { return i <= j ? (i < k && k <= j) : (i < k || k <= j); }

int demux_remove(struct demux *d, uint32_t sid) {
  uint32_t i = demux_slot(d, sid);
  while (d->tab[i].s && d->tab[i].sid != sid) i = (i + 1) & d->mask;
  if (!d->tab[i].s) return -ENOENT;
  /* Backward shift: move later entries of the probe run into the hole unless that would put one
   * before the slot it hashes to. */
  for (;;) {
    d->tab[i].s = NULL;
    uint32_t j = i;
    for (;;) {
      j = (j + 1) & d->mask;
      if (!d->tab[j].s) {
        d->count--;
        return 0;
      }
      if (!between(i, demux_slot(d, d->tab[j].sid), j)) break;
    }
    d->tab[i] = d->tab[j];
    i = j;
  }
}

void demux_remove_owner(struct demux *d, const void *owner) {
  /* A backward shift only moves entries from later in a probe run into the hole at i: look at i again.
   * Entries not yet looked at never move below i. */
  for (uint32_t i = 0; i <= d->mask;) {
    if (d->tab[i].s && d->tab[i].owner == owner)
      demux_remove(d, d->tab[i].sid);
    else
      i++;
  }
}
