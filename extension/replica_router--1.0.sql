-- replica_router 1.0
\echo Use "CREATE EXTENSION replica_router" to load this file. \quit

CREATE FUNCTION replica_router._assert_preloaded() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'replica_router_assert_preloaded';
SELECT replica_router._assert_preloaded();

-- The worker reads the registry of one database only.
DO $$
BEGIN
    IF pg_catalog.current_database() <> pg_catalog.current_setting('replica_router.database') THEN
        RAISE WARNING 'the replica_router worker runs in database "%", not in "%"',
            pg_catalog.current_setting('replica_router.database'), pg_catalog.current_database()
            USING DETAIL = 'Replicas registered in this database will not be polled.',
                  HINT = 'Create the extension in the worker''s database, or set replica_router.database and restart the server.';
    END IF;
END
$$;

-- Members may register nodes and see full connection strings.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'replica_router_admin') THEN
        CREATE ROLE replica_router_admin NOLOGIN;
    END IF;
END
$$;

------------------------------------------------------------------------------
-- Helpers implemented in C
------------------------------------------------------------------------------
CREATE FUNCTION replica_router._conninfo_error(conninfo text) RETURNS text
    LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'replica_router_conninfo_error';

CREATE FUNCTION replica_router.mask_conninfo(conninfo text) RETURNS text
    LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'replica_router_mask_conninfo';
COMMENT ON FUNCTION replica_router.mask_conninfo(text) IS
    'The connection string with its password replaced by ********';

CREATE FUNCTION replica_router._notify_worker() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'replica_router_notify_worker';

CREATE FUNCTION replica_router._nodes_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'replica_router_nodes_changed';

