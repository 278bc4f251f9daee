//! The admin API (`admin` scope): vault status, unseal, seal, and key management. This is what
//! `signward unseal|seal|status|keys …` talk to.

use std::sync::Arc;

use signward_audit::Outcome;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use signward_auth::store::Caller;
use signward_core::bytes::PublicKeyBytes;
use signward_vault::SharePayload;
use zeroize::Zeroizing;

use crate::error::{ApiError, BodyKind};
use crate::serve::Limits;
use signward_engine::keyops;
use signward_engine::state::{AppState, KeyOrigin};
use signward_engine::Rejection;

type St = State<(Arc<AppState>, Limits)>;
type Who = Option<Extension<Arc<Caller>>>;

fn name(caller: &Who) -> String {
    caller
        .as_ref()
        .map(|Extension(c)| c.name.clone())
        .unwrap_or_else(|| "-".into())
}

fn actor<'a>(name: &'a str, caller: &'a Who) -> keyops::Actor<'a> {
    keyops::Actor {
        name,
        caller: caller.as_ref().map(|Extension(c)| &**c),
    }
}

/// `GET /admin/v1/vault`
pub async fn status(State((state, _)): St) -> Response {
    let Some(rt) = &state.vault() else {
        return Json(
            json!({"state": "disabled", "keys_loaded": state.keys().len(), "memory": state.memory()}),
        )
        .into_response();
    };
    match rt.vault.status().await {
        Ok(p) => Json(json!({
            "state": p.state.as_str(),
            "submitted": p.submitted,
            "threshold": p.threshold,
            "vault_id": p.vault_id,
            "generation": p.generation,
            "backend": rt.vault.store().backend(),
            "keys_loaded": state.keys().len(),
            "memory": state.memory(),
            "halted": state.halt().is_halted(),
        }))
        .into_response(),
        Err(e) => ApiError::from(&e).into_response(),
    }
}

/// `POST /admin/v1/vault/unseal` with one share payload (as `signward unseal` sends it).
pub async fn unseal(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let body = Zeroizing::new(body.to_vec());
    let share = match SharePayload::from_json(&body) {
        Ok(s) => s,
        Err(e) => return ApiError::from(&e).into_response(),
    };
    match signward_engine::vault::submit_share(&state, &name(&caller), share).await {
        Ok(p) => Json(json!({
            "state": p.state.as_str(),
            "submitted": p.submitted,
            "threshold": p.threshold,
            "keys_loaded": state.keys().len(),
        }))
        .into_response(),
        Err(e) => ApiError::from(&e).into_response(),
    }
}

/// `POST /admin/v1/vault/unseal/reset`
pub async fn unseal_reset(State((state, _)): St, caller: Who) -> Response {
    match signward_engine::vault::reset(&state, &name(&caller)).await {
        Ok(()) => Json(json!({"state": "sealed", "submitted": 0})).into_response(),
        Err(e) => ApiError::from(&e).into_response(),
    }
}

/// `POST /admin/v1/vault/seal`
pub async fn seal(State((state, _)): St, caller: Who) -> Response {
    if state.vault().as_ref().is_none_or(|v| !v.is_initialized()) {
        return ApiError::Engine(Rejection::Vault("vault_uninitialized")).into_response();
    }
    signward_engine::vault::seal(&state, &name(&caller), "operator").await;
    Json(json!({"state": "sealed"})).into_response()
}

