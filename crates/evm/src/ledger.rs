//! The spend ledger: every signed transaction's value, per bucket, so that rolling windows hold
//! across restarts and across instances sharing PostgreSQL. A reservation checks every window and
//! records the transaction in one transaction, committed durably, before anything is signed.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::U256;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rusqlite::params;
use signward_policy::SpendWindow;
use tokio_postgres::{Config, NoTls};

use crate::EvmError;

/// A window that would be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `spend_window_value_exceeded` or `spend_window_count_exceeded`.
    pub rule: &'static str,
    pub bucket: String,
    pub detail: String,
}

pub enum SpendLedger {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(Pool),
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS evm_spend (
    bucket TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evm_spend_bucket_at ON evm_spend (bucket, at_ms);";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn judge(
    bucket: &str,
    w: &SpendWindow,
    values: &[String],
    value: U256,
) -> Result<Option<Exceeded>, EvmError> {
    let mut total = U256::ZERO;
    for v in values {
        let v = U256::from_str(v)
            .map_err(|_| EvmError::Ledger("corrupt value in the spend ledger".into()))?;
        total = total.saturating_add(v);
    }
    let count = values.len() as u64;
    if count + 1 > w.max_count {
        return Ok(Some(Exceeded {
            rule: "spend_window_count_exceeded",
            bucket: bucket.to_string(),
            detail: format!(
                "{count} transactions in the last {} s (limit {})",
                w.window_secs, w.max_count
            ),
        }));
    }
    let after = total.saturating_add(value);
    if after > w.max_total_wei {
        return Ok(Some(Exceeded {
            rule: "spend_window_value_exceeded",
            bucket: bucket.to_string(),
            detail: format!(
                "{total} wei spent in the last {} s; {value} more exceeds {}",
                w.window_secs, w.max_total_wei
            ),
        }));
    }
    Ok(None)
}

impl SpendLedger {
    /// `sqlite:PATH` (created 0600) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self, EvmError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let p = std::path::Path::new(path);
            if !p.exists() {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|e| EvmError::Ledger(e.to_string()))?;
            }
            let conn = rusqlite::Connection::open(p)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)?;
            return Ok(SpendLedger::Sqlite(Mutex::new(conn)));
        }
        let mut config = Config::from_str(url).map_err(|e| EvmError::Ledger(e.to_string()))?;
        config.options("-c synchronous_commit=on");
        let pool = Pool::builder(Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(16)
        .build()
        .map_err(|e| EvmError::Ledger(e.to_string()))?;
        let mut c = pool
            .get()
            .await
            .map_err(|e| EvmError::Ledger(e.to_string()))?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7305420188)", &[])
            .await?;
        tx.batch_execute(SCHEMA).await?;
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
            SpendLedger::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                for (bucket, w) in &windows {
                    let since = now - (w.window_secs as i64).saturating_mul(1000);
                    tx.execute(
                        "DELETE FROM evm_spend WHERE bucket = ?1 AND at_ms <= ?2",
                        params![bucket, since],
                    )?;
                    let values: Vec<String> = tx
                        .prepare_cached(
                            "SELECT value FROM evm_spend WHERE bucket = ?1 AND at_ms > ?2",
                        )?
                        .query_map(params![bucket, since], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    if let Some(x) = judge(bucket, w, &values, value)? {
                        return Ok(Some(x));
                    }
                }
                for (bucket, _) in &windows {
                    tx.execute(
                        "INSERT INTO evm_spend (bucket, at_ms, value) VALUES (?1, ?2, ?3)",
                        params![bucket, now, v],
                    )?;
                }
                tx.commit()?;
                Ok(None)
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
