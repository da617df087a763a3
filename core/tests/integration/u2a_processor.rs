//! Core's U2A processor against pi-sim and a SQLite ledger, without a queue or apalis: what one
//! step decides, what it records, and what it tells the job to do next.

use crate::support::sim::{SimEnv, start};
use pi_payments_core::ids::{PaymentId, Txid, Uid};
use pi_payments_core::jobs::{ApproveCredential, Job};
use pi_payments_core::ledger::Callback;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::state::PaymentState;
use pi_payments_core::u2a::{
    AWAITING_APPROVE_CALLBACK, StepInput, U2aDeps, U2aOutcome, U2aProcessor, U2aStep,
};
use pi_sim::SimConfig;
use pi_sim::control_client::U2aRequest;
use serde_json::json;

/// Tries of one job in these tests: the second transient failure gives up.
const MAX_ATTEMPTS: u32 = 2;

/// The payout harness plus a U2A processor over its ledger and clients.
struct Env {
    env: SimEnv,
    processor: U2aProcessor,
    /// The approve job each recorded approve callback asked for.
    credentials: std::sync::Mutex<std::collections::HashMap<PaymentId, Job>>,
}

fn deps(env: &SimEnv, anonymous_cancel_grace: std::time::Duration) -> U2aDeps {
    U2aDeps {
        ledger: env.ledger.clone(),
        pi: env.pi(RetryPolicy::fast()),
        horizon: env.horizon(),
        app_wallet: env.sim.app_wallet_public_key.clone(),
        network: env.sim.network_passphrase.clone(),
        require_order: false,
        anonymous_cancel_grace,
    }
}

async fn env() -> Env {
    let env = start(SimConfig::default()).await;
    let deps = deps(&env, pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE);
    Env {
        processor: U2aProcessor::new(deps, MAX_ATTEMPTS),
        env,
        credentials: std::sync::Mutex::default(),
    }
}

impl Env {
    /// The Pioneer signs and submits payment `id`; the txid.
    async fn submit(&self, id: &PaymentId) -> Txid {
        Txid::parse(&self.env.control.submit(id.as_str()).await.unwrap()).unwrap()
    }

    /// A payment by `uid` created at Pi, and its approve callback recorded with `uid`'s token;
    /// the approve job's credential is kept for [`Env::approve`].
    async fn approve_callback(&self, uid: &str) -> PaymentId {
        let token = self.env.control.token(uid).await.unwrap();
        let id = self.create(uid).await;
        let token = AccessToken::new(&token);
        let credential = ApproveCredential::from_token(token);
        self.record_approve(&id, credential).await;
        id
    }

    /// A payment by `uid` created at Pi (no callback yet).
    async fn create(&self, uid: &str) -> PaymentId {
        let request = U2aRequest::new(uid, "1").memo("m").metadata(json!({}));
        let id = self.env.control.create_u2a_id(&request).await.unwrap();
        PaymentId::parse(&id).unwrap()
    }

    /// Record an approve callback with `credential`; its job must carry it.
    async fn record_approve(&self, id: &PaymentId, credential: ApproveCredential) {
        let callback = Callback::Approve {
            payment_id: id.clone(),
            credential: credential.clone(),
        };
        let recorded = self.env.ledger.record_callback(&callback).await.unwrap();
        assert_eq!(
            recorded.job,
            Some(Job::approve_with(id.clone(), credential))
        );
        self.credentials
            .lock()
            .unwrap()
            .insert(id.clone(), recorded.job.unwrap());
    }

    /// Run the approve job the payment's callback made (with its credential).
    async fn approve(&self, id: &PaymentId) -> U2aOutcome {
        let job = self.credentials.lock().unwrap().get(id).cloned();
        let Some(Job::Approve(job)) = job else {
            panic!("no approve callback recorded for {id}");
        };
        self.processor
            .run_approve(id, job.credential.as_ref(), 1, 0)
            .await
    }

    /// Record the complete callback with `txid`.
    async fn complete_callback(&self, id: &PaymentId, txid: &Txid) {
        let recorded = self.env.ledger.record_complete_callback(id, txid).await;
        recorded.unwrap();
    }

