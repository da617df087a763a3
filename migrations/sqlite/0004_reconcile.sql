-- Reconciliation (sqlite). Keep in step with ../postgres/0004_reconcile.sql.
-- Timestamps are BIGINT unix milliseconds, like the rest of the ledger.

-- Named leases: one holder at a time across every worker process (core/src/ledger/leases.rs).
-- Taken with one conditional upsert (free or expired → yours), released by the holder.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- One line per reconcile run that held the lease: what it did, for operators and tests.
CREATE TABLE reconcile_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    holder      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    summary     TEXT,                              -- JSON RunSummary
    error       TEXT
);
CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at);

-- How many sweeps in a row re-enqueued a row that did not move (kind: payment | payout).
-- Reset when the row's updated_at changes; at the cap the row goes to needs_attention.
CREATE TABLE reconcile_sweeps (
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    seen_updated_at BIGINT NOT NULL,
    sweeps          BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- What a reconcile run found and left alone (e.g. an incomplete server payment we do not
-- know): listed by the drift report until resolved_at is set.
CREATE TABLE reconcile_findings (
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    times       BIGINT NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (kind, subject)
);
