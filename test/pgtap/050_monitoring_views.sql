-- The monitoring views: columns, types, privileges, and that a role with
-- PUBLIC's rights only can read every column of them.
BEGIN;
SELECT plan(27);

SELECT columns_are('replica_router', 'lag', ARRAY[
    'node', 'state', 'matched_by', 'application_name', 'client_addr', 'walsender_state', 'sync_state',
    'sent_lsn', 'write_lsn', 'flush_lsn', 'reported_replay_lsn', 'write_lag', 'flush_lag', 'reported_replay_lag',
    'receive_lsn', 'replay_lsn', 'lag_bytes', 'lag_size', 'replay_lag', 'replay_lag_seconds',
    'receive_gap_bytes', 'replay_gap_bytes', 'replay_paused', 'severity', 'last_poll', 'error']);
SELECT col_type_is('replica_router', 'lag', 'replay_lag', 'interval', 'lag.replay_lag is interval');
SELECT col_type_is('replica_router', 'lag', 'replay_lag_seconds', 'double precision', 'lag.replay_lag_seconds is double precision');
SELECT col_type_is('replica_router', 'lag', 'lag_bytes', 'bigint', 'lag.lag_bytes is bigint');
SELECT col_type_is('replica_router', 'lag', 'receive_lsn', 'pg_lsn', 'lag.receive_lsn is pg_lsn');

SELECT columns_are('replica_router', 'slot_health', ARRAY[
    'slot_name', 'slot_type', 'database', 'active', 'active_pid', 'replica', 'wal_status', 'retained_bytes',
    'retained', 'safe_wal_size', 'safe_wal_size_pretty', 'inactive_since', 'inactive_for', 'xmin_age',
    'catalog_xmin_age', 'time_until_lost', 'severity', 'reason']);
SELECT col_type_is('replica_router', 'slot_health', 'retained_bytes', 'bigint', 'slot_health.retained_bytes is bigint');
SELECT col_type_is('replica_router', 'slot_health', 'inactive_for', 'interval', 'slot_health.inactive_for is interval');
SELECT col_type_is('replica_router', 'slot_health', 'time_until_lost', 'interval', 'slot_health.time_until_lost is interval');

SELECT columns_are('replica_router', 'pool_state', ARRAY[
    'node', 'role', 'state', 'connections', 'active', 'idle', 'idle_in_transaction', 'waiting_on_locks',
    'max_connections', 'reserved_connections', 'usable_connections', 'utilisation_pct', 'cl_active', 'cl_waiting',
    'sv_active', 'sv_idle', 'maxwait', 'pool_mode', 'pgbouncer_ok', 'pgbouncer_error', 'severity']);
SELECT col_type_is('replica_router', 'pool_state', 'utilisation_pct', 'numeric', 'pool_state.utilisation_pct is numeric');
SELECT col_type_is('replica_router', 'pool_state', 'maxwait', 'interval', 'pool_state.maxwait is interval');

SELECT columns_are('replica_router', 'pgbouncer_pools', ARRAY[
    'node', 'database', 'user', 'cl_active', 'cl_waiting', 'sv_active', 'sv_idle', 'sv_used', 'maxwait', 'pool_mode']);

SELECT columns_are('replica_router', 'health', ARRAY[
    'severity', 'healthy_replicas', 'registered_replicas', 'max_replay_lag', 'most_lagging', 'worker_alive',
    'worker_pid', 'last_round_age', 'last_round_duration', 'registry_problem']);
SELECT col_type_is('replica_router', 'health', 'worker_alive', 'boolean', 'health.worker_alive is boolean');

SELECT function_returns('replica_router', 'metrics', ARRAY[]::text[], 'text');
SELECT function_returns('replica_router', 'snapshot', ARRAY[]::text[], 'json');
SELECT is(json_typeof(replica_router.snapshot() -> 'nodes'), 'array', 'snapshot() holds the nodes');
SELECT is(replica_router.snapshot() ->> 'source_role', 'primary', 'snapshot(): this server is the primary (no member polled as one)');

SELECT table_privs_are('replica_router', 'slot_health', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'pool_state', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'pgbouncer_pools', 'public', ARRAY['SELECT']);

-- A role with nothing but PUBLIC's rights reads every column.
CREATE ROLE rr_tap_viewer;
SET ROLE rr_tap_viewer;
SELECT lives_ok($$SELECT * FROM replica_router.pool_state$$, 'a plain role reads pool_state');
SELECT lives_ok($$SELECT * FROM replica_router.slot_health$$, 'a plain role reads slot_health');
SELECT is((SELECT count(*)::int FROM replica_router.health), 1, 'health has exactly one row for a plain role');
SELECT ok(replica_router.metrics() ~ '^# HELP replica_router_', 'a plain role gets metrics()');
SELECT ok(replica_router.metrics() ~ E'\nreplica_router_info\\{version="[0-9.]+",source_role="primary"\\} 1\n', 'metrics() says the version and that it reads a primary');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
