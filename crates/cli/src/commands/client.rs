//! A small HTTP(S) client for the admin API, used by `unseal`, `seal`, `status` and `keys`.
//! The token comes from an owner-only file or `env:VAR`, never from argv.

use std::sync::Arc;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use zeroize::Zeroizing;

use crate::cli::ClientArgs;

pub struct AdminClient {
    https: bool,
    host: String,
    port: u16,
    token: Zeroizing<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    rt: tokio::runtime::Runtime,
}

/// Read a secret given as `env:VAR` or as the path of an owner-only file.
pub fn read_secret(spec: &str, what: &str) -> anyhow::Result<Zeroizing<String>> {
    if let Some(var) = spec.strip_prefix("env:") {
        return std::env::var(var)
            .map(Zeroizing::new)
            .with_context(|| format!("environment variable {var} (for the {what}) is not set"));
    }
    let path = spec.strip_prefix("file:").unwrap_or(spec);
    let bytes = signward_keys::fsutil::read_secret_file(
        std::path::Path::new(path),
        signward_keys::fsutil::FileKind::Password,
    )
    .with_context(|| format!("reading the {what} from {path}"))?;
    let s = std::str::from_utf8(&bytes).with_context(|| format!("{path} is not UTF-8"))?;
    Ok(Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string()))
}

impl AdminClient {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let uri: hyper::Uri = args.url.parse().context("--url is not a URL")?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("--url must start with http:// or https://"),
        };
        let host = uri.host().context("--url has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let token = read_secret(&args.token_file, "admin token")?;
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            let ca = args
                .ca_cert
                .as_ref()
                .context("an https:// URL needs --ca-cert (the server's CA certificate)")?;
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            for cert in rustls_pemfile_certs(&pem)? {
                roots.add(cert).context("adding the CA certificate")?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Some(Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        } else {
            if !host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
                && host != "localhost"
            {
                eprintln!("warning: sending an admin token and key material over plain HTTP to {host}; use https://");
            }
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(AdminClient {
            https,
            host,
            port,
            token,
            tls,
            rt,
        })
    }

    /// One request; returns the status and the JSON body (`null` when empty or not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        self.rt.block_on(self.call_async(method, path, body))
    }

    async fn call_async(
        &self,
        method: &str,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
        let body_bytes = body.map(|b| Bytes::from(b.to_vec())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token.as_str()))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(body_bytes))?;
        let resp = if self.https {
            let tls = self.tls.clone().context("TLS configuration missing")?;
            let name = rustls_pki_types::ServerName::try_from(self.host.clone())?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .context("TLS handshake with the server failed")?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            send.send_request(req).await?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            send.send_request(req).await?
        };
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }

    /// Like [`AdminClient::call`], but an error status becomes an error naming the server's code.
    pub fn expect_ok(
        &self,
        method: &str,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, json) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            bail!(
                "server answered {status} {}: {}",
                json.get("code").and_then(|c| c.as_str()).unwrap_or("?"),
                json.get("message").and_then(|c| c.as_str()).unwrap_or("")
            );
        }
        Ok(json)
    }
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .context("CA file is not PEM certificates")?;
    if certs.is_empty() {
        bail!("CA file holds no certificate");
    }
    Ok(certs)
}
