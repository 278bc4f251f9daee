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
use tokio::net::TcpListener;

use crate::api::{admin, eth2, health, keymanager, rpc};
use crate::error::ApiError;
use crate::gate;
use crate::state::AppState;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
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

/// Key imports decrypt keystores (scrypt: about a second of CPU each), so they get a longer
/// deadline than signing; they need an authenticated `keymanager` or `admin` caller.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

async fn deadline(limits: Limits, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let limit = if req.method() == axum::http::Method::POST
        && (path == "/eth/v1/keystores" || path == "/admin/v1/keys/import")
    {
        limits.request_timeout.max(IMPORT_TIMEOUT)
    } else {
        limits.request_timeout
    };
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

/// The application router.
pub fn router(state: Arc<AppState>, limits: Limits) -> Router {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight.max(1)));
    Router::new()
        .route("/", post(rpc::rpc))
        .route("/api/v1/eth2/sign/{identifier}", post(eth2::sign))
        .route("/api/v1/eth2/publicKeys", get(eth2::public_keys))
        .route("/upcheck", get(health::upcheck))
        .route("/healthcheck", get(health::healthcheck))
        .route(
            "/eth/v1/keystores",
            get(keymanager::list)
                .post(keymanager::import)
                .delete(keymanager::delete),
        )
        .route("/eth/v1/remotekeys", get(keymanager::remote_keys))
        .route("/admin/v1/vault", get(admin::status))
        .route("/admin/v1/vault/unseal", post(admin::unseal))
        .route("/admin/v1/vault/unseal/reset", post(admin::unseal_reset))
        .route("/admin/v1/vault/seal", post(admin::seal))
        .route("/admin/v1/halt", post(admin::halt))
        .route("/admin/v1/resume", post(admin::resume))
        .route("/admin/v1/keys", get(admin::list))
        .route("/admin/v1/keys/import", post(admin::import))
        .route("/admin/v1/keys/generate", post(admin::generate))
        .route("/admin/v1/keys/{pubkey}", delete(admin::delete))
        .route("/admin/v1/keys/{pubkey}/enable", post(admin::enable))
        .route("/admin/v1/keys/{pubkey}/disable", post(admin::disable))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .layer(middleware::from_fn(move |req, next| {
            deadline(limits, req, next)
        }))
        .layer(middleware::from_fn(move |req, next| {
            shed(permits.clone(), req, next)
        }))
        .with_state((state, limits))
}

/// The metrics router, for its own listener: `GET /metrics` behind the gate (`metrics` scope).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .with_state((state, Limits::default()))
}

/// Serve until `shutdown` resolves; then stop accepting and let in-flight requests finish for up
/// to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let server = std::pin::pin!(std::future::IntoFuture::into_future(server));
    tokio::select! {
        r = server => r,
        _ = async {
            let _ = rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("shutdown grace period elapsed with requests still in flight");
            Ok(())
        }
    }
}

/// Serve HTTPS (and mTLS when configured) until `shutdown` resolves, then let in-flight
/// requests finish for up to `grace`. Each connection takes the TLS configuration current at
/// its handshake, so [`crate::tls::Tls::reload`] never drops the listener.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let acceptor = tls.acceptor();
                let app = app.clone();
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| crate::tls::PeerCert(crate::tls::fingerprint(c.as_ref())));
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let mut req = req.map(axum::body::Body::new);
                        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                        if let Some(c) = &cert {
                            req.extensions_mut().insert(c.clone());
                        }
                        let app = app.clone();
                        async move { tower::ServiceExt::oneshot(app, req).await }
                    });
                    let builder = Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("shutdown grace period elapsed with requests still in flight");
    }
    Ok(())
}
