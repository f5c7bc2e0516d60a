// The background worker: polls every registered replica at once over one
// WaitEventSet, classifies them, mirrors the hints into shared memory and
// writes them to replica_router.routing_hints when they change.
//
// PostgreSQL side. The worker's C++ state (pollers, history) lives in one
// heap object reached from a static pointer, never in a frame that an ERROR
// could jump over; each C++ step is wrapped in cpp_step(), which turns an
// exception into a log line and a failed poll, never a crash.
#include "pg.hpp"

#include "catalog.hpp"
#include "conninfo.hpp"
#include "dns_notify.hpp"
#include "guard.hpp"
#include "guc.hpp"
#include "lag.hpp"
#include "backoff.hpp"
#include "members.hpp"
#include "poller.hpp"
#include "routing.hpp"
#include "rto.hpp"
#include "shmem.hpp"
#include "slots.hpp"
#include "state_machine.hpp"
#include "primary.hpp"
#include "timeline.hpp"

extern "C" {
#include "access/xlogrecovery.h"
#include "postmaster/postmaster.h"
#include "replication/walreceiver.h"
}

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

extern "C" PGDLLEXPORT void replica_router_worker_main(Datum arg);

namespace rr {

namespace {

constexpr Micros kRegistryRecheck = 10'000'000;  // reread nodes even without a wake-up
constexpr Micros kAbsentRecheck = 5'000'000;     // look for CREATE EXTENSION this often
constexpr Micros kWriteRetry = 1'000'000;        // after a failed hint write
constexpr Micros kLagMaterial = 1'000'000;       // lag changes smaller than this are not written
constexpr int64_t kLagBytesMaterial = 16 * 1024 * 1024;
constexpr Micros kWalRateWindow = 300'000'000;    // WAL rate for slot forecasts: last 5 minutes
constexpr Micros kReplayRecheck = 100'000;       // observers: registry reread at most this often while WAL replays

struct Tracked {
    NodeRow cfg{};
    std::unique_ptr<Poller> poller;
    NodeHint hint{};
    NodeHint written{};
    bool written_valid = false;
    bool polling = false;
    bool ever_primary = false;  // seen out of recovery as the primary: the registry lists the primary
    Micros poll_started = 0;
    Lsn primary_at_start = 0;
    uint64_t round = 0;
    std::unique_ptr<Poller> bouncer;  // pgbouncer admin console, if registered
    std::vector<PoolRow> pools;       // its last SHOW POOLS
    RttEstimator rtt;                 // its polls' round trips (slow detection)
    bool on_open = false;             // the poll in flight started on an open connection
    Micros failing_since = 0;         // first of the failures in a row (back-off), 0 = none
};

// A poller to wait on: a node's replica probe or pgbouncer probe, or the
// primary's pgbouncer (node == nullptr).
struct ProbeRef {
    Poller *poller;
    Tracked *node;
    bool bouncer;
};

// A socket registered in the wait set, as it was when registered: the set is
// kept while these stay the same, and only the events change in place.
struct WaitKey {
    const Poller *poller;
    std::size_t probe;    // index into probes: the event's user_data
    int fd;
    uint64_t generation;  // poller->socket_generation() then
    uint32 events;
    int pos;              // in the set; -1: could not be added
};

// What publish() prepares outside the lock; kept so it is allocated once.
struct Staged {
    std::vector<NodeHint> nodes;
    std::vector<PoolRow> pools;
};

struct WorkerState {
    std::vector<Tracked> nodes;
    LsnHistory history;
    TimelineHistory timelines;
    uint64_t round = 0;
    Micros round_start = 0;
    bool round_open = false;
    Micros next_tick = 0;
    Micros next_registry_load = 0;
    Micros next_heartbeat = 0;
    Micros last_heartbeat = 0;
    Micros next_write_retry = 0;
    uint32_t generation_seen = 0;
    bool extension_present = false;
    bool dirty = false;  // shared memory is behind `nodes`
    std::unique_ptr<Poller> primary_bouncer;
    std::vector<PoolRow> primary_pools;
    PrimaryStats primary{};
    std::vector<ProbeRef> probes;  // rebuilt before every wait
    // The wait set, kept across waits: latch, postmaster death, dns_fd, then
    // the sockets in wait_keys. Rebuilt only when those sockets change.
    WaitEventSet *wait_set = nullptr;
    std::vector<WaitKey> wait_keys;
    std::vector<WaitKey> wait_want;  // scratch: this pass's sockets
    std::vector<std::size_t> wait_broken;  // probes whose socket could not be (re)registered
    bool wait_set_stale = false;     // rebuild at the next wait
    bool wait_set_failed = false;    // creating it failed (logged once)
    int dns_fd = -1;                 // dns_notify's eventfd; -1: lookups are polled
    int dns_pos = -1;
    std::vector<RouteRow> routes;
    bool routes_loaded = false;
    bool wait_fd_reserved = false;  // an external-fd slot kept for the wait set
    char registry_problem[kErrorLen] = "";
    // Members: which one is the primary, as this node's polls show it.
    PrimaryChoice choice;
    std::vector<const NodeHint *> member_view;  // scratch for choose_primary
    Staged staged;                               // what publish() copies in
    Lsn primary_seen = 0;        // the chosen primary's newest WAL position seen
    XLogRecPtr replay_seen = 0;  // observers reread the registry when replay moves
    Micros last_registry_load = 0;
    bool was_in_recovery = false;
};

WorkerState *state = nullptr;

void choose(Micros now);

bool fd_acquire() { return AcquireExternalFD(); }
void fd_release() { ReleaseExternalFD(); }

// Runs a C++ step; an exception becomes a LOG line (after the try block) and false.
template <typename Fn>
bool cpp_step(const char *what, Fn &&fn)
{
    char message[kErrorLen];
    try {
        fn();
        return true;
    } catch (const std::exception &e) {
        copy_str(message, sizeof message, e.what());
    } catch (...) {
        copy_str(message, sizeof message, "unknown exception");
    }
    ereport(LOG, (errmsg("replica_router worker: %s failed: %s", what, message)));
    return false;
}

PollSettings settings()
{
    PollSettings s;
    s.connect_timeout = static_cast<Micros>(rr_connect_timeout_ms) * 1000;
    s.query_timeout = static_cast<Micros>(rr_query_timeout_ms) * 1000;
    return s;
}

// Stages everything shared memory shows, outside the lock (pools cut to what
// fits, the node's pgbouncer_error saying so: never dropped silently), then
// copies it in one short exclusive section (shmem_publish).
void publish()
{
    ElectedPrimary elected{};
    const PrimaryChoice &c = state->choice;
    elected.kind = c.kind;
    elected.timeline = c.timeline;
    elected.followers = c.followers;
    for (const Tracked &t : state->nodes)
        elected.members_cover = elected.members_cover || t.ever_primary;
    if (c.kind == PrimaryChoice::Kind::local) {
        PrimaryInfo p = local_primary();
        copy_str(elected.node, sizeof elected.node, c.index >= 0 ? state->nodes[c.index].hint.name : p.node);
        copy_str(elected.host, sizeof elected.host, p.host);
        elected.port = p.port;
    } else if (c.kind == PrimaryChoice::Kind::member) {
        const NodeHint &h = state->nodes[static_cast<std::size_t>(c.index)].hint;
        copy_str(elected.node, sizeof elected.node, h.name);
        copy_str(elected.host, sizeof elected.host, h.host);
        elected.port = h.port;
    }

    Staged &st = state->staged;
    st.nodes.clear();
    st.pools.clear();
    PrimaryStats primary = state->primary;
    auto add_pools = [&st](const std::vector<PoolRow> &rows, char *error) {
        std::size_t kept = 0;
        for (const PoolRow &p : rows)
            if (st.pools.size() < kMaxPools) {
                st.pools.push_back(p);
                ++kept;
            }
        if (kept < rows.size())
            snprintf(error, kErrorLen, "only %zu of %zu pools are shown: replica_router keeps %zu pools in all", kept,
                     rows.size(), kMaxPools);
    };
    add_pools(state->primary_pools, primary.bouncer_error);
    for (const Tracked &t : state->nodes) {
        st.nodes.push_back(t.hint);
        add_pools(t.pools, st.nodes.back().bouncer_error);
    }
    Publication pub{};
    pub.nodes = st.nodes.data();
    pub.n = st.nodes.size();
    pub.pools = st.pools.data();
    pub.npools = st.pools.size();
    pub.routes = state->routes.data();
    pub.nroutes = state->routes.size();
    pub.hints_ready = state->extension_present;
    pub.routes_ready = state->extension_present && state->routes_loaded;
    pub.primary = primary;
    pub.elected = elected;
    pub.generation = state->generation_seen;
    shmem_publish(pub);
    state->dirty = false;
}

void close_all() noexcept
{
    if (state == nullptr)
        return;
    for (Tracked &t : state->nodes) {
        if (t.poller)
            t.poller->disconnect();
        if (t.bouncer)
            t.bouncer->disconnect();
    }
    if (state->primary_bouncer)
        state->primary_bouncer->disconnect();
}

void on_exit_cleanup(int, Datum)
{
    close_all();
    shmem_worker_exiting();
}

NodeHint fresh_hint(const NodeRow &row)
{
    NodeHint h{};
    h.node_id = row.id;
    h.weight = row.weight;
    h.enabled = row.enabled;
    h.lag = -1;
    h.lag_bound = -1;
    h.lag_bytes = -1;
    h.state = row.enabled ? NodeState::unknown : NodeState::disabled;
    copy_str(h.name, sizeof h.name, row.name);
    copy_str(h.zone, sizeof h.zone, row.zone);
    Endpoint ep = conninfo_endpoint(row.conninfo);
    copy_str(h.host, sizeof h.host, ep.host.c_str());
    h.port = ep.port.empty() ? 5432 : std::atoi(ep.port.c_str());
    return h;
}

// Brings `nodes` in line with the registry rows: keeps connections of nodes
// whose conninfo did not change, opens none yet (the next tick does).
void sync_registry(const NodeRow *rows, int n, Micros now)
{
    std::vector<Tracked> next;
    next.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const NodeRow &row = rows[i];
        Tracked *old = nullptr;
        for (Tracked &t : state->nodes)
            if (t.cfg.id == row.id)
                old = &t;
        Tracked t;
        if (old != nullptr && !row.too_long && std::strcmp(old->cfg.conninfo, row.conninfo) == 0 && old->poller &&
            old->poller->trusted() == row.conninfo_trusted) {
            t = std::move(*old);
            t.hint.weight = row.weight;
            t.hint.enabled = row.enabled;
            copy_str(t.hint.name, sizeof t.hint.name, row.name);
            copy_str(t.hint.zone, sizeof t.hint.zone, row.zone);
            if (!row.enabled) {
                t.poller->disconnect();
                t.polling = false;
                t.hint.state = NodeState::disabled;
            } else if (t.hint.state == NodeState::disabled) {
                t.hint.state = NodeState::unknown;
            }
        } else {
            t.hint = fresh_hint(row);
            t.hint.state_since = now;
            t.poller = std::make_unique<Poller>(row.conninfo, FdBudget{fd_acquire, fd_release}, Probe::replica,
                                                row.conninfo_trusted);
        }
        if (row.pgbouncer[0] == '\0' || !row.enabled) {
            t.bouncer.reset();
            t.pools.clear();
        } else if (!t.bouncer || t.bouncer->conninfo() != row.pgbouncer ||
                   t.bouncer->trusted() != row.pgbouncer_trusted) {
            t.bouncer = std::make_unique<Poller>(row.pgbouncer, FdBudget{fd_acquire, fd_release}, Probe::pgbouncer,
                                                 row.pgbouncer_trusted);
            t.pools.clear();
        }
        if (row.too_long) {
            // Never cut a connection string: its last settings could be the
            // ones that make it safe (sslrootcert, sslmode).
            t.poller.reset();
            t.bouncer.reset();
            t.hint.state = NodeState::down;
            copy_str(t.hint.error, sizeof t.hint.error,
                     "the connection string is longer than 1023 bytes and is not used: register it again");
        }
        t.hint.has_bouncer = static_cast<bool>(t.bouncer);
        t.hint.may_lead = row.conninfo_trusted;
        t.cfg = row;
        next.push_back(std::move(t));
    }
    // Nodes that left the registry close their connections as `nodes` is replaced.
    state->nodes = std::move(next);
    choose(now);  // indexes changed
    state->dirty = true;
}

// What the last registry and routes reads found wrong; reported through
// worker_status().last_error and the health view until a read is clean.
void note_registry_problem(const char *nodes_problem, const char *routes_problem)
{
    char both[kErrorLen];
    if (nodes_problem[0] != '\0' && routes_problem[0] != '\0')
        snprintf(both, sizeof both, "%s; %s", nodes_problem, routes_problem);
    else
        copy_str(both, sizeof both, nodes_problem[0] != '\0' ? nodes_problem : routes_problem);
    bool changed = std::strcmp(both, state->registry_problem) != 0;
    copy_str(state->registry_problem, sizeof state->registry_problem, both);
    shmem_set_registry_problem(both);
    if (changed && both[0] != '\0')
        ereport(WARNING, (errmsg("replica_router worker: %s", both)));
}

void load_registry(Micros now)
{
    static NodeRow rows[kMaxNodesHard];
    static RouteRow routes[kMaxRoutes];
    int count = 0, route_count = 0;
    char nodes_problem[kErrorLen] = "", routes_problem[kErrorLen] = "";
    state->generation_seen = shmem_generation();
    CatalogStatus st = catalog_load_nodes(rows, rr_max_replicas, &count, nodes_problem, sizeof nodes_problem);
    // Routes are read on their own: a bad route must not hide registry
    // changes (a disabled replica would go on being recommended).
    CatalogStatus rst = st == CatalogStatus::ok
        ? catalog_load_routes(routes, static_cast<int>(kMaxRoutes), &route_count, routes_problem, sizeof routes_problem)
        : st;
    state->next_registry_load = now + kRegistryRecheck;
    if (st == CatalogStatus::failed || rst == CatalogStatus::failed) {
        // Read again soon, not only at the next change or recheck.
        state->next_registry_load = now + kWriteRetry;
    }
    note_registry_problem(nodes_problem, routes_problem);
    if (st == CatalogStatus::failed)
        return;
    if (st == CatalogStatus::absent) {
        if (state->extension_present)
            ereport(LOG, (errmsg("replica_router worker: extension dropped, waiting for CREATE EXTENSION")));
        state->extension_present = false;
        count = 0;
    } else {
        if (!state->extension_present)
            state->next_heartbeat = now;  // a (re)created extension gets its heartbeat row at once
        state->extension_present = true;
    }
    // New or re-pointed nodes start with written_valid = false, so their
    // first hint is written; unchanged nodes keep what was last written.
    cpp_step("registry sync", [&] {
        sync_registry(rows, count, now);
        if (rst == CatalogStatus::ok) {
            state->routes.assign(routes, routes + route_count);
            state->routes_loaded = true;
        }
    });
}

// Poll timing (issue #12): the round trip feeds the node's RTO, the answer
// ends a slow spell at once, the figures are dated by the poll's start (the
// primary position they were measured against), and a failure may back off.
void note_poll_end(Tracked &t, bool ok, Micros now)
{
    NodeHint &h = t.hint;
    if (ok && t.on_open && t.poll_started != 0)
        t.rtt.sample(now - t.poll_started);
    if (h.slow && ok)
        pg_call([&] {
            ereport(LOG, (errmsg("replica_router: replica \"%s\" answered after %lld ms: no longer slow", h.name,
                                 static_cast<long long>((now - t.poll_started) / 1000))));
        });
    h.slow = false;
    h.poll_since = 0;
    h.srtt = t.rtt.srtt();
    if (ok) {
        h.lag_at = t.poll_started;
        h.primary_lsn = t.primary_at_start;
        h.next_try = 0;
        t.failing_since = 0;
    } else {
        if (h.failures == 0 || t.failing_since == 0)
            t.failing_since = now;
        Micros interval = static_cast<Micros>(rr_poll_interval_ms) * 1000;
        BackoffPolicy policy;
        policy.cap = static_cast<Micros>(rr_retry_max_interval_ms) * 1000;
        Micros delay = retry_delay(h.failures + 1, now - t.failing_since, interval,
                                   pg_prng_uint64(&pg_global_prng_state), policy);
        h.next_try = delay > 0 ? now + delay : 0;
    }
}

// The RTO a poll starting now is judged by; 0 = not judged (the floor is at
// or above query_timeout).
Micros current_rto(const Tracked &t)
{
    Micros floor = static_cast<Micros>(rr_slow_poll_floor_ms) * 1000;
    Micros ceiling = static_cast<Micros>(rr_query_timeout_ms) * 1000;
    return floor >= ceiling ? 0 : t.rtt.rto(floor, ceiling);
}

// Marks replicas whose poll is overdue as slow (after the wait has read
// every socket that fired: an answer that arrived is never counted as late).
void mark_slow(Micros now)
{
    for (Tracked &t : state->nodes) {
        NodeHint &h = t.hint;
        if (!t.polling || h.slow || !t.on_open || !poll_overdue(h.poll_since, h.rto, now))
            continue;
        h.slow = true;
        state->dirty = true;
        if (h.state == NodeState::healthy || h.state == NodeState::lagging)
            pg_call([&] {
                ereport(LOG, (errmsg("replica_router: replica \"%s\" is slow: poll unanswered for %lld ms (limit %lld "
                                     "ms, smoothed round trip %.1f ms); left out of routing until it answers",
                                     h.name, static_cast<long long>((now - h.poll_since) / 1000),
                                     static_cast<long long>(h.rto / 1000), static_cast<double>(h.srtt) / 1000.0)));
            });
    }
}

LocalServer local_server()
{
    LocalServer l;
    l.in_recovery = RecoveryInProgress();
    l.system_id = shmem_system_id();
    l.port = PostPortNumber;
    if (!l.in_recovery) {
        l.timeline = GetWALInsertionTimeLine();
        l.lsn = GetXLogWriteRecPtr();
    }
    return l;
}

// Which member is the primary now (members.hpp); logged when it changes.
void choose(Micros now)
{
    std::vector<const NodeHint *> &view = state->member_view;
    view.clear();
    for (const Tracked &t : state->nodes)
        view.push_back(&t.hint);
    PrimaryChoice before = state->choice;
    PrimaryChoice c = choose_primary(view.data(), view.size(), local_server());
    state->choice = c;
    if (c.kind == PrimaryChoice::Kind::member && c.lsn > state->primary_seen)
        state->primary_seen = c.lsn;
    if (c.kind != before.kind || c.index != before.index) {
        const char *name = c.index >= 0 ? state->nodes[static_cast<std::size_t>(c.index)].hint.name
                           : c.kind == PrimaryChoice::Kind::local ? "this server"
                                                                  : "none reachable";
        if (c.kind != PrimaryChoice::Kind::member || c.index != before.index)
            state->primary_seen = c.lsn;
        state->next_heartbeat = now;  // the heartbeat names the primary: rewrite it at once
        pg_call([&] {
            ereport(LOG, (errmsg("replica_router: the primary is %s%s (timeline %u, %d member%s streaming from it)",
                                 name, c.kind == PrimaryChoice::Kind::local && c.index >= 0 ? ", this server" : "",
                                 c.timeline, c.followers, c.followers == 1 ? "" : "s")));
        });
    }
    state->dirty = true;
}

// Why a member out of recovery is not the primary.
void not_primary_reason(const NodeHint &h, char *why, std::size_t len)
{
    const PrimaryChoice &c = state->choice;
    if (c.kind == PrimaryChoice::Kind::none) {
        snprintf(why, len, "out of recovery, but not followed: no primary is chosen yet");
        return;
    }
    const char *name = c.index >= 0 ? state->nodes[static_cast<std::size_t>(c.index)].hint.name : "this server";
    snprintf(why, len, "out of recovery on timeline %d, but the primary is %s (timeline %u, %d follower%s): split brain?",
             h.timeline, name, c.timeline, c.followers, c.followers == 1 ? "" : "s");
}

// A replica cannot be following the chosen primary: it streams from another
// member out of recovery (or from this server when this server is not the
// primary), or, judged by the primary's timeline history when the primary is
// this server (off_history), or by its timeline when it is another member.
bool follows_elsewhere(const NodeHint &h, uint32_t tli, bool streaming, char *why, std::size_t len)
{
    const PrimaryChoice &c = state->choice;
    std::vector<const NodeHint *> &view = state->member_view;
    int up = upstream_of(view.data(), view.size(), h);
    if (c.kind != PrimaryChoice::Kind::none && up >= 0 && up != c.index) {
        const NodeHint &u = *view[static_cast<std::size_t>(up)];
        if (poll_ok(u) && !u.in_recovery) {
            snprintf(why, len, "streams from %s, which is out of recovery but not the primary", u.name);
            return true;
        }
    }
    bool local_out = !RecoveryInProgress();
    if (c.kind == PrimaryChoice::Kind::member && local_out && up < 0 && sender_is_local(h, PostPortNumber)) {
        snprintf(why, len, "streams from this server, which is out of recovery but not the primary");
        return true;
    }
    if (c.kind == PrimaryChoice::Kind::local)
        return off_history(state->timelines, tli, streaming, h.replay_lsn, why, len);
    if (c.kind == PrimaryChoice::Kind::member && streaming && tli > c.timeline) {
        snprintf(why, len, "on timeline %u, newer than the primary's timeline %u: it follows another primary", tli,
                 c.timeline);
        return true;
    }
    return false;
}

// The newest primary WAL position this node knows: this server's when it is
// the primary, else the chosen member's at its last poll (or, with none
// reachable, the newest seen), and never behind what this standby received.
Lsn reference_lsn()
{
    if (state->choice.kind == PrimaryChoice::Kind::local || (state->choice.kind == PrimaryChoice::Kind::none && !RecoveryInProgress()))
        return GetXLogWriteRecPtr();
    Lsn ref = state->primary_seen;
    if (RecoveryInProgress()) {
        XLogRecPtr received = GetWalRcvFlushRecPtr(nullptr, nullptr);
        if (received > ref)
            ref = received;
    }
    return ref;
}

// The figures of a poll that succeeded; this server's own entry is recognised
// by its cluster and its postmaster's start time (to within the rounding of
// the epoch's extraction).
void record_success(Tracked &t, const PollResult &r, Micros now)
{
    NodeHint &h = t.hint;
    h.has_result = true;
    h.last_success = now;
    h.failures = 0;
    h.in_recovery = r.in_recovery;
    h.replay_paused = r.replay_paused;
    h.receive_lsn = r.receive_lsn;
    h.replay_lsn = r.replay_lsn;
    h.last_replay_ts = r.has_replay_ts ? r.last_replay_ts : 0;
    h.system_id = r.system_id;
    h.timeline = r.timeline;
    h.connections = r.connections;
    h.max_connections = r.max_connections;
    h.pool = r.pool;
    copy_str(h.slot_name, sizeof h.slot_name, r.slot_name);
    copy_str(h.app_name, sizeof h.app_name, r.app_name);
    h.current_lsn = r.current_lsn;
    h.sender_port = r.sender_port;
    copy_str(h.sender_host, sizeof h.sender_host, r.sender_host);
    h.is_local = h.system_id == shmem_system_id() && r.started_at != 0 && std::llabs(r.started_at - PgStartTime) <= 1;
    h.error[0] = '\0';
    if (!r.host.empty())
        copy_str(h.host, sizeof h.host, r.host.c_str());
    if (!r.port.empty())
        h.port = std::atoi(r.port.c_str());
    if (r.in_recovery) {
        h.lag_bytes = t.primary_at_start > r.replay_lsn ? static_cast<int64_t>(t.primary_at_start - r.replay_lsn) : 0;
        h.lag = state->history.lag(r.replay_lsn, t.primary_at_start, t.poll_started, h.last_replay_ts);
        h.lag_bound = state->history.lag_bound(r.replay_lsn, t.primary_at_start, t.poll_started, h.last_replay_ts);
    } else {
        h.lag_bytes = -1;
        h.lag = -1;
        h.lag_bound = -1;
    }
}

// What the poll means for the member's state (the state machine's event),
// with the member chosen as the primary already updated (choose()).
Event classify(Tracked &t, const PollResult &r)
{
    NodeHint &h = t.hint;
    bool ok = r.ok;
    int self_index = static_cast<int>(&t - state->nodes.data());
    ClassifyInput in{};
    in.enabled = h.enabled;
    in.polled = true;
    in.last_poll_ok = ok;
    in.in_recovery = h.in_recovery;
    in.system_id = h.system_id;
    in.primary_system_id = shmem_system_id();
    in.lag = h.lag;
    in.max_lag = static_cast<Micros>(rr_max_lag_ms) * 1000;
    in.hysteresis = in.max_lag * rr_lag_hysteresis_pct / 100;
    char why[kErrorLen];
    // The receiver's timeline when it runs (one reading with `streaming`),
    // and the replay position: what the replica serves, and what PostgreSQL
    // itself checks when a standby is asked to follow a new timeline.
    bool streaming = r.receiver_timeline != 0;
    uint32_t tli = static_cast<uint32_t>(streaming ? r.receiver_timeline : h.timeline);
    in.diverged = ok && h.in_recovery && follows_elsewhere(h, tli, streaming, why, sizeof why);
    in.elected = ok && !h.in_recovery && state->choice.kind != PrimaryChoice::Kind::none &&
                 state->choice.index == self_index;
    if (in.elected)
        t.ever_primary = true;
    Event event = event_of(in);
    if (event == Event::diverged)
        copy_str(h.error, sizeof h.error, why);
    else if (event == Event::promoted)
        not_primary_reason(h, h.error, sizeof h.error);
    return event;
}

// Folds a finished poll into the node's hint.
void apply_result(Tracked &t, Micros now)
{
    const PollResult &r = t.poller->result();
    NodeHint &h = t.hint;
    NodeState before = h.state;
    h.last_poll = now;
    note_poll_end(t, r.ok, now);
    if (r.ok) {
        record_success(t, r, now);
    } else {
        // The last figures say nothing about a replica we cannot reach.
        h.failures++;
        h.lag = -1;
        h.lag_bound = -1;
        h.lag_bytes = -1;
        copy_str(h.error, sizeof h.error, r.error.c_str());
    }
    choose(now);
    Event event = classify(t, r);
    h.good_streak = target(before, event) == NodeState::healthy ? h.good_streak + 1 : 0;
    h.state = step(before, event, h.good_streak, static_cast<uint32_t>(rr_recovery_polls));
    if (h.state != before) {
        h.state_since = now;
        pg_call([&] {
            ereport(LOG, (errmsg("replica_router: replica \"%s\" is now %s (was %s)%s%s", h.name, state_name(h.state),
                                 state_name(before), r.ok ? "" : ": ", r.ok ? "" : h.error)));
        });
    }
    state->dirty = true;
}

void poll_finished(Tracked &t, Micros now)
{
    bool was_polling = t.polling;
    t.polling = false;
    if (!cpp_step("poll bookkeeping", [&] { apply_result(t, now); }))
        return;
    if (was_polling)
        shmem_count(Counter::polls);
    if (!t.poller->result().ok)
        shmem_count(Counter::poll_failures);
}

// Folds a finished SHOW POOLS into the node's (or the primary's) pool rows.
void bouncer_finished(Tracked *t, Micros now)
{
    Poller &p = t != nullptr ? *t->bouncer : *state->primary_bouncer;
    const PollResult &r = p.result();
    std::vector<PoolRow> &pools = t != nullptr ? t->pools : state->primary_pools;
    bool &ok = t != nullptr ? t->hint.bouncer_ok : state->primary.bouncer_ok;
    Micros &last = t != nullptr ? t->hint.bouncer_last_success : state->primary.bouncer_last_success;
    char *error = t != nullptr ? t->hint.bouncer_error : state->primary.bouncer_error;
    if (r.lost_idle)
        return;  // reconnects at the next tick; the pools seen last still stand
    ok = r.ok;
    if (r.ok) {
        pools = r.pools;
        for (PoolRow &row : pools)
            row.node_id = t != nullptr ? t->cfg.id : 0;
        last = now;
        error[0] = '\0';
    } else {
        pools.clear();
        copy_str(error, kErrorLen, r.error.c_str());
    }
    state->dirty = true;
}

void probe_finished(const ProbeRef &probe, Micros now)
{
    if (!probe.bouncer) {
        poll_finished(*probe.node, now);
        return;
    }
    cpp_step("pgbouncer bookkeeping", [&] { bouncer_finished(probe.node, now); });
}

// Follows replica_router.primary_pgbouncer across reloads.
void sync_primary_bouncer()
{
    const char *want = rr_primary_pgbouncer != nullptr ? rr_primary_pgbouncer : "";
    Poller *have = state->primary_bouncer.get();
    if (have != nullptr && have->conninfo() == want)
        return;
    state->primary_bouncer.reset();
    state->primary_pools.clear();
    state->primary = PrimaryStats{state->primary.wal_rate};
    if (want[0] != '\0')
        state->primary_bouncer = std::make_unique<Poller>(want, FdBudget{fd_acquire, fd_release}, Probe::pgbouncer);
    state->primary.has_bouncer = want[0] != '\0';
    state->dirty = true;
}

void start_probe(Poller &p, Micros now, const PollSettings &s, const ProbeRef &ref)
{
    bool done = false;
    if (!cpp_step("starting a poll", [&] { done = p.start(now, s); }))
        return;
    if (done)
        probe_finished(ref, now);
}

void tick(Micros now)
{
    if (!RecoveryInProgress())
        timeline_refresh(state->timelines);  // before any C++ object of this frame exists
    cpp_step("choosing the primary", [now] { choose(now); });  // this server may have been promoted
    XLogRecPtr primary_lsn = reference_lsn();
    state->history.record(now, primary_lsn);
    state->round++;
    state->round_start = now;
    state->round_open = true;
    PollSettings s = settings();
    for (Tracked &t : state->nodes) {
        if (!t.cfg.enabled || !t.poller || t.poller->busy())  // no poller: a registry sync ran out of memory
            continue;
        if (t.hint.next_try > now)  // a failing replica, backed off
            continue;
        t.polling = true;
        t.poll_started = now;
        t.on_open = t.poller->socket() >= 0;
        t.hint.poll_since = now;
        t.hint.rto = current_rto(t);
        t.primary_at_start = primary_lsn;
        t.round = state->round;
        start_probe(*t.poller, now, s, ProbeRef{t.poller.get(), &t, false});
    }
    // pgbouncer consoles: at most one SHOW POOLS in flight each.
    for (Tracked &t : state->nodes)
        if (t.bouncer && !t.bouncer->busy())
            start_probe(*t.bouncer, now, s, ProbeRef{t.bouncer.get(), &t, true});
    cpp_step("pgbouncer settings", [] { sync_primary_bouncer(); });
    if (state->primary_bouncer && !state->primary_bouncer->busy())
        start_probe(*state->primary_bouncer, now, s, ProbeRef{state->primary_bouncer.get(), nullptr, true});

    state->primary.wal_rate = state->history.rate(now, primary_lsn, kWalRateWindow);
    slots_refresh(now);
    state->dirty = true;
    Micros interval = static_cast<Micros>(rr_poll_interval_ms) * 1000;
    state->next_tick += interval;
    if (state->next_tick <= now)  // fell behind (e.g. a slow write): do not burst
        state->next_tick = now + interval;

    shmem_round_started(now);
}

void close_round_if_done(Micros now)
{
    if (!state->round_open)
        return;
    for (const Tracked &t : state->nodes)
        if (t.polling && t.round == state->round)
            return;
    state->round_open = false;
    shmem_round_finished(now - state->round_start);
}

bool material_change(const NodeHint &a, const NodeHint &b)
{
    // A node that stays down may report a different error each poll (e.g. a
    // flaky resolver): that reaches the table with the next heartbeat only.
    bool error_changed = std::strcmp(a.error, b.error) != 0 && !(a.state == NodeState::down && b.state == NodeState::down);
    return a.state != b.state || a.port != b.port || a.replay_paused != b.replay_paused ||
           a.has_result != b.has_result || error_changed || std::strcmp(a.host, b.host) != 0 ||
           std::strcmp(a.name, b.name) != 0 || (a.lag < 0) != (b.lag < 0) || std::llabs(a.lag - b.lag) >= kLagMaterial ||
           std::llabs(a.lag_bytes - b.lag_bytes) >= kLagBytesMaterial;
}

// Writes changed hints (all of them on a heartbeat) in one short transaction,
// with a NOTIFY for every state change.
void write_hints(Micros now)
{
    static HintWrite rows[kMaxNodesHard];
    // An observer (a standby's worker) writes nothing; once promoted it does.
    if (!state->extension_present || now < state->next_write_retry || RecoveryInProgress())
        return;
    bool heartbeat = now >= state->next_heartbeat;
    int n = 0;
    for (const Tracked &t : state->nodes) {
        if (!heartbeat && t.written_valid && !material_change(t.hint, t.written))
            continue;
        NodeState old_state = t.written_valid ? t.written.state : NodeState::unknown;
        rows[n++] = HintWrite{t.hint, old_state != t.hint.state, old_state};
    }
    if (n == 0 && !heartbeat)
        return;

    char error[kErrorLen] = "";
    CatalogStatus st = catalog_write_hints(rows, n, heartbeat, error, sizeof error);
    if (st == CatalogStatus::ok) {
        for (Tracked &t : state->nodes) {
            t.written = t.hint;
            t.written_valid = true;
        }
        if (heartbeat) {
            state->last_heartbeat = now;
            state->next_heartbeat = now + static_cast<Micros>(rr_heartbeat_s) * 1'000'000;
        }
        shmem_count(Counter::hint_writes);
    } else if (st == CatalogStatus::absent) {
        state->next_registry_load = now;  // reload notices the extension is gone
    } else {
        state->next_write_retry = now + kWriteRetry;
        shmem_count(Counter::write_failures);
        shmem_record_error(error);
    }
}

Micros earliest_deadline(Micros now)
{
    Micros until = state->next_tick;
    if (!state->extension_present)
        until = state->next_registry_load;
    else if (state->next_registry_load < until)
        until = state->next_registry_load;
    for (const ProbeRef &p : state->probes) {
        Micros d = p.poller->deadline();
        if (d != 0 && d < until)
            until = d;
    }
    for (const Tracked &t : state->nodes)  // when a poll becomes overdue (slow)
        if (t.polling && t.on_open && !t.hint.slow && t.hint.poll_since != 0 && t.hint.rto > 0 &&
            t.hint.poll_since + t.hint.rto + 1 < until)
            until = t.hint.poll_since + t.hint.rto + 1;
    return until > now ? until : now;
}

void collect_probes()
{
    state->probes.clear();
    for (Tracked &t : state->nodes) {
        if (t.poller)
            state->probes.push_back(ProbeRef{t.poller.get(), &t, false});
        if (t.bouncer)
            state->probes.push_back(ProbeRef{t.bouncer.get(), &t, true});
    }
    if (state->primary_bouncer)
        state->probes.push_back(ProbeRef{state->primary_bouncer.get(), nullptr, true});
}

void advance_probe(const ProbeRef &probe, Micros now)
{
    bool done = false;
    if (!cpp_step("advancing a poll", [&] { done = probe.poller->advance(now); }))
        return;
    if (done)
        probe_finished(probe, now);
}

// Lists the sockets the pollers want this pass, in probe order.
void collect_sockets()
{
    state->wait_want.clear();
    for (std::size_t i = 0; i < state->probes.size(); ++i) {
        const Poller *p = state->probes[i].poller;
        Wants w = p->wants();
        if (w == Wants::nothing)
            continue;
        uint32 ev = w == Wants::read ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
        state->wait_want.push_back(WaitKey{p, i, p->socket(), p->socket_generation(), ev, -1});
    }
    // So that registering them below never allocates (nor throws).
    state->wait_keys.reserve(state->wait_want.size());
    state->wait_broken.reserve(state->probes.size());
}

// The set can stay when the same pollers hold the same sockets (number and
// generation) at the same positions; only their events may differ.
bool same_sockets()
{
    const auto &have = state->wait_keys, &want = state->wait_want;
    if (state->wait_set == nullptr || state->wait_set_stale || have.size() != want.size())
        return false;
    for (std::size_t j = 0; j < have.size(); ++j)
        if (have[j].poller != want[j].poller || have[j].probe != want[j].probe || have[j].fd != want[j].fd ||
            have[j].generation != want[j].generation || have[j].pos < 0)
            return false;
    return true;
}

// Switches read/write in place. ModifyWaitEvent ERRORs on a socket closed
// behind our back (epoll_ctl); that socket's poller is advanced at once and
// the set rebuilt at the next wait.
void modify_wait_set()
{
    for (std::size_t j = 0; j < state->wait_keys.size(); ++j) {
        WaitKey &k = state->wait_keys[j];
        uint32 ev = state->wait_want[j].events;
        if (k.events == ev)
            continue;
        char error[kErrorLen];
        WaitEventSet *set = state->wait_set;
        int pos = k.pos;
        if (pg_try([&]() noexcept { ModifyWaitEvent(set, pos, ev, nullptr); }, error, sizeof error)) {
            k.events = ev;
        } else {
            state->wait_set_stale = true;
            state->wait_broken.push_back(k.probe);
        }
    }
}

// A new set for this pass's sockets. The set's epoll fd counts against the
// external-fd budget the pollers share: the old set's slot (or, for the
// first set, the slot reserved at start-up) is given back just before, so
// many idle connections can never keep the worker from waiting.
void rebuild_wait_set()
{
    if (state->wait_set != nullptr) {
        FreeWaitEventSet(state->wait_set);  // releases its external fd
        state->wait_set = nullptr;
    } else if (state->wait_fd_reserved) {
        fd_release();
        state->wait_fd_reserved = false;
    }
    state->wait_keys.clear();
    state->wait_set_stale = false;
    state->dns_pos = -1;
    char error[kErrorLen];
    WaitEventSet *set = nullptr;
    int nevents = 3 + static_cast<int>(state->wait_want.size());
    int dns_fd = state->dns_fd, dns_pos = -1;
    bool ok = pg_try(
        [&]() noexcept {
            set = CreateWaitEventSet(TopMemoryContext, nevents);
            AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
            AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
            if (dns_fd >= 0)
                dns_pos = AddWaitEventToSet(set, WL_SOCKET_READABLE, dns_fd, nullptr, nullptr);
        },
        error, sizeof error);
    if (!ok) {
        if (set != nullptr)
            FreeWaitEventSet(set);
        state->wait_fd_reserved = fd_acquire();
        if (!state->wait_set_failed)
            ereport(LOG, (errmsg("replica_router worker: could not set up the wait set: %s", error)));
        state->wait_set_failed = true;
        return;
    }
    state->wait_set_failed = false;
    state->wait_set = set;
    state->dns_pos = dns_pos;
    // Citus guards AddWaitEventToSet the same way: a socket closed behind our
    // back makes epoll_ctl fail with an ERROR.
    for (WaitKey k : state->wait_want) {
        int pos = -1;
        pgsocket fd = k.fd;
        uint32 ev = k.events;
        void *data = reinterpret_cast<void *>(k.probe);
        if (pg_try([&]() noexcept { pos = AddWaitEventToSet(set, ev, fd, nullptr, data); }, error, sizeof error)) {
            k.pos = pos;
        } else {
            state->wait_set_stale = true;
            state->wait_broken.push_back(k.probe);
        }
        state->wait_keys.push_back(k);
    }
}

// Waits on the latch, postmaster death, the DNS notifier and every socket a
// poller wants, then advances the pollers whose socket fired, whose lookup
// finished or whose deadline passed.
void wait_and_advance()
{
    if (!cpp_step("collecting probes", [] { collect_probes(); }))
        state->probes.clear();
    state->wait_broken.clear();
    if (!cpp_step("collecting sockets", [] { collect_sockets(); }))
        state->wait_want.clear();
    if (same_sockets())
        modify_wait_set();
    else
        rebuild_wait_set();

    Micros now = GetCurrentTimestamp();
    Micros until = earliest_deadline(now);
    long timeout_ms = static_cast<long>((until - now + 999) / 1000);
    if (!state->wait_broken.empty())
        timeout_ms = 0;

    WaitEvent events[64];
    int nfired = 0;
    bool dns_fired = false;
    if (state->wait_set != nullptr) {
        nfired = WaitEventSetWait(state->wait_set, timeout_ms, events, lengthof(events), PG_WAIT_EXTENSION);
    } else {
        // No set (out of descriptors): sleep briefly on the latch alone and
        // look at every socket afterwards.
        int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, std::min(timeout_ms, 100L),
                           PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        for (const WaitKey &k : state->wait_want)
            state->wait_broken.push_back(k.probe);
        dns_fired = state->dns_fd >= 0;
    }

    now = GetCurrentTimestamp();
    for (int e = 0; e < nfired; ++e) {
        if (events[e].events & WL_LATCH_SET) {
            ResetLatch(MyLatch);
            continue;
        }
        if (events[e].pos == state->dns_pos) {
            dns_fired = true;
            continue;
        }
        std::size_t i = reinterpret_cast<std::size_t>(events[e].user_data);
        if (i < state->probes.size())
            advance_probe(state->probes[i], now);
    }
    // Host name lookups that finished: drained first, so a lookup that
    // completes while the others are looked at wakes the next wait.
    if (dns_fired) {
        dns_notify::drain();
        for (const ProbeRef &p : state->probes)
            if (p.poller->resolving())
                advance_probe(p, now);
    }
    for (std::size_t i : state->wait_broken)
        if (i < state->probes.size())
            advance_probe(state->probes[i], now);
    // Deadlines: timeouts (and, without the notifier, pending lookups).
    for (const ProbeRef &p : state->probes)
        if (p.poller->deadline() != 0 && p.poller->deadline() <= now)
            advance_probe(p, now);
}

// replica_router.observe = off on a standby: no polls, nothing published
// (the standby answers from the replicated hints); wakes on reload and checks
// for promotion every second.
void stand_by()
{
    if (state->extension_present || !state->nodes.empty()) {
        close_all();
        state->nodes.clear();
        state->choice = PrimaryChoice{};
        state->extension_present = false;
        shmem_unpublish();
        state->next_registry_load = 0;  // reread at once when observing again
        state->next_tick = 0;
    }
    int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET)
        ResetLatch(MyLatch);
}

