//! The PostgreSQL backend, for several signward instances sharing one database.
//! [`PgStore`] owns all of its SQL.
//!
//! A check is one statement, `SELECT signward_check(...)`: a PL/pgSQL function that pins the
//! genesis validators root, locks the validator's row (`FOR UPDATE`, so checks for one validator
//! are serialised across every instance), applies the EIP-3076 rules and records the message.
//! It runs in its own implicit transaction, which commits with `synchronous_commit = on`
//! before the answer comes back: one round trip per check once the statement is prepared.
//! Checks that arrive together are decided together, as the SQLite writer's group commit does:
//! each instance runs at most [`BATCH_WORKERS`] batches at a time, and a batch is one statement,
//! `signward_check_batch`, that decides all of its checks (one per validator) set-wise in one
//! implicit transaction, so a slot's burst costs a few round trips and commits instead of one per
//! validator (see [`Batcher`]).
//! Primary keys on (validator, slot) and (validator, target) are the backstop.

use std::io::{Read, Write};

use deadpool_postgres::Pool;
use signward_core::bytes::{PublicKeyBytes, Root, Uint64};

use crate::decision::{Check, Decision, Refusal, Slashable};
use crate::history::{merge, History, Watermarks};
use crate::interchange::{self, Batch, Prepared, SignedAttestation, SignedBlock};
use crate::store::{to_i64, write_history, ExportReport, ImportReport, PruneReport, SlashingStore};
use crate::SlashingError;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

/// Serialises schema migrations across instances.
const MIGRATION_LOCK: i64 = 0x5349_474e_5741_5244; // "SIGNWARD"

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE validators (
    id BIGSERIAL PRIMARY KEY,
    pubkey BYTEA NOT NULL UNIQUE
);
CREATE TABLE signed_blocks (
    validator_id BIGINT NOT NULL REFERENCES validators(id),
    slot BIGINT NOT NULL,
    signing_root BYTEA,
    PRIMARY KEY (validator_id, slot)
);
CREATE TABLE signed_attestations (
    validator_id BIGINT NOT NULL REFERENCES validators(id),
    source_epoch BIGINT NOT NULL,
    target_epoch BIGINT NOT NULL,
    signing_root BYTEA,
    PRIMARY KEY (validator_id, target_epoch)
);
CREATE INDEX signed_attestations_source ON signed_attestations (validator_id, source_epoch);
CREATE TABLE watermarks (
    validator_id BIGINT PRIMARY KEY REFERENCES validators(id),
    block_slot BIGINT,
    att_source BIGINT,
    att_target BIGINT
);
"#,
    ),
    (
        2,
        r#"
ALTER TABLE validators ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
"#,
    ),
    // The records' foreign keys go: PostgreSQL checked each inserted row against `validators`
    // with a trigger, three quarters of an import's time (22 s against 5.8 s for 2.5 M
    // attestations, docs/benchmarks.md) and part of every check's insert. They guarded nothing
    // the code does not: a validator's row is never deleted, and every record is written with
    // the id read from that row, under its lock, in the same transaction.
    (
        3,
        r#"
ALTER TABLE signed_blocks DROP CONSTRAINT IF EXISTS signed_blocks_validator_id_fkey;
ALTER TABLE signed_attestations DROP CONSTRAINT IF EXISTS signed_attestations_validator_id_fkey;
ALTER TABLE watermarks DROP CONSTRAINT IF EXISTS watermarks_validator_id_fkey;
"#,
    ),
];

/// The newest PostgreSQL schema this build understands (SQLite's is
/// [`crate::store::SCHEMA_VERSION`]; the two move separately). Older schemas are migrated on
/// connect; newer ones are refused.
pub const PG_SCHEMA_VERSION: i64 = 3;

/// The checks, as PL/pgSQL functions. They are code rather than schema: both are installed when
/// the database's [`CHECK_FUNCTIONS_VERSION`] is missing (a new database, or one an earlier
/// release set up) or older than this binary's, so there is one version of them and it never
/// goes back.
///
/// `signward_check` decides one check: pin the chain, lock the validator's row, refuse a
/// disabled validator, apply the EIP-3076 rules, record. It reads what the rules need in one
/// statement per message kind.
///
/// `signward_check_batch` decides a batch of checks for distinct validators (it refuses a batch
/// that names one twice) in one set-based statement: pin the chain with the first check's root;
/// insert the validators never seen, under [`NEW_VALIDATORS_LOCK`]; lock every validator's row,
/// in key order (as imports and enable/disable do, so none of them deadlock); decide every check
/// with the same rules, in the same order, as `signward_check` (each lookup a scalar subquery on
/// an index, so a batch never scans a table); and insert the allowed records in the same
/// statement. With distinct
/// validators no check's decision depends on another's, so deciding them together is deciding
/// them one by one.
const CHECK_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION signward_check(p_pubkey BYTEA, p_gvr BYTEA, p_kind SMALLINT,
                               p_a BIGINT, p_b BIGINT, p_root BYTEA) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    v_id BIGINT; v_enabled BOOLEAN; pinned BYTEA; e_root BYTEA; e_src BIGINT; hit BOOLEAN;
    surround BOOLEAN; min_a BIGINT; min_b BIGINT; wm_a BIGINT; wm_b BIGINT;
