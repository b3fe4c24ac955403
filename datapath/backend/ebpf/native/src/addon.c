/* The eBPF backend's loader behind a small synchronous N-API surface. Everything here is a thin
 * wrapper of one syscall or libbpf call; the policy (what to pin, when to attach) lives in the
 * TypeScript backend.
 *
 * Loading uses the light skeleton that bpftool generates at build time from build/l2tp.bpf.o: it
 * embeds the compiled programs and a loader program the kernel runs, so nothing parses ELF at run
 * time. Debian's libelf.a and libbpf.a are not position-independent and cannot be linked into a
 * shared object; the few syscalls needed besides the loader are wrapped here, and tc filters are
 * attached by iproute2's tc (already in the image). The addon needs no shared library beyond glibc.
 *
 *   open(pinDir) -> { adopted, progs: {name: fd}, maps: {name: fd} }
 *   mapUpdate(fd, key, value) / mapDelete(fd, key) / mapLookup(fd, key, valueSize)
 *   mapEntries(fd, keySize, valueSize) -> { keys, values }: every entry, side by side
 *   progId(fd) / closeFd(fd)
 *   enableStats() -> fd: the kernel counts run_cnt and run_time_ns of every program until it closes
 *   setOffloads(ifname, { tso?, gso?, gro?, txcsum? })
 *   setChannels(ifname, count) -> { rx, tx }: as many rx and tx queues as asked, at most the device's
 *                    maximum; the counts the device has afterwards
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <sys/syscall.h>

#include "l2tp.lskel.h"

#define NAME_LEN 64

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int obj_get(const char *path)
{
	union bpf_attr a = {0};
	a.pathname = (__u64)(unsigned long)path;
	return sys_bpf(BPF_OBJ_GET, &a);
}

static int obj_pin(int fd, const char *path)
{
	union bpf_attr a = {0};
	a.pathname = (__u64)(unsigned long)path;
	a.bpf_fd = (__u32)fd;
	return sys_bpf(BPF_OBJ_PIN, &a);
}

static int map_op(int cmd, int fd, const void *key, void *value, __u64 flags)
{
	union bpf_attr a = {0};
	a.map_fd = (__u32)fd;
	a.key = (__u64)(unsigned long)key;
	a.value = (__u64)(unsigned long)value; /* next_key for BPF_MAP_GET_NEXT_KEY */
	a.flags = flags;
	return sys_bpf(cmd, &a);
}

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[4800];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err < 0 ? -err : err));
	napi_throw_error(env, NULL, msg);
	return NULL;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out)
{
	return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

/* A string that does not fit is refused, not cut: a cut interface name would name another device. */
static int get_str(napi_env env, napi_value v, char *buf, size_t len)
{
	size_t n;
	if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok || n >= len)
		return -1;
	return napi_get_value_string_utf8(env, v, buf, len, &n) == napi_ok ? 0 : -1;
}

