#!/usr/bin/env bash
# replica_router demo (Debian 12, as root): installs what is missing, builds
# and installs the extension, starts on 127.0.0.1 a primary, three streaming
# replicas and a pgbouncer whose read alias the follower keeps on the
# recommended replica, puts a pgbench write load on the primary, and tells the
# story under a live status table: reads spread over the replicas; a replica
# whose replay is paused starts lagging and loses its reads; a stopped replica
# leaves the rotation at once and comes back after the damping polls; the
# pgbouncer read alias follows. Data, sockets, logs in /tmp/rr-demo; servers,
# pgbouncer, follower and pgbench run as 'postgres'.
#
#   ./scripts/demo.sh             run it, pausing between parts on a terminal;
#                                 everything stays up afterwards
#   ./scripts/demo.sh --teardown  the same, then stop everything at the end
#   ./scripts/demo.sh --headless  no pauses, checks every step, tears down at
#                                 the end; exit 0 when every step worked (CI)
#   ./scripts/demo.sh --stop      stop everything the demo started, remove its directory
#
#   RR_DEMO_DIR    data and socket directory (default /tmp/rr-demo; keep it short)
#   RR_DEMO_PORT   primary port (default 55440); replicas +1..+3, pgbouncer +5
#   RR_DEMO_BUILD  0: skip the build and install when the extension is installed
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cluster.sh
. "$ROOT/scripts/lib/cluster.sh"
# shellcheck source=scripts/lib/demo.sh
. "$ROOT/scripts/lib/demo.sh"
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD PGSSLMODE

DEMO_DIR=${RR_DEMO_DIR:-/tmp/rr-demo}
DEMO_PORT=${RR_DEMO_PORT:-55440}
NREPL=3
BOUNCER_PORT=$(( DEMO_PORT + 5 ))
MAX_LAG=2          # replica_router.max_lag for the demo, seconds
LAG_CRITICAL=4     # replica_router.lag_critical, seconds
SELF="$ROOT/scripts/demo.sh"

mode=interactive
teardown=0
for arg in "$@"; do
    case $arg in
        --headless) mode=headless; teardown=1 ;;
        --teardown) teardown=1 ;;
        --stop) mode=stop ;;
        -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "usage: $0 [--headless | --teardown | --stop]" >&2; exit 2 ;;
    esac
done

if [ "$DM_TTY" = 1 ]; then B=$'\e[1m'; D=$'\e[2m'; R=$'\e[0m'; else B=""; D=""; R=""; fi

title() { dm_release; printf '\n%s== %s%s\n' "$B" "$*" "$R"; }
note() { dm_say "$@"; }

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
    [ "$DM_TTY" = 1 ] || printf '  %s ...' "$label"
    while kill -0 "$pid" 2>/dev/null; do
        el=$(( $(cl_now_ms) - start ))
        if [ "$DM_TTY" = 1 ]; then
            last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-60)
            printf '\r\e[K  %s ... %s %s%s%s' "$label" "$(dm_fmt_ms "$el")" "$D" "$last" "$R"
        elif (( el / 1000 > dots )); then
            printf '.'; dots=$(( el / 1000 ))
        fi
        sleep 0.1
    done
    wait "$pid"; rc=$?
    STEP_PID=""
    STEP_MS=$(( $(cl_now_ms) - start ))
    [ "$DM_TTY" = 1 ] && printf '\r\e[K  %s ...' "$label"
    if [ "$rc" -eq 0 ]; then
        printf ' done (%s)\n' "$(dm_fmt_ms "$STEP_MS")"
    else
        printf ' FAILED (%s)\n' "$(dm_fmt_ms "$STEP_MS")"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
    rm -f "$log"
    return "$rc"
}

# show SQL [NODE]: prints the statement psql-style, runs it on NODE and
# prints its result (kept in SHOW_OUT) followed by one blank line.
show() {
    local sql=$1 node=${2:-primary} prompt rc
    dm_release
    prompt=$([ "$node" = primary ] && echo postgres || echo "$node")
    printf '%s%s=# %s%s\n' "$B" "$prompt" "$sql" "$R"
    SHOW_OUT=$(cl_psql "$node" -c "$sql" 2>&1); rc=$?
    printf '%s\n\n' "$SHOW_OUT"  # $(...) dropped psql's trailing blank line
    [ "$rc" -eq 0 ] || die "the statement failed"
}

