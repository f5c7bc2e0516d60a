-- Everything the views know, as one JSON document: the settings, the states,
-- health, the worker, every node with its lag and pool, the slots and
-- pgbouncer's pools, and whether this server is the elected primary.
-- metrics() renders it; replica_router serve reads it.
CREATE OR REPLACE FUNCTION replica_router.snapshot() RETURNS json
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_catalog.json_build_object(
  'version', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'replica_router'),
  'in_recovery', pg_catalog.pg_is_in_recovery(),
  -- primary: this server is the primary the worker elects; standby;
  -- unelected: out of recovery but not the primary (an old primary back on
  -- its old timeline); unknown: not every member polled yet.
  'source_role', replica_router._source_role(),
  'server_time', extract(epoch FROM pg_catalog.clock_timestamp()),
  'settings', pg_catalog.json_build_object(
      'max_lag', extract(epoch FROM pg_catalog.current_setting('replica_router.max_lag')::interval),
      'stale_after', extract(epoch FROM pg_catalog.current_setting('replica_router.stale_after')::interval),
      'poll_interval', extract(epoch FROM pg_catalog.current_setting('replica_router.poll_interval')::interval),
      'fallback_to_primary', pg_catalog.current_setting('replica_router.fallback_to_primary')::boolean),
  'states', (SELECT pg_catalog.json_agg(s ORDER BY s.state) FROM replica_router.states() s),
  'health', (SELECT pg_catalog.json_build_object(
        'severity', h.severity, 'healthy_replicas', h.healthy_replicas,
        'registered_replicas', h.registered_replicas,
        'max_replay_lag_seconds', extract(epoch FROM h.max_replay_lag), 'most_lagging', h.most_lagging,
        'worker_alive', h.worker_alive, 'worker_pid', h.worker_pid,
        'last_round_age_seconds', extract(epoch FROM h.last_round_age),
        'last_round_duration_seconds', extract(epoch FROM h.last_round_duration),
        'registry_problem', h.registry_problem) FROM replica_router.health h),
  'worker', (SELECT pg_catalog.json_build_object(
        'pid', w.pid, 'started_at', extract(epoch FROM w.started_at), 'rounds', w.rounds,
        'last_round_start', extract(epoch FROM w.last_round_start),
        'last_round_duration_seconds', extract(epoch FROM w.last_round_duration),
        'polls', w.polls, 'poll_failures', w.poll_failures, 'hint_writes', w.hint_writes,
        'write_failures', w.write_failures, 'last_error', w.last_error,
        'last_error_at', extract(epoch FROM w.last_error_at)) FROM replica_router.worker_status() w),
  'nodes', (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
        'node', s.node, 'role', s.role, 'state', s.state, 'host', s.host, 'port', s.port, 'zone', s.zone,
        'lag_seconds', s.lag_seconds, 'lag_bytes', s.lag_bytes, 'replay_lsn', s.replay_lsn::text,
        'connections', s.connections, 'max_connections', s.max_connections,
        'last_poll', extract(epoch FROM s.last_poll), 'error', s.error,
        'routable', st.routable, 'lag_severity', l.severity, 'replay_paused', l.replay_paused,
        'receive_gap_bytes', l.receive_gap_bytes, 'replay_gap_bytes', l.replay_gap_bytes,
        'matched_by', l.matched_by, 'walsender_state', l.walsender_state, 'sync_state', l.sync_state,
        'reported_replay_lag_seconds', extract(epoch FROM l.reported_replay_lag),
        'last_success', extract(epoch FROM rh.last_success),
        'pool', pg_catalog.json_build_object(
            'active', p.active, 'idle', p.idle, 'idle_in_transaction', p.idle_in_transaction,
            'waiting_on_locks', p.waiting_on_locks, 'reserved_connections', p.reserved_connections,
            'usable_connections', p.usable_connections, 'utilisation_pct', p.utilisation_pct,
            'cl_active', p.cl_active, 'cl_waiting', p.cl_waiting, 'sv_active', p.sv_active,
            'sv_idle', p.sv_idle, 'maxwait', p.maxwait, 'pool_mode', p.pool_mode,
            'pgbouncer_ok', p.pgbouncer_ok, 'pgbouncer_error', p.pgbouncer_error, 'severity', p.severity))
        ORDER BY s.role <> 'primary', s.node), '[]'::json)
        FROM replica_router.status s
        LEFT JOIN replica_router.states() st ON st.state = s.state
        LEFT JOIN replica_router.lag l ON l.node = s.node AND s.role = 'replica'
        LEFT JOIN replica_router.pool_state p ON p.node = s.node AND p.role = s.role
        LEFT JOIN replica_router.routing_hints rh ON rh.node = s.node AND s.role = 'replica'),
  'slots', (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
        'slot_name', x.slot_name, 'slot_type', x.slot_type, 'active', x.active, 'replica', x.replica,
        'wal_status', x.wal_status, 'retained_bytes', x.retained_bytes, 'safe_wal_size_bytes', x.safe_wal_size,
        'inactive_seconds', extract(epoch FROM x.inactive_for), 'xmin_age', x.xmin_age,
        'catalog_xmin_age', x.catalog_xmin_age,
        'time_until_lost_seconds', extract(epoch FROM x.time_until_lost),
        'severity', x.severity, 'reason', x.reason) ORDER BY x.slot_name), '[]'::json)
        FROM replica_router.slot_health x),
  'pgbouncer_pools', (SELECT COALESCE(pg_catalog.json_agg(b ORDER BY b.node, b.database, b.user), '[]'::json)
        FROM replica_router.pgbouncer_pools b)
)
$$;
COMMENT ON FUNCTION replica_router.snapshot() IS
    'The views as one JSON document (source_role, settings, states, health, worker, nodes, slots, pgbouncer pools): what metrics() and replica_router serve read';
