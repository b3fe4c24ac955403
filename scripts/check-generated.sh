#!/usr/bin/env bash
# Fails (with a diff) when crds/ or deploy/rbac/ are stale with respect to lib/api, the CNI shim's
# version list with respect to lib/cni/versions.ts, or deploy/seccomp/ with respect to
# datapath/seccomp/profile.ts (run after tsc).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
node dist/scripts/gen-crds.js "$tmp/crds" "$tmp/rbac" >/dev/null
rc=0
diff -ru crds "$tmp/crds" || rc=1
diff -ru deploy/rbac "$tmp/rbac" || rc=1
node dist/scripts/gen-shim-versions.js "$tmp/versions.h" >/dev/null
diff -u cmd/cni/shim/versions.h "$tmp/versions.h" || rc=1
node dist/scripts/gen-seccomp.js "$tmp/seccomp" >/dev/null
diff -ru deploy/seccomp "$tmp/seccomp" || rc=1
if [ $rc != 0 ]; then
  echo "generated files are stale: run 'npx tsc -p tsconfig.json && node dist/scripts/gen-crds.js && node dist/scripts/gen-shim-versions.js && node dist/scripts/gen-seccomp.js' and commit" >&2
  exit 1
fi
echo "crds/, deploy/rbac/, deploy/seccomp/ and the shim's versions.h are up to date"
