-- A2U payouts (SQLite). Keep in step with ../postgres/0002_payouts.sql. Same conventions as
-- 0001: BIGINT stroops, BIGINT unix-millisecond timestamps, JSON as TEXT, states checked by the
-- state machine in core/src/state.rs (PayoutState), not by CHECK.

-- One row per bulk import (a CSV / JSON-lines file); counts are of rows offered to the ledger.
CREATE TABLE payout_batches (
    id          TEXT PRIMARY KEY NOT NULL,            -- bat_ + 20 alnum
    source      TEXT,                                 -- e.g. the imported file's name
    created_at  BIGINT NOT NULL,
    accepted    BIGINT NOT NULL DEFAULT 0,            -- new payouts created by this batch
    duplicates  BIGINT NOT NULL DEFAULT 0,            -- rows whose idempotency key existed
    rejected    BIGINT NOT NULL DEFAULT 0             -- rows refused before the ledger
);

CREATE TABLE payouts (
    id              TEXT PRIMARY KEY NOT NULL,        -- po_ + 20 alnum
    idempotency_key TEXT NOT NULL UNIQUE,             -- a repeated request returns this row
    fingerprint     TEXT NOT NULL,                    -- sha256 of the request body: same key + other body = conflict
    batch_id        TEXT REFERENCES payout_batches (id),
    uid             TEXT NOT NULL,
    amount_stroops  BIGINT NOT NULL CHECK (amount_stroops > 0),
    memo            TEXT NOT NULL,
    metadata        TEXT NOT NULL,                    -- the app's JSON object
    state           TEXT NOT NULL,
    pi_payment_id   TEXT UNIQUE,                      -- stored before anything else after POST /v2/payments
    to_address      TEXT,
    from_address    TEXT,
    tx_source       TEXT,                             -- the envelope's source (app wallet or a channel)
    sequence        BIGINT,
    envelope_b64    TEXT,                             -- stored before it is submitted
    tx_hash         TEXT UNIQUE,
    max_time        BIGINT,                           -- unix seconds: the envelope is dead after this
    ledger          BIGINT,                           -- the ledger the transaction landed in
    submit_attempts BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,        -- failed attempts of the current step
    reason          TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    next_check_at   BIGINT
);
CREATE INDEX payouts_sweep ON payouts (state, updated_at);
CREATE INDEX payouts_list ON payouts (created_at, id);
CREATE INDEX payouts_batch ON payouts (batch_id, created_at, id);
CREATE INDEX payouts_uid ON payouts (uid);

-- Append-only history of every transition and notable attempt (old envelope hashes live here).
CREATE TABLE payout_events (
    id         INTEGER PRIMARY KEY,
    payout_id  TEXT NOT NULL REFERENCES payouts (id),
    from_state TEXT,                                  -- NULL when the payout was requested
    to_state   TEXT NOT NULL,
    cause      TEXT NOT NULL,
    detail     TEXT,
    attempt    BIGINT NOT NULL DEFAULT 0,
    at         BIGINT NOT NULL
);
CREATE INDEX payout_events_payout ON payout_events (payout_id, id);
