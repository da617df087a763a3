-- U2A ledger (SQLite). Amounts are BIGINT stroops (1 Pi = 10^7), timestamps BIGINT unix
-- milliseconds, JSON as TEXT. Keep in step with ../postgres/0001_u2a_ledger.sql.
-- States are not constrained by CHECK: SQLite cannot alter a CHECK without rebuilding the
-- table, and the state machine in core/src/state.rs is the one place states are defined.

CREATE TABLE orders (
    id             TEXT PRIMARY KEY NOT NULL,
    product_id     TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    amount_stroops BIGINT NOT NULL CHECK (amount_stroops > 0),
    memo           TEXT NOT NULL,
    metadata       TEXT NOT NULL,                  -- JSON the frontend passes to createPayment
    state          TEXT NOT NULL CHECK (state IN ('open', 'paid', 'cancelled')),
    payment_id     TEXT UNIQUE,                    -- bound at approval, kept when paid
    created_at     BIGINT NOT NULL,
    paid_at        BIGINT
);

CREATE TABLE payments (
    id             TEXT PRIMARY KEY NOT NULL,
    direction      TEXT NOT NULL,                  -- user_to_app | app_to_user
    uid            TEXT,                           -- known once /v2/me answered
    amount_stroops BIGINT,                         -- known once Pi's DTO was read
    memo           TEXT,
    metadata       TEXT,                           -- JSON
    order_id       TEXT REFERENCES orders (id),
    state          TEXT NOT NULL,
    txid           TEXT UNIQUE,
    -- The Pioneer's access token from the approve callback. Job payloads carry only ids (a queue
    -- dump must not leak tokens), so the approve job reads the token from here to call /v2/me.
    -- Cleared as soon as approval is decided.
    access_token   TEXT,
    reason         TEXT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    next_check_at  BIGINT
);
CREATE INDEX payments_sweep ON payments (state, updated_at);
CREATE INDEX payments_order ON payments (order_id);

-- Append-only history of every transition (and notable callbacks / attempts).
CREATE TABLE payment_events (
    id         INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    from_state TEXT,                               -- NULL when the payment was created
    to_state   TEXT NOT NULL,
    cause      TEXT NOT NULL,
    detail     TEXT,
    attempt    BIGINT NOT NULL DEFAULT 0,
    at         BIGINT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

-- One row per (payment, callback step): decides whether a callback is the first arrival of its
-- step (the Pi SDK re-sends approve/complete every ~10 s; only the first enqueues a job).
CREATE TABLE payment_callbacks (
    payment_id  TEXT NOT NULL,
    step        TEXT NOT NULL,                     -- approve | complete | cancel | error | incomplete
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    armed_count BIGINT NOT NULL,                   -- `count` at the arrival that last enqueued
    armed_at    BIGINT NOT NULL,
    PRIMARY KEY (payment_id, step)
);

-- The outbox: written in the same transaction as the state change; one event per (type, subject).
CREATE TABLE events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: pollers page by id
    event_type        TEXT NOT NULL,
    subject_id        TEXT NOT NULL,
    payload           TEXT NOT NULL,                     -- JSON
    created_at        BIGINT NOT NULL,
    delivered_at      BIGINT,
    delivery_attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    last_error        TEXT,
    UNIQUE (event_type, subject_id)
);
CREATE INDEX events_due ON events (next_attempt_at) WHERE delivered_at IS NULL;
