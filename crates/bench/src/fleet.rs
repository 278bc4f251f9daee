//! The servers a load test runs against, each in its own process: signward as `serve` builds it
//! (slashing protection, token auth, the audit log, metrics), and the reference, a minimal
//! HTTP signer that only parses the request, computes the signing root and signs. Both hold the
//! same deterministic keys, so the load generator can address them without asking.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rayon::prelude::*;
use signward_auth::limiter::FailureLimiter;
use signward_auth::secret::ServerSecret;
use signward_auth::store::{CredentialFile, TokenStore};
use signward_auth::{Policy, Scope};
use signward_core::bytes::PublicKeyBytes;
use signward_core::network::NetworkConfig;
use signward_core::request::SignRequest;
use signward_core::signing::prepare;
use signward_engine::access::Gate;
use signward_engine::state::{LoadStatus, Protection};
use signward_engine::AppState;
use signward_keys::bls::BlsKeypair;
use signward_os::DataDir;
use signward_server::serve::Limits;
use zeroize::Zeroize;

use crate::{open_db, SlashingDbArgs};

/// Key `i` of a bench fleet, which both the servers and the load generator rebuild from
/// `(seed, i)` alone: SHA-256 of both, its top two bits cleared so it is below the group order
/// (a full-width scalar, so signing costs what it costs with a real key).
pub fn key(seed: u64, i: u64) -> anyhow::Result<BlsKeypair> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"signward-bench fleet");
    h.update(seed.to_be_bytes());
    h.update(i.to_be_bytes());
    let mut secret: [u8; 32] = h.finalize().into();
    secret[0] &= 0x3f;
    let key = BlsKeypair::from_secret_bytes(&secret);
    secret.zeroize();
    Ok(key?)
}

/// All `n` keys of the fleet, built on all cores.
pub fn keys(seed: u64, n: usize) -> anyhow::Result<Vec<BlsKeypair>> {
    (0..n as u64)
        .into_par_iter()
        .map(|i| key(seed, i))
        .collect()
}

/// The `n` public keys of the fleet, as hex path segments.
pub fn pubkeys(seed: u64, n: usize) -> anyhow::Result<Vec<String>> {
    Ok(keys(seed, n)?
        .iter()
        .map(|k| k.public_key().to_hex())
        .collect())
}

/// Create the data directory's server secret and a token with the sign scope; the token is
/// written to `token_file` (0600) for the load generator.
pub fn issue_token(data_dir: &Path, token_file: &Path) -> anyhow::Result<()> {
    DataDir::new(data_dir).ensure_private()?;
    let secret = ServerSecret::load_or_create(&DataDir::new(data_dir).server_key())?;
    let policy = Policy {
        scopes: [Scope::Sign].into(),
        ..Default::default()
    };
    let token = CredentialFile::new(data_dir).create(&secret, "bench", policy)?;
    signward_keys::fsutil::write_secret_file(token_file, token.0.as_str().as_bytes())?;
    Ok(())
}

/// signward's state as `serve` builds it by default: slashing protection on `db`, and with
/// `auth_audit` the token gate and the audit log (in the SQLite slashing database's own
/// transactions, or in the instance's own file beside a PostgreSQL database). `instance` names
/// the instance's own directory under `data_dir`.
pub async fn signward_state(
    keys: Vec<BlsKeypair>,
    db: &SlashingDbArgs,
    data_dir: &Path,
    instance: usize,
    auth_audit: bool,
    groups: Option<signward_engine::group::Groups>,
) -> anyhow::Result<Arc<AppState>> {
    let store = open_db(db, data_dir, auth_audit).await?;
    let shared_audit = store.journal_store().is_some();
    let mut state = AppState::new(NetworkConfig::mainnet(), Protection::new(store, None));
    if auth_audit {
        let secret = ServerSecret::load_or_create(&DataDir::new(data_dir).server_key())?;
        let audit_key = signward_audit::AuditKey::derive(secret.dangerous_bytes());
        let instance_dir = data_dir.join(format!("instance-{instance}"));
        DataDir::new(&instance_dir).ensure_private()?;
        state = state.with_gate(Gate::new(
            TokenStore::open(data_dir, secret)?,
            FailureLimiter::new(1000, Duration::from_secs(60)),
            vec![],
        ));
        state = if shared_audit {
            state.with_audit_in_slashing_db()
        } else {
            state.with_audit(signward_audit::AuditLog::open(&instance_dir, audit_key)?)
        };
    }
    if let Some(g) = groups {
        state = state.with_groups(g);
    }
    let loaded = keys.len();
    state.keys().insert_all(keys);
    state.set_load_status(LoadStatus::Done { loaded, failed: 0 });
    Ok(Arc::new(state))
}

