//! signward-slashing: slashing protection that decides and durably records before anything is
//! signed.
//!
//! * [`decision`]: what is checked ([`Check`]) and the answer ([`Decision`], [`Refusal`]).
//! * [`store`]: the [`SlashingStore`] trait and [`SlashingDb`], chosen by URL.
//! * [`sqlite`]: the embedded default, with group commit.
//! * [`postgres`]: for several instances sharing one database.
//! * [`history`]: one validator's records and how an import merges into them (pure).
//! * [`rules`]: the EIP-3076 conditions as a pure reference, one named predicate each.
//! * [`interchange`]: EIP-3076 import and export, streamed.
//! * [`clock`]: the chain-clock window that refuses messages too far in the future.
//!
//! The rules are EIP-3076's, in "complete" form: every signed block and attestation is kept
//! (until pruned), an identical repeat (same signing root) is allowed, and low watermarks come
//! from the oldest record and from pruning.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod decision;
mod error;
pub mod history;
pub mod interchange;
pub mod postgres;
pub mod rules;
pub mod sqlite;
pub mod store;

pub use decision::{Check, Decision, Refusal, Slashable};
pub use error::SlashingError;
pub use store::{SlashingDb, SlashingStore};
