//! EVM keys as the server holds them, the policy in force, the spend ledger, and the signing
//! pipeline behind the JSON-RPC methods: parse → key → policy (key and credential rule sets,
//! declared intent) → spend windows reserved durably → sign → audit → answer.

use std::sync::{Arc, RwLock};

use alloy_primitives::Address;
use signward_evm::ledger::SpendLedger;
use signward_evm::EvmKey;
use signward_policy::{evaluate, Evaluation, Policy, Request};

use crate::state::{KeyLease, KeyOrigin, Registry};

/// EVM state of a running engine: the keys (in the one [`Registry`]), the policy in force and
/// the spend ledger.
#[derive(Default)]
pub struct EvmState {
    /// The EVM keys.
    pub keys: Registry<EvmKey>,
    policy: RwLock<Option<Arc<Policy>>>,
    /// The spend ledger (windows reserved durably before signing); `None` refuses every spend window.
    pub ledger: Option<SpendLedger>,
    /// Development mode (`--dev`): reported as unsafe by the health check.
    pub dev: bool,
    /// The nodes behind signward (`--evm-upstream-url`, one per chain).
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// The chain `eth_chainId` answers without a node (`--evm-chain-id`); with a node, the
    /// node's chain must be this one.
    pub chain_id: Option<u64>,
}

impl EvmState {
    /// State with no keys, the policy `policy` and the ledger `ledger`.
    pub fn new(policy: Option<Policy>, ledger: Option<SpendLedger>, dev: bool) -> Self {
        EvmState {
            keys: Registry::default(),
            policy: RwLock::new(policy.map(Arc::new)),
            ledger,
            dev,
            upstreams: Vec::new(),
            chain_id: None,
        }
    }

    /// Addresses and origins, sorted by address.
    pub fn entries(&self) -> Vec<(Address, KeyOrigin)> {
        let mut v = self.keys.entries();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// The policy in force.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace the policy (SIGHUP reload).
    pub fn set_policy(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(p));
    }

    /// Evaluate `req` for `key` and credential `token` under the policy in force. Without a
    /// policy, everything is refused (`no_policy`).
    pub fn evaluate(
        &self,
        key: &Address,
        token: Option<&str>,
        req: &Request<'_>,
        intent: Option<&signward_policy::Intent>,
    ) -> Evaluation {
        match self.policy() {
            Some(p) => evaluate(&p, key, token, req, intent, now_secs()),
            None => Evaluation {
                checks: vec![signward_policy::Check {
                    source: "server".into(),
                    rule: "no_policy",
                    passed: false,
                    detail: "no EVM policy is configured (--evm-policy)".into(),
                }],
                spend_windows: Vec::new(),
            },
        }
    }
}

/// Unix seconds, for the policy's deadline rules.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The signing methods of the EVM JSON-RPC endpoint, by their exact names. Only these names
/// ever reach a log field, a metric label or an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvmMethod {
    /// `eth_sign`
    EthSign,
    /// `personal_sign`
    PersonalSign,
    /// `eth_signTypedData`
    SignTypedData,
    /// `eth_signTypedData_v4`
    SignTypedDataV4,
    /// `eth_signTransaction`
    SignTransaction,
    /// `eth_sendTransaction` (with an upstream node): filled, checked, signed and submitted.
    SendTransaction,
}

impl EvmMethod {
    /// Every method, in a fixed order.
    pub const ALL: [EvmMethod; 6] = [
        EvmMethod::EthSign,
        EvmMethod::PersonalSign,
        EvmMethod::SignTypedData,
        EvmMethod::SignTypedDataV4,
        EvmMethod::SignTransaction,
        EvmMethod::SendTransaction,
    ];

