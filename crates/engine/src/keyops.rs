//! Key management inside the boundary: import EIP-2335 keystores into the vault, generate keys,
//! enable/disable, and delete with the slashing history exported first. Shared by the admin API
//! (`signward keys …`) and the Keymanager API.

use std::collections::{HashMap, HashSet};

use signward_audit::Outcome as AuditOutcome;
use std::sync::Arc;

use rayon::prelude::*;
use secrecy::SecretString;
use signward_core::bytes::PublicKeyBytes;
use signward_keys::keystore::{KdfLimits, Keystore};
use signward_keys::BlsKeypair;
use signward_slashing::SlashingStore;
use signward_vault::vault::KeyToStore;
use signward_vault::KeyKind;
use zeroize::Zeroizing;

use crate::error::Rejection;
use crate::state::{AppState, KeyOrigin};
use crate::vault::VaultRuntime;

/// Who asks for a key operation: the name recorded in the audit log, and the credential
/// (`None` only with authentication off). Keys the authorizer does not grant it are never
/// touched, listed or imported for that caller.
#[derive(Clone, Copy)]
pub struct Actor<'a> {
    /// The name recorded in the audit log.
    pub name: &'a str,
    /// The credential.
    pub caller: Option<&'a signward_auth::store::Caller>,
}

impl Actor<'_> {
    /// Refuse an actor without a credential while authentication is on.
    fn admitted(&self, state: &AppState) -> Result<(), Rejection> {
        crate::access::admitted(state, self.caller)
            .map(|_| ())
            .map_err(Rejection::Forbidden)
    }

    /// May this caller touch `key`? (Asked of the authorizer.)
    pub fn may(&self, key: signward_auth::KeyId<'_>) -> bool {
        signward_auth::authorize(self.caller, signward_auth::Action::UseKey(key)).is_ok()
    }
}

/// What a delete does to asked-for keys this server does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsentKeys {
    /// Keymanager semantics: one with history is disabled too and its history returned
    /// (`not_active`), so that history stays complete.
    Disable,
    /// Leave them alone (the admin delete of one key answers 404).
    Leave,
}

/// What became of one key in an import or delete (the Keymanager API's status names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Imported (stored and loaded).
    Imported,
    /// Already held; nothing changed.
    Duplicate,
    /// Deleted; its history is in the answer.
    Deleted,
    /// Not held here, but its history is in the answer (and it is now disabled).
    NotActive,
    /// Not held here and no history.
    NotFound,
    /// Not done, for this reason.
    Error(KeyFault),
}

/// Why a key was not imported or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFault {
    /// The credential is not granted this key.
    NotGranted,
    /// The key was loaded from files: the APIs cannot change it.
    ReadOnly,
    /// The keystore could not be decrypted or read.
    Undecryptable,
}

impl KeyStatus {
    /// The Keymanager API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Imported => "imported",
            KeyStatus::Duplicate => "duplicate",
            KeyStatus::Deleted => "deleted",
            KeyStatus::NotActive => "not_active",
            KeyStatus::NotFound => "not_found",
            KeyStatus::Error(_) => "error",
        }
    }
}

/// Per-key outcome of an import or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The BLS key the outcome is about.
    pub pubkey: Option<PublicKeyBytes>,
    /// For an EVM key (V3 keyfile import).
    pub address: Option<alloy_primitives::Address>,
    /// What became of it.
    pub status: KeyStatus,
    /// A fixed sentence for the client (never built from secret data).
    pub message: String,
}

fn unsealed(state: &AppState) -> Result<&VaultRuntime, Rejection> {
    let rt = state
        .vault
        .as_ref()
        .filter(|rt| rt.is_initialized())
        .ok_or(Rejection::Vault("vault_uninitialized"))?;
    if !rt.vault.is_unsealed() {
        return Err(Rejection::Sealed);
    }
    Ok(rt)
}

async fn audit_key(
    state: &AppState,
    caller: &str,
    key: &str,
    decision: AuditOutcome,
    reason: Option<String>,
) -> Result<(), Rejection> {
    let record = signward_audit::Record {
        event: signward_audit::Event::Key.into(),
        caller: Some(caller.to_string()),
        key: Some(key.to_string()),
        decision: decision.into(),
        reason,
        ..Default::default()
    };
    state.journal(record).await.map_err(|e| {
        tracing::error!(error = %e, "audit write for a key event failed");
        Rejection::AuditUnavailable
    })
}

