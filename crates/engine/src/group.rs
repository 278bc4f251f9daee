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
use std::sync::atomic::{AtomicU64, Ordering};
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
    stats: HashMap<u32, Arc<PeerStats>>,
    signed: AtomicU64,
    unavailable: AtomicU64,
    peer_caller: signward_auth::store::Caller,
    tolerate_compromised: u32,
}

/// What one other peer did when this peer asked it for partial signatures (for the health
/// check and metrics).
#[derive(Default)]
pub struct PeerStats {
    answered: AtomicU64,
    failed: AtomicU64,
    invalid: AtomicU64,
    last_failure: std::sync::Mutex<Option<(String, u64)>>,
}

impl PeerStats {
    fn failure(&self, label: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((label.to_string(), now));
    }

    /// Partial signatures received (checked or not yet), failures (down, refused, malformed,
    /// timed out), partials that did not verify, and the last failure's label and Unix time.
    pub fn snapshot(&self) -> (u64, u64, u64, Option<(String, u64)>) {
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.invalid.load(Ordering::Relaxed),
            self.last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
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
    /// A threshold too low for the group's size and the compromised peers it must withstand.
    #[error("group key {key} has threshold {t} of {n} peers, which does not keep slashing protection against {f} compromised peer(s): it needs 2t > n + f, or two sets of signers could sign conflicting messages")]
    NoMajority {
        /// The group key, hex.
        key: String,
        /// Its threshold.
        t: u32,
        /// Peers configured, this one included.
        n: usize,
        /// Compromised peers to withstand.
        f: u32,
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
            stats: peers
                .iter()
                .map(|&p| (p, Arc::new(PeerStats::default())))
                .collect(),
            peers,
            shares: HashMap::new(),
            client,
            timeout,
            signed: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            peer_caller: signward_auth::store::Caller {
                name: "signing-group-peer".into(),
                policy: default_peer_policy(),
                suspended: false,
            },
            tolerate_compromised: 0,
        }
    }

    /// What the other peers may ask this peer to sign, as a credential policy that the one
    /// authorizer checks for every partial signature: operations by family and, for validator
    /// registrations, fee recipients. By default ([`default_peer_policy`]) a validator's duties
    /// without registrations: a compromised peer can otherwise collect the honest peers' partials
    /// for an exit, a deposit or a registration to its own fee recipient.
    pub fn with_peer_policy(mut self, policy: signward_auth::Policy) -> Self {
        self.peer_caller.policy = policy;
        self
    }

    /// How many compromised peers the group's slashing protection must withstand: every share
    /// added must have `2t > n + f` (see [`Groups::add`]).
    pub fn with_tolerated_compromise(mut self, f: u32) -> Self {
        self.tolerate_compromised = f;
        self
    }

    /// The policy partial-signature requests are authorized against.
    pub fn peer_caller(&self) -> &signward_auth::store::Caller {
        &self.peer_caller
    }

    /// What each other peer did, by index.
    pub fn peer_stats(&self) -> Vec<(u32, &PeerStats)> {
        self.peers
            .iter()
            .filter_map(|p| self.stats.get(p).map(|s| (*p, s.as_ref())))
            .collect()
    }

