#!/usr/bin/env bash
# Runs the build stage of the Dockerfile without a Docker engine: its COPY and RUN instructions, in a
# scratch directory holding what the build context would (the committed tree minus .dockerignore), then
# checks that the runtime tree it assembles (/out/app in the image) starts both entrypoints and holds a
# static CNI executable. Uses the host's Node.js and compilers instead of the base image (the packages
# its apt-get line installs must be on the host), so it proves the commands and paths, not the base image.
# It is also the one place that assembles the image's /app: the image build without Docker (image/)
# keeps the tree with --out.
#   usage: scripts/dockerfile-dry-build.sh [--out DIR] [--worktree | --commit REV] [DOCKERFILE]
#     --out DIR     keep the runtime tree (/out/app) at DIR (replaced); otherwise nothing is kept
#     --worktree    the context is the working tree (tracked and untracked files, not ignored ones)
#     --commit REV  the context is that commit's tree (default HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
keep=''; worktree=0; rev=HEAD
while [ $# -gt 0 ]; do
  case $1 in
    --out) keep=${2:?--out needs a directory}; shift 2 ;;
    --worktree) worktree=1; shift ;;
    --commit) rev=${2:?--commit needs a revision}; shift 2 ;;
    *) break ;;
  esac
done
df=${1:-Dockerfile}
# The build stage runs in one fixed directory, as Docker's WORKDIR /src does: compilers record the
# build path (clang -g in eBPF objects), so a path of its own per run would change the image's digest.
# One dry build at a time holds it.
src=${TMPDIR:-/tmp}/kli-dry-build-src
exec 9>"$src.lock"
flock 9
tmp=$(mktemp -d); trap 'rm -rf "$tmp" "$src"' EXIT
ctx=$tmp/context; out=$tmp/out
rm -rf "$src"
mkdir -p "$ctx" "$src"
# the build context: committed files (or the working tree's), without what .dockerignore excludes
if [ $worktree = 1 ]; then
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
    | tar --null -T - -cf - | tar -x -C "$ctx"
else
  git archive "$rev" | tar -x -C "$ctx"
fi
while IFS= read -r pat; do
  case $pat in ''|'#'*) continue ;; esac
  if [ "${pat#\*\*/}" != "$pat" ]; then
    find "$ctx" -depth -name "${pat#\*\*/}" -exec rm -rf {} +
  else
    rm -rf "${ctx:?}/$pat"
  fi
done < .dockerignore

# the build stage: from its FROM to the next FROM, continuation lines joined
stage=$(awk '/^FROM /{n++} n==1' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
while IFS= read -r line; do
  case $line in
    'COPY . .')
      cp -a "$ctx/." "$src/" ;;
    COPY\ *)
      # COPY a b ./  (files from the context into the workdir)
      read -r -a parts <<<"${line#COPY }"
      for f in "${parts[@]:0:${#parts[@]}-1}"; do cp -a "$ctx/$f" "$src/"; done ;;
    'RUN apt-get update'*)
      # the build stage's compilers: on the host they come from scripts/install-system-deps.sh; check
      # they are there rather than install anything here
      pkgs=${line#*--no-install-recommends }; pkgs=${pkgs%% &&*}
      for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
          || { echo "[dry-build] the build stage installs $p, which this host lacks (scripts/install-system-deps.sh)" >&2; exit 1; }
      done ;;
    RUN\ *)
      cmd=${line#RUN }
      cmd=${cmd//\/out\//$out/}
      echo "[dry-build] RUN ${line#RUN }" | cut -c1-160 >&2
      (cd "$src" && bash -o pipefail -c "$cmd") >&2 ;;
    FROM\ *|WORKDIR\ *|SHELL\ *|ARG\ *|'#'*|'') ;;
    *) echo "[dry-build] unsupported instruction in the build stage: $line" >&2; exit 1 ;;
  esac
done <<<"$stage"

app=$out/app
grep -q "COPY --from=build --chown=root:root /out/app /app" "$df" || { echo "the runtime stage no longer copies /out/app" >&2; exit 1; }
cd /
# both entries print their usage (and exit non-zero) without arguments they need
op=$(node "$app/dist/operator/main.js" mirror 2>&1 || true)
grep -q 'usage: kube-l2tp-operator mirror' <<<"$op" || { echo "operator entry does not start: $op" >&2; exit 1; }
dp=$(node "$app/dist/datapath/main.js" --help 2>&1 || true)
grep -q 'kube-l2tp-datapath agent' <<<"$dp" || { echo "datapath entry does not start: $dp" >&2; exit 1; }
file "$app/cmd/cni/shim/build/kube-l2tp" | grep -q 'statically linked' || { echo "the CNI shim is not a static executable" >&2; exit 1; }
[ -d "$app/node_modules/typescript" ] && { echo "dev dependencies were not pruned" >&2; exit 1; }
addons=$(cd "$app" && find . -path ./node_modules -prune -o -name '*.node' -print | sort | tr '\n' ' ')
for a in $addons; do
  node -e 'process.dlopen({ exports: {} }, process.argv[1])' "$app/$a" || { echo "native addon $a does not load" >&2; exit 1; }
done
echo "dry build of $df: runtime tree $(du -sh "$app" | cut -f1), native addons: $addons"
if [ -n "$keep" ]; then
  rm -rf "$keep" && mkdir -p "$(dirname "$keep")" && mv "$app" "$keep"
fi
