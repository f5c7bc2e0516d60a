CREATE OR REPLACE FUNCTION replica_router._label(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(coalesce(value, ''),
               E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;