/// The vault key id of an EVM address: lowercase `0x` hex.
pub fn evm_key_id(a: &alloy_primitives::Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

/// A key about to enter the vault, of either kind.
enum NewKey {
    Bls(BlsKeypair),
    Evm(signward_evm::EvmKey),
}

impl NewKey {
    fn kind(&self) -> KeyKind {
        match self {
            NewKey::Bls(_) => KeyKind::Bls,
            NewKey::Evm(_) => KeyKind::Secp256k1,
        }
    }

    /// The vault key id: BLS public key or EVM address, as `0x` hex.
    fn id(&self) -> String {
        match self {
            NewKey::Bls(k) => k.public_key().to_hex(),
            NewKey::Evm(k) => evm_key_id(&k.address()),
        }
    }

    fn secret(&self) -> Zeroizing<Vec<u8>> {
        match self {
            NewKey::Bls(k) => Zeroizing::new(k.dangerous_secret_bytes().to_vec()),
            NewKey::Evm(k) => Zeroizing::new(k.dangerous_secret_bytes().to_vec()),
        }
    }

    fn granted_to(&self, who: &Actor<'_>) -> bool {
        match self {
            NewKey::Bls(k) => who.may(signward_auth::KeyId::Bls(k.public_key())),
            NewKey::Evm(k) => who.may(signward_auth::KeyId::Evm(&k.address())),
        }
    }

    /// Already loaded on this server (from any source).
    fn is_loaded(&self, state: &AppState) -> bool {
        match self {
            NewKey::Bls(k) => state.keys.origin(k.public_key()).is_some(),
            NewKey::Evm(k) => state.evm.keys.origin(&k.address()).is_some(),
        }
    }

    fn outcome(&self, status: KeyStatus) -> Outcome {
        let (pubkey, address) = match self {
            NewKey::Bls(k) => (Some(*k.public_key()), None),
            NewKey::Evm(k) => (None, Some(k.address())),
        };
        Outcome {
            pubkey,
            address,
            status,
            message: String::new(),
        }
    }
}

/// Decrypt keystores (in parallel, each KDF bounded) and store the keys in the vault; they sign
/// at once. Passwords are used once and wiped; nothing is written in plaintext. With `allow_v3`,
/// Web3 Secret Storage (V3) keyfiles are accepted too, as EVM keys.
///
/// With `history` (the Keymanager API's `slashing_protection`), the records of the keys this
/// request actually imports (decrypted, so the caller holds them, and new here) are imported
/// before those keys can sign; records of any other key in the document are ignored.
pub async fn import_keystores(
    state: &Arc<AppState>,
    who: Actor<'_>,
    origin: &str,
    keystores: Vec<String>,
    passwords: Vec<Zeroizing<String>>,
    allow_v3: bool,
    history: Option<&str>,
) -> Result<Vec<Outcome>, Rejection> {
    who.admitted(state)?;
    if keystores.len() != passwords.len() {
        return Err(Rejection::Vault("invalid_keystore"));
    }
    let rt = unsealed(state)?;
    if let Some(doc) = history {
        // A document that is malformed, for another chain or beyond the clock is refused
        // before anything is decrypted (nothing of it is imported yet).
        import_history(state, doc, &HashSet::new()).await?;
    }
    let decrypted: Vec<Result<NewKey, String>> = tokio::task::spawn_blocking(move || {
        keystores
            .into_par_iter()
            .zip(passwords.into_par_iter())
            .map(|(ks, pw)| {
                let pw = SecretString::from(pw.as_str());
                let v3 = serde_json::from_str::<serde_json::Value>(&ks)
                    .ok()
                    .is_some_and(|v| v["version"] == 3);
                if v3 && allow_v3 {
                    return signward_evm::keyfile::decrypt(
                        ks.as_bytes(),
                        &pw,
                        &KdfLimits::default(),
                    )
                    .map(NewKey::Evm)
                    .map_err(|e| match e {
                        signward_evm::EvmError::MacMismatch => "mac_mismatch".to_string(),
                        _ => "malformed_keyfile".to_string(),
                    });
                }
                Keystore::from_json(ks.as_bytes())
                    .and_then(|k| k.decrypt(&pw, &KdfLimits::default()))
                    .map(NewKey::Bls)
                    .map_err(|e| e.class().to_string())
            })
            .collect()
    })
    .await
    .map_err(|_| Rejection::Internal)?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(decrypted.len());
    let mut fresh: Vec<(usize, NewKey)> = Vec::new();
    let mut batch_seen = HashSet::new();
    for (i, r) in decrypted.into_iter().enumerate() {
        match r {
            Err(class) => outcomes.push(Outcome {
                pubkey: None,
                address: None,
                status: KeyStatus::Error(KeyFault::Undecryptable),
                message: format!("keystore could not be decrypted ({class})"),
            }),
            Ok(k) if !k.granted_to(&who) => {
                let mut o = k.outcome(KeyStatus::Error(KeyFault::NotGranted));
                o.message = "the key is not granted to this credential".into();
                outcomes.push(o);
            }
            Ok(k) => {
                let dup = k.is_loaded(state) || !batch_seen.insert(k.id());
                outcomes.push(k.outcome(if dup {
                    KeyStatus::Duplicate
                } else {
                    KeyStatus::Imported
                }));
                if !dup {
                    fresh.push((i, k));
                }
            }
        }
    }
    store_and_load(state, rt, who.name, origin, fresh, &mut outcomes, history).await?;
    Ok(outcomes)
}

/// Every key id the vault holds, and whether it is enabled.
async fn vault_keys(rt: &VaultRuntime) -> Result<HashMap<String, bool>, Rejection> {
    Ok(rt
        .vault
        .store()
        .keys()
        .await
        .map_err(|e| Rejection::from(&e))?
        .into_iter()
        .map(|k| (k.key_id, k.enabled))
        .collect())
}

/// Store new keys in the vault, audit each one stored, and load them for signing. Under the
/// vault's sync lock (deletes hold it throughout): a key the vault already holds, enabled or not,
/// is a `duplicate` and nothing of it changes; for the others, `history` (the records of those
/// keys only) is imported, then they are enabled in the slashing database, stored and loaded.
async fn store_and_load(
    state: &Arc<AppState>,
    rt: &VaultRuntime,
    caller: &str,
    origin: &str,
    fresh: Vec<(usize, NewKey)>,
    outcomes: &mut [Outcome],
    history: Option<&str>,
) -> Result<(), Rejection> {
    if fresh.is_empty() {
        return Ok(());
    }
    let _g = rt.sync.lock().await;
    let held: HashSet<String> = vault_keys(rt).await?.into_keys().collect();
    let (fresh, held_already): (Vec<_>, Vec<_>) = fresh
        .into_iter()
        .partition(|(_, k)| !held.contains(&k.id()));
    for (i, _) in held_already {
        outcomes[i].status = KeyStatus::Duplicate;
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let bls: Vec<PublicKeyBytes> = fresh
        .iter()
        .filter_map(|(_, k)| match k {
            NewKey::Bls(k) => Some(*k.public_key()),
            NewKey::Evm(_) => None,
        })
        .collect();
    if let Some(doc) = history {
        import_history(state, doc, &bls.iter().copied().collect()).await?;
    }
    // A key deleted here before (disabled in the slashing database) signs again once it is
    // imported again: this signer owns it from now on.
    if !bls.is_empty() {
        state
            .protection
            .db
            .set_enabled(bls, true, true)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not enable the imported validators in the slashing database");
                Rejection::SlashingUnavailable
            })?;
    }
    let to_store: Vec<KeyToStore> = fresh
        .iter()
        .map(|(_, k)| KeyToStore {
            kind: k.kind(),
            key_id: k.id(),
            secret: k.secret(),
            origin: origin.to_string(),
        })
        .collect();
    let stored = rt
        .vault
        .store_keys(&to_store)
        .await
        .map_err(|e| Rejection::from(&e))?;
    drop(to_store);
    let (mut bls, mut evm) = (Vec::new(), Vec::new());
    for ((i, k), was_new) in fresh.into_iter().zip(stored) {
        if !was_new {
            outcomes[i].status = KeyStatus::Duplicate;
            continue;
        }
        let reason = format!("{origin} {}", k.kind().as_str());
        audit_key(state, caller, &k.id(), AuditOutcome::Imported, Some(reason)).await?;
        match k {
            NewKey::Bls(k) => bls.push(k),
            NewKey::Evm(k) => evm.push(k),
        }
    }
    state.keys.insert_all_from(KeyOrigin::Vault, bls);
    state
        .evm
        .keys
        .insert_all_from(crate::state::KeyOrigin::Vault, evm);
    Ok(())
}

