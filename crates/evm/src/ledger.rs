//! The spend ledger: every signed transaction's charge, per bucket (ether, and each token with a
//! window), so that rolling windows hold across restarts and across instances sharing
//! PostgreSQL. A reservation checks every window and records the transaction in one
//! transaction, committed durably, before anything is signed. A transaction that replaces one
//! already recorded (the same chain, sender and nonce: a fee bump) is counted once: its row
//! keeps the larger of the two charges and the count does not rise, since only one of them can
//! ever be mined.
//!
//! On SQLite one writer thread decides reservations in groups and keeps each bucket's running
//! total from group to group (`Totals`); on PostgreSQL, which several instances share, each
//! reservation reads its window's rows under the bucket's advisory lock.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::U256;
use deadpool_postgres::Pool;
use rusqlite::params;
use signward_policy::{Charge, SpendWindow};

use crate::EvmError;

/// A window that would be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `spend_window_value_exceeded` or `spend_window_count_exceeded`.
    pub rule: &'static str,
    /// The ledger bucket (`key:ADDRESS` or `token:NAME:ADDRESS`).
    pub bucket: String,
    /// What would be exceeded, and by how much.
    pub detail: String,
}

/// The spend ledger: how much each bucket spent in its window, reserved durably before a transaction is signed.
pub enum SpendLedger {
    /// One writer thread owns the connection and commits reservations in groups.
    Sqlite(signward_db::GroupCommit<Job>),
    /// PostgreSQL, shared by every instance (a per-bucket advisory lock orders reservations).
    Postgres(Pool),
}

/// A reservation handed to the SQLite writer thread.
pub struct Reservation {
    charges: Vec<Charge>,
    tx_key: Option<String>,
    reply: tokio::sync::oneshot::Sender<Result<Option<Exceeded>, EvmError>>,
}

/// Work for the SQLite writer thread: a spend reservation, or a nonce operation
/// ([`crate::nonces`]), each answered after the group's durable commit.
pub enum Job {
    /// Check and record spend windows.
    Reserve(Reservation),
    /// Allocate, mark or resynchronise a nonce.
    Nonce(crate::nonces::NonceJob),
}

/// Most reservations committed together (one fsync for all of them).
const MAX_GROUP: usize = 256;

/// The SQLite writer's running totals: for each bucket, the sum and number of all its rows in
/// the ledger (rows leave only when their window expires, and are subtracted then). Valid only
/// while no other connection has written the file: the writer compares SQLite's
/// `data_version` at the start of every group (inside its `BEGIN IMMEDIATE`, so no commit can
/// slip in after the comparison) and starts again from the rows when it moved. Cleared too
/// whenever a group or a reservation fails, since the rows may then differ from what was
/// counted.
#[derive(Default)]
struct Totals {
    buckets: std::collections::HashMap<String, (U256, u64)>,
    /// `PRAGMA data_version` when the totals were last known to match the rows.
    data_version: Option<i64>,
}

/// Buckets kept at most (each names a key or a token with a window in the policy); beyond
/// this the totals start again from the rows.
const MAX_BUCKETS: usize = 4096;

