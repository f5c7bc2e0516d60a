CREATE OR REPLACE FUNCTION replica_router.connection_string(
    operation text DEFAULT 'read', max_lag interval DEFAULT NULL, min_lsn pg_lsn DEFAULT NULL,
    zone text DEFAULT NULL)
RETURNS text
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'replica_router_connection_string';
