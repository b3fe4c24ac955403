/*
 * Run inside the datapath agent's container by test/e2e/real-cluster.test.ts: which of the syscalls
 * the agent's seccomp profile decides about get through. Prints one line, "NAME=ERRNO ..." (0: it
 * worked). Harmless either way: setns enters the network namespace it is already in, unshare only
 * affects this short-lived process, and mount/umount2 name a path that does not exist, so when the
 * filter lets them through the kernel answers ENOENT instead of the filter's EPERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <unistd.h>

#define MISSING "/kube-l2tp-seccomp-probe-missing"

static int err(int rc) { return rc == 0 ? 0 : errno; }

int main(void) {
  int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    perror("open /proc/self/ns/net");
    return 2;
  }
  int s = err(setns(fd, CLONE_NEWNET));
  int m = err(mount("none", MISSING, "tmpfs", 0, NULL));
  int u2 = err(umount2(MISSING, 0));
  int u = err(unshare(CLONE_NEWNS));
  printf("setns=%d mount=%d umount2=%d unshare=%d\n", s, m, u2, u);
  return 0;
}
