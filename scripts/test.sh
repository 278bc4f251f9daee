#!/usr/bin/env bash
# The whole test suite: Rust unit, vector and end-to-end tests, with the Python cross-checks
# (py_ecc, remerkleable, ethstaker-deposit), the age CLI and the PostgreSQL tests required, not skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SIGNWARD_TEST_PYTHON="$(scripts/setup-test-env.sh)"
export SIGNWARD_TEST_PYTHON
export SIGNWARD_REQUIRE_PY=1
scripts/ensure-age.sh
SIGNWARD_TEST_PG_URL="$(scripts/ensure-postgres.sh)"
export SIGNWARD_TEST_PG_URL
export SIGNWARD_REQUIRE_PG=1
cargo test --workspace --locked "$@"
