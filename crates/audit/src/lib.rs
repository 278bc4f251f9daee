//! signward-audit: a tamper-evident record of every decision.
//!
//! Records live in `<data-dir>/audit.sqlite` (mode 0600). Each record carries
//! `mac = HMAC-SHA256(k, prev_mac ‖ seq ‖ record)`, where `k` is derived from the server secret,
//! `prev_mac` is the previous record's MAC, and the first record chains from 32 zero bytes. A
//! `head` row holds the last sequence number and MAC under a MAC of its own (a separate domain),
//! so dropping records from the end is detected too. [`verify`] reports the first record that
//! was edited, deleted, reordered, or cut off.
//!
//! The log cannot detect a rollback of the whole file to an earlier copy. Ship records off the
//! host (`signward audit query`) when that matters.
//!
//! Appends go through one writer thread with group commit, like slashing protection: concurrent
//! requests share a transaction and an fsync. [`AuditLog::append`] returns only once the record is
//! durable. Callers release nothing (no signature) until it has returned `Ok`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod vocabulary;
pub use vocabulary::{Event, Outcome};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use signward_db::GroupCommit;
use subtle::ConstantTimeEq;
use thiserror::Error;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Most records committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Why the audit log could not be written or read.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The database refused a statement.
    #[error("audit database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A batch failed to commit; nothing in it was released.
    #[error("audit write failed: {0}")]
    Storage(String),
    /// The writer thread has stopped.
    #[error("the audit writer has stopped")]
    WriterGone,
    /// A file could not be opened or created.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be serialised.
    #[error("record could not be encoded: {0}")]
    Encode(String),
}

impl From<signward_db::DbError> for AuditError {
    fn from(e: signward_db::DbError) -> Self {
        match e {
            signward_db::DbError::Sqlite(e) => AuditError::Sqlite(e),
            signward_db::DbError::Io(e) => AuditError::Io(e),
            other => AuditError::Storage(other.to_string()),
        }
    }
}

/// One audit record. Holds identifiers and public values only; never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time in milliseconds (set by [`AuditLog::append`] when zero).
    #[serde(default)]
    pub time_ms: u64,
    /// An [`Event`]'s string (kept as text so any stored log can be read back).
    pub event: String,
    /// The request id the response carried (`X-Request-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Token name (or certificate identity); `-` when unauthenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The key concerned (BLS public key or EVM address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The message type or EVM method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A block's slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// An attestation's source epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_epoch: Option<u64>,
    /// An attestation's target epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epoch: Option<u64>,
    /// The signing root computed for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<String>,
    /// A signed EVM transaction's hash (`eth_signTransaction`, `eth_sendTransaction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// An [`Outcome`]'s string.
    pub decision: String,
    /// Stable reason code for refusals and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Time from the request's arrival to its decision, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// For an aggregated record: how many events it stands for (since `first_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For an aggregated record: when the first event happened (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<u64>,
}

/// The longest any text field of a record may be, in characters. Records carry identifiers and
/// codes; anything longer came from a request and is cut, so no request can grow the log by more
/// than a bounded amount per record.
pub const MAX_FIELD_CHARS: usize = 128;

fn bound_field(v: &mut String) {
    let clean = v.chars().any(|c| c.is_control()) || v.chars().nth(MAX_FIELD_CHARS).is_some();
    if clean {
        let mut out: String = v
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(MAX_FIELD_CHARS)
            .collect();
        if v.chars().nth(MAX_FIELD_CHARS).is_some() {
            out.push('…');
        }
        *v = out;
    }
}

impl Record {
    /// Cut every text field to [`MAX_FIELD_CHARS`] and replace control characters. Applied to
    /// every record on its way into the log.
    pub fn bound(&mut self) {
        bound_field(&mut self.event);
        bound_field(&mut self.decision);
        for f in [
            &mut self.request_id,
            &mut self.caller,
            &mut self.peer,
            &mut self.key,
            &mut self.operation,
            &mut self.signing_root,
            &mut self.tx_hash,
            &mut self.reason,
        ]
        .into_iter()
        .flatten()
        {
            bound_field(f);
        }
    }
}

