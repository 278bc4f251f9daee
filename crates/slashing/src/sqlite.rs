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
use crate::history::{merge, History, MergeReport, Watermarks};
use crate::interchange::{self, Event, SignedAttestation, SignedBlock, ValidatorHistory};
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
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
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
            self.conn.execute_batch("COMMIT")?;
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
    let mut ins = tx.prepare_cached(
        "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3)",
    )?;
    for (slot, root) in &h.blocks {
        ins.execute(params![vid, slot, root.map(|r| r.0.to_vec())])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (t, (s, root)) in &h.attestations {
        ins.execute(params![vid, s, t, root.map(|r| r.0.to_vec())])?;
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

/// Merge one imported validator into the stored history (see [`crate::history`]).
fn import_validator(
    tx: &Connection,
    v: &ValidatorHistory,
    report: &mut ImportReport,
) -> Result<(), SlashingError> {
    let mut m = MergeReport::default();
    let incoming = History::from_interchange(v, &mut m)?;
    let vid = validator_id(tx, &v.pubkey)?;
    let stored = read_history(tx, vid)?;
    let was_empty = stored.blocks.is_empty() && stored.attestations.is_empty();
    let merged = merge(stored.clone(), &incoming, &mut m);
    if merged != stored {
        write_history_rows(tx, vid, &merged, was_empty)?;
    }
    report.add(&m);
    report.validators += 1;
    Ok(())
}

fn opt_root(v: Option<Vec<u8>>) -> Option<Root> {
    v.and_then(|b| Root::from_slice(&b))
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

fn prune_all(
    conn: &mut Connection,
    keep_epochs: u64,
    slots_per_epoch: u64,
) -> Result<PruneReport, SlashingError> {
    let keep_epochs = to_i64(keep_epochs)?;
    let keep_slots = to_i64((keep_epochs as u64).saturating_mul(slots_per_epoch))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Raise the watermarks to cover what is about to be deleted, then delete, set-based.
    tx.execute(
        "INSERT INTO watermarks (validator_id, block_slot)
         SELECT b.validator_id, MAX(b.slot) FROM signed_blocks b
         JOIN (SELECT validator_id, MAX(slot) AS top FROM signed_blocks GROUP BY validator_id) m
           ON m.validator_id = b.validator_id
         WHERE b.slot < m.top - ?1
         GROUP BY b.validator_id
         ON CONFLICT(validator_id) DO UPDATE SET block_slot = MAX(COALESCE(block_slot, excluded.block_slot), excluded.block_slot)",
        params![keep_slots],
    )?;
    let blocks_deleted = tx.execute(
        "DELETE FROM signed_blocks WHERE (validator_id, slot) IN (
             SELECT b.validator_id, b.slot FROM signed_blocks b
             JOIN (SELECT validator_id, MAX(slot) AS top FROM signed_blocks GROUP BY validator_id) m
               ON m.validator_id = b.validator_id
             WHERE b.slot < m.top - ?1)",
        params![keep_slots],
    )?;
    tx.execute(
        "INSERT INTO watermarks (validator_id, att_source, att_target)
         SELECT a.validator_id, MAX(a.source_epoch), MAX(a.target_epoch) FROM signed_attestations a
         JOIN (SELECT validator_id, MAX(target_epoch) AS top FROM signed_attestations GROUP BY validator_id) m
           ON m.validator_id = a.validator_id
         WHERE a.target_epoch < m.top - ?1
         GROUP BY a.validator_id
         ON CONFLICT(validator_id) DO UPDATE SET
             att_source = MAX(COALESCE(att_source, excluded.att_source), excluded.att_source),
             att_target = MAX(COALESCE(att_target, excluded.att_target), excluded.att_target)",
        params![keep_epochs],
    )?;
    let attestations_deleted = tx.execute(
        "DELETE FROM signed_attestations WHERE (validator_id, target_epoch) IN (
             SELECT a.validator_id, a.target_epoch FROM signed_attestations a
             JOIN (SELECT validator_id, MAX(target_epoch) AS top FROM signed_attestations GROUP BY validator_id) m
               ON m.validator_id = a.validator_id
             WHERE a.target_epoch < m.top - ?1)",
        params![keep_epochs],
    )?;
    tx.commit()?;
    Ok(PruneReport {
        blocks_deleted: blocks_deleted as u64,
        attestations_deleted: attestations_deleted as u64,
    })
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
        self.blocking(move |c| {
            let mut report = ImportReport::default();
            interchange::read(reader, |event| match event {
                Event::Metadata(m) => {
                    interchange::check_metadata(&m)?;
                    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    match read_gvr(&tx)? {
                        Some(g) if g != m.genesis_validators_root => {
                            Err(SlashingError::GenesisMismatch {
                                pinned: g.to_hex(),
                                given: m.genesis_validators_root.to_hex(),
                            })
                        }
                        Some(_) => Ok(()),
                        None => {
                            write_gvr(&tx, &m.genesis_validators_root)?;
                            tx.commit()?;
                            Ok(())
                        }
                    }
                }
                Event::Validator(v) => {
                    // One transaction per validator: a long import never holds the write lock
                    // for long, and adding records can only strengthen protection.
                    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    import_validator(&tx, &v, &mut report)?;
                    tx.commit()?;
                    Ok(())
                }
            })?;
            Ok(report)
        })
        .await
    }

    async fn export<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
    ) -> Result<ExportReport, SlashingError> {
        self.blocking(move |c| export_all(c, writer, minimal, None))
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
