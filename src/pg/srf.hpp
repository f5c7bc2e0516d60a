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

inline Datum interval_datum(Micros us)
{
    Interval *iv = static_cast<Interval *>(palloc0(sizeof(Interval)));
    iv->time = us;
    return IntervalPGetDatum(iv);
}

} // namespace rr
