-- replica_router SQL surface, part 7: operation routes (set_route, drop_route).
\set SHOW_CONTEXT never
\set sqlstate '\\echo SQLSTATE :SQLSTATE'
\set routes 'SELECT operation, target, max_lag, balance FROM replica_router.routes ORDER BY operation;'

:routes
SELECT operation, target, max_lag, balance FROM replica_router.set_route('report', 'replica', '10 seconds', 'least_lag');
SELECT operation, target, max_lag, balance FROM replica_router.set_route('audit', 'primary');
SELECT operation, target, max_lag, balance FROM replica_router.set_route('batch.nightly-1', 'any', balance => 'weighted');
-- Setting it again replaces it (NULLs included).
SELECT operation, target, max_lag, balance FROM replica_router.set_route('report', 'any');
SELECT operation, target, max_lag, balance FROM replica_router.set_route('report', 'replica', '0', 'round_robin');
:routes

-- Routes reach recommend() through the worker, which does not serve this
-- database: until it loads them only the built-in read and write are known.
SELECT node, role, reason FROM replica_router.recommend('report');
SELECT node, role, reason FROM replica_router.recommend('audit');

-- Bad input.
SELECT replica_router.set_route(NULL, 'replica');
:sqlstate
SELECT replica_router.set_route('', 'replica');
:sqlstate
SELECT replica_router.set_route('bad name', 'replica');
:sqlstate
SELECT replica_router.set_route(repeat('o', 64), 'replica');
:sqlstate
SELECT replica_router.set_route('x''; DROP TABLE rr_test.victim; --', 'replica');
:sqlstate
SELECT replica_router.set_route('report', NULL);
:sqlstate
SELECT replica_router.set_route('report', 'replicas');
:sqlstate
SELECT replica_router.set_route('report', 'Primary');
:sqlstate
SELECT replica_router.set_route('report', 'replica', '-1s');
:sqlstate
SELECT replica_router.set_route('report', 'replica', NULL, 'random');
:sqlstate
SELECT replica_router.set_route('report', 'replica', NULL, '');
:sqlstate
SELECT replica_router.drop_route(NULL);
:sqlstate
SELECT replica_router.drop_route('missing');
:sqlstate
SELECT replica_router.drop_route('x''; DROP TABLE rr_test.victim; --');
:sqlstate
SELECT count(*) AS victim_rows FROM rr_test.victim;
-- Nothing changed.
:routes

SELECT replica_router.drop_route('report');
SELECT replica_router.drop_route('audit');
SELECT replica_router.drop_route('batch.nightly-1');
SELECT replica_router.drop_route('report');
:sqlstate
:routes
