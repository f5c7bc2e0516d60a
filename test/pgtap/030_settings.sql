-- replica_router.* settings at their defaults (the pgTAP cluster sets only
-- shared_preload_libraries), and who may change them when.
BEGIN;
SELECT plan(22);

SELECT is(current_setting('replica_router.poll_interval'), '250ms', 'poll_interval defaults to 250ms');
SELECT is(current_setting('replica_router.connect_timeout'), '2s', 'connect_timeout defaults to 2s');
SELECT is(current_setting('replica_router.query_timeout'), '1s', 'query_timeout defaults to 1s');
SELECT is(current_setting('replica_router.max_lag'), '30s', 'max_lag defaults to 30s');
SELECT is(current_setting('replica_router.stale_after'), '3s', 'stale_after defaults to 3s');
SELECT is(current_setting('replica_router.enabled'), 'on', 'enabled defaults to on');
SELECT is(current_setting('replica_router.fallback_to_primary'), 'on', 'fallback_to_primary defaults to on');
SELECT is(current_setting('replica_router.heartbeat'), '1min', 'heartbeat defaults to 1min');
SELECT is(current_setting('replica_router.max_replicas'), '64', 'max_replicas defaults to 64');
SELECT is(current_setting('replica_router.database'), 'postgres', 'database defaults to postgres');
SELECT is(current_setting('replica_router.primary_host'), '', 'primary_host defaults to empty (listen_addresses)');
SELECT is(current_setting('replica_router.primary_port'), '0', 'primary_port defaults to 0 (this server''s port)');
SELECT is(current_setting('replica_router.primary_name'), 'primary', 'primary_name defaults to primary');
SELECT is(current_setting('replica_router.strict_operations'), 'off', 'strict_operations defaults to off');
SELECT is(current_setting('replica_router.balance'), 'round_robin', 'balance defaults to round_robin');

SELECT is_empty($$SELECT name FROM pg_settings WHERE name LIKE 'replica_router.%' AND setting IS DISTINCT FROM boot_val$$,
                'every replica_router setting is at its built-in default');
SELECT results_eq($$SELECT name::text, context::text FROM pg_settings
                     WHERE name IN ('replica_router.database', 'replica_router.max_replicas',
                                    'replica_router.enabled', 'replica_router.fallback_to_primary',
                                    'replica_router.strict_operations')
                     ORDER BY name$$,
                  $$VALUES ('replica_router.database'::text, 'postmaster'::text),
                           ('replica_router.enabled', 'sighup'),
                           ('replica_router.fallback_to_primary', 'sighup'),
                           ('replica_router.max_replicas', 'postmaster'),
                           ('replica_router.strict_operations', 'user')$$,
                  'when the main settings can change');
SELECT throws_ok($$SET replica_router.enabled = off$$, '55P02', NULL, 'enabled cannot be SET in a session');
SELECT throws_ok($$SET replica_router.max_replicas = 1$$, '55P02', NULL, 'max_replicas needs a restart');
SELECT throws_ok($$SET replica_router.no_such_setting = 1$$, '42602', NULL, 'the replica_router prefix is reserved');
SELECT lives_ok($$SET LOCAL replica_router.strict_operations = on$$, 'strict_operations can be SET');
SELECT throws_ok($$SELECT * FROM replica_router.recommend('no_such_operation')$$, '42704',
                 'unknown operation "no_such_operation"', 'with strict_operations, unknown operations are refused');

SELECT * FROM finish();
ROLLBACK;
