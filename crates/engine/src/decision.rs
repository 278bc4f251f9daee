//! The one place a decision becomes what the operator sees of it: the audit record (outcome and
//! reason from `signward-audit`'s vocabulary), the request counter and the latency histogram.
//! The record is written durably before any answer leaves; an answer whose record cannot be
//! written is withheld by the pipeline that asked.

use signward_audit::{Outcome, Record};

use crate::state::AppState;

/// Which signing pipeline decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// `POST /api/v1/eth2/sign/{identifier}`.
    Eth2,
    /// The EVM JSON-RPC methods.
    Evm,
}

impl Pipeline {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::Eth2 => "eth2",
            Pipeline::Evm => "evm",
        }
    }
}

/// One decision, in the audit vocabulary: what was asked (`operation`, our own names only), the
/// outcome and its stable reason code.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// Which pipeline decided.
    pub pipeline: Pipeline,
    /// The message type or method (a fixed name, never the request's own text).
    pub operation: &'static str,
    /// What became of the request.
    pub outcome: Outcome,
    /// The stable code of a refusal or failure.
    pub reason: Option<&'static str>,
}

/// Fill `record` with `decision`, count and time it, and write it durably unless `written`
/// (the slashing database already committed it with its check). `Err` when the record could
/// not be written: the caller must not release its answer.
pub(crate) async fn settle(
    state: &AppState,
    decision: Decision,
    mut record: Record,
    started: std::time::Instant,
    written: bool,
) -> Result<(), ()> {
    let elapsed = started.elapsed();
    record.latency_us = Some(elapsed.as_micros() as u64);
    record.decision = decision.outcome.into();
    record.reason = decision.reason.map(String::from);
    state.metrics.request(
        decision.pipeline.as_str(),
        decision.operation,
        decision.outcome.as_str(),
        decision.reason.unwrap_or(""),
    );
    match decision.pipeline {
        Pipeline::Eth2 => state.metrics.eth2_latency.observe(elapsed),
        Pipeline::Evm => state.metrics.evm_latency.observe(elapsed),
    }
    if written || state.audit.is_none() {
        return Ok(());
    }
    state.journal(record).await.map_err(|e| {
        tracing::error!(error = %e, pipeline = decision.pipeline.as_str(), "audit write failed; response withheld");
    })
}
