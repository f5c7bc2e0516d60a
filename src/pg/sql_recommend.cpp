// replica_router.recommend(), candidates() and connection_string(). On the
// primary they read shared memory under a shared LWLock: no SPI, no table
// access, no allocation and nothing that can raise an error under the lock;
// what they need is copied into a buffer allocated beforehand (or on the
// stack), and every palloc and text conversion comes after the release. On a
// standby (no worker, empty shared memory) they read the replicated hint
// tables instead (standby.cpp).
#include "pg.hpp"

extern "C" {
#include "catalog/pg_collation.h"
}

#include "decide.hpp"
#include "guard.hpp"
#include "guc.hpp"
#include "primary.hpp"
#include "routes_spi.hpp"
#include "shmem.hpp"
#include "srf.hpp"
#include "standby.hpp"

#include <cstring>
#include <ctime>

namespace rr {

namespace {

// The time the hints are judged at. Only compared with thresholds of 100 ms
// and more (stale_after, standby_max_hint_age), so on Linux the coarse clock
// (a few ms of resolution, read from the vDSO without touching the clock
// source) is enough; it costs a fraction of GetCurrentTimestamp(), which was
// a third of recommend()'s own CPU time on a VM.
// The coarse clock lags the real time by up to its resolution, which is
// added, so `now` is never early: max_lag counts a poll's age (issue #12) and
// must not come out a few milliseconds short.
Micros judge_time()
{
#ifdef CLOCK_REALTIME_COARSE
    static Micros resolution = -1;
    struct timespec ts;
    if (resolution < 0)
        resolution = clock_getres(CLOCK_REALTIME_COARSE, &ts) == 0 ? ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000 : 0;
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0)
        return static_cast<Micros>(ts.tv_sec - ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
                   USECS_PER_SEC +
               ts.tv_nsec / 1000 + resolution;
#endif
    return GetCurrentTimestamp();
}

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

// The primary's WAL write position, read only when a replica's poll age
// would otherwise count (a spinlock every backend shares).
Lsn write_position() noexcept
{
    return GetXLogWriteRecPtr();
}

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
    a.in.now = judge_time();
    // max_lag holds at answer time; a replica that had replayed past the
    // primary's current position needs no allowance for its poll's age.
    a.in.primary_lsn = 0;
    a.in.primary_lsn_now = RecoveryInProgress() ? nullptr : write_position;
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

void answer_replica(Answer &a, const NodeHint &h, const char *reason) noexcept
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
    RowBuilder<7> row;
    row.add(CStringGetTextDatum(a.node));
    row.add(CStringGetTextDatum(a.host));
    row.add(Int32GetDatum(a.port));
    row.add(CStringGetTextDatum(a.primary ? "primary" : "replica"));
    row.add(interval_datum(a.lag < 0 ? 0 : a.lag));
    row.add(Int64GetDatum(a.lag_bytes < 0 ? 0 : a.lag_bytes));
    row.add(CStringGetTextDatum(a.reason));
    return row.tuple(result_desc(fcinfo));
}

Datum recommend(FunctionCallInfo fcinfo)
{
    (void) shmem_require();  // preloaded, before anything else
    Args args;
    parse_args(fcinfo, args);
    await_own_changes();

    Answer a;
    Decision d;
    if (!rr_enabled) {
        answer_primary(a, current_primary(args.in.now), "replica_router.enabled is off");
        return answer_datum(fcinfo, a);
    }

    uint64 ticket = shmem_next_ticket();
    bool ready = shmem_read([&](const SharedState &s) noexcept {
        if (!s.hints_ready)
            return false;
        DecideInput in = args.in;
        in.routes = s.routes_ready ? s.routes.data() : nullptr;
        in.nroutes = s.routes_ready ? s.routes.size() : 0;
        decide(in, s.nodes.data(), s.nodes.size(), ticket, d);
        if (d.outcome == Outcome::replica)
            answer_replica(a, s.nodes[static_cast<std::size_t>(d.index)], d.reason);
        return true;
    });

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

// What candidates() and connection_string() start from: the operation's
// route resolved and, unless every read goes to the primary, the hints.
// `ready` false on a standby means the hints came from standby_load().
struct Snapshot {
    Decision d;
    bool ready = false;
    bool fresh = true;
    char why_not_fresh[256] = "";
    uint64 ticket = 0;
};

// On a standby (no worker, nothing in shared memory) or before the worker
// has published: the decision as candidates() has always made it there.
// Returns the standby's hints in `sh` (palloc'd) when it loaded them.
bool snapshot_fallback(Args &args, Snapshot &snap, StandbyHints &sh)
{
    if (RecoveryInProgress()) {
        standby_load(sh, args.in.now);
        args.in.routes = sh.routes;
        args.in.nroutes = sh.nroutes;
        args.in.stale_after = sh.stale_after;
        snap.fresh = sh.fresh;
        copy_str(snap.why_not_fresh, sizeof snap.why_not_fresh, sh.why_not_fresh);
        snap.d = Decision{};
        resolve_route(args.in, snap.d);
        return true;
    }
    snap.fresh = false;
    copy_str(snap.why_not_fresh, sizeof snap.why_not_fresh, "the worker has not published hints yet");
    return false;
}

// The route as resolved under the lock points nowhere into shared memory
// (Decision holds copies), so resolve_route() runs there directly.
void resolve_shared(const SharedState &s, const Args &args, Snapshot &snap) noexcept
{
    DecideInput in = args.in;
    in.routes = s.routes_ready ? s.routes.data() : nullptr;
    in.nroutes = s.routes_ready ? s.routes.size() : 0;
    resolve_route(in, snap.d);
}

void put_candidate(ReturnSetInfo *rsinfo, int rank, const char *node, const char *host, int port, bool primary,
                   bool qualified, const char *state, Micros lag, int64_t lag_bytes, const char *reason)
{
    RowBuilder<10> row;
    row.add(Int32GetDatum(rank), rank <= 0);
    row.add(CStringGetTextDatum(node));
    row.add(CStringGetTextDatum(host));
    row.add(Int32GetDatum(port));
    row.add(CStringGetTextDatum(primary ? "primary" : "replica"));
    row.add(BoolGetDatum(qualified));
    row.add(CStringGetTextDatum(state));
    row.add(interval_datum(lag), lag < 0);
    row.add(Int64GetDatum(lag_bytes), lag_bytes < 0);
    row.add(CStringGetTextDatum(reason));
    row.put(rsinfo);
}

// The nodes candidates() ranks, copied out of shared memory (the buffer is
// allocated before the lock, for the table's capacity: max_replicas, fixed at
// server start), or on a standby that does not observe the replicated hints.
// The route is resolved into snap.d.
NodeHint *load_candidates(Args &args, Snapshot &snap, std::size_t *n)
{
    std::size_t cap = shmem_read([](const SharedState &s) noexcept { return s.nodes.capacity(); });
    NodeHint *nodes = static_cast<NodeHint *>(palloc(sizeof(NodeHint) * (cap > 0 ? cap : 1)));
    *n = shmem_read([&](const SharedState &s) noexcept {
        snap.ready = s.hints_ready;
        std::size_t have = snap.ready ? std::min(s.nodes.size(), cap) : 0;
        if (have > 0)
            std::memcpy(static_cast<void *>(nodes), s.nodes.data(), sizeof(NodeHint) * have);
        if (snap.ready)
            resolve_shared(s, args, snap);
        snap.ticket = pg_atomic_read_u64(const_cast<pg_atomic_uint64 *>(&s.ticket));
        return have;
    });
    if (snap.ready)
        return nodes;
    StandbyHints sh;
    if (snapshot_fallback(args, snap, sh)) {
        *n = sh.n;
        return sh.nodes;
    }
    resolve_route(args.in, snap.d);  // the built-in routes: none are loaded
    return nodes;
}

void put_unranked(ReturnSetInfo *rsinfo, const NodeHint &h, const Args &args, const char *why)
{
    put_candidate(rsinfo, 0, h.name, h.host, h.port, false, false,
                  state_name(effective_state(h, args.in.now, args.in.stale_after)), h.lag, h.lag_bytes, why);
}

// Every node for an operation: qualified replicas ranked as recommend() would
// try them, the others with the reason they were left out, then the primary
// (or, when none is reachable, a row that says so).
Datum candidates(FunctionCallInfo fcinfo)
{
    (void) shmem_require();
    Args args;
    parse_args(fcinfo, args);
    await_own_changes();
    ReturnSetInfo *rsinfo = materialize(fcinfo);

    Snapshot snap;
    std::size_t n = 0;
    NodeHint *nodes = load_candidates(args, snap, &n);
    PrimaryInfo primary{};
    char no_primary[256] = "";
    bool have_primary = find_primary(args.in.now, primary, no_primary, sizeof no_primary);
    if (!have_primary)
        copy_str(primary.node, sizeof primary.node, primary_name());
    const char *primary_state = have_primary ? "primary" : "down";

    Decision &d = snap.d;
    report_decision_error(args, d);
    if (!rr_enabled) {
        d.target = Target::primary;
        copy_str(d.reason, sizeof d.reason, "replica_router.enabled is off");
    }
    if (d.target == Target::primary) {
        put_candidate(rsinfo, have_primary ? 1 : 0, primary.node, primary.host, primary.port, true, have_primary,
                      primary_state, 0, 0, have_primary ? d.reason : no_primary);
        for (std::size_t i = 0; i < n; ++i)
            put_unranked(rsinfo, nodes[i], args, d.reason);
        return (Datum) 0;
    }
    int *order = static_cast<int *>(palloc(sizeof(int) * (n > 0 ? n : 1)));
    char reason[512];
    std::size_t count = rank_replicas(nodes, n, d.req, snap.ticket, order, reason, sizeof reason);
    for (std::size_t r = 0; r < count; ++r) {
        const NodeHint &h = nodes[order[r]];
        put_candidate(rsinfo, static_cast<int>(r + 1), h.name, h.host, h.port, false, true,
                      state_name(effective_state(h, args.in.now, args.in.stale_after)), h.lag, h.lag_bytes,
                      r == 0 ? reason : "qualified");
    }
    for (std::size_t i = 0; i < n; ++i) {
        char why[96];
        if (!qualifies(nodes[i], d.req, why, sizeof why))
            put_unranked(rsinfo, nodes[i], args, why);
    }
    const char *primary_reason = !have_primary ? no_primary
                                 : !d.fallback ? "not a fallback: replica_router.fallback_to_primary is off"
                                 : !snap.fresh ? snap.why_not_fresh
                                 : count > 0   ? "fallback when no replica qualifies"
                                               : "fallback: no replica qualifies";
    bool fallback = d.fallback && have_primary;
    put_candidate(rsinfo, fallback ? static_cast<int>(count + 1) : 0, primary.node, primary.host, primary.port, true,
                  fallback, primary_state, 0, 0, primary_reason);
    return (Datum) 0;
}

// The ranked nodes' hosts and ports, best first, as connection_string()
// copies them out of shared memory: a fixed buffer per backend (never
// allocated under the lock), hosts joined with ','.
struct Endpoints {
    char hosts[(kMaxNodesHard + 1) * kHostLen];
    std::size_t hosts_len;
    int ports[kMaxNodesHard + 1];
    std::size_t count;
};
Endpoints endpoints;

void endpoints_add(Endpoints &e, const char *host, int port) noexcept
{
    if (e.count > 0)
        e.hosts[e.hosts_len++] = ',';
    std::size_t len = strnlen(host, kHostLen - 1);
    memcpy(e.hosts + e.hosts_len, host, len);
    e.hosts_len += len;
    e.ports[e.count++] = port;
}

// The replicas in rank order (as candidates() ranks them) into `e`.
void endpoints_rank(Endpoints &e, const NodeHint *nodes, std::size_t n, const Decision &d, uint64 ticket) noexcept
{
    int order[kMaxNodesHard];
    char reason[1];  // the ranking's explanation is not needed
    std::size_t count = rank_replicas(nodes, n, d.req, ticket, order, reason, 0);
    for (std::size_t r = 0; r < count; ++r)
        endpoints_add(e, nodes[order[r]].host, nodes[order[r]].port);
}

// replica_router._conninfo_value(): quoted when empty or holding white
// space, a quote or a backslash (the regular expression [\s'\\]); inside
// the quotes \ and ' are escaped with a backslash.
void append_conninfo_value(StringInfo out, const char *value, std::size_t len)
{
    bool quote = len == 0, ascii = true;
    for (std::size_t i = 0; i < len; ++i) {
        unsigned char c = static_cast<unsigned char>(value[i]);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == '\'' || c == '\\')
            quote = true;
        else if (c >= 0x80)
            ascii = false;
    }
    if (!quote && !ascii) {
        // Beyond ASCII, what counts as white space is the regular
        // expression's (the database's locale): ask it, as the SQL did.
        text *t = cstring_to_text_with_len(value, static_cast<int>(len));
        quote = DatumGetBool(DirectFunctionCall2Coll(textregexeq, DEFAULT_COLLATION_OID, PointerGetDatum(t),
                                                     CStringGetTextDatum("[\\s'\\\\]")));
    }
    if (!quote) {
        appendBinaryStringInfo(out, value, static_cast<int>(len));
        return;
    }
    appendStringInfoChar(out, '\'');
    for (std::size_t i = 0; i < len; ++i) {
        if (value[i] == '\\' || value[i] == '\'')
            appendStringInfoChar(out, '\\');
        appendStringInfoChar(out, value[i]);
    }
    appendStringInfoChar(out, '\'');
}

// `host=a,b port=1,2` of the nodes candidates() ranks, best first; NULL when
// it ranks none. Written in C over the same decision as candidates(): on the
// primary from shared memory (the ranking and a copy of the ranked hosts
// under the shared lock, the text after it), on a standby from the
// replicated hints.
Datum connection_string(FunctionCallInfo fcinfo)
{
    (void) shmem_require();
    Args args;
    parse_args(fcinfo, args);
    await_own_changes();

    Snapshot snap;
    Endpoints &e = endpoints;
    e.count = 0;
    e.hosts_len = 0;
    bool enabled = rr_enabled;
    shmem_read([&](const SharedState &s) noexcept {
        snap.ready = s.hints_ready;
        snap.ticket = pg_atomic_read_u64(const_cast<pg_atomic_uint64 *>(&s.ticket));
        if (snap.ready) {
            resolve_shared(s, args, snap);
            if (enabled && snap.d.target != Target::primary)
                endpoints_rank(e, s.nodes.data(), s.nodes.size(), snap.d, snap.ticket);
        }
    });

    PrimaryInfo primary;
    if (!snap.ready) {
        StandbyHints sh;
        if (snapshot_fallback(args, snap, sh)) {
            primary = sh.primary;
            if (rr_enabled && snap.d.target != Target::primary)
                endpoints_rank(e, sh.nodes, sh.n, snap.d, snap.ticket);
        } else {
            resolve_route(args.in, snap.d);  // the built-in routes; no replica is ranked
            primary = current_primary(args.in.now);
        }
    } else {
        primary = current_primary(args.in.now);
    }

    const Decision &d = snap.d;
    report_decision_error(args, d);
    if (!rr_enabled || d.target == Target::primary) {
        e.count = 0;
        e.hosts_len = 0;
        endpoints_add(e, primary.host, primary.port);
    } else if (d.fallback) {
        endpoints_add(e, primary.host, primary.port);
    }
    if (e.count == 0)
        PG_RETURN_NULL();

    StringInfoData ports;
    initStringInfo(&ports);
    for (std::size_t i = 0; i < e.count; ++i) {
        if (i > 0)
            appendStringInfoChar(&ports, ',');
        appendStringInfo(&ports, "%d", e.ports[i]);
    }
    StringInfoData out;
    initStringInfo(&out);
    appendStringInfoString(&out, "host=");
    append_conninfo_value(&out, e.hosts, e.hosts_len);
    appendStringInfoString(&out, " port=");
    append_conninfo_value(&out, ports.data, static_cast<std::size_t>(ports.len));
    PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

} // namespace

} // namespace rr

RR_SQL_FUNCTION(replica_router_candidates, "replica_router.candidates()")
{
    return rr::candidates(fcinfo);
}

RR_SQL_FUNCTION(replica_router_connection_string, "replica_router.connection_string()")
{
    return rr::connection_string(fcinfo);
}

RR_SQL_FUNCTION(replica_router_recommend, "replica_router.recommend()")
{
    return rr::recommend(fcinfo);
}

RR_SQL_FUNCTION(replica_router_primary, "replica_router._primary()")
{
    (void) rr::shmem_require();  // its settings exist only when preloaded
    rr::PrimaryInfo p{};
    char why[256];
    bool found = rr::find_primary(GetCurrentTimestamp(), p, why, sizeof why);
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum v[3] = {CStringGetTextDatum(found ? p.node : rr::primary_name()), CStringGetTextDatum(p.host),
                  Int32GetDatum(p.port)};
    bool nulls[3] = {false, !found, !found};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
}