/// A generated key (BLS public key or EVM address) and, when asked for, its age-encrypted
/// backup (ASCII armor).
pub struct Generated {
    /// The new key's identifier (BLS public key or EVM address).
    pub id: String,
    /// The key's age-encrypted backup (ASCII armour), when one was asked for.
    pub backup: Option<String>,
}

/// Generate keys inside the boundary from the OS CSPRNG and store them in the vault. With
/// `backup_to`, each key is also returned encrypted to that age recipient (never in plaintext):
/// a Web3Signer `file-raw` key configuration, which opens with the standard `age` tool.
pub async fn generate(
    state: &Arc<AppState>,
    caller: &str,
    kind: KeyKind,
    count: usize,
    backup_to: Option<&str>,
) -> Result<Vec<Generated>, Rejection> {
    let rt = unsealed(state)?;
    if count == 0 || count > 10_000 {
        return Err(Rejection::Vault("invalid_parameters"));
    }
    // Shares of group keys come from `group split` or key generation, never from here.
    let (make, key_type): (fn() -> NewKey, &str) = match kind {
        KeyKind::Bls => (|| NewKey::Bls(BlsKeypair::generate()), "BLS"),
        KeyKind::Secp256k1 => (
            || NewKey::Evm(signward_evm::EvmKey::generate()),
            "SECP256K1",
        ),
        KeyKind::BlsShare => return Err(Rejection::Vault("invalid_parameters")),
    };
    let recipient = backup_to
        .map(signward_vault::backup::parse_recipient)
        .transpose()
        .map_err(|e| Rejection::from(&e))?;
    let keys: Vec<NewKey> =
        tokio::task::spawn_blocking(move || (0..count).into_par_iter().map(|_| make()).collect())
            .await
            .map_err(|_| Rejection::Internal)?;
    let mut out = Vec::with_capacity(count);
    for k in &keys {
        let id = k.id();
        let backup = match &recipient {
            None => None,
            Some(r) => {
                let plain = signward_vault::backup::raw_key_config(key_type, &id, &k.secret());
                let armored = signward_vault::backup::encrypt_armored(r, &plain)
                    .map_err(|e| Rejection::from(&e))?;
                Some(String::from_utf8(armored).map_err(|_| Rejection::Internal)?)
            }
        };
        out.push(Generated { id, backup });
    }
    let mut outcomes: Vec<Outcome> = keys
        .iter()
        .map(|k| k.outcome(KeyStatus::Imported))
        .collect();
    let fresh = keys.into_iter().enumerate().collect();
    store_and_load(state, rt, caller, "generated", fresh, &mut outcomes, None).await?;
    Ok(out)
}

/// A key named by an admin request.
pub enum KeyRef {
    /// A BLS key, by public key.
    Bls(PublicKeyBytes),
    /// An EVM key, by address.
    Evm(alloy_primitives::Address),
}

impl KeyRef {
    /// The identifier as listings show it (hex public key or `evm:` address).
    pub fn id(&self) -> String {
        match self {
            KeyRef::Bls(pk) => pk.to_hex(),
            KeyRef::Evm(a) => evm_key_id(a),
        }
    }

    /// Loaded from files (or the dev flag): not the vault's to change.
    fn read_only(&self, state: &AppState) -> bool {
        match self {
            KeyRef::Bls(pk) => state.keys.origin(pk) == Some(KeyOrigin::File),
            KeyRef::Evm(a) => matches!(
                state.evm.keys.origin(a),
                Some(crate::state::KeyOrigin::File | crate::state::KeyOrigin::Dev)
            ),
        }
    }
}

/// Enable or disable (`Some(bool)`) a vault key of either kind, or delete (`None`) an EVM key,
/// on every instance. Disabled keys stay stored but never sign. (BLS keys are deleted through
/// [`delete`], which exports their slashing history first.)
pub async fn manage(
    state: &Arc<AppState>,
    who: Actor<'_>,
    key: &KeyRef,
    enabled: Option<bool>,
) -> Result<(), Rejection> {
    who.admitted(state)?;
    let rt = unsealed(state)?;
    let granted = match key {
        KeyRef::Bls(pk) => who.may(signward_auth::KeyId::Bls(pk)),
        KeyRef::Evm(a) => who.may(signward_auth::KeyId::Evm(a)),
    };
    if !granted {
        return Err(Rejection::Forbidden(signward_auth::Denied::Key));
    }
    if key.read_only(state) {
        return Err(Rejection::Vault("read_only_key"));
    }
    // Serialised with deletes and imports: an enable cannot slip between a delete's disable and
    // its export.
    let _g = rt.sync.lock().await;
    // A disable or delete first retires the key here: it waits for every request holding the
    // key, and no new one starts, so nothing is signed with it once this answers.
    let retiring = enabled != Some(true);
    if retiring {
        match key {
            KeyRef::Bls(pk) => state.keys.retire(&[*pk].into()).await,
            KeyRef::Evm(a) => state.evm.keys.retire(&[*a].into()).await,
        };
    }
    let r = manage_steps(state, rt, who.name, key, enabled).await;
    if r.is_err() && retiring {
        // Undo: the key signs again if its record still says it may.
        if let Err(e) = crate::vault::reconcile_locked(state, rt).await {
            tracing::error!(error = %e, "could not reload vault keys after a failed change");
        }
    }
    r
}

