CREATE OR REPLACE VIEW replica_router.status AS
SELECT p.node,
       'primary'::text AS role,
       CASE WHEN p.host IS NULL THEN 'down' ELSE 'primary' END AS state,
       p.host,
       p.port,
       NULL::text AS zone,
       '0'::interval AS lag,
       0::double precision AS lag_seconds,
       0::bigint AS lag_bytes,
       pg_catalog.pg_size_pretty(0::bigint) AS lag_size,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_current_wal_lsn() END AS replay_lsn,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN
           (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend')::integer END AS connections,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN
           pg_catalog.current_setting('max_connections')::integer END AS max_connections,
       pg_catalog.now() AS last_poll,
       CASE WHEN p.host IS NULL THEN 'no primary is reachable' END AS error
  FROM replica_router._primary() p
 WHERE NOT EXISTS (SELECT FROM replica_router._hints() h WHERE h.state OPERATOR(pg_catalog.=) 'primary')
UNION ALL
SELECT n.name,
       CASE WHEN h.state OPERATOR(pg_catalog.=) 'primary' THEN 'primary' ELSE 'replica' END,
       coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END),
       h.host,
       h.port,
       n.zone,
       h.lag,
       extract(epoch FROM h.lag)::double precision,
       h.lag_bytes,
       pg_catalog.pg_size_pretty(h.lag_bytes),
       h.replay_lsn,
       h.connections,
       h.max_connections,
       h.last_poll,
       h.error
  FROM replica_router.nodes n
  LEFT JOIN replica_router._hints() h ON h.node_id OPERATOR(pg_catalog.=) n.id
 -- Not polled here (a standby with observe = off): the primary's member entry
 -- is the primary row above, not a second, unknown one.
 WHERE NOT (h.node_id IS NULL AND n.name OPERATOR(pg_catalog.=) (SELECT p.node FROM replica_router._primary() p));
COMMENT ON VIEW replica_router.status IS
    'One row per member, the primary first (from this node''s polls): role, state, lag, connections, last poll';
