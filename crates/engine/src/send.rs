//! `eth_sendTransaction` through the upstream node: admission and grants as for every EVM
//! request → the transaction filled from the node (chain id, gas, fees) → the policy and spend
//! windows decide on it as filled → a nonce allocated durably (shared by every instance on one
//! PostgreSQL) → signed → the signature audited with its hash → submitted with
//! `eth_sendRawTransaction` → the submission audited. A "nonce too low" answer resynchronises
//! from the node and retries with a fresh nonce (each signature audited on its own).

use std::sync::Arc;

use alloy_primitives::Address;
use signward_audit::{Event, Outcome, Record};
use signward_evm::nonces::NonceOutcome;

use crate::decision::{Decision, Pipeline};
use crate::evm::{
    admit, check_transaction, settle, upstream_failed, EvmMethod, EvmRejection, EvmSigned,
};

/// Signatures made for one request at most (the first and two resynchronisations).
const ATTEMPTS: usize = 3;

const METHOD: EvmMethod = EvmMethod::SendTransaction;

/// Fill, check, sign, audit, submit. `route` is the chain the request was addressed to
/// (`/chain/{id}`); `record` arrives with the caller, peer and id filled in.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send(
    state: &Arc<crate::AppState>,
    caller: Option<&signward_auth::store::Caller>,
    route: Option<u64>,
    from: Address,
    tx: serde_json::Map<String, serde_json::Value>,
    intent: Option<signward_policy::Intent>,
    mut record: Record,
    started: std::time::Instant,
) -> Result<EvmSigned, EvmRejection> {
    let prepared = prepare(state, caller, route, from, tx, intent, &mut record).await;
    let (key, mut tx, allocate, chain, up, intent) = match prepared {
        Ok(p) => p,
        Err(e) => {
            return settle(
                state,
                METHOD.as_str(),
                Err::<EvmSigned, _>(e),
                record,
                started,
            )
            .await
        }
    };
    let Some(ledger) = state.evm.ledger.as_ref() else {
        return settle(
            state,
            METHOD.as_str(),
            Err(EvmRejection::LedgerUnavailable),
            record,
            started,
        )
        .await;
    };
    let token = caller.map(|c| c.name.clone());
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Another signature is another transaction the node could mine: the policy and the
            // spend windows decide on it again (a node that keeps saying "nonce too low" cannot
            // multiply a spend).
            if let Err(e) = check_transaction(
                state,
                &from,
                token.as_deref(),
                &tx,
                intent.as_ref(),
                !allocate,
            )
            .await
            {
                return settle(state, METHOD.as_str(), Err(e), record, started).await;
            }
        }
        if allocate {
            let nonce = async {
                let node_next = up
                    .pending_nonce(&format!("{from:#x}"))
                    .await
                    .map_err(upstream_failed)?;
                ledger
                    .allocate_nonce(chain, &from, node_next)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "nonce allocation failed");
                        EvmRejection::LedgerUnavailable
                    })
            }
            .await;
            match nonce {
                Ok(n) => tx.nonce = n,
                Err(e) => return settle(state, METHOD.as_str(), Err(e), record, started).await,
            }
        }
        let signed = match tx.sign(key.key()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "transaction signing failed");
                return settle(
                    state,
                    METHOD.as_str(),
                    Err(EvmRejection::Internal),
                    record,
                    started,
                )
                .await;
            }
        };
        let hash = format!("{:#x}", signed.hash);
        // The signature is audited before it leaves for the node.
        let mut signed_record = record.clone();
        signed_record.tx_hash = Some(hash.clone());
        settle(state, METHOD.as_str(), Ok(()), signed_record, started).await?;
        // Submitted and recorded in a task of its own: a request cut off by its deadline still
        // leaves the submission's record and the nonce's bookkeeping behind.
        let submission = Submission {
            route,
            raw: signed.raw,
            hash: hash.clone(),
            record: record.clone(),
            started,
            nonce: allocate.then_some((chain, from, tx.nonce)),
        };
        let submitted = match tokio::spawn(submission.run(state.clone())).await {
            Ok(r) => r,
            Err(_) => return Err(EvmRejection::Internal),
        };
        match submitted {
            Ok(_) => return Ok(EvmSigned::Submitted(hash)),
            Err(e) if e.is_nonce_too_low() && allocate && attempt + 1 < ATTEMPTS => {
                tracing::warn!(
                    nonce = tx.nonce,
                    "the node says the nonce is used; resynchronising"
                );
                continue;
            }
            Err(e) => {
                let mut r = upstream_failed(e);
                if let EvmRejection::Upstream { hash: h, .. } = &mut r {
                    *h = Some(hash);
                }
                return Err(r);
            }
        }
    }
    Err(EvmRejection::Internal)
}