BEGIN
    SELECT value INTO pinned FROM signward_meta WHERE key = 'genesis_validators_root';
    IF pinned IS NULL THEN
        INSERT INTO signward_meta (key, value) VALUES ('genesis_validators_root', p_gvr)
            ON CONFLICT (key) DO NOTHING;
        SELECT value INTO pinned FROM signward_meta WHERE key = 'genesis_validators_root';
    END IF;
    IF pinned <> p_gvr THEN RETURN 'genesis_mismatch'; END IF;
    SELECT id, enabled INTO v_id, v_enabled FROM validators WHERE pubkey = p_pubkey FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO validators (pubkey) VALUES (p_pubkey) ON CONFLICT (pubkey) DO NOTHING;
        SELECT id, enabled INTO v_id, v_enabled FROM validators WHERE pubkey = p_pubkey FOR UPDATE;
    END IF;
    IF NOT v_enabled THEN RETURN 'validator_disabled'; END IF;
    IF p_kind = 0 THEN
        SELECT b.signing_root, b.hit,
               (SELECT MIN(slot) FROM signed_blocks WHERE validator_id = v_id),
               (SELECT block_slot FROM watermarks WHERE validator_id = v_id)
          INTO e_root, hit, min_a, wm_a
          FROM (SELECT 1) one
          LEFT JOIN (SELECT signing_root, TRUE AS hit FROM signed_blocks
                     WHERE validator_id = v_id AND slot = p_a) b ON TRUE;
        IF hit THEN
            IF e_root IS NOT NULL AND e_root = p_root THEN RETURN 'repeat'; END IF;
            RETURN 'double_proposal';
        END IF;
        IF p_a <= min_a OR p_a <= wm_a THEN RETURN 'below_watermark'; END IF;
        INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (v_id, p_a, p_root);
        RETURN 'allowed';
    END IF;
    IF p_a > p_b THEN RETURN 'source_after_target'; END IF;
    SELECT e.source_epoch, e.signing_root, e.hit,
           EXISTS (SELECT 1 FROM signed_attestations
                   WHERE validator_id = v_id AND target_epoch > p_b AND source_epoch < p_a)
           OR EXISTS (SELECT 1 FROM signed_attestations
                   WHERE validator_id = v_id AND source_epoch > p_a AND target_epoch < p_b),
           (SELECT MIN(source_epoch) FROM signed_attestations WHERE validator_id = v_id),
           (SELECT MIN(target_epoch) FROM signed_attestations WHERE validator_id = v_id),
           w.att_source, w.att_target
      INTO e_src, e_root, hit, surround, min_a, min_b, wm_a, wm_b
      FROM (SELECT 1) one
      LEFT JOIN (SELECT source_epoch, signing_root, TRUE AS hit FROM signed_attestations
                 WHERE validator_id = v_id AND target_epoch = p_b) e ON TRUE
      LEFT JOIN watermarks w ON w.validator_id = v_id;
    IF hit THEN
        IF e_src = p_a AND e_root IS NOT NULL AND e_root = p_root THEN RETURN 'repeat'; END IF;
        RETURN 'double_vote';
    END IF;
    IF surround THEN RETURN 'surround_vote'; END IF;
    IF p_a < min_a OR p_b <= min_b OR p_a < wm_a OR p_b <= wm_b THEN
        RETURN 'below_watermark';
    END IF;
    INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
        VALUES (v_id, p_a, p_b, p_root);
    RETURN 'allowed';
END;
$$;
CREATE OR REPLACE FUNCTION signward_check_batch(p_pubkeys BYTEA[], p_gvrs BYTEA[],
        p_kinds SMALLINT[], p_a BIGINT[], p_b BIGINT[], p_roots BYTEA[])
    RETURNS TABLE (idx BIGINT, code TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    pinned BYTEA;
BEGIN
    IF (SELECT count(DISTINCT k) FROM unnest(p_pubkeys) k) <> cardinality(p_pubkeys) THEN
        RAISE EXCEPTION 'signward_check_batch: a validator appears twice in one batch';
    END IF;
    SELECT value INTO pinned FROM signward_meta WHERE key = 'genesis_validators_root';
    IF pinned IS NULL THEN
        INSERT INTO signward_meta (key, value) VALUES ('genesis_validators_root', p_gvrs[1])
            ON CONFLICT (key) DO NOTHING;
        SELECT value INTO pinned FROM signward_meta WHERE key = 'genesis_validators_root';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_pubkeys, p_gvrs) AS t(k, g)
               WHERE t.g = pinned AND NOT EXISTS (SELECT 1 FROM validators x WHERE x.pubkey = t.k))
    THEN
        -- Validators are created under one lock per database, as imports and enable/disable
        -- create them, so two transactions never insert the same new ones in different orders.
        PERFORM pg_advisory_xact_lock(hashtext('signward new validators'));
        INSERT INTO validators (pubkey)
            SELECT t.k FROM unnest(p_pubkeys, p_gvrs) AS t(k, g) WHERE t.g = pinned ORDER BY t.k
            ON CONFLICT (pubkey) DO NOTHING;
    END IF;
    PERFORM 1 FROM validators
        WHERE pubkey IN (SELECT t.k FROM unnest(p_pubkeys, p_gvrs) AS t(k, g) WHERE t.g = pinned)
        ORDER BY pubkey FOR UPDATE;
    RETURN QUERY
    WITH d AS MATERIALIZED (
        SELECT t.n, v.id AS vid, t.kind, t.a, t.b, t.root,
        CASE
            WHEN t.gvr <> pinned THEN 'genesis_mismatch'
            WHEN NOT v.enabled THEN 'validator_disabled'
            WHEN t.kind = 0 THEN CASE
                WHEN (SELECT TRUE FROM signed_blocks s
                             WHERE s.validator_id = v.id AND s.slot = t.a LIMIT 1) THEN
                    CASE WHEN (SELECT TRUE FROM signed_blocks s
                                      WHERE s.validator_id = v.id AND s.slot = t.a
                                        AND s.signing_root = t.root LIMIT 1)
                         THEN 'repeat' ELSE 'double_proposal' END
                WHEN t.a <= (SELECT MIN(s.slot) FROM signed_blocks s WHERE s.validator_id = v.id)
                  OR t.a <= (SELECT w.block_slot FROM watermarks w WHERE w.validator_id = v.id)
                    THEN 'below_watermark'
                ELSE 'allowed' END
            WHEN t.a > t.b THEN 'source_after_target'
            WHEN (SELECT TRUE FROM signed_attestations s
                         WHERE s.validator_id = v.id AND s.target_epoch = t.b LIMIT 1) THEN
                CASE WHEN (SELECT TRUE FROM signed_attestations s
                                  WHERE s.validator_id = v.id AND s.target_epoch = t.b
                                    AND s.source_epoch = t.a AND s.signing_root = t.root LIMIT 1)
                     THEN 'repeat' ELSE 'double_vote' END
            WHEN (SELECT TRUE FROM signed_attestations s WHERE s.validator_id = v.id
                           AND s.target_epoch > t.b AND s.source_epoch < t.a LIMIT 1)
              OR (SELECT TRUE FROM signed_attestations s WHERE s.validator_id = v.id
                           AND s.source_epoch > t.a AND s.target_epoch < t.b LIMIT 1)
                THEN 'surround_vote'
            WHEN t.a < (SELECT MIN(s.source_epoch) FROM signed_attestations s
                        WHERE s.validator_id = v.id)
              OR t.b <= (SELECT MIN(s.target_epoch) FROM signed_attestations s
                         WHERE s.validator_id = v.id)
              OR t.a < (SELECT w.att_source FROM watermarks w WHERE w.validator_id = v.id)
              OR t.b <= (SELECT w.att_target FROM watermarks w WHERE w.validator_id = v.id)
                THEN 'below_watermark'
            ELSE 'allowed'
        END AS outcome
        FROM unnest(p_pubkeys, p_gvrs, p_kinds, p_a, p_b, p_roots)
             WITH ORDINALITY AS t(k, gvr, kind, a, b, root, n)
        LEFT JOIN LATERAL (SELECT x.id, x.enabled FROM validators x
                           WHERE x.pubkey = t.k LIMIT 1) v ON TRUE
    ), blocks AS (
        INSERT INTO signed_blocks (validator_id, slot, signing_root)
        SELECT d.vid, d.a, d.root FROM d WHERE d.outcome = 'allowed' AND d.kind = 0
    ), attestations AS (
        INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
        SELECT d.vid, d.a, d.b, d.root FROM d WHERE d.outcome = 'allowed' AND d.kind <> 0
    )
    SELECT d.n, d.outcome FROM d;
