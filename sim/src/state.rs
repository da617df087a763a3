//! The Pi Platform's memory and rules: users, access tokens, payments, rewarded-ad statuses.
//! Every operation takes `&mut PlatformState` under one lock, so each state change is atomic
//! (ten parallel creates for one uid: exactly one wins) and every refusal leaves state untouched.

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::amount::format_decimal;
use crate::chain::handle::Chain;
use crate::chain::records::{OpRecord, TxRecord};
use crate::error::ApiError;
use crate::keys::Keypair;

/// The settings every Platform operation needs (fixed for the simulator's life).
pub struct Settings {
    /// The server API key (`Authorization: Key …`).
    pub api_key: String,
    /// Network passphrase, also `PaymentDTO.network`.
    pub network: String,
    /// Base URL of the Platform listener, e.g. `http://127.0.0.1:18081`.
    pub platform_url: String,
    /// Base URL of the Horizon listener (for `transaction._link`).
    pub horizon_url: String,
    /// The app wallet: source of A2U payments, destination of U2A ones.
    pub app_wallet: Keypair,
    /// Its `G…` address (cached).
    pub app_address: String,
    /// Stroops the app wallet gets at start and after a reset.
    pub app_balance: i64,
    /// Stroops every new Pioneer wallet gets.
    pub pioneer_balance: i64,
    /// Whom Pi's one-open-A2U-payment limit counts.
    pub a2u_open_limit: A2uOpenLimit,
}

/// Whom `ongoing_payment_found` counts: Pi's guides say one open A2U payment per Pioneer in
/// one place and one at a time per app in another, so pi-sim can play either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum A2uOpenLimit {
    /// One open A2U payment per Pioneer (uid).
    #[default]
    PerUser,
    /// One open A2U payment for the whole app.
    PerApp,
}

/// Who pays whom (`PaymentDTO.direction`, as serde spells it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// U2A: a Pioneer pays the app.
    UserToApp,
    /// A2U: the app pays a Pioneer.
    AppToUser,
}

/// `PaymentDTO.status`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PaymentStatus {
    pub developer_approved: bool,
    pub transaction_verified: bool,
    pub developer_completed: bool,
    pub cancelled: bool,
    pub user_cancelled: bool,
}

/// The transaction Pi has linked to a payment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkedTx {
    pub txid: String,
    pub verified: bool,
}

/// A payment as the Platform stores it (and the state file keeps it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payment {
    // Fixed at creation: who pays whom, what and why.
    pub identifier: String,
    pub direction: Direction,
    pub user_uid: String,
    pub from_address: String,
    pub to_address: String,
    pub amount: i64,
    pub memo: String,
    /// The metadata object, kept as its JSON text so numbers inside stay exact.
    pub metadata: Box<RawValue>,
    pub created_at: String,
    // Changed by the developer, the Pioneer and the chain.
    pub status: PaymentStatus,
    pub transaction: Option<LinkedTx>,
    /// A control-API submission is in flight (a second one is refused).
    pub submitting: bool,
    /// The network Pi records the payment on, when not the simulator's own (a Pioneer paying
    /// from an app on another network: the control API's `network`, for tests).
    pub network: Option<String>,
}

impl Payment {
    /// Neither completed nor cancelled (by the developer or the Pioneer).
    pub fn is_open(&self) -> bool {
        !self.status.developer_completed && !self.is_cancelled()
    }

    /// Cancelled by the developer or by the Pioneer.
    pub fn is_cancelled(&self) -> bool {
        self.status.cancelled || self.status.user_cancelled
    }

