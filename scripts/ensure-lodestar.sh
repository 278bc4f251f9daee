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
if ! command -v npm >/dev/null; then
  # The machines ship Node 20 and npm; Debian's packages are the fallback.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  else
    echo "ensure-lodestar: npm is not installed" >&2
    exit 1
  fi
fi
want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
DIR="${SIGNWARD_CACHE_DIR:-$HOME/.cache/signward}/lodestar-$want"
BIN="$DIR/node_modules/.bin/lodestar"
if [ ! -f "$DIR/.installed" ] || [ ! -x "$BIN" ]; then
  echo "installing Lodestar 1.5.1 into $DIR (npm ci)" >&2
  rm -rf "$DIR"
  mkdir -p "$DIR"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  LODESTAR_PRESET=minimal "$BIN" --version >&2
  touch "$DIR/.installed"
fi
echo "$BIN"
