# shellcheck shell=bash
# Shared by every script in bench/ (sourced after ROOT is set; it sources
# scripts/lib/cluster.sh): setup (root check, scripts/deps.sh, build), free
# ports, output files, and long-lived psql sessions for tight polling loops.
#
#   bl_init NAME            say/fail prefix NAME; BL_OUT (the results directory,
#                           ${RR_BENCH_OUT:-$ROOT/bench/results}) created
#                           (a script that writes no results sets BL_NAME only)
#   say MSG..               a line on stderr
#   fail MSG..              says "NAME: MSG", calls the script's cleanup() if
#                           it has one, closes the sessions, stops the cluster
#                           (its logs named, and BL_MORE_LOGS if set), exit 1
#   bl_setup                root check, scripts/deps.sh, PATH with the
#                           PostgreSQL binaries, build and install unless
#                           BL_BUILD (default RR_BENCH_BUILD, default 1) is 0
#                           (make's output in BL_BUILD_LOG if set, else shown
#                           only on failure), the extension installed
#   bl_free_ports N         N free ports (one line) from PostgreSQL::Test::Cluster
#   bl_ports N [MORE]       BL_PORTS: N consecutive free ports (a cluster's
#                           primary and replicas), then MORE others
#   bl_fresh_cluster        remove a previous cluster in CL_DIR, check ports
#   bl_hang_listener PORT [KEEP]
#                           a TCP port on 127.0.0.1 that accepts and never
#                           answers (keeps the last KEEP connections, default
#                           200); its pid in BL_HANG_PID; bl_hang_stop ends it
#   bl_sess_open ID NODE    a psql session on NODE (cl_psql), kept open
#   bl_sess_query ID SQL [SECS]
#                           runs SQL there; its output lines in BL_REPLY
#                           (errors too); non-zero when no answer within SECS
#   bl_sess_close ID
#   bl_now_us               the host clock (EPOCHREALTIME; cl_now_ms in ms)
#   bl_cpu_ticks PID        user + system CPU of a process, clock ticks
#   bl_pq SQL [SECS]        bl_sess_query in session "p", failing on an error
#   bl_median / bl_median1 (one decimal) / bl_min / bl_max / bl_mean
#                           of the numbers given as arguments
#   bl_wait_until SECS CMD..  runs CMD every 20 ms until it succeeds or SECS pass
#
# A script defines cleanup() for its own processes; fail() calls it, stops the
# cluster and exits 1. Sessions are closed by fail() as well.

# shellcheck source=scripts/lib/cluster.sh
. "$ROOT/scripts/lib/cluster.sh"
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD
export LC_ALL=C

BL_NAME=bench
BL_OUT=
declare -A BL_SESS_PID=() BL_SESS_IN=() BL_SESS_OUT=() BL_SESS_DIR=()
BL_REPLY=

bl_init() {
    BL_NAME=$1
    BL_OUT=${RR_BENCH_OUT:-$ROOT/bench/results}
    mkdir -p "$BL_OUT" || { echo "$BL_NAME: cannot create $BL_OUT" >&2; exit 1; }
}

say() { printf '%s\n' "$*" >&2; }

bl_sess_close_all() {
    local id
    for id in "${!BL_SESS_PID[@]}"; do bl_sess_close "$id"; done
}

BL_MORE_LOGS=
fail() {
    say "$BL_NAME: $*"
    declare -F cleanup >/dev/null && cleanup
    bl_sess_close_all
    bl_hang_stop
    [ -d "${CL_DIR:-/nonexistent}" ] && { say "$BL_NAME: logs in $CL_DIR/*.log${BL_MORE_LOGS:+ and $BL_MORE_LOGS}"; cl_stop_all; }
    exit 1
}

