-- replica_router SQL surface, part 0: installation and the test harness.
--
-- pg_regress created the extension in contrib_regression (--load-extension);
-- test/regress.conf runs the worker in database postgres, so the worker
-- never sees this registry and never publishes hints: every node stays
-- 'unknown' and reads fall back to the primary.
\set SHOW_CONTEXT never
SELECT extname, extversion, extnamespace::regnamespace AS schema, extrelocatable
  FROM pg_extension WHERE extname = 'replica_router';
SELECT current_setting('replica_router.database') AS worker_database,
       current_setting('replica_router.max_replicas') AS max_replicas,
       current_setting('replica_router.primary_host') AS primary_host,
       current_setting('replica_router.primary_port') AS primary_port;

-- Every object of the extension.
\dx+ replica_router

-- Creating it again is refused.
CREATE EXTENSION replica_router;
\echo SQLSTATE :SQLSTATE

-- Dropping and re-creating works; outside the worker's database it warns.
-- The admin role is not part of the extension and survives the drop.
DROP EXTENSION replica_router;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'replica_router_admin';
CREATE EXTENSION replica_router;
SELECT count(*) AS nodes FROM replica_router.nodes;
SELECT operation, target, max_lag, balance FROM replica_router.routes ORDER BY operation;

-- Test helpers (schema rr_test, used by the later files).
CREATE SCHEMA rr_test;
-- The registry's rows and its identity sequence: a failed call must leave
-- both as they were (validation before INSERT, so no id is used up).
CREATE FUNCTION rr_test.fingerprint() RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(coalesce((SELECT string_agg(n::text, '|' ORDER BY n.id) FROM replica_router.nodes n), '')
               || '#' || (SELECT last_value::text || '/' || is_called::text FROM replica_router.nodes_id_seq))
$$;
-- Message, detail and hint of the error a statement raises (for leak checks).
CREATE FUNCTION rr_test.error_text(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    msg text; det text; hnt text; st text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', st, msg, det, hnt);
END
$$;
-- Injection strings below try to drop this table or create a role.
CREATE TABLE rr_test.victim (id integer);
INSERT INTO rr_test.victim VALUES (1);
GRANT USAGE ON SCHEMA rr_test TO PUBLIC;
GRANT EXECUTE ON FUNCTION rr_test.fingerprint() TO PUBLIC;
