#include "pg.hpp"

#include "catalog.hpp"
#include "guard.hpp"
#include "primary.hpp"
#include "routes_spi.hpp"

namespace rr {

namespace {

// Runs `body` inside a transaction with SPI and a snapshot. On ERROR the
// error is logged (and copied to `error`), the transaction aborted, and the
// caller gets `failed`. No C++ object with a destructor lives in here, and
// `body` is noexcept (it runs inside pg_try).
template <typename Body>
CatalogStatus in_transaction(const char *what, Body body, char *error = nullptr, std::size_t error_len = 0)
{
    static_assert(std::is_nothrow_invocable_v<Body &>, "a catalog body runs under PG_TRY: it must be noexcept");
    CatalogStatus status = CatalogStatus::failed;
    char message[kErrorLen];
    // pg_try returns to the memory context current here, before the transaction.
    bool ok = pg_try(
        [&]() noexcept {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "SPI_connect failed");
            PushActiveSnapshot(GetTransactionSnapshot());
            pgstat_report_activity(STATE_RUNNING, what);
            status = body();
            SPI_finish();
            PopActiveSnapshot();
            CommitTransactionCommand();
            pgstat_report_stat(false);  // a worker's table counts otherwise show only at exit
        },
        message, sizeof message);
    if (!ok) {
        if (error != nullptr)
            snprintf(error, error_len, "could not %s: %s", what, message);
        ereport(LOG, (errmsg("replica_router worker could not %s: %s", what, message)));
        AbortCurrentTransaction();
        status = CatalogStatus::failed;
    }
    pgstat_report_activity(STATE_IDLE, nullptr);
    return status;
}

const char *kUpsert =
    "INSERT INTO replica_router.routing_hints AS h"
    " (node_id, node, host, port, state, lag_bytes, lag_seconds, replay_lsn, replay_paused,"
    "  connections, max_connections, last_success, error, weight, zone, reserved_connections, updated_at)"
    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now()"
    " WHERE EXISTS (SELECT 1 FROM replica_router.nodes n WHERE n.id = $1 FOR KEY SHARE)"
    " ON CONFLICT (node_id) DO UPDATE SET node = EXCLUDED.node, host = EXCLUDED.host, port = EXCLUDED.port,"
    "  state = EXCLUDED.state, lag_bytes = EXCLUDED.lag_bytes, lag_seconds = EXCLUDED.lag_seconds,"
    "  replay_lsn = EXCLUDED.replay_lsn, replay_paused = EXCLUDED.replay_paused,"
    "  connections = EXCLUDED.connections, max_connections = EXCLUDED.max_connections,"
    "  last_success = EXCLUDED.last_success, error = EXCLUDED.error, weight = EXCLUDED.weight,"
    "  zone = EXCLUDED.zone, reserved_connections = EXCLUDED.reserved_connections, updated_at = now()";

// Anyone may NOTIFY this channel: listeners check that the notification's
// sender (libpq's be_pid) is the worker_pid the payload names.
const char *kNotify =
    "SELECT pg_catalog.pg_notify('replica_router', pg_catalog.json_build_object("
    " 'node', $1, 'old_state', $2, 'new_state', $3, 'lag_seconds', $4, 'lag_bytes', $5,"
    " 'at', pg_catalog.now(), 'worker_pid', pg_catalog.pg_backend_pid())::text)";

const char *kHeartbeat =
    "INSERT INTO replica_router.heartbeat AS b"
    " (id, primary_time, system_identifier, worker_pid, primary_node, primary_host, primary_port)"
    " VALUES (true, now(), $1, $2, $3, $4, $5)"
    " ON CONFLICT (id) DO UPDATE SET primary_time = now(), system_identifier = EXCLUDED.system_identifier,"
    "  worker_pid = EXCLUDED.worker_pid, primary_node = EXCLUDED.primary_node,"
    "  primary_host = EXCLUDED.primary_host, primary_port = EXCLUDED.primary_port";

} // namespace

CatalogStatus catalog_extension_present()
{
    return in_transaction("check for the extension", []() noexcept -> CatalogStatus {
        Oid ext = get_extension_oid("replica_router", true);
        return OidIsValid(ext) ? CatalogStatus::ok : CatalogStatus::absent;
    });
}

