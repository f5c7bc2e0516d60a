#!/usr/bin/env bash
# Follows the README's "Installing into an existing cluster" section as a DBA
# would on Debian, with the installed package and Debian's cluster tools
# (pg_createcluster, pg_ctlcluster, /etc/postgresql/15/<name>/): settings in
# conf.d on every node, the polling login created on the primary with its
# pg_hba.conf line on every node and its password in the postgres user's
# passfile, a standby cloned with pg_basebackup, CREATE EXTENSION and both
# members registered on the primary; then checks recommend() on both nodes.
# Root only. Drops the two clusters it made (and only those) at the end,
# also on failure, and puts the passfile back as it was.
# Prints "ok - ..." / "not ok - ..." lines and "walkthrough: N passed, N failed".
#
#   RR_WALK_PORT  the primary's port (default 55480); the standby uses the next
set -uo pipefail
export LANG=C.UTF-8
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD PGPASSFILE
PRIMARY=rr_walk_primary
STANDBY=rr_walk_standby
PPORT=${RR_WALK_PORT:-55480}
SPORT=$((PPORT + 1))
SOCK=/var/run/postgresql
PGHOME=$(getent passwd postgres | cut -d: -f6)
PASSFILE=$PGHOME/.pgpass
LOG=$(mktemp /tmp/rr-walk.XXXXXX)

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -lt 2 ] || sed 's/^/    /' <<<"$2"; }
# check WHAT CMD...: CMD's success is the test; its output is shown on failure.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what" "$out"; return 1; fi
}
# sql PORT STATEMENT: psql as postgres over the socket, one unaligned value.
sql() { runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" -d postgres -c "$2"; }
# wait_for SECONDS CMD...: until CMD succeeds, at most SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
drop_clusters() {
    local c
    for c in "$STANDBY" "$PRIMARY"; do
        if pg_lsclusters -h | awk -v c="$c" '$2 == c { f = 1 } END { exit !f }'; then
            pg_dropcluster --stop 15 "$c" >>"$LOG" 2>&1
        fi
        # pg_dropcluster leaves what it did not create (our conf.d file).
        rm -rf "/etc/postgresql/15/$c" "/var/lib/postgresql/15/$c"
    done
    return 0
}
restore_passfile() {
    if [ -f "$PASSFILE.rr-walk" ]; then mv -f "$PASSFILE.rr-walk" "$PASSFILE"; else rm -f "$PASSFILE"; fi
}
cleanup() {
    drop_clusters
    [ -n "${PASSWORD:-}" ] && restore_passfile
    rm -f "$LOG"
}
fail_out() {  # the rest cannot run: clean up, summarise
    [ -s "$LOG" ] && tail -n 30 "$LOG" | sed 's/^/    /'
    cleanup
    echo "walkthrough: $passed passed, $((failed + 1)) failed"
    exit 1
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then echo "walkthrough: run as root"; echo "walkthrough: 0 passed, 1 failed"; exit 1; fi
drop_clusters  # a previous run's, if it was killed
for p in "$PPORT" "$SPORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then not_ok "port $p is free"; fail_out; fi
done

# --- Settings: the same conf.d file on every node (ALTER SYSTEM writes
# postgresql.auto.conf, which does not replicate).
node_config() {  # node_config CLUSTER
    local etc=/etc/postgresql/15/$1
    cat >"$etc/conf.d/replica_router.conf" <<EOF
# replica_router: the same on every node
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'replica_router'
replica_router.database = 'postgres'
replica_router.primary_host = '127.0.0.1'
EOF
    # The polling login, before Debian's generic lines (the first match wins).
    { echo "host    postgres        replica_router  127.0.0.1/32            scram-sha-256"; cat "$etc/pg_hba.conf"; } \
        >"$etc/pg_hba.conf.new" && mv "$etc/pg_hba.conf.new" "$etc/pg_hba.conf"
    chown postgres:postgres "$etc/conf.d/replica_router.conf" "$etc/pg_hba.conf"
}

check "pg_createcluster 15 $PRIMARY -p $PPORT" pg_createcluster 15 "$PRIMARY" -p "$PPORT" || fail_out
node_config "$PRIMARY"
check "pg_ctlcluster 15 $PRIMARY start (replica_router preloaded)" pg_ctlcluster 15 "$PRIMARY" start || fail_out
check "the worker's settings are read from conf.d" \
    bash -c "[ \"\$(runuser -u postgres -- psql -X -qAt -h $SOCK -p $PPORT -d postgres -c 'SHOW replica_router.primary_host')\" = 127.0.0.1 ]"

# --- The polling login: created on the primary (it replicates), member of
# pg_monitor; its password in the postgres user's passfile on every node (one
# machine here).
PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
[ -f "$PASSFILE" ] && cp -p "$PASSFILE" "$PASSFILE.rr-walk"
printf '127.0.0.1:*:postgres:replica_router:%s\n' "$PASSWORD" >>"$PASSFILE"
chown postgres:postgres "$PASSFILE"
chmod 600 "$PASSFILE"
check "CREATE ROLE replica_router LOGIN ... IN ROLE pg_monitor on the primary" \
    sql "$PPORT" "CREATE ROLE replica_router LOGIN PASSWORD '$PASSWORD' IN ROLE pg_monitor" || fail_out

# --- The standby: a Debian cluster whose data directory is a pg_basebackup.
check "pg_createcluster 15 $STANDBY -p $SPORT" pg_createcluster 15 "$STANDBY" -p "$SPORT" || fail_out
node_config "$STANDBY"
SDATA=$(pg_lsclusters -h | awk -v c="$STANDBY" '$2 == c { print $6 }')
rm -rf "${SDATA:?}"/*
check "pg_basebackup -R from the primary into $SDATA" \
    runuser -u postgres -- pg_basebackup -h "$SOCK" -p "$PPORT" -D "$SDATA" -R -X stream -c fast || fail_out
check "pg_ctlcluster 15 $STANDBY start" pg_ctlcluster 15 "$STANDBY" start || fail_out
check "the standby is in recovery" bash -c "[ \"\$(runuser -u postgres -- psql -X -qAt -h $SOCK -p $SPORT -d postgres -c 'SELECT pg_is_in_recovery()')\" = t ]"

# --- The extension and the registration, on the primary.
check "CREATE EXTENSION replica_router on the primary" sql "$PPORT" "CREATE EXTENSION replica_router" || fail_out
# Every member, the primary included (its role is found by polling).
for m in "p1 $PPORT" "s1 $SPORT"; do
    set -- $m
    check "add_node('$1', 'host=127.0.0.1 port=$2 dbname=postgres user=replica_router')" \
        sql "$PPORT" "SELECT name FROM replica_router.add_node('$1', 'host=127.0.0.1 port=$2 dbname=postgres user=replica_router')" \
        || fail_out
done
healthy() { [ "$(sql "$PPORT" "SELECT state FROM replica_router.status WHERE node = 's1'")" = healthy ]; }
if wait_for 30 healthy; then ok "the worker reports s1 healthy (polling login, pg_hba line and passfile work)"
else not_ok "the worker reports s1 healthy" "$(sql "$PPORT" "SELECT node, role, state, error FROM replica_router.status" 2>&1)"; fi
check "recommend('read') on the primary: s1 at 127.0.0.1:$SPORT" \
    bash -c "[ \"\$(runuser -u postgres -- psql -X -qAt -h $SOCK -p $PPORT -d postgres -c \"SELECT node, host, port FROM replica_router.recommend('read')\")\" = 's1|127.0.0.1|$SPORT' ]"
check "recommend('write') on the primary: the primary at primary_host 127.0.0.1:$PPORT" \
    bash -c "[ \"\$(runuser -u postgres -- psql -X -qAt -h $SOCK -p $PPORT -d postgres -c \"SELECT role, host, port FROM replica_router.recommend('write')\")\" = 'primary|127.0.0.1|$PPORT' ]"
standby_answers() {
    [ "$(sql "$SPORT" "SELECT node, host, port FROM replica_router.recommend('read')")" = "s1|127.0.0.1|$SPORT" ]
}
if wait_for 30 standby_answers; then ok "recommend('read') on the standby answers s1"
else not_ok "recommend('read') on the standby answers s1" "$(sql "$SPORT" "SELECT * FROM replica_router.recommend('read')" 2>&1)"; fi
standby_writes() {
    [ "$(sql "$SPORT" "SELECT role, host, port FROM replica_router.recommend('write')")" = "primary|127.0.0.1|$PPORT" ]
}
if wait_for 30 standby_writes; then ok "recommend('write') on the standby: the primary at 127.0.0.1:$PPORT"
else not_ok "recommend('write') on the standby" "$(sql "$SPORT" "SELECT * FROM replica_router.recommend('write')" 2>&1)"; fi
if out=$(sql "$SPORT" "SELECT replica_router.add_replica('s2', 'host=127.0.0.1 port=1 dbname=postgres')" 2>&1); then
    not_ok "registry functions are refused on the standby (run them on the primary)" "$out"
else
    ok "registry functions are refused on the standby (run them on the primary): $(head -n 1 <<<"$out")"
fi

# --- Leave the machine as it was: both clusters dropped.
drop_clusters
left=$(pg_lsclusters -h | awk -v a="$PRIMARY" -v b="$STANDBY" '$2 == a || $2 == b')
if [ -z "$left" ] && ! [ -d "/etc/postgresql/15/$PRIMARY" ]; then ok "both clusters stopped and dropped"
else not_ok "both clusters stopped and dropped" "$left"; fi

echo "walkthrough: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
