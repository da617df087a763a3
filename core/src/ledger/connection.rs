//! Opening the ledger: which database a URL names, the connection pools (one writer connection
//! on a SQLite file), migrations, and the write transactions every change runs in.

use super::error::LedgerError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database a ledger runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbKind {
    /// One file (default `sqlite://pi-payments.db`), WAL mode.
    Sqlite,
    /// A Postgres server (`postgres://…`).
    Postgres,
}

impl DbKind {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }

    /// The database a URL designates, from its scheme.
    pub fn from_url(url: &str) -> Result<DbKind, LedgerError> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(DbKind::Sqlite),
            "postgres" | "postgresql" => Ok(DbKind::Postgres),
            _ => Err(LedgerError::UnsupportedUrl { scheme }),
        }
    }
}

/// Embedded migrations, one set per database (the SQL differs only where the dialects do).
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A handle to the ledger database; cheap to clone (it is a connection pool).
#[derive(Clone, Debug)]
pub struct Ledger {
    /// Reads, and single-statement writes.
    pub(super) pool: AnyPool,
    /// Write transactions ([`Ledger::begin_write`]). On a SQLite file this is ONE connection:
    /// SQLite has one writer at a time anyway, so writers queue here (FIFO, no busy polling),
    /// and the connection's page cache stays warm with the pages it wrote. Elsewhere it is
    /// `pool` again.
    pub(super) writer: AnyPool,
    kind: DbKind,
    /// A SQLite file (WAL mode), as opposed to Postgres or an in-memory database.
    sqlite_file: bool,
    /// On a SQLite file, the connection [`Ledger::record_callbacks`] writes batches on.
    pub(super) batch_conn: Option<Arc<OwnConnection>>,
    /// `STUCK_AFTER` in ms: a repeated approve/complete callback for a row idle this long
    /// re-enqueues its job ([`super::callbacks`]).
    pub(super) stuck_after_ms: i64,
}

/// A SQLite connection kept outside the pools for the one caller that writes all the time
/// (the API's callback batcher). sqlx pings a pooled connection each time it is returned,
/// one more hand-off to the connection's thread per batch; an owned connection pays only for
/// its own statements. Opened on first use, reopened after a failure.
#[derive(Debug)]
pub(crate) struct OwnConnection {
    options: AnyConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
}

impl OwnConnection {
    /// The connection, opened (with the ledger's pragmas) if it is not yet.
    pub(crate) async fn lock(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<sqlx::AnyConnection>>, LedgerError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&self.options)
                .await
                .map_err(LedgerError::Connect)?;
            conn.execute(SQLITE_PRAGMAS).await?;
            conn.execute(WAL_AUTOCHECKPOINT).await?;
            *guard = Some(conn);
        }
        Ok(guard)
    }

    async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

/// Per-connection settings of a SQLite ledger. `synchronous = NORMAL` in WAL mode survives a
/// process crash (a power loss may lose the last commits, which the Pi SDK re-sends);
/// `mmap_size` lets readers use the OS cache without copying; a 64 MiB page cache keeps the
/// hot index pages of the payments table in memory; `secure_delete = FAST` zeroes what a
/// delete or update frees inside a page (no extra I/O), so values cleared on purpose, such as
/// the tokens migration 0007 drops, do not linger in the file.
///
/// `journal_size_limit` ([`WAL_SIZE_LIMIT`]): when the WAL starts over, its file is cut back
/// to 128 MiB. A long read transaction keeps the WAL from starting over, so it grows past that
/// (699 MB was seen); once the reader ends, the next checkpoint and write bring it back.
/// The limit is the size the WAL reaches under sustained load anyway (its autocheckpoint,
/// [`WAL_AUTOCHECKPOINT`]), so normal operation never pays for a truncation (truncating to
/// zero each time cost the writer up to ~90 ms).
const SQLITE_PRAGMAS: &str = "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; \
     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456; \
     PRAGMA cache_size = -65536; PRAGMA secure_delete = FAST; \
     PRAGMA journal_size_limit = 134217728";

/// The size a SQLite ledger's WAL file returns to once no reader holds it back (the
/// `journal_size_limit` of [`SQLITE_PRAGMAS`]).
pub const WAL_SIZE_LIMIT: u64 = 128 * 1024 * 1024;

/// After 32768 WAL pages (128 MiB) a committing writer checkpoints itself. The ledger's
/// checkpointer ([`Ledger::spawn_checkpointer`]) copies pages every 100 ms on its own
/// connection, so when the writer's turn comes little is left to copy; it mostly lets the WAL
/// start over from its beginning (a passive checkpoint under constant writes never can).
/// Measured: with SQLite's default (1000 pages, no checkpointer) the callback batcher stalled
/// for ~30 ms every ~150 ms under load.
const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 32768";

/// Options of a SQLite pool: the pragmas on every connection, and no ping before handing a
/// connection out (a local file cannot drop; the ping would be one more thread hop per use).
fn sqlite_pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                conn.execute(WAL_AUTOCHECKPOINT).await?;
                Ok(())
            })
        })
}

