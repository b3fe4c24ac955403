#!/usr/bin/env bash
# The README's main job: the lab on a real cluster. Installs what it needs (idempotent, cached: Debian
# packages, the Kubernetes components and Multus from Go modules, the images), builds, runs.
#   usage: npm run lab [-- --nodes N --encap UDP|IP --cookies --mode Bridge|Exclusive --keep --verbose]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the lab runs real nodes in network and mount namespaces: sudo npm run lab" >&2
  exit 2
fi
KUBE_L2TP_LAB_T0=$(date +%s%3N); export KUBE_L2TP_LAB_T0
step() { printf '[%6.1fs] %s\n' "$(( $(date +%s%3N) - KUBE_L2TP_LAB_T0 ))e-3" "$*"; }
step "system packages"
bash scripts/install-system-deps.sh
step "Kubernetes components, helm and Multus from Go modules (cached; minutes when cold)"
KUBE_L2TP_BIN=$(bash scripts/build-go-tools.sh | tail -1); export KUBE_L2TP_BIN
step "build: Node packages, native parts, TypeScript"
[ -d node_modules ] || npm ci --no-fund --no-audit
bash scripts/build-native.sh
npx tsc -p tsconfig.json
step "images: kube-l2tp, pause, tools, multus (no Docker engine, no registry; cached by content)"
KUBE_L2TP_IMAGES=$(mktemp); export KUBE_L2TP_IMAGES
trap 'rm -f "$KUBE_L2TP_IMAGES"' EXIT
bash scripts/build-images.sh | grep -E '^[^ ]+ /[^ ]+$' > "$KUBE_L2TP_IMAGES"
sed 's/^/           /' "$KUBE_L2TP_IMAGES"
node dist/test/e2e/lab-main.js "$@"
