//! The embedded SQLite backend. [`SqliteStore`] owns all of its SQL.
//!
//! Checks run on one writer thread that owns the connection. It takes every check that is waiting
//! (up to [`MAX_BATCH`]), decides them in order inside one `BEGIN IMMEDIATE` transaction, commits
//! (WAL with `synchronous=FULL`: the commit is fsynced), and only then answers. Concurrent
//! requests therefore share one fsync (group commit), and a conflicting request later in the same
//! batch sees the earlier one's record. Imports, exports and pruning use their own connections and
//! take the same SQLite write lock, so they are safe while the server runs.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use signward_core::bytes::{PublicKeyBytes, Root, Uint64};
use signward_db::GroupCommit;
use tokio::sync::oneshot;

use crate::decision::{Check, Decision, Refusal, Slashable};
use crate::history::{merge, History, Watermarks};
use crate::interchange::{self, Batch, Prepared, SignedAttestation, SignedBlock};
use crate::store::{
    to_i64, write_history, ExportReport, ImportReport, PruneReport, SlashingStore, SCHEMA_VERSION,
};
use crate::SlashingError;

/// Most checks decided in one transaction.
pub const MAX_BATCH: usize = 512;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE validators (
         id INTEGER PRIMARY KEY,
         pubkey BLOB NOT NULL UNIQUE
     );
     CREATE TABLE signed_blocks (
         validator_id INTEGER NOT NULL REFERENCES validators(id),
         slot INTEGER NOT NULL,
         signing_root BLOB,
         PRIMARY KEY (validator_id, slot)
     ) WITHOUT ROWID;
     CREATE TABLE signed_attestations (
         validator_id INTEGER NOT NULL REFERENCES validators(id),
         source_epoch INTEGER NOT NULL,
         target_epoch INTEGER NOT NULL,
         signing_root BLOB,
         PRIMARY KEY (validator_id, target_epoch)
     ) WITHOUT ROWID;
     CREATE INDEX signed_attestations_source ON signed_attestations (validator_id, source_epoch);
     CREATE TABLE watermarks (
         validator_id INTEGER PRIMARY KEY REFERENCES validators(id),
         block_slot INTEGER,
         att_source INTEGER,
         att_target INTEGER
     );",
    ),
    (
        2,
        "ALTER TABLE validators ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;",
    ),
];

/// One entry for a [`TxJournal`]: opaque to slashing protection, which only carries it into the
/// transaction of its check.
pub type JournalEntry = Box<dyn std::any::Any + Send>;

/// Rows another component writes in the same transaction as a batch of checks, so one commit
/// (one fsync) covers a decision and the caller's record of it. signward's audit chain is the one
/// user (`signward-server` implements it); slashing protection knows nothing of what is written.
pub trait TxJournal: Send + 'static {
    /// Create the journal's tables in this database. Called at every open: must be idempotent.
    fn create(&self, conn: &Connection) -> Result<(), String>;
    /// Write the batch's entries, in submission order, inside the open transaction. Each comes
    /// with the decision taken for its check, or `None` for an entry journaled on its own. An
    /// error rolls the whole batch back: no check in it is allowed, nothing in it is signed.
    fn write(
        &mut self,
        conn: &Connection,
        entries: Vec<(JournalEntry, Option<Decision>)>,
    ) -> Result<(), String>;
}

enum Job {
    Check(
        Check,
        Option<JournalEntry>,
        oneshot::Sender<Result<Decision, SlashingError>>,
    ),
    Journal(JournalEntry, oneshot::Sender<Result<(), SlashingError>>),
}

enum Reply {
    Check(oneshot::Sender<Result<Decision, SlashingError>>),
    Journal(oneshot::Sender<Result<(), SlashingError>>),
}

/// SQLite slashing protection database, optionally carrying a caller's journal (the audit chain)
/// in the same transactions, so one fsync commits both.
pub struct SqliteStore {
    path: PathBuf,
    jobs: GroupCommit<Job>,
    journals: bool,
    /// For the one read a message that is not slashable needs (WAL: never blocks the writer).
    reader: std::sync::Arc<std::sync::Mutex<Connection>>,
    /// Bulk work (import, export, prune, ...) runs one job at a time on its own connection, so
    /// at most two connections ever want the write lock: the group-commit writer and this one.
    /// Many bulk jobs at once otherwise queue in SQLite's busy handler, whose sleeps are not
    /// fair, and can hold signing behind them for as long as the busy timeout.
    bulk: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Checkpoints the WAL beside the writer, whose commits never do it themselves.
    _checkpointer: signward_db::Checkpointer,
}

/// Open (creating the file 0600 if needed) a durable connection.
fn connect(path: &Path) -> Result<Connection, SlashingError> {
    Ok(signward_db::open_sqlite(path)?)
}

fn migrate(conn: &mut Connection) -> Result<(), SlashingError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    )?;
    let found: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(SlashingError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![version],
        )?;
        tracing::info!(version, "slashing database schema migrated");
    }
    tx.commit()?;
    Ok(())
}

