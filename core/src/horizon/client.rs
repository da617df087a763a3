//! [`HorizonClient`]: the HTTP calls to Horizon (the Pi blockchain's API): accounts and sequence
//! numbers, the base fee, submitting envelopes, and reading transactions back, both to confirm
//! our payouts and to find a landed payout by its memo.

use super::error::{HorizonError, SubmitError};
use super::records::{Account, LedgerHead, Order, Page, PaymentOp, SubmitOk, TxInfo};
use super::wire::{
    AccountJson, Embedded, FeeStatsJson, LedgerJson, NumOrString, OpJson, TxJson, classify_submit,
    parse_stroops, problem_detail,
};
use crate::rate_limit::RateLimiter;
use crate::telemetry::{self, CallStatus, Upstream};
use backon::{ExponentialBuilder, Retryable};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// Extra tries of a Horizon read after a dropped connection or a non-throttling 5xx.
pub const READ_RETRIES: usize = 3;
/// The first pause before such a try (doubling, with jitter).
const READ_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Most records Horizon returns per page.
pub const MAX_PAGE_LIMIT: u32 = 200;
/// How many of a wallet's most recent transactions [`HorizonClient::find_transaction_by_memo`]
/// scans when it is given no cursor.
pub const FIND_BY_MEMO_SCAN_LIMIT: usize = 2_000;

/// A Horizon client. Cheap to clone (the connection pool and the rate limiter are shared).
#[derive(Clone, Debug)]
pub struct HorizonClient {
    base: Url,
    http: reqwest::Client,
    /// Horizon's budget (`HORIZON_RATE_LIMIT`): a permit before every request. `None` only
    /// for clients built without one (tests, tools on a Horizon of their own).
    limiter: Option<Arc<RateLimiter>>,
}

impl HorizonClient {
    /// A client for the Horizon at `base_url` (e.g. `https://api.testnet.minepi.com` or pi-sim's
    /// `horizon_url`); every request gives up after `timeout`. If the process has not installed a
    /// rustls crypto provider yet, this installs ring's (reqwest is built without one).
    pub fn new(base_url: &str, timeout: Duration) -> Result<HorizonClient, HorizonError> {
        let mut base = Url::parse(base_url).map_err(|e| {
            HorizonError::BadInput(format!(
                "PI_HORIZON_URL {base_url:?} is not a URL ({e}): use e.g. https://api.testnet.minepi.com"
            ))
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: either provider works.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| HorizonError::Transport {
                url: base.to_string(),
                detail: format!("building the HTTP client: {e}"),
            })?;
        Ok(HorizonClient {
            base,
            http,
            limiter: None,
        })
    }

    /// This client with every request taking a permit from `limiter` first. Every clone shares
    /// it, so the payout pipeline, U2A verification and channel creation spend one budget.
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> HorizonClient {
        self.limiter = Some(limiter);
        self
    }

    /// The limiter every request of this client waits on, if any.
    pub fn rate_limiter(&self) -> Option<&Arc<RateLimiter>> {
        self.limiter.as_ref()
    }

    /// Wait for a permit of the Horizon budget; called right before every request.
    async fn permit(&self) {
        if let Some(limiter) = &self.limiter {
            let waiting = Instant::now();
            limiter.acquire().await;
            telemetry::record_limiter_wait(Upstream::Horizon, waiting.elapsed());
        }
    }

    /// The base URL (with a trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `base + segments`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, HorizonError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                HorizonError::BadInput(format!("{} cannot be a base URL", self.base))
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// GET `url`, `None` on 404, JSON otherwise. A read is safe to repeat, so a dropped
    /// connection or a 5xx that is not a throttle is tried again at once a few times
    /// ([`READ_RETRIES`]): one flaky page must not fail a memo scan of many pages, nor count as a
    /// failed attempt of a payout. Throttles (429, 503, 504, timeouts) go back to the caller,
    /// which waits as a throttle should instead of asking again sooner.
    /// `endpoint` is the path template (e.g. `/accounts/{id}`) for the metrics.
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<Option<T>, HorizonError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(READ_RETRY_DELAY)
            .with_max_times(READ_RETRIES)
            .with_jitter();
        (|| self.get_json_once(endpoint, url.clone()))
            .retry(backoff)
            .when(HorizonError::is_flaky_read)
            .notify(|error, wait| {
                tracing::debug!(%error, ?wait, "Horizon read failed; trying again");
            })
            .await
    }