# pause: on a terminal in interactive mode, keeps the table live until a key.
pause() {
    [ "$mode" = interactive ] && [ "$DM_TTY" = 1 ] && [ -t 0 ] || return 0
    dm_pause_live "${D}-- press Enter to continue (Ctrl-C stops everything) --${R}"
    dm_release
}

# Measured figures, repeated at the end.
FIGURES=()
figure() { FIGURES+=("$1"); note "  ${B}>> $1${R}"; }

# Everything the demo starts, stopped: follower, pgbench, pgbouncer, servers;
# then nothing of it may be left.
stop_everything() {
    local rc=0 left pid i node pids=()
    dm_kill follower TERM & pids+=($!)
    dm_kill pgbench INT & pids+=($!)
    dm_kill pgbouncer TERM & pids+=($!)
    # Immediate shutdown: the data is thrown away, no checkpoint needed.
    if [ -d "$DEMO_DIR" ]; then
        for node in $(cl_existing_nodes); do cl_stop "$node" immediate & pids+=($!); done
    fi
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    # Reaping a stopped postmaster takes a moment; anything still there after
    # that is one of ours (found by its arguments): stop it by pid.
    for ((i = 0; i < 50; i++)); do
        left=$(dm_leftovers "$DEMO_DIR")
        [ -z "$left" ] && break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        cl_err "still running after the stop:"$'\n'"$left"
        while read -r pid _; do dm_kill_pid "$pid" TERM; done <<<"$left"
        left=$(dm_leftovers "$DEMO_DIR")
        [ -n "$left" ] && { cl_err "could not stop:"$'\n'"$left"; rc=1; }
    fi
    return $rc
}

ports() { local k; for ((k = 0; k <= NREPL; k++)); do echo $(( DEMO_PORT + k )); done; echo "$BOUNCER_PORT"; }

ports_free() {
    local p bad=0
    for p in $(ports); do
        if cl_port_busy "$p"; then echo "port $p is in use" >&2; bad=1; fi
    done
    return $bad
}

destroy() { stop_everything && rm -rf "$DEMO_DIR" && ports_free; }

