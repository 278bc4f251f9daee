//! The one type that owns the vault's SQL: SQLite (default, beside the slashing database) or
//! PostgreSQL (when several instances share state). Every change bumps a version counter that
//! running instances poll, and every write that depends on the master key checks the master-key
//! generation in the same transaction, so a key can never be stored under a superseded key.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use rusqlite::{params, OptionalExtension};

use crate::record::{KeyKind, SealedRecord};
use crate::VaultError;

/// The vault's public facts (nothing here is secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultMeta {
    /// The vault's identifier.
    pub vault_id: String,
    /// The current share set.
    pub share_set: String,
    /// The master-key generation.
    pub generation: u64,
    /// Shares needed to unseal.
    pub threshold: u8,
    /// Shares made.
    pub share_count: u8,
    /// The HMAC that identifies the master key (reveals nothing of the record key).
    pub verifier: Vec<u8>,
    /// Bumped on every change to the vault; instances poll it.
    pub version: i64,
}

/// A stored key as read back.
#[derive(Clone)]
pub struct StoredKey {
    /// The key's identifier (BLS public key or EVM address, hex).
    pub key_id: String,
    /// BLS or secp256k1.
    pub kind: KeyKind,
    /// The sealed secret.
    pub record: SealedRecord,
    /// Enabled keys are loaded; disabled ones are kept but not used.
    pub enabled: bool,
    /// Where it came from (the API or command that stored it).
    pub origin: String,
    /// When it was stored, Unix seconds.
    pub created_at: i64,
}

/// A sealed key record to store (the secret already encrypted under the master key).
pub struct NewRecord {
    /// The key's identifier.
    pub key_id: String,
    /// BLS or secp256k1.
    pub kind: KeyKind,
    /// The sealed secret.
    pub record: SealedRecord,
    /// Where it came from.
    pub origin: String,
}

/// Vault storage.
pub enum VaultStore {
    /// SQLite (`vault.sqlite` in the data directory).
    Sqlite(Mutex<rusqlite::Connection>),
    /// PostgreSQL, shared by every instance.
    Postgres(Pool),
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id TEXT NOT NULL,
    share_set TEXT NOT NULL,
    generation INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    share_count INTEGER NOT NULL,
    verifier BLOB NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_keys (
    key_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    enabled INTEGER NOT NULL,
    origin TEXT NOT NULL,
    created_at INTEGER NOT NULL
);";

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id TEXT NOT NULL,
    share_set TEXT NOT NULL,
    generation BIGINT NOT NULL,
    threshold INTEGER NOT NULL,
    share_count INTEGER NOT NULL,
    verifier BYTEA NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_keys (
    key_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    enabled BOOLEAN NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL
);";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn kind_of(s: &str, id: &str) -> Result<KeyKind, VaultError> {
    KeyKind::parse(s).ok_or_else(|| VaultError::RecordTampered(id.to_string()))
}

fn sqlite_meta(conn: &rusqlite::Connection) -> Result<Option<VaultMeta>, VaultError> {
    Ok(conn
        .query_row(
            "SELECT vault_id, share_set, generation, threshold, share_count, verifier, version FROM vault_meta WHERE id = 1",
            [],
            |r| {
                Ok(VaultMeta {
                    vault_id: r.get(0)?,
                    share_set: r.get(1)?,
                    generation: r.get::<_, i64>(2)? as u64,
                    threshold: r.get::<_, i64>(3)? as u8,
                    share_count: r.get::<_, i64>(4)? as u8,
                    verifier: r.get(5)?,
                    version: r.get(6)?,
                })
            },
        )
        .optional()?)
}

fn pg_meta_row(r: &tokio_postgres::Row) -> VaultMeta {
    VaultMeta {
        vault_id: r.get(0),
        share_set: r.get(1),
        generation: r.get::<_, i64>(2) as u64,
        threshold: r.get::<_, i32>(3) as u8,
        share_count: r.get::<_, i32>(4) as u8,
        verifier: r.get(5),
        version: r.get(6),
    }
}

