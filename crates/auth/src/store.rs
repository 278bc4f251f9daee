//! The credential file (`<data-dir>/tokens.json`, mode 0600): name, HMAC of the token, policy.
//! The server re-reads it when it changes (checked at most once a second), so `token create`
//! and `token revoke` take effect on a running server without a restart.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::policy::{Cidr, Operation, Policy, Scope};
use crate::secret::ServerSecret;
use crate::token;
use crate::AuthError;

/// One credential as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The credential's name (unique; recorded in the audit log).
    pub name: String,
    /// Hex HMAC-SHA256(server secret, token); empty for a certificate credential.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_hmac: String,
    /// Hex SHA-256 of a client certificate (mTLS), for a certificate credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// A source credential: no secret; a request that presents no credential at all is this
    /// caller when it comes from one of `policy.cidrs`. See [`check_source_credential`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_bound: bool,
    /// When it was created, Unix seconds.
    pub created_at: u64,
    /// What it may do.
    pub policy: Policy,
    /// Set when the server suspended the credential (it asked for a canary key). A suspended
    /// credential is refused everywhere until `signward token reinstate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
}

/// Scopes a source credential may hold: a validator client's, never key management, the admin
/// API or EVM signing (an address is not a secret).
pub const SOURCE_SCOPES: [Scope; 3] = [Scope::Sign, Scope::PublicKeys, Scope::Metrics];

/// The widest range an IPv4 source credential may name: a /24.
pub const SOURCE_MAX_HOST_BITS_V4: u8 = 8;
/// The widest range of an IPv6 source credential: a /64.
pub const SOURCE_MAX_HOST_BITS_V6: u8 = 64;

/// The rules of a source credential, checked when it is created and again when the server loads
/// the file (a hand-edited entry that breaks them is ignored, never honoured).
pub fn check_source_credential(c: &Credential) -> Result<(), AuthError> {
    let bad = |m: &str| Err(AuthError::InvalidPolicy(m.to_string()));
    if !c.token_hmac.is_empty() || c.cert_sha256.is_some() {
        return bad("a source credential has no token and no certificate");
    }
    if c.policy.cidrs.is_empty() {
        return bad("a source credential needs at least one address range (--source)");
    }
    for cidr in &c.policy.cidrs {
        let max = if cidr.is_ipv4() {
            SOURCE_MAX_HOST_BITS_V4
        } else {
            SOURCE_MAX_HOST_BITS_V6
        };
        if cidr.host_bits() > max {
            return bad("a source credential's range may be at most a /24 (IPv4) or a /64 (IPv6)");
        }
    }
    if let Some(s) = c.policy.scopes.iter().find(|s| !SOURCE_SCOPES.contains(s)) {
        return Err(AuthError::InvalidPolicy(format!(
            "a source credential may hold only sign, public_keys and metrics, not {s}"
        )));
    }
    if !c.policy.evm_keys.is_none() {
        return bad("a source credential may not be granted EVM keys");
    }
    if let Some(op) = c
        .policy
        .allow_ops
        .iter()
        .flatten()
        .find(|op| !Operation::DUTIES.contains(op))
    {
        return Err(AuthError::InvalidPolicy(format!(
            "a source credential signs a validator client's duties only, not {}",
            op.as_str()
        )));
    }
    if c.policy
        .cidrs
        .iter()
        .any(|x| x.is_unspecified_or_multicast())
    {
        return bad("a source credential's range may not be unspecified, multicast or broadcast");
    }
    Ok(())
}

/// Why and when a credential was suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// When, Unix seconds.
    pub at: u64,
    /// Why (a fixed sentence from the server).
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    credentials: Vec<Credential>,
}

fn read_file(path: &Path) -> Result<File, AuthError> {
    let name = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(File {
                version: 1,
                credentials: vec![],
            })
        }
        Err(e) => return Err(e.into()),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(AuthError::InsecurePermissions { file: name });
    }
    let bytes = std::fs::read(path)?;
    let f: File = serde_json::from_slice(&bytes).map_err(|e| AuthError::BadFile {
        file: name.clone(),
        reason: format!("not a credential file ({e})"),
    })?;
    if f.version != 1 {
        return Err(AuthError::BadFile {
            file: name,
            reason: format!("unsupported version {}", f.version),
        });
    }
    Ok(f)
}