    /// The JSON-RPC name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvmMethod::EthSign => "eth_sign",
            EvmMethod::PersonalSign => "personal_sign",
            EvmMethod::SignTypedData => "eth_signTypedData",
            EvmMethod::SignTypedDataV4 => "eth_signTypedData_v4",
            EvmMethod::SignTransaction => "eth_signTransaction",
            EvmMethod::SendTransaction => "eth_sendTransaction",
        }
    }

    /// The method named `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// What an EVM signing request asks for, parsed by the edge.
pub enum EvmRequest {
    /// `eth_sign` / `personal_sign`: an EIP-191 personal message.
    Message {
        /// The signing account.
        from: Address,
        /// The message bytes.
        data: Vec<u8>,
    },
    /// `eth_signTypedData(_v4)`: EIP-712 typed data.
    TypedData {
        /// The signing account.
        from: Address,
        /// The parsed typed data.
        typed: signward_evm::message::Typed,
    },
    /// `eth_signTransaction`, with the caller's declared intent when it sent one.
    Transaction {
        /// The parsed transaction (its `from` is required).
        tx: Box<signward_evm::tx::TxRequest>,
        /// The intent the caller declared.
        intent: Option<signward_policy::Intent>,
    },
    /// `eth_sendTransaction`: the transaction object as sent, to be filled from the node.
    Send {
        /// The chain the request was addressed to (`/chain/{id}`), if it named one.
        route: Option<u64>,
        /// The signing account.
        from: Address,
        /// The transaction object (`from` included; nonce, gas, fees and chain id optional).
        tx: serde_json::Map<String, serde_json::Value>,
        /// The intent the caller declared beside the transaction.
        intent: Option<signward_policy::Intent>,
    },
}

/// What the engine signed.
pub enum EvmSigned {
    /// A 65-byte `r ‖ s ‖ v` signature over a message or typed data.
    Signature([u8; 65]),
    /// A signed transaction and the request it was built from.
    Transaction {
        /// The request as parsed.
        tx: Box<signward_evm::tx::TxRequest>,
        /// The signature, hash and raw encoding.
        signed: signward_evm::tx::SignedTx,
    },
    /// A transaction signed and accepted by the upstream node: its hash.
    Submitted(String),
}

/// Why an EVM request was not signed. The JSON-RPC edge maps each to its error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvmRejection {
    /// The request's parameters are not what the method takes (a detail cut to 200 chars).
    InvalidParams(String),
    /// A canary account was requested: never signed with; the alarm has been raised.
    Canary,
    /// The vault is sealed.
    Sealed,
    /// An operator (or a canary) halted signing.
    Halted,
    /// The credential is not granted this account or this method.
    NotGranted(signward_auth::Denied),
    /// No key for this account.
    UnknownAccount,
    /// The policy refused: the rule that decided, its detail and where the rule came from.
    Policy {
        /// The rule's stable name.
        rule: &'static str,
        /// What the rule saw.
        detail: Option<String>,
        /// Which rule set it belongs to.
        source: Option<String>,
    },
    /// The spend ledger could not decide; nothing was signed.
    LedgerUnavailable,
    /// The audit record could not be written; nothing was released.
    AuditUnavailable,
    /// Not one of the signing methods.
    MethodNotFound,
    /// A method signward knows but this configuration does not serve (e.g. `eth_sendTransaction`
    /// without an upstream node); the detail says what is missing.
    NotSupported(&'static str),
    /// The upstream node failed or refused. `code` and `message` are the node's (bounded) when
    /// it answered; `hash` is set when a signed transaction may have reached it.
    Upstream {
        /// `upstream_refused` (the node answered with an error) or `upstream_unavailable`.
        reason: &'static str,
        /// The node's JSON-RPC code, when it answered.
        code: Option<i64>,
        /// What happened (the node's message, cut to 200 characters, or ours).
        message: String,
        /// The transaction hash, when a signed transaction was handed to the node.
        hash: Option<String>,
        /// The node's own error `data` (e.g. revert data from `eth_call`), passed on as it is.
        data: Option<serde_json::Value>,
    },
    /// The node serves another chain than the one configured (`--evm-chain-id`) or requested.
    WrongChain,
    /// Anything else; details are in the log.
    Internal,
}

