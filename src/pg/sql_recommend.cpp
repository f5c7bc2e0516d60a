// replica_router.recommend() and candidates(). On the primary they read
// shared memory under a shared LWLock: no SPI, no table access, no
// allocation under the lock. On a standby (no worker, empty shared memory)
// they read the replicated hint tables instead (standby.cpp).
#include "pg.hpp"

#include "decide.hpp"
#include "guard.hpp"
#include "guc.hpp"
#include "primary.hpp"
#include "routes_spi.hpp"
#include "shmem.hpp"
#include "srf.hpp"
#include "standby.hpp"

#include <cstring>

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

// The caller's arguments, checked. Strings point into palloc'd memory.
struct Args {
    DecideInput in;
    char operation[kNameLen];
    char zone[kNameLen];
};

void parse_args(FunctionCallInfo fcinfo, Args &a)
{
    memset(&a, 0, sizeof a);
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("operation must not be null"),
                        errhint("Pass 'read', 'write' or an operation listed in replica_router.routes.")));
    text *op = PG_GETARG_TEXT_PP(0);
    int oplen = VARSIZE_ANY_EXHDR(op);
    int copy = oplen < static_cast<int>(kNameLen) - 1 ? oplen : static_cast<int>(kNameLen) - 1;
    memcpy(a.operation, VARDATA_ANY(op), copy);
    a.operation[copy] = '\0';
    if (oplen >= static_cast<int>(kNameLen))
        a.operation[kNameLen - 2] = '~';  // never equal to a route name (63 characters at most)
    a.in.operation = a.operation;

    if (!PG_ARGISNULL(1)) {
        Micros m = interval_micros(PG_GETARG_INTERVAL_P(1));
        if (m < 0)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_lag must not be negative"),
                            errdetail("The given max_lag is %s.",
                                      DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(1))))));
        a.in.has_max_lag = true;
        a.in.max_lag = m;
    }
    if (!PG_ARGISNULL(2)) {
        a.in.has_min_lsn = true;
        a.in.min_lsn = PG_GETARG_LSN(2);
    }
    if (PG_NARGS() > 3 && !PG_ARGISNULL(3)) {
        char *zone = text_to_cstring(PG_GETARG_TEXT_PP(3));
        if (strlen(zone) >= kNameLen)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("zone name is too long"),
                            errdetail("Zone names have at most %d characters.", static_cast<int>(kNameLen) - 1)));
        copy_str(a.zone, sizeof a.zone, zone);
        a.in.zone = a.zone;
    }
    a.in.now = GetCurrentTimestamp();
    a.in.stale_after = static_cast<Micros>(rr_stale_after_ms) * 1000;
    a.in.default_max_lag = static_cast<Micros>(rr_max_lag_ms) * 1000;
    a.in.default_balance = static_cast<Balance>(rr_balance);
    a.in.fallback_to_primary = rr_fallback_to_primary;
    a.in.strict_operations = rr_strict_operations;
}

void report_decision_error(const Args &a, const Decision &d)
{
    if (d.outcome == Outcome::unknown_operation)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("unknown operation \"%s\"", a.operation),
                        errdetail("replica_router.strict_operations is on and no route names this operation."),
                        errhint("Add one with replica_router.set_route(operation, target).")));
    if (d.outcome == Outcome::no_replica_error)
        ereport(ERROR, (errcode(ERRCODE_RR_NO_REPLICA), errmsg("no replica qualifies for this read"),
                        errdetail("%s.", d.reason),
                        errhint("Check replica_router.status, relax max_lag, or set "
                                "replica_router.fallback_to_primary = on.")));
}

void answer_primary(Answer &a, const PrimaryInfo &p, const char *reason)
{
    copy_str(a.node, sizeof a.node, p.node);
    copy_str(a.host, sizeof a.host, p.host);
    a.port = p.port;
    a.primary = true;
    a.lag = 0;
    a.lag_bytes = 0;
    copy_str(a.reason, sizeof a.reason, reason);
}

void answer_replica(Answer &a, const NodeHint &h, const char *reason)
{
    copy_str(a.node, sizeof a.node, h.name);
    copy_str(a.host, sizeof a.host, h.host);
    a.port = h.port;
    a.primary = false;
    a.lag = h.lag;
    a.lag_bytes = h.lag_bytes;
    copy_str(a.reason, sizeof a.reason, reason);
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
    v[4] = interval_datum(a.lag < 0 ? 0 : a.lag);
    v[5] = Int64GetDatum(a.lag_bytes < 0 ? 0 : a.lag_bytes);
    v[6] = CStringGetTextDatum(a.reason);
    return HeapTupleGetDatum(heap_form_tuple(desc, v, nulls));
}

