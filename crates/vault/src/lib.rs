//! The sealed key vault.
//!
//! Signing keys are stored encrypted (XChaCha20-Poly1305) under a 256-bit master key. The master
//! key is never written anywhere: `init` splits it with Shamir's scheme over GF(256) (the audited
//! `vsss-rs` crate) into share files, each encrypted to one operator (argon2id passphrase or an
//! age recipient). A running server holds the master key only while unsealed, after a quorum of
//! shares has been submitted; sealing wipes it and every key decrypted with it.
//!
//! Modules mirror the domain: [`master`] (the key, its split and its verifier), [`share`] (share
//! payloads and the files that carry them), [`record`] (one key's ciphertext, bound to its id),
//! [`store`] (the one type that owns the vault's SQL, SQLite or PostgreSQL), [`vault`] (the
//! sealed/unsealed state machine), [`backup`] (age-encrypted key backups).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
mod error;
pub mod master;
pub mod record;
pub mod share;
pub mod store;
pub mod vault;

pub use error::VaultError;
pub use master::MasterKey;
pub use record::KeyKind;
pub use share::SharePayload;
pub use store::{StoredKey, VaultMeta, VaultStore};
pub use vault::{OpenedKey, UnsealProgress, Vault, VaultState};