fn read_gvr(conn: &Connection) -> Result<Option<Root>, rusqlite::Error> {
    let v: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'genesis_validators_root'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|b| Root::from_slice(&b)))
}

fn write_gvr(conn: &Connection, gvr: &Root) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('genesis_validators_root', ?1)",
        params![gvr.0.to_vec()],
    )?;
    Ok(())
}

fn validator_id(conn: &Connection, pubkey: &PublicKeyBytes) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO validators (pubkey) VALUES (?1) ON CONFLICT(pubkey) DO NOTHING",
    )?
    .execute(params![pubkey.0.to_vec()])?;
    conn.prepare_cached("SELECT id FROM validators WHERE pubkey = ?1")?
        .query_row(params![pubkey.0.to_vec()], |r| r.get(0))
}

/// The EIP-3076 rules for one message, against the rows of validator `vid`. Records the message
/// when it is allowed. Runs inside the caller's transaction.
fn decide(
    c: &Connection,
    vid: i64,
    slashable: Slashable,
    root: &[u8],
) -> Result<Decision, SlashingError> {
    match slashable {
        Slashable::Block { slot } => {
            let slot = to_i64(slot)?;
            let existing: Option<Option<Vec<u8>>> = c
                .prepare_cached(
                    "SELECT signing_root FROM signed_blocks WHERE validator_id = ?1 AND slot = ?2",
                )?
                .query_row(params![vid, slot], |r| r.get(0))
                .optional()?;
            if let Some(existing) = existing {
                return Ok(if existing.as_deref() == Some(root) {
                    Decision::Repeat
                } else {
                    Decision::Refused(Refusal::DoubleProposal)
                });
            }
            let (min_slot, wm): (Option<i64>, Option<i64>) = c
                .prepare_cached(
                    "SELECT (SELECT MIN(slot) FROM signed_blocks WHERE validator_id = ?1),
                            (SELECT block_slot FROM watermarks WHERE validator_id = ?1)",
                )?
                .query_row(params![vid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if min_slot.is_some_and(|m| slot <= m) || wm.is_some_and(|w| slot <= w) {
                return Ok(Decision::Refused(Refusal::BelowWatermark));
            }
            c.prepare_cached(
                "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![vid, slot, root])?;
            Ok(Decision::Allowed)
        }
        Slashable::Attestation {
            source_epoch,
            target_epoch,
        } => {
            if source_epoch > target_epoch {
                return Ok(Decision::Refused(Refusal::SourceAfterTarget));
            }
            let (s, t) = (to_i64(source_epoch)?, to_i64(target_epoch)?);
            let existing: Option<(i64, Option<Vec<u8>>)> = c
                .prepare_cached(
                    "SELECT source_epoch, signing_root FROM signed_attestations
                     WHERE validator_id = ?1 AND target_epoch = ?2",
                )?
                .query_row(params![vid, t], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((es, eroot)) = existing {
                return Ok(if es == s && eroot.as_deref() == Some(root) {
                    Decision::Repeat
                } else {
                    Decision::Refused(Refusal::DoubleVote)
                });
            }
            // Surrounded by an existing vote, then surrounding one.
            let surrounded: bool = c
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM signed_attestations
                     WHERE validator_id = ?1 AND target_epoch > ?3 AND source_epoch < ?2)",
                )?
                .query_row(params![vid, s, t], |r| r.get(0))?;
            let surrounding: bool = c
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM signed_attestations
                     WHERE validator_id = ?1 AND source_epoch > ?2 AND target_epoch < ?3)",
                )?
                .query_row(params![vid, s, t], |r| r.get(0))?;
            if surrounded || surrounding {
                return Ok(Decision::Refused(Refusal::SurroundVote));
            }
            let (min_s, min_t, wm_s, wm_t): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = c
                .prepare_cached(
                    "SELECT (SELECT MIN(source_epoch) FROM signed_attestations WHERE validator_id = ?1),
                            (SELECT MIN(target_epoch) FROM signed_attestations WHERE validator_id = ?1),
                            (SELECT att_source FROM watermarks WHERE validator_id = ?1),
                            (SELECT att_target FROM watermarks WHERE validator_id = ?1)",
                )?
                .query_row(params![vid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            if min_s.is_some_and(|m| s < m)
                || min_t.is_some_and(|m| t <= m)
                || wm_s.is_some_and(|m| s < m)
                || wm_t.is_some_and(|m| t <= m)
            {
                return Ok(Decision::Refused(Refusal::BelowWatermark));
            }
            c.prepare_cached(
                "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![vid, s, t, root])?;
            Ok(Decision::Allowed)
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    ids: HashMap<PublicKeyBytes, i64>,
    gvr: Option<Root>,
    journal: Option<Box<dyn TxJournal>>,
}

impl Writer {
    fn decide_one(&mut self, check: &Check) -> Result<Decision, SlashingError> {
        match self.gvr {
            Some(g) if g != check.genesis_validators_root => {
                return Ok(Decision::Refused(Refusal::GenesisMismatch))
            }
            Some(_) => {}
            None => {
                // Pinned by the first request, inside this transaction.
                if let Some(g) = read_gvr(&self.conn)? {
                    self.gvr = Some(g);
                    return self.decide_one(check);
                }
                write_gvr(&self.conn, &check.genesis_validators_root)?;
                self.gvr = Some(check.genesis_validators_root);
            }
        }
        let vid = match self.ids.get(&check.pubkey) {
            Some(id) => *id,
            None => {
                let id = validator_id(&self.conn, &check.pubkey)?;
                self.ids.insert(check.pubkey, id);
                id
            }
        };
        // Read inside this transaction: a disable committed before it is always seen.
        let enabled: bool = self
            .conn
            .prepare_cached("SELECT enabled FROM validators WHERE id = ?1")?
            .query_row(params![vid], |r| r.get(0))?;
        if !enabled {
            return Ok(Decision::Refused(Refusal::Disabled));
        }
        match decide(&self.conn, vid, check.slashable, &check.signing_root.0) {
            // Beyond any real slot or epoch: refused like any other far-future message.
            Err(SlashingError::OutOfRange(_)) => Ok(Decision::Refused(Refusal::TooFarInFuture)),
            other => other,
        }
    }

    fn run_batch(&mut self, batch: Vec<Job>) {
        // The jobs' entries move into the journal; their reply channels stay here.
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Check(check, entry, reply) => {
                    pending.push((Some(check), entry));
                    replies.push(Reply::Check(reply));
                }
                Job::Journal(entry, reply) => {
                    pending.push((None, Some(entry)));
                    replies.push(Reply::Journal(reply));
                }
            }
        }
        let mut results: Vec<Decision> = Vec::with_capacity(replies.len());
        let gvr_before = self.gvr;
        let mut journal_failed = false;
        let outcome = (|| -> Result<(), SlashingError> {
            // Cached like every statement of a batch: parsed once per connection.
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let mut entries: Vec<(JournalEntry, Option<Decision>)> = Vec::new();
            for (check, entry) in pending {
                let decision = match &check {
                    Some(check) => Some(self.decide_one(check)?),
                    None => None,
                };
                results.push(decision.unwrap_or(Decision::Allowed));
                if let Some(entry) = entry {
                    entries.push((entry, decision));
                }
            }
            if let (Some(journal), false) = (&mut self.journal, entries.is_empty()) {
                journal.write(&self.conn, entries).map_err(|e| {
                    journal_failed = true;
                    SlashingError::Journal(e)
                })?;
            }
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        })();
        match outcome {
            Ok(()) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    match reply {
                        Reply::Check(reply) => {
                            let _ = reply.send(Ok(r));
                        }
                        Reply::Journal(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // Cached state may describe rows that were rolled back.
                self.ids.clear();
                self.gvr = gvr_before;
                tracing::error!(error = %e, batch = replies.len(), "slashing database transaction failed; nothing in this batch is signed");
                let msg = e.to_string();
                let err = || {
                    if journal_failed {
                        SlashingError::Journal(msg.clone())
                    } else {
                        SlashingError::Storage(msg.clone())
                    }
                };
                for reply in replies {
                    match reply {
                        Reply::Check(reply) => {
                            let _ = reply.send(Err(err()));
                        }
                        Reply::Journal(reply) => {
                            let _ = reply.send(Err(err()));
                        }
                    }
                }
            }
        }
    }
}

impl SqliteStore {
    /// Open or create the database at `path` (file mode 0600), migrate it, and start the writer.
    pub fn open(path: &Path) -> Result<Self, SlashingError> {
        Self::open_with_journal(path, None)
    }

    /// As [`Self::open`]; with `journal`, the journal's tables live in this database and its
    /// entries are committed in the same transactions as the checks.
    pub fn open_with_journal(
        path: &Path,
        journal: Option<Box<dyn TxJournal>>,
    ) -> Result<Self, SlashingError> {
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        signward_db::checkpoint::writer_connection(&conn)?;
        if let Some(j) = &journal {
            j.create(&conn).map_err(SlashingError::Journal)?;
        }
        let journals = journal.is_some();
        let gvr = read_gvr(&conn)?;
        let mut writer = Writer {
            conn,
            ids: HashMap::new(),
            gvr,
            journal,
        };
        let jobs = GroupCommit::spawn("slashing-writer", MAX_BATCH, move |batch| {
            writer.run_batch(batch)
        })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            jobs,
            journals,
            reader: std::sync::Arc::new(std::sync::Mutex::new(connect(path)?)),
            bulk: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            _checkpointer: signward_db::Checkpointer::spawn("slashing-checkpoint", path)?,
        })
    }

    /// True when a journal is kept in this database.
    pub fn journals(&self) -> bool {
        self.journals
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Check and record, and hand `entry` with the decision to the journal in the same
    /// transaction. Needs [`Self::open_with_journal`] (without a journal the entry is dropped).
    pub async fn check_and_record_journaled(
        &self,
        check: Check,
        entry: JournalEntry,
    ) -> Result<Decision, SlashingError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .submit(Job::Check(check, Some(entry), reply))
            .await
            .map_err(|_| SlashingError::WriterGone)?;
        rx.await.map_err(|_| SlashingError::WriterGone)?
    }

    /// Journal an entry on its own, group-committed with the checks of the same moment.
    pub async fn append_journal(&self, entry: JournalEntry) -> Result<(), SlashingError> {
        if !self.journals {
            return Err(SlashingError::Journal(
                "this database does not carry a journal".into(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .submit(Job::Journal(entry, reply))
            .await
            .map_err(|_| SlashingError::WriterGone)?;
        rx.await.map_err(|_| SlashingError::WriterGone)?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SlashingError> + Send + 'static,
    ) -> Result<T, SlashingError> {
        let path = self.path.clone();
        let turn = self.bulk.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut conn = connect(&path)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| SlashingError::WriterGone)?
    }
}

/// One validator's stored history, read inside the caller's transaction.
fn read_history(tx: &Connection, vid: i64) -> Result<History, SlashingError> {
    let mut h = History::default();
    let mut q =
        tx.prepare_cached("SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?1")?;
    let mut rows = q.query(params![vid])?;
    while let Some(r) = rows.next()? {
        h.blocks.insert(r.get(0)?, opt_root(r.get(1)?));
    }
    let mut q = tx.prepare_cached(
        "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ?1",
    )?;
    let mut rows = q.query(params![vid])?;
    while let Some(r) = rows.next()? {
        h.attestations
            .insert(r.get(1)?, (r.get(0)?, opt_root(r.get(2)?)));
    }
    if let Some((b, s, t)) = tx
        .prepare_cached(
            "SELECT block_slot, att_source, att_target FROM watermarks WHERE validator_id = ?1",
        )?
        .query_row(params![vid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
    {
        h.watermarks = Watermarks {
            block_slot: b,
            att_source: s,
            att_target: t,
        };
    }
    Ok(h)
}

/// Most rows one `INSERT` statement writes when an import rewrites a history: one
/// statement execution per row was most of an import's time.
const ROWS_PER_INSERT: usize = 64;

const BLOCKS_INSERT: &str = "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES ";
const ATTESTATIONS_INSERT: &str =
    "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) VALUES ";

/// `head` followed by `rows` groups of `columns` numbered parameters. The texts for a full chunk
/// are built once per process (the connection's statement cache keys on the text); a shorter last
/// chunk's text is built each time.
fn multi_insert_sql(
    head: &'static str,
    columns: usize,
    rows: usize,
) -> std::borrow::Cow<'static, str> {
    fn build(head: &str, columns: usize, rows: usize) -> String {
        let mut sql = String::with_capacity(head.len() + rows * columns * 6);
        sql.push_str(head);
        let mut n = 1;
        for r in 0..rows {
            if r > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..columns {
                if c > 0 {
                    sql.push(',');
                }
                sql.push('?');
                sql.push_str(&n.to_string());
                n += 1;
            }
            sql.push(')');
        }
        sql
    }
    static FULL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    if rows == ROWS_PER_INSERT {
        let (b, a) = FULL.get_or_init(|| {
            (
                build(BLOCKS_INSERT, 3, ROWS_PER_INSERT),
                build(ATTESTATIONS_INSERT, 4, ROWS_PER_INSERT),
            )
        });
        if head == BLOCKS_INSERT {
            return std::borrow::Cow::Borrowed(b.as_str());
        }
        if head == ATTESTATIONS_INSERT {
            return std::borrow::Cow::Borrowed(a.as_str());
        }
    }
    std::borrow::Cow::Owned(build(head, columns, rows))
}

/// Replace one validator's stored history with `h`, inside the caller's transaction.
fn write_history_rows(
    tx: &Connection,
    vid: i64,
    h: &History,
    was_empty: bool,
) -> Result<(), SlashingError> {
    if !was_empty {
        tx.prepare_cached("DELETE FROM signed_blocks WHERE validator_id = ?1")?
            .execute(params![vid])?;
        tx.prepare_cached("DELETE FROM signed_attestations WHERE validator_id = ?1")?
            .execute(params![vid])?;
    }
    let blocks: Vec<(&i64, &Option<Root>)> = h.blocks.iter().collect();
    for chunk in blocks.chunks(ROWS_PER_INSERT) {
        let mut ins = tx.prepare_cached(&multi_insert_sql(BLOCKS_INSERT, 3, chunk.len()))?;
        let mut i = 1;
        for (slot, root) in chunk {
            ins.raw_bind_parameter(i, vid)?;
            ins.raw_bind_parameter(i + 1, **slot)?;
            ins.raw_bind_parameter(i + 2, root.as_ref().map(|r| &r.0[..]))?;
            i += 3;
        }
        ins.raw_execute()?;
    }
    let atts: Vec<(&i64, &(i64, Option<Root>))> = h.attestations.iter().collect();
    for chunk in atts.chunks(ROWS_PER_INSERT) {
        let mut ins = tx.prepare_cached(&multi_insert_sql(ATTESTATIONS_INSERT, 4, chunk.len()))?;
        let mut i = 1;
        for (t, (s, root)) in chunk {
            ins.raw_bind_parameter(i, vid)?;
            ins.raw_bind_parameter(i + 1, *s)?;
            ins.raw_bind_parameter(i + 2, **t)?;
            ins.raw_bind_parameter(i + 3, root.as_ref().map(|r| &r.0[..]))?;
            i += 4;
        }
        ins.raw_execute()?;
    }
    let w = h.watermarks;
    if w != Watermarks::default() {
        tx.prepare_cached(
            "INSERT INTO watermarks (validator_id, block_slot, att_source, att_target)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(validator_id) DO UPDATE SET block_slot = excluded.block_slot,
                 att_source = excluded.att_source, att_target = excluded.att_target",
        )?
        .execute(params![vid, w.block_slot, w.att_source, w.att_target])?;
    }
    Ok(())
}

/// Merge one imported validator into the stored history (see [`crate::history`]), inside the
/// caller's transaction. A validator the database has never seen has no records and no
/// watermarks: its merge is with an empty history, and nothing is read.
fn import_prepared(
    tx: &Connection,
    p: Prepared,
    report: &mut ImportReport,
) -> Result<(), SlashingError> {
    let mut m = p.report;
    let pk = &p.pubkey.0[..];
    let inserted = tx
        .prepare_cached(
            "INSERT INTO validators (pubkey) VALUES (?1) ON CONFLICT(pubkey) DO NOTHING",
        )?
        .execute(params![pk])?;
    let vid: i64 = tx
        .prepare_cached("SELECT id FROM validators WHERE pubkey = ?1")?
        .query_row(params![pk], |r| r.get(0))?;
    let stored = if inserted == 1 {
        History::default()
    } else {
        read_history(tx, vid)?
    };
    let was_empty = stored.blocks.is_empty() && stored.attestations.is_empty();
    let merged = merge(stored.clone(), &p.incoming, &mut m);
    if merged != stored {
        write_history_rows(tx, vid, &merged, was_empty)?;
    }
    report.add(&m);
    report.validators += 1;
    Ok(())
}

/// Import a document on `conn`. The JSON is parsed (and each entry normalised) on a thread of its
/// own, which hands batches of about [`interchange::BATCH_ROWS`] records over a channel holding
/// one batch; each batch is merged and written in one `BEGIN IMMEDIATE` transaction, taken only
/// once the batch is complete, so the write lock is never held while the parser works and
/// memory stays bounded by a few batches whatever the file size. A failure stops the import:
/// every batch committed before it stays (each validator's merge is whole, and an import only
/// strengthens protection); the batch that failed to write is rolled back.
fn import_stream<R: Read + Send + 'static>(
    conn: &mut Connection,
    reader: R,
) -> Result<ImportReport, SlashingError> {
    // This connection is the import's own (dropped with it): a page cache that holds a batch's
    // pages, so a transaction never spills into the WAL before its commit, and room for the
    // multi-row statements. Durability is unchanged (`synchronous=FULL`, one fsync per batch).
    conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    let (send, batches) = std::sync::mpsc::sync_channel::<Batch>(1);
    let parser = std::thread::Builder::new()
        .name("interchange-parse".into())
        .spawn(move || {
            interchange::read_batches(reader, interchange::BATCH_ROWS, |b| {
                send.send(b)
                    .map_err(|_| SlashingError::Interchange("import stopped".into()))
            })
        })?;
    let mut report = ImportReport::default();
    let mut pinned = false;
    let mut failure = None;
    for batch in batches.iter() {
        let step = match batch {
            Batch::Metadata(m) => pin_for_import(conn, &m).map(|()| pinned = true),
            // `read` hands the metadata over first; this never happens.
            Batch::Validators(_) if !pinned => {
                Err(SlashingError::Interchange("entries before metadata".into()))
            }
            Batch::Validators(vs) => (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut r = ImportReport::default();
                for p in vs {
                    import_prepared(&tx, p, &mut r)?;
                }
                tx.commit()?;
                report.absorb(&r);
                Ok(())
            })(),
        };
        if let Err(e) = step {
            failure = Some(e);
            break;
        }
    }
    drop(batches);
    let parsed = parser.join().map_err(|_| SlashingError::WriterGone)?;
    if let Some(e) = failure {
        return Err(e);
    }
    parsed?;
    Ok(report)
}

/// The import connection's page cache, in KiB (SQLite's default is 2,000).
const IMPORT_CACHE_KIB: i64 = 65_536;

/// Check an import's metadata and pin its genesis validators root, before anything is imported.
fn pin_for_import(conn: &mut Connection, m: &interchange::Metadata) -> Result<(), SlashingError> {
    interchange::check_metadata(m)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match read_gvr(&tx)? {
        Some(g) if g != m.genesis_validators_root => Err(SlashingError::GenesisMismatch {
            pinned: g.to_hex(),
            given: m.genesis_validators_root.to_hex(),
        }),
        Some(_) => Ok(()),
        None => {
            write_gvr(&tx, &m.genesis_validators_root)?;
            tx.commit()?;
            Ok(())
        }
    }
}

fn opt_root(v: Option<Vec<u8>>) -> Option<Root> {
    v.and_then(|b| Root::from_slice(&b))
}

/// Export every validator with one ordered scan of each table (their primary keys' order, so no
/// sort), joined by validator id as they stream: four statements instead of three per validator,
/// and one validator's records in memory at a time.
fn export_stream<W: Write>(
    conn: &mut Connection,
    out: W,
    minimal: bool,
) -> Result<ExportReport, SlashingError> {
    let tx = conn.transaction()?; // one snapshot for the whole export
    let gvr = read_gvr(&tx)?.ok_or_else(|| {
        SlashingError::Interchange(
            "database has no genesis validators root yet; nothing to export".into(),
        )
    })?;
    let mut w = interchange::Writer::new(std::io::BufWriter::with_capacity(1 << 20, out), &gvr)?;
    let mut report = ExportReport::default();
    let mut validators_q = tx.prepare("SELECT id, pubkey FROM validators ORDER BY id")?;
    let mut blocks_q = tx.prepare(
        "SELECT validator_id, slot, signing_root FROM signed_blocks ORDER BY validator_id, slot",
    )?;
    let mut atts_q = tx.prepare(
        "SELECT validator_id, source_epoch, target_epoch, signing_root FROM signed_attestations
         ORDER BY validator_id, target_epoch",
    )?;
    let mut wm_q = tx.prepare(
        "SELECT validator_id, block_slot, att_source, att_target FROM watermarks
         ORDER BY validator_id",
    )?;
    let mut validators = validators_q.query([])?;
    let mut block_rows = blocks_q.query([])?;
    let mut att_rows = atts_q.query([])?;
    let mut wm_rows = wm_q.query([])?;
    let read_block = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, SignedBlock)> {
        Ok((
            r.get(0)?,
            SignedBlock {
                slot: Uint64(r.get::<_, i64>(1)? as u64),
                signing_root: opt_root_ref(r.get_ref(2)?),
            },
        ))
    };
    let read_att = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, SignedAttestation)> {
        Ok((
            r.get(0)?,
            SignedAttestation {
                source_epoch: Uint64(r.get::<_, i64>(1)? as u64),
                target_epoch: Uint64(r.get::<_, i64>(2)? as u64),
                signing_root: opt_root_ref(r.get_ref(3)?),
            },
        ))
    };
    type Wm = (i64, (Option<i64>, Option<i64>, Option<i64>));
    let read_wm = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Wm> {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
    };
    let mut next_block = block_rows.next()?.map(read_block).transpose()?;
    let mut next_att = att_rows.next()?.map(read_att).transpose()?;
    let mut next_wm = wm_rows.next()?.map(read_wm).transpose()?;
    let (mut blocks, mut atts) = (Vec::new(), Vec::new());
    while let Some(v) = validators.next()? {
        let vid: i64 = v.get(0)?;
        let pubkey = v
            .get_ref(1)?
            .as_blob()
            .ok()
            .and_then(PublicKeyBytes::from_slice);
        blocks.clear();
        atts.clear();
        // Rows of a validator id with no validator row (none are written) are passed over.
        while let Some((bv, b)) = next_block.filter(|(bv, _)| *bv <= vid) {
            if bv == vid {
                blocks.push(b);
            }
            next_block = block_rows.next()?.map(read_block).transpose()?;
        }
        while let Some((av, a)) = next_att.filter(|(av, _)| *av <= vid) {
            if av == vid {
                atts.push(a);
            }
            next_att = att_rows.next()?.map(read_att).transpose()?;
        }
        let mut wm = (None, None, None);
        while let Some((wv, m)) = next_wm.filter(|(wv, _)| *wv <= vid) {
            if wv == vid {
                wm = m;
            }
            next_wm = wm_rows.next()?.map(read_wm).transpose()?;
        }
        let Some(pubkey) = pubkey else {
            continue;
        };
        write_history(
            &mut w,
            &pubkey,
            std::mem::take(&mut blocks),
            std::mem::take(&mut atts),
            wm,
            minimal,
            &mut report,
        )?;
    }
    w.finish()?;
    Ok(report)
}

fn opt_root_ref(v: rusqlite::types::ValueRef<'_>) -> Option<Root> {
    match v {
        rusqlite::types::ValueRef::Blob(b) => Root::from_slice(b),
        _ => None,
    }
}

fn export_all<W: Write>(
    conn: &mut Connection,
    out: W,
    minimal: bool,
    only: Option<&std::collections::HashSet<PublicKeyBytes>>,
) -> Result<ExportReport, SlashingError> {
    let tx = conn.transaction()?; // one snapshot for the whole export
    let gvr = read_gvr(&tx)?.ok_or_else(|| {
        SlashingError::Interchange(
            "database has no genesis validators root yet; nothing to export".into(),
        )
    })?;
    let mut w = interchange::Writer::new(out, &gvr)?;
    let mut report = ExportReport::default();
    let validators: Vec<(i64, Vec<u8>)> = tx
        .prepare("SELECT id, pubkey FROM validators ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut blocks_q = tx.prepare(
        "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?1 ORDER BY slot",
    )?;
    let mut atts_q = tx.prepare(
        "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ?1 ORDER BY target_epoch",
    )?;
    let mut wm_q = tx.prepare(
        "SELECT block_slot, att_source, att_target FROM watermarks WHERE validator_id = ?1",
    )?;
    for (vid, pk) in validators {
        let Some(pubkey) = PublicKeyBytes::from_slice(&pk) else {
            continue;
        };
        if only.is_some_and(|set| !set.contains(&pubkey)) {
            continue;
        }
        let wm: Option<(Option<i64>, Option<i64>, Option<i64>)> = wm_q
            .query_row(params![vid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (wm_slot, wm_s, wm_t) = wm.unwrap_or((None, None, None));
        let blocks: Vec<SignedBlock> = blocks_q
            .query_map(params![vid], |r| {
                Ok(SignedBlock {
                    slot: Uint64(r.get::<_, i64>(0)? as u64),
                    signing_root: opt_root(r.get(1)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        let atts: Vec<SignedAttestation> = atts_q
            .query_map(params![vid], |r| {
                Ok(SignedAttestation {
                    source_epoch: Uint64(r.get::<_, i64>(0)? as u64),
                    target_epoch: Uint64(r.get::<_, i64>(1)? as u64),
                    signing_root: opt_root(r.get(2)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        write_history(
            &mut w,
            &pubkey,
            blocks,
            atts,
            (wm_slot, wm_s, wm_t),
            minimal,
            &mut report,
        )?;
    }
    w.finish()?;
    Ok(report)
}

/// Validators pruned in one transaction: the write lock is held for one batch at a time, so
/// signing waits for a batch, never for the whole prune.
const PRUNE_BATCH: usize = 512;

/// Prune every validator, [`PRUNE_BATCH`] at a time. For each validator, inside its batch's
/// transaction: the newest slot (target) is read, the watermark raised to the highest record
/// below the cut, and the records below the cut deleted by a range of the primary key. This is
/// what `History::prune` does, validator by validator.
fn prune_all(
    conn: &mut Connection,
    keep_epochs: u64,
    slots_per_epoch: u64,
) -> Result<PruneReport, SlashingError> {
    let keep_epochs = to_i64(keep_epochs)?;
    let keep_slots = to_i64((keep_epochs as u64).saturating_mul(slots_per_epoch))?;
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM validators ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut report = PruneReport::default();
    for chunk in ids.chunks(PRUNE_BATCH) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for vid in chunk {
            prune_validator(&tx, *vid, keep_slots, keep_epochs, &mut report)?;
        }
        tx.commit()?;
    }
    Ok(report)
}

fn prune_validator(
    tx: &Connection,
    vid: i64,
    keep_slots: i64,
    keep_epochs: i64,
    report: &mut PruneReport,
) -> Result<(), SlashingError> {
    let top: Option<i64> = tx
        .prepare_cached("SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?1")?
        .query_row(params![vid], |r| r.get(0))?;
    if let Some(top) = top {
        let cut = top.saturating_sub(keep_slots);
        let below: Option<i64> = tx
            .prepare_cached(
                "SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?1 AND slot < ?2",
            )?
            .query_row(params![vid, cut], |r| r.get(0))?;
        if let Some(below) = below {
            tx.prepare_cached(
                "INSERT INTO watermarks (validator_id, block_slot) VALUES (?1, ?2)
                 ON CONFLICT(validator_id) DO UPDATE
                 SET block_slot = MAX(COALESCE(block_slot, excluded.block_slot), excluded.block_slot)",
            )?
            .execute(params![vid, below])?;
            report.blocks_deleted += tx
                .prepare_cached("DELETE FROM signed_blocks WHERE validator_id = ?1 AND slot < ?2")?
                .execute(params![vid, cut])? as u64;
        }
    }
    let top: Option<i64> = tx
        .prepare_cached(
            "SELECT MAX(target_epoch) FROM signed_attestations WHERE validator_id = ?1",
        )?
        .query_row(params![vid], |r| r.get(0))?;
    if let Some(top) = top {
        let cut = top.saturating_sub(keep_epochs);
        let (source, target): (Option<i64>, Option<i64>) = tx
            .prepare_cached(
                "SELECT MAX(source_epoch), MAX(target_epoch) FROM signed_attestations
                 WHERE validator_id = ?1 AND target_epoch < ?2",
            )?
            .query_row(params![vid, cut], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if let (Some(source), Some(target)) = (source, target) {
            tx.prepare_cached(
                "INSERT INTO watermarks (validator_id, att_source, att_target) VALUES (?1, ?2, ?3)
                 ON CONFLICT(validator_id) DO UPDATE SET
                     att_source = MAX(COALESCE(att_source, excluded.att_source), excluded.att_source),
                     att_target = MAX(COALESCE(att_target, excluded.att_target), excluded.att_target)",
            )?
            .execute(params![vid, source, target])?;
            report.attestations_deleted += tx
                .prepare_cached(
                    "DELETE FROM signed_attestations WHERE validator_id = ?1 AND target_epoch < ?2",
                )?
                .execute(params![vid, cut])? as u64;
        }
    }
    Ok(())
}

impl SlashingStore for SqliteStore {
    async fn check_and_record(&self, check: Check) -> Result<Decision, SlashingError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .submit(Job::Check(check, None, reply))
            .await
            .map_err(|_| SlashingError::WriterGone)?;
        rx.await.map_err(|_| SlashingError::WriterGone)?
    }

    async fn genesis_validators_root(&self) -> Result<Option<Root>, SlashingError> {
        self.blocking(|c| Ok(read_gvr(c)?)).await
    }

    async fn pin_genesis_validators_root(&self, gvr: Root) -> Result<(), SlashingError> {
        self.blocking(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match read_gvr(&tx)? {
                Some(g) if g != gvr => Err(SlashingError::GenesisMismatch {
                    pinned: g.to_hex(),
                    given: gvr.to_hex(),
                }),
                Some(_) => Ok(()),
                None => {
                    write_gvr(&tx, &gvr)?;
                    tx.commit()?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn import<R: Read + Send + 'static>(
        &self,
        reader: R,
    ) -> Result<ImportReport, SlashingError> {
        self.blocking(move |c| import_stream(c, reader)).await
    }

    async fn export<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
    ) -> Result<ExportReport, SlashingError> {
        self.blocking(move |c| export_stream(c, writer, minimal))
            .await
    }

    async fn export_validators<W: Write + Send + 'static>(
        &self,
        writer: W,
        pubkeys: Vec<PublicKeyBytes>,
    ) -> Result<ExportReport, SlashingError> {
        let only: std::collections::HashSet<PublicKeyBytes> = pubkeys.into_iter().collect();
        self.blocking(move |c| export_all(c, writer, false, Some(&only)))
            .await
    }

    async fn set_enabled(
        &self,
        pubkeys: Vec<PublicKeyBytes>,
        enabled: bool,
        only_known: bool,
    ) -> Result<(), SlashingError> {
        self.blocking(move |c| {
            // The write lock serialises this with the writer's batches: a batch that commits
            // later sees the new state.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for pk in &pubkeys {
                if !only_known {
                    validator_id(&tx, pk)?;
                }
                tx.prepare_cached("UPDATE validators SET enabled = ?1 WHERE pubkey = ?2")?
                    .execute(params![enabled, pk.0.to_vec()])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn may_sign(
        &self,
        pubkey: PublicKeyBytes,
        gvr: Option<Root>,
    ) -> Result<Option<Refusal>, SlashingError> {
        // Two indexed reads on a connection of its own (WAL: they never wait for the writer),
        // off the async workers all the same.
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let c = reader.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(pinned), Some(g)) = (read_gvr(&c)?, gvr) {
                if pinned != g {
                    return Ok(Some(Refusal::GenesisMismatch));
                }
            }
            let enabled: Option<bool> = c
                .prepare_cached("SELECT enabled FROM validators WHERE pubkey = ?1")?
                .query_row(params![pubkey.0.to_vec()], |r| r.get(0))
                .optional()?;
            Ok((enabled == Some(false)).then_some(Refusal::Disabled))
        })
        .await
        .map_err(|_| SlashingError::WriterGone)?
    }

    async fn disabled(&self) -> Result<Vec<PublicKeyBytes>, SlashingError> {
        self.blocking(|c| {
            let v: Vec<Vec<u8>> = c
                .prepare("SELECT pubkey FROM validators WHERE NOT enabled ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(v.iter()
                .filter_map(|b| PublicKeyBytes::from_slice(b))
                .collect())
        })
        .await
    }

    async fn prune(
        &self,
        keep_epochs: u64,
        slots_per_epoch: u64,
    ) -> Result<PruneReport, SlashingError> {
        self.blocking(move |c| prune_all(c, keep_epochs, slots_per_epoch))
            .await
    }
}
