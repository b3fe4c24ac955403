/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/* L2TPv3 ethernet pseudowires in tc: what l2tp_eth does, without the l2tp modules.
 *
 * l2tp_tx_egress  tc egress of the session device (l2tpethN, one end of a veth pair): fast path for
 *                 UDP sessions without sequencing; GSO super-packets are encapsulated whole and the
 *                 kernel segments them like VXLAN.
 * l2tp_tx_ingress tc ingress of the veth peer: everything the fast path does not take (IP
 *                 encapsulation and sequencing, where the device segments first; a device moved into
 *                 a pod, whose own filters are gone).
 * l2tp_rx         tc ingress of the underlay: L2TPv3 data messages of a known tunnel are checked,
 *                 counted, stripped and handed to l2tpethN (single frames out of its veth peer, for
 *                 GRO; super-packets straight in, wherever l2tpethN is); anything that is not a
 *                 configured tunnel's traffic passes untouched.
 * The agent pins maps and programs so that forwarding and counters outlive it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "l2tp.h"

#define AF_INET 2
#define AF_INET6 10
#define MAX_ENTRIES 16384

/* keyed by ifindex: a session has its peer's, and on the fast path l2tpethN's as well */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct tx_cfg);
} tx_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct tun_key);
	__type(value, struct tun_val);
} tun_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct rx_cfg);
} rx_sess SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct sess_stats);
} sess_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct tun_stats);
} tun_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct seq_state);
} seq_state SEC(".maps");

/* The length inner frames keep: their own Ethernet header. The kernel must see exactly this as the
 * inner L2 length, or software GSO copies the wrong bytes into every segment. */
#define INNER_L2 14
#define ENCAP_FLAGS_BASE                                                                          \
	(BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(INNER_L2))

/* A tunnel's own drop of a datagram it counted already. */
static __always_inline void tun_drop(__u32 slot, int reason)
{
	struct tun_stats *t = bpf_map_lookup_elem(&tun_stats, &slot);
	if (t && reason >= 0 && reason < NDROPS)
		t->drops[reason]++;
}

/* A datagram dropped before its session is known: the tunnel of the key counts it whole. */
static __always_inline void key_drop(__u32 slot, __u32 segs, int reason)
{
	struct tun_stats *t = bpf_map_lookup_elem(&tun_stats, &slot);
	if (t && reason >= 0 && reason < NDROPS) {
		t->rx_packets += segs;
		t->drops[reason]++;
	}
}

static __always_inline int sess_drop(__u32 slot, int reason)
{
	struct sess_stats *s = bpf_map_lookup_elem(&sess_stats, &slot);
	if (s && reason >= 0 && reason < NDROPS) {
		s->drops[reason]++;
		s->rx_errors++;
	}
	return TC_ACT_SHOT;
}

#ifdef L2TP_DEBUG
#define tx_error(slot) (bpf_printk("l2tp tx error at line %d", __LINE__), tx_error_(slot))
#else
#define tx_error(slot) tx_error_(slot)
#endif
static __always_inline int tx_error_(__u32 slot)
{
	struct sess_stats *s = bpf_map_lookup_elem(&sess_stats, &slot);
	if (s)
		s->tx_errors++;
	return TC_ACT_SHOT;
}

static __always_inline __u16 ip_checksum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The one's-complement sum of the UDP pseudo-header (addresses of the family, length, protocol). */
static __always_inline __u64 pseudo_sum(__u8 family, const void *saddr, const void *daddr, __u32 ulen)
{
	__u64 sum = 0;
	const __u32 *sa = saddr, *da = daddr;
	if (family == 6) {
#pragma unroll
		for (int i = 0; i < 4; i++)
			sum += sa[i] + (__u64)da[i];
	} else {
		sum += sa[0] + (__u64)da[0];
	}
	/* the same 16-bit words either way; added in 64 bits, as two 32-bit words can carry out */
	return sum + (__u64)bpf_htonl(ulen) + bpf_htonl(IPPROTO_UDP);
}

static __always_inline __u16 csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* The checksum loop reads the datagram in chunks: up to a jumbo frame with its outer headers. */
#define CSUM_CHUNK 128
#define CSUM_MAX_CHUNKS 80

