#!/usr/bin/env bash
# Builds the images of the real-node cluster as OCI archives, cached in $CACHE/images by the content
# of their inputs (a warm run only hashes): kube-l2tp (the product, from the working tree), pause (the
# sandbox image), tools (busybox + iperf3 for test pods) and multus (the thin plugin, built from its Go
# module by scripts/build-go-tools.sh). Expects a compiled tree (npm run build). Progress goes to
# stderr; the last lines on stdout are "NAME ARCHIVE", one per image, for the harness to import with
# `ctr -n k8s.io images import ARCHIVE`.
#   usage: scripts/build-images.sh [IMAGE ...]     (default: kube-l2tp pause tools multus)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${KUBE_L2TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-l2tp}
images=("$@"); [ ${#images[@]} -gt 0 ] || images=(kube-l2tp pause tools multus)
[ -f dist/image/main.js ] || { echo "build-images: dist/image/main.js missing: npm run build first" >&2; exit 1; }
for i in "${images[@]}"; do
  if [ "$i" = multus ]; then bash scripts/build-go-tools.sh multus >/dev/null; fi
done
out=$(node dist/image/main.js build "${images[@]}" --out "$CACHE/images")
echo "$out" >&2
echo "$out" | awk '{print $1, $3}'