------------------------------------------------------------------------------
-- Registry
------------------------------------------------------------------------------
CREATE TABLE replica_router.nodes (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE
                CONSTRAINT nodes_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    conninfo    text NOT NULL
                CONSTRAINT nodes_conninfo_check
                CHECK (length(conninfo) < 1024 AND btrim(conninfo) <> ''
                       AND replica_router._conninfo_error(conninfo) IS NULL),
    weight      integer NOT NULL DEFAULT 100
                CONSTRAINT nodes_weight_check CHECK (weight BETWEEN 0 AND 10000),
    enabled     boolean NOT NULL DEFAULT true,
    zone        text
                CONSTRAINT nodes_zone_check CHECK (zone ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    pgbouncer   text
                CONSTRAINT nodes_pgbouncer_check
                CHECK (length(pgbouncer) < 1024 AND replica_router._conninfo_error(pgbouncer) IS NULL),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE replica_router.nodes IS 'Registered streaming replicas (connection strings hold secrets: admin only)';
SELECT pg_catalog.pg_extension_config_dump('replica_router.nodes', '');

CREATE TRIGGER nodes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON replica_router.nodes
    FOR EACH STATEMENT EXECUTE FUNCTION replica_router._nodes_changed();

------------------------------------------------------------------------------
-- Hints written by the worker (mirrored in shared memory)
------------------------------------------------------------------------------
CREATE TABLE replica_router.routing_hints (
    node_id         integer PRIMARY KEY REFERENCES replica_router.nodes (id) ON DELETE CASCADE,
    node            text NOT NULL,
    host            text,
    port            integer,
    state           text NOT NULL,
    lag_bytes       bigint,
    lag_seconds     double precision,
    replay_lsn      pg_lsn,
    replay_paused   boolean,
    connections     integer,
    max_connections integer,
    last_success    timestamptz,
    error           text,
    weight          integer,
    zone            text,
    reserved_connections integer,
    updated_at      timestamptz NOT NULL
);
COMMENT ON TABLE replica_router.routing_hints IS
    'Routing hints per replica, written by the worker when they change and on every heartbeat';

CREATE TABLE replica_router.heartbeat (
    id                boolean PRIMARY KEY DEFAULT true CONSTRAINT heartbeat_one_row CHECK (id),
    primary_time      timestamptz NOT NULL,
    system_identifier text NOT NULL,
    worker_pid        integer,
    primary_node      text,
    primary_host      text,
    primary_port      integer
);
COMMENT ON TABLE replica_router.heartbeat IS 'Last heartbeat of the worker, on the primary''s clock';

------------------------------------------------------------------------------
-- Operation classes
------------------------------------------------------------------------------
CREATE TABLE replica_router.routes (
    operation   text PRIMARY KEY
                CONSTRAINT routes_operation_check CHECK (operation ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    target      text NOT NULL
                CONSTRAINT routes_target_check CHECK (target IN ('primary', 'replica', 'any')),
    max_lag     interval CONSTRAINT routes_max_lag_check CHECK (max_lag >= interval '0'),
    balance     text CONSTRAINT routes_balance_check
                CHECK (balance IN ('round_robin', 'weighted', 'least_lag', 'least_connections')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE replica_router.routes IS 'Operation classes: where recommend(operation) sends each kind of work';
INSERT INTO replica_router.routes (operation, target) VALUES ('read', 'replica'), ('write', 'primary');
SELECT pg_catalog.pg_extension_config_dump('replica_router.routes', '');

CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON replica_router.routes
    FOR EACH STATEMENT EXECUTE FUNCTION replica_router._nodes_changed();

------------------------------------------------------------------------------
-- Registry functions
------------------------------------------------------------------------------
CREATE FUNCTION replica_router._check_name(what text, value text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF value !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid % "%"', what, left(value, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Each %s is 1 to 63 characters: letters, digits, "_", "-" or ".", starting with a letter or digit.', what),
                  HINT = format('Use a name such as %s.',
                                CASE what WHEN 'zone' THEN '"eu-west" or "zone.2"'
                                          WHEN 'operation' THEN '"dashboard_query" or "user-login"'
                                          ELSE '"replica1" or "eu-west.2"' END);
    END IF;
END
$$;

CREATE FUNCTION replica_router._check_conninfo(name text, conninfo text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text;
BEGIN
    IF conninfo IS NULL THEN
        RAISE EXCEPTION 'connection string must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(conninfo) = '' THEN
        RAISE EXCEPTION 'connection string for replica "%" is empty', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An empty connection string would make the worker connect to this server itself.',
                  HINT = 'Name the replica''s host, e.g. ''host=10.0.0.2 port=5432 dbname=postgres''.';
    END IF;
    IF length(conninfo) >= 1024 THEN
        RAISE EXCEPTION 'connection string for replica "%" is too long', name
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('It is %s characters; the limit is 1023.', length(conninfo));
    END IF;
    problem := replica_router._conninfo_error(conninfo);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid connection string for replica "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = problem,
                  HINT = 'Use libpq syntax, e.g. ''host=10.0.0.2 port=5432 user=replica_router dbname=postgres''.';
    END IF;
END
$$;

CREATE FUNCTION replica_router._check_weight(weight integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF weight IS NULL OR weight < 0 OR weight > 10000 THEN
        RAISE EXCEPTION 'invalid weight %', coalesce(weight::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A weight is an integer from 0 to 10000; 0 drains the replica.';
    END IF;
END
$$;

CREATE FUNCTION replica_router.add_replica(
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
        PERFORM replica_router._check_conninfo(name, pgbouncer);
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
COMMENT ON FUNCTION replica_router.add_replica(text, text, integer, text, text) IS
    'Register a streaming replica (and optionally the pgbouncer admin console in front of it)';

CREATE FUNCTION replica_router.remove_replica(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'replica name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM replica_router.nodes n WHERE n.name = remove_replica.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
END
$$;
COMMENT ON FUNCTION replica_router.remove_replica(text) IS 'Unregister a replica';

CREATE FUNCTION replica_router.alter_replica(
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
        PERFORM replica_router._check_conninfo(name, pgbouncer);
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
COMMENT ON FUNCTION replica_router.alter_replica(text, integer, boolean, text, text, text) IS
    'Change a replica''s weight, enabled flag, zone, connection string or pgbouncer (empty string clears zone and pgbouncer)';

------------------------------------------------------------------------------
-- Routing and status (shared memory)
------------------------------------------------------------------------------
CREATE FUNCTION replica_router.recommend(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL,
    OUT node text, OUT host text, OUT port integer, OUT role text,
    OUT replay_lag interval, OUT lag_bytes bigint, OUT reason text)
RETURNS record
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_recommend';
COMMENT ON FUNCTION replica_router.recommend(text, interval, pg_lsn, text) IS
    'Where to send a query: a healthy, caught-up replica for reads, the primary otherwise';

CREATE FUNCTION replica_router.candidates(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL,
    OUT rank integer, OUT node text, OUT host text, OUT port integer, OUT role text,
    OUT qualified boolean, OUT state text, OUT replay_lag interval, OUT lag_bytes bigint, OUT reason text)
RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_candidates';
COMMENT ON FUNCTION replica_router.candidates(text, interval, pg_lsn, text) IS
    'Every node for an operation: the qualified ones ranked, the others with the reason they were left out';

CREATE FUNCTION replica_router.connection_string(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN count(*) > 0 THEN
               format('host=%s port=%s',
                      string_agg(c.host, ',' ORDER BY c.rank), string_agg(c.port::text, ',' ORDER BY c.rank))
           END
      FROM replica_router.candidates(operation, max_lag, min_lsn, zone) c
     WHERE c.rank IS NOT NULL
$$;
COMMENT ON FUNCTION replica_router.connection_string(text, interval, pg_lsn, text) IS
    'A libpq multi-host "host=a,b port=1,2" string of the qualified nodes, best first';

CREATE FUNCTION replica_router.set_route(
    operation text, target text, max_lag interval DEFAULT NULL, balance text DEFAULT NULL)
RETURNS replica_router.routes
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.routes;
BEGIN
    PERFORM replica_router._check_name('operation', operation);
    IF target IS NULL OR target NOT IN ('primary', 'replica', 'any') THEN
        RAISE EXCEPTION 'invalid route target "%"', coalesce(left(target, 80), 'NULL')
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
COMMENT ON FUNCTION replica_router.set_route(text, text, interval, text) IS
    'Create or replace the route of an operation class';

CREATE FUNCTION replica_router.drop_route(operation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF operation IS NULL THEN
        RAISE EXCEPTION 'operation must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM replica_router.routes r WHERE r.operation = drop_route.operation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'route "%" does not exist', left(operation, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT * FROM replica_router.routes lists the routes.';
    END IF;
END
$$;
COMMENT ON FUNCTION replica_router.drop_route(text) IS 'Remove the route of an operation class';

-- After a write: the LSN to pass as min_lsn so the next read sees it.
CREATE FUNCTION replica_router.write_lsn() RETURNS pg_lsn
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT pg_catalog.pg_current_wal_insert_lsn() $$;
COMMENT ON FUNCTION replica_router.write_lsn() IS
    'The WAL position after this session''s writes: pass it as recommend(min_lsn => ...) to read your writes';

CREATE FUNCTION replica_router._primary(OUT node text, OUT host text, OUT port integer)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'replica_router_primary';

CREATE FUNCTION replica_router._hints(
    OUT node_id integer, OUT node text, OUT host text, OUT port integer, OUT zone text,
    OUT weight integer, OUT enabled boolean, OUT state text, OUT in_recovery boolean,
    OUT replay_paused boolean, OUT receive_lsn pg_lsn, OUT replay_lsn pg_lsn, OUT lag_bytes bigint,
    OUT lag interval, OUT last_replay timestamptz, OUT last_poll timestamptz,
    OUT last_success timestamptz, OUT state_since timestamptz, OUT system_identifier text,
    OUT timeline integer, OUT connections integer, OUT max_connections integer,
    OUT failures integer, OUT error text,
    OUT pool_active integer, OUT pool_idle integer, OUT pool_idle_in_transaction integer,
    OUT pool_waiting integer, OUT reserved_connections integer,
    OUT has_pgbouncer boolean, OUT pgbouncer_ok boolean, OUT pgbouncer_last_success timestamptz,
    OUT pgbouncer_error text, OUT wal_slot_name text, OUT wal_application_name text)
RETURNS SETOF record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_hints';

CREATE FUNCTION replica_router.worker_status(
    OUT pid integer, OUT started_at timestamptz, OUT rounds bigint,
    OUT last_round_start timestamptz, OUT last_round_duration interval,
    OUT polls bigint, OUT poll_failures bigint, OUT hint_writes bigint,
    OUT write_failures bigint, OUT last_error text, OUT last_error_at timestamptz)
RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_worker_status';
COMMENT ON FUNCTION replica_router.worker_status() IS 'The polling worker: pid, rounds, last round, errors';

CREATE VIEW replica_router.status AS
SELECT p.node,
       'primary'::text AS role,
       'healthy'::text AS state,
       p.host,
       p.port,
       NULL::text AS zone,
       '0'::interval AS lag,
       0::double precision AS lag_seconds,
       0::bigint AS lag_bytes,
       pg_catalog.pg_size_pretty(0::bigint) AS lag_size,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
            ELSE pg_catalog.pg_current_wal_lsn() END AS replay_lsn,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'client backend')::integer
           AS connections,
       pg_catalog.current_setting('max_connections')::integer AS max_connections,
       pg_catalog.now() AS last_poll,
       NULL::text AS error
  FROM replica_router._primary() p
UNION ALL
SELECT n.name,
       'replica',
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
  LEFT JOIN replica_router._hints() h ON h.node_id = n.id;
COMMENT ON VIEW replica_router.status IS 'One row per node, the primary first: state, lag, connections, last poll';

------------------------------------------------------------------------------
-- Monitoring: lag, slots, pools, health, metrics
------------------------------------------------------------------------------
CREATE FUNCTION replica_router._pools(
    OUT node_id integer, OUT database text, OUT "user" text, OUT cl_active integer,
    OUT cl_waiting integer, OUT sv_active integer, OUT sv_idle integer, OUT sv_used integer,
    OUT maxwait interval, OUT pool_mode text)
RETURNS SETOF record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_pools';

CREATE FUNCTION replica_router._slots(OUT slot_name text, OUT active boolean, OUT inactive_since timestamptz)
RETURNS SETOF record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_slots';

CREATE FUNCTION replica_router._primary_stats(
    OUT wal_rate double precision, OUT has_pgbouncer boolean, OUT pgbouncer_ok boolean,
    OUT pgbouncer_last_success timestamptz, OUT pgbouncer_error text)
RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_primary_stats';

-- Worst of several severities.
CREATE FUNCTION replica_router._worst(VARIADIC severities text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN 'critical' = ANY (severities) THEN 'critical'
                WHEN 'warning' = ANY (severities) THEN 'warning'
                ELSE 'ok' END
$$;

CREATE FUNCTION replica_router._ms_setting(name text) RETURNS interval
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.current_setting(name)::interval
$$;

-- Each registered replica against its pg_stat_replication row. The row is
-- found through the replication slot the replica's WAL receiver streams
-- from (slot -> walsender pid); without a slot, by the application_name the
-- WAL receiver presents (primary_conninfo's application_name, else
-- cluster_name, else 'walreceiver'), when exactly one walsender has it.
CREATE VIEW replica_router.lag AS
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
            WHEN h.state IN ('down', 'stale', 'promoted', 'foreign') THEN 'critical'
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
COMMENT ON VIEW replica_router.lag IS
    'Replication lag per replica: the primary''s view (pg_stat_replication) beside the worker''s measurements';

CREATE VIEW replica_router.slot_health AS
WITH t AS (SELECT * FROM replica_router._slots()),
     p AS (SELECT * FROM replica_router._primary_stats()),
     h AS (SELECT * FROM replica_router._hints()),
     s AS (
        SELECT s.*,
               CASE WHEN s.restart_lsn IS NULL OR pg_catalog.pg_is_in_recovery() THEN NULL
                    ELSE greatest(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn), 0)::bigint
               END AS retained,
               CASE WHEN s.active THEN NULL ELSE pg_catalog.now() - t.inactive_since END AS inactive_for,
               t.inactive_since,
               pg_catalog.age(s.xmin) AS xmin_age,
               pg_catalog.age(s.catalog_xmin) AS catalog_xmin_age,
               p.wal_rate
          FROM pg_catalog.pg_replication_slots s
          LEFT JOIN t ON t.slot_name = s.slot_name::text
          CROSS JOIN p),
     judged AS (
        SELECT s.*,
               array_remove(ARRAY[
                 CASE WHEN s.wal_status = 'lost' THEN 'critical:WAL needed by the slot was removed' END,
                 CASE WHEN s.wal_status = 'unreserved' THEN 'critical:WAL will be removed at the next checkpoint' END,
                 CASE WHEN s.wal_status = 'extended' THEN 'warning:retains more than max_wal_size' END,
                 CASE WHEN s.retained >= pg_catalog.pg_size_bytes(pg_catalog.current_setting('replica_router.slot_retained_critical'))
                      THEN 'critical:retained WAL over slot_retained_critical'
                      WHEN s.retained >= pg_catalog.pg_size_bytes(pg_catalog.current_setting('replica_router.slot_retained_warning'))
                      THEN 'warning:retained WAL over slot_retained_warning' END,
                 CASE WHEN s.inactive_for >= replica_router._ms_setting('replica_router.slot_inactive_critical')
                      THEN 'critical:inactive over slot_inactive_critical'
                      WHEN s.inactive_for >= replica_router._ms_setting('replica_router.slot_inactive_warning')
                      THEN 'warning:inactive over slot_inactive_warning' END,
                 CASE WHEN greatest(s.xmin_age, s.catalog_xmin_age) >= pg_catalog.current_setting('replica_router.slot_xmin_age_critical')::integer
                      THEN 'critical:xmin holds back vacuum (slot_xmin_age_critical)'
                      WHEN greatest(s.xmin_age, s.catalog_xmin_age) >= pg_catalog.current_setting('replica_router.slot_xmin_age_warning')::integer
                      THEN 'warning:xmin holds back vacuum (slot_xmin_age_warning)' END
               ], NULL) AS findings
          FROM s)
SELECT j.slot_name::text AS slot_name,
       j.slot_type,
       j.database::text AS database,
       j.active,
       j.active_pid,
       (SELECT string_agg(h.node, ', ' ORDER BY h.node) FROM h WHERE h.wal_slot_name = j.slot_name::text) AS replica,
       j.wal_status,
       j.retained AS retained_bytes,
       pg_catalog.pg_size_pretty(j.retained) AS retained,
       j.safe_wal_size,
       pg_catalog.pg_size_pretty(j.safe_wal_size) AS safe_wal_size_pretty,
       j.inactive_since,
       j.inactive_for,
       j.xmin_age,
       j.catalog_xmin_age,
       CASE WHEN j.safe_wal_size IS NOT NULL AND j.wal_rate > 0
            THEN pg_catalog.make_interval(secs => greatest(j.safe_wal_size, 0) / j.wal_rate) END AS time_until_lost,
       replica_router._worst(VARIADIC coalesce(
           (SELECT array_agg(split_part(f, ':', 1)) FROM unnest(j.findings) f), '{}')) AS severity,
       coalesce((SELECT string_agg(substr(f, strpos(f, ':') + 1), '; ') FROM unnest(j.findings) f), '') AS reason
  FROM judged j;
COMMENT ON VIEW replica_router.slot_health IS
    'Replication slots: retained WAL, inactivity (tracked by the worker), xmin age, time until lost, severity';

CREATE VIEW replica_router.pool_state AS
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
     nodes AS (
        SELECT 0 AS ord, (SELECT node FROM replica_router._primary()) AS node, 'primary'::text AS role,
               'healthy'::text AS state, l.total, l.active, l.idle, l.idle_in_transaction, l.waiting_on_locks,
               pg_catalog.current_setting('max_connections')::integer AS max_connections,
               pg_catalog.current_setting('superuser_reserved_connections')::integer
                 + coalesce(pg_catalog.current_setting('reserved_connections', true)::integer, 0) AS reserved,
               0 AS node_id,
               ps.has_pgbouncer,
               ps.pgbouncer_ok, ps.pgbouncer_error
          FROM local l CROSS JOIN ps
        UNION ALL
        SELECT 1, n.name, 'replica', coalesce(h.state, 'unknown'), h.connections, h.pool_active, h.pool_idle,
               h.pool_idle_in_transaction, h.pool_waiting, h.max_connections, h.reserved_connections, n.id,
               n.pgbouncer IS NOT NULL, h.pgbouncer_ok, h.pgbouncer_error
          FROM replica_router.nodes n LEFT JOIN h ON h.node_id = n.id)
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
    'Client connections per node (primary first) and, where registered, its pgbouncer pools';

CREATE VIEW replica_router.pgbouncer_pools AS
SELECT coalesce(n.name, (SELECT node FROM replica_router._primary())) AS node,
       p.database, p."user", p.cl_active, p.cl_waiting, p.sv_active, p.sv_idle, p.sv_used, p.maxwait, p.pool_mode
  FROM replica_router._pools() p
  LEFT JOIN replica_router.nodes n ON n.id = p.node_id
 ORDER BY p.node_id, p.database, p."user";
COMMENT ON VIEW replica_router.pgbouncer_pools IS 'Each pool of each registered pgbouncer (SHOW POOLS)';

CREATE VIEW replica_router.health AS
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
           CASE WHEN NOT (SELECT alive FROM fresh) THEN 'critical' END) AS severity,
       (SELECT count(*) FILTER (WHERE state = 'healthy') FROM l)::integer AS healthy_replicas,
       (SELECT count(*) FROM l)::integer AS registered_replicas,
       (SELECT max(replay_lag) FROM l) AS max_replay_lag,
       (SELECT node FROM l WHERE replay_lag IS NOT NULL ORDER BY replay_lag DESC, node LIMIT 1) AS most_lagging,
       (SELECT alive FROM fresh) AS worker_alive,
       (SELECT pid FROM w) AS worker_pid,
       greatest(pg_catalog.clock_timestamp() - (SELECT last_round_start FROM w), interval '0') AS last_round_age,
       (SELECT last_round_duration FROM w) AS last_round_duration;
COMMENT ON VIEW replica_router.health IS 'One row summing up the cluster: worst severity, healthy replicas, worker freshness';

-- Prometheus label values: backslash, double quote and newline escaped.
CREATE FUNCTION replica_router._label(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT replace(replace(replace(coalesce(value, ''), E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

CREATE FUNCTION replica_router.metrics() RETURNS text
LANGUAGE sql STABLE AS $$
WITH
l AS (SELECT * FROM replica_router.lag),
s AS (SELECT * FROM replica_router.slot_health),
p AS (SELECT * FROM replica_router.pool_state),
w AS (SELECT * FROM replica_router.worker_status()),
hc AS (SELECT * FROM replica_router.health),
sev(name, value) AS (VALUES ('ok', 0), ('warning', 1), ('critical', 2)),
families(ord, name, type, help, samples) AS (
  SELECT 1, 'replica_router_replica_lag_seconds', 'gauge', 'Replay lag of the replica as measured by the worker.',
         (SELECT string_agg(format('replica_router_replica_lag_seconds{node="%s"} %s', replica_router._label(node), replay_lag_seconds), E'\n' ORDER BY node) FROM l WHERE replay_lag_seconds IS NOT NULL)
  UNION ALL
  SELECT 2, 'replica_router_replica_lag_bytes', 'gauge', 'WAL bytes the replica has yet to replay.',
         (SELECT string_agg(format('replica_router_replica_lag_bytes{node="%s"} %s', replica_router._label(node), lag_bytes), E'\n' ORDER BY node) FROM l WHERE lag_bytes IS NOT NULL)
  UNION ALL
  SELECT 3, 'replica_router_replica_up', 'gauge', '1 when the replica is healthy and routable, else 0.',
         (SELECT string_agg(format('replica_router_replica_up{node="%s"} %s', replica_router._label(node), (state = 'healthy')::int), E'\n' ORDER BY node) FROM l)
  UNION ALL
  SELECT 4, 'replica_router_replica_state', 'gauge', 'The replica''s routing state (1 for the current state).',
         (SELECT string_agg(format('replica_router_replica_state{node="%s",state="%s"} 1', replica_router._label(node), replica_router._label(state)), E'\n' ORDER BY node) FROM l)
  UNION ALL
  SELECT 5, 'replica_router_replica_severity', 'gauge', 'Lag severity: 0 ok, 1 warning, 2 critical.',
         (SELECT string_agg(format('replica_router_replica_severity{node="%s"} %s', replica_router._label(node), sev.value), E'\n' ORDER BY node) FROM l JOIN sev ON sev.name = l.severity)
  UNION ALL
  SELECT 6, 'replica_router_slot_retained_bytes', 'gauge', 'WAL retained by the replication slot.',
         (SELECT string_agg(format('replica_router_slot_retained_bytes{slot="%s"} %s', replica_router._label(slot_name), retained_bytes), E'\n' ORDER BY slot_name) FROM s WHERE retained_bytes IS NOT NULL)
  UNION ALL
  SELECT 7, 'replica_router_slot_active', 'gauge', '1 when a walsender uses the slot.',
         (SELECT string_agg(format('replica_router_slot_active{slot="%s"} %s', replica_router._label(slot_name), active::int), E'\n' ORDER BY slot_name) FROM s)
  UNION ALL
  SELECT 8, 'replica_router_slot_status', 'gauge', 'The slot''s wal_status (1 for the current status).',
         (SELECT string_agg(format('replica_router_slot_status{slot="%s",wal_status="%s"} 1', replica_router._label(slot_name), replica_router._label(coalesce(wal_status, 'unknown'))), E'\n' ORDER BY slot_name) FROM s)
  UNION ALL
  SELECT 9, 'replica_router_slot_severity', 'gauge', 'Slot severity: 0 ok, 1 warning, 2 critical.',
         (SELECT string_agg(format('replica_router_slot_severity{slot="%s"} %s', replica_router._label(slot_name), sev.value), E'\n' ORDER BY slot_name) FROM s JOIN sev ON sev.name = s.severity)
  UNION ALL
  SELECT 10, 'replica_router_pool_utilisation_ratio', 'gauge', 'Client connections over usable connection slots.',
         (SELECT string_agg(format('replica_router_pool_utilisation_ratio{node="%s",role="%s"} %s', replica_router._label(node), role, round(utilisation_pct / 100.0, 4)), E'\n' ORDER BY node) FROM p WHERE utilisation_pct IS NOT NULL)
  UNION ALL
  SELECT 11, 'replica_router_pool_waiting_clients', 'gauge', 'Clients waiting for a server connection in pgbouncer.',
         (SELECT string_agg(format('replica_router_pool_waiting_clients{node="%s"} %s', replica_router._label(node), cl_waiting), E'\n' ORDER BY node) FROM p WHERE cl_waiting IS NOT NULL)
  UNION ALL
  SELECT 12, 'replica_router_pool_lock_waiting', 'gauge', 'Client backends waiting on a lock.',
         (SELECT string_agg(format('replica_router_pool_lock_waiting{node="%s"} %s', replica_router._label(node), waiting_on_locks), E'\n' ORDER BY node) FROM p WHERE waiting_on_locks IS NOT NULL)
  UNION ALL
  SELECT 13, 'replica_router_worker_up', 'gauge', '1 when the worker has finished a round recently.',
         format('replica_router_worker_up %s', coalesce((SELECT worker_alive FROM hc), false)::int)
  UNION ALL
  SELECT 14, 'replica_router_worker_round_duration_seconds', 'gauge', 'Duration of the worker''s last poll round.',
         (SELECT format('replica_router_worker_round_duration_seconds %s', extract(epoch FROM last_round_duration)) FROM w WHERE last_round_duration IS NOT NULL)
  UNION ALL
  SELECT 15, 'replica_router_worker_rounds_total', 'counter', 'Poll rounds since the worker started.',
         (SELECT format('replica_router_worker_rounds_total %s', rounds) FROM w)
  UNION ALL
  SELECT 16, 'replica_router_worker_poll_errors_total', 'counter', 'Failed polls since the worker started.',
         (SELECT format('replica_router_worker_poll_errors_total %s', poll_failures) FROM w)
  UNION ALL
  SELECT 17, 'replica_router_worker_write_errors_total', 'counter', 'Failed hint writes since the worker started.',
         (SELECT format('replica_router_worker_write_errors_total %s', write_failures) FROM w)
  UNION ALL
  SELECT 18, 'replica_router_cluster_severity', 'gauge', 'Worst severity over lag, slots, pools and the worker.',
         (SELECT format('replica_router_cluster_severity %s', sev.value) FROM hc JOIN sev ON sev.name = hc.severity)
)
SELECT string_agg(format(E'# HELP %s %s\n# TYPE %s %s%s', name, help, name, type,
                         CASE WHEN samples IS NULL OR samples = '' THEN '' ELSE E'\n' || samples END),
                  E'\n' ORDER BY ord) || E'\n'
  FROM families
$$;
COMMENT ON FUNCTION replica_router.metrics() IS 'Prometheus text exposition of lag, slots, pools and the worker';

------------------------------------------------------------------------------
-- Privileges: everyone may route and look; only admins register nodes.
------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA replica_router FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA replica_router FROM PUBLIC;
GRANT USAGE ON SCHEMA replica_router TO PUBLIC;
GRANT SELECT ON replica_router.routing_hints, replica_router.heartbeat, replica_router.status, replica_router.routes,
    replica_router.lag, replica_router.slot_health, replica_router.pool_state, replica_router.pgbouncer_pools,
    replica_router.health TO PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router.recommend(text, interval, pg_lsn, text),
    replica_router.candidates(text, interval, pg_lsn, text),
    replica_router.connection_string(text, interval, pg_lsn, text), replica_router.write_lsn(),
    replica_router.worker_status(),
    replica_router.mask_conninfo(text), replica_router._hints(), replica_router._primary(),
    replica_router._conninfo_error(text), replica_router.metrics(), replica_router._pools(),
    replica_router._slots(), replica_router._primary_stats(), replica_router._worst(text[]),
    replica_router._ms_setting(text), replica_router._label(text) TO PUBLIC;
GRANT SELECT ON replica_router.nodes TO replica_router_admin;
GRANT EXECUTE ON FUNCTION replica_router.add_replica(text, text, integer, text, text),
    replica_router.remove_replica(text),
    replica_router.alter_replica(text, integer, boolean, text, text, text),
    replica_router.set_route(text, text, interval, text), replica_router.drop_route(text) TO replica_router_admin;

-- Wake the worker once this CREATE EXTENSION commits.
SELECT replica_router._notify_worker();
