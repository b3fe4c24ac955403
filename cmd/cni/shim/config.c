/*
 * The shim's own checks (config.h). The network config is untrusted (any NetworkAttachmentDefinition
 * author writes it) while the shim runs as root, so it is read by a strict JSON scanner and only
 * two top-level keys are taken from it: cniVersion and agentSocket. A key of the same name nested
 * anywhere else means nothing. The agent socket may only be the default or a path under the
 * agent's own directory (root-owned), so no config can point the shim at another listener.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "versions.h"

#define MAX_DEPTH 512

static const char *const supported[] = {SUPPORTED_LIST, NULL};

/* A top-level string member the decision needs: absent, a string that fits, or anything else. */
enum kind { ABSENT, STRING, OTHER };
struct member {
  const char *name;
  enum kind kind;
  char val[SHIM_SOCKET_MAX];
};

struct scan {
  const char *p, *start, *end;
  const char *why;
};

static int fail(struct scan *s, const char *why) {
  if (!s->why) s->why = why;
  return 0;
}

static void skip_ws(struct scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
 * A string at s->p (on its opening quote). With out, its value is decoded there when it is plain
 * ASCII without NUL and fits; *fits says whether it did.
 */
static int scan_string(struct scan *s, char *out, size_t outsz, int *fits) {
  size_t n = 0;
  int ok = out != NULL;
  s->p++;
  for (;;) {
    if (s->p >= s->end) return fail(s, "unterminated string");
    unsigned char c = (unsigned char)*s->p++;
    if (c == '"') break;
    if (c < 0x20) return fail(s, "control character in string");
    if (c == '\\') {
      if (s->p >= s->end) return fail(s, "unterminated string");
      char e = *s->p++;
      switch (e) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
          if (s->end - s->p < 4) return fail(s, "bad \\u escape");
          int v = 0;
          for (int i = 0; i < 4; i++) {
            int h = hexval(s->p[i]);
            if (h < 0) return fail(s, "bad \\u escape");
            v = v * 16 + h;
          }
          s->p += 4;
          if (v == 0 || v > 0x7f) ok = 0;
          c = (unsigned char)v;
          break;
        }
        default: return fail(s, "bad escape in string");
      }
    } else if (c > 0x7f) {
      ok = 0;
    }
    if (ok) {
      if (n + 1 >= outsz) ok = 0;
      else out[n++] = (char)c;
    }
  }
  if (out) {
    out[ok ? n : 0] = 0;
    *fits = ok;
  }
  return 1;
}

static int scan_digits(struct scan *s) {
  const char *a = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > a;
}

static int scan_number(struct scan *s) {
  if (*s->p == '-') s->p++;
  if (s->p < s->end && *s->p == '0') s->p++;
  else if (!scan_digits(s)) return fail(s, "bad number");
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!scan_digits(s)) return fail(s, "bad number");
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (!scan_digits(s)) return fail(s, "bad number");
  }
  return 1;
}

static int scan_literal(struct scan *s, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return fail(s, "unexpected character");
  s->p += n;
  return 1;
}

static int scan_value(struct scan *s, int depth, struct member *members);

/* An object or array at s->p; members (top level only) collect the keys the decision needs. */
static int scan_container(struct scan *s, int depth, struct member *members) {
  if (depth > MAX_DEPTH) return fail(s, "nested too deeply");
  char close = *s->p == '{' ? '}' : ']';
  int object = close == '}';
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return 1;
  }
  for (;;) {
    struct member *m = NULL;
    if (object) {
      if (s->p >= s->end || *s->p != '"') return fail(s, "expected a string key");
      char key[16];
      int fits = 0;
      if (!scan_string(s, members ? key : NULL, sizeof key, &fits)) return 0;
      if (members && fits)
        for (struct member *k = members; k->name; k++)
          if (strcmp(k->name, key) == 0) m = k;
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':') return fail(s, "expected ':'");
      s->p++;
      skip_ws(s);
    }
    if (m && s->p < s->end && *s->p == '"') {
      int fits = 0;
      if (!scan_string(s, m->val, sizeof m->val, &fits)) return 0;
      m->kind = fits ? STRING : OTHER; /* the last of duplicate keys wins, as in Go and JavaScript */
    } else {
      if (!scan_value(s, depth + 1, NULL)) return 0;
      if (m) m->kind = OTHER;
    }
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      skip_ws(s);
      continue;
    }
    if (s->p < s->end && *s->p == close) {
      s->p++;
      return 1;
    }
    return fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int scan_value(struct scan *s, int depth, struct member *members) {
  skip_ws(s);
  if (s->p >= s->end) return fail(s, "unexpected end of input");
  switch (*s->p) {
    case '{':
    case '[': return scan_container(s, depth, members);
    case '"': return scan_string(s, NULL, 0, NULL);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
      if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return scan_number(s);
      return fail(s, "unexpected character");
  }
}

static int plain_version(const char *v) { return *v && strspn(v, "0123456789.") == strlen(v); }

/* Dotted versions compared numerically, as lib/cni/versions.ts compareVersions. */
static int version_cmp(const char *a, const char *b) {
  while (*a || *b) {
    long x = 0, y = 0;
    while (*a >= '0' && *a <= '9') x = x * 10 + (*a++ - '0');
    while (*b >= '0' && *b <= '9') y = y * 10 + (*b++ - '0');
    if (x != y) return x < y ? -1 : 1;
    if (*a == '.') a++;
    if (*b == '.') b++;
  }
  return 0;
}

