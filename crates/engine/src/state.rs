//! Shared server state: the loaded keys and the load status behind readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use signward_core::bytes::PublicKeyBytes;
use signward_core::network::NetworkConfig;
use signward_keys::BlsKeypair;
use signward_slashing::clock::ChainClock;
use signward_slashing::{Refusal, SlashingDb};

/// Where a loaded key (BLS or EVM) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Keystore, key-config or V3 keyfiles (read-only to the APIs).
    File,
    /// The sealed vault (managed by the admin and Keymanager APIs; wiped on seal).
    Vault,
    /// `--dev-evm-key`: a raw EVM key from the environment, development only.
    Dev,
}

impl KeyOrigin {
    /// The name the key listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::File => "file",
            KeyOrigin::Vault => "vault",
            KeyOrigin::Dev => "dev",
        }
    }
}

/// A key the registry can hold: it names itself by its public identifier.
pub trait Keyed: Send + Sync + 'static {
    /// The public identifier (a BLS public key, an EVM address).
    type Id: Copy + Eq + std::hash::Hash + Send + Sync;
    /// This key's identifier.
    fn id(&self) -> Self::Id;
}

impl Keyed for BlsKeypair {
    type Id = PublicKeyBytes;
    fn id(&self) -> PublicKeyBytes {
        *self.public_key()
    }
}

impl Keyed for signward_evm::EvmKey {
    type Id = alloy_primitives::Address;
    fn id(&self) -> alloy_primitives::Address {
        self.address()
    }
}

/// A loaded key. Signing holds a [`KeyLease`] on it from the key lookup until the signature is
/// made; retiring the key waits for every lease, and no lease is granted after it.
pub struct KeyEntry<K> {
    /// The key.
    pub key: K,
    /// Where it came from.
    pub origin: KeyOrigin,
    /// The EIP-2334 path of the keystore the key came from, when it declared a valid one.
    pub derivation_path: Option<String>,
    retired: Arc<tokio::sync::RwLock<bool>>,
}

/// Permission to sign with a key, held for the whole request.
pub struct KeyLease<K> {
    entry: Arc<KeyEntry<K>>,
    _guard: tokio::sync::OwnedRwLockReadGuard<bool>,
}

impl<K> KeyLease<K> {
    /// The leased key.
    pub fn key(&self) -> &K {
        &self.entry.key
    }

    /// The key, for work off the async runtime (the lease must outlive that work).
    pub fn entry(&self) -> Arc<KeyEntry<K>> {
        self.entry.clone()
    }
}

/// The one key registry: the keys the engine can sign with, in load order, each with its
/// origin. BLS keys ([`KeyRegistry`]) and EVM keys (`EvmState::keys`) are two instances of it,
/// so both kinds get the same leases, the same retirement and the same origins.
pub struct Registry<K: Keyed> {
    inner: RwLock<Inner<K>>,
}

/// The BLS keys.
pub type KeyRegistry = Registry<BlsKeypair>;

impl<K: Keyed> Default for Registry<K> {
    fn default() -> Self {
        Registry {
            inner: RwLock::new(Inner {
                order: Vec::new(),
                map: HashMap::new(),
            }),
        }
    }
}

struct Inner<K: Keyed> {
    order: Vec<K::Id>,
    map: HashMap<K::Id, Arc<KeyEntry<K>>>,
}

impl<K: Keyed> Registry<K> {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Add keys loaded from files; see [`Registry::insert_all_from`].
    pub fn insert_all(&self, keys: impl IntoIterator<Item = K>) -> usize {
        self.insert_all_from(KeyOrigin::File, keys)
    }

    /// Add keys; an identifier already present is kept as it was. Returns how many were added.
    pub fn insert_all_from(&self, origin: KeyOrigin, keys: impl IntoIterator<Item = K>) -> usize {
        self.insert_with_paths(origin, keys.into_iter().map(|k| (k, None)))
    }

    /// Add keys with their keystores' derivation paths; an identifier already present is kept
    /// as it was. Returns how many were added.
    pub fn insert_with_paths(
        &self,
        origin: KeyOrigin,
        keys: impl IntoIterator<Item = (K, Option<String>)>,
    ) -> usize {
        let mut g = self.write();
        let mut added = 0;
        for (k, derivation_path) in keys {
            let id = k.id();
            if let std::collections::hash_map::Entry::Vacant(e) = g.map.entry(id) {
                e.insert(Arc::new(KeyEntry {
                    key: k,
                    origin,
                    derivation_path,
                    retired: Arc::default(),
                }));
                g.order.push(id);
                added += 1;
            }
        }
        added
    }