END;
$$;
"#;

/// Bumped whenever [`CHECK_FUNCTION`] changes, so that a database set up by an earlier release
/// gets this release's functions. A database holding newer functions (a later release connected
/// first) keeps them: every version decides alike, and two releases side by side must not
/// reinstall their own in turn.
const CHECK_FUNCTIONS_VERSION: i64 = 2;

/// Taken, for the rest of its transaction, by whatever creates validators' rows several at a
/// time (an import batch, enable/disable, a check batch naming a validator never seen): two of
/// them then never insert the same new validators in different orders, which could deadlock.
/// `signward_check_batch` takes the same lock by the same expression.
const NEW_VALIDATORS_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('signward new validators'))";

fn pool_err(e: impl std::fmt::Display) -> SlashingError {
    SlashingError::Pool(e.to_string())
}

/// PostgreSQL slashing protection database.
pub struct PgStore {
    pool: Pool,
    batcher: Batcher,
}

type Client = deadpool_postgres::Object;

impl PgStore {
    /// Connect, then create or upgrade the schema (serialised across instances).
    pub async fn connect(url: &str) -> Result<Self, SlashingError> {
        let pool = signward_db::pg_pool(url, 16)?;
        let batcher = Batcher::start(pool.clone());
        let store = PgStore { pool, batcher };
        store.migrate().await?;
        Ok(store)
    }

