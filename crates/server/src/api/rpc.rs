//! The EVM JSON-RPC 2.0 endpoint (`POST /`, `evm` scope): `eth_accounts`, `eth_sign`,
//! `personal_sign`, `eth_signTypedData` / `eth_signTypedData_v4`, `eth_signTransaction`, alone
//! or in batches. It reads requests into calls of the engine's EVM pipeline
//! (`signward_engine::evm`), which passes every signing request through the policy and audits
//! every decision before the answer leaves. Errors are JSON-RPC error objects whose
//! `data.reason` is a stable code.

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use signward_auth::store::Caller;
use signward_auth::EvmTxResult;
use signward_engine::evm::{self, EvmMethod, EvmRejection, EvmRequest, EvmSigned};

use crate::gate::ClientIp;
use crate::serve::Limits;
use signward_engine::state::AppState;

/// What a request names: the account list, the chain, one of the signing methods, or (with an
/// upstream node) a read to forward.
enum Method {
    Accounts,
    ChainId,
    Sign(EvmMethod),
    Other,
}

/// A JSON-RPC error: numeric code (EIP-1474, and EIP-1193's 4100 for a credential that is not
/// granted), a message that carries the reason (clients such as ethers and viem show only the
/// message), the stable reason, and an optional detail.
#[derive(Debug)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// The stable reason (`data.reason`).
    pub reason: &'static str,
    /// The message: what happened, with the reason and any detail.
    pub message: String,
    /// What the rule or parser saw (bounded).
    pub detail: Option<String>,
    /// The policy rule set that decided, when one did.
    pub source: Option<String>,
    /// The hash of a signed transaction that may have reached the node.
    pub hash: Option<String>,
    /// The upstream node's own `data`, answered in place of ours (revert data of a forwarded
    /// `eth_call` or `eth_estimateGas`, which clients decode).
    pub node_data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, reason: &'static str, message: &str) -> Self {
        RpcError {
            code,
            reason,
            message: message.to_string(),
            detail: None,
            source: None,
            hash: None,
            node_data: None,
        }
    }

    /// `message (reason): detail`.
    fn explained(code: i64, reason: &'static str, message: &str, detail: Option<String>) -> Self {
        let text = match &detail {
            Some(d) => format!("{message} ({reason}): {d}"),
            None => format!("{message} ({reason})"),
        };
        RpcError {
            detail,
            ..Self::new(code, reason, &text)
        }
    }
}

/// The one mapping from the engine's EVM rejections to JSON-RPC errors (EIP-1474 codes:
/// -32602 invalid params, -32001 resource not found, -32002 resource unavailable, -32003
/// transaction rejected, -32004 method not supported, -32601 method not found, -32603 internal;
/// EIP-1193's 4100 unauthorized).
impl From<EvmRejection> for RpcError {
    fn from(r: EvmRejection) -> Self {
        let reason = r.reason();
        match r {
            EvmRejection::InvalidParams(detail) => {
                Self::explained(-32602, reason, "invalid params", Some(detail))
            }
            EvmRejection::Canary => {
                Self::explained(-32003, reason, "refused: this key may not be used", None)
            }
            EvmRejection::Sealed => Self::explained(-32002, reason, "the vault is sealed", None),
            EvmRejection::Halted => {
                Self::explained(-32002, reason, "signing is halted by an operator", None)
            }
            EvmRejection::NotGranted(_) => {
                Self::explained(4100, reason, "not granted to this credential", None)
            }
            EvmRejection::UnknownAccount => {
                Self::explained(-32001, reason, "no key for this account", None)
            }
            EvmRejection::Policy { detail, source, .. } => RpcError {
                source,
                ..Self::explained(-32003, reason, "refused by policy", detail)
            },
            EvmRejection::LedgerUnavailable => Self::explained(
                -32002,
                reason,
                "spend ledger unavailable; nothing was signed",
                None,
            ),
            EvmRejection::AuditUnavailable => Self::explained(
                -32002,
                reason,
                "the audit log could not be written; nothing was released",
                None,
            ),
            EvmRejection::MethodNotFound => Self::new(-32601, reason, "method not found"),
            EvmRejection::NotSupported(why) => {
                Self::explained(-32004, reason, "method not supported", Some(why.into()))
            }
            EvmRejection::Upstream {
                code: Some(code),
                message,
                hash,
                data,
                ..
            } => RpcError {
                // The node's own answer (e.g. "insufficient funds", which clients recognise);
                // for a read, its data too (a send answers with the transaction's hash instead).
                node_data: if hash.is_none() { data } else { None },
                hash,
                ..Self::new(code.clamp(-32768, 32767), reason, &message)
            },
            EvmRejection::Upstream {
                code: None,
                message,
                hash,
                ..
            } => RpcError {
                hash,
                ..Self::explained(-32002, reason, "upstream node unavailable", Some(message))
            },
            EvmRejection::WrongChain => Self::explained(
                -32000,
                reason,
                "the upstream node serves another chain",
                None,
            ),
            EvmRejection::Internal => Self::new(-32603, reason, "internal error"),
        }
    }
}

