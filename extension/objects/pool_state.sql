CREATE OR REPLACE VIEW replica_router.pool_state AS
WITH h AS (SELECT * FROM replica_router._hints()),
     -- pgbouncer's own admin console (where our SHOW POOLS runs) is not a pool of clients.
     pools AS (SELECT node_id,
                      coalesce(sum(cl_active) FILTER (WHERE database <> 'pgbouncer'), 0)::integer AS cl_active,
                      coalesce(sum(cl_waiting) FILTER (WHERE database <> 'pgbouncer'), 0)::integer AS cl_waiting,
                      coalesce(sum(sv_active) FILTER (WHERE database <> 'pgbouncer'), 0)::integer AS sv_active,
                      coalesce(sum(sv_idle) FILTER (WHERE database <> 'pgbouncer'), 0)::integer AS sv_idle,
                      max(maxwait) FILTER (WHERE database <> 'pgbouncer') AS maxwait,
                      string_agg(DISTINCT pool_mode, ',') FILTER (WHERE database <> 'pgbouncer') AS pool_mode
                 FROM replica_router._pools() GROUP BY node_id),
     local AS (SELECT count(*)::integer AS total,
                      count(*) FILTER (WHERE state = 'active')::integer AS active,
                      count(*) FILTER (WHERE state = 'idle')::integer AS idle,
                      count(*) FILTER (WHERE state LIKE 'idle in transaction%')::integer AS idle_in_transaction,
                      count(*) FILTER (WHERE wait_event_type = 'Lock')::integer AS waiting_on_locks
                 FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'),
     ps AS (SELECT * FROM replica_router._primary_stats()),
     -- This server's own counts stand for a primary that is not a registered
     -- member (as the status view does), and only on the primary itself: a
     -- standby's counts are not the primary's. A registered primary's row
     -- comes from its polls, like every member's.
     nodes AS (
        SELECT 0 AS ord, (SELECT node FROM replica_router._primary()) AS node, 'primary'::text AS role,
               'healthy'::text AS state,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN l.total END AS total,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN l.active END AS active,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN l.idle END AS idle,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN l.idle_in_transaction END AS idle_in_transaction,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN l.waiting_on_locks END AS waiting_on_locks,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN
                   pg_catalog.current_setting('max_connections')::integer END AS max_connections,
               CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN
                   pg_catalog.current_setting('superuser_reserved_connections')::integer
                   + coalesce(pg_catalog.current_setting('reserved_connections', true)::integer, 0) END AS reserved,
               0 AS node_id,
               ps.has_pgbouncer,
               ps.pgbouncer_ok, ps.pgbouncer_error
          FROM local l CROSS JOIN ps
         WHERE NOT EXISTS (SELECT FROM h WHERE h.state = 'primary')
        UNION ALL
        -- The primary member without a pgbouncer of its own has the one
        -- replica_router.primary_pgbouncer names (its pools are node 0's).
        SELECT CASE WHEN h.state = 'primary' THEN 0 ELSE 1 END, n.name,
               CASE WHEN h.state = 'primary' THEN 'primary' ELSE 'replica' END,
               coalesce(h.state, 'unknown'), h.connections, h.pool_active, h.pool_idle,
               h.pool_idle_in_transaction, h.pool_waiting, h.max_connections, h.reserved_connections,
               CASE WHEN b.from_primary THEN 0 ELSE n.id END,
               CASE WHEN b.from_primary THEN ps.has_pgbouncer ELSE n.pgbouncer IS NOT NULL END,
               CASE WHEN b.from_primary THEN ps.pgbouncer_ok ELSE h.pgbouncer_ok END,
               CASE WHEN b.from_primary THEN ps.pgbouncer_error ELSE h.pgbouncer_error END
          FROM replica_router.nodes n LEFT JOIN h ON h.node_id = n.id
         CROSS JOIN ps
         CROSS JOIN LATERAL (SELECT h.state = 'primary' AND n.pgbouncer IS NULL AS from_primary) b
         -- Not polled here (a standby with observe = off): the primary's
         -- member entry is the row above, not a second, unknown one.
         WHERE NOT (h.node_id IS NULL AND n.name = (SELECT node FROM replica_router._primary())))
SELECT x.node,
       x.role,
       x.state,
       x.total AS connections,
       x.active,
       x.idle,
       x.idle_in_transaction,
       x.waiting_on_locks,
       x.max_connections,
       x.reserved AS reserved_connections,
       x.max_connections - x.reserved AS usable_connections,
       round(100.0 * x.total / nullif(x.max_connections - x.reserved, 0), 1) AS utilisation_pct,
       p.cl_active,
       p.cl_waiting,
       p.sv_active,
       p.sv_idle,
       p.maxwait,
       p.pool_mode,
       CASE WHEN x.has_pgbouncer THEN coalesce(x.pgbouncer_ok, false) END AS pgbouncer_ok,
       x.pgbouncer_error,
       replica_router._worst(
           CASE WHEN 100.0 * x.total / nullif(x.max_connections - x.reserved, 0)
                     >= pg_catalog.current_setting('replica_router.pool_critical')::integer THEN 'critical'
                WHEN 100.0 * x.total / nullif(x.max_connections - x.reserved, 0)
                     >= pg_catalog.current_setting('replica_router.pool_warning')::integer THEN 'warning' END,
           CASE WHEN p.cl_waiting > 0 THEN 'warning' END,
           CASE WHEN x.has_pgbouncer AND NOT coalesce(x.pgbouncer_ok, false) THEN 'warning' END) AS severity
  FROM nodes x
  LEFT JOIN pools p ON p.node_id = x.node_id
 ORDER BY x.ord, x.node;
COMMENT ON VIEW replica_router.pool_state IS
    'Client connections per node (primary first, one row per node) and, where registered, its pgbouncer pools';
