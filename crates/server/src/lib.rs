//! signward-server: the HTTP edge over the signing engine (`signward-engine`).
//!
//! Request path: [`conn`] accepts the connection (caps, header and idle timeouts) → [`mod@serve`]
//! routes it (every route in one scope group; body limit, deadline; anything else refused) →
//! [`gate`] reads the credential off the request and asks the authorizer
//! (`signward_auth::authorize`) for the group's scope → [`api`] reads the request into an engine
//! call (`signward_engine::eth2::sign`, `signward_engine::evm::sign`, key management) → the
//! engine's rejection, if any, leaves through [`error::ApiError`] (HTTP) or the JSON-RPC error
//! of [`api::rpc`], with a stable code; the detail goes to the log only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod conn;
pub mod error;
pub mod gate;
pub mod peers;
pub mod serve;
pub mod tls;

pub use error::ApiError;
pub use serve::{router, serve, serve_tls, ServerConfig};
