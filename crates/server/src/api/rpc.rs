//! The EVM JSON-RPC 2.0 endpoint (`POST /`, `sign` scope): `eth_accounts`, `eth_sign`,
//! `personal_sign`, `eth_signTypedData` / `eth_signTypedData_v4`, `eth_signTransaction`. Every
//! signing request passes the policy engine; every decision is audited (with the rule that
//! decided it) before the answer leaves. Errors are JSON-RPC error objects whose `data.reason`
//! is a stable code.

use std::sync::Arc;

use signward_audit::Outcome;
use std::time::Instant;

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use signward_auth::store::Caller;
use signward_auth::{KeyId, Operation};
use signward_evm::EvmKey;
use signward_policy::{Evaluation, Request};

use crate::gate::ClientIp;
use crate::serve::Limits;
use signward_engine::state::AppState;

/// A JSON-RPC error: numeric code, fixed message, stable reason and an optional detail.
#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub reason: &'static str,
    pub message: &'static str,
    pub detail: Option<String>,
    pub source: Option<String>,
}

impl RpcError {
    fn new(code: i64, reason: &'static str, message: &'static str) -> Self {
        RpcError {
            code,
            reason,
            message,
            detail: None,
            source: None,
        }
    }
    fn invalid_params(detail: impl Into<String>) -> Self {
        // A parser's message may quote the request: cut it.
        let detail: String = detail.into().chars().take(200).collect();
        RpcError {
            detail: Some(detail),
            ..Self::new(-32602, "invalid_params", "invalid params")
        }
    }
    fn refused(ev: &Evaluation) -> Self {
        let c = ev.refusal();
        RpcError {
            code: -32003,
            reason: c.map(|c| c.rule).unwrap_or("refused"),
            message: "refused by policy",
            detail: c.map(|c| c.detail.clone()),
            source: c.map(|c| c.source.clone()),
        }
    }
}

fn parse_error() -> RpcError {
    RpcError::new(-32700, "parse_error", "parse error")
}

type Rpc = Result<Value, RpcError>;

fn address_param(v: Option<&Value>) -> Result<Address, RpcError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("expected an address"))?;
    signward_policy::parse_address(s).map_err(|e| RpcError::invalid_params(e.to_string()))
}

/// The methods this endpoint knows, by their exact names. Only these names ever reach a log
/// field, a metric label or an audit record; anything else is `unknown`.
const METHODS: [&str; 6] = [
    "eth_accounts",
    "eth_sign",
    "personal_sign",
    "eth_signTypedData",
    "eth_signTypedData_v4",
    "eth_signTransaction",
];

fn known_method(m: &str) -> Option<&'static str> {
    METHODS.iter().find(|k| **k == m).copied()
}

fn hex_param(v: Option<&Value>) -> Result<Vec<u8>, RpcError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("expected hex data"))?;
    hex::decode(
        s.strip_prefix("0x")
            .ok_or_else(|| RpcError::invalid_params("data must be 0x-prefixed hex"))?,
    )
    .map_err(|_| RpcError::invalid_params("data is not hex"))
}

struct Ctx<'a> {
    state: &'a Arc<AppState>,
    caller: Option<&'a Caller>,
    record: signward_audit::Record,
}

impl Ctx<'_> {
    fn token(&self) -> Option<&str> {
        self.caller.map(|c| c.name.as_str())
    }

    /// Admission (canary → sealed → halted, as for eth2), then the caller's grants (this key,
    /// this family of methods), then the key itself.
    async fn key(&mut self, addr: &Address, method: &'static str) -> Result<Arc<EvmKey>, RpcError> {
        self.record.key = Some(format!("{addr:#x}"));
        signward_engine::admission::admit(
            self.state,
            self.caller,
            signward_engine::admission::Requested::Evm(addr),
            method,
        )
        .await
        .map_err(|r| match r {
            signward_engine::admission::Refused::Canary => {
                RpcError::new(-32008, "canary_key", "this key may not be used")
            }
            signward_engine::admission::Refused::Sealed => {
                RpcError::new(-32004, "sealed", "the vault is sealed")
            }
            signward_engine::admission::Refused::Halted => {
                RpcError::new(-32007, "halted", "signing is halted by an operator")
            }
        })?;
        if let Some(c) = self.caller {
            let op = Operation::of_evm_method(method)
                .ok_or_else(|| RpcError::new(-32601, "method_not_found", "method not found"))?;
            c.policy
                .check_key(KeyId::Evm(addr))
                .and_then(|()| c.policy.check_operation(op))
                .map_err(|d| {
                    tracing::warn!(caller = %c.name, method, reason = d.code(), "EVM request not granted to caller");
                    RpcError::new(-32010, d.code(), "not granted to this credential")
                })?;
        }
        self.state
            .evm
            .get(addr)
            .ok_or_else(|| RpcError::new(-32001, "unknown_account", "no key for this account"))
    }

    fn decide(
        &self,
        addr: &Address,
        req: &Request<'_>,
        intent: Option<&signward_policy::Intent>,
    ) -> Result<Evaluation, RpcError> {
        let ev = self.state.evm.evaluate(addr, self.token(), req, intent);
        if !ev.allowed() {
            return Err(RpcError::refused(&ev));
        }
        Ok(ev)
    }
}

