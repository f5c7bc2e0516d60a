# shellcheck shell=bash
# Shared by scripts/demo.sh and bench/recommend: a throwaway primary with
# replica_router preloaded and N streaming replicas on 127.0.0.1, every server
# running as the 'postgres' OS user (servers refuse to run as root).
#
# Source it, then:
#   cl_config DIR PORT [N]      data and sockets under DIR; the primary on PORT,
#                               replica rK on PORT+K (K = 1..N)
#   cl_check_ports              fail if one of those ports is taken
#   cl_create_primary [LINE..]  initdb + configuration (extra postgresql.conf lines)
#   cl_start NODE               start "primary" or "rK" (pg_ctl -w: waits until up;
#                               retried while the port is briefly taken)
#   cl_create_replica K         pg_basebackup -R from the running primary, port PORT+K
#   cl_install_extension        CREATE EXTENSION and add_replica() for r1..rN
#   cl_wait_healthy [SECS]      poll replica_router.status until all replicas are healthy
#   cl_wait_state NODE STATE [SECS]
#   cl_stop NODE [MODE]         pg_ctl stop (fast by default); checks the port is freed
#   cl_stop_all                 stop every server whose data directory is under DIR
#   cl_destroy                  cl_stop_all, then remove DIR
#   cl_psql [NODE] ARGS..       psql as superuser on a node (default: primary)
#   cl_sql SQL                  one value from the primary (psql -At)
#
# Waits are polls with a deadline; nothing sleeps blindly. Functions return
# non-zero on failure and say why on stderr. Authentication is trust on
# loopback and the unix socket: these clusters are for demos and benchmarks.

CL_PGBIN=${CL_PGBIN:-/usr/lib/postgresql/15/bin}
CL_USER=${CL_USER:-postgres}

