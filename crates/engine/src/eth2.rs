//! The signing pipeline, in the order a request must pass it:
//!
//! 1. readiness (keys loaded) → 2. admission (canary → sealed → halted) → 3. key granted to
//!    the caller, then leased (a delete waits for the lease) → 4. body parse, operation granted →
//!    5. signing job computed by the server (signing root, slashable facts) → 6. check-and-record
//!    for blocks and attestations: the chain clock, then the slashing database decides, records
//!    and commits durably; for every other message the database still says whether the
//!    validator may sign (not disabled, same chain) → 7. BLS signature, off the async runtime.
//!    A refused request costs no BLS work, and nothing is signed when the database cannot answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use signward_auth::store::Caller;
use signward_auth::{Action, KeyId, Operation};
use signward_core::bytes::{PublicKeyBytes, SignatureBytes};
use signward_core::request::SignRequest;
use signward_core::signing::{prepare, SigningJob, Slashable};
use signward_slashing::{Check, Decision, Refusal, SlashingStore};

use crate::error::Rejection;
use crate::state::AppState;

/// The audit record of one request as it is filled in, and whether the slashing database has
/// already committed it together with the check.
struct AuditDraft {
    /// The record as filled in so far.
    record: signward_audit::Record,
    /// The message type, once the body is parsed (for metrics: our own names only).
    kind: Option<signward_core::request::MessageType>,
    /// The slashing database already committed the record with its check.
    written: bool,
    /// When the request arrived.
    started: std::time::Instant,
}

/// A signature and the job it was computed for.
pub struct Signed {
    /// The job (signing root, slashable facts) the server computed.
    pub job: SigningJob,
    /// The BLS signature over the job's signing root.
    pub signature: SignatureBytes,
}

/// Parse the `{identifier}` path segment.
pub fn parse_pubkey(s: &str) -> Result<PublicKeyBytes, Rejection> {
    s.parse().map_err(|_| Rejection::InvalidPubkey)
}

/// Sign one eth2 request and record the decision durably before anything is released. `body`
/// is the request body, or why the edge could not read it (that is recorded too); `record`
/// arrives with the request's id, caller, peer and key identifier filled in; `started` is when
/// the request arrived. A slashable decision may already have been committed with its check,
/// in the same transaction; then only a later failure needs a record of its own.
pub async fn sign(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    identifier: &str,
    body: Result<&[u8], Rejection>,
    record: signward_audit::Record,
    started: std::time::Instant,
) -> Result<Signed, Rejection> {
    run(
        state,
        Who::Client(caller),
        identifier,
        body,
        record,
        started,
    )
    .await
}

/// Another peer of this peer's signing group asks for this peer's partial signature of an
/// ordinary eth2 sign request for a group key (`peer`: its index, authenticated by the edge with
/// its pinned certificate). The request runs this peer's whole pipeline, with its own admission
/// controls, chain clock and slashing database, and is recorded in its own audit log, before the
/// partial signature is released. Only group keys are served: a key held whole is never signed
/// with for a peer.
pub async fn partial(
    state: &Arc<AppState>,
    peer: u32,
    identifier: &str,
    body: Result<&[u8], Rejection>,
    record: signward_audit::Record,
    started: std::time::Instant,
) -> Result<(Signed, u32), Rejection> {
    let index = state.groups.as_ref().map(|g| g.me()).unwrap_or(0);
    run(state, Who::Peer(peer), identifier, body, record, started)
        .await
        .map(|signed| (signed, index))
}

/// Run the pipeline for `who`, then record the decision (unless the slashing database already
/// committed it with its check) and answer.
async fn run(
    state: &Arc<AppState>,
    who: Who<'_>,
    identifier: &str,
    body: Result<&[u8], Rejection>,
    record: signward_audit::Record,
    started: std::time::Instant,
) -> Result<Signed, Rejection> {
    let mut draft = AuditDraft {
        record,
        kind: None,
        written: false,
        started,
    };
    let result = match body {
        Ok(body) => sign_eth2(state, who, identifier, body, &mut draft).await,
        Err(e) => Err(e),
    };
    if matches!(result, Err(Rejection::AuditUnavailable)) {
        state.note_audit(false);
    }
    let written = draft.written && matches!(result, Ok(_) | Err(Rejection::Refused(_)));
    let (outcome, reason) = match &result {
        Ok(_) => (signward_audit::Outcome::Signed, None),
        Err(e) => (e.outcome(), Some(e.code())),
    };
    let decision = crate::decision::Decision {
        pipeline: crate::decision::Pipeline::Eth2,
        operation: draft.kind.map(|k| k.as_str()).unwrap_or("-"),
        outcome,
        reason,
    };
    match crate::decision::settle(state, decision, draft.record, started, written).await {
        Ok(()) => result,
        Err(()) => Err(Rejection::AuditUnavailable),
    }
}

