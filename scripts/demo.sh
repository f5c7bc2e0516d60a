#!/usr/bin/env bash
# replica_router demo (Debian 12, as root): installs what is missing, builds
# and installs the extension, starts a primary and two streaming replicas on
# 127.0.0.1 (data and sockets in /tmp/rr-demo, servers run as 'postgres'),
# and shows the status view, recommend() answers, read-your-writes, and a
# replica leaving and rejoining the rotation.
#
#   ./scripts/demo.sh             run it, pausing between parts when on a terminal;
#                                 the cluster stays up afterwards
#   ./scripts/demo.sh --headless  run start to finish without pausing, then tear
#                                 down (exit 0 on success; for CI)
#   ./scripts/demo.sh --stop      stop the demo cluster and remove its directory
#
#   RR_DEMO_DIR   data and socket directory (default /tmp/rr-demo; keep it short)
#   RR_DEMO_PORT  primary port (default 55440); replicas use the next two
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cluster.sh
. "$ROOT/scripts/lib/cluster.sh"
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD

DEMO_DIR=${RR_DEMO_DIR:-/tmp/rr-demo}
DEMO_PORT=${RR_DEMO_PORT:-55440}
SELF="$ROOT/scripts/demo.sh"

mode=interactive
case ${1:-} in
    "") ;;
    --headless) mode=headless ;;
    --stop) mode=stop ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--headless | --stop]" >&2; exit 2 ;;
esac

if [ -t 1 ]; then TTY=1; B=$'\e[1m'; D=$'\e[2m'; R=$'\e[0m'; else TTY=0; B=""; D=""; R=""; fi

title() { printf '\n%s== %s%s\n' "$B" "$*" "$R"; }
note() { printf '%s\n' "$*"; }

fmt_ms() { local ms=$1; printf '%d.%01ds' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

# step LABEL CMD...: runs CMD with its output in a log, showing the elapsed
# time while it runs (a live counter on a terminal, a dot a second otherwise);
# prints the log if it fails. STEP_MS holds how long it took.
step() {
    local label=$1 log start pid rc el last="" dots=0
    shift
    log=$(mktemp /tmp/rr-demo-step.XXXXXX)
    start=$(cl_now_ms)
    "$@" >"$log" 2>&1 &
    pid=$!
    STEP_PID=$pid STEP_LOG=$log
    [ "$TTY" = 1 ] || printf '  %s ...' "$label"
    while kill -0 "$pid" 2>/dev/null; do
        el=$(( $(cl_now_ms) - start ))
        if [ "$TTY" = 1 ]; then
            last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-60)
            printf '\r\e[K  %s ... %s %s%s%s' "$label" "$(fmt_ms "$el")" "$D" "$last" "$R"
        elif (( el / 1000 > dots )); then
            printf '.'; dots=$(( el / 1000 ))
        fi
        sleep 0.1
    done
    wait "$pid"; rc=$?
    STEP_PID=""
    STEP_MS=$(( $(cl_now_ms) - start ))
    [ "$TTY" = 1 ] && printf '\r\e[K  %s ...' "$label"
    if [ "$rc" -eq 0 ]; then
        printf ' done (%s)\n' "$(fmt_ms "$STEP_MS")"
    else
        printf ' FAILED (%s)\n' "$(fmt_ms "$STEP_MS")"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
    rm -f "$log"
    return "$rc"
}

# show SQL [NODE]: prints the statement psql-style, runs it on NODE and
# prints its result (kept in SHOW_OUT) followed by one blank line.
show() {
    local sql=$1 node=${2:-primary} prompt rc
    prompt=$([ "$node" = primary ] && echo postgres || echo "$node")
    printf '%s%s=# %s%s\n' "$B" "$prompt" "$sql" "$R"
    SHOW_OUT=$(cl_psql "$node" -c "$sql" 2>&1); rc=$?
    printf '%s\n\n' "$SHOW_OUT"  # $(...) dropped psql's trailing blank line
    [ "$rc" -eq 0 ] || die "the statement failed"
}

pause() {
    [ "$mode" = interactive ] && [ -t 0 ] && [ -t 1 ] || return 0
    printf '\n%s-- press Enter to continue (Ctrl-C stops the demo cluster) --%s' "$D" "$R"
    read -r _ || true
}

