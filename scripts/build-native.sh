#!/usr/bin/env bash
# Compiles the native parts at install time (npm's "install" hook, also callable by hand):
#   datapath/native  the N-API packet pump, by node-gyp against the installed Node headers
#   lib/netlink/native  the N-API netlink socket (kernel backend), the same way
#   lib/spawn/native    the N-API posix_spawn runner (CNI IPAM delegates), the same way
#   datapath/backend/ebpf  the tc programs (clang -target bpf into build/*.bpf.o), the light skeleton
#                    bpftool generates from them, and the N-API loader that embeds it (node-gyp)
#   cmd/cni/shim     the CNI executable (plain C, no Node at run time)
# node-gyp cannot download headers on machines without internet: point it at the prefix of the
# running node, whose include/node holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
# npm ci runs this before anything else of the project: on a fresh machine the compilers come first
if [ "$(id -u)" = 0 ]; then
  for tool in make g++ clang bpftool; do
    command -v "$tool" >/dev/null || { bash scripts/install-system-deps.sh; break; }
  done
fi
NODEDIR=${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}
if [ ! -f "$NODEDIR/include/node/node_api.h" ]; then
  echo "build-native: no Node headers under $NODEDIR/include/node (install nodejs headers, e.g. Debian's libnode-dev, or set npm_config_nodedir)" >&2
  exit 1
fi
GYP=$PWD/node_modules/.bin/node-gyp
[ -x "$GYP" ] || GYP="node ${npm_config_node_gyp:?node-gyp not found}"
if [ -f datapath/native/binding.gyp ]; then
  (cd datapath/native && $GYP rebuild --nodedir="$NODEDIR" --loglevel=warn)
fi
for addon in lib/netlink/native lib/spawn/native; do
  if [ -f $addon/binding.gyp ]; then
    (cd $addon && $GYP rebuild --nodedir="$NODEDIR" --loglevel=warn)
  fi
done
if [ -f datapath/backend/ebpf/bpf/l2tp.bpf.c ]; then
  (cd datapath/backend/ebpf && mkdir -p build \
    && clang -O2 -g -Wall -target bpf -mcpu=v3 -I"/usr/include/$(gcc -print-multiarch)" \
         -c bpf/l2tp.bpf.c -o build/l2tp.bpf.o \
    && bpftool gen skeleton -L build/l2tp.bpf.o name l2tp_bpf > build/l2tp.lskel.h \
    && cd native && $GYP rebuild --nodedir="$NODEDIR" --loglevel=warn)
fi
if [ -f cmd/cni/shim/Makefile ]; then
  make -s -C cmd/cni/shim
fi