    /// One GET of `url` (see [`HorizonClient::get_json`]).
    async fn get_json_once<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<Option<T>, HorizonError> {
        let shown = url.to_string();
        self.permit().await;
        let sent = Instant::now();
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                record_call("GET", endpoint, call_status(&e), sent);
                transport_error(&shown, &e)
            })?;
        let status = resp.status();
        record_call("GET", endpoint, CallStatus::Http(status.as_u16()), sent);
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(HorizonError::Status {
                url: shown,
                status: status.as_u16(),
                detail: problem_detail(&body),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| HorizonError::Decode {
                url: shown,
                detail: e.to_string(),
            })
    }

    /// `GET /` (Horizon's root): the passphrase of the network this Horizon serves, so that a
    /// deployment can refuse to run against another network than it was configured for.
    pub async fn network_passphrase(&self) -> Result<String, HorizonError> {
        #[derive(serde::Deserialize)]
        struct Root {
            network_passphrase: String,
        }
        let url = self.base.clone();
        let shown = url.to_string();
        match self.get_json::<Root>("/", url).await? {
            Some(root) => Ok(root.network_passphrase),
            None => Err(HorizonError::Decode {
                url: shown,
                detail: "404 at Horizon's root".into(),
            }),
        }
    }

    /// `GET /accounts/{id}`: the sequence and native balance, `None` if the account does not
    /// exist (never funded).
    pub async fn account(&self, account_id: &str) -> Result<Option<Account>, HorizonError> {
        let url = self.url(&["accounts", account_id])?;
        let shown = url.to_string();
        let Some(a) = self.get_json::<AccountJson>("/accounts/{id}", url).await? else {
            return Ok(None);
        };
        let decode = |detail: String| HorizonError::Decode {
            url: shown.clone(),
            detail,
        };
        let sequence = a
            .sequence
            .parse::<i64>()
            .map_err(|_| decode(format!("sequence {:?} is not an integer", a.sequence)))?;
        let balance_stroops = match a.balances.iter().find(|b| b.asset_type == "native") {
            Some(b) => parse_stroops(&b.balance)
                .ok_or_else(|| decode(format!("balance {:?} is not an amount", b.balance)))?,
            None => 0,
        };
        Ok(Some(Account {
            id: a
                .account_id
                .or(a.id)
                .unwrap_or_else(|| account_id.to_string()),
            sequence,
            balance_stroops,
        }))
    }

    /// `GET /fee_stats` `last_ledger_base_fee`, in stroops. Use `max(this, PI_BASE_FEE_STROOPS)`.
    pub async fn base_fee(&self) -> Result<i64, HorizonError> {
        let url = self.url(&["fee_stats"])?;
        let shown = url.to_string();
        let stats: FeeStatsJson =
            self.get_json("/fee_stats", url)
                .await?
                .ok_or_else(|| HorizonError::Status {
                    url: shown.clone(),
                    status: 404,
                    detail: "no /fee_stats".to_string(),
                })?;
        match stats.last_ledger_base_fee {
            NumOrString::Num(n) => Ok(n),
            NumOrString::Str(s) => s.parse().map_err(|_| HorizonError::Decode {
                url: shown,
                detail: format!("last_ledger_base_fee {s:?} is not an integer"),
            }),
        }
    }

    /// `GET /ledgers?order=desc&limit=1`: the latest closed ledger, whose close time is the
    /// chain's clock (time bounds and expiry are judged by it).
    pub async fn latest_ledger(&self) -> Result<LedgerHead, HorizonError> {
        let mut url = self.url(&["ledgers"])?;
        url.query_pairs_mut()
            .append_pair("order", "desc")
            .append_pair("limit", "1");
        let shown = url.to_string();
        let page = self
            .get_json::<Embedded<LedgerJson>>("/ledgers", url)
            .await?;
        let Some(latest) = page.and_then(|p| p.embedded.records.into_iter().next()) else {
            return Err(HorizonError::Decode {
                url: shown,
                detail: "Horizon lists no ledger".to_string(),
            });
        };
        let closed_at = chrono::DateTime::parse_from_rfc3339(&latest.closed_at)
            .map_err(|e| HorizonError::Decode {
                url: shown,
                detail: format!(
                    "ledger closed_at {:?} is not a timestamp: {e}",
                    latest.closed_at
                ),
            })?
            .timestamp();
        Ok(LedgerHead {
            sequence: latest.sequence,
            closed_at,
        })
    }

    /// `POST /transactions` with form field `tx`. Horizon answers once the ledger closes.
    /// Resubmitting the same envelope is safe and answers the same hash.
    pub async fn submit(&self, envelope_b64: &str) -> Result<SubmitOk, SubmitError> {
        let url = self
            .url(&["transactions"])
            .map_err(|e| SubmitError::Transport(e.to_string()))?;
        self.permit().await;
        let sent = Instant::now();
        let resp = self
            .http
            .post(url)
            .header("accept", "application/json")
            .form(&[("tx", envelope_b64)])
            .send()
            .await
            .map_err(|e| {
                record_call("POST", "/transactions", call_status(&e), sent);
                if e.is_timeout() {
                    SubmitError::Timeout
                } else {
                    SubmitError::Transport(error_chain(&e))
                }
            })?;
        let status = resp.status();
        record_call(
            "POST",
            "/transactions",
            CallStatus::Http(status.as_u16()),
            sent,
        );
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                SubmitError::Timeout
            } else {
                SubmitError::Transport(error_chain(&e))
            }
        })?;
        classify_submit(status.as_u16(), &body)
    }

    /// `GET /transactions/{hash}`; `None` if Horizon does not know it (not applied yet, or never).
    pub async fn transaction(&self, hash: &str) -> Result<Option<TxInfo>, HorizonError> {
        let url = self.url(&["transactions", hash])?;
        Ok(self
            .get_json::<TxJson>("/transactions/{hash}", url)
            .await?
            .map(TxInfo::from))
    }

    /// `GET /transactions/{hash}/payments`: the payment and create_account operations of a
    /// transaction, amounts exact. Empty if the transaction is unknown.
    pub async fn transaction_payments(&self, hash: &str) -> Result<Vec<PaymentOp>, HorizonError> {
        let mut url = self.url(&["transactions", hash, "payments"])?;
        url.query_pairs_mut()
            .append_pair("limit", &MAX_PAGE_LIMIT.to_string());
        let shown = url.to_string();
        let Some(page) = self
            .get_json::<Embedded<OpJson>>("/transactions/{hash}/payments", url)
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for op in page.embedded.records {
            let bad = |what: &str| HorizonError::Decode {
                url: shown.clone(),
                detail: format!("{} record without a valid {what}", op.kind),
            };
            let payment = match op.kind.as_str() {
                "payment" => PaymentOp {
                    from: op.from.clone().ok_or_else(|| bad("from"))?,
                    to: op.to.clone().ok_or_else(|| bad("to"))?,
                    amount_stroops: op
                        .amount
                        .as_deref()
                        .and_then(parse_stroops)
                        .ok_or_else(|| bad("amount"))?,
                    asset_type: op.asset_type.clone().ok_or_else(|| bad("asset_type"))?,
                    kind: op.kind.clone(),
                },
                "create_account" => PaymentOp {
                    from: op.funder.clone().ok_or_else(|| bad("funder"))?,
                    to: op.account.clone().ok_or_else(|| bad("account"))?,
                    amount_stroops: op
                        .starting_balance
                        .as_deref()
                        .and_then(parse_stroops)
                        .ok_or_else(|| bad("starting_balance"))?,
                    asset_type: "native".to_string(),
                    kind: op.kind.clone(),
                },
                // Path payments, merges…: pi-payments never sends them; keep them visible.
                _ => PaymentOp {
                    from: op.from.clone().or(op.funder.clone()).unwrap_or_default(),
                    to: op.to.clone().or(op.account.clone()).unwrap_or_default(),
                    amount_stroops: op.amount.as_deref().and_then(parse_stroops).unwrap_or(0),
                    asset_type: op.asset_type.clone().unwrap_or_default(),
                    kind: op.kind.clone(),
                },
            };
            out.push(payment);
        }
        Ok(out)
    }

    /// `GET /accounts/{id}/transactions?cursor=&limit=&order=`: one page of an account's
    /// transactions (limit capped at 200). An unknown account gives an empty page.
    pub async fn account_transactions(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        limit: u32,
        order: Order,
    ) -> Result<Page<TxInfo>, HorizonError> {
        let mut url = self.url(&["accounts", account_id, "transactions"])?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
            q.append_pair("limit", &limit.clamp(1, MAX_PAGE_LIMIT).to_string());
            q.append_pair("order", order.as_str());
        }
        let records: Vec<TxInfo> = match self
            .get_json::<Embedded<TxJson>>("/accounts/{id}/transactions", url)
            .await?
        {
            Some(page) => page
                .embedded
                .records
                .into_iter()
                .map(TxInfo::from)
                .collect(),
            None => Vec::new(),
        };
        let next_cursor = records.last().map(|r| r.paging_token.clone());
        Ok(Page {
            records,
            next_cursor,
        })
    }

    /// Find a **successful** transaction of `account` whose text memo is `memo` (a Pi payment
    /// identifier): the check before rebuilding a payout whose envelope expired, so a payout that
    /// landed under an earlier envelope is never paid again. With `since_cursor` it scans every
    /// transaction after that cursor (oldest first); without, the newest
    /// [`FIND_BY_MEMO_SCAN_LIMIT`] transactions (newest first), and with `not_before_ms` (Unix
    /// milliseconds, e.g. when the payout was created) it stops paging at the first page reaching
    /// a transaction older than that: a busy wallet's older history cannot hold it. Failed
    /// transactions with the memo are skipped: they paid nothing.
    pub async fn find_transaction_by_memo(
        &self,
        account_id: &str,
        memo: &str,
        since_cursor: Option<&str>,
        not_before_ms: Option<i64>,
    ) -> Result<Option<TxInfo>, HorizonError> {
        let order = if since_cursor.is_some() {
            Order::Asc
        } else {
            Order::Desc
        };
        let mut cursor = since_cursor.map(str::to_string);
        let mut scanned = 0usize;
        loop {
            let page = self
                .account_transactions(account_id, cursor.as_deref(), MAX_PAGE_LIMIT, order)
                .await?;
            let n = page.records.len();
            // Newest first: the page's last record is its oldest (unparsable time: keep going).
            let oldest = page
                .records
                .last()
                .and_then(|t| close_time_ms(&t.created_at));
            if let Some(hit) = page
                .records
                .into_iter()
                .find(|t| t.successful && t.memo_type == "text" && t.memo.as_deref() == Some(memo))
            {
                return Ok(Some(hit));
            }
            scanned += n;
            let short_page = n < MAX_PAGE_LIMIT as usize;
            let reached_older = since_cursor.is_none()
                && not_before_ms.is_some_and(|bound| oldest.is_some_and(|ms| ms < bound));
            if short_page
                || reached_older
                || page.next_cursor.is_none()
                || page.next_cursor == cursor
                || (since_cursor.is_none() && scanned >= FIND_BY_MEMO_SCAN_LIMIT)
            {
                return Ok(None);
            }
            cursor = page.next_cursor;
        }
    }
}