    /// Batches whose one statement failed (a deadlock with another instance's transaction, say)
    /// and whose checks were then decided one by one. Nothing is signed differently either way;
    /// tests use it to know the batch statement itself decided their checks.
    pub fn batch_fallbacks(&self) -> u64 {
        self.batcher
            .fallbacks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn client(&self) -> Result<Client, SlashingError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn migrate(&self) -> Result<(), SlashingError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS signward_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)",
        )
        .await?;
        let found: i64 = match tx
            .query_opt(
                "SELECT value FROM signward_meta WHERE key = 'schema_version'",
                &[],
            )
            .await?
        {
            Some(row) => {
                let v: Vec<u8> = row.get(0);
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            }
            None => 0,
        };
        if found > PG_SCHEMA_VERSION {
            return Err(SlashingError::SchemaTooNew {
                found,
                supported: PG_SCHEMA_VERSION,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO signward_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&version.to_string().into_bytes()],
            )
            .await?;
            tracing::info!(version, "slashing database schema migrated");
        }
        let installed: Option<Vec<u8>> = tx
            .query_opt(
                "SELECT value FROM signward_meta WHERE key = 'check_functions'",
                &[],
            )
            .await?
            .map(|row| row.get(0));
        let installed = installed
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        if installed < CHECK_FUNCTIONS_VERSION {
            tx.batch_execute(CHECK_FUNCTION).await?;
            tx.execute(
                "INSERT INTO signward_meta (key, value) VALUES ('check_functions', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&CHECK_FUNCTIONS_VERSION.to_string().into_bytes()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Merge a batch of imported validators into their stored histories (see
    /// [`crate::history`]) in one transaction, under the validators' row locks (new validators
    /// created under [`NEW_VALIDATORS_LOCK`], then every row locked in public key order, as check
    /// batches do, so the two cannot deadlock), with a fixed number of statements: the validators
    /// upserted at once, the stored records of those the database already had read at once,
    /// every merge done in Rust (the same `merge` as SQLite), the changed validators' records
    /// deleted at once and the merged ones written with one binary `COPY` per table. A validator
    /// the database has never seen has nothing stored: nothing is read for it.
    async fn import_batch(
        &self,
        batch: Vec<Prepared>,
        report: &mut ImportReport,
    ) -> Result<(), SlashingError> {
        use std::collections::{HashMap, HashSet};
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let keys: Vec<&[u8]> = batch.iter().map(|p| &p.pubkey.0[..]).collect();
        // New validators are inserted in the file's order (an export lists them in that order
        // again), under the lock every path that creates validators takes first.
        tx.execute(NEW_VALIDATORS_LOCK, &[]).await?;
        let created: HashSet<i64> = tx
            .query(
                "INSERT INTO validators (pubkey)
                 SELECT k FROM UNNEST($1::BYTEA[]) WITH ORDINALITY AS t(k, n) ORDER BY n
                 ON CONFLICT (pubkey) DO NOTHING RETURNING id",
                &[&keys],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut ids: HashMap<PublicKeyBytes, i64> = HashMap::with_capacity(batch.len());
        for r in tx
            .query(
                "SELECT id, pubkey FROM validators WHERE pubkey = ANY($1::BYTEA[])
                 ORDER BY pubkey FOR UPDATE",
                &[&keys],
            )
            .await?
        {
            if let Some(pk) = PublicKeyBytes::from_slice(r.get::<_, &[u8]>(1)) {
                ids.insert(pk, r.get(0));
            }
        }
        drop(keys);
        // Stored histories of the validators that existed before this batch.
        let known: Vec<i64> = ids
            .values()
            .copied()
            .filter(|id| !created.contains(id))
            .collect();
        let mut stored: HashMap<i64, History> = HashMap::new();
        if !known.is_empty() {
            for r in tx
                .query(
                    "SELECT validator_id, slot, signing_root FROM signed_blocks
                     WHERE validator_id = ANY($1)",
                    &[&known],
                )
                .await?
            {
                stored
                    .entry(r.get(0))
                    .or_default()
                    .blocks
                    .insert(r.get(1), opt_root(r.get(2)));
            }
            for r in tx
                .query(
                    "SELECT validator_id, source_epoch, target_epoch, signing_root
                     FROM signed_attestations WHERE validator_id = ANY($1)",
                    &[&known],
                )
                .await?
            {
                stored
                    .entry(r.get(0))
                    .or_default()
                    .attestations
                    .insert(r.get(2), (r.get(1), opt_root(r.get(3))));
            }
            for r in tx
                .query(
                    "SELECT validator_id, block_slot, att_source, att_target FROM watermarks
                     WHERE validator_id = ANY($1)",
                    &[&known],
                )
                .await?
            {
                stored.entry(r.get(0)).or_default().watermarks = Watermarks {
                    block_slot: r.get(1),
                    att_source: r.get(2),
                    att_target: r.get(3),
                };
            }
        }
        // Merge in file order: a validator twice in the batch merges into its first merge.
        let mut had_rows: HashSet<i64> = stored
            .iter()
            .filter(|(_, h)| !h.blocks.is_empty() || !h.attestations.is_empty())
            .map(|(id, _)| *id)
            .collect();
        let mut changed: Vec<i64> = Vec::new();
        let mut current = stored;
        let mut r = ImportReport::default();
        for p in batch {
            let vid = *ids
                .get(&p.pubkey)
                .ok_or_else(|| SlashingError::Storage("validator row missing".into()))?;
            let mut m = p.report;
            let before = current.remove(&vid).unwrap_or_default();
            let merged = merge(before.clone(), &p.incoming, &mut m);
            if merged != before && !changed.contains(&vid) {
                changed.push(vid);
            }
            current.insert(vid, merged);
            r.add(&m);
            r.validators += 1;
        }
        if !changed.is_empty() {
            changed.sort_unstable();
            had_rows.retain(|id| changed.binary_search(id).is_ok());
            if !had_rows.is_empty() {
                let rewrite: Vec<i64> = had_rows.into_iter().collect();
                tx.execute(
                    "DELETE FROM signed_blocks WHERE validator_id = ANY($1)",
                    &[&rewrite],
                )
                .await?;
                tx.execute(
                    "DELETE FROM signed_attestations WHERE validator_id = ANY($1)",
                    &[&rewrite],
                )
                .await?;
            }
            let sink = tx
                .copy_in(
                    "COPY signed_blocks (validator_id, slot, signing_root) FROM STDIN (FORMAT binary)",
                )
                .await?;
            let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::BYTEA]);
            let mut writer = std::pin::pin!(writer);
            for vid in &changed {
                if let Some(h) = current.get(vid) {
                    for (slot, root) in &h.blocks {
                        let root = root.as_ref().map(|r| &r.0[..]);
                        writer.as_mut().write(&[vid, slot, &root]).await?;
                    }
                }
            }
            writer.finish().await?;
            let sink = tx
                .copy_in(
                    "COPY signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
                     FROM STDIN (FORMAT binary)",
                )
                .await?;
            let writer =
                BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::INT8, Type::BYTEA]);
            let mut writer = std::pin::pin!(writer);
            for vid in &changed {
                if let Some(h) = current.get(vid) {
                    for (target, (source, root)) in &h.attestations {
                        let root = root.as_ref().map(|r| &r.0[..]);
                        writer.as_mut().write(&[vid, source, target, &root]).await?;
                    }
                }
            }
            writer.finish().await?;
            let mut wm_ids = Vec::new();
            let (mut wb, mut ws, mut wt) = (Vec::new(), Vec::new(), Vec::new());
            for vid in &changed {
                if let Some(w) = current
                    .get(vid)
                    .map(|h| h.watermarks)
                    .filter(|w| *w != Watermarks::default())
                {
                    wm_ids.push(*vid);
                    wb.push(w.block_slot);
                    ws.push(w.att_source);
                    wt.push(w.att_target);
                }
            }
            if !wm_ids.is_empty() {
                tx.execute(
                    "INSERT INTO watermarks (validator_id, block_slot, att_source, att_target)
                     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
                     ON CONFLICT (validator_id) DO UPDATE SET block_slot = EXCLUDED.block_slot,
                         att_source = EXCLUDED.att_source, att_target = EXCLUDED.att_target",
                    &[&wm_ids, &wb, &ws, &wt],
                )
                .await?;
            }
        }
        tx.commit().await?;
        report.absorb(&r);
        Ok(())
    }
}