/// The vault and slashing-database changes of [`manage`], under its lock.
async fn manage_steps(
    state: &Arc<AppState>,
    rt: &VaultRuntime,
    caller: &str,
    key: &KeyRef,
    enabled: Option<bool>,
) -> Result<(), Rejection> {
    let id = key.id();
    let store = rt.vault.store();
    // A BLS key's state is also kept in the slashing database, where every instance's checks
    // read it: enabling goes there first, disabling last (after the vault's record).
    let slashing_flag = |on: bool| async move {
        match key {
            KeyRef::Bls(pk) => state
                .protection
                .db
                .set_enabled(vec![*pk], on, on)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "slashing database unavailable");
                    Rejection::SlashingUnavailable
                }),
            KeyRef::Evm(_) => Ok(()),
        }
    };
    if enabled == Some(true) && vault_keys(rt).await?.contains_key(&id) {
        slashing_flag(true).await?;
    }
    let found = match (enabled, key) {
        (Some(e), _) => store.set_enabled(&id, e).await,
        (None, KeyRef::Evm(_)) => store
            .delete_keys(std::slice::from_ref(&id))
            .await
            .map(|v| v[0]),
        (None, KeyRef::Bls(_)) => return Err(Rejection::Internal),
    }
    .map_err(|e| Rejection::from(&e))?;
    if !found {
        return Err(Rejection::Vault("key_not_found"));
    }
    if enabled == Some(false) {
        slashing_flag(false).await?;
    }
    let decision = match enabled {
        Some(true) => AuditOutcome::Enabled,
        Some(false) => AuditOutcome::Disabled,
        None => AuditOutcome::Deleted,
    };
    audit_key(state, caller, &id, decision, None).await?;
    crate::vault::reconcile_locked(state, rt)
        .await
        .map_err(|e| Rejection::from(&e))?;
    Ok(())
}

/// Delete keys. In this order, so that no instance can sign with a key once this returns and
/// the returned history covers every signature ever released:
/// 1. retire the keys here (wait for every request holding one to finish; no new one starts);
/// 2. disable them in the slashing database, durably. Every instance's check-and-record, and
///    its check for messages that are not slashable, reads that state in the same transaction
///    as its decision, so a stalled instance cannot sign after this, whatever its vault poll
///    says; a record that committed before it is in the export;
/// 3. disable the vault records (other instances drop the keys at their next poll);
/// 4. export the keys' EIP-3076 history, keep a copy under `<data-dir>/deleted-keys/`;
/// 5. delete the records.
///
/// A failure before step 5 puts everything back as it was. Keys asked about that this server
/// does not hold but that have history (`not_active`) are disabled too, so their returned
/// history stays complete.
///
/// The steps run in a task of their own: a client that gives up (or a request deadline) cannot
/// stop a delete half-way; it finishes, or puts everything back.
pub async fn delete(
    state: &Arc<AppState>,
    who: Actor<'_>,
    pubkeys: &[PublicKeyBytes],
    absent_keys: AbsentKeys,
) -> Result<(Vec<Outcome>, Vec<u8>), Rejection> {
    who.admitted(state)?;
    // Keys the caller is not granted are not touched: they are answered `error`.
    let (granted, refused): (Vec<PublicKeyBytes>, Vec<PublicKeyBytes>) = pubkeys
        .iter()
        .partition(|pk| who.may(signward_auth::KeyId::Bls(pk)));
    let (st, caller) = (state.clone(), who.name.to_string());
    let (mut outcomes, doc) =
        tokio::spawn(async move { delete_steps(&st, &caller, &granted, absent_keys).await })
            .await
            .map_err(|_| Rejection::Internal)??;
    // Answer in the order asked.
    for pk in refused {
        outcomes.push(Outcome {
            pubkey: Some(pk),
            address: None,
            status: KeyStatus::Error(KeyFault::NotGranted),
            message: "the key is not granted to this credential".into(),
        });
    }
    let order: HashMap<PublicKeyBytes, usize> =
        pubkeys.iter().enumerate().map(|(i, pk)| (*pk, i)).collect();
    outcomes.sort_by_key(|o| o.pubkey.and_then(|pk| order.get(&pk).copied()));
    Ok((outcomes, doc))
}

/// Where a key asked to be deleted is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Loaded from files: read-only to the APIs.
    ReadOnly,
    /// In the vault: it will be deleted.
    InVault,
    /// Not held here.
    Absent,
}

