-- replica_router schema: tables, columns and types, views, functions,
-- signatures, defaults and return types, the admin role.
BEGIN;
SELECT plan(128);

SELECT has_extension('replica_router', 'replica_router', 'the extension is installed in its schema');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'replica_router'), '1.2', 'extension version 1.2');
SELECT has_schema('replica_router');
SELECT has_role('replica_router_admin');
SELECT isnt_superuser('replica_router_admin');
SELECT ok(NOT rolcanlogin, 'replica_router_admin cannot log in') FROM pg_roles WHERE rolname = 'replica_router_admin';

--------------------------------------------------------------------------
-- Tables
--------------------------------------------------------------------------
SELECT tables_are('replica_router', ARRAY['nodes', 'routing_hints', 'heartbeat', 'routes']);

SELECT columns_are('replica_router', 'nodes',
    ARRAY['id', 'name', 'conninfo', 'weight', 'enabled', 'zone', 'pgbouncer', 'created_at', 'updated_at',
          'conninfo_owner', 'pgbouncer_owner']);
SELECT col_type_is('replica_router', 'nodes', 'id'::name, 'integer');
SELECT col_type_is('replica_router', 'nodes', 'name'::name, 'text');
SELECT col_type_is('replica_router', 'nodes', 'conninfo'::name, 'text');
SELECT col_type_is('replica_router', 'nodes', 'weight'::name, 'integer');
SELECT col_type_is('replica_router', 'nodes', 'enabled'::name, 'boolean');
SELECT col_type_is('replica_router', 'nodes', 'zone'::name, 'text');
SELECT col_type_is('replica_router', 'nodes', 'pgbouncer'::name, 'text');
SELECT col_type_is('replica_router', 'nodes', 'created_at'::name, 'timestamp with time zone');
SELECT col_type_is('replica_router', 'nodes', 'updated_at'::name, 'timestamp with time zone');
SELECT col_is_pk('replica_router', 'nodes', 'id'::name, 'nodes.id is the primary key');
SELECT col_is_unique('replica_router', 'nodes', 'name'::name);
SELECT col_not_null('replica_router', 'nodes', 'name'::name);
SELECT col_not_null('replica_router', 'nodes', 'conninfo'::name);
SELECT col_not_null('replica_router', 'nodes', 'weight'::name);
SELECT col_not_null('replica_router', 'nodes', 'enabled'::name);
SELECT col_is_null('replica_router', 'nodes', 'zone'::name);
SELECT col_is_null('replica_router', 'nodes', 'pgbouncer'::name);
SELECT col_default_is('replica_router', 'nodes', 'weight'::name, '100'::text, 'nodes.weight defaults to 100');
SELECT col_default_is('replica_router', 'nodes', 'enabled'::name, 'true'::text, 'nodes.enabled defaults to true');
SELECT is((SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'replica_router.nodes'::regclass AND attname = 'id'),
          'a', 'nodes.id is GENERATED ALWAYS AS IDENTITY');
SELECT has_check('replica_router', 'nodes', 'nodes has CHECK constraints');
SELECT set_eq($$SELECT conname::text FROM pg_constraint WHERE conrelid = 'replica_router.nodes'::regclass AND contype = 'c'$$,
              ARRAY['nodes_name_check', 'nodes_conninfo_check', 'nodes_weight_check', 'nodes_zone_check', 'nodes_pgbouncer_check'],
              'nodes CHECK constraints on name, conninfo, weight, zone, pgbouncer');
SELECT has_trigger('replica_router', 'nodes', 'nodes_changed'::name);
SELECT trigger_is('replica_router', 'nodes', 'nodes_changed', 'replica_router', '_nodes_changed');

SELECT columns_are('replica_router', 'routing_hints',
    ARRAY['node_id', 'node', 'host', 'port', 'state', 'lag_bytes', 'lag_seconds', 'replay_lsn', 'replay_paused',
          'connections', 'max_connections', 'last_success', 'error', 'weight', 'zone', 'reserved_connections',
          'updated_at']);