    /// Remove the keys in `ids` (dropping the registry's reference; the secret is wiped when
    /// the last in-flight signer lets go). Returns how many were present.
    pub fn remove_all(&self, ids: &std::collections::HashSet<K::Id>) -> usize {
        self.take(ids).len()
    }

    fn take(&self, ids: &std::collections::HashSet<K::Id>) -> Vec<Arc<KeyEntry<K>>> {
        let mut g = self.write();
        let taken: Vec<Arc<KeyEntry<K>>> = ids.iter().filter_map(|id| g.map.remove(id)).collect();
        if !taken.is_empty() {
            g.order.retain(|id| !ids.contains(id));
        }
        taken
    }

    /// Remove the keys in `ids` and wait until no request holds a lease on any of them: when
    /// this returns, this process signs nothing more with them (a request that looked a key up
    /// before it was removed is refused when it asks for its lease). Returns how many were
    /// present.
    pub async fn retire(&self, ids: &std::collections::HashSet<K::Id>) -> usize {
        let taken = self.take(ids);
        for e in &taken {
            *e.retired.write().await = true;
        }
        taken.len()
    }

    /// Remove every key of `origin`. Returns how many.
    pub fn remove_origin(&self, origin: KeyOrigin) -> usize {
        let mut g = self.write();
        let before = g.map.len();
        g.map.retain(|_, e| e.origin != origin);
        let Inner { order, map } = &mut *g;
        order.retain(|id| map.contains_key(id));
        before - map.len()
    }

    /// A lease on `id`, or `None` when no such key is loaded (or it is being retired).
    pub async fn lease(&self, id: &K::Id) -> Option<KeyLease<K>> {
        let entry = self.read().map.get(id).cloned()?;
        let guard = entry.retired.clone().read_owned().await;
        if *guard {
            return None;
        }
        Some(KeyLease {
            entry,
            _guard: guard,
        })
    }

    /// A key with identifier `id` is loaded.
    pub fn contains(&self, id: &K::Id) -> bool {
        self.read().map.contains_key(id)
    }

    /// Where the key with identifier `id` came from.
    pub fn origin(&self, id: &K::Id) -> Option<KeyOrigin> {
        self.read().map.get(id).map(|e| e.origin)
    }

    /// Identifiers and origins, in load order.
    pub fn entries(&self) -> Vec<(K::Id, KeyOrigin)> {
        let g = self.read();
        g.order
            .iter()
            .filter_map(|id| g.map.get(id).map(|e| (*id, e.origin)))
            .collect()
    }

    /// Identifiers, origins and derivation paths, in load order.
    pub fn entries_with_paths(&self) -> Vec<(K::Id, KeyOrigin, Option<String>)> {
        let g = self.read();
        g.order
            .iter()
            .filter_map(|id| {
                g.map
                    .get(id)
                    .map(|e| (*id, e.origin, e.derivation_path.clone()))
            })
            .collect()
    }

    /// Identifiers, in load order.
    pub fn public_keys(&self) -> Vec<K::Id> {
        self.read().order.clone()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.read().order.len()
    }

    /// No key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where key loading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    /// Loading `total` configured keys.
    Loading {
        /// Keys configured.
        total: usize,
    },
    /// Every configured key has loaded or failed.
    Done {
        /// Keys loaded.
        loaded: usize,
        /// Keys that failed to load.
        failed: usize,
    },
}

/// Why the chain-clock window is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOff {
    /// `--slashing-protection-disable-clock-check`.
    DisabledByFlag,
    /// No source gave the network's genesis time (a custom network without `--genesis-time`,
    /// `genesis.ssz` or a beacon `genesis.json`).
    GenesisTimeUnknown,
}

impl ClockOff {
    /// The stable reason code shown by `/healthcheck`.
    pub fn code(&self) -> &'static str {
        match self {
            ClockOff::DisabledByFlag => "disabled_by_flag",
            ClockOff::GenesisTimeUnknown => "genesis_time_unknown",
        }
    }
}

/// What the chain-clock window is doing and why, as `/healthcheck` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockStatus {
    /// `None` when the window is on.
    pub off: Option<ClockOff>,
    /// A sentence for the operator: why, and how to fix it.
    pub detail: String,
    /// The network's genesis time, when known (even when the check is disabled by flag).
    pub genesis_time: Option<u64>,
    /// Where it came from: `flag`, `genesis.ssz`, `genesis.json` or `built-in`.
    pub genesis_time_source: Option<&'static str>,
    /// A doubt about a genesis time in force (before 2020, before MIN_GENESIS_TIME).
    pub warning: Option<String>,
}

