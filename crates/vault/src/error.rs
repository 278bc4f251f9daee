use thiserror::Error;

/// Everything that can go wrong in the vault. Messages never carry secret material.
#[derive(Debug, Error)]
pub enum VaultError {
    #[error("the vault is not initialized; run `signward init`")]
    Uninitialized,
    #[error("a vault already exists in this database")]
    AlreadyInitialized,
    #[error("the vault is sealed")]
    Sealed,
    #[error("the vault is already unsealed")]
    AlreadyUnsealed,
    #[error("invalid share parameters: {0}")]
    InvalidParameters(String),
    #[error("the share belongs to another vault")]
    ShareWrongVault,
    #[error("the share belongs to a share set that rekey or rotate replaced")]
    ShareStale,
    #[error("a share with this index was already submitted")]
    ShareDuplicate,
    #[error("the share is malformed: {0}")]
    ShareMalformed(String),
    #[error("wrong passphrase, or the share file was altered")]
    WrongPassphrase,
    #[error("no age identity given opens this share file")]
    WrongIdentity,
    #[error("the submitted shares do not reconstruct this vault's master key (a share is corrupt or forged); progress was reset")]
    QuorumMismatch,
    #[error(
        "key record {0} failed authentication: it was altered, swapped or belongs to another vault"
    )]
    RecordTampered(String),
    #[error("the vault was rotated by another process; seal and unseal with the new shares")]
    GenerationChanged,
    #[error("key {0} is not in the vault")]
    NotFound(String),
    #[error("age: {0}")]
    Age(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
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