DYING=0
STEP_PID="" STEP_LOG=""
die() {
    [ "$DYING" = 1 ] && exit 1
    DYING=1
    if [ "$DM_LINES" -gt 0 ]; then dm_release; elif [ "$DM_TTY" = 1 ]; then echo; fi
    echo "demo: $*" >&2
    # End a step still running (interrupted): its server, if it was starting
    # one, has written postmaster.pid by then and is stopped below.
    if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
        kill -TERM "$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
        rm -f "$STEP_LOG"
    fi
    if [ -d "${CL_DIR:-/nonexistent}" ]; then
        echo "demo: stopping everything the demo started (logs stay in $CL_DIR/*.log)" >&2
        stop_everything
    fi
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: run as root (it installs packages, builds and installs the extension, and runs the servers as 'postgres')" >&2
    exit 1
fi
cl_config "$DEMO_DIR" "$DEMO_PORT" "$NREPL" || exit 1
DM_BOUNCER_PORT=$BOUNCER_PORT
DM_INCLUDE="$DEMO_DIR/pgbouncer/databases.ini"
DM_PGBENCH_LOG="$DEMO_DIR/pgbench.log"

if [ "$mode" = stop ]; then
    if [ ! -d "$DEMO_DIR" ] && [ -z "$(dm_leftovers "$DEMO_DIR")" ]; then
        echo "no demo in $DEMO_DIR"
        exit 0
    fi
    step "Stopping the follower, pgbench, pgbouncer and the servers" destroy || exit 1
    echo "Stopped; no demo process left, ports $(ports | head -n 1)-$BOUNCER_PORT free, $DEMO_DIR removed."
    exit 0
fi

T0=$(cl_now_ms)
trap 'die "interrupted"' INT TERM
trap dm_tty_restore EXIT
dm_tty_setup

title "replica_router demo: a primary, $NREPL streaming replicas and pgbouncer on 127.0.0.1"
note "Data, sockets and logs in $DEMO_DIR; primary on port $DEMO_PORT, r1-r$NREPL on $(cl_port r1)-$(cl_port "r$NREPL"), pgbouncer on $BOUNCER_PORT."

title "Setting up"
step "Checking packages (scripts/deps.sh)" "$ROOT/scripts/deps.sh" || die "scripts/deps.sh failed"
export PATH="$CL_PGBIN:$PATH"  # pg_config of PostgreSQL 15 for the build
if [ "${RR_DEMO_BUILD:-1}" = 0 ] && [ -f /usr/share/postgresql/15/extension/replica_router.control ]; then
    note "  Build and install skipped (RR_DEMO_BUILD=0)."
else
    step "Building (make -s -j2)" make -C "$ROOT" -s -j2 || die "the build failed"
    step "Installing (make -s install)" make -C "$ROOT" -s install || die "make install failed"
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
FOLLOWER="$CL_PGBIN/replica_router_follower"
[ -x "$PGBOUNCER" ] || die "pgbouncer is not installed"
[ -x "$FOLLOWER" ] || die "$FOLLOWER is not installed"
if [ -e "$DEMO_DIR" ] || [ -n "$(dm_leftovers "$DEMO_DIR")" ]; then
    step "Stopping and removing the previous demo" destroy || die "could not remove the previous demo in $DEMO_DIR"
fi
ports_free || die "free those ports, or choose others with RR_DEMO_PORT=<port> (the demo uses it and the next five)"

step "Creating the primary (initdb)" cl_create_primary \
    "# --- scripts/demo.sh: a small max_lag, so paused replay shows quickly" \
    "replica_router.max_lag = '${MAX_LAG}s'" \
    "replica_router.lag_warning = '1s'" \
    "replica_router.lag_critical = '${LAG_CRITICAL}s'" \
    "log_timezone = 'UTC'" \
    || die "could not create the primary"
step "Starting the primary on port $DEMO_PORT" cl_start primary || die "the primary did not start"
each_replica() {  # each_replica FN: FN r1 & FN r2 & ..., all must succeed
    local k pids=() rc=0 p
    for ((k = 1; k <= NREPL; k++)); do "$1" "$k" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}
start_k() { cl_start "r$1"; }
step "Cloning r1-r$NREPL (pg_basebackup -R, in parallel)" each_replica cl_create_replica || die "could not clone the replicas"
step "Starting r1-r$NREPL (streaming from the primary)" each_replica start_k || die "the replicas did not start"

title "The extension on the primary; the replicas registered"
show "CREATE EXTENSION replica_router;"
show "SELECT n.id, n.name, n.conninfo FROM generate_series(1, $NREPL) k, LATERAL replica_router.add_replica('r' || k, format('host=127.0.0.1 port=%s dbname=postgres user=postgres', $DEMO_PORT + k)) n;"
state_is() { [ "$(cl_sql "SELECT state FROM replica_router.status WHERE node = '$1'" 2>/dev/null)" = "$2" ]; }
all_healthy() {
    [ "$(cl_sql "SELECT count(*) FROM replica_router.status WHERE role = 'replica' AND state = 'healthy'" 2>/dev/null)" = "$NREPL" ]
}
dm_wait "waiting for the worker to report the replicas healthy" 60 all_healthy \
    || die "the replicas did not become healthy (see $DEMO_DIR/primary.log)"
note "  All $NREPL replicas healthy $(dm_fmt_ms "$DM_WAITED_MS") after registration."

title "Write load: pgbench -c2 on the primary"
pgbench_init() { cl_as_pg pgbench -h "$DEMO_DIR" -p "$DEMO_PORT" -U postgres -i -s 1 -q postgres; }
step "pgbench -i -s 1" pgbench_init || die "pgbench -i failed"
dm_spawn pgbench "$CL_PGBIN/pgbench" -h "$DEMO_DIR" -p "$DEMO_PORT" -U postgres -n -c 2 -j 2 -T 3600 -P 1 -R 300 postgres \
    || die "pgbench did not start"
pgbench_runs() { grep -q '^progress:' "$DM_PGBENCH_LOG" 2>/dev/null; }
dm_wait "waiting for pgbench's first progress report" 10 pgbench_runs || die "pgbench does not run: $(tail -n 5 "$DM_PGBENCH_LOG")"
note "  pgbench -c2 -R 300 runs in the background (pid $(dm_pid pgbench), log $DM_PGBENCH_LOG)."

title "pgbouncer on port $BOUNCER_PORT, its read alias kept on the recommended replica"
BDIR="$DEMO_DIR/pgbouncer"
mkdir -p "$BDIR"
echo '"postgres" ""' >"$BDIR/userlist.txt"
cat >"$BDIR/pgbouncer.ini" <<EOF
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $DEMO_DIR
auth_type = trust
auth_file = $BDIR/userlist.txt
admin_users = postgres
pool_mode = session
logfile = $DEMO_DIR/pgbouncer.log
pidfile = $(dm_pidfile pgbouncer)
server_login_retry = 1
server_connect_timeout = 2
%include $DM_INCLUDE
EOF
chown -R "$CL_USER:" "$BDIR"
FOLLOW=("$FOLLOWER" --source "host=$DEMO_DIR port=$DEMO_PORT dbname=postgres user=postgres"
        --output "$DM_INCLUDE" --dbname postgres --read-alias "$DM_READ_ALIAS" --write-alias "$DM_WRITE_ALIAS"
        --interval 1s)
first_file() { cl_as_pg "${FOLLOW[@]}" --once; }
step "replica_router_follower --once (pgbouncer needs the file at start)" first_file || die "the follower could not write $DM_INCLUDE"
bouncer_up() { [ -n "$(dm_probe "$DM_WRITE_ALIAS")" ]; }
for ((try = 1; ; try++)); do  # retried like cl_start when its port was taken meanwhile
    cl_as_pg "$PGBOUNCER" -d -q "$BDIR/pgbouncer.ini" || die "pgbouncer did not start (see $DEMO_DIR/pgbouncer.log)"
    dm_wait "waiting for pgbouncer" 10 bouncer_up && break
    dm_running pgbouncer && die "pgbouncer does not answer (see $DEMO_DIR/pgbouncer.log)"
    if [ "$try" -ge 5 ] || ! grep -q 'Address already in use' "$DEMO_DIR/pgbouncer.log"; then
        die "pgbouncer did not start (see $DEMO_DIR/pgbouncer.log)"
    fi
    sleep 1
done
dm_spawn follower "${FOLLOW[@]}" --pgbouncer "host=127.0.0.1 port=$BOUNCER_PORT dbname=pgbouncer user=postgres" \
    || die "the follower did not start"
follower_ready() { grep -qE 'pgbouncer at .* (reloaded|already has)' "$DEMO_DIR/follower.log" 2>/dev/null; }
dm_wait "waiting for the follower to listen and check pgbouncer" 15 follower_ready \
    || die "the follower did not check or reload pgbouncer: $(tail -n 5 "$DEMO_DIR/follower.log")"
note "  pgbouncer (pid $(dm_pid pgbouncer)) loads $DM_INCLUDE; the follower (pid $(dm_pid follower)) LISTENs on the primary and rewrites it on every state change:"
dm_release
sed 's/^/    /' "$DM_INCLUDE"
echo

# probe_show: a psql through pgbouncer's read alias, shown; PROBE = the port.
probe_show() {
    local rc
    dm_release
    printf '%s$ psql -h 127.0.0.1 -p %s -U postgres -d %s -c '\''SELECT inet_server_port()'\''%s\n' "$B" "$BOUNCER_PORT" "$DM_READ_ALIAS" "$R"
    PROBE_OUT=$(timeout 5 "$CL_PGBIN/psql" -X -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d "$DM_READ_ALIAS" \
        -c 'SELECT inet_server_port()' 2>&1); rc=$?
    printf '%s\n\n' "$PROBE_OUT"
    [ "$rc" -eq 0 ] || die "no connection through pgbouncer's $DM_READ_ALIAS"
    PROBE=$(sed -n 3p <<<"$PROBE_OUT" | tr -d ' ')
}
# read_target: READ_NODE / READ_PORT = where the include file points app_read.
read_target() {
    local t
    t=$(dm_alias_target "$DM_READ_ALIAS") || die "no $DM_READ_ALIAS line in $DM_INCLUDE"
    READ_NODE=${t% *} READ_PORT=${t#* }
}
read_target
probe_show
[ "$PROBE" = "$READ_PORT" ] || die "$DM_READ_ALIAS landed on port $PROBE, the file names $READ_PORT"
case $READ_NODE in r[0-9]*) ;; *) die "$DM_READ_ALIAS points at $READ_NODE, not at a replica" ;; esac
note "  $DM_READ_ALIAS lands on $READ_NODE (port $READ_PORT), the replica the follower chose."
pause