impl Ledger {
    /// Open (creating the SQLite file if missing) and migrate the database at `url`.
    pub async fn connect(url: &str) -> Result<Ledger, LedgerError> {
        let ledger = Ledger::connect_without_migrating(url).await?;
        ledger.migrate().await?;
        Ok(ledger)
    }

    /// Open the database without running migrations (for tools that only read).
    pub async fn connect_without_migrating(url: &str) -> Result<Ledger, LedgerError> {
        sqlx::any::install_default_drivers();
        let kind = DbKind::from_url(url)?;
        let url = match kind {
            DbKind::Sqlite => sqlite_url(url),
            DbKind::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(LedgerError::Connect)?;
        let in_memory = kind == DbKind::Sqlite && url.contains(":memory:");
        let pool = match kind {
            DbKind::Sqlite => {
                // journal_mode=WAL is persistent but needs a lock busy_timeout cannot wait
                // for, so set it once here, before the pool opens several connections.
                if !in_memory {
                    let mut first =
                        <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
                            .await
                            .map_err(LedgerError::Connect)?;
                    first.execute("PRAGMA journal_mode = WAL").await?;
                    sqlx::Connection::close(first).await?;
                }
                // Each in-memory connection would be its own database.
                sqlite_pool_options(if in_memory { 1 } else { 8 })
                    .connect_with(options.clone())
                    .await
            }
            DbKind::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.clone())
                    .await
            }
        }
        .map_err(LedgerError::Connect)?;
        let writer = if kind == DbKind::Sqlite && !in_memory {
            sqlite_pool_options(1)
                // Kept open: reopening would drop the warm page cache.
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options.clone())
                .await
                .map_err(LedgerError::Connect)?
        } else {
            pool.clone()
        };
        let sqlite_file = kind == DbKind::Sqlite && !in_memory;
        let batch_conn = sqlite_file.then(|| {
            Arc::new(OwnConnection {
                options,
                conn: tokio::sync::Mutex::new(None),
            })
        });
        Ok(Ledger {
            pool,
            writer,
            kind,
            sqlite_file,
            batch_conn,
            stuck_after_ms: crate::reconcile::config::DEFAULT_STUCK_AFTER
                .as_millis()
                .try_into()
                .unwrap_or(i64::MAX),
        })
    }

    /// Apply the embedded migrations for this database (idempotent; `pi-payments migrate`).
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        let migrator = match self.kind {
            DbKind::Sqlite => &SQLITE_MIGRATIONS,
            DbKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(LedgerError::Migrate)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), LedgerError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Use `STUCK_AFTER` = `stuck_after`: a repeated approve/complete callback for a payment
    /// unchanged this long re-enqueues its job (at most once per `stuck_after`), so a lost job
    /// is recovered when the Pi SDK re-sends, without waiting for a sweep.
    pub fn with_stuck_after(mut self, stuck_after: Duration) -> Ledger {
        self.stuck_after_ms = i64::try_from(stuck_after.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Which database this ledger runs on.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Close every connection (at shutdown; flushes SQLite's WAL cleanly).
    pub async fn close(&self) {
        if let Some(own) = &self.batch_conn {
            own.close().await;
        }
        self.writer.close().await;
        self.pool.close().await;
    }

    /// On a SQLite file: copy the WAL into the database every 100 ms from a reader connection
    /// ([`crate::wal_checkpoint`]), so the writer never stalls copying thousands of pages itself
    /// after a commit (a PASSIVE checkpoint never blocks the writer). Stops when the ledger is
    /// closed. A no-op on Postgres and in memory. Call once per process that writes (the
    /// service does).
    pub fn spawn_checkpointer(&self) {
        if !self.sqlite_file {
            return;
        }
        crate::wal_checkpoint::spawn(self.pool.clone(), "ledger");
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Start a write transaction that already holds the write lock on SQLite.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, LedgerError> {
        let tx = match self.kind {
            DbKind::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            DbKind::Postgres => self.writer.begin().await?,
        };
        Ok(tx)
    }

    /// Whether this ledger is a SQLite file: one writer at a time, which other processes
    /// wait for by polling (see [`crate::payout_import::ImportPace`]).
    pub fn is_sqlite_file(&self) -> bool {
        self.sqlite_file
    }

    pub(crate) fn is_pg(&self) -> bool {
        self.kind == DbKind::Postgres
    }
}

/// Add `mode=rwc` (create the file if missing) unless the URL already says how to open it.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

#[cfg(test)]
mod tests {
    use crate::ledger::connection::*;

    #[test]
    fn kinds_from_urls() {
        assert_eq!(DbKind::from_url("sqlite://x.db").unwrap(), DbKind::Sqlite);
        assert_eq!(DbKind::from_url("sqlite::memory:").unwrap(), DbKind::Sqlite);
        assert_eq!(
            DbKind::from_url("postgres://u@h/db").unwrap(),
            DbKind::Postgres
        );
        assert_eq!(
            DbKind::from_url("postgresql://u@h/db").unwrap(),
            DbKind::Postgres
        );
        let err = DbKind::from_url("mysql://secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn the_wal_limit_is_the_one_set_on_connections() {
        assert!(SQLITE_PRAGMAS.contains(&format!("journal_size_limit = {WAL_SIZE_LIMIT}")));
    }

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(sqlite_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }
}
