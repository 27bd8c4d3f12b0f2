#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's `postgresql` package; installed by
# scripts/install-test-deps.sh). Nothing here touches the system's own clusters.
#
#   scripts/test-postgres.sh start    create (first time) and start the cluster, create the
#                                     `motherstream` role and `motherstream_test` database,
#                                     print `export MOTHERSTREAM_TEST_POSTGRES=postgres://…`
#                                     (and MOTHERSTREAM_TEST_PG_DIR, its directory)
#   scripts/test-postgres.sh stop     stop it (pg_ctl stop -m fast); its data is kept
#   scripts/test-postgres.sh destroy  stop it and delete its data
#   scripts/test-postgres.sh status   exit 0 if it is running
#   scripts/test-postgres.sh url      print the URL
#
# Typical use:  eval "$(scripts/test-postgres.sh start)" && cargo test
#
# The cluster lives in target/test-postgres/ (MOTHERSTREAM_TEST_PG_DIR overrides), listens on
# 127.0.0.1 only, on MOTHERSTREAM_TEST_PG_PORT or the first free port from 25432 (below the
# ephemeral range, where the tests' own connections could hold it), and accepts
# the `motherstream` role with a password (scram-sha-256). initdb refuses to run as root, so
# as root the server runs as the `postgres` system user the package creates.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${MOTHERSTREAM_TEST_PG_DIR:-${CARGO_TARGET_DIR:-$repo/target}/test-postgres}"
# As root the server runs as `postgres`, which must reach its directory; a checkout under a
# private home (e.g. /root) is out of its reach, so use a per-checkout directory in /tmp.
if [ -z "${MOTHERSTREAM_TEST_PG_DIR:-}" ] && [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
  ! runuser -u postgres -- test -x "$repo" 2>/dev/null; then
  dir="/tmp/motherstream-test-postgres-$(printf '%s' "$repo" | md5sum | cut -c1-12)"
fi
data="$dir/data"
role=motherstream
password=motherstream-test
database=motherstream_test

die() { echo "test-postgres: $*" >&2; exit 1; }

bindir() {
  local b
  if [ -n "${MOTHERSTREAM_TEST_PG_BIN:-}" ]; then
    echo "$MOTHERSTREAM_TEST_PG_BIN"
    return
  fi
  # Debian keeps the server binaries out of PATH, one directory per major version.
  b="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$b" ] && command -v pg_ctl >/dev/null 2>&1; then
    b="$(dirname "$(command -v pg_ctl)")"
  fi
  [ -n "$b" ] && [ -x "$b/initdb" ] || die "PostgreSQL server binaries not found (run scripts/install-test-deps.sh)"
  echo "$b"
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

port() { cat "$dir/port" 2>/dev/null || die "no cluster in $dir (run: $0 start)"; }

url() { echo "postgres://$role:$password@127.0.0.1:$(port)/$database"; }

psql_admin() {
  as_owner "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(port)" -U postgres -d postgres "$@"
}

init() {
  local bin p
  bin="$(bindir)"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres system user (apt-get install postgresql)"
    chown postgres: "$dir"
    # The server must reach its directory through every parent.
    runuser -u postgres -- test -x "$dir" || die "user postgres cannot reach $dir; set MOTHERSTREAM_TEST_PG_DIR"
  fi
  p="${MOTHERSTREAM_TEST_PG_PORT:-25432}"
  if [ -z "${MOTHERSTREAM_TEST_PG_PORT:-}" ]; then
    while port_in_use "$p"; do p=$((p + 1)); done
  fi
  rm -rf "$data"
  # Local socket connections (the admin's, from this script) are trusted; TCP needs a password.
  as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >>"$data/postgresql.conf" <<EOF
# motherstream test cluster
listen_addresses = '127.0.0.1'
port = $p
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
EOF
  echo "$p" >"$dir/port"
}

start() {
  local bin
  bin="$(bindir)"
  [ -f "$data/PG_VERSION" ] && [ -f "$dir/port" ] || init
  if ! running; then
    port_in_use "$(port)" && die "port $(port) is taken by something else (set MOTHERSTREAM_TEST_PG_PORT or run: $0 destroy)"
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
  fi
  psql_admin <<SQL
SELECT 'CREATE ROLE $role LOGIN CREATEDB PASSWORD ''$password'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') \gexec
SELECT 'CREATE DATABASE $database OWNER $role'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$database') \gexec
SQL
  # The directory too, so a test that stops and restarts the cluster (tests/server/database.rs)
  # finds this one whatever its CARGO_TARGET_DIR.
  echo "export MOTHERSTREAM_TEST_PG_DIR=$dir"
  echo "export MOTHERSTREAM_TEST_POSTGRES=$(url)"
}

stop() {
  if [ -f "$data/PG_VERSION" ] && running; then
    as_owner "$(bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  destroy) stop; rm -rf "$dir" ;;
  status) running ;;
  url) url ;;
  *) echo "usage: $0 start|stop|destroy|status|url" >&2; exit 2 ;;
esac