static int get_buf(napi_env env, napi_value v, void **data, size_t *len)
{
	return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

static napi_value num(napi_env env, double d)
{
	napi_value v;
	napi_create_double(env, d, &v);
	return v;
}

/* The verifier gives up with EAGAIN as soon as a signal is pending for the loading thread, and it
 * runs over every program: one signal to the process meanwhile (a child's exit, a profiler's tick,
 * the kubelet's SIGTERM) would fail the load, and auto would settle on the userspace backend. The
 * load holds this thread's signals (they are delivered once it returns, or to another thread), and
 * retries an EAGAIN a few times as libbpf does for the transient ones. */
static struct l2tp_bpf *load_programs(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	struct l2tp_bpf *skel = NULL;
	for (int attempt = 0; attempt < 5 && !skel; attempt++) {
		skel = l2tp_bpf__open_and_load();
		if (!skel && errno != EAGAIN)
			break;
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return skel;
}

struct named_fd {
	const char *name;
	int fd;
};

/* Adopt the pinned programs and maps when all of them are pinned (a restarted agent); otherwise
 * load the programs (a map pinned earlier is not reused: a half-pinned set is an interrupted load)
 * and pin everything. */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char dir[4096];
	if (argc < 1 || get_str(env, argv[0], dir, sizeof(dir))) {
		napi_throw_type_error(env, NULL, "open(pinDir)");
		return NULL;
	}
	static const char *progs[] = {"l2tp_rx", "l2tp_tx_egress", "l2tp_tx_ingress"};
	static const char *maps[] = {"tx_cfg", "tun_map", "rx_sess", "sess_stats", "tun_stats", "seq_state"};
	enum { NP = sizeof(progs) / sizeof(progs[0]), NM = sizeof(maps) / sizeof(maps[0]) };
	struct named_fd all[NP + NM];
	char pin[4096 + NAME_LEN + 8];
	int adopt = 1;
	for (int i = 0; i < NP + NM; i++) {
		all[i].name = i < NP ? progs[i] : maps[i - NP];
		snprintf(pin, sizeof(pin), "%s/%s%s", dir, i < NP ? "prog_" : "", all[i].name);
		if (access(pin, F_OK) != 0)
			adopt = 0;
	}
	if (adopt) {
		for (int i = 0; i < NP + NM; i++) {
			snprintf(pin, sizeof(pin), "%s/%s%s", dir, i < NP ? "prog_" : "", all[i].name);
			all[i].fd = obj_get(pin);
			if (all[i].fd < 0)
				return throw_errno(env, pin, errno);
		}
	} else {
		struct l2tp_bpf *skel = load_programs();
		if (!skel)
			return throw_errno(env, "loading the BPF programs", errno);
		int fds[NP + NM] = {
			skel->progs.l2tp_rx.prog_fd,   skel->progs.l2tp_tx_egress.prog_fd,
			skel->progs.l2tp_tx_ingress.prog_fd, skel->maps.tx_cfg.map_fd,
			skel->maps.tun_map.map_fd,     skel->maps.rx_sess.map_fd,
			skel->maps.sess_stats.map_fd,  skel->maps.tun_stats.map_fd,
			skel->maps.seq_state.map_fd,
		};
		for (int i = 0; i < NP + NM; i++) {
			snprintf(pin, sizeof(pin), "%s/%s%s", dir, i < NP ? "prog_" : "", all[i].name);
			unlink(pin);
			if (obj_pin(fds[i], pin)) {
				int e = errno;
				l2tp_bpf__destroy(skel);
				return throw_errno(env, pin, e);
			}
			all[i].fd = dup(fds[i]);
		}
		/* the duplicated descriptors and the pins keep everything alive */
		l2tp_bpf__destroy(skel);
	}
	napi_value res, po, mo, b;
	napi_create_object(env, &res);
	napi_create_object(env, &po);
	napi_create_object(env, &mo);
	for (int i = 0; i < NP + NM; i++)
		napi_set_named_property(env, i < NP ? po : mo, all[i].name, num(env, all[i].fd));
	napi_get_boolean(env, adopt, &b);
	napi_set_named_property(env, res, "adopted", b);
	napi_set_named_property(env, res, "progs", po);
	napi_set_named_property(env, res, "maps", mo);
	return res;
}

static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd;
	void *k, *v;
	size_t kl, vl;
	if (argc < 3 || get_u32(env, argv[0], &fd) || get_buf(env, argv[1], &k, &kl) || get_buf(env, argv[2], &v, &vl)) {
		napi_throw_type_error(env, NULL, "mapUpdate(fd, key, value)");
		return NULL;
	}
	if (map_op(BPF_MAP_UPDATE_ELEM, (int)fd, k, v, BPF_ANY))
		return throw_errno(env, "map update", errno);
	return NULL;
}

static napi_value js_map_delete(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], b;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd;
	void *k;
	size_t kl;
	if (argc < 2 || get_u32(env, argv[0], &fd) || get_buf(env, argv[1], &k, &kl)) {
		napi_throw_type_error(env, NULL, "mapDelete(fd, key)");
		return NULL;
	}
	int r = map_op(BPF_MAP_DELETE_ELEM, (int)fd, k, NULL, 0);
	if (r && errno != ENOENT)
		return throw_errno(env, "map delete", errno);
	napi_get_boolean(env, r == 0, &b);
	return b;
}

static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3], out;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd, vsize;
	void *k, *v;
	size_t kl;
	if (argc < 3 || get_u32(env, argv[0], &fd) || get_buf(env, argv[1], &k, &kl) || get_u32(env, argv[2], &vsize)) {
		napi_throw_type_error(env, NULL, "mapLookup(fd, key, valueSize)");
		return NULL;
	}
	napi_create_buffer(env, vsize, &v, &out);
	if (map_op(BPF_MAP_LOOKUP_ELEM, (int)fd, k, v, 0)) {
		if (errno == ENOENT) {
			napi_get_undefined(env, &out);
			return out;
		}
		return throw_errno(env, "map lookup", errno);
	}
	return out;
}

