//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold: that commit then copies the WAL into the database file and fsyncs
//! it, and every request waiting on that commit waits for the copy too. A group-commit writer
//! turns that off on its own connection ([`writer_connection`]) and a [`Checkpointer`] thread,
//! on a connection of its own, runs passive checkpoints (which never block the writer) instead.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::DbError;

/// How often the checkpointer runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Turn off the automatic checkpoint on a writer's connection; a [`Checkpointer`] must run
/// beside it, or the WAL grows without bound.
pub fn writer_connection(conn: &rusqlite::Connection) -> Result<(), DbError> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// A thread running passive checkpoints on `path`; it stops when dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Start the thread named `name` with its own connection to `path`.
    pub fn spawn(name: &str, path: &Path) -> Result<Self, DbError> {
        let conn = crate::open_sqlite(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // PASSIVE: copy what no reader still needs, never wait for a lock. A failure
                    // only leaves the WAL longer until the next round.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "WAL checkpoint did not run");
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}
