//! Cross-implementation check of our Stellar encoding against Python's `stellar-sdk`: the same
//! misunderstanding on both sides of pi-sim must not go unnoticed, so a second implementation
//! reads what we sign (and we read what it signs).
//!
//! Interpreter: env PI_TEST_PYTHON, else <workspace>/.venv/bin/python, else
//! /tmp/venvtest/bin/python, else python3. Without stellar_sdk the tests are skipped loudly, or
//! fail when env CI is set.

use pi_payments_core::PiAmount;
use pi_payments_core::ids::random_alnum;
use pi_payments_core::stellar::{
    DecodedMemo, DecodedOpBody, Network, PaymentTx, SignedTx, Wallet, decode_envelope, unix_now,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/stellar_check.py");

fn python_candidates() -> Vec<PathBuf> {
    if let Ok(p) = std::env::var("PI_TEST_PYTHON")
        && !p.is_empty()
    {
        return vec![PathBuf::from(p)];
    }
    vec![
        Path::new(WORKSPACE).join(".venv/bin/python"),
        PathBuf::from("/tmp/venvtest/bin/python"),
        PathBuf::from("python3"),
    ]
}

/// A Python with stellar_sdk, or `None` after printing why (panics under CI).
fn python() -> Option<PathBuf> {
    let mut tried = Vec::new();
    for candidate in python_candidates() {
        let out = Command::new(&candidate).arg(SCRIPT).arg("probe").output();
        match out {
            Ok(o) if o.status.success() => return Some(candidate),
            Ok(o) => tried.push(format!(
                "{}: {}",
                candidate.display(),
                String::from_utf8_lossy(&o.stdout).trim()
            )),
            Err(e) => tried.push(format!("{}: {e}", candidate.display())),
        }
    }
    let why = format!(
        "no Python with stellar_sdk (tried {}); install it with `python3 -m venv .venv && \
         .venv/bin/pip install stellar-sdk` or set PI_TEST_PYTHON",
        tried.join("; ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("!!!!! SKIPPED Stellar cross-check: {why} !!!!!");
    None
}

fn run(py: &Path, args: &[&str]) -> Value {
    let out = Command::new(py)
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

fn py_decode(py: &Path, network: &Network, signed: &SignedTx) -> Value {
    run(py, &["decode", network.passphrase(), &signed.envelope_b64])
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn json_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn our_plain_payment_decodes_in_python() {
    let Some(py) = python() else { return };
    let app = Wallet::generate();
    let pioneer = Wallet::generate();
    let net = Network::pi_testnet();
    let identifier = random_alnum(28);
    let amount = PiAmount::parse("1234.5678901").unwrap();
    let signed = PaymentTx::new(app.public_key(), 17_179_869_185)
        .fee_per_op(100_000)
        .payment(pioneer.public_key(), amount)
        .memo_text(&identifier)
        .expires_in(120)
        .sign(&[&app], &net)
        .unwrap();

    let d = py_decode(&py, &net, &signed);
    assert_eq!(d["hash"], signed.hash_hex.as_str());
    assert_eq!(d["source"], app.public_key().as_str());
    assert_eq!(d["sequence"], 17_179_869_185i64);
    assert_eq!(d["fee"], 100_000);
    assert_eq!(d["memo_type"], "TextMemo");
    assert_eq!(d["memo"], identifier.as_str());
    assert_eq!(d["min_time"], 0);
    assert_eq!(d["max_time"], signed.max_time);
    let ops = d["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["type"], "Payment");
    assert_eq!(ops[0]["source"], Value::Null);
    assert_eq!(ops[0]["destination"], pioneer.public_key().as_str());
    assert_eq!(ops[0]["asset_native"], true);
    assert_eq!(ops[0]["amount_stroops"], 12_345_678_901i64);
    assert_eq!(json_strings(&d["valid_signers"]), vec![app.public_key()]);
    assert_eq!(d["signatures"].as_array().unwrap().len(), 1);

    // Under another passphrase the hash differs and our signature is not valid: the network id
    // really is part of what we sign.
    let other = py_decode(&py, &Network::pi_mainnet(), &signed);
    assert_ne!(other["hash"], signed.hash_hex.as_str());
    assert!(json_strings(&other["valid_signers"]).is_empty());
}

#[test]
fn our_channel_account_payment_decodes_in_python() {
    let Some(py) = python() else { return };
    let app = Wallet::generate();
    let channel = Wallet::generate();
    let pioneer = Wallet::generate();
    let net = Network::new("Pi Network");
    let identifier = random_alnum(28);
    let signed = PaymentTx::new(channel.public_key(), 99)
        .fee_per_op(250_000)
        .payment_from(
            app.public_key(),
            pioneer.public_key(),
            PiAmount::from_stroops(1).unwrap(),
        )
        .memo_text(&identifier)
        .expires_in(60)
        .sign(&[&channel, &app], &net)
        .unwrap();
    assert_eq!(signed.source, channel.public_key());

    let d = py_decode(&py, &net, &signed);
    assert_eq!(d["hash"], signed.hash_hex.as_str());
    assert_eq!(d["source"], channel.public_key().as_str());
    assert_eq!(d["fee"], 250_000);
    assert_eq!(d["memo"], identifier.as_str());
    let op = &d["operations"][0];
    assert_eq!(op["source"], app.public_key().as_str());
    assert_eq!(op["destination"], pioneer.public_key().as_str());
    assert_eq!(op["amount_stroops"], 1);
    assert_eq!(
        sorted(json_strings(&d["valid_signers"])),
        sorted(vec![app.public_key(), channel.public_key()])
    );
}

#[test]
fn python_built_envelope_decodes_with_ours_byte_for_byte() {
    let Some(py) = python() else { return };
    let channel = Wallet::generate();
    let app = Wallet::generate();
    let pioneer = Wallet::generate();
    let net = Network::pi_testnet();
    let identifier = random_alnum(28);
    let max_time = unix_now() + 90;
    for with_channel in [false, true] {
        let source = if with_channel { &channel } else { &app };
        let mut args: Vec<String> = vec![
            "build".into(),
            net.passphrase().into(),
            source.expose_seed(),
            pioneer.public_key(),
            "2.5".into(),
            identifier.clone(),
            "4242".into(),
            "100000".into(),
            max_time.to_string(),
        ];
        if with_channel {
            args.push(app.expose_seed());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let built = run(&py, &args);
        let envelope = built["envelope"].as_str().unwrap();

        let d = decode_envelope(envelope).unwrap();
        assert_eq!(d.hash_hex(&net).unwrap(), built["hash"].as_str().unwrap());
        assert_eq!(d.source, source.public_key());
        assert_eq!(d.sequence, 4242);
        assert_eq!(d.memo, DecodedMemo::Text(identifier.clone()));
        assert_eq!(d.max_time, Some(max_time));
        assert_eq!(
            d.operations[0].body,
            DecodedOpBody::Payment {
                destination: pioneer.public_key(),
                native: true,
                amount_stroops: 25_000_000
            }
        );
        assert!(d.fully_signed(&net), "python's signatures verify with ours");

        // And ours, built from the same inputs, is the very same envelope.
        let mut tx = PaymentTx::new(source.public_key(), 4242).fee_per_op(100_000);
        tx = if with_channel {
            tx.payment_from(
                app.public_key(),
                pioneer.public_key(),
                PiAmount::parse("2.5").unwrap(),
            )
        } else {
            tx.payment(pioneer.public_key(), PiAmount::parse("2.5").unwrap())
        };
        let signers: Vec<&Wallet> = if with_channel {
            vec![&channel, &app]
        } else {
            vec![&app]
        };
        let ours = tx
            .memo_text(&identifier)
            .max_time(max_time)
            .sign(&signers, &net)
            .unwrap();
        assert_eq!(ours.hash_hex, built["hash"].as_str().unwrap());
        assert_eq!(ours.envelope_b64, envelope, "with_channel={with_channel}");
    }
}

#[tokio::test]
async fn python_built_payment_lands_on_pi_sim_and_reads_back_with_ours() {
    let Some(py) = python() else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = pi_sim::start(pi_sim::SimConfig {
        platform_port: 0,
        horizon_port: 0,
        ledger_seconds: 0.0,
        ..pi_sim::SimConfig::default()
    })
    .await
    .expect("start pi-sim");
    let horizon = pi_payments_core::horizon::HorizonClient::new(
        &sim.horizon_url,
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    let app = Wallet::from_seed(&sim.app_wallet_seed).unwrap();
    let pioneer = Wallet::generate();
    // Fund the recipient with our own create_account first.
    let seq = horizon
        .account(&app.public_key())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let net = Network::new(&sim.network_passphrase);
    let create = PaymentTx::new(app.public_key(), seq + 1)
        .create_account(pioneer.public_key(), PiAmount::parse("1").unwrap())
        .expires_in(60)
        .sign(&[&app], &net)
        .unwrap();
    horizon.submit(&create.envelope_b64).await.unwrap();

    let identifier = random_alnum(28);
    let max_time = (unix_now() + 60).to_string();
    let seq = (seq + 2).to_string();
    let built = run(
        &py,
        &[
            "build",
            net.passphrase(),
            &sim.app_wallet_seed,
            &pioneer.public_key(),
            "0.1234567",
            &identifier,
            &seq,
            "100000",
            &max_time,
        ],
    );
    let hash = built["hash"].as_str().unwrap();
    let ok = horizon
        .submit(built["envelope"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ok.hash, hash);
    let tx = horizon.transaction(hash).await.unwrap().unwrap();
    assert_eq!(tx.memo.as_deref(), Some(identifier.as_str()));
    let payments = horizon.transaction_payments(hash).await.unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].amount_stroops, 1_234_567);
    assert_eq!(
        horizon
            .account(&pioneer.public_key())
            .await
            .unwrap()
            .unwrap()
            .balance_stroops,
        10_000_000 + 1_234_567
    );
}
