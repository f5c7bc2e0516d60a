#include "pg.hpp"

#include "guc.hpp"
#include "routes_spi.hpp"
#include "standby.hpp"

#include <cstring>
#include <initializer_list>

namespace rr {

namespace {

const char *value(int row, int col)
{
    return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

Datum binval(int row, int col, bool *isnull)
{
    return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

void run(const char *sql)
{
    int rc = SPI_execute(sql, true, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "reading replica_router hints on a standby failed: %s", SPI_result_code_string(rc));
}

} // namespace

void standby_load(StandbyHints &out, Micros now)
{
    Micros max_age = static_cast<Micros>(rr_standby_max_hint_age_ms) * 1000;
    out.stale_after = max_age;
    MemoryContext caller = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");

    run("SELECT primary_time, primary_node, primary_host, primary_port FROM replica_router.heartbeat");
    bool isnull = true;
    Micros beat = 0;
    if (SPI_processed == 1) {
        beat = DatumGetTimestampTz(binval(0, 1, &isnull));
        copy_str(out.primary.node, sizeof out.primary.node, value(0, 2));
        copy_str(out.primary.host, sizeof out.primary.host, value(0, 3));
        Datum port = binval(0, 4, &isnull);
        out.primary.port = isnull ? 0 : DatumGetInt32(port);
    }
    if (beat == 0) {
        copy_str(out.why_not_fresh, sizeof out.why_not_fresh,
                 "no replica qualifies: no heartbeat from the primary has reached this standby");
    } else if (now - beat > max_age) {
        snprintf(out.why_not_fresh, sizeof out.why_not_fresh,
                 "no replica qualifies: the hints on this standby are too old (last heartbeat %.0f s ago)",
                 static_cast<double>(now - beat) / 1e6);
    } else {
        out.fresh = true;
    }

    int nroutes = spi_count_routes();
    out.routes = static_cast<RouteRow *>(MemoryContextAllocZero(caller, sizeof(RouteRow) * (nroutes + 1)));
    int total = 0;
    out.nroutes = static_cast<std::size_t>(spi_read_routes(out.routes, nroutes, &total));

    if (out.fresh) {
        run("SELECT node_id, node, coalesce(host, ''), coalesce(port, 0), state,"
            " lag_seconds, coalesce(lag_bytes, -1),"
            " coalesce(replay_lsn, '0/0'), coalesce(connections, 0), coalesce(max_connections, 0),"
            " coalesce(reserved_connections, 0), coalesce(last_success, '-infinity'), coalesce(weight, 100),"
            " coalesce(zone, '') FROM replica_router.routing_hints ORDER BY node_id");
        out.nodes = static_cast<NodeHint *>(MemoryContextAllocZero(caller, sizeof(NodeHint) * (SPI_processed + 1)));
        for (uint64 i = 0; i < SPI_processed && i < kMaxNodesHard; ++i) {
            NodeHint &h = out.nodes[out.n++];
            h.node_id = DatumGetInt32(binval(i, 1, &isnull));
            copy_str(h.name, sizeof h.name, value(i, 2));
            copy_str(h.host, sizeof h.host, value(i, 3));
            h.port = DatumGetInt32(binval(i, 4, &isnull));
            h.state = NodeState::unknown;
            (void) parse_state(value(i, 5), &h.state);
            h.enabled = h.state != NodeState::disabled;
            h.has_result = true;
            // Converted here: arithmetic in the query would resolve its
            // operators through the caller's search_path.
            Datum lag = binval(i, 6, &isnull);
            double seconds = isnull ? -1.0 : DatumGetFloat8(lag);
            h.lag = seconds < 0 || seconds != seconds ? -1
                    : seconds >= 9.2e12                ? PG_INT64_MAX
                                                       : static_cast<Micros>(seconds * 1e6);
            h.lag_bytes = DatumGetInt64(binval(i, 7, &isnull));
            h.replay_lsn = DatumGetLSN(binval(i, 8, &isnull));
            h.connections = DatumGetInt32(binval(i, 9, &isnull));
            h.max_connections = DatumGetInt32(binval(i, 10, &isnull));
            h.pool.reserved = DatumGetInt32(binval(i, 11, &isnull));
            h.last_success = DatumGetTimestampTz(binval(i, 12, &isnull));
            h.weight = DatumGetInt32(binval(i, 13, &isnull));
            copy_str(h.zone, sizeof h.zone, value(i, 14));
        }
    }
    SPI_finish();
}

} // namespace rr