/// `GET /admin/v1/keys`: every key the vault holds (enabled or not) and every file key, that
/// this credential is granted.
pub async fn list(State((state, _)): St, caller: Who) -> Response {
    let who = actor("", &caller);
    let mut out = Vec::new();
    for (pk, origin) in state.keys().entries() {
        if origin != KeyOrigin::Vault {
            out.push(json!({"pubkey": pk.to_hex(), "kind": "bls", "origin": origin.as_str(), "enabled": true, "loaded": true}));
        }
    }
    for (a, origin) in state.evm().entries() {
        if origin != KeyOrigin::Vault {
            out.push(json!({"pubkey": keyops::evm_key_id(&a), "kind": "secp256k1", "origin": origin.as_str(), "enabled": true, "loaded": true}));
        }
    }
    if let Some(rt) = &state.vault() {
        if rt.is_initialized() {
            match rt.vault.store().keys().await {
                Ok(keys) => {
                    for k in keys {
                        let loaded = k
                            .key_id
                            .parse::<PublicKeyBytes>()
                            .ok()
                            .and_then(|pk| state.keys().origin(&pk))
                            == Some(KeyOrigin::Vault);
                        out.push(json!({"pubkey": k.key_id, "kind": k.kind.as_str(), "origin": k.origin, "enabled": k.enabled, "loaded": loaded}));
                    }
                }
                Err(e) => return ApiError::from(&e).into_response(),
            }
        }
    }
    out.retain(|k| {
        let id = k["pubkey"].as_str().unwrap_or("");
        match (
            id.parse::<PublicKeyBytes>(),
            signward_policy::parse_address(id),
        ) {
            (Ok(pk), _) => who.may(signward_auth::KeyId::Bls(&pk)),
            (_, Ok(a)) => who.may(signward_auth::KeyId::Evm(&a)),
            _ => false,
        }
    });
    Json(json!({"keys": out})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    keystores: Vec<String>,
    passwords: Vec<Zeroizing<String>>,
}

/// `POST /admin/v1/keys/import` `{keystores: [json…], passwords: […]}`
pub async fn import(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let body = Zeroizing::new(body.to_vec());
    let Ok(b) = serde_json::from_slice::<ImportBody>(&body) else {
        return ApiError::MalformedBody(BodyKind::AdminImport).into_response();
    };
    let n = name(&caller);
    match keyops::import_keystores(
        &state,
        actor(&n, &caller),
        "imported",
        b.keystores,
        b.passwords,
        true,
        None,
    )
    .await
    {
        Ok(outcomes) => Json(json!({"data": outcomes.iter().map(|o| json!({
            "pubkey": o.pubkey.map(|p| p.to_hex()).or(o.address.map(|a| keyops::evm_key_id(&a))),
            "status": o.status.as_str(),
            "message": o.message,
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody<'a> {
    /// Borrowed from the request body (which is wiped): no other copy of the secret.
    #[serde(borrow)]
    share: &'a serde_json::value::RawValue,
    /// The key's EIP-3076 history, for a key new to this vault.
    #[serde(default)]
    slashing_protection: Option<String>,
    /// A key that has never signed (key generation): no history to import.
    #[serde(default)]
    new_key: bool,
}

/// `POST /admin/v1/group/shares` `{share: {share document}}`: this peer's share of a signing
/// group's key, into the sealed vault.
pub async fn import_share(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let body = Zeroizing::new(body.to_vec());
    let Ok(b) = serde_json::from_slice::<ShareBody>(&body) else {
        return ApiError::MalformedBody(BodyKind::GroupShare).into_response();
    };
    let n = name(&caller);
    match keyops::import_group_share(
        &state,
        actor(&n, &caller),
        b.share.get().as_bytes(),
        b.slashing_protection.as_deref(),
        b.new_key,
    )
    .await
    {
        Ok(o) => Json(json!({
            "group_public_key": o.group_key.to_hex(),
            "index": o.index,
            "threshold": o.threshold,
            "commitments_sha256": o.commitments_digest,
            "status": o.status,
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DealBody {
    group_public_key: String,
    threshold: u32,
    #[serde(default)]
    tolerate_compromised: u32,
    peers: Vec<DealPeer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DealPeer {
    index: u32,
    age_recipient: String,
}

/// The group key and the new group of a split or a refresh request.
fn deal_request(body: &[u8]) -> Result<(PublicKeyBytes, keyops::NewGroup), ApiError> {
    let b = serde_json::from_slice::<DealBody>(body)
        .map_err(|_| ApiError::MalformedBody(BodyKind::GroupDeal))?;
    Ok((
        pubkey(&b.group_public_key)?,
        keyops::NewGroup {
            threshold: b.threshold,
            tolerate_compromised: b.tolerate_compromised,
            recipients: b
                .peers
                .into_iter()
                .map(|p| (p.index, p.age_recipient))
                .collect(),
        },
    ))
}

/// `POST /admin/v1/group/refresh` `{group_public_key, threshold, tolerate_compromised?, peers:
/// [{index, age_recipient}]}`: deal this peer's share of a group key to a refreshed group. The
/// answer is the public dealing and each new peer's part, encrypted to that peer.
pub async fn refresh_share(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let (key, group) = match deal_request(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let n = name(&caller);
    match keyops::deal_refresh(&state, actor(&n, &caller), &key, group).await {
        Ok(sealed) => Json(json!({
            "dealing": sealed.document,
            "shares": sealed.shares.iter().map(|(index, armored)| json!({
                "index": index,
                "age": String::from_utf8_lossy(armored),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /admin/v1/group/split` `{group_public_key, threshold, tolerate_compromised?, peers:
/// [{index, age_recipient}]}`: split a key held whole in this server's vault into shares for a
/// signing group, each encrypted to its peer, and delete the whole key (its slashing history
/// comes back, to import into every peer).
pub async fn split_key(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let (key, group) = match deal_request(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let n = name(&caller);
    match keyops::split_vault_key(&state, actor(&n, &caller), &key, group).await {
        Ok(split) => Json(json!({
            "group_public_key": key.to_hex(),
            "shares": split.shares.iter().map(|(index, armored)| json!({
                "index": index,
                "age": String::from_utf8_lossy(armored),
            })).collect::<Vec<_>>(),
            "slashing_protection": String::from_utf8_lossy(&split.slashing_protection),
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /admin/v1/group`: this peer's signing group, with every other peer asked now.
pub async fn group_status(State((state, _)): St, caller: Who) -> Response {
    let n = name(&caller);
    let who = actor(&n, &caller);
    match state.groups() {
        Some(groups) => Json(
            signward_engine::group::status(groups, |k| who.may(signward_auth::KeyId::Bls(k))).await,
        )
        .into_response(),
        None => ApiError::Engine(Rejection::Vault("no_signing_group")).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    #[serde(rename = "type")]
    kind: String,
    count: usize,
    #[serde(default)]
    backup_to: Option<String>,
}

/// `POST /admin/v1/keys/generate` `{type: "bls", count, backup_to?: "age1…"}`
pub async fn generate(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<GenerateBody>(&body) else {
        return ApiError::MalformedBody(BodyKind::AdminGenerate).into_response();
    };
    let Some(kind) = signward_vault::KeyKind::parse(&b.kind) else {
        return ApiError::Engine(Rejection::Vault("invalid_parameters")).into_response();
    };
    match keyops::generate(
        &state,
        &name(&caller),
        kind,
        b.count,
        b.backup_to.as_deref(),
    )
    .await
    {
        Ok(keys) => Json(json!({"keys": keys.iter().map(|g| json!({
            "pubkey": g.id,
            "backup": g.backup,
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn pubkey(s: &str) -> Result<PublicKeyBytes, ApiError> {
    s.parse()
        .map_err(|_| ApiError::Engine(Rejection::InvalidPubkey))
}

/// `POST /admin/v1/keys/{pubkey}/enable`
pub async fn enable(State((state, _)): St, caller: Who, Path(pk): Path<String>) -> Response {
    toggle(state, caller, pk, true).await
}

/// `POST /admin/v1/keys/{pubkey}/disable`
pub async fn disable(State((state, _)): St, caller: Who, Path(pk): Path<String>) -> Response {
    toggle(state, caller, pk, false).await
}

/// A path segment naming a key: an EVM address (20 bytes) or a BLS public key (48 bytes).
fn key_ref(s: &str) -> Result<keyops::KeyRef, ApiError> {
    if let Ok(a) = signward_policy::parse_address(s) {
        return Ok(keyops::KeyRef::Evm(a));
    }
    pubkey(s).map(keyops::KeyRef::Bls)
}

async fn toggle(state: Arc<AppState>, caller: Who, pk: String, enabled: bool) -> Response {
    let key = match key_ref(&pk) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let n = name(&caller);
    match keyops::manage(&state, actor(&n, &caller), &key, Some(enabled)).await {
        Ok(()) => Json(json!({"pubkey": key.id(), "enabled": enabled})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `DELETE /admin/v1/keys/{pubkey}`: the key's slashing history comes back, and is also kept
/// under `<data-dir>/deleted-keys/` before the record is deleted.
pub async fn delete(State((state, _)): St, caller: Who, Path(pk): Path<String>) -> Response {
    let pk = match key_ref(&pk) {
        Ok(keyops::KeyRef::Bls(pk)) => pk,
        Ok(evm) => {
            // EVM keys have no slashing history.
            let n = name(&caller);
            return match keyops::manage(&state, actor(&n, &caller), &evm, None).await {
                Ok(()) => Json(
                    json!({"pubkey": evm.id(), "status": "deleted", "slashing_protection": null}),
                )
                .into_response(),
                Err(e) => ApiError::from(e).into_response(),
            };
        }
        Err(e) => return e.into_response(),
    };
    let n = name(&caller);
    // A key this vault does not hold is a 404, and nothing of it changes.
    match keyops::delete(&state, actor(&n, &caller), &[pk], keyops::AbsentKeys::Leave).await {
        Ok((outcomes, doc)) => {
            let o = &outcomes[0];
            match o.status {
                keyops::KeyStatus::Deleted => Json(json!({
                    "pubkey": pk.to_hex(),
                    "status": "deleted",
                    "slashing_protection": String::from_utf8_lossy(&doc),
                }))
                .into_response(),
                keyops::KeyStatus::Error(keyops::KeyFault::NotGranted) => {
                    ApiError::Engine(Rejection::Forbidden(signward_auth::Denied::Key))
                        .into_response()
                }
                keyops::KeyStatus::Error(_) => {
                    ApiError::Engine(Rejection::Vault("read_only_key")).into_response()
                }
                _ => ApiError::Engine(Rejection::Vault("key_not_found")).into_response(),
            }
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HaltBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/v1/halt` `{reason?}`: refuse every signing request from now on, across restarts.
pub async fn halt(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let b: HaltBody = if body.is_empty() {
        HaltBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(_) => return ApiError::MalformedBody(BodyKind::AdminHalt).into_response(),
        }
    };
    let who = name(&caller);
    let reason: String = b
        .reason
        .unwrap_or_else(|| "operator".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let persisted = state.halt().halt(&format!("{reason} (by {who})"));
    tracing::warn!(caller = %who, reason = %reason, "signing HALTED");
    signward_engine::controls::audit_control(
        &state,
        &who,
        signward_audit::Outcome::Halted,
        Some(reason),
    )
    .await;
    match persisted {
        Ok(()) => Json(json!({"halted": true})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "halted in memory, but the halt could not be persisted");
            ApiError::Engine(Rejection::Internal).into_response()
        }
    }
}

/// `POST /admin/v1/resume`
pub async fn resume(State((state, _)): St, caller: Who) -> Response {
    let who = name(&caller);
    match state.halt().resume() {
        Ok(()) => {
            tracing::warn!(caller = %who, "signing resumed");
            signward_engine::controls::audit_control(
                &state,
                &who,
                signward_audit::Outcome::Resumed,
                None,
            )
            .await;
            Json(json!({"halted": false})).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the halt could not be lifted (its file could not be removed); still halted");
            ApiError::Engine(Rejection::Internal).into_response()
        }
    }
}

/// `GET /reload` (Web3Signer): the status of the latest reload.
pub async fn reload_status(State((state, _)): St) -> Response {
    let Some(r) = &state.reloader() else {
        return Json(json!({"status": "idle"})).into_response();
    };
    let s = r.status();
    let mut body = json!({"status": s.phase.as_str()});
    if let Some(t) = s.last_operation {
        body["lastOperationTime"] = json!(signward_engine::reload::iso8601(t));
    }
    if let Some(e) = s.last_error {
        body["lastError"] = json!(e);
    }
    Json(body).into_response()
}

/// `POST /reload` (Web3Signer): reload key files, certificates and the EVM policy exactly as
/// SIGHUP does, in the background: 202 at once, 409 while a reload runs. Admin scope: it
/// changes which keys are served.
pub async fn reload(State((state, _)): St, caller: Who) -> Response {
    let who = name(&caller);
    let started = signward_engine::reload::start(&state, signward_engine::reload::Trigger::Api);
    let decision = match started {
        Ok(true) => Outcome::Accepted,
        Ok(false) => Outcome::Unavailable,
        Err(_) => Outcome::Busy,
    };
    let record = signward_audit::Record {
        event: signward_audit::Event::Reload.into(),
        caller: Some(who.clone()),
        decision: decision.into(),
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a reload failed");
    }
    tracing::info!(caller = %who, decision = decision.as_str(), "reload requested through the API");
    match started {
        Ok(true) => (
            axum::http::StatusCode::ACCEPTED,
            Json(json!({
                "status": "accepted",
                "message": "Reload operation accepted and is running in the background. Use GET /reload to check status.",
            })),
        )
            .into_response(),
        Ok(false) => ApiError::ReloadUnavailable.into_response(),
        // Web3Signer's 409 body is {status: "error", message}; the stable code rides along.
        Err(_) => {
            let e = ApiError::ReloadInProgress;
            (
                e.status(),
                Json(json!({"status": "error", "code": e.code(), "message": e.message()})),
            )
                .into_response()
        }
    }
}
