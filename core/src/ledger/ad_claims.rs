//! Rewarded-ad claims: which Pioneer claimed an `adId` first (the primary key binds it), and
//! where its reward stands. Every status change is a conditional UPDATE from the status just
//! read (locked `FOR UPDATE` on Postgres, under `BEGIN IMMEDIATE` on SQLite) and writes its
//! outbox event in the same transaction, so however many claims race, a reward is granted
//! once and `ad.granted` / `ad.revoked` are emitted once.

use super::connection::Ledger;
use super::decode::corrupt;
use super::error::LedgerError;
use super::outbox::insert_event_once;
use crate::events::event_type::EventType;
use crate::ids::Uid;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// Where a claimed ad's reward stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdClaimStatus {
    /// Pi has not acknowledged the ad yet; later claims re-check.
    Pending,
    /// Pi said `granted`: the reward is recorded (once).
    Granted,
    /// Pi said `failed` (or revoked an ad it never granted): no reward. Final.
    Denied,
    /// Pi revoked an ad after we granted it: the reward is clawed back. Final.
    Revoked,
}

impl AdClaimStatus {
    /// The stored (and answered) text.
    pub fn as_str(self) -> &'static str {
        match self {
            AdClaimStatus::Pending => "pending",
            AdClaimStatus::Granted => "granted",
            AdClaimStatus::Denied => "denied",
            AdClaimStatus::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Result<AdClaimStatus, LedgerError> {
        match text {
            "pending" => Ok(AdClaimStatus::Pending),
            "granted" => Ok(AdClaimStatus::Granted),
            "denied" => Ok(AdClaimStatus::Denied),
            "revoked" => Ok(AdClaimStatus::Revoked),
            other => Err(LedgerError::Corrupt(format!(
                "unknown ad claim status {other:?}"
            ))),
        }
    }

    /// No answer from Pi can change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, AdClaimStatus::Denied | AdClaimStatus::Revoked)
    }
}

/// What Pi's `mediator_ack_status` said at one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdObservation {
    /// `null` (or a value we do not know): not decided yet.
    Pending,
    Granted,
    Failed,
    Revoked,
}

impl AdObservation {
    fn pi_text(self) -> Option<&'static str> {
        match self {
            AdObservation::Pending => None,
            AdObservation::Granted => Some("granted"),
            AdObservation::Failed => Some("failed"),
            AdObservation::Revoked => Some("revoked"),
        }
    }
}

/// The next status of a claim in `from` after Pi answered `seen`, with the event it emits.
/// The only place ad statuses change.
pub fn next_ad_status(
    from: AdClaimStatus,
    seen: AdObservation,
) -> (AdClaimStatus, Option<EventType>) {
    use AdClaimStatus as S;
    use AdObservation as O;
    match (from, seen) {
        (S::Pending, O::Granted) => (S::Granted, Some(EventType::AdGranted)),
        // Revoked without a grant we saw: nothing to claw back, and no reward either.
        (S::Pending, O::Failed | O::Revoked) => (S::Denied, None),
        (S::Pending, O::Pending) => (S::Pending, None),
        (S::Granted, O::Revoked) => (S::Revoked, Some(EventType::AdRevoked)),
        // Pi cannot un-grant except by revoking; anything else leaves the reward as it is.
        (S::Granted, _) => (S::Granted, None),
        (final_status @ (S::Denied | S::Revoked), _) => (final_status, None),
    }
}

/// One claim.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdClaimRow {
    pub ad_id: String,
    /// The Pioneer who claimed it first (and owns it).
    pub uid: Uid,
    /// The reward the app offered, as the client named it.
    pub product_id: Option<String>,
    pub status: AdClaimStatus,
    /// Pi's last `mediator_ack_status` (`None` = not acknowledged yet).
    pub pi_status: Option<String>,
    /// Why it was denied.
    pub reason: Option<String>,
    /// Unix ms.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub claimed_at: i64,
    /// Last time Pi was asked, unix ms.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub checked_at: i64,
    /// How many times Pi was asked.
    pub checks: i64,
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub granted_at: Option<i64>,
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub revoked_at: Option<i64>,
}

const AD_COLS: &str = "ad_id, uid, product_id, status, pi_status, reason, claimed_at, checked_at, checks, granted_at, revoked_at";

fn claim_from_row(row: &AnyRow) -> Result<AdClaimRow, LedgerError> {
    let uid: String = row.try_get(1)?;
    let status: String = row.try_get(3)?;
    Ok(AdClaimRow {
        ad_id: row.try_get(0)?,
        uid: Uid::parse(&uid).map_err(corrupt("ad_claims.uid"))?,
        product_id: row.try_get(2)?,
        status: AdClaimStatus::parse(&status)?,
        pi_status: row.try_get(4)?,
        reason: row.try_get(5)?,
        claimed_at: row.try_get(6)?,
        checked_at: row.try_get(7)?,
        checks: row.try_get(8)?,
        granted_at: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
    })
}

async fn claim_in(
    conn: &mut AnyConnection,
    pg: bool,
    ad_id: &str,
) -> Result<Option<AdClaimRow>, LedgerError> {
    let lock = if pg { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {AD_COLS} FROM ad_claims WHERE ad_id = $1{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ad_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(claim_from_row).transpose()
}

/// Who holds an ad claim after [`Ledger::bind_ad_claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdBinding {
    /// The claim is this Pioneer's (just created, or theirs from before).
    Ours(AdClaimRow),
    /// Another Pioneer claimed this ad first.
    Theirs(AdClaimRow),
}

/// What [`Ledger::record_ad_status`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdUpdate {
    /// The claim after the update.
    pub row: AdClaimRow,
    /// The status before, when this call changed it.
    pub changed_from: Option<AdClaimStatus>,
    /// The outbox event this call wrote, if any.
    pub event: Option<EventType>,
}

