/*
 * What the shim decides alone, before it talks to the agent: the checks the reference plugins' skel
 * makes (command, required environment, decodable JSON, supported cniVersion) and which agent socket
 * to use. Pure: bytes and strings in, a decision out; no I/O, no globals, so a fuzz target can call it.
 */
#ifndef KUBE_L2TP_SHIM_CONFIG_H
#define KUBE_L2TP_SHIM_CONFIG_H
#include <stddef.h>

enum shim_action {
  SHIM_VERSION, /* answer VERSION here */
  SHIM_FORWARD, /* send the request to the agent at `socket` */
  SHIM_ERROR,   /* print CNI error `code`/`msg` */
  SHIM_DONE,    /* succeed here, printing nothing (`msg` goes to stderr) */
};

/* The CNI_* environment as the runtime set it; NULL for unset. */
struct shim_env {
  const char *command, *containerid, *netns, *ifname, *path;
};

#define SHIM_SOCKET_MAX 108 /* sizeof sockaddr_un.sun_path */

struct shim_decision {
  enum shim_action action;
  int code;
  char msg[320];
  /* the config's cniVersion when it is a plain dotted version, else the newest: for error output */
  char version[32];
  char socket[SHIM_SOCKET_MAX];
};

void shim_decide(const struct shim_env *env, const char *json, size_t len, struct shim_decision *d);

#endif
