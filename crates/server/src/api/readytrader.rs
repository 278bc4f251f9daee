//! ReadyTrader-Crypto's remote-signer protocol (`SIGNER_TYPE=remote`), beside JSON-RPC on the
//! same listener and under the same `evm` scope and bearer credential:
//! - `GET /address` → `{"address"}`: the one EVM key granted to the calling credential;
//! - `POST /sign_transaction` with `{"tx": {…web3-style…}, "chain_id": N, "intent": {…}}` →
//!   `{"rawTransactionHex": "0x…"}`. `from` defaults to that key and `chainId` to `chain_id`;
//!   numbers may be JSON integers of any size; every field the intent states is checked against
//!   the transaction (a mismatch is 400 `intent_mismatch`); the transaction then goes through
//!   the same EVM pipeline as `eth_signTransaction` (grants, policy, spend windows, audit), and
//!   a refusal is 403 with the rule in the message.

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use signward_auth::store::Caller;
use signward_engine::evm::{self, EvmMethod, EvmRejection, EvmRequest, EvmSigned};
use signward_engine::state::AppState;

use crate::gate::ClientIp;
use crate::serve::Limits;

/// A refusal in ReadyTrader's terms: a status and `{"code", "message"}`.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// A refusal answered now.
fn answer(status: StatusCode, code: &'static str, message: String) -> Response {
    refuse(status, code, message).into_response()
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        code,
        message,
    }
}

/// The HTTP status of an engine rejection: 400 for what the request got wrong, 403 for every
/// refusal (policy, grants, canary), 404 for an unknown account, 503 when signward cannot sign
/// right now.
fn rejected(r: EvmRejection) -> Refusal {
    let status = match &r {
        EvmRejection::InvalidParams(_) | EvmRejection::WrongChain => StatusCode::BAD_REQUEST,
        EvmRejection::Policy {
            rule: "intent_mismatch",
            ..
        } => StatusCode::BAD_REQUEST,
        EvmRejection::Policy { .. } | EvmRejection::Canary | EvmRejection::NotGranted(_) => {
            StatusCode::FORBIDDEN
        }
        EvmRejection::UnknownAccount => StatusCode::NOT_FOUND,
        EvmRejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let e = super::rpc::RpcError::from(r);
    refuse(status, e.reason, e.message)
}

/// The one EVM key the caller is granted (canaries excluded: they are never a caller's key).
fn own_key(state: &AppState, caller: Option<&Caller>) -> Result<Address, Refusal> {
    let all = evm::accounts(state, caller).map_err(rejected)?;
    let mine: Vec<Address> = all
        .into_iter()
        .filter(|a| !state.canaries().evm.contains(a))
        .collect();
    match mine.as_slice() {
        [one] => Ok(*one),
        [] => Err(refuse(
            StatusCode::NOT_FOUND,
            "no_key",
            "no EVM key is granted to this credential".into(),
        )),
        many => Err(refuse(
            StatusCode::CONFLICT,
            "ambiguous_key",
            format!(
                "this credential is granted {} EVM keys; the remote-signer protocol needs exactly one (name it in tx.from)",
                many.len()
            ),
        )),
    }
}

/// `GET /address`.
pub async fn address(
    State((state, _)): State<(Arc<AppState>, Limits)>,
    caller: Option<Extension<Arc<Caller>>>,
) -> Response {
    let caller = caller.map(|Extension(c)| c);
    match own_key(&state, caller.as_deref()) {
        Ok(a) => Json(json!({"address": a.to_checksum(None)})).into_response(),
        Err(r) => r.into_response(),
    }
}

/// A quantity from the transaction or the intent, for comparison (read as the transaction
/// parser reads it).
fn q(v: &Value) -> Option<alloy_primitives::U256> {
    signward_evm::tx::quantity_u256(v)
}

fn hex_bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => hex::decode(s.trim().trim_start_matches("0x")).ok(),
        _ => None,
    }
}