fn parse_error() -> RpcError {
    RpcError::new(-32700, "parse_error", "parse error")
}

type Rpc = Result<Value, RpcError>;

fn address_param(v: Option<&Value>) -> Result<Address, EvmRejection> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| EvmRejection::invalid_params("expected an address"))?;
    signward_policy::parse_address(s).map_err(|e| EvmRejection::invalid_params(e.to_string()))
}

fn hex_param(v: Option<&Value>) -> Result<Vec<u8>, EvmRejection> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| EvmRejection::invalid_params("expected hex data"))?;
    hex::decode(
        s.strip_prefix("0x")
            .ok_or_else(|| EvmRejection::invalid_params("data must be 0x-prefixed hex"))?,
    )
    .map_err(|_| EvmRejection::invalid_params("data is not hex"))
}

/// The engine's request for `method`, read from its JSON-RPC params.
fn parse_request(
    method: EvmMethod,
    params: &[Value],
    route: Option<u64>,
) -> Result<EvmRequest, EvmRejection> {
    match method {
        EvmMethod::EthSign | EvmMethod::PersonalSign => {
            // eth_sign: [address, data]; personal_sign: [data, address, ...].
            let (a, d) = if method == EvmMethod::EthSign {
                (params.first(), params.get(1))
            } else {
                (params.get(1), params.first())
            };
            let from = address_param(a)?;
            let data = match (method, d.and_then(Value::as_str)) {
                (EvmMethod::PersonalSign, Some(s)) if !s.starts_with("0x") => s.as_bytes().to_vec(),
                _ => hex_param(d)?,
            };
            Ok(EvmRequest::Message { from, data })
        }
        EvmMethod::SignTypedData | EvmMethod::SignTypedDataV4 => {
            let from = address_param(params.first())?;
            let typed = signward_evm::message::parse_typed(
                params
                    .get(1)
                    .ok_or_else(|| EvmRejection::invalid_params("expected typed data"))?,
            )
            .map_err(|e| EvmRejection::invalid_params(e.to_string()))?;
            Ok(EvmRequest::TypedData { from, typed })
        }
        EvmMethod::SendTransaction => {
            let Some(Value::Object(tx)) = params.first() else {
                return Err(EvmRejection::invalid_params(
                    "expected a transaction object",
                ));
            };
            let from = address_param(tx.get("from"))
                .map_err(|_| EvmRejection::invalid_params("from is required"))?;
            let intent = match params.get(1).and_then(|extra| extra.get("intent")) {
                Some(i) => Some(
                    serde_json::from_value(i.clone())
                        .map_err(|e| EvmRejection::invalid_params(format!("intent: {e}")))?,
                ),
                None => None,
            };
            Ok(EvmRequest::Send {
                route,
                from,
                tx: tx.clone(),
                intent,
            })
        }
        EvmMethod::SignTransaction => {
            let tx_value = params
                .first()
                .ok_or_else(|| EvmRejection::invalid_params("expected a transaction object"))?;
            let (tx, mut intent) = signward_evm::tx::parse(tx_value)
                .map_err(|e| EvmRejection::invalid_params(e.to_string()))?;
            // On /chain/{id}, only that chain's transactions.
            if route.is_some_and(|c| c != tx.facts.chain_id) {
                return Err(EvmRejection::WrongChain);
            }
            if let Some(i) = params.get(1).and_then(|extra| extra.get("intent")) {
                intent = Some(
                    serde_json::from_value(i.clone())
                        .map_err(|e| EvmRejection::invalid_params(format!("intent: {e}")))?,
                );
            }
            Ok(EvmRequest::Transaction {
                tx: Box::new(tx),
                intent,
            })
        }
    }
}

