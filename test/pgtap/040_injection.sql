-- Injection strings as node, zone and operation names are refused (or are
-- plain data) and create, drop or change nothing.
BEGIN;
SELECT plan(30);

CREATE TABLE public.rr_tap_victim (id integer);
INSERT INTO public.rr_tap_victim VALUES (1);

SELECT throws_ok($$SELECT replica_router.add_replica('x''; DROP TABLE public.rr_tap_victim; --', 'host=127.0.0.1 port=1')$$,
                 '22023', 'invalid replica name "x''; DROP TABLE public.rr_tap_victim; --"', 'quote and DROP TABLE');
SELECT throws_ok($$SELECT replica_router.add_replica('x"; DROP TABLE public.rr_tap_victim; --', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'double quote and DROP TABLE');
SELECT throws_ok($$SELECT replica_router.add_replica('x''); CREATE ROLE rr_tap_evil SUPERUSER; --', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'CREATE ROLE');
SELECT throws_ok($$SELECT replica_router.add_replica('$q$; CREATE TABLE public.rr_tap_evil (); $q$', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'dollar quoting and CREATE TABLE');
SELECT throws_ok($$SELECT replica_router.add_replica(E'x\\''; DROP TABLE public.rr_tap_victim; --', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'backslash-escaped quote');
SELECT throws_ok($$SELECT replica_router.add_replica('a; SELECT pg_sleep(10)', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'statement separator');
SELECT throws_ok($$SELECT replica_router.add_replica(E'x\nDROP TABLE public.rr_tap_victim', 'host=127.0.0.1 port=1')$$,
                 '22023', NULL, 'newline');
SELECT throws_ok($$SELECT replica_router.add_replica('replica1', 'host=127.0.0.1 port=1', zone => 'x''; DROP TABLE public.rr_tap_victim; --')$$,
                 '22023', 'invalid zone "x''; DROP TABLE public.rr_tap_victim; --"', 'injection as a zone');
SELECT throws_ok($$SELECT replica_router.alter_replica('x''; DROP TABLE public.rr_tap_victim; --', weight => 1)$$,
                 '42704', NULL, 'alter_replica: injection is just an unknown name');
SELECT throws_ok($$SELECT replica_router.remove_replica('x''; DROP TABLE public.rr_tap_victim; --')$$,
                 '42704', NULL, 'remove_replica: injection is just an unknown name');
SELECT throws_ok($$SELECT replica_router.remove_replica('x'' OR ''1''=''1')$$,
                 '42704', NULL, 'remove_replica: OR 1=1 matches nothing');
SELECT throws_ok($$SELECT replica_router.set_route('x''; DROP TABLE public.rr_tap_victim; --', 'replica')$$,
                 '22023', NULL, 'set_route: injection as an operation');
SELECT throws_ok($$SELECT replica_router.drop_route('x''; DROP TABLE public.rr_tap_victim; --')$$,
                 '42704', NULL, 'drop_route: injection is just an unknown route');
SELECT is((SELECT reason FROM replica_router.recommend('x''; DROP TABLE public.rr_tap_victim; --')),
          'unknown operation "x''; DROP TABLE public.rr_tap_victim; --": routed to the primary for safety',
          'recommend: injection is just an unknown operation');
-- Connection strings are data for libpq, never SQL.
SELECT lives_ok($$SELECT replica_router.add_replica('cinj', 'host=127.0.0.1 port=1 application_name=''x\''; DROP TABLE public.rr_tap_victim; --''')$$,
                'a connection string holding SQL is stored as data');
SELECT lives_ok($$SELECT replica_router.remove_replica('cinj')$$, 'and removed');

SELECT has_table('public', 'rr_tap_victim', 'the victim table still exists');
SELECT results_eq($$SELECT id FROM public.rr_tap_victim$$, $$VALUES (1)$$, 'with its row');
SELECT hasnt_role('rr_tap_evil', 'no role was created');
SELECT hasnt_table('public', 'rr_tap_evil', 'no table was created');
SELECT is_empty($$SELECT name FROM replica_router.nodes$$, 'the registry is empty');
SELECT is_empty($$SELECT operation FROM replica_router.routes WHERE operation NOT IN ('read', 'write')$$, 'no route was added');

-- Valid-looking names right at the edge.
SELECT lives_ok($$SELECT replica_router.add_replica(repeat('a', 63), 'host=127.0.0.1 port=1')$$, '63 characters are allowed');
SELECT throws_ok($$SELECT replica_router.add_replica(repeat('a', 64), 'host=127.0.0.1 port=1')$$, '22023', NULL,
                 '64 characters are not');
SELECT lives_ok($$SELECT replica_router.add_replica('eu-west.2_a', 'host=127.0.0.1 port=1')$$, 'letters, digits, - . _ are allowed');
SELECT throws_ok($$SELECT replica_router.add_replica('-x', 'host=127.0.0.1 port=1')$$, '22023', NULL,
                 'a name cannot start with -');
SELECT throws_ok($$SELECT replica_router.add_replica('r' || chr(233), 'host=127.0.0.1 port=1')$$, '22023', NULL,
                 'non-ASCII letters are refused');
SELECT throws_ok($$SELECT replica_router.add_replica(NULL, 'host=127.0.0.1 port=1')$$, '22004', NULL,
                 'a NULL name is refused');
SELECT throws_ok($$SELECT replica_router.add_replica('', 'host=127.0.0.1 port=1')$$, '22023', NULL,
                 'an empty name is refused');
SELECT set_eq($$SELECT name FROM replica_router.nodes$$, ARRAY[repeat('a', 63), 'eu-west.2_a'],
              'only the valid names were registered');

SELECT * FROM finish();
ROLLBACK;
