//! An in-process "new jobs" signal, so a worker in the same process picks up a job as soon as it
//! is enqueued instead of at its next poll. Workers in other processes still find jobs by their
//! poll interval; the signal only shortens the wait.

use futures::Stream;
use futures::task::AtomicWaker;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

#[derive(Debug, Default)]
struct Inner {
    pending: AtomicBool,
    waker: AtomicWaker,
}

/// The sending side: [`WakeSignal::notify`] after a successful push.
#[derive(Clone, Debug, Default)]
pub(crate) struct WakeSignal {
    inner: Arc<Inner>,
}

impl WakeSignal {
    /// Tell the listening worker that jobs are waiting. Repeated notifications coalesce.
    pub(crate) fn notify(&self) {
        self.inner.pending.store(true, Ordering::Release);
        self.inner.waker.wake();
    }

    /// The stream a worker's poll strategy listens on (one listener per signal).
    pub(crate) fn listener(&self) -> WakeListener {
        WakeListener {
            inner: self.inner.clone(),
        }
    }
}

/// Yields `()` once per burst of notifications.
#[derive(Debug)]
pub(crate) struct WakeListener {
    inner: Arc<Inner>,
}

impl Stream for WakeListener {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        // Register first, then check: a notify between the two still wakes us.
        self.inner.waker.register(cx.waker());
        if self.inner.pending.swap(false, Ordering::AcqRel) {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::wake::WakeSignal;
    use futures::StreamExt;

    #[tokio::test]
    async fn notifications_coalesce_and_wake() {
        let signal = WakeSignal::default();
        let mut listener = signal.listener();
        signal.notify();
        signal.notify();
        assert_eq!(listener.next().await, Some(()));
        let waiter = tokio::spawn(async move { listener.next().await });
        tokio::task::yield_now().await;
        signal.notify();
        assert_eq!(waiter.await.ok().flatten(), Some(()));
    }
}
