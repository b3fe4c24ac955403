#!/bin/sh
# The Linux host's side of examples/linux-peer.yaml, with iproute2 and the kernel's L2TP modules
# (l2tp_core, l2tp_netlink, l2tp_eth; `modprobe l2tp_eth`). Run as root on the host 192.0.2.50.
# Every value mirrors the cluster's L2TPTunnel and Pseudowire:
#   tunnel_id 200 / peer_tunnel_id 100, session_id 20 / peer_session_id 10,
#   cookie 0badcafe (what the cluster expects) / peer_cookie c0ffee01 (what the cluster sends).
# Without kernel L2TP, the same link comes up with:
#   kube-l2tp-datapath static --config examples/linux-peer-static.yaml --backend userspace
#   usage: linux-peer.sh [up|down]
set -eu
LOCAL=192.0.2.50   # this host
REMOTE=192.0.2.10  # the cluster node worker-1

case "${1:-up}" in
up)
  modprobe l2tp_eth 2>/dev/null || true
  ip l2tp add tunnel tunnel_id 200 peer_tunnel_id 100 encap udp \
    local "$LOCAL" remote "$REMOTE" udp_sport 1701 udp_dport 1701 udp_csum on
  ip l2tp add session name l2tpeth0 tunnel_id 200 session_id 20 peer_session_id 10 \
    cookie 0badcafe peer_cookie c0ffee01 l2spec_type default
  ip link set l2tpeth0 mtu 1442 up
  # bridge it with a local LAN port, or address it directly:
  ip addr add 10.50.0.254/24 dev l2tpeth0
  ip l2tp show tunnel
  ip l2tp show session
  ;;
down)
  ip l2tp del session tunnel_id 200 session_id 20 || true
  ip l2tp del tunnel tunnel_id 200 || true
  ;;
*)
  echo "usage: $0 [up|down]" >&2
  exit 2
  ;;
esac
