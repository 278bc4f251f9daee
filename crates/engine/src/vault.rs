//! The vault inside a running server: unseal by shares, seal, keep the key registry in step with
//! the vault's records (also when another instance sharing PostgreSQL changes them), and audit
//! every vault event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use signward_core::bytes::PublicKeyBytes;
use signward_keys::BlsKeypair;
use signward_vault::record::IdCheck;
use signward_vault::{KeyKind, SharePayload, UnsealProgress, Vault, VaultError, VaultState};

use crate::state::{AppState, KeyOrigin};

/// How often instances look for vault changes made elsewhere.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A vault and what the server knows about it.
pub struct VaultRuntime {
    /// The vault.
    pub vault: Vault,
    initialized: AtomicBool,
    seen_version: AtomicI64,
    generation: AtomicU64,
    /// Serialises registry reconciliation (unseal, poll, imports, deletes).
    pub(crate) sync: tokio::sync::Mutex<()>,
}

impl VaultRuntime {
    /// Runtime state of `vault`, initialized when it holds a master key record.
    pub async fn new(vault: Vault) -> Result<Self, VaultError> {
        let meta = vault.store().meta().await?;
        Ok(VaultRuntime {
            initialized: AtomicBool::new(meta.is_some()),
            seen_version: AtomicI64::new(meta.as_ref().map(|m| m.version).unwrap_or(0)),
            generation: AtomicU64::new(meta.map(|m| m.generation).unwrap_or(0)),
            vault,
            sync: tokio::sync::Mutex::new(()),
        })
    }

    /// A vault exists and is sealed: signing must wait.
    pub fn blocks_signing(&self) -> bool {
        self.initialized.load(Ordering::Acquire) && !self.vault.is_unsealed()
    }

    /// The vault holds a master key record (it may be sealed).
    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }

    /// Where the vault stands, as this process knows it (no database read).
    pub fn state(&self) -> VaultState {
        if !self.is_initialized() {
            VaultState::Uninitialized
        } else if self.vault.is_unsealed() {
            VaultState::Unsealed
        } else {
            VaultState::Sealed
        }
    }
}

fn runtime(state: &AppState) -> Result<&VaultRuntime, VaultError> {
    state.vault.as_ref().ok_or(VaultError::Uninitialized)
}

/// Bring the registry's vault keys in line with the vault's enabled records: load what is new,
/// drop what was deleted or disabled. Returns (added, removed).
pub async fn reconcile(state: &Arc<AppState>) -> Result<(usize, usize), VaultError> {
    let rt = runtime(state)?;
    let _g = rt.sync.lock().await;
    reconcile_locked(state, rt).await
}

