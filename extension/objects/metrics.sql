-- Prometheus text exposition of snapshot(), rendered by the same code as
-- replica_router serve's /metrics (src/core/exposition.cpp).
CREATE OR REPLACE FUNCTION replica_router.metrics() RETURNS text
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'replica_router_metrics';
COMMENT ON FUNCTION replica_router.metrics() IS
    'Prometheus text exposition of the views (the families of replica_router serve''s /metrics; see the README, Scraping metrics)';