/// The JSON-RPC result of a signature: a signed transaction as raw hex, or as geth's `{raw, tx}`
/// for a credential that asks for it (`token create --evm-tx-result geth`).
fn answer(signed: EvmSigned, shape: EvmTxResult) -> Value {
    match signed {
        EvmSigned::Signature(sig) => Value::String(format!("0x{}", hex::encode(sig))),
        EvmSigned::Transaction { tx, signed } => match shape {
            EvmTxResult::Raw => Value::String(format!("0x{}", hex::encode(&signed.raw))),
            EvmTxResult::Geth => transaction_json(&tx, &signed),
        },
        EvmSigned::Submitted(hash) => Value::String(hash),
    }
}

fn transaction_json(
    tx: &signward_evm::tx::TxRequest,
    signed: &signward_evm::tx::SignedTx,
) -> Value {
    let f = &tx.facts;
    let q = |v: u128| format!("0x{v:x}");
    let from = tx.from.map(|a| format!("{a:#x}"));
    let mut txj = json!({
        "type": format!("0x{:x}", match tx.kind { signward_evm::tx::TxType::Legacy => 0, signward_evm::tx::TxType::Eip2930 => 1, signward_evm::tx::TxType::Eip1559 => 2 }),
        "chainId": format!("0x{:x}", f.chain_id),
        "nonce": format!("0x{:x}", tx.nonce),
        "from": from,
        "to": f.to.map(|a| format!("{a:#x}")),
        "value": format!("{:#x}", f.value),
        "gas": format!("0x{:x}", f.gas),
        "input": format!("0x{}", hex::encode(&f.data)),
        "hash": format!("{:#x}", signed.hash),
        "r": format!("{:#x}", signed.r),
        "s": format!("{:#x}", signed.s),
        "v": format!("0x{:x}", signed.v),
    });
    if let Some(gp) = f.gas_price {
        txj["gasPrice"] = json!(q(gp));
    }
    if let (Some(mf), Some(mp)) = (f.max_fee_per_gas, f.max_priority_fee_per_gas) {
        txj["maxFeePerGas"] = json!(q(mf));
        txj["maxPriorityFeePerGas"] = json!(q(mp));
    }
    if tx.kind != signward_evm::tx::TxType::Legacy {
        txj["yParity"] = json!(format!("0x{:x}", signed.y_parity as u8));
    }
    json!({"raw": format!("0x{}", hex::encode(&signed.raw)), "tx": txj})
}

/// The response object for request `id`.
fn reply(id: Value, result: Rpc) -> Value {
    match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(RpcError {
            code,
            message,
            node_data: Some(data),
            ..
        }) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})
        }
        Err(e) => {
            let mut data = json!({"reason": e.reason});
            if let Some(d) = e.detail {
                data["detail"] = json!(d);
            }
            if let Some(s) = e.source {
                data["rule_source"] = json!(s);
            }
            if let Some(h) = e.hash {
                data["tx_hash"] = json!(h);
            }
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message, "data": data}})
        }
    }
}

