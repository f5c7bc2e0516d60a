-- replica_router SQL surface, part 9: who may do what.
-- Everyone may route and look; members of replica_router_admin register
-- nodes; nobody but the owner writes the tables directly.
\set SHOW_CONTEXT never
\set mark 'SELECT rr_test.fingerprint() AS rr_mark \\gset'
\set outcome 'SELECT format(''SQLSTATE %s, registry %s'', :''SQLSTATE'', CASE WHEN rr_test.fingerprint() = :''rr_mark'' THEN ''unchanged'' ELSE ''CHANGED'' END) AS rr_outcome \\gset \\echo :rr_outcome'

CREATE ROLE regress_rr_plain LOGIN;
CREATE ROLE regress_rr_admin LOGIN IN ROLE replica_router_admin;
SELECT name FROM replica_router.add_replica('replica1', 'host=10.0.0.1 password=S3cret');
:mark

--------------------------------------------------------------------------
-- A plain role.
--------------------------------------------------------------------------
SET ROLE regress_rr_plain;
SELECT node, role, reason FROM replica_router.recommend('write');
SELECT node, role, reason FROM replica_router.recommend('read');
SELECT count(*) FROM replica_router.candidates('read');
SELECT replica_router.connection_string('write');
SELECT node, role, state FROM replica_router.status ORDER BY role = 'replica', node;
SELECT count(*) FROM replica_router.routing_hints;
SELECT count(*) FROM replica_router.heartbeat;
SELECT operation, target FROM replica_router.routes ORDER BY operation;
SELECT pid IS NOT NULL AS running FROM replica_router.worker_status();
SELECT replica_router.mask_conninfo('host=10.0.0.1 password=S3cret');
SELECT replica_router.write_lsn() > '0/0' AS write_lsn_ok;

SELECT replica_router.add_replica('replica9', 'host=10.0.0.9');
:outcome
SELECT replica_router.alter_replica('replica1', weight => 1);
:outcome
SELECT replica_router.remove_replica('replica1');
:outcome
SELECT replica_router.set_route('report', 'replica');
:outcome
SELECT replica_router.drop_route('read');
:outcome
SELECT * FROM replica_router.nodes;
:outcome
SELECT conninfo FROM replica_router.nodes;
:outcome
INSERT INTO replica_router.nodes (name, conninfo) VALUES ('replica9', 'host=10.0.0.9');
:outcome
DELETE FROM replica_router.nodes;
:outcome
INSERT INTO replica_router.routing_hints (node_id, node, state, updated_at) VALUES (1, 'x', 'healthy', now());
:outcome
DELETE FROM replica_router.heartbeat;
:outcome
UPDATE replica_router.routes SET target = 'replica';
:outcome
-- Internal helpers that are not granted.
SELECT replica_router._check_name('replica name', 'x');
:outcome
SELECT replica_router._notify_worker();
:outcome
RESET ROLE;

--------------------------------------------------------------------------
-- A member of replica_router_admin.
--------------------------------------------------------------------------
SET ROLE regress_rr_admin;
SELECT name, conninfo FROM replica_router.add_replica('replica2', 'host=10.0.0.2 password=S3cret');
SELECT name, weight FROM replica_router.alter_replica('replica2', weight => 5);
-- Admins see full connection strings.
SELECT name, conninfo FROM replica_router.nodes ORDER BY name;
SELECT operation, target FROM replica_router.set_route('report', 'replica');
SELECT replica_router.drop_route('report');
SELECT replica_router.remove_replica('replica2');
:mark
-- Admins may write the registry directly; the rules hold on that path too
-- (a password, the owner recorded by the table, not by the writer).
INSERT INTO replica_router.nodes (name, conninfo) VALUES ('replica9', 'host=10.0.0.9');
\echo SQLSTATE :SQLSTATE
INSERT INTO replica_router.nodes (name, conninfo, conninfo_owner)
VALUES ('replica9', 'host=10.0.0.9 password=x', 'postgres');
SELECT name, conninfo_owner, pgbouncer_owner FROM replica_router.nodes WHERE name = 'replica9';
UPDATE replica_router.nodes SET conninfo_owner = 'postgres' WHERE name = 'replica9';
SELECT name, conninfo_owner FROM replica_router.nodes WHERE name = 'replica9';
UPDATE replica_router.nodes SET conninfo = 'host=10.0.0.9' WHERE name = 'replica9';
\echo SQLSTATE :SQLSTATE
DELETE FROM replica_router.nodes WHERE name = 'replica9';
:mark
TRUNCATE replica_router.nodes;
:outcome
INSERT INTO replica_router.routes (operation, target) VALUES ('x', 'any');
:outcome
RESET ROLE;

SELECT replica_router.remove_replica('replica1');
DROP ROLE regress_rr_plain;
DROP ROLE regress_rr_admin;
