-- replica_router SQL surface, part 10: versions and ALTER EXTENSION UPDATE.
-- Only 1.0 has a full install script; 1.1 is 1.0 plus replica_router--1.0--1.1.sql
-- (as pg_stat_statements does), so a fresh install and an update run the
-- same definitions. What is checked here: the path, that registry data
-- survives the update, and that the current library serves 1.0's objects.
\set SHOW_CONTEXT never

SELECT extversion AS fresh_version FROM pg_extension WHERE extname = 'replica_router';
SELECT source, target, path FROM pg_extension_update_paths('replica_router') WHERE path IS NOT NULL ORDER BY 1, 2;

DROP EXTENSION replica_router;
CREATE EXTENSION replica_router VERSION '1.0';
SELECT extversion AS installed FROM pg_extension WHERE extname = 'replica_router';
SELECT name FROM replica_router.add_replica('kept', 'host=10.0.0.7 port=5432', weight => 7);
SELECT (replica_router.set_route('report', 'replica', '5 s')).operation;
-- The current library serves 1.0's SQL objects.
SELECT node, role FROM replica_router.recommend('write');
SELECT pg_typeof(replica_router.recommend('write'));

ALTER EXTENSION replica_router UPDATE;
SELECT extversion AS updated_to FROM pg_extension WHERE extname = 'replica_router';
SELECT name, weight FROM replica_router.nodes;
SELECT operation, target, max_lag FROM replica_router.routes ORDER BY operation;
-- 1.1's objects: the row type, and the new messages.
SELECT pg_typeof(replica_router.recommend('write'));
SELECT node, role FROM replica_router.recommend('write');
SELECT replica_router.add_replica('w', 'host=10.0.0.8', weight => NULL);
SELECT replica_router.drop_route('report');
SELECT replica_router.remove_replica('kept');
