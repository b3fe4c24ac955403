#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, builds, checks and runs every
# suite, and closes with one line "N passed, N failed, N skipped".
#   usage: npm test [-- SUITE ...]   SUITE: check unit integration vm e2e (default: all)
# Suites that need root (network namespaces, TAP, QEMU) say so and fail when not root.
set -uo pipefail
cd "$(dirname "$0")/.."
suites=("$@"); [ ${#suites[@]} -gt 0 ] || suites=(check unit integration vm e2e)
want() { local s; for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
step() { printf '\n=== %s\n' "$*"; }

set -e
if [ "$(id -u)" = 0 ]; then
  step "system packages"; bash scripts/install-system-deps.sh
fi
if want integration || want e2e || want vm || want check; then
  step "real components from Go modules (cached)"
  KUBE_L2TP_BIN=$(bash scripts/build-go-tools.sh | tail -1); export KUBE_L2TP_BIN
  echo "tools in the cache: $(ls "$KUBE_L2TP_BIN" | tr '\n' ' ')"
fi
if want vm || want e2e; then
  step "Debian kernel for the VM tests and the e2e kernel node (cached)"
  KUBE_L2TP_KERNEL_DIR=$(bash scripts/fetch-kernel.sh | tail -1); export KUBE_L2TP_KERNEL_DIR
fi
step "build"
[ -d node_modules ] || npm ci --no-fund --no-audit
bash scripts/build-native.sh
npx tsc -p tsconfig.json
if want e2e; then
  step "images for the real-cluster suite: kube-l2tp, pause, tools, multus (cached by content)"
  KUBE_L2TP_IMAGES=$(mktemp); export KUBE_L2TP_IMAGES
  trap 'rm -f "$KUBE_L2TP_IMAGES"' EXIT
  bash scripts/build-images.sh | grep -E '^[^ ]+ /[^ ]+$' > "$KUBE_L2TP_IMAGES"
  cat "$KUBE_L2TP_IMAGES"
fi
set +e

failed_checks=0
if want check; then
  step "checks: lint, format, generated files"
  npx eslint . || failed_checks=$((failed_checks + 1))
  npx prettier --check . >/dev/null || { npx prettier --check . | tail -5; failed_checks=$((failed_checks + 1)); }
  for gen in scripts/check-generated.sh scripts/check-manifest.sh scripts/check-dockerfile.sh scripts/check-image.sh; do
    [ -f "$gen" ] && { bash "$gen" || failed_checks=$((failed_checks + 1)); }
  done
fi

files_for() {
  case $1 in
    unit) find dist/lib dist/cmd dist/operator dist/datapath dist/image dist/bench dist/test/fuzz dist/test/docs -name '*.test.js' 2>/dev/null | sort ;;
    *) find "dist/test/$1" -name '*.test.js' 2>/dev/null | sort ;;
  esac
}
summary=$(mktemp)
pass=0; fail=0; skip=0
# node --test over files, CONC at a time; adds its counts to pass, fail and skip
run_files() {
  local conc=$1; shift
  node --test --test-concurrency="$conc" --test-reporter=spec "$@" 2>&1 | tee "$summary"
  local rc=${PIPESTATUS[0]} p f c k
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$summary" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$summary" | tail -1)
  c=$(sed -n 's/^ℹ cancelled \([0-9]*\)$/\1/p' "$summary" | tail -1)
  k=$(sed -n 's/^ℹ skipped \([0-9]*\)$/\1/p' "$summary" | tail -1)
  # a test cancelled because its suite's setup failed did not pass: count it as failed
  f=$(( ${f:-0} + ${c:-0} ))
  # the runner failed (a hook, a file that did not load) without counting a failed test
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${k:-0}))
}
for s in unit integration vm e2e; do
  want "$s" || continue
  mapfile -t files < <(files_for "$s")
  [ ${#files[@]} -gt 0 ] || { step "suite $s: no tests"; continue; }
  step "suite $s (${#files[@]} files)"
  case $s in
    unit) run_files 2 "${files[@]}" ;;
    # each real cluster has its own namespaces, addresses and processes, and mostly waits: two at a
    # time; the zz- files check what all the others left, so they run last, alone
    e2e)
      mapfile -t last < <(printf '%s\n' "${files[@]}" | grep '/zz-')
      mapfile -t first < <(printf '%s\n' "${files[@]}" | grep -v '/zz-')
      [ ${#first[@]} -eq 0 ] || run_files 2 "${first[@]}"
      [ ${#last[@]} -eq 0 ] || run_files 1 "${last[@]}"
      ;;
    # the integration and VM tests share the host's namespaces and measure timing: one at a time
    *) run_files 1 "${files[@]}" ;;
  esac
done
rm -f "$summary"
fail=$((fail + failed_checks))
echo
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
