-- replica_router SQL surface, part 5: recommend(), candidates(),
-- connection_string(), write_lsn(). The worker publishes no hints here
-- (test/regress.conf), so reads fall back to the primary, which reports
-- replica_router.primary_host and primary_port.
\set SHOW_CONTEXT never
\set sqlstate '\\echo SQLSTATE :SQLSTATE'

-- The result's columns.
SELECT * FROM replica_router.recommend() WHERE false;

-- No replica registered.
SELECT * FROM replica_router.recommend();
SELECT * FROM replica_router.candidates();
SELECT replica_router.connection_string();

-- Registered but never polled: still the primary.
SELECT name FROM replica_router.add_replica('replica1', 'host=10.0.0.1', zone => 'eu-west');
SELECT name FROM replica_router.add_replica('replica2', 'host=10.0.0.2');
SELECT * FROM replica_router.recommend();
SELECT * FROM replica_router.recommend('read');
SELECT * FROM replica_router.recommend(operation => 'read');
SELECT * FROM replica_router.recommend('write');
SELECT * FROM replica_router.recommend('unknown');
SELECT * FROM replica_router.recommend('');
SELECT * FROM replica_router.recommend('Read');
-- Operation names longer than 63 characters never match a route.
SELECT * FROM replica_router.recommend(repeat('x', 100));
SELECT * FROM replica_router.recommend('x''; DROP TABLE rr_test.victim; --');
SELECT count(*) AS victim_rows FROM rr_test.victim;

-- max_lag, min_lsn and zone are accepted and do not change the fallback.
SELECT * FROM replica_router.recommend(max_lag => '0');
SELECT * FROM replica_router.recommend('read', '5 seconds');
SELECT * FROM replica_router.recommend('read', '1 day');
SELECT * FROM replica_router.recommend(min_lsn => '0/0');
SELECT * FROM replica_router.recommend(min_lsn => 'FFFFFFFF/FFFFFFFF');
SELECT * FROM replica_router.recommend(min_lsn => replica_router.write_lsn());
SELECT * FROM replica_router.recommend(zone => 'eu-west');
SELECT * FROM replica_router.recommend(zone => repeat('z', 63));
SELECT * FROM replica_router.recommend('read', '1 second', '0/0', 'eu-west');
SELECT * FROM replica_router.recommend('write', '1 second', 'FFFFFFFF/FFFFFFFF', 'nowhere');

-- Bad arguments.
SELECT * FROM replica_router.recommend(NULL);
:sqlstate
SELECT * FROM replica_router.recommend(NULL, '1 second');
:sqlstate
SELECT * FROM replica_router.recommend(max_lag => '-1s');
:sqlstate
SELECT * FROM replica_router.recommend('write', '-1 day');
:sqlstate
-- A month counts as 30 days.
SELECT * FROM replica_router.recommend(max_lag => '1 mon -31 days');
:sqlstate
SELECT * FROM replica_router.recommend(max_lag => '1 mon -30 days');
-- Intervals too long for microseconds saturate: any lag, or negative.
SELECT node, role FROM replica_router.recommend(max_lag => '100000000 years');
SELECT * FROM replica_router.recommend(max_lag => '-100000000 years');
:sqlstate
SELECT * FROM replica_router.recommend(zone => repeat('z', 64));
:sqlstate

-- candidates(): the primary, ranked 1 as the fallback; replicas without
-- hints are not listed.
SELECT * FROM replica_router.candidates('read');
SELECT * FROM replica_router.candidates('write');
SELECT * FROM replica_router.candidates('unknown');
SELECT * FROM replica_router.candidates('read', '1 second', '0/0', 'eu-west');
SELECT * FROM replica_router.candidates(NULL);
:sqlstate
SELECT * FROM replica_router.candidates(max_lag => '-1s');
:sqlstate
SELECT * FROM replica_router.candidates(zone => repeat('z', 64));
:sqlstate

-- connection_string(): libpq multi-host form of the qualified nodes.
SELECT replica_router.connection_string('read') AS read, replica_router.connection_string('write') AS write;
SELECT replica_router.connection_string(NULL);
:sqlstate

-- write_lsn(): the current WAL insert position.
SELECT replica_router.write_lsn() <= pg_current_wal_insert_lsn() AS write_lsn_ok,
       replica_router.write_lsn() > '0/0' AS write_lsn_set;

SELECT replica_router.remove_replica('replica1');
SELECT replica_router.remove_replica('replica2');