async fn delete_steps(
    state: &Arc<AppState>,
    caller: &str,
    pubkeys: &[PublicKeyBytes],
    absent_keys: AbsentKeys,
) -> Result<(Vec<Outcome>, Vec<u8>), Rejection> {
    let rt = unsealed(state)?;
    let _g = rt.sync.lock().await;
    let in_vault = vault_keys(rt).await?;
    let mut outcomes = Vec::with_capacity(pubkeys.len());
    let mut deleting = HashSet::new();
    let mut absent = HashSet::new();
    for pk in pubkeys {
        let status = if state.keys.origin(pk) == Some(KeyOrigin::File) {
            Held::ReadOnly
        } else if in_vault.contains_key(&pk.to_hex()) {
            deleting.insert(*pk);
            Held::InVault
        } else {
            if absent_keys == AbsentKeys::Disable {
                absent.insert(*pk);
            }
            Held::Absent
        };
        outcomes.push((*pk, status));
    }
    let db = &state.protection.db;
    let unavailable = |e: signward_slashing::SlashingError| {
        tracing::error!(error = %e, "slashing database unavailable; nothing deleted");
        Rejection::SlashingUnavailable
    };
    let was_disabled: HashSet<PublicKeyBytes> = db
        .disabled()
        .await
        .map_err(unavailable)?
        .into_iter()
        .collect();
    // 1. Nothing signs with them here from now on.
    state.keys.retire(&deleting).await;
    // What to undo if a later step fails.
    let disabled_now: Vec<PublicKeyBytes> = deleting
        .iter()
        .chain(&absent)
        .filter(|pk| !was_disabled.contains(pk))
        .copied()
        .collect();
    let was_enabled: Vec<String> = deleting
        .iter()
        .map(|pk| pk.to_hex())
        .filter(|id| in_vault.get(id).copied().unwrap_or(false))
        .collect();
    // 2. Nothing signs with them anywhere from now on.
    let disabled = async {
        db.set_enabled(deleting.iter().copied().collect(), false, false)
            .await?;
        db.set_enabled(absent.iter().copied().collect(), false, true)
            .await
    };
    if let Err(e) = disabled.await {
        restore(state, rt, &was_enabled, &disabled_now).await;
        return Err(unavailable(e));
    }
    // 3. Other instances drop them from memory.
    for pk in &deleting {
        if let Err(e) = rt.vault.store().set_enabled(&pk.to_hex(), false).await {
            restore(state, rt, &was_enabled, &disabled_now).await;
            return Err(Rejection::from(&e));
        }
    }
    // 4. The history of every key asked about. (Only keys that end up `deleted` or
    // `not_active` may have their history returned, so the read-only ones are left out.)
    let asked: HashSet<PublicKeyBytes> = deleting.union(&absent).copied().collect();
    let (doc, with_history) = match export_for(state, &asked).await {
        Ok(x) => x,
        Err(e) => {
            restore(state, rt, &was_enabled, &disabled_now).await;
            return Err(e);
        }
    };
    let with_history: HashSet<PublicKeyBytes> = with_history.into_iter().collect();
    // An absent key without history stays as it was: nothing of it is here.
    let untouched: Vec<PublicKeyBytes> = absent
        .iter()
        .filter(|pk| !with_history.contains(pk) && !was_disabled.contains(pk))
        .copied()
        .collect();
    if !untouched.is_empty() {
        if let Err(e) = db.set_enabled(untouched, true, true).await {
            tracing::warn!(error = %e, "could not re-enable keys without history");
        }
    }
    if !deleting.is_empty() {
        if let Some(dir) = &state.data_dir {
            if let Err(e) = keep_export(dir, &doc) {
                tracing::error!(error = %e, "could not keep the deleted keys' slashing history; nothing deleted");
                restore(state, rt, &was_enabled, &disabled_now).await;
                return Err(Rejection::Internal);
            }
        }
        // 5. Gone.
        let ids: Vec<String> = deleting.iter().map(|pk| pk.to_hex()).collect();
        if let Err(e) = rt.vault.store().delete_keys(&ids).await {
            restore(state, rt, &was_enabled, &disabled_now).await;
            return Err(Rejection::from(&e));
        }
        for pk in &deleting {
            audit_key(state, caller, &pk.to_hex(), AuditOutcome::Deleted, None).await?;
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|(pk, s)| Outcome {
            pubkey: Some(pk),
            address: None,
            status: match s {
                Held::InVault => KeyStatus::Deleted,
                Held::ReadOnly => KeyStatus::Error(KeyFault::ReadOnly),
                Held::Absent if with_history.contains(&pk) => KeyStatus::NotActive,
                Held::Absent => KeyStatus::NotFound,
            },
            message: if s == Held::ReadOnly {
                "the key was loaded from files and is read-only".into()
            } else {
                String::new()
            },
        })
        .collect();
    Ok((outcomes, doc))
}

/// Undo a delete that could not finish: the keys sign again where they did before.
async fn restore(
    state: &Arc<AppState>,
    rt: &VaultRuntime,
    was_enabled: &[String],
    disabled_now: &[PublicKeyBytes],
) {
    if !disabled_now.is_empty() {
        if let Err(e) = state
            .protection
            .db
            .set_enabled(disabled_now.to_vec(), true, true)
            .await
        {
            tracing::error!(error = %e, "could not re-enable keys in the slashing database after a failed delete");
        }
    }
    for id in was_enabled {
        if let Err(e) = rt.vault.store().set_enabled(id, true).await {
            tracing::error!(error = %e, key = %id, "could not re-enable a key after a failed delete");
        }
    }
    if let Err(e) = crate::vault::reconcile_locked(state, rt).await {
        tracing::error!(error = %e, "could not reload keys after a failed delete");
    }
}

/// A `Write` into a buffer the caller keeps (the store's export takes its writer by value).
#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The interchange document (complete history) for `keys` only, and which of them had any.
pub async fn export_for(
    state: &AppState,
    keys: &HashSet<PublicKeyBytes>,
) -> Result<(Vec<u8>, Vec<PublicKeyBytes>), Rejection> {
    let db = &state.protection.db;
    let pinned = db.genesis_validators_root().await.map_err(|e| {
        tracing::error!(error = %e, "slashing database unavailable for export");
        Rejection::SlashingUnavailable
    })?;
    let doc = match pinned {
        // Nothing was ever recorded: an empty document for the network.
        None => {
            let gvr = state.network.genesis_validators_root.unwrap_or_default();
            let w = signward_slashing::interchange::Writer::new(Vec::new(), &gvr)
                .map_err(|_| Rejection::Internal)?;
            w.finish().map_err(|_| Rejection::Internal)?
        }
        Some(_) => {
            let buf = SharedBuf::default();
            db.export_validators(buf.clone(), keys.iter().copied().collect())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "slashing export failed");
                    Rejection::SlashingUnavailable
                })?;
            let v = std::mem::take(&mut *buf.0.lock().unwrap_or_else(|p| p.into_inner()));
            v
        }
    };
    // The document holds only `keys`; this also says which had records.
    signward_slashing::interchange::filter(&doc[..], |pk| keys.contains(pk)).map_err(|e| {
        tracing::error!(error = %e, "slashing export filter failed");
        Rejection::Internal
    })
}