BL_BUILD=${RR_BENCH_BUILD:-1}
BL_BUILD_LOG=
bl_setup() {
    [ "$(id -u)" -eq 0 ] || { say "$BL_NAME: run as root (it installs packages and runs the servers as 'postgres')"; exit 1; }
    "$ROOT/scripts/deps.sh" || fail "scripts/deps.sh failed"
    export PATH="$CL_PGBIN:$PATH"
    if [ "$BL_BUILD" = 1 ]; then
        say "building and installing (make -s -j2 && make -s install)"
        local log=$BL_BUILD_LOG
        [ -n "$log" ] || log=$(mktemp /tmp/rr-bench-build.XXXXXX)
        { make -C "$ROOT" -s -j2 && make -C "$ROOT" -s install; } >"$log" 2>&1 \
            || { cat "$log" >&2; [ -n "$BL_BUILD_LOG" ] || rm -f "$log"; fail "the build failed"; }
        [ -n "$BL_BUILD_LOG" ] || rm -f "$log"
    fi
    [ -f "$("$CL_PGBIN/pg_config" --sharedir)/extension/replica_router.control" ] \
        || fail "replica_router is not installed (run with the build on)"
}

# bl_free_ports N: N free ports from PostgreSQL::Test::Cluster's allocator
# (which also reserves them against other test runs), on one line.
bl_free_ports() {
    local t out perl_lib
    perl_lib=$(dirname "$(dirname "$(dirname "$("$CL_PGBIN/pg_config" --pgxs)")")")/src/test/perl
    t=$(mktemp -d /tmp/rr-ports.XXXXXX)
    out=$(TESTDIR=$t PG_TEST_PORT_DIR=$t/ports perl -I"$perl_lib" -MPostgreSQL::Test::Cluster -e \
        'open my $o, ">&", 3 or die; print $o join(" ", map { PostgreSQL::Test::Cluster::get_free_port() } 1 .. $ARGV[0])' \
        "$1" 3>&1 >/dev/null 2>/dev/null)
    rm -rf "$t"
    echo "$out"
}

# bl_ports N [MORE]: BL_PORTS = N consecutive free ports, then MORE others
# (five tries); fails when there are none.
BL_PORTS=()
bl_ports() {
    local n=$1 more=${2:-0} try
    for try in 1 2 3 4 5; do
        read -r -a BL_PORTS <<<"$(bl_free_ports $((n + more)))"
        [ ${#BL_PORTS[@]} -eq $((n + more)) ] || fail "could not get free ports from PostgreSQL::Test::Cluster"
        [ $((BL_PORTS[n - 1] - BL_PORTS[0])) -eq $((n - 1)) ] && return 0
    done
    fail "no $n consecutive free ports"
}

bl_fresh_cluster() {
    if [ -e "$CL_DIR" ]; then
        say "removing a previous cluster in $CL_DIR"
        cl_destroy || fail "could not remove $CL_DIR"
    fi
    cl_check_ports || fail "ports in use; choose others with the PORT setting"
}

# bl_hang_listener PORT [KEEP]: accepts connections on 127.0.0.1:PORT and
# never answers; keeps the last KEEP (default 200) open. Non-zero when it
# does not listen within 10 s (BL_HANG_PID is set either way).
BL_HANG_PID=
bl_hang_listener() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 128,
            ReuseAddr => 1, Proto => "tcp") or die "listen: $!";
        my @held;
        while (my $c = $s->accept) { push @held, $c; shift @held if @held > $ARGV[1]; }' "$1" "${2:-200}" &
    BL_HANG_PID=$!
    bl_wait_until 10 cl_port_busy "$1"
}

bl_hang_stop() {
    [ -n "$BL_HANG_PID" ] && { kill "$BL_HANG_PID" 2>/dev/null; wait "$BL_HANG_PID" 2>/dev/null; }
    BL_HANG_PID=
    return 0
}

bl_now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }

# bl_cpu_ticks PID: user + system CPU of a process, in clock ticks.
bl_cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# bl_pq SQL [SECS]: SQL in session "p"; fails (and says why) on an error.
bl_pq() { bl_sess_query p "$1" "${2:-30}" || return 1; case $BL_REPLY in *ERROR*|*FATAL*) say "$BL_REPLY"; return 1 ;; esac; }

