CREATE OR REPLACE FUNCTION replica_router.set_route(
    operation text, target text, max_lag interval DEFAULT NULL, balance text DEFAULT NULL)
RETURNS replica_router.routes
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.routes;
BEGIN
    PERFORM replica_router._assert_writable();
    PERFORM replica_router._check_name('operation', operation);
    IF target IS NULL THEN
        RAISE EXCEPTION 'route target must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'A route''s target is primary, replica or any.';
    END IF;
    IF target NOT IN ('primary', 'replica', 'any') THEN
        RAISE EXCEPTION 'invalid route target "%"', left(target, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A route''s target is primary, replica or any.';
    END IF;
    IF max_lag < interval '0' OR max_lag > interval '365 days' THEN
        RAISE EXCEPTION 'max_lag must be between 0 and 365 days' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The given max_lag is %s.', max_lag),
            HINT = 'Leave max_lag out (NULL) for the replica_router.max_lag setting.';
    END IF;
    IF balance IS NOT NULL AND balance NOT IN ('round_robin', 'weighted', 'least_lag', 'least_connections') THEN
        RAISE EXCEPTION 'invalid balancing method "%"', left(balance, 80)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Balancing is round_robin, weighted, least_lag or least_connections.';
    END IF;
    -- Shared memory keeps 128 routes: a 129th is refused, never dropped.
    LOCK TABLE replica_router.routes IN SHARE ROW EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT FROM replica_router.routes r WHERE r.operation = set_route.operation)
       AND (SELECT count(*) FROM replica_router.routes) >= 128 THEN
        RAISE EXCEPTION 'cannot create route "%": there are already 128 routes', operation
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Drop a route with replica_router.drop_route(), or give several operations one name.';
    END IF;
    INSERT INTO replica_router.routes AS r (operation, target, max_lag, balance)
    VALUES (set_route.operation, set_route.target, set_route.max_lag, set_route.balance)
    ON CONFLICT ON CONSTRAINT routes_pkey DO UPDATE
       SET target = EXCLUDED.target, max_lag = EXCLUDED.max_lag, balance = EXCLUDED.balance, updated_at = now()
    RETURNING * INTO result;
    RETURN result;
END
$$;