fn keep_export(dir: &std::path::Path, doc: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir.join("deleted-keys");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)?;
    let name = format!(
        "slashing-{}-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_millis())
            .unwrap_or(0),
        uuid::Uuid::new_v4().simple()
    );
    signward_os::fs::write_new(&d.join(name), doc)
}

/// Import the part of an interchange document that concerns `keys`: refused as a whole (400)
/// when the document is malformed, is for another chain, or holds a record of those keys beyond
/// the chain clock's window (a far-future record would lock the key out of today's duties).
pub async fn import_history(
    state: &AppState,
    doc: &str,
    keys: &HashSet<PublicKeyBytes>,
) -> Result<(), Rejection> {
    // The whole document is validated (format, chain) even when no key of it is imported.
    let (filtered, kept) =
        signward_slashing::interchange::filter(doc.as_bytes(), |pk| keys.contains(pk)).map_err(
            |e| {
                tracing::warn!(
                    error.class = e.class(),
                    "slashing_protection in the import request is not a valid interchange document"
                );
                Rejection::HistoryInvalid
            },
        )?;
    check_history_window(state, &filtered)?;
    let db = &state.protection.db;
    let pinned = db.genesis_validators_root().await.map_err(|e| {
        tracing::error!(error = %e, "slashing database unavailable");
        Rejection::SlashingUnavailable
    })?;
    let chain = pinned.or(state.network.genesis_validators_root);
    if let Some(ours) = chain {
        if signward_slashing::interchange::genesis_validators_root(&filtered[..])
            .is_ok_and(|theirs| theirs != ours)
        {
            tracing::warn!("slashing_protection in the import request is for another chain");
            return Err(Rejection::HistoryWrongChain);
        }
    }
    if kept.is_empty() {
        return Ok(());
    }
    db.import(std::io::Cursor::new(filtered))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            signward_slashing::SlashingError::GenesisMismatch { .. } => {
                Rejection::HistoryWrongChain
            }
            signward_slashing::SlashingError::Interchange(_)
            | signward_slashing::SlashingError::OutOfRange(_) => Rejection::HistoryInvalid,
            e => {
                tracing::error!(error = %e, "slashing history import failed");
                Rejection::SlashingUnavailable
            }
        })
}

/// Every block and attestation target of `doc` within the chain clock's window (when the
/// genesis time is known).
fn check_history_window(state: &AppState, doc: &[u8]) -> Result<(), Rejection> {
    let Some(clock) = &state.protection.clock else {
        return Ok(());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut beyond = false;
    signward_slashing::interchange::read(doc, |event| {
        if let signward_slashing::interchange::Event::Validator(v) = event {
            let blocks = v
                .signed_blocks
                .iter()
                .map(|b| signward_slashing::Slashable::Block { slot: b.slot.0 });
            let atts =
                v.signed_attestations
                    .iter()
                    .map(|a| signward_slashing::Slashable::Attestation {
                        source_epoch: a.source_epoch.0,
                        target_epoch: a.target_epoch.0.max(a.source_epoch.0),
                    });
            beyond |= blocks.chain(atts).any(|s| clock.check(s, now).is_some());
        }
        Ok(())
    })
    .map_err(|_| Rejection::HistoryInvalid)?;
    if beyond {
        tracing::warn!("slashing_protection in the import request holds records beyond the chain clock's window");
        return Err(Rejection::HistoryTooFarInFuture);
    }
    Ok(())
}

/// What became of a signing-group share given to [`import_group_share`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareImport {
    /// The group (validator) public key.
    pub group_key: PublicKeyBytes,
    /// This peer's index in the group.
    pub index: u32,
    /// The group's threshold and size.
    pub threshold: u32,
    /// SHA-256 of the group's commitments (what the peers compare).
    pub commitments_digest: String,
    /// `imported`, `refreshed` (it replaced this peer's earlier share of the same key) or
    /// `duplicate` (the vault already holds this very share).
    pub status: &'static str,
}

