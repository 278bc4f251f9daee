//! A threshold signing group for `compare --only group`: the fleet's keys split 2-of-3 among
//! three peer processes (`serve-group-peer`), each as `serve --group-config` runs it (its own
//! SQLite slashing database and audit, token auth, the pinned-mTLS group listener).
//!
//! The setup writes, under one private directory: each peer's TLS certificate and key (rcgen),
//! the peers' addresses and pins (`peers.json`), and each peer's shares (`shares-<i>.json`). The
//! fleet's keys are throwaway bench keys, so its shares are kept as plain JSON in that 0700
//! directory; a real group receives them as age files (`signward group split`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use signward_engine::group::{GroupShare, Groups};
use signward_server::peers::{GroupTls, Peer};
use signward_server::serve::Limits;
use signward_threshold::{Commitments, SecretShare};
use zeroize::Zeroizing;

/// Peers in the bench group, and its threshold.
pub const N: u32 = 3;
/// The threshold.
pub const T: u32 = 2;

#[derive(Serialize, Deserialize)]
struct PeerEntry {
    index: u32,
    addr: String,
    pin: String,
}

#[derive(Serialize, Deserialize)]
struct ShareEntry {
    share: Zeroizing<String>,
    commitments: Commitments,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Split the fleet's first `keys` keys 2-of-3 and write the three peers' identities and shares
/// under `dir`.
pub fn setup(dir: &Path, seed: u64, keys: usize) -> anyhow::Result<()> {
    signward_os::DataDir::new(dir).ensure_private()?;
    let mut peers = Vec::new();
    for i in 1..=N {
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec!["peer.signward.invalid".to_string()])?
            .self_signed(&key)?;
        std::fs::write(dir.join(format!("peer-{i}.crt")), cert.pem())?;
        signward_keys::fsutil::write_secret_file(
            &dir.join(format!("peer-{i}.key")),
            key.serialize_pem().as_bytes(),
        )?;
        peers.push(PeerEntry {
            index: i,
            addr: format!("127.0.0.1:{}", free_port()?),
            pin: signward_server::tls::fingerprint(cert.der()),
        });
    }
    std::fs::write(dir.join("peers.json"), serde_json::to_vec(&peers)?)?;
    let mut shares: Vec<Vec<ShareEntry>> = (0..N).map(|_| Vec::with_capacity(keys)).collect();
    for k in crate::fleet::keys(seed, keys)? {
        let secret = k.dangerous_secret_bytes();
        let dealing = signward_threshold::split(&secret, T, N)?;
        for (i, s) in dealing.shares.iter().enumerate() {
            shares[i].push(ShareEntry {
                share: Zeroizing::new(hex::encode(*s.dangerous_bytes())),
                commitments: dealing.commitments.clone(),
            });
        }
    }
    for (i, list) in shares.iter().enumerate() {
        let json = Zeroizing::new(serde_json::to_vec(list)?);
        signward_keys::fsutil::write_secret_file(
            &dir.join(format!("shares-{}.json", i + 1)),
            &json,
        )?;
    }
    Ok(())
}

/// What a peer process needs from the setup: its engine part, its TLS, and where it listens
/// for peers.
pub struct PeerSetup {
    /// The engine's part (shares, peers, client).
    pub groups: Groups,
    /// The listener's TLS and the pins.
    pub tls: GroupTls,
    /// Where the group listener binds.
    pub listen: SocketAddr,
}

/// Read peer `me`'s part of the setup in `dir`.
pub fn load(dir: &Path, me: u32) -> anyhow::Result<PeerSetup> {
    let peers: Vec<PeerEntry> = serde_json::from_slice(&std::fs::read(dir.join("peers.json"))?)?;
    let listen: SocketAddr = peers
        .iter()
        .find(|p| p.index == me)
        .context("this peer is not in peers.json")?
        .addr
        .parse()?;
    let others: Vec<Peer> = peers
        .iter()
        .filter(|p| p.index != me)
        .map(|p| Peer {
            index: p.index,
            addr: p.addr.clone(),
            cert_sha256: p.pin.clone(),
        })
        .collect();
    let timeout = Duration::from_secs(2);
    let tls = GroupTls::load(
        &dir.join(format!("peer-{me}.crt")),
        &dir.join(format!("peer-{me}.key")),
        others,
    )?;
    let groups = Groups::new(
        me,
        peers.iter().map(|p| p.index).filter(|&i| i != me).collect(),
        Arc::new(tls.client(timeout)?),
        timeout,
    );
    let bytes = Zeroizing::new(std::fs::read(dir.join(format!("shares-{me}.json")))?);
    let list: Vec<ShareEntry> = serde_json::from_slice(&bytes)?;
    for e in list {
        let mut raw = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(e.share.as_str(), &mut raw[..])?;
        groups.add(
            GroupShare {
                share: SecretShare::from_bytes(me, &raw)?,
                commitments: e.commitments,
            },
            signward_engine::state::KeyOrigin::File,
        )?;
    }
    Ok(PeerSetup {
        groups,
        tls,
        listen,
    })
}

/// Serve the group listener for `state` until the process is killed.
pub async fn serve_peers(
    state: Arc<signward_engine::AppState>,
    tls: &GroupTls,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let pins: HashMap<String, u32> = tls.pins();
    let app = signward_server::peers::peer_router(state, Limits::default(), pins);
    let config = Arc::new(signward_server::tls::Tls::fixed(tls.server_config()?, true));
    tokio::spawn(async move {
        let _ = signward_server::serve_tls(
            listener,
            app,
            config,
            signward_server::serve::ConnLimits::default(),
            std::future::pending(),
            Duration::from_secs(1),
        )
        .await;
    });
    Ok(())
}
