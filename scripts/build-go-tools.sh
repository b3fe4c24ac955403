#!/usr/bin/env bash
# Builds the real components the tests use from Go modules into a versioned cache outside the
# repository: kube-apiserver, kubectl, etcd, helm, cnitool; for real nodes (the lab and the e2e suite)
# kubelet, kube-controller-manager, kube-scheduler, kube-proxy; Multus (thin plugin and its
# entrypoint, baked into a local image by scripts/build-images.sh). Idempotent: a tool already built at its
# pinned version is not rebuilt. Prints the cache's bin folder on the last line.
#   usage: scripts/build-go-tools.sh [tool ...]     (default: all; groups: api nodes multus)
set -euo pipefail
K8S=1.34.3; K8S_MINOR=34; K8S_STAGING=0.34.3
ETCD=3.5.24
HELM=3.21.4
CNI=1.3.0
MULTUS=4.2.3
CACHE=${KUBE_L2TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-l2tp}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/src"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
log() { echo "[build-go-tools] $*" >&2; }

# stamp file per tool+version so a version bump rebuilds
have() { [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.version" ] && [ "$(cat "$BIN/.$1.version")" = "$2" ]; }
mark() { echo "$2" > "$BIN/.$1.version"; }

K8S_CONTROL=(kube-apiserver kubectl)
K8S_NODES=(kubelet kube-controller-manager kube-scheduler kube-proxy)
# build_k8s CMD...: the Kubernetes commands from one scratch module (k8s.io/kubernetes with its staging
# modules replaced by their published versions)
build_k8s() {
  local c todo=()
  for c in "$@"; do have "$c" "$K8S" || todo+=("$c"); done
  [ ${#todo[@]} -gt 0 ] || return 0
  local d=$CACHE/src/k8s-$K8S
  mkdir -p "$d"; cd "$d"
  if [ ! -f go.mod ]; then
    log "k8s $K8S: preparing scratch module"
    go mod init local.test/k8sbins >/dev/null 2>&1
    go mod edit -go=1.24.0
    local mod
    mod=$(go mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    for m in $(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) v0\.0\.0$|\1|p' "$mod"); do
      go mod edit "-replace=$m=$m@v$K8S_STAGING"
    done
    go get "k8s.io/kubernetes@v$K8S" >/dev/null 2>&1
  fi
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean"
  done
  for c in "${todo[@]}"; do
    log "k8s $K8S: building $c (minutes when cold)"
    go build -trimpath -ldflags "$ldf" -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c"
    mark "$c" "$K8S"
  done
}

build_etcd() {
  have etcd "$ETCD" && return
  local d=$CACHE/src/etcd-$ETCD
  mkdir -p "$d"; cd "$d"
  if [ ! -f go.mod ]; then
    go mod init local.test/etcdbin >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v$ETCD" >/dev/null 2>&1
  fi
  log "etcd $ETCD: building"
  go build -trimpath -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  mark etcd "$ETCD"
}

build_helm() {
  have helm "$HELM" && return
  log "helm $HELM: building"
  GOBIN=$BIN go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM" "helm.sh/helm/v3/cmd/helm@v$HELM"
  mark helm "$HELM"
}

build_cnitool() {
  have cnitool "$CNI" && return
  log "cnitool $CNI: building"
  GOBIN=$BIN go install -trimpath "github.com/containernetworking/cni/cnitool@v$CNI"
  mark cnitool "$CNI"
}

# The proxy refuses the version list of every Multus module path (go install @version asks for it), so
# the thin plugin and its entrypoint build from a scratch module that requires the exact version.
build_multus() {
  have multus "$MULTUS" && have multus-thin-entrypoint "$MULTUS" && have multus-install "$MULTUS" && have multus-passthru "$MULTUS" && return
  local d=$CACHE/src/multus-$MULTUS m=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
  mkdir -p "$d"; cd "$d"
  if [ ! -f go.mod ]; then
    go mod init local.test/multusbin >/dev/null 2>&1
    go mod edit "-require=$m@v$MULTUS"
  fi
  log "multus $MULTUS: building the thin plugin, its entrypoint, its installer and passthru"
  local ldf="-s -w -X $m/pkg/multus.version=v$MULTUS"
  go build -trimpath -ldflags "$ldf" -o "$BIN/multus" "$m/cmd/multus"
  mark multus "$MULTUS"
  go build -trimpath -ldflags "$ldf" -o "$BIN/multus-thin-entrypoint" "$m/cmd/thin_entrypoint"
  mark multus-thin-entrypoint "$MULTUS"
  go build -trimpath -ldflags "$ldf" -o "$BIN/multus-install" "$m/cmd/install_multus"
  mark multus-install "$MULTUS"
  # the installer copies the passthru plugin beside multus, as upstream's image holds it
  go build -trimpath -ldflags "$ldf" -o "$BIN/multus-passthru" "$m/cmd/passthru-cni"
  mark multus-passthru "$MULTUS"
}

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(etcd api cnitool helm nodes multus)
for t in "${tools[@]}"; do
  case $t in
    etcd) build_etcd ;; helm) build_helm ;; cnitool) build_cnitool ;; multus) build_multus ;;
    api|k8s) build_k8s "${K8S_CONTROL[@]}" ;;
    nodes) build_k8s "${K8S_NODES[@]}" ;;
    kube-*|kubectl|kubelet) build_k8s "$t" ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
echo "$BIN"