/* sum plus the datagram of ulen bytes at uoff, folded to 16 bits (not complemented); -1 when the
 * datagram cannot be read. Sending and receiving both sum this way. */
static __always_inline int datagram_sum(struct __sk_buff *skb, __u64 sum, __u32 uoff, __u32 ulen)
{
	__u64 buf[CSUM_CHUNK / 8];
	__u32 off = uoff, len = ulen;
	for (int i = 0; i < CSUM_MAX_CHUNKS && len; i++) {
		__u32 n = len > CSUM_CHUNK ? CSUM_CHUNK : len;
		if (n < CSUM_CHUNK) {
			/* the last chunk: an odd byte is summed as if followed by a zero */
#pragma unroll
			for (int j = 0; j < CSUM_CHUNK / 8; j++)
				buf[j] = 0;
		}
		/* whole words (the zeroed tail pads the last one), bounded where the verifier sees it */
		__u32 words = (n + 3) & ~3U;
		if (n == 0 || words > CSUM_CHUNK || bpf_skb_load_bytes(skb, off, buf, n))
			return -1;
		sum += (__u32)bpf_csum_diff(NULL, 0, (__be32 *)buf, words, 0);
		off += n;
		len -= n;
	}
	if (len)
		return -1;
	return csum_fold64(sum);
}

/* The outer UDP checksum over the pseudo-header and the datagram at uoff, stored in place. Only
 * frames whose inner checksums are already filled get here (the session device checksums in
 * software): a checksum still to be filled by a NIC would change the datagram after this sum. */
static __always_inline int udp_checksum(struct __sk_buff *skb, const struct tx_cfg *c, __u32 uoff,
					__u32 ulen)
{
	int sum = datagram_sum(skb, pseudo_sum(c->family, c->saddr, c->daddr, ulen), uoff, ulen);
	if (sum < 0)
		return -1;
	__u16 check = ~sum & 0xffff;
	if (!check)
		check = 0xffff; /* 0 means "no checksum" */
	return bpf_skb_store_bytes(skb, uoff + 6, &check, 2, 0) ? -1 : 0;
}

/* Whether a received datagram's non-zero UDP checksum holds, as the kernel's UDP socket would judge
 * it. Not summed again: what the device or the kernel verified (CHECKSUM_UNNECESSARY), and GSO
 * super-packets (merged by GRO, which verified them, or built by a local sender that leaves the
 * checksum to the device). A local sender's datagram whose checksum is left to the device
 * (CHECKSUM_PARTIAL, which the kernel accepts unverified and a program cannot see) holds the
 * pseudo-header's sum in the field: that is accepted too. */
