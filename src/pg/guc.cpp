#include "pg.hpp"

#include "guc.hpp"
#include "conninfo.hpp"
#include "routing.hpp"

char *rr_database = nullptr;
int rr_poll_interval_ms = 250;
int rr_connect_timeout_ms = 2000;
int rr_query_timeout_ms = 1000;
int rr_max_lag_ms = 30000;
int rr_stale_after_ms = 3000;
bool rr_enabled = true;
bool rr_observe = true;
bool rr_fallback_to_primary = true;
int rr_heartbeat_s = 60;
int rr_max_replicas = 64;
char *rr_primary_host = nullptr;
int rr_primary_port = 0;
char *rr_primary_name = nullptr;
char *rr_primary_pgbouncer = nullptr;
int rr_lag_warning_ms = 5000;
int rr_lag_critical_ms = 30000;
int rr_pool_warning_pct = 80;
int rr_pool_critical_pct = 90;
int rr_slot_retained_warning_mb = 1024;
int rr_slot_retained_critical_mb = 10240;
int rr_slot_inactive_warning_s = 300;
int rr_slot_inactive_critical_s = 3600;
int rr_slot_xmin_age_warning = 100000000;
int rr_slot_xmin_age_critical = 500000000;

int rr_balance = static_cast<int>(rr::Balance::round_robin);
int rr_recovery_polls = 3;
int rr_lag_hysteresis_pct = 20;
bool rr_strict_operations = false;
int rr_standby_max_hint_age_ms = 120000;
int rr_slow_poll_floor_ms = 100;
int rr_retry_max_interval_ms = 10000;

