use thiserror::Error;

/// EVM errors. Messages never carry key material.
#[derive(Debug, Error)]
pub enum EvmError {
    /// Not a valid secp256k1 secret key.
    #[error("invalid secp256k1 secret key")]
    InvalidKey,
    /// A V3 keyfile that cannot be read, and what is wrong with it.
    #[error("keyfile: {0}")]
    Keyfile(&'static str),
    /// The password is wrong or the keyfile was altered.
    #[error("wrong password or altered keyfile (MAC mismatch)")]
    MacMismatch,
    /// The keyfile's KDF parameters are refused (by its class).
    #[error("keyfile KDF: {0}")]
    Kdf(String),
    /// A transaction that cannot be signed as sent.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// A transaction type signward does not sign.
    #[error("unsupported transaction type {0}")]
    UnsupportedType(String),
    /// EIP-712 typed data that cannot be encoded.
    #[error("invalid typed data: {0}")]
    InvalidTypedData(String),
    /// The signature could not be made.
    #[error("signing failed")]
    Signing,
    /// The spend ledger could not answer.
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
