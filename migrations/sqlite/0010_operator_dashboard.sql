-- The operator dashboard (SQLite). Keep in step with ../postgres/0010_operator_dashboard.sql.
--
-- Indexes so that every dashboard page is a bounded index range (a flood of page views must
-- stay cheap): payments and payouts of one state newest first, payments of one Pioneer, the
-- undelivered outbox rows newest first, the latest bulk batches and their progress.
CREATE INDEX payments_state_created ON payments (state, created_at, id);
CREATE INDEX payments_uid ON payments (uid, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payouts_state_created ON payouts (state, created_at, id);
CREATE INDEX payouts_batch_state ON payouts (batch_id, state);
CREATE INDEX events_undelivered ON events (id) WHERE delivered_at IS NULL;
CREATE INDEX payout_batches_created ON payout_batches (created_at, id);

-- What operators did that no row's own history records (a webhook delivery re-armed): who,
-- what, to which row, when. Payment and payout retries are in their histories already.
CREATE TABLE operator_actions (
    id           INTEGER PRIMARY KEY,
    at           BIGINT NOT NULL,
    action       TEXT NOT NULL,                       -- e.g. webhook_resend
    subject_kind TEXT NOT NULL,                       -- e.g. event
    subject_id   TEXT NOT NULL,
    detail       TEXT
);
CREATE INDEX operator_actions_subject ON operator_actions (subject_kind, subject_id, id);
