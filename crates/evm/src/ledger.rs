//! The spend ledger: every signed transaction's value, per bucket, so that rolling windows hold
//! across restarts and across instances sharing PostgreSQL. A reservation checks every window and
//! records the transaction in one transaction, committed durably, before anything is signed.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::U256;
use deadpool_postgres::Pool;
use rusqlite::params;
use signward_policy::SpendWindow;

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
    windows: Vec<(String, SpendWindow)>,
    value: U256,
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

/// Totals per (bucket, window) already read in the current group.
type GroupCache = std::collections::HashMap<(String, u64), (U256, u64)>;

/// Check one reservation inside the open transaction and, if every window admits it, record it
/// there. Window totals are read from the database once per group and then kept up to date in
/// `cache` as reservations are admitted.
fn reserve_in(
    tx: &rusqlite::Connection,
    job: &Reservation,
    now: i64,
    cache: &mut GroupCache,
) -> Result<Option<Exceeded>, EvmError> {
    for (bucket, w) in &job.windows {
        let k = (bucket.clone(), w.window_secs);
        let (total, count) = match cache.get(&k) {
            Some(t) => *t,
            None => {
                let since = now - (w.window_secs as i64).saturating_mul(1000);
                tx.execute(
                    "DELETE FROM evm_spend WHERE bucket = ?1 AND at_ms <= ?2",
                    params![bucket, since],
                )?;
                let values: Vec<String> = tx
                    .prepare_cached("SELECT value FROM evm_spend WHERE bucket = ?1 AND at_ms > ?2")?
                    .query_map(params![bucket, since], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let t = totals(&values)?;
                cache.insert(k, t);
                t
            }
        };
        if let Some(x) = judge_totals(bucket, w, total, count, job.value) {
            return Ok(Some(x));
        }
    }
    let v = job.value.to_string();
    for (bucket, _) in &job.windows {
        tx.execute(
            "INSERT INTO evm_spend (bucket, at_ms, value) VALUES (?1, ?2, ?3)",
            params![bucket, now, v],
        )?;
    }
    Ok(None)
}

/// One group of the SQLite writer ([`signward_db::GroupCommit`]): the reservations waiting (up to
/// `MAX_GROUP`), decided in order in one transaction, commit once (durably), then answer them all. If the
/// commit fails, every reservation of the group fails and nothing is recorded.
fn run_group(conn: &mut rusqlite::Connection, jobs: Vec<Job>) {
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
        let mut out = Vec::with_capacity(group.len());
        let mut cache = GroupCache::new();
        for job in &group {
            // A savepoint per reservation: one that fails half-way leaves no rows behind.
            let sp = tx.savepoint()?;
            let r = reserve_in(&sp, job, now, &mut cache);
            if matches!(r, Ok(None)) {
                sp.commit()?;
                for (bucket, w) in &job.windows {
                    if let Some(t) = cache.get_mut(&(bucket.clone(), w.window_secs)) {
                        t.0 = t.0.saturating_add(job.value);
                        t.1 += 1;
                    }
                }
            } else {
                drop(sp); // rolls back
                if r.is_err() {
                    // The totals may no longer match the database; read them again.
                    cache.clear();
                }
            }
            out.push(r);
        }
        tx.commit()?;
        Ok(out)
    })();
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

fn totals(values: &[String]) -> Result<(U256, u64), EvmError> {
    let mut total = U256::ZERO;
    for v in values {
        let v = U256::from_str(v)
            .map_err(|_| EvmError::Ledger("corrupt value in the spend ledger".into()))?;
        total = total.saturating_add(v);
    }
    Ok((total, values.len() as u64))
}

fn judge(
    bucket: &str,
    w: &SpendWindow,
    values: &[String],
    value: U256,
) -> Result<Option<Exceeded>, EvmError> {
    let (total, count) = totals(values)?;
    Ok(judge_totals(bucket, w, total, count, value))
}

fn judge_totals(
    bucket: &str,
    w: &SpendWindow,
    total: U256,
    count: u64,
    value: U256,
) -> Option<Exceeded> {
    if count + 1 > w.max_count {
        return Some(Exceeded {
            rule: "spend_window_count_exceeded",
            bucket: bucket.to_string(),
            detail: format!(
                "{count} transactions in the last {} s (limit {})",
                w.window_secs, w.max_count
            ),
        });
    }
    if total.saturating_add(value) > w.max_total_wei {
        return Some(Exceeded {
            rule: "spend_window_value_exceeded",
            bucket: bucket.to_string(),
            detail: format!(
                "{total} wei spent in the last {} s; {value} more exceeds {}",
                w.window_secs, w.max_total_wei
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
            conn.execute_batch(crate::nonces::SCHEMA)?;
            let mut conn = conn;
            let writer =
                signward_db::GroupCommit::spawn("evm-spend-ledger", MAX_GROUP, move |group| {
                    run_group(&mut conn, group)
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
        tx.batch_execute(crate::nonces::SCHEMA).await?;
        tx.commit().await?;
        drop(c);
        Ok(SpendLedger::Postgres(pool))
    }

    /// Check every window for `value` more; if all admit it, record it in each bucket and commit
    /// durably. `Ok(Some(_))` names the first window that refuses (nothing recorded).
    pub async fn reserve(
        &self,
        windows: &[(String, SpendWindow)],
        value: U256,
    ) -> Result<Option<Exceeded>, EvmError> {
        if windows.is_empty() {
            return Ok(None);
        }
        // One lock order for every caller, so concurrent reservations cannot deadlock.
        let mut windows: Vec<&(String, SpendWindow)> = windows.iter().collect();
        windows.sort_by(|a, b| a.0.cmp(&b.0));
        let now = now_ms();
        let v = value.to_string();
        match self {
            SpendLedger::Sqlite(sender) => {
                let windows: Vec<_> = windows.into_iter().cloned().collect();
                ask(sender, |reply| {
                    Job::Reserve(Reservation {
                        windows,
                        value,
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
                for (bucket, w) in &windows {
                    // Serialise reservations per bucket across every instance.
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        &[bucket],
                    )
                    .await?;
                    let since = now - (w.window_secs as i64).saturating_mul(1000);
                    tx.execute(
                        "DELETE FROM evm_spend WHERE bucket = $1 AND at_ms <= $2",
                        &[bucket, &since],
                    )
                    .await?;
                    let values: Vec<String> = tx
                        .query(
                            "SELECT value FROM evm_spend WHERE bucket = $1 AND at_ms > $2",
                            &[bucket, &since],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if let Some(x) = judge(bucket, w, &values, value)? {
                        return Ok(Some(x));
                    }
                }
                for (bucket, _) in &windows {
                    tx.execute(
                        "INSERT INTO evm_spend (bucket, at_ms, value) VALUES ($1, $2, $3)",
                        &[bucket, &now, &v],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(None)
            }
        }
    }
}
