#!/usr/bin/env bash
# Builds the real components the tests use (kube-apiserver, kubectl, etcd, helm, cnitool) from Go
# modules into a versioned cache outside the repository. Idempotent: a tool already built at its
# pinned version is not rebuilt. Prints the cache's bin folder on the last line.
#   usage: scripts/build-go-tools.sh [tool ...]     (default: all)
set -euo pipefail
K8S=1.34.3; K8S_MINOR=34; K8S_STAGING=0.34.3
ETCD=3.5.24
HELM=3.21.4
CNI=1.3.0
CACHE=${KUBE_L2TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-l2tp}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/src"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
log() { echo "[build-go-tools] $*" >&2; }

# stamp file per tool+version so a version bump rebuilds
have() { [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.version" ] && [ "$(cat "$BIN/.$1.version")" = "$2" ]; }
mark() { echo "$2" > "$BIN/.$1.version"; }

build_k8s() {
  if have kube-apiserver "$K8S" && have kubectl "$K8S"; then return; fi
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
  log "k8s $K8S: building kube-apiserver and kubectl (several minutes when cold)"
  go build -trimpath -ldflags "$ldf" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  mark kube-apiserver "$K8S"
  go build -trimpath -ldflags "$ldf" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
  mark kubectl "$K8S"
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

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(etcd k8s cnitool helm)
for t in "${tools[@]}"; do
  case $t in
    etcd) build_etcd ;; k8s|kube-apiserver|kubectl) build_k8s ;; helm) build_helm ;; cnitool) build_cnitool ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
echo "$BIN"
