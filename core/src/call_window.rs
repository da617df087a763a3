//! How many calls a rate limiter let through in the last minute: the figure the operator
//! dashboard shows next to `PI_RATE_LIMIT`, without depending on a metrics system.
//!
//! Sixty one-second buckets behind a mutex: a permit costs one uncontended lock (permits are
//! spaced by the limiter anyway), and reading sums at most sixty numbers. The count is of this
//! process's permits only.

use std::sync::Mutex;
use std::time::Instant;

/// Seconds the window covers.
pub const WINDOW_SECS: u64 = 60;

/// Calls counted per second over the last [`WINDOW_SECS`] seconds.
#[derive(Debug)]
pub struct CallWindow {
    started: Instant,
    /// `(second since started, calls in it)` per slot `second % WINDOW_SECS`.
    buckets: Mutex<[(u64, u64); WINDOW_SECS as usize]>,
}

impl Default for CallWindow {
    fn default() -> CallWindow {
        CallWindow::new()
    }
}

impl CallWindow {
    /// An empty window.
    pub fn new() -> CallWindow {
        CallWindow {
            started: Instant::now(),
            buckets: Mutex::new([(u64::MAX, 0); WINDOW_SECS as usize]),
        }
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Count one call now.
    pub fn record(&self) {
        let now = self.second();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut buckets[(now % WINDOW_SECS) as usize];
        if slot.0 == now {
            slot.1 = slot.1.saturating_add(1);
        } else {
            *slot = (now, 1);
        }
    }

    /// Calls counted in the last [`WINDOW_SECS`] seconds (the current second included).
    pub fn last_minute(&self) -> u64 {
        let now = self.second();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .iter()
            .filter(|(second, _)| *second != u64::MAX && now.saturating_sub(*second) < WINDOW_SECS)
            .map(|(_, calls)| calls)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::call_window::CallWindow;

    #[test]
    fn counts_recent_calls() {
        let window = CallWindow::new();
        assert_eq!(window.last_minute(), 0);
        for _ in 0..5 {
            window.record();
        }
        assert_eq!(window.last_minute(), 5);
    }
}
