-- replica_router SQL surface, part 9b: the security rules (issue: no
-- privilege escalation, no credential leak, no freeze from bad input).
-- The worker connects out as the server's OS user: a connection string set
-- by a role that is not a superuser must bring its own password and may name
-- no server file, socket directory or Kerberos setting (as dblink and
-- postgres_fdw decide). The table records who set each string.
\set SHOW_CONTEXT never
\set VERBOSITY default
\set mark 'SELECT rr_test.fingerprint() AS rr_mark \\gset'
\set outcome 'SELECT format(''SQLSTATE %s, registry %s'', :''SQLSTATE'', CASE WHEN rr_test.fingerprint() = :''rr_mark'' THEN ''unchanged'' ELSE ''CHANGED'' END) AS rr_outcome \\gset \\echo :rr_outcome'

CREATE ROLE regress_sec_admin LOGIN IN ROLE replica_router_admin;
CREATE ROLE regress_sec_plain LOGIN;

--------------------------------------------------------------------------
-- F1/F2/F5: what an admin may register.
--------------------------------------------------------------------------
SET ROLE regress_sec_admin;
:mark
SELECT replica_router.add_replica('sec1', 'host=127.0.0.1 port=5432 user=postgres dbname=postgres');
:outcome
SELECT replica_router.add_replica('sec1', 'host=127.0.0.1 password=''''');
:outcome
SELECT replica_router.add_replica('sec1', 'host=/var/run/postgresql port=5432 user=postgres password=x');
:outcome
SELECT replica_router.add_replica('sec1', 'host=@abstract user=postgres password=x');
:outcome
SELECT replica_router.add_replica('sec1', 'host=10.0.0.1, user=postgres password=x');
:outcome
SELECT replica_router.add_replica('sec1', 'port=5432 user=postgres password=x');
:outcome
SELECT replica_router.add_replica('sec1', 'host=10.0.0.1 hostaddr=10.0.0.2 password=x', pgbouncer => 'host=10.0.0.1 user=pgbouncer');
:outcome
-- Every parameter that reads the server's files or environment.
SELECT k, (SELECT rr_test.error_text(format('SELECT replica_router.add_replica(%L, %L)', 'sec1',
                                            format('host=10.0.0.1 password=x %s=%s', k, v))))
  FROM (VALUES ('passfile', '/var/lib/postgresql/.pgpass'), ('service', 'prod'),
               ('sslcert', '/etc/ssl/certs/ssl-cert-snakeoil.pem'), ('sslkey', '/etc/shadow'),
               ('sslrootcert', '/tmp/fifo'), ('sslcrl', '/x'), ('sslcrldir', '/x'), ('sslpassword', 'x'),
               ('krbsrvname', 'postgres'), ('gsslib', 'gssapi')) AS p(k, v);
:outcome
-- A direct INSERT keeps the same rules, and the table, not the writer, says who set it.
INSERT INTO replica_router.nodes (name, conninfo) VALUES ('sec1', 'host=127.0.0.1 user=postgres');
\echo SQLSTATE :SQLSTATE
-- With a password, over TCP: accepted, and recorded as the admin's.
SELECT name, conninfo, conninfo_owner FROM replica_router.add_replica('sec1', 'host=10.0.0.1 user=rr password=S3cret');
UPDATE replica_router.nodes SET conninfo_owner = 'postgres', pgbouncer_owner = 'postgres' WHERE name = 'sec1';
SELECT name, conninfo_owner, pgbouncer_owner FROM replica_router.nodes WHERE name = 'sec1';
RESET ROLE;

-- A superuser may use the server's own credentials.
SELECT name, conninfo_owner FROM replica_router.add_replica('sec2', 'host=/var/run/postgresql user=postgres sslcert=/x passfile=/y');
-- An admin changing other fields leaves the owner; changing the string takes it.
SET ROLE regress_sec_admin;
SELECT name, weight, conninfo_owner FROM replica_router.alter_replica('sec2', weight => 7);
SELECT replica_router.alter_replica('sec2', conninfo => 'host=/var/run/postgresql user=postgres password=x');
\echo SQLSTATE :SQLSTATE
SELECT name, conninfo_owner FROM replica_router.alter_replica('sec2', conninfo => 'host=10.0.0.2 password=x');
SELECT name, pgbouncer_owner FROM replica_router.alter_replica('sec2', pgbouncer => 'host=10.0.0.2 port=6432 password=y');
SELECT name, pgbouncer_owner FROM replica_router.alter_replica('sec2', pgbouncer => '');
RESET ROLE;
-- A superuser vouches for a string by setting it (even to itself).
UPDATE replica_router.nodes SET conninfo = conninfo WHERE name = 'sec2';
SELECT name, conninfo_owner FROM replica_router.nodes WHERE name = 'sec2';
SELECT replica_router._unprivileged_problem('host=10.0.0.1 password=x') IS NULL AS ok_for_anyone,
       replica_router._unprivileged_problem('host=10.0.0.1') AS no_password;

--------------------------------------------------------------------------
-- F10/F12: typos and values libpq would only reject when connecting (its
-- message would quote them, password included); lengths in bytes.
--------------------------------------------------------------------------
:mark
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 port=57402password=secret');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 dbname=postgrespassword=secret');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 port=99999');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 port=5432,x');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 sslmode=verify');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 target_session_attrs=any-thing');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 connect_timeout=5s');
:outcome
SELECT replica_router.add_replica('sec3', E'host=''10.0.0.3\nforged=1''');
:outcome
SELECT replica_router.add_replica('sec3', E'host=10.0.0.3\tport=5432');
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3 application_name=' || repeat('é', 500));
:outcome
SELECT replica_router.add_replica('sec3', 'host=10.0.0.3', pgbouncer => 'host=10.0.0.3 port=6432 sslmode=on');
:outcome

