//! Durable nonce allocation for `eth_sendTransaction`, in the same database as the spend ledger
//! and therefore shared by every instance on one PostgreSQL.
//!
//! Each (chain, account) has a row per nonce handed out and not yet known to the node:
//! `allocated` (signed, maybe not yet submitted), `submitted` (the node accepted it), `used`
//! (the node said "nonce too low": someone else's transaction has it) or `free` (the node
//! refused the transaction outright, so the nonce was never used). An allocation, in
//! one transaction serialised per account (the writer thread on SQLite, an advisory lock on
//! PostgreSQL), takes, lowest first and never below the node's pending nonce:
//! - a `free` nonce;
//! - an `allocated` nonce older than the stale bound (its holder died before submitting);
//! - the node's own next nonce if we submitted it longer ago than the stale bound and the node
//!   still has not got it (it was dropped from the pool);
//!
//! and otherwise the lowest nonce at or above the node's that no row holds (so a row far above,
//! left by a node that once answered an absurd nonce, never pushes the sequence up; node
//! nonces above 2^53 are refused outright). Two transactions
//! therefore never get one nonce while either may still be submitted, and gaps left by
//! crashes, refusals or dropped transactions are filled.
//!
//! Rows below the node's pending nonce are forgotten only once they have had no news for the
//! stale bound. The node's nonce is read before the account is locked, so a request may arrive
//! with a reading older than another instance's: had that instance already forgotten the rows
//! its fresher reading passed, the older reading would hand out a nonce that is in the node's
//! pool (the node may accept the second transaction as a replacement of the first, so one
//! answered hash would never be mined). A reading is at most one request deadline old (≤ 30 s
//! with a node), well inside the bound.

use alloy_primitives::Address;
use rusqlite::{params, OptionalExtension};

use crate::ledger::{now_ms, Job, SpendLedger};
use crate::EvmError;

/// The lowest nonce at or above the node's that no row holds. Rows far above it (a node that
/// once answered an absurd nonce) never push the sequence up.
const GAP_SQLITE: &str = "SELECT MIN(c.n) FROM (SELECT ?3 AS n UNION ALL SELECT nonce + 1 FROM evm_nonces \
     WHERE chain_id = ?1 AND address = ?2 AND nonce >= ?3) c WHERE NOT EXISTS (SELECT 1 FROM evm_nonces e \
     WHERE e.chain_id = ?1 AND e.address = ?2 AND e.nonce = c.n)";
const GAP_PG: &str = "SELECT MIN(c.n) FROM (SELECT $3::BIGINT AS n UNION ALL SELECT nonce + 1 FROM evm_nonces \
     WHERE chain_id = $1 AND address = $2 AND nonce >= $3) c WHERE NOT EXISTS (SELECT 1 FROM evm_nonces e \
     WHERE e.chain_id = $1 AND e.address = $2 AND e.nonce = c.n)";

/// The highest pending nonce believed from a node (2^53: no account has sent that many
/// transactions; anything above is a node's error or lie, and is refused).
pub const MAX_NODE_NONCE: u64 = 1 << 53;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS evm_nonces (
    chain_id BIGINT NOT NULL,
    address TEXT NOT NULL,
    nonce BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (chain_id, address, nonce)
);";

/// How long an allocation may go without news before its nonce is handed out again. Longer than
/// any request may take from allocation to submission (the request deadline and the node's
/// timeout are both seconds).
pub const STALE_MS: i64 = 60_000;

/// What became of an allocated nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceOutcome {
    /// The node accepted the transaction.
    Submitted,
    /// The node refused the transaction outright (it was never in its pool): the nonce is free.
    Refused,
    /// The node says the nonce is already used ("nonce too low"): forget it.
    Used,
}

/// A nonce operation for the SQLite writer thread.
pub struct NonceJob {
    op: Op,
    reply: tokio::sync::oneshot::Sender<Result<u64, EvmError>>,
}