impl EvmRejection {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            EvmRejection::InvalidParams(_) => "invalid_params",
            EvmRejection::Canary => "canary_key",
            EvmRejection::Sealed => "sealed",
            EvmRejection::Halted => "halted",
            EvmRejection::NotGranted(d) => d.code(),
            EvmRejection::UnknownAccount => "unknown_account",
            EvmRejection::Policy { rule, .. } => rule,
            EvmRejection::LedgerUnavailable => "spend_ledger_unavailable",
            EvmRejection::AuditUnavailable => "audit_unavailable",
            EvmRejection::MethodNotFound => "method_not_found",
            EvmRejection::NotSupported(_) => "method_not_supported",
            EvmRejection::Upstream { reason, .. } => reason,
            EvmRejection::WrongChain => "wrong_chain",
            EvmRejection::Internal => "internal_error",
        }
    }

    /// The audit outcome of this rejection.
    pub fn outcome(&self) -> signward_audit::Outcome {
        match self {
            EvmRejection::Policy { .. } | EvmRejection::Canary => signward_audit::Outcome::Refused,
            EvmRejection::NotGranted(_) => signward_audit::Outcome::Denied,
            _ => signward_audit::Outcome::Error,
        }
    }

    /// Cut a parser's message (it may quote the request) to a bounded detail.
    pub fn invalid_params(detail: impl Into<String>) -> Self {
        EvmRejection::InvalidParams(detail.into().chars().take(200).collect())
    }

    pub(crate) fn refused(ev: &Evaluation) -> Self {
        let c = ev.refusal();
        EvmRejection::Policy {
            rule: c.map(|c| c.rule).unwrap_or("refused"),
            detail: c.map(|c| c.detail.clone()),
            source: c.map(|c| c.source.clone()),
        }
    }
}

/// The accounts `caller` may see, canaries included (they are bait), sorted by address with
/// canaries after. Refused while the vault is sealed.
pub fn accounts(
    state: &crate::AppState,
    caller: Option<&signward_auth::store::Caller>,
) -> Result<Vec<Address>, EvmRejection> {
    let caller = crate::access::admitted(state, caller).map_err(EvmRejection::NotGranted)?;
    if state.is_sealed() {
        return Err(EvmRejection::Sealed);
    }
    let mut all: Vec<Address> = state.evm.entries().into_iter().map(|(a, _)| a).collect();
    for c in &state.canaries.evm {
        if !all.contains(c) {
            all.push(*c);
        }
    }
    all.retain(|a| {
        signward_auth::authorize(
            caller,
            signward_auth::Action::SeeKey(signward_auth::KeyId::Evm(a)),
        )
        .is_ok()
    });
    Ok(all)
}

/// Run the EVM pipeline for one request and record the decision durably before anything is
/// released: admission (canary → sealed → halted, as for eth2) → the caller's grants (this
/// account, this family of methods) → the key → the policy (key and credential rule sets,
/// declared intent) → spend windows reserved durably → sign → audit. `request` is what the edge
/// parsed, or why it could not (that is recorded too); `record` arrives with the request's
/// caller, peer and id filled in; `started` is when the request arrived.
pub async fn sign(
    state: &Arc<crate::AppState>,
    caller: Option<&signward_auth::store::Caller>,
    method: EvmMethod,
    request: Result<EvmRequest, EvmRejection>,
    mut record: signward_audit::Record,
    started: std::time::Instant,
) -> Result<EvmSigned, EvmRejection> {
    if let Ok(EvmRequest::Send {
        route,
        from,
        tx,
        intent,
    }) = request
    {
        return crate::send::send(state, caller, route, from, tx, intent, record, started).await;
    }
    let result = match request {
        Ok(request) => run(state, caller, method, request, &mut record).await,
        Err(e) => Err(e),
    };
    if let Ok(EvmSigned::Transaction { signed, .. }) = &result {
        record.tx_hash = Some(format!("{:#x}", signed.hash));
    }
    settle(state, method.as_str(), result, record, started).await
}

