-- When a job last started on a swept row (unix ms). Keep in step with
-- ../postgres/0006_sweep_job_runs.sql.
--
-- The sweeper counts a row as stuck only when a job ran on it since the last re-enqueue and
-- the row still did not move: a job that is merely queued (a backlog, a slow limit) is not a
-- sweep without movement, and must not push the row towards needs_attention.
-- queued_requeues: how many times in a row the sweeper enqueued the row again while no job
-- had run (in case the queue lost it); each such wait doubles, so a long backlog is not
-- flooded with copies.
ALTER TABLE reconcile_sweeps ADD COLUMN ran_at BIGINT;
ALTER TABLE reconcile_sweeps ADD COLUMN queued_requeues BIGINT NOT NULL DEFAULT 0;
