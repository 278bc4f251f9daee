#!/usr/bin/env bash
# Run signward on loopback (127.0.0.1:9000) with its defaults.
#
# With arguments, they are passed to `signward serve` as they are (for example
# `--keystores-path DIR --keystores-passwords-path DIR`). With none, a demo key is created once in
# ./signward-data/demo-keys (password in ./signward-data/demo-password.txt), and a demo token with
# the sign, public_keys and metrics scopes in ./signward-data/demo-token.txt (both mode 0600), so
# that the README quickstart works on a fresh clone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release --locked -p signward
BIN="$ROOT/target/release/signward"
DATA="${SIGNWARD_DATA_DIR:-$ROOT/signward-data}"
if [ "$#" -eq 0 ]; then
  umask 077
  DEMO="$DATA/demo-keys"
  PW="$DATA/demo-password.txt"
  if [ ! -d "$DEMO" ]; then
    mkdir -p "$DATA"
    head -c 24 /dev/urandom | base64 > "$PW"
    "$BIN" keystore create --out "$DEMO" --password-file "$PW" --count 1 --kdf pbkdf2 >/dev/null
    echo "created a demo key in $DEMO" >&2
  fi
  if [ ! -f "$DATA/demo-token.txt" ]; then
    "$BIN" token create --data-dir "$DATA" --name demo --scope sign,public_keys,metrics > "$DATA/demo-token.txt"
    echo "created a demo token in $DATA/demo-token.txt" >&2
  fi
  set -- --keystores-path "$DEMO" --keystores-password-file "$PW"
fi
if [ "$(id -u)" = 0 ]; then
  # signward refuses root; a demo on a fresh root shell passes the flag, loudly.
  echo "running as root: passing --allow-root (run signward as its own user in production)" >&2
  set -- --allow-root "$@"
fi
exec "$BIN" serve --data-dir "$DATA" "$@"
