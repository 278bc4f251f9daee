//! The key crate's one error type. Variants carry no secret and no file content; the loader
//! attaches the file name. [`KeyError::class`] is a stable short name for logs and metrics.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("file could not be read ({0:?})")]
    Io(std::io::ErrorKind),
    #[error("file is larger than the 1 MiB limit for key material")]
    FileTooLarge,
    #[error("file is accessible by group or others; run `chmod 600` on it")]
    InsecurePermissions,
    #[error("password is not valid UTF-8")]
    PasswordNotUtf8,
    #[error("no password found for this keystore")]
    MissingPassword,
    #[error("malformed keystore: {0}")]
    MalformedKeystore(&'static str),
    #[error("unsupported keystore: {0}")]
    UnsupportedKeystore(&'static str),
    #[error("keystore KDF parameters exceed the allowed cost")]
    KdfTooExpensive,
    #[error("checksum mismatch: wrong password, or the keystore was altered")]
    ChecksumMismatch,
    #[error("decrypted key does not match the keystore's pubkey")]
    PubkeyMismatch,
    #[error("secret is not a valid BLS12-381 secret key")]
    InvalidSecretKey,
    #[error("malformed key config: {0}")]
    MalformedKeyConfig(&'static str),
    #[error("unsupported key config type")]
    UnsupportedKeyConfig,
    #[error("file-raw key refused: start with --allow-raw-keys to load plaintext keys")]
    RawKeysNotAllowed,
    #[error("duplicate key: this public key was already loaded from another file")]
    DuplicateKey,
}

impl KeyError {
    pub(crate) fn io(e: std::io::Error) -> Self {
        KeyError::Io(e.kind())
    }

    /// Stable error class for logs, metrics and API responses.
    pub fn class(&self) -> &'static str {
        match self {
            KeyError::Io(_) => "io_error",
            KeyError::FileTooLarge => "file_too_large",
            KeyError::InsecurePermissions => "insecure_permissions",
            KeyError::PasswordNotUtf8 => "password_not_utf8",
            KeyError::MissingPassword => "missing_password",
            KeyError::MalformedKeystore(_) => "malformed_keystore",
            KeyError::UnsupportedKeystore(_) => "unsupported_keystore",
            KeyError::KdfTooExpensive => "kdf_too_expensive",
            KeyError::ChecksumMismatch => "checksum_mismatch",
            KeyError::PubkeyMismatch => "pubkey_mismatch",
            KeyError::InvalidSecretKey => "invalid_secret_key",
            KeyError::MalformedKeyConfig(_) => "malformed_key_config",
            KeyError::UnsupportedKeyConfig => "unsupported_key_config",
            KeyError::RawKeysNotAllowed => "raw_keys_not_allowed",
            KeyError::DuplicateKey => "duplicate_key",
        }
    }
}
