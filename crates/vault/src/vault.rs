//! The vault's states — uninitialized → sealed ⇄ unsealed — and the ceremonies: `init`, unseal by
//! quorum, `rekey` (new shares, same master key) and `rotate` (new master key, every record
//! re-encrypted).
//!
//! Crash safety of the ceremonies rests on one order: new share files are written and fsynced
//! *before* the single database transaction that makes them current. Killed before the commit,
//! the old shares still open the vault; killed after, the new files already exist. A share names
//! its share set and master-key generation, so a stale share is refused by name.

use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::master::{check_parameters, MasterKey};
use crate::record::{self, IdCheck, KeyKind};
use crate::share::SharePayload;
use crate::store::{NewRecord, StoredKey, VaultMeta, VaultStore};
use crate::VaultError;

/// Where the vault stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultState {
    /// No vault exists.
    Uninitialized,
    /// A vault exists and its master key is not in memory.
    Sealed,
    /// The master key is in memory and the keys are open.
    Unsealed,
}

impl VaultState {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultState::Uninitialized => "uninitialized",
            VaultState::Sealed => "sealed",
            VaultState::Unsealed => "unsealed",
        }
    }
}

/// Unseal progress as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealProgress {
    /// Where the vault stands.
    pub state: VaultState,
    /// Shares submitted towards the next unseal.
    pub submitted: u8,
    /// Shares needed.
    pub threshold: u8,
    /// The vault's identifier, when one exists.
    pub vault_id: Option<String>,
    /// The master-key generation.
    pub generation: u64,
}

enum Inner {
    Sealed { pending: Vec<SharePayload> },
    Unsealed { master: MasterKey, meta: VaultMeta },
}

/// A vault as a running server holds it.
pub struct Vault {
    store: VaultStore,
    inner: Mutex<Inner>,
    /// Mirrors `inner` being `Unsealed`, so the signing path reads it without taking the lock.
    unsealed: std::sync::atomic::AtomicBool,
}

/// A decrypted key, wiped on drop.
pub struct OpenedKey {
    /// The record as stored.
    pub stored: StoredKey,
    /// The opened secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// [`IdCheck::OnWrite`]: the key id was checked against this secret before the record was
    /// sealed (and the record's authentication says so). [`IdCheck::OnLoad`]: the loader must
    /// derive the key's id from the secret and compare.
    pub id_check: IdCheck,
}

/// A new key to store.
pub struct KeyToStore {
    /// BLS or secp256k1.
    pub kind: KeyKind,
    /// The key's identifier.
    pub key_id: String,
    /// The secret, sealed on the way in.
    pub secret: Zeroizing<Vec<u8>>,
    /// Where it came from.
    pub origin: String,
}

fn share_matches(meta: &VaultMeta, s: &SharePayload) -> Result<(), VaultError> {
    if s.vault_id != meta.vault_id {
        return Err(VaultError::ShareWrongVault);
    }
    if s.share_set != meta.share_set || s.generation != meta.generation {
        return Err(VaultError::ShareStale);
    }
    if s.threshold != meta.threshold || s.count != meta.share_count {
        return Err(VaultError::ShareMalformed(
            "quorum differs from the vault's".into(),
        ));
    }
    Ok(())
}

/// Recombine `shares` and check the result against the vault. Every share must belong to the
/// vault's current share set.
pub fn recover(meta: &VaultMeta, shares: &[SharePayload]) -> Result<MasterKey, VaultError> {
    for s in shares {
        share_matches(meta, s)?;
    }
    if shares.len() < meta.threshold as usize {
        return Err(VaultError::InvalidParameters(format!(
            "{} of {} shares needed",
            shares.len(),
            meta.threshold
        )));
    }
    let values: Vec<Zeroizing<Vec<u8>>> = shares.iter().map(|s| s.value.clone()).collect();
    let master = MasterKey::combine(&values)?;
    if !master.matches(&meta.verifier, &meta.vault_id, meta.generation) {
        return Err(VaultError::QuorumMismatch);
    }
    Ok(master)
}

fn payloads(master: &MasterKey, meta: &VaultMeta) -> Result<Vec<SharePayload>, VaultError> {
    Ok(master
        .split(meta.threshold, meta.share_count)?
        .into_iter()
        .map(|value| SharePayload {
            vault_id: meta.vault_id.clone(),
            share_set: meta.share_set.clone(),
            generation: meta.generation,
            threshold: meta.threshold,
            count: meta.share_count,
            value,
        })
        .collect())
}

