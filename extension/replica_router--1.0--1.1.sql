-- replica_router 1.0 -> 1.1
\echo Use "ALTER EXTENSION replica_router UPDATE TO '1.1'" to load this file. \quit

-- recommend() returns the named row type replica_router.recommendation
-- (its answers are the same seven columns).
DROP FUNCTION replica_router.recommend(text, interval, pg_lsn, text);
-- A named row type rather than OUT parameters: the executor then finds the
-- result's shape in the type cache instead of rebuilding it from pg_proc on
-- every call, which is a measurable part of recommend()'s cost.
CREATE TYPE replica_router.recommendation AS (
    node text, host text, port integer, role text,
    replay_lag interval, lag_bytes bigint, reason text);
COMMENT ON TYPE replica_router.recommendation IS 'One answer of recommend(): where to send the query, and why';

CREATE FUNCTION replica_router.recommend(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL)
RETURNS replica_router.recommendation
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_recommend';
COMMENT ON FUNCTION replica_router.recommend(text, interval, pg_lsn, text) IS
    'Where to send a query: a healthy, caught-up replica for reads, the primary otherwise';
REVOKE ALL ON FUNCTION replica_router.recommend(text, interval, pg_lsn, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router.recommend(text, interval, pg_lsn, text) TO PUBLIC;

-- Connection string errors name what was checked ('pgbouncer connection string').
DROP FUNCTION replica_router._check_conninfo(text, text);
-- what names the argument in messages: 'connection string' or
-- 'pgbouncer connection string'.
CREATE FUNCTION replica_router._check_conninfo(name text, conninfo text, what text DEFAULT 'connection string')
RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text;
BEGIN
    IF conninfo IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(conninfo) = '' THEN
        RAISE EXCEPTION '% for replica "%" is empty', what, name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An empty connection string would make the worker connect to this server itself.',
                  HINT = 'Name the host, e.g. ''host=10.0.0.2 port=5432 dbname=postgres''.';
    END IF;
    IF length(conninfo) >= 1024 THEN
        RAISE EXCEPTION '% for replica "%" is too long', what, name
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('It is %s characters; the limit is 1023.', length(conninfo));
    END IF;
    problem := replica_router._conninfo_error(conninfo);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid % for replica "%"', what, name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = problem,
                  HINT = 'Use libpq syntax, e.g. ''host=10.0.0.2 port=5432 user=replica_router dbname=postgres''.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION replica_router._check_conninfo(text, text, text) FROM PUBLIC;

-- A NULL weight or route target has its own message (SQLSTATE 22004).
CREATE OR REPLACE FUNCTION replica_router._check_weight(weight integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF weight IS NULL THEN
        RAISE EXCEPTION 'weight must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Leave weight out for the default of 100; 0 drains the replica.';
    END IF;
    IF weight < 0 OR weight > 10000 THEN
        RAISE EXCEPTION 'invalid weight %', weight
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A weight is an integer from 0 to 10000; 0 drains the replica.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION replica_router.add_replica(
    name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
    capacity integer := current_setting('replica_router.max_replicas')::integer;
BEGIN
    PERFORM replica_router._check_name('replica name', name);
    PERFORM replica_router._check_conninfo(name, conninfo);
    PERFORM replica_router._check_weight(weight);
    IF zone IS NOT NULL THEN
        PERFORM replica_router._check_name('zone', zone);
    END IF;
    IF pgbouncer IS NOT NULL THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
    END IF;
    -- Serialise registrations so the capacity check holds.
    LOCK TABLE replica_router.nodes IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM replica_router.nodes n WHERE n.name = add_replica.name) THEN
        RAISE EXCEPTION 'replica "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use replica_router.alter_replica() to change it, or choose another name.';
    END IF;
    IF (SELECT count(*) FROM replica_router.nodes) >= capacity THEN
        RAISE EXCEPTION 'cannot register replica "%": the registry is full', name
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('%s replicas are registered, the maximum set by replica_router.max_replicas.', capacity),
                  HINT = 'Remove a replica, or raise replica_router.max_replicas and restart the server.';
    END IF;
    INSERT INTO replica_router.nodes (name, conninfo, weight, zone, pgbouncer)
    VALUES (add_replica.name, add_replica.conninfo, add_replica.weight, add_replica.zone, add_replica.pgbouncer)
    RETURNING * INTO result;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    result.pgbouncer := replica_router.mask_conninfo(result.pgbouncer);
    RETURN result;
END
$$;

CREATE OR REPLACE FUNCTION replica_router.alter_replica(
    name text, weight integer DEFAULT NULL, enabled boolean DEFAULT NULL,
    zone text DEFAULT NULL, conninfo text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'replica name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF weight IS NOT NULL THEN
        PERFORM replica_router._check_weight(weight);
    END IF;
    IF zone IS NOT NULL AND zone <> '' THEN
        PERFORM replica_router._check_name('zone', zone);
    END IF;
    IF conninfo IS NOT NULL THEN
        PERFORM replica_router._check_conninfo(name, conninfo);
    END IF;
    IF pgbouncer IS NOT NULL AND pgbouncer <> '' THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
    END IF;
    UPDATE replica_router.nodes n
       SET weight = coalesce(alter_replica.weight, n.weight),
           enabled = coalesce(alter_replica.enabled, n.enabled),
           zone = CASE WHEN alter_replica.zone IS NULL THEN n.zone
                       WHEN alter_replica.zone = '' THEN NULL
                       ELSE alter_replica.zone END,
           conninfo = coalesce(alter_replica.conninfo, n.conninfo),
           pgbouncer = CASE WHEN alter_replica.pgbouncer IS NULL THEN n.pgbouncer
                            WHEN alter_replica.pgbouncer = '' THEN NULL
                            ELSE alter_replica.pgbouncer END,
           updated_at = now()
     WHERE n.name = alter_replica.name
    RETURNING * INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    result.pgbouncer := replica_router.mask_conninfo(result.pgbouncer);
    RETURN result;
END
$$;

CREATE OR REPLACE FUNCTION replica_router.set_route(
    operation text, target text, max_lag interval DEFAULT NULL, balance text DEFAULT NULL)
RETURNS replica_router.routes
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.routes;
BEGIN
    PERFORM replica_router._check_name('operation', operation);
    IF target IS NULL THEN
        RAISE EXCEPTION 'route target must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'A route''s target is primary, replica or any.';
    END IF;
    IF target NOT IN ('primary', 'replica', 'any') THEN
        RAISE EXCEPTION 'invalid route target "%"', left(target, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A route''s target is primary, replica or any.';
    END IF;
    IF max_lag < interval '0' THEN
        RAISE EXCEPTION 'max_lag must not be negative' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The given max_lag is %s.', max_lag);
    END IF;
    IF balance IS NOT NULL AND balance NOT IN ('round_robin', 'weighted', 'least_lag', 'least_connections') THEN
        RAISE EXCEPTION 'invalid balancing method "%"', left(balance, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Balancing is round_robin, weighted, least_lag or least_connections.';
    END IF;
    INSERT INTO replica_router.routes AS r (operation, target, max_lag, balance)
    VALUES (set_route.operation, set_route.target, set_route.max_lag, set_route.balance)
    ON CONFLICT ON CONSTRAINT routes_pkey DO UPDATE
       SET target = EXCLUDED.target, max_lag = EXCLUDED.max_lag, balance = EXCLUDED.balance, updated_at = now()
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- lag.severity: 'diverged' (off the primary's timeline history) is critical,
-- 'self' (the entry is the primary itself) a warning.
CREATE OR REPLACE VIEW replica_router.lag AS
WITH h AS (SELECT * FROM replica_router._hints()),
     sr AS (SELECT r.*, s.slot_name AS via_slot,
                   count(*) OVER (PARTITION BY r.application_name) AS same_name
              FROM pg_catalog.pg_stat_replication r
              LEFT JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid)
SELECT n.name AS node,
       coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END) AS state,
       CASE WHEN m.pid IS NULL THEN NULL WHEN h.wal_slot_name IS NOT NULL THEN 'slot' ELSE 'application_name' END
           AS matched_by,
       m.application_name,
       m.client_addr,
       m.state AS walsender_state,
       m.sync_state,
       m.sent_lsn,
       m.write_lsn,
       m.flush_lsn,
       m.replay_lsn AS reported_replay_lsn,
       m.write_lag,
       m.flush_lag,
       m.replay_lag AS reported_replay_lag,
       h.receive_lsn,
       h.replay_lsn,
       h.lag_bytes,
       pg_catalog.pg_size_pretty(h.lag_bytes) AS lag_size,
       h.lag AS replay_lag,
       extract(epoch FROM h.lag)::double precision AS replay_lag_seconds,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() AND h.receive_lsn IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), h.receive_lsn), 0)::bigint
       END AS receive_gap_bytes,
       CASE WHEN h.receive_lsn IS NOT NULL AND h.replay_lsn IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(h.receive_lsn, h.replay_lsn), 0)::bigint
       END AS replay_gap_bytes,
       h.replay_paused,
       CASE WHEN NOT n.enabled THEN 'ok'
            WHEN h.state IS NULL OR h.state = 'unknown' THEN 'warning'
            WHEN h.state = 'self' THEN 'warning'
            WHEN h.state IN ('down', 'stale', 'promoted', 'foreign', 'diverged') THEN 'critical'
            WHEN h.lag >= replica_router._ms_setting('replica_router.lag_critical') THEN 'critical'
            WHEN h.lag >= replica_router._ms_setting('replica_router.lag_warning') OR h.replay_paused THEN 'warning'
            ELSE 'ok' END AS severity,
       h.last_poll,
       h.error
  FROM replica_router.nodes n
  LEFT JOIN h ON h.node_id = n.id
  LEFT JOIN LATERAL (
        SELECT sr.* FROM sr
         WHERE (h.wal_slot_name IS NOT NULL AND sr.via_slot = h.wal_slot_name)
            OR (h.wal_slot_name IS NULL AND sr.application_name = h.wal_application_name AND sr.same_name = 1)
         LIMIT 1) m ON true;