/// Replace the file durably (a revocation survives a crash the moment the call returns).
fn write_file(path: &Path, f: &File) -> Result<(), AuthError> {
    let bytes = serde_json::to_vec_pretty(f).map_err(|e| AuthError::BadFile {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    signward_os::fs::replace(path, &bytes)?;
    Ok(())
}

/// Read, change and write the credential file under its lock, so the CLI and the server never
/// lose each other's changes.
fn update<T>(
    path: &Path,
    change: impl FnOnce(&mut File) -> Result<T, AuthError>,
) -> Result<T, AuthError> {
    let lock = path.with_file_name(".tokens.json.lock");
    signward_os::fs::with_lock(&lock, || {
        let mut f = read_file(path)?;
        f.version = 1;
        let out = change(&mut f)?;
        write_file(path, &f)?;
        Ok(out)
    })?
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Credential administration (the `token` subcommands).
pub struct CredentialFile {
    /// `tokens.json` in the data directory.
    pub path: PathBuf,
}

impl CredentialFile {
    /// The credential file of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        CredentialFile {
            path: signward_os::DataDir::new(data_dir).tokens(),
        }
    }

    /// Create a credential and return its token (to be shown once).
    pub fn create(
        &self,
        secret: &ServerSecret,
        name: &str,
        policy: Policy,
    ) -> Result<token::NewToken, AuthError> {
        let t = token::generate();
        self.add(Credential {
            name: name.to_string(),
            token_hmac: hex::encode(token::hmac(secret, &t.0)),
            cert_sha256: None,
            source_bound: false,
            created_at: now(),
            policy,
            suspended: None,
        })?;
        Ok(t)
    }

    /// Create a credential for a client certificate (mTLS), identified by its SHA-256.
    pub fn create_cert(
        &self,
        name: &str,
        cert_sha256: &str,
        policy: Policy,
    ) -> Result<(), AuthError> {
        let fp = cert_sha256
            .trim()
            .trim_start_matches("sha256:")
            .to_ascii_lowercase()
            .replace(':', "");
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::InvalidPolicy(
                "certificate fingerprint must be 32 bytes of hex (SHA-256)".into(),
            ));
        }
        self.add(Credential {
            name: name.to_string(),
            token_hmac: String::new(),
            cert_sha256: Some(fp),
            source_bound: false,
            created_at: now(),
            policy,
            suspended: None,
        })
    }

    /// Create a source credential: requests that present no credential from one of
    /// `policy.cidrs` act as it. Its ranges may not overlap another source credential's.
    pub fn create_source(&self, name: &str, policy: Policy) -> Result<(), AuthError> {
        let c = Credential {
            name: name.to_string(),
            token_hmac: String::new(),
            cert_sha256: None,
            source_bound: true,
            created_at: now(),
            policy,
            suspended: None,
        };
        check_source_credential(&c)?;
        self.add(c)
    }

    /// Validate and append a new credential, atomically rewriting the file.
    fn add(&self, c: Credential) -> Result<(), AuthError> {
        let name = &c.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            return Err(AuthError::InvalidPolicy(
                "name must be 1-64 characters of [A-Za-z0-9._-]".into(),
            ));
        }
        if c.policy.scopes.is_empty() {
            return Err(AuthError::InvalidPolicy(
                "at least one scope is required".into(),
            ));
        }
        update(&self.path, |f| {
            if f.credentials.iter().any(|x| x.name == c.name) {
                return Err(AuthError::Duplicate(c.name.clone()));
            }
            if c.source_bound {
                if let Some(other) = f
                    .credentials
                    .iter()
                    .filter(|x| x.source_bound)
                    .find(|x| overlapping(&x.policy.cidrs, &c.policy.cidrs))
                {
                    return Err(AuthError::InvalidPolicy(format!(
                        "the address range overlaps source credential {:?}",
                        other.name
                    )));
                }
            }
            f.credentials.push(c);
            Ok(())
        })
    }

    /// Every credential.
    pub fn list(&self) -> Result<Vec<Credential>, AuthError> {
        Ok(read_file(&self.path)?.credentials)
    }

    /// Remove the credential `name`, durably.
    pub fn revoke(&self, name: &str) -> Result<(), AuthError> {
        update(&self.path, |f| {
            let before = f.credentials.len();
            f.credentials.retain(|c| c.name != name);
            if f.credentials.len() == before {
                return Err(AuthError::NotFound(name.to_string()));
            }
            Ok(())
        })
    }

    /// Suspend (`Some(reason)`) or reinstate (`None`) a credential. Returns whether it changed.
    pub fn set_suspended(&self, name: &str, reason: Option<&str>) -> Result<bool, AuthError> {
        update(&self.path, |f| {
            let c = f
                .credentials
                .iter_mut()
                .find(|c| c.name == name)
                .ok_or_else(|| AuthError::NotFound(name.to_string()))?;
            let next = reason.map(|r| Suspension {
                at: now(),
                reason: r.chars().filter(|c| !c.is_control()).take(200).collect(),
            });
            let changed = c.suspended.is_some() != next.is_some();
            if changed {
                c.suspended = next;
            }
            Ok(changed)
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The credential's name.
    pub name: String,
    /// What it may do.
    pub policy: Policy,
    /// Suspended callers are refused everywhere (403 `credential_suspended`).
    pub suspended: bool,
}

/// The server's view: token HMAC → caller and certificate fingerprint → caller, reloaded when
/// the file changes.
pub struct TokenStore {
    path: PathBuf,
    secret: ServerSecret,
    map: RwLock<Arc<Index>>,
    seen: Mutex<(Instant, Option<SystemTime>)>,
}

#[derive(Default)]
struct Index {
    tokens: HashMap<[u8; 32], Arc<Caller>>,
    certs: HashMap<String, Arc<Caller>>,
    sources: Vec<(Vec<Cidr>, Arc<Caller>)>,
}

impl Index {
    fn len(&self) -> usize {
        self.tokens.len() + self.certs.len() + self.sources.len()
    }
}

fn overlapping(a: &[Cidr], b: &[Cidr]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

fn index(f: File) -> Index {
    let mut idx = Index::default();
    for c in f.credentials {
        if c.source_bound {
            if let Err(e) = check_source_credential(&c) {
                tracing::error!(credential = %c.name, error = %e, "source credential ignored");
                continue;
            }
        }
        let caller = Arc::new(Caller {
            name: c.name,
            policy: c.policy,
            suspended: c.suspended.is_some(),
        });
        if c.source_bound {
            idx.sources.push((caller.policy.cidrs.clone(), caller));
        } else if let Some(fp) = c.cert_sha256 {
            idx.certs.insert(fp, caller);
        } else if let Some(h) = hex::decode(&c.token_hmac)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
        {
            idx.tokens.insert(h, caller);
        }
    }
    idx
}

impl TokenStore {
    /// The credentials of `data_dir`, checked against `secret`; reloaded when the file changes.
    pub fn open(data_dir: &Path, secret: ServerSecret) -> Result<Self, AuthError> {
        let path = signward_os::DataDir::new(data_dir).tokens();
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let map = index(read_file(&path)?);
        Ok(TokenStore {
            path,
            secret,
            map: RwLock::new(Arc::new(map)),
            seen: Mutex::new((Instant::now(), mtime)),
        })
    }

    /// How many credentials exist.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// No credential exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Suspend a credential durably and at once (the in-memory set is reloaded from the file
    /// just written).
    pub fn suspend(&self, name: &str, reason: &str) -> Result<bool, AuthError> {
        let changed = CredentialFile {
            path: self.path.clone(),
        }
        .set_suspended(name, Some(reason))?;
        self.reload_now();
        Ok(changed)
    }

    fn reload_now(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.0 = Instant::now() - Duration::from_secs(2);
        seen.1 = None;
        drop(seen);
        self.refresh();
    }

    /// Re-read the file if it changed; keep the old set if the new file is unreadable.
    fn refresh(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.elapsed() < Duration::from_secs(1) {
            return;
        }
        seen.0 = Instant::now();
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime == seen.1 {
            return;
        }
        match read_file(&self.path) {
            Ok(f) => {
                let map = index(f);
                tracing::info!(credentials = map.len(), "credential file reloaded");
                *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
                seen.1 = mtime;
            }
            Err(e) => {
                tracing::error!(error = %e, "credential file not reloaded; keeping the previous credentials")
            }
        }
    }

    /// The caller a token belongs to, if any.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Caller>> {
        if !token::well_formed(presented) {
            return None;
        }
        self.refresh();
        let h = token::hmac(&self.secret, presented);
        let map = self.map.read().unwrap_or_else(|p| p.into_inner()).clone();
        // The lookup is keyed by a MAC the caller cannot compute; the final comparison is
        // constant-time all the same.
        let (stored, caller) = map.tokens.get_key_value(&h)?;
        bool::from(stored.ct_eq(&h)).then(|| caller.clone())
    }

    /// The source credential for a request from `ip` that presented no credential, if exactly
    /// one names a range holding `ip` (two would be ambiguous: the file was edited by hand to
    /// overlap, and neither is chosen).
    pub fn authenticate_source(&self, ip: std::net::IpAddr) -> Option<Arc<Caller>> {
        self.refresh();
        let map = self.map.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut found = map
            .sources
            .iter()
            .filter(|(cidrs, _)| cidrs.iter().any(|c| c.contains(ip)));
        let first = found.next()?;
        if found.next().is_some() {
            tracing::error!(source = %ip, "two source credentials name this address; neither is used");
            return None;
        }
        Some(first.1.clone())
    }

    /// The caller a verified client certificate (by SHA-256 fingerprint) belongs to, if any.
    pub fn authenticate_cert(&self, fingerprint: &str) -> Option<Arc<Caller>> {
        self.refresh();
        let map = self.map.read().unwrap_or_else(|p| p.into_inner()).clone();
        map.certs.get(fingerprint).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Scope;

    #[test]
    fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let secret = || ServerSecret::load_or_create(&dir.path().join("server.key")).unwrap();
        let file = CredentialFile::new(dir.path());
        let policy = Policy {
            scopes: [Scope::Sign].into(),
            ..Default::default()
        };
        let t = file.create(&secret(), "vc-1", policy.clone()).unwrap();
        assert!(matches!(
            file.create(&secret(), "vc-1", policy.clone()),
            Err(AuthError::Duplicate(_))
        ));
        assert!(file.create(&secret(), "bad name", policy.clone()).is_err());
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert!(
            !text.contains(t.0.as_str()),
            "the token itself is never stored"
        );
        assert_eq!(
            std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let store = TokenStore::open(dir.path(), secret()).unwrap();
        assert_eq!(store.authenticate(&t.0).unwrap().name, "vc-1");
        assert!(store.authenticate("sw_0000").is_none());
        let mut wrong = t.0.to_string();
        wrong.replace_range(10..11, if &wrong[10..11] == "a" { "b" } else { "a" });
        assert!(store.authenticate(&wrong).is_none());
        // A store keyed by another secret does not accept the token.
        let other = tempfile::tempdir().unwrap();
        std::fs::copy(&file.path, other.path().join("tokens.json")).unwrap();
        let foreign = TokenStore::open(
            other.path(),
            ServerSecret::load_or_create(&other.path().join("k")).unwrap(),
        )
        .unwrap();
        assert!(foreign.authenticate(&t.0).is_none());

        file.revoke("vc-1").unwrap();
        assert!(matches!(file.revoke("vc-1"), Err(AuthError::NotFound(_))));
        std::thread::sleep(Duration::from_millis(1100));
        assert!(
            store.authenticate(&t.0).is_none(),
            "revocation reaches a running store"
        );
    }
}
