//! Errors of the core crate. They never carry secret material: the core handles no secrets.

use thiserror::Error;

/// Why a request could not be turned into a signing job.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A bitlist/bitvector/list does not fit the preset's bound, or is malformed.
    #[error("SSZ value out of bounds: {0}")]
    SszBounds(&'static str),
    /// The request names a fork version/format combination we do not accept.
    #[error("unsupported block format: {0}")]
    UnsupportedBlockFormat(&'static str),
    /// A field required by this request type is missing or contradicts another field.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The signing root the client sent differs from the one we computed.
    #[error("client signing root does not match the computed signing root")]
    SigningRootMismatch,
    /// A network configuration could not be parsed or is inconsistent.
    #[error("invalid network configuration: {0}")]
    InvalidNetwork(String),
}
