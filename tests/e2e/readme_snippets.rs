//! The README's code for app developers runs as printed: its webhook verifiers (JavaScript for
//! Node.js, Python) accept a signature made by the service's own signer and refuse a changed
//! body, another secret and an old timestamp. Each verifier is the README's fenced block that
//! starts with its marker comment, taken verbatim, plus a few lines that call it.

use pi_payments_core::events::webhook::sign_webhook;
use std::path::Path;
use std::process::Command;

const SECRET: &str = "whsec_readme_check";
const BODY: &str = r#"{"id":42,"type":"payment.completed","created_at":"2026-11-24T10:00:00.000Z","data":{"payment":{"amount":"1.5"}}}"#;

/// The README's fenced code block whose first line is `marker`.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            let mut block = Vec::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                block.push(inner);
            }
            if block.first().is_some_and(|first| first.trim() == marker) {
                return block.join("\n") + "\n";
            }
        }
    }
    panic!("README.md has no fenced block starting with `{marker}`");
}

/// Cases: (header, body, secret, expected verdict).
fn cases() -> Vec<(String, String, String, bool)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good = sign_webhook(SECRET.as_bytes(), now, BODY.as_bytes());
    let old = sign_webhook(SECRET.as_bytes(), now - 3600, BODY.as_bytes());
    let tampered = BODY.replace("1.5", "15");
    vec![
        (good.clone(), BODY.into(), SECRET.into(), true),
        (good.clone(), tampered, SECRET.into(), false),
        (good.clone(), BODY.into(), "another_secret".into(), false),
        (old, BODY.into(), SECRET.into(), false),
        ("t=abc,v1=00".into(), BODY.into(), SECRET.into(), false),
        (String::new(), BODY.into(), SECRET.into(), false),
    ]
}

/// Runs `program file` once per case with the case in the environment; the script exits 0
/// when the verifier accepted, 3 when it refused.
fn check(program: &str, file: &Path) {
    for (header, body, secret, accept) in cases() {
        let status = Command::new(program)
            .arg(file)
            .env("SIG_HEADER", &header)
            .env("SIG_BODY", &body)
            .env("SIG_SECRET", &secret)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let accepted = match status.code() {
            Some(0) => true,
            Some(3) => false,
            other => panic!("{program} {} failed: exit {other:?}", file.display()),
        };
        assert_eq!(
            accepted, accept,
            "{program}: header {header:?} over {body:?} with {secret:?}"
        );
    }
}

/// Whether `program` runs here; without it the test is skipped, except in CI where it fails.
fn available(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is needed to check the README's snippet"
        );
        eprintln!("skipped: {program} is not installed");
    }
    ok
}

#[test]
fn the_readme_webhook_verifier_in_javascript_works_as_printed() {
    if !available("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verify.js");
    let script = readme_block("// verify-webhook.js")
        + "const ok = verifyPiPaymentsWebhook(process.env.SIG_HEADER, \
           Buffer.from(process.env.SIG_BODY), process.env.SIG_SECRET);\n\
           process.exit(ok ? 0 : 3);\n";
    std::fs::write(&file, script).unwrap();
    check("node", &file);
}

#[test]
fn the_readme_webhook_verifier_in_python_works_as_printed() {
    if !available("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verify.py");
    let script = readme_block("# verify_webhook.py")
        + "import os, sys\n\
           ok = verify_pi_payments_webhook(os.environ['SIG_HEADER'], \
           os.environ['SIG_BODY'].encode(), os.environ['SIG_SECRET'])\n\
           sys.exit(0 if ok else 3)\n";
    std::fs::write(&file, script).unwrap();
    check("python3", &file);
}