namespace {

const struct config_enum_entry balance_options[] = {
    {"round_robin", static_cast<int>(rr::Balance::round_robin), false},
    {"weighted", static_cast<int>(rr::Balance::weighted), false},
    {"least_lag", static_cast<int>(rr::Balance::least_lag), false},
    {"least_connections", static_cast<int>(rr::Balance::least_connections), false},
    {nullptr, 0, false},
};

void define_routing_gucs()
{
    DefineCustomEnumVariable("replica_router.balance", "How reads are spread over qualified replicas.",
                             "round_robin, weighted (node weights), least_lag or least_connections; a route may "
                             "choose its own.",
                             &rr_balance, static_cast<int>(rr::Balance::round_robin), balance_options, PGC_SIGHUP, 0,
                             nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.recovery_polls",
                            "Consecutive good polls before a replica that was down or lagging is used again.",
                            nullptr, &rr_recovery_polls, 3, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.lag_hysteresis",
                            "How far under max_lag (percent) a lagging replica must get to be healthy again.", nullptr,
                            &rr_lag_hysteresis_pct, 20, 0, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("replica_router.strict_operations", "Reject operations that have no route.",
                             "When off, unknown operations are routed to the primary.", &rr_strict_operations, false,
                             PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.standby_max_hint_age",
                            "Oldest heartbeat a standby still trusts the replicated hints at.", nullptr,
                            &rr_standby_max_hint_age_ms, 120000, 1000, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("replica_router.slow_poll_floor",
                            "Shortest time a poll may be outstanding before its replica counts as slow.",
                            "A replica is slow (left out of routing until it answers) while its poll is outstanding "
                            "longer than its learned round-trip timeout (smoothed round trip + 4 x variation), never "
                            "less than this. At or above query_timeout, replicas are never judged slow.",
                            &rr_slow_poll_floor_ms, 100, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.retry_max_interval",
                            "Longest pause between tries of a replica that keeps failing.",
                            "A replica failing for longer than this is retried after a quarter to a half of the time "
                            "it has been failing, at most this far apart; at or below poll_interval there is no "
                            "back-off.",
                            &rr_retry_max_interval_ms, 10000, 10, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
}

void define_threshold_ms(const char *name, const char *desc, int *var, int def)
{
    DefineCustomIntVariable(name, desc, nullptr, var, def, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
}

// A connection string libpq cannot parse is refused when it is set: the
// worker would otherwise keep failing on it, and libpq's message about it
// could quote a password.
bool check_pgbouncer_conninfo(char **newval, void **, GucSource)
{
    if (*newval == nullptr || (*newval)[0] == '\0')
        return true;
    char error[256];
    if (rr::conninfo_acceptable(*newval, error, sizeof error))
        return true;
    GUC_check_errmsg("invalid connection string for replica_router.primary_pgbouncer");
    GUC_check_errdetail("%s", error);
    GUC_check_errhint("Use libpq syntax, e.g. 'host=127.0.0.1 port=6432 dbname=pgbouncer user=replica_router'.");
    return false;
}

void define_monitoring_gucs()
{
    DefineCustomStringVariable("replica_router.primary_pgbouncer",
                               "Connection string of the pgbouncer admin console in front of the primary.",
                               "Empty means none. The worker runs SHOW POOLS there.", &rr_primary_pgbouncer, "",
                               PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_pgbouncer_conninfo, nullptr, nullptr);
    define_threshold_ms("replica_router.lag_warning", "Replay lag at which the lag view warns.", &rr_lag_warning_ms,
                        5000);
    define_threshold_ms("replica_router.lag_critical", "Replay lag at which the lag view is critical.",
                        &rr_lag_critical_ms, 30000);
    DefineCustomIntVariable("replica_router.pool_warning", "Connection use (percent of usable slots) that warns.",
                            nullptr, &rr_pool_warning_pct, 80, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.pool_critical", "Connection use (percent of usable slots) that is critical.",
                            nullptr, &rr_pool_critical_pct, 90, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.slot_retained_warning", "WAL retained by a slot that warns.", nullptr,
                            &rr_slot_retained_warning_mb, 1024, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MB, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.slot_retained_critical", "WAL retained by a slot that is critical.",
                            nullptr, &rr_slot_retained_critical_mb, 10240, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MB,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.slot_inactive_warning", "Time a slot may be inactive before it warns.",
                            nullptr, &rr_slot_inactive_warning_s, 300, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("replica_router.slot_inactive_critical",
                            "Time a slot may be inactive before it is critical.", nullptr,
                            &rr_slot_inactive_critical_s, 3600, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("replica_router.slot_xmin_age_warning", "Age of a slot's xmin that warns.", nullptr,
                            &rr_slot_xmin_age_warning, 100000000, 1, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("replica_router.slot_xmin_age_critical", "Age of a slot's xmin that is critical.", nullptr,
                            &rr_slot_xmin_age_critical, 500000000, 1, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr,
                            nullptr);
}

} // namespace

void rr_define_gucs(bool preloading)
{
    if (preloading) {
        DefineCustomStringVariable("replica_router.database", "Database in which the replica_router worker runs.",
                                   "The extension must be created in this database.", &rr_database, "postgres",
                                   PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable("replica_router.max_replicas", "Maximum number of registered replicas.",
                                "Sizes the shared-memory hint table.", &rr_max_replicas, 64, 1,
                                static_cast<int>(rr::kMaxNodesHard), PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    }
    DefineCustomIntVariable("replica_router.poll_interval", "Time between polls of each replica.", nullptr,
                            &rr_poll_interval_ms, 250, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
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
    DefineCustomBoolVariable("replica_router.observe", "On a standby, poll every member and answer from those polls.",
                             "When off, a standby's worker waits for promotion and the standby answers from the "
                             "hints the primary's worker replicates (N members poll each other: off saves "
                             "N x N polls per interval in large fleets, each node polling itself too).",
                             &rr_observe, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
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
    define_monitoring_gucs();
    define_routing_gucs();
    if (!preloading)
        return;  // placeholders for the PGC_POSTMASTER settings stay
#if PG_VERSION_NUM >= 150000
    MarkGUCPrefixReserved("replica_router");
#else
    EmitWarningsOnPlaceholders("replica_router");
#endif
}
