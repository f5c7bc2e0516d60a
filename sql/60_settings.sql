-- replica_router SQL surface, part 6: settings that change routing.
-- enabled and fallback_to_primary are reload-only (PGC_SIGHUP): they are
-- changed with ALTER SYSTEM and pg_reload_conf(); the postmaster rereads the
-- configuration when it gets the signal, before it accepts the next
-- connection, so the session reconnects (\c) to see the new values.
\set SHOW_CONTEXT never
\set sqlstate '\\echo SQLSTATE :SQLSTATE'

SELECT name FROM replica_router.add_replica('replica1', 'host=10.0.0.1');

--------------------------------------------------------------------------
-- strict_operations (user-settable): unknown operations are an error.
--------------------------------------------------------------------------
SHOW replica_router.strict_operations;
SET replica_router.strict_operations = on;
SELECT * FROM replica_router.recommend('unknown');
:sqlstate
SELECT * FROM replica_router.candidates('unknown');
:sqlstate
SELECT replica_router.connection_string('unknown');
:sqlstate
SELECT * FROM replica_router.recommend('read');
SELECT * FROM replica_router.recommend('write');
RESET replica_router.strict_operations;
SELECT * FROM replica_router.recommend('unknown');

-- Reload-only and restart-only settings cannot be SET.
SET replica_router.enabled = off;
:sqlstate
SET replica_router.fallback_to_primary = off;
:sqlstate
SET replica_router.database = 'contrib_regression';
:sqlstate
-- Unknown names in the reserved prefix are refused.
SET replica_router.no_such_setting = 1;
:sqlstate

--------------------------------------------------------------------------
-- fallback_to_primary = off: a read no replica can serve is an error with
-- SQLSTATE RR001; writes still go to the primary.
--------------------------------------------------------------------------
ALTER SYSTEM SET replica_router.fallback_to_primary = off;
SELECT pg_reload_conf();
\c
SHOW replica_router.fallback_to_primary;
SELECT * FROM replica_router.recommend('read');
:sqlstate
SELECT * FROM replica_router.recommend();
:sqlstate
SELECT * FROM replica_router.recommend('read', '1 hour', '0/0', 'eu-west');
:sqlstate
SELECT * FROM replica_router.recommend('write');
SELECT * FROM replica_router.recommend('unknown');
-- Argument errors come first.
SELECT * FROM replica_router.recommend(max_lag => '-1s');
:sqlstate
-- Applications catch it by its SQLSTATE.
DO $$
BEGIN
    PERFORM replica_router.recommend('read');
    RAISE NOTICE 'no error';
EXCEPTION WHEN SQLSTATE 'RR001' THEN
    RAISE NOTICE 'caught %: the caller retries on the primary', SQLSTATE;
END
$$;
-- candidates() lists the primary as not qualified.
SELECT * FROM replica_router.candidates('read');
SELECT * FROM replica_router.candidates('write');
-- With no qualified node connection_string() returns NULL.
SELECT replica_router.connection_string('read') AS read, replica_router.connection_string('write') AS write;

--------------------------------------------------------------------------
-- enabled = off: everything goes to the primary, even with fallback off.
--------------------------------------------------------------------------
ALTER SYSTEM SET replica_router.enabled = off;
SELECT pg_reload_conf();
\c
SHOW replica_router.enabled;
SELECT * FROM replica_router.recommend('read');
SELECT * FROM replica_router.recommend('write');
SELECT * FROM replica_router.recommend('unknown');
SELECT * FROM replica_router.recommend('read', '1 second', 'FFFFFFFF/FFFFFFFF', 'eu-west');
-- Arguments are still checked.
SELECT * FROM replica_router.recommend(NULL);
:sqlstate
SELECT * FROM replica_router.recommend(max_lag => '-1s');
:sqlstate
-- candidates() and connection_string() agree with recommend(): with
-- enabled = off the primary is ranked first.
SELECT * FROM replica_router.candidates('read');
SELECT replica_router.connection_string('read');

--------------------------------------------------------------------------
-- primary_pgbouncer: a connection string libpq cannot parse is refused,
-- without quoting a part that may be a password; a valid one is accepted.
--------------------------------------------------------------------------
ALTER SYSTEM SET replica_router.primary_pgbouncer = 'host=127.0.0.1 password=s3cr%t port';
:sqlstate
ALTER SYSTEM SET replica_router.primary_pgbouncer = 'host=127.0.0.1 port';
:sqlstate
ALTER SYSTEM SET replica_router.primary_pgbouncer = 'postgres://u:s3cr%zzt@127.0.0.1:6432/pgbouncer';
:sqlstate
ALTER SYSTEM SET replica_router.primary_pgbouncer = 'host=127.0.0.1 port=6432 dbname=pgbouncer';
ALTER SYSTEM RESET replica_router.primary_pgbouncer;

--------------------------------------------------------------------------
-- Back to the defaults.
--------------------------------------------------------------------------
ALTER SYSTEM RESET replica_router.enabled;
ALTER SYSTEM RESET replica_router.fallback_to_primary;
SELECT pg_reload_conf();
\c
SHOW replica_router.enabled;
SHOW replica_router.fallback_to_primary;
SELECT * FROM replica_router.recommend('read');
SELECT replica_router.connection_string('read');
SELECT replica_router.remove_replica('replica1');
