#!/usr/bin/env bash
# Install the EVM clients that crates/cli/tests/evm_clients_e2e.rs points at signward (ethers
# 6.17.0, viem 2.57.20), the node behind it (ganache 7.9.2) and the compiler of its test token
# (solc-js 0.8.37), all from the npm registry, pinned by tests/evm-clients/package-lock.json, with
# `npm ci`; print the install directory. Its node_modules holds the packages (the client scripts
# run as `NODE_PATH=<dir>/node_modules node tests/evm-clients/<client>.cjs`) and
# node_modules/.bin/ganache is the node's CLI. Idempotent and keyed on the manifest's and the
# lockfile's hash: the install lives in
# ${SIGNWARD_CACHE_DIR:-~/.cache/signward}/evm-clients-<sha256 of package.json + package-lock.json>,
# outside the work tree, so fresh clones (CI) on the same machine reuse it; a changed lockfile
# installs anew. Pure JavaScript: no native build, about half a minute once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tests/evm-clients"
# shellcheck source=lib/npm-cached.sh
. "$ROOT/scripts/lib/npm-cached.sh"
verify() {
  "$1/node_modules/.bin/ganache" --version
  NODE_PATH="$1/node_modules" node -e '
    const fs = require("fs");
    const want = { ethers: "6.17.0", viem: "2.57.20", ganache: "7.9.2", solc: "0.8.37" };
    for (const [name, v] of Object.entries(want)) {
      const file = process.argv[1] + "/node_modules/" + name + "/package.json";
      const got = JSON.parse(fs.readFileSync(file, "utf8")).version;
      if (got !== v) { console.error(`${name} ${got} is not ${v}`); process.exit(1); }
    }
    require("ethers"); require("viem"); require("viem/accounts"); require("solc");
  ' "$1"
}
npm_cached evm-clients "$ROOT/tests/evm-clients" node_modules/.bin/ganache verify
echo "$NPM_CACHED_DIR"