/// The key the chain is MACed with, derived from the server secret. No `Debug`.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    /// `HMAC-SHA256(server_secret, "signward audit chain v1")`: a key of its own, so no token MAC
    /// can ever be a valid audit MAC.
    pub fn derive(server_secret: &[u8; 32]) -> Self {
        let mut m = mac_with(server_secret);
        m.update(b"signward audit chain v1");
        AuditKey(Zeroizing::new(m.finalize().into_bytes().into()))
    }
}

fn mac_with(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"))
}

fn record_mac(key: &AuditKey, prev: &[u8; 32], seq: i64, body: &str) -> [u8; 32] {
    let mut m = mac_with(key.0.as_ref());
    m.update(prev);
    m.update(&seq.to_be_bytes());
    m.update(body.as_bytes());
    m.finalize().into_bytes().into()
}

fn head_mac(key: &AuditKey, seq: i64, last: &[u8; 32]) -> [u8; 32] {
    let mut m = mac_with(key.0.as_ref());
    m.update(b"head");
    m.update(&seq.to_be_bytes());
    m.update(last);
    m.finalize().into_bytes().into()
}

/// Where a chain lives inside a SQLite database: its own file uses `records`/`head`; beside the
/// slashing tables (one transaction and one fsync for both) it uses `audit_records`/`audit_head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    /// The records table.
    pub records: &'static str,
    /// The head table.
    pub head: &'static str,
}

/// The tables of `audit.sqlite`.
pub const OWN_FILE: Tables = Tables {
    records: "records",
    head: "head",
};

/// The tables inside the SQLite slashing database.
pub const WITH_SLASHING: Tables = Tables {
    records: "audit_records",
    head: "audit_head",
};

/// Create the chain's tables if they do not exist.
pub fn create_tables(c: &Connection, t: Tables) -> Result<(), AuditError> {
    c.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {r} (
             seq INTEGER PRIMARY KEY,
             time_ms INTEGER NOT NULL,
             body TEXT NOT NULL,
             mac BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {h} (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL,
             mac BLOB NOT NULL,
             head_mac BLOB NOT NULL
         );",
        r = t.records,
        h = t.head
    ))?;
    Ok(())
}

/// True when `c` holds a chain in tables `t`.
pub fn has_tables(c: &Connection, t: Tables) -> Result<bool, AuditError> {
    Ok(c.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![t.records],
        |r| r.get(0),
    )?)
}

fn connect(path: &Path) -> Result<Connection, AuditError> {
    let c = signward_db::open_sqlite(path)?;
    create_tables(&c, OWN_FILE)?;
    Ok(c)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn to32(v: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    if v.len() == 32 {
        a.copy_from_slice(v);
    }
    a
}

/// Append `records` in one transaction on `c`, chaining from the stored head.
pub fn append_batch(
    c: &Connection,
    key: &AuditKey,
    t: Tables,
    records: &mut [Record],
) -> Result<(), AuditError> {
    // Every statement here runs once per committed batch: cached, so none is parsed again.
    let head: Option<(i64, Vec<u8>)> = c
        .prepare_cached(&format!("SELECT seq, mac FROM {} WHERE id = 1", t.head))?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut seq, mut prev) = head.map(|(s, m)| (s, to32(&m))).unwrap_or((0, [0u8; 32]));
    let mut insert = c.prepare_cached(&format!(
        "INSERT INTO {} (seq, time_ms, body, mac) VALUES (?1, ?2, ?3, ?4)",
        t.records
    ))?;
    for r in records.iter_mut() {
        r.bound();
        if r.time_ms == 0 {
            r.time_ms = now_ms();
        }
        seq += 1;
        let body = serde_json::to_string(r).map_err(|e| AuditError::Encode(e.to_string()))?;
        let mac = record_mac(key, &prev, seq, &body);
        insert.execute(params![seq, r.time_ms as i64, body, mac.to_vec()])?;
        prev = mac;
    }
    c.prepare_cached(&format!(
        "INSERT INTO {} (id, seq, mac, head_mac) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, head_mac = excluded.head_mac",
        t.head
    ))?
    .execute(params![seq, prev.to_vec(), head_mac(key, seq, &prev).to_vec()])?;
    Ok(())
}