impl PgStore {
    /// Export every validator, or only `only`.
    async fn export_some<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
        only: Option<Vec<PublicKeyBytes>>,
    ) -> Result<ExportReport, SlashingError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let gvr = tx
            .query_opt(
                "SELECT value FROM signward_meta WHERE key = 'genesis_validators_root'",
                &[],
            )
            .await?
            .and_then(|r| Root::from_slice(&r.get::<_, Vec<u8>>(0)))
            .ok_or_else(|| {
                SlashingError::Interchange(
                    "database has no genesis validators root yet; nothing to export".into(),
                )
            })?;
        let mut w =
            interchange::Writer::new(std::io::BufWriter::with_capacity(1 << 20, writer), &gvr)?;
        let mut report = ExportReport::default();
        let validators = match &only {
            None => {
                tx.query("SELECT id, pubkey FROM validators ORDER BY id", &[])
                    .await?
            }
            Some(keys) => {
                let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
                tx.query(
                    "SELECT id, pubkey FROM validators WHERE pubkey = ANY($1::BYTEA[]) ORDER BY id",
                    &[&keys],
                )
                .await?
            }
        };
        // A few statements per chunk of validators rather than three per validator; the rows of
        // one chunk are in memory at a time.
        let blocks_q = tx
            .prepare(
                "SELECT validator_id, slot, signing_root FROM signed_blocks
                 WHERE validator_id = ANY($1) ORDER BY validator_id, slot",
            )
            .await?;
        let atts_q = tx
            .prepare(
                "SELECT validator_id, source_epoch, target_epoch, signing_root
                 FROM signed_attestations WHERE validator_id = ANY($1)
                 ORDER BY validator_id, target_epoch",
            )
            .await?;
        let wm_q = tx
            .prepare(
                "SELECT validator_id, block_slot, att_source, att_target FROM watermarks
                 WHERE validator_id = ANY($1) ORDER BY validator_id",
            )
            .await?;
        for chunk in validators.chunks(EXPORT_CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|v| v.get(0)).collect();
            let block_rows = tx.query(&blocks_q, &[&ids]).await?;
            let att_rows = tx.query(&atts_q, &[&ids]).await?;
            let wm_rows = tx.query(&wm_q, &[&ids]).await?;
            let (mut bi, mut ai, mut wi) = (0, 0, 0);
            for v in chunk {
                let vid: i64 = v.get(0);
                let mut blocks = Vec::new();
                while let Some(r) = block_rows.get(bi).filter(|r| r.get::<_, i64>(0) == vid) {
                    blocks.push(SignedBlock {
                        slot: Uint64(r.get::<_, i64>(1) as u64),
                        signing_root: opt_root_ref(r.get(2)),
                    });
                    bi += 1;
                }
                let mut atts = Vec::new();
                while let Some(r) = att_rows.get(ai).filter(|r| r.get::<_, i64>(0) == vid) {
                    atts.push(SignedAttestation {
                        source_epoch: Uint64(r.get::<_, i64>(1) as u64),
                        target_epoch: Uint64(r.get::<_, i64>(2) as u64),
                        signing_root: opt_root_ref(r.get(3)),
                    });
                    ai += 1;
                }
                let mut wm = (None, None, None);
                if let Some(r) = wm_rows.get(wi).filter(|r| r.get::<_, i64>(0) == vid) {
                    wm = (r.get(1), r.get(2), r.get(3));
                    wi += 1;
                }
                let Some(pubkey) = PublicKeyBytes::from_slice(v.get::<_, &[u8]>(1)) else {
                    continue;
                };
                write_history(&mut w, &pubkey, blocks, atts, wm, minimal, &mut report)?;
            }
        }
        w.finish()?;
        tx.commit().await?;
        Ok(report)
    }
}

/// Validators pruned in one transaction.
const PRUNE_BATCH: usize = 512;

/// Validators exported per round of statements.
const EXPORT_CHUNK: usize = 256;

fn opt_root_ref(v: Option<&[u8]>) -> Option<Root> {
    v.and_then(Root::from_slice)
}

fn opt_root(v: Option<Vec<u8>>) -> Option<Root> {
    v.and_then(|b| Root::from_slice(&b))
}

/// `signward_check`'s arguments for one check: the kind (0 block, 1 attestation) and its two
/// numbers. `None`: a slot or epoch beyond any real one, refused like any other far-future
/// message (as the SQLite backend does).
fn check_args(check: &Check) -> Option<(i16, i64, i64)> {
    let values = match check.slashable {
        Slashable::Block { slot } => to_i64(slot).map(|s| (0i16, s, 0)),
        // Refused by the function as source_after_target, after the genesis and disabled
        // checks, as SQLite and `rules` order it, however large the source is.
        Slashable::Attestation {
            source_epoch,
            target_epoch,
        } if source_epoch > target_epoch => Ok((1i16, 1, 0)),
        Slashable::Attestation {
            source_epoch,
            target_epoch,
        } => to_i64(source_epoch).and_then(|s| Ok((1i16, s, to_i64(target_epoch)?))),
    };
    values.ok()
}