/// One signed transaction on its way to the node.
struct Submission {
    route: Option<u64>,
    raw: Vec<u8>,
    hash: String,
    record: Record,
    started: std::time::Instant,
    /// (chain, account, nonce) when the nonce was allocated here and must be settled.
    nonce: Option<(u64, Address, u64)>,
}

impl Submission {
    /// Submit, settle the nonce, and write the submission's audit record (operation
    /// `eth_sendRawTransaction`, `submitted` or `not_submitted` with its reason and the hash).
    async fn run(self, state: Arc<crate::AppState>) -> Result<String, signward_node::NodeError> {
        let submitted = match crate::evm::select(&state, self.route).await {
            Ok((Some(up), _)) => match up.submit(&self.raw).await {
                // The node already has this very transaction: it was submitted.
                Err(e) if e.is_already_known() => Ok(self.hash.clone()),
                other => other,
            },
            _ => Err(signward_node::NodeError::Transport(
                "the upstream node is no longer available".into(),
            )),
        };
        let (outcome, reason, nonce_outcome) = match &submitted {
            Ok(_) => (Outcome::Submitted, None, Some(NonceOutcome::Submitted)),
            Err(e) if e.is_nonce_too_low() => (
                Outcome::NotSubmitted,
                Some("nonce_too_low"),
                Some(NonceOutcome::Used),
            ),
            Err(signward_node::NodeError::Rpc { .. }) => (
                Outcome::NotSubmitted,
                Some("upstream_refused"),
                Some(NonceOutcome::Refused),
            ),
            // Unknown whether the node has it: the nonce stays allocated until the node shows
            // it or the stale bound passes.
            Err(_) => (Outcome::NotSubmitted, Some("upstream_unavailable"), None),
        };
        if let (Some((chain, from, nonce)), Some(o), Some(ledger)) =
            (self.nonce, nonce_outcome, state.evm.ledger.as_ref())
        {
            if let Err(e) = ledger.settle_nonce(chain, &from, nonce, o).await {
                tracing::error!(error = %e, "nonce bookkeeping failed");
            }
        }
        let mut record = self.record;
        record.event = Event::Evm.into();
        record.operation = Some("eth_sendRawTransaction".into());
        record.tx_hash = Some(self.hash);
        // Its failure to be written cannot recall the transaction; it is logged (by settle),
        // and the answer still says what happened.
        let _ = crate::decision::settle(
            &state,
            Decision {
                pipeline: Pipeline::Evm,
                operation: "eth_sendRawTransaction",
                outcome,
                reason,
            },
            record,
            self.started,
            false,
        )
        .await;
        submitted
    }
}

type Prepared<'a> = (
    crate::state::KeyLease<signward_evm::EvmKey>,
    signward_evm::tx::TxRequest,
    bool,
    u64,
    &'a crate::upstream::Upstream,
    Option<signward_policy::Intent>,
);

/// Everything before the nonce: admission, grants and the key; the transaction filled from the
/// node and parsed strictly; the policy and spend windows.
#[allow(clippy::too_many_arguments)]
async fn prepare<'a>(
    state: &'a Arc<crate::AppState>,
    caller: Option<&signward_auth::store::Caller>,
    route: Option<u64>,
    from: Address,
    mut tx: serde_json::Map<String, serde_json::Value>,
    intent: Option<signward_policy::Intent>,
    record: &mut Record,
) -> Result<Prepared<'a>, EvmRejection> {
    const NO_NODE: EvmRejection = EvmRejection::NotSupported(
        "eth_sendTransaction needs an upstream node (--evm-upstream-url)",
    );
    if state.evm.upstreams.is_empty() {
        return Err(NO_NODE);
    }
    let caller = crate::access::admitted(state, caller).map_err(EvmRejection::NotGranted)?;
    let key = admit(state, caller, &from, METHOD, record).await?;
    let (up, chain) = crate::evm::select(state, route).await?;
    let up = up.ok_or(NO_NODE)?;
    if let Some(asked) = tx.get("chainId") {
        let asked = signward_evm::tx::quantity(asked)
            .map_err(|e| EvmRejection::invalid_params(e.to_string()))?;
        if asked != u128::from(chain) {
            return Err(EvmRejection::WrongChain);
        }
    }
    up.fill(&mut tx).await.map_err(upstream_failed)?;
    let allocate = !tx.contains_key("nonce");
    if allocate {
        // A stand-in until the policy has passed and a nonce is allocated.
        tx.insert("nonce".into(), serde_json::json!("0x0"));
    }
    let (parsed, tx_intent) = signward_evm::tx::parse(&serde_json::Value::Object(tx))
        .map_err(|e| EvmRejection::invalid_params(e.to_string()))?;
    let intent = intent.or(tx_intent);
    let token = caller.map(|c| c.name.as_str());
    check_transaction(state, &from, token, &parsed, intent.as_ref(), !allocate).await?;
    Ok((key, parsed, allocate, chain, up, intent))
}