type Job = (Record, oneshot::Sender<Result<(), AuditError>>);

/// The audit log of a running server.
pub struct AuditLog {
    jobs: GroupCommit<Job>,
}

impl AuditLog {
    /// Open `<data_dir>/audit.sqlite` and start the writer.
    pub fn open(data_dir: &Path, key: AuditKey) -> Result<Self, AuditError> {
        let path = signward_os::DataDir::new(data_dir).audit_db();
        let mut conn = connect(&path)?;
        let jobs = GroupCommit::spawn("audit-writer", MAX_BATCH, move |batch: Vec<Job>| {
            let mut records: Vec<Record> = batch.iter().map(|(r, _)| r.clone()).collect();
            let result = (|| -> Result<(), AuditError> {
                let t = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                append_batch(&t, &key, OWN_FILE, &mut records)?;
                t.commit()?;
                Ok(())
            })();
            let failure = result.err().map(|e| e.to_string());
            if let Some(e) = &failure {
                tracing::error!(error = %e, batch = batch.len(), "audit write failed; nothing in this batch is released");
            }
            for (_, reply) in batch {
                let _ = reply.send(match &failure {
                    None => Ok(()),
                    Some(e) => Err(AuditError::Storage(e.clone())),
                });
            }
        })?;
        Ok(AuditLog { jobs })
    }

    /// Append one record; returns once it is durable.
    pub async fn append(&self, record: Record) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .submit((record, reply))
            .await
            .map_err(|_| AuditError::WriterGone)?;
        rx.await.map_err(|_| AuditError::WriterGone)?
    }
}

/// Append from a command to the chain in tables `t` of the database at `path` (takes the same
/// SQLite write lock as a running server).
pub fn append_now_in(
    path: &Path,
    key: &AuditKey,
    t: Tables,
    mut record: Record,
) -> Result<(), AuditError> {
    let mut c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(30))?;
    create_tables(&c, t)?;
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    append_batch(&tx, key, t, std::slice::from_mut(&mut record))?;
    tx.commit()?;
    Ok(())
}

/// Open an existing database read-write for verification or queries (no tables are created).
pub fn open_existing(path: &Path) -> Result<Connection, AuditError> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    c.busy_timeout(Duration::from_secs(30))?;
    Ok(c)
}

/// Append from a command (no running writer needed; takes the same SQLite lock).
pub fn append_now(data_dir: &Path, key: &AuditKey, mut record: Record) -> Result<(), AuditError> {
    let mut c = connect(&signward_os::DataDir::new(data_dir).audit_db())?;
    let t = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    append_batch(&t, key, OWN_FILE, std::slice::from_mut(&mut record))?;
    t.commit()?;
    Ok(())
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record chains and the head matches.
    Intact {
        /// How many records the chain holds.
        records: u64,
    },
    /// Record `seq` was altered (its MAC does not match its content and predecessor).
    Altered {
        /// The first altered record.
        seq: i64,
    },
    /// A record is missing before `seq` (a gap in the sequence) or records are out of order.
    Missing {
        /// The record after the gap.
        seq: i64,
    },
    /// The log ends before the head says it should (records cut off the end), or the head itself
    /// was altered.
    Truncated {
        /// The last sequence number the head vouches for.
        head_seq: i64,
        /// The last record present.
        last_seq: i64,
    },
}

