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

/// What a peer says it holds: its index and, per group key, the digest of its commitments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerView {
    /// The peer's index.
    pub index: u32,
    /// The group keys it holds a share of, with [`commitments_digest`] of each.
    pub keys: Vec<KeyView>,
}

/// One group key as a peer holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyView {
    /// The group public key.
    pub group_public_key: PublicKeyBytes,
    /// SHA-256 of its commitments, hex.
    pub commitments_sha256: String,
}

/// A boxed future of a peer's [`PeerView`].
pub type ViewFuture = Pin<Box<dyn Future<Output = Result<PeerView, PeerFailure>> + Send>>;

/// How the engine reaches the other peers of its group (implemented by the edge).
pub trait PeerClient: Send + Sync + 'static {
    /// Ask peer `peer` for its partial signature of the eth2 sign request `body` for `group_key`.
    fn partial(&self, peer: u32, group_key: PublicKeyBytes, body: Arc<[u8]>) -> PeerFuture;
    /// Ask peer `peer` what it holds (for `signward group status`).
    fn view(&self, peer: u32) -> ViewFuture;
}

/// This peer's share of one group key.
pub struct GroupShare {
    /// The secret share (never leaves the process).
    pub share: SecretShare,
    /// The group's commitments: the group key and every peer's public share.
    pub commitments: Commitments,
}

/// The kind named in a share document.
pub const SHARE_KIND: &str = "signward-threshold-share";

/// A share document: the JSON inside a share file (age-encrypted by `signward group split` and
/// `join`) and inside a vault record of kind `bls_share`. Public group facts and the secret share.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareDocument {
    kind: String,
    version: u32,
    group_public_key: String,
    index: u32,
    commitments: Commitments,
    share: zeroize::Zeroizing<String>,
}

impl GroupShare {
    /// The share document of this share (secret: the buffer is wiped on drop).
    pub fn to_document(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let doc = ShareDocument {
            kind: SHARE_KIND.into(),
            version: 1,
            group_public_key: PublicKeyBytes::from(self.commitments.group_public_key()).to_hex(),
            index: self.share.index(),
            commitments: self.commitments.clone(),
            share: secret_hex(&self.share.dangerous_bytes()),
        };
        // Cannot fail: strings, numbers and hex points.
        zeroize::Zeroizing::new(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// Read a share document: its kind and version, its share, its group key against its
    /// commitments, and its share against them. Errors name what is wrong and never quote the
    /// document (it holds the secret).
    pub fn from_document(bytes: &[u8]) -> Result<Self, GroupError> {
        let doc: ShareDocument = serde_json::from_slice(bytes)
            .map_err(|_| GroupError::Document("not a share document"))?;
        if doc.kind != SHARE_KIND || doc.version != 1 {
            return Err(GroupError::Document("not a version-1 signward share"));
        }
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(doc.share.trim_start_matches("0x"), &mut bytes[..])
            .map_err(|_| GroupError::Document("the share is not 32 bytes of hex"))?;
        let share = SecretShare::from_bytes(doc.index, &bytes)
            .map_err(|_| GroupError::Document("the share is not a valid scalar for its index"))?;
        if PublicKeyBytes::from(doc.commitments.group_public_key()).to_hex()
            != doc.group_public_key.to_ascii_lowercase()
        {
            return Err(GroupError::Document(
                "the group public key does not match the commitments",
            ));
        }
        doc.commitments
            .verify_share(&share)
            .map_err(|_| GroupError::Document("the share does not match the commitments"))?;
        Ok(GroupShare {
            share,
            commitments: doc.commitments,
        })
    }

    /// The group public key.
    pub fn group_key(&self) -> PublicKeyBytes {
        PublicKeyBytes::from(self.commitments.group_public_key())
    }

    /// SHA-256 of the commitments as JSON, hex: what the peers of one group compare (`group
    /// join` prints it; `group status` shows it for every peer).
    pub fn commitments_digest(&self) -> String {
        commitments_digest(&self.commitments)
    }
}

/// SHA-256 of `commitments` as JSON, hex.
pub fn commitments_digest(commitments: &Commitments) -> String {
    use sha2::Digest;
    // Cannot fail: a list of hex strings.
    let json = serde_json::to_vec(commitments).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(json))
}

/// `0x` and the hex of a secret 32-byte value, in a buffer wiped on drop (no other copy is made
/// on the heap).
pub fn secret_hex(bytes: &[u8; 32]) -> zeroize::Zeroizing<String> {
    let mut buf = zeroize::Zeroizing::new([0u8; 64]);
    // Cannot fail: the output is exactly twice the input.
    let _ = hex::encode_to_slice(bytes, &mut buf[..]);
    let mut out = zeroize::Zeroizing::new(String::with_capacity(66));
    out.push_str("0x");
    out.push_str(std::str::from_utf8(&buf[..]).unwrap_or_default());
    out
}

/// The kind named in a dealing document.
pub const DEALING_KIND: &str = "signward-threshold-dealing";

/// A dealer's public output (`dealing.json`) in key generation or a refresh: what every peer of
/// the new group checks its dealt share against.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealingDocument {
    /// [`DEALING_KIND`].
    pub kind: String,
    /// 1.
    pub version: u32,
    /// The dealer's index (for a refresh: its index in the old group).
    pub dealer: u32,
    /// The new group's threshold.
    pub threshold: u32,
    /// The new group's size.
    pub n: u32,
    /// Commitments to the dealt polynomial.
    pub commitments: Commitments,
    /// For a refresh: the old group's commitments, which the dealer's share belongs to.
    #[serde(default)]
    pub refresh_of: Option<Commitments>,
}