fn rsv_hex(sig: [u8; 65]) -> Value {
    Value::String(format!("0x{}", hex::encode(sig)))
}

async fn sign_transaction(ctx: &mut Ctx<'_>, params: &[Value]) -> Rpc {
    let tx_value = params
        .first()
        .ok_or_else(|| RpcError::invalid_params("expected a transaction object"))?;
    let (tx, mut intent) =
        signward_evm::tx::parse(tx_value).map_err(|e| RpcError::invalid_params(e.to_string()))?;
    if let Some(extra) = params.get(1) {
        if let Some(i) = extra.get("intent") {
            intent = Some(
                serde_json::from_value(i.clone())
                    .map_err(|e| RpcError::invalid_params(format!("intent: {e}")))?,
            );
        }
    }
    let from = tx
        .from
        .ok_or_else(|| RpcError::invalid_params("from is required"))?;
    let key = ctx.key(&from, "eth_signTransaction").await?;
    let ev = ctx.decide(&from, &Request::Transaction(&tx.facts), intent.as_ref())?;
    // Spend windows: checked and recorded in one durable transaction before signing.
    if !ev.spend_windows.is_empty() {
        let ledger = ctx.state.evm.ledger.as_ref().ok_or_else(|| {
            RpcError::new(
                -32006,
                "spend_ledger_unavailable",
                "spend ledger unavailable; nothing was signed",
            )
        })?;
        match ledger.reserve(&ev.spend_windows, tx.facts.value).await {
            Ok(None) => {}
            Ok(Some(x)) => {
                return Err(RpcError {
                    code: -32003,
                    reason: x.rule,
                    message: "refused by policy",
                    detail: Some(x.detail),
                    source: Some(x.bucket),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "spend ledger failed");
                return Err(RpcError::new(
                    -32006,
                    "spend_ledger_unavailable",
                    "spend ledger unavailable; nothing was signed",
                ));
            }
        }
    }
    let signed = tx.sign(&key).map_err(|e| {
        tracing::error!(error = %e, "transaction signing failed");
        RpcError::new(-32603, "internal_error", "internal error")
    })?;
    let f = &tx.facts;
    let q = |v: u128| format!("0x{v:x}");
    let mut txj = json!({
        "type": format!("0x{:x}", match tx.kind { signward_evm::tx::TxType::Legacy => 0, signward_evm::tx::TxType::Eip2930 => 1, signward_evm::tx::TxType::Eip1559 => 2 }),
        "chainId": format!("0x{:x}", f.chain_id),
        "nonce": format!("0x{:x}", tx.nonce),
        "from": format!("{from:#x}"),
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
    Ok(json!({"raw": format!("0x{}", hex::encode(&signed.raw)), "tx": txj}))
}

async fn dispatch(ctx: &mut Ctx<'_>, method: &'static str, params: &[Value]) -> Rpc {
    let state = ctx.state;
    match method {
        "eth_accounts" => {
            if state.is_sealed() {
                return Err(RpcError::new(-32004, "sealed", "the vault is sealed"));
            }
            let mut all: Vec<Address> = state.evm.entries().into_iter().map(|(a, _)| a).collect();
            // Canary addresses are listed like any other: they are bait.
            for c in &state.canaries.evm {
                if !all.contains(c) {
                    all.push(*c);
                }
            }
            // Only the keys this credential is granted.
            Ok(json!(all
                .into_iter()
                .filter(|a| ctx
                    .caller
                    .is_none_or(|c| c.policy.may_see_key(KeyId::Evm(a))))
                .map(|a| a.to_checksum(None))
                .collect::<Vec<_>>()))
        }
        "eth_sign" | "personal_sign" => {
            // eth_sign: [address, data]; personal_sign: [data, address, ...].
            let (a, d) = if method == "eth_sign" {
                (params.first(), params.get(1))
            } else {
                (params.get(1), params.first())
            };
            let addr = address_param(a)?;
            let data = match (method, d.and_then(Value::as_str)) {
                ("personal_sign", Some(s)) if !s.starts_with("0x") => s.as_bytes().to_vec(),
                _ => hex_param(d)?,
            };
            let key = ctx.key(&addr, method).await?;
            ctx.decide(&addr, &Request::PersonalMessage, None)?;
            let sig = signward_evm::message::sign_personal(&key, &data)
                .map_err(|_| RpcError::new(-32603, "internal_error", "internal error"))?;
            Ok(rsv_hex(sig))
        }
        "eth_signTypedData" | "eth_signTypedData_v4" => {
            let addr = address_param(params.first())?;
            let typed = signward_evm::message::parse_typed(
                params
                    .get(1)
                    .ok_or_else(|| RpcError::invalid_params("expected typed data"))?,
            )
            .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            let key = ctx.key(&addr, method).await?;
            ctx.decide(
                &addr,
                &Request::TypedData {
                    chain_id: typed.chain_id,
                    verifying_contract: typed.verifying_contract,
                    primary_type: typed.primary_type(),
                    approval: typed.approval,
                },
                None,
            )?;
            let sig = typed
                .sign(&key)
                .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            Ok(rsv_hex(sig))
        }
        "eth_signTransaction" => sign_transaction(ctx, params).await,
        _ => Err(RpcError::new(
            -32601,
            "method_not_found",
            "method not found",
        )),
    }
}

fn reply(id: Value, result: Rpc) -> Response {
    match result {
        Ok(v) => Json(json!({"jsonrpc": "2.0", "id": id, "result": v})).into_response(),
        Err(e) => {
            let mut data = json!({"reason": e.reason});
            if let Some(d) = e.detail {
                data["detail"] = json!(d);
            }
            if let Some(s) = e.source {
                data["rule_source"] = json!(s);
            }
            Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message, "data": data}})).into_response()
        }
    }
}

