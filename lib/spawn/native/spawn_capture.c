/*
 * Runs a program the way the CNI code runs its IPAM delegate: argv, an explicit environment, stdin
 * from a buffer, stdout and stderr captured, exit status reported. Node's child_process cannot do
 * this cheaply inside the long-lived agent: libuv spawns with fork(), which copies the parent's page
 * tables while the event loop waits, longer the larger the agent.
 * posix_spawn is implemented by glibc with clone(CLONE_VM | CLONE_VFORK): nothing is copied, the
 * cost does not depend on the parent's size.
 *
 * Everything runs on a thread of its own, one per call (not the libuv pool: a delegate that hangs
 * until its timeout must not hold one of the pool's four threads, which netlink requests and file
 * I/O need): posix_spawn, writing stdin, reading stdout and stderr, waiting for the exit (a pidfd
 * in the same poll), and the timeout (SIGKILL, then reaped). The result comes back to the event loop
 * through a thread-safe function. The calling thread only copies the arguments and starts the thread.
 *
 * File descriptors: the pipes are created close-on-exec (a concurrent child_process fork must not
 * inherit them, or our reads would never see EOF), the child gets them as 0, 1, 2 and every other
 * descriptor is closed in the child before exec (closefrom), so none of the agent's sockets, TAP
 * fds or netlink sockets reaches the program even if something opened one without O_CLOEXEC.
 * Signals: the child starts with an empty mask and every signal at its default (Node ignores
 * SIGPIPE, and an ignored disposition would survive exec), as libuv does for its children.
 *
 * API: run(file: string, argv: string[], envp: string[], input: Buffer, timeoutMs: number)
 *   -> Promise<{ status: number | null, signal: number | null, timedOut: boolean,
 *                stdout: Buffer, stderr: Buffer }>
 * rejects with an Error carrying errno (positive) and syscall when the program cannot be started.
 * timeoutMs <= 0: no timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "napi_util.h"
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

typedef struct {
  /* in: owned copies, freed after the run */
  char *file;
  char **argv;
  char **envp;
  char *input;
  size_t input_len;
  int64_t timeout_ms;
  /* out */
  int err; /* errno of a failed start, 0 when the program ran */
  const char *syscall;
  int status; /* waitpid status */
  bool timed_out;
  buf_t out, errout;
  /* delivery */
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
} job_t;

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static void free_job(job_t *j) {
  free(j->file);
  free_strv(j->argv);
  free_strv(j->envp);
  free(j->input);
  free(j->out.data);
  free(j->errout.data);
  free(j);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* read what is there; returns false at EOF or on an error (the fd is then closed) */
static bool drain(int *fd, buf_t *b) {
  for (;;) {
    if (b->cap - b->len < READ_CHUNK) {
      size_t cap = b->cap ? b->cap * 2 : READ_CHUNK * 2;
      char *p = realloc(b->data, cap);
      if (!p) { /* keep what we have, stop reading: the writer gets EPIPE */
        close_fd(fd);
        return false;
      }
      b->data = p;
      b->cap = cap;
    }
    ssize_t n = read(*fd, b->data + b->len, b->cap - b->len);
    if (n > 0) {
      b->len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    close_fd(fd);
    return false;
  }
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void run_job(job_t *j) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    j->err = errno;
    j->syscall = "pipe2";
    goto fail;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawn_file_actions_init(&fa);
  /* dup2 clears close-on-exec on the target (glibc does so even when source == target) */
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  pid_t pid;
  int rc = posix_spawn(&pid, j->file, &fa, &attr, j->argv, j->envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) { /* glibc reports a failed exec here too (ENOENT, EACCES, ENOEXEC...) */
    j->err = rc;
    j->syscall = "posix_spawn";
    goto fail;
  }
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  set_nonblock(in[1]);
  set_nonblock(out[0]);
  set_nonblock(err[0]);
  if (j->input_len == 0) close_fd(&in[1]);

  /* not reaped until this thread does it, so pid names our child until then: kill(pid) is safe */
#ifdef SYS_pidfd_open
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* Linux 5.3+; without it waitpid is polled */
#else
  int pidfd = -1;
#endif
  bool reaped = false;
  size_t written = 0;
  int64_t deadline = j->timeout_ms > 0 ? now_ms() + j->timeout_ms : -1;

  while (!reaped || out[0] >= 0 || err[0] >= 0) {
    struct pollfd p[4];
    int n = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
    if (in[1] >= 0) p[i_in = n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
    if (out[0] >= 0) p[i_out = n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
    if (err[0] >= 0) p[i_err = n++] = (struct pollfd){.fd = err[0], .events = POLLIN};
    if (!reaped && pidfd >= 0) p[i_pid = n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
    int wait = -1;
    if (!reaped && pidfd < 0 && out[0] < 0 && err[0] < 0) wait = 5; /* no pidfd: poll waitpid */
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left < 0) left = 0;
      if (wait < 0 || left < wait) wait = (int)left;
    }
    int r = poll(p, (nfds_t)n, wait);
    if (r < 0 && errno != EINTR) break; /* cannot happen with valid fds; reap below */
    if (r > 0) {
      if (i_in >= 0 && p[i_in].revents) {
        if (p[i_in].revents & (POLLERR | POLLHUP)) {
          close_fd(&in[1]); /* the program closed stdin without reading it all: fine */
        } else {
          ssize_t w = write(in[1], j->input + written, j->input_len - written);
          if (w > 0) written += (size_t)w;
          else if (w < 0 && errno != EAGAIN && errno != EINTR) close_fd(&in[1]); /* EPIPE */
          if (written == j->input_len) close_fd(&in[1]);
        }
      }
      if (i_out >= 0 && p[i_out].revents) drain(&out[0], &j->out);
      if (i_err >= 0 && p[i_err].revents) drain(&err[0], &j->errout);
    }
    if (!reaped && (pidfd < 0 || (i_pid >= 0 && r > 0 && p[i_pid].revents))) {
      pid_t w = waitpid(pid, &j->status, WNOHANG);
      if (w == pid || (w < 0 && errno == ECHILD)) reaped = true;
    }
    if (deadline >= 0 && now_ms() >= deadline && (!reaped || out[0] >= 0 || err[0] >= 0)) {
      if (!reaped) {
        kill(pid, SIGKILL);
        j->timed_out = true;
      }
      break;
    }
  }
  if (!reaped) {
    while (waitpid(pid, &j->status, 0) < 0 && errno == EINTR) {
    }
  }
  /* after a timeout: keep what is already in the pipes, do not wait for a grandchild's EOF */
  if (out[0] >= 0) drain(&out[0], &j->out);
  if (err[0] >= 0) drain(&err[0], &j->errout);
  close_fd(&pidfd);
fail:
  for (int k = 0; k < 2; k++) {
    close_fd(&in[k]);
    close_fd(&out[k]);
    close_fd(&err[k]);
  }
}

static void *thread_main(void *arg) {
  job_t *j = arg;
  napi_threadsafe_function tsfn = j->tsfn; /* deliver() may free j before the release below */
  run_job(j);
  napi_call_threadsafe_function(tsfn, j, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

static void free_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value take_buffer(napi_env env, buf_t *b) {
  napi_value v;
  if (b->len == 0 || napi_create_external_buffer(env, b->len, b->data, free_external, NULL, &v) != napi_ok) {
    void *copy;
    napi_create_buffer_copy(env, b->len, b->data ? b->data : "", &copy, &v);
    return v; /* b->data freed with the job */
  }
  b->data = NULL; /* owned by the Buffer now */
  return v;
}

/* on the event loop: settle the promise */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  job_t *j = data;
  if (env != NULL) {
    if (j->err != 0) {
      napi_reject_deferred(env, j->deferred, errno_error(env, j->syscall, j->err));
    } else {
      napi_value r, v, nul;
      napi_get_null(env, &nul);
      napi_create_object(env, &r);
      if (WIFEXITED(j->status)) napi_create_int32(env, WEXITSTATUS(j->status), &v);
      napi_set_named_property(env, r, "status", WIFEXITED(j->status) ? v : nul);
      if (WIFSIGNALED(j->status)) napi_create_int32(env, WTERMSIG(j->status), &v);
      napi_set_named_property(env, r, "signal", WIFSIGNALED(j->status) ? v : nul);
      napi_get_boolean(env, j->timed_out, &v);
      napi_set_named_property(env, r, "timedOut", v);
      napi_set_named_property(env, r, "stdout", take_buffer(env, &j->out));
      napi_set_named_property(env, r, "stderr", take_buffer(env, &j->errout));
      napi_resolve_deferred(env, j->deferred, r);
    }
  }
  free_job(j);
}

/* a JS string array as a NULL-terminated vector of malloc'd strings, with first (if any) in front */
static char **strv(napi_env env, napi_value arr, const char *first) {
  uint32_t n = 0;
  bool is_arr = false;
  if (napi_is_array(env, arr, &is_arr) != napi_ok || !is_arr) return NULL;
  napi_get_array_length(env, arr, &n);
  size_t off = first ? 1 : 0;
  char **v = calloc(n + off + 1, sizeof *v);
  if (!v) return NULL;
  if (first && !(v[0] = strdup(first))) goto bad;
  for (uint32_t i = 0; i < n; i++) {
    napi_value s;
    size_t len;
    if (napi_get_element(env, arr, i, &s) != napi_ok ||
        napi_get_value_string_utf8(env, s, NULL, 0, &len) != napi_ok)
      goto bad;
    if (!(v[i + off] = malloc(len + 1))) goto bad;
    napi_get_value_string_utf8(env, s, v[i + off], len + 1, &len);
    if (strlen(v[i + off]) != len) goto bad; /* an embedded NUL */
  }
  return v;
bad:
  free_strv(v);
  return NULL;
}

static napi_value sp_run(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  const char *usage =
      "run(file: string, argv: string[], envp: string[], input: Buffer, timeoutMs: number)";
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "run: out of memory");
    return NULL;
  }
  size_t len;
  void *in_data;
  bool is_buf = false;
  if (napi_get_value_string_utf8(env, a[0], NULL, 0, &len) != napi_ok || len == 0 ||
      !(j->file = malloc(len + 1)))
    goto bad;
  napi_get_value_string_utf8(env, a[0], j->file, len + 1, &len);
  if (strlen(j->file) != len) goto bad;
  if (!(j->argv = strv(env, a[1], j->file)) || !(j->envp = strv(env, a[2], NULL))) goto bad;
  if (napi_is_buffer(env, a[3], &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, a[3], &in_data, &j->input_len) != napi_ok)
    goto bad;
  if (!(j->input = malloc(j->input_len ? j->input_len : 1))) goto bad;
  memcpy(j->input, in_data, j->input_len);
  if (napi_get_value_int64(env, a[4], &j->timeout_ms) != napi_ok) goto bad;

  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "spawnCapture", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver,
                                      &j->tsfn) != napi_ok) {
    napi_reject_deferred(env, j->deferred, errno_error(env, "napi_create_threadsafe_function", EIO));
    free_job(j);
    return promise;
  }
  /* the thread gets no signals (SIGCHLD and the rest go to Node's threads), a small stack */
  pthread_attr_t ta;
  pthread_t t;
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&ta, 256 * 1024);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&t, &ta, thread_main, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&ta);
  if (rc != 0) {
    napi_reject_deferred(env, j->deferred, errno_error(env, "pthread_create", rc));
    napi_release_threadsafe_function(j->tsfn, napi_tsfn_abort);
    free_job(j);
  }
  return promise;
bad:
  free_job(j);
  napi_throw_type_error(env, NULL, usage);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "run", NAPI_AUTO_LENGTH, sp_run, NULL, &fn);
  napi_set_named_property(env, exports, "run", fn);
  return exports;
}