/// One peer's part of a dealing (`to-<index>.age`, inside age).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealtShare {
    /// The dealer's index.
    pub dealer: u32,
    /// The receiving peer's index.
    pub index: u32,
    /// The dealt share, hex (secret).
    pub share: zeroize::Zeroizing<String>,
}

/// A dealing ready to hand out: the public document and each peer's share, age-encrypted to
/// that peer (ASCII armour).
pub struct SealedDealing {
    /// `dealing.json`.
    pub document: DealingDocument,
    /// `(index, to-<index>.age)`.
    pub shares: Vec<(u32, Vec<u8>)>,
}

/// Check a new group's members: indexes exactly 1..=n, a threshold of at least 2 that the
/// threshold crate accepts, and `2t > n + f` for `f` compromised peers to withstand.
pub fn check_members(threshold: u32, f: u32, indexes: &[u32]) -> Result<(), GroupError> {
    let n = indexes.len() as u32;
    let mut sorted = indexes.to_vec();
    sorted.sort_unstable();
    if sorted.iter().copied().ne(1..=n) {
        return Err(GroupError::Members(format!(
            "peer indexes must be 1..={n}, each once"
        )));
    }
    signward_threshold::check_parameters(threshold, n)
        .map_err(|e| GroupError::Members(e.to_string()))?;
    if 2 * threshold <= n + f {
        return Err(GroupError::Members(format!(
            "a threshold of {threshold} of {n} does not keep slashing protection against {f} \
             compromised peer(s) (it needs 2t > n + f): two sets of signers could each sign one \
             of two conflicting messages; use more than {}",
            (n + f) / 2
        )));
    }
    Ok(())
}

/// Encrypt each share of `dealing` to its peer (`recipients`: index and age recipient, in the
/// order of the dealing's shares, indexes 1..=n) and write the public document.
pub fn seal_dealing(
    dealer: u32,
    threshold: u32,
    dealing: &signward_threshold::Dealing,
    refresh_of: Option<Commitments>,
    recipients: &[(u32, String)],
) -> Result<SealedDealing, GroupError> {
    if dealing.shares.len() != recipients.len() {
        return Err(GroupError::Members("one recipient per share".into()));
    }
    let mut shares = Vec::with_capacity(recipients.len());
    for (share, (index, recipient)) in dealing.shares.iter().zip(recipients) {
        let recipient = signward_vault::backup::parse_recipient(recipient)
            .map_err(|_| GroupError::Members(format!("peer {index}: not an age recipient")))?;
        let dealt = DealtShare {
            dealer,
            index: *index,
            share: secret_hex(&share.dangerous_bytes()),
        };
        // Cannot fail: numbers and a string.
        let json = zeroize::Zeroizing::new(serde_json::to_vec(&dealt).unwrap_or_default());
        let sealed = signward_vault::backup::encrypt_armored(&recipient, &json)
            .map_err(|_| GroupError::Members(format!("encrypting the share for peer {index}")))?;
        shares.push((*index, sealed));
    }
    Ok(SealedDealing {
        document: DealingDocument {
            kind: DEALING_KIND.into(),
            version: 1,
            dealer,
            threshold,
            n: recipients.len() as u32,
            commitments: dealing.commitments.clone(),
            refresh_of,
        },
        shares,
    })
}