fn decision_of(code: &str) -> Result<Decision, SlashingError> {
    Ok(match code {
        "allowed" => Decision::Allowed,
        "repeat" => Decision::Repeat,
        other => Decision::Refused(
            Refusal::from_code(other)
                .ok_or_else(|| SlashingError::Storage(format!("unknown decision {other:?}")))?,
        ),
    })
}

/// Batches decided at once by one instance. Two: while one commits, the next gathers.
pub const BATCH_WORKERS: usize = 2;

/// Most checks in one batch.
pub const MAX_PG_BATCH: usize = 512;

/// One statement decides a batch (of distinct validators, see [`take_distinct`]):
/// `signward_check_batch` over the arrays, in the statement's own implicit transaction. Each
/// answer carries its check's position in the arrays, from 1.
const BATCH_CHECK: &str = "SELECT idx, code FROM signward_check_batch(
     $1::bytea[], $2::bytea[], $3::int2[], $4::int8[], $5::int8[], $6::bytea[])";

const SINGLE_CHECK: &str = "SELECT signward_check($1, $2, $3, $4, $5, $6)";

/// A check waiting for its batch.
struct Pending {
    check: Check,
    args: (i16, i64, i64),
    reply: tokio::sync::oneshot::Sender<Result<Decision, SlashingError>>,
}

/// Group commit for PostgreSQL. Checks queue on a channel; [`BATCH_WORKERS`] tasks each take
/// whatever is waiting (up to [`MAX_PG_BATCH`]) and decide it in one statement. A batch never
/// holds one validator twice (a second check for it waits for the next batch, so it sees the
/// first one committed), and it locks validators' rows in key order, so two instances' batches
/// cannot deadlock on each other. If the batch statement fails, its transaction is rolled back
/// whole and each check is retried alone, so one bad check cannot fail the others.
struct Batcher {
    queue: tokio::sync::mpsc::Sender<Pending>,
    /// Batches whose statement failed and whose checks were decided one by one.
    fallbacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Batcher {
    fn start(pool: Pool) -> Self {
        // Bounded: beyond it, submitters wait for room (back-pressure, as on SQLite).
        let (queue, rx) = tokio::sync::mpsc::channel(16 * MAX_PG_BATCH);
        let fallbacks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(run_workers(pool, rx, fallbacks.clone()));
        Batcher { queue, fallbacks }
    }

    async fn decide(&self, check: Check, args: (i16, i64, i64)) -> Result<Decision, SlashingError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send(Pending { check, args, reply })
            .await
            .map_err(|_| SlashingError::WriterGone)?;
        answer.await.map_err(|_| SlashingError::WriterGone)?
    }
}