enum Op {
    Allocate {
        chain_id: u64,
        address: String,
        node_next: u64,
    },
    Settle {
        chain_id: u64,
        address: String,
        nonce: u64,
        outcome: NonceOutcome,
    },
}

fn i(v: u64) -> Result<i64, EvmError> {
    i64::try_from(v).map_err(|_| EvmError::Ledger("nonce or chain id out of range".into()))
}

fn allocate_sqlite(
    tx: &rusqlite::Connection,
    chain_id: u64,
    address: &str,
    node_next: u64,
    now: i64,
) -> Result<u64, EvmError> {
    if node_next > MAX_NODE_NONCE {
        return Err(EvmError::Ledger(
            "the node's pending nonce is implausibly large".into(),
        ));
    }
    let (c, n) = (i(chain_id)?, i(node_next)?);
    let stale = now - STALE_MS;
    tx.execute(
        "DELETE FROM evm_nonces WHERE chain_id = ?1 AND address = ?2 AND nonce < ?3 AND at_ms <= ?4",
        params![c, address, n, stale],
    )?;
    let reuse: Option<i64> = tx
        .query_row(
            "SELECT nonce FROM evm_nonces WHERE chain_id = ?1 AND address = ?2 AND nonce >= ?4 AND \
             (state = 'free' OR (state = 'allocated' AND at_ms <= ?3) OR (nonce = ?4 AND at_ms <= ?3)) \
             ORDER BY nonce LIMIT 1",
            params![c, address, stale, n],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(nonce) = reuse {
        tx.execute(
            "UPDATE evm_nonces SET state = 'allocated', at_ms = ?4 WHERE chain_id = ?1 AND address = ?2 AND nonce = ?3",
            params![c, address, nonce, now],
        )?;
        return Ok(nonce as u64);
    }
    let nonce: i64 = tx.query_row(GAP_SQLITE, params![c, address, n], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO evm_nonces (chain_id, address, nonce, at_ms, state) VALUES (?1, ?2, ?3, ?4, 'allocated')",
        params![c, address, nonce, now],
    )?;
    Ok(nonce as u64)
}

fn settle_sqlite(
    tx: &rusqlite::Connection,
    chain_id: u64,
    address: &str,
    nonce: u64,
    outcome: NonceOutcome,
    now: i64,
) -> Result<u64, EvmError> {
    let (c, n) = (i(chain_id)?, i(nonce)?);
    // A used nonce keeps its row (so a node that lags behind its own "nonce too low" does not
    // get it back) until the node's pending nonce passes it.
    tx.execute(
        "UPDATE evm_nonces SET state = ?4, at_ms = ?5 WHERE chain_id = ?1 AND address = ?2 AND nonce = ?3",
        params![c, address, n, state_of(outcome), now],
    )?;
    Ok(nonce)
}

fn state_of(outcome: NonceOutcome) -> &'static str {
    match outcome {
        NonceOutcome::Submitted => "submitted",
        NonceOutcome::Refused => "free",
        NonceOutcome::Used => "used",
    }
}

/// The nonce jobs of one writer group: each in its own immediate transaction, committed durably
/// before it is answered.
pub(crate) fn run_sqlite(conn: &mut rusqlite::Connection, jobs: Vec<NonceJob>) {
    for job in jobs {
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let v = match &job.op {
                Op::Allocate {
                    chain_id,
                    address,
                    node_next,
                } => allocate_sqlite(&tx, *chain_id, address, *node_next, now)?,
                Op::Settle {
                    chain_id,
                    address,
                    nonce,
                    outcome,
                } => settle_sqlite(&tx, *chain_id, address, *nonce, *outcome, now)?,
            };
            tx.commit()?;
            Ok::<_, EvmError>(v)
        })();
        let _ = job.reply.send(r);
    }
}