/// The sum and number of every row of `bucket`.
fn bucket_totals(tx: &rusqlite::Connection, bucket: &str) -> Result<(U256, u64), EvmError> {
    let values: Vec<String> = tx
        .prepare_cached("SELECT value FROM evm_spend WHERE bucket = ?1")?
        .query_map(params![bucket], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    totals(&values)
}

/// Once per group, before any reservation of it: for each window the group charges, delete the
/// rows that have left it (subtracting them from the bucket's running total), or, for a bucket
/// not yet counted, delete them and count what remains. Runs in the group's transaction, not in
/// a reservation's savepoint, so a refused reservation cannot roll an expiry back under totals
/// that already left it out.
fn expire(
    tx: &rusqlite::Connection,
    group: &[Reservation],
    now: i64,
    totals: &mut Totals,
) -> Result<(), EvmError> {
    let mut done = std::collections::HashSet::new();
    for c in group.iter().flat_map(|j| &j.charges) {
        if !done.insert((c.bucket.as_str(), c.window.window_secs)) {
            continue;
        }
        let since = now - (c.window.window_secs as i64).saturating_mul(1000);
        if let Some(t) = totals.buckets.get_mut(&c.bucket) {
            let leaving: Vec<String> = tx
                .prepare_cached(
                    "SELECT value FROM evm_spend INDEXED BY evm_spend_bucket_at \
                     WHERE bucket = ?1 AND at_ms <= ?2",
                )?
                .query_map(params![c.bucket, since], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if !leaving.is_empty() {
                let (sum, n) = self::totals(&leaving)?;
                t.0 = t.0.saturating_sub(sum);
                t.1 = t.1.saturating_sub(n);
            }
        }
        tx.prepare_cached("DELETE FROM evm_spend WHERE bucket = ?1 AND at_ms <= ?2")?
            .execute(params![c.bucket, since])?;
        if !totals.buckets.contains_key(&c.bucket) {
            if totals.buckets.len() >= MAX_BUCKETS {
                totals.buckets.clear();
            }
            let t = bucket_totals(tx, &c.bucket)?;
            totals.buckets.insert(c.bucket.clone(), t);
        }
    }
    Ok(())
}

/// Check one reservation inside the open transaction and, if every window admits it, record it
/// there. Window totals come from the writer's running totals ([`Totals`], brought up to date
/// by [`expire`] at the start of the group) and are kept in step as reservations are admitted
/// (by [`admitted`]).
fn reserve_in(
    tx: &rusqlite::Connection,
    job: &Reservation,
    now: i64,
    totals: &mut Totals,
) -> Result<(Option<Exceeded>, Vec<Option<U256>>), EvmError> {
    let mut replaced = Vec::with_capacity(job.charges.len());
    for c in &job.charges {
        let (bucket, w) = (&c.bucket, &c.window);
        let since = now - (w.window_secs as i64).saturating_mul(1000);
        let (total, count) = match totals.buckets.get(bucket) {
            Some(t) => *t,
            None => {
                // Cleared after a failed reservation of this group: the group's expiry has run,
                // so the bucket's rows are its window.
                let t = bucket_totals(tx, bucket)?;
                totals.buckets.insert(bucket.clone(), t);
                t
            }
        };
        let old = match &job.tx_key {
            None => None,
            Some(key) => tx
                // INDEXED BY: left to itself SQLite picks (bucket, at_ms) and scans the window.
                .prepare_cached(
                    "SELECT value FROM evm_spend INDEXED BY evm_spend_bucket_key \
                     WHERE bucket = ?1 AND tx_key = ?2 AND at_ms > ?3",
                )?
                .query_map(params![bucket, key, since], |r| r.get::<_, String>(0))?
                .next()
                .transpose()?
                .map(|v| parse_value(&v))
                .transpose()?,
        };
        if let Some(x) = judge_totals(c, total, count, old) {
            return Ok((Some(x), Vec::new()));
        }
        replaced.push(old);
    }
    for (c, old) in job.charges.iter().zip(&replaced) {
        let v = c.amount.to_string();
        match (old, &job.tx_key) {
            (Some(old), Some(key)) => {
                // Stamped now: the latest signature is the one that may be mined, so it stays in
                // the window for a whole window from now (kept at the first signature's time, a
                // late re-signature for more would leave the window early and free it again).
                let changed = tx
                    .prepare_cached(
                        "UPDATE evm_spend SET value = ?3, at_ms = ?4 WHERE bucket = ?1 AND tx_key = ?2",
                    )?
                    .execute(params![c.bucket, key, (*old).max(c.amount).to_string(), now])?;
                if changed != 1 {
                    // More than one row for one transaction (not written by this code): the
                    // running total no longer follows from `old`; count the rows again.
                    totals.buckets.remove(&c.bucket);
                }
            }
            _ => {
                tx.prepare_cached(
                    "INSERT INTO evm_spend (bucket, at_ms, value, tx_key) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![c.bucket, now, v, job.tx_key])?;
            }
        }
    }
    Ok((None, replaced))
}

/// Keep the running totals in step with an admitted reservation.
fn admitted(totals: &mut Totals, job: &Reservation, replaced: &[Option<U256>]) {
    for (c, old) in job.charges.iter().zip(replaced) {
        if let Some(t) = totals.buckets.get_mut(&c.bucket) {
            match old {
                Some(old) => {
                    t.0 =
                        t.0.saturating_sub(*old)
                            .saturating_add((*old).max(c.amount))
                }
                None => {
                    t.0 = t.0.saturating_add(c.amount);
                    t.1 += 1;
                }
            }
        }
    }
}

/// One group of the SQLite writer ([`signward_db::GroupCommit`]): the reservations waiting (up to
/// `MAX_GROUP`), decided in order in one transaction, commit once (durably), then answer them all. If the
/// commit fails, every reservation of the group fails and nothing is recorded. `totals` are the
/// writer's running totals, kept from group to group.
fn run_group(conn: &mut rusqlite::Connection, totals: &mut Totals, jobs: Vec<Job>) {
    let (mut group, mut nonces) = (Vec::new(), Vec::new());
    for j in jobs {
        match j {
            Job::Reserve(r) => group.push(r),
            Job::Nonce(n) => nonces.push(n),
        }
    }
    if !nonces.is_empty() {
        crate::nonces::run_sqlite(conn, nonces);
    }
    if group.is_empty() {
        return;
    }
    let now = now_ms();
    let decided: Result<Vec<Result<Option<Exceeded>, EvmError>>, EvmError> = (|| {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Holding the write lock: if another connection committed since the totals were last
        // right (another process on this file, an operator's edit), count from the rows again.
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if totals.data_version != Some(version) {
            totals.buckets.clear();
            totals.data_version = Some(version);
        }
        expire(&tx, &group, now, totals)?;
        let mut out = Vec::with_capacity(group.len());
        for job in &group {
            // A savepoint per reservation: one that fails half-way leaves no rows behind.
            let sp = tx.savepoint()?;
            let r = reserve_in(&sp, job, now, totals);
            if let Ok((None, replaced)) = &r {
                sp.commit()?;
                admitted(totals, job, replaced);
            } else {
                drop(sp); // rolls back
                if r.is_err() {
                    // The totals may no longer match the database; read them again.
                    totals.buckets.clear();
                }
            }
            out.push(r.map(|(x, _)| x));
        }
        tx.commit()?;
        Ok(out)
    })();
    if decided.is_err() {
        // Nothing of the group is recorded (or an expiry was rolled back): the running totals
        // may count what the rows do not; count from the rows at the next group.
        *totals = Totals::default();
    }
    match decided {
        Ok(results) => {
            for (job, r) in group.into_iter().zip(results) {
                let _ = job.reply.send(r);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for job in group {
                let _ = job.reply.send(Err(EvmError::Ledger(msg.clone())));
            }
        }
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS evm_spend (
    bucket TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evm_spend_bucket_at ON evm_spend (bucket, at_ms);";

/// The transaction a row was charged for (`CHAIN:SENDER:NONCE`), so that a replacement is
/// counted once; added to ledgers created before it existed.
const TX_KEY_SQLITE: &str = "ALTER TABLE evm_spend ADD COLUMN tx_key TEXT";
const TX_KEY_PG: &str = "ALTER TABLE evm_spend ADD COLUMN IF NOT EXISTS tx_key TEXT";
/// A replacement is looked up by bucket and key: one index probe, not a scan of the window.
const TX_KEY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS evm_spend_bucket_key ON evm_spend (bucket, tx_key)";

/// Hand `job` (built around its reply channel) to the SQLite writer and wait for its answer,
/// which comes after the group's durable commit.
pub(crate) async fn ask<T>(
    writer: &signward_db::GroupCommit<Job>,
    job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, EvmError>>) -> Job,
) -> Result<T, EvmError> {
    let stopped = || EvmError::Ledger("the EVM ledger writer has stopped".into());
    let (reply, answer) = tokio::sync::oneshot::channel();
    writer.submit(job(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_value(v: &str) -> Result<U256, EvmError> {
    U256::from_str(v).map_err(|_| EvmError::Ledger("corrupt value in the spend ledger".into()))
}

fn totals(values: &[String]) -> Result<(U256, u64), EvmError> {
    let mut total = U256::ZERO;
    for v in values {
        total = total.saturating_add(parse_value(v)?);
    }
    Ok((total, values.len() as u64))
}

/// Would `c` exceed its window, given the window's `total` and `count` and, for a replacement,
/// the charge of the transaction it replaces (`old`)?
fn judge_totals(c: &Charge, total: U256, count: u64, old: Option<U256>) -> Option<Exceeded> {
    let w: &SpendWindow = &c.window;
    let (after, count_after) = match old {
        Some(old) => (
            total.saturating_sub(old).saturating_add(old.max(c.amount)),
            count,
        ),
        None => (total.saturating_add(c.amount), count + 1),
    };
    if count_after > w.max_count {
        return Some(Exceeded {
            rule: "spend_window_count_exceeded",
            bucket: c.bucket.clone(),
            detail: format!(
                "{count} transactions in the last {} s (limit {})",
                w.window_secs, w.max_count
            ),
        });
    }
    if after > w.max_total {
        return Some(Exceeded {
            rule: "spend_window_value_exceeded",
            bucket: c.bucket.clone(),
            detail: format!(
                "{total} ({}) in the last {} s; {} more exceeds {}",
                c.unit, w.window_secs, c.amount, w.max_total
            ),
        });
    }
    None
}

impl SpendLedger {
    /// `sqlite:PATH` (created 0600) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self, EvmError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let conn = signward_db::open_sqlite(std::path::Path::new(path))?;
            conn.execute_batch(SCHEMA)?;
            let has_key: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info('evm_spend') WHERE name = 'tx_key'")?
                .exists([])?;
            if !has_key {
                conn.execute_batch(TX_KEY_SQLITE)?;
            }
            conn.execute_batch(TX_KEY_INDEX)?;
            conn.execute_batch(crate::nonces::SCHEMA)?;
            let mut conn = conn;
            let mut totals = Totals::default();
            let writer =
                signward_db::GroupCommit::spawn("evm-spend-ledger", MAX_GROUP, move |group| {
                    run_group(&mut conn, &mut totals, group)
                })
                .map_err(|e| EvmError::Ledger(e.to_string()))?;
            return Ok(SpendLedger::Sqlite(writer));
        }
        let pool = signward_db::pg_pool(url, 16)?;
        let mut c = pool
            .get()
            .await
            .map_err(|e| EvmError::Ledger(e.to_string()))?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7305420188)", &[])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.batch_execute(TX_KEY_PG).await?;
        tx.batch_execute(TX_KEY_INDEX).await?;
        tx.batch_execute(crate::nonces::SCHEMA).await?;
        tx.commit().await?;
        drop(c);
        Ok(SpendLedger::Postgres(pool))
    }

    /// Check every window for its charge; if all admit them, record each in its bucket and
    /// commit durably. `tx_key` (`CHAIN:SENDER:NONCE`) names the transaction: one already
    /// recorded under the same key is being replaced and is counted once. `Ok(Some(_))` names
    /// the first window that refuses (nothing recorded).
    pub async fn reserve(
        &self,
        charges: &[Charge],
        tx_key: Option<&str>,
    ) -> Result<Option<Exceeded>, EvmError> {
        if charges.is_empty() {
            return Ok(None);
        }
        // One lock order for every caller, so concurrent reservations cannot deadlock.
        let mut charges: Vec<Charge> = charges.to_vec();
        charges.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        let now = now_ms();
        match self {
            SpendLedger::Sqlite(sender) => {
                let tx_key = tx_key.map(str::to_string);
                ask(sender, |reply| {
                    Job::Reserve(Reservation {
                        charges,
                        tx_key,
                        reply,
                    })
                })
                .await
            }
            SpendLedger::Postgres(pool) => {
                let mut c = pool
                    .get()
                    .await
                    .map_err(|e| EvmError::Ledger(e.to_string()))?;
                let tx = c.transaction().await?;
                let mut replaced = Vec::with_capacity(charges.len());
                for ch in &charges {
                    let bucket = &ch.bucket;
                    // Serialise reservations per bucket across every instance.
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        &[bucket],
                    )
                    .await?;
                    let since = now - (ch.window.window_secs as i64).saturating_mul(1000);
                    tx.execute(
                        "DELETE FROM evm_spend WHERE bucket = $1 AND at_ms <= $2",
                        &[bucket, &since],
                    )
                    .await?;
                    let rows = tx
                        .query(
                            "SELECT value, tx_key FROM evm_spend WHERE bucket = $1 AND at_ms > $2",
                            &[bucket, &since],
                        )
                        .await?;
                    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                    let old = match tx_key {
                        None => None,
                        Some(k) => rows
                            .iter()
                            .find(|r| r.get::<_, Option<String>>(1).as_deref() == Some(k))
                            .map(|r| parse_value(&r.get::<_, String>(0)))
                            .transpose()?,
                    };
                    let (total, count) = totals(&values)?;
                    if let Some(x) = judge_totals(ch, total, count, old) {
                        return Ok(Some(x));
                    }
                    replaced.push(old);
                }
                for (ch, old) in charges.iter().zip(&replaced) {
                    match (old, tx_key) {
                        (Some(old), Some(k)) => {
                            // Stamped now, as on SQLite.
                            tx.execute(
                                "UPDATE evm_spend SET value = $3, at_ms = $4 WHERE bucket = $1 AND tx_key = $2",
                                &[&ch.bucket, &k, &(*old).max(ch.amount).to_string(), &now],
                            )
                            .await?;
                        }
                        _ => {
                            tx.execute(
                                "INSERT INTO evm_spend (bucket, at_ms, value, tx_key) VALUES ($1, $2, $3, $4)",
                                &[&ch.bucket, &now, &ch.amount.to_string(), &tx_key],
                            )
                            .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(None)
            }
        }
    }
}
