-- replica_router SQL surface, part 1: add_replica().
\set SHOW_CONTEXT never
-- :mark records the registry (rows and identity sequence); after a statement
-- that must fail, :outcome prints its SQLSTATE and whether the registry is
-- still as recorded by the last :mark.
\set mark 'SELECT rr_test.fingerprint() AS rr_mark \\gset'
\set outcome 'SELECT format(''SQLSTATE %s, registry %s'', :''SQLSTATE'', CASE WHEN rr_test.fingerprint() = :''rr_mark'' THEN ''unchanged'' ELSE ''CHANGED'' END) AS rr_outcome \\gset \\echo :rr_outcome'

--------------------------------------------------------------------------
-- Registration. The returned row masks passwords; the table keeps them.
--------------------------------------------------------------------------
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.add_replica('replica1', 'host=10.0.0.1 port=5432 user=rr password=S3cret dbname=postgres');
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.add_replica('eu-west.2', 'host=10.0.0.2', weight => 0, zone => 'eu-west',
                                  pgbouncer => 'host=10.0.0.2 port=6432 user=pgbouncer password=B0uncer dbname=pgbouncer');
SELECT name, conninfo, weight, enabled, zone, pgbouncer
  FROM replica_router.add_replica('uri_1', 'postgresql://rr:S3cret@10.0.0.3:5433/postgres?sslmode=require', 10000, 'Z9');
-- Names of 1 and 63 characters (the limits).
SELECT name, conninfo FROM replica_router.add_replica('r', 'host=10.0.0.4');
SELECT length(name) AS name_length, conninfo FROM replica_router.add_replica(repeat('n', 63), 'host=10.0.0.5');
-- A connection string of 1023 characters (the limit).
SELECT name FROM replica_router.add_replica('long', 'host=10.0.0.6 application_name=' || repeat('a', 1023 - 31));

SELECT name, conninfo, weight, enabled, zone, pgbouncer, created_at = updated_at AS never_altered
  FROM replica_router.nodes WHERE name <> 'long' ORDER BY id;
SELECT name, length(conninfo) FROM replica_router.nodes WHERE name = 'long';
-- Names are case-sensitive: 'R' is not 'r'.
SELECT name FROM replica_router.add_replica('R', 'host=10.0.0.7');
SELECT replica_router.remove_replica('R');

--------------------------------------------------------------------------
-- Bad input: an error, and the registry (and its id sequence) unchanged.
--------------------------------------------------------------------------
:mark

-- Duplicate name.
SELECT replica_router.add_replica('replica1', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('replica1', 'host=a port');
:outcome

-- Bad names.
SELECT replica_router.add_replica(NULL, 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica(repeat('n', 64), 'host=10.0.0.9');
:outcome
-- The message quotes at most 80 characters of the name.
SELECT replica_router.add_replica(repeat('n', 500), 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('-replica', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('.replica', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('_replica', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('replica 9', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica(' replica9', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('replica9 ', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica(E'replica9\n', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('a/b', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('r' || chr(233) || 'plica', 'host=10.0.0.9');
:outcome
-- Injection attempts are just bad names.
SELECT replica_router.add_replica('x''; DROP TABLE rr_test.victim; --', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('x"; DROP TABLE rr_test.victim; --', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('x''); CREATE ROLE regress_rr_evil; --', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica('$$; DROP TABLE rr_test.victim; $$', 'host=10.0.0.9');
:outcome
SELECT replica_router.add_replica(E'x\\''; DROP TABLE rr_test.victim; --', 'host=10.0.0.9');
:outcome
SELECT count(*) AS victim_rows FROM rr_test.victim;
SELECT count(*) AS evil_roles FROM pg_roles WHERE rolname = 'regress_rr_evil';

-- Bad weights.
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', -1);
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', 10001);
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', NULL);
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', weight => -2147483648);
:outcome

-- Bad zones.
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', zone => '');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', zone => 'eu west');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', zone => repeat('z', 64));
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', zone => 'x''; DROP TABLE rr_test.victim; --');
:outcome

-- Bad connection strings.
SELECT replica_router.add_replica('replica9', NULL);
:outcome
SELECT replica_router.add_replica('replica9', 'host=a port');
:outcome
SELECT replica_router.add_replica('replica9', 'nonsense=1');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 port=5432 dbname');
:outcome
SELECT replica_router.add_replica('replica9', 'host=''10.0.0.9');
:outcome
SELECT replica_router.add_replica('replica9', 'postgresql://10.0.0.9/postgres?bogus=1');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 application_name=' || repeat('a', 1024 - 31));
:outcome
SELECT replica_router.add_replica('replica9', repeat('x', 100000));
:outcome
-- Malformed, with a password: the detail must not quote the input.
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 password=S3cret port');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 password=''S3cret');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 port password=S3cret');
:outcome
SELECT rr_test.error_text($$SELECT replica_router.add_replica('replica9', 'host=10.0.0.9 password=S3cret port')$$)
       !~ 'S3cret' AS password_not_echoed;
-- URI syntax carries the password without the word "password".
-- libpq's complaint would quote the URI or its password part: for a URI
-- with user info the DETAIL is withheld, so no S3cr... is echoed.
SELECT replica_router.add_replica('replica9', 'postgresql://rr:S3cr%zz@10.0.0.9/postgres');
:outcome
SELECT replica_router.add_replica('replica9', 'postgresql://rr:S3cret@[10.0.0.9/postgres');
:outcome
SELECT rr_test.error_text($$SELECT replica_router.add_replica('replica9', 'postgresql://rr:S3cr%zz@10.0.0.9/postgres')$$)
       !~ 'S3cr' AS password_not_echoed;
SELECT rr_test.error_text($$SELECT replica_router.add_replica('replica9', 'postgresql://rr:S3cret@[10.0.0.9/postgres')$$)
       !~ 'S3cret' AS password_not_echoed;
SELECT rr_test.error_text($$SELECT replica_router.add_replica('replica9', 'postgres://rr:S3cret@10.0.0.9/db?x=1')$$)
       !~ 'S3cret' AS password_not_echoed;

-- Bad pgbouncer connection strings (same checks as conninfo).
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', pgbouncer => 'host=a port');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', pgbouncer => 'host=10.0.0.9 password=B0uncer port');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', pgbouncer => repeat('x', 1024));
:outcome

-- The first bad argument is reported (name, conninfo, weight, zone, pgbouncer).
SELECT replica_router.add_replica('bad name', 'bad', -1, 'bad zone', 'bad');
:outcome
SELECT replica_router.add_replica('replica9', 'bad', -1, 'bad zone', 'bad');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', -1, 'bad zone', 'bad');
:outcome
SELECT replica_router.add_replica('replica9', 'host=10.0.0.9', 1, 'bad zone', 'bad');
:outcome

-- With good arguments the same call succeeds.
SELECT name, conninfo FROM replica_router.add_replica('replica9', 'host=10.0.0.9');

-- An empty connection string would make the worker connect with libpq
-- defaults, i.e. to this server itself: refused.
SELECT name, conninfo FROM replica_router.add_replica('empty', '');

-- Clean up.
SELECT count(*) AS removed FROM (SELECT replica_router.remove_replica(name) FROM replica_router.nodes) r;
SELECT count(*) AS nodes FROM replica_router.nodes;