void apply_reload()
{
    ConfigReloadPending = false;
    ProcessConfigFile(PGC_SIGHUP);
    // A shorter heartbeat applies from the last one, not after the old interval.
    Micros due = state->last_heartbeat + static_cast<Micros>(rr_heartbeat_s) * 1'000'000;
    if (due < state->next_heartbeat)
        state->next_heartbeat = due;
}

// Follows this server in and out of recovery. False while a standby's worker
// does not observe (it waited in stand_by()).
bool follow_recovery(Micros now)
{
    bool in_recovery = RecoveryInProgress();
    if (in_recovery && !rr_observe) {
        stand_by();
        return false;
    }
    if (state->was_in_recovery && !in_recovery) {
        // Promoted: this worker now writes. Choose first, so that the first
        // heartbeat names this server.
        ereport(LOG, (errmsg("replica_router worker: this server was promoted; writing hints from now on")));
        cpp_step("choosing the primary", [now] { choose(now); });
        state->next_heartbeat = now;
        state->dirty = true;
    }
    state->was_in_recovery = in_recovery;
    return true;
}

// The registry is read again after a change committed here, on a standby once
// WAL replay has moved (registry changes arrive that way; at most every
// kReplayRecheck), and every kRegistryRecheck regardless.
void reload_registry_if_due(Micros now)
{
    bool replayed = false;
    if (RecoveryInProgress() && now - state->last_registry_load >= kReplayRecheck) {
        XLogRecPtr replay = GetXLogReplayRecPtr(nullptr);
        replayed = replay != state->replay_seen;
        state->replay_seen = replay;
    }
    if (!replayed && shmem_generation() == state->generation_seen && now < state->next_registry_load)
        return;
    state->last_registry_load = now;
    bool was_present = state->extension_present;
    load_registry(now);
    if (!state->extension_present && was_present)
        close_all();
    if (!state->extension_present)
        state->next_registry_load = now + kAbsentRecheck;
}