cl_config() {
    CL_DIR=$1
    CL_PORT=$2
    CL_N=${3:-2}
    CL_SOCK=$CL_DIR  # sockets next to the data: $CL_DIR/.s.PGSQL.<port>
    if [ $(( ${#CL_SOCK} + 20 )) -ge 100 ]; then
        echo "cluster: socket directory $CL_SOCK is too long (unix socket paths must stay < 100 bytes)" >&2
        return 1
    fi
}

cl_err() { echo "cluster: $*" >&2; }

# Milliseconds since the epoch (bash 5's EPOCHREALTIME, no external tools).
cl_now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $(( t / 1000 )); }

cl_as_pg() { runuser -u "$CL_USER" -- env PATH="$CL_PGBIN:$PATH" "$@"; }

cl_datadir() { echo "$CL_DIR/$1"; }

cl_port() {
    case $1 in
        primary) echo "$CL_PORT" ;;
        r[0-9]*) echo $(( CL_PORT + ${1#r} )) ;;
        *) cl_err "unknown node $1"; return 1 ;;
    esac
}

cl_replicas() { local k; for ((k = 1; k <= CL_N; k++)); do echo "r$k"; done; }

# True when something accepts TCP connections on 127.0.0.1:PORT.
cl_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cl_check_ports() {
    local node port bad=0
    for node in primary $(cl_replicas); do
        port=$(cl_port "$node")
        if cl_port_busy "$port"; then
            cl_err "port $port (for $node) is already in use"
            bad=1
        fi
    done
    return $bad
}

cl_psql() {
    local node=primary
    case ${1:-} in primary|r[0-9]*) node=$1; shift ;; esac
    "$CL_PGBIN/psql" -X -h "$CL_SOCK" -p "$(cl_port "$node")" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -P pager=off "$@"
}

cl_sql() { cl_psql -qAt -c "$1"; }

cl_log_tail() {
    local log="$CL_DIR/$1.log"
    [ -f "$log" ] && { echo "--- last lines of $log:"; tail -n 20 "$log"; } >&2
    return 0
}

cl_create_primary() {
    local pgdata
    pgdata=$(cl_datadir primary)
    if [ -e "$pgdata" ]; then
        cl_err "$pgdata already exists"
        return 1
    fi
    mkdir -p "$CL_DIR" && chown "$CL_USER:" "$CL_DIR" && chmod 700 "$CL_DIR" || return 1
    if ! cl_as_pg initdb -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C -N >"$CL_DIR/initdb.log" 2>&1; then
        cl_err "initdb failed"; cat "$CL_DIR/initdb.log" >&2; return 1
    fi
    cat >>"$pgdata/postgresql.conf" <<EOF

# --- scripts/lib/cluster.sh
port = $CL_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CL_SOCK'
cluster_name = '$(basename "$CL_DIR")-primary'
shared_preload_libraries = 'replica_router'
wal_level = replica
max_wal_senders = 10
wal_keep_size = '128MB'
hot_standby = on
log_line_prefix = '%m [%p] %q%a '
# Fast polling so state changes show within a fraction of a second.
replica_router.poll_interval = '200ms'
replica_router.connect_timeout = '1s'
replica_router.query_timeout = '1s'
replica_router.stale_after = '3s'
EOF
    local line
    for line in "$@"; do echo "$line" >>"$pgdata/postgresql.conf"; done
}

# True while process PID exists and is not a zombie (a stopped postmaster is
# reparented to PID 1, which may take a while to reap it).
cl_pid_alive() {
    local stat
    [ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

cl_running() {
    local pidfile
    pidfile="$(cl_datadir "$1")/postmaster.pid"
    [ -f "$pidfile" ] && cl_pid_alive "$(head -n 1 "$pidfile")"
}

# The ports lie in Linux's ephemeral range (32768-60999), so a client socket
# elsewhere on the machine may hold one for a moment: a start that failed to
# bind is retried a few times.
cl_start() {
    local node=$1 pgdata try
    pgdata=$(cl_datadir "$node")
    for try in 1 2 3 4 5; do
        # -w: pg_ctl polls until the server accepts connections (or 60 s pass).
        cl_as_pg pg_ctl -D "$pgdata" -l "$CL_DIR/$node.log" -w -t 60 start >/dev/null 2>&1 && return 0
        tail -n 5 "$CL_DIR/$node.log" 2>/dev/null | grep -q 'could not bind\|could not create any TCP/IP' || break
        [ "$try" -lt 5 ] && { cl_err "port $(cl_port "$node") of $node is taken for a moment; retrying"; sleep 1; }
    done
    cl_err "$node did not start"
    cl_log_tail "$node"
    return 1
}

cl_create_replica() {
    local k=$1 node="r$1" pgdata
    pgdata=$(cl_datadir "$node")
    if [ -e "$pgdata" ]; then
        cl_err "$pgdata already exists"
        return 1
    fi
    if ! cl_as_pg pg_basebackup -h "$CL_SOCK" -p "$CL_PORT" -U postgres -D "$pgdata" -R -X stream -c fast -N \
            >"$CL_DIR/$node.basebackup.log" 2>&1; then
        cl_err "pg_basebackup for $node failed"; cat "$CL_DIR/$node.basebackup.log" >&2; return 1
    fi
    # Later lines win: the copy of the primary's postgresql.conf keeps
    # everything else (replica_router is preloaded on standbys too, where
    # recommend() answers from the replicated hints).
    cat >>"$pgdata/postgresql.conf" <<EOF
# --- replica $node
port = $(( CL_PORT + k ))
cluster_name = '$(basename "$CL_DIR")-$node'
EOF
}

cl_install_extension() {
    local node sql="CREATE EXTENSION IF NOT EXISTS replica_router;"
    for node in $(cl_replicas); do
        sql+=" SELECT replica_router.add_replica('$node', 'host=127.0.0.1 port=$(cl_port "$node") dbname=postgres user=postgres');"
    done
    cl_psql -q -c "$sql" >/dev/null
}

# Replica states as "r1=healthy r2=unknown".
cl_states() {
    cl_sql "SELECT string_agg(node || '=' || state, ' ' ORDER BY node) FROM replica_router.status WHERE role = 'replica'" 2>/dev/null
}

# Polls until every replica is healthy. Prints the states each time they change
# (callers may show them as progress). CL_WAITED_MS holds the time it took.
cl_wait_healthy() {
    local secs=${1:-60} start states last="" want n
    want=$(for n in $(cl_replicas); do printf '%s=healthy ' "$n"; done)
    want=${want% }
    start=$(cl_now_ms)
    while :; do
        states=$(cl_states)
        [ "$states" != "$last" ] && { echo "$states"; last=$states; }
        [ "$states" = "$want" ] && break
        if (( $(cl_now_ms) - start >= secs * 1000 )); then
            cl_err "replicas not healthy after ${secs}s: ${states:-no answer from the primary}"
            return 1
        fi
        sleep 0.05
    done
    # shellcheck disable=SC2034 # read by callers
    CL_WAITED_MS=$(( $(cl_now_ms) - start ))
}

# cl_wait_state NODE STATE [SECS]: polls replica_router.status for NODE.
cl_wait_state() {
    local node=$1 want=$2 secs=${3:-30} start state
    start=$(cl_now_ms)
    while :; do
        state=$(cl_sql "SELECT state FROM replica_router.status WHERE node = '$node'" 2>/dev/null)
        [ "$state" = "$want" ] && break
        if (( $(cl_now_ms) - start >= secs * 1000 )); then
            cl_err "$node is ${state:-?}, not $want, after ${secs}s"
            return 1
        fi
        sleep 0.02
    done
    # shellcheck disable=SC2034 # read by callers
    CL_WAITED_MS=$(( $(cl_now_ms) - start ))
}

# Stops one server and makes sure its postmaster is gone and its port free.
cl_stop() {
    local node=$1 mode=${2:-fast} pgdata pid port i
    pgdata=$(cl_datadir "$node")
    [ -f "$pgdata/postmaster.pid" ] || return 0
    pid=$(sed -n 1p "$pgdata/postmaster.pid")
    port=$(sed -n 4p "$pgdata/postmaster.pid")
    if cl_pid_alive "$pid"; then
        if ! cl_as_pg pg_ctl -D "$pgdata" -m "$mode" -w -t 60 stop >/dev/null 2>&1; then
            cl_err "$node did not stop within 60 s; killing postmaster $pid"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    for ((i = 0; i < 200; i++)); do
        if ! cl_pid_alive "$pid" && ! { [ -n "$port" ] && cl_port_busy "$port"; }; then
            return 0
        fi
        sleep 0.05
    done
    cl_err "$node (pid $pid, port $port) is still there after stopping"
    return 1
}

# Every node that has a data directory under CL_DIR, replicas first.
cl_existing_nodes() {
    local d
    for d in "$CL_DIR"/r*/PG_VERSION; do [ -f "$d" ] && basename "$(dirname "$d")"; done
    [ -f "$CL_DIR/primary/PG_VERSION" ] && echo primary
    return 0
}

cl_stop_all() {
    local node pids=() rc=0 p
    [ -d "$CL_DIR" ] || return 0
    for node in $(cl_existing_nodes); do
        cl_stop "$node" fast &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}

cl_destroy() {
    [ -n "${CL_DIR:-}" ] || return 1
    cl_stop_all || return 1
    rm -rf "$CL_DIR"
}
