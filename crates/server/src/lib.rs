//! signward-server: the HTTP edge.
//!
//! Request path: [`conn`] accepts the connection (caps, header and idle timeouts) → [`serve`]
//! routes it (every route in one scope group; body limit, deadline) → [`gate`] authenticates the
//! caller and checks the group's scope → [`api`] handles it → [`signer`] (eth2) or
//! [`api::rpc`] (EVM) runs [`admission`], asks the caller's policy (the one authorizer in
//! `signward-auth`), checks and records in the slashing database, and signs off the async
//! runtime → the handler answers in JSON or text. Every failure leaves through
//! [`error::ApiError`], which logs the detail and returns only a stable code.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod conn;
pub mod error;
pub mod gate;
pub mod serve;
pub mod tls;

pub use error::ApiError;
pub use serve::{router, serve, serve_tls, ServerConfig};
