#!/usr/bin/env bash
# Create (or reuse) .venv-test with the independent Python verifiers the tests call, and print the
# path of its python. Re-installs when tests/py/requirements.txt changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-test"
REQ="$ROOT/tests/py/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  echo "setting up $VENV (py_ecc, milagro-bls-binding, remerkleable, ethstaker-deposit, eth-account, web3, schemathesis)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ" >&2
  "$VENV/bin/python" -c "import py_ecc, remerkleable, ethstaker_deposit, eth_account, web3, milagro_bls_binding, schemathesis" >&2
  "$VENV/bin/schemathesis" --version >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