impl ClockStatus {
    /// The plain status for `clock`, without knowing where genesis time came from.
    pub fn of(clock: Option<&ChainClock>) -> Self {
        match clock {
            Some(c) => ClockStatus {
                off: None,
                detail: "on".into(),
                genesis_time: Some(c.genesis_time),
                genesis_time_source: None,
                warning: None,
            },
            None => ClockStatus {
                off: Some(ClockOff::GenesisTimeUnknown),
                detail: "genesis time unknown".into(),
                genesis_time: None,
                genesis_time_source: None,
                warning: None,
            },
        }
    }
}

/// Slashing protection as the server uses it: the database, the chain clock (when the genesis
/// time is known and the check is enabled), why the clock is off when it is, and a counter per
/// refusal reason.
pub struct Protection {
    /// The slashing protection database.
    pub db: SlashingDb,
    /// The chain clock, when the window is on.
    pub clock: Option<ChainClock>,
    /// Why the clock is what it is, as `/healthcheck` reports it.
    pub clock_status: ClockStatus,
    refusals: [AtomicU64; Refusal::ALL.len()],
}

impl Protection {
    /// Protection over `db` with the window of `clock`, counters at zero.
    pub fn new(db: SlashingDb, clock: Option<ChainClock>) -> Self {
        Protection {
            db,
            clock_status: ClockStatus::of(clock.as_ref()),
            clock,
            refusals: Default::default(),
        }
    }

    /// Say why the clock is what it is (`serve` knows the source of genesis time).
    pub fn with_clock_status(mut self, status: ClockStatus) -> Self {
        self.clock_status = status;
        self
    }

    /// Count one refusal for reason `r`.
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
    /// The network this engine signs for.
    pub(crate) network: NetworkConfig,
    /// The BLS keys it can sign with.
    pub(crate) keys: KeyRegistry,
    /// Slashing protection.
    pub(crate) protection: Protection,
    /// Authentication and authorisation; `None` only with auth disabled on loopback.
    pub(crate) gate: Option<crate::access::Gate>,
    /// The audit log; every signing decision is recorded before an answer leaves.
    pub(crate) audit: Option<Journal>,
    /// EVM keys, policy and spend ledger.
    pub(crate) evm: crate::evm::EvmState,
    /// The halt switch (persisted under the data directory).
    pub(crate) halt: crate::controls::Halt,
    /// Keys that must never be used.
    pub(crate) canaries: crate::controls::Canaries,
    /// Counters and latency histograms.
    pub(crate) metrics: crate::metrics::Metrics,
    audit_failing: std::sync::atomic::AtomicBool,
    /// The sealed key vault, when one is configured.
    pub(crate) vault: Option<crate::vault::VaultRuntime>,
    /// Where deleted keys' slashing history is kept (`<data-dir>/deleted-keys`).
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// Whether the process memory (and so every decrypted key) is locked against swapping.
    pub(crate) memory: signward_os::MemoryLock,
    /// Reloads key files, certificates and policy (SIGHUP and `POST /reload`).
    pub(crate) reloader: Option<crate::reload::Reloader>,
    /// This peer's signing group (threshold keys), when it is in one.
    pub(crate) groups: Option<crate::group::Groups>,
    status: RwLock<LoadStatus>,
}

impl AppState {
    /// The network this engine signs for.
    pub fn network(&self) -> &NetworkConfig {
        &self.network
    }

    /// The BLS keys.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// Slashing protection.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// The credential store, limiter and denial tally; `None` with authentication off.
    pub fn gate(&self) -> Option<&crate::access::Gate> {
        self.gate.as_ref()
    }

    /// Where audit records go; `None` without an audit log.
    pub fn audit(&self) -> Option<&Journal> {
        self.audit.as_ref()
    }

    /// EVM keys, policy and spend ledger.
    pub fn evm(&self) -> &crate::evm::EvmState {
        &self.evm
    }

    /// The halt switch.
    pub fn halt(&self) -> &crate::controls::Halt {
        &self.halt
    }

    /// Keys that must never be used.
    pub fn canaries(&self) -> &crate::controls::Canaries {
        &self.canaries
    }

    /// Counters and latency histograms.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The vault runtime, when a vault database is configured.
    pub fn vault(&self) -> Option<&crate::vault::VaultRuntime> {
        self.vault.as_ref()
    }

    /// The data directory, when the engine has one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// Whether process memory is locked against swapping.
    pub fn memory(&self) -> &signward_os::MemoryLock {
        &self.memory
    }

    /// The reloader, when key sources were configured.
    pub fn reloader(&self) -> Option<&crate::reload::Reloader> {
        self.reloader.as_ref()
    }

    /// Use `evm` for EVM keys, policy and ledger.
    pub fn with_evm(mut self, evm: crate::evm::EvmState) -> Self {
        self.evm = evm;
        self
    }

