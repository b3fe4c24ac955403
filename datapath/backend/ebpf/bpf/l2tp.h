/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/* Map layouts shared by the tc programs (l2tp.bpf.c) and the agent (maps.ts encodes the same bytes).
 * Addresses, ports and cookies are in network order (copied to/from the wire as they are); IDs and
 * lengths in host order. Every struct is padded explicitly so both sides agree on offsets. */
#ifndef KUBE_L2TP_BPF_H
#define KUBE_L2TP_BPF_H

#define ENCAP_UDP 0
#define ENCAP_IP 1

#define TXF_SEND_SEQ 1
#define TXF_UDP_CSUM 2 /* checksum the outer UDP header (frames arrive segmented, checksums filled) */
#define RXF_REQUIRE_SEQ 1
#define RXF_UDP_CSUM 2 /* the tunnel checksums: over IPv6 a datagram with checksum 0 is refused */

/* Indexes into the drop counters: the order of DROP_REASONS in backend/types.ts. */
#define DROP_UNKNOWN_SESSION 0
#define DROP_BAD_COOKIE 1
#define DROP_TRUNCATED 2
#define DROP_BAD_VERSION 3
#define DROP_CONTROL 4
#define DROP_SEQUENCE 5
#define DROP_OVERSIZED 6
#define DROP_BAD_SOURCE 7
#define DROP_BAD_CHECKSUM 8
#define NDROPS 9

/* tx_cfg: key = ifindex of a device whose transmitted frames belong to the session. 96 bytes. */
struct tx_cfg {
	__u32 session_id;      /* local id: the sequence numbers' key */
	__u32 peer_session_id; /* written on the wire */
	__u32 underlay_ifindex;
	__u16 sport;
	__u16 dport;
	__u8 encap;
	__u8 cookie_len;
	__u8 l2spec_len;
	__u8 flags;
	__u8 family;	   /* 4 or 6 */
	__u8 has_nexthop; /* nexthop holds the underlay route's next hop (of the same family) */
	__u8 pad[2];
	__u8 saddr[16]; /* IPv4: the first 4 bytes */
	__u8 daddr[16];
	__u8 cookie[8]; /* the local cookie: what we send */
	__u8 dmac[6];   /* next hop on the underlay, for frames that are not IP */
	__u8 smac[6];
	__u8 nexthop[16]; /* IPv4: the first 4 bytes */
	__u32 stats_slot; /* the session's index into sess_stats */
};

/* tun_map: key = the outer addresses and ports as received (local = destination). 40 bytes. */
struct tun_key {
	__u8 local[16]; /* IPv4: the first 4 bytes */
	__u8 remote[16];
	__u16 lport;
	__u16 rport;
	__u8 encap;
	__u8 family;
	__u8 pad[2];
};

/* rx_sess: key = local session id. 32 bytes. */
struct rx_cfg {
	__u32 tunnel_id;
	__u32 ifindex;     /* the veth peer: its egress (or redirect_peer) reaches l2tpethN anywhere */
	__u32 dev_ifindex; /* l2tpethN while it is in this namespace (0 otherwise): straight in */
	__u8 cookie_len;
	__u8 l2spec_len;
	__u8 flags;
	__u8 pad;
	__u8 cookie[8]; /* the peer cookie: what we expect */
	__u32 stats_slot; /* the session's index into sess_stats */
	__u32 tun_slot;   /* its tunnel's index into tun_stats */
};

/* tun_map's value: the tunnel and its index into tun_stats. 8 bytes. */
struct tun_val {
	__u32 tunnel_id;
	__u32 stats_slot;
};

/* sess_stats (per CPU array): index = the session's stats_slot, which the agent allocates (an array
 * lookup costs the programs no helper call, where a hash lookup per frame did). 120 bytes. */
struct sess_stats {
	__u64 tx_packets, tx_bytes, tx_errors, rx_packets, rx_bytes, rx_errors;
	__u64 drops[NDROPS];
};

/* tun_stats (per CPU array): index = the tunnel's stats_slot. 80 bytes. */
struct tun_stats {
	__u64 rx_packets;
	__u64 drops[NDROPS];
};

/* seq_state: key = local session id. 16 bytes. The receive side follows the kernel's session
 * fields: nr (next expected), nr_oos (last out-of-sequence number), nr_oos_count. */
struct seq_state {
	__u32 tx_ns;
	__u32 rx_nr;
	__u32 rx_nr_oos;
	__u32 rx_oos_count;
};

#endif
