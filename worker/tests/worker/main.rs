//! The worker crate's integration tests in one binary (one link instead of five): U2A and
//! payout jobs against pi-sim, reconciliation with real workers, the Redis namespace clean-up and
//! the embedded queue's bulk push. `support` is the harness they share.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod support;

mod payout;
mod queue_depth;
mod reconcile;
mod redis_namespace;
mod sqlite_bulk_push;
mod u2a;
mod u2a_throttle;
mod worker_queues;