impl SpendLedger {
    async fn nonce_job(&self, op: Op) -> Result<u64, EvmError> {
        match self {
            SpendLedger::Sqlite(writer) => {
                crate::ledger::ask(writer, |reply| Job::Nonce(NonceJob { op, reply })).await
            }
            SpendLedger::Postgres(pool) => {
                let mut c = pool
                    .get()
                    .await
                    .map_err(|e| EvmError::Ledger(e.to_string()))?;
                let tx = c.transaction().await?;
                let (chain_id, address) = match &op {
                    Op::Allocate {
                        chain_id, address, ..
                    }
                    | Op::Settle {
                        chain_id, address, ..
                    } => (i(*chain_id)?, address.clone()),
                };
                // Serialise every operation on one account across every instance.
                let lock = format!("nonce:{chain_id}:{address}");
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    &[&lock],
                )
                .await?;
                let now = now_ms();
                let v = match op {
                    Op::Allocate { node_next, .. } => {
                        if node_next > MAX_NODE_NONCE {
                            return Err(EvmError::Ledger(
                                "the node's pending nonce is implausibly large".into(),
                            ));
                        }
                        let n = i(node_next)?;
                        let stale = now - STALE_MS;
                        tx.execute(
                            "DELETE FROM evm_nonces WHERE chain_id = $1 AND address = $2 AND nonce < $3 AND at_ms <= $4",
                            &[&chain_id, &address, &n, &stale],
                        )
                        .await?;
                        let reuse = tx
                            .query_opt(
                                "SELECT nonce FROM evm_nonces WHERE chain_id = $1 AND address = $2 AND nonce >= $4 AND \
                                 (state = 'free' OR (state = 'allocated' AND at_ms <= $3) OR (nonce = $4 AND at_ms <= $3)) \
                                 ORDER BY nonce LIMIT 1",
                                &[&chain_id, &address, &stale, &n],
                            )
                            .await?
                            .map(|r| r.get::<_, i64>(0));
                        if let Some(nonce) = reuse {
                            tx.execute(
                                "UPDATE evm_nonces SET state = 'allocated', at_ms = $4 WHERE chain_id = $1 AND address = $2 AND nonce = $3",
                                &[&chain_id, &address, &nonce, &now],
                            )
                            .await?;
                            nonce
                        } else {
                            let nonce: i64 = tx
                                .query_one(GAP_PG, &[&chain_id, &address, &n])
                                .await?
                                .get(0);
                            tx.execute(
                                "INSERT INTO evm_nonces (chain_id, address, nonce, at_ms, state) VALUES ($1, $2, $3, $4, 'allocated')",
                                &[&chain_id, &address, &nonce, &now],
                            )
                            .await?;
                            nonce
                        }
                    }
                    Op::Settle { nonce, outcome, .. } => {
                        let n = i(nonce)?;
                        tx.execute(
                            "UPDATE evm_nonces SET state = $4, at_ms = $5 WHERE chain_id = $1 AND address = $2 AND nonce = $3",
                            &[&chain_id, &address, &n, &state_of(outcome), &now],
                        )
                        .await?;
                        n
                    }
                };
                tx.commit().await?;
                Ok(v as u64)
            }
        }
    }

    /// A nonce for the next transaction of `address` on `chain_id`, given the node's pending
    /// nonce (`eth_getTransactionCount(address, "pending")`); recorded durably before it is
    /// returned. Settle it with [`SpendLedger::settle_nonce`] once the node has answered.
    pub async fn allocate_nonce(
        &self,
        chain_id: u64,
        address: &Address,
        node_next: u64,
    ) -> Result<u64, EvmError> {
        self.nonce_job(Op::Allocate {
            chain_id,
            address: format!("{address:#x}"),
            node_next,
        })
        .await
    }

    /// Record what the node made of the transaction that used `nonce`.
    pub async fn settle_nonce(
        &self,
        chain_id: u64,
        address: &Address,
        nonce: u64,
        outcome: NonceOutcome,
    ) -> Result<(), EvmError> {
        self.nonce_job(Op::Settle {
            chain_id,
            address: format!("{address:#x}"),
            nonce,
            outcome,
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    #[test]
    fn allocation_fills_gaps_and_never_repeats_a_live_nonce() {
        let c = conn();
        let a = "0xabc";
        let t = 1_000_000;
        // Fresh account: the node's nonce, then consecutive ones while the node lags.
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t).unwrap(), 7);
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t).unwrap(), 8);
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t).unwrap(), 9);
        // Another chain is another sequence.
        assert_eq!(allocate_sqlite(&c, 5, a, 0, t).unwrap(), 0);
        // 8 was refused by the node: it is handed out again before anything higher.
        settle_sqlite(&c, 1, a, 8, NonceOutcome::Refused, t).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t).unwrap(), 8);
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t).unwrap(), 10);
        // The node moved past 9: those rows are forgotten; the sequence continues above ours.
        settle_sqlite(&c, 1, a, 10, NonceOutcome::Submitted, t).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 10, t).unwrap(), 11);
        // 11's holder died before submitting: after the stale bound it is reused, not before.
        assert_eq!(allocate_sqlite(&c, 1, a, 10, t + 1).unwrap(), 12);
        let later = t + STALE_MS + 1;
        settle_sqlite(&c, 1, a, 12, NonceOutcome::Submitted, later).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 11, later).unwrap(), 11);
        // 12 was submitted but the node dropped it (its next nonce stays 12 past the bound).
        settle_sqlite(&c, 1, a, 11, NonceOutcome::Submitted, later).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 12, later).unwrap(), 13);
        assert_eq!(
            allocate_sqlite(&c, 1, a, 12, later + STALE_MS + 1).unwrap(),
            12,
            "a submitted nonce the node lost is filled"
        );
        // The node is ahead of us (someone else sent from this key): its nonce wins.
        assert_eq!(allocate_sqlite(&c, 1, a, 40, later).unwrap(), 40);
        // "nonce too low": the row stays, so a node that still lags gets the next one, not it.
        settle_sqlite(&c, 1, a, 40, NonceOutcome::Used, later).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 40, later).unwrap(), 41);
        assert_eq!(allocate_sqlite(&c, 1, a, 42, later).unwrap(), 42);
        // A node that once answered an absurd (but plausible-looking) nonce: the row it left far
        // above does not push the sequence up once the node is honest again.
        assert_eq!(
            allocate_sqlite(&c, 1, a, 1_000_000, later).unwrap(),
            1_000_000
        );
        assert_eq!(allocate_sqlite(&c, 1, a, 43, later).unwrap(), 43);
        assert!(allocate_sqlite(&c, 1, a, MAX_NODE_NONCE + 1, later).is_err());
    }

    /// The node's nonce is read before the account is locked: a request holding an older
    /// reading than the last allocation's must not get a nonce that is already in the node's
    /// pool (this happened in CI with two instances on one PostgreSQL).
    #[test]
    fn an_older_reading_of_the_node_never_repeats_a_pooled_nonce() {
        let c = conn();
        let a = "0xabc";
        let t = 5_000_000;
        // Both requests read the node's pending nonce as 5.
        assert_eq!(allocate_sqlite(&c, 1, a, 5, t).unwrap(), 5);
        settle_sqlite(&c, 1, a, 5, NonceOutcome::Submitted, t).unwrap();
        // A third reads 6 (5 is in the pool) and allocates.
        assert_eq!(allocate_sqlite(&c, 1, a, 6, t + 10).unwrap(), 6);
        // The second request, with its reading of 5, gets 7, not 5 again.
        assert_eq!(allocate_sqlite(&c, 1, a, 5, t + 20).unwrap(), 7);
        // A free row below the node's nonce is never handed out (the node passed it: someone
        // else's transaction used it).
        settle_sqlite(&c, 1, a, 6, NonceOutcome::Refused, t + 30).unwrap();
        assert_eq!(allocate_sqlite(&c, 1, a, 7, t + 40).unwrap(), 8);
        // Past the stale bound the rows below the node's nonce are forgotten.
        let later = t + 40 + STALE_MS + 1;
        assert_eq!(allocate_sqlite(&c, 1, a, 9, later).unwrap(), 9);
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM evm_nonces WHERE nonce < 9", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left, 0);
    }
}
