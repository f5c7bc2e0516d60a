# shellcheck shell=bash
# Helpers of scripts/demo.sh: background processes it owns (pgbouncer, the
# follower, pgbench), a live status table redrawn in place on a terminal, and
# waits that keep that table fresh while they poll. Needs scripts/lib/cluster.sh
# (cl_*) sourced and cl_config called first.
#
#   dm_spawn NAME CMD..       run CMD as postgres, detached (own session), output in
#                             DIR/NAME.log, pid in DIR/NAME.pid
#   dm_kill NAME [SIG]        stop it (SIGTERM by default) and wait until it is gone
#   dm_leftovers DIR          list processes that belong to a demo in DIR (pid + args)
#   dm_draw [FOOTER]          draw the live table (redrawn in place on a terminal)
#   dm_say TEXT               print a line above the live table
#   dm_snapshot               print the table once, where it is (no redraw later)
#   dm_wait LABEL SECS FN..   poll FN until it succeeds, redrawing meanwhile; DM_WAITED_MS
#   dm_probe ALIAS            the port a connection through pgbouncer's ALIAS lands on
#
# The table shows, per node: state, lag, severity (replica_router.lag),
# connections, how many of DM_SAMPLE recommend('read') calls named it, and
# which pgbouncer alias points at it (from the follower's include file).

DM_TTY=0
DM_LINES=0          # lines of the frame on screen (to move the cursor back up)
DM_FRAME=()         # last frame drawn
DM_SAMPLE=12        # recommend('read') calls per frame
DM_BOUNCER_PORT=""  # set by the demo
DM_INCLUDE=""       # the follower's include file
DM_READ_ALIAS=app_read
DM_WRITE_ALIAS=app_write
DM_PGBENCH_LOG=""
DM_SPIN=$'|/-\\'
if [ -t 1 ]; then DM_TTY=1; fi

dm_now_ms() { cl_now_ms; }
dm_fmt_ms() { local ms=$1; printf '%d.%01d s' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

# ---------------------------------------------------------------- processes

dm_pidfile() { echo "$CL_DIR/$1.pid"; }

dm_spawn() {
    local name=$1 pidfile log i
    shift
    pidfile=$(dm_pidfile "$name")
    log="$CL_DIR/$name.log"
    rm -f "$pidfile"
    # setsid -f: own session, so a Ctrl-C at the terminal or the end of this
    # script does not reach it; the shell writes its pid and execs CMD.
    # shellcheck disable=SC2016 # expanded by the inner shell
    cl_as_pg setsid -f bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >"$log" 2>&1 </dev/null || return 1
    for ((i = 0; i < 100; i++)); do
        [ -s "$pidfile" ] && return 0
        sleep 0.02
    done
    cl_err "$name did not start (no $pidfile)"
    return 1
}

dm_pid() { local f; f=$(dm_pidfile "$1"); [ -s "$f" ] && head -n 1 "$f"; }

dm_running() { local pid; pid=$(dm_pid "$1") && cl_pid_alive "$pid"; }

# dm_kill_pid PID [SIG]: signal, wait up to 5 s, then SIGKILL.
dm_kill_pid() {
    local pid=$1 sig=${2:-TERM} i
    cl_pid_alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        cl_pid_alive "$pid" || return 0
        sleep 0.05
    done
    cl_err "process $pid did not stop on SIG$sig; killing it"
    kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 40; i++)); do
        cl_pid_alive "$pid" || return 0
        sleep 0.05
    done
    return 1
}

dm_kill() {
    local name=$1 sig=${2:-TERM} pid rc=0
    if pid=$(dm_pid "$name"); then
        dm_kill_pid "$pid" "$sig" || rc=1
    fi
    rm -f "$(dm_pidfile "$name")"
    return $rc
}

# Processes of a demo in DIR: any whose arguments name DIR (servers' -D,
# pgbouncer's ini, the follower's file, pgbench's -h) and the servers'
# children, titled "postgres: <basename DIR>-<node>: ...".
dm_leftovers() {
    local dir=$1 base p args argv
    base=$(basename "$dir")
    # Builtins only: a fork per process would take seconds on a busy machine.
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
        argv=()
        mapfile -d '' -t argv 2>/dev/null <"/proc/$p/cmdline" || continue
        [ ${#argv[@]} -gt 0 ] || continue
        args=" ${argv[*]} "
        case $args in
            *" $dir "* | *" $dir/"* | *"=$dir/"* | *"=$dir "* | " postgres: $base-primary:"* | " postgres: $base-r"[0-9]*)
                cl_pid_alive "$p" && echo "$p${args% }" ;;
        esac
    done
    return 0
}

# ---------------------------------------------------------------- log times

# dm_log_ms FILE TEXT: the time (ms since the epoch) of the last line of FILE
# that contains TEXT; PostgreSQL's log_line_prefix '%m ...' (log_timezone
# UTC) or the follower's ISO stamp.
dm_log_ms() {
    local line
    line=$(grep -F -- "$2" "$1" 2>/dev/null | tail -n 1)
    [ -n "$line" ] || return 1
    if [[ $line =~ ^([0-9]{4}-[0-9]{2}-[0-9]{2})[\ T]([0-9:.]+)(\ UTC|Z) ]]; then
        date -u -d "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}" +%s%3N 2>/dev/null
    else
        return 1
    fi
}

# ---------------------------------------------------------------- the table

# Where an alias of the include file points: "node port", e.g. "r2 55442".
dm_alias_target() {
    local alias=$1 line port
    [ -f "$DM_INCLUDE" ] || return 1
    line=$(grep -m1 "^$alias = " "$DM_INCLUDE") || return 1
    [[ $line =~ port=([0-9]+) ]] || return 1
    port=${BASH_REMATCH[1]}
    if [ "$port" = "$CL_PORT" ]; then echo "primary $port"; else echo "r$(( port - CL_PORT )) $port"; fi
}

dm_node_of_port() {
    local port=$1
    case $port in
        "") echo "?" ;;
        "$CL_PORT") echo primary ;;
        *) echo "r$(( port - CL_PORT ))" ;;
    esac
}

