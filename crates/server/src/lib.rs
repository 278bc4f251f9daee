//! signward-server: the HTTP edge.
//!
//! Request path: [`serve`] accepts the connection (body limit, timeout) → [`gate`] authenticates
//! the caller and checks the route's scope → [`api`] routes it →
//! [`signer::Signer`] parses the body, computes the signing job with `signward-core`, looks up
//! the key, (slashing check-and-record goes here) and signs off the async runtime → the handler
//! answers in JSON or text. Every failure leaves through [`error::ApiError`], which logs the detail
//! and returns only a stable code.
#![forbid(unsafe_code)]

pub mod api;
pub mod controls;
pub mod error;
pub mod evm;
pub mod gate;
pub mod keyops;
pub mod metrics;
pub mod serve;
pub mod signer;
pub mod state;
pub mod tls;
pub mod vault;

pub use error::ApiError;
pub use serve::{router, serve, serve_tls, ServerConfig};
pub use state::{AppState, KeyRegistry};
