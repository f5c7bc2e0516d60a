// Set-returning functions in materialize mode, across PostgreSQL versions.
#pragma once

#include "pg.hpp"

namespace rr {

inline ReturnSetInfo *materialize(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
#if PG_VERSION_NUM >= 150000
    InitMaterializedSRF(fcinfo, 0);
#else
    TupleDesc tupdesc;
    if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    rsinfo->returnMode = SFRM_Materialize;
    rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
    rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
    MemoryContextSwitchTo(old);
#endif
    return rsinfo;
}

// One result row, filled column by column in order (values[i++]); put()
// checks the count against the result's descriptor, so a column added on one
// side only is an error, not a shifted row.
template <int N>
struct RowBuilder {
    Datum values[N];
    bool nulls[N] = {};
    int i = 0;

    void add(Datum d, bool isnull = false)
    {
        if (i >= N)
            elog(ERROR, "replica_router: more than %d result columns", N);
        values[i] = d;
        nulls[i] = isnull;
        ++i;
    }
    void check(TupleDesc desc) const
    {
        if (i != N || desc->natts != N)
            elog(ERROR, "replica_router: built %d columns of %d for a result of %d", i, N, desc->natts);
    }
    void put(ReturnSetInfo *rsinfo)
    {
        check(rsinfo->setDesc);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        i = 0;
    }
    // The one row of a function returning a record. An older definition of
    // the function (before an ALTER EXTENSION UPDATE added trailing columns)
    // may have as few as min_natts: those columns are what it gets.
    Datum tuple(TupleDesc desc, int min_natts = N) const
    {
        if (i != N || desc->natts > N || desc->natts < min_natts)
            elog(ERROR, "replica_router: built %d columns of %d for a result of %d", i, N, desc->natts);
        return HeapTupleGetDatum(heap_form_tuple(desc, const_cast<Datum *>(values), const_cast<bool *>(nulls)));
    }
};

inline Datum interval_datum(Micros us)
{
    Interval *iv = static_cast<Interval *>(palloc0(sizeof(Interval)));
    iv->time = us;
    return IntervalPGetDatum(iv);
}

} // namespace rr
