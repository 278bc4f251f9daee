//! signward-engine: the signing engine, with no HTTP in it.
//!
//! [`assemble()`] builds it from one typed [`Config`]: the stores ([`stores`]), the state
//! ([`state::AppState`]: keys with one [`state::KeyOrigin`], slashing protection, the vault
//! runtime, controls, metrics, the credential store the edge's gate asks), and the runtime tasks
//! (key loading, reload, vault poll, pruning, denial flush). Requests enter through the two
//! pipelines, [`eth2::sign`] and [`evm::sign`], which run the same [`admission`] step first,
//! ask `signward_auth::authorize` for every permission, and end in [`decision`], the one place a
//! decision becomes its audit record and metric. Key lifecycle is [`keyops`]. Failures are
//! [`Rejection`]s and [`evm::EvmRejection`]s with stable codes; the HTTP crate maps them to
//! answers.
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
pub mod group;
pub mod keyload;
pub mod keyops;
pub mod metrics;
pub mod reload;
pub(crate) mod send;
pub mod state;
pub mod stores;
pub mod upstream;
pub mod vault;

pub use assemble::{assemble, Config};
pub use error::{caller_fault, EngineError, Rejection};
pub use state::{AppState, KeyRegistry};
