/* Running one call inside another network namespace, the same way in every addon: the calling
 * thread enters the namespace, makes what has to be made there (a netlink socket, a TAP's fd: both
 * stay bound to the namespace they were made in), and returns. Header-only, like napi_util.h. */
#ifndef KUBE_L2TP_NETNS_UTIL_H
#define KUBE_L2TP_NETNS_UTIL_H

#ifndef _GNU_SOURCE
#error "netns_util.h needs _GNU_SOURCE (setns), defined before the first system header"
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Runs fn(arg) with the calling thread in the network namespace `target` (a descriptor; the caller
 * keeps it), then puts the thread back where it was. Returns what fn returns (>= 0, or -errno), or
 * -errno without running fn when the thread's own namespace cannot be opened or `target` cannot be
 * entered; *what then names the failing call. A thread that cannot go back aborts the process with
 * `who` in the message: it would stay in the other namespace, and every later socket, device or
 * sysfs path it touches would be that namespace's; nothing sane can continue.
 */
static inline int netns_run_in(int target, int (*fn)(void *arg), void *arg, const char *who,
                               const char **what) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    *what = "open(/proc/thread-self/ns/net)";
    return -errno;
  }
  int r;
  if (setns(target, CLONE_NEWNET) < 0) {
    r = -errno;
    *what = "setns(netns)";
  } else {
    r = fn(arg);
    if (setns(self, CLONE_NEWNET) < 0) {
      fprintf(stderr, "%s: cannot return to the original network namespace: %s\n", who, strerror(errno));
      abort();
    }
  }
  close(self);
  return r;
}

#endif