namespace {

// Does replica_router.nodes have the owner columns (1.2 and later)? The
// library may run with an older version's objects until ALTER EXTENSION UPDATE.
bool has_owner_columns()
{
    Oid ns = get_namespace_oid("replica_router", true);
    Oid rel = OidIsValid(ns) ? get_relname_relid("nodes", ns) : InvalidOid;
    return OidIsValid(rel) && get_attnum(rel, "conninfo_owner") != InvalidAttrNumber;
}

} // namespace

CatalogStatus catalog_load_nodes(NodeRow *out, int cap, int *count, char *problem, std::size_t problem_len)
{
    *count = 0;
    problem[0] = '\0';
    return in_transaction("read the replica registry", [=]() noexcept -> CatalogStatus {
        if (!OidIsValid(get_extension_oid("replica_router", true)))
            return CatalogStatus::absent;
        // Every operator and function is qualified: the worker is a superuser.
        // A connection string is trusted only while the role that set it is a
        // superuser; without the owner columns (before the update) none is.
        const char *sql = has_owner_columns()
            ? "SELECT n.id, n.name, n.conninfo, n.weight, n.enabled, coalesce(n.zone, ''), coalesce(n.pgbouncer, ''),"
              " coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r"
              "            WHERE r.oid OPERATOR(pg_catalog.=) n.conninfo_owner), false),"
              " coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r"
              "            WHERE r.oid OPERATOR(pg_catalog.=) n.pgbouncer_owner), false)"
              " FROM replica_router.nodes n ORDER BY n.id"
            : "SELECT n.id, n.name, n.conninfo, n.weight, n.enabled, coalesce(n.zone, ''), coalesce(n.pgbouncer, ''),"
              " false, false FROM replica_router.nodes n ORDER BY n.id";
        int rc = SPI_execute(sql, true, 0);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "reading replica_router.nodes failed: %s", SPI_result_code_string(rc));
        int n = 0;
        for (uint64 i = 0; i < SPI_processed && n < cap; ++i) {
            HeapTuple tup = SPI_tuptable->vals[i];
            TupleDesc desc = SPI_tuptable->tupdesc;
            bool isnull;
            NodeRow &r = out[n++];
            r.id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
            copy_str(r.name, sizeof r.name, SPI_getvalue(tup, desc, 2));
            const char *conninfo = SPI_getvalue(tup, desc, 3);
            const char *bouncer = SPI_getvalue(tup, desc, 7);
            r.too_long = strlen(conninfo) >= sizeof r.conninfo || strlen(bouncer) >= sizeof r.pgbouncer;
            copy_str(r.conninfo, sizeof r.conninfo, r.too_long ? "" : conninfo);
            r.weight = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
            r.enabled = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
            copy_str(r.zone, sizeof r.zone, SPI_getvalue(tup, desc, 6));
            copy_str(r.pgbouncer, sizeof r.pgbouncer, r.too_long ? "" : bouncer);
            r.conninfo_trusted = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
            r.pgbouncer_trusted = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
        }
        *count = n;
        if (SPI_processed > static_cast<uint64>(cap))
            snprintf(problem, problem_len,
                     "%llu replicas are registered but replica_router.max_replicas is %d: the others are not polled",
                     static_cast<unsigned long long>(SPI_processed), cap);
        return CatalogStatus::ok;
    }, problem, problem_len);
}

CatalogStatus catalog_load_routes(RouteRow *routes, int route_cap, int *route_count, char *problem,
                                  std::size_t problem_len)
{
    *route_count = 0;
    problem[0] = '\0';
    return in_transaction("read the routes", [=]() noexcept -> CatalogStatus {
        if (!OidIsValid(get_extension_oid("replica_router", true)))
            return CatalogStatus::absent;
        int total = 0;
        *route_count = spi_read_routes(routes, route_cap, &total);
        if (total > route_cap)
            snprintf(problem, problem_len, "%d routes are defined but replica_router keeps at most %d: the others are ignored",
                     total, route_cap);
        return CatalogStatus::ok;
    }, problem, problem_len);
}

namespace {

// The arguments of one SPI statement, added in the order of its $n
// parameters; run() checks their count against the statement's.
template <int N>
struct SpiArgs {
    Oid types[N];
    Datum values[N];
    char nulls[N + 1] = {};
    int i = 0;