/// Most bytes of answers one batch gathers before the rest of it is refused unexecuted.
pub const MAX_BATCH_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Most requests in one batch (ethers' default batch size); a larger batch is refused whole.
pub const MAX_BATCH: usize = 100;

/// `POST /`: one request, or a batch of up to [`MAX_BATCH`] (JSON-RPC 2.0), for the default
/// chain (`--evm-chain-id`, or the only upstream node's). Each element of a batch is its own
/// request: checked, decided and audited alone, in order, and answered in the same order; an
/// element without `id` is a notification and gets no answer.
pub async fn rpc(
    State(s): State<(Arc<AppState>, Limits)>,
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    body: Body,
) -> Response {
    serve(s, caller, client, body, None).await
}

/// `POST /chain/{id}`: as `POST /`, for chain `id` (its upstream node, and only its
/// transactions).
pub async fn rpc_chain(
    State(s): State<(Arc<AppState>, Limits)>,
    Path(chain): Path<u64>,
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    body: Body,
) -> Response {
    serve(s, caller, client, body, Some(chain)).await
}

async fn serve(
    (state, limits): (Arc<AppState>, Limits),
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    body: Body,
    route: Option<u64>,
) -> Response {
    let started = Instant::now();
    let caller = caller.map(|Extension(c)| c);
    let peer = client.map(|Extension(ClientIp(ip))| ip.to_string());
    let Ok(bytes) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return crate::error::ApiError::Engine(signward_engine::Rejection::BodyTooLarge)
            .into_response();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&signward_evm::json::quote_big_integers(&bytes))
    else {
        return Json(reply(Value::Null, Err(parse_error()))).into_response();
    };
    let items = match v {
        Value::Array(items) => items,
        one => {
            return Json(handle(&state, caller.as_deref(), peer, started, one, route).await)
                .into_response()
        }
    };
    if items.is_empty() {
        let e = RpcError::new(-32600, "invalid_request", "invalid request");
        return Json(reply(Value::Null, Err(e))).into_response();
    }
    if items.len() > MAX_BATCH {
        let e = RpcError::new(
            -32005,
            "batch_too_large",
            "limit exceeded: at most 100 requests in a batch",
        );
        return Json(reply(Value::Null, Err(e))).into_response();
    }
    let mut answers = Vec::with_capacity(items.len());
    let mut answered_bytes = 0usize;
    for item in items {
        let notification = item.as_object().is_some_and(|o| !o.contains_key("id"));
        if answered_bytes > MAX_BATCH_ANSWER_BYTES {
            // Forwarded reads can answer megabytes each: the rest of the batch is refused, not
            // carried out, once the answers so far exceed the bound.
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let e = RpcError::new(
                -32005,
                "batch_too_large",
                "limit exceeded: the batch's answers are too large; send the rest again",
            );
            if !notification {
                answers.push(reply(id, Err(e)));
            }
            continue;
        }
        let answer = handle(
            &state,
            caller.as_deref(),
            peer.clone(),
            Instant::now(),
            item,
            route,
        )
        .await;
        answered_bytes += serde_json::to_vec(&answer).map_or(0, |b| b.len());
        if !notification {
            answers.push(answer);
        }
    }
    if answers.is_empty() {
        // Only notifications: JSON-RPC 2.0 answers nothing.
        return axum::http::StatusCode::NO_CONTENT.into_response();
    }
    Json(Value::Array(answers)).into_response()
}

/// Answer one request object.
async fn handle(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    peer: Option<String>,
    started: Instant,
    v: Value,
    route: Option<u64>,
) -> Value {
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let method = match (
        v.get("jsonrpc").and_then(Value::as_str),
        v.get("method").and_then(Value::as_str),
    ) {
        // Only our own names go further; a request's name is never recorded or counted.
        (Some("2.0"), Some("eth_accounts")) => Method::Accounts,
        (Some("2.0"), Some("eth_chainId")) => Method::ChainId,
        (Some("2.0"), Some(m)) => EvmMethod::parse(m).map_or(Method::Other, Method::Sign),
        _ => {
            return reply(
                id,
                Err(RpcError::new(-32600, "invalid_request", "invalid request")),
            )
        }
    };
    let mut v = v;
    let params: Vec<Value> = match v.get_mut("params").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return reply(
                id,
                Err(EvmRejection::invalid_params("params must be an array").into()),
            )
        }
    };
    let shape = caller.map(|c| c.policy.evm_tx_result).unwrap_or_default();
    let record = signward_audit::Record {
        event: signward_audit::Event::Evm.into(),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        caller: Some(caller.map(|c| c.name.clone()).unwrap_or_else(|| "-".into())),
        peer,
        ..Default::default()
    };
    let result = match method {
        Method::Accounts => evm::accounts(state, caller)
            .map(|all| {
                json!(all
                    .into_iter()
                    .map(|a| a.to_checksum(None))
                    .collect::<Vec<_>>())
            })
            .map_err(RpcError::from),
        Method::ChainId => match signward_engine::access::admitted(state, caller) {
            Err(d) => Err(EvmRejection::NotGranted(d).into()),
            Ok(_) => evm::chain_id(state, route)
                .await
                .map(|id| json!(format!("{id:#x}")))
                .map_err(RpcError::from),
        },
        Method::Sign(m) => {
            let request = parse_request(m, &params, route);
            evm::sign(state, caller, m, request, record, started)
                .await
                .map(|s| answer(s, shape))
                .map_err(RpcError::from)
        }
        Method::Other => {
            let name = v.get("method").and_then(Value::as_str).unwrap_or("");
            match evm::forward(state, caller, route, name, Value::Array(params)).await {
                Err(EvmRejection::MethodNotFound) => {
                    Err(evm::refuse_unknown_method(state, record, started)
                        .await
                        .into())
                }
                other => other.map_err(RpcError::from),
            }
        }
    };
    reply(id, result)
}
