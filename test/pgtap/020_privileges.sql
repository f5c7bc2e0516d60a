-- Privileges: everyone may route and look; members of replica_router_admin
-- register nodes; SECURITY DEFINER functions pin their search_path.
BEGIN;
SELECT plan(59);

CREATE ROLE rr_tap_plain LOGIN;
CREATE ROLE rr_tap_admin LOGIN IN ROLE replica_router_admin;

--------------------------------------------------------------------------
-- PUBLIC
--------------------------------------------------------------------------
SELECT schema_privs_are('replica_router', 'public', ARRAY['USAGE']);

SELECT function_privs_are('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'candidates', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'connection_string', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'worker_status', ARRAY[]::name[], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'write_lsn', ARRAY[]::name[], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'mask_conninfo', ARRAY['text'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'metrics', ARRAY[]::name[], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'snapshot', ARRAY[]::name[], 'public', ARRAY['EXECUTE']);

SELECT table_privs_are('replica_router', 'routing_hints', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'heartbeat', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'status', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'routes', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'lag', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'health', 'public', ARRAY['SELECT']);
SELECT table_privs_are('replica_router', 'nodes', 'public', ARRAY[]::name[]);
SELECT sequence_privs_are('replica_router', 'nodes_id_seq', 'public', ARRAY[]::name[]);

SELECT function_privs_are('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', 'remove_replica', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', 'alter_replica', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', 'set_route', ARRAY['text', 'text', 'interval', 'text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', 'drop_route', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', '_check_conninfo', ARRAY['text', 'text', 'text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', '_notify_worker', ARRAY[]::name[], 'public', ARRAY[]::name[]);
SELECT function_privs_are('replica_router', '_assert_preloaded', ARRAY[]::name[], 'public', ARRAY[]::name[]);

--------------------------------------------------------------------------
-- replica_router_admin
--------------------------------------------------------------------------
SELECT function_privs_are('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text'], 'replica_router_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'remove_replica', ARRAY['text'], 'replica_router_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('replica_router', 'alter_replica', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text'], 'replica_router_admin', ARRAY['EXECUTE']);
SELECT table_privs_are('replica_router', 'nodes', 'replica_router_admin', ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']);

--------------------------------------------------------------------------
-- A plain login role
--------------------------------------------------------------------------
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; SELECT replica_router.add_replica('tap1', 'host=127.0.0.1 port=1'); RESET ROLE$$,
                 '42501', 'permission denied for function add_replica', 'a plain role cannot add_replica');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; SELECT replica_router.alter_replica('tap1', weight => 1); RESET ROLE$$,
                 '42501', 'permission denied for function alter_replica', 'a plain role cannot alter_replica');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; SELECT replica_router.remove_replica('tap1'); RESET ROLE$$,
                 '42501', 'permission denied for function remove_replica', 'a plain role cannot remove_replica');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; SELECT count(*) FROM replica_router.nodes; RESET ROLE$$,
                 '42501', 'permission denied for table nodes', 'a plain role cannot read the registry');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; INSERT INTO replica_router.nodes (name, conninfo) VALUES ('tap1', 'host=x'); RESET ROLE$$,
                 '42501', NULL, 'a plain role cannot write the registry');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_plain; DELETE FROM replica_router.routing_hints; RESET ROLE$$,
                 '42501', NULL, 'a plain role cannot write routing_hints');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_plain; SELECT * FROM replica_router.recommend(); RESET ROLE$$,
                'a plain role can call recommend()');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_plain; SELECT * FROM replica_router.worker_status(); RESET ROLE$$,
                'a plain role can call worker_status()');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_plain;
                  SELECT * FROM replica_router.status, replica_router.routing_hints, replica_router.heartbeat; RESET ROLE$$,
                'a plain role can read status, routing_hints and heartbeat');
SELECT is(current_user, 'postgres', 'back to the test''s own role');

