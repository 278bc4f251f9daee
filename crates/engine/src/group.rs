//! Threshold signing groups: this peer's shares of group keys, the other peers, and the two roles
//! a peer plays in the eth2 pipeline ([`crate::eth2`]).
//!
//! - **Coordinator**: a validator client's ordinary request for a group key arrives here. After
//!   this peer's own checks and durable slashing record, it signs its partial, asks every other
//!   peer for theirs with the same request body (so each computes the signing root and runs its
//!   own checks itself), and combines the first `t` valid ones: [`coordinate`].
//! - **Responder**: another peer asks for this peer's partial signature ([`crate::eth2::partial`]).
//!   It runs the whole pipeline with its own slashing database before releasing anything.
//!
//! The network is not here: the edge gives the engine a [`PeerClient`] (mutually authenticated
//! TLS with pinned peer certificates in `signward-server`). Nothing a peer answers is trusted:
//! each partial signature is checked against that peer's public share, and the combined one
//! against the group key, before it is released.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use signward_core::bytes::{PublicKeyBytes, Root, SignatureBytes};
pub use signward_threshold::{Commitments, PartialSignature, SecretShare};

use crate::error::Rejection;

/// The BLS ciphersuite of every Ethereum signature.
const DST: &[u8] = signward_keys::bls::DST;

/// Why a peer gave no partial signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFailure {
    /// No connection, TLS failed (an unpinned certificate included), or the connection broke.
    Unreachable,
    /// The peer refused, with its stable code (e.g. `double_vote`: its own slashing protection).
    Refused(String),
    /// The answer was not a partial signature.
    Malformed,
}

impl PeerFailure {
    /// A bounded label for logs and audit records.
    pub fn label(&self) -> &str {
        match self {
            PeerFailure::Unreachable => "unreachable",
            PeerFailure::Refused(code) => code,
            PeerFailure::Malformed => "malformed_answer",
        }
    }
}

/// A boxed future, as [`PeerClient`] returns.
pub type PeerFuture = Pin<Box<dyn Future<Output = Result<PartialSignature, PeerFailure>> + Send>>;

/// How the engine reaches the other peers of its group (implemented by the edge).
pub trait PeerClient: Send + Sync + 'static {
    /// Ask peer `peer` for its partial signature of the eth2 sign request `body` for `group_key`.
    fn partial(&self, peer: u32, group_key: PublicKeyBytes, body: Arc<[u8]>) -> PeerFuture;
}

/// This peer's share of one group key.
pub struct GroupShare {
    /// The secret share (never leaves the process).
    pub share: SecretShare,
    /// The group's commitments: the group key and every peer's public share.
    pub commitments: Commitments,
}

/// This peer's part in its signing group.
pub struct Groups {
    me: u32,
    peers: Vec<u32>,
    shares: HashMap<PublicKeyBytes, Arc<GroupShare>>,
    client: Arc<dyn PeerClient>,
    timeout: Duration,
}

/// Why a group could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A share that does not match its commitments, or is for another index.
    #[error("the share for group key {key} does not belong to peer {me}: {reason}")]
    Share {
        /// The group key, hex.
        key: String,
        /// This peer's index.
        me: u32,
        /// Why.
        reason: String,
    },
    /// A threshold that is not a majority of the group.
    #[error("group key {key} has threshold {t} of {n} peers: a threshold must be more than half the group (2t > n), or two halves could sign conflicting messages")]
    NoMajority {
        /// The group key, hex.
        key: String,
        /// Its threshold.
        t: u32,
        /// Peers configured, this one included.
        n: usize,
    },
    /// The group's peers are not consistent with a share's threshold.
    #[error("group key {key} needs {t} peers but the group has {n}")]
    TooFewPeers {
        /// The group key, hex.
        key: String,
        /// Its threshold.
        t: u32,
        /// Peers configured, this one included.
        n: usize,
    },
}

impl Groups {
    /// This peer (`me`), the other peers' indexes, the client that reaches them, and how long a
    /// coordinator waits for partial signatures.
    pub fn new(me: u32, peers: Vec<u32>, client: Arc<dyn PeerClient>, timeout: Duration) -> Self {
        Groups {
            me,
            peers,
            shares: HashMap::new(),
            client,
            timeout,
        }
    }

    /// Add this peer's share of a group key, after checking it against the commitments.
    pub fn add(&mut self, share: GroupShare) -> Result<PublicKeyBytes, GroupError> {
        let key = PublicKeyBytes::from(share.commitments.group_public_key());
        let err = |reason: String| GroupError::Share {
            key: key.to_hex(),
            me: self.me,
            reason,
        };
        if share.share.index() != self.me {
            return Err(err(format!(
                "it is the share of peer {}",
                share.share.index()
            )));
        }
        share
            .commitments
            .verify_share(&share.share)
            .map_err(|e| err(e.to_string()))?;
        let t = share.commitments.threshold();
        let n = self.peers.len() + 1;
        if n < t as usize {
            return Err(GroupError::TooFewPeers {
                key: key.to_hex(),
                t,
                n,
            });
        }
        // Two disjoint sets of `t` honest peers could each sign one of two conflicting
        // messages sent to them at once; with 2t > n every two sets share a peer, whose own
        // slashing database refuses the second.
        if 2 * t as usize <= n {
            return Err(GroupError::NoMajority {
                key: key.to_hex(),
                t,
                n,
            });
        }
        self.shares.insert(key, Arc::new(share));
        Ok(key)
    }

