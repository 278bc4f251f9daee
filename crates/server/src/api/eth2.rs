//! The Web3Signer eth2 API: `POST /api/v1/eth2/sign/{identifier}` and
//! `GET /api/v1/eth2/publicKeys`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Serialize;
use signward_auth::store::Caller;

use crate::gate::ClientIp;

use crate::error::ApiError;
use crate::serve::Limits;
use signward_engine::eth2 as signer;
use signward_engine::state::AppState;
use signward_engine::Rejection;

#[derive(Serialize)]
struct SigningResponse {
    signature: String,
}

/// JSON when the client accepts `application/json` (or any type); plain text otherwise.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|range| range.split(';').next().unwrap_or("").trim())
        .any(|t| {
            t.eq_ignore_ascii_case("application/json")
                || t == "*/*"
                || t.eq_ignore_ascii_case("application/*")
        })
}

/// `POST /api/v1/eth2/sign/{identifier}`: read the body (bounded), hand it to the engine, answer the signature as JSON or text, with `X-Request-Id`.
pub async fn sign(
    State((state, limits)): State<(Arc<AppState>, Limits)>,
    Path(identifier): Path<String>,
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let caller = caller.map(|Extension(c)| c);
    let body = axum::body::to_bytes(body, limits.max_body_bytes).await;
    let record = signward_audit::Record {
        event: signward_audit::Event::Sign.into(),
        request_id: Some(request_id.clone()),
        caller: Some(
            caller
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "-".into()),
        ),
        peer: client.map(|Extension(ClientIp(ip))| ip.to_string()),
        // The audit crate bounds every field; a key that does not parse is recorded cut.
        key: Some(identifier.clone()),
        ..Default::default()
    };
    // An oversized body is refused, and that refusal is recorded like any other. The engine
    // records the decision durably before any answer leaves.
    let body = body.as_deref().map_err(|_| Rejection::BodyTooLarge);
    let result = signer::sign(
        &state,
        caller.as_deref(),
        &identifier,
        body,
        record,
        started,
    )
    .await
    .map_err(ApiError::from);
    let mut response = respond(result, &headers, caller.as_deref());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn respond(
    result: Result<signer::Signed, ApiError>,
    headers: &HeaderMap,
    caller: Option<&Caller>,
) -> Response {
    match result {
        Ok(signed) => {
            tracing::debug!(kind = %signed.job.kind, caller = caller.as_ref().map(|c| c.name.as_str()).unwrap_or("-"), "signed");
            let signature = signed.signature.to_hex();
            if wants_json(headers) {
                Json(SigningResponse { signature }).into_response()
            } else {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    )],
                    signature,
                )
                    .into_response()
            }
        }
        Err(e) => {
            tracing::info!(code = e.code(), "sign request refused");
            e.into_response()
        }
    }
}

/// The loaded keys the caller may use (all of them for an unrestricted credential).
pub async fn public_keys(
    State((state, _)): State<(Arc<AppState>, Limits)>,
    caller: Option<Extension<Arc<Caller>>>,
) -> Response {
    if state.is_sealed() {
        return ApiError::Engine(Rejection::Sealed).into_response();
    }
    let mut all = state.keys().public_keys();
    // Group keys this peer holds a share of sign like any other key (coordinated with the peers).
    if let Some(groups) = state.groups() {
        for k in groups.keys() {
            if !all.contains(&k) {
                all.push(k);
            }
        }
    }
    // Canary keys are listed like any other: they are bait.
    for c in &state.canaries().bls {
        if !all.contains(c) {
            all.push(*c);
        }
    }
    let keys: Vec<String> = all
        .iter()
        .filter(|k| {
            caller.as_ref().is_none_or(|Extension(c)| {
                signward_auth::authorize(
                    Some(c),
                    signward_auth::Action::SeeKey(signward_auth::KeyId::Bls(k)),
                )
                .is_ok()
            })
        })
        .map(|k| k.to_hex())
        .collect();
    Json(keys).into_response()
}

/// `GET /api/v1/eth2/highWatermark` (Web3Signer): the epoch and slot below which every
/// validator's attestations and blocks must lie to be signed. In Web3Signer it is an
/// operator-set cap kept in the slashing database; signward's slashing database holds only
/// per-validator low watermarks (floors), and its one cap for all validators is the chain-clock
/// window (`--slashing-protection-max-future-epochs`): a block is refused past
/// `current slot + max_future_epochs × slots per epoch`, an attestation past
/// `current epoch + max_future_epochs`. This answers the first slot and epoch that are refused
/// now, or `{}` (as Web3Signer does when no high watermark is set) when the clock check is off
/// or the genesis time is unknown.
pub async fn high_watermark(State((state, _)): State<(Arc<AppState>, Limits)>) -> Response {
    let Some(clock) = state.protection().clock else {
        return Json(serde_json::json!({})).into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (epoch, slot) = clock.high_watermark(now);
    Json(serde_json::json!({"epoch": epoch.to_string(), "slot": slot.to_string()})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_json(&m)
        };
        assert!(h("application/json"));
        assert!(h("*/*"));
        assert!(h("text/plain;q=0.5, application/json;q=0.9"));
        assert!(!h("text/plain"));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