/// A share as this peer holds it, and where it came from.
struct Held {
    share: Arc<GroupShare>,
    origin: crate::state::KeyOrigin,
}

/// This peer's part in its signing group.
pub struct Groups {
    me: u32,
    peers: Vec<u32>,
    shares: std::sync::RwLock<HashMap<PublicKeyBytes, Held>>,
    client: Arc<dyn PeerClient>,
    timeout: Duration,
    stats: HashMap<u32, Arc<PeerStats>>,
    signed: AtomicU64,
    unavailable: AtomicU64,
    peer_caller: signward_auth::store::Caller,
    tolerate_compromised: u32,
    share_recipients: std::collections::BTreeSet<String>,
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
    /// A share document that cannot be read (never quoted: it holds the secret).
    #[error("share document: {0}")]
    Document(&'static str),
    /// A new group's members, threshold or recipients are not usable.
    #[error("{0}")]
    Members(String),
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
            shares: std::sync::RwLock::new(HashMap::new()),
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
            share_recipients: Default::default(),
        }
    }

    /// The age recipients this peer may deal shares to (a split of a vault key, a refresh): the
    /// group's peers, as the group configuration pins them. A share dealt to any other recipient
    /// would hand part of the key to whoever holds it, so nothing else is accepted.
    pub fn with_share_recipients(mut self, recipients: std::collections::BTreeSet<String>) -> Self {
        self.share_recipients = recipients;
        self
    }

    /// Whether `recipients` (one per new peer) are all pinned in the group configuration and
    /// all distinct (two shares to one recipient would put `2` shares in one hand).
    pub fn may_deal_to<'a>(&self, recipients: impl IntoIterator<Item = &'a str>) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        recipients
            .into_iter()
            .all(|r| self.share_recipients.contains(r) && seen.insert(r))
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

    /// Check that `share` is this peer's share of a group key this group can sign with: this
    /// peer's index, consistent with its commitments, and a threshold that keeps slashing
    /// protection for the group's size. Returns the group key.
    pub fn check(&self, share: &GroupShare) -> Result<PublicKeyBytes, GroupError> {
        let key = share.group_key();
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
        Ok(key)
    }

    fn held(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PublicKeyBytes, Held>> {
        self.shares.read().unwrap_or_else(|p| p.into_inner())
    }

    fn held_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PublicKeyBytes, Held>> {
        self.shares.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Add this peer's share of a group key ([`Groups::check`]); a second share of the same
    /// key is refused.
    pub fn add(
        &self,
        share: GroupShare,
        origin: crate::state::KeyOrigin,
    ) -> Result<PublicKeyBytes, GroupError> {
        let key = self.check(&share)?;
        let mut held = self.held_mut();
        if held.contains_key(&key) {
            return Err(GroupError::Share {
                key: key.to_hex(),
                me: self.me,
                reason: "a second share of the same group key".into(),
            });
        }
        held.insert(
            key,
            Held {
                share: Arc::new(share),
                origin,
            },
        );
        Ok(key)
    }

    /// Make `shares` (already [`Groups::check`]ed) the shares held from the vault, replacing
    /// every one held from it before (a refreshed share replaces the old one; a deleted or
    /// disabled record's share is dropped). A share of a key held from files is not taken.
    /// Returns (added or replaced, dropped).
    pub fn set_vault_shares(&self, shares: Vec<GroupShare>) -> (usize, usize) {
        use crate::state::KeyOrigin;
        let mut held = self.held_mut();
        let before: HashMap<PublicKeyBytes, String> = held
            .iter()
            .filter(|(_, h)| h.origin == KeyOrigin::Vault)
            .map(|(k, h)| (*k, h.share.commitments_digest()))
            .collect();
        held.retain(|_, h| h.origin != KeyOrigin::Vault);
        let mut changed = 0;
        for share in shares {
            let key = share.group_key();
            if held.contains_key(&key) {
                tracing::error!(group_key = %key, "signing group: the vault holds a share of a group key also loaded from a share file; the file's share is used");
                continue;
            }
            if before.get(&key) != Some(&share.commitments_digest()) {
                changed += 1;
            }
            held.insert(
                key,
                Held {
                    share: Arc::new(share),
                    origin: KeyOrigin::Vault,
                },
            );
        }
        let dropped = before.keys().filter(|k| !held.contains_key(k)).count();
        (changed, dropped)
    }

    /// Drop every share from `origin` (the vault's, when it is sealed). Returns how many.
    pub fn remove_origin(&self, origin: crate::state::KeyOrigin) -> usize {
        let mut held = self.held_mut();
        let before = held.len();
        held.retain(|_, h| h.origin != origin);
        before - held.len()
    }

    /// This peer's share of `key`, if it is a group key here.
    pub fn share(&self, key: &PublicKeyBytes) -> Option<Arc<GroupShare>> {
        self.held().get(key).map(|h| h.share.clone())
    }

    /// Where this peer's share of `key` came from.
    pub fn origin(&self, key: &PublicKeyBytes) -> Option<crate::state::KeyOrigin> {
        self.held().get(key).map(|h| h.origin)
    }

    /// The group keys this peer holds a share of.
    pub fn keys(&self) -> Vec<PublicKeyBytes> {
        let mut keys: Vec<PublicKeyBytes> = self.held().keys().copied().collect();
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

    /// What this peer holds, as it tells the other peers.
    pub fn view(&self) -> PeerView {
        let held = self.held();
        let mut keys: Vec<KeyView> = held
            .iter()
            .map(|(k, h)| KeyView {
                group_public_key: *k,
                commitments_sha256: h.share.commitments_digest(),
            })
            .collect();
        keys.sort_by_key(|k| k.group_public_key.0);
        PeerView {
            index: self.me,
            keys,
        }
    }

    /// Whether `peer` is one of the other peers of this group: the only callers that may ask
    /// for a partial signature (the edge has already authenticated them by pinned certificate).
    pub fn admits_peer(&self, peer: u32) -> bool {
        self.peers.contains(&peer)
    }
}

/// This peer's group as `signward group status` shows it: every group key held here (its
/// threshold, where its share came from, the digest of its commitments), and every other peer,
/// asked now what it holds (bounded by the group's timeout): reachable or not, and per group key
/// whether it holds the same commitments, other ones (a refresh that has not reached every peer,
/// or a different group) or none. With the counters kept since start. Only the group keys
/// `visible` admits are shown and compared (a credential restricted to some keys sees those).
pub async fn status(
    groups: &Groups,
    visible: impl Fn(&PublicKeyBytes) -> bool,
) -> serde_json::Value {
    use serde_json::json;
    let mut mine = groups.view();
    mine.keys.retain(|k| visible(&k.group_public_key));
    let mut asked = tokio::task::JoinSet::new();
    for &peer in &groups.peers {
        let fut = groups.client.view(peer);
        let timeout = groups.timeout;
        asked.spawn(async move {
            let answer = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or(Err(PeerFailure::Unreachable));
            (peer, answer)
        });
    }
    let mut answers = HashMap::new();
    while let Some(joined) = asked.join_next().await {
        if let Ok((peer, answer)) = joined {
            answers.insert(peer, answer);
        }
    }
    let keys: Vec<serde_json::Value> = mine
        .keys
        .iter()
        .map(|k| {
            let share = groups.share(&k.group_public_key);
            json!({
                "group_public_key": k.group_public_key.to_hex(),
                "threshold": share.as_ref().map(|s| s.commitments.threshold()),
                "source": groups.origin(&k.group_public_key).map(|o| o.as_str()),
                "commitments_sha256": k.commitments_sha256,
            })
        })
        .collect();
    let peers: Vec<serde_json::Value> = groups
        .peer_stats()
        .into_iter()
        .map(|(peer, stats)| {
            let (answered, failed, invalid, last) = stats.snapshot();
            let counters = json!({
                "partials": answered,
                "failures": failed,
                "invalid_partials": invalid,
                "last_failure": last.map(|(label, at)| json!({"reason": label, "at": at})),
            });
            match answers.remove(&peer) {
                Some(Ok(view)) if view.index == peer => {
                    let theirs: HashMap<PublicKeyBytes, &str> = view
                        .keys
                        .iter()
                        .map(|k| (k.group_public_key, k.commitments_sha256.as_str()))
                        .collect();
                    let (mut same, mut differ, mut missing) = (0, Vec::new(), Vec::new());
                    for k in &mine.keys {
                        match theirs.get(&k.group_public_key) {
                            Some(d) if *d == k.commitments_sha256 => same += 1,
                            Some(_) => differ.push(k.group_public_key.to_hex()),
                            None => missing.push(k.group_public_key.to_hex()),
                        }
                    }
                    let only_there = view
                        .keys
                        .iter()
                        .filter(|k| {
                            visible(&k.group_public_key)
                                && groups.share(&k.group_public_key).is_none()
                        })
                        .count();
                    json!({
                        "index": peer,
                        "reachable": true,
                        "keys_matching": same,
                        "keys_with_other_commitments": differ,
                        "keys_missing": missing,
                        "keys_only_there": only_there,
                        "since_start": counters,
                    })
                }
                Some(Ok(_)) => json!({"index": peer, "reachable": true, "error": "answered_for_another_index", "since_start": counters}),
                Some(Err(f)) => json!({"index": peer, "reachable": false, "error": f.label(), "since_start": counters}),
                None => json!({"index": peer, "reachable": false, "error": "unreachable", "since_start": counters}),
            }
        })
        .collect();
    let (signed, unavailable) = groups.coordinated();
    json!({
        "index": groups.me,
        "peers_configured": groups.peers.len() + 1,
        "tolerate_compromised": groups.tolerate_compromised,
        "keys": keys,
        "peers": peers,
        "coordinated": {"signed": signed, "group_unavailable": unavailable},
    })
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
    use crate::state::KeyOrigin::{File, Vault};

    struct Nobody;

    impl PeerClient for Nobody {
        fn partial(&self, _: u32, _: PublicKeyBytes, _: Arc<[u8]>) -> PeerFuture {
            Box::pin(async { Err(PeerFailure::Unreachable) })
        }

        fn view(&self, _: u32) -> ViewFuture {
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
        assert!(groups(1, vec![2, 3]).add(share_of(&d, 0), File).is_ok());
        let err = groups(1, vec![2, 3])
            .with_tolerated_compromise(1)
            .add(share_of(&d, 0), File)
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
        assert!(groups(1, vec![2, 3, 4]).add(share_of(&d, 0), File).is_err());
        // 3-of-4 withstands one.
        let d4 = signward_threshold::split(&[9u8; 32], 3, 4).unwrap();
        assert!(groups(2, vec![1, 3, 4])
            .with_tolerated_compromise(1)
            .add(share_of(&d4, 1), File)
            .is_ok());
        // Another peer's share, and a second share of the same key, are refused.
        assert!(groups(1, vec![2, 3]).add(share_of(&d, 1), File).is_err());
        let g = groups(1, vec![2, 3]);
        g.add(share_of(&d, 0), File).unwrap();
        assert!(g.add(share_of(&d, 0), File).is_err());
    }

    #[test]
    fn share_documents_round_trip_and_are_checked() {
        let d = signward_threshold::split(&[9u8; 32], 2, 3).unwrap();
        let share = share_of(&d, 1);
        let doc = share.to_document();
        let back = GroupShare::from_document(&doc).unwrap();
        assert_eq!(back.share.index(), 2);
        assert_eq!(back.commitments, d.commitments);
        assert_eq!(back.share.dangerous_bytes(), share.share.dangerous_bytes());
        // Another peer's share under this index, a changed commitment, junk: refused, and the
        // error never quotes the document.
        let text = String::from_utf8(doc.to_vec()).unwrap();
        let wrong_index = text.replace("\"index\":2", "\"index\":3");
        let other = signward_threshold::split(&[8u8; 32], 2, 3).unwrap();
        let wrong_commitments = String::from_utf8(share_of(&other, 1).to_document().to_vec())
            .unwrap()
            .replace(
                &PublicKeyBytes::from(other.commitments.group_public_key()).to_hex(),
                &PublicKeyBytes::from(d.commitments.group_public_key()).to_hex(),
            );
        for bad in [
            wrong_index.as_str(),
            wrong_commitments.as_str(),
            "{}",
            "nonsense",
        ] {
            let e = GroupShare::from_document(bad.as_bytes()).err().unwrap();
            assert!(!e.to_string().contains("0x"), "{e}");
        }
    }

    #[test]
    fn vault_shares_replace_and_drop_only_their_own() {
        let d = signward_threshold::split(&[9u8; 32], 2, 3).unwrap();
        let e = signward_threshold::split(&[7u8; 32], 2, 3).unwrap();
        let g = groups(1, vec![2, 3]);
        let from_file = g.add(share_of(&d, 0), File).unwrap();
        assert_eq!(g.set_vault_shares(vec![share_of(&e, 0)]), (1, 0));
        let key = PublicKeyBytes::from(e.commitments.group_public_key());
        assert_eq!(g.origin(&key), Some(Vault));
        // The same share again: nothing changes. A refreshed one: replaced.
        assert_eq!(g.set_vault_shares(vec![share_of(&e, 0)]), (0, 0));
        // A refresh by peers 1 and 2: new share for peer 1, same group key.
        let old = signward_threshold::KeyShare {
            share: share_of(&e, 0).share,
            commitments: e.commitments.clone(),
        };
        let received: Vec<_> = [0usize, 1]
            .iter()
            .map(|&i| {
                let dealer = signward_threshold::KeyShare {
                    share: share_of(&e, i).share,
                    commitments: e.commitments.clone(),
                };
                let dealt = signward_threshold::reshare(&dealer, 2, 3).unwrap();
                signward_threshold::Received {
                    dealer: i as u32 + 1,
                    commitments: dealt.commitments.clone(),
                    share: SecretShare::from_bytes(1, &dealt.shares[0].dangerous_bytes()).unwrap(),
                }
            })
            .collect();
        let fresh = signward_threshold::combine_reshares(1, &old.commitments, &received).unwrap();
        let refreshed = GroupShare {
            share: fresh.share,
            commitments: fresh.commitments,
        };
        assert_eq!(refreshed.group_key(), key);
        assert_eq!(g.set_vault_shares(vec![refreshed]), (1, 0));
        assert_ne!(
            g.share(&key).unwrap().commitments_digest(),
            share_of(&e, 0).commitments_digest()
        );
        // A record gone: its share is dropped.
        let other = share_of(&d, 0);
        let other_key = other.group_key();
        drop(other);
        assert_eq!(g.set_vault_shares(vec![]), (0, 1));
        assert!(g.share(&key).is_none() && g.share(&other_key).is_some());
        // A vault share of a key held from files is not taken; the file's stays.
        assert_eq!(g.set_vault_shares(vec![share_of(&d, 0)]), (0, 0));
        assert_eq!(g.origin(&from_file), Some(File));
        // Sealing drops the vault's shares only.
        g.set_vault_shares(vec![share_of(&e, 0)]);
        assert_eq!(g.remove_origin(Vault), 1);
        assert_eq!(g.keys(), vec![from_file]);
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
        let g = groups(1, vec![2, 3]);
        let key = g.add(share_of(&d, 0), File).unwrap();
        let share = g.share(&key).unwrap();
        let r = coordinate(&g, &share, key, &Root::default(), Arc::from(&b"{}"[..])).await;
        assert_eq!(r.err(), Some(Rejection::GroupUnavailable));
        assert_eq!(g.coordinated(), (0, 1));
        let failed: u64 = g.peer_stats().iter().map(|(_, s)| s.snapshot().1).sum();
        assert_eq!(failed, 2);
    }
}
