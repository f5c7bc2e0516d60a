CREATE OR REPLACE FUNCTION replica_router.add_replica(
    name text, conninfo text, weight integer DEFAULT 100, zone text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
    capacity integer;
BEGIN
    PERFORM replica_router._assert_writable();
    PERFORM replica_router._hide_statement();
    PERFORM replica_router._assert_preloaded();
    capacity := current_setting('replica_router.max_replicas')::integer;
    PERFORM replica_router._check_name('replica name', name);
    PERFORM replica_router._check_conninfo(name, conninfo);
    PERFORM replica_router._check_weight(weight);
    IF zone IS NOT NULL THEN
        PERFORM replica_router._check_name('zone', zone);
    END IF;
    IF pgbouncer IS NOT NULL THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
    END IF;
    -- The owner trigger checks this too; here it fails before an id is used.
    PERFORM replica_router._check_privilege(conninfo, 'connection string', name);
    PERFORM replica_router._check_privilege(pgbouncer, 'pgbouncer connection string', name);
    -- Serialise registrations so the capacity check holds.
    LOCK TABLE replica_router.nodes IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM replica_router.nodes n WHERE n.name = add_replica.name) THEN
        RAISE EXCEPTION 'replica "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use replica_router.alter_replica() to change it, or choose another name.';
    END IF;
    IF (SELECT count(*) FROM replica_router.nodes) >= capacity THEN
        RAISE EXCEPTION 'cannot register replica "%": the registry is full', name
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('%s replicas are registered, the maximum set by replica_router.max_replicas.', capacity),
                  HINT = 'Remove a replica, or raise replica_router.max_replicas and restart the server.';
    END IF;
    INSERT INTO replica_router.nodes (name, conninfo, weight, zone, pgbouncer)
    VALUES (add_replica.name, add_replica.conninfo, add_replica.weight, add_replica.zone, add_replica.pgbouncer)
    RETURNING * INTO result;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    result.pgbouncer := replica_router.mask_conninfo(result.pgbouncer);
    RETURN result;
END
$$;