void run_loop()
{
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending)
            apply_reload();
        Micros now = GetCurrentTimestamp();
        if (!follow_recovery(now))
            continue;
        reload_registry_if_due(now);
        if (state->extension_present && now >= state->next_tick)
            tick(now);
        if (state->dirty)
            publish();  // registry and route changes are visible before we sleep

        wait_and_advance();

        now = GetCurrentTimestamp();
        mark_slow(now);
        close_round_if_done(now);
        if (state->dirty)
            publish();
        write_hints(now);
    }
}

} // namespace

} // namespace rr

void replica_router_worker_main(Datum)
{
    using namespace rr;
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(rr_database, nullptr, 0);
    pgstat_report_appname("replica_router worker");

    // The worker's own transactions must never queue behind users' locks for
    // long, nor wait for the replicas it watches to confirm a commit.
    SetConfigOption("lock_timeout", "100", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("statement_timeout", "5000", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("application_name", "replica_router worker", PGC_SUSET, PGC_S_OVERRIDE);
    // The worker is a superuser: no schema a user can write may resolve a
    // name in the SQL it runs (ALTER DATABASE ... SET search_path included).
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

    bool ok = cpp_step("worker start-up", [] { state = new WorkerState(); });
    if (!ok)
        proc_exit(1);
    state->wait_fd_reserved = fd_acquire();
    // One eventfd for every host name lookup's completion; it counts against
    // the external-fd budget for as long as the worker runs.
    state->dns_fd = dns_notify::open();
    if (state->dns_fd >= 0)
        ReserveExternalFD();

    Micros now = GetCurrentTimestamp();
    shmem_worker_started(MyLatch, now);
    before_shmem_exit(on_exit_cleanup, 0);

    state->next_tick = now;
    state->next_heartbeat = now;
    state->next_registry_load = now;
    ereport(LOG, (errmsg("replica_router worker started in database \"%s\"", rr_database)));
    // Every C++ step is guarded (cpp_step); should an exception still reach
    // here, the worker ends with a FATAL naming it, and the postmaster
    // restarts it, rather than std::terminate taking the server down.
    char message[kErrorLen] = "";
    try {
        run_loop();
    } catch (const std::exception &e) {
        copy_str(message, sizeof message, e.what());
    } catch (...) {
        copy_str(message, sizeof message, "unknown C++ exception");
    }
    ereport(FATAL, (errmsg("replica_router worker stopped by an internal error: %s", message)));
}
