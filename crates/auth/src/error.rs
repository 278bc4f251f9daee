//! The auth crate's one error type. Never carries a token or the server secret.

use thiserror::Error;

/// Why an authentication or credential operation failed.
#[derive(Debug, Error)]
pub enum AuthError {
    /// A secret file is readable by others.
    #[error("{file}: accessible by group or others; run `chmod 600 {file}`")]
    InsecurePermissions {
        /// The file.
        file: String,
    },
    /// A file could not be read or parsed (`reason` names what is wrong, never its content).
    #[error("{file}: {reason}")]
    BadFile {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy that cannot be used, and why.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// A credential with this name already exists.
    #[error("a credential named {0:?} already exists")]
    Duplicate(String),
    /// No credential with this name.
    #[error("no credential named {0:?}")]
    NotFound(String),
    /// An I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