# A psql session fed through a FIFO, answering into another: no process per
# query, so a polling loop costs one round trip per check.
bl_sess_open() {
    local id=$1 node=$2 d in out
    d=$(mktemp -d /tmp/rr-sess.XXXXXX) || return 1
    mkfifo "$d/in" "$d/out" || return 1
    cl_psql "$node" -qAt -F ' ' -v ON_ERROR_STOP=0 <"$d/in" >"$d/out" 2>&1 &
    BL_SESS_PID[$id]=$!
    exec {in}>"$d/in" {out}<"$d/out"
    BL_SESS_IN[$id]=$in BL_SESS_OUT[$id]=$out BL_SESS_DIR[$id]=$d
    bl_sess_query "$id" "SET client_min_messages = warning; SELECT 1" 10 && [ "$BL_REPLY" = 1 ]
}

bl_sess_query() {
    local id=$1 sql=$2 secs=${3:-30} line deadline now
    BL_REPLY=
    [ -n "${BL_SESS_PID[$id]:-}" ] || return 1
    printf '%s;\n\\echo @@end@@\n' "$sql" 2>/dev/null 1>&"${BL_SESS_IN[$id]}" || return 1
    now=${EPOCHREALTIME//[.,]/}
    deadline=$(( now + ${secs%%.*} * 1000000 + 1000000 ))
    while IFS= read -r -t "$secs" line <&"${BL_SESS_OUT[$id]}"; do
        [ "$line" = "@@end@@" ] && return 0
        BL_REPLY+=${BL_REPLY:+$'\n'}$line
        now=${EPOCHREALTIME//[.,]/}
        [ "$now" -lt "$deadline" ] || return 1
    done
    return 1
}

bl_sess_close() {
    local id=$1 in out pid
    pid=${BL_SESS_PID[$id]:-}
    [ -n "$pid" ] || return 0
    in=${BL_SESS_IN[$id]} out=${BL_SESS_OUT[$id]}
    exec {in}>&- {out}<&-
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "${BL_SESS_DIR[$id]}"
    unset "BL_SESS_PID[$id]" "BL_SESS_IN[$id]" "BL_SESS_OUT[$id]" "BL_SESS_DIR[$id]"
}

# Statistics of the numeric arguments (empty when there are none).
bl_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bl_median1() { local m; m=$(bl_median "$@"); [ -n "$m" ] && printf '%.1f\n' "$m"; return 0; }
bl_max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
bl_min() { printf '%s\n' "$@" | sort -g | head -n 1; }
bl_mean() { printf '%s\n' "$@" | awk 'NF { s += $1; n++ } END { if (n) printf "%.3f\n", s / n }'; }

bl_wait_until() {
    local secs=$1 start
    shift
    start=$(cl_now_ms)
    until "$@"; do
        (( $(cl_now_ms) - start < secs * 1000 )) || return 1
        sleep 0.02
    done
}

bl_machine() {
    local cpu
    cpu=$(sed -nE 's/^model name[[:space:]]*: (.*)/\1/p' /proc/cpuinfo | head -n 1)
    echo "$(nproc) CPUs, ${cpu:-unknown CPU}; $(uname -sr); $("$CL_PGBIN/postgres" --version)"
}

# bl_nap SECS: a pause without a process (read with a timeout on a FIFO that
# never gets data); used between polls, never as synchronisation.
BL_NAP_FD=
bl_nap() {
    if [ -z "$BL_NAP_FD" ]; then
        local d
        d=$(mktemp -d /tmp/rr-nap.XXXXXX) && mkfifo "$d/f" && exec {BL_NAP_FD}<>"$d/f" && rm -rf "$d"
    fi
    read -r -t "$1" -u "$BL_NAP_FD" _
    return 0
}

# bl_ms DURATION: a PostgreSQL duration ("100ms", "2s", "1min", "500") in ms.
bl_ms() {
    local v=$1
    case $v in
        *ms) echo "${v%ms}" ;;
        *min) echo $(( ${v%min} * 60000 )) ;;
        *s) echo $(( ${v%s} * 1000 )) ;;
        *) echo "$v" ;;
    esac
}
