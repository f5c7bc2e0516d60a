#!/usr/bin/env bash
# Network faults between real hosts: standby r1 runs in a network namespace
# of its own, joined to the primary by a veth pair (10.231.0.1 <-> 10.231.0.2,
# addresses that exist only inside this test), r2 on loopback. tc netem adds
# latency, then loss, then the link goes down (a partition). Each step checks
# that detection and routing stay right and that r2 keeps being polled.
# Runs as root (namespaces); servers run as postgres. Skips, with a message,
# where the kernel refuses namespaces. Ends with "netns: N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/cluster.sh
. "$HERE/lib/cluster.sh"
export PATH=$CL_PGBIN:$PATH

NS=rrtest$$
VH=rrh$$
VN=rrn$$
HOST_IP=10.231.0.1
NS_IP=10.231.0.2
passed=0
failed=0

ok() { if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "ok - $2"; else failed=$((failed + 1)); echo "not ok - $2"; fi; }

cleanup() {
    cl_stop_all >/dev/null 2>&1
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip link del "$VH" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$CL_DIR"
}

if [ "$(id -u)" -ne 0 ] || ! ip netns add "$NS" 2>/dev/null; then
    echo "netns: network namespaces are not available here (needs root and CAP_SYS_ADMIN); skipped"
    echo "netns: 0 passed, 0 failed"
    exit 0
fi
cl_config "/tmp/rr-netns$$" 55480 2 || exit 1
trap cleanup EXIT
ip link add "$VH" type veth peer name "$VN" &&
    ip link set "$VN" netns "$NS" &&
    ip addr add "$HOST_IP/24" dev "$VH" && ip link set "$VH" up &&
    ip netns exec "$NS" ip addr add "$NS_IP/24" dev "$VN" &&
    ip netns exec "$NS" ip link set "$VN" up && ip netns exec "$NS" ip link set lo up
ok $? "veth pair between the host and namespace $NS"

cl_create_primary "listen_addresses = '127.0.0.1,$HOST_IP'" \
    "replica_router.poll_interval = '100ms'" "replica_router.connect_timeout = '500ms'" \
    "replica_router.query_timeout = '500ms'" "replica_router.recovery_polls = 3" &&
    printf 'host all all 10.231.0.0/24 trust\nhost replication all 10.231.0.0/24 trust\n' \
        >>"$(cl_datadir primary)/pg_hba.conf" &&
    cl_start primary && cl_create_replica 1 && cl_create_replica 2
ok $? "primary and two standbys created"

# r1 lives in the namespace: it listens on its veth address and streams
# from the primary across the veth pair.
R1=$(cl_datadir r1)
cat >>"$R1/postgresql.conf" <<CONF
listen_addresses = '$NS_IP'
primary_conninfo = 'host=$HOST_IP port=$CL_PORT user=postgres application_name=r1'
CONF
ip netns exec "$NS" runuser -u postgres -- "$CL_PGBIN/pg_ctl" -D "$R1" -l "$CL_DIR/r1.log" -w -t 60 start >/dev/null &&
    cl_start r2
ok $? "r1 started inside the namespace, r2 on loopback"

cl_psql -q -c "CREATE EXTENSION replica_router;
  SELECT replica_router.add_replica('r1', 'host=$NS_IP port=$((CL_PORT + 1)) dbname=postgres user=postgres');
  SELECT replica_router.add_replica('r2', 'host=127.0.0.1 port=$((CL_PORT + 2)) dbname=postgres user=postgres');" >/dev/null
cl_wait_healthy 30 >/dev/null
ok $? "both standbys healthy (r1 across the veth pair)"

