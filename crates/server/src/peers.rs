//! The signing group's network: peers talk HTTP/1.1 over TLS 1.3 with both sides authenticated
//! by certificates pinned in the group configuration (SHA-256 of each peer's DER certificate),
//! not by a CA. A peer whose certificate is not pinned cannot complete a handshake, in either
//! direction.
//!
//! - [`peer_router`]: the two routes a peer serves to the others,
//!   `POST /api/v1/eth2/partial/{identifier}`, taking the ordinary Web3Signer sign request body,
//!   and `GET /api/v1/group/status`, the group keys held and their commitments' digests. Every
//!   other path is 404.
//! - [`HttpPeers`]: the engine's [`PeerClient`], asking the other peers for partial signatures
//!   (and, for `signward group status`, what they hold) over kept-alive connections.
//!
//! The verifiers below replace rustls's certificate-path checks with the pin comparison; the
//! handshake signature is still checked by rustls (the peer must hold the pinned certificate's
//! private key). Certificate validity dates are not checked: a pin is revoked by removing it from
//! the group configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Serialize;
use signward_core::bytes::PublicKeyBytes;
use signward_engine::group::{
    PartialSignature, PeerClient, PeerFailure, PeerFuture, PeerView, ViewFuture,
};
use signward_engine::state::AppState;

use crate::error::ApiError;
use crate::serve::Limits;
use crate::tls::{fingerprint, PeerCert, TlsError};

/// One other peer: its index, where it listens for peers, and its pinned certificate.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its share index in the group.
    pub index: u32,
    /// `host:port` of its peer listener.
    pub addr: String,
    /// Lowercase hex SHA-256 of its DER certificate.
    pub cert_sha256: String,
}

/// This peer's certificate and key, and the other peers.
pub struct GroupTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    peers: Vec<Peer>,
}

impl GroupTls {
    /// Load this peer's certificate (PEM) and private key (PEM, owner-only).
    pub fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
        peers: Vec<Peer>,
    ) -> Result<Self, TlsError> {
        Ok(GroupTls {
            chain: crate::tls::certs(cert)?,
            key: crate::tls::key(key)?,
            peers,
        })
    }

    /// This peer's own pin (to give to the others).
    pub fn own_fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| fingerprint(c.as_ref()))
            .unwrap_or_default()
    }

    /// The pinned certificates, by fingerprint, to the peer index they identify.
    pub fn pins(&self) -> HashMap<String, u32> {
        self.peers
            .iter()
            .map(|p| (p.cert_sha256.to_ascii_lowercase(), p.index))
            .collect()
    }

    /// The listener's configuration: TLS 1.3, a client certificate required and pinned.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedClients {
            pins: self.pins(),
            algs: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn client_config(&self, pin: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedServer {
            pin: pin.to_ascii_lowercase(),
            algs: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client the engine asks the other peers with; `timeout` bounds each connection
    /// attempt.
    pub fn client(&self, timeout: Duration) -> Result<HttpPeers, TlsError> {
        let mut peers = HashMap::new();
        for p in &self.peers {
            peers.insert(
                p.index,
                Arc::new(PeerConn {
                    addr: p.addr.clone(),
                    connector: tokio_rustls::TlsConnector::from(
                        self.client_config(&p.cert_sha256)?,
                    ),
                    idle: Mutex::new(Vec::new()),
                    connect_timeout: timeout,
                    in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_PEER),
                }),
            );
        }
        Ok(HttpPeers { peers })
    }
}

fn pin_mismatch() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Accepts exactly the server certificate whose SHA-256 is pinned for the peer being called.
#[derive(Debug)]
struct PinnedServer {
    pin: String,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(pin_mismatch())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Accepts a client certificate only when its SHA-256 is one of the group's pins.
#[derive(Debug)]
struct PinnedClients {
    pins: HashMap<String, u32>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.pins.contains_key(&fingerprint(end_entity.as_ref())) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(pin_mismatch())
        }
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The largest answer read from a peer: a partial signature or an error is far smaller.
const MAX_ANSWER_BYTES: usize = 4096;

/// The largest answer to `GET /api/v1/group/status`: about 170 bytes per group key.
const MAX_VIEW_BYTES: usize = 2 << 20;

/// Requests (and so connections) in flight to one peer at once; more wait, within the group's
/// timeout. Kept below the peer listener's per-address connection cap, so a burst of duties
/// queues here instead of being turned away there.
const MAX_IN_FLIGHT_PER_PEER: usize = 32;

/// The engine's [`PeerClient`] over pinned mTLS.
pub struct HttpPeers {
    peers: HashMap<u32, Arc<PeerConn>>,
}

struct PeerConn {
    addr: String,
    connector: tokio_rustls::TlsConnector,
    idle: Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
    connect_timeout: Duration,
    in_flight: tokio::sync::Semaphore,
}

impl PeerClient for HttpPeers {
    fn partial(&self, peer: u32, group_key: PublicKeyBytes, body: Arc<[u8]>) -> PeerFuture {
        let conn = self.peers.get(&peer).cloned();
        Box::pin(async move {
            match conn {
                Some(conn) => conn.partial(group_key, body).await,
                None => Err(PeerFailure::Unreachable),
            }
        })
    }