/// [`BATCH_WORKERS`] workers sharing one queue, until every sender is gone.
async fn run_workers(
    pool: Pool,
    rx: tokio::sync::mpsc::Receiver<Pending>,
    fallbacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..BATCH_WORKERS)
        .map(|_| {
            let (rx, pool, fallbacks) = (rx.clone(), pool.clone(), fallbacks.clone());
            tokio::spawn(async move {
                // Checks taken off the queue but not yet decided (a validator's second check
                // waits here for the batch after its first). A worker holding some never waits
                // for the queue: the other worker may be parked on it, holding its lock.
                let mut held: Vec<Pending> = Vec::new();
                loop {
                    if held.is_empty() {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(first) => held.push(first),
                            None => return,
                        }
                        top_up(&mut rx, &mut held);
                    } else if let Ok(mut rx) = rx.try_lock() {
                        top_up(&mut rx, &mut held);
                    }
                    let batch = take_distinct(&mut held);
                    decide_batch(&pool, batch, &fallbacks).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

/// Add whatever is already queued to `held`, up to [`MAX_PG_BATCH`].
fn top_up(rx: &mut tokio::sync::mpsc::Receiver<Pending>, held: &mut Vec<Pending>) {
    while held.len() < MAX_PG_BATCH {
        match rx.try_recv() {
            Ok(p) => held.push(p),
            Err(_) => break,
        }
    }
}

/// The checks of `held` for distinct validators, in key order; the others stay held. A check
/// whose caller has gone (its request cancelled or timed out) is dropped: nothing was signed for
/// it, and deciding it would only delay the others.
fn take_distinct(held: &mut Vec<Pending>) -> Vec<Pending> {
    let mut seen = std::collections::HashSet::new();
    let (mut batch, mut rest) = (Vec::new(), Vec::new());
    for p in held.drain(..).filter(|p| !p.reply.is_closed()) {
        if seen.insert(p.check.pubkey) {
            batch.push(p);
        } else {
            rest.push(p);
        }
    }
    *held = rest;
    batch.sort_by_key(|a| a.check.pubkey.0);
    batch
}

async fn decide_batch(pool: &Pool, batch: Vec<Pending>, fallbacks: &std::sync::atomic::AtomicU64) {
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = pool_err(e);
            for p in batch {
                let _ = p.reply.send(Err(SlashingError::Pool(e.to_string())));
            }
            return;
        }
    };
    if batch.len() > 1 {
        match run_batch(&client, &batch).await {
            Ok(codes) => {
                for (p, code) in batch.into_iter().zip(codes) {
                    let _ = p.reply.send(decision_of(&code));
                }
                return;
            }
            Err(e) => {
                fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, checks = batch.len(), "batched slashing check failed; deciding each check alone");
            }
        }
    }
    for p in batch {
        let answer = run_single(&client, &p).await;
        let _ = p.reply.send(answer);
    }
}

/// The batch's codes, in the batch's order.
async fn run_batch(client: &Client, batch: &[Pending]) -> Result<Vec<String>, SlashingError> {
    let n = batch.len();
    let (mut pubkeys, mut gvrs, mut kinds, mut a, mut b, mut roots) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in batch {
        pubkeys.push(p.check.pubkey.0.to_vec());
        gvrs.push(p.check.genesis_validators_root.0.to_vec());
        kinds.push(p.args.0);
        a.push(p.args.1);
        b.push(p.args.2);
        roots.push(p.check.signing_root.0.to_vec());
    }
    let stmt = client.prepare_cached(BATCH_CHECK).await?;
    let rows = client
        .query(&stmt, &[&pubkeys, &gvrs, &kinds, &a, &b, &roots])
        .await?;
    let mut codes = vec![None; n];
    for row in rows {
        let i: i64 = row.get(0);
        let slot = usize::try_from(i - 1)
            .ok()
            .and_then(|i| codes.get_mut(i))
            .ok_or_else(|| SlashingError::Storage("batch answered out of range".into()))?;
        *slot = Some(row.get::<_, String>(1));
    }
    codes
        .into_iter()
        .map(|c| c.ok_or_else(|| SlashingError::Storage("batch left a check unanswered".into())))
        .collect()
}

async fn run_single(client: &Client, p: &Pending) -> Result<Decision, SlashingError> {
    let stmt = client.prepare_cached(SINGLE_CHECK).await?;
    let (kind, a, b) = p.args;
    let row = client
        .query_one(
            &stmt,
            &[
                &p.check.pubkey.0.to_vec(),
                &p.check.genesis_validators_root.0.to_vec(),
                &kind,
                &a,
                &b,
                &p.check.signing_root.0.to_vec(),
            ],
        )
        .await?;
    decision_of(&row.get::<_, String>(0))
}

impl SlashingStore for PgStore {
    async fn check_and_record(&self, check: Check) -> Result<Decision, SlashingError> {
        match check_args(&check) {
            Some(args) => self.batcher.decide(check, args).await,
            None => Ok(Decision::Refused(Refusal::TooFarInFuture)),
        }
    }

    async fn genesis_validators_root(&self) -> Result<Option<Root>, SlashingError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM signward_meta WHERE key = 'genesis_validators_root'",
                &[],
            )
            .await?;
        Ok(row.and_then(|r| Root::from_slice(&r.get::<_, Vec<u8>>(0))))
    }

    async fn pin_genesis_validators_root(&self, gvr: Root) -> Result<(), SlashingError> {
        // One pooled connection for both statements: asking the pool for a second one while
        // holding the first deadlocked the pool once as many imports as it has connections
        // pinned at once (each held one and waited for another).
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO signward_meta (key, value) VALUES ('genesis_validators_root', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&gvr.0.to_vec()],
            )
            .await?;
        let pinned = client
            .query_opt(
                "SELECT value FROM signward_meta WHERE key = 'genesis_validators_root'",
                &[],
            )
            .await?
            .and_then(|r| Root::from_slice(&r.get::<_, Vec<u8>>(0)));
        drop(client);
        match pinned {
            Some(g) if g != gvr => Err(SlashingError::GenesisMismatch {
                pinned: g.to_hex(),
                given: gvr.to_hex(),
            }),
            _ => Ok(()),
        }
    }

    async fn import<R: Read + Send + 'static>(
        &self,
        reader: R,
    ) -> Result<ImportReport, SlashingError> {
        // The JSON is parsed (and each entry normalised) on a blocking thread and handed over in
        // batches of about `BATCH_ROWS` records through a channel holding one batch, so memory
        // stays bounded whatever the file size and the parser works while a batch is written.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
        let parser = tokio::task::spawn_blocking(move || {
            interchange::read_batches(reader, interchange::BATCH_ROWS, |b| {
                tx.blocking_send(b)
                    .map_err(|_| SlashingError::Interchange("import stopped".into()))
            })
        });
        let mut report = ImportReport::default();
        let mut pinned = false;
        let mut failure = None;
        while let Some(batch) = rx.recv().await {
            let step = match batch {
                Batch::Metadata(m) => match interchange::check_metadata(&m) {
                    Ok(()) => self
                        .pin_genesis_validators_root(m.genesis_validators_root)
                        .await
                        .map(|()| pinned = true),
                    Err(e) => Err(e),
                },
                // `read` hands the metadata over first; this never happens.
                Batch::Validators(_) if !pinned => {
                    Err(SlashingError::Interchange("entries before metadata".into()))
                }
                Batch::Validators(vs) => self.import_batch(vs, &mut report).await,
            };
            if let Err(e) = step {
                failure = Some(e);
                break;
            }
        }
        drop(rx);
        let parsed = parser.await.map_err(|_| SlashingError::WriterGone)?;
        if let Some(e) = failure {
            return Err(e);
        }
        parsed?;
        Ok(report)
    }

    async fn export<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
    ) -> Result<ExportReport, SlashingError> {
        self.export_some(writer, minimal, None).await
    }

    async fn export_validators<W: Write + Send + 'static>(
        &self,
        writer: W,
        pubkeys: Vec<PublicKeyBytes>,
    ) -> Result<ExportReport, SlashingError> {
        self.export_some(writer, false, Some(pubkeys)).await
    }

    async fn set_enabled(
        &self,
        pubkeys: Vec<PublicKeyBytes>,
        enabled: bool,
        only_known: bool,
    ) -> Result<(), SlashingError> {
        let keys: Vec<Vec<u8>> = pubkeys.iter().map(|p| p.0.to_vec()).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !only_known {
            tx.execute(NEW_VALIDATORS_LOCK, &[]).await?;
            tx.execute(
                "INSERT INTO validators (pubkey) SELECT k FROM UNNEST($1::BYTEA[]) AS t(k)
                 ORDER BY k ON CONFLICT (pubkey) DO NOTHING",
                &[&keys],
            )
            .await?;
        }
        // The row lock a check takes (FOR UPDATE) waits for this update; a check that runs
        // after it commits reads the new state. Rows are locked in public key order first, as
        // check batches lock them, so the two cannot deadlock.
        tx.execute(
            "SELECT 1 FROM validators WHERE pubkey = ANY($1::BYTEA[]) ORDER BY pubkey FOR UPDATE",
            &[&keys],
        )
        .await?;
        tx.execute(
            "UPDATE validators SET enabled = $2 WHERE pubkey = ANY($1::BYTEA[])",
            &[&keys, &enabled],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn may_sign(
        &self,
        pubkey: PublicKeyBytes,
        gvr: Option<Root>,
    ) -> Result<Option<Refusal>, SlashingError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT (SELECT value FROM signward_meta WHERE key = 'genesis_validators_root'),
                        (SELECT enabled FROM validators WHERE pubkey = $1)",
            )
            .await?;
        let row = client.query_one(&stmt, &[&pubkey.0.to_vec()]).await?;
        let pinned: Option<Vec<u8>> = row.get(0);
        let enabled: Option<bool> = row.get(1);
        if let (Some(p), Some(g)) = (pinned.and_then(|b| Root::from_slice(&b)), gvr) {
            if p != g {
                return Ok(Some(Refusal::GenesisMismatch));
            }
        }
        Ok((enabled == Some(false)).then_some(Refusal::Disabled))
    }

    async fn disabled(&self) -> Result<Vec<PublicKeyBytes>, SlashingError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT pubkey FROM validators WHERE NOT enabled ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| PublicKeyBytes::from_slice(&r.get::<_, Vec<u8>>(0)))
            .collect())
    }

    async fn prune(
        &self,
        keep_epochs: u64,
        slots_per_epoch: u64,
    ) -> Result<PruneReport, SlashingError> {
        let keep_epochs_i = to_i64(keep_epochs)?;
        let keep_slots = to_i64(keep_epochs.saturating_mul(slots_per_epoch))?;
        let mut client = self.client().await?;
        let ids: Vec<i64> = client
            .query("SELECT id FROM validators ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (mut blocks_deleted, mut attestations_deleted) = (0, 0);
        // One transaction per batch of validators: each holds its validators' row locks (as
        // checks take them), so no check interleaves with the pruning of its validator, and no
        // check waits for more than one batch.
        for chunk in ids.chunks(PRUNE_BATCH) {
            // Ids are listed in order, so a batch is the range from its first id to its last;
            // every statement names the range, so each reads only the batch's rows.
            let (Some(lo), Some(hi)) = (chunk.first().copied(), chunk.last().copied()) else {
                continue;
            };
            let tx = client.transaction().await?;
            tx.execute(
                "SELECT 1 FROM validators WHERE id BETWEEN $1 AND $2 ORDER BY pubkey FOR UPDATE",
                &[&lo, &hi],
            )
            .await?;
            tx.execute(
                "INSERT INTO watermarks (validator_id, block_slot)
                 SELECT b.validator_id, MAX(b.slot) FROM signed_blocks b
                 JOIN (SELECT validator_id, MAX(slot) AS top FROM signed_blocks
                       WHERE validator_id BETWEEN $2 AND $3 GROUP BY validator_id) m
                   ON m.validator_id = b.validator_id
                 WHERE b.validator_id BETWEEN $2 AND $3 AND b.slot < m.top - $1
                 GROUP BY b.validator_id
                 ON CONFLICT (validator_id) DO UPDATE
                   SET block_slot = GREATEST(watermarks.block_slot, EXCLUDED.block_slot)",
                &[&keep_slots, &lo, &hi],
            )
            .await?;
            blocks_deleted += tx
                .execute(
                    "DELETE FROM signed_blocks b
                     USING (SELECT validator_id, MAX(slot) AS top FROM signed_blocks
                            WHERE validator_id BETWEEN $2 AND $3 GROUP BY validator_id) m
                     WHERE b.validator_id BETWEEN $2 AND $3
                       AND b.validator_id = m.validator_id AND b.slot < m.top - $1",
                    &[&keep_slots, &lo, &hi],
                )
                .await?;
            tx.execute(
                "INSERT INTO watermarks (validator_id, att_source, att_target)
                 SELECT a.validator_id, MAX(a.source_epoch), MAX(a.target_epoch)
                 FROM signed_attestations a
                 JOIN (SELECT validator_id, MAX(target_epoch) AS top FROM signed_attestations
                       WHERE validator_id BETWEEN $2 AND $3 GROUP BY validator_id) m
                   ON m.validator_id = a.validator_id
                 WHERE a.validator_id BETWEEN $2 AND $3 AND a.target_epoch < m.top - $1
                 GROUP BY a.validator_id
                 ON CONFLICT (validator_id) DO UPDATE
                   SET att_source = GREATEST(watermarks.att_source, EXCLUDED.att_source),
                       att_target = GREATEST(watermarks.att_target, EXCLUDED.att_target)",
                &[&keep_epochs_i, &lo, &hi],
            )
            .await?;
            attestations_deleted += tx
                .execute(
                    "DELETE FROM signed_attestations a
                     USING (SELECT validator_id, MAX(target_epoch) AS top FROM signed_attestations
                            WHERE validator_id BETWEEN $2 AND $3 GROUP BY validator_id) m
                     WHERE a.validator_id BETWEEN $2 AND $3
                       AND a.validator_id = m.validator_id AND a.target_epoch < m.top - $1",
                    &[&keep_epochs_i, &lo, &hi],
                )
                .await?;
            tx.commit().await?;
        }
        Ok(PruneReport {
            blocks_deleted,
            attestations_deleted,
        })
    }
}
