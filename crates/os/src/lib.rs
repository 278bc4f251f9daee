//! The operating-system calls signward makes, in one place. Everything goes through `nix`'s safe
//! wrappers, so this crate too forbids `unsafe`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

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
    NotLocked {
        /// Why, and what to change.
        reason: String,
    },
    /// Locking was turned off by configuration.
    Disabled,
}

impl MemoryLock {
    /// True when every page is locked.
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

/// Turn core dumps off for this process: `RLIMIT_CORE` 0 (soft and hard) and not dumpable
/// (`PR_SET_DUMPABLE` 0, which also keeps other unprivileged processes from ptracing it or
/// reading its memory through /proc).
pub fn disable_core_dumps() -> Result<(), String> {
    nix::sys::resource::setrlimit(Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| format!("setrlimit(RLIMIT_CORE): {e}"))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl(PR_SET_DUMPABLE): {e}"))?;
    Ok(())
}

/// Raise the soft descriptor limit (`RLIMIT_NOFILE`) to the hard one, as far as the hard one
/// allows, and return the soft limit now in force. Connections are capped below it.
pub fn raise_descriptor_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if hard > soft && nix::sys::resource::setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Whether the process may dump core (`PR_GET_DUMPABLE`).
pub fn is_dumpable() -> bool {
    nix::sys::prctl::get_dumpable().unwrap_or(true)
}

/// The soft `RLIMIT_CORE` (`None` = unlimited).
pub fn core_limit() -> Option<u64> {
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((soft, _)) if soft == RLIM_INFINITY => None,
        Ok((soft, _)) => Some(soft),
        Err(_) => None,
    }
}

/// Files this process creates are owner-only from now on (umask 077).
pub fn owner_only_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Running as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

pub mod data_dir;
pub mod fs;

pub use data_dir::DataDir;