# The port a fresh connection through pgbouncer's ALIAS lands on ("" if none).
dm_probe() {
    timeout 4 "$CL_PGBIN/psql" -XAtq \
        -d "host=127.0.0.1 port=$DM_BOUNCER_PORT dbname=$1 user=postgres connect_timeout=2" \
        -c 'SELECT inet_server_port()' 2>/dev/null
}

dm_table_sql() {
    local rnode=$1 wnode=$2
    cat <<EOF
WITH s AS (SELECT * FROM replica_router.status),
     l AS (SELECT node, severity, replay_paused FROM replica_router.lag),
     p AS (SELECT (replica_router.recommend('read')).node FROM generate_series(1, $DM_SAMPLE)),
     c AS (SELECT node, count(*) AS n FROM p GROUP BY node)
SELECT s.node, s.port,
       s.state || CASE WHEN l.replay_paused THEN ' (replay paused)' ELSE '' END AS state,
       CASE WHEN s.role = 'primary' THEN '' WHEN s.lag_seconds IS NULL THEN '-'
            ELSE to_char(s.lag_seconds, 'FM99990.0') || ' s' END AS lag,
       CASE WHEN s.role = 'primary' THEN '' ELSE coalesce(s.lag_size, '-') END AS lag_bytes,
       coalesce(l.severity, '') AS severity,
       coalesce(s.connections::text, '-') AS conns,
       rpad(repeat('#', coalesce(c.n, 0)::int), $DM_SAMPLE) || lpad(coalesce(c.n, 0)::text, 3)
           || '/$DM_SAMPLE' AS "recommend('read')",
       concat_ws(', ', CASE WHEN s.node = '$rnode' THEN '$DM_READ_ALIAS' END,
                       CASE WHEN s.node = '$wnode' THEN '$DM_WRITE_ALIAS' END) AS pgbouncer
  FROM s LEFT JOIN l USING (node) LEFT JOIN c USING (node)
 ORDER BY s.role <> 'primary', s.node;
EOF
}

# Builds DM_FRAME: a caption, the table (psql's aligned format), one line of
# cluster health and write load, and the footer.
dm_build_frame() {
    local footer=${1:-} rt wt rnode="" wnode="" out health tps="" line
    rt=$(dm_alias_target "$DM_READ_ALIAS") && rnode=${rt% *}
    wt=$(dm_alias_target "$DM_WRITE_ALIAS") && wnode=${wt% *}
    DM_FRAME=("$(date +%H:%M:%S.%N | cut -c1-10)  replica_router.status + lag.severity + $DM_SAMPLE x recommend('read') + pgbouncer aliases")
    if out=$(cl_psql -P footer=off -c "$(dm_table_sql "$rnode" "$wnode")" 2>&1); then
        mapfile -t -O 1 DM_FRAME <<<"$out"
    else
        DM_FRAME+=("  (no answer from the primary: ${out%%$'\n'*})")
    fi
    health=$(cl_sql "SELECT format('health: %s, %s of %s replicas healthy', severity, healthy_replicas, registered_replicas) FROM replica_router.health" 2>/dev/null)
    if [ -n "$DM_PGBENCH_LOG" ] && [ -f "$DM_PGBENCH_LOG" ]; then
        line=$(grep '^progress:' "$DM_PGBENCH_LOG" 2>/dev/null | tail -n 1)
        [[ $line =~ ([0-9.]+)\ tps ]] && tps="; write load: pgbench -c2, ${BASH_REMATCH[1]} tps"
    fi
    DM_FRAME+=("${health:-health: ?}$tps" "$footer")
}

dm_cols() {
    local size
    size=$(stty size 2>/dev/null </dev/tty) || { echo 120; return; }
    echo "${size#* }"
}