    /// This peer's share of `key`, if it is a group key here.
    pub fn share(&self, key: &PublicKeyBytes) -> Option<Arc<GroupShare>> {
        self.shares.get(key).cloned()
    }

    /// The group keys this peer holds a share of.
    pub fn keys(&self) -> Vec<PublicKeyBytes> {
        let mut keys: Vec<PublicKeyBytes> = self.shares.keys().copied().collect();
        keys.sort_by_key(|k| k.0);
        keys
    }

    /// This peer's index.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// The other peers' indexes.
    pub fn peers(&self) -> &[u32] {
        &self.peers
    }

    /// Whether `peer` is one of the other peers of this group: the only callers that may ask
    /// for a partial signature (the edge has already authenticated them by pinned certificate).
    pub fn admits_peer(&self, peer: u32) -> bool {
        self.peers.contains(&peer)
    }
}

/// This peer's partial signature of `root` with its share of a group key.
pub fn own_partial(share: &GroupShare, root: &Root) -> Result<PartialSignature, Rejection> {
    let signature = share.share.sign(&root.0, DST).map_err(|e| {
        tracing::error!(code = e.code(), "partial signature failed");
        Rejection::Internal
    })?;
    Ok(PartialSignature {
        index: share.share.index(),
        signature,
    })
}

/// Sign `root` for the group key `key` as coordinator: this peer's partial (its checks already
/// passed and recorded), then the other peers' for the same request `body`. As soon as `t`
/// partials are in, they are combined and the result verified under the group key; if that
/// fails, each partial is verified, the invalid ones (a lying or broken peer) are dropped and
/// logged, and waiting goes on. At most the group's timeout is spent waiting; peers that are
/// down, slow or refusing are logged by index and skipped.
pub async fn coordinate(
    groups: &Groups,
    share: &GroupShare,
    key: PublicKeyBytes,
    root: &Root,
    body: Arc<[u8]>,
) -> Result<SignatureBytes, Rejection> {
    let t = share.commitments.threshold() as usize;
    let mut partials = vec![own_partial(share, root)?];
    let mut asked = tokio::task::JoinSet::new();
    for &peer in &groups.peers {
        let fut = groups.client.partial(peer, key, body.clone());
        // Each request is bounded on its own: one a peer never answers (a half-open
        // connection, a hung peer) ends at the timeout even after the coordinator moved on.
        let timeout = groups.timeout;
        asked.spawn(async move {
            let answer = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or(Err(PeerFailure::Unreachable));
            (peer, answer)
        });
    }
    let deadline = tokio::time::Instant::now() + groups.timeout;
    let result = loop {
        if partials.len() >= t {
            match signward_threshold::combine(&share.commitments, &partials, &root.0, DST) {
                Ok(c) => {
                    for peer in c.rejected {
                        tracing::warn!(
                            peer,
                            "signing group: a peer's partial signature does not verify; ignored"
                        );
                    }
                    break Ok(SignatureBytes::from(c.signature));
                }
                Err(signward_threshold::ThresholdError::NotEnoughPartials { .. }) => {
                    partials.retain(|p| {
                        let ok = signward_threshold::verify_partial(
                            &share.commitments,
                            p,
                            &root.0,
                            DST,
                        ) == Ok(true);
                        if !ok {
                            tracing::warn!(peer = p.index, "signing group: a peer's partial signature does not verify; ignored");
                        }
                        ok
                    });
                }
                Err(e) => {
                    tracing::error!(code = e.code(), "signing group: combining failed");
                    break Err(Rejection::GroupUnavailable);
                }
            }
        }
        let next = match tokio::time::timeout_at(deadline, asked.join_next()).await {
            Ok(Some(Ok(answer))) => answer,
            Ok(Some(Err(_))) => continue,
            Ok(None) => break Err(Rejection::GroupUnavailable),
            Err(_) => {
                tracing::warn!(
                    have = partials.len(),
                    need = t,
                    "signing group: timed out waiting for partial signatures"
                );
                break Err(Rejection::GroupUnavailable);
            }
        };
        match next {
            (peer, Ok(p)) if p.index == peer => partials.push(p),
            (peer, Ok(_)) => {
                tracing::warn!(
                    peer,
                    "signing group: a peer answered for another index; ignored"
                )
            }
            (peer, Err(f)) => {
                tracing::warn!(
                    peer,
                    reason = f.label(),
                    "signing group: no partial signature"
                )
            }
        }
    };
    // Whoever has not answered is no longer needed, but the requests are already with the
    // peers: they finish in the background, so their connections go back to the pool instead of
    // being cut (which cost a new TLS handshake for nearly every signature).
    asked.detach_all();
    result
}