title "Reads spread over the replicas"
note "The live table below calls recommend('read') $DM_SAMPLE times per refresh (round-robin) and shows where each answer went."
dm_watch 3 "watching ..."
dm_release
show "SELECT node, count(*) FROM (SELECT (replica_router.recommend('read')).node FROM generate_series(1, 30)) x GROUP BY node ORDER BY node;"
for ((k = 1; k <= NREPL; k++)); do
    grep -Eq "^ r$k +\| +[1-9]" <<<"$SHOW_OUT" || die "30 recommend('read') calls did not name r$k"
done
note "  30 calls, all $NREPL replicas named; the primary gets none (it is for writes)."
pause

# --- Act 2: paused replay -------------------------------------------------------
sev_is() { [ "$(cl_sql "SELECT severity FROM replica_router.lag WHERE node = '$1'" 2>/dev/null)" = "$2" ]; }
recommend_count() {  # how many of 30 recommend('read') calls name $1
    cl_sql "SELECT count(*) FILTER (WHERE node = '$1') FROM (SELECT (replica_router.recommend('read')).node FROM generate_series(1, 30)) x" 2>/dev/null
}
not_recommended() { [ "$(recommend_count "$1")" = 0 ]; }
recommended() { local n; n=$(recommend_count "$1"); [ -n "$n" ] && [ "$n" -gt 0 ]; }
# file_moved_from NODE: the follower's file points the read alias elsewhere.
file_moved_from() { read_target; [ "$READ_NODE" != "$1" ]; }
# probe_lands PORT: a new connection through the read alias lands on PORT.
probe_lands() { [ "$(dm_probe "$DM_READ_ALIAS")" = "$1" ]; }
since() { dm_fmt_ms $(( $(cl_now_ms) - $1 )); }
# Times from the logs (exact, unlike polling from here): the worker logs each
# state change, the servers their shutdown and start, the follower its writes.
worker_logged() { dm_log_ms "$DEMO_DIR/primary.log" "replica_router: replica \"$1\" is now $2"; }
ms_between() { if [ -n "$1" ] && [ -n "$2" ]; then echo $(( $2 - $1 )); else echo "?"; fi; }

