#!/usr/bin/env bash
# Fails (with a diff) when the chart's generated parts (crds/ copies, files/rbac.yaml) or the rendered
# single-file manifests deploy/kube-l2tp.yaml and deploy/kube-l2tp-uninstall.yaml are stale. Run after tsc (the test script's check stage).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r deploy/helm/kube-l2tp "$tmp/chart"
bash scripts/render-manifest.sh "$tmp/chart" "$tmp/kube-l2tp.yaml" >/dev/null
rc=0
diff -ru deploy/helm/kube-l2tp "$tmp/chart" || rc=1
diff -u deploy/kube-l2tp.yaml "$tmp/kube-l2tp.yaml" || rc=1
diff -u deploy/kube-l2tp-uninstall.yaml "$tmp/kube-l2tp-uninstall.yaml" || rc=1
if [ $rc != 0 ]; then
  echo "the chart's generated files or deploy/kube-l2tp.yaml are stale: run" >&2
  echo "  npx tsc -p tsconfig.json && bash scripts/render-manifest.sh   and commit the result" >&2
  exit 1
fi
echo "deploy/helm/kube-l2tp (generated parts) and deploy/kube-l2tp.yaml are up to date"
