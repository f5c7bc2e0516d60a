CREATE OR REPLACE FUNCTION replica_router.remove_replica(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM replica_router._assert_writable();
    IF name IS NULL THEN
        RAISE EXCEPTION 'replica name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM replica_router.nodes n WHERE n.name = remove_replica.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
END
$$;
