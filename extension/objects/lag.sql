-- The lag view: every member's replication, as this node's worker and
-- pg_stat_replication see it. A member that cannot be reached shows no gaps:
-- its last positions say nothing now (receive_gap_bytes and replay_gap_bytes
-- are NULL when lag_bytes is).
CREATE OR REPLACE VIEW replica_router.lag AS
WITH h AS (SELECT * FROM replica_router._hints()),
     sr AS (SELECT r.*, s.slot_name AS via_slot,
                   count(*) OVER (PARTITION BY r.application_name) AS same_name
              FROM pg_catalog.pg_stat_replication r
              LEFT JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid)
SELECT n.name AS node,
       coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END) AS state,
       CASE WHEN m.pid IS NULL THEN NULL WHEN h.wal_slot_name IS NOT NULL THEN 'slot' ELSE 'application_name' END
           AS matched_by,
       m.application_name,
       m.client_addr,
       m.state AS walsender_state,
       m.sync_state,
       m.sent_lsn,
       m.write_lsn,
       m.flush_lsn,
       m.replay_lsn AS reported_replay_lsn,
       m.write_lag,
       m.flush_lag,
       m.replay_lag AS reported_replay_lag,
       h.receive_lsn,
       h.replay_lsn,
       h.lag_bytes,
       pg_catalog.pg_size_pretty(h.lag_bytes) AS lag_size,
       h.lag AS replay_lag,
       extract(epoch FROM h.lag)::double precision AS replay_lag_seconds,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() AND h.receive_lsn IS NOT NULL AND h.lag_bytes IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), h.receive_lsn), 0)::bigint
       END AS receive_gap_bytes,
       CASE WHEN h.receive_lsn IS NOT NULL AND h.replay_lsn IS NOT NULL AND h.lag_bytes IS NOT NULL
            THEN greatest(pg_catalog.pg_wal_lsn_diff(h.receive_lsn, h.replay_lsn), 0)::bigint
       END AS replay_gap_bytes,
       h.replay_paused,
       CASE WHEN NOT n.enabled THEN 'ok'
            ELSE replica_router._worst(
                     st.severity,
                     CASE WHEN st.lag_judged AND h.lag >= replica_router._ms_setting('replica_router.lag_critical')
                          THEN 'critical'
                          WHEN st.lag_judged AND (h.lag >= replica_router._ms_setting('replica_router.lag_warning')
                                                  OR h.replay_paused)
                          THEN 'warning' END)
       END AS severity,
       h.last_poll,
       h.error
  FROM replica_router.nodes n
  LEFT JOIN h ON h.node_id = n.id
  LEFT JOIN replica_router.states() st
         ON st.state = coalesce(h.state, CASE WHEN n.enabled THEN 'unknown' ELSE 'disabled' END)
  LEFT JOIN LATERAL (
        SELECT sr.* FROM sr
         WHERE (h.wal_slot_name IS NOT NULL AND sr.via_slot = h.wal_slot_name)
            OR (h.wal_slot_name IS NULL AND sr.application_name = h.wal_application_name AND sr.same_name = 1)
         LIMIT 1) m ON true;