    fn view(&self, peer: u32) -> ViewFuture {
        let conn = self.peers.get(&peer).cloned();
        Box::pin(async move {
            let conn = conn.ok_or(PeerFailure::Unreachable)?;
            let request = hyper::Request::get("/api/v1/group/status")
                .header(hyper::header::HOST, "peer.signward.invalid")
                .header(hyper::header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|_| PeerFailure::Malformed)?;
            let bytes = conn.exchange(request, MAX_VIEW_BYTES).await?;
            serde_json::from_slice::<PeerView>(&bytes).map_err(|_| PeerFailure::Malformed)
        })
    }
}

impl PeerConn {
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, PeerFailure> {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr).await.ok()?;
            let _ = tcp.set_nodelay(true);
            // The name is not checked (the certificate is pinned); it must only be well formed.
            let name = ServerName::try_from("peer.signward.invalid").ok()?;
            let tls = self.connector.connect(name, tcp).await.ok()?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .ok()?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Some(sender)
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Some(sender)) => Ok(sender),
            _ => Err(PeerFailure::Unreachable),
        }
    }

    fn take_idle(&self) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn partial(
        &self,
        group_key: PublicKeyBytes,
        body: Arc<[u8]>,
    ) -> Result<PartialSignature, PeerFailure> {
        let request = hyper::Request::post(format!("/api/v1/eth2/partial/{}", group_key.to_hex()))
            .header(hyper::header::HOST, "peer.signward.invalid")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::copy_from_slice(&body)))
            .map_err(|_| PeerFailure::Malformed)?;
        let bytes = self.exchange(request, MAX_ANSWER_BYTES).await?;
        serde_json::from_slice::<PartialSignature>(&bytes).map_err(|_| PeerFailure::Malformed)
    }

    /// Send `request` on a pooled connection (or a new one) and read at most `cap` bytes of the
    /// answer: the body of a success, or the peer's bounded error code.
    async fn exchange(
        &self,
        request: hyper::Request<Full<Bytes>>,
        cap: usize,
    ) -> Result<Bytes, PeerFailure> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| PeerFailure::Unreachable)?;
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| PeerFailure::Unreachable)?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), cap)
            .collect()
            .await
            .map_err(|_| PeerFailure::Malformed)?
            .to_bytes();
        // The connection is kept for the next request.
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        if status.is_success() {
            Ok(bytes)
        } else {
            #[derive(serde::Deserialize)]
            struct Error {
                code: String,
            }
            let code = serde_json::from_slice::<Error>(&bytes)
                .map(|e| e.code)
                .unwrap_or_default();
            // A peer's code is bounded before it reaches a log: our own vocabulary is short ASCII.
            if code.is_empty()
                || code.len() > 64
                || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(PeerFailure::Malformed);
            }
            Err(PeerFailure::Refused(code))
        }
    }
}

#[derive(Clone)]
struct PeerState {
    app: Arc<AppState>,
    limits: Limits,
    pins: Arc<HashMap<String, u32>>,
}

#[derive(Serialize)]
struct PartialAnswer {
    index: u32,
    signature: String,
}

/// The peer listener's router, for peers authenticated by their pinned certificate: `POST
/// /api/v1/eth2/partial/{identifier}` (a partial signature, after this peer's own checks) and
/// `GET /api/v1/group/status` (the group keys held here and their commitments' digests: public
/// facts, for `signward group status`); everything else 404. `pins` maps each peer's
/// certificate fingerprint to its index.
pub fn peer_router(app: Arc<AppState>, limits: Limits, pins: HashMap<String, u32>) -> Router {
    let t = limits.request_timeout;
    Router::new()
        .route("/api/v1/eth2/partial/{identifier}", post(partial))
        .route("/api/v1/group/status", axum::routing::get(view))
        .fallback(|| async { ApiError::NotFound.into_response() })
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| async move {
                match tokio::time::timeout(t, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => ApiError::Timeout.into_response(),
                }
            },
        ))
        .with_state(PeerState {
            app,
            limits,
            pins: Arc::new(pins),
        })
}

async fn view(State(s): State<PeerState>, cert: Option<Extension<PeerCert>>) -> Response {
    if cert
        .and_then(|Extension(c)| s.pins.get(&c.0).copied())
        .is_none()
    {
        return ApiError::Unauthorized.into_response();
    }
    match s.app.groups() {
        Some(groups) => Json(groups.view()).into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

async fn partial(
    State(s): State<PeerState>,
    Path(identifier): Path<String>,
    cert: Option<Extension<PeerCert>>,
    client: Option<Extension<axum::extract::ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    // The handshake already refused unpinned certificates; this maps the pin to the index.
    let Some(peer) = cert.and_then(|Extension(c)| s.pins.get(&c.0).copied()) else {
        return ApiError::Unauthorized.into_response();
    };
    let body = axum::body::to_bytes(body, s.limits.max_body_bytes).await;
    let record = signward_audit::Record {
        event: signward_audit::Event::PartialSign.into(),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        caller: Some(format!("peer-{peer}")),
        peer: client.map(|Extension(axum::extract::ConnectInfo(a))| a.ip().to_string()),
        key: Some(identifier.clone()),
        ..Default::default()
    };
    let body = body
        .as_deref()
        .map_err(|_| signward_engine::Rejection::BodyTooLarge);
    match signward_engine::eth2::partial(&s.app, peer, &identifier, body, record, started).await {
        Ok((signed, index)) => Json(PartialAnswer {
            index,
            signature: signed.signature.to_hex(),
        })
        .into_response(),
        Err(e) => {
            tracing::info!(peer, code = e.code(), "partial signature refused");
            ApiError::from(e).into_response()
        }
    }
}
