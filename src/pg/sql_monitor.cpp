// Shared-memory figures behind the monitoring views: pgbouncer pools,
// replication slot inactivity, and the primary's own WAL rate and pgbouncer.
#include "pg.hpp"

#include "guard.hpp"
#include "shmem.hpp"
#include "srf.hpp"

namespace rr {

namespace {

// Copies a shared table out under the shared lock into palloc'd memory.
template <typename Row, typename Table>
Row *copy_out(const Table &table, std::size_t *n)
{
    SharedState *s = shmem_require();
    LWLockAcquire(s->lock, LW_SHARED);
    *n = s->hints_ready ? table.size() : 0;
    Row *rows = static_cast<Row *>(palloc(sizeof(Row) * (*n > 0 ? *n : 1)));
    if (*n > 0)
        memcpy(rows, table.data(), sizeof(Row) * *n);
    LWLockRelease(s->lock);
    return rows;
}

Datum pools(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = materialize(fcinfo);
    std::size_t n = 0;
    PoolRow *rows = copy_out<PoolRow>(shmem_require()->pools, &n);
    for (std::size_t i = 0; i < n; ++i) {
        const PoolRow &p = rows[i];
        Datum v[10] = {Int32GetDatum(p.node_id), CStringGetTextDatum(p.database), CStringGetTextDatum(p.user),
                       Int32GetDatum(p.cl_active), Int32GetDatum(p.cl_waiting), Int32GetDatum(p.sv_active),
                       Int32GetDatum(p.sv_idle), Int32GetDatum(p.sv_used), interval_datum(p.maxwait),
                       CStringGetTextDatum(p.pool_mode)};
        bool nulls[10] = {};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
    }
    return (Datum) 0;
}

Datum slots(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = materialize(fcinfo);
    std::size_t n = 0;
    SlotTrack *rows = copy_out<SlotTrack>(shmem_require()->slots, &n);
    for (std::size_t i = 0; i < n; ++i) {
        Datum v[3] = {CStringGetTextDatum(rows[i].name), BoolGetDatum(rows[i].active),
                      TimestampTzGetDatum(rows[i].inactive_since)};
        bool nulls[3] = {false, false, rows[i].inactive_since == 0};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
    }
    return (Datum) 0;
}

Datum primary_stats(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    LWLockAcquire(s->lock, LW_SHARED);
    PrimaryStats p = s->primary;
    bool ready = s->hints_ready;
    LWLockRelease(s->lock);

    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum v[5] = {Float8GetDatum(p.wal_rate), BoolGetDatum(p.has_bouncer), BoolGetDatum(p.bouncer_ok),
                  TimestampTzGetDatum(p.bouncer_last_success), CStringGetTextDatum(p.bouncer_error)};
    bool nulls[5] = {!ready, !ready, !p.has_bouncer, p.bouncer_last_success == 0, p.bouncer_error[0] == '\0'};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
}

} // namespace

} // namespace rr

RR_SQL_FUNCTION(replica_router_pools, "replica_router._pools()")
{
    return rr::pools(fcinfo);
}

RR_SQL_FUNCTION(replica_router_slots, "replica_router._slots()")
{
    return rr::slots(fcinfo);
}

RR_SQL_FUNCTION(replica_router_primary_stats, "replica_router._primary_stats()")
{
    return rr::primary_stats(fcinfo);
}
