use thiserror::Error;

/// EVM errors. Messages never carry key material.
#[derive(Debug, Error)]
pub enum EvmError {
    #[error("invalid secp256k1 secret key")]
    InvalidKey,
    #[error("keyfile: {0}")]
    Keyfile(&'static str),
    #[error("wrong password or altered keyfile (MAC mismatch)")]
    MacMismatch,
    #[error("keyfile KDF: {0}")]
    Kdf(String),
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    #[error("unsupported transaction type {0}")]
    UnsupportedType(String),
    #[error("invalid typed data: {0}")]
    InvalidTypedData(String),
    #[error("signing failed")]
    Signing,
    #[error("spend ledger: {0}")]
    Ledger(String),
}

impl From<rusqlite::Error> for EvmError {
    fn from(e: rusqlite::Error) -> Self {
        EvmError::Ledger(e.to_string())
    }
}

impl From<signward_db::DbError> for EvmError {
    fn from(e: signward_db::DbError) -> Self {
        EvmError::Ledger(e.to_string())
    }
}

impl From<tokio_postgres::Error> for EvmError {
    fn from(e: tokio_postgres::Error) -> Self {
        EvmError::Ledger(e.to_string())
    }
}