    void add(Oid type, Datum value, bool isnull = false) noexcept
    {
        if (i >= N)
            return;  // run() reports the count
        types[i] = type;
        values[i] = value;
        nulls[i] = isnull ? 'n' : ' ';
        ++i;
    }
    int run(const char *sql) noexcept
    {
        if (i != N)
            elog(ERROR, "replica_router: %d of %d statement arguments", i, N);
        return SPI_execute_with_args(sql, N, types, values, nulls, false, 0);
    }
};

void write_hint_row(const NodeHint &h) noexcept
{
    bool polled = h.has_result;
    SpiArgs<16> a;
    a.add(INT4OID, Int32GetDatum(h.node_id));
    a.add(TEXTOID, CStringGetTextDatum(h.name));
    a.add(TEXTOID, CStringGetTextDatum(h.host));
    a.add(INT4OID, Int32GetDatum(h.port), h.port == 0);
    a.add(TEXTOID, CStringGetTextDatum(state_name(h.state)));
    a.add(INT8OID, Int64GetDatum(h.lag_bytes), !polled || h.lag_bytes < 0);
    a.add(FLOAT8OID, Float8GetDatum(static_cast<double>(h.lag) / 1e6), !polled || h.lag < 0);
    a.add(LSNOID, LSNGetDatum(h.replay_lsn), !polled);
    a.add(BOOLOID, BoolGetDatum(h.replay_paused), !polled);
    a.add(INT4OID, Int32GetDatum(h.connections), !polled);
    a.add(INT4OID, Int32GetDatum(h.max_connections), !polled);
    a.add(TIMESTAMPTZOID, TimestampTzGetDatum(h.last_success), h.last_success == 0);
    a.add(TEXTOID, CStringGetTextDatum(h.error), h.error[0] == '\0');
    a.add(INT4OID, Int32GetDatum(h.weight));
    a.add(TEXTOID, CStringGetTextDatum(h.zone), h.zone[0] == '\0');
    a.add(INT4OID, Int32GetDatum(h.pool.reserved), !polled);
    int rc = a.run(kUpsert);
    if (rc != SPI_OK_INSERT)
        elog(ERROR, "writing replica_router.routing_hints failed: %s", SPI_result_code_string(rc));
}

void notify_change(const HintWrite &w) noexcept
{
    const NodeHint &h = w.hint;
    SpiArgs<5> a;
    a.add(TEXTOID, CStringGetTextDatum(h.name));
    a.add(TEXTOID, CStringGetTextDatum(state_name(w.old_state)));
    a.add(TEXTOID, CStringGetTextDatum(state_name(h.state)));
    a.add(FLOAT8OID, Float8GetDatum(static_cast<double>(h.lag) / 1e6), h.lag < 0);
    a.add(INT8OID, Int64GetDatum(h.lag_bytes), h.lag_bytes < 0);
    int rc = a.run(kNotify);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "NOTIFY replica_router failed: %s", SPI_result_code_string(rc));
}

void write_heartbeat() noexcept
{
    char sysid[32];
    snprintf(sysid, sizeof sysid, UINT64_FORMAT, GetSystemIdentifier());
    // The primary as this worker chose it (its member name when registered),
    // this server until the first choice.
    PrimaryInfo p{};
    char why[256];
    if (!find_primary(GetCurrentTimestamp(), p, why, sizeof why))
        p = local_primary();
    SpiArgs<5> a;
    a.add(TEXTOID, CStringGetTextDatum(sysid));
    a.add(INT4OID, Int32GetDatum(MyProcPid));
    a.add(TEXTOID, CStringGetTextDatum(p.node));
    a.add(TEXTOID, CStringGetTextDatum(p.host));
    a.add(INT4OID, Int32GetDatum(p.port));
    int rc = a.run(kHeartbeat);
    if (rc != SPI_OK_INSERT)
        elog(ERROR, "writing replica_router.heartbeat failed: %s", SPI_result_code_string(rc));
}

} // namespace

CatalogStatus catalog_write_hints(const HintWrite *rows, int n, bool heartbeat, char *error, std::size_t error_len)
{
    return in_transaction(
        "write routing hints",
        [rows, n, heartbeat]() noexcept -> CatalogStatus {
            if (!OidIsValid(get_extension_oid("replica_router", true)))
                return CatalogStatus::absent;
            for (int i = 0; i < n; ++i) {
                write_hint_row(rows[i].hint);
                if (rows[i].notify)
                    notify_change(rows[i]);
            }
            if (heartbeat)
                write_heartbeat();
            return CatalogStatus::ok;
        },
        error, error_len);
}

} // namespace rr
