//! Emergency controls: the halt switch (persisted, so it survives a restart) and canary keys
//! (never signed with; a request for one is an alarm).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alloy_primitives::Address;
use signward_core::bytes::PublicKeyBytes;

use signward_auth::store::Caller;

use crate::state::AppState;

/// The halt switch. Halted, every signing request is refused with 503 `halted`.
#[derive(Default)]
pub struct Halt {
    halted: AtomicBool,
    /// `<data-dir>/HALTED`: its existence is the persisted state.
    file: Option<PathBuf>,
    reason: Mutex<Option<String>>,
}

impl Halt {
    /// Read the persisted state from `data_dir`.
    pub fn load(data_dir: &std::path::Path) -> Self {
        let file = data_dir.join("HALTED");
        let reason = std::fs::read_to_string(&file).ok();
        Halt {
            halted: AtomicBool::new(reason.is_some()),
            file: Some(file),
            reason: Mutex::new(reason.map(|r| r.trim().to_string())),
        }
    }

    /// Signing is halted.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

    /// Why, as the operator said it (`None` when not halted).
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Halt now (in memory at once), and persist it durably.
    pub fn halt(&self, reason: &str) -> std::io::Result<()> {
        self.halted.store(true, Ordering::Release);
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        if let Some(f) = &self.file {
            signward_os::fs::replace(f, reason.as_bytes())?;
        }
        Ok(())
    }

    /// Resume: the persisted state goes first, so a crash cannot leave a resumed-looking file.
    pub fn resume(&self) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            signward_os::fs::remove(f)?;
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.halted.store(false, Ordering::Release);
        Ok(())
    }
}

/// What a canary hit does besides refusing, auditing and counting. Every action but `Alert`
/// contains the credential that asked (suspended, persisted); only `Halt` and `Seal` stop
/// everyone else too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryAction {
    /// Suspend the credential that asked.
    Suspend,
    /// Suspend it, and halt the signer (persisted) at once.
    Halt,
    /// Suspend it, and seal the vault at once.
    Seal,
    /// Only refuse, audit and count.
    Alert,
}

/// Canary keys: listed as if they were real, never signed with.
pub struct Canaries {
    /// BLS public keys that must never sign.
    pub bls: HashSet<PublicKeyBytes>,
    /// EVM addresses that must never sign.
    pub evm: HashSet<Address>,
    /// What a request for one of them sets off.
    pub action: CanaryAction,
    /// Requests for a canary since start.
    pub hits: AtomicU64,
}

impl Default for Canaries {
    fn default() -> Self {
        Canaries {
            bls: HashSet::new(),
            evm: HashSet::new(),
            action: CanaryAction::Suspend,
            hits: AtomicU64::new(0),
        }
    }
}

/// A canary was asked for: count it, audit it, contain the credential and act. Called before
/// anything else is done with the request.
pub async fn canary_hit(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    key: &str,
    operation: &'static str,
) {
    let who = caller.map(|c| c.name.as_str()).unwrap_or("-");
    let hits = state.canaries.hits.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::error!(key = %key, caller = %who, operation = %operation, hits, action = ?state.canaries.action, "CANARY KEY REQUESTED: someone is using a key that must never be used");
    let record = signward_audit::Record {
        event: signward_audit::Event::Canary.into(),
        caller: Some(who.to_string()),
        key: Some(key.to_string()),
        operation: Some(operation.to_string()),
        decision: signward_audit::Outcome::Refused.into(),
        reason: Some("canary_key".into()),
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a canary hit failed");
    }
    let action = state.canaries.action;
    if action != CanaryAction::Alert {
        suspend(state, caller, key).await;
    }
    match action {
        CanaryAction::Halt => {
            if let Err(e) = state
                .halt
                .halt(&format!("canary key {key} requested by {who}"))
            {
                tracing::error!(error = %e, "halted in memory, but the halt could not be persisted");
            }
            audit_control(
                state,
                "-",
                signward_audit::Outcome::Halted,
                Some(format!("canary key {key}")),
            )
            .await;
        }
        CanaryAction::Seal => crate::vault::seal(state, "-", "canary").await,
        CanaryAction::Suspend | CanaryAction::Alert => {}
    }
}

/// Suspend the credential that asked for a canary key: durably, at once, audited.
async fn suspend(state: &Arc<AppState>, caller: Option<&Caller>, key: &str) {
    let (Some(c), Some(gate)) = (caller, &state.gate) else {
        tracing::error!("a canary key was requested without a credential (authentication is off): nothing to suspend");
        return;
    };
    match gate
        .tokens
        .suspend(&c.name, &format!("requested canary key {key}"))
    {
        Ok(_) => {
            tracing::error!(caller = %c.name, "credential SUSPENDED after a canary hit; `signward token reinstate` lifts it");
            let record = signward_audit::Record {
                event: signward_audit::Event::Token.into(),
                caller: Some(c.name.clone()),
                key: Some(key.to_string()),
                decision: signward_audit::Outcome::Suspended.into(),
                reason: Some("canary_key".into()),
                ..Default::default()
            };
            if let Err(e) = state.journal(record).await {
                tracing::error!(error = %e, "audit write for a suspension failed");
            }
        }
        Err(signward_auth::AuthError::NotFound(_)) => {
            // Revoked meanwhile: nothing left to contain.
            tracing::error!(caller = %c.name, "the credential was revoked before it could be suspended");
        }
        Err(e) => {
            // The credential could not be contained: stop everything instead.
            tracing::error!(error = %e, caller = %c.name, "the credential could not be suspended; halting all signing");
            if let Err(e) = state.halt.halt(&format!(
                "canary key {key}; suspension of {} failed",
                c.name
            )) {
                tracing::error!(error = %e, "halted in memory, but the halt could not be persisted");
            }
            audit_control(
                state,
                "-",
                signward_audit::Outcome::Halted,
                Some("canary suspension failed".into()),
            )
            .await;
        }
    }
}

/// Audit a halt or resume.
pub async fn audit_control(
    state: &AppState,
    caller: &str,
    decision: signward_audit::Outcome,
    reason: Option<String>,
) {
    let record = signward_audit::Record {
        event: signward_audit::Event::Halt.into(),
        caller: Some(caller.to_string()),
        decision: decision.into(),
        reason,
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a halt event failed");
    }
}
