//! The ledger's clock: every timestamp it stores is unix milliseconds in a BIGINT, the same on
//! SQLite and Postgres.

/// The current time in unix milliseconds, the ledger's timestamp unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