/// Run the pipeline for one eth2 sign request. `caller` is the authenticated caller (`None`
/// only with auth disabled). Its key grant is checked before the key lookup, so a restricted
/// credential learns nothing about other keys.
async fn sign_eth2(
    state: &Arc<AppState>,
    who: Who<'_>,
    identifier: &str,
    body: &[u8],
    draft: &mut AuditDraft,
) -> Result<Signed, Rejection> {
    let audit = &mut draft.record;
    // `caller` goes to admission (a canary names it); `grant` is what the authorizer checks: the
    // client's credential, or for another peer of the group, the group's peer policy.
    let (caller, grant, group) = match who {
        Who::Client(caller) => {
            let caller = crate::access::admitted(state, caller).map_err(Rejection::Forbidden)?;
            (caller, caller, None)
        }
        Who::Peer(peer) => match state.groups.as_ref().filter(|g| g.admits_peer(peer)) {
            Some(groups) => (None, Some(groups.peer_caller()), Some(groups)),
            None => return Err(Rejection::UnknownKey),
        },
    };
    if !state.is_ready() {
        return Err(Rejection::NotReady);
    }
    let pubkey = parse_pubkey(identifier)?;
    crate::admission::admit(
        state,
        caller,
        crate::admission::Requested::Bls(&pubkey),
        "eth2 sign",
    )
    .await?;
    signward_auth::authorize(grant, Action::UseKey(KeyId::Bls(&pubkey))).map_err(|d| {
        tracing::warn!(caller = grant.map_or("-", |c| c.name.as_str()), pubkey = %pubkey, "key not granted to caller");
        Rejection::Forbidden(d)
    })?;
    let group_share = || {
        state
            .groups
            .as_ref()
            .and_then(|g| g.share(&pubkey).map(|share| (g, share)))
            .ok_or(Rejection::UnknownKey)
    };
    let signer = match group {
        // A peer gets partial signatures of group keys, and nothing else.
        Some(_) => {
            let (_, share) = group_share()?;
            Signer::Partial(share)
        }
        // Held until the signature is made: a delete waits for it.
        None => match state.keys.lease(&pubkey).await {
            Some(lease) => Signer::Whole(lease),
            None => {
                let (groups, share) = group_share()?;
                Signer::Group(groups, share)
            }
        },
    };
    let request = SignRequest::from_json(body).map_err(|e| {
        tracing::debug!(
            error.class = e.classify_name(),
            line = e.line(),
            column = e.column(),
            "malformed sign request"
        );
        if signward_core::signing::is_unknown_field(&e) {
            Rejection::UnexpectedField
        } else {
            Rejection::MalformedSignRequest
        }
    })?;
    authorize_operation(grant, &request)?;
    audit.operation = Some(request.kind.as_str().to_string());
    draft.kind = Some(request.kind);
    let job = prepare(&request, &state.network).map_err(|e| {
        tracing::debug!(error = %e, kind = %request.kind, "sign request refused");
        Rejection::from(&e)
    })?;
    audit.signing_root = Some(job.signing_root.to_hex());
    match job.slashable {
        Some(Slashable::Block { slot }) => audit.slot = Some(slot),
        Some(Slashable::Attestation {
            source_epoch,
            target_epoch,
        }) => {
            audit.source_epoch = Some(source_epoch);
            audit.target_epoch = Some(target_epoch);
        }
        None => {}
    }
    let started = draft.started;
    check_and_record(state, &pubkey, &job, draft, started).await?;
    let root = job.signing_root;
    // Signed here, on the runtime's worker: a signature is a few hundred microseconds of CPU
    // with no I/O, and handing it to a separate pool and back cost two thread wake-ups per
    // request, which measured slower in throughput, in tail latency and in a slot's burst
    // (docs/benchmarks.md, issue 16). The runtime has one worker per core, so a burst still
    // queues for a core rather than spawning threads.
    let signature = match signer {
        Signer::Whole(lease) => lease.entry().key.sign(&root),
        Signer::Partial(share) => {
            SignatureBytes::from(crate::group::own_partial(&share, &root)?.signature)
        }
        Signer::Group(groups, share) => {
            crate::group::coordinate(groups, &share, pubkey, &root, Arc::from(body)).await?
        }
    };
    Ok(Signed { job, signature })
}

/// Who asks for a signature.
#[derive(Clone, Copy)]
enum Who<'a> {
    /// A client of the Web3Signer API, with its credential (`None` only with auth off).
    Client(Option<&'a Caller>),
    /// Another peer of this peer's signing group, by index.
    Peer(u32),
}

/// What signs: a key held whole (leased until the signature is made); this peer's share of a
/// group key, coordinating the group's signature; or that share alone, for another peer.
enum Signer<'a> {
    Whole(crate::state::KeyLease<signward_keys::BlsKeypair>),
    Group(&'a crate::group::Groups, Arc<crate::group::GroupShare>),
    Partial(Arc<crate::group::GroupShare>),
}