impl Ledger {
    /// One claim, or `None`.
    pub async fn ad_claim(&self, ad_id: &str) -> Result<Option<AdClaimRow>, LedgerError> {
        let sql = format!("SELECT {AD_COLS} FROM ad_claims WHERE ad_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ad_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(claim_from_row).transpose()
    }

    /// Bind `ad_id` to `uid` unless someone claimed it already (the primary key decides), and
    /// say whose it is. A `product_id` given later by the owner fills one that was missing.
    pub async fn bind_ad_claim(
        &self,
        ad_id: &str,
        uid: &Uid,
        product_id: Option<&str>,
        now: i64,
    ) -> Result<AdBinding, LedgerError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO ad_claims (ad_id, uid, product_id, status, claimed_at, checked_at, checks) \
             VALUES ($1, $2, $3, 'pending', $4, $4, 0) ON CONFLICT (ad_id) DO NOTHING",
        )
        .bind(ad_id)
        .bind(uid.as_str())
        .bind(product_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = claim_in(&mut tx, self.is_pg(), ad_id)
            .await?
            .ok_or_else(|| LedgerError::Corrupt(format!("ad claim {ad_id:?} vanished")))?;
        if &row.uid != uid {
            tx.commit().await?;
            return Ok(AdBinding::Theirs(row));
        }
        let row = if row.product_id.is_none() && product_id.is_some() {
            sqlx::query(
                "UPDATE ad_claims SET product_id = $2 WHERE ad_id = $1 AND product_id IS NULL",
            )
            .bind(ad_id)
            .bind(product_id)
            .execute(&mut *tx)
            .await?;
            AdClaimRow {
                product_id: product_id.map(str::to_string),
                ..row
            }
        } else {
            row
        };
        tx.commit().await?;
        Ok(AdBinding::Ours(row))
    }

    /// Record what Pi said about a claimed ad at `now` and move its status through
    /// [`next_ad_status`], writing the `ad.granted` / `ad.revoked` event in the same
    /// transaction. Concurrent calls serialize on the row; only the one that changes the
    /// status writes an event.
    pub async fn record_ad_status(
        &self,
        ad_id: &str,
        seen: AdObservation,
        now: i64,
    ) -> Result<AdUpdate, LedgerError> {
        let pg = self.is_pg();
        let mut tx = self.begin_write().await?;
        let row = claim_in(&mut tx, pg, ad_id).await?.ok_or_else(|| {
            LedgerError::Corrupt(format!("ad claim {ad_id:?} is not in the ledger"))
        })?;
        let (to, event) = next_ad_status(row.status, seen);
        let reason = match (row.status, to, seen) {
            (AdClaimStatus::Pending, AdClaimStatus::Denied, AdObservation::Failed) => {
                Some("Pi reported the ad as failed")
            }
            (AdClaimStatus::Pending, AdClaimStatus::Denied, _) => {
                Some("Pi revoked the ad before it was ever granted")
            }
            _ => None,
        };
        let changed = to != row.status;
        // The status in the WHERE clause makes the change conditional on what was read.
        let updated = sqlx::query(
            "UPDATE ad_claims SET status = $3, pi_status = COALESCE($4, pi_status), \
             reason = COALESCE($5, reason), checked_at = $6, checks = checks + 1, \
             granted_at = CASE WHEN $3 = 'granted' AND granted_at IS NULL THEN $6 ELSE granted_at END, \
             revoked_at = CASE WHEN $3 = 'revoked' AND revoked_at IS NULL THEN $6 ELSE revoked_at END \
             WHERE ad_id = $1 AND status = $2",
        )
        .bind(ad_id)
        .bind(row.status.as_str())
        .bind(to.as_str())
        .bind(seen.pi_text())
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // Someone else moved it between our read and write (cannot happen under the row
            // lock, but never emit an event for a change we did not make).
            tx.rollback().await?;
            let row = self
                .ad_claim(ad_id)
                .await?
                .ok_or_else(|| LedgerError::Corrupt(format!("ad claim {ad_id:?} vanished")))?;
            return Ok(AdUpdate {
                row,
                changed_from: None,
                event: None,
            });
        }
        let after = claim_in(&mut tx, pg, ad_id)
            .await?
            .ok_or_else(|| LedgerError::Corrupt(format!("ad claim {ad_id:?} vanished")))?;
        let mut written = None;
        if changed && let Some(event) = event {
            let payload = serde_json::json!({ "ad": &after });
            if insert_event_once(&mut tx, pg, event, ad_id, &payload, now).await? {
                written = Some(event);
            }
        }
        tx.commit().await?;
        Ok(AdUpdate {
            row: after,
            changed_from: changed.then_some(row.status),
            event: written,
        })
    }

    /// Claims a reconcile job should re-check with Pi: pending ones, and granted ones (a grant
    /// can still be revoked), last checked at or before `checked_before` (unix ms; at, so that
    /// a minimum age of zero takes a claim checked within the current millisecond too), oldest
    /// first.
    pub async fn ad_claims_to_recheck(
        &self,
        checked_before: i64,
        limit: i64,
    ) -> Result<Vec<AdClaimRow>, LedgerError> {
        let sql = format!(
            "SELECT {AD_COLS} FROM ad_claims WHERE status IN ('pending', 'granted') \
             AND checked_at <= $1 ORDER BY checked_at LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(checked_before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(claim_from_row).collect()
    }
}
