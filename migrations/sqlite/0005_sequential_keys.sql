-- Sequential keys for the per-payment tables (SQLite). Keep in step with
-- ../postgres/0005_sequential_keys.sql.
--
-- Pi's payment ids are random text, so every index keyed by them takes each new payment on a
-- random page: under a burst of approve callbacks each commit dirtied (and wrote to the WAL,
-- then checkpointed) one page per payment in EACH such index. Only `payments` needs to be
-- found by its text id; the history and the callback counters now hang off `payments.seq`, a
-- number that grows with every new payment, so their new rows land on the last page.

-- The payment's number. Never reused or changed (unlike SQLite's rowid, which VACUUM may
-- renumber). Inserts that leave it NULL get the next one from the trigger below; the hot
-- batch path supplies it itself.
ALTER TABLE payments ADD COLUMN seq BIGINT;
UPDATE payments SET seq = rowid;
CREATE UNIQUE INDEX payments_seq ON payments (seq);
CREATE TRIGGER payments_assign_seq AFTER INSERT ON payments WHEN NEW.seq IS NULL
BEGIN
    UPDATE payments SET seq = (SELECT IFNULL(MAX(seq), 0) + 1 FROM payments)
    WHERE rowid = NEW.rowid;
END;

-- History by payment number (payment_id stays for readers of the raw table).
ALTER TABLE payment_events ADD COLUMN payment_seq BIGINT;
UPDATE payment_events
SET payment_seq = (SELECT p.seq FROM payments p WHERE p.id = payment_events.payment_id);
DROP INDEX payment_events_payment;
CREATE INDEX payment_events_payment ON payment_events (payment_seq, id);

-- Callback counters keyed by payment number, stored in key order (no separate index).
CREATE TABLE payment_callbacks_by_seq (
    payment_seq BIGINT NOT NULL,
    step        TEXT NOT NULL,                     -- approve | complete | cancel | error | incomplete
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    armed_count BIGINT NOT NULL,                   -- `count` at the arrival that last enqueued
    armed_at    BIGINT NOT NULL,
    PRIMARY KEY (payment_seq, step)
) WITHOUT ROWID;
INSERT INTO payment_callbacks_by_seq
    (payment_seq, step, first_at, last_at, count, armed_count, armed_at)
SELECT p.seq, c.step, c.first_at, c.last_at, c.count, c.armed_count, c.armed_at
FROM payment_callbacks c JOIN payments p ON p.id = c.payment_id;
DROP TABLE payment_callbacks;
ALTER TABLE payment_callbacks_by_seq RENAME TO payment_callbacks;