/// `init`: a new master key split `threshold` of `count`. `persist_shares` must write the share
/// files durably; the vault is created only after it succeeds. The master key is dropped (wiped)
/// before this returns.
pub async fn init(
    store: &VaultStore,
    threshold: u8,
    count: u8,
    persist_shares: impl FnOnce(&[SharePayload]) -> Result<(), VaultError>,
) -> Result<VaultMeta, VaultError> {
    check_parameters(threshold, count)?;
    if store.meta().await?.is_some() {
        return Err(VaultError::AlreadyInitialized);
    }
    let master = MasterKey::generate();
    let vault_id = uuid::Uuid::new_v4().to_string();
    let meta = VaultMeta {
        verifier: master.verifier(&vault_id, 1).to_vec(),
        vault_id,
        share_set: uuid::Uuid::new_v4().to_string(),
        generation: 1,
        threshold,
        share_count: count,
        version: 1,
    };
    let shares = payloads(&master, &meta)?;
    persist_shares(&shares)?;
    store.initialize(&meta).await?;
    Ok(meta)
}

/// `rekey`: new shares (optionally a new quorum) for the same master key; the old share set stops
/// being accepted when the new one is committed.
pub async fn rekey(
    store: &VaultStore,
    shares: &[SharePayload],
    threshold: u8,
    count: u8,
    persist_shares: impl FnOnce(&[SharePayload]) -> Result<(), VaultError>,
) -> Result<VaultMeta, VaultError> {
    check_parameters(threshold, count)?;
    let meta = store.meta().await?.ok_or(VaultError::Uninitialized)?;
    let master = recover(&meta, shares)?;
    let new = VaultMeta {
        share_set: uuid::Uuid::new_v4().to_string(),
        threshold,
        share_count: count,
        ..meta.clone()
    };
    persist_shares(&payloads(&master, &new)?)?;
    store
        .replace_share_set(&meta.share_set, &new.share_set, threshold, count)
        .await?;
    Ok(new)
}

/// `rotate`: a new master key; every record is re-encrypted under it and the metadata replaced in
/// one transaction, after the new share files are durable.
pub async fn rotate(
    store: &VaultStore,
    shares: &[SharePayload],
    threshold: u8,
    count: u8,
    persist_shares: impl FnOnce(&[SharePayload]) -> Result<(), VaultError>,
) -> Result<VaultMeta, VaultError> {
    check_parameters(threshold, count)?;
    let meta = store.meta().await?.ok_or(VaultError::Uninitialized)?;
    let old = recover(&meta, shares)?;
    let new_master = MasterKey::generate();
    let generation = meta.generation + 1;
    let new = VaultMeta {
        vault_id: meta.vault_id.clone(),
        share_set: uuid::Uuid::new_v4().to_string(),
        generation,
        threshold,
        share_count: count,
        verifier: new_master.verifier(&meta.vault_id, generation).to_vec(),
        version: meta.version,
    };
    let old_key = old.dangerous_record_key();
    let new_key = new_master.dangerous_record_key();
    let mut records = Vec::new();
    for k in store.keys().await? {
        // The same secret under the same id: the record keeps its check label.
        let (secret, check) = record::open(&old_key, &meta.vault_id, k.kind, &k.key_id, &k.record)?;
        let sealed = record::seal(&new_key, &meta.vault_id, k.kind, &k.key_id, &secret, check)?;
        records.push((k.key_id, sealed));
    }
    persist_shares(&payloads(&new_master, &new)?)?;
    store.rotate(meta.generation, &new, &records).await?;
    Ok(new)
}

