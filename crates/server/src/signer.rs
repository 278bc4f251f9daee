//! The signing pipeline, in the order a request must pass it:
//!
//! 1. readiness (keys loaded) → 2. key lookup → 3. body parse → 4. signing job computed by the
//!    server (signing root, slashable facts) → 5. *check-and-record* (slashing protection; the
//!    next step in the roadmap, it slots in here, before any BLS work) → 6. BLS signature, off the
//!    async runtime.

use std::sync::Arc;

use signward_core::bytes::{PublicKeyBytes, SignatureBytes};
use signward_core::request::SignRequest;
use signward_core::signing::{prepare, SigningJob};

use crate::error::ApiError;
use crate::state::AppState;

/// A signature and the job it was computed for.
pub struct Signed {
    pub job: SigningJob,
    pub signature: SignatureBytes,
}

/// Parse the `{identifier}` path segment.
pub fn parse_pubkey(s: &str) -> Result<PublicKeyBytes, ApiError> {
    s.parse().map_err(|_| ApiError::InvalidPubkey)
}

/// Run the pipeline for one eth2 sign request.
pub async fn sign_eth2(
    state: &Arc<AppState>,
    identifier: &str,
    body: &[u8],
) -> Result<Signed, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::NotReady);
    }
    let pubkey = parse_pubkey(identifier)?;
    let key = state.keys.get(&pubkey).ok_or(ApiError::UnknownKey)?;
    let request = SignRequest::from_json(body).map_err(|e| {
        tracing::debug!(
            error.class = e.classify_name(),
            line = e.line(),
            column = e.column(),
            "malformed sign request"
        );
        ApiError::MalformedBody
    })?;
    let job = prepare(&request, &state.network).map_err(|e| {
        tracing::debug!(error = %e, kind = %request.kind, "sign request refused");
        ApiError::from(&e)
    })?;
    let root = job.signing_root;
    let signature = tokio::task::spawn_blocking(move || key.sign(&root))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "signing task failed");
            ApiError::Internal
        })?;
    Ok(Signed { job, signature })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        }
    }
}