/// Which chain a request is for, and the node that serves it: `route` is the chain the request
/// was addressed to (`/chain/{id}`), `None` for `/`. On `/`: `--evm-chain-id`, or the only node's
/// chain. A node declared for a chain (`CHAIN_ID=URL`) must serve it, and with `--evm-chain-id`
/// the node for `/` must serve that chain.
pub async fn select(
    state: &crate::AppState,
    route: Option<u64>,
) -> Result<(Option<&crate::upstream::Upstream>, u64), EvmRejection> {
    let ups = &state.evm.upstreams;
    let want = route.or(state.evm.chain_id);
    let Some(want) = want else {
        return match ups.as_slice() {
            [] => Err(EvmRejection::NotSupported(
                "no chain is configured (--evm-chain-id or --evm-upstream-url)",
            )),
            [one] => {
                let id = one.chain_id().await.map_err(node_chain_failed)?;
                Ok((Some(one), id))
            }
            _ => Err(EvmRejection::NotSupported(
                "several chains are configured: address one as /chain/{id}, or set --evm-chain-id",
            )),
        };
    };
    if let Some(up) = ups.iter().find(|u| u.declared() == Some(want)) {
        up.chain_id().await.map_err(node_chain_failed)?;
        return Ok((Some(up), want));
    }
    for up in ups.iter().filter(|u| u.declared().is_none()) {
        if up.chain_id().await.map_err(node_chain_failed)? == want {
            return Ok((Some(up), want));
        }
    }
    if state.evm.chain_id == Some(want) {
        if ups.len() == 1 && ups[0].declared().is_none() {
            // The only node serves another chain than --evm-chain-id.
            tracing::error!(
                configured = want,
                "the upstream node serves another chain than --evm-chain-id"
            );
            return Err(EvmRejection::WrongChain);
        }
        return Ok((None, want));
    }
    Err(EvmRejection::NotSupported(
        "this chain is not served here (no upstream node or --evm-chain-id for it)",
    ))
}

/// A node that cannot say its chain, or says the wrong one.
fn node_chain_failed(e: signward_node::NodeError) -> EvmRejection {
    match e {
        signward_node::NodeError::BadAnswer(m) if m.contains("another chain") => {
            tracing::error!("an upstream node serves another chain than the one declared for it");
            EvmRejection::WrongChain
        }
        other => upstream_failed(other),
    }
}

/// The chain `eth_chainId` answers for a request addressed to `route` (see [`select`]).
pub async fn chain_id(state: &crate::AppState, route: Option<u64>) -> Result<u64, EvmRejection> {
    select(state, route).await.map(|(_, id)| id)
}

