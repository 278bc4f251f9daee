//! Listener, router, limits and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use signward_auth::Scope;
use tokio::net::TcpListener;

use crate::api::{admin, eth2, health, keymanager, readytrader, rpc};
pub use crate::conn::ConnLimits;
use crate::error::ApiError;
use crate::gate;
use signward_engine::state::AppState;
use signward_engine::Rejection;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Per-request limits.
    pub limits: Limits,
    /// Connection limits.
    pub connections: ConnLimits,
    /// After a shutdown signal, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
}

/// Per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body (a full Altair block with maximal contents fits well).
    pub max_body_bytes: usize,
    /// Whole-request deadline, body upload included.
    pub request_timeout: Duration,
    /// Requests in flight at once; more are shed at once with 503 `overloaded` and
    /// `Retry-After` instead of queueing without bound. `/upcheck` is never shed.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
        }
    }
}

/// Key imports decrypt keystores (scrypt: about a second of CPU each) and deletes wait for the
/// requests holding the keys, so they get a longer deadline than signing; they need an
/// authenticated `keymanager` or `admin` caller.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

async fn shed(permits: Arc<tokio::sync::Semaphore>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/upcheck" {
        return next.run(req).await;
    }
    match permits.try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            tracing::warn!("overloaded: request shed");
            let mut r = ApiError::Overloaded.into_response();
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            r
        }
    }
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

/// Every error leaves as `{"code","message"}`: an answer the framework made itself (405 for a
/// method a route does not take, 404, 413 from a body limit) has no JSON body, and gets the
/// matching [`ApiError`] instead, keeping its headers (`Allow` on a 405).
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let e = match status {
        axum::http::StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        axum::http::StatusCode::NOT_FOUND => ApiError::NotFound,
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::Engine(Rejection::BodyTooLarge),
        axum::http::StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        _ if status.is_server_error() => ApiError::Engine(Rejection::Internal),
        _ => ApiError::BadRequest,
    };
    let (mut parts, _) = res.into_parts();
    // The status stays the framework's; only the body changes.
    let fresh = e.into_response();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

type St = (Arc<AppState>, Limits);

/// Routes behind the gate for `scope`, each under its deadline. Every route but `/upcheck` is
/// declared in exactly one of these groups; a path that is in none is not served (404), so a
/// route cannot be added without saying which scope guards it.
fn scoped(state: &Arc<AppState>, scope: Scope, limit: Duration, routes: Router<St>) -> Router<St> {
    routes
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), scope),
            gate::gate,
        ))
        .route_layer(middleware::from_fn(move |req, next| {
            deadline(limit, req, next)
        }))
}

/// The application router.
pub fn router(state: Arc<AppState>, limits: Limits) -> Router {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight.max(1)));
    let t = limits.request_timeout;
    let long = t.max(IMPORT_TIMEOUT);
    let s = &state;
    Router::new()
        .route("/upcheck", get(health::upcheck))
        .merge(scoped(
            s,
            Scope::Evm,
            t,
            Router::new()
                .route("/", post(rpc::rpc))
                .route("/chain/{chain}", post(rpc::rpc_chain))
                .route("/address", get(readytrader::address))
                .route("/sign_transaction", post(readytrader::sign_transaction)),
        ))
        .merge(scoped(
            s,
            Scope::Sign,
            t,
            Router::new().route("/api/v1/eth2/sign/{identifier}", post(eth2::sign)),
        ))
        .merge(scoped(
            s,
            Scope::PublicKeys,
            t,
            Router::new()
                .route("/api/v1/eth2/publicKeys", get(eth2::public_keys))
                // Read-only, and what a validator client's credential may already see.
                .route("/api/v1/eth2/highWatermark", get(eth2::high_watermark)),
        ))
        .merge(scoped(
            s,
            Scope::Metrics,
            t,
            Router::new().route("/healthcheck", get(health::healthcheck)),
        ))
        .merge(scoped(
            s,
            Scope::Keymanager,
            t,
            Router::new()
                .route("/eth/v1/keystores", get(keymanager::list))
                .route(
                    "/eth/v1/remotekeys",
                    get(keymanager::remote_keys)
                        .post(keymanager::remote_import)
                        .delete(keymanager::remote_delete),
                ),
        ))
        // Imports decrypt keystores; deletes wait for the requests that hold the keys.
        .merge(scoped(
            s,
            Scope::Keymanager,
            long,
            Router::new().route(
                "/eth/v1/keystores",
                post(keymanager::import).delete(keymanager::delete),
            ),
        ))
        .merge(scoped(
            s,
            Scope::Admin,
            t,
            Router::new()
                .route("/admin/v1/vault", get(admin::status))
                .route("/admin/v1/vault/unseal", post(admin::unseal))
                .route("/admin/v1/vault/unseal/reset", post(admin::unseal_reset))
                .route("/admin/v1/vault/seal", post(admin::seal))
                .route("/admin/v1/halt", post(admin::halt))
                .route("/admin/v1/resume", post(admin::resume))
                .route("/admin/v1/keys", get(admin::list))
                .route("/admin/v1/keys/generate", post(admin::generate))
                .route("/admin/v1/keys/{pubkey}/enable", post(admin::enable))
                .route("/admin/v1/keys/{pubkey}/disable", post(admin::disable))
                .route("/admin/v1/group", get(admin::group_status))
                // Web3Signer's reload: it changes which keys are served, so it is an operator's
                // act (admin), never a validator client's or a key manager's.
                .route("/reload", get(admin::reload_status).post(admin::reload)),
        ))
        .merge(scoped(
            s,
            Scope::Admin,
            long,
            Router::new()
                .route("/admin/v1/keys/import", post(admin::import))
                .route("/admin/v1/group/shares", post(admin::import_share))
                .route("/admin/v1/group/refresh", post(admin::refresh_share))
                .route("/admin/v1/group/split", post(admin::split_key))
                .route("/admin/v1/keys/{pubkey}", delete(admin::delete)),
        ))
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(move |req, next| {
            shed(permits.clone(), req, next)
        }))
        .with_state((state, limits))
}

/// The metrics router, for its own listener: `GET /metrics` behind the gate (`metrics` scope).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    let limits = Limits::default();
    Router::new()
        .merge(scoped(
            &state,
            Scope::Metrics,
            limits.request_timeout,
            Router::new().route("/metrics", get(health::metrics)),
        ))
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .with_state((state, limits))
}

/// Serve plain HTTP until `shutdown` resolves; then stop accepting and let in-flight requests
/// finish for up to `grace`. Connections are limited and timed out as [`ConnLimits`] says.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    conn: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    crate::conn::serve(listener, app, None, conn, shutdown, grace).await
}

/// Serve HTTPS (and mTLS when configured) the same way. Each connection takes the TLS
/// configuration current at its handshake, so [`crate::tls::Tls::reload`] never drops the
/// listener.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<crate::tls::Tls>,
    conn: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    crate::conn::serve(listener, app, Some(tls), conn, shutdown, grace).await
}
