//! signward-auth: who may call signward, and for what.
//!
//! * [`secret`]: the server secret (HMAC key), created 0600 in the data directory.
//! * [`token`]: 256-bit random tokens; only HMAC-SHA256(secret, token) is ever stored.
//! * [`authorizer`]: the one authorizer: [`authorize`] decides every permission, caller ×
//!   action (enter a scope group, use or see a key, sign an eth2 family, sign by an EVM method).
//! * [`policy`]: what a credential may do, as data: scopes, BLS and EVM keys, operations by
//!   family, fee recipients, CIDR binding, expiry.
//! * [`store`]: the credential file, reloaded when it changes.
//! * [`limiter`]: failed attempts counted and limited per source address.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod authorizer;
mod error;
pub mod limiter;
pub mod policy;
pub mod secret;
pub mod store;
pub mod token;

pub use authorizer::{authorize, Action};
pub use error::AuthError;
pub use policy::{
    parse_address, parse_operations, Cidr, Denied, EvmKeys, EvmTxResult, KeyId, Operation, Policy,
    Scope,
};