/// Verify the whole chain of `<data_dir>/audit.sqlite`.
pub fn verify(data_dir: &Path, key: &AuditKey) -> Result<Verdict, AuditError> {
    let path: PathBuf = signward_os::DataDir::new(data_dir).audit_db();
    verify_in(&connect(&path)?, key, OWN_FILE)
}

/// Verify the chain in tables `t` of `c`.
pub fn verify_in(c: &Connection, key: &AuditKey, t: Tables) -> Result<Verdict, AuditError> {
    let mut stmt = c.prepare(&format!(
        "SELECT seq, body, mac FROM {} ORDER BY seq",
        t.records
    ))?;
    let mut rows = stmt.query([])?;
    let mut prev = [0u8; 32];
    let mut expected = 1i64;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let body: String = row.get(1)?;
        let mac: Vec<u8> = row.get(2)?;
        if seq != expected {
            return Ok(Verdict::Missing { seq: expected });
        }
        let want = record_mac(key, &prev, seq, &body);
        if !bool::from(want.ct_eq(mac.as_slice())) {
            return Ok(Verdict::Altered { seq });
        }
        prev = want;
        expected += 1;
        count += 1;
    }
    let last_seq = expected - 1;
    let head: Option<(i64, Vec<u8>, Vec<u8>)> = c
        .query_row(
            &format!("SELECT seq, mac, head_mac FROM {} WHERE id = 1", t.head),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match head {
        None if count == 0 => Ok(Verdict::Intact { records: 0 }),
        None => Ok(Verdict::Truncated {
            head_seq: -1,
            last_seq,
        }),
        Some((hseq, hmac, hhm)) => {
            let head_ok = bool::from(head_mac(key, hseq, &to32(&hmac)).ct_eq(hhm.as_slice()));
            if !head_ok || hseq != last_seq || !bool::from(prev.ct_eq(hmac.as_slice())) {
                return Ok(Verdict::Truncated {
                    head_seq: hseq,
                    last_seq,
                });
            }
            Ok(Verdict::Intact { records: count })
        }
    }
}

/// Filters for [`query`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records about this key.
    pub key: Option<String>,
    /// Only records of this caller.
    pub caller: Option<String>,
    /// Only records with this outcome.
    pub decision: Option<String>,
    /// Only records at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only records at or before this time (Unix ms).
    pub until_ms: Option<u64>,
    /// At most this many (the oldest matching); 0 for all.
    pub limit: usize,
}

/// Records of `<data_dir>/audit.sqlite` matching `f`, oldest first, with their sequence numbers.
pub fn query(data_dir: &Path, f: &Filter) -> Result<Vec<(i64, Record)>, AuditError> {
    query_in(
        &connect(&signward_os::DataDir::new(data_dir).audit_db())?,
        OWN_FILE,
        f,
    )
}

/// Records in tables `t` of `c` matching `f`.
pub fn query_in(c: &Connection, t: Tables, f: &Filter) -> Result<Vec<(i64, Record)>, AuditError> {
    let mut stmt = c.prepare(&format!(
        "SELECT seq, body FROM {} WHERE time_ms >= ?1 AND time_ms <= ?2 ORDER BY seq",
        t.records
    ))?;
    let since = f.since_ms.unwrap_or(0) as i64;
    let until = f.until_ms.map(|u| u as i64).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut rows = stmt.query(params![since, until])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let body: String = row.get(1)?;
        let Ok(r) = serde_json::from_str::<Record>(&body) else {
            continue;
        };
        let keep = f.key.as_deref().is_none_or(|k| r.key.as_deref() == Some(k))
            && f.caller
                .as_deref()
                .is_none_or(|c| r.caller.as_deref() == Some(c))
            && f.decision.as_deref().is_none_or(|d| r.decision == d);
        if keep {
            out.push((seq, r));
            if f.limit > 0 && out.len() >= f.limit {
                break;
            }
        }
    }
    Ok(out)
}