/* Under the agent's directory, no empty, "." or ".." component: the path names what it seems to. */
static int socket_allowed(const char *p) {
  size_t dl = strlen(AGENT_SOCKET_DIR);
  if (strncmp(p, AGENT_SOCKET_DIR, dl) != 0 || p[dl] == 0) return 0;
  for (const char *c = p + dl; *c;) {
    const char *e = strchr(c, '/');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
    if (!e) break;
    c = e + 1;
    if (!*c) return 0;
  }
  return 1;
}

static void error(struct shim_decision *d, int code, const char *msg) {
  d->action = SHIM_ERROR;
  d->code = code;
  snprintf(d->msg, sizeof d->msg, "%s", msg);
}

void shim_decide(const struct shim_env *env, const char *json, size_t len, struct shim_decision *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->version, sizeof d->version, "%s", CURRENT_VERSION);
  snprintf(d->socket, sizeof d->socket, "%s", DEFAULT_SOCKET);

  struct member members[] = {{"cniVersion", ABSENT, {0}}, {"agentSocket", ABSENT, {0}}, {NULL, ABSENT, {0}}};
  struct member *ver = &members[0], *sock = &members[1];
  struct scan s = {json, json, json + len, NULL};
  int decoded = 0;
  skip_ws(&s);
  if (s.p < s.end && *s.p == '{') {
    decoded = scan_container(&s, 1, members);
    skip_ws(&s);
    if (decoded && s.p != s.end) decoded = fail(&s, "data after the object");
  } else {
    fail(&s, "not a JSON object");
  }
  if (decoded && ver->kind == STRING && plain_version(ver->val) && strlen(ver->val) < sizeof d->version)
    snprintf(d->version, sizeof d->version, "%.31s", ver->val);

  const char *cmd = env->command;
  char m[sizeof d->msg];
  if (!cmd || !*cmd) return error(d, 4, "required env variables [CNI_COMMAND] missing");
  if (strcmp(cmd, "VERSION") == 0) {
    d->action = SHIM_VERSION;
    return;
  }
  int add_check = !strcmp(cmd, "ADD") || !strcmp(cmd, "CHECK");
  int del = !strcmp(cmd, "DEL"), gc = !strcmp(cmd, "GC"), status = !strcmp(cmd, "STATUS");
  if (!add_check && !del && !gc && !status) {
    snprintf(m, sizeof m, "unknown CNI_COMMAND: %.64s", cmd);
    return error(d, 4, m);
  }

  /* the same names, order and wording as the agent's parseEnv */
  struct {
    const char *name, *val;
    int needed;
  } req[] = {{"CNI_CONTAINERID", env->containerid, add_check || del},
             {"CNI_NETNS", env->netns, add_check},
             {"CNI_IFNAME", env->ifname, add_check || del},
             {"CNI_PATH", env->path, gc}};
  char missing[96] = "";
  for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
    if (!req[i].needed || (req[i].val && *req[i].val)) continue;
    if (*missing) strcat(missing, ",");
    strcat(missing, req[i].name);
  }
  if (*missing) {
    snprintf(m, sizeof m, "required env variables [%s] missing", missing);
    return error(d, 4, m);
  }

  if (!decoded) {
    snprintf(m, sizeof m, "failed to decode network config: %s at byte %ld", s.why ? s.why : "invalid JSON",
             (long)(s.p - s.start));
    return error(d, 6, m);
  }

  /*
   * skel: a config without cniVersion is 0.1.0, which nobody here supports. DEL goes on: ADD refused
   * that config, so it made nothing, and a DEL refused for it would keep the pod from being torn down.
   */
  const char *v = ver->kind == STRING && *ver->val ? ver->val : "0.1.0";
  int known = 0;
  for (const char *const *k = supported; *k; k++)
    if (ver->kind != OTHER && strcmp(*k, v) == 0) known = 1;
  if (!known && !del) {
    snprintf(m, sizeof m, "incompatible CNI versions: config is \"%.32s\", plugin supports [%s]",
             ver->kind == OTHER ? "0.1.0" : v, SUPPORTED_TEXT);
    return error(d, 1, m);
  }
  if ((gc || status) && version_cmp(v, "1.1.0") < 0) {
    snprintf(m, sizeof m, "config version %s does not allow %s (needs 1.1.0)", v, cmd);
    return error(d, 1, m);
  }

  if (sock->kind == OTHER || (sock->kind == STRING && !socket_allowed(sock->val))) {
    snprintf(m, sizeof m,
             "invalid network config: agentSocket: %s%.64s%s is not a path under %s; remove it to use %s",
             sock->kind == STRING ? "\"" : "", sock->kind == STRING ? sock->val : "the value",
             sock->kind == STRING ? "\"" : "", AGENT_SOCKET_DIR, DEFAULT_SOCKET);
    /* no ADD got past this check, so no agent holds anything of this config: a DEL refused for it
     * would keep the pod from being torn down */
    if (del) {
      error(d, 7, m);
      d->action = SHIM_DONE;
      return;
    }
    return error(d, 7, m);
  }
  if (sock->kind == STRING) snprintf(d->socket, sizeof d->socket, "%s", sock->val);
  d->action = SHIM_FORWARD;
}
