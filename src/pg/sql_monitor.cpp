// Shared-memory figures behind the monitoring views: pgbouncer pools,
// replication slot inactivity, and the primary's own WAL rate and pgbouncer.
#include "pg.hpp"

#include "guard.hpp"
#include "shmem.hpp"
#include "srf.hpp"

namespace rr {

namespace {

Datum pools(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = materialize(fcinfo);
    std::size_t n = 0;
    PoolRow *rows = shmem_copy_out<PoolRow>(shmem_require()->pools, &n);
    RowBuilder<10> row;
    for (std::size_t i = 0; i < n; ++i) {
        const PoolRow &p = rows[i];
        row.add(Int32GetDatum(p.node_id));
        row.add(CStringGetTextDatum(p.database));
        row.add(CStringGetTextDatum(p.user));
        row.add(Int32GetDatum(p.cl_active));
        row.add(Int32GetDatum(p.cl_waiting));
        row.add(Int32GetDatum(p.sv_active));
        row.add(Int32GetDatum(p.sv_idle));
        row.add(Int32GetDatum(p.sv_used));
        row.add(interval_datum(p.maxwait));
        row.add(CStringGetTextDatum(p.pool_mode));
        row.put(rsinfo);
    }
    return (Datum) 0;
}

Datum slots(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = materialize(fcinfo);
    std::size_t n = 0;
    SlotTrack *rows = shmem_copy_out<SlotTrack>(shmem_require()->slots, &n);
    RowBuilder<3> row;
    for (std::size_t i = 0; i < n; ++i) {
        row.add(CStringGetTextDatum(rows[i].name));
        row.add(BoolGetDatum(rows[i].active));
        row.add(TimestampTzGetDatum(rows[i].inactive_since), rows[i].inactive_since == 0);
        row.put(rsinfo);
    }
    return (Datum) 0;
}

Datum primary_stats(FunctionCallInfo fcinfo)
{
    bool ready = false;
    PrimaryStats p = shmem_read([&ready](const SharedState &s) noexcept {
        ready = s.hints_ready;
        return s.primary;
    });

    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    RowBuilder<5> row;
    row.add(Float8GetDatum(p.wal_rate), !ready);
    row.add(BoolGetDatum(p.has_bouncer), !ready);
    row.add(BoolGetDatum(p.bouncer_ok), !p.has_bouncer);
    row.add(TimestampTzGetDatum(p.bouncer_last_success), p.bouncer_last_success == 0);
    row.add(CStringGetTextDatum(p.bouncer_error), p.bouncer_error[0] == '\0');
    row.check(desc);
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), row.values, row.nulls));
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
