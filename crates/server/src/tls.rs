//! TLS and mTLS with rustls (ring provider). Certificates are reloaded on demand (SIGHUP) without
//! closing the listener: each new connection takes the current configuration, and a reload that
//! fails keeps the previous one. With a client CA, every client must present a certificate
//! that CA issued. Its SHA-256 fingerprint is the identity the gate maps to a credential.

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Error)]
/// Why TLS could not be set up.
pub enum TlsError {
    /// A certificate or key file that cannot be used.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is readable by others.
    #[error("{file}: accessible by group or others; run `chmod 600 {file}`")]
    InsecureKey {
        /// The file.
        file: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, 0600).
    pub key: PathBuf,
    /// When set, clients must present a certificate chaining to this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The identity of a client certificate: lowercase hex SHA-256 of its DER encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert(pub String);

/// The SHA-256 fingerprint of a DER certificate, lowercase hex (as `tokens.json` names it).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn file_err(p: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        file: p.display().to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let certs: Vec<_> =
        rustls_pemfile_certs(&mut BufReader::new(f)).map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn rustls_pemfile_certs(
    r: &mut dyn std::io::BufRead,
) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut text = Vec::new();
    r.read_to_end(&mut text).map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM ({e:?})"))
}

pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(TlsError::InsecureKey {
            file: path.display().to_string(),
        });
    }
    PrivateKeyDer::from_pem_file(path).map_err(|_| file_err(path, "no PEM private key found"))
}

fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| file_err(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The live TLS configuration.
pub struct Tls {
    /// `None` for a fixed configuration (the signing group's listener), which never reloads.
    files: Option<TlsFiles>,
    client_auth: bool,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Load and check the files.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = build(&files)?;
        Ok(Tls {
            client_auth: files.client_ca.is_some(),
            files: Some(files),
            current: RwLock::new(config),
        })
    }

    /// A configuration built elsewhere (the signing group's pinned mTLS); it is not reloaded.
    pub fn fixed(config: Arc<ServerConfig>, client_auth: bool) -> Self {
        Tls {
            files: None,
            client_auth,
            current: RwLock::new(config),
        }
    }

    /// Re-read the files. On failure the previous configuration stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let config = build(files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// Clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.client_auth
    }

    /// The acceptor for a new connection, with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