/// Forward a read to the node of the request's chain, if `method` is on the forwarded list.
/// The caller must be admitted (a credential with the `evm` scope); reads sign nothing and are
/// not audited.
pub async fn forward(
    state: &crate::AppState,
    caller: Option<&signward_auth::store::Caller>,
    route: Option<u64>,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, EvmRejection> {
    crate::access::admitted(state, caller).map_err(EvmRejection::NotGranted)?;
    // Every node forwards the same list: a method not on it is not found, whatever the nodes'
    // state, and nothing reaches a node for it.
    if state
        .evm
        .upstreams
        .first()
        .and_then(|u| u.forwarded(method))
        .is_none()
    {
        return Err(EvmRejection::MethodNotFound);
    }
    let (up, _) = select(state, route).await?;
    let up = up.ok_or(EvmRejection::MethodNotFound)?;
    let name = up.forwarded(method).ok_or(EvmRejection::MethodNotFound)?;
    // A read's error is the node's own, data and all (revert data that clients decode).
    up.node()
        .call(name, params)
        .await
        .map_err(|e| node_failed(e, true))
}

/// A node failure as the caller sees it.
pub(crate) fn upstream_failed(e: signward_node::NodeError) -> EvmRejection {
    // On the signing path the node's `data` is not passed on: the answer's `data` is ours (the
    // reason, and the hash once a transaction was handed over).
    node_failed(e, false)
}

/// A node failure; with `keep_data`, the node's own error `data` goes with it (forwarded reads).
fn node_failed(e: signward_node::NodeError, keep_data: bool) -> EvmRejection {
    match e {
        signward_node::NodeError::Rpc {
            code,
            message,
            data,
        } => EvmRejection::Upstream {
            reason: "upstream_refused",
            code: Some(code),
            message,
            hash: None,
            data: data.filter(|_| keep_data),
        },
        other => {
            tracing::warn!(error = %other, "upstream node failed");
            EvmRejection::Upstream {
                reason: "upstream_unavailable",
                code: None,
                message: other.to_string(),
                hash: None,
                data: None,
            }
        }
    }
}

/// Record a request for a method that is not one of ours (named `unknown`: a request's own
/// name is never recorded or counted).
pub async fn refuse_unknown_method(
    state: &crate::AppState,
    record: signward_audit::Record,
    started: std::time::Instant,
) -> EvmRejection {
    match settle(
        state,
        "unknown",
        Err::<(), _>(EvmRejection::MethodNotFound),
        record,
        started,
    )
    .await
    {
        Ok(()) => EvmRejection::MethodNotFound,
        Err(e) => e,
    }
}

/// Count, time and audit one decision; a result whose record cannot be written is withheld.
pub(crate) async fn settle<T>(
    state: &crate::AppState,
    method: &'static str,
    result: Result<T, EvmRejection>,
    mut record: signward_audit::Record,
    started: std::time::Instant,
) -> Result<T, EvmRejection> {
    record.operation = Some(method.to_string());
    let (outcome, reason) = match &result {
        Ok(_) => (signward_audit::Outcome::Signed, None),
        Err(e) => (e.outcome(), Some(e.reason())),
    };
    if let Some(reason) = reason {
        tracing::info!(method, reason, "EVM request refused");
    }
    let decision = crate::decision::Decision {
        pipeline: crate::decision::Pipeline::Evm,
        operation: method,
        outcome,
        reason,
    };
    match crate::decision::settle(state, decision, record, started, false).await {
        Ok(()) => result,
        Err(()) => Err(EvmRejection::AuditUnavailable),
    }
}

async fn run(
    state: &Arc<crate::AppState>,
    caller: Option<&signward_auth::store::Caller>,
    method: EvmMethod,
    request: EvmRequest,
    record: &mut signward_audit::Record,
) -> Result<EvmSigned, EvmRejection> {
    let caller = crate::access::admitted(state, caller).map_err(EvmRejection::NotGranted)?;
    let from = match &request {
        EvmRequest::Message { from, .. } | EvmRequest::TypedData { from, .. } => *from,
        EvmRequest::Transaction { tx, .. } => tx
            .from
            .ok_or_else(|| EvmRejection::invalid_params("from is required"))?,
        EvmRequest::Send { .. } => return Err(EvmRejection::Internal),
    };
    let key = admit(state, caller, &from, method, record).await?;
    let token = caller.map(|c| c.name.as_str());
    let decide = |req: &Request<'_>, intent: Option<&signward_policy::Intent>| {
        let ev = state.evm.evaluate(&from, token, req, intent);
        if ev.allowed() {
            Ok(ev)
        } else {
            Err(EvmRejection::refused(&ev))
        }
    };
    match request {
        EvmRequest::Message { data, .. } => {
            decide(&Request::PersonalMessage(&data), None)?;
            signward_evm::message::sign_personal(key.key(), &data)
                .map(EvmSigned::Signature)
                .map_err(|e| {
                    tracing::error!(error = %e, "message signing failed");
                    EvmRejection::Internal
                })
        }
        EvmRequest::TypedData { typed, .. } => {
            decide(&Request::TypedData(typed.facts()), None)?;
            typed
                .sign(key.key())
                .map(EvmSigned::Signature)
                .map_err(|e| EvmRejection::invalid_params(e.to_string()))
        }
        EvmRequest::Transaction { tx, intent } => {
            check_transaction(state, &from, token, &tx, intent.as_ref(), true).await?;
            let signed = tx.sign(key.key()).map_err(|e| {
                tracing::error!(error = %e, "transaction signing failed");
                EvmRejection::Internal
            })?;
            Ok(EvmSigned::Transaction { tx, signed })
        }
        EvmRequest::Send { .. } => Err(EvmRejection::Internal),
    }
}

