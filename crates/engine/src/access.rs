//! Who may call: the credential store, the failed-attempt limiter, the trusted proxies, and
//! the tally of denials at the edge, written to the audit log once per interval so that no
//! traffic can grow the log faster than that. The HTTP edge (`signward-server`'s gate) reads
//! credentials off requests and asks these.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signward_auth::limiter::FailureLimiter;
use signward_auth::store::TokenStore;
use signward_auth::Cidr;

use crate::state::AppState;

/// Authentication and authorisation settings of a running server.
pub struct Gate {
    /// The credentials (tokens and certificate fingerprints), reloaded when their file changes.
    pub tokens: TokenStore,
    /// Failed attempts, counted and limited per source.
    pub limiter: FailureLimiter,
    /// Proxies whose `X-Forwarded-For` names the caller.
    pub trusted_proxies: Vec<Cidr>,
    /// Denials without a valid credential, awaiting their aggregated audit record.
    pub denials: DenialTally,
}

impl Gate {
    /// Settings with an empty denial tally.
    pub fn new(tokens: TokenStore, limiter: FailureLimiter, trusted_proxies: Vec<Cidr>) -> Self {
        Gate {
            tokens,
            limiter,
            trusted_proxies,
            denials: DenialTally::default(),
        }
    }
}

/// How often aggregated denial records are written.
pub const DENIAL_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// Most distinct sources tallied per interval; the rest are counted under `0.0.0.0`.
const MAX_TALLIED_SOURCES: usize = 4096;

/// (source, reason, credential if known) → (count, first seen, Unix ms).
type Tallies = HashMap<(IpAddr, &'static str, Option<String>), (u64, u64)>;

/// Denials at the gate, per source, reason and credential, for one interval.
#[derive(Default)]
pub struct DenialTally {
    inner: Mutex<Tallies>,
}

impl DenialTally {
    /// Count one denial (`caller`: the credential, when it was valid). Returns true for the
    /// first of its kind in the interval (worth a log line; the rest are not).
    pub fn count(&self, ip: IpAddr, reason: &'static str, caller: Option<&str>) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ip, reason, caller.map(String::from));
        let key = if g.len() >= MAX_TALLIED_SOURCES && !g.contains_key(&key) {
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), reason, None)
        } else {
            key
        };
        let e = g.entry(key).or_insert((0, now_ms()));
        e.0 += 1;
        e.0 == 1
    }

    /// Take the tallies: one audit record per source, reason and credential.
    pub fn drain(&self) -> Vec<signward_audit::Record> {
        let taken = std::mem::take(&mut *self.inner.lock().unwrap_or_else(|p| p.into_inner()));
        taken
            .into_iter()
            .map(
                |((ip, reason, caller), (count, first_ms))| signward_audit::Record {
                    event: signward_audit::Event::Access.into(),
                    caller: Some(caller.unwrap_or_else(|| "-".into())),
                    peer: Some(ip.to_string()),
                    decision: signward_audit::Outcome::Denied.into(),
                    reason: Some(reason.to_string()),
                    count: Some(count),
                    first_ms: Some(first_ms),
                    ..Default::default()
                },
            )
            .collect()
    }
}

/// Write the aggregated denial records every [`DENIAL_FLUSH_INTERVAL`] (and keep doing so).
pub fn spawn_denial_flush(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DENIAL_FLUSH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            flush_denials(&state).await;
        }
    });
}

/// Write what the tally holds now.
pub async fn flush_denials(state: &AppState) {
    let Some(gate) = &state.gate else { return };
    for record in gate.denials.drain() {
        if let Err(e) = state.journal(record).await {
            tracing::error!(error = %e, "audit record of denials could not be written");
        }
    }
}

/// The caller of a request as the engine accepts it. `None` (no credential) is accepted only
/// when this engine runs without authentication; with authentication on, it is refused as
/// outside every scope, whatever route it came through, so a handler that forgot its gate
/// cannot open the engine.
pub fn admitted<'a>(
    state: &AppState,
    caller: Option<&'a signward_auth::store::Caller>,
) -> Result<Option<&'a signward_auth::store::Caller>, signward_auth::Denied> {
    if caller.is_none() && state.gate.is_some() {
        tracing::error!(
            "a request reached the engine without a credential while authentication is on; refused"
        );
        return Err(signward_auth::Denied::Scope);
    }
    Ok(caller)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_tally_is_bounded() {
        let t = DenialTally::default();
        for i in 1..=(MAX_TALLIED_SOURCES as u32 + 500) {
            t.count(IpAddr::V4(Ipv4Addr::from(i)), "unauthorized", None);
        }
        assert!(!t.count(IpAddr::V4(Ipv4Addr::from(1)), "unauthorized", None));
        let records = t.drain();
        assert_eq!(records.len(), MAX_TALLIED_SOURCES + 1);
        let total: u64 = records.iter().map(|r| r.count.unwrap()).sum();
        assert_eq!(total, MAX_TALLIED_SOURCES as u64 + 501);
        assert!(t.drain().is_empty());
    }
}
