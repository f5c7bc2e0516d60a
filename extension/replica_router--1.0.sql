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
                CHECK (length(conninfo) < 1024 AND replica_router._conninfo_error(conninfo) IS NULL),
    weight      integer NOT NULL DEFAULT 100
                CONSTRAINT nodes_weight_check CHECK (weight BETWEEN 0 AND 10000),
    enabled     boolean NOT NULL DEFAULT true,
    zone        text
                CONSTRAINT nodes_zone_check CHECK (zone ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
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
    updated_at      timestamptz NOT NULL
);
COMMENT ON TABLE replica_router.routing_hints IS
    'Routing hints per replica, written by the worker when they change and on every heartbeat';

CREATE TABLE replica_router.heartbeat (
    id                boolean PRIMARY KEY DEFAULT true CONSTRAINT heartbeat_one_row CHECK (id),
    primary_time      timestamptz NOT NULL,
    system_identifier text NOT NULL,
    worker_pid        integer
);
COMMENT ON TABLE replica_router.heartbeat IS 'Last heartbeat of the worker, on the primary''s clock';

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
                  DETAIL = format('A %s is 1 to 63 characters: letters, digits, "_", "-" or ".", starting with a letter or digit.', what),
                  HINT = 'Choose a name such as "replica1" or "eu-west.2".';
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
    name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL)
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
    INSERT INTO replica_router.nodes (name, conninfo, weight, zone)
    VALUES (add_replica.name, add_replica.conninfo, add_replica.weight, add_replica.zone)
    RETURNING * INTO result;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    RETURN result;
END
$$;
COMMENT ON FUNCTION replica_router.add_replica(text, text, integer, text) IS 'Register a streaming replica';

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
    zone text DEFAULT NULL, conninfo text DEFAULT NULL)
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
    UPDATE replica_router.nodes n
       SET weight = coalesce(alter_replica.weight, n.weight),
           enabled = coalesce(alter_replica.enabled, n.enabled),
           zone = CASE WHEN alter_replica.zone IS NULL THEN n.zone
                       WHEN alter_replica.zone = '' THEN NULL
                       ELSE alter_replica.zone END,
           conninfo = coalesce(alter_replica.conninfo, n.conninfo),
           updated_at = now()
     WHERE n.name = alter_replica.name
    RETURNING * INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    RETURN result;
END
$$;
COMMENT ON FUNCTION replica_router.alter_replica(text, integer, boolean, text, text) IS
    'Change a replica''s weight, enabled flag, zone (empty string clears it) or connection string';

------------------------------------------------------------------------------
-- Routing and status (shared memory)
------------------------------------------------------------------------------
CREATE FUNCTION replica_router.recommend(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    OUT node text, OUT host text, OUT port integer, OUT role text,
    OUT replay_lag interval, OUT lag_bytes bigint, OUT reason text)
RETURNS record
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_recommend';
COMMENT ON FUNCTION replica_router.recommend(text, interval, pg_lsn) IS
    'Where to send a query: a healthy, caught-up replica for reads, the primary otherwise';

CREATE FUNCTION replica_router._primary(OUT node text, OUT host text, OUT port integer)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'replica_router_primary';

CREATE FUNCTION replica_router._hints(
    OUT node_id integer, OUT node text, OUT host text, OUT port integer, OUT zone text,
    OUT weight integer, OUT enabled boolean, OUT state text, OUT in_recovery boolean,
    OUT replay_paused boolean, OUT receive_lsn pg_lsn, OUT replay_lsn pg_lsn, OUT lag_bytes bigint,
    OUT lag interval, OUT last_replay timestamptz, OUT last_poll timestamptz,
    OUT last_success timestamptz, OUT state_since timestamptz, OUT system_identifier text,
    OUT timeline integer, OUT connections integer, OUT max_connections integer,
    OUT failures integer, OUT error text)
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
-- Privileges: everyone may route and look; only admins register nodes.
------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA replica_router FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA replica_router FROM PUBLIC;
GRANT USAGE ON SCHEMA replica_router TO PUBLIC;
GRANT SELECT ON replica_router.routing_hints, replica_router.heartbeat, replica_router.status TO PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router.recommend(text, interval, pg_lsn), replica_router.worker_status(),
    replica_router.mask_conninfo(text), replica_router._hints(), replica_router._primary(),
    replica_router._conninfo_error(text) TO PUBLIC;
GRANT SELECT ON replica_router.nodes TO replica_router_admin;
GRANT EXECUTE ON FUNCTION replica_router.add_replica(text, text, integer, text),
    replica_router.remove_replica(text),
    replica_router.alter_replica(text, integer, boolean, text, text) TO replica_router_admin;

-- Wake the worker once this CREATE EXTENSION commits.
SELECT replica_router._notify_worker();
