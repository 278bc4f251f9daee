//! signward-keys: loading and holding validator keys.
//!
//! * [`bls`]: the BLS key pair type and signing.
//! * [`keystore`]: EIP-2335 keystores (decrypt and encrypt).
//! * [`password`]: EIP-2335 password normalisation and password files.
//! * [`config`]: Web3Signer key-config YAML files.
//! * [`loader`]: discovery and parallel decryption of everything configured.
//!
//! Secrets live in `secrecy`/`zeroize` types from the moment they are read, and no type here that
//! holds secret bytes implements a revealing `Debug`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bls;
pub mod config;
mod error;
pub mod fsutil;
pub mod keystore;
pub mod loader;
pub mod password;

pub use bls::BlsKeypair;
pub use error::KeyError;
