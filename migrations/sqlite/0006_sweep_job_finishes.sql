-- When a job last finished on a swept row (unix ms), and how often the sweeper enqueued it
-- again while none did. Keep in step with ../postgres/0006_sweep_job_finishes.sql.
--
-- The sweeper counts a row as stuck only when a job finished on it since the last re-enqueue
-- and the row still did not move: a job that is merely queued or still running (a backlog, a
-- wait on a rate limit) is not a sweep without movement, and must not push the row towards
-- needs_attention. queued_requeues: re-enqueues in a row while no job finished (in case the
-- queue lost it); each such wait doubles, so a long backlog is not flooded with copies.
ALTER TABLE reconcile_sweeps ADD COLUMN finished_at BIGINT;
ALTER TABLE reconcile_sweeps ADD COLUMN queued_requeues BIGINT NOT NULL DEFAULT 0;