// Where clients reach the primary: this server, or on a standby the primary
// that the replicated heartbeat records (never the standby itself).
PrimaryInfo current_primary(Micros now)
{
    if (!RecoveryInProgress())
        return local_primary();
    StandbyHints sh;
    standby_load(sh, now);
    return sh.primary;
}

Datum recommend(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    Args args;
    parse_args(fcinfo, args);
    await_own_changes();

    Answer a;
    Decision d;
    if (!rr_enabled) {
        answer_primary(a, current_primary(args.in.now), "replica_router.enabled is off");
        return answer_datum(fcinfo, a);
    }

    uint64 ticket = pg_atomic_fetch_add_u64(&s->ticket, 1);
    LWLockAcquire(s->lock, LW_SHARED);
    bool ready = s->hints_ready;
    if (ready) {
        args.in.routes = s->routes_ready ? s->routes.data() : nullptr;
        args.in.nroutes = s->routes_ready ? s->routes.size() : 0;
        decide(args.in, s->nodes.data(), s->nodes.size(), ticket, d);
        if (d.outcome == Outcome::replica)
            answer_replica(a, s->nodes[static_cast<std::size_t>(d.index)], d.reason);
    }
    LWLockRelease(s->lock);

    PrimaryInfo primary;
    bool have_primary = false;  // computed only when the answer is the primary
    if (!ready && RecoveryInProgress()) {
        // A standby: answer from the hints the primary's worker replicated here.
        StandbyHints sh;
        standby_load(sh, args.in.now);
        primary = sh.primary;
        have_primary = true;
        args.in.routes = sh.routes;
        args.in.nroutes = sh.nroutes;
        args.in.stale_after = sh.stale_after;
        decide(args.in, sh.nodes, sh.n, ticket, d);
        if (d.outcome == Outcome::replica)
            answer_replica(a, sh.nodes[d.index], d.reason);
        else if (d.target != Target::primary && !sh.fresh)
            copy_str(d.reason, sizeof d.reason, sh.why_not_fresh);
    } else if (!ready) {
        resolve_route(args.in, d);
        if (d.outcome != Outcome::unknown_operation && d.target != Target::primary) {
            copy_str(d.reason, sizeof d.reason, "no replica qualifies: the worker has not published hints yet");
            d.outcome = d.fallback ? Outcome::primary : Outcome::no_replica_error;
        }
    }
    report_decision_error(args, d);
    if (d.outcome != Outcome::replica) {
        if (!have_primary)
            primary = current_primary(args.in.now);
        answer_primary(a, primary, d.reason);
    }
    return answer_datum(fcinfo, a);
}

