// replica_router.* settings.
#pragma once

extern char *rr_database;
extern int rr_poll_interval_ms;
extern int rr_connect_timeout_ms;
extern int rr_query_timeout_ms;
extern int rr_max_lag_ms;
extern int rr_stale_after_ms;
extern bool rr_enabled;
extern bool rr_fallback_to_primary;
extern int rr_heartbeat_s;
extern int rr_max_replicas;
extern char *rr_primary_host;
extern int rr_primary_port;
extern char *rr_primary_name;

void rr_define_gucs(bool preloading);
