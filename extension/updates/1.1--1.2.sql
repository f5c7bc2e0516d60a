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
-- @include objects/_check_conninfo.sql

-- @include objects/add_replica.sql

-- @include objects/alter_replica.sql

-- @include objects/set_route.sql

------------------------------------------------------------------------------
-- Search-path safety: SQL bodies that are inlined or parsed at call time
-- resolve every function and operator in pg_catalog.
------------------------------------------------------------------------------
-- @include objects/_worst.sql

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
-- @include objects/connection_string.sql

------------------------------------------------------------------------------
-- The replica states, from the library's one table: the lag view (and so
-- health, metrics() and the check command) judge states as the worker does.
------------------------------------------------------------------------------
CREATE FUNCTION replica_router.states(
    OUT state text, OUT severity text, OUT lag_judged boolean, OUT routable boolean, OUT meaning text)
RETURNS SETOF record LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'replica_router_states';
COMMENT ON FUNCTION replica_router.states() IS
    'Each routing state: its severity, whether lag thresholds also judge it, whether reads go there, what it means';

-- @include objects/lag.sql

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

-- @include objects/health.sql

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

-- @include objects/remove_replica.sql

-- @include objects/drop_route.sql

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
-- @include objects/status.sql

-- pool_state: one row per node. The primary's row is its member entry when
-- the primary is registered (it was listed twice), and a standby no longer
-- shows its own connection counts under the primary's name.
-- @include objects/pool_state.sql

REVOKE ALL ON FUNCTION replica_router._assert_writable(), replica_router.add_node(text, text, integer, text, text),
    replica_router.alter_node(text, integer, boolean, text, text, text), replica_router.remove_node(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router._assert_writable(), replica_router.add_node(text, text, integer, text, text),
    replica_router.alter_node(text, integer, boolean, text, text, text), replica_router.remove_node(text)
    TO replica_router_admin;

------------------------------------------------------------------------------
-- Metrics follow Prometheus' conventions (the families of replica_router
-- serve's /metrics; CHANGELOG.md lists the renamed series), rendered in C from
-- one JSON document of the views.
------------------------------------------------------------------------------
-- Whether this server is the elected primary: primary, standby, unelected or unknown.
CREATE FUNCTION replica_router._source_role() RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'replica_router_source_role';

-- @include objects/snapshot.sql

-- @include objects/metrics.sql

-- Label escaping moved into the renderer with the old SQL body.
DROP FUNCTION replica_router._label(text);

------------------------------------------------------------------------------
-- Privileges. Members of replica_router_admin write the registry themselves
-- (the functions run as the caller); the triggers and checks hold for any path.
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION replica_router._check_privilege(text, text, text), replica_router._unprivileged_problem(text),
    replica_router._hide_statement(), replica_router._owner_trigger(), replica_router.worker_status(),
    replica_router.states(),
    replica_router._conninfo_value(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION replica_router.worker_status(), replica_router._conninfo_value(text),
    replica_router.states(), replica_router.snapshot(), replica_router.metrics(), replica_router._source_role() TO PUBLIC;
GRANT SELECT ON replica_router.health TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON replica_router.nodes TO replica_router_admin;
GRANT EXECUTE ON FUNCTION replica_router._check_privilege(text, text, text), replica_router._hide_statement(),
    replica_router._assert_preloaded(), replica_router._check_name(text, text),
    replica_router._check_conninfo(text, text, text), replica_router._check_weight(integer)
    TO replica_router_admin;

SELECT replica_router._notify_worker();