    /// The wire shape.
    pub fn dto(&self, settings: &Settings) -> PaymentDto {
        PaymentDto {
            identifier: self.identifier.clone(),
            user_uid: self.user_uid.clone(),
            amount: amount_json(self.amount),
            memo: self.memo.clone(),
            metadata: self.metadata.clone(),
            from_address: self.from_address.clone(),
            to_address: self.to_address.clone(),
            direction: self.direction,
            created_at: self.created_at.clone(),
            network: self
                .network
                .clone()
                .unwrap_or_else(|| settings.network.clone()),
            status: self.status,
            transaction: self.transaction.as_ref().map(|tx| TransactionDto {
                txid: tx.txid.clone(),
                verified: tx.verified,
                link: format!("{}/transactions/{}", settings.horizon_url, tx.txid),
            }),
        }
    }
}

/// An amount in stroops as a JSON number with its exact decimal text.
pub fn amount_json(stroops: i64) -> Box<RawValue> {
    // A formatted decimal is always valid JSON number text.
    RawValue::from_string(format_decimal(stroops)).unwrap_or_default()
}

/// `PaymentDTO` exactly as Pi serializes it.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentDto {
    pub identifier: String,
    pub user_uid: String,
    pub amount: Box<RawValue>,
    pub memo: String,
    pub metadata: Box<RawValue>,
    pub from_address: String,
    pub to_address: String,
    pub direction: Direction,
    pub created_at: String,
    pub network: String,
    pub status: PaymentStatus,
    pub transaction: Option<TransactionDto>,
}

/// `PaymentDTO.transaction`.
#[derive(Clone, Debug, Serialize)]
pub struct TransactionDto {
    pub txid: String,
    pub verified: bool,
    #[serde(rename = "_link")]
    pub link: String,
}

/// A Pioneer known to the app.
#[derive(Clone)]
pub struct User {
    pub uid: String,
    pub username: String,
    /// The Pioneer's wallet; the simulator signs U2A transactions with it.
    pub wallet: Keypair,
    /// Whether the Pioneer granted the app the `wallet_address` scope, needed to be paid
    /// (A2U). Users made by the control API have; the scopes of their latest minted token
    /// decide afterwards.
    pub wallet_address_granted: bool,
}

/// An access token minted by the control API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    pub uid: String,
    pub scopes: Vec<String>,
    pub valid_until: DateTime<Utc>,
}

/// `RewardedAdStatusDTO`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdStatus {
    pub identifier: String,
    pub mediator_ack_status: Option<String>,
    pub mediator_granted_at: Option<String>,
    pub mediator_revoked_at: Option<String>,
}

/// What a validated create request carries (shared by A2U creates and control-API U2A creates).
pub struct NewPayment {
    pub uid: String,
    pub amount: i64,
    pub memo: String,
    pub metadata: Box<RawValue>,
}

/// Everything the Platform remembers.
#[derive(Default)]
pub struct PlatformState {
    payments: Vec<Payment>,
    index: HashMap<String, usize>,
    /// uid → identifier of its open A2U payment.
    open_a2u: HashMap<String, String>,
    /// txid → identifier of the payment it is linked to.
    linked: HashMap<String, String>,
    users: HashMap<String, User>,
    tokens: HashMap<String, Token>,
    ads: HashMap<String, AdStatus>,
}

/// A Pioneer as the state file keeps it: the wallet as its seed.
#[derive(Serialize, Deserialize)]
pub(crate) struct UserSnapshot {
    uid: String,
    username: String,
    wallet_seed: String,
    wallet_address_granted: bool,
}

/// What the state file keeps of the Platform; the indexes are rebuilt from it.
#[derive(Serialize, Deserialize)]
pub(crate) struct PlatformSnapshot {
    payments: Vec<Payment>,
    users: Vec<UserSnapshot>,
    tokens: Vec<(String, Token)>,
    ads: Vec<AdStatus>,
}