pub(crate) async fn reconcile_locked(
    state: &Arc<AppState>,
    rt: &VaultRuntime,
) -> Result<(usize, usize), VaultError> {
    let opened = rt.vault.open_all().await?;
    let loaded: HashSet<PublicKeyBytes> = state
        .keys
        .entries()
        .into_iter()
        .filter(|(_, o)| *o == KeyOrigin::Vault)
        .map(|(pk, _)| pk)
        .collect();
    let mut wanted = HashSet::new();
    let mut to_build = Vec::new();
    let loaded_evm: HashSet<alloy_primitives::Address> = state
        .evm
        .entries()
        .into_iter()
        .filter(|(_, o)| *o == crate::state::KeyOrigin::Vault)
        .map(|(a, _)| a)
        .collect();
    let mut wanted_evm = HashSet::new();
    let mut new_evm = Vec::new();
    let mut shares = Vec::new();
    for k in opened {
        if !k.stored.enabled {
            continue;
        }
        if k.stored.kind == KeyKind::BlsShare {
            if let Some(share) = group_share(state, &k)? {
                shares.push(share);
            }
            continue;
        }
        if k.stored.kind == KeyKind::Secp256k1 {
            let key = signward_evm::EvmKey::from_secret_bytes(&k.secret)
                .map_err(|_| VaultError::RecordTampered(k.stored.key_id.clone()))?;
            let id = format!("0x{}", hex::encode(key.address().as_slice()));
            if id != k.stored.key_id.to_ascii_lowercase() {
                return Err(VaultError::RecordTampered(k.stored.key_id.clone()));
            }
            wanted_evm.insert(key.address());
            if !loaded_evm.contains(&key.address()) {
                new_evm.push(key);
            }
            continue;
        }
        let pk: PublicKeyBytes = k
            .stored
            .key_id
            .parse()
            .map_err(|_| VaultError::RecordTampered(k.stored.key_id.clone()))?;
        wanted.insert(pk);
        if !loaded.contains(&pk) {
            to_build.push((pk, k));
        }
    }
    let built = tokio::task::spawn_blocking(move || {
        to_build
            .into_par_iter()
            .map(|(pk, k)| {
                let tampered = || VaultError::RecordTampered(k.stored.key_id.clone());
                match k.id_check {
                    // Sealed after the vault derived this secret's public key and found it equal
                    // to the key id, which the record's authentication binds (SECURITY.md,
                    // boundary 3a): no scalar multiplication again.
                    IdCheck::OnWrite => {
                        BlsKeypair::from_secret_bytes_with_checked_public(&k.secret, pk)
                            .map_err(|_| tampered())
                    }
                    // Sealed without that check: derive the public key and compare.
                    IdCheck::OnLoad => {
                        let kp =
                            BlsKeypair::from_secret_bytes(&k.secret).map_err(|_| tampered())?;
                        if *kp.public_key() != pk {
                            return Err(tampered());
                        }
                        Ok(kp)
                    }
                }
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| VaultError::Internal(format!("key build task: {e}")))??;
    let added = state.keys.insert_all_from(KeyOrigin::Vault, built)
        + state
            .evm
            .keys
            .insert_all_from(crate::state::KeyOrigin::Vault, new_evm);
    let gone: HashSet<PublicKeyBytes> = loaded.difference(&wanted).copied().collect();
    let gone_evm: HashSet<alloy_primitives::Address> =
        loaded_evm.difference(&wanted_evm).copied().collect();
    let removed = state.keys.remove_all(&gone) + state.evm.keys.remove_all(&gone_evm);
    let (shares_added, shares_removed) = match &state.groups {
        Some(groups) => groups.set_vault_shares(shares),
        None => (0, 0),
    };
    Ok((added + shares_added, removed + shares_removed))
}

/// A vault record of this peer's share of a group key, checked: the document authenticates
/// (the record did), reads and matches its own commitments, and its group key is the record's
/// id; otherwise the record is treated as tampered and nothing of the vault is loaded. A share
/// this peer's group cannot use (no group configured, another peer's index, a threshold the
/// group's size does not allow) is left in the vault, logged and not loaded.
fn group_share(
    state: &AppState,
    k: &signward_vault::OpenedKey,
) -> Result<Option<crate::group::GroupShare>, VaultError> {
    let tampered = || VaultError::RecordTampered(k.stored.key_id.clone());
    let share = crate::group::GroupShare::from_document(&k.secret).map_err(|_| tampered())?;
    if share.group_key().to_hex() != k.stored.key_id {
        return Err(tampered());
    }
    let Some(groups) = &state.groups else {
        tracing::error!(group_key = %k.stored.key_id, "the vault holds a signing-group share but this server runs with no --group-config; it is not loaded");
        return Ok(None);
    };
    match groups.check(&share) {
        Ok(_) => Ok(Some(share)),
        Err(e) => {
            tracing::error!(error = %e, "a signing-group share in the vault does not fit this peer's group; it is not loaded");
            Ok(None)
        }
    }
}

async fn audit_vault(
    state: &AppState,
    caller: &str,
    decision: signward_audit::Outcome,
    reason: Option<String>,
) {
    let record = signward_audit::Record {
        event: signward_audit::Event::Vault.into(),
        caller: Some(caller.to_string()),
        decision: decision.into(),
        reason,
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a vault event failed");
    }
}

/// Submit one share; at the quorum the vault unseals and its keys load.
pub async fn submit_share(
    state: &Arc<AppState>,
    caller: &str,
    share: SharePayload,
) -> Result<UnsealProgress, VaultError> {
    let rt = runtime(state)?;
    let index = share.index();
    let result = rt.vault.submit_share(share).await;
    match &result {
        Ok(p) if p.state == signward_vault::VaultState::Unsealed => {
            let started = std::time::Instant::now();
            let loaded = reconcile(state).await;
            match loaded {
                Ok((added, _)) => {
                    tracing::info!(
                        keys = added,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "vault unsealed; keys loaded"
                    );
                    audit_vault(
                        state,
                        caller,
                        signward_audit::Outcome::Unsealed,
                        Some(format!("share {index}; {added} keys loaded")),
                    )
                    .await;
                }
                Err(e) => {
                    // A vault that cannot be read in full is not used at all.
                    tracing::error!(error = %e, "vault unsealed but its keys failed to load; sealing again");
                    seal(state, caller, "load_failed").await;
                    return Err(e);
                }
            }
        }
        Ok(p) => {
            tracing::info!(
                submitted = p.submitted,
                threshold = p.threshold,
                "unseal share accepted"
            );
            audit_vault(
                state,
                caller,
                signward_audit::Outcome::ShareAccepted,
                Some(format!("share {index}; {} of {}", p.submitted, p.threshold)),
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "unseal share refused");
            audit_vault(
                state,
                caller,
                signward_audit::Outcome::ShareRefused,
                Some(e.code().to_string()),
            )
            .await;
        }
    }
    result
}

/// Discard submitted shares.
pub async fn reset(state: &Arc<AppState>, caller: &str) -> Result<(), VaultError> {
    runtime(state)?.vault.reset();
    audit_vault(state, caller, signward_audit::Outcome::UnsealReset, None).await;
    Ok(())
}

/// Wipe the master key and every vault key from memory at once.
pub async fn seal(state: &Arc<AppState>, caller: &str, why: &str) {
    if let Some(rt) = &state.vault {
        rt.vault.seal();
        let n = state.keys.remove_origin(KeyOrigin::Vault)
            + state.evm.keys.remove_origin(crate::state::KeyOrigin::Vault)
            + state
                .groups
                .as_ref()
                .map_or(0, |g| g.remove_origin(KeyOrigin::Vault));
        tracing::warn!(keys_wiped = n, reason = why, "vault sealed");
        audit_vault(
            state,
            caller,
            signward_audit::Outcome::Sealed,
            Some(why.to_string()),
        )
        .await;
    }
}

/// Watch the vault for changes made by other processes or instances (imports, deletes,
/// enable/disable, `init`, `rotate`) and follow them.
pub fn spawn_poll(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(rt) = &state.vault else { return };
            let meta = match rt.vault.store().meta().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "vault poll failed");
                    continue;
                }
            };
            let Some(meta) = meta else { continue };
            if !rt.initialized.swap(true, Ordering::AcqRel) {
                tracing::warn!("a vault was initialized; signing is refused until it is unsealed");
            }
            if meta.version == rt.seen_version.swap(meta.version, Ordering::AcqRel) {
                continue;
            }
            rt.generation.store(meta.generation, Ordering::Release);
            if let Ok(mine) = rt.vault.unsealed_meta() {
                if mine.generation != meta.generation {
                    // Records are now encrypted under a master key this instance does not hold;
                    // it can no longer follow deletions, so it stops signing with vault keys.
                    seal(&state, "-", "rotated_elsewhere").await;
                    continue;
                }
            }
            if rt.vault.is_unsealed() {
                match reconcile(&state).await {
                    Ok((0, 0)) => {}
                    Ok((added, removed)) => tracing::info!(
                        added,
                        removed,
                        "vault keys changed elsewhere; registry updated"
                    ),
                    Err(e) => tracing::error!(error = %e, "vault reconciliation failed"),
                }
            }
        }
    });
}
