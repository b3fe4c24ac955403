#!/usr/bin/env bash
# Proves that the image built without Docker (image/, npm run image) holds what the Dockerfile's image
# holds: runs the Dockerfile's build stage without Docker (scripts/dockerfile-dry-build.sh --out),
# builds the OCI image from that tree, and compares /app file by file with it, and the image's
# entrypoint, user, env, workdir, labels and wrapper scripts with the Dockerfile's runtime stage.
# Expects a compiled tree (dist/image).
#   usage: scripts/check-image.sh [DOCKERFILE]
set -euo pipefail
cd "$(dirname "$0")/.."
df=$(realpath "${1:-Dockerfile}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kli-check-image-XXXXXX"); trap 'rm -rf "$tmp"' EXIT
if ! bash scripts/dockerfile-dry-build.sh --out "$tmp/app" --worktree "$df" >"$tmp/dry.log" 2>&1; then
  tail -30 "$tmp/dry.log" >&2; exit 1
fi
if ! line=$(node dist/image/main.js build kube-l2tp --app-tree "$tmp/app" --out "$tmp/out" 2>"$tmp/build.log"); then
  tail -30 "$tmp/build.log" >&2; exit 1
fi
echo "image without Docker: $line"
node dist/image/main.js check-dockerfile --dockerfile "$df" --archive "$(awk '{print $3}' <<<"$line")" --app-tree "$tmp/app"
