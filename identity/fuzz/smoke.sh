#!/usr/bin/env bash
# Bounded fuzz smoke run of every identity fuzz target: each one starts from
# the committed seeds (identity/fuzz/seeds/<target>) in a scratch corpus and
# runs for a fixed number of executions or seconds, whichever comes first.
# Exits non-zero on the first crash, panic, timeout or leak (the input is
# kept in identity/fuzz/artifacts/<target>/).
#
#   bash identity/fuzz/smoke.sh            # defaults: RUNS=50000 SECONDS_PER_TARGET=20
#   RUNS=-1 SECONDS_PER_TARGET=600 bash identity/fuzz/smoke.sh   # a longer session
#   bash identity/fuzz/smoke.sh jws_verify  # one target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes
# nightly-only compiler flags (sanitizer, coverage instrumentation); with only
# a stable toolchain they are enabled with RUSTC_BOOTSTRAP=1, as below.
set -euo pipefail
cd "$(dirname "$0")/.."   # the identity crate: cargo fuzz finds ./fuzz

RUNS="${RUNS:-50000}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-20}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(did_parse credential_verify presentation_verify jws_verify)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build   # all targets, in release with debug assertions and ASan
for t in "${TARGETS[@]}"; do
  dict=()
  case "$t" in
    credential_verify|presentation_verify) dict=(-dict=fuzz/json.dict) ;;
  esac
  mkdir -p "$scratch/$t"
  start=$(date +%s)
  echo "== $t: up to $RUNS runs / ${SECONDS_PER_TARGET}s"
  cargo fuzz run "$t" "$scratch/$t" "fuzz/seeds/$t" -- \
    -runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 "${dict[@]}" 2>"$scratch/$t.log" \
    || { tail -n 60 "$scratch/$t.log" >&2; echo "FAIL $t" >&2; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "$scratch/$t.log" || true
  echo "ok $t ($(( $(date +%s) - start ))s)"
done
echo "fuzz smoke: ${#TARGETS[@]} targets, no crash"
