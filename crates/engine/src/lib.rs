//! signward-engine: the signing engine, with no HTTP in it.
//!
//! This crate is where the engine is being gathered (issue 13): today it owns
//! * [`stores`]: where each store lives and how it is opened from a data directory and the
//!   operator's URL (`env:VAR` indirection included), for `serve`, the commands and the benchmark;
//! * [`audit_journal`]: the audit chain as the slashing database's journal, and the one mapping
//!   from a slashing decision to an audit outcome.
//!
//! The eth2 and EVM pipelines, key lifecycle and runtime tasks still live in `signward-server`
//! and move here next; `docs/architecture.md` says where each piece is.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod admission;
pub mod assemble;
pub mod audit_journal;
pub mod controls;
pub mod decision;
mod error;
pub mod eth2;
pub mod evm;
pub mod keyload;
pub mod keyops;
pub mod metrics;
pub mod reload;
pub mod state;
pub mod stores;
pub mod vault;

pub use assemble::{assemble, Config};
pub use error::{caller_fault, EngineError, Rejection};
pub use state::{AppState, KeyRegistry};
