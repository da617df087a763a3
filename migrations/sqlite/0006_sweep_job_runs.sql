-- When a job last started on a swept row (unix ms). Keep in step with
-- ../postgres/0006_sweep_job_runs.sql.
--
-- The sweeper counts a row as stuck only when a job ran on it since the last re-enqueue and
-- the row still did not move: a job that is merely queued (a backlog, a slow limit) is not a
-- sweep without movement, and must not push the row towards needs_attention.
ALTER TABLE reconcile_sweeps ADD COLUMN ran_at BIGINT;
