#!/usr/bin/env bash
# Coverage-guided fuzzing of the C that reads untrusted bytes: libFuzzer (clang -fsanitize=fuzzer)
# with AddressSanitizer and UndefinedBehaviorSanitizer, one binary per target in test/fuzz/native/.
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--keep DIR]
#
# Each target runs for N seconds (default 60) from a few generated seeds; the corpus goes to a temp
# dir (or --keep DIR, kept for the next run). Prints one line per target: executions, coverage
# (edges, features), corpus size, crashes; exits 1 when any target crashed, leaked, timed out or
# failed an assertion. Reproducers are kept under build/fuzz/artifacts/<target>/ and replay with
# `build/fuzz/<target> <file>`. Needs clang with libFuzzer (scripts/install-system-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=60
TARGETS=()
KEEP=
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--target NAME]... [--keep DIR]" >&2; exit 2 ;;
  esac
done
ALL=(wire-rx offload-tx netlink-reply cni-shim)
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

CC=${FUZZ_CC:-clang}
FLAGS=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Idatapath/native/src -Ilib/netlink/native -Icmd/cni/shim -Itest/fuzz/native)
sources() {
  case "$1" in
    wire-rx) echo datapath/native/src/wire.c datapath/native/src/offload.c ;;
    offload-tx) echo datapath/native/src/offload.c ;;
    netlink-reply) echo ;;
    cni-shim) echo cmd/cni/shim/config.c ;;
    planted) echo ;; # the check's own test: must crash
    *) echo "fuzz: unknown target $1 (have: ${ALL[*]})" >&2; exit 2 ;;
  esac
}

# Seeds: inputs that reach past the first checks (see each target's input layout).
seed() {
  local dir=$1 t=$2
  case "$t" in
    wire-rx)
      # UDP, no cookies, default sublayer; three in-order 100-byte TCP/IPv4 frames (merge), then garbage
      { printf '\x41'; printf '\0%.0s' {1..16}
        for _ in 1 2 3; do printf '\x03\x00\x64'; printf 'A%.0s' {1..100}; done
        printf '\x00\x00\x10garbage-garbage!'; } > "$dir/merge-v4"
      # IP encap with the IPv4 header, 8-byte cookies, sequencing; TCP/IPv6 frames
      { printf '\xee'; printf '\x21%.0s' {1..8}; printf '\0\0\0\0\0\0\0\0'
        for _ in 1 2; do printf '\x07\x01\x00'; printf 'B%.0s' {1..256}; done; } > "$dir/ip-seq-v6"
      ;;
    offload-tx)
      { printf '\x01\x10\x00'; printf 'C%.0s' {1..4096}; printf '\0\0\0\0\x02\x00'; } > "$dir/tso-v4"
      { printf '\x03\x08\x00'; printf 'D%.0s' {1..2048}; printf '\0\0\0\1\x05\x00'; } > "$dir/tso-v6"
      ;;
    netlink-reply)
      # seq 7: an ACK (NLMSG_ERROR, error 0) after a message of another request
      printf '\0\0\0\x07\x14\0\0\0\x10\0\0\0\x01\0\0\0\0\0\0\0\x24\0\0\0\x02\0\0\0\x07\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' > "$dir/ack"
      ;;
    planted) printf 'BUG' > "$dir/bug" ;;
    cni-shim)
      # ADD with every variable set; a config with the keys the shim reads, one nested, escapes
      printf '\x0f{"cniVersion":"1.1.0","name":"red","type":"kube-l2tp","agentSocket":"/run/kube-l2tp/a.sock","x":{"agentSocket":"/tmp/x"},"s":"\\u00e9\\n"}' > "$dir/conf"
      printf '\x5f{"cniVersion":"0.4.0","agentSocket":"/run/kube-l2tp/../x","list":[1,2.5e3,true,null,{}]}' > "$dir/dotdot"
      ;;
  esac
}

mkdir -p build/fuzz
WORK=${KEEP:-$(mktemp -d)}
[ -n "$KEEP" ] || trap 'rm -rf "$WORK"' EXIT
failed=0
printf '%-14s %10s %8s %8s %10s %8s  %s\n' target executions edges features corpus crashes result
for t in "${TARGETS[@]}"; do
  src=$(sources "$t")
  # shellcheck disable=SC2086
  "$CC" "${FLAGS[@]}" "test/fuzz/native/$t.c" $src -o "build/fuzz/$t"
  corpus=$WORK/$t/corpus art=$WORK/$t/artifacts
  mkdir -p "$corpus" "$art"
  seed "$corpus" "$t"
  log=$WORK/$t.log
  rc=0
  "build/fuzz/$t" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "$corpus" > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")
  crashes=$(find "$art" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-14s %10s %8s %8s %10s %8s  %s\n' "$t" "${execs:-0}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes" "$result"
  if [ "$result" != ok ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Assertion|==[0-9]+==' "$log" | head -20 >&2 || true
    if [ -z "$KEEP" ]; then # the temp dir goes: keep the reproducers
      mkdir -p "build/fuzz/artifacts/$t" && cp -r "$art"/. "build/fuzz/artifacts/$t/" 2>/dev/null || true
      art=build/fuzz/artifacts/$t
    fi
    find "$art" -type f -exec echo "  reproducer: build/fuzz/$t {}" \; >&2
  fi
done
exit $failed