SELECT col_type_is('replica_router', 'routing_hints', 'node_id'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'node'::name, 'text');
SELECT col_type_is('replica_router', 'routing_hints', 'host'::name, 'text');
SELECT col_type_is('replica_router', 'routing_hints', 'port'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'state'::name, 'text');
SELECT col_type_is('replica_router', 'routing_hints', 'lag_bytes'::name, 'bigint');
SELECT col_type_is('replica_router', 'routing_hints', 'lag_seconds'::name, 'double precision');
SELECT col_type_is('replica_router', 'routing_hints', 'replay_lsn'::name, 'pg_lsn');
SELECT col_type_is('replica_router', 'routing_hints', 'replay_paused'::name, 'boolean');
SELECT col_type_is('replica_router', 'routing_hints', 'connections'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'max_connections'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'last_success'::name, 'timestamp with time zone');
SELECT col_type_is('replica_router', 'routing_hints', 'error'::name, 'text');
SELECT col_type_is('replica_router', 'routing_hints', 'weight'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'zone'::name, 'text');
SELECT col_type_is('replica_router', 'routing_hints', 'reserved_connections'::name, 'integer');
SELECT col_type_is('replica_router', 'routing_hints', 'updated_at'::name, 'timestamp with time zone');
SELECT col_is_pk('replica_router', 'routing_hints', 'node_id'::name, 'routing_hints.node_id is the primary key');
SELECT fk_ok('replica_router', 'routing_hints', 'node_id', 'replica_router', 'nodes', 'id');
SELECT is((SELECT confdeltype::text FROM pg_constraint
            WHERE conrelid = 'replica_router.routing_hints'::regclass AND contype = 'f'),
          'c', 'routing_hints rows go with their node (ON DELETE CASCADE)');

SELECT columns_are('replica_router', 'heartbeat',
    ARRAY['id', 'primary_time', 'system_identifier', 'worker_pid', 'primary_node', 'primary_host', 'primary_port']);
SELECT col_type_is('replica_router', 'heartbeat', 'id'::name, 'boolean');
SELECT col_type_is('replica_router', 'heartbeat', 'primary_time'::name, 'timestamp with time zone');
SELECT col_type_is('replica_router', 'heartbeat', 'system_identifier'::name, 'text');
SELECT col_type_is('replica_router', 'heartbeat', 'worker_pid'::name, 'integer');
SELECT col_type_is('replica_router', 'heartbeat', 'primary_node'::name, 'text');
SELECT col_type_is('replica_router', 'heartbeat', 'primary_host'::name, 'text');
SELECT col_type_is('replica_router', 'heartbeat', 'primary_port'::name, 'integer');
SELECT col_is_pk('replica_router', 'heartbeat', 'id'::name, 'heartbeat.id is the primary key');
SELECT throws_ok($$INSERT INTO replica_router.heartbeat (id, primary_time, system_identifier) VALUES (false, now(), 'x')$$,
                 '23514', NULL, 'heartbeat holds one row at most (id must be true)');

SELECT columns_are('replica_router', 'routes', ARRAY['operation', 'target', 'max_lag', 'balance', 'updated_at']);
SELECT col_type_is('replica_router', 'routes', 'operation'::name, 'text');
SELECT col_type_is('replica_router', 'routes', 'target'::name, 'text');
SELECT col_type_is('replica_router', 'routes', 'max_lag'::name, 'interval');
SELECT col_type_is('replica_router', 'routes', 'balance'::name, 'text');
SELECT col_type_is('replica_router', 'routes', 'updated_at'::name, 'timestamp with time zone');
SELECT col_is_pk('replica_router', 'routes', 'operation'::name, 'routes.operation is the primary key');
SELECT results_eq($$SELECT operation, target FROM replica_router.routes ORDER BY operation$$,
                  $$VALUES ('read'::text, 'replica'::text), ('write', 'primary')$$,
                  'routes start with read -> replica and write -> primary');

--------------------------------------------------------------------------
-- Views: columns, in order, with their types.
--------------------------------------------------------------------------
SELECT views_are('replica_router', ARRAY['status', 'lag', 'slot_health', 'pool_state', 'pgbouncer_pools', 'health']);
SELECT is(ARRAY(SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'replica_router.status'::regclass AND attnum > 0 ORDER BY attnum),
          ARRAY['node text', 'role text', 'state text', 'host text', 'port integer', 'zone text', 'lag interval',
                'lag_seconds double precision', 'lag_bytes bigint', 'lag_size text', 'replay_lsn pg_lsn',
                'connections integer', 'max_connections integer', 'last_poll timestamp with time zone', 'error text'],
          'status columns and types');
