-- replica_router SQL surface, part 2: alter_replica() and remove_replica().
\set SHOW_CONTEXT never
-- :mark records the registry (rows and identity sequence); after a statement
-- that must fail, :outcome prints its SQLSTATE and whether the registry is
-- still as recorded by the last :mark.
\set mark 'SELECT rr_test.fingerprint() AS rr_mark \\gset'
\set outcome 'SELECT format(''SQLSTATE %s, registry %s'', :''SQLSTATE'', CASE WHEN rr_test.fingerprint() = :''rr_mark'' THEN ''unchanged'' ELSE ''CHANGED'' END) AS rr_outcome \\gset \\echo :rr_outcome'

SELECT name FROM replica_router.add_replica('replica1', 'host=10.0.0.1 user=rr password=S3cret');
SELECT name FROM replica_router.add_replica('replica2', 'host=10.0.0.2', zone => 'eu-west',
                                            pgbouncer => 'host=10.0.0.2 port=6432 password=B0uncer');

--------------------------------------------------------------------------
-- alter_replica(): each field; NULL keeps a field, '' clears zone and
-- pgbouncer; the returned row masks passwords.
--------------------------------------------------------------------------
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', weight => 250);
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', enabled => false);
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', zone => 'us-east');
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.alter_replica('replica1', conninfo => 'host=10.0.0.11 port=5433 user=rr password=N3wS3cret');
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.alter_replica('replica1', pgbouncer => 'host=10.0.0.11 port=6432 user=pgbouncer password=B0uncer');
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', zone => '', pgbouncer => '');
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', weight => 0);
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica1', weight => 10000);
-- No change requested: the row as it is.
SELECT name, conninfo, weight, enabled, zone, pgbouncer FROM replica_router.alter_replica('replica2');
-- Several at once.
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.alter_replica('replica2', weight => 7, enabled => false, zone => 'eu-central');
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.alter_replica(name => 'replica2', enabled => true);
-- The table keeps the full strings; updated_at moved, created_at did not.
SELECT name, conninfo, weight, enabled, zone, pgbouncer, updated_at > created_at AS altered
  FROM replica_router.nodes ORDER BY name;

--------------------------------------------------------------------------
-- alter_replica(): bad input changes nothing.
--------------------------------------------------------------------------
:mark
SELECT replica_router.alter_replica(NULL);
:outcome
SELECT replica_router.alter_replica(NULL, weight => 5);
:outcome
SELECT replica_router.alter_replica('missing');
:outcome
SELECT replica_router.alter_replica('missing', weight => 5);
:outcome
SELECT replica_router.alter_replica('REPLICA1', weight => 5);
:outcome
SELECT replica_router.alter_replica('', weight => 5);
:outcome
SELECT replica_router.alter_replica('x''; DROP TABLE rr_test.victim; --', weight => 5);
:outcome
SELECT replica_router.alter_replica(repeat('q', 500), weight => 5);
:outcome
SELECT replica_router.alter_replica('replica1', weight => -1);
:outcome
SELECT replica_router.alter_replica('replica1', weight => 10001);
:outcome
SELECT replica_router.alter_replica('replica1', zone => 'eu west');
:outcome
SELECT replica_router.alter_replica('replica1', zone => repeat('z', 64));
:outcome
SELECT replica_router.alter_replica('replica1', zone => 'x''; DROP TABLE rr_test.victim; --');
:outcome
SELECT replica_router.alter_replica('replica1', conninfo => 'host=a port');
:outcome
SELECT replica_router.alter_replica('replica1', conninfo => 'nonsense=1');
:outcome
SELECT replica_router.alter_replica('replica1', conninfo => repeat('x', 1024));
:outcome
SELECT replica_router.alter_replica('replica1', conninfo => 'host=10.0.0.1 password=S3cret port');
:outcome
SELECT rr_test.error_text($$SELECT replica_router.alter_replica('replica1', conninfo => 'host=10.0.0.1 password=S3cret port')$$)
       !~ 'S3cret' AS password_not_echoed;
SELECT replica_router.alter_replica('replica1', pgbouncer => 'host=a port');
:outcome
SELECT replica_router.alter_replica('replica1', pgbouncer => 'host=10.0.0.1 password=B0uncer port');
:outcome
-- Arguments are checked before the name is looked up.
SELECT replica_router.alter_replica('missing', conninfo => 'host=a port');
:outcome
-- Message style (reported): unlike the other messages, this one quotes the
-- unchecked name in full (200 characters here) instead of at most 80.
SELECT replica_router.alter_replica(repeat('y', 200), conninfo => 'host=a port');
:outcome
-- A disabled replica can be altered like any other; one bad argument
-- rejects the whole call.
SELECT replica_router.alter_replica('replica1', weight => 5, zone => 'bad zone');
:outcome
SELECT count(*) AS victim_rows FROM rr_test.victim;

-- conninfo => '' is refused (unlike zone and pgbouncer, a connection string
-- cannot be cleared meaningfully).
SELECT name, conninfo FROM replica_router.alter_replica('replica1', conninfo => '');
SELECT name, conninfo FROM replica_router.alter_replica('replica1', conninfo => 'host=10.0.0.1');
-- The returned row masks sslpassword too (see 40_mask_conninfo).
SELECT name, conninfo FROM replica_router.alter_replica('replica1', conninfo => 'host=10.0.0.1 sslpassword=K3yPass');

--------------------------------------------------------------------------
-- remove_replica()
--------------------------------------------------------------------------
:mark
SELECT replica_router.remove_replica(NULL);
:outcome
SELECT replica_router.remove_replica('missing');
:outcome
SELECT replica_router.remove_replica('');
:outcome
SELECT replica_router.remove_replica('REPLICA1');
:outcome
SELECT replica_router.remove_replica(repeat('q', 500));
:outcome
SELECT replica_router.remove_replica('x''; DROP TABLE rr_test.victim; --');
:outcome
SELECT replica_router.remove_replica('replica1'' OR ''1''=''1');
:outcome
SELECT replica_router.remove_replica('%');
:outcome
SELECT replica_router.remove_replica('replica_');
:outcome
SELECT count(*) AS victim_rows FROM rr_test.victim;

SELECT replica_router.remove_replica('replica1');
SELECT name FROM replica_router.nodes ORDER BY name;
-- Removing it twice fails the second time.
:mark
SELECT replica_router.remove_replica('replica1');
:outcome
-- Altering a removed replica fails.
SELECT replica_router.alter_replica('replica1', weight => 1);
:outcome
-- Its name can be registered again.
SELECT name, conninfo FROM replica_router.add_replica('replica1', 'host=10.0.0.1');
SELECT replica_router.remove_replica('replica1');
SELECT replica_router.remove_replica('replica2');
SELECT count(*) AS nodes FROM replica_router.nodes;