impl Vault {
    /// Wrap a store; the vault starts sealed (or uninitialized).
    pub fn new(store: VaultStore) -> Self {
        Vault {
            store,
            inner: Mutex::new(Inner::Sealed {
                pending: Vec::new(),
            }),
            unsealed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The storage under the vault.
    pub fn store(&self) -> &VaultStore {
        &self.store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The master key is in memory.
    pub fn is_unsealed(&self) -> bool {
        self.unsealed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The state and unseal progress.
    pub async fn status(&self) -> Result<UnsealProgress, VaultError> {
        let meta = self.store.meta().await?;
        let g = self.lock();
        Ok(match (&*g, meta) {
            (Inner::Unsealed { meta, .. }, _) => UnsealProgress {
                state: VaultState::Unsealed,
                submitted: meta.threshold,
                threshold: meta.threshold,
                vault_id: Some(meta.vault_id.clone()),
                generation: meta.generation,
            },
            (Inner::Sealed { .. }, None) => UnsealProgress {
                state: VaultState::Uninitialized,
                submitted: 0,
                threshold: 0,
                vault_id: None,
                generation: 0,
            },
            (Inner::Sealed { pending }, Some(m)) => UnsealProgress {
                state: VaultState::Sealed,
                submitted: pending.len() as u8,
                threshold: m.threshold,
                vault_id: Some(m.vault_id),
                generation: m.generation,
            },
        })
    }

    /// Submit one share. At the quorum the master key is recombined and checked; a mismatch
    /// discards every pending share. Returns the new progress.
    pub async fn submit_share(&self, share: SharePayload) -> Result<UnsealProgress, VaultError> {
        let meta = self.store.meta().await?.ok_or(VaultError::Uninitialized)?;
        {
            let mut g = self.lock();
            let pending = match &mut *g {
                Inner::Unsealed { .. } => return Err(VaultError::AlreadyUnsealed),
                Inner::Sealed { pending } => pending,
            };
            share_matches(&meta, &share)?;
            // Shares from before a rekey or rotate that happened meanwhile are dropped.
            pending.retain(|p| share_matches(&meta, p).is_ok());
            if pending.iter().any(|p| p.index() == share.index()) {
                return Err(VaultError::ShareDuplicate);
            }
            pending.push(share);
            if pending.len() >= meta.threshold as usize {
                let taken = std::mem::take(pending);
                let master = recover(&meta, &taken)?;
                *g = Inner::Unsealed {
                    master,
                    meta: meta.clone(),
                };
                self.unsealed
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
        self.status().await
    }

    /// Discard the shares submitted so far.
    pub fn reset(&self) {
        let mut g = self.lock();
        if let Inner::Sealed { pending } = &mut *g {
            pending.clear();
        }
    }

    /// Wipe the master key (and any pending shares) from memory.
    pub fn seal(&self) {
        let mut g = self.lock();
        self.unsealed
            .store(false, std::sync::atomic::Ordering::Release);
        *g = Inner::Sealed {
            pending: Vec::new(),
        };
    }

    /// The metadata the vault was unsealed with.
    pub fn unsealed_meta(&self) -> Result<VaultMeta, VaultError> {
        match &*self.lock() {
            Inner::Unsealed { meta, .. } => Ok(meta.clone()),
            Inner::Sealed { .. } => Err(VaultError::Sealed),
        }
    }

    fn dangerous_record_key(&self) -> Result<(Zeroizing<[u8; 32]>, VaultMeta), VaultError> {
        match &*self.lock() {
            Inner::Unsealed { master, meta } => Ok((master.dangerous_record_key(), meta.clone())),
            Inner::Sealed { .. } => Err(VaultError::Sealed),
        }
    }

    /// Decrypt every stored key (enabled or not). Any record that fails authentication fails the
    /// whole call: a tampered vault is not half-loaded.
    pub async fn open_all(&self) -> Result<Vec<OpenedKey>, VaultError> {
        let (key, meta) = self.dangerous_record_key()?;
        let stored = self.store.keys().await?;
        let mut out = Vec::with_capacity(stored.len());
        for s in stored {
            let (secret, id_check) =
                record::open(&key, &meta.vault_id, s.kind, &s.key_id, &s.record)?;
            out.push(OpenedKey {
                stored: s,
                secret,
                id_check,
            });
        }
        Ok(out)
    }

    /// Encrypt and store keys; per key, `true` if stored, `false` if the id already existed.
    /// A BLS key is stored only under its own public key (`0x` and lowercase hex, as
    /// `PublicKeyBytes::to_hex` writes it): the public key is derived from the secret here, a
    /// key id that differs refuses the whole call, and the record is sealed as checked
    /// ([`IdCheck::OnWrite`]), so loading it need not derive the public key again.
    pub async fn store_keys(&self, keys: &[KeyToStore]) -> Result<Vec<bool>, VaultError> {
        self.seal_and_store(keys, false).await
    }

    /// As [`Vault::store_keys`], but a record of the same id *and kind* is replaced (its
    /// enabled flag and creation time kept): a signing group's refreshed share replaces the old
    /// share of the same group key. `false` when the id is held by a record of another kind.
    pub async fn store_or_replace_keys(
        &self,
        keys: &[KeyToStore],
    ) -> Result<Vec<bool>, VaultError> {
        self.seal_and_store(keys, true).await
    }

    async fn seal_and_store(
        &self,
        keys: &[KeyToStore],
        replace: bool,
    ) -> Result<Vec<bool>, VaultError> {
        let (key, meta) = self.dangerous_record_key()?;
        let mut new = Vec::with_capacity(keys.len());
        for k in keys {
            let check = match k.kind {
                KeyKind::Bls => {
                    let kp =
                        signward_keys::BlsKeypair::from_secret_bytes(&k.secret).map_err(|_| {
                            VaultError::InvalidParameters("not a BLS secret key".into())
                        })?;
                    if kp.public_key().to_hex() != k.key_id {
                        return Err(VaultError::InvalidParameters(
                            "a BLS key's id must be its own public key".into(),
                        ));
                    }
                    IdCheck::OnWrite
                }
                // The vault does not derive EVM addresses, nor check a share against its
                // group's commitments: the loader checks them.
                KeyKind::Secp256k1 | KeyKind::BlsShare => IdCheck::OnLoad,
            };
            new.push(NewRecord {
                key_id: k.key_id.clone(),
                kind: k.kind,
                record: record::seal(&key, &meta.vault_id, k.kind, &k.key_id, &k.secret, check)?,
                origin: k.origin.clone(),
            });
        }
        self.store.insert_keys(meta.generation, &new, replace).await
    }
}