/// The caller may sign this kind of message (by family), and a validator registration only for
/// a fee recipient it is granted.
fn authorize_operation(caller: Option<&Caller>, request: &SignRequest) -> Result<(), Rejection> {
    let fee_recipient = request
        .validator_registration
        .as_ref()
        .map(|reg| alloy_primitives::Address::from(reg.fee_recipient.0));
    signward_auth::authorize(
        caller,
        Action::SignEth2 {
            operation: Operation::of_message(request.kind),
            fee_recipient: fee_recipient.as_ref(),
        },
    )
    .map_err(|d| {
        tracing::warn!(caller = caller.map_or("-", |c| c.name.as_str()), kind = %request.kind, reason = d.code(), "operation not granted to caller");
        Rejection::Forbidden(d)
    })
}

/// Step 5: for slashable messages, the chain clock and then the database must allow it; an
/// allowed message is durably recorded before this returns.
async fn check_and_record(
    state: &AppState,
    pubkey: &PublicKeyBytes,
    job: &SigningJob,
    draft: &mut AuditDraft,
    started: std::time::Instant,
) -> Result<(), Rejection> {
    let Some(slashable) = job.slashable else {
        return check_not_slashable(state, pubkey, job).await;
    };
    // BLOCK and ATTESTATION requests always carry fork_info.
    let gvr = job
        .genesis_validators_root
        .ok_or(Rejection::InvalidRequest)?;
    let protection = &state.protection;
    if let Some(clock) = &protection.clock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some(refusal) = clock.check(slashable, now) {
            protection.count_refusal(refusal);
            tracing::warn!(reason = refusal.code(), pubkey = %pubkey, kind = %job.kind, "slashing protection refused");
            return Err(Rejection::Refused(refusal));
        }
    }
    let check = Check {
        pubkey: *pubkey,
        genesis_validators_root: gvr,
        slashable,
        signing_root: job.signing_root,
    };
    // With the audit chain in the SQLite slashing database, the record is committed in the
    // same transaction as the check: one fsync for both.
    let db_started = std::time::Instant::now();
    let decided = match (state.audits_in_slashing_db(), protection.db.journal_store()) {
        (true, Some(store)) => {
            let mut record = draft.record.clone();
            record.latency_us = Some(started.elapsed().as_micros() as u64);
            let r = store
                .check_and_record_journaled(check, Box::new(record))
                .await;
            if !matches!(
                r,
                Err(signward_slashing::SlashingError::Journal(_))
                    | Err(signward_slashing::SlashingError::Storage(_))
                    | Err(signward_slashing::SlashingError::WriterGone)
            ) {
                draft.written = true;
            }
            r
        }
        _ => protection.db.check_and_record(check).await,
    };
    state
        .metrics
        .slashing_db_latency
        .observe(db_started.elapsed());
    match decided {
        Ok(Decision::Allowed) | Ok(Decision::Repeat) => Ok(()),
        Ok(Decision::Refused(refusal)) => {
            protection.count_refusal(refusal);
            tracing::warn!(reason = refusal.code(), pubkey = %pubkey, kind = %job.kind, "slashing protection refused");
            Err(Rejection::Refused(refusal))
        }
        Err(e) => {
            tracing::error!(error = %e, error.class = e.class(), "slashing database unavailable; not signing");
            Err(Rejection::SlashingUnavailable)
        }
    }
}

/// A message that is not slashable is not recorded, but the database still decides whether the
/// validator may sign at all (it may have been deleted on another instance) and for which chain.
async fn check_not_slashable(
    state: &AppState,
    pubkey: &PublicKeyBytes,
    job: &SigningJob,
) -> Result<(), Rejection> {
    let protection = &state.protection;
    // The configured network's chain, when it is known, before any database read.
    if let (Some(net), Some(gvr)) = (
        state.network.genesis_validators_root,
        job.genesis_validators_root,
    ) {
        if net != gvr {
            protection.count_refusal(Refusal::GenesisMismatch);
            return Err(Rejection::Refused(Refusal::GenesisMismatch));
        }
    }
    match protection
        .db
        .may_sign(*pubkey, job.genesis_validators_root)
        .await
    {
        Ok(None) => Ok(()),
        Ok(Some(refusal)) => {
            protection.count_refusal(refusal);
            tracing::warn!(reason = refusal.code(), pubkey = %pubkey, kind = %job.kind, "refused by the slashing database");
            Err(Rejection::Refused(refusal))
        }
        Err(e) => {
            tracing::error!(error = %e, error.class = e.class(), "slashing database unavailable; not signing");
            Err(Rejection::SlashingUnavailable)
        }
    }
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
