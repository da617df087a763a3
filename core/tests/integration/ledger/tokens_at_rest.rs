//! Migration 0007 on a ledger an older version wrote: the sessions' access tokens are dropped,
//! the payments' cleared except in `needs_attention`, and a signed-in session keeps working.

use crate::support::ledger::{pid, postgres_base_url, temp_dir};
use pi_payments_core::ids::Uid;
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::ledger::{Ledger, now_ms};
use std::path::{Path, PathBuf};

const SESSION_TOKEN: &str = "session-token-0007-SECRET";
/// One token per payment state the old version could leave one in.
const PAYMENT_TOKENS: [(&str, &str); 4] = [
    ("received", "received-token-0007-SECRET"),
    ("approved", "approved-token-0007-SECRET"),
    ("completed", "completed-token-0007-SECRET"),
    ("needs_attention", "attention-token-0007-SECRET"),
];

/// The migrations of `dialect` (`sqlite` or `postgres`) before 0007, copied into `dir`.
fn migrations_before_0007(dialect: &str, dir: &Path) -> PathBuf {
    let old = dir.join(format!("migrations-{dialect}"));
    std::fs::create_dir_all(&old).unwrap();
    let all = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0007" {
            std::fs::copy(&path, old.join(&name)).unwrap();
        }
    }
    old
}

/// The database at `url` migrated to 0006 and written as the old version did (tokens in a
/// session and in payments), then opened by this version (0007 runs).
async fn upgrade(url: &str, dialect: &str, dir: &Path) -> Ledger {
    let old = Ledger::connect_without_migrating(url).await.unwrap();
    sqlx::migrate::Migrator::new(migrations_before_0007(dialect, dir).as_path())
        .await
        .unwrap()
        .run(old.pool())
        .await
        .unwrap();
    let pool = old.pool();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO pioneers (uid, username, scopes, first_seen_at, last_seen_at) \
         VALUES ('pioneer-0007', NULL, '[]', $1, $1)",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id_hash, uid, token_hash, access_token, username, scopes, \
         valid_until, created_at, expires_at) \
         VALUES ('cookie-hash', 'pioneer-0007', 'token-hash', $1, NULL, '[]', $2, $3, $2)",
    )
    .bind(SESSION_TOKEN)
    .bind(now + 3_600_000)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    for (n, (state, token)) in PAYMENT_TOKENS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO payments (id, direction, state, access_token, attempts, created_at, \
             updated_at) VALUES ($1, 'user_to_app', $2, $3, 0, $4, $4)",
        )
        .bind(pid(7100 + n as u32).as_str())
        .bind(*state)
        .bind(*token)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    }
    old.close().await;
    Ledger::connect(url).await.unwrap()
}

/// What 0007 must leave: no session token (not even the column), payment tokens only in
/// `needs_attention`, the session still valid.
async fn assert_tokens_cleared(ledger: &Ledger) {
    let column = sqlx::query("SELECT access_token FROM sessions")
        .fetch_all(ledger.pool())
        .await;
    assert!(column.is_err(), "sessions.access_token is dropped");
    let session = ledger.session("cookie-hash", now_ms()).await.unwrap();
    assert_eq!(
        session.map(|s| s.uid),
        Some(Uid::parse("pioneer-0007").unwrap()),
        "a signed-in Pioneer stays signed in"
    );
    for (n, (state, token)) in PAYMENT_TOKENS.iter().enumerate() {
        let kept = ledger
            .access_token(&pid(7100 + n as u32))
            .await
            .unwrap()
            .map(|t| t.expose().to_string());
        let expected = (*state == "needs_attention").then(|| token.to_string());
        assert_eq!(kept, expected, "payment in {state}");
    }
}

#[tokio::test]
async fn migration_0007_clears_stored_tokens_on_sqlite() {
    let dir = temp_dir("pp-ledger-0007");
    let file = dir.join("ledger.db");
    let url = format!("sqlite://{}", file.display());
    let ledger = upgrade(&url, "sqlite", &dir).await;
    assert_tokens_cleared(&ledger).await;
    // Closing checkpoints the WAL into the file: the cleared tokens are not in its bytes
    // either (the old row images are overwritten, not just unlinked).
    ledger.close().await;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(dir.join("ledger.db-wal")).unwrap_or_default());
    let found = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        !found(SESSION_TOKEN),
        "the session's token is still in the file"
    );
    for (state, token) in PAYMENT_TOKENS {
        assert_eq!(found(token), state == "needs_attention", "{state}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn migration_0007_clears_stored_tokens_on_postgres() {
    let base = postgres_base_url();
    let db = ScratchDatabase::create(&base, "pp_test_0007")
        .await
        .unwrap_or_else(|e| panic!("Postgres at {base} is required (TEST_DATABASE_URL): {e}"));
    let dir = temp_dir("pp-ledger-0007-pg");
    let ledger = upgrade(db.url(), "postgres", &dir).await;
    assert_tokens_cleared(&ledger).await;
    ledger.close().await;
    let _ = db.drop_database().await;
    let _ = std::fs::remove_dir_all(&dir);
}
