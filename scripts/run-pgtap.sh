#!/usr/bin/env bash
# pgTAP tests (test/pgtap/*.sql) against a temporary cluster with
# replica_router preloaded and every replica_router.* setting at its default.
# Run as the unprivileged user that owns the tree (scripts/test.sh runs it as
# postgres). The cluster lives in tmp_check_pgtap/, its socket in a short
# private directory under /tmp; it listens on no TCP address, and its port
# (which names the socket) is a random one that is free.
# Ends with one line "pgtap: N passed, N failed" (N = assertions); exits
# non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH=$(pg_config --bindir):$PATH

summary() { echo "pgtap: $1 passed, $2 failed"; }

DIR=$ROOT/tmp_check_pgtap
DATA=$DIR/data
SOCK=$(mktemp -d /tmp/rr-pgtap.XXXXXX) || { summary 0 1; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR"

# Free: no TCP socket is bound to it (it also names the unix socket).
port_in_use() {
    grep -q "$(printf ':%04X ' "$1")" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
PORT=$((20000 + RANDOM % 30000))
for _ in $(seq 50); do
    port_in_use "$PORT" || break
    PORT=$((20000 + RANDOM % 30000))
done

started=0
cleanup() {
    [ "$started" -eq 1 ] && pg_ctl -D "$DATA" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$SOCK"
}
trap cleanup EXIT

fail_setup() {
    echo "pgtap: $1"
    [ -f "$DIR/server.log" ] && tail -50 "$DIR/server.log"
    summary 0 1
    exit 1
}

initdb -D "$DATA" -A trust -U postgres --no-sync -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log"; fail_setup "initdb failed"; }
cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'replica_router'
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
fsync = off
max_connections = 20
CONF
pg_ctl -D "$DATA" -l "$DIR/server.log" -w -t 60 start >/dev/null || fail_setup "the server did not start"
started=1

export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION replica_router' >"$DIR/setup.log" 2>&1 ||
    { cat "$DIR/setup.log"; fail_setup "could not create the extensions"; }

pg_prove --verbose --failures test/pgtap/*.sql >"$DIR/pg_prove.log" 2>&1
rc=$?
cat "$DIR/pg_prove.log"

# Assertions: "ok"/"not ok" lines; a plan that was not run to the end counts
# its missing assertions as failures.
passed=$(grep -cE '^ok [0-9]+' "$DIR/pg_prove.log")
failed=$(grep -cE '^not ok [0-9]+' "$DIR/pg_prove.log")
planned=$(awk '/^1\.\.[0-9]+/ { sub(/^1\.\./, ""); s += $1 } END { print s + 0 }' "$DIR/pg_prove.log")
missing=$((planned - passed - failed))
[ "$missing" -gt 0 ] && failed=$((failed + missing))
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
summary "$passed" "$failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