impl PlatformState {
    /// Everything worth keeping across a restart (a submission in flight is not: it is
    /// answered, or not, before shutdown).
    pub(crate) fn snapshot(&self) -> PlatformSnapshot {
        PlatformSnapshot {
            payments: self
                .payments
                .iter()
                .cloned()
                .map(|p| Payment {
                    submitting: false,
                    ..p
                })
                .collect(),
            users: self
                .users
                .values()
                .map(|u| UserSnapshot {
                    uid: u.uid.clone(),
                    username: u.username.clone(),
                    wallet_seed: u.wallet.secret_seed(),
                    wallet_address_granted: u.wallet_address_granted,
                })
                .collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect(),
            ads: self.ads.values().cloned().collect(),
        }
    }

    /// The state a snapshot describes, its indexes rebuilt; `None` if a Pioneer's wallet
    /// seed is unreadable.
    pub(crate) fn restore(snapshot: PlatformSnapshot) -> Option<PlatformState> {
        let mut state = PlatformState::default();
        for user in snapshot.users {
            let wallet = Keypair::from_seed(&user.wallet_seed)?;
            state.users.insert(
                user.uid.clone(),
                User {
                    uid: user.uid,
                    username: user.username,
                    wallet,
                    wallet_address_granted: user.wallet_address_granted,
                },
            );
        }
        for payment in snapshot.payments {
            if payment.direction == Direction::AppToUser && payment.is_open() {
                state
                    .open_a2u
                    .insert(payment.user_uid.clone(), payment.identifier.clone());
            }
            if let Some(tx) = &payment.transaction {
                state
                    .linked
                    .insert(tx.txid.clone(), payment.identifier.clone());
            }
            state.insert(payment);
        }
        state.tokens = snapshot.tokens.into_iter().collect();
        state.ads = snapshot
            .ads
            .into_iter()
            .map(|ad| (ad.identifier.clone(), ad))
            .collect();
        Some(state)
    }
}

