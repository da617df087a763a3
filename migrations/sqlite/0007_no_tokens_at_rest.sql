-- No Pioneer access tokens at rest (SQLite). Keep in step with
-- ../postgres/0007_no_tokens_at_rest.sql.
--
-- Pi's guidance: never store access tokens. A session is the uid, scopes and expiry Pi
-- verified (plus the token's SHA-256, the key of that cached verification); a cookie-only
-- approve callback is checked against the session's uid. An approve callback's token now
-- rides in the approve job (gone with the job) instead of the payment row.
ALTER TABLE sessions DROP COLUMN access_token;

-- Payment rows keep a token only in needs_attention (an operator's retry can still verify
-- the Pioneer with it). A `received` row loses its token here: its queued approve job, which
-- carries none, waits for the Pi SDK's next approve callback (it re-sends the token every
-- ~10 s).
UPDATE payments SET access_token = NULL
WHERE access_token IS NOT NULL AND state <> 'needs_attention';
