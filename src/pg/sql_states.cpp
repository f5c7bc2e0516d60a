// replica_router.states(): the state table of src/core/states.hpp as SQL, so
// the views, metrics() and the check command judge states as the worker does.
#include "pg.hpp"

#include "guard.hpp"
#include "srf.hpp"
#include "states.hpp"

RR_SQL_FUNCTION(replica_router_states, "replica_router.states()")
{
    ReturnSetInfo *rsinfo = rr::materialize(fcinfo);
    constexpr int kCols = 5;
    if (rsinfo->setDesc->natts != kCols)
        elog(ERROR, "replica_router.states(): expected %d result columns, found %d", kCols,
             rsinfo->setDesc->natts);
    for (const rr::StateInfo &s : rr::kStates) {
        Datum v[kCols];
        bool nulls[kCols] = {false, false, false, false, false};
        int i = 0;
        v[i++] = CStringGetTextDatum(s.name);
        v[i++] = CStringGetTextDatum(rr::severity_name(s.severity));
        v[i++] = BoolGetDatum(s.lag_judged);
        v[i++] = BoolGetDatum(s.routable);
        v[i++] = CStringGetTextDatum(s.meaning);
        Assert(i == kCols);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
    }
    return (Datum) 0;
}
