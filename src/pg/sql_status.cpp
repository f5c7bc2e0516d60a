// Set-returning views over shared memory: _hints() (behind the status view)
// and worker_status(). Entries are copied out under the lock, tuples built after.
#include "pg.hpp"

#include "guard.hpp"
#include "guc.hpp"
#include "routing.hpp"
#include "shmem.hpp"
#include "srf.hpp"

namespace rr {

namespace {

Datum hints(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    ReturnSetInfo *rsinfo = materialize(fcinfo);

    LWLockAcquire(s->lock, LW_SHARED);
    std::size_t n = s->hints_ready ? s->nodes.size() : 0;
    NodeHint *copy = static_cast<NodeHint *>(palloc(sizeof(NodeHint) * (n > 0 ? n : 1)));
    if (n > 0)
        memcpy(copy, s->nodes.data(), sizeof(NodeHint) * n);
    LWLockRelease(s->lock);

    Micros now = GetCurrentTimestamp();
    Micros stale_after = static_cast<Micros>(rr_stale_after_ms) * 1000;
    constexpr int kCols = 35;
    for (std::size_t i = 0; i < n; ++i) {
        const NodeHint &h = copy[i];
        Datum v[kCols];
        bool nulls[kCols];
        memset(nulls, 0, sizeof nulls);
        char sysid[32];
        snprintf(sysid, sizeof sysid, UINT64_FORMAT, static_cast<uint64>(h.system_id));
        v[0] = Int32GetDatum(h.node_id);
        v[1] = CStringGetTextDatum(h.name);
        v[2] = CStringGetTextDatum(h.host);
        v[3] = Int32GetDatum(h.port);
        v[4] = CStringGetTextDatum(h.zone);
        nulls[4] = h.zone[0] == '\0';
        v[5] = Int32GetDatum(h.weight);
        v[6] = BoolGetDatum(h.enabled);
        v[7] = CStringGetTextDatum(state_name(effective_state(h, now, stale_after)));
        v[8] = BoolGetDatum(h.in_recovery);
        v[9] = BoolGetDatum(h.replay_paused);
        v[10] = LSNGetDatum(h.receive_lsn);
        v[11] = LSNGetDatum(h.replay_lsn);
        v[12] = Int64GetDatum(h.lag_bytes);
        v[13] = interval_datum(h.lag);
        v[14] = TimestampTzGetDatum(h.last_replay_ts);
        v[15] = TimestampTzGetDatum(h.last_poll);
        v[16] = TimestampTzGetDatum(h.last_success);
        v[17] = TimestampTzGetDatum(h.state_since);
        v[18] = CStringGetTextDatum(sysid);
        v[19] = Int32GetDatum(h.timeline);
        v[20] = Int32GetDatum(h.connections);
        v[21] = Int32GetDatum(h.max_connections);
        v[22] = Int32GetDatum(static_cast<int32>(h.failures));
        v[23] = CStringGetTextDatum(h.error);
        v[24] = Int32GetDatum(h.pool.active);
        v[25] = Int32GetDatum(h.pool.idle);
        v[26] = Int32GetDatum(h.pool.idle_in_xact);
        v[27] = Int32GetDatum(h.pool.waiting);
        v[28] = Int32GetDatum(h.pool.reserved);
        v[29] = BoolGetDatum(h.has_bouncer);
        v[30] = BoolGetDatum(h.bouncer_ok);
        v[31] = TimestampTzGetDatum(h.bouncer_last_success);
        v[32] = CStringGetTextDatum(h.bouncer_error);
        v[33] = CStringGetTextDatum(h.slot_name);
        v[34] = CStringGetTextDatum(h.app_name);
        if (!h.has_result)
            for (int c : {8, 9, 10, 11, 14, 18, 19, 20, 21, 24, 25, 26, 27, 28})
                nulls[c] = true;
        nulls[10] = nulls[10] || h.receive_lsn == 0;
        nulls[11] = nulls[11] || h.replay_lsn == 0;
        nulls[12] = h.lag_bytes < 0;
        nulls[13] = h.lag < 0;
        nulls[14] = nulls[14] || h.last_replay_ts == 0;
        nulls[15] = h.last_poll == 0;
        nulls[16] = h.last_success == 0;
        nulls[17] = h.state_since == 0;
        nulls[23] = h.error[0] == '\0';
        nulls[30] = !h.has_bouncer;
        nulls[31] = h.bouncer_last_success == 0;
        nulls[32] = h.bouncer_error[0] == '\0';
        nulls[33] = h.slot_name[0] == '\0';
        nulls[34] = h.app_name[0] == '\0';
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
    }
    return (Datum) 0;
}

Datum worker_status(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    LWLockAcquire(s->lock, LW_SHARED);
    WorkerStats st = s->stats;
    LWLockRelease(s->lock);

    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    // 1.2 added registry_problem; the library also serves older definitions.
    constexpr int kCols = 12;
    if (desc->natts != kCols && desc->natts != kCols - 1)
        elog(ERROR, "worker_status(): unexpected result columns (%d)", desc->natts);
    Datum v[kCols];
    bool nulls[kCols];
    memset(nulls, 0, sizeof nulls);
    v[0] = Int32GetDatum(st.pid);
    nulls[0] = st.pid == 0;
    v[1] = TimestampTzGetDatum(st.started_at);
    nulls[1] = st.started_at == 0;
    v[2] = Int64GetDatum(static_cast<int64>(st.rounds));
    v[3] = TimestampTzGetDatum(st.last_round_start);
    nulls[3] = st.last_round_start == 0;
    v[4] = interval_datum(st.last_round_duration);
    nulls[4] = st.last_round_start == 0;
    v[5] = Int64GetDatum(static_cast<int64>(st.polls));
    v[6] = Int64GetDatum(static_cast<int64>(st.poll_failures));
    v[7] = Int64GetDatum(static_cast<int64>(st.hint_writes));
    v[8] = Int64GetDatum(static_cast<int64>(st.write_failures));
    v[9] = CStringGetTextDatum(st.last_error);
    nulls[9] = st.last_error[0] == '\0';
    v[10] = TimestampTzGetDatum(st.last_error_at);
    nulls[10] = st.last_error_at == 0;
    v[11] = CStringGetTextDatum(st.registry_problem);
    nulls[11] = st.registry_problem[0] == '\0';
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
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
