// replica_router.recommend(): the hot path. Reads shared memory under a
// shared LWLock; no SPI, no table access, no allocation under the lock.
#include "pg.hpp"

#include "guard.hpp"
#include "guc.hpp"
#include "primary.hpp"
#include "routing.hpp"
#include "shmem.hpp"

#include <cstring>

extern "C" {
PG_FUNCTION_INFO_V1(replica_router_recommend);
PG_FUNCTION_INFO_V1(replica_router_primary);
}

namespace rr {

namespace {

struct Answer {
    char node[kNameLen];
    char host[kHostLen];
    int port;
    bool primary;
    Micros lag;
    int64_t lag_bytes;
    char reason[512];
};

Micros interval_micros(const Interval *iv)
{
    return iv->time + static_cast<Micros>(iv->day) * USECS_PER_DAY +
           static_cast<Micros>(iv->month) * DAYS_PER_MONTH * USECS_PER_DAY;
}

void answer_primary(Answer &a, const char *reason)
{
    copy_str(a.node, sizeof a.node, rr_primary_name);
    primary_endpoint(a.host, sizeof a.host, &a.port);
    a.primary = true;
    a.lag = 0;
    a.lag_bytes = 0;
    copy_str(a.reason, sizeof a.reason, reason);
}

Operation parse_operation(const text *op)
{
    const char *p = VARDATA_ANY(op);
    int len = VARSIZE_ANY_EXHDR(op);
    if (len == 4 && std::memcmp(p, "read", 4) == 0)
        return Operation::read;
    if (len == 5 && std::memcmp(p, "write", 5) == 0)
        return Operation::write;
    return Operation::other;
}

// Building the OUT-parameter row type from the catalog costs more than the
// rest of recommend(); keep it per backend, keyed by the function's OID so a
// redefined function (extension update) gets a fresh one.
TupleDesc result_desc(FunctionCallInfo fcinfo)
{
    static Oid cached_oid = InvalidOid;
    static TupleDesc cached = nullptr;
    Oid fn = fcinfo->flinfo->fn_oid;
    if (cached != nullptr && cached_oid == fn)
        return cached;
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    TupleDesc copy = BlessTupleDesc(CreateTupleDescCopy(desc));
    MemoryContextSwitchTo(old);
    if (cached != nullptr)
        FreeTupleDesc(cached);
    cached = copy;
    cached_oid = fn;
    return cached;
}

Datum answer_datum(FunctionCallInfo fcinfo, const Answer &a)
{
    TupleDesc desc = result_desc(fcinfo);
    Datum v[7];
    bool nulls[7] = {false, false, false, false, false, false, false};
    v[0] = CStringGetTextDatum(a.node);
    v[1] = CStringGetTextDatum(a.host);
    v[2] = Int32GetDatum(a.port);
    v[3] = CStringGetTextDatum(a.primary ? "primary" : "replica");
    Interval *lag = static_cast<Interval *>(palloc0(sizeof(Interval)));
    lag->time = a.lag < 0 ? 0 : a.lag;
    v[4] = IntervalPGetDatum(lag);
    v[5] = Int64GetDatum(a.lag_bytes < 0 ? 0 : a.lag_bytes);
    v[6] = CStringGetTextDatum(a.reason);
    return HeapTupleGetDatum(heap_form_tuple(desc, v, nulls));
}

Datum recommend(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("operation must not be null"),
                        errhint("Pass 'read' or 'write'.")));

    RouteRequest req;
    req.op = parse_operation(PG_GETARG_TEXT_PP(0));
    req.max_lag = static_cast<Micros>(rr_max_lag_ms) * 1000;
    if (!PG_ARGISNULL(1)) {
        Micros m = interval_micros(PG_GETARG_INTERVAL_P(1));
        if (m < 0)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_lag must not be negative"),
                            errdetail("The given max_lag is %s.",
                                      DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(1))))));
        req.max_lag = m;
        req.explicit_max_lag = true;
    }
    if (!PG_ARGISNULL(2)) {
        req.has_min_lsn = true;
        req.min_lsn = PG_GETARG_LSN(2);
    }
    req.now = GetCurrentTimestamp();
    req.stale_after = static_cast<Micros>(rr_stale_after_ms) * 1000;

    Answer a;
    if (!rr_enabled) {
        answer_primary(a, "replica_router.enabled is off");
    } else if (req.op == Operation::write) {
        answer_primary(a, "writes go to the primary");
    } else if (req.op == Operation::other) {
        answer_primary(a, "unknown operation: routed to the primary for safety");
    } else {
        uint64 ticket = pg_atomic_fetch_add_u64(&s->ticket, 1);
        int chosen = -1;
        LWLockAcquire(s->lock, LW_SHARED);
        if (!s->hints_ready) {
            copy_str(a.reason, sizeof a.reason, "no replica qualifies: the worker has not published hints yet");
        } else {
            chosen = choose_replica(s->nodes.data(), s->nodes.size(), req, ticket, a.reason, sizeof a.reason);
            if (chosen >= 0) {
                const NodeHint &h = s->nodes[static_cast<std::size_t>(chosen)];
                copy_str(a.node, sizeof a.node, h.name);
                copy_str(a.host, sizeof a.host, h.host);
                a.port = h.port;
                a.primary = false;
                a.lag = h.lag;
                a.lag_bytes = h.lag_bytes;
            }
        }
        LWLockRelease(s->lock);
        if (chosen < 0) {
            if (!rr_fallback_to_primary)
                ereport(ERROR, (errcode(ERRCODE_RR_NO_REPLICA), errmsg("no replica qualifies for this read"),
                                errdetail("%s.", a.reason),
                                errhint("Check replica_router.status, relax max_lag, or set "
                                        "replica_router.fallback_to_primary = on.")));
            char why[512];
            copy_str(why, sizeof why, a.reason);
            answer_primary(a, why);
        }
    }
    return answer_datum(fcinfo, a);
}

} // namespace

} // namespace rr

extern "C" Datum replica_router_recommend(PG_FUNCTION_ARGS)
{
    return rr::pg_guarded("replica_router.recommend()", [&] { return rr::recommend(fcinfo); });
}

extern "C" Datum replica_router_primary(PG_FUNCTION_ARGS)
{
    return rr::pg_guarded("replica_router._primary()", [&]() -> Datum {
        rr::Answer a;
        rr::answer_primary(a, "");
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "return type must be a row type");
        Datum v[3] = {CStringGetTextDatum(a.node), CStringGetTextDatum(a.host), Int32GetDatum(a.port)};
        bool nulls[3] = {false, false, false};
        return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
    });
}
