CREATE OR REPLACE FUNCTION replica_router.drop_route(operation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM replica_router._assert_writable();
    IF operation IS NULL THEN
        RAISE EXCEPTION 'operation must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM replica_router.routes r WHERE r.operation = drop_route.operation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'route "%" does not exist', left(operation, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT * FROM replica_router.routes lists the routes.';
    END IF;
END
$$;
