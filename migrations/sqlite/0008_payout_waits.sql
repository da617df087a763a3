-- Which payout of ours a payout waits behind: Pi allows one open A2U payment (per Pioneer or per
-- app) and answered `ongoing_payment_found` naming that payout's payment. When the payout ahead
-- settles, the oldest payout waiting behind it is woken and the others now wait behind that one,
-- so each settle wakes one payout instead of re-trying every create. Keep in step with the
-- other database's 0008_payout_waits.sql.
ALTER TABLE payouts ADD COLUMN blocked_by TEXT;
CREATE INDEX payouts_blocked_by ON payouts (blocked_by) WHERE blocked_by IS NOT NULL;