SELECT hasnt_column('replica_router', 'status', 'conninfo', 'status shows no connection string');
SELECT is(ARRAY(SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'replica_router.health'::regclass AND attnum > 0 ORDER BY attnum),
          ARRAY['severity text', 'healthy_replicas integer', 'registered_replicas integer', 'max_replay_lag interval',
                'most_lagging text', 'worker_alive boolean', 'worker_pid integer', 'last_round_age interval',
                'last_round_duration interval', 'registry_problem text'],
          'health columns and types');
SELECT results_eq($$SELECT node, role, state FROM replica_router.status$$,
                  $$VALUES ('primary'::text, 'primary'::text, 'primary'::text)$$,
                  'with no replica registered, status shows the primary only');

--------------------------------------------------------------------------
-- Functions: the set, signatures with defaults and OUT columns, return types.
--------------------------------------------------------------------------
SELECT functions_are('replica_router', ARRAY[
    '_assert_preloaded', '_assert_writable', '_check_conninfo', '_check_name', '_check_privilege', '_check_weight', '_conninfo_error',
    '_conninfo_value', '_hide_statement', '_hints', '_ms_setting', '_nodes_changed', '_notify_worker',
    '_owner_trigger', '_pools', '_primary', '_primary_stats', '_slots', '_source_role', '_unprivileged_problem', '_worst',
    'snapshot', 'states',
    'add_node', 'add_replica', 'alter_node', 'alter_replica', 'candidates', 'connection_string', 'drop_route', 'mask_conninfo', 'metrics',
    'recommend', 'remove_node', 'remove_replica', 'set_route', 'worker_status', 'write_lsn']);

SELECT has_function('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text']);
SELECT function_returns('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text'], 'replica_router.nodes');
SELECT is(pg_get_function_arguments('replica_router.add_replica(text, text, integer, text, text)'::regprocedure),
          'name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL::text, pgbouncer text DEFAULT NULL::text',
          'add_replica arguments and defaults');
SELECT isnt_definer('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text']);
SELECT function_lang_is('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text'], 'plpgsql');
SELECT volatility_is('replica_router', 'add_replica', ARRAY['text', 'text', 'integer', 'text', 'text'], 'volatile');

