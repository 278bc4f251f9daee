//! Prometheus metrics, in the text exposition format, served on their own listener.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::state::AppState;

/// A fixed-bucket histogram of seconds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Count one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if s <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{braces} {n}");
    }
}

/// (api, operation, decision, reason): our own names and codes only, never text from a
/// request, so the set of series is fixed.
type RequestKey = (&'static str, &'static str, &'static str, &'static str);

/// Every metric signward keeps.
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    /// eth2 signing request latency.
    pub eth2_latency: Histogram,
    /// EVM signing request latency.
    pub evm_latency: Histogram,
    /// Slashing database check-and-record latency.
    pub slashing_db_latency: Histogram,
    /// Failed authentications since start.
    pub auth_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            eth2_latency: Histogram::new(LATENCY_BOUNDS),
            evm_latency: Histogram::new(LATENCY_BOUNDS),
            slashing_db_latency: Histogram::new(LATENCY_BOUNDS),
            auth_failures: AtomicU64::new(0),
        }
    }
}

/// Label values are our own codes and operation names; escape anyway.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Count one decision: `api` is `eth2` or `evm`.
    pub fn request(
        &self,
        api: &'static str,
        operation: &'static str,
        decision: &'static str,
        reason: &'static str,
    ) {
        let mut g = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry((api, operation, decision, reason)).or_insert(0) += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, state: &AppState) -> String {
        let mut o = String::with_capacity(4096);
        o.push_str("# HELP signward_requests_total Signing decisions by API, operation, decision and reason.\n# TYPE signward_requests_total counter\n");
        for ((api, op, decision, reason), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "signward_requests_total{{api=\"{api}\",operation=\"{}\",decision=\"{}\",reason=\"{}\"}} {n}",
                esc(op),
                esc(decision),
                esc(reason)
            );
        }
        o.push_str("# HELP signward_sign_duration_seconds Time from request to answer.\n# TYPE signward_sign_duration_seconds histogram\n");
        self.eth2_latency
            .render(&mut o, "signward_sign_duration_seconds", "api=\"eth2\"");
        self.evm_latency
            .render(&mut o, "signward_sign_duration_seconds", "api=\"evm\"");
        o.push_str("# HELP signward_slashing_db_duration_seconds Slashing check-and-record time, commit included.\n# TYPE signward_slashing_db_duration_seconds histogram\n");
        self.slashing_db_latency
            .render(&mut o, "signward_slashing_db_duration_seconds", "");
        o.push_str("# HELP signward_slashing_refusals_total Slashing protection refusals by reason.\n# TYPE signward_slashing_refusals_total counter\n");
        for (code, n) in state.protection.refusal_counts() {
            let _ = writeln!(
                o,
                "signward_slashing_refusals_total{{reason=\"{code}\"}} {n}"
            );
        }
        let _ = write!(
            o,
            "# HELP signward_keys_loaded Keys ready to sign.\n# TYPE signward_keys_loaded gauge\nsignward_keys_loaded{{kind=\"bls\"}} {}\nsignward_keys_loaded{{kind=\"secp256k1\"}} {}\n",
            state.keys.len(),
            state.evm.keys.len()
        );
        let _ = write!(
            o,
            "# HELP signward_sealed 1 while the vault is sealed.\n# TYPE signward_sealed gauge\nsignward_sealed {}\n# HELP signward_halted 1 while signing is halted.\n# TYPE signward_halted gauge\nsignward_halted {}\n",
            state.is_sealed() as u8,
            state.halt.is_halted() as u8
        );
        let _ = write!(
            o,
            "# HELP signward_auth_failures_total Failed authentication attempts.\n# TYPE signward_auth_failures_total counter\nsignward_auth_failures_total {}\n# HELP signward_canary_hits_total Requests for canary keys.\n# TYPE signward_canary_hits_total counter\nsignward_canary_hits_total {}\n",
            self.auth_failures.load(Ordering::Relaxed),
            state.canaries.hits.load(Ordering::Relaxed)
        );
        if let Some(groups) = &state.groups {
            let (signed, unavailable) = groups.coordinated();
            let _ = write!(
                o,
                "# HELP signward_group_signatures_total Group signatures this peer coordinated.\n# TYPE signward_group_signatures_total counter\nsignward_group_signatures_total{{result=\"signed\"}} {signed}\nsignward_group_signatures_total{{result=\"unavailable\"}} {unavailable}\n"
            );
            o.push_str("# HELP signward_group_peer_answers_total What each other peer answered when asked for a partial signature (peer: its index in the group configuration).\n# TYPE signward_group_peer_answers_total counter\n");
            for (peer, stats) in groups.peer_stats() {
                let (answered, failed, invalid, _) = stats.snapshot();
                let _ = write!(
                    o,
                    "signward_group_peer_answers_total{{peer=\"{peer}\",result=\"partial\"}} {answered}\nsignward_group_peer_answers_total{{peer=\"{peer}\",result=\"failed\"}} {failed}\nsignward_group_peer_answers_total{{peer=\"{peer}\",result=\"invalid\"}} {invalid}\n"
                );
            }
        }
        o
    }
}
