#!/usr/bin/env bash
# Runs the tests of the PostgreSQL audit log (audit/storage/postgres) against a real server, installing
# PostgreSQL from the distribution first if its server binaries are missing. Safe to run again
# and from two shells at once: an installed PostgreSQL is found and reused.
#
# The tests do not use a system-wide server: each starts its own throw-away cluster (initdb into
# a temporary directory, 127.0.0.1 on a free port, trust authentication) as the postgres user
# when run as root, and stops it at the end. This script only makes the binaries available.
#
#   scripts/postgres-test.sh                 install if needed, then go test -race ./audit/storage/postgres/...
#   scripts/postgres-test.sh --install-only  install if needed, print the binaries' directory
#   scripts/postgres-test.sh -- -run Restart -v   extra arguments go to go test
set -euo pipefail
cd "$(dirname "$0")/.."

find_bin() {
  if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/initdb" ]]; then
    echo "$PG_BIN"
    return 0
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
    echo "$d"
    return 0
  fi
  return 1
}

install_pg() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "postgres-test: not root and no sudo: install postgresql yourself" >&2; return 1; }
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || { echo "postgres-test: no apt-get: install PostgreSQL and set PG_BIN" >&2; return 1; }
  # The tests bring their own clusters: do not have the package create and start a system one.
  "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/medicus-no-main.conf >/dev/null
  echo "postgres-test: installing PostgreSQL (apt-get)" >&2
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

if ! BIN=$(find_bin); then
  LOCK="${TMPDIR:-/tmp}/medicus-postgres-install.lock"
  if command -v flock >/dev/null; then
    exec 9>"$LOCK"
    flock 9
  fi
  # Someone else may have installed it while we waited for the lock.
  if ! BIN=$(find_bin); then
    install_pg
    BIN=$(find_bin) || { echo "postgres-test: PostgreSQL installed but no initdb found" >&2; exit 1; }
  fi
fi

if [[ "${1:-}" == "--install-only" ]]; then
  echo "$BIN"
  exit 0
fi
[[ "${1:-}" == "--" ]] && shift
export PG_BIN="$BIN"
exec go test -race -count=1 "$@" ./audit/storage/postgres/...