/// `n` random ASCII letters and digits.
pub fn random_alphanumeric(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Now, as Pi writes timestamps.
pub fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl PlatformState {
    /// Every payment, oldest first.
    pub fn payments(&self) -> &[Payment] {
        &self.payments
    }

    /// One payment by identifier.
    pub fn payment(&self, id: &str) -> Option<&Payment> {
        self.index.get(id).map(|&i| &self.payments[i])
    }

    fn payment_mut(&mut self, id: &str) -> Result<&mut Payment, ApiError> {
        match self.index.get(id) {
            Some(&i) => Ok(&mut self.payments[i]),
            None => Err(ApiError::payment_not_found(id)),
        }
    }

    /// Whether an identifier names a payment (for attributing Horizon submissions).
    pub fn has_payment(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Every user, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The user with this uid, created with a funded wallet when unknown; a given username
    /// replaces the stored one.
    pub fn ensure_user(
        &mut self,
        uid: &str,
        username: Option<&str>,
        settings: &Settings,
        chain: &Chain,
    ) -> User {
        let user = self.users.entry(uid.to_owned()).or_insert_with(|| {
            let wallet = Keypair::random();
            chain.fund_account(&wallet.public_key(), settings.pioneer_balance);
            User {
                uid: uid.to_owned(),
                username: format!("pioneer_{uid}"),
                wallet,
                wallet_address_granted: true,
            }
        });
        if let Some(name) = username {
            user.username = name.to_owned();
        }
        user.clone()
    }

    /// Mints an access token for `uid` (creating the user if needed).
    pub fn mint_token(
        &mut self,
        uid: &str,
        username: Option<&str>,
        scopes: Vec<String>,
        valid_until: DateTime<Utc>,
        settings: &Settings,
        chain: &Chain,
    ) -> (String, User) {
        self.ensure_user(uid, username, settings, chain);
        let granted = scopes.iter().any(|s| s == "wallet_address");
        let user = match self.users.get_mut(uid) {
            Some(user) => {
                user.wallet_address_granted = granted;
                user.clone()
            }
            None => self.ensure_user(uid, username, settings, chain),
        };
        let token = random_alphanumeric(40);
        self.tokens.insert(
            token.clone(),
            Token {
                uid: uid.to_owned(),
                scopes,
                valid_until,
            },
        );
        (token, user)
    }

    /// The token's record and its user if the token exists and has not expired.
    pub fn token(&self, token: &str) -> Result<(&Token, &User), ApiError> {
        let invalid = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", msg);
        let record = self.tokens.get(token).ok_or_else(|| {
            invalid("The access token is unknown; get a fresh one from Pi.authenticate")
        })?;
        if record.valid_until <= Utc::now() {
            return Err(invalid(
                "The access token has expired; get a fresh one from Pi.authenticate",
            ));
        }
        let user = self.users.get(&record.uid).ok_or_else(|| {
            invalid("The access token's user no longer exists; authenticate again")
        })?;
        Ok((record, user))
    }

    fn insert(&mut self, payment: Payment) {
        self.index
            .insert(payment.identifier.clone(), self.payments.len());
        self.payments.push(payment);
    }

    fn fresh_identifier(&self) -> String {
        loop {
            let id = random_alphanumeric(28);
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    /// `POST /v2/payments`: an A2U payment, created already approved. Refused with
    /// `ongoing_payment_found` (+ the open payment) while the uid has an open A2U payment,
    /// `user_not_found` for a uid that never used the app, `missing_scope` for a Pioneer who did
    /// not grant `wallet_address`.
    pub fn create_a2u(
        &mut self,
        new: NewPayment,
        settings: &Settings,
    ) -> Result<Payment, ApiError> {
        let open = match settings.a2u_open_limit {
            A2uOpenLimit::PerUser => self.open_a2u.get(&new.uid),
            A2uOpenLimit::PerApp => self.open_a2u.values().next(),
        };
        if let Some(open) = open
            && let Some(payment) = self.payment(open)
        {
            return Err(ApiError::bad_request(
                "ongoing_payment_found",
                "This user already has an app-to-user payment that is neither completed nor cancelled; complete or cancel it first (it is in `payment`)",
            )
            .with_payment(&payment.identifier, &payment.dto(settings)));
        }
        // Pi pays only Pioneers of this app (uids from /me) who granted `wallet_address`.
        let Some(user) = self.users.get(&new.uid).cloned() else {
            return Err(ApiError::bad_request(
                "user_not_found",
                "No user with this uid has used this app; use the uid /v2/me returned for it",
            ));
        };
        if !user.wallet_address_granted {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_scope",
                "The user has not granted the wallet_address scope to this app",
            ));
        }
        let payment = Payment {
            identifier: self.fresh_identifier(),
            user_uid: new.uid.clone(),
            amount: new.amount,
            memo: new.memo,
            metadata: new.metadata,
            from_address: settings.app_address.clone(),
            to_address: user.wallet.public_key(),
            direction: Direction::AppToUser,
            created_at: now_iso(),
            status: PaymentStatus {
                developer_approved: true,
                ..PaymentStatus::default()
            },
            transaction: None,
            submitting: false,
            network: None,
        };
        self.open_a2u
            .insert(new.uid.clone(), payment.identifier.clone());
        self.insert(payment.clone());
        Ok(payment)
    }

    /// Control API: a Pioneer starts a U2A payment (as `Pi.createPayment` would).
    pub fn create_u2a(
        &mut self,
        new: NewPayment,
        network: Option<String>,
        settings: &Settings,
        chain: &Chain,
    ) -> Payment {
        let user = self.ensure_user(&new.uid, None, settings, chain);
        let payment = Payment {
            identifier: self.fresh_identifier(),
            user_uid: new.uid,
            amount: new.amount,
            memo: new.memo,
            metadata: new.metadata,
            from_address: user.wallet.public_key(),
            to_address: settings.app_address.clone(),
            direction: Direction::UserToApp,
            created_at: now_iso(),
            status: PaymentStatus::default(),
            transaction: None,
            submitting: false,
            network,
        };
        self.insert(payment.clone());
        payment
    }

    /// `POST /v2/payments/{id}/approve`.
    pub fn approve(&mut self, id: &str, settings: &Settings) -> Result<Payment, ApiError> {
        let payment = self.payment_mut(id)?;
        if payment.is_cancelled() {
            return Err(ApiError::bad_request(
                "cancelled_payment",
                "The payment was cancelled and can no longer be approved",
            ));
        }
        if payment.status.developer_approved {
            return Err(ApiError::bad_request(
                "already_approved",
                "The payment is already approved; treat this as done after checking `payment`",
            )
            .with_payment(&payment.identifier, &payment.dto(settings)));
        }
        payment.status.developer_approved = true;
        Ok(payment.clone())
    }

    /// `POST /v2/payments/{id}/complete`: checks in Pi's order, verifies the transaction
    /// (U2A: the linked one; A2U: the given one, on the chain) and only then changes state.
    /// `lagging`: Pi's index of the chain is behind (`verification_lag_next`): the transaction
    /// is not found yet even if it landed (`verification_failed`, a value Pi's clients must treat
    /// as opaque).
    pub fn complete(
        &mut self,
        id: &str,
        txid: Option<&str>,
        lagging: bool,
        chain: &Chain,
    ) -> Result<Payment, ApiError> {
        let linked_elsewhere = txid
            .and_then(|t| self.linked.get(t))
            .is_some_and(|other| other != id);
        let payment = self.payment_mut(id)?;
        let Some(txid) = txid.filter(|t| !t.is_empty()) else {
            return Err(ApiError::bad_request(
                "missing_txid",
                "Send the transaction id: {\"txid\": \"<64 hex chars>\"}",
            ));
        };
        refuse_if_closed_saying(
            payment,
            "The payment is already completed; check its `transaction.txid` is yours",
            "The payment was cancelled and can no longer be completed",
        )?;
        match payment.direction {
            Direction::UserToApp => {
                let Some(linked) = &payment.transaction else {
                    return Err(ApiError::bad_request(
                        "txid_mismatch",
                        "No transaction is linked to this payment yet; wait for the Pioneer's transaction",
                    ));
                };
                if linked.txid != txid {
                    return Err(ApiError::bad_request(
                        "txid_mismatch",
                        "The txid differs from the transaction linked to this payment; use `transaction.txid` of the payment",
                    ));
                }
                if !linked.verified {
                    return Err(ApiError::bad_request(
                        "not_verified",
                        "The linked transaction does not pay this payment exactly; cancel is not possible, report it",
                    ));
                }
                if lagging {
                    return Err(ApiError::bad_request(
                        "verification_failed",
                        format!("Transaction {txid} is not indexed yet; retry"),
                    )
                    .with_verification("transaction_not_found"));
                }
                payment.status.developer_completed = true;
                Ok(payment.clone())
            }
            Direction::AppToUser => {
                let seen = if lagging {
                    None
                } else {
                    chain.transaction(txid)
                };
                verify_a2u(payment, txid, seen, linked_elsewhere)?;
                payment.transaction = Some(LinkedTx {
                    txid: txid.to_owned(),
                    verified: true,
                });
                payment.status.transaction_verified = true;
                payment.status.developer_completed = true;
                let payment = payment.clone();
                self.linked.insert(txid.to_owned(), id.to_owned());
                self.open_a2u.remove(&payment.user_uid);
                Ok(payment)
            }
        }
    }

    /// `POST /v2/payments/{id}/cancel`.
    pub fn cancel(&mut self, id: &str) -> Result<Payment, ApiError> {
        let payment = self.payment_mut(id)?;
        refuse_if_closed(payment)?;
        if payment.direction == Direction::UserToApp && payment.transaction.is_some() {
            return Err(ApiError::bad_request(
                "payment_tx_present",
                "The Pioneer's transaction is linked to this payment; complete it instead of cancelling",
            ));
        }
        payment.status.cancelled = true;
        let payment = payment.clone();
        self.open_a2u.remove(&payment.user_uid);
        Ok(payment)
    }

    /// Control API: the Pioneer cancels a U2A payment in the wallet.
    pub fn user_cancel(&mut self, id: &str) -> Result<Payment, ApiError> {
        let payment = self.payment_mut(id)?;
        if payment.direction != Direction::UserToApp {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                "Only a user-to-app payment can be cancelled by the Pioneer",
            ));
        }
        refuse_if_closed(payment)?;
        if payment.transaction.is_some() {
            return Err(ApiError::bad_request(
                "payment_tx_present",
                "The Pioneer already submitted a transaction for this payment",
            ));
        }
        payment.status.user_cancelled = true;
        Ok(payment.clone())
    }

    /// A2U payments neither completed nor cancelled.
    pub fn incomplete_server_payments(&self) -> Vec<&Payment> {
        self.payments
            .iter()
            .filter(|p| p.direction == Direction::AppToUser && p.is_open())
            .collect()
    }

    /// Control API: checks a U2A payment may be submitted and marks the submission in flight.
    /// Returns the payment and the Pioneer's wallet.
    pub fn begin_submit(&mut self, id: &str) -> Result<(Payment, Keypair), ApiError> {
        let payment = self
            .payment(id)
            .ok_or_else(|| ApiError::payment_not_found(id))?;
        if payment.direction != Direction::UserToApp {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                "Only a user-to-app payment is submitted by the Pioneer; pay A2U payments from the app wallet",
            ));
        }
        let wallet = self
            .users
            .get(&payment.user_uid)
            .map(|u| u.wallet.clone())
            .ok_or_else(|| ApiError::bad_request("user_not_found", "The payment's user is gone"))?;
        let payment = self.payment_mut(id)?;
        refuse_if_closed(payment)?;
        if !payment.status.developer_approved {
            return Err(ApiError::bad_request(
                "not_approved",
                "The developer has not approved this payment yet; approve it first",
            ));
        }
        if payment.transaction.is_some() {
            return Err(ApiError::bad_request(
                "payment_tx_present",
                "A transaction is already linked to this payment",
            ));
        }
        if payment.submitting {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "submission_in_progress",
                "A submission for this payment is in flight; wait for it",
            ));
        }
        payment.submitting = true;
        Ok((payment.clone(), wallet))
    }

    /// Control API: the submission is over; link the applied transaction (if any), verified
    /// when it pays the payment exactly.
    pub fn end_submit(&mut self, id: &str, applied: Option<&TxRecord>) -> Option<Payment> {
        let &i = self.index.get(id)?;
        let payment = &mut self.payments[i];
        payment.submitting = false;
        if let Some(tx) = applied {
            let verified = pays_exactly(payment, tx);
            payment.transaction = Some(LinkedTx {
                txid: tx.hash.clone(),
                verified,
            });
            payment.status.transaction_verified = verified;
            let payment = payment.clone();
            self.linked.insert(tx.hash.clone(), id.to_owned());
            return Some(payment);
        }
        Some(payment.clone())
    }

    /// Control API: create or update a rewarded ad's status.
    pub fn set_ad(&mut self, ad_id: String, status: Option<String>) -> AdStatus {
        let ad = self.ads.entry(ad_id.clone()).or_insert_with(|| AdStatus {
            identifier: ad_id,
            mediator_ack_status: None,
            mediator_granted_at: None,
            mediator_revoked_at: None,
        });
        match status.as_deref() {
            Some("granted") => ad.mediator_granted_at = Some(now_iso()),
            Some("revoked") => ad.mediator_revoked_at = Some(now_iso()),
            _ => {}
        }
        ad.mediator_ack_status = status;
        ad.clone()
    }

    /// A rewarded ad's status.
    pub fn ad(&self, ad_id: &str) -> Option<&AdStatus> {
        self.ads.get(ad_id)
    }
}

