//! How every signward store opens its database, in one place: the slashing database, the audit
//! log, the vault and the EVM spend ledger all need the same durability and file permissions,
//! and the SQLite stores that commit per request (slashing protection, the audit log, the spend
//! ledger) each run their own writer thread of one type, [`GroupCommit`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod group_commit;
pub use checkpoint::Checkpointer;
pub use group_commit::{GroupCommit, WriterStopped};

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Config, NoTls};

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Creating the file or its directory failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// SQLite refused the file or a setting.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL URL could not be read.
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("PostgreSQL pool error: {0}")]
    Pool(String),
}

/// Open a SQLite database file, creating it (and its directory) owner-only (0600) if needed, in
/// WAL mode with `synchronous=FULL` (a commit is on disk before it returns), foreign keys on, and
/// a 30 s wait for a lock held by another connection.
pub fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, DbError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Longest wait for a pooled PostgreSQL connection (to be handed one, to open one, to recycle one).
pub const POOL_WAIT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection pool whose sessions commit durably (`synchronous_commit=on`, whatever
/// the server's default).
pub fn pg_pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let mut config = Config::from_str(url)?;
    config.options("-c synchronous_commit=on");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Bounded waits: a pool that cannot hand out a connection (every one busy, or the server
    // gone) fails the request (nothing is signed) instead of holding it forever.
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_files_are_owner_only_and_durable() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("signward-db-{}", std::process::id()));
        let path = dir.join("sub/x.sqlite");
        let c = super::open_sqlite(&path).unwrap();
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!((sync, mode.as_str()), (2, "wal"));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o077, 0);
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
