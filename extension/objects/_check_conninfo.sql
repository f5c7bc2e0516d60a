CREATE OR REPLACE FUNCTION replica_router._check_conninfo(name text, conninfo text, what text DEFAULT 'connection string')
RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text;
BEGIN
    IF conninfo IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(conninfo) = '' THEN
        RAISE EXCEPTION '% for replica "%" is empty', what, name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An empty connection string would make the worker connect to this server itself.',
                  HINT = 'Name the host, e.g. ''host=10.0.0.2 port=5432 dbname=postgres''.';
    END IF;
    IF octet_length(conninfo) >= 1024 THEN
        RAISE EXCEPTION '% for replica "%" is too long', what, name
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('It is %s bytes; the limit is 1023.', octet_length(conninfo));
    END IF;
    problem := replica_router._conninfo_error(conninfo);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid % for replica "%"', what, name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = problem,
                  HINT = 'Use libpq syntax, e.g. ''host=10.0.0.2 port=5432 user=replica_router dbname=postgres''.';
    END IF;
END
$$;