/// Refuses a change to a completed (`already_completed`) or cancelled (`cancelled_payment`)
/// payment.
fn refuse_if_closed(payment: &Payment) -> Result<(), ApiError> {
    refuse_if_closed_saying(
        payment,
        "The payment is already completed",
        "The payment is already cancelled",
    )
}

/// [`refuse_if_closed`] with messages fitting the change asked for.
fn refuse_if_closed_saying(
    payment: &Payment,
    completed: &str,
    cancelled: &str,
) -> Result<(), ApiError> {
    if payment.status.developer_completed {
        return Err(ApiError::bad_request("already_completed", completed));
    }
    if payment.is_cancelled() {
        return Err(ApiError::bad_request("cancelled_payment", cancelled));
    }
    Ok(())
}

/// The sum of native payment ops from the payment's `from_address` to its `to_address`.
pub fn paid_amount(payment: &Payment, tx: &TxRecord) -> i64 {
    tx.ops
        .iter()
        .filter(|op| {
            op.kind == "payment" && op.from == payment.from_address && op.to == payment.to_address
        })
        .map(|op| op.amount)
        .sum()
}

/// Whether `tx` is the memo-tagged, successful transfer of exactly the payment's amount.
pub fn memo_matches(payment: &Payment, tx: &TxRecord) -> bool {
    tx.memo_type == "text" && tx.memo.as_deref() == Some(payment.identifier.as_str())
}

