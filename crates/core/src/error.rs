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
    /// A payload holds a field that the container chosen for it (by its type, and for the
    /// deprecated forms by the fork of its slot) does not have. Nothing is signed: ignoring the
    /// field would sign a different message than the one sent.
    #[error("unexpected field in {0}")]
    UnexpectedField(&'static str),
    /// The request's fork (its `version`, or the version `fork_info` gives for the message's
    /// epoch) is not the fork the configured network schedules at the message's slot.
    #[error("the message's fork does not match the network's fork at its slot")]
    ForkMismatch,
    /// The signing root the client sent differs from the one we computed.
    #[error("client signing root does not match the computed signing root")]
    SigningRootMismatch,
    /// A network configuration could not be parsed or is inconsistent.
    #[error("invalid network configuration: {0}")]
    InvalidNetwork(String),
}