    /// Run the complete step for a callback that claimed `claim`.
    async fn complete_with_claim(
        &self,
        id: &PaymentId,
        claim: &Txid,
        attempt: usize,
    ) -> U2aOutcome {
        let input = StepInput {
            credential: None,
            txid_hint: Some(claim),
        };
        self.processor
            .run_with(U2aStep::Complete, id, input, attempt, 0)
            .await
    }

    /// Record an incomplete callback without a txid sent with `credential`, and run its job.
    async fn incomplete(&self, id: &PaymentId, credential: ApproveCredential) -> U2aOutcome {
        let callback = Callback::Incomplete {
            payment_id: id.clone(),
            txid: None,
            credential: credential.clone(),
        };
        // Re-armed or not, the job is what the callback would enqueue.
        self.env.ledger.record_callback(&callback).await.unwrap();
        let Job::Incomplete(job) = Job::incomplete_with(id.clone(), credential) else {
            unreachable!()
        };
        let input = StepInput {
            credential: job.credential.as_ref(),
            txid_hint: None,
        };
        self.processor
            .run_with(U2aStep::Incomplete, id, input, 1, 0)
            .await
    }

    /// A processor like this one with another ANONYMOUS_CANCEL_GRACE.
    fn processor_with_grace(&self, grace: std::time::Duration) -> U2aProcessor {
        U2aProcessor::new(deps(&self.env, grace), MAX_ATTEMPTS)
    }

    async fn state(&self, id: &PaymentId) -> PaymentState {
        self.env.ledger.payment(id).await.unwrap().unwrap().state
    }

    /// How many times pi-sim served `endpoint` for payment `id`.
    async fn pi_calls(&self, id: &PaymentId, endpoint: &str) -> u64 {
        self.env
            .control
            .payment_calls(id.as_str(), endpoint)
            .await
            .unwrap()
    }

    async fn done(self) {
        self.env.done().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_then_complete_and_a_repeated_step_does_nothing() {
    let env = env().await;
    let id = env.approve_callback("alice").await;
    assert_eq!(env.approve(&id).await, U2aOutcome::Done);
    assert_eq!(env.state(&id).await, PaymentState::Approved);
    // Run twice (the queue delivers at least once): Pi is not asked again.
    assert_eq!(env.approve(&id).await, U2aOutcome::Done);
    assert_eq!(env.pi_calls(&id, "approve").await, 1);

    let txid = env.submit(&id).await;
    env.complete_callback(&id, &txid).await;
    assert_eq!(
        env.processor.run(U2aStep::Complete, &id, 1).await,
        U2aOutcome::Done
    );
    assert_eq!(env.state(&id).await, PaymentState::Completed);
    assert_eq!(env.pi_calls(&id, "complete").await, 1);
    env.done().await;
}

/// A txid in a complete callback is a claim: a stranger's made-up one binds nothing, the
/// txid Pi linked is the one completed, and the difference is on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_txid_binds_nothing_and_pis_txid_completes() {
    let env = env().await;
    let id = env.approve_callback("gina").await;
    env.approve(&id).await;
    let real = env.submit(&id).await;
    let made_up = Txid::parse(&"ab".repeat(32)).unwrap();
    env.complete_callback(&id, &made_up).await;
    assert_eq!(
        env.env.ledger.payment(&id).await.unwrap().unwrap().txid,
        None
    );
    assert_eq!(
        env.complete_with_claim(&id, &made_up, 1).await,
        U2aOutcome::Done
    );
    let row = env.env.ledger.payment(&id).await.unwrap().unwrap();
    assert_eq!((row.state, row.txid), (PaymentState::Completed, Some(real)));
    let history = env.env.ledger.payment_events(&id).await.unwrap();
    assert!(history.iter().any(|e| e.cause == "txid_hint_mismatch"));
    assert_eq!(env.pi_calls(&id, "complete").await, 1);
    env.done().await;
}

/// A complete callback before Pi links any transaction (a stranger's, with a made-up txid):
/// retried once, then dropped quietly (no `needs_attention`), and the Pioneer's own complete
/// callback later gets a job again and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_before_any_transaction_gives_up_quietly_and_the_real_one_completes() {
    let env = env().await;
    let id = env.approve_callback("hana").await;
    env.approve(&id).await;
    let made_up = Txid::parse(&"cd".repeat(32)).unwrap();
    env.complete_callback(&id, &made_up).await;
    let U2aOutcome::Retry { reason } = env.complete_with_claim(&id, &made_up, 1).await else {
        panic!("the first try is retried");
    };
    assert!(reason.contains("not linked"), "{reason}");
    assert_eq!(
        env.complete_with_claim(&id, &made_up, MAX_ATTEMPTS as usize)
            .await,
        U2aOutcome::Done
    );
    assert_eq!(env.state(&id).await, PaymentState::Approved);
    // The Pioneer pays; the wrapper's token-less complete callback gets a job again.
    let real = env.submit(&id).await;
    let recorded = env
        .env
        .ledger
        .record_complete_callback(&id, &real)
        .await
        .unwrap();
    assert_eq!(
        recorded.job,
        Some(Job::complete_hinted(id.clone(), real.clone()))
    );
    assert_eq!(
        env.complete_with_claim(&id, &real, 1).await,
        U2aOutcome::Done
    );
    let row = env.env.ledger.payment(&id).await.unwrap().unwrap();
    assert_eq!((row.state, row.txid), (PaymentState::Completed, Some(real)));
    env.done().await;
}

