//! The slashing crate's one error type. A `SlashingError` is never a refusal: refusals are
//! [`crate::Refusal`] decisions. An error means "could not decide", and the caller must not sign.

use thiserror::Error;

#[derive(Debug, Error)]
/// Why the slashing database could not decide.
pub enum SlashingError {
    /// SQLite failed.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The PostgreSQL pool failed.
    #[error("PostgreSQL pool error: {0}")]
    Pool(String),
    /// The check's transaction failed.
    #[error("slashing database transaction failed: {0}")]
    Storage(String),
    /// The caller's journal (the audit chain) could not be written in the check's transaction.
    #[error("journal entry could not be written: {0}")]
    Journal(String),
    /// The writer thread has stopped.
    #[error("the slashing database writer has stopped")]
    WriterGone,
    /// The URL is neither `sqlite:PATH` nor `postgres://...`.
    #[error("unsupported database URL (use sqlite:PATH or postgres://...)")]
    BadUrl,
    /// The schema is newer than this build.
    #[error("database schema version {found} is newer than this signward supports ({supported}); upgrade signward")]
    SchemaTooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
    /// The database is pinned to another chain.
    #[error("genesis validators root mismatch: database is pinned to {pinned}, got {given}")]
    GenesisMismatch {
        /// The root the database is pinned to.
        pinned: String,
        /// The root given.
        given: String,
    },
    /// A value beyond what the database stores.
    #[error("value {0} is too large for the slashing database")]
    OutOfRange(u64),
    /// An EIP-3076 document that cannot be imported.
    #[error("invalid interchange file: {0}")]
    Interchange(String),
    /// An I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<signward_db::DbError> for SlashingError {
    fn from(e: signward_db::DbError) -> Self {
        match e {
            signward_db::DbError::Sqlite(e) => SlashingError::Sqlite(e),
            signward_db::DbError::Postgres(e) => SlashingError::Postgres(e),
            signward_db::DbError::Io(e) => SlashingError::Io(e),
            signward_db::DbError::Pool(e) => SlashingError::Pool(e),
        }
    }
}

impl SlashingError {
    /// Stable class for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            SlashingError::Sqlite(_) => "sqlite",
            SlashingError::Postgres(_) | SlashingError::Pool(_) => "postgres",
            SlashingError::Storage(_) => "storage",
            SlashingError::Journal(_) => "journal",
            SlashingError::WriterGone => "writer_gone",
            SlashingError::BadUrl => "bad_url",
            SlashingError::SchemaTooNew { .. } => "schema_too_new",
            SlashingError::GenesisMismatch { .. } => "genesis_mismatch",
            SlashingError::OutOfRange(_) => "out_of_range",
            SlashingError::Interchange(_) => "interchange",
            SlashingError::Io(_) => "io",
        }
    }
}