static __always_inline int udp_checksum_ok(struct __sk_buff *skb, const struct tun_key *tk,
					   __u16 check, __u32 uoff, __u32 ulen)
{
	if (skb->gso_size || bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		return 1;
	__u16 pseudo = csum_fold64(pseudo_sum(tk->family, tk->remote, tk->local, ulen));
	int sum = datagram_sum(skb, pseudo, uoff, ulen);
	return sum == 0xffff || check == pseudo;
}

struct outer4 {
	struct ethhdr eth;
	struct iphdr ip;
} __attribute__((packed));

struct outer6 {
	struct ethhdr eth;
	struct ipv6hdr ip;
} __attribute__((packed));

/* The most a frame gets in front of its payload: outer Ethernet and IPv6, UDP and the L2TPv3
 * header, an 8-byte cookie, the sublayer, the inner Ethernet header. */
#define HDR_MAX (sizeof(struct outer6) + sizeof(struct udphdr) + 8 + 8 + 4 + ETH_HLEN)

static __always_inline int l2tp_tx(struct __sk_buff *skb, int miss)
{
	__u32 key = skb->ifindex;
	struct tx_cfg *c = bpf_map_lookup_elem(&tx_cfg, &key);
	if (!c)
		return miss;
	__u32 sid = c->session_id;
	__u32 slot = c->stats_slot;
	__u8 udp = c->encap == ENCAP_UDP;
	__u32 clen = c->cookie_len;
	__u32 l2len = c->l2spec_len ? 4 : 0;
	if (clen != 0 && clen != 4 && clen != 8)
		return tx_error(slot);

	/* the MAC header is in the linear part of a transmitted frame: read it without a helper */
	struct ethhdr inner;
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	if (data + sizeof(inner) <= data_end)
		__builtin_memcpy(&inner, data, sizeof(inner));
	else if (bpf_skb_load_bytes(skb, 0, &inner, sizeof(inner)))
		return tx_error(slot);
	__u32 inner_len = skb->len;
	__u32 segs = skb->gso_segs ? skb->gso_segs : 1;
	if (c->family == 6 && inner_len < ETH_ZLEN) {
		/* A receiver in tc must leave an IPv6 header's length behind the MAC header when it
		 * strips the outer headers, which a short frame does not have: pad it to Ethernet's
		 * minimum here, as a NIC would on the wire. */
		__u32 pad = ETH_ZLEN - inner_len;
		__u64 zeros[8] = {};
		if (bpf_skb_change_tail(skb, ETH_ZLEN, 0) ||
		    bpf_skb_store_bytes(skb, inner_len, zeros, ((pad - 1) & 63) + 1, 0))
			return tx_error(slot);
		inner_len = ETH_ZLEN;
	}
	/* No GSO handler exists for protocol 115, one sequence number cannot cover many segments, and
	 * adjust_room cannot ask GSO for checksummed UDP tunnel segments: such sessions get segmented
	 * frames (TSO/GSO off on their device). */
	if (skb->gso_size && (!udp || (c->flags & (TXF_SEND_SEQ | TXF_UDP_CSUM))))
		return tx_error(slot);

	__u8 v6 = c->family == 6;
	__u32 l2tp_len = (udp ? sizeof(struct udphdr) + 8 : 4) + clen + l2len;
	__u32 l3_len = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	__u32 outer_len = l3_len + l2tp_len;
	__u32 room = outer_len + ETH_HLEN;
	__u8 ipx = skb->protocol == bpf_htons(ETH_P_IP) || skb->protocol == bpf_htons(ETH_P_IPV6);
	long err;
	if (ipx) {
		/* room goes after the (inner) MAC header; the inner MAC header is rewritten below */
		__u64 flags = ENCAP_FLAGS_BASE |
			      (v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) |
			      (udp ? BPF_F_ADJ_ROOM_ENCAP_L4_UDP : 0);
		err = bpf_skb_adjust_room(skb, room, BPF_ADJ_ROOM_MAC, flags);
	} else {
		/* adjust_room refuses non-IP frames (ARP...): they are never GSO, prepend in front */
		err = bpf_skb_change_head(skb, room, 0);
	}
	if (err)
		return tx_error(slot);

	__u32 l3_payload = inner_len + l2tp_len; /* GSO rewrites lengths per segment */
	/* Every header byte the frame gets, built here and written with one store: each store is a
	 * helper call that makes the head writable and recomputes the packet pointers. */
	__u8 h[HDR_MAX] __attribute__((aligned(8)));
	__builtin_memset(h, 0, sizeof(h));
	__u32 off;
	if (v6) {
		struct outer6 *o = (void *)h;
		o->eth.h_proto = bpf_htons(ETH_P_IPV6);
		o->ip.version = 6;
		o->ip.nexthdr = udp ? IPPROTO_UDP : IPPROTO_L2TP;
		o->ip.hop_limit = 64;
		o->ip.payload_len = bpf_htons(l3_payload > 0xffff ? 0xffff : l3_payload);
		__builtin_memcpy(&o->ip.saddr, c->saddr, 16);
		__builtin_memcpy(&o->ip.daddr, c->daddr, 16);
		off = sizeof(*o);
	} else {
		__u32 ip_len = l3_payload + sizeof(struct iphdr);
		struct iphdr iph = {};
		iph.version = 4;
		iph.ihl = 5;
		iph.ttl = 64;
		iph.protocol = udp ? IPPROTO_UDP : IPPROTO_L2TP;
		iph.tot_len = bpf_htons(ip_len > 0xffff ? 0xffff : ip_len);
		iph.id = (__u16)bpf_get_prandom_u32();
		__builtin_memcpy(&iph.saddr, c->saddr, 4);
		__builtin_memcpy(&iph.daddr, c->daddr, 4);
		iph.check = ip_checksum(&iph);
		struct outer4 *o = (void *)h;
		o->eth.h_proto = bpf_htons(ETH_P_IP);
		o->ip = iph;
		off = sizeof(*o);
	}
	if (!ipx) {
		/* redirect_neigh takes IP packets only (skb->protocol of an ARP frame stays ARP): the
		 * MACs the agent read from the neighbour table */
		if (!(c->dmac[0] | c->dmac[1] | c->dmac[2] | c->dmac[3] | c->dmac[4] | c->dmac[5]))
			return tx_error(slot);
		__builtin_memcpy(h, c->dmac, 6);
		__builtin_memcpy(h + 6, c->smac, 6);
	}
	if (udp) {
		struct {
			struct udphdr u;
			__u32 flags_ver;
			__u32 session;
		} l = {};
		l.u.source = c->sport;
		l.u.dest = c->dport;
		/* checksum 0 unless the tunnel asks for checksums (filled in below, once the datagram is
		 * complete); over IPv6 a zero checksum needs a peer that accepts it, as with the kernel */
		l.u.len = bpf_htons(l3_payload & 0xffff);
		l.flags_ver = bpf_htonl(0x00030000);
		l.session = bpf_htonl(c->peer_session_id);
		__builtin_memcpy(h + off, &l, sizeof(l));
		off += sizeof(l);
	} else {
		__u32 session = bpf_htonl(c->peer_session_id);
		__builtin_memcpy(h + off, &session, 4);
		off += 4;
	}
	if (clen == 4) {
		__builtin_memcpy(h + off, c->cookie, 4);
		off += 4;
	} else if (clen == 8) {
		__builtin_memcpy(h + off, c->cookie, 8);
		off += 8;
	}
	if (l2len) {
		__u32 word = 0;
		if (c->flags & TXF_SEND_SEQ) {
			struct seq_state *st = bpf_map_lookup_elem(&seq_state, &sid);
			if (!st)
				return tx_error(slot);
			__u32 ns = __sync_fetch_and_add(&st->tx_ns, 1);
			word = bpf_htonl(0x40000000 | (ns & 0x00ffffff));
		}
		__builtin_memcpy(h + off, &word, 4);
		off += 4;
	}
	if (ipx) {
		/* adjust_room made the room after the inner MAC header: the store rewrites it in place */
		__builtin_memcpy(h + off, &inner, sizeof(inner));
		off += sizeof(inner);
	}
	if (off > HDR_MAX || bpf_skb_store_bytes(skb, 0, h, off, 0))
		return tx_error(slot);
	if (udp && (c->flags & TXF_UDP_CSUM) && udp_checksum(skb, c, ETH_HLEN + l3_len, l3_payload))
		return tx_error(slot);

	struct sess_stats *s = bpf_map_lookup_elem(&sess_stats, &slot);
	if (ipx) {
		/* the kernel fills in the MACs from its neighbour table (resolving the next hop when
		 * needed), as it would for its own tunnel; given the next hop the agent found on the
		 * underlay route, it skips a route lookup per frame */
		if (s) {
			s->tx_packets += segs;
			s->tx_bytes += inner_len;
		}
		if (!c->has_nexthop)
			return bpf_redirect_neigh(c->underlay_ifindex, 0, 0, 0);
		struct bpf_redir_neigh nh = {};
		if (v6) {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, c->nexthop, 16);
		} else {
			nh.nh_family = AF_INET;
			__builtin_memcpy(&nh.ipv4_nh, c->nexthop, 4);
		}
		return bpf_redirect_neigh(c->underlay_ifindex, &nh, sizeof(nh), 0);
	}
	/* not IP: the MACs are in the header already */
	if (s) {
		s->tx_packets += segs;
		s->tx_bytes += inner_len;
	}
	return bpf_redirect(c->underlay_ifindex, 0);
}