fn address_of(v: Option<&Value>) -> Result<Option<Address>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => signward_policy::parse_address(s)
            .map(Some)
            .map_err(|e| e.to_string()),
        Some(_) => Err("not an address".into()),
    }
}

/// Every field the intent states, compared with the transaction; the first that differs.
fn intent_mismatch(tx: &serde_json::Map<String, Value>, intent: &Value) -> Option<String> {
    let Some(i) = intent.as_object() else {
        return Some("intent must be an object".into());
    };
    let stated = |k: &str| i.get(k).filter(|v| !v.is_null());
    if let Some(t) = stated("intent_type") {
        if t.as_str() != Some("evm_transaction") {
            return Some("intent_type must be evm_transaction".into());
        }
    }
    let numbers = [
        ("chain_id", "chainId"),
        ("value_wei", "value"),
        ("gas", "gas"),
        ("gas_price_wei", "gasPrice"),
        ("nonce", "nonce"),
    ];
    for (ik, tk) in numbers {
        if let Some(want) = stated(ik) {
            let have = tx
                .get(tk)
                .or_else(|| (tk == "gas").then(|| tx.get("gasLimit")).flatten())
                .filter(|v| !v.is_null());
            let have = match (tk, have) {
                ("value", None) => Some(alloy_primitives::U256::ZERO),
                (_, h) => h.and_then(q),
            };
            match (q(want), have) {
                (Some(w), Some(h)) if w == h => {}
                (None, _) => return Some(format!("intent.{ik} is not a number")),
                _ => return Some(format!("intent.{ik} does not match tx.{tk}")),
            }
        }
    }
    if let Some(want) = i.get("to") {
        match (address_of(Some(want)), address_of(tx.get("to"))) {
            (Ok(w), Ok(h)) if w == h => {}
            (Err(e), _) => return Some(format!("intent.to: {e}")),
            _ => return Some("intent.to does not match tx.to".into()),
        }
    }
    if let Some(want) = i.get("data_hex") {
        let have = hex_bytes(tx.get("data").or_else(|| tx.get("input")));
        match (hex_bytes(Some(want)), have) {
            (Some(w), Some(h)) if w == h => {}
            _ => return Some("intent.data_hex does not match tx.data".into()),
        }
    }
    None
}

/// The policy's declared intent for a transaction whose ReadyTrader intent matched it field by
/// field: a deployment, a plain transfer, or a call of the function its calldata names.
fn declared(f: &signward_policy::TxFacts) -> signward_policy::Intent {
    let action = match (f.to, f.data.len()) {
        (None, _) => "deploy",
        (Some(_), 0) => "transfer",
        _ => "contract_call",
    };
    signward_policy::Intent {
        action: action.into(),
        recipient: f.to.map(|a| a.to_checksum(None)),
        max_value_wei: Some(f.value.to_string()),
        chain_id: Some(f.chain_id),
        selector: (action == "contract_call" && f.data.len() >= 4)
            .then(|| format!("0x{}", hex::encode(&f.data[..4]))),
        token: None,
        max_amount: None,
    }
}