# Polls until the SQL returns "t" or SECS pass; sets WAITED_MS.
wait_true() {
    local secs=$1 sql=$2 start
    start=$(cl_now_ms)
    while (( $(cl_now_ms) - start < secs * 1000 )); do
        [ "$(cl_sql "$sql" 2>/dev/null)" = t ] && { WAITED_MS=$(( $(cl_now_ms) - start )); return 0; }
        sleep 0.02
    done
    return 1
}
# r2's last poll must stay fresh: sampled over about a second.
r2_fresh() {
    local i age worst=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        age=$(cl_sql "SELECT (extract(epoch FROM clock_timestamp() - last_poll) * 1000)::int FROM replica_router.status WHERE node = 'r2'")
        [ "${age:-99999}" -gt "$worst" ] && worst=${age:-99999}
        sleep 0.1
    done
    echo "#   r2 last_poll age at most ${worst} ms"
    [ "$worst" -lt 400 ]
}
only_r2() {
    [ "$(cl_sql "SELECT count(*) FILTER (WHERE n <> 'r2') FROM (SELECT (replica_router.recommend()).node AS n FROM generate_series(1, 50)) s")" = 0 ]
}

skip() { echo "ok - # SKIP $1"; }

# 1. Latency (tc netem, where the kernel has it).
if tc qdisc add dev "$VH" root netem delay 100ms 2>/dev/null; then
    wait_true 5 "SELECT (SELECT state FROM replica_router.status WHERE node = 'r1') = 'healthy'
                 AND (SELECT last_poll FROM replica_router.status WHERE node = 'r1') > clock_timestamp() - interval '1 s'"
    ok $? "r1 stays healthy with 100 ms latency"
    wait_true 5 "SELECT count(DISTINCT n) = 2 FROM (SELECT (replica_router.recommend()).node AS n FROM generate_series(1, 20)) s"
    ok $? "reads still spread over both standbys"
    tc qdisc change dev "$VH" root netem delay 800ms
    wait_true 5 "SELECT state = 'down' FROM replica_router.status WHERE node = 'r1'"
    ok $? "r1 down with 800 ms latency (query_timeout 500 ms), after ${WAITED_MS:-?} ms"
    r2_fresh; ok $? "r2 polled on schedule meanwhile"
    only_r2; ok $? "reads go to r2 only"
    tc qdisc del dev "$VH" root
    wait_true 10 "SELECT state = 'healthy' FROM replica_router.status WHERE node = 'r1'"
    ok $? "r1 healthy again once the link is clean, after ${WAITED_MS:-?} ms"
    loss_on() { tc qdisc add dev "$VH" root netem loss 100%; }
    loss_off() { tc qdisc del dev "$VH" root; }
else
    skip "this kernel has no tc netem (sch_netem): latency steps skipped"
    # Total loss without netem: the namespace drops everything that arrives.
    loss_on() {
        ip netns exec "$NS" nft add table inet rrloss &&
            ip netns exec "$NS" nft 'add chain inet rrloss input { type filter hook input priority 0; policy accept; }' &&
            ip netns exec "$NS" nft add rule inet rrloss input iifname "$VN" drop
    }
    loss_off() { ip netns exec "$NS" nft delete table inet rrloss; }
fi

# 2. Total packet loss: a black hole, established connections hang.
if loss_on 2>/dev/null; then
    wait_true 5 "SELECT state = 'down' FROM replica_router.status WHERE node = 'r1'"
    ok $? "r1 down under 100% packet loss, after ${WAITED_MS:-?} ms"
    r2_fresh; ok $? "r2 polled on schedule under loss"
    only_r2; ok $? "reads go to r2 only under loss"
    loss_off
    wait_true 10 "SELECT state = 'healthy' FROM replica_router.status WHERE node = 'r1'"
    ok $? "r1 back after the loss ends, after ${WAITED_MS:-?} ms"
else
    skip "neither tc netem nor nftables can drop packets here: loss steps skipped"
fi

# 4. Partition: the link goes down.
ip link set "$VH" down
wait_true 5 "SELECT state = 'down' FROM replica_router.status WHERE node = 'r1'"
ok $? "r1 down when partitioned, after ${WAITED_MS:-?} ms"
r2_fresh; ok $? "r2 polled on schedule during the partition"
only_r2; ok $? "reads go to r2 only during the partition"
ip link set "$VH" up
wait_true 15 "SELECT state = 'healthy' FROM replica_router.status WHERE node = 'r1'"
ok $? "r1 healthy again after the partition heals, after ${WAITED_MS:-?} ms"

! grep -q "terminated by signal" "$CL_DIR/primary.log"
ok $? "no server process crashed"

echo "netns: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
