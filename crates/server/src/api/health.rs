//! `GET /upcheck` (liveness) and `GET /healthcheck` (readiness with named checks).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use signward_slashing::SlashingStore;

use crate::serve::Limits;
use signward_engine::state::{AppState, LoadStatus};

/// `GET /metrics` (its own listener, `metrics` scope): Prometheus text format.
pub async fn metrics(State((state, _)): State<(Arc<AppState>, Limits)>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(&state),
    )
        .into_response()
}

/// `GET /upcheck`: the one open route; `OK` while the process serves.
pub async fn upcheck() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

/// Web3Signer's shape: `{"status", "checks": [{"id", "status", "data"}], "outcome"}`.
/// UP only when every configured key has been tried and none failed, and the slashing database
/// answers; 503 otherwise.
pub async fn healthcheck(State((state, _)): State<(Arc<AppState>, Limits)>) -> Response {
    let (keys_status, data) = match state.load_status() {
        LoadStatus::Loading { total } => (
            "LOADING",
            json!({"keys-total": total, "keys-loaded": state.keys().len(), "keys-failed": 0}),
        ),
        LoadStatus::Done { loaded, failed } => (
            if failed == 0 { "UP" } else { "DOWN" },
            json!({"keys-total": loaded + failed, "keys-loaded": loaded, "keys-failed": failed}),
        ),
    };
    let p = &state.protection();
    let (db_status, gvr) = match p.db.genesis_validators_root().await {
        Ok(g) => ("UP", g.map(|g| g.to_hex())),
        Err(e) => {
            tracing::error!(error = %e, "slashing database health check failed");
            ("DOWN", None)
        }
    };
    let refusals: serde_json::Map<String, serde_json::Value> = p
        .refusal_counts()
        .into_iter()
        .map(|(code, n)| (code.to_string(), n.into()))
        .collect();
    // A stable shape whether the window is on or off: `state` is "on" or "off", `reason` a code
    // (`disabled_by_flag`, `genesis_time_unknown`) or null, `detail` the why and the fix.
    let cs = &p.clock_status;
    let clock = json!({
        "state": if p.clock.is_some() { "on" } else { "off" },
        "reason": cs.off.map(|o| o.code()),
        "detail": cs.detail,
        "genesis-time": cs.genesis_time,
        "genesis-time-source": cs.genesis_time_source,
        "max-future-epochs": p.clock.map(|c| c.max_future_epochs),
        "warning": cs.warning,
    });
    let slashing = json!({
        "id": "slashing-protection-check",
        "status": db_status,
        "data": {
            "backend": p.db.backend(),
            "genesis-validators-root": gvr,
            "chain-clock-check": clock,
            "refusals": refusals,
        }
    });
    let vault_state = state.vault().map(|v| v.state());
    let vault_status = if vault_state == Some(signward_vault::VaultState::Sealed) {
        "DOWN"
    } else {
        "UP"
    };
    let vault_state = vault_state.map_or("disabled", |s| s.as_str());
    let vault = json!({
        "id": "vault-check",
        "status": vault_status,
        "data": {"state": vault_state, "memory-locked": state.memory().is_locked(), "memory": state.memory()},
    });
    let evm = json!({
        "id": "evm-check",
        "status": if state.evm().dev { "UNSAFE" } else { "UP" },
        "data": {
            "keys": state.evm().keys.len(),
            "policy": state.evm().policy().is_some(),
            "dev-mode": state.evm().dev,
        },
    });
    let halted = state.halt().is_halted();
    let halt = json!({
        "id": "halt-check",
        "status": if halted { "DOWN" } else { "UP" },
        "data": {"halted": halted, "reason": state.halt().reason(), "canary-hits": state.canaries().hits.load(std::sync::atomic::Ordering::Relaxed)},
    });
    let audit_location = match &state.audit() {
        None => "none",
        Some(signward_engine::state::Journal::Own(_)) => signward_os::data_dir::AUDIT_DB,
        Some(signward_engine::state::Journal::InSlashingDb) => "slashing-database",
    };
    // (Only embedded uses, such as the benchmarks, run without an audit log.)
    let audit_up = !state.audit_failing();
    let audit = json!({
        "id": "audit-check",
        "status": match (state.audit().is_some(), audit_up) {
            (false, _) => "DISABLED",
            (true, true) => "UP",
            (true, false) => "DOWN",
        },
        "data": {"location": audit_location, "last-write-failed": state.audit_failing()},
    });
    // A peer down does not make this signer unhealthy (n - t may be down); its counts and last
    // failure show here and in the metrics.
    let group = match state.groups() {
        None => json!({"id": "group-check", "status": "DISABLED", "data": {}}),
        Some(g) => {
            let (signed, unavailable) = g.coordinated();
            let peers: Vec<serde_json::Value> = g
                .peer_stats()
                .into_iter()
                .map(|(index, s)| {
                    let (answered, failed, invalid, last) = s.snapshot();
                    json!({
                        "index": index,
                        "partials": answered,
                        "failures": failed,
                        "invalid": invalid,
                        "last-failure": last.as_ref().map(|(label, _)| label.clone()),
                        "last-failure-time": last.map(|(_, t)| t),
                    })
                })
                .collect();
            json!({
                "id": "group-check",
                "status": "UP",
                "data": {
                    "index": g.me(),
                    "keys": g.keys().len(),
                    "signed": signed,
                    "unavailable": unavailable,
                    "peers": peers,
                },
            })
        }
    };
    let up =
        keys_status == "UP" && db_status == "UP" && vault_status == "UP" && !halted && audit_up;
    let overall = if up { "UP" } else { "DOWN" };
    let body = json!({
        "status": overall,
        "checks": [{"id": "keys-check", "status": keys_status, "data": data}, slashing, vault, evm, halt, audit, group],
        "outcome": overall,
    });
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