--------------------------------------------------------------------------
-- F6/F7: routes in range, and never more than shared memory keeps.
--------------------------------------------------------------------------
SELECT replica_router.set_route('huge', 'replica', interval '1000000 years');
\echo SQLSTATE :SQLSTATE
SELECT replica_router.set_route('huge', 'replica', interval '366 days');
\echo SQLSTATE :SQLSTATE
SELECT operation, max_lag FROM replica_router.set_route('year', 'replica', interval '365 days');
\set VERBOSITY terse
INSERT INTO replica_router.routes (operation, target, max_lag) VALUES ('direct', 'replica', interval '400 days');
\echo SQLSTATE :SQLSTATE
\set VERBOSITY default
SELECT count(*) FROM (SELECT replica_router.set_route('op' || i, 'replica') FROM generate_series(1, 125) i) s;
SELECT count(*) AS routes FROM replica_router.routes;
SELECT replica_router.set_route('one_too_many', 'replica');
\echo SQLSTATE :SQLSTATE
-- Replacing an existing route is fine at the limit.
SELECT operation, target FROM replica_router.set_route('op1', 'any');
SELECT count(*) FROM (SELECT replica_router.drop_route(operation) FROM replica_router.routes
                      WHERE operation ~ '^op[0-9]+$' OR operation = 'year') s;

--------------------------------------------------------------------------
-- F9: connection_string() values are quoted as libpq reads them.
--------------------------------------------------------------------------
SELECT replica_router._conninfo_value('10.0.0.1,10.0.0.2') AS plain,
       replica_router._conninfo_value('127.0.0.1 sslmode=disable') AS spaced,
       replica_router._conninfo_value(E'a''b\\c') AS quoted,
       replica_router._conninfo_value('') AS empty;

--------------------------------------------------------------------------
-- F3: SQL the extension runs at call time resolves nothing through a
-- writable schema on the caller's search_path.
--------------------------------------------------------------------------
CREATE SCHEMA regress_evil AUTHORIZATION regress_sec_plain;
SET ROLE regress_sec_plain;
CREATE TABLE regress_evil.calls (what text);
CREATE FUNCTION regress_evil.format(text, integer) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO regress_evil.calls VALUES ('format(text,integer)') RETURNING 'hijacked' $$;
CREATE FUNCTION regress_evil.format(text, bigint) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO regress_evil.calls VALUES ('format(text,bigint)') RETURNING 'hijacked' $$;
CREATE FUNCTION regress_evil.replace(text, text, text) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO regress_evil.calls VALUES ('replace') RETURNING 'hijacked' $$;
CREATE FUNCTION regress_evil.evil_eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ INSERT INTO regress_evil.calls VALUES ('=') RETURNING true $$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.evil_eq);
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
GRANT INSERT ON regress_evil.calls TO PUBLIC;
RESET ROLE;
-- A superuser whose search_path puts that schema first (an upgraded
-- cluster's writable public is the same).
SET search_path = regress_evil, pg_catalog, public;
SELECT replica_router.metrics() LIKE '%replica_router_worker_up%' AS metrics_ok;
SELECT severity IS NOT NULL AS health_ok FROM replica_router.health;
SELECT count(*) >= 0 AS lag_ok FROM replica_router.lag;
SELECT count(*) >= 0 AS pools_ok FROM replica_router.pool_state;
SELECT replica_router.connection_string('write') IS NOT NULL AS connection_string_ok;
SELECT node IS NOT NULL AS recommend_ok FROM replica_router.recommend('read');
RESET search_path;
SELECT count(*) AS hijacked_calls, string_agg(DISTINCT what, ', ') AS what FROM regress_evil.calls;
DROP SCHEMA regress_evil CASCADE;

SELECT replica_router.remove_replica('sec1');
SELECT replica_router.remove_replica('sec2');
DROP ROLE regress_sec_admin;
DROP ROLE regress_sec_plain;
