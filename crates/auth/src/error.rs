//! The auth crate's one error type. Never carries a token or the server secret.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("{file}: accessible by group or others; run `chmod 600 {file}`")]
    InsecurePermissions { file: String },
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    #[error("a credential named {0:?} already exists")]
    Duplicate(String),
    #[error("no credential named {0:?}")]
    NotFound(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