/// Store this peer's share of a signing group's key in the sealed vault and sign with it from
/// now on (issue 17). `document` is the share document ([`crate::group::GroupShare`]): it must
/// be this peer's share, match its own commitments, and have a threshold this group's size
/// allows. A share of a key the vault already holds as a share replaces it (a refresh: same
/// group key, new commitments); a key held whole here, or from a share file, is refused, and so
/// is a share record the vault holds disabled. A key new to this vault needs its slashing
/// history (`history`, EIP-3076: imported first, for this key only) or `new_key` (a key that
/// has never signed, e.g. from key generation): a peer without the history of a split key could
/// release a partial for a message the key already signed a conflicting one of. The validator
/// is then enabled in the slashing database, the import is audited, and the vault's other
/// instances load it on their next poll.
pub async fn import_group_share(
    state: &Arc<AppState>,
    who: Actor<'_>,
    document: &[u8],
    history: Option<&str>,
    new_key: bool,
) -> Result<ShareImport, Rejection> {
    who.admitted(state)?;
    let rt = unsealed(state)?;
    let groups = state
        .groups
        .as_ref()
        .ok_or(Rejection::Vault("no_signing_group"))?;
    let share = crate::group::GroupShare::from_document(document).map_err(|e| {
        tracing::warn!(error = %e, "signing-group share refused");
        Rejection::Vault("invalid_share")
    })?;
    let key = groups.check(&share).map_err(|e| {
        tracing::warn!(error = %e, "signing-group share refused");
        Rejection::Vault("share_refused")
    })?;
    if !who.may(signward_auth::KeyId::Bls(&key)) {
        return Err(Rejection::Forbidden(signward_auth::Denied::Key));
    }
    if state.keys.origin(&key).is_some() || groups.origin(&key) == Some(KeyOrigin::File) {
        return Err(Rejection::Vault("key_held_here"));
    }
    let _g = rt.sync.lock().await;
    let id = key.to_hex();
    let existing = rt
        .vault
        .store()
        .keys()
        .await
        .map_err(|e| Rejection::from(&e))?
        .into_iter()
        .find(|k| k.key_id == id);
    let digest = share.commitments_digest();
    let report = |status| ShareImport {
        group_key: key,
        index: share.share.index(),
        threshold: share.commitments.threshold(),
        commitments_digest: digest.clone(),
        status,
    };
    let status = match &existing {
        None if history.is_none() && !new_key => return Err(Rejection::Vault("history_required")),
        None => "imported",
        Some(k) if k.kind != KeyKind::BlsShare => return Err(Rejection::Vault("key_held_here")),
        Some(k) if !k.enabled => return Err(Rejection::Vault("key_disabled")),
        Some(_) => match groups.share(&key) {
            Some(held) if held.commitments_digest() == digest => return Ok(report("duplicate")),
            _ => "refreshed",
        },
    };
    if let Some(doc) = history {
        import_history(state, doc, &HashSet::from([key])).await?;
    }
    state
        .protection
        .db
        .set_enabled(vec![key], true, true)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not enable the group key in the slashing database");
            Rejection::SlashingUnavailable
        })?;
    let stored = rt
        .vault
        .store_or_replace_keys(&[KeyToStore {
            kind: KeyKind::BlsShare,
            key_id: id.clone(),
            secret: zeroize::Zeroizing::new(share.to_document().to_vec()),
            origin: "group-share".into(),
        }])
        .await
        .map_err(|e| Rejection::from(&e))?;
    if stored.first() != Some(&true) {
        return Err(Rejection::Vault("key_held_here"));
    }
    let out = report(status);
    audit_key(
        state,
        who.name,
        &id,
        AuditOutcome::Imported,
        Some(format!(
            "group share {}, threshold {}{}",
            out.index,
            out.threshold,
            if status == "refreshed" {
                "; replaces the earlier share"
            } else {
                ""
            }
        )),
    )
    .await?;
    drop(share);
    crate::vault::reconcile_locked(state, rt)
        .await
        .map_err(|e| Rejection::from(&e))?;
    Ok(out)
}

/// Proactive refresh from the share this peer holds (in its vault or from a share file): deal
/// it to a new group (`recipients`: each new peer's index and age recipient, 1..=n) with
/// `threshold`, withstanding `f` compromised peers. The share never leaves the server: what
/// leaves is the public dealing and each new peer's part, encrypted to that peer. The new peers
/// then run `group join` on the dealings of `t` old holders. Audited as `share_dealt`.
pub async fn deal_refresh(
    state: &Arc<AppState>,
    who: Actor<'_>,
    key: &PublicKeyBytes,
    group: NewGroup,
) -> Result<crate::group::SealedDealing, Rejection> {
    who.admitted(state)?;
    let groups = state
        .groups
        .as_ref()
        .ok_or(Rejection::Vault("no_signing_group"))?;
    if !who.may(signward_auth::KeyId::Bls(key)) {
        return Err(Rejection::Forbidden(signward_auth::Denied::Key));
    }
    if state.vault.as_ref().is_some_and(|rt| rt.blocks_signing()) {
        return Err(Rejection::Sealed);
    }
    let held = groups.share(key).ok_or(Rejection::Vault("key_not_found"))?;
    let group = group.checked(groups)?;
    let (threshold, n) = (group.threshold, group.n());
    let dealer = held.share.index();
    let own = signward_threshold::KeyShare {
        share: signward_threshold::SecretShare::from_bytes(dealer, &held.share.dangerous_bytes())
            .map_err(|_| Rejection::Internal)?,
        commitments: held.commitments.clone(),
    };
    let dealing = signward_threshold::reshare(&own, threshold, n)
        .map_err(|_| Rejection::Vault("invalid_parameters"))?;
    drop(own);
    let sealed = crate::group::seal_dealing(
        dealer,
        threshold,
        &dealing,
        Some(held.commitments.clone()),
        &group.recipients,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "share refresh refused");
        Rejection::Vault("invalid_parameters")
    })?;
    drop(dealing);
    audit_key(
        state,
        who.name,
        &key.to_hex(),
        AuditOutcome::ShareDealt,
        Some(format!(
            "refresh by peer {dealer} to {n} peers, threshold {threshold}"
        )),
    )
    .await?;
    Ok(sealed)
}

/// The new group a split or a refresh deals to.
pub struct NewGroup {
    /// Its threshold.
    pub threshold: u32,
    /// The compromised peers its slashing protection must withstand (2t > n + f).
    pub tolerate_compromised: u32,
    /// Each peer's index (1..=n) and age recipient.
    pub recipients: Vec<(u32, String)>,
}

impl NewGroup {
    /// Sorted by index and checked ([`crate::group::check_members`]); refused as
    /// `invalid_parameters`, the reason logged. Every recipient must be pinned in this peer's
    /// group configuration (`share_recipients`), each once (`recipient_not_pinned`): an API
    /// credential never chooses where a share goes.
    fn checked(mut self, groups: &crate::group::Groups) -> Result<Self, Rejection> {
        for (_, r) in self.recipients.iter_mut() {
            // The canonical form, as the configuration's are kept.
            *r = signward_vault::backup::parse_recipient(r)
                .map_err(|_| Rejection::Vault("invalid_parameters"))?
                .to_string();
        }
        if !groups.may_deal_to(self.recipients.iter().map(|(_, r)| r.as_str())) {
            tracing::warn!("a split or refresh named an age recipient the group configuration does not pin, or one twice");
            return Err(Rejection::Vault("recipient_not_pinned"));
        }
        self.recipients.sort_by_key(|(i, _)| *i);
        let indexes: Vec<u32> = self.recipients.iter().map(|(i, _)| *i).collect();
        crate::group::check_members(self.threshold, self.tolerate_compromised, &indexes).map_err(
            |e| {
                tracing::warn!(error = %e, "a new signing group was refused");
                Rejection::Vault("invalid_parameters")
            },
        )?;
        Ok(self)
    }

