CREATE OR REPLACE FUNCTION replica_router.alter_replica(
    name text, weight integer DEFAULT NULL, enabled boolean DEFAULT NULL,
    zone text DEFAULT NULL, conninfo text DEFAULT NULL, pgbouncer text DEFAULT NULL)
RETURNS replica_router.nodes
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result replica_router.nodes;
BEGIN
    PERFORM replica_router._assert_writable();
    PERFORM replica_router._hide_statement();
    IF name IS NULL THEN
        RAISE EXCEPTION 'replica name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF weight IS NOT NULL THEN
        PERFORM replica_router._check_weight(weight);
    END IF;
    IF zone IS NOT NULL AND zone <> '' THEN
        PERFORM replica_router._check_name('zone', zone);
    END IF;
    IF conninfo IS NOT NULL THEN
        PERFORM replica_router._check_conninfo(name, conninfo);
        PERFORM replica_router._check_privilege(conninfo, 'connection string', name);
    END IF;
    IF pgbouncer IS NOT NULL AND pgbouncer <> '' THEN
        PERFORM replica_router._check_conninfo(name, pgbouncer, 'pgbouncer connection string');
        PERFORM replica_router._check_privilege(pgbouncer, 'pgbouncer connection string', name);
    END IF;
    UPDATE replica_router.nodes n
       SET weight = coalesce(alter_replica.weight, n.weight),
           enabled = coalesce(alter_replica.enabled, n.enabled),
           zone = CASE WHEN alter_replica.zone IS NULL THEN n.zone
                       WHEN alter_replica.zone = '' THEN NULL
                       ELSE alter_replica.zone END,
           updated_at = now()
     WHERE n.name = alter_replica.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replica "%" does not exist', left(name, 80)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT node FROM replica_router.status lists the registered replicas.';
    END IF;
    -- A connection string is in the SET list only when it is given: that is
    -- what records the caller as its owner.
    IF conninfo IS NOT NULL THEN
        UPDATE replica_router.nodes n SET conninfo = alter_replica.conninfo WHERE n.name = alter_replica.name;
    END IF;
    IF pgbouncer IS NOT NULL THEN
        UPDATE replica_router.nodes n SET pgbouncer = nullif(alter_replica.pgbouncer, '')
         WHERE n.name = alter_replica.name;
    END IF;
    SELECT * INTO result FROM replica_router.nodes n WHERE n.name = alter_replica.name;
    result.conninfo := replica_router.mask_conninfo(result.conninfo);
    result.pgbouncer := replica_router.mask_conninfo(result.pgbouncer);
    RETURN result;
END
$$;
