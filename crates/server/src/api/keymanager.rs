//! The Keymanager API's local-keystore and remote-key endpoints (`keymanager` scope), as the
//! ethereum/keymanager-APIs spec defines them. Imports go into the sealed vault — never to a
//! plaintext password file — and a delete returns the keys' EIP-3076 history.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use signward_auth::store::Caller;
use signward_core::bytes::PublicKeyBytes;
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
        .map(|Extension(c)| format!("{} (keymanager)", c.name))
        .unwrap_or_else(|| "- (keymanager)".into())
}

fn actor<'a>(name: &'a str, caller: &'a Who) -> keyops::Actor<'a> {
    keyops::Actor {
        name,
        caller: caller.as_ref().map(|Extension(c)| &**c),
    }
}

/// `GET /eth/v1/keystores`: the keys this credential is granted.
pub async fn list(State((state, _)): St, caller: Who) -> Response {
    if state.is_sealed() {
        return ApiError::Engine(Rejection::Sealed).into_response();
    }
    let who = actor("", &caller);
    // `derivation_path` only when the keystore declared a valid EIP-2334 path (the spec: "if
    // present in the imported keystore"); generated and vault keys have none.
    let data: Vec<_> = state
        .keys()
        .entries_with_paths()
        .into_iter()
        .filter(|(pk, _, _)| who.may(signward_auth::KeyId::Bls(pk)))
        .map(|(pk, origin, path)| {
            let mut o = json!({
                "validating_pubkey": pk.to_hex(),
                "readonly": origin == KeyOrigin::File,
            });
            if let Some(p) = path {
                o["derivation_path"] = json!(p);
            }
            o
        })
        .collect();
    Json(json!({ "data": data })).into_response()
}

#[derive(Deserialize)]
struct ImportRequest {
    keystores: Vec<String>,
    passwords: Vec<Zeroizing<String>>,
    #[serde(default)]
    slashing_protection: Option<String>,
}

/// `POST /eth/v1/keystores`
pub async fn import(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let body = Zeroizing::new(body.to_vec());
    let Ok(req) = serde_json::from_slice::<ImportRequest>(&body) else {
        return ApiError::MalformedBody(BodyKind::KeystoreImport).into_response();
    };
    if req.keystores.len() != req.passwords.len() {
        return ApiError::Engine(Rejection::Vault("invalid_keystore")).into_response();
    }
    if state.is_sealed() {
        return ApiError::Engine(Rejection::Sealed).into_response();
    }
    // Imports go into the vault only. Without one, each keystore is refused in the spec's own
    // shape (200 with an `error` status per key), never written anywhere.
    if !state.vault().as_ref().is_some_and(|rt| rt.is_initialized()) {
        let refused = json!({"status": "error",
            "message": "vault_uninitialized: imports go into the sealed vault; run signward init"});
        return Json(json!({"data": vec![refused; req.keystores.len()]})).into_response();
    }
    // The keystores are decrypted first; the history of the keys this request imports goes in
    // before any of them can sign (see keyops::import_keystores).
    let n = name(&caller);
    match keyops::import_keystores(
        &state,
        actor(&n, &caller),
        "keymanager",
        req.keystores,
        req.passwords,
        false,
        req.slashing_protection.as_deref(),
    )
    .await
    {
        Ok(outcomes) => Json(json!({"data": outcomes.iter().map(|o| json!({
            "status": o.status.as_str(),
            "message": o.message,
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct DeleteRequest {
    pubkeys: Vec<String>,
}

/// `DELETE /eth/v1/keystores`
pub async fn delete(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<DeleteRequest>(&body) else {
        return ApiError::MalformedBody(BodyKind::KeystoreDelete).into_response();
    };
    let mut pubkeys = Vec::with_capacity(req.pubkeys.len());
    for p in &req.pubkeys {
        match p.parse::<PublicKeyBytes>() {
            Ok(pk) => pubkeys.push(pk),
            Err(_) => return ApiError::Engine(Rejection::InvalidPubkey).into_response(),
        }
    }
    let n = name(&caller);
    match keyops::delete(
        &state,
        actor(&n, &caller),
        &pubkeys,
        keyops::AbsentKeys::Disable,
    )
    .await
    {
        Ok((outcomes, doc)) => Json(json!({
            "data": outcomes.iter().map(|o| json!({"status": o.status.as_str(), "message": o.message})).collect::<Vec<_>>(),
            "slashing_protection": String::from_utf8_lossy(&doc),
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /eth/v1/remotekeys`: signward signs with its own keys and proxies to no other signer,
/// so the list is empty.
pub async fn remote_keys() -> Response {
    Json(json!({ "data": [] })).into_response()
}

/// The stable code in every per-key message of a remote-key import or delete.
pub const REMOTE_KEYS_UNSUPPORTED: &str =
    "remote_keys_unsupported: signward does not manage remote keys; it signs only with keys it holds";

#[derive(Deserialize)]
struct RemoteSigner {
    pubkey: String,
    /// `Some(Null)` for an explicit `null`, which the spec (a string) does not allow.
    #[serde(default, deserialize_with = "present")]
    url: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RemoteImportRequest {
    remote_keys: Vec<RemoteSigner>,
}

#[derive(Deserialize)]
struct RemoteDeleteRequest {
    pubkeys: Vec<String>,
}

/// The spec's `Pubkey`: `0x` and 96 hex digits.
fn spec_pubkey(s: &str) -> bool {
    s.strip_prefix("0x")
        .is_some_and(|h| h.len() == 96 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `POST /eth/v1/remotekeys`: signward manages no remote keys. The spec answers an import with
/// 200 and a status per key (its only other statuses are 401, 403 and 500, none of which fits
/// "not supported"), so each key gets `error` with the stable code `remote_keys_unsupported`
/// at the start of its message. A body that is not an import request is a 400 naming it.
pub async fn remote_import(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<RemoteImportRequest>(&body) else {
        return ApiError::MalformedBody(BodyKind::RemoteKeysImport).into_response();
    };
    if !req.remote_keys.iter().all(|k| spec_pubkey(&k.pubkey)) {
        return ApiError::Engine(Rejection::InvalidPubkey).into_response();
    }
    if !req
        .remote_keys
        .iter()
        .all(|k| k.url.as_ref().is_none_or(|u| u.is_string()))
    {
        return ApiError::MalformedBody(BodyKind::RemoteKeysImport).into_response();
    }
    let data: Vec<_> = req
        .remote_keys
        .iter()
        .map(|_| json!({"status": "error", "message": REMOTE_KEYS_UNSUPPORTED}))
        .collect();
    Json(json!({ "data": data })).into_response()
}

/// `DELETE /eth/v1/remotekeys`: no remote key is held, so each one is `not_found` (the spec:
/// "DELETE should never return a 404", and `not_found` is exactly the case).
pub async fn remote_delete(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<RemoteDeleteRequest>(&body) else {
        return ApiError::MalformedBody(BodyKind::RemoteKeysDelete).into_response();
    };
    if !req.pubkeys.iter().all(|k| spec_pubkey(k)) {
        return ApiError::Engine(Rejection::InvalidPubkey).into_response();
    }
    let data: Vec<_> = req
        .pubkeys
        .iter()
        .map(|_| json!({"status": "not_found", "message": REMOTE_KEYS_UNSUPPORTED}))
        .collect();
    Json(json!({ "data": data })).into_response()
}
