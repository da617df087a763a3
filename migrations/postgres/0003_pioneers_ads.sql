-- Pioneers, sign-in sessions and rewarded-ad claims (Postgres). Timestamps BIGINT unix
-- milliseconds, lists as JSON TEXT. Keep in step with ../sqlite/0003_pioneers_ads.sql.

-- One row per Pioneer, keyed by the uid GET /v2/me returned (never a uid from a client body).
CREATE TABLE pioneers (
    uid           TEXT PRIMARY KEY NOT NULL,
    username      TEXT,                            -- only with the `username` scope
    scopes        TEXT NOT NULL,                   -- JSON array, as of the last verification
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

-- Sign-in sessions: the cookie carries a random opaque id; only its SHA-256 is stored, so a
-- copy of this table cannot be replayed as cookies. A row is also the persistent cache of the
-- token's verification (token_hash = SHA-256 of the access token) until Pi's valid_until.
-- The access token itself is kept because approve callbacks that arrive with only the cookie
-- need a token for the approve job's GET /v2/me; the row is deleted at sign-out.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,        -- hex SHA-256 of the cookie value
    uid          TEXT NOT NULL REFERENCES pioneers (uid),
    token_hash   TEXT NOT NULL,                    -- hex SHA-256 of the access token
    access_token TEXT NOT NULL,
    username     TEXT,
    scopes       TEXT NOT NULL,                    -- JSON array
    valid_until  BIGINT NOT NULL,                  -- Pi's credentials.valid_until, in ms
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL                   -- min(created_at + session TTL, valid_until)
);
CREATE INDEX sessions_token ON sessions (token_hash);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_uid ON sessions (uid);

-- Rewarded-ad claims: the primary key makes an adId claimable once; the first Pioneer who
-- claims it owns it. `status` moves pending -> granted -> revoked, or pending -> denied, only
-- through conditional updates, so a reward is recorded (and ad.granted emitted) at most once.
CREATE TABLE ad_claims (
    ad_id      TEXT PRIMARY KEY NOT NULL,
    uid        TEXT NOT NULL REFERENCES pioneers (uid),
    product_id TEXT,                               -- which reward the app offered, if it said
    status     TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'denied', 'revoked')),
    pi_status  TEXT,                               -- last mediator_ack_status seen (NULL = none yet)
    reason     TEXT,                               -- why denied, when it was
    claimed_at BIGINT NOT NULL,
    checked_at BIGINT NOT NULL,                    -- last time Pi was asked
    checks     BIGINT NOT NULL DEFAULT 0,
    granted_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX ad_claims_uid ON ad_claims (uid);
CREATE INDEX ad_claims_recheck ON ad_claims (status, checked_at);