/// A ledger close time (ISO 8601, as Horizon writes `created_at`) in Unix milliseconds.
fn close_time_ms(created_at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// One attempt at `endpoint` (a path template), for the metrics.
fn record_call(method: &str, endpoint: &'static str, status: CallStatus, sent: Instant) {
    telemetry::record_upstream_call(Upstream::Horizon, method, endpoint, status, sent.elapsed());
}

/// A failure before any answer, as the metrics' `status` label.
fn call_status(e: &reqwest::Error) -> CallStatus {
    if e.is_timeout() {
        CallStatus::Timeout
    } else {
        CallStatus::ConnectionError
    }
}

fn transport_error(url: &str, e: &reqwest::Error) -> HorizonError {
    if e.is_timeout() {
        HorizonError::Timeout {
            url: url.to_string(),
        }
    } else {
        HorizonError::Transport {
            url: url.to_string(),
            detail: error_chain(e),
        }
    }
}

/// The error and its sources, joined (reqwest's top-level message alone is vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::horizon::client::HorizonClient;
    use crate::horizon::error::HorizonError;
    use std::time::Duration;

    #[test]
    fn bad_base_url_is_refused() {
        assert!(matches!(
            HorizonClient::new("not a url", Duration::from_secs(1)),
            Err(HorizonError::BadInput(_))
        ));
        let c = HorizonClient::new("http://127.0.0.1:9/horizon", Duration::from_secs(1)).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9/horizon/");
        assert_eq!(
            c.url(&["accounts", "G/..?x"]).unwrap().as_str(),
            "http://127.0.0.1:9/horizon/accounts/G%2F..%3Fx"
        );
    }

    #[tokio::test]
    async fn unreachable_horizon_is_transient() {
        // Port 9 (discard) is closed on test machines: connection refused.
        let c = HorizonClient::new("http://127.0.0.1:9", Duration::from_secs(2)).unwrap();
        let e = c
            .account("GAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QZ6Q")
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        let s = c.submit("AAAA").await.unwrap_err();
        assert!(s.may_have_landed(), "{s}");
    }
}