# Prints DM_FRAME; on a terminal over the previous frame (cursor up, each line
# cleared to its end, then everything below cleared): no full-screen clear.
dm_print_frame() {
    local cols line out=""
    if [ "$DM_TTY" = 1 ]; then
        cols=$(dm_cols)
        [ "$DM_LINES" -gt 0 ] && out+=$(printf '\e[%dA' "$DM_LINES")
        for line in "${DM_FRAME[@]}"; do
            out+=$'\r'"${line:0:cols-1}"$'\e[K\n'
        done
        out+=$'\e[J'
        printf '%s' "$out"
        DM_LINES=${#DM_FRAME[@]}
    else
        printf '%s\n' "${DM_FRAME[@]}"
    fi
}

# On a terminal: redraw the live table. Elsewhere: nothing (see dm_snapshot).
dm_draw() {
    [ "$DM_TTY" = 1 ] || return 0
    dm_build_frame "${1:-}"
    dm_print_frame
}

# A line of story above the live table, which is then redrawn below it.
dm_say() {
    if [ "$DM_TTY" = 1 ] && [ "$DM_LINES" -gt 0 ]; then
        printf '\e[%dA\r\e[J' "$DM_LINES"
        DM_LINES=0
        printf '%s\n' "$@"
        dm_build_frame ""
        dm_print_frame
    else
        printf '%s\n' "$@"
    fi
}

# The table once, left on screen: the next output goes below it.
dm_snapshot() {
    if [ "$DM_TTY" = 1 ]; then
        dm_build_frame ""
        dm_print_frame
        DM_LINES=0
    else
        dm_build_frame ""
        unset 'DM_FRAME[${#DM_FRAME[@]}-1]'
        dm_print_frame
        echo
    fi
}

# Leaves the live table where it is (without its footer); the next output
# goes below it.
dm_release() {
    if [ "$DM_TTY" = 1 ] && [ "$DM_LINES" -gt 0 ]; then
        unset 'DM_FRAME[${#DM_FRAME[@]}-1]'
        dm_print_frame
    fi
    DM_LINES=0
}

# dm_wait LABEL SECS FN [ARGS..]: calls FN until it returns 0, for at most
# SECS seconds. On a terminal the live table is redrawn about four times a
# second with LABEL and the elapsed time below it; elsewhere LABEL is printed
# with a dot a second. DM_WAITED_MS: how long it took.
dm_wait() {
    local label=$1 secs=$2 start now el next=0 dots=0 k=0
    shift 2
    start=$(dm_now_ms)
    [ "$DM_TTY" = 1 ] || printf '  %s ...' "$label"
    while :; do
        if "$@"; then
            now=$(dm_now_ms)
            DM_WAITED_MS=$(( now - start ))
            [ "$DM_TTY" = 1 ] || printf ' done (%s)\n' "$(dm_fmt_ms "$DM_WAITED_MS")"
            return 0
        fi
        now=$(dm_now_ms)
        el=$(( now - start ))
        if (( el >= secs * 1000 )); then
            DM_WAITED_MS=$el
            [ "$DM_TTY" = 1 ] || printf ' FAILED after %s\n' "$(dm_fmt_ms "$el")"
            return 1
        fi
        if [ "$DM_TTY" = 1 ]; then
            if (( now >= next )); then
                dm_draw "  ${DM_SPIN:k++%4:1} $label ... $(dm_fmt_ms "$el")"
                next=$(( $(dm_now_ms) + 250 ))
            fi
        elif (( el / 1000 > dots )); then
            printf '.'
            dots=$(( el / 1000 ))
        fi
        sleep 0.03
    done
}

# dm_watch SECS LABEL: keeps the table live for SECS seconds (terminal only).
dm_watch() {
    local secs=$1 label=$2 end
    [ "$DM_TTY" = 1 ] || return 0
    end=$(( $(dm_now_ms) + secs * 1000 ))
    while (( $(dm_now_ms) < end )); do
        dm_draw "  $label"
        sleep 0.2
    done
}

# dm_pause_live PROMPT: keeps the table live until a key is pressed, then
# erases it (keys pressed earlier do not count).
dm_pause_live() {
    local key
    while read -rsn1 -t 0.01 key </dev/tty; do :; done
    while :; do
        dm_draw "  $1"
        if read -rsn1 -t 0.25 key </dev/tty; then
            break
        fi
    done
    if [ "$DM_TTY" = 1 ] && [ "$DM_LINES" -gt 0 ]; then
        printf '\e[%dA\r\e[J' "$DM_LINES"
        DM_LINES=0
    fi
    : "$key"
}

# On a terminal: no echo of keys typed meanwhile and no cursor while the
# table is redrawn; dm_tty_restore puts both back (call it on exit).
DM_STTY=""
dm_tty_setup() {
    [ "$DM_TTY" = 1 ] && [ -t 0 ] || return 0
    DM_STTY=$(stty -g 2>/dev/null) && stty -echo 2>/dev/null
    printf '\e[?25l'
}
dm_tty_restore() {
    [ "$DM_TTY" = 1 ] || return 0
    [ -n "$DM_STTY" ] && stty "$DM_STTY" 2>/dev/null
    DM_STTY=""
    printf '\e[?25h'
}
