// The worker's reads and writes of the extension's tables, each in its own
// short transaction. PostgreSQL side: errors are caught, reported to the log,
// and the transaction is aborted, so the worker's loop goes on.
#pragma once

#include "hint.hpp"
#include "routing.hpp"

namespace rr {

constexpr std::size_t kConninfoLen = 1024;

struct NodeRow {
    int32_t id;
    int32_t weight;
    bool enabled;
    char name[kNameLen];
    char zone[kNameLen];
    char conninfo[kConninfoLen];
    char pgbouncer[kConninfoLen];  // admin console conninfo, "" when none
    bool conninfo_trusted;   // set by a role that is (still) a superuser
    bool pgbouncer_trusted;
    bool too_long;           // a connection string over kConninfoLen bytes: never cut, refused
};



enum class CatalogStatus { ok, absent, failed };

// Is the extension installed (and committed) in this database?
CatalogStatus catalog_extension_present();

// Reads the registry into `out` (at most `cap` rows) in one transaction.
// Rows past `cap` are not read, and `problem` says so.
CatalogStatus catalog_load_nodes(NodeRow *out, int cap, int *count, char *problem, std::size_t problem_len);

// Reads the routes into `routes` (at most `route_cap`) in a transaction of
// their own, so a bad route never keeps registry changes from the worker.
CatalogStatus catalog_load_routes(RouteRow *routes, int route_cap, int *route_count, char *problem,
                                  std::size_t problem_len);

// One hint to write; `notify` sends NOTIFY replica_router about its state
// change from `old_state` in the same transaction.
struct HintWrite {
    NodeHint hint;
    bool notify;
    NodeState old_state;
};

// Upserts the given hints; `heartbeat` also stamps the heartbeat row with
// the primary's clock and the endpoint clients reach it at.
CatalogStatus catalog_write_hints(const HintWrite *rows, int n, bool heartbeat, char *error, std::size_t error_len);

} // namespace rr