SEC("tc")
int l2tp_tx_egress(struct __sk_buff *skb)
{
	/* not a fast-path session: the frame goes on through the veth to l2tp_tx_ingress */
	return l2tp_tx(skb, TC_ACT_OK);
}

SEC("tc")
int l2tp_tx_ingress(struct __sk_buff *skb)
{
	/* a peer device without a session transmits nothing */
	return l2tp_tx(skb, TC_ACT_SHOT);
}

/* Room for the headers the receive path parses directly: Ethernet, IPv6 (or IPv4 without options),
 * UDP, the L2TPv3 header. */
/* The underlay is the node's: a frame that is not a tunnel's goes on to the next tc filter (another
 * tool's, at a later preference) as if this program were not there. TC_ACT_OK would end the
 * classification and skip those filters. */
#define NOT_OURS TC_ACT_UNSPEC

#define RX_PARSE (ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr) + 8)
/* What follows the session id: an 8-byte cookie, the sublayer, the inner Ethernet header at most. */
#define RX_TAIL_MAX 32

#define SEQ_MASK 0x00ffffff
#define SEQ_OOS_MAX 4

/* The kernel's l2tp_recv_data_seq with reorder_timeout 0 (frames cannot be held here, so a timeout
 * is not honoured): accept ns == nr; drop numbers behind the window and out-of-sequence ones, but
 * after more than SEQ_OOS_MAX consecutive out-of-sequence numbers take the peer's numbering. The
 * same rule as the userspace pump's (wire.c). */
