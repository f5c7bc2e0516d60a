-- connection_string(): the libpq multi-host string of the nodes candidates()
-- ranks, values quoted as libpq reads them, NULL when none is ranked. The
-- worker publishes no hints here, so the primary is the only ranked node;
-- its host comes from replica_router.primary_host (reload-only: ALTER
-- SYSTEM, pg_reload_conf() and a new connection, as in 60_settings).
\set SHOW_CONTEXT never
\set sqlstate '\\echo SQLSTATE :SQLSTATE'

SELECT replica_router.connection_string('write') AS write, replica_router.connection_string() AS read;
-- The same as _conninfo_value() over candidates() (what the SQL function was).
CREATE FUNCTION public.regress_cs_from_candidates(op text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN count(*) > 0 THEN
               format('host=%s port=%s',
                      replica_router._conninfo_value(string_agg(c.host, ',' ORDER BY c.rank)),
                      replica_router._conninfo_value(string_agg(c.port::text, ',' ORDER BY c.rank)))
           END
      FROM replica_router.candidates(op) c WHERE c.rank IS NOT NULL
$$;

-- A host with a space, a quote and a backslash is quoted, \ and ' escaped.
ALTER SYSTEM SET replica_router.primary_host = 'primary host''s \dir';
SELECT pg_reload_conf();
\c
SHOW replica_router.primary_host;
SELECT replica_router.connection_string('write') AS write, replica_router.connection_string() AS read;
SELECT replica_router.connection_string('write') IS NOT DISTINCT FROM public.regress_cs_from_candidates('write') AS same;
-- One space anywhere in the list quotes the whole list.
ALTER SYSTEM SET replica_router.primary_host = 'a b,c';
SELECT pg_reload_conf();
\c
SELECT replica_router.connection_string('write');
SELECT replica_router.connection_string('write') IS NOT DISTINCT FROM public.regress_cs_from_candidates('write') AS same;
-- Beyond ASCII, without white space: not quoted.
ALTER SYSTEM SET replica_router.primary_host = 'hôte.example';
SELECT pg_reload_conf();
\c
SELECT replica_router.connection_string('write');
SELECT replica_router.connection_string('write') IS NOT DISTINCT FROM public.regress_cs_from_candidates('write') AS same;
-- A plain list is not quoted.
ALTER SYSTEM SET replica_router.primary_host = 'p1.example,p2.example';
SELECT pg_reload_conf();
\c
SELECT replica_router.connection_string('write');

-- NULL when no node is ranked: fallback_to_primary off and no replica.
ALTER SYSTEM SET replica_router.fallback_to_primary = off;
SELECT pg_reload_conf();
\c
SELECT replica_router.connection_string('read') IS NULL AS read_is_null,
       replica_router.connection_string('write') AS write;
SELECT replica_router.connection_string('read') IS NOT DISTINCT FROM public.regress_cs_from_candidates('read') AS same;
-- Arguments are checked as recommend() checks them.
SELECT replica_router.connection_string(NULL);
:sqlstate
SELECT replica_router.connection_string('read', '-1s');
:sqlstate

ALTER SYSTEM RESET replica_router.primary_host;
ALTER SYSTEM RESET replica_router.fallback_to_primary;
SELECT pg_reload_conf();
\c
SELECT replica_router.connection_string('write');
DROP FUNCTION public.regress_cs_from_candidates(text);
