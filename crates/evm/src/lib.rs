//! EVM signing inside the boundary: secp256k1 keys (from V3 keyfiles, the vault, or generated),
//! transactions (legacy EIP-155, EIP-2930, EIP-1559) encoded and hashed by `alloy`, EIP-191
//! personal messages and EIP-712 typed data, and the spend ledger that enforces the policy's
//! rolling windows atomically across instances. There is no way to sign a caller-supplied hash.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
pub mod json;
pub mod key;
pub mod keyfile;
pub mod ledger;
pub mod message;
pub mod nonces;
pub mod tx;

pub use error::EvmError;
pub use key::EvmKey;
