-- Payment ids Pi does not know (SQLite). Keep in step with ../postgres/0009_unknown_payment_ids_a.sql.
--
-- A callback may name any id; the first job that asks Pi about one it answers 404
-- payment_not_found records it here, and later callbacks naming it are refused without asking
-- Pi again: a made-up id costs one Pi call, ever.
CREATE TABLE unknown_payment_ids (
    id      TEXT PRIMARY KEY NOT NULL,
    seen_at BIGINT NOT NULL
);