    /// Group signatures this peer coordinated: signed, and refused as `group_unavailable`.
    pub fn coordinated(&self) -> (u64, u64) {
        (
            self.signed.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
        )
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
        // Two sets of `t` signers, each with at most `f` compromised peers, must share an honest
        // peer, whose own slashing database refuses the second of two conflicting messages:
        // 2(t - f) > n - f, that is 2t > n + f. With f = 0 this stops conflicting requests from
        // clients; a compromised coordinator can send each conflicting message to different
        // honest peers, which only f > 0 withstands.
        let f = self.tolerate_compromised as usize;
        if 2 * t as usize <= n + f {
            return Err(GroupError::NoMajority {
                key: key.to_hex(),
                t,
                n,
                f: self.tolerate_compromised,
            });
        }
        if self.shares.contains_key(&key) {
            return Err(GroupError::Share {
                key: key.to_hex(),
                me: self.me,
                reason: "a second share of the same group key".into(),
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

    fn note_invalid(&self, peer: u32) {
        if let Some(s) = self.stats.get(&peer) {
            s.invalid.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether `peer` is one of the other peers of this group: the only callers that may ask
    /// for a partial signature (the edge has already authenticated them by pinned certificate).
    pub fn admits_peer(&self, peer: u32) -> bool {
        self.peers.contains(&peer)
    }
}

/// The operations peers may ask for by default: a validator's duties, without validator
/// registrations (which carry a fee recipient), deposits or exits.
pub fn default_peer_policy() -> signward_auth::Policy {
    let mut ops: std::collections::BTreeSet<signward_auth::Operation> =
        signward_auth::Operation::DUTIES.into_iter().collect();
    ops.remove(&signward_auth::Operation::ValidatorRegistration);
    signward_auth::Policy {
        scopes: [signward_auth::Scope::Sign].into(),
        allow_ops: Some(ops),
        ..Default::default()
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
        let stats = groups.stats.get(&peer).cloned();
        asked.spawn(async move {
            let answer = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or(Err(PeerFailure::Unreachable));
            if let Some(stats) = stats {
                match &answer {
                    Ok(_) => {
                        stats.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(f) => stats.failure(f.label()),
                }
            }
            (peer, answer)
        });
    }
    let deadline = tokio::time::Instant::now() + groups.timeout;
    let result = loop {
        if partials.len() >= t {
            match signward_threshold::combine(&share.commitments, &partials, &root.0, DST) {
                Ok(c) => {
                    for peer in c.rejected {
                        groups.note_invalid(peer);
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
                            groups.note_invalid(p.index);
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
    match &result {
        Ok(_) => groups.signed.fetch_add(1, Ordering::Relaxed),
        Err(_) => groups.unavailable.fetch_add(1, Ordering::Relaxed),
    };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;

    impl PeerClient for Nobody {
        fn partial(&self, _: u32, _: PublicKeyBytes, _: Arc<[u8]>) -> PeerFuture {
            Box::pin(async { Err(PeerFailure::Unreachable) })
        }
    }

    fn groups(me: u32, peers: Vec<u32>) -> Groups {
        Groups::new(me, peers, Arc::new(Nobody), Duration::from_millis(10))
    }

    fn share_of(d: &signward_threshold::Dealing, i: usize) -> GroupShare {
        GroupShare {
            share: SecretShare::from_bytes(d.shares[i].index(), &d.shares[i].dangerous_bytes())
                .unwrap(),
            commitments: d.commitments.clone(),
        }
    }

    #[test]
    fn shares_are_refused_when_the_threshold_cannot_keep_slashing_protection() {
        let d = signward_threshold::split(&[9u8; 32], 2, 3).unwrap();
        // 2-of-3 withstands no compromised peer.
        assert!(groups(1, vec![2, 3]).add(share_of(&d, 0)).is_ok());
        let err = groups(1, vec![2, 3])
            .with_tolerated_compromise(1)
            .add(share_of(&d, 0))
            .unwrap_err();
        assert!(matches!(
            err,
            GroupError::NoMajority {
                t: 2,
                n: 3,
                f: 1,
                ..
            }
        ));
        // 2-of-3 shares in a group of four: not a majority.
        assert!(groups(1, vec![2, 3, 4]).add(share_of(&d, 0)).is_err());
        // 3-of-4 withstands one.
        let d4 = signward_threshold::split(&[9u8; 32], 3, 4).unwrap();
        assert!(groups(2, vec![1, 3, 4])
            .with_tolerated_compromise(1)
            .add(share_of(&d4, 1))
            .is_ok());
        // Another peer's share, and a second share of the same key, are refused.
        assert!(groups(1, vec![2, 3]).add(share_of(&d, 1)).is_err());
        let mut g = groups(1, vec![2, 3]);
        g.add(share_of(&d, 0)).unwrap();
        assert!(g.add(share_of(&d, 0)).is_err());
    }

    #[test]
    fn peers_get_duties_only_by_default() {
        let p = default_peer_policy();
        let ops = p.allow_ops.unwrap();
        assert!(ops.contains(&signward_auth::Operation::Attestation));
        assert!(ops.contains(&signward_auth::Operation::Block));
        for never in [
            signward_auth::Operation::ValidatorRegistration,
            signward_auth::Operation::VoluntaryExit,
            signward_auth::Operation::Deposit,
        ] {
            assert!(!ops.contains(&never), "{never:?}");
        }
    }

    #[tokio::test]
    async fn a_coordinator_with_no_peer_answering_signs_nothing() {
        let d = signward_threshold::split(&[9u8; 32], 2, 3).unwrap();
        let mut g = groups(1, vec![2, 3]);
        let key = g.add(share_of(&d, 0)).unwrap();
        let share = g.share(&key).unwrap();
        let r = coordinate(&g, &share, key, &Root::default(), Arc::from(&b"{}"[..])).await;
        assert_eq!(r.err(), Some(Rejection::GroupUnavailable));
        assert_eq!(g.coordinated(), (0, 1));
        let failed: u64 = g.peer_stats().iter().map(|(_, s)| s.snapshot().1).sum();
        assert_eq!(failed, 2);
    }
}
