//! The one harness of pi-sim's integration tests: the Platform side (a simulator started
//! in-process, raw requests and the typed control client, see [`platform`]) and the chain side
//! (chains, funded keys, hand-built envelopes and an in-process Horizon, see [`chain`]).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod chain;
pub mod platform;
