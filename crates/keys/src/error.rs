//! The key crate's one error type. Variants carry no secret and no file content; the loader
//! attaches the file name. [`KeyError::class`] is a stable short name for logs and metrics.

use thiserror::Error;

/// Why a key did not load.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("file could not be read ({0:?})")]
    Io(std::io::ErrorKind),
    /// The file is larger than key material can be.
    #[error("file is larger than the 1 MiB limit for key material")]
    FileTooLarge,
    /// The file is readable by others.
    #[error("file is accessible by group or others; run `chmod 600` on it")]
    InsecurePermissions,
    /// The password is not UTF-8.
    #[error("password is not valid UTF-8")]
    PasswordNotUtf8,
    /// No password was found for the keystore.
    #[error("no password found for this keystore")]
    MissingPassword,
    /// The keystore is not EIP-2335 JSON; what is wrong.
    #[error("malformed keystore: {0}")]
    MalformedKeystore(&'static str),
    /// An EIP-2335 feature signward does not take; which.
    #[error("unsupported keystore: {0}")]
    UnsupportedKeystore(&'static str),
    /// The KDF parameters exceed the allowed cost.
    #[error("keystore KDF parameters exceed the allowed cost")]
    KdfTooExpensive,
    /// Wrong password, or an altered keystore.
    #[error("checksum mismatch: wrong password, or the keystore was altered")]
    ChecksumMismatch,
    /// The decrypted key is not the keystore's public key.
    #[error("decrypted key does not match the keystore's pubkey")]
    PubkeyMismatch,
    /// Not a valid BLS12-381 secret key.
    #[error("secret is not a valid BLS12-381 secret key")]
    InvalidSecretKey,
    /// A key config document that cannot be read; what is wrong.
    #[error("malformed key config: {0}")]
    MalformedKeyConfig(&'static str),
    /// A key config type signward does not load.
    #[error("unsupported key config type")]
    UnsupportedKeyConfig,
    /// A plaintext key without `--allow-raw-keys`.
    #[error("file-raw key refused: start with --allow-raw-keys to load plaintext keys")]
    RawKeysNotAllowed,
    /// The public key was already loaded from another file.
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
