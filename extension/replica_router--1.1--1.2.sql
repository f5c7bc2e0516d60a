-- replica_router 1.1 -> 1.2: who may make the worker connect where.
\echo Use "ALTER EXTENSION replica_router UPDATE TO '1.2'" to load this file. \quit

------------------------------------------------------------------------------
-- Helpers implemented in C
------------------------------------------------------------------------------
-- Raises unless the current user is a superuser or the connection string
-- keeps the rule for everyone else: a password, no server files, no socket.
CREATE FUNCTION replica_router._check_privilege(conninfo text, what text, node text) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'replica_router_check_privilege';
-- NULL when a role that is not a superuser could set this connection string,
-- else why not.
CREATE FUNCTION replica_router._unprivileged_problem(conninfo text) RETURNS text
    LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'replica_router_unprivileged_problem';
-- Errors in this transaction are logged without the statement (it holds a
-- connection string).
CREATE FUNCTION replica_router._hide_statement() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'replica_router_hide_statement';

------------------------------------------------------------------------------
-- Who set each connection string
------------------------------------------------------------------------------
ALTER TABLE replica_router.nodes
    ADD COLUMN conninfo_owner regrole,
    ADD COLUMN pgbouncer_owner regrole;
COMMENT ON COLUMN replica_router.nodes.conninfo_owner IS
    'The role that set conninfo: unless it is a superuser, the worker only connects with the string''s own password';
COMMENT ON COLUMN replica_router.nodes.pgbouncer_owner IS 'The role that set pgbouncer (same rule)';

-- Stamps the role that sets a connection string and applies the rule for
-- roles that are not superusers; the owner columns cannot be set directly.
-- Triggers fire in name order: keep, then conninfo, then pgbouncer.
CREATE FUNCTION replica_router._owner_trigger() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me regrole := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user)::regrole;
BEGIN
    PERFORM replica_router._hide_statement();
    IF TG_ARGV[0] = 'keep' THEN
        NEW.conninfo_owner := OLD.conninfo_owner;
        NEW.pgbouncer_owner := OLD.pgbouncer_owner;
    ELSIF TG_ARGV[0] = 'conninfo' THEN
        PERFORM replica_router._check_privilege(NEW.conninfo, 'connection string', NEW.name);
        NEW.conninfo_owner := me;
    ELSE
        PERFORM replica_router._check_privilege(NEW.pgbouncer, 'pgbouncer connection string', NEW.name);
        NEW.pgbouncer_owner := CASE WHEN NEW.pgbouncer IS NULL THEN NULL ELSE me END;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER nodes_owner_1_keep BEFORE UPDATE ON replica_router.nodes
    FOR EACH ROW EXECUTE FUNCTION replica_router._owner_trigger('keep');
CREATE TRIGGER nodes_owner_2_conninfo BEFORE INSERT OR UPDATE OF conninfo ON replica_router.nodes
    FOR EACH ROW EXECUTE FUNCTION replica_router._owner_trigger('conninfo');
CREATE TRIGGER nodes_owner_3_pgbouncer BEFORE INSERT OR UPDATE OF pgbouncer ON replica_router.nodes
    FOR EACH ROW EXECUTE FUNCTION replica_router._owner_trigger('pgbouncer');

-- Rows registered before 1.2 have no recorded owner: they are treated as set
-- by a role that is not a superuser. Say which of them the worker will refuse.
DO $$
DECLARE
    refused text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s)', n.name,
               coalesce(replica_router._unprivileged_problem(n.conninfo),
                        replica_router._unprivileged_problem(n.pgbouncer))), '; ' ORDER BY n.name)
      INTO refused
      FROM replica_router.nodes n
     WHERE replica_router._unprivileged_problem(n.conninfo) IS NOT NULL
        OR replica_router._unprivileged_problem(n.pgbouncer) IS NOT NULL;
    IF refused IS NOT NULL THEN
        RAISE WARNING 'the replica_router worker will not connect to some registered replicas'
            USING DETAIL = 'Connection strings registered before 1.2 count as set by a role that is not a superuser, '
                           'which must carry a password and name no server file or socket: ' || refused,
                  HINT = 'Check them; then a superuser vouches for them with '
                         'UPDATE replica_router.nodes SET conninfo = conninfo, pgbouncer = pgbouncer WHERE name IN (...);';
    END IF;
END
$$;

