//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold: that commit then copies the WAL into the database file and fsyncs
//! it, and every request waiting on that commit waits for the copy too. A group-commit writer
//! raises that threshold far up on its own connection ([`writer_connection`]) and a
//! [`Checkpointer`] thread, on a connection of its own, runs passive checkpoints (which never
//! block the writer) instead. A passive checkpoint beside a writer that never pauses cannot
//! catch up with it, and SQLite only rewinds the WAL once a checkpoint has, so under sustained
//! load the WAL would grow for as long as the load lasts: the writer's own checkpoint stays as a
//! backstop at [`WRITER_BACKSTOP_PAGES`], and `journal_size_limit` truncates the file after.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::DbError;

/// How often the checkpointer runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL pages (4 KiB each) past which the writer checkpoints inside its own commit after all.
pub const WRITER_BACKSTOP_PAGES: i64 = 16_384;

/// Move the automatic checkpoint on a writer's connection up to [`WRITER_BACKSTOP_PAGES`]
/// (SQLite's default is 1,000); a [`Checkpointer`] runs beside it.
pub fn writer_connection(conn: &rusqlite::Connection) -> Result<(), DbError> {
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_BACKSTOP_PAGES)?;
    conn.query_row("PRAGMA journal_size_limit = 67108864", [], |_| Ok(()))?;
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