/// Which server a `serve-*` process runs.
pub enum Server {
    /// signward with protection on the database, token auth, audit and metrics.
    Signward {
        /// The slashing database.
        db: SlashingDbArgs,
        /// Holds the server secret and token store (shared by instances), and `instance-N`.
        data_dir: PathBuf,
        /// This instance's number.
        instance: usize,
    },
    /// The floor: parse, hash, sign.
    Reference,
    /// Peer `index` of the bench's signing group (shares of the fleet's keys, set up in
    /// `group_dir` by [`crate::group::setup`]), with its own database and audit.
    GroupPeer {
        /// This peer's slashing database.
        db: SlashingDbArgs,
        /// Holds the server secret and token store (shared by the peers), and `instance-N`.
        data_dir: PathBuf,
        /// The setup's directory.
        group_dir: PathBuf,
        /// This peer's index.
        index: u32,
    },
}

/// Run one server with the fleet's `n` keys until killed. The bound address is written to
/// `addr_file` once the server accepts connections.
pub fn run(server: Server, seed: u64, n: usize, addr_file: &Path) -> anyhow::Result<()> {
    let keys = match server {
        Server::GroupPeer { .. } => Vec::new(),
        _ => keys(seed, n)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = match server {
            Server::Signward {
                db,
                data_dir,
                instance,
            } => {
                let state = signward_state(keys, &db, &data_dir, instance, true, None).await?;
                signward_server::router(state, Limits::default())
            }
            Server::GroupPeer {
                db,
                data_dir,
                group_dir,
                index,
            } => {
                let setup = crate::group::load(&group_dir, index)?;
                let state = signward_state(
                    keys,
                    &db,
                    &data_dir,
                    index as usize,
                    true,
                    Some(setup.groups),
                )
                .await?;
                crate::group::serve_peers(state.clone(), &setup.tls, setup.listen).await?;
                signward_server::router(state, Limits::default())
            }
            Server::Reference => reference_router(keys),
        };
        publish_addr(addr_file, addr)?;
        signward_server::serve(
            listener,
            app,
            signward_server::serve::ConnLimits::default(),
            std::future::pending(),
            Duration::from_secs(1),
        )
        .await?;
        anyhow::Ok(())
    })
}

/// Write the address atomically, so a reader never sees half of it.
fn publish_addr(addr_file: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let tmp = addr_file.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, addr_file).context("publish the address")?;
    Ok(())
}

type Keys = Arc<(HashMap<PublicKeyBytes, BlsKeypair>, NetworkConfig)>;

/// The reference signer: one route, no protection, no auth, no audit, no metrics; it signs on
/// the runtime's own worker threads.
fn reference_router(keys: Vec<BlsKeypair>) -> axum::Router {
    let keys: Keys = Arc::new((
        keys.into_iter().map(|k| (*k.public_key(), k)).collect(),
        NetworkConfig::mainnet(),
    ));
    axum::Router::new()
        .route(
            "/api/v1/eth2/sign/{identifier}",
            axum::routing::post(reference_sign),
        )
        .with_state(keys)
}

async fn reference_sign(
    State(fleet): State<Keys>,
    UrlPath(identifier): UrlPath<String>,
    body: Bytes,
) -> Response {
    let Ok(pubkey) = identifier.parse::<PublicKeyBytes>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (keys, network) = &*fleet;
    let Some(key) = keys.get(&pubkey) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(request) = SignRequest::from_json(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(job) = prepare(&request, network) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let signature = key.sign(&job.signing_root).to_hex();
    axum::Json(serde_json::json!({ "signature": signature })).into_response()
}