    fn n(&self) -> u32 {
        self.recipients.len() as u32
    }
}

/// A vault key split by [`split_vault_key`].
pub struct VaultSplit {
    /// Each peer's share document, age-encrypted to it: `(index, share-<index>.age)`.
    pub shares: Vec<(u32, Vec<u8>)>,
    /// The key's EIP-3076 history, exported when its record was deleted: import it into every
    /// peer.
    pub slashing_protection: Vec<u8>,
}

/// Dealer split of a key held whole in this server's vault into `threshold`-of-n shares for a
/// signing group (`group`: the threshold, the compromised peers to withstand, each peer's
/// index and age recipient), then the whole key deleted from the vault as [`delete`] does
/// (retired, disabled in the slashing database, its history exported and returned). Only a peer
/// of a signing group splits, to recipients its configuration pins. The shares are written,
/// encrypted to their peers, under `<data-dir>/split-keys/` before the key is deleted, so a lost
/// answer loses nothing (and removed if the delete fails); no share leaves in the clear.
pub async fn split_vault_key(
    state: &Arc<AppState>,
    who: Actor<'_>,
    pk: &PublicKeyBytes,
    group: NewGroup,
) -> Result<VaultSplit, Rejection> {
    who.admitted(state)?;
    unsealed(state)?;
    if !who.may(signward_auth::KeyId::Bls(pk)) {
        return Err(Rejection::Forbidden(signward_auth::Denied::Key));
    }
    match state.keys.origin(pk) {
        Some(KeyOrigin::Vault) => {}
        Some(_) => return Err(Rejection::Vault("read_only_key")),
        None => return Err(Rejection::Vault("key_not_found")),
    }
    // Only a peer of a signing group splits: its configuration pins where shares may go.
    let groups = state
        .groups
        .as_ref()
        .ok_or(Rejection::Vault("no_signing_group"))?;
    let group = group.checked(groups)?;
    let (threshold, n) = (group.threshold, group.n());
    let parsed = group
        .recipients
        .iter()
        .map(|(i, r)| {
            signward_vault::backup::parse_recipient(r)
                .map(|r| (*i, r))
                .map_err(|_| Rejection::Vault("invalid_parameters"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lease = state
        .keys
        .lease(pk)
        .await
        .ok_or(Rejection::Vault("key_not_found"))?;
    let dealing = {
        let secret = lease.entry().key.dangerous_secret_bytes();
        signward_threshold::split(&secret, threshold, n)
            .map_err(|_| Rejection::Vault("invalid_parameters"))?
    };
    drop(lease);
    if PublicKeyBytes::from(dealing.commitments.group_public_key()) != *pk {
        tracing::error!("a vault key's split does not commit to its public key");
        return Err(Rejection::Internal);
    }
    let mut shares = Vec::with_capacity(parsed.len());
    for (share, (index, recipient)) in dealing.shares.iter().zip(&parsed) {
        let document = crate::group::GroupShare {
            share: signward_threshold::SecretShare::from_bytes(*index, &share.dangerous_bytes())
                .map_err(|_| Rejection::Internal)?,
            commitments: dealing.commitments.clone(),
        }
        .to_document();
        let sealed = signward_vault::backup::encrypt_armored(recipient, &document)
            .map_err(|e| Rejection::from(&e))?;
        shares.push((*index, sealed));
    }
    drop(dealing);
    // Kept (encrypted to the pinned peers) before the key is deleted, so the shares are never
    // only in an answer; under a pending name until the delete succeeds, removed if it fails.
    let pending = match &state.data_dir {
        Some(dir) => Some(keep_split(dir, pk, &shares).map_err(|e| {
            tracing::error!(error = %e, "could not keep the split's share files; the key is kept");
            Rejection::Internal
        })?),
        None => None,
    };
    let deleted = delete(state, who, &[*pk], AbsentKeys::Leave).await;
    let doc = match deleted {
        Ok((outcomes, doc)) if outcomes.first().map(|o| &o.status) == Some(&KeyStatus::Deleted) => {
            doc
        }
        other => {
            if let Some(p) = &pending {
                let _ = std::fs::remove_dir_all(p);
            }
            tracing::error!(pubkey = %pk, "a split vault key could not be deleted; it is kept whole and the split is discarded");
            return Err(other.err().unwrap_or(Rejection::Vault("key_not_found")));
        }
    };
    if let Some(p) = &pending {
        let done = p.with_file_name(
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("pending-"))
                .unwrap_or("split"),
        );
        if let Err(e) = std::fs::rename(p, &done) {
            tracing::error!(error = %e, "the split's share files stay under their pending name");
        }
    }
    audit_key(
        state,
        who.name,
        &pk.to_hex(),
        AuditOutcome::ShareDealt,
        Some(format!(
            "split into {n} shares, threshold {threshold}; the whole key is deleted"
        )),
    )
    .await?;
    Ok(VaultSplit {
        shares,
        slashing_protection: doc,
    })
}

/// Write the split's share files under `<dir>/split-keys/pending-<pubkey>-<uuid>/`; returns
/// that directory.
fn keep_split(
    dir: &std::path::Path,
    pk: &PublicKeyBytes,
    shares: &[(u32, Vec<u8>)],
) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir.join("split-keys").join(format!(
        "pending-{}-{}",
        pk.to_hex(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)?;
    for (index, armored) in shares {
        signward_os::fs::write_new(&d.join(format!("share-{index}.age")), armored)?;
    }
    Ok(d)
}