# follow NODE SINCE_MS WHAT: the follower moves the read alias off NODE, and a
# new connection through pgbouncer lands where the file says.
follow() {
    local node=$1 since_ms=$2 what=$3 wrote t
    dm_wait "waiting for the follower to point $DM_READ_ALIAS away from $node" 15 file_moved_from "$node" \
        || die "the follower still points $DM_READ_ALIAS at $node"
    wrote=$(dm_log_ms "$DEMO_DIR/follower.log" "wrote $DM_INCLUDE: $DM_READ_ALIAS -> $READ_NODE ")
    figure "the follower pointed $DM_READ_ALIAS at $READ_NODE and reloaded pgbouncer $(ms_between "$since_ms" "$wrote") ms after $what (NOTIFY from the worker)"
    t=$(cl_now_ms)
    dm_wait "waiting for a new connection through $DM_READ_ALIAS to land on $READ_NODE" 15 probe_lands "$READ_PORT" \
        || die "connections through $DM_READ_ALIAS do not land on $READ_NODE"
    note "  A new connection through pgbouncer's $DM_READ_ALIAS lands on $READ_NODE ($(since "$t") after the rewrite was seen here)."
}

read_target
V=$READ_NODE VPORT=$READ_PORT
title "$V stops replaying WAL (pg_wal_replay_pause) while pgbench writes"
note "replica_router.max_lag = ${MAX_LAG}s here; lag_warning = 1s, lag_critical = ${LAG_CRITICAL}s. $V is where $DM_READ_ALIAS points."
TP=$(cl_now_ms)
show "SELECT pg_wal_replay_pause();" "$V"
dm_wait "waiting for $V's severity to be warning (replay paused)" 10 sev_is "$V" warning \
    || die "$V's severity did not become warning"
