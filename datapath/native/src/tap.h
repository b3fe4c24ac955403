/* TAP devices: one per session, persistent (TUNSETPERSIST) so that a restarted process reattaches to
 * the same netdev and the pod-side links (bridge ports, addresses) survive. */
#ifndef KL2TP_TAP_H
#define KL2TP_TAP_H
#include <stddef.h>

/* Open (create or reattach to) TAP `name`, non-blocking. A TAP made here is not persistent until
 * tap_set_persist: if the process dies before its caller has finished (marked) it, the kernel
 * removes it with the fd, and no unmarked device is left in a session's name. Offloads are set explicitly:
 * with vnet, IFF_VNET_HDR (10-byte header) and checksum + TSO4/TSO6; without, none at all.
 * On success returns the fd and writes the actual name to out (IFNAMSIZ); on failure -errno. */
int tap_open(const char *name, int vnet, char *out, size_t outlen);
int tap_set_persist(int fd, int persist);
/* Attach to the persistent TAP `name` inside the network namespace at netns_path (a pod's, where the
 * CNI moved it in exclusive mode): the calling thread enters it for the attach and comes back. Never
 * leaves a TAP made there: one the attach made (no persistent TAP of that name) is closed at once,
 * and -ENODEV returned. Otherwise as tap_open. */
int tap_attach_in(const char *netns_path, const char *name, int vnet, char *out, size_t outlen);
#endif