fn pays_exactly(payment: &Payment, tx: &TxRecord) -> bool {
    tx.successful && memo_matches(payment, tx) && paid_amount(payment, tx) == payment.amount
}

/// Pi's verification of a completion's transaction. `verification_error` values: Pi documents
/// none; `tx_memo_payment_identifier_mismatch` and `payment_already_linked_with_a_tx` are the
/// two seen from the real API (pi-apps/pi-ruby issue 4), the others are this simulator's own
/// words for its other checks, which clients must treat as opaque.
fn verify_a2u(
    payment: &Payment,
    txid: &str,
    tx: Option<TxRecord>,
    linked_elsewhere: bool,
) -> Result<(), ApiError> {
    let fail = |reason: &'static str, msg: String| {
        Err(ApiError::bad_request("verification_failed", msg).with_verification(reason))
    };
    let Some(tx) = tx else {
        return fail(
            "transaction_not_found",
            format!(
                "Transaction {txid} is not in a closed ledger; wait for it to land, then retry"
            ),
        );
    };
    if !tx.successful {
        return fail(
            "transaction_failed",
            format!("Transaction {txid} failed on chain; pay again with a new transaction"),
        );
    }
    // Before the memo check: a tx linked elsewhere carries the other payment's memo, and
    // "already linked" is the more useful answer.
    if linked_elsewhere {
        return fail(
            "payment_already_linked_with_a_tx",
            "The transaction is already linked to another payment".to_owned(),
        );
    }
    if !memo_matches(payment, &tx) {
        return fail(
            "tx_memo_payment_identifier_mismatch",
            "The transaction's text memo is not the payment identifier".to_owned(),
        );
    }
    // Each check narrows the payment operations: to the destination, then also from the source.
    let to_dest = |op: &OpRecord| op.kind == "payment" && op.to == payment.to_address;
    let from_source = |op: &OpRecord| to_dest(op) && op.from == payment.from_address;
    if !tx.ops.iter().any(to_dest) {
        return fail(
            "destination_mismatch",
            "The transaction has no payment to the payment's to_address".to_owned(),
        );
    }
    if !tx.ops.iter().any(from_source) {
        return fail(
            "source_mismatch",
            "The payment to to_address does not come from the payment's from_address".to_owned(),
        );
    }
    if !tx
        .ops
        .iter()
        .any(|op| from_source(op) && op.amount == payment.amount)
    {
        return fail(
            "amount_mismatch",
            "The transaction does not pay exactly the payment's amount".to_owned(),
        );
    }
    Ok(())
}