/// An anonymous incomplete callback (no token, no session) with `transactionId: null` does
/// not cancel a just-approved payment; the Pioneer's own token does, at once; once the
/// payment has waited out ANONYMOUS_CANCEL_GRACE, an anonymous one does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pioneer_cancels_an_abandoned_payment_before_the_grace() {
    let env = env().await;
    let id = env.approve_callback("ines").await;
    env.approve(&id).await;
    assert_eq!(
        env.incomplete(&id, ApproveCredential::Missing).await,
        U2aOutcome::Done
    );
    assert_eq!(env.state(&id).await, PaymentState::Approved);
    assert_eq!(env.pi_calls(&id, "cancel").await, 0);
    // Someone else's valid token is no better than none.
    let other = AccessToken::new(&env.env.control.token("mallory").await.unwrap()).unwrap();
    let mallory = ApproveCredential::AccessToken(other);
    assert_eq!(env.incomplete(&id, mallory).await, U2aOutcome::Done);
    assert_eq!(env.state(&id).await, PaymentState::Approved);
    // The Pioneer's own token: cancelled at once.
    let own = AccessToken::new(&env.env.control.token("ines").await.unwrap()).unwrap();
    let ines = ApproveCredential::AccessToken(own);
    assert_eq!(env.incomplete(&id, ines).await, U2aOutcome::Done);
    assert_eq!(env.state(&id).await, PaymentState::Cancelled);
    assert_eq!(env.pi_calls(&id, "cancel").await, 1);

    // With no grace left, an anonymous callback cancels.
    let id = env.approve_callback("jo").await;
    env.approve(&id).await;
    let impatient = env.processor_with_grace(std::time::Duration::ZERO);
    let job = Job::incomplete_with(id.clone(), ApproveCredential::Missing);
    let Job::Incomplete(job) = job else {
        unreachable!()
    };
    let input = StepInput {
        credential: job.credential.as_ref(),
        txid_hint: None,
    };
    assert_eq!(
        impatient
            .run_with(U2aStep::Incomplete, &id, input, 1, 0)
            .await,
        U2aOutcome::Done
    );
    assert_eq!(env.state(&id).await, PaymentState::Cancelled);
    env.done().await;
}

