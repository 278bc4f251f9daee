//! Reloading what the server reads from files (key files, TLS certificates, the EVM policy):
//! one function, [`run`], called by SIGHUP and by `POST /reload`. The work itself is the
//! [`ReloadHook`] the command line installs (it knows the key sources and file paths); this
//! module runs it off the async workers, one run at a time, and keeps the status that
//! `GET /reload` reports in the Web3Signer form.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::state::AppState;

/// What one reload did. Every field is a count or a fixed label, never file content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys newly served.
    pub added: usize,
    /// Keys no longer served (their files are gone).
    pub removed: usize,
    /// Key files that failed to load (each logged by file name and error class).
    pub failed: usize,
    /// Parts that failed to reload and kept what was in force (`tls`, `evm_policy`).
    pub kept: Vec<&'static str>,
}

/// The reload work: re-read the key sources and the other files, on a blocking thread.
pub type ReloadHook = Box<dyn Fn(&AppState) -> ReloadReport + Send + Sync>;

/// Who asked for a reload (for the log and the audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `POST /reload`.
    Api,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Api => "api",
        }
    }
}

/// Where reloading stands, as `GET /reload` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No reload has run.
    Idle,
    /// A reload is running.
    Running,
    /// The last reload finished without a failure.
    Completed,
    /// The last reload finished, with some parts kept as they were.
    CompletedWithErrors,
    /// The last reload failed.
    Failed,
}

impl Phase {
    /// The Web3Signer status name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running => "running",
            Phase::Completed => "completed",
            Phase::CompletedWithErrors => "completed_with_errors",
            Phase::Failed => "failed",
        }
    }
}

/// The status of the latest reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where reloading stands.
    pub phase: Phase,
    /// Unix seconds of the latest start or completion.
    pub last_operation: Option<u64>,
    /// A fixed-form summary when the latest reload had failures.
    pub last_error: Option<String>,
}

/// The reload hook, a lock that lets one reload run at a time, and the latest status.
pub struct Reloader {
    hook: ReloadHook,
    running: Arc<tokio::sync::Mutex<()>>,
    status: Mutex<Status>,
}

impl Reloader {
    /// A reloader that runs `hook`.
    pub fn new(hook: ReloadHook) -> Self {
        Reloader {
            hook,
            running: Arc::default(),
            status: Mutex::new(Status {
                phase: Phase::Idle,
                last_operation: None,
                last_error: None,
            }),
        }
    }

    /// Where reloading stands now.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, phase: Phase, last_error: Option<String>) {
        let mut g = self.status.lock().unwrap_or_else(|p| p.into_inner());
        *g = Status {
            phase,
            last_operation: Some(now()),
            last_error,
        };
    }
}

/// A reload is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reload now and wait for it (SIGHUP): a reload already running is waited for first, so a
/// signal sent after a file changed is never lost. `None` when the server has no reloader.
pub async fn run(state: &Arc<AppState>, trigger: Trigger) -> Option<ReloadReport> {
    let r = state.reloader.as_ref()?;
    let guard = r.running.clone().lock_owned().await;
    Some(run_locked(state.clone(), trigger, guard).await)
}

/// Start a reload in the background (`POST /reload`); `Err(Busy)` when one is running.
/// Returns at once; `GET /reload` follows it. `Ok(false)` when the server has no reloader.
pub fn start(state: &Arc<AppState>, trigger: Trigger) -> Result<bool, Busy> {
    let Some(r) = state.reloader.as_ref() else {
        return Ok(false);
    };
    let guard = r.running.clone().try_lock_owned().map_err(|_| Busy)?;
    // Running from here on, so a GET right after the 202 never reads a stale `idle`.
    r.set(Phase::Running, None);
    let state = state.clone();
    tokio::spawn(async move {
        run_locked(state, trigger, guard).await;
    });
    Ok(true)
}

async fn run_locked(
    state: Arc<AppState>,
    trigger: Trigger,
    _guard: tokio::sync::OwnedMutexGuard<()>,
) -> ReloadReport {
    let Some(r) = state.reloader.as_ref() else {
        return ReloadReport::default();
    };
    r.set(Phase::Running, None);
    let s = state.clone();
    let outcome = tokio::task::spawn_blocking(move || match s.reloader.as_ref() {
        Some(r) => (r.hook)(&s),
        None => ReloadReport::default(),
    })
    .await;
    match outcome {
        Ok(report) => {
            let errors = report.failed + report.kept.len();
            let phase = if errors == 0 {
                Phase::Completed
            } else {
                Phase::CompletedWithErrors
            };
            let summary = (errors > 0).then(|| {
                format!(
                    "Reload completed with {} key loading error(s){}",
                    report.failed,
                    if report.kept.is_empty() {
                        String::new()
                    } else {
                        format!("; kept the previous {}", report.kept.join(", "))
                    }
                )
            });
            r.set(phase, summary);
            tracing::info!(
                trigger = trigger.as_str(),
                added = report.added,
                removed = report.removed,
                failed = report.failed,
                loaded = state.keys.len(),
                "keys reloaded"
            );
            report
        }
        Err(e) => {
            tracing::error!(trigger = trigger.as_str(), error = %e, "key reload failed");
            r.set(
                Phase::Failed,
                Some("Reload failed; see the server log".into()),
            );
            ReloadReport::default()
        }
    }
}

/// ISO-8601 UTC (`2025-12-10T10:30:00Z`) of Unix seconds.
pub fn iso8601(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_765_362_600), "2025-12-10T10:30:00Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
