#!/usr/bin/env bash
# Fails (with a diff) when crds/ or deploy/rbac/ are stale with respect to lib/api (run after tsc).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
node dist/scripts/gen-crds.js "$tmp/crds" "$tmp/rbac" >/dev/null
rc=0
diff -ru crds "$tmp/crds" || rc=1
diff -ru deploy/rbac "$tmp/rbac" || rc=1
if [ $rc != 0 ]; then
  echo "generated files are stale: run 'npx tsc -p tsconfig.json && node dist/scripts/gen-crds.js' and commit" >&2
  exit 1
fi
echo "crds/ and deploy/rbac/ are up to date"
