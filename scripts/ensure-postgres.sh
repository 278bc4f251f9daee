#!/usr/bin/env bash
# Make sure a PostgreSQL server answers for the tests, starting (or, as root on Debian, installing)
# it if needed, and print the admin URL the tests create their databases with.
# Override with SIGNWARD_TEST_PG_URL=postgres://user@host:port/db.
set -euo pipefail
URL="${SIGNWARD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
HOST=127.0.0.1
PORT=5432

ready() { command -v pg_isready >/dev/null && pg_isready -h "$HOST" -p "$PORT" -q; }

if [ -z "${SIGNWARD_TEST_PG_URL:-}" ] && ! ready; then
  if ! command -v pg_ctlcluster >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing PostgreSQL (Debian package) for the test suite" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    else
      echo "PostgreSQL is not installed; install it or set SIGNWARD_TEST_PG_URL" >&2
      exit 1
    fi
  fi
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  ready || { echo "PostgreSQL did not come up on $HOST:$PORT" >&2; exit 1; }
fi
# Trust auth for the postgres user is how this kind of machine is set up; check we can connect.
if command -v psql >/dev/null; then
  psql "$URL" -qAtc 'SELECT 1' >/dev/null || { echo "cannot connect to $URL" >&2; exit 1; }
fi
echo "$URL"