/// `POST /`
pub async fn rpc(
    State((state, limits)): State<(Arc<AppState>, Limits)>,
    caller: Option<Extension<Arc<Caller>>>,
    client: Option<Extension<ClientIp>>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let caller = caller.map(|Extension(c)| c);
    let Ok(bytes) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return crate::error::ApiError::BodyTooLarge.into_response();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return reply(Value::Null, Err(parse_error()));
    };
    if v.is_array() {
        return reply(
            Value::Null,
            Err(RpcError::new(
                -32600,
                "batch_not_supported",
                "batch requests are not supported",
            )),
        );
    }
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let method = match (
        v.get("jsonrpc").and_then(Value::as_str),
        v.get("method").and_then(Value::as_str),
    ) {
        // Only our own names go further; a request's name is never recorded or counted.
        (Some("2.0"), Some(m)) => known_method(m).unwrap_or("unknown"),
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
        Some(_) => return reply(id, Err(RpcError::invalid_params("params must be an array"))),
    };
    let mut ctx = Ctx {
        state: &state,
        caller: caller.as_deref(),
        record: signward_audit::Record {
            event: signward_audit::Event::Evm.into(),
            request_id: Some(uuid::Uuid::new_v4().to_string()),
            caller: Some(
                caller
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "-".into()),
            ),
            peer: client.map(|Extension(ClientIp(ip))| ip.to_string()),
            operation: Some(method.to_string()),
            ..Default::default()
        },
    };
    let result = dispatch(&mut ctx, method, &params).await;
    if method == "eth_accounts" {
        return reply(id, result);
    }
    let mut record = ctx.record;
    record.latency_us = Some(started.elapsed().as_micros() as u64);
    let (decision, reason) = match &result {
        Ok(_) => (Outcome::Signed, ""),
        Err(e) if e.code == -32003 || e.code == -32008 => (Outcome::Refused, e.reason),
        Err(e) if e.code == -32010 => (Outcome::Denied, e.reason),
        Err(e) => (Outcome::Error, e.reason),
    };
    let decision = decision.as_str();
    record.decision = decision.into();
    record.reason = (!reason.is_empty()).then(|| reason.to_string());
    if let Err(e) = &result {
        tracing::info!(method, reason = e.reason, "EVM request refused");
    }
    state.metrics.request("evm", method, decision, reason);
    state.metrics.evm_latency.observe(started.elapsed());
    let result = match state.journal(record).await {
        Ok(()) => result,
        Err(e) => {
            tracing::error!(error = %e, "audit write failed; EVM response withheld");
            Err(RpcError::new(
                -32005,
                "audit_unavailable",
                "the audit log could not be written; nothing was released",
            ))
        }
    };
    reply(id, result)
}
