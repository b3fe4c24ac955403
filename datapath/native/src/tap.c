#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "netns_util.h"

int tap_open(const char *name, int vnet, char *out, size_t outlen) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
  /* Offload flags and the virtio header size belong to the device and outlive the process that set
   * them: a previous run (or another program) may have left them otherwise. Set them on every attach. */
  int hdrsz = 10;
  if (vnet && ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) goto fail;
  if (ioctl(fd, TUNSETOFFLOAD, vnet ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) : 0) < 0) goto fail;
  strncpy(out, ifr.ifr_name, outlen - 1);
  out[outlen - 1] = 0;
  return fd;
fail: {
  int e = errno;
  close(fd);
  return -e;
}
}

int tap_set_persist(int fd, int persist) {
  return ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) < 0 ? -errno : 0;
}

struct tap_open_args {
  const char *name;
  int vnet;
  char *out;
  size_t outlen;
};

static int tap_open_cb(void *p) {
  struct tap_open_args *a = p;
  return tap_open(a->name, a->vnet, a->out, a->outlen);
}

int tap_attach_in(const char *netns_path, const char *name, int vnet, char *out, size_t outlen) {
  int target = open(netns_path, O_RDONLY | O_CLOEXEC);
  if (target < 0) return -errno;
  struct tap_open_args args = {name, vnet, out, outlen};
  const char *what = NULL;
  int fd = netns_run_in(target, tap_open_cb, &args, "tap_attach_in", &what);
  close(target);
  if (fd < 0) return fd;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0 || !(ifr.ifr_flags & IFF_PERSIST)) {
    close(fd); /* made by this attach: it goes with the fd */
    return -ENODEV;
  }
  return fd;
}