/// `POST /sign_transaction`.
pub async fn sign_transaction(
    State((state, limits)): State<(Arc<AppState>, Limits)>,
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let caller = caller.map(|Extension(c)| c);
    let Ok(bytes) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return crate::error::ApiError::Engine(signward_engine::Rejection::BodyTooLarge)
            .into_response();
    };
    let Ok(Value::Object(mut req)) =
        serde_json::from_slice::<Value>(&signward_evm::json::quote_big_integers(&bytes))
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "expected {\"tx\": {...}, \"chain_id\": N, \"intent\": {...}}".into(),
        );
    };
    let Some(Value::Object(mut tx)) = req.remove("tx") else {
        return answer(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "tx must be an object".into(),
        );
    };
    if !tx.contains_key("from") {
        match own_key(&state, caller.as_deref()) {
            Ok(a) => {
                tx.insert("from".into(), json!(a.to_checksum(None)));
            }
            Err(r) => return r.into_response(),
        }
    }
    let mut mismatch = None;
    if let Some(chain) = req.get("chain_id").filter(|v| !v.is_null()) {
        match tx.get("chainId").filter(|v| !v.is_null()) {
            None => {
                tx.insert("chainId".into(), chain.clone());
            }
            Some(c) if q(c).is_some() && q(c) == q(chain) => {}
            Some(_) => mismatch = Some("chain_id does not match tx.chainId".to_string()),
        }
    }
    // web3.py writes `data: "0x"` and may leave `to: null` for a deployment.
    if tx.get("to").is_some_and(Value::is_null) {
        tx.remove("to");
    }
    let stated = req.get("intent").filter(|v| !v.is_null());
    if let Some(intent) = stated {
        mismatch = mismatch.or_else(|| intent_mismatch(&tx, intent));
    }
    let record = signward_audit::Record {
        event: signward_audit::Event::Evm.into(),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        caller: Some(
            caller
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "-".into()),
        ),
        peer: client.map(|Extension(ClientIp(ip))| ip.to_string()),
        ..Default::default()
    };
    // A mismatch is refused through the pipeline, so that it is audited like any refusal.
    let request = match mismatch {
        Some(why) => Err(EvmRejection::Policy {
            rule: "intent_mismatch",
            detail: Some(why),
            source: Some("readytrader".into()),
        }),
        None => Ok(tx),
    };
    let request = request
        .and_then(|tx| {
            signward_evm::tx::parse(&Value::Object(tx))
                .map_err(|e| EvmRejection::invalid_params(e.to_string()))
        })
        .map(|(tx, intent)| {
            // ReadyTrader's intent, once it matched the transaction, is the declared intent the
            // policy sees (so `require_intent` accepts ReadyTrader's requests).
            let intent = intent.or_else(|| stated.map(|_| declared(&tx.facts)));
            EvmRequest::Transaction {
                tx: Box::new(tx),
                intent,
            }
        });
    let method = EvmMethod::SignTransaction;
    match evm::sign(&state, caller.as_deref(), method, request, record, started).await {
        Ok(EvmSigned::Transaction { signed, .. }) => Json(json!({
            "rawTransactionHex": format!("0x{}", hex::encode(&signed.raw)),
            "hash": format!("{:#x}", signed.hash),
        }))
        .into_response(),
        Ok(_) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error".into(),
        ),
        Err(r) => rejected(r).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_is_checked_field_by_field() {
        let tx = json!({"to": "0x3333333333333333333333333333333333333333", "value": "100000000000000000000",
            "gas": 21000, "gasPrice": "0x3b9aca00", "nonce": 7, "chainId": 1337, "data": "0x"});
        let tx = tx.as_object().unwrap();
        let ok = json!({"intent_type": "evm_transaction", "chain_id": 1337,
            "to": "0x3333333333333333333333333333333333333333", "value_wei": "100000000000000000000",
            "data_hex": null, "gas": 21000, "gas_price_wei": 1000000000, "nonce": 7});
        assert_eq!(intent_mismatch(tx, &ok), None);
        for (k, v) in [
            ("to", json!("0x4444444444444444444444444444444444444444")),
            ("value_wei", json!("100000000000000000001")),
            ("chain_id", json!(1)),
            ("gas", json!(21001)),
            ("gas_price_wei", json!(1)),
            ("nonce", json!(8)),
            ("data_hex", json!("0xa9059cbb")),
            ("intent_type", json!("evm_message")),
            ("to", json!(null)),
        ] {
            let mut bad = ok.clone();
            bad[k] = v;
            assert!(
                intent_mismatch(tx, &bad).is_some(),
                "{k} mismatch not caught"
            );
        }
        // Fields the intent leaves out (or null, except `to`) are not compared.
        assert_eq!(intent_mismatch(tx, &json!({"gas_price_wei": null})), None);
    }
}
