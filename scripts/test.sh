#!/usr/bin/env bash
# The whole test suite: Rust unit, vector and end-to-end tests, with the Python cross-checks
# (py_ecc, remerkleable, ethstaker-deposit), the age CLI and the PostgreSQL tests required, not skipped,
# then the devnet test: real Lodestar 1.5.1 validator clients signing a live chain through signward,
# once with the keys held whole and once through a 2-of-3 signing group (scripts/devnet-test.sh;
# SIGNWARD_SKIP_DEVNET=1 skips both outside CI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SIGNWARD_TEST_PYTHON="$(scripts/setup-test-env.sh)"
export SIGNWARD_TEST_PYTHON
export SIGNWARD_REQUIRE_PY=1
scripts/ensure-age.sh
# systemd-analyze verifies the shipped unit (Debian package systemd).
if ! command -v systemd-analyze >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >&2; }
fi
SIGNWARD_TEST_PG_URL="$(scripts/ensure-postgres.sh)"
export SIGNWARD_TEST_PG_URL
export SIGNWARD_REQUIRE_PG=1
# Lodestar 1.5.1 for the devnet test (npm ci into a cache keyed on the lockfile's hash).
if [ "${SIGNWARD_SKIP_DEVNET:-}" != 1 ] || [ -n "${CI:-}" ]; then
  scripts/ensure-lodestar.sh >/dev/null
fi
cargo test --workspace --locked "$@"
SIGNWARD_BIN="$ROOT/target/debug/signward" scripts/devnet-test.sh
# The same devnet through a 2-of-3 threshold signing group (docs/threshold.md).
SIGNWARD_BIN="$ROOT/target/debug/signward" SIGNWARD_DEVNET_GROUP=1 scripts/devnet-test.sh