SELECT has_function('replica_router', 'alter_replica', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text']);
SELECT function_returns('replica_router', 'alter_replica', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text'], 'replica_router.nodes');
SELECT is(pg_get_function_arguments('replica_router.alter_replica(text, integer, boolean, text, text, text)'::regprocedure),
          'name text, weight integer DEFAULT NULL::integer, enabled boolean DEFAULT NULL::boolean, zone text DEFAULT NULL::text, conninfo text DEFAULT NULL::text, pgbouncer text DEFAULT NULL::text',
          'alter_replica arguments and defaults');
SELECT isnt_definer('replica_router', 'alter_replica', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text']);

-- The 1.2 member names: the same functions, run as the caller.
SELECT is(pg_get_function_arguments('replica_router.add_node(text, text, integer, text, text)'::regprocedure),
          'name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL::text, pgbouncer text DEFAULT NULL::text',
          'add_node arguments and defaults, as add_replica');
SELECT function_returns('replica_router', 'alter_node', ARRAY['text', 'integer', 'boolean', 'text', 'text', 'text'], 'replica_router.nodes');
SELECT isnt_definer('replica_router', 'add_node', ARRAY['text', 'text', 'integer', 'text', 'text']);
SELECT function_returns('replica_router', 'remove_node', ARRAY['text'], 'void');

SELECT has_function('replica_router', 'remove_replica', ARRAY['text']);
SELECT function_returns('replica_router', 'remove_replica', ARRAY['text'], 'void');
SELECT is_definer('replica_router', 'remove_replica', ARRAY['text']);

SELECT has_function('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text']);
SELECT function_returns('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'replica_router.recommendation');
SELECT is(pg_get_function_arguments('replica_router.recommend(text, interval, pg_lsn, text)'::regprocedure),
          'operation text DEFAULT ''read''::text, max_lag interval DEFAULT NULL::interval, min_lsn pg_lsn DEFAULT NULL::pg_lsn, zone text DEFAULT NULL::text',
          'recommend arguments and defaults');
SELECT has_composite('replica_router', 'recommendation', 'recommend() returns the row type replica_router.recommendation');
SELECT is((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
             FROM pg_attribute WHERE attrelid = 'replica_router.recommendation'::regclass AND attnum > 0),
          'node text, host text, port integer, role text, replay_lag interval, lag_bytes bigint, reason text',
          'recommend result columns');
SELECT isnt_definer('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text']);
SELECT function_lang_is('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'c');
SELECT volatility_is('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'volatile');
SELECT isnt_strict('replica_router', 'recommend', ARRAY['text', 'interval', 'pg_lsn', 'text']);
SELECT is((SELECT proparallel::text FROM pg_proc WHERE oid = 'replica_router.recommend(text, interval, pg_lsn, text)'::regprocedure),
          'r', 'recommend is PARALLEL RESTRICTED');

SELECT has_function('replica_router', 'candidates', ARRAY['text', 'interval', 'pg_lsn', 'text']);
SELECT function_returns('replica_router', 'candidates', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'setof record');
SELECT is(pg_get_function_arguments('replica_router.candidates(text, interval, pg_lsn, text)'::regprocedure),
          'operation text DEFAULT ''read''::text, max_lag interval DEFAULT NULL::interval, min_lsn pg_lsn DEFAULT NULL::pg_lsn, zone text DEFAULT NULL::text, '
          'OUT rank integer, OUT node text, OUT host text, OUT port integer, OUT role text, OUT qualified boolean, OUT state text, '
          'OUT replay_lag interval, OUT lag_bytes bigint, OUT reason text',
          'candidates arguments, defaults and result columns');

SELECT has_function('replica_router', 'connection_string', ARRAY['text', 'interval', 'pg_lsn', 'text']);
SELECT function_returns('replica_router', 'connection_string', ARRAY['text', 'interval', 'pg_lsn', 'text'], 'text');

SELECT has_function('replica_router', 'worker_status', ARRAY[]::text[]);
SELECT function_returns('replica_router', 'worker_status', ARRAY[]::text[], 'record');
SELECT is(pg_get_function_arguments('replica_router.worker_status()'::regprocedure),
          'OUT pid integer, OUT started_at timestamp with time zone, OUT rounds bigint, OUT last_round_start timestamp with time zone, '
          'OUT last_round_duration interval, OUT polls bigint, OUT poll_failures bigint, OUT hint_writes bigint, '
          'OUT write_failures bigint, OUT last_error text, OUT last_error_at timestamp with time zone, '
          'OUT registry_problem text',
          'worker_status result columns');

SELECT has_function('replica_router', 'mask_conninfo', ARRAY['text']);
SELECT function_returns('replica_router', 'mask_conninfo', ARRAY['text'], 'text');
SELECT is_strict('replica_router', 'mask_conninfo', ARRAY['text']);
SELECT volatility_is('replica_router', 'mask_conninfo', ARRAY['text'], 'immutable');

SELECT has_function('replica_router', 'set_route', ARRAY['text', 'text', 'interval', 'text']);
SELECT function_returns('replica_router', 'set_route', ARRAY['text', 'text', 'interval', 'text'], 'replica_router.routes');
SELECT is(pg_get_function_arguments('replica_router.set_route(text, text, interval, text)'::regprocedure),
          'operation text, target text, max_lag interval DEFAULT NULL::interval, balance text DEFAULT NULL::text',
          'set_route arguments and defaults');
SELECT has_function('replica_router', 'drop_route', ARRAY['text']);
SELECT function_returns('replica_router', 'drop_route', ARRAY['text'], 'void');
SELECT has_function('replica_router', 'write_lsn', ARRAY[]::text[]);
SELECT function_returns('replica_router', 'write_lsn', ARRAY[]::text[], 'pg_lsn');
SELECT has_function('replica_router', 'metrics', ARRAY[]::text[]);
SELECT function_returns('replica_router', 'metrics', ARRAY[]::text[], 'text');

-- Calling them: result columns as declared.
SELECT results_eq($$SELECT node, role, reason FROM replica_router.recommend('write')$$,
                  $$VALUES ('primary'::text, 'primary'::text, 'operation "write" routes to the primary'::text)$$,
                  'recommend(''write'') -> the primary');
SELECT is((SELECT count(*) FROM replica_router.worker_status() WHERE pid IS NOT NULL), 1::bigint,
          'worker_status() shows the running worker');
SELECT is((SELECT datname::text FROM pg_stat_activity WHERE backend_type = 'replica_router worker'), 'postgres',
          'the worker runs in database postgres');

SELECT * FROM finish();
ROLLBACK;