static __always_inline int seq_check(__u32 sid, __u32 word)
{
	if (!(word & 0x40000000))
		return -1; /* no S bit: sequence numbers are required */
	struct seq_state *st = bpf_map_lookup_elem(&seq_state, &sid);
	if (!st)
		return -1;
	__u32 ns = word & SEQ_MASK;
	if (((ns - st->rx_nr) & SEQ_MASK) > SEQ_MASK / 2)
		return -1; /* behind us: old or duplicate */
	if (ns != st->rx_nr) {
		if (ns == ((st->rx_nr_oos + 1) & SEQ_MASK))
			st->rx_oos_count++;
		else
			st->rx_oos_count = 0;
		st->rx_nr_oos = ns;
		if (st->rx_oos_count <= SEQ_OOS_MAX)
			return -1;
	}
	st->rx_oos_count = 0;
	st->rx_nr = (ns + 1) & SEQ_MASK;
	return 0;
}

/* The inner IP header (IPv4 without options, or IPv6 without extension headers) and the TCP header
 * up to its data offset. */
#define TCP_PEEK (sizeof(struct ipv6hdr) + 13)
#define TCP_PEEK4 (sizeof(struct iphdr) + 13)

/* Whether the inner packet at l3 (ending at end) is a TCP segment that carries data: what GRO can
 * merge. IPv4 with options and IPv6 with extension headers are not merged by GRO either. */
static __always_inline __u8 tcp_data(struct __sk_buff *skb, __u16 h_proto, __u32 l3, __u32 end)
{
	__u8 b[TCP_PEEK];
	__u32 avail = end - l3;
	if (end < l3 || avail < sizeof(struct iphdr) + 20 + 1)
		return 0; /* too short for IP, TCP and a byte of data */
	__u32 n = avail < sizeof(b) ? avail : sizeof(b);
	/* The headers are in the linear part of every frame the underlay delivers (often nothing
	 * more): read them there, as a helper call per frame costs more than the rest of this test.
	 * IPv4 looks at its first TCP_PEEK4 bytes only. Bytes past avail that a direct read takes
	 * belong to the frame (its payload or padding) and decide nothing below: IPv4 looks at most at
	 * its 33rd byte of at least 41, IPv6 needs all of them. */
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	__u8 *p = data + (l3 & 0x3ff);
	if (h_proto == bpf_htons(ETH_P_IP) && (void *)(p + TCP_PEEK4) <= data_end) {
		__builtin_memcpy(b, p, TCP_PEEK4);
	} else if ((void *)(p + sizeof(b)) <= data_end) {
		__builtin_memcpy(b, p, sizeof(b));
	} else {
		__builtin_memset(b, 0, sizeof(b));
		if (bpf_skb_load_bytes(skb, l3, b, n))
			return 0;
	}
	__u32 ip_len, payload;
	if (h_proto == bpf_htons(ETH_P_IP)) {
		if (b[0] != 0x45 || b[9] != IPPROTO_TCP)
			return 0;
		ip_len = (b[2] << 8 | b[3]);
		payload = ip_len - sizeof(struct iphdr);
		if (ip_len < sizeof(struct iphdr))
			return 0;
		return payload > (__u32)(b[sizeof(struct iphdr) + 12] >> 4) * 4;
	}
	if (h_proto == bpf_htons(ETH_P_IPV6)) {
		if (b[6] != IPPROTO_TCP || n < sizeof(b))
			return 0;
		payload = b[4] << 8 | b[5];
		return payload > (__u32)(b[sizeof(struct ipv6hdr) + 12] >> 4) * 4;
	}
	return 0;
}

