//! Emergency controls: the halt switch (persisted, so it survives a restart) and canary keys
//! (never signed with; a request for one is an alarm).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alloy_primitives::Address;
use signward_core::bytes::PublicKeyBytes;

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

    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

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
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut h = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(f)?;
            h.write_all(reason.as_bytes())?;
            h.sync_all()?;
            if let Some(dir) = f.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Resume: the persisted state goes first, so a crash cannot leave a resumed-looking file.
    pub fn resume(&self) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            match std::fs::remove_file(f) {
                Ok(()) => {
                    if let Some(dir) = f.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.halted.store(false, Ordering::Release);
        Ok(())
    }
}

/// What a canary hit does besides refusing, auditing and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryAction {
    /// Halt the signer (persisted) at once.
    Halt,
    /// Seal the vault at once.
    Seal,
    /// Only refuse, audit and count.
    Alert,
}

/// Canary keys: listed as if they were real, never signed with.
pub struct Canaries {
    pub bls: HashSet<PublicKeyBytes>,
    pub evm: HashSet<Address>,
    pub action: CanaryAction,
    pub hits: AtomicU64,
}

impl Default for Canaries {
    fn default() -> Self {
        Canaries {
            bls: HashSet::new(),
            evm: HashSet::new(),
            action: CanaryAction::Halt,
            hits: AtomicU64::new(0),
        }
    }
}

/// A canary was asked for: count it, audit it, and act. Called before anything else is done
/// with the request.
pub async fn canary_hit(state: &Arc<AppState>, caller: &str, key: &str, operation: &str) {
    let hits = state.canaries.hits.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::error!(key = %key, caller = %caller, operation = %operation, hits, action = ?state.canaries.action, "CANARY KEY REQUESTED: someone is using a key that must never be used");
    let record = signward_audit::Record {
        event: "canary".into(),
        caller: Some(caller.to_string()),
        key: Some(key.to_string()),
        operation: Some(operation.to_string()),
        decision: "refused".into(),
        reason: Some("canary_key".into()),
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a canary hit failed");
    }
    match state.canaries.action {
        CanaryAction::Halt => {
            if let Err(e) = state
                .halt
                .halt(&format!("canary key {key} requested by {caller}"))
            {
                tracing::error!(error = %e, "halted in memory, but the halt could not be persisted");
            }
            audit_control(state, "-", "halted", Some(format!("canary key {key}"))).await;
        }
        CanaryAction::Seal => crate::vault::seal(state, "-", "canary").await,
        CanaryAction::Alert => {}
    }
}

/// Audit a halt or resume.
pub async fn audit_control(state: &AppState, caller: &str, decision: &str, reason: Option<String>) {
    let record = signward_audit::Record {
        event: "halt".into(),
        caller: Some(caller.to_string()),
        decision: decision.into(),
        reason,
        ..Default::default()
    };
    if let Err(e) = state.journal(record).await {
        tracing::error!(error = %e, "audit write for a halt event failed");
    }
}
