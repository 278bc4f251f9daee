//! Shared server state: the loaded keys and the load status behind readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use signward_core::bytes::PublicKeyBytes;
use signward_core::network::NetworkConfig;
use signward_keys::BlsKeypair;
use signward_slashing::clock::ChainClock;
use signward_slashing::{Refusal, SlashingDb};

/// The keys the server can sign with, in load order.
#[derive(Default)]
pub struct KeyRegistry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    order: Vec<PublicKeyBytes>,
    map: HashMap<PublicKeyBytes, Arc<BlsKeypair>>,
}

impl KeyRegistry {
    /// Add keys; a public key already present is kept as it was. Returns how many were added.
    pub fn insert_all(&self, keys: impl IntoIterator<Item = BlsKeypair>) -> usize {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut added = 0;
        for k in keys {
            let pk = *k.public_key();
            if let std::collections::hash_map::Entry::Vacant(e) = g.map.entry(pk) {
                e.insert(Arc::new(k));
                g.order.push(pk);
                added += 1;
            }
        }
        added
    }

    pub fn get(&self, pk: &PublicKeyBytes) -> Option<Arc<BlsKeypair>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.map.get(pk).cloned()
    }

    pub fn public_keys(&self) -> Vec<PublicKeyBytes> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.order.clone()
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where key loading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    /// Loading `total` configured keys.
    Loading { total: usize },
    /// Every configured key has loaded or failed.
    Done { loaded: usize, failed: usize },
}

/// Slashing protection as the server uses it: the database, the chain clock (when the genesis
/// time is known and the check is enabled), and a counter per refusal reason.
pub struct Protection {
    pub db: SlashingDb,
    pub clock: Option<ChainClock>,
    refusals: [AtomicU64; Refusal::ALL.len()],
}

impl Protection {
    pub fn new(db: SlashingDb, clock: Option<ChainClock>) -> Self {
        Protection {
            db,
            clock,
            refusals: Default::default(),
        }
    }

    pub fn count_refusal(&self, r: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|x| *x == r) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (code, count) for every refusal reason.
    pub fn refusal_counts(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .zip(&self.refusals)
            .map(|(r, c)| (r.code(), c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Where audit records go.
pub enum Journal {
    /// `audit.sqlite`, with its own group commit.
    Own(signward_audit::AuditLog),
    /// The SQLite slashing database: one transaction and one fsync for a check and its record.
    InSlashingDb,
}

/// Everything a request handler can see.
pub struct AppState {
    pub network: NetworkConfig,
    pub keys: KeyRegistry,
    pub protection: Protection,
    /// Authentication and authorisation; `None` only with auth disabled on loopback.
    pub gate: Option<crate::gate::Gate>,
    /// The audit log; every signing decision is recorded before an answer leaves.
    pub audit: Option<Journal>,
    status: RwLock<LoadStatus>,
}

impl AppState {
    pub fn new(network: NetworkConfig, protection: Protection) -> Self {
        AppState {
            network,
            keys: KeyRegistry::default(),
            protection,
            gate: None,
            audit: None,
            status: RwLock::new(LoadStatus::Loading { total: 0 }),
        }
    }

    /// Record every decision in its own log file (see [`signward_audit`]).
    pub fn with_audit(mut self, audit: signward_audit::AuditLog) -> Self {
        self.audit = Some(Journal::Own(audit));
        self
    }

    /// Record every decision in the SQLite slashing database, in the same transactions as the
    /// checks. Ignored unless that database was opened with an audit key.
    pub fn with_audit_in_slashing_db(mut self) -> Self {
        if self.protection.db.audit_store().is_some() {
            self.audit = Some(Journal::InSlashingDb);
        }
        self
    }

    /// True when slashable decisions are journaled by the slashing database itself.
    pub fn audits_in_slashing_db(&self) -> bool {
        matches!(self.audit, Some(Journal::InSlashingDb))
    }

    /// Append one record durably. `Ok` when there is no audit log.
    pub async fn journal(&self, record: signward_audit::Record) -> Result<(), String> {
        match &self.audit {
            None => Ok(()),
            Some(Journal::Own(log)) => log.append(record).await.map_err(|e| e.to_string()),
            Some(Journal::InSlashingDb) => match self.protection.db.audit_store() {
                Some(s) => s.append_audit(record).await.map_err(|e| e.to_string()),
                None => Err("the slashing database does not carry the audit log".into()),
            },
        }
    }

    /// Require credentials (see [`crate::gate`]).
    pub fn with_gate(mut self, gate: crate::gate::Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    pub fn load_status(&self) -> LoadStatus {
        *self.status.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_load_status(&self, s: LoadStatus) {
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Ready to sign: key loading has finished (with or without failures).
    pub fn is_ready(&self) -> bool {
        matches!(self.load_status(), LoadStatus::Done { .. })
    }
}