void put_candidate(ReturnSetInfo *rsinfo, int rank, const char *node, const char *host, int port, bool primary,
                   bool qualified, const char *state, Micros lag, int64_t lag_bytes, const char *reason)
{
    Datum v[10] = {Int32GetDatum(rank),       CStringGetTextDatum(node),
                   CStringGetTextDatum(host), Int32GetDatum(port),
                   CStringGetTextDatum(primary ? "primary" : "replica"),
                   BoolGetDatum(qualified),   CStringGetTextDatum(state),
                   interval_datum(lag),       Int64GetDatum(lag_bytes),
                   CStringGetTextDatum(reason)};
    bool nulls[10] = {rank <= 0, false, false, false, false, false, false, lag < 0, lag_bytes < 0, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
}

// Every node for an operation: qualified replicas ranked as recommend() would
// try them, the others with the reason they were left out, then the primary.
Datum candidates(FunctionCallInfo fcinfo)
{
    SharedState *s = shmem_require();
    Args args;
    parse_args(fcinfo, args);
    await_own_changes();
    ReturnSetInfo *rsinfo = materialize(fcinfo);

    NodeHint *nodes;
    std::size_t n = 0;
    PrimaryInfo primary = local_primary();
    bool fresh = true;
    char why_not_fresh[256] = "";
    LWLockAcquire(s->lock, LW_SHARED);
    bool ready = s->hints_ready;
    n = ready ? s->nodes.size() : 0;
    nodes = static_cast<NodeHint *>(palloc(sizeof(NodeHint) * (n + 1)));
    memcpy(nodes, s->nodes.data(), sizeof(NodeHint) * n);
    std::size_t nroutes = ready && s->routes_ready ? s->routes.size() : 0;
    RouteRow *routes = static_cast<RouteRow *>(palloc(sizeof(RouteRow) * (nroutes + 1)));
    memcpy(routes, s->routes.data(), sizeof(RouteRow) * nroutes);
    args.in.routes = ready && s->routes_ready ? routes : nullptr;
    args.in.nroutes = nroutes;
    uint64 ticket = pg_atomic_read_u64(&s->ticket);
    LWLockRelease(s->lock);

    if (!ready && RecoveryInProgress()) {
        StandbyHints sh;
        standby_load(sh, args.in.now);
        nodes = sh.nodes;
        n = sh.n;
        args.in.routes = sh.routes;
        args.in.nroutes = sh.nroutes;
        args.in.stale_after = sh.stale_after;
        primary = sh.primary;
        fresh = sh.fresh;
        copy_str(why_not_fresh, sizeof why_not_fresh, sh.why_not_fresh);
    } else if (!ready) {
        fresh = false;
        copy_str(why_not_fresh, sizeof why_not_fresh, "the worker has not published hints yet");
    }

    Decision d;
    resolve_route(args.in, d);
    report_decision_error(args, d);
    if (!rr_enabled) {
        d.target = Target::primary;
        copy_str(d.reason, sizeof d.reason, "replica_router.enabled is off");
    }
    int *order = static_cast<int *>(palloc(sizeof(int) * kMaxNodesHard));
    char reason[512];
    std::size_t count = 0;
    if (d.target != Target::primary)
        count = rank_replicas(nodes, n, d.req, ticket, order, reason, sizeof reason);

    if (d.target == Target::primary) {
        put_candidate(rsinfo, 1, primary.node, primary.host, primary.port, true, true, "healthy", 0, 0, d.reason);
        for (std::size_t i = 0; i < n; ++i)
            put_candidate(rsinfo, 0, nodes[i].name, nodes[i].host, nodes[i].port, false, false,
                          state_name(effective_state(nodes[i], args.in.now, args.in.stale_after)), nodes[i].lag,
                          nodes[i].lag_bytes, d.reason);
        return (Datum) 0;
    }
    for (std::size_t r = 0; r < count; ++r) {
        const NodeHint &h = nodes[order[r]];
        put_candidate(rsinfo, static_cast<int>(r + 1), h.name, h.host, h.port, false, true,
                      state_name(effective_state(h, args.in.now, args.in.stale_after)), h.lag, h.lag_bytes,
                      r == 0 ? reason : "qualified");
    }
    for (std::size_t i = 0; i < n; ++i) {
        char why[96];
        if (qualifies(nodes[i], d.req, why, sizeof why))
            continue;
        put_candidate(rsinfo, 0, nodes[i].name, nodes[i].host, nodes[i].port, false, false,
                      state_name(effective_state(nodes[i], args.in.now, args.in.stale_after)), nodes[i].lag,
                      nodes[i].lag_bytes, why);
    }
    const char *primary_reason = !d.fallback ? "not a fallback: replica_router.fallback_to_primary is off"
                                 : !fresh    ? why_not_fresh
                                 : count > 0 ? "fallback when no replica qualifies"
                                             : "fallback: no replica qualifies";
    put_candidate(rsinfo, d.fallback ? static_cast<int>(count + 1) : 0, primary.node, primary.host, primary.port,
                  true, d.fallback, "healthy", 0, 0, primary_reason);
    return (Datum) 0;
}

} // namespace

} // namespace rr

RR_SQL_FUNCTION(replica_router_candidates, "replica_router.candidates()")
{
    return rr::candidates(fcinfo);
}

RR_SQL_FUNCTION(replica_router_recommend, "replica_router.recommend()")
{
    return rr::recommend(fcinfo);
}

RR_SQL_FUNCTION(replica_router_primary, "replica_router._primary()")
{
    (void) rr::shmem_require();  // its settings exist only when preloaded
    rr::PrimaryInfo p = rr::local_primary();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum v[3] = {CStringGetTextDatum(p.node), CStringGetTextDatum(p.host), Int32GetDatum(p.port)};
    bool nulls[3] = {false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
}
