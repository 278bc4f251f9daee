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

use crate::error::ApiError;
use crate::keyops;
use crate::serve::Limits;
use crate::state::{AppState, KeyOrigin};

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
        policy: caller.as_ref().map(|Extension(c)| &c.policy),
    }
}

/// `GET /eth/v1/keystores`: the keys this credential is granted.
pub async fn list(State((state, _)): St, caller: Who) -> Response {
    if state.is_sealed() {
        return ApiError::Sealed.into_response();
    }
    let who = actor("", &caller);
    let data: Vec<_> = state
        .keys
        .entries()
        .into_iter()
        .filter(|(pk, _)| who.may(signward_auth::KeyId::Bls(pk)))
        .map(|(pk, origin)| {
            json!({
                "validating_pubkey": pk.to_hex(),
                "derivation_path": "",
                "readonly": origin == KeyOrigin::File,
            })
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
        return ApiError::MalformedBody.into_response();
    };
    if req.keystores.len() != req.passwords.len() {
        return ApiError::Vault("invalid_keystore").into_response();
    }
    if state.is_sealed() {
        return ApiError::Sealed.into_response();
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
            "status": o.status,
            "message": o.message,
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct DeleteRequest {
    pubkeys: Vec<String>,
}

/// `DELETE /eth/v1/keystores`
pub async fn delete(State((state, _)): St, caller: Who, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<DeleteRequest>(&body) else {
        return ApiError::MalformedBody.into_response();
    };
    let mut pubkeys = Vec::with_capacity(req.pubkeys.len());
    for p in &req.pubkeys {
        match p.parse::<PublicKeyBytes>() {
            Ok(pk) => pubkeys.push(pk),
            Err(_) => return ApiError::InvalidPubkey.into_response(),
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
            "data": outcomes.iter().map(|o| json!({"status": o.status, "message": o.message})).collect::<Vec<_>>(),
            "slashing_protection": String::from_utf8_lossy(&doc),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /eth/v1/remotekeys`: signward signs with its own keys and proxies to no other signer,
/// so the list is empty.
pub async fn remote_keys() -> Response {
    Json(json!({ "data": [] })).into_response()
}
