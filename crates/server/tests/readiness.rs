//! In-process router tests: readiness gates signing, and health reports loading.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use signward_core::network::NetworkConfig;
use signward_engine::state::{LoadStatus, Protection};
use signward_engine::AppState;
use signward_keys::BlsKeypair;
use signward_server::router;
use signward_server::serve::Limits;
use signward_slashing::sqlite::SqliteStore;
use signward_slashing::SlashingDb;
use tower::ServiceExt;

async fn call(state: &Arc<AppState>, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = router(state.clone(), Limits::default())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn randao(pk: &str) -> Request<Body> {
    let body = r#"{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},"genesis_validators_root":"0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"},"randao_reveal":{"epoch":"5"}}"#;
    Request::post(format!("/api/v1/eth2/sign/{pk}"))
        .header("accept", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn signing_waits_for_key_loading() {
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDb::Sqlite(SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());
    let state = Arc::new(AppState::new(
        NetworkConfig::mainnet(),
        Protection::new(db, None),
    ));
    state.set_load_status(LoadStatus::Loading { total: 1 });
    let key = BlsKeypair::generate();
    let pk = key.public_key().to_hex();
    state.keys().insert_all([key]);

    let (status, body) = call(&state, randao(&pk)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "not_ready");
    let (status, body) = call(
        &state,
        Request::get("/healthcheck").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"][0]["status"], "LOADING");
    assert_eq!(body["outcome"], "DOWN");

    state.set_load_status(LoadStatus::Done {
        loaded: 1,
        failed: 0,
    });
    let (status, body) = call(&state, randao(&pk)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["signature"].as_str().unwrap().starts_with("0x"));
    let (status, body) = call(
        &state,
        Request::get("/healthcheck").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "UP");
}