--------------------------------------------------------------------------
-- A member of replica_router_admin
--------------------------------------------------------------------------
SELECT lives_ok($$SET LOCAL ROLE rr_tap_admin;
                  SELECT replica_router.add_replica('tap1', 'host=127.0.0.1 port=1 password=S3cret'); RESET ROLE$$,
                'an admin member can add_replica');
SELECT is((SELECT conninfo FROM replica_router.nodes WHERE name = 'tap1'), 'host=127.0.0.1 port=1 password=S3cret',
          'the registry keeps the connection string as given');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_admin; SELECT replica_router.alter_replica('tap1', weight => 7); RESET ROLE$$,
                'an admin member can alter_replica');
SELECT is((SELECT weight FROM replica_router.nodes WHERE name = 'tap1'), 7, 'the weight was changed');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_admin; SELECT count(*) FROM replica_router.nodes; RESET ROLE$$,
                'an admin member can read the registry');
SELECT throws_ok($$SET LOCAL ROLE rr_tap_admin; TRUNCATE replica_router.nodes; RESET ROLE$$,
                 '42501', NULL, 'an admin member cannot truncate the registry');
SELECT lives_ok($$SET LOCAL ROLE rr_tap_admin; SELECT replica_router.remove_replica('tap1'); RESET ROLE$$,
                'an admin member can remove_replica');
SELECT is_empty($$SELECT 1 FROM replica_router.nodes WHERE name = 'tap1'$$, 'the replica is gone');
SELECT is(current_user, 'postgres', 'back to the test''s own role');

--------------------------------------------------------------------------
-- SECURITY DEFINER functions
--------------------------------------------------------------------------
SELECT set_eq($$SELECT proname::text FROM pg_proc WHERE pronamespace = 'replica_router'::regnamespace AND prosecdef$$,
              ARRAY['remove_replica', 'set_route', 'drop_route'],
              'exactly remove_replica and the route functions are SECURITY DEFINER (add and alter run as the caller, so the registry records who set a connection string)');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'replica_router'::regnamespace AND p.prosecdef
                    AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
                'every SECURITY DEFINER function has search_path = pg_catalog, pg_temp');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'replica_router.add_replica(text, text, integer, text, text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'add_replica: search_path pinned');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'replica_router.alter_replica(text, integer, boolean, text, text, text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'alter_replica: search_path pinned');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'replica_router.remove_replica(text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'remove_replica: search_path pinned');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'replica_router.set_route(text, text, interval, text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'set_route: search_path pinned');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'replica_router.drop_route(text)'::regprocedure),
          ARRAY['search_path=pg_catalog, pg_temp'], 'drop_route: search_path pinned');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'replica_router'::regnamespace AND p.prosecdef
                    AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
                'no SECURITY DEFINER function is executable by PUBLIC');
-- A caller's search_path cannot hijack them: an admin member who shadows
-- now() and the registry in their own schema still gets the real thing.
CREATE SCHEMA rr_tap_evil AUTHORIZATION rr_tap_admin;
SELECT lives_ok($$SET LOCAL ROLE rr_tap_admin;
                  CREATE FUNCTION rr_tap_evil.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT ''2000-01-01''::timestamptz';
                  CREATE TABLE rr_tap_evil.nodes (LIKE replica_router.nodes);
                  SET LOCAL search_path = rr_tap_evil, pg_catalog, public;
                  SELECT replica_router.add_replica('tap2', 'host=127.0.0.1 port=1 password=x');
                  SELECT replica_router.alter_replica('tap2', weight => 3);
                  RESET ROLE$$,
                'admin member registers with a hostile search_path');
SELECT results_eq($$SELECT weight, updated_at > '2000-01-02' FROM replica_router.nodes WHERE name = 'tap2'$$,
                  $$VALUES (3, true)$$, 'the real registry and the real now() were used');
SELECT is_empty($$SELECT 1 FROM rr_tap_evil.nodes$$, 'the shadow table was not touched');

SELECT * FROM finish();
ROLLBACK;