DYING=0
STEP_PID="" STEP_LOG=""
die() {
    [ "$DYING" = 1 ] && exit 1
    DYING=1
    echo "demo: $*" >&2
    # End a step still running (interrupted): its server, if it was starting
    # one, has written postmaster.pid by then and is stopped below.
    if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
        kill -TERM "$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
        rm -f "$STEP_LOG"
    fi
    if [ -d "${CL_DIR:-/nonexistent}" ]; then
        echo "demo: stopping the demo servers (logs stay in $CL_DIR/*.log)" >&2
        cl_stop_all
    fi
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: run as root (it installs packages, builds and installs the extension, and runs the servers as 'postgres')" >&2
    exit 1
fi
cl_config "$DEMO_DIR" "$DEMO_PORT" 2 || exit 1

ports_free() {
    local node
    for node in primary r1 r2; do
        if cl_port_busy "$(cl_port "$node")"; then echo "port $(cl_port "$node") is still in use" >&2; return 1; fi
    done
}

if [ "$mode" = stop ]; then
    if [ ! -d "$DEMO_DIR" ]; then
        echo "no demo cluster in $DEMO_DIR"
        exit 0
    fi
    step "Stopping the demo cluster in $DEMO_DIR" cl_destroy || exit 1
    echo "Stopped; $DEMO_DIR removed."
    exit 0
fi

T0=$(cl_now_ms)
trap 'echo; die "interrupted"' INT TERM

title "replica_router demo: a primary and two streaming replicas on 127.0.0.1"
note "Data and sockets in $DEMO_DIR (owned by postgres); primary on port $DEMO_PORT, r1 on $(cl_port r1), r2 on $(cl_port r2)."

title "Setting up"
step "Checking packages (scripts/deps.sh)" "$ROOT/scripts/deps.sh" || die "scripts/deps.sh failed"
export PATH="$CL_PGBIN:$PATH"  # pg_config of PostgreSQL 15 for the build
step "Building (make -s -j2)" make -C "$ROOT" -s -j2 || die "the build failed"
step "Installing (make -s install)" make -C "$ROOT" -s install || die "make install failed"
if [ -e "$DEMO_DIR" ]; then
    step "Removing the previous demo cluster" cl_destroy || die "could not remove the previous demo cluster in $DEMO_DIR"
fi
cl_check_ports || die "free those ports, or choose others with RR_DEMO_PORT=<port> (the replicas use the next two)"
step "Creating the primary (initdb)" cl_create_primary || die "could not create the primary"
step "Starting the primary on port $DEMO_PORT" cl_start primary || die "the primary did not start"
step "Cloning replica r1 (pg_basebackup -R)" cl_create_replica 1 || die "could not clone r1"
step "Cloning replica r2 (pg_basebackup -R)" cl_create_replica 2 || die "could not clone r2"
start_replicas() { local a b; cl_start r1 & a=$!; cl_start r2 & b=$!; wait "$a" && wait "$b"; }
step "Starting r1 and r2 (streaming from the primary)" start_replicas || die "the replicas did not start"

title "Installing the extension on the primary and registering the replicas"
show "CREATE EXTENSION replica_router;"
show "SELECT id, name, conninfo, weight, enabled FROM replica_router.add_replica('r1', 'host=127.0.0.1 port=$(cl_port r1) dbname=postgres user=postgres');"
show "SELECT id, name, conninfo, weight, enabled FROM replica_router.add_replica('r2', 'host=127.0.0.1 port=$(cl_port r2) dbname=postgres user=postgres');"
step "Waiting for the worker to report both replicas healthy" cl_wait_healthy 60 \
    || die "the replicas did not become healthy (see $DEMO_DIR/primary.log)"

title "Status: one row per node, from the worker's shared memory"
show "SELECT node, role, state, host, port, lag, lag_bytes, replay_lsn, connections FROM replica_router.status;"
show "SELECT pid, rounds, polls, poll_failures, last_round_duration FROM replica_router.worker_status();"
pause

title "Routing: where should this query go?"
note "Reads go to a healthy replica, round-robin:"
show "SELECT * FROM replica_router.recommend('read');"
show "SELECT * FROM replica_router.recommend('read');"
show "SELECT * FROM replica_router.recommend('read');"
note "Writes go to the primary:"
show "SELECT * FROM replica_router.recommend('write');"
note "A read that tolerates at most 1 second of replay lag:"
show "SELECT * FROM replica_router.recommend('read', max_lag => '1 second');"
pause

title "Read your own writes: min_lsn"
show "CREATE TABLE demo_orders (id serial PRIMARY KEY, item text NOT NULL);"
note "Right after a write, no replica has been seen replaying it yet, so the read goes to the primary:"
show "INSERT INTO demo_orders (item) VALUES ('coffee');"
show "SELECT * FROM replica_router.recommend('read', min_lsn => pg_current_wal_insert_lsn());"
LSN=$(cl_sql "SELECT pg_current_wal_insert_lsn()") || die "no answer from the primary"
wait_replica_for_lsn() {
    local start i role
    start=$(cl_now_ms)
    for ((i = 0; i < 500; i++)); do
        role=$(cl_sql "SELECT role FROM replica_router.recommend('read', min_lsn => '$LSN')") || return 1
        if [ "$role" = replica ]; then
            echo $(( $(cl_now_ms) - start ))
            return 0
        fi
        sleep 0.02
    done
    return 1
}
WAITED=$(wait_replica_for_lsn) || die "no replica caught up with $LSN within 10 s"
note "${WAITED} ms later the worker has polled the replicas again and seen them replay $LSN:"
show "SELECT * FROM replica_router.recommend('read', min_lsn => '$LSN');"
NODE=$(sed -n 3p <<<"$SHOW_OUT" | awk '{print $1}')
case $NODE in r1|r2) ;; *) die "expected a replica, got: $SHOW_OUT" ;; esac
note "... and the row is there on $NODE:"
show "SELECT * FROM demo_orders;" "$NODE"
pause

