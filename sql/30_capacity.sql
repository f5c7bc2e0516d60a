-- replica_router SQL surface, part 3: a full registry.
-- test/regress.conf sets replica_router.max_replicas = 8.
\set SHOW_CONTEXT never
-- :mark records the registry (rows and identity sequence); after a statement
-- that must fail, :outcome prints its SQLSTATE and whether the registry is
-- still as recorded by the last :mark.
\set mark 'SELECT rr_test.fingerprint() AS rr_mark \\gset'
\set outcome 'SELECT format(''SQLSTATE %s, registry %s'', :''SQLSTATE'', CASE WHEN rr_test.fingerprint() = :''rr_mark'' THEN ''unchanged'' ELSE ''CHANGED'' END) AS rr_outcome \\gset \\echo :rr_outcome'

SHOW replica_router.max_replicas;
-- It is fixed at server start.
SET replica_router.max_replicas = 9;
\echo SQLSTATE :SQLSTATE

-- Nine in one statement: the ninth fails and takes the other eight with it
-- (their ids are used up, as with any rolled-back INSERT).
SELECT count(replica_router.add_replica('node' || i, format('host=10.0.1.%s', i))) FROM generate_series(1, 9) i;
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS nodes FROM replica_router.nodes;

SELECT count(replica_router.add_replica('node' || i, format('host=10.0.1.%s', i))) FROM generate_series(1, 8) i;
SELECT count(*) AS nodes FROM replica_router.nodes;

:mark
SELECT replica_router.add_replica('node9', 'host=10.0.1.9');
:outcome
-- Disabled or drained replicas still count.
SELECT name, enabled, weight FROM replica_router.alter_replica('node8', enabled => false, weight => 0);
:mark
SELECT replica_router.add_replica('node9', 'host=10.0.1.9');
:outcome
-- A duplicate is reported as such, a bad name as a bad name.
SELECT replica_router.add_replica('node1', 'host=10.0.1.9');
:outcome
SELECT replica_router.add_replica('node 9', 'host=10.0.1.9');
:outcome

-- Removing one frees a place.
SELECT replica_router.remove_replica('node8');
SELECT name FROM replica_router.add_replica('node9', 'host=10.0.1.9');
SELECT string_agg(name, ', ' ORDER BY id) AS registered FROM replica_router.nodes;

-- Clean up.
SELECT count(*) AS removed FROM (SELECT replica_router.remove_replica(name) FROM replica_router.nodes) r;