/* Every entry of a map in a few syscalls (BPF_MAP_LOOKUP_BATCH, up to 1,024 entries each) where
 * BPF_MAP_GET_NEXT_KEY and a lookup cost two a key: a node's resync reads every session's entry. */
static napi_value js_map_entries(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3], res, kb, vb;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd, ks, vs;
	if (argc < 3 || get_u32(env, argv[0], &fd) || get_u32(env, argv[1], &ks) || get_u32(env, argv[2], &vs) ||
	    ks == 0 || ks > 256 || vs == 0) {
		napi_throw_type_error(env, NULL, "mapEntries(fd, keySize, valueSize)");
		return NULL;
	}
	/* a hash map answers a bucket at a time: a bucket larger than the room left is ENOSPC */
	uint32_t chunk = 1024, n = 0, cap = 0;
	unsigned char *keys = NULL, *vals = NULL;
	/* the batch position: a bucket index for a hash map, a key for an array */
	unsigned char in[256], out[256];
	int first = 1, err = 0;
	for (;;) {
		if (cap - n < chunk) {
			uint32_t want = n + chunk;
			unsigned char *k2 = realloc(keys, (size_t)want * ks), *v2 = realloc(vals, (size_t)want * vs);
			if (k2)
				keys = k2;
			if (v2)
				vals = v2;
			if (!k2 || !v2) {
				err = ENOMEM;
				break;
			}
			cap = want;
		}
		union bpf_attr a = {0};
		a.batch.map_fd = fd;
		a.batch.in_batch = first ? 0 : (__u64)(unsigned long)in;
		a.batch.out_batch = (__u64)(unsigned long)out;
		a.batch.keys = (__u64)(unsigned long)(keys + (size_t)n * ks);
		a.batch.values = (__u64)(unsigned long)(vals + (size_t)n * vs);
		a.batch.count = cap - n;
		int r = sys_bpf(BPF_MAP_LOOKUP_BATCH, &a);
		int e = r ? errno : 0;
		if (r && e != ENOENT && !(e == ENOSPC && a.batch.count == 0)) {
			err = e;
			break;
		}
		if (e == ENOSPC) {
			chunk *= 2;
			continue;
		}
		n += a.batch.count;
		if (e == ENOENT)
			break;
		memcpy(in, out, sizeof(in));
		first = 0;
	}
	if (err) {
		free(keys);
		free(vals);
		return throw_errno(env, "map batch lookup", err);
	}
	void *d;
	napi_create_buffer_copy(env, (size_t)n * ks, n ? keys : (void *)"", &d, &kb);
	napi_create_buffer_copy(env, (size_t)n * vs, n ? vals : (void *)"", &d, &vb);
	free(keys);
	free(vals);
	napi_create_object(env, &res);
	napi_set_named_property(env, res, "keys", kb);
	napi_set_named_property(env, res, "values", vb);
	return res;
}

static napi_value js_prog_id(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd;
	if (argc < 1 || get_u32(env, argv[0], &fd)) {
		napi_throw_type_error(env, NULL, "progId(fd)");
		return NULL;
	}
	struct bpf_prog_info pi = {0};
	union bpf_attr a = {0};
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(pi);
	a.info.info = (__u64)(unsigned long)&pi;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a))
		return throw_errno(env, "program info", errno);
	return num(env, pi.id);
}

static napi_value js_close_fd(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	uint32_t fd;
	if (argc >= 1 && !get_u32(env, argv[0], &fd))
		close((int)fd);
	return NULL;
}

/* BPF_ENABLE_STATS is counted: holding this fd leaves the kernel.bpf_stats_enabled sysctl (and
 * anyone else's fd) alone, and the cost of timing every run ends when the fd closes. */
static napi_value js_enable_stats(napi_env env, napi_callback_info info)
{
	(void)info;
	union bpf_attr a = {0};
	a.enable_stats.type = BPF_STATS_RUN_TIME;
	int fd = sys_bpf(BPF_ENABLE_STATS, &a);
	if (fd < 0)
		return throw_errno(env, "enable program statistics", errno);
	return num(env, (uint32_t)fd);
}

/* One legacy ethtool request on ifname: data starts with its command. */
static int ethtool_ioctl(int sock, const char *ifname, void *data)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	ifr.ifr_data = data;
	return ioctl(sock, SIOCETHTOOL, &ifr);
}

