#!/usr/bin/env bash
# Installs the Debian packages the tests and the local lab use. Idempotent: only missing packages
# are installed, and apt-get update runs only when something is missing.
set -euo pipefail
# libclang-rt-dev: libFuzzer and the sanitizer runtimes clang links for scripts/fuzz.sh
PKGS=(iproute2 tshark qemu-system-x86 iperf3 containernetworking-plugins socat tcpdump openssl jq
      bridge-utils python3 make g++ busybox-static xz-utils cpio bc file netcat-openbsd iputils-ping ethtool
      clang libclang-rt-dev llvm libbpf-dev bpftool containerd runc conntrack iptables)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: done"