-- Lengths in bytes (the worker keeps 1023), and no control characters (the
-- C check). Rows that break the new rules are kept, and said.
ALTER TABLE replica_router.nodes DROP CONSTRAINT nodes_conninfo_check;
ALTER TABLE replica_router.nodes ADD CONSTRAINT nodes_conninfo_check
    CHECK (octet_length(conninfo) < 1024 AND btrim(conninfo) <> ''
           AND replica_router._conninfo_error(conninfo) IS NULL) NOT VALID;
ALTER TABLE replica_router.nodes DROP CONSTRAINT nodes_pgbouncer_check;
ALTER TABLE replica_router.nodes ADD CONSTRAINT nodes_pgbouncer_check
    CHECK (octet_length(pgbouncer) < 1024 AND replica_router._conninfo_error(pgbouncer) IS NULL) NOT VALID;
DO $$
BEGIN
    ALTER TABLE replica_router.nodes VALIDATE CONSTRAINT nodes_conninfo_check;
    ALTER TABLE replica_router.nodes VALIDATE CONSTRAINT nodes_pgbouncer_check;
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'some registered connection strings break the checks of replica_router 1.2'
        USING DETAIL = 'They are longer than 1023 bytes, contain a control character, or have an invalid port or option value.',
              HINT = 'Correct them with replica_router.alter_replica(); the worker does not use a string longer than 1023 bytes.';
END
$$;