static int ethtool_set(int sock, const char *ifname, uint32_t cmd, uint32_t value)
{
	struct ethtool_value ev = {.cmd = cmd, .data = value};
	return ethtool_ioctl(sock, ifname, &ev);
}

/* The legacy ethtool ioctls are enough to switch segmentation and GRO; the image has no ethtool. */
static napi_value js_set_offloads(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char ifname[IFNAMSIZ];
	if (argc < 2 || get_str(env, argv[0], ifname, sizeof(ifname))) {
		napi_throw_type_error(env, NULL, "setOffloads(ifname, { tso, gso, gro, txcsum })");
		return NULL;
	}
	static const struct {
		const char *key;
		uint32_t cmd;
	} keys[] = {{"txcsum", ETHTOOL_STXCSUM}, {"tso", ETHTOOL_STSO}, {"gso", ETHTOOL_SGSO}, {"gro", ETHTOOL_SGRO}};
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return throw_errno(env, "socket", errno);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		bool has, on;
		napi_value v;
		napi_has_named_property(env, argv[1], keys[i].key, &has);
		if (!has)
			continue;
		napi_get_named_property(env, argv[1], keys[i].key, &v);
		if (napi_get_value_bool(env, v, &on) != napi_ok)
			continue;
		if (ethtool_set(sock, ifname, keys[i].cmd, on ? 1 : 0)) {
			int e = errno;
			close(sock);
			char what[128];
			snprintf(what, sizeof(what), "ethtool %s %s on %s", keys[i].key, on ? "on" : "off", ifname);
			return throw_errno(env, what, e);
		}
	}
	close(sock);
	return NULL;
}

/* Queue counts through the legacy ethtool channel ioctls (ethtool -L rx N tx N). veth creates a
 * queue per possible CPU but uses one unless asked; the device's maximum caps the count. */
static napi_value js_set_channels(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char ifname[IFNAMSIZ];
	uint32_t want;
	if (argc < 2 || get_str(env, argv[0], ifname, sizeof(ifname)) || get_u32(env, argv[1], &want) || want == 0) {
		napi_throw_type_error(env, NULL, "setChannels(ifname, count >= 1)");
		return NULL;
	}
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return throw_errno(env, "socket", errno);
	struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
	char what[96];
	snprintf(what, sizeof(what), "ethtool channels of %s", ifname);
	if (ethtool_ioctl(sock, ifname, &ch))
		goto fail;
	uint32_t rx = want < ch.max_rx ? want : ch.max_rx, tx = want < ch.max_tx ? want : ch.max_tx;
	if (rx && tx && (rx != ch.rx_count || tx != ch.tx_count)) {
		ch.cmd = ETHTOOL_SCHANNELS;
		ch.rx_count = rx;
		ch.tx_count = tx;
		snprintf(what, sizeof(what), "ethtool channels rx %u tx %u on %s", rx, tx, ifname);
		if (ethtool_ioctl(sock, ifname, &ch))
			goto fail;
		ch.cmd = ETHTOOL_GCHANNELS;
		snprintf(what, sizeof(what), "ethtool channels of %s", ifname);
		if (ethtool_ioctl(sock, ifname, &ch))
			goto fail;
	}
	close(sock);
	napi_value o;
	napi_create_object(env, &o);
	napi_set_named_property(env, o, "rx", num(env, ch.rx_count));
	napi_set_named_property(env, o, "tx", num(env, ch.tx_count));
	return o;
fail:;
	int e = errno;
	close(sock);
	return throw_errno(env, what, e);
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor d[] = {
		{"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
		{"mapUpdate", NULL, js_map_update, NULL, NULL, NULL, napi_default, NULL},
		{"mapDelete", NULL, js_map_delete, NULL, NULL, NULL, napi_default, NULL},
		{"mapLookup", NULL, js_map_lookup, NULL, NULL, NULL, napi_default, NULL},
		{"mapEntries", NULL, js_map_entries, NULL, NULL, NULL, napi_default, NULL},
		{"progId", NULL, js_prog_id, NULL, NULL, NULL, napi_default, NULL},
		{"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
		{"enableStats", NULL, js_enable_stats, NULL, NULL, NULL, napi_default, NULL},
		{"setOffloads", NULL, js_set_offloads, NULL, NULL, NULL, napi_default, NULL},
		{"setChannels", NULL, js_set_channels, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof(d) / sizeof(d[0]), d);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
