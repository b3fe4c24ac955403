/* What every N-API addon of the project does the same way: a checked N-API call, an Error that
 * carries errno and the failing call, and reading a call's arguments. Header-only: each addon is its
 * own shared object, built by node-gyp from its own folder with this folder on its include path. */
#ifndef KUBE_L2TP_NAPI_UTIL_H
#define KUBE_L2TP_NAPI_UTIL_H

#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Throws and returns NULL from the calling function when an N-API call fails. */
#define NAPI_CHECK(env, call)                                                                      \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error((env), NULL, "napi call failed: " #call);                                   \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* An Error "what: strerror(err)" with .errno (positive) and .syscall (what); err may be -errno. */
static inline napi_value errno_error(napi_env env, const char *what, int err) {
  if (err < 0) err = -err;
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value e, m, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  return e;
}

/* Throws errno_error; returns NULL for the caller to return. */
static inline napi_value throw_errno_error(napi_env env, const char *what, int err) {
  napi_throw(env, errno_error(env, what, err));
  return NULL;
}

/* Reads up to n arguments into argv (*argc: how many were passed); false after throwing. */
static inline bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, size_t *argc) {
  *argc = n;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) == napi_ok) return true;
  napi_throw_error(env, NULL, "cannot read the call's arguments");
  return false;
}

#endif
