//! Keeping a ledger lease while the work it protects lasts: a background task renews it every
//! third of its time to live, so a live holder never loses it to a slow step, while a holder
//! that dies stops renewing and the lease expires one time-to-live after its last renewal.

use super::connection::Ledger;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A lease being renewed in the background until this is dropped (dropping stops the
/// renewals; it does not release the lease).
#[derive(Debug)]
pub struct KeptLease {
    lost: Arc<AtomicBool>,
    renewer: JoinHandle<()>,
}

impl KeptLease {
    /// Whether a renewal found the lease taken over (it had expired): the holder must stop
    /// what the lease protects.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Ledger {
    /// Renew lease `name`, which `holder` has just taken for `ttl`, every `ttl / 3` until the
    /// returned [`KeptLease`] is dropped. A failed renewal (database unreachable) is retried at
    /// the next tick; a renewal that finds the lease gone marks it lost and stops.
    pub fn keep_lease(&self, name: &str, holder: &str, ttl: Duration) -> KeptLease {
        let lost = Arc::new(AtomicBool::new(false));
        let (ledger, name, holder, flag) = (
            self.clone(),
            name.to_owned(),
            holder.to_owned(),
            lost.clone(),
        );
        let every = (ttl / 3).max(Duration::from_millis(10));
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match ledger.renew_lease(&name, &holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lease = %name, "lease lost before its holder finished");
                        flag.store(true, Ordering::Release);
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(lease = %name, %error, "could not renew a lease; retrying");
                    }
                }
            }
        });
        KeptLease { lost, renewer }
    }
}