/// A payment id Pi does not know costs one Pi call, ever: remembered, no `needs_attention`,
/// and later callbacks naming it are refused without a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_pi_does_not_know_costs_one_call_ever() {
    let env = env().await;
    let id = PaymentId::parse("unknownPaymentId000000000001").unwrap();
    let bogus = AccessToken::new("bogus-token").unwrap();
    env.record_approve(&id, ApproveCredential::AccessToken(bogus))
        .await;
    assert_eq!(env.approve(&id).await, U2aOutcome::Done);
    assert!(env.env.ledger.is_unknown_at_pi(&id).await.unwrap());
    assert_eq!(env.state(&id).await, PaymentState::Received);
    let again = env.env.ledger.record_cancel_callback(&id).await;
    assert!(
        matches!(
            again,
            Err(pi_payments_core::ledger::LedgerError::UnknownAtPi(_))
        ),
        "{again:?}"
    );
    assert_eq!(env.approve(&id).await, U2aOutcome::Done);
    assert_eq!(
        env.processor.run(U2aStep::Cancel, &id, 1).await,
        U2aOutcome::Done
    );
    assert_eq!(env.pi_calls(&id, "get_payment").await, 1);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_ledger_does_not_know_is_dropped() {
    let env = env().await;
    let id = PaymentId::parse("unknownPayment1").unwrap();
    for step in [
        U2aStep::Approve,
        U2aStep::Complete,
        U2aStep::Cancel,
        U2aStep::RecordError,
        U2aStep::Incomplete,
    ] {
        assert_eq!(env.processor.run(step, &id, 1).await, U2aOutcome::Done);
    }
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_only_approve_is_accepted_only_for_the_sessions_own_payment() {
    let env = env().await;
    // The signed-in session is ivy's: her payment is approved without any token.
    let ivy = Uid::parse("ivy").unwrap();
    let own = env.create("ivy").await;
    env.record_approve(&own, ApproveCredential::Session(ivy.clone()))
        .await;
    assert_eq!(env.approve(&own).await, U2aOutcome::Done);
    assert_eq!(env.state(&own).await, PaymentState::Approved);
    assert_eq!(env.pi_calls(&own, "approve").await, 1);

    // Jack's payment sent with ivy's session cookie: refused and cancelled at Pi, as a token of
    // another Pioneer is.
    let other = env.create("jack").await;
    env.record_approve(&other, ApproveCredential::Session(ivy))
        .await;
    assert_eq!(env.approve(&other).await, U2aOutcome::Done);
    let row = env.env.ledger.payment(&other).await.unwrap().unwrap();
    assert_eq!(row.state, PaymentState::Cancelled);
    assert!(
        row.reason
            .as_deref()
            .unwrap_or("")
            .contains("different Pioneer"),
        "{row:?}"
    );
    assert_eq!(env.pi_calls(&other, "approve").await, 0);
    assert_eq!(env.pi_calls(&other, "cancel").await, 1);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_job_without_a_credential_waits_for_the_next_callback() {
    let env = env().await;
    let id = env.approve_callback("kim").await;
    // The sweeper's job (no credential; the ledger stores no token): Pi is read, nothing is
    // decided, and the wait is noted.
    assert_eq!(
        env.processor.run(U2aStep::Approve, &id, 1).await,
        U2aOutcome::Done
    );
    assert_eq!(env.state(&id).await, PaymentState::Received);
    assert_eq!(env.pi_calls(&id, "approve").await, 0);
    assert_eq!(env.pi_calls(&id, "cancel").await, 0);
    let history = env.env.ledger.payment_events(&id).await.unwrap();
    assert!(
        history.iter().any(|e| e.cause == AWAITING_APPROVE_CALLBACK),
        "{history:#?}"
    );
    // Meanwhile the sweeper is held off: waiting on the Pioneer is not being stuck.
    let row = env.env.ledger.payment(&id).await.unwrap().unwrap();
    assert!(
        row.next_check_at
            .is_some_and(|t| t > pi_payments_core::ledger::now_ms()),
        "{row:?}"
    );
    // The SDK's next approve callback, seconds later (the payment not idle for STUCK_AFTER),
    // gets a job with its token at once.
    let token = AccessToken::new(&env.env.control.token("kim").await.unwrap());
    env.record_approve(&id, ApproveCredential::from_token(token))
        .await;
    // That job approves it.
    assert_eq!(env.approve(&id).await, U2aOutcome::Done);
    assert_eq!(env.state(&id).await, PaymentState::Approved);

    // A callback that carried nothing at all is refused, as before.
    let bare = env.create("kim").await;
    env.record_approve(&bare, ApproveCredential::Missing).await;
    assert_eq!(env.approve(&bare).await, U2aOutcome::Done);
    assert_eq!(env.state(&bare).await, PaymentState::Cancelled);
    env.done().await;
}