-- Route lags from 0 to one year (larger ones overflowed the worker's reads).
UPDATE replica_router.routes SET max_lag = interval '365 days' WHERE max_lag > interval '365 days';
ALTER TABLE replica_router.routes DROP CONSTRAINT routes_max_lag_check;
ALTER TABLE replica_router.routes ADD CONSTRAINT routes_max_lag_check
    CHECK (max_lag >= interval '0' AND max_lag <= interval '365 days');

------------------------------------------------------------------------------
-- Registry functions: run as the caller, so the owner triggers see who it is
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION replica_router._check_conninfo(name text, conninfo text, what text DEFAULT 'connection string')
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
    IF octet_length(conninfo) >= 1024 THEN
        RAISE EXCEPTION '% for replica "%" is too long', what, name
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('It is %s bytes; the limit is 1023.', octet_length(conninfo));
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

CREATE OR REPLACE FUNCTION replica_router.add_replica(
    name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
    capacity integer;
BEGIN
    PERFORM replica_router._assert_writable();
    PERFORM replica_router._hide_statement();
    PERFORM replica_router._assert_preloaded();
    capacity := current_setting('replica_router.max_replicas')::integer;
    PERFORM replica_router._check_name('replica name', name);
    PERFORM replica_router._check_conninfo(name, conninfo);
    PERFORM replica_router._check_weight(weight);
    IF zone IS NOT NULL THEN
        PERFORM replica_router._check_name('zone', zone);
    END IF;
    IF pgbouncer IS NOT NULL THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
    END IF;
    -- The owner trigger checks this too; here it fails before an id is used.
    PERFORM replica_router._check_privilege(conninfo, 'connection string', name);
    PERFORM replica_router._check_privilege(pgbouncer, 'pgbouncer connection string', name);
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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
BEGIN
    PERFORM replica_router._assert_writable();
    PERFORM replica_router._hide_statement();
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
        PERFORM replica_router._check_privilege(conninfo, 'connection string', name);
    END IF;
    IF pgbouncer IS NOT NULL AND pgbouncer <> '' THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
        PERFORM replica_router._check_privilege(pgbouncer, 'pgbouncer connection string', name);
    END IF;
    UPDATE replica_router.nodes n
       SET weight = coalesce(alter_replica.weight, n.weight),
           enabled = coalesce(alter_replica.enabled, n.enabled),
           zone = CASE WHEN alter_replica.zone IS NULL THEN n.zone
                       WHEN alter_replica.zone = '' THEN NULL
                       ELSE alter_replica.zone END,
           updated_at = now()
     WHERE n.name = alter_replica.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
    -- A connection string is in the SET list only when it is given: that is
    -- what records the caller as its owner.
    IF conninfo IS NOT NULL THEN
        UPDATE replica_router.nodes n SET conninfo = alter_replica.conninfo WHERE n.name = alter_replica.name;
    END IF;
    IF pgbouncer IS NOT NULL THEN
        UPDATE replica_router.nodes n SET pgbouncer = nullif(alter_replica.pgbouncer, '')
         WHERE n.name = alter_replica.name;
    END IF;
    SELECT * INTO result FROM replica_router.nodes n WHERE n.name = alter_replica.name;
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
    PERFORM replica_router._assert_writable();
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
    IF max_lag < interval '0' OR max_lag > interval '365 days' THEN
        RAISE EXCEPTION 'max_lag must be between 0 and 365 days' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The given max_lag is %s.', max_lag),
            HINT = 'Leave max_lag out (NULL) for the replica_router.max_lag setting.';
    END IF;
    IF balance IS NOT NULL AND balance NOT IN ('round_robin', 'weighted', 'least_lag', 'least_connections') THEN
        RAISE EXCEPTION 'invalid balancing method "%"', left(balance, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Balancing is round_robin, weighted, least_lag or least_connections.';
    END IF;
    -- Shared memory keeps 128 routes: a 129th is refused, never dropped.
    LOCK TABLE replica_router.routes IN SHARE ROW EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT FROM replica_router.routes r WHERE r.operation = set_route.operation)
       AND (SELECT count(*) FROM replica_router.routes) >= 128 THEN
        RAISE EXCEPTION 'cannot create route "%": there are already 128 routes', operation
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Drop a route with replica_router.drop_route(), or give several operations one name.';
    END IF;
    INSERT INTO replica_router.routes AS r (operation, target, max_lag, balance)
    VALUES (set_route.operation, set_route.target, set_route.max_lag, set_route.balance)
    ON CONFLICT ON CONSTRAINT routes_pkey DO UPDATE
       SET target = EXCLUDED.target, max_lag = EXCLUDED.max_lag, balance = EXCLUDED.balance, updated_at = now()
    RETURNING * INTO result;
    RETURN result;
END
$$;

------------------------------------------------------------------------------
-- Search-path safety: SQL bodies that are inlined or parsed at call time
-- resolve every function and operator in pg_catalog.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION replica_router._worst(VARIADIC severities text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN 'critical' OPERATOR(pg_catalog.=) ANY (severities) THEN 'critical'
                WHEN 'warning' OPERATOR(pg_catalog.=) ANY (severities) THEN 'warning'
                ELSE 'ok' END
$$;

CREATE OR REPLACE FUNCTION replica_router._label(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(coalesce(value, ''),
               E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

ALTER FUNCTION replica_router.metrics() SET search_path = pg_catalog, pg_temp;

-- A value as libpq reads it: quoted when it is empty or holds a space, a
-- quote or a backslash (a host of '10.0.0.1 sslmode=disable' stays one value).
CREATE FUNCTION replica_router._conninfo_value(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value OPERATOR(pg_catalog.=) '' OR value OPERATOR(pg_catalog.~) E'[\\s''\\\\]'
                THEN '''' OPERATOR(pg_catalog.||)
                     pg_catalog.replace(pg_catalog.replace(value, E'\\', E'\\\\'), '''', E'\\''')
                     OPERATOR(pg_catalog.||) ''''
                ELSE value END
$$;

-- connection_string() in C, from shared memory like recommend() and
-- candidates() (the same ranking; values quoted as _conninfo_value() does).
-- Replacing the SQL function keeps its grants and comment; having no SET
-- clause, it also no longer runs with a search_path of its own (it resolves
-- nothing by name).
CREATE OR REPLACE FUNCTION replica_router.connection_string(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL)
RETURNS text
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_connection_string';

------------------------------------------------------------------------------
-- The replica states, from the library's one table: the lag view (and so
-- health, metrics() and the check command) judge states as the worker does.
------------------------------------------------------------------------------
CREATE FUNCTION replica_router.states(
    OUT state text, OUT severity text, OUT lag_judged boolean, OUT routable boolean, OUT meaning text)
RETURNS SETOF record LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'replica_router_states';
COMMENT ON FUNCTION replica_router.states() IS
    'Each routing state: its severity, whether lag thresholds also judge it, whether reads go there, what it means';

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
            ELSE replica_router._worst(
                     st.severity,
                     CASE WHEN st.lag_judged AND h.lag >= replica_router._ms_setting('replica_router.lag_critical')
                          THEN 'critical'
                          WHEN st.lag_judged AND (h.lag >= replica_router._ms_setting('replica_router.lag_warning')
                                                  OR h.replay_paused)
                          THEN 'warning' END)
       END AS severity,
       h.last_poll,
       h.error
  FROM replica_router.nodes n
  LEFT JOIN h ON h.node_id = n.id
  LEFT JOIN replica_router.states() st
         ON st.state = coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END)
  LEFT JOIN LATERAL (
        SELECT sr.* FROM sr
         WHERE (h.wal_slot_name IS NOT NULL AND sr.via_slot = h.wal_slot_name)
            OR (h.wal_slot_name IS NULL AND sr.application_name = h.wal_application_name AND sr.same_name = 1)
         LIMIT 1) m ON true;

------------------------------------------------------------------------------
-- worker_status() says when the registry or routes cannot be read, and the
-- health view is critical then.
------------------------------------------------------------------------------
DROP VIEW replica_router.health;
DROP FUNCTION replica_router.worker_status();
CREATE FUNCTION replica_router.worker_status(
    OUT pid integer, OUT started_at timestamptz, OUT rounds bigint,
    OUT last_round_start timestamptz, OUT last_round_duration interval,
    OUT polls bigint, OUT poll_failures bigint, OUT hint_writes bigint,
    OUT write_failures bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT registry_problem text)
RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_router_worker_status';
COMMENT ON FUNCTION replica_router.worker_status() IS
    'The polling worker: pid, rounds, last round, errors, and why the registry or routes could not be read';

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
           CASE WHEN NOT (SELECT alive FROM fresh) THEN 'critical' END,
           CASE WHEN (SELECT registry_problem FROM w) IS NOT NULL THEN 'critical' END) AS severity,
       (SELECT count(*) FILTER (WHERE state = 'healthy') FROM l)::integer AS healthy_replicas,
       (SELECT count(*) FROM l)::integer AS registered_replicas,
       (SELECT max(replay_lag) FROM l) AS max_replay_lag,
       (SELECT node FROM l WHERE replay_lag IS NOT NULL ORDER BY replay_lag DESC, node LIMIT 1) AS most_lagging,
       (SELECT alive FROM fresh) AS worker_alive,
       (SELECT pid FROM w) AS worker_pid,
       greatest(pg_catalog.clock_timestamp() - (SELECT last_round_start FROM w), interval '0') AS last_round_age,
       (SELECT last_round_duration FROM w) AS last_round_duration,
       (SELECT registry_problem FROM w) AS registry_problem;
COMMENT ON VIEW replica_router.health IS
    'One row summing up the cluster: worst severity, healthy replicas, worker freshness, registry problems';

------------------------------------------------------------------------------
-- Members (1.2): the registry lists the cluster's members, the primary
-- included; roles are found by polling. A worker runs on every node.
------------------------------------------------------------------------------
-- Registry changes run on the primary; on a standby they say so instead of
-- failing on the first lock.
CREATE FUNCTION replica_router._assert_writable() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'the replica_router registry can only be changed on the primary'
            USING ERRCODE = 'read_only_sql_transaction',
                  DETAIL = 'This server is a standby; registry and route changes reach it by replication.',
                  HINT = 'Run it on the primary: SELECT host, port FROM replica_router.recommend(''write'') names it.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION replica_router.remove_replica(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM replica_router._assert_writable();
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

CREATE OR REPLACE FUNCTION replica_router.drop_route(operation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM replica_router._assert_writable();
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

-- The member names; add_replica and friends stay as compatible names.
CREATE FUNCTION replica_router.add_node(
    name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT * FROM replica_router.add_replica(name, conninfo, weight, zone, pgbouncer);
END;
COMMENT ON FUNCTION replica_router.add_node(text, text, integer, text, text) IS
    'Register a member of the cluster (the primary or a standby: its role is found by polling)';
CREATE FUNCTION replica_router.alter_node(
    name text, weight integer DEFAULT NULL, enabled boolean DEFAULT NULL,
    zone text DEFAULT NULL, conninfo text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT * FROM replica_router.alter_replica(name, weight, enabled, zone, conninfo, pgbouncer);
END;
COMMENT ON FUNCTION replica_router.alter_node(text, integer, boolean, text, text, text) IS
    'Change a member''s weight, enabled flag, zone, connection string or pgbouncer console';
CREATE FUNCTION replica_router.remove_node(name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT replica_router.remove_replica(name);
END;
COMMENT ON FUNCTION replica_router.remove_node(text) IS 'Unregister a member';

-- status: a member's role is what polling found; the primary's own row comes
-- from its member entry when the primary is registered, else from this
-- node's view of it (never a standby calling itself the primary).
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
  LEFT JOIN replica_router._hints() h ON h.node_id OPERATOR(pg_catalog.=) n.id;
COMMENT ON VIEW replica_router.status IS
    'One row per member, the primary first (from this node''s polls): role, state, lag, connections, last poll';

REVOKE ALL ON FUNCTION replica_router._assert_writable(), replica_router.add_node(text, text, integer, text, text),
    replica_router.alter_node(text, integer, boolean, text, text, text), replica_router.remove_node(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router._assert_writable(), replica_router.add_node(text, text, integer, text, text),
    replica_router.alter_node(text, integer, boolean, text, text, text), replica_router.remove_node(text)
    TO replica_router_admin;

------------------------------------------------------------------------------
-- Privileges. Members of replica_router_admin write the registry themselves
-- (the functions run as the caller); the triggers and checks hold for any path.
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION replica_router._check_privilege(text, text, text), replica_router._unprivileged_problem(text),
    replica_router._hide_statement(), replica_router._owner_trigger(), replica_router.worker_status(),
    replica_router.states(),
    replica_router._conninfo_value(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router.worker_status(), replica_router._conninfo_value(text),
    replica_router.states() TO PUBLIC;
GRANT SELECT ON replica_router.health TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON replica_router.nodes TO replica_router_admin;
GRANT EXECUTE ON FUNCTION replica_router._check_privilege(text, text, text), replica_router._hide_statement(),
    replica_router._assert_preloaded(), replica_router._check_name(text, text),
    replica_router._check_conninfo(text, text, text), replica_router._check_weight(integer)
    TO replica_router_admin;

SELECT replica_router._notify_worker();

------------------------------------------------------------------------------
-- BEGIN issue #12 (slow replicas, max_lag at answer time, 1.1 findings).
-- The `slow` state comes from the library through states(). A replica that
-- cannot be reached shows no gaps: its last positions say nothing now (the
-- lag view's receive_gap_bytes and replay_gap_bytes are NULL when lag_bytes
-- is). health.most_lagging names a replica only when some lag is above 0.
------------------------------------------------------------------------------
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
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() AND h.receive_lsn IS NOT NULL AND h.lag_bytes IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), h.receive_lsn), 0)::bigint
       END AS receive_gap_bytes,
       CASE WHEN h.receive_lsn IS NOT NULL AND h.replay_lsn IS NOT NULL AND h.lag_bytes IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(h.receive_lsn, h.replay_lsn), 0)::bigint
       END AS replay_gap_bytes,
       h.replay_paused,
       CASE WHEN NOT n.enabled THEN 'ok'
            ELSE replica_router._worst(
                     st.severity,
                     CASE WHEN st.lag_judged AND h.lag >= replica_router._ms_setting('replica_router.lag_critical')
                          THEN 'critical'
                          WHEN st.lag_judged AND (h.lag >= replica_router._ms_setting('replica_router.lag_warning')
                                                  OR h.replay_paused)
                          THEN 'warning' END)
       END AS severity,
       h.last_poll,
       h.error
  FROM replica_router.nodes n
  LEFT JOIN h ON h.node_id = n.id
  LEFT JOIN replica_router.states() st
         ON st.state = coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END)
  LEFT JOIN LATERAL (
        SELECT sr.* FROM sr
         WHERE (h.wal_slot_name IS NOT NULL AND sr.via_slot = h.wal_slot_name)
            OR (h.wal_slot_name IS NULL AND sr.application_name = h.wal_application_name AND sr.same_name = 1)
         LIMIT 1) m ON true;

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
       (SELECT count(*) FROM l)::integer AS registered_replicas,
       (SELECT max(replay_lag) FROM l) AS max_replay_lag,
       (SELECT node FROM l WHERE replay_lag > interval '0' ORDER BY replay_lag DESC, node LIMIT 1) AS most_lagging,
       (SELECT alive FROM fresh) AS worker_alive,
       (SELECT pid FROM w) AS worker_pid,
       greatest(pg_catalog.clock_timestamp() - (SELECT last_round_start FROM w), interval '0') AS last_round_age,
       (SELECT last_round_duration FROM w) AS last_round_duration,
       (SELECT registry_problem FROM w) AS registry_problem;
COMMENT ON VIEW replica_router.health IS
    'One row summing up the cluster: worst severity, healthy replicas, worker freshness, registry problems';
-- END issue #12 (slow replicas, max_lag at answer time, 1.1 findings).