figure "$V severity warning $(since "$TP") after the pause (lag.replay_paused; the worker polls every 200ms)"
dm_wait "waiting for $V to be lagging (lag > ${MAX_LAG}s)" 30 state_is "$V" lagging || die "$V did not become lagging"
T_LAGGING=$(worker_logged "$V" lagging) || T_LAGGING=$(cl_now_ms)
figure "$V lagging $(dm_fmt_ms $(( T_LAGGING - TP ))) after the pause, its replay lag past max_lag"
not_recommended "$V" || die "recommend('read') still names $V although it is lagging"
note "  From then on recommend('read') leaves $V out (checked: 0 of 30 calls name it)."
follow "$V" "$T_LAGGING" "$V was marked lagging"
dm_wait "waiting for $V's severity to be critical (lag >= ${LAG_CRITICAL}s)" 30 sev_is "$V" critical \
    || die "$V's severity did not become critical"
VLAG=$(cl_sql "SELECT round(lag_seconds::numeric, 1) FROM replica_router.status WHERE node = '$V'")
figure "$V severity critical, its lag ${VLAG:-?} s >= lag_critical ${LAG_CRITICAL}s (seen $(since "$TP") after the pause)"
dm_snapshot
probe_show
[ "$PROBE" != "$VPORT" ] || die "$DM_READ_ALIAS still lands on $V"
pause

title "$V replays again (pg_wal_replay_resume)"
TR=$(cl_now_ms)
show "SELECT pg_wal_replay_resume();" "$V"
dm_wait "waiting for $V to catch up and pass the damping polls" 30 state_is "$V" healthy \
    || die "$V did not become healthy again"
T_BACK=$(worker_logged "$V" healthy) || T_BACK=$(cl_now_ms)
figure "$V healthy again $(dm_fmt_ms $(( T_BACK - TR ))) after the resume (lag under 80% of max_lag, then recovery_polls = 3 good polls)"
dm_wait "waiting for recommend('read') to name $V again" 5 recommended "$V" || die "recommend('read') does not name $V again"
read_target
note "  $DM_READ_ALIAS stays on $READ_NODE: the follower keeps a replica while it still qualifies (no needless reload)."
dm_snapshot
pause

