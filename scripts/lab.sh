#!/usr/bin/env bash
# The README's main job: the local lab. Installs what it needs (idempotent, cached), builds, runs.
#   usage: npm run lab [-- --nodes N --encap UDP|IP --cookies --mode Bridge|Exclusive --keep --verbose]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the lab needs root (network namespaces, TAP devices, bridges): sudo npm run lab" >&2
  exit 2
fi
bash scripts/install-system-deps.sh
KUBE_L2TP_BIN=$(bash scripts/build-go-tools.sh | tail -1); export KUBE_L2TP_BIN
[ -d node_modules ] || npm ci --no-fund --no-audit
bash scripts/build-native.sh
npx tsc -p tsconfig.json
exec node dist/test/e2e/lab-main.js "$@"