const META_COLUMNS: &str =
    "SELECT vault_id, share_set, generation, threshold, share_count, verifier, version FROM vault_meta WHERE id = 1";

impl VaultStore {
    /// Open `sqlite:PATH` (created 0600) or `postgres://…`, creating the tables if needed.
    pub async fn open(url: &str) -> Result<Self, VaultError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let conn = signward_db::open_sqlite(Path::new(path))?;
            conn.execute_batch(SQLITE_SCHEMA)?;
            return Ok(VaultStore::Sqlite(Mutex::new(conn)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = signward_db::pg_pool(url, 4)?;
            let store = VaultStore::Postgres(pool);
            let mut c = store.pg().await?;
            let tx = c.transaction().await?;
            // Serialise schema creation across instances starting together.
            tx.execute("SELECT pg_advisory_xact_lock(7305420187)", &[])
                .await?;
            tx.batch_execute(PG_SCHEMA).await?;
            tx.commit().await?;
            drop(c);
            return Ok(store);
        }
        Err(VaultError::InvalidParameters(
            "vault database URL must start with sqlite: or postgres://".into(),
        ))
    }

    async fn pg(&self) -> Result<deadpool_postgres::Object, VaultError> {
        match self {
            VaultStore::Postgres(p) => p
                .get()
                .await
                .map_err(|e| VaultError::Storage(e.to_string())),
            VaultStore::Sqlite(_) => Err(VaultError::Internal("not a PostgreSQL store".into())),
        }
    }

