CREATE OR REPLACE FUNCTION replica_router._worst(VARIADIC severities text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN 'critical' OPERATOR(pg_catalog.=) ANY (severities) THEN 'critical'
                WHEN 'warning' OPERATOR(pg_catalog.=) ANY (severities) THEN 'warning'
                ELSE 'ok' END
$$;