/// The policy's decision on a transaction (key and credential rule sets, declared intent), then
/// its spend windows checked and recorded in one durable transaction. Nothing is signed unless
/// this passes.
pub(crate) async fn check_transaction(
    state: &crate::AppState,
    from: &Address,
    token: Option<&str>,
    tx: &signward_evm::tx::TxRequest,
    intent: Option<&signward_policy::Intent>,
    nonce_given: bool,
) -> Result<(), EvmRejection> {
    let ev = state
        .evm
        .evaluate(from, token, &Request::Transaction(&tx.facts), intent);
    if !ev.allowed() {
        return Err(EvmRejection::refused(&ev));
    }
    if ev.spend_windows.is_empty() {
        return Ok(());
    }
    let ledger = state
        .evm
        .ledger
        .as_ref()
        .ok_or(EvmRejection::LedgerUnavailable)?;
    // A transaction with the nonce of one already charged replaces it (a fee bump): counted
    // once. (eth_sendTransaction's nonce is allocated after this check: never a replacement.)
    let tx_key = nonce_given.then(|| format!("{}:{from:#x}:{}", tx.facts.chain_id, tx.nonce));
    match ledger.reserve(&ev.spend_windows, tx_key.as_deref()).await {
        Ok(None) => Ok(()),
        Ok(Some(x)) => Err(EvmRejection::Policy {
            rule: x.rule,
            detail: Some(x.detail),
            source: Some(x.bucket),
        }),
        Err(e) => {
            tracing::error!(error = %e, "spend ledger failed");
            Err(EvmRejection::LedgerUnavailable)
        }
    }
}

/// Admission (canary → sealed → halted, as for eth2), then the caller's grants (this account,
/// this family of methods), then the key itself.
pub(crate) async fn admit(
    state: &Arc<crate::AppState>,
    caller: Option<&signward_auth::store::Caller>,
    addr: &Address,
    method: EvmMethod,
    record: &mut signward_audit::Record,
) -> Result<KeyLease<EvmKey>, EvmRejection> {
    record.key = Some(format!("{addr:#x}"));
    crate::admission::admit(
        state,
        caller,
        crate::admission::Requested::Evm(addr),
        method.as_str(),
    )
    .await
    .map_err(|r| match r {
        crate::admission::Refused::Canary => EvmRejection::Canary,
        crate::admission::Refused::Sealed => EvmRejection::Sealed,
        crate::admission::Refused::Halted => EvmRejection::Halted,
    })?;
    let operation =
        signward_auth::Operation::of_evm_method(method.as_str()).ok_or(EvmRejection::Internal)?;
    signward_auth::authorize(
        caller,
        signward_auth::Action::SignEvm {
            account: addr,
            operation,
        },
    )
    .map_err(|d| {
        tracing::warn!(
            caller = caller.map_or("-", |c| c.name.as_str()),
            method = method.as_str(),
            reason = d.code(),
            "EVM request not granted to caller"
        );
        EvmRejection::NotGranted(d)
    })?;
    state
        .evm
        .keys
        .lease(addr)
        .await
        .ok_or(EvmRejection::UnknownAccount)
}
