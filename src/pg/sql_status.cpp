// Set-returning views over shared memory: _hints() (behind the status view)
// and worker_status(). Entries are copied out under the lock, tuples built after.
#include "pg.hpp"

#include "guard.hpp"
#include "guc.hpp"
#include "routing.hpp"
#include "rto.hpp"
#include "shmem.hpp"
#include "srf.hpp"

namespace rr {

namespace {

Datum hints(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    ReturnSetInfo *rsinfo = materialize(fcinfo);

    std::size_t n = 0;
    NodeHint *copy = shmem_copy_out<NodeHint>(s->nodes, &n);

    Micros now = GetCurrentTimestamp();
    Micros stale_after = static_cast<Micros>(rr_stale_after_ms) * 1000;
    RowBuilder<35> row;
    for (std::size_t i = 0; i < n; ++i) {
        const NodeHint &h = copy[i];
        bool unpolled = !h.has_result;
        char sysid[32];
        snprintf(sysid, sizeof sysid, UINT64_FORMAT, static_cast<uint64>(h.system_id));
        row.add(Int32GetDatum(h.node_id));
        row.add(CStringGetTextDatum(h.name));
        row.add(CStringGetTextDatum(h.host));
        row.add(Int32GetDatum(h.port));
        row.add(CStringGetTextDatum(h.zone), h.zone[0] == '\0');
        row.add(Int32GetDatum(h.weight));
        row.add(BoolGetDatum(h.enabled));
        row.add(CStringGetTextDatum(state_name(effective_state(h, now, stale_after))));
        row.add(BoolGetDatum(h.in_recovery), unpolled);
        row.add(BoolGetDatum(h.replay_paused), unpolled);
        row.add(LSNGetDatum(h.receive_lsn), unpolled || h.receive_lsn == 0);
        row.add(LSNGetDatum(h.replay_lsn), unpolled || h.replay_lsn == 0);
        row.add(Int64GetDatum(h.lag_bytes), h.lag_bytes < 0);
        row.add(interval_datum(h.lag), h.lag < 0);
        row.add(TimestampTzGetDatum(h.last_replay_ts), unpolled || h.last_replay_ts == 0);
        row.add(TimestampTzGetDatum(h.last_poll), h.last_poll == 0);
        row.add(TimestampTzGetDatum(h.last_success), h.last_success == 0);
        row.add(TimestampTzGetDatum(h.state_since), h.state_since == 0);
        row.add(CStringGetTextDatum(sysid), unpolled);
        row.add(Int32GetDatum(h.timeline), unpolled);
        row.add(Int32GetDatum(h.connections), unpolled);
        row.add(Int32GetDatum(h.max_connections), unpolled);
        row.add(Int32GetDatum(static_cast<int32>(h.failures)));
        char error[2 * kErrorLen];
        poll_error_text(h, now, error, sizeof error);
        row.add(CStringGetTextDatum(error), error[0] == '\0');
        row.add(Int32GetDatum(h.pool.active), unpolled);
        row.add(Int32GetDatum(h.pool.idle), unpolled);
        row.add(Int32GetDatum(h.pool.idle_in_xact), unpolled);
        row.add(Int32GetDatum(h.pool.waiting), unpolled);
        row.add(Int32GetDatum(h.pool.reserved), unpolled);
        row.add(BoolGetDatum(h.has_bouncer));
        row.add(BoolGetDatum(h.bouncer_ok), !h.has_bouncer);
        row.add(TimestampTzGetDatum(h.bouncer_last_success), h.bouncer_last_success == 0);
        row.add(CStringGetTextDatum(h.bouncer_error), h.bouncer_error[0] == '\0');
        row.add(CStringGetTextDatum(h.slot_name), h.slot_name[0] == '\0');
        row.add(CStringGetTextDatum(h.app_name), h.app_name[0] == '\0');
        row.put(rsinfo);
    }
    return (Datum) 0;
}

Datum worker_status(FunctionCallInfo fcinfo)
{
    WorkerStatus w = shmem_worker_status();
    const WorkerStats &st = w.stats;
    auto count = [&w](Counter c) { return Int64GetDatum(static_cast<int64>(w.counters[static_cast<int>(c)])); };

    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    RowBuilder<12> row;
    row.add(Int32GetDatum(st.pid), st.pid == 0);
    row.add(TimestampTzGetDatum(st.started_at), st.started_at == 0);
    row.add(count(Counter::rounds));
    row.add(TimestampTzGetDatum(st.last_round_start), st.last_round_start == 0);
    row.add(interval_datum(st.last_round_duration), st.last_round_start == 0);
    row.add(count(Counter::polls));
    row.add(count(Counter::poll_failures));
    row.add(count(Counter::hint_writes));
    row.add(count(Counter::write_failures));
    row.add(CStringGetTextDatum(st.last_error), st.last_error[0] == '\0');
    row.add(TimestampTzGetDatum(st.last_error_at), st.last_error_at == 0);
    row.add(CStringGetTextDatum(st.registry_problem), st.registry_problem[0] == '\0');
    // 1.2 added registry_problem; the library also serves the 1.1 definition.
    return row.tuple(BlessTupleDesc(desc), 11);
}

} // namespace

} // namespace rr

RR_SQL_FUNCTION(replica_router_hints, "replica_router._hints()")
{
    return rr::hints(fcinfo);
}

RR_SQL_FUNCTION(replica_router_worker_status, "replica_router.worker_status()")
{
    return rr::worker_status(fcinfo);
}

// Whether this server is the primary the worker elected: "primary",
// "standby", "unelected" (out of recovery, but the election names another
// member: an old primary back on its old timeline) or "unknown" (it elected
// itself before polling every member, as a restarted old primary does until
// its first round ends). Being writable is not enough, and a member row's
// polled state lags a promotion by one poll, so this reads the election.
RR_SQL_FUNCTION(replica_router_source_role, "replica_router._source_role()")
{
    const char *role = "standby";
    if (!RecoveryInProgress())
        role = rr::shmem_read([](const rr::SharedState &s) noexcept -> const char * {
            if (!s.hints_ready)
                return "primary";  // before the worker's first publish, as _primary() answers
            if (s.elected.kind == rr::PrimaryChoice::Kind::member)
                return "unelected";  // another member (this server would be Kind::local)
            for (const rr::NodeHint &h : s.nodes)
                if (h.enabled && h.last_poll == 0)
                    return "unknown";
            return "primary";
        });
    PG_RETURN_TEXT_P(cstring_to_text(role));
}
