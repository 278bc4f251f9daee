#!/usr/bin/env bash
# Install the Lodestar consensus client that the devnet test runs (@chainsafe/lodestar 1.5.1 from
# the npm registry, pinned by tests/devnet/package-lock.json) with `npm ci`, and print the path of
# its `lodestar` CLI. Idempotent and keyed on the lockfile's hash: the install lives in
# ${SIGNWARD_CACHE_DIR:-~/.cache/signward}/lodestar-<sha256 of package-lock.json>, outside the
# work tree, so fresh clones (CI) on the same machine reuse it; a changed lockfile installs anew.
# Native modules (bcrypto, c-kzg, snappy, ...) build with node-gyp: that takes minutes once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tests/devnet"
# shellcheck source=lib/npm-cached.sh
. "$ROOT/scripts/lib/npm-cached.sh"
verify() { LODESTAR_PRESET=minimal "$1/node_modules/.bin/lodestar" --version; }
npm_cached lodestar "$SRC" node_modules/.bin/lodestar verify
echo "$NPM_CACHED_DIR/node_modules/.bin/lodestar"