    /// An engine for `network` over `protection`, with no keys, no audit log and no gate.
    pub fn new(network: NetworkConfig, protection: Protection) -> Self {
        AppState {
            network,
            keys: KeyRegistry::default(),
            protection,
            gate: None,
            audit: None,
            evm: crate::evm::EvmState::default(),
            halt: crate::controls::Halt::default(),
            canaries: crate::controls::Canaries::default(),
            metrics: crate::metrics::Metrics::default(),
            audit_failing: std::sync::atomic::AtomicBool::new(false),
            vault: None,
            data_dir: None,
            memory: signward_os::MemoryLock::Disabled,
            reloader: None,
            groups: None,
            status: RwLock::new(LoadStatus::Loading { total: 0 }),
        }
    }

    /// Record every decision in its own log file (see [`signward_audit`]).
    pub fn with_audit(mut self, audit: signward_audit::AuditLog) -> Self {
        self.audit = Some(Journal::Own(audit));
        self
    }

    /// Record every decision in the SQLite slashing database, in the same transactions as the
    /// checks. Ignored unless that database was opened with the audit journal
    /// (`signward_engine::audit_journal::AuditInSlashingDb`).
    pub fn with_audit_in_slashing_db(mut self) -> Self {
        if self.protection.db.journal_store().is_some() {
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
        let r = match &self.audit {
            None => Ok(()),
            Some(Journal::Own(log)) => log.append(record).await.map_err(|e| e.to_string()),
            Some(Journal::InSlashingDb) => match self.protection.db.journal_store() {
                Some(s) => s
                    .append_journal(Box::new(record))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("the slashing database does not carry the audit log".into()),
            },
        };
        self.note_audit(r.is_ok());
        r
    }

    /// Remember whether the latest audit write succeeded (for the health check).
    pub fn note_audit(&self, ok: bool) {
        self.audit_failing.store(!ok, Ordering::Relaxed);
    }

    /// The latest audit write failed.
    pub fn audit_failing(&self) -> bool {
        self.audit_failing.load(Ordering::Relaxed)
    }

    /// Keep keys in `vault` (sealed until a quorum of shares arrives).
    pub fn with_vault(mut self, vault: crate::vault::VaultRuntime) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Signing must wait: a vault exists and is sealed.
    pub fn is_sealed(&self) -> bool {
        self.vault.as_ref().is_some_and(|v| v.blocks_signing())
    }

    /// Sign with shares of group keys, in this signing group (see [`crate::group`]).
    pub fn with_groups(mut self, groups: crate::group::Groups) -> Self {
        self.groups = Some(groups);
        self
    }

    /// This peer's signing group, when it is in one.
    pub fn groups(&self) -> Option<&crate::group::Groups> {
        self.groups.as_ref()
    }

    /// Reload with `hook` on SIGHUP and `POST /reload` (see [`crate::reload`]).
    pub fn with_reloader(mut self, hook: crate::reload::ReloadHook) -> Self {
        self.reloader = Some(crate::reload::Reloader::new(hook));
        self
    }

    /// Require credentials (see [`crate::access`]).
    pub fn with_gate(mut self, gate: crate::access::Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Where key loading stands.
    pub fn load_status(&self) -> LoadStatus {
        *self.status.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Set where key loading stands.
    pub fn set_load_status(&self, s: LoadStatus) {
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Ready to sign: key loading has finished (with or without failures).
    pub fn is_ready(&self) -> bool {
        matches!(self.load_status(), LoadStatus::Done { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn retiring_an_evm_key_waits_for_its_lease_and_grants_none_after() {
        let reg: Registry<signward_evm::EvmKey> = Registry::default();
        let k = signward_evm::EvmKey::generate();
        let a = k.address();
        assert_eq!(reg.insert_all_from(KeyOrigin::Vault, [k]), 1);
        let lease = reg.lease(&a).await.unwrap();
        let ids: HashSet<_> = [a].into();
        let mut retire = Box::pin(reg.retire(&ids));
        // Held: the retirement cannot finish.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut retire)
                .await
                .is_err()
        );
        drop(lease);
        assert_eq!(retire.await, 1);
        assert!(reg.lease(&a).await.is_none());
        assert!(reg.is_empty());
    }

    #[test]
    fn one_origin_type_for_both_kinds() {
        let bls = KeyRegistry::default();
        let evm: Registry<signward_evm::EvmKey> = Registry::default();
        bls.insert_all([BlsKeypair::generate()]);
        evm.insert_all_from(KeyOrigin::Dev, [signward_evm::EvmKey::generate()]);
        assert_eq!(bls.entries()[0].1, KeyOrigin::File);
        assert_eq!(evm.entries()[0].1.as_str(), "dev");
        assert_eq!(evm.remove_origin(KeyOrigin::Dev), 1);
    }
}
