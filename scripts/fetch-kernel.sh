#!/usr/bin/env bash
# Debian's kernel (linux-image-amd64, which ships l2tp_eth as modules) for the `vm` test suite.
# Nothing is installed on the host: the packages are fetched with `apt-get download` and unpacked
# into a cache, so machines whose own kernel has no L2TP can still prove the kernel backend.
#   $HOME/.cache/kube-l2tp/kernel/<version>/
#     vmlinux     decompressed ELF (PVH entry; boots about twice as fast under TCG as the bzImage)
#     vmlinuz     the bzImage as packaged
#     initrd.gz   busybox + the host's iproute2 `ip` (busybox's ip has no l2tp) + modules + /init
#     version     the kernel release (uname -r in the guest)
# Idempotent: a complete cache is reused (REBUILD=1 rebuilds the initramfs). The last stdout line is
# the cache directory (scripts/test.sh exports it as KUBE_L2TP_KERNEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
PKG=${KUBE_L2TP_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
if [ -z "$PKG" ]; then
  apt-get update -qq >&2
  PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$PKG" ] || { echo "fetch-kernel: cannot resolve linux-image-amd64 to a versioned package" >&2; exit 1; }
KVER=${PKG#linux-image-}
DIR=${KUBE_L2TP_CACHE:-$HOME/.cache/kube-l2tp}/kernel/$KVER
mkdir -p "$DIR"
cd "$DIR"

# 1. packages, unpacked (not installed)
if [ ! -f root/.complete ]; then
  echo "fetch-kernel: downloading $PKG and busybox-static" >&2
  rm -f ./*.deb
  # the sandbox user _apt cannot write into root's cache: download as root (nothing is installed)
  apt-get -o APT::Sandbox::User=root download "$PKG" busybox-static >&2
  rm -rf root
  dpkg-deb -x "$(ls "${PKG}"_*.deb | head -1)" root
  dpkg-deb -x "$(ls busybox-static_*.deb | head -1)" root
  rm -f ./*.deb
  touch root/.complete
fi

# 2. vmlinux from the xz-compressed bzImage (CONFIG_KERNEL_XZ=y on Debian amd64)
if [ ! -s vmlinux ]; then
  cp root/boot/vmlinuz-"$KVER" vmlinuz
  off=$(python3 -c "import sys; print(open(sys.argv[1],'rb').read().find(b'\xfd7zXZ\x00'))" vmlinuz)
  [ "$off" -ge 0 ] || { echo "fetch-kernel: no xz stream in vmlinuz" >&2; exit 1; }
  # xz complains about the bytes after the stream: expected, the ELF check below is what counts
  tail -c +$((off + 1)) vmlinuz | xz -dc >vmlinux.tmp 2>/dev/null || true
  head -c 4 vmlinux.tmp | grep -q 'ELF' || { echo "fetch-kernel: vmlinux extraction failed" >&2; exit 1; }
  mv vmlinux.tmp vmlinux
fi

# 3. initramfs
if [ ! -s initrd.gz ] || [ "${REBUILD:-0}" = 1 ] || [ "$HERE/scripts/fetch-kernel.sh" -nt initrd.gz ]; then
  MODDIR=root/lib/modules/$KVER/kernel
  IR=$(mktemp -d)
  trap 'rm -rf "$IR"' EXIT
  mkdir -p "$IR"/{bin,sbin,etc,proc,sys,dev,tmp,run,mods,host,work,usr/sbin}
  cp root/bin/busybox "$IR/bin/busybox"
  for a in $("$IR/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$IR/bin/$a"; done
  # the real iproute2 ip and the libraries it links
  cp /usr/sbin/ip "$IR/usr/sbin/ip"
  for l in $(ldd /usr/sbin/ip | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    mkdir -p "$IR$(dirname "$l")"; cp -L "$l" "$IR$l"
  done
  # modules and their dependencies (from each .ko's modinfo "depends="), in load order
  declare -A seen=()
  order=()
  find_ko() { find "$MODDIR" -name "$1.ko" -o -name "$1.ko.xz" | head -1; }
  add_mod() {
    local m=${1//-/_} f deps d
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    f=$(find_ko "$m"); [ -n "$f" ] || f=$(find_ko "${1//_/-}")
    [ -n "$f" ] || { echo "fetch-kernel: module $1 not found (built in?)" >&2; return 0; }
    case $f in *.xz) deps=$(xz -dc "$f" | tr '\0' '\n' | sed -n 's/^depends=//p') ;;
               *) deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p') ;; esac
    for d in ${deps//,/ }; do add_mod "$d"; done
    case $f in *.xz) xz -dc "$f" >"$IR/mods/$m.ko" ;; *) cp "$f" "$IR/mods/$m.ko" ;; esac
    order+=("$m.ko")
  }
  for m in virtio_pci virtio_net 9pnet_virtio 9p l2tp_core l2tp_netlink l2tp_eth l2tp_ip l2tp_ip6; do add_mod "$m"; done
  printf '%s\n' "${order[@]}" >"$IR/mods/order"
  cat >"$IR/init" <<'INIT'
#!/bin/sh
# kube-l2tp test VM init. Kernel command-line words: vmip=ADDR/LEN (eth0), kl2tp_work=1 (mount the
# writable 9p share "work" and run /work/guest.sh), hostroot=1 (mount the host root read-only at /host).
export PATH=/usr/sbin:/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "KL2TP-INIT: uptime $(cut -d' ' -f1 /proc/uptime)s, loading modules"
for m in $(cat /mods/order); do insmod /mods/$m || echo "KL2TP-INIT: insmod $m failed"; done
/usr/sbin/ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ -n "$vmip" ] && [ -e /sys/class/net/eth0 ]; then
  /usr/sbin/ip addr add "$vmip" dev eth0; /usr/sbin/ip link set eth0 up
fi
if [ -n "$hostroot" ]; then
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || echo "KL2TP-INIT: hostroot mount failed"
fi
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work /work || echo "KL2TP-INIT: work mount failed"
echo "KL2TP-INIT: ready at uptime $(cut -d' ' -f1 /proc/uptime)s"
if [ -f /work/guest.sh ]; then sh /work/guest.sh >/work/guest.log 2>&1; echo $? >/work/guest.rc; fi
echo "KL2TP-INIT: done rc=$(cat /work/guest.rc 2>/dev/null) at uptime $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
INIT
  chmod 755 "$IR/init"
  (cd "$IR" && find . | "$DIR/root/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >initrd.gz.tmp
  mv initrd.gz.tmp initrd.gz
  echo "$KVER" >version
  echo "fetch-kernel: initramfs $(stat -c %s initrd.gz) bytes, modules: ${order[*]}" >&2
fi
echo "$DIR"
