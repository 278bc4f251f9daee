# Sourced by scripts/ensure-*.sh: one way to install pinned npm packages outside the work tree.
#
#   npm_cached NAME SRC BIN VERIFY
#
# Installs SRC's package.json and package-lock.json with `npm ci` into
# ${SIGNWARD_CACHE_DIR:-~/.cache/signward}/NAME-<sha256 of package.json + package-lock.json>
# unless that directory already holds a finished install (a `.installed` marker and the
# executable BIN, relative to it), runs `VERIFY DIR` after a fresh install, and sets NPM_CACHED_DIR.
# Keyed on the lockfile's hash, so fresh clones (CI) on one machine reuse an install and a changed
# lockfile installs anew. Callers that start together (tests run in parallel, each making sure
# of its clients) are serialised on an flock of DIR.lock: one installs, the others wait for it
# and then find the finished install. Without npm, Debian's nodejs and npm are installed when running as root.
npm_cached() {
  local name="$1" src="$2" bin="$3" verify="$4" want dir
  if ! command -v npm >/dev/null; then
    # The machines ship Node 20 and npm; Debian's packages are the fallback.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
    else
      echo "$name: npm is not installed" >&2
      return 1
    fi
  fi
  want="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
  dir="${SIGNWARD_CACHE_DIR:-$HOME/.cache/signward}/$name-$want"
  mkdir -p "$(dirname "$dir")"
  local lock
  exec {lock}>"$dir.lock"
  flock "$lock"
  if [ ! -f "$dir/.installed" ] || [ ! -x "$dir/$bin" ]; then
    echo "installing $name into $dir (npm ci)" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    "$verify" "$dir" >&2
    touch "$dir/.installed"
  fi
  flock -u "$lock"
  exec {lock}>&-
  NPM_CACHED_DIR="$dir"
}
