/* libFuzzer target: the CNI shim's own checks (cmd/cni/shim/config.c shim_decide), which read the
 * network config (written by whoever writes a NetworkAttachmentDefinition) while the shim runs as
 * root. The first input byte picks which CNI_* variables are set (and CNI_COMMAND among valid and
 * bogus ones); the rest is the config, copied into a block of exactly its length without a NUL.
 * Checked beyond the sanitizers: a decision is one of four actions, its strings are terminated, an
 * error carries a CNI code, a success without the agent is a DEL that says why, and a forwarded
 * request names only the agent's socket directory, never a path with an empty, "." or ".." component. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "input.h"
#include "versions.h"

static int terminated(const char *s, size_t n) { return memchr(s, 0, n) != NULL; }

static int path_ok(const char *p) {
  size_t dl = strlen(AGENT_SOCKET_DIR);
  if (strncmp(p, AGENT_SOCKET_DIR, dl) != 0) return 0;
  return !strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../") &&
         strcmp(p + strlen(p) - 2, "/.") != 0 && strcmp(p + strlen(p) - 3, "/..") != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct input in = {data, size};
  static const char *const commands[] = {"ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", "", "add", "ADD\n"};
  uint8_t pick = in_u8(&in);
  struct shim_env env = {
      .command = (pick & 1) ? commands[(pick >> 4) % 9] : NULL,
      .containerid = (pick & 2) ? "c0ffee" : NULL,
      .netns = (pick & 4) ? "/var/run/netns/x" : NULL,
      .ifname = (pick & 8) ? "net1" : NULL,
      .path = "/opt/cni/bin",
  };
  char *json = (char *)exact_copy(in.p, in.left);
  struct shim_decision d;
  shim_decide(&env, json, in.left, &d);
  free(json);
  if (d.action != SHIM_VERSION && d.action != SHIM_FORWARD && d.action != SHIM_ERROR && d.action != SHIM_DONE)
    abort();
  if (!terminated(d.msg, sizeof d.msg) || !terminated(d.version, sizeof d.version) ||
      !terminated(d.socket, sizeof d.socket))
    abort();
  if (d.action == SHIM_ERROR && d.code == 0) abort();
  if (d.action == SHIM_DONE && (!env.command || strcmp(env.command, "DEL") != 0 || !d.msg[0])) abort();
  if (d.action == SHIM_FORWARD && !path_ok(d.socket)) abort();
  return 0;
}
