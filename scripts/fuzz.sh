#!/usr/bin/env bash
# Coverage-guided fuzzing of every signward parser that reads outside bytes (cargo-fuzz and
# libFuzzer; the crate is fuzz/, see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs the pinned cargo-fuzz when `cargo fuzz --version` reports another version (or none),
# builds every target once, then runs each target (all of them, or those named) for SECONDS
# (default 20) with fuzz/seeds/<target> as a read-only seed corpus and fuzz/corpus/<target> as the
# scratch corpus (git-ignored). Prints, per target, executions, execs/s and coverage from
# libFuzzer's final stats, and exits non-zero if any target crashed (a panic, an overflow, an
# out-of-memory, or an input slower than FUZZ_TIMEOUT seconds), printing the artifact path.
#
# The toolchain is stable Rust: cargo-fuzz's nightly flags (-Zsanitizer, -Cpasses=sancov-module)
# are allowed by RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER picks the sanitizer (default: address).
set -euo pipefail

SECS="${1:-20}"
shift || true
CARGO_FUZZ_VERSION="0.13.2"
SANITIZER="${FUZZ_SANITIZER:-address}"
TIMEOUT="${FUZZ_TIMEOUT:-5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1
# As `cargo fuzz run` does: the bundled SQLite (linked in through signward-db) trips ASan's
# one-definition-rule check at start-up, which is not a finding.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

case "$SECS" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

cd "$FUZZ"
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi

# Build every target once (release, debug assertions and overflow checks on).
start=$SECONDS
cargo fuzz build --sanitizer "$SANITIZER" --debug-assertions
echo "built ${#TARGETS[@]} targets in $((SECONDS - start)) s" >&2

HOST="$(rustc -vV | sed -n 's/^host: //p')"
BIN="$FUZZ/target/$HOST/release"
LOGS="$FUZZ/target/fuzz-logs"
mkdir -p "$LOGS"

max_len() {
  case "$1" in
    keystore_eip2335 | keyfile_v3 | interchange) echo 262144 ;;
    *) echo 65536 ;;
  esac
}

# The value of `name:` in libFuzzer's last status line (`#N DONE cov: C ft: F ...`).
status_field() {
  grep -E '^#[0-9]+' "$2" | grep -F " $1: " | tail -n 1 |
    sed -E "s/.* $1: ([0-9]+).*/\\1/" || true
}
stat_field() {
  sed -n -E "s/^stat::$1: *([0-9]+).*/\\1/p" "$2" | tail -n 1
}

failed=()
printf '%-18s %8s %12s %10s %8s %8s  %s\n' target seconds executions execs/s cov ft result
for t in "${TARGETS[@]}"; do
  seeds="$FUZZ/seeds/$t"
  corpus="$FUZZ/corpus/$t"
  artifacts="$FUZZ/artifacts/$t"
  log="$LOGS/$t.log"
  mkdir -p "$corpus" "$artifacts"
  [ -d "$seeds" ] || seeds=""
  set +e
  "$BIN/$t" "$corpus" ${seeds:+"$seeds"} \
    -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(stat_field number_of_executed_units "$log")"
  rate="$(stat_field average_exec_per_sec "$log")"
  cov="$(status_field cov "$log")"
  ft="$(status_field ft "$log")"
  artifact="$(sed -n -E 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)"
  if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
    result=ok
  else
    result="CRASH (exit $rc)"
    failed+=("$t")
  fi
  printf '%-18s %8s %12s %10s %8s %8s  %s\n' "$t" "$SECS" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$result"
  if [ "$result" != ok ]; then
    echo "  artifact: ${artifact:-none written}; log: $log" >&2
    grep -E -m 5 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/  /' >&2 || true
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "no crashes in ${#TARGETS[@]} targets (${SECS} s each)"
