//! The client of an EVM node that signward forwards reads to and submits signed transactions
//! through (`--evm-upstream-url`).
//!
//! The node sits outside signward's trust boundary. Requests to it are built here from scratch:
//! nothing of the inbound request (headers, credentials, ids) is passed on, so the node never
//! receives a credential of ours. Its answers are bounded in size and time and are only ever
//! returned to the caller or read as numbers that the engine then checks.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::time::Duration;

use serde_json::{json, Value};

/// Why a node call failed. Messages carry no credential: the URL's user information and query
/// are never quoted.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The upstream configuration is refused.
    #[error("upstream node: {0}")]
    Config(String),
    /// The node could not be reached, timed out, or answered with an HTTP error.
    #[error("upstream node unreachable: {0}")]
    Transport(String),
    /// The node answered with a JSON-RPC error.
    #[error("upstream node error {code}: {message}")]
    Rpc {
        /// The node's error code.
        code: i64,
        /// The node's message (cut to 200 characters).
        message: String,
        /// The node's `data`, if any.
        data: Option<Value>,
    },
    /// The node's answer is not a JSON-RPC response we can read.
    #[error("upstream node answered something unreadable: {0}")]
    BadAnswer(&'static str),
}

impl NodeError {
    /// A stable code for logs and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Config(_) => "upstream_config",
            NodeError::Transport(_) => "upstream_unreachable",
            NodeError::Rpc { .. } => "upstream_error",
            NodeError::BadAnswer(_) => "upstream_bad_answer",
        }
    }

    /// The node already has this very transaction in its pool (a resubmission): not a refusal.
    pub fn is_already_known(&self) -> bool {
        matches!(self, NodeError::Rpc { message, .. } if {
            let m = message.to_ascii_lowercase();
            m.contains("already known") || m.contains("known transaction") || m.contains("already imported")
        })
    }

    /// The node refused a transaction because its nonce is already used (by another
    /// transaction: an identical one is [`NodeError::is_already_known`]).
    /// geth, erigon, reth, besu and nethermind say so in words; ganache says
    /// "account has nonce of: A tx has nonce of: T" with T below A.
    pub fn is_nonce_too_low(&self) -> bool {
        let NodeError::Rpc { message, .. } = self else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        if m.contains("nonce too low")
            || m.contains("nonce is too low")
            || m.contains("replacement transaction underpriced")
        {
            return true;
        }
        let after = |key: &str| -> Option<u64> {
            let rest = &m[m.find(key)? + key.len()..];
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        matches!(
            (after("account has nonce of:"), after("tx has nonce of:")),
            (Some(account), Some(tx)) if tx < account
        )
    }
}

/// Largest answer read from the node.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One EVM node.
#[derive(Clone)]
pub struct Node {
    url: url::Url,
    http: reqwest::Client,
    /// What logs and errors may show of the URL: scheme, host and port only.
    shown: String,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("url", &self.shown).finish()
    }
}

/// How to reach a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `https://…`, or `http://` on a loopback address (or with `allow_plaintext`).
    pub url: String,
    /// PEM certificates trusted besides the system's roots (a private node's CA).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Permit `http://` to a non-loopback host.
    pub allow_plaintext: bool,
    /// Deadline of one call.
    pub timeout: Duration,
}

impl Node {
    /// A client for the node at `cfg.url`. Refuses plaintext to a host that is not loopback
    /// unless `allow_plaintext`, and URLs that are not http(s).
    pub fn new(cfg: &NodeConfig) -> Result<Self, NodeError> {
        let url = url::Url::parse(cfg.url.trim())
            .map_err(|_| NodeError::Config("the upstream URL is not a URL".into()))?;
        let host = url
            .host()
            .ok_or_else(|| NodeError::Config("the upstream URL has no host".into()))?;
        let loopback = match host {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(a) => a.is_loopback(),
            url::Host::Ipv6(a) => a.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback || cfg.allow_plaintext => {}
            "http" => {
                return Err(NodeError::Config(
                    "plaintext http to a node that is not on loopback; use https (or \
                     --evm-upstream-allow-plaintext)"
                        .into(),
                ))
            }
            _ => return Err(NodeError::Config("the upstream URL must be http(s)".into())),
        }
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            host,
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            // A redirect could carry the request (and the URL's own credentials) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signward/", env!("CARGO_PKG_VERSION")))
            .https_only(url.scheme() == "https");
        if let Some(pem) = &cfg.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| NodeError::Config("the upstream CA file is not PEM".into()))?;
            if certs.is_empty() {
                return Err(NodeError::Config(
                    "the upstream CA file holds no certificate".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| NodeError::Config(format!("HTTP client: {e}")))?;
        Ok(Node { url, http, shown })
    }

    /// Scheme, host and port: what may be shown of the node.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Call `method` with `params`; the node's `result`, or its error.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, NodeError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut resp = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| NodeError::Transport(describe(&e)))?;
        let status = resp.status();
        // A redirect is never followed, and its body is never an answer.
        if status.is_redirection() {
            return Err(NodeError::Transport("redirect refused".into()));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| NodeError::Transport(describe(&e)))?
        {
            if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(NodeError::BadAnswer("answer too large"));
            }
            buf.extend_from_slice(&chunk);
        }
        let v: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Err(NodeError::Transport(format!("HTTP {}", status.as_u16())))
            }
            Err(_) => return Err(NodeError::BadAnswer("not JSON")),
        };
        if let Some(e) = v.get("error") {
            return Err(NodeError::Rpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(-32603),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
                data: e.get("data").cloned(),
            });
        }
        v.get("result")
            .cloned()
            .ok_or(NodeError::BadAnswer("no result"))
    }

    /// `method`'s result read as a quantity (`0x…`).
    pub async fn quantity(&self, method: &str, params: Value) -> Result<u128, NodeError> {
        let v = self.call(method, params).await?;
        parse_quantity(&v).ok_or(NodeError::BadAnswer("not a quantity"))
    }
}

