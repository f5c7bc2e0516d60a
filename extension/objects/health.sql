-- The health view: one row summing up the cluster. most_lagging names a
-- replica only when some lag is above 0; the primary member is no replica.
CREATE OR REPLACE VIEW replica_router.health AS
WITH w AS (SELECT * FROM replica_router.worker_status()),
     l AS (SELECT * FROM replica_router.lag),
     fresh AS (SELECT w.pid IS NOT NULL
                      AND pg_catalog.clock_timestamp() - w.last_round_start
                          < 3 * replica_router._ms_setting('replica_router.poll_interval') + interval '2 seconds'
                      AS alive FROM w)
SELECT replica_router._worst(
           (SELECT replica_router._worst(VARIADIC coalesce(array_agg(severity), '{}')) FROM l),
           (SELECT replica_router._worst(VARIADIC coalesce(array_agg(severity), '{}')) FROM replica_router.slot_health),
           (SELECT replica_router._worst(VARIADIC coalesce(array_agg(severity), '{}')) FROM replica_router.pool_state),
           CASE WHEN NOT (SELECT alive FROM fresh) THEN 'critical' END,
           CASE WHEN (SELECT registry_problem FROM w) IS NOT NULL THEN 'critical' END) AS severity,
       (SELECT count(*) FILTER (WHERE state = 'healthy') FROM l)::integer AS healthy_replicas,
       (SELECT count(*) FROM l WHERE state <> 'primary')::integer AS registered_replicas,
       (SELECT max(replay_lag) FROM l) AS max_replay_lag,
       (SELECT node FROM l WHERE replay_lag > interval '0' ORDER BY replay_lag DESC, node LIMIT 1) AS most_lagging,
       (SELECT alive FROM fresh) AS worker_alive,
       (SELECT pid FROM w) AS worker_pid,
       greatest(pg_catalog.clock_timestamp() - (SELECT last_round_start FROM w), interval '0') AS last_round_age,
       (SELECT last_round_duration FROM w) AS last_round_duration,
       (SELECT registry_problem FROM w) AS registry_problem;
COMMENT ON VIEW replica_router.health IS
    'One row summing up the cluster: worst severity, healthy replicas, worker freshness, registry problems';
