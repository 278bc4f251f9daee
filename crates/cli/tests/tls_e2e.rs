//! HTTPS and mTLS through the real binary: client-certificate identities mapped to policies,
//! handshakes refused without a certificate, certificate reload on SIGHUP without dropping the
//! listener, and a private key that others can read refused at start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Digest;

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(&self, cn: &str, client: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn write_pem(dir: &Path, name: &str, leaf: &Leaf) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    write_secret(&key, leaf.key_pem.as_bytes());
    (cert.display().to_string(), key.display().to_string())
}

fn fp(der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(der))
}

/// One HTTPS request; returns the response and the server certificate's fingerprint.
fn https(
    port: u16,
    ca_pem: &str,
    client: Option<&Leaf>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(Response, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(l) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(l.der.clone())],
                PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(&raw_request(method, path, headers, body))?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    let server_fp = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| fp(c.as_ref()))
        .unwrap_or_default();
    Ok((parse_response(&buf)?, server_fp))
}

fn randao_body(epoch: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"type": "RANDAO_REVEAL",
        "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                      "genesis_validators_root": "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"},
        "randao_reveal": {"epoch": epoch.to_string()}})).unwrap()
}

fn create_credential(d: &Path, args: &[&str]) -> String {
    credential(d, args)
}

#[test]
fn mtls_maps_client_certificates_to_policies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("signward test CA");
    let server_leaf = pki.leaf("signward", false);
    let (cert, key) = write_pem(d, "server", &server_leaf);
    let ca = d.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let vc = pki.leaf("validator-client", true);
    let stranger = pki.leaf("stranger", true);
    let other_ca = Pki::new("someone else");
    let outsider = other_ca.leaf("outsider", true);
    create_credential(
        d,
        &[
            "--name",
            "vc-cert",
            "--scope",
            "sign",
            "--cert-sha256",
            &fp(&vc.der),
        ],
    );
    let token = create_credential(d, &["--name", "vc-token", "--scope", "sign"]);
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            ca.to_str().unwrap(),
        ],
    );
    let path = format!("/api/v1/eth2/sign/{}", pks[0]);
    let accept = [("accept", "application/json")];
    // The certificate is the identity.
    let (r, server_fp) = https(
        server.port,
        &pki.ca_pem,
        Some(&vc),
        "POST",
        &path,
        &accept,
        &randao_body(1),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server_fp, fp(&server_leaf.der));
    // A valid certificate without a credential is not enough.
    let (r, _) = https(
        server.port,
        &pki.ca_pem,
        Some(&stranger),
        "POST",
        &path,
        &accept,
        &randao_body(2),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    // A token still works over mTLS.
    let auth = format!("Bearer {token}");
    let (r, _) = https(
        server.port,
        &pki.ca_pem,
        Some(&stranger),
        "POST",
        &path,
        &[("accept", "application/json"), ("authorization", &auth)],
        &randao_body(3),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // No certificate, or one from another CA: the handshake fails.
    assert!(https(server.port, &pki.ca_pem, None, "GET", "/upcheck", &[], b"").is_err());
    assert!(https(
        server.port,
        &pki.ca_pem,
        Some(&outsider),
        "GET",
        "/upcheck",
        &[],
        b""
    )
    .is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(try_request(server.port, "GET", "/upcheck", &[], b"").is_err());
}

#[test]
fn certificates_reload_on_sighup_without_dropping_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("reload CA");
    let first = pki.leaf("first", false);
    let (cert, key) = write_pem(d, "server", &first);
    let (keys, pw, _) = nimbus_keys(d, 1);
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let (r, seen) = https(server.port, &pki.ca_pem, None, "GET", "/upcheck", &[], b"").unwrap();
    assert_eq!((r.status, seen), (200, fp(&first.der)));
    // A broken replacement is refused and the old certificate stays in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let (_, seen) = https(server.port, &pki.ca_pem, None, "GET", "/upcheck", &[], b"").unwrap();
    assert_eq!(seen, fp(&first.der));
    assert!(server.log_text().contains("TLS reload failed"));
    // A good replacement takes effect for new connections.
    let second = pki.leaf("second", false);
    write_pem_over(&cert, &key, &second);
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let (r, seen) = https(server.port, &pki.ca_pem, None, "GET", "/upcheck", &[], b"").unwrap();
    assert_eq!((r.status, seen), (200, fp(&second.der)));
    assert!(server.log_text().contains("TLS certificates reloaded"));
}

fn write_pem_over(cert: &str, key: &str, leaf: &Leaf) {
    std::fs::write(cert, &leaf.cert_pem).unwrap();
    std::fs::write(key, &leaf.key_pem).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_readable_private_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("ca");
    let (cert, key) = write_pem(d, "server", &pki.leaf("s", false));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port().to_string();
    expect_refusal(
        &[
            "serve",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--http-listen-port",
            &port,
        ],
        &d.join("data"),
        "chmod 600",
    );
}
