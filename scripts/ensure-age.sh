#!/usr/bin/env bash
# Make sure the standard `age` CLI (Debian package `age`) is installed: the tests check that key
# backups written by `signward keys generate --backup-to` open with it.
set -euo pipefail
if command -v age >/dev/null && command -v age-keygen >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing the age CLI (Debian package age)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >&2; }
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >&2
else
  echo "the age CLI is missing; install the 'age' package" >&2
  exit 1
fi
command -v age >/dev/null