SEC("tc")
int l2tp_rx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + RX_PARSE > data_end && skb->len > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, skb->len < RX_PARSE ? skb->len : RX_PARSE);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NOT_OURS;
	struct tun_key tk = {};
	__u8 proto;
	__u32 l3_len, ip_end;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return NOT_OURS;
		/* options and fragments are rare: the stack takes them */
		if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return NOT_OURS;
		tk.family = 4;
		__builtin_memcpy(tk.local, &ip->daddr, 4);
		__builtin_memcpy(tk.remote, &ip->saddr, 4);
		proto = ip->protocol;
		l3_len = sizeof(struct iphdr);
		ip_end = ETH_HLEN + bpf_ntohs(ip->tot_len);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return NOT_OURS;
		/* extension headers (fragments...) are rare: the stack takes them */
		tk.family = 6;
		__builtin_memcpy(tk.local, &ip6->daddr, 16);
		__builtin_memcpy(tk.remote, &ip6->saddr, 16);
		proto = ip6->nexthdr;
		l3_len = sizeof(struct ipv6hdr);
		ip_end = ETH_HLEN + sizeof(struct ipv6hdr) + bpf_ntohs(ip6->payload_len);
	} else {
		return NOT_OURS;
	}

	__u32 hoff; /* offset of the session id */
	__u8 *l4 = data + ETH_HLEN + l3_len;
	__u16 ucheck = 0, ulen = 0;
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = (void *)l4;
		if ((void *)(uh + 1) > data_end)
			return NOT_OURS;
		tk.lport = uh->dest;
		tk.rport = uh->source;
		ucheck = uh->check;
		ulen = bpf_ntohs(uh->len);
		tk.encap = ENCAP_UDP;
		hoff = ETH_HLEN + l3_len + sizeof(struct udphdr) + 4;
	} else if (proto == IPPROTO_L2TP) {
		tk.encap = ENCAP_IP;
		hoff = ETH_HLEN + l3_len;
	} else {
		return NOT_OURS;
	}
	struct tun_val *tv = bpf_map_lookup_elem(&tun_map, &tk);
	if (!tv)
		return NOT_OURS;
	__u32 tid = tv->tunnel_id, tslot = tv->stats_slot;
	/* Every datagram is counted once by a tunnel, forwarded or dropped under one reason. Over IP,
	 * tunnels between the same two addresses share the key, so a datagram is counted by the tunnel
	 * of its session once that is known, and by the key's tunnel when dropped before (as the kernel
	 * and the userspace pump do). adjust_room resets gso_segs, so it is read first. */
	__u32 segs = skb->gso_segs ? skb->gso_segs : 1;

	if (ip_end > skb->len) {
		key_drop(tslot, segs, DROP_TRUNCATED);
		return TC_ACT_SHOT;
	}
	if (tk.encap == ENCAP_UDP) {
		/* as the kernel's UDP socket: the datagram within the IP packet, its checksum right (0 is
		 * "none"; over IPv6 only where the tunnel allows it, checked once the session is known)
		 * before anything of L2TP is looked at */
		__u32 uoff = ETH_HLEN + l3_len;
		if (ulen < sizeof(struct udphdr) || uoff + ulen > ip_end) {
			key_drop(tslot, segs, DROP_TRUNCATED);
			return TC_ACT_SHOT;
		}
		if (ucheck && !udp_checksum_ok(skb, &tk, ucheck, uoff, ulen)) {
			key_drop(tslot, segs, DROP_BAD_CHECKSUM);
			return TC_ACT_SHOT;
		}
		ip_end = uoff + ulen; /* bytes after the datagram are not part of it */
		/* the flags and version word decides first: control or another version, whatever follows */
		__u8 *l = l4 + sizeof(struct udphdr);
		if ((void *)(l + 2) > data_end || ip_end < hoff - 2) {
			key_drop(tslot, segs, DROP_TRUNCATED);
			return TC_ACT_SHOT;
		}
		if (l[0] & 0x80) { /* T bit: a control message; static tunnels have no control plane */
			key_drop(tslot, segs, DROP_CONTROL);
			return TC_ACT_SHOT;
		}
		if ((l[1] & 0x0f) != 3) {
			key_drop(tslot, segs, DROP_BAD_VERSION);
			return TC_ACT_SHOT;
		}
	}
	if (ip_end < hoff + 4) {
		key_drop(tslot, segs, DROP_TRUNCATED);
		return TC_ACT_SHOT;
	}
	/* the parsed headers are in the linear part (pulled above) unless the datagram is short */
	__u32 sid_be;
	__u8 *sp = data + hoff;
	if ((void *)(sp + 4) <= data_end) {
		sid_be = *(__u32 *)sp;
	} else if (bpf_skb_load_bytes(skb, hoff, &sid_be, 4)) {
		key_drop(tslot, segs, DROP_TRUNCATED);
		return TC_ACT_SHOT;
	}
	__u32 sid = bpf_ntohl(sid_be);
	if (sid == 0) {
		/* over IP, session 0 is a control message; over UDP it is no session at all */
		key_drop(tslot, segs, tk.encap == ENCAP_IP ? DROP_CONTROL : DROP_UNKNOWN_SESSION);
		return TC_ACT_SHOT;
	}
	struct rx_cfg *r = bpf_map_lookup_elem(&rx_sess, &sid);
	/* over UDP the session must belong to the tunnel of the port pair; over IP, like the kernel,
	 * session ids are global (several tunnels may join the same two addresses) */
	if (!r || (tk.encap == ENCAP_UDP && r->tunnel_id != tid)) {
		key_drop(tslot, segs, DROP_UNKNOWN_SESSION);
		return TC_ACT_SHOT;
	}
	tslot = r->tun_slot;
	struct tun_stats *t = bpf_map_lookup_elem(&tun_stats, &tslot);
	if (t)
		t->rx_packets += segs;
	/* The kernel's IPv6 tunnel socket refuses checksum 0 unless told to accept it (udp6_csum_rx
	 * off, which a tunnel without checksums asks for); IPv4 has no such refusal. The setting is a
	 * tunnel's that every session carries, so the drop is the tunnel's, as the other checksums. */
	if (!ucheck && tk.family == 6 && tk.encap == ENCAP_UDP && (r->flags & RXF_UDP_CSUM)) {
		tun_drop(tslot, DROP_BAD_CHECKSUM);
		return TC_ACT_SHOT;
	}
	__u32 sslot = r->stats_slot;
	__u32 clen = r->cookie_len;
	__u32 l2len = r->l2spec_len ? 4 : 0;
	if (clen != 0 && clen != 4 && clen != 8)
		return sess_drop(sslot, DROP_BAD_COOKIE);
	__u32 eth_off = hoff + 4 + clen + l2len; /* the inner Ethernet header */
	if (eth_off + ETH_HLEN > ip_end) {
		tun_drop(tslot, DROP_TRUNCATED);
		return TC_ACT_SHOT;
	}
	/* cookie, sublayer and inner Ethernet header in one read: directly where the linear part
	 * holds RX_TAIL_MAX bytes (the bytes past n are the inner frame's and are not looked at) */
	__u8 b[RX_TAIL_MAX] __attribute__((aligned(8)));
	__u32 n = clen + l2len + ETH_HLEN;
	__u8 *tp = data + ((hoff + 4) & 0xff);
	if (n > sizeof(b))
		return sess_drop(sslot, DROP_TRUNCATED);
	if ((void *)(tp + sizeof(b)) <= data_end) {
		__builtin_memcpy(b, tp, sizeof(b));
	} else {
		__builtin_memset(b, 0, sizeof(b));
		if (bpf_skb_load_bytes(skb, hoff + 4, b, n))
			return sess_drop(sslot, DROP_TRUNCATED);
	}
	if (clen == 4 && *(__u32 *)b != *(__u32 *)r->cookie)
		return sess_drop(sslot, DROP_BAD_COOKIE);
	if (clen == 8 && *(__u64 *)b != *(__u64 *)r->cookie)
		return sess_drop(sslot, DROP_BAD_COOKIE);
	if (r->flags & RXF_REQUIRE_SEQ) {
		__u32 w;
		__builtin_memcpy(&w, b + clen, 4);
		if (!l2len || seq_check(sid, bpf_ntohl(w)))
			return sess_drop(sslot, DROP_SEQUENCE);
	}
	struct ethhdr inner;
	__builtin_memcpy(&inner, b + clen + l2len, sizeof(inner));
	__u32 ifindex = r->ifindex, dev_ifindex = r->dev_ifindex;
	__u32 gso = skb->gso_size;
	/* redirect_peer keeps the outer frame's protocol: only an inner frame of the same one may take it */
	__u8 same_proto = skb->protocol == inner.h_proto;
	/* GRO merges the data of TCP streams only: other single frames (UDP, ICMP, ARP, and pure
	 * ACKs, which GRO passes on at once) are not worth the way through the peer. */
	__u8 tcp = 0;
	if (!gso)
		tcp = tcp_data(skb, inner.h_proto, eth_off + ETH_HLEN, ip_end);
	/* Lengths of a GSO super-packet are rewritten per segment: leave those alone. Otherwise bytes
	 * beyond the IP length (the outer frame's padding) are not part of the frame; trimming them
	 * can fail (skbs a local sender encapsulated), and then they stay as the inner frame's padding. */
	if (!gso) {
		__u32 new_len = ip_end;
		__u32 pad = 0;
		/* over IPv6, adjust_room leaves no less than an IPv6 header's length behind the MAC
		 * header, and an ARP frame is shorter: zero padding to Ethernet's minimum, as a NIC adds */
		if (tk.family == 6 && ip_end - eth_off < 60) {
			pad = 60 - (ip_end - eth_off);
			new_len = ip_end + pad;
		}
		if (new_len != skb->len && bpf_skb_change_tail(skb, new_len, 0) == 0 && pad) {
			/* the same value (pad is 1..46), written so that the verifier sees 1..64 */
			__u32 n = ((pad - 1) & 63) + 1;
			__u8 zeros[64] = {};
			if (bpf_skb_store_bytes(skb, ip_end, zeros, n, 0))
				return sess_drop(sslot, DROP_TRUNCATED);
		}
	}
	/* remove everything between the outer MAC header and the inner frame's payload, then turn the
	 * outer MAC header into the inner one */
	if (bpf_skb_adjust_room(skb, -(__s32)(eth_off), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return sess_drop(sslot, DROP_TRUNCATED);
	if (bpf_skb_store_bytes(skb, 0, &inner, sizeof(inner), 0))
		return sess_drop(sslot, DROP_TRUNCATED);

	struct sess_stats *s = bpf_map_lookup_elem(&sess_stats, &sslot);
	if (s) {
		s->rx_packets += segs;
		s->rx_bytes += skb->len;
	}
	/* A single TCP frame with data (what a NIC receives) goes out of the peer: veth hands it to l2tpethN's
	 * NAPI, where GRO merges a stream's frames before the bridge and the pod see them (the peer has
	 * TSO off, which veth asks for that). A super-packet (merged or never segmented: a veth
	 * underlay) would be segmented again on that way, and other frames gain nothing there: they go
	 * straight into l2tpethN. Once l2tpethN is in a pod, a TCP super-packet of the underlay's IP
	 * version enters the pod's namespace without crossing the pair (redirect_peer does not
	 * re-read the Ethernet header, so protocol and packet type stay the outer frame's); anything
	 * else crosses it, where veth reads the inner header. */
	if (tcp) {
		/* The peer has a queue per CPU (up to a cap) and so has l2tpethN: each receive queue is a
		 * ring with its own NAPI. The transmit queue is picked from a recorded receive queue:
		 * recording this CPU's number makes each CPU fill a ring whose NAPI it schedules itself,
		 * as VXLAN's per-CPU GRO cells do. With one ring, a CPU kept filling it while the other
		 * CPU owned its NAPI: the ring overflowed and TCP saw drops and reordering. */
		skb->queue_mapping = bpf_get_smp_processor_id() + 1;
		return bpf_redirect(ifindex, 0);
	}
	if (dev_ifindex)
		return bpf_redirect(dev_ifindex, BPF_F_INGRESS);
	if (gso && same_proto)
		return bpf_redirect_peer(ifindex, 0);
	return bpf_redirect(ifindex, 0);
}

/* Declared GPL to the kernel (this file is dual-licensed) so it grants the neighbour helper. */
char LICENSE[] SEC("license") = "GPL";
