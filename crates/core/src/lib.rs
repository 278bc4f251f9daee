//! signward-core: the domain of an Ethereum remote signer, without I/O.
//!
//! * [`bytes`]: fixed-size byte strings and integers with the consensus JSON encoding.
//! * [`ssz`]: SSZ merkleization (hash_tree_root) for the few containers a signer needs.
//! * [`containers`]: the consensus containers a validator signs, with their roots.
//! * [`network`]: network configurations (presets, fork schedules, genesis).
//! * [`request`]: the Web3Signer sign request body.
//! * [`signing`]: from a request to a [`signing::SigningJob`]: domain, object root, signing root,
//!   and the slashing-relevant facts a check-before-sign step needs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bytes;
pub mod containers;
pub mod error;
pub mod network;
pub mod request;
pub mod signing;
pub mod ssz;

pub use error::CoreError;
