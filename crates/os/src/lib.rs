//! The operating-system calls signward makes, in one place. Everything goes through `nix`'s safe
//! wrappers, so this crate too forbids `unsafe`.

#![forbid(unsafe_code)]

use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use serde::Serialize;

/// Linux `MCL_ONFAULT` (since 4.4): lock pages as they are first touched instead of
/// pre-faulting every mapping, so thread stacks are not committed in full.
const MCL_ONFAULT: i32 = 4;

/// Whether the process's memory is locked against swapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MemoryLock {
    /// Every current and future page is locked when touched.
    Locked,
    /// Not locked; `reason` says why and what to change.
    NotLocked { reason: String },
    /// Locking was turned off by configuration.
    Disabled,
}

impl MemoryLock {
    pub fn is_locked(&self) -> bool {
        matches!(self, MemoryLock::Locked)
    }
}

/// The soft `RLIMIT_MEMLOCK` in bytes (`None` = unlimited).
pub fn memlock_limit() -> Option<u64> {
    match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == RLIM_INFINITY => None,
        Ok((soft, _)) => Some(soft),
        Err(_) => Some(0),
    }
}

/// Lock all current and future memory of the process (keys, decrypted secrets, master key) so
/// it is never written to swap. Attempted only when the process may lock without a ceiling
/// (root or `CAP_IPC_LOCK`, or an unlimited `RLIMIT_MEMLOCK`): locking under a small ceiling
/// would make later allocations fail.
pub fn lock_all_memory() -> MemoryLock {
    let root = nix::unistd::geteuid().is_root();
    let limit = memlock_limit();
    if !root && limit.is_some() {
        return MemoryLock::NotLocked {
            reason: format!(
                "RLIMIT_MEMLOCK is {} bytes; set LimitMEMLOCK=infinity (systemd) or grant CAP_IPC_LOCK",
                limit.unwrap_or(0)
            ),
        };
    }
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(MCL_ONFAULT);
    match mlockall(flags) {
        Ok(()) => MemoryLock::Locked,
        Err(e) => MemoryLock::NotLocked {
            reason: format!("mlockall failed: {e}"),
        },
    }
}
