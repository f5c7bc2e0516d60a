#!/usr/bin/env python3
"""Route reads with replica_router from a Python application (psycopg 3).

What it shows, as a loop of small "requests":

* a write goes to the primary; replica_router.write_lsn() right after it is
  the position a later read of the same user must see (read-your-writes);
* a read asks recommend('read', min_lsn => ...) -- but not every time: the
  answer is cached for CACHE_SECONDS (the caching contract: an answer may be
  reused for about one poll interval), and dropped early when the worker
  NOTIFYs a state change on channel replica_router (or when a connection to
  the recommended node fails);
* connections to the nodes are kept in a small pool, one per host:port;
* a replica that stops is left at once: the failed read is retried on a fresh
  recommendation, and the notification empties the cache for everyone else.

    python3 examples/route_reads.py --dsn 'host=primary dbname=postgres user=app' --requests 200

Prints one summary line; exits 0 when every request succeeded and every
read saw its own write.
"""
import argparse
import select
import sys
import time

import psycopg

CACHE_SECONDS = 0.5  # about replica_router.poll_interval: answers may be reused this long


class Router:
    def __init__(self, primary_dsn):
        self.primary_dsn = primary_dsn
        self.primary = psycopg.connect(primary_dsn, autocommit=True)
        # A connection of its own for LISTEN, so that notifications arrive
        # even while the application's connection is busy.
        self.listener = psycopg.connect(primary_dsn, autocommit=True)
        self.listener.execute("LISTEN replica_router")
        self.cache = {}  # min_lsn bucket -> (answer, time)
        self.pool = {}  # "host:port" -> connection
        self.invalidations = 0

    def _notified(self):
        """Drop the cache if the worker announced a state change."""
        ready, _, _ = select.select([self.listener.fileno()], [], [], 0)
        if not ready:
            return
        # Without blocking (psycopg 3.1 has no notifies(timeout=)): read what
        # arrived, take every queued notification.
        pgconn = self.listener.pgconn
        pgconn.consume_input()
        got = False
        while pgconn.notifies() is not None:
            got = True
        if got:
            self.cache.clear()
            self.invalidations += 1

    def recommend(self, min_lsn=None):
        self._notified()
        key = min_lsn or ""
        hit = self.cache.get(key)
        if hit and time.monotonic() - hit[1] < CACHE_SECONDS:
            return hit[0]
        row = self.primary.execute(
            "SELECT node, host, port, role FROM replica_router.recommend('read', min_lsn => %s::pg_lsn)",
            (min_lsn,),
        ).fetchone()
        self.cache[key] = (row, time.monotonic())
        return row

    def connection(self, host, port):
        key = f"{host}:{port}"
        conn = self.pool.get(key)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.primary_dsn, host=host, port=port, autocommit=True, connect_timeout=2)
            self.pool[key] = conn
        return conn

    def forget(self, host, port):
        conn = self.pool.pop(f"{host}:{port}", None)
        if conn is not None:
            conn.close()
        self.cache.clear()

    def write(self, sql, params):
        self.primary.execute(sql, params)
        return self.primary.execute("SELECT replica_router.write_lsn()::text").fetchone()[0]

    def read(self, sql, params, min_lsn=None, attempts=3):
        """Runs a read where replica_router says; retries on a fresh answer if the node fails."""
        for attempt in range(attempts):
            node, host, port, role = self.recommend(min_lsn)
            try:
                return role, self.connection(host, port).execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self.forget(host, port)
                if attempt == attempts - 1:
                    raise
        raise RuntimeError("unreachable")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True, help="libpq connection string of the primary")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--pause", type=float, default=0.01, help="seconds between requests")
    args = ap.parse_args()

    r = Router(args.dsn)
    r.primary.execute("CREATE TABLE IF NOT EXISTS example_notes (id bigserial PRIMARY KEY, body text)")
    roles = {"replica": 0, "primary": 0}
    own_ok = errors = 0
    for i in range(args.requests):
        try:
            # Every other request writes, then reads its own write back.
            if i % 2 == 0:
                lsn = r.write("INSERT INTO example_notes (body) VALUES (%s)", (f"note {i}",))
                role, rows = r.read("SELECT count(*) FROM example_notes WHERE body = %s", (f"note {i}",), min_lsn=lsn)
                own_ok += rows[0][0] == 1
            else:
                role, rows = r.read("SELECT count(*) FROM example_notes", ())
            roles[role] += 1
        except psycopg.Error as e:
            errors += 1
            print(f"request {i}: {e}".splitlines()[0], file=sys.stderr)
        time.sleep(args.pause)
    writes = (args.requests + 1) // 2
    print(f"requests: {args.requests}, reads on replicas: {roles['replica']}, on the primary: {roles['primary']}, "
          f"own writes read back: {own_ok}/{writes}, cache invalidations by NOTIFY: {r.invalidations}, errors: {errors}")
    return 0 if errors == 0 and own_ok == writes else 1


if __name__ == "__main__":
    sys.exit(main())