title "A replica goes away and comes back"
T=$(cl_now_ms)
step "Stopping r2 (pg_ctl stop -m fast)" cl_stop r2 || die "r2 did not stop"
step "Waiting for the worker to mark r2 down" cl_wait_state r2 down 30 || die "r2 was not marked down"
note "  r2 was marked down $(( $(cl_now_ms) - T )) ms after the shutdown began; reads now go to r1 only:"
show "SELECT node, state, lag, error FROM replica_router.status;"
show "SELECT * FROM replica_router.recommend('read');"
show "SELECT * FROM replica_router.recommend('read');"
pause
T=$(cl_now_ms)
step "Starting r2 again" cl_start r2 || die "r2 did not start again"
step "Waiting until r2 is healthy (replica_router.recovery_polls good polls in a row)" cl_wait_state r2 healthy 60 \
    || die "r2 did not become healthy again"
note "  r2 is back in rotation $(( $(cl_now_ms) - T )) ms after its restart began:"
show "SELECT node, state, lag, error FROM replica_router.status;"
show "SELECT * FROM replica_router.recommend('read');"
show "SELECT * FROM replica_router.recommend('read');"

title "Done in $(fmt_ms $(( $(cl_now_ms) - T0 )))"
if [ "$mode" = headless ]; then
    trap - INT TERM
    step "Stopping the demo cluster" cl_destroy || die "could not stop the demo cluster"
    ports_free || die "ports are still in use after stopping"
    note "All demo servers stopped, ports $DEMO_PORT-$(cl_port r2) free, $DEMO_DIR removed."
    exit 0
fi
trap - INT TERM
cat <<EOF
The demo cluster keeps running (servers run as postgres; logs in $DEMO_DIR/*.log).

Connect to the primary (as root or postgres, over the unix socket):
    psql -h $DEMO_DIR -p $DEMO_PORT -U postgres postgres
or, as any user, over TCP:
    psql -h 127.0.0.1 -p $DEMO_PORT -U postgres postgres
Replicas: the same with -p $(cl_port r1) (r1) or -p $(cl_port r2) (r2). Authentication is trust: loopback only, throwaway.

Try:  SELECT * FROM replica_router.recommend('read');
      SELECT * FROM replica_router.candidates('read');
      SELECT * FROM replica_router.status;

Stop it:
    $SELF --stop
EOF
