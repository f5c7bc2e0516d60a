// replica_router.* settings.
#pragma once

extern char *rr_database;
extern int rr_poll_interval_ms;
extern int rr_connect_timeout_ms;
extern int rr_query_timeout_ms;
extern int rr_max_lag_ms;
extern int rr_stale_after_ms;
extern bool rr_enabled;
extern bool rr_observe;
extern bool rr_fallback_to_primary;
extern int rr_heartbeat_s;
extern int rr_max_replicas;
extern char *rr_primary_host;
extern int rr_primary_port;
extern char *rr_primary_name;

extern char *rr_primary_pgbouncer;
extern int rr_lag_warning_ms;
extern int rr_lag_critical_ms;
extern int rr_pool_warning_pct;
extern int rr_pool_critical_pct;
extern int rr_slot_retained_warning_mb;
extern int rr_slot_retained_critical_mb;
extern int rr_slot_inactive_warning_s;
extern int rr_slot_inactive_critical_s;
extern int rr_slot_xmin_age_warning;
extern int rr_slot_xmin_age_critical;

extern int rr_balance;
extern int rr_recovery_polls;
extern int rr_lag_hysteresis_pct;
extern bool rr_strict_operations;
extern int rr_standby_max_hint_age_ms;
extern int rr_slow_poll_floor_ms;
extern int rr_retry_max_interval_ms;

void rr_define_gucs(bool preloading);