    fn sqlite(&self) -> Option<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        match self {
            VaultStore::Sqlite(c) => Some(c.lock().unwrap_or_else(|p| p.into_inner())),
            VaultStore::Postgres(_) => None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            VaultStore::Sqlite(_) => "sqlite",
            VaultStore::Postgres(_) => "postgres",
        }
    }

    /// Several instances may share this store.
    pub fn is_shared(&self) -> bool {
        matches!(self, VaultStore::Postgres(_))
    }

    /// The vault's public facts, or `None` when no vault exists.
    pub async fn meta(&self) -> Result<Option<VaultMeta>, VaultError> {
        if let Some(conn) = self.sqlite() {
            return sqlite_meta(&conn);
        }
        let c = self.pg().await?;
        Ok(c.query_opt(META_COLUMNS, &[])
            .await?
            .as_ref()
            .map(pg_meta_row))
    }

    /// The change counter (0 before initialisation).
    pub async fn version(&self) -> Result<i64, VaultError> {
        Ok(self.meta().await?.map(|m| m.version).unwrap_or(0))
    }

    /// Create the vault's one metadata row. Fails if a vault exists.
    pub async fn initialize(&self, m: &VaultMeta) -> Result<(), VaultError> {
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if sqlite_meta(&tx)?.is_some() {
                return Err(VaultError::AlreadyInitialized);
            }
            tx.execute(
                "INSERT INTO vault_meta (id, vault_id, share_set, generation, threshold, share_count, verifier, version) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![m.vault_id, m.share_set, m.generation as i64, m.threshold as i64, m.share_count as i64, m.verifier],
            )?;
            tx.commit()?;
            return Ok(());
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "INSERT INTO vault_meta (id, vault_id, share_set, generation, threshold, share_count, verifier, version) VALUES (1, $1, $2, $3, $4, $5, $6, 1) ON CONFLICT (id) DO NOTHING",
                &[&m.vault_id, &m.share_set, &(m.generation as i64), &(m.threshold as i32), &(m.share_count as i32), &m.verifier],
            )
            .await?;
        if n == 0 {
            return Err(VaultError::AlreadyInitialized);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Store keys encrypted under master-key `generation`, in one transaction. Returns, per key,
    /// `true` when stored and `false` when a key with that id already exists. With `replace`, a
    /// record of the same id and kind is replaced instead (`true`), its enabled flag and
    /// creation time kept.
    pub async fn insert_keys(
        &self,
        generation: u64,
        keys: &[NewRecord],
        replace: bool,
    ) -> Result<Vec<bool>, VaultError> {
        let conflict = if replace {
            "ON CONFLICT (key_id) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, origin = excluded.origin WHERE vault_keys.kind = excluded.kind"
        } else {
            "ON CONFLICT (key_id) DO NOTHING"
        };
        let t = now();
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match sqlite_meta(&tx)? {
                None => return Err(VaultError::Uninitialized),
                Some(m) if m.generation != generation => return Err(VaultError::GenerationChanged),
                Some(_) => {}
            }
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut stmt = tx.prepare(&format!(
                    "INSERT INTO vault_keys (key_id, kind, nonce, ciphertext, enabled, origin, created_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6) {conflict}"
                ))?;
                for k in keys {
                    let n = stmt.execute(params![
                        k.key_id,
                        k.kind.as_str(),
                        k.record.nonce,
                        k.record.ciphertext,
                        k.origin,
                        t
                    ])?;
                    out.push(n == 1);
                }
            }
            tx.execute(
                "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
                [],
            )?;
            tx.commit()?;
            return Ok(out);
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let m = tx
            .query_opt(
                "SELECT generation FROM vault_meta WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?;
        match m {
            None => return Err(VaultError::Uninitialized),
            Some(r) if r.get::<_, i64>(0) as u64 != generation => {
                return Err(VaultError::GenerationChanged)
            }
            Some(_) => {}
        }
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO vault_keys (key_id, kind, nonce, ciphertext, enabled, origin, created_at) VALUES ($1, $2, $3, $4, TRUE, $5, $6) {conflict}"
            ))
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let n = tx
                .execute(
                    &stmt,
                    &[
                        &k.key_id,
                        &k.kind.as_str(),
                        &k.record.nonce,
                        &k.record.ciphertext,
                        &k.origin,
                        &t,
                    ],
                )
                .await?;
            out.push(n == 1);
        }
        tx.execute(
            "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every stored key, in insertion-id order.
    pub async fn keys(&self) -> Result<Vec<StoredKey>, VaultError> {
        if let Some(conn) = self.sqlite() {
            let mut stmt = conn.prepare(
                "SELECT key_id, kind, nonce, ciphertext, enabled, origin, created_at FROM vault_keys ORDER BY created_at, key_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)? != 0,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key_id, kind, nonce, ciphertext, enabled, origin, created_at) = row?;
                out.push(StoredKey {
                    kind: kind_of(&kind, &key_id)?,
                    key_id,
                    record: SealedRecord { nonce, ciphertext },
                    enabled,
                    origin,
                    created_at,
                });
            }
            return Ok(out);
        }
        let c = self.pg().await?;
        let rows = c
            .query(
                "SELECT key_id, kind, nonce, ciphertext, enabled, origin, created_at FROM vault_keys ORDER BY created_at, key_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let key_id: String = r.get(0);
                Ok(StoredKey {
                    kind: kind_of(r.get(1), &key_id)?,
                    record: SealedRecord {
                        nonce: r.get(2),
                        ciphertext: r.get(3),
                    },
                    enabled: r.get(4),
                    origin: r.get(5),
                    created_at: r.get(6),
                    key_id,
                })
            })
            .collect()
    }

    /// Delete keys; per id, whether it existed.
    pub async fn delete_keys(&self, ids: &[String]) -> Result<Vec<bool>, VaultError> {
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(tx.execute("DELETE FROM vault_keys WHERE key_id = ?1", params![id])? == 1);
            }
            tx.execute(
                "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
                [],
            )?;
            tx.commit()?;
            return Ok(out);
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                tx.execute("DELETE FROM vault_keys WHERE key_id = $1", &[id])
                    .await?
                    == 1,
            );
        }
        tx.execute(
            "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Enable or disable a key; false when no such key.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, VaultError> {
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE vault_keys SET enabled = ?2 WHERE key_id = ?1",
                params![id, enabled as i64],
            )?;
            tx.execute(
                "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
                [],
            )?;
            tx.commit()?;
            return Ok(n == 1);
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE vault_keys SET enabled = $2 WHERE key_id = $1",
                &[&id, &enabled],
            )
            .await?;
        tx.execute(
            "UPDATE vault_meta SET version = version + 1 WHERE id = 1",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// `rekey`: make `new_set` the only accepted share set, if `expected_set` still is.
    pub async fn replace_share_set(
        &self,
        expected_set: &str,
        new_set: &str,
        threshold: u8,
        count: u8,
    ) -> Result<(), VaultError> {
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE vault_meta SET share_set = ?2, threshold = ?3, share_count = ?4, version = version + 1 WHERE id = 1 AND share_set = ?1",
                params![expected_set, new_set, threshold as i64, count as i64],
            )?;
            if n != 1 {
                return Err(VaultError::ShareStale);
            }
            tx.commit()?;
            return Ok(());
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE vault_meta SET share_set = $2, threshold = $3, share_count = $4, version = version + 1 WHERE id = 1 AND share_set = $1",
                &[&expected_set, &new_set, &(threshold as i32), &(count as i32)],
            )
            .await?;
        if n != 1 {
            return Err(VaultError::ShareStale);
        }
        tx.commit().await?;
        Ok(())
    }

    /// `rotate`: in one transaction, replace every record with its re-encryption and the metadata
    /// with `new` (new generation, share set and verifier), if the generation is still
    /// `expected_generation` and no key was added or removed meanwhile.
    pub async fn rotate(
        &self,
        expected_generation: u64,
        new: &VaultMeta,
        records: &[(String, SealedRecord)],
    ) -> Result<(), VaultError> {
        if let Some(mut conn) = self.sqlite() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match sqlite_meta(&tx)? {
                Some(m) if m.generation == expected_generation => {}
                Some(_) => return Err(VaultError::GenerationChanged),
                None => return Err(VaultError::Uninitialized),
            }
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM vault_keys", [], |r| r.get(0))?;
            if count as usize != records.len() {
                return Err(VaultError::GenerationChanged);
            }
            {
                let mut stmt = tx.prepare(
                    "UPDATE vault_keys SET nonce = ?2, ciphertext = ?3 WHERE key_id = ?1",
                )?;
                for (id, r) in records {
                    if stmt.execute(params![id, r.nonce, r.ciphertext])? != 1 {
                        return Err(VaultError::GenerationChanged);
                    }
                }
            }
            tx.execute(
                "UPDATE vault_meta SET share_set = ?1, generation = ?2, threshold = ?3, share_count = ?4, verifier = ?5, version = version + 1 WHERE id = 1",
                params![new.share_set, new.generation as i64, new.threshold as i64, new.share_count as i64, new.verifier],
            )?;
            tx.commit()?;
            return Ok(());
        }
        let mut c = self.pg().await?;
        let tx = c.transaction().await?;
        let m = tx
            .query_opt(
                "SELECT generation FROM vault_meta WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?;
        match m {
            Some(r) if r.get::<_, i64>(0) as u64 == expected_generation => {}
            Some(_) => return Err(VaultError::GenerationChanged),
            None => return Err(VaultError::Uninitialized),
        }
        let count: i64 = tx
            .query_one("SELECT COUNT(*) FROM vault_keys", &[])
            .await?
            .get(0);
        if count as usize != records.len() {
            return Err(VaultError::GenerationChanged);
        }
        let stmt = tx
            .prepare("UPDATE vault_keys SET nonce = $2, ciphertext = $3 WHERE key_id = $1")
            .await?;
        for (id, r) in records {
            if tx.execute(&stmt, &[id, &r.nonce, &r.ciphertext]).await? != 1 {
                return Err(VaultError::GenerationChanged);
            }
        }
        tx.execute(
            "UPDATE vault_meta SET share_set = $1, generation = $2, threshold = $3, share_count = $4, verifier = $5, version = version + 1 WHERE id = 1",
            &[&new.share_set, &(new.generation as i64), &(new.threshold as i32), &(new.share_count as i32), &new.verifier],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
