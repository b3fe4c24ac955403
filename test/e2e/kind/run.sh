#!/usr/bin/env bash
# The kind suite: kube-l2tp on a real multi-node cluster, installed the way users install it.
# NEEDS a Docker (or podman) engine and internet access for kindest/node, Multus and busybox images.
# It cannot run on the project's development and CI machines (no container engine there); the local
# lab (npm run lab, test/e2e/*.test.ts) is the suite CI runs.
#
#   bash test/e2e/kind/run.sh            # create the cluster, build + load the image, install, test
#   KEEP=1 bash test/e2e/kind/run.sh     # leave the cluster up afterwards (kind delete cluster --name kube-l2tp)
#
# Steps: kind cluster (3 workers) -> docker build of the repo's Dockerfile -> kind load -> Multus
# (thick plugin, upstream manifest) -> helm install deploy/helm/kube-l2tp -> examples (in-cluster pair,
# several pods on one bridge, exclusive mode) with their nodes filled in -> ping across each pseudowire
# -> agent pod deleted under traffic -> the shared scenarios (test/e2e/scenarios.ts) -> pseudowire
# deleted under pods -> uninstall.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CLUSTER=${CLUSTER:-kube-l2tp}
IMAGE=${IMAGE:-kube-l2tp:kind}
MULTUS=${MULTUS:-https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/v4.1.4/deployments/multus-daemonset-thick.yml}
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
step() { printf '\n=== %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "kind suite: '$1' not found. $2" >&2; exit 2; }; }

need docker "Install Docker Engine (https://docs.docker.com/engine/install/) or podman with KIND_EXPERIMENTAL_PROVIDER=podman."
docker info >/dev/null 2>&1 || { echo "kind suite: no container engine answers (docker info failed)." >&2; exit 2; }
need kind "go install sigs.k8s.io/kind@v0.29.0"
need "$KUBECTL" "https://kubernetes.io/docs/tasks/tools/"
need "$HELM" "bash scripts/build-go-tools.sh helm (then put its bin folder on PATH)"

cleanup() { [ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "kind cluster $CLUSTER (1 control plane, 3 workers)"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --config test/e2e/kind/kind-config.yaml --wait 120s
export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
$KUBECTL config use-context "kind-$CLUSTER" >/dev/null

step "image $IMAGE from the repository's Dockerfile"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "Multus"
$KUBECTL apply -f "$MULTUS"
$KUBECTL -n kube-system rollout status ds/kube-multus-ds --timeout=180s

step "helm install kube-l2tp"
$HELM upgrade --install kube-l2tp deploy/helm/kube-l2tp --namespace kube-l2tp --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never --wait
$KUBECTL -n kube-l2tp rollout status deploy/kube-l2tp-operator --timeout=120s

mapfile -t WORKERS < <($KUBECTL get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ ${#WORKERS[@]} -ge 2 ] || { echo "need two workers" >&2; exit 1; }
A=${WORKERS[0]}; B=${WORKERS[1]}
fill() { sed -e "s/node-a/$A/g" -e "s/node-b/$B/g" "$1"; }

fail=0; pass=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   - $name"; pass=$((pass + 1)); else echo "FAIL - $name"; fail=$((fail + 1)); fi
}
ready_pw() { $KUBECTL -n "$1" wait --for=condition=Ready "pseudowire/$2" --timeout=180s; }
pods_ready() { $KUBECTL -n "$1" wait --for=condition=Ready pod --all --timeout=180s; }

step "in-cluster pair ($A <-> $B)"
fill examples/in-cluster-pair.yaml | $KUBECTL apply -f -
check "pseudowire red-wire Ready" ready_pw l2tp-demo red-wire
check "pods Ready" pods_ready l2tp-demo
check "pod-a pings pod-b across the pseudowire" $KUBECTL -n l2tp-demo exec pod-a -- ping -c 3 -W 2 10.10.0.2
$KUBECTL get l2tptunnels,pseudowires,l2tpnodestates -A

step "agent pod deleted under traffic"
$KUBECTL -n l2tp-demo exec pod-a -- ping -q -i 0.05 -w 20 10.10.0.2 > /tmp/kube-l2tp-kind-ping.txt 2>&1 &
PING=$!
sleep 3
$KUBECTL -n kube-l2tp delete pod -l app.kubernetes.io/component=datapath --field-selector "spec.nodeName=$A" --wait=false
wait $PING || true
cat /tmp/kube-l2tp-kind-ping.txt
check "link back after the agent restart" $KUBECTL -n l2tp-demo exec pod-a -- ping -c 3 -W 2 10.10.0.2

step "several pods on one bridge"
fill examples/bridge-several-pods.yaml | $KUBECTL apply -f -
check "bridge example pods Ready" pods_ready "$(fill examples/bridge-several-pods.yaml | sed -n 's/^  namespace: //p' | head -1)"

step "exclusive mode"
fill examples/exclusive.yaml | $KUBECTL apply -f -
check "exclusive example pods Ready" pods_ready "$(fill examples/exclusive.yaml | sed -n 's/^  namespace: //p' | head -1)"

step "the shared scenarios (test/e2e/scenarios.ts, the code the real-node suite runs)"
[ -f dist/test/e2e/kind/scenarios.js ] || npx tsc -p tsconfig.json
check "shared scenarios" node dist/test/e2e/kind/scenarios.js "$A" "$B"

step "pseudowire deleted under pods"
$KUBECTL -n l2tp-demo delete pseudowire red-wire --timeout=180s
check "node states no longer carry red-wire" bash -c "! $KUBECTL get l2tpnodestates -o yaml | grep -q 'name: red-wire'"

step "uninstall"
$KUBECTL delete -f <(fill examples/exclusive.yaml) --ignore-not-found --wait=false || true
$KUBECTL delete -f <(fill examples/bridge-several-pods.yaml) --ignore-not-found --wait=false || true
$KUBECTL delete -f <(fill examples/in-cluster-pair.yaml) --ignore-not-found --timeout=180s || true
$HELM uninstall kube-l2tp --namespace kube-l2tp --wait
echo
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
