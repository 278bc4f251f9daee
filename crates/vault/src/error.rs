use thiserror::Error;

/// Everything that can go wrong in the vault. Messages never carry secret material.
#[derive(Debug, Error)]
pub enum VaultError {
    /// No vault exists in this database.
    #[error("the vault is not initialized; run `signward init`")]
    Uninitialized,
    /// A vault already exists in this database.
    #[error("a vault already exists in this database")]
    AlreadyInitialized,
    /// The vault is sealed.
    #[error("the vault is sealed")]
    Sealed,
    /// The vault is already unsealed.
    #[error("the vault is already unsealed")]
    AlreadyUnsealed,
    /// Share parameters (threshold, count) that cannot be used.
    #[error("invalid share parameters: {0}")]
    InvalidParameters(String),
    /// The share belongs to another vault.
    #[error("the share belongs to another vault")]
    ShareWrongVault,
    /// The share belongs to a share set that rekey or rotate replaced.
    #[error("the share belongs to a share set that rekey or rotate replaced")]
    ShareStale,
    /// A share with this index was already submitted.
    #[error("a share with this index was already submitted")]
    ShareDuplicate,
    /// The share cannot be read.
    #[error("the share is malformed: {0}")]
    ShareMalformed(String),
    /// Wrong passphrase, or an altered share file.
    #[error("wrong passphrase, or the share file was altered")]
    WrongPassphrase,
    /// No age identity given opens the share file.
    #[error("no age identity given opens this share file")]
    WrongIdentity,
    /// The shares do not reconstruct this vault's master key.
    #[error("the submitted shares do not reconstruct this vault's master key (a share is corrupt or forged); progress was reset")]
    QuorumMismatch,
    #[error(
        "key record {0} failed authentication: it was altered, swapped or belongs to another vault"
    )]
    /// A key record failed authentication.
    RecordTampered(String),
    /// Another process rotated the vault.
    #[error("the vault was rotated by another process; seal and unseal with the new shares")]
    GenerationChanged,
    /// No such key in the vault.
    #[error("key {0} is not in the vault")]
    NotFound(String),
    /// An age encryption or decryption failure.
    #[error("age: {0}")]
    Age(String),
    /// The vault database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// An I/O failure.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A failure that is a bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl VaultError {
    /// A stable code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Uninitialized => "vault_uninitialized",
            VaultError::AlreadyInitialized => "vault_already_initialized",
            VaultError::Sealed => "sealed",
            VaultError::AlreadyUnsealed => "already_unsealed",
            VaultError::InvalidParameters(_) => "invalid_parameters",
            VaultError::ShareWrongVault => "share_wrong_vault",
            VaultError::ShareStale => "share_stale",
            VaultError::ShareDuplicate => "share_duplicate",
            VaultError::ShareMalformed(_) => "share_malformed",
            VaultError::WrongPassphrase => "wrong_passphrase",
            VaultError::WrongIdentity => "wrong_identity",
            VaultError::QuorumMismatch => "quorum_mismatch",
            VaultError::RecordTampered(_) => "record_tampered",
            VaultError::GenerationChanged => "vault_generation_changed",
            VaultError::NotFound(_) => "key_not_found",
            VaultError::Age(_) => "age_error",
            VaultError::Storage(_) => "vault_storage",
            VaultError::Io(_) => "io",
            VaultError::Internal(_) => "internal",
        }
    }
}

impl From<rusqlite::Error> for VaultError {
    fn from(e: rusqlite::Error) -> Self {
        VaultError::Storage(e.to_string())
    }
}

impl From<signward_db::DbError> for VaultError {
    fn from(e: signward_db::DbError) -> Self {
        match e {
            signward_db::DbError::Io(e) => VaultError::Io(e),
            other => VaultError::Storage(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for VaultError {
    fn from(e: tokio_postgres::Error) -> Self {
        VaultError::Storage(e.to_string())
    }
}