/// A `0x` hex quantity of at most 128 bits.
pub fn parse_quantity(v: &Value) -> Option<u128> {
    let s = v.as_str()?;
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 32 {
        return None;
    }
    u128::from_str_radix(h, 16).ok()
}

/// An HTTP client error without the URL (which may carry the node's credentials).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if let Some(s) = e.status() {
        format!("HTTP {}", s.as_u16())
    } else if e.is_redirect() {
        "redirect refused".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> NodeConfig {
        NodeConfig {
            url: url.into(),
            extra_roots_pem: None,
            allow_plaintext: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn plaintext_only_on_loopback_and_credentials_never_shown() {
        assert!(Node::new(&cfg("http://127.0.0.1:8545")).is_ok());
        assert!(Node::new(&cfg("http://localhost:8545")).is_ok());
        assert!(Node::new(&cfg("http://[::1]:8545")).is_ok());
        assert!(matches!(
            Node::new(&cfg("http://10.0.0.1:8545")),
            Err(NodeError::Config(_))
        ));
        assert!(Node::new(&cfg("ftp://127.0.0.1/")).is_err());
        assert!(Node::new(&cfg("not a url")).is_err());
        let n = Node::new(&cfg("https://user:secret@node.example:8443/v3/apikey123")).unwrap();
        assert_eq!(n.shown(), "https://node.example:8443");
        assert!(!format!("{n:?}").contains("secret") && !format!("{n:?}").contains("apikey"));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(&json!("0x10")), Some(16));
        assert_eq!(parse_quantity(&json!("0x")), None);
        assert_eq!(parse_quantity(&json!("16")), None);
        assert_eq!(parse_quantity(&json!(16)), None);
        assert_eq!(
            parse_quantity(&json!(format!("0x{}", "f".repeat(33)))),
            None
        );
    }

    #[test]
    fn nonce_errors_are_recognised() {
        let e = |m: &str| NodeError::Rpc {
            code: -32000,
            message: m.into(),
            data: None,
        };
        assert!(e("nonce too low: next nonce 5, tx nonce 3").is_nonce_too_low());
        assert!(e(
            "the tx doesn't have the correct nonce. account has nonce of: 3 tx has nonce of: 1"
        )
        .is_nonce_too_low());
        assert!(!e(
            "the tx doesn't have the correct nonce. account has nonce of: 3 tx has nonce of: 5"
        )
        .is_nonce_too_low());
        assert!(!e("insufficient funds").is_nonce_too_low());
        // The same transaction again is not a used nonce: retrying with a fresh one would pay
        // twice.
        assert!(!e("already known").is_nonce_too_low() && e("already known").is_already_known());
    }

    /// A node that answers one canned response per connection.
    async fn fake_node(answer: &'static str, status: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let r = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = s.write_all(r.as_bytes()).await;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_errors_and_redirects() {
        let n = Node::new(&cfg(&fake_node(
            r#"{"jsonrpc":"2.0","id":1,"result":"0x539"}"#,
            "200 OK",
        )
        .await))
        .unwrap();
        assert_eq!(n.quantity("eth_chainId", json!([])).await.unwrap(), 1337);
        let n = Node::new(&cfg(&fake_node(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#,
            "200 OK",
        )
        .await))
        .unwrap();
        assert!(n
            .call("eth_sendRawTransaction", json!(["0x00"]))
            .await
            .unwrap_err()
            .is_nonce_too_low());
        let n = Node::new(&cfg(&fake_node(
            "",
            "302 Found\r\nlocation: http://127.0.0.1:1/",
        )
        .await))
        .unwrap();
        assert!(matches!(
            n.call("eth_chainId", json!([])).await,
            Err(NodeError::Transport(_))
        ));
        let n = Node::new(&cfg(&fake_node("<html>", "200 OK").await)).unwrap();
        assert!(matches!(
            n.call("eth_chainId", json!([])).await,
            Err(NodeError::BadAnswer(_))
        ));
    }
}