# --- Act 3: a stopped replica ----------------------------------------------------
read_target
S=$READ_NODE SPORT=$READ_PORT
title "$S is stopped (fast shutdown: SIGINT to its postmaster, as pg_ctl stop -m fast sends)"
note "$S is where $DM_READ_ALIAS points now."
SPID=$(sed -n 1p "$(cl_datadir "$S")/postmaster.pid") || die "$S is not running"
kill -INT "$SPID" || die "could not signal $S's postmaster ($SPID)"
TS=$(cl_now_ms)
dm_wait "waiting for $S to leave the rotation" 10 state_is "$S" down || die "$S was not marked down"
gone() { ! cl_pid_alive "$SPID"; }
dm_wait "waiting for $S's postmaster to exit" 30 gone || die "$S did not stop"
T_REQ=$(dm_log_ms "$DEMO_DIR/$S.log" "received fast shutdown request") || T_REQ=$TS
T_DOWN=$(worker_logged "$S" down) || T_DOWN=$(cl_now_ms)
T_EXIT=$(dm_log_ms "$DEMO_DIR/$S.log" "database system is shut down") || T_EXIT=$(cl_now_ms)
DOWN_MS=$(( T_DOWN - T_REQ ))
figure "$S left the rotation $DOWN_MS ms after it received the shutdown request (its shutdown took $(( T_EXIT - T_REQ )) ms)"
# Detection takes milliseconds (the worker sees the connection close); the
# limit leaves room for a busy CI machine.
[ "$DOWN_MS" -lt 2000 ] || die "$S took $DOWN_MS ms to leave the rotation"
not_recommended "$S" || die "recommend('read') still names $S"
follow "$S" "$T_DOWN" "$S was marked down"
dm_snapshot
probe_show
[ "$PROBE" != "$SPORT" ] || die "$DM_READ_ALIAS still lands on $S"
pause

title "$S is started again"
step "Starting $S (pg_ctl start -w)" cl_start "$S" || die "$S did not start again"
dm_wait "waiting for $S to pass the damping polls (recovery_polls = 3)" 30 state_is "$S" healthy \
    || die "$S did not become healthy again"
T_READY=$(dm_log_ms "$DEMO_DIR/$S.log" "database system is ready to accept read-only connections") || T_READY=$(cl_now_ms)
T_BACK=$(worker_logged "$S" healthy) || T_BACK=$(cl_now_ms)
figure "$S back in rotation $(( T_BACK - T_READY )) ms after it accepted connections again (it caught up, then 3 good polls at poll_interval 200ms)"
dm_wait "waiting for recommend('read') to name $S again" 5 recommended "$S" || die "recommend('read') does not name $S again"
dm_snapshot

title "The end"
dm_kill pgbench INT || die "pgbench did not stop"
TPS=$(awk '/^progress:/ { n++; s += $4 } END { if (n) printf "%.0f tps on average over %d s", s / n, n }' "$DM_PGBENCH_LOG")
note "pgbench stopped (${TPS:-see $DM_PGBENCH_LOG})."
note "Measured in this run:"
for f in "${FIGURES[@]}"; do note "  - $f"; done
note "Done in $(since "$T0")."

trap - INT TERM
if [ "$teardown" = 1 ]; then
    step "Stopping the follower, pgbouncer and the servers" destroy || die "could not stop everything"
    note "Everything stopped, no demo process left, ports $DEMO_PORT-$BOUNCER_PORT free, $DEMO_DIR removed."
    exit 0
fi
cat <<EOF

Everything keeps running (as postgres; logs in $DEMO_DIR/*.log).

Connect to the primary (as root or postgres over the unix socket, or as anyone over TCP):
    psql -h $DEMO_DIR -p $DEMO_PORT -U postgres postgres
    psql -h 127.0.0.1 -p $DEMO_PORT -U postgres postgres
Replicas: the same with -p $(cl_port r1), $(cl_port r2) or $(cl_port r3). Through pgbouncer (aliases from the follower):
    psql -h 127.0.0.1 -p $BOUNCER_PORT -U postgres -d $DM_READ_ALIAS -c 'SELECT inet_server_port()'
    psql -h 127.0.0.1 -p $BOUNCER_PORT -U postgres -d $DM_WRITE_ALIAS
Authentication is trust: loopback only, throwaway.

Try:  SELECT * FROM replica_router.recommend('read');
      SELECT * FROM replica_router.status;
      SELECT node, state, replay_lag, severity FROM replica_router.lag;
      SELECT node, state, lag, connections FROM replica_router.status \watch 0.5
      (then, in another shell: psql -h $DEMO_DIR -p $(cl_port r1) -U postgres -c 'SELECT pg_wal_replay_pause()')

Stop everything (servers, pgbouncer, follower):
    $SELF --stop
EOF
