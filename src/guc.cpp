#include "pg.hpp"

#include "guc.hpp"

char *rr_database = nullptr;
int rr_poll_interval_ms = 500;
int rr_connect_timeout_ms = 2000;
int rr_query_timeout_ms = 1000;
int rr_max_lag_ms = 30000;
int rr_stale_after_ms = 3000;
bool rr_enabled = true;
bool rr_fallback_to_primary = true;
int rr_heartbeat_s = 60;
int rr_max_replicas = 64;
char *rr_primary_host = nullptr;
int rr_primary_port = 0;
char *rr_primary_name = nullptr;

void rr_define_gucs(bool preloading)
{
    DefineCustomStringVariable("replica_router.database", "Database in which the replica_router worker runs.",
                               "The extension must be created in this database.", &rr_database, "postgres",
                               PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.max_replicas", "Maximum number of registered replicas.",
                            "Sizes the shared-memory hint table.", &rr_max_replicas, 64, 1,
                            static_cast<int>(rr::kMaxNodesHard), PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.poll_interval", "Time between polls of each replica.", nullptr,
                            &rr_poll_interval_ms, 500, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.connect_timeout", "Time allowed to connect to a replica.", nullptr,
                            &rr_connect_timeout_ms, 2000, 10, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.query_timeout", "Time allowed for a replica to answer a poll.", nullptr,
                            &rr_query_timeout_ms, 1000, 10, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.max_lag", "Replay lag above which a replica is lagging.",
                            "recommend() can be given a different limit per call.", &rr_max_lag_ms, 30000, 0,
                            INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.stale_after", "Age of the last successful poll after which hints are stale.",
                            nullptr, &rr_stale_after_ms, 3000, 100, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    DefineCustomBoolVariable("replica_router.enabled", "Route reads to replicas.",
                             "When off, recommend() sends everything to the primary.", &rr_enabled, true, PGC_SIGHUP,
                             0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("replica_router.fallback_to_primary",
                             "Send reads to the primary when no replica qualifies.",
                             "When off, recommend() raises an error instead.", &rr_fallback_to_primary, true,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.heartbeat", "Interval at which unchanged hints are rewritten.",
                            "Hints are written when they change and at least this often.", &rr_heartbeat_s, 60, 1,
                            86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("replica_router.primary_host", "Host name clients use to reach the primary.",
                               "Empty means the first listen_addresses entry, or localhost.", &rr_primary_host, "",
                               PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.primary_port", "Port clients use to reach the primary.",
                            "0 means this server's port.", &rr_primary_port, 0, 0, 65535, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomStringVariable("replica_router.primary_name", "Node name reported for the primary.", nullptr,
                               &rr_primary_name, "primary", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    (void) preloading;
#if PG_VERSION_NUM >= 150000
    MarkGUCPrefixReserved("replica_router");
#else
    EmitWarningsOnPlaceholders("replica_router");
#endif
}
