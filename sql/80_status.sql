-- replica_router SQL surface, part 8: the status view, worker_status() and
-- the tables the worker writes. Volatile columns are shown as facts about
-- them, not as values.
\set SHOW_CONTEXT never

SELECT name FROM replica_router.add_replica('replica1', 'host=10.0.0.1 port=5433 password=S3cret', zone => 'eu-west');
SELECT name FROM replica_router.add_replica('replica2', 'host=10.0.0.2');
SELECT name, enabled FROM replica_router.alter_replica('replica2', enabled => false);
SELECT name FROM replica_router.add_replica('replica3', 'host=10.0.0.3', weight => 0);

-- The view's columns.
SELECT * FROM replica_router.status WHERE false;
-- The primary first, then the replicas: registered replicas are 'unknown'
-- (never polled) or 'disabled', with no measurements.
SELECT node, role, state, host, port, zone, lag, lag_seconds, lag_bytes, lag_size, error
  FROM replica_router.status ORDER BY role = 'replica', node;
SELECT node, replay_lsn IS NOT NULL AS has_replay_lsn, connections >= 1 AS counts_this_session,
       max_connections = current_setting('max_connections')::integer AS max_connections_ok,
       last_poll = now() AS polled_now
  FROM replica_router.status WHERE role = 'primary';
SELECT node, replay_lsn, connections, max_connections, last_poll
  FROM replica_router.status WHERE role = 'replica' ORDER BY node;
-- No connection string (nor its password) shows through.
SELECT count(*) AS rows_with_secret FROM replica_router.status s WHERE s::text ~ 'S3cret|10\.0\.0\.';

-- The primary as configured (replica_router.primary_host, primary_port).
SELECT * FROM replica_router._primary();

-- worker_status(): the worker runs (in database postgres) but, finding no
-- extension there, polls nothing and writes nothing.
SELECT * FROM replica_router.worker_status() WHERE false;
SELECT pid IS NOT NULL AS running, started_at <= now() AS started, rounds, last_round_start, last_round_duration,
       polls, poll_failures, hint_writes, write_failures, last_error, last_error_at
  FROM replica_router.worker_status();
SELECT datname, application_name FROM pg_stat_activity WHERE backend_type = 'replica_router worker';
SELECT count(*) AS hints FROM replica_router.routing_hints;
SELECT count(*) AS heartbeats FROM replica_router.heartbeat;
SELECT count(*) AS shared_hints FROM replica_router._hints();

SELECT replica_router.remove_replica('replica1');
SELECT replica_router.remove_replica('replica2');
SELECT replica_router.remove_replica('replica3');
SELECT node, role, state FROM replica_router.status;

-- The routing states as the library defines them (src/core/states.hpp): the
-- lag view, health, metrics() and the check command judge states by this.
SELECT * FROM replica_router.states();
