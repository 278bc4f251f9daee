//! The EVM node behind signward (`--evm-upstream-url`), attacked: the JSON-RPC edge, the
//! `eth_sendTransaction` pipeline, durable nonces and the ReadyTrader remote-signer protocol,
//! through the real binary, with the node played by a fake written here.
//!
//! The fake node is a `std::net::TcpListener` answering HTTP/1.1 JSON-RPC with scripted answers
//! per method (a result, an error, raw HTTP such as HTML, a redirect or a huge body, or no answer
//! at all) and recording every request it receives (request line, headers, body), so each case is
//! deterministic and what reached the node can be checked byte for byte: no credential, header or
//! id of the client; nothing submitted that the policy refused; which nonces were signed.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const FRIEND: &str = "0x3333333333333333333333333333333333333333";
const STRANGER: &str = "0x4444444444444444444444444444444444444444";
/// The signer's pending nonce as the fake node reports it, unless a case says otherwise.
const NODE_NONCE: u64 = 5;
/// The second EVM key of the ReadyTrader cases (loaded with `--dev --dev-evm-key`).
const DEV_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const DEV_KEY_VAR: &str = "SIGNWARD_ATTACK_DEV_KEY";
/// 2^256 and 2^255 as JSON integers.
const TWO_POW_256: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639936";
const TWO_POW_255: &str =
    "57896044618658097711785492504343953926634992332820282019728792003956564819968";

// ---------------------------------------------------------------------------------------------
// The fake node.
// ---------------------------------------------------------------------------------------------

/// One request the fake node received, as it arrived.
#[derive(Debug, Clone)]
struct Seen {
    /// Request line, headers and body, byte for byte.
    raw: Vec<u8>,
    request_line: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn method(&self) -> &str {
        self.body["method"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The raw transaction of an `eth_sendRawTransaction`.
    fn raw_tx(&self) -> Option<Vec<u8>> {
        let s = self.body["params"][0].as_str()?;
        hex::decode(s.strip_prefix("0x")?).ok()
    }
}

/// What the fake node answers to one request.
#[derive(Clone)]
enum Reply {
    /// `{"jsonrpc": "2.0", "id": <the request's>, "result": …}`.
    Result(Value),
    /// A JSON-RPC error.
    Error(i64, String),
    /// Raw HTTP: status line, content type, extra header lines, body.
    Http {
        status: &'static str,
        content_type: &'static str,
        extra: String,
        body: Arc<Vec<u8>>,
    },
    /// Keep the connection open and never answer (until the client gives up, at most 20 s).
    Hang,
}

fn http(status: &'static str, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Http {
        status,
        content_type,
        extra: String::new(),
        body: Arc::new(body.into()),
    }
}

/// A script sees each request and how many of its method came before; `None` falls back to the
/// sticky per-method answers, then to the defaults.
type Script = dyn Fn(&Seen, usize) -> Option<Reply> + Send + Sync;

struct FakeNode {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<HashMap<String, Reply>>>,
    script: Arc<Mutex<Option<Arc<Script>>>>,
    stop: Arc<AtomicBool>,
}

/// An honest node on chain 1: 1 gwei base fee and tip, 21,000 gas, the signer's pending nonce
/// NODE_NONCE, every raw transaction accepted with its hash.
fn default_answer(s: &Seen) -> Reply {
    match s.method() {
        "eth_chainId" => Reply::Result(json!("0x1")),
        "eth_getTransactionCount" => Reply::Result(json!(format!("{NODE_NONCE:#x}"))),
        "eth_estimateGas" => Reply::Result(json!("0x5208")),
        "eth_getBlockByNumber" => {
            Reply::Result(json!({"number": "0x10", "baseFeePerGas": "0x3b9aca00"}))
        }
        "eth_maxPriorityFeePerGas" | "eth_gasPrice" => Reply::Result(json!("0x3b9aca00")),
        "eth_blockNumber" => Reply::Result(json!("0x10")),
        "eth_getBalance" => Reply::Result(json!("0xde0b6b3a7640000")),
        "eth_sendRawTransaction" => match s.raw_tx() {
            Some(raw) => Reply::Result(json!(format!("{:#x}", alloy_primitives::keccak256(raw)))),
            None => Reply::Error(-32602, "invalid raw transaction".into()),
        },
        _ => Reply::Error(-32601, "the method does not exist/is not available".into()),
    }
}

/// The JSON-RPC body of `reply` to `s` (Result and Error only).
fn render(s: &Seen, reply: &Reply) -> Vec<u8> {
    let id = s.body.get("id").cloned().unwrap_or(Value::Null);
    let v = match reply {
        Reply::Result(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Reply::Error(code, message) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
        _ => unreachable!("only results and errors are rendered"),
    };
    v.to_string().into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end + 4..]).unwrap_or(Value::Null);
    Some(Seen {
        raw: buf,
        request_line,
        headers,
        body,
    })
}

fn write_http(s: &mut TcpStream, status: &str, content_type: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

/// Never answer: wait until the client closes the connection (or 20 s).
fn hang(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let until = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl FakeNode {
    fn start() -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let node = FakeNode {
            port,
            seen: Arc::default(),
            answers: Arc::default(),
            script: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, answers, script, stop) = (
            node.seen.clone(),
            node.answers.clone(),
            node.script.clone(),
            node.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = conn else { continue };
                let (seen, answers, script) = (seen.clone(), answers.clone(), script.clone());
                std::thread::spawn(move || Self::serve(stream, &seen, &answers, &script));
            }
        });
        node
    }

    fn serve(
        mut s: TcpStream,
        seen: &Mutex<Vec<Seen>>,
        answers: &Mutex<HashMap<String, Reply>>,
        script: &Mutex<Option<Arc<Script>>>,
    ) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(req) = read_request(&mut s) else {
            return;
        };
        let (n, f, sticky) = {
            let mut all = seen.lock().unwrap();
            let n = all.iter().filter(|x| x.method() == req.method()).count();
            all.push(req.clone());
            let f = script.lock().unwrap().clone();
            let sticky = answers.lock().unwrap().get(req.method()).cloned();
            (n, f, sticky)
        };
        let reply = f
            .and_then(|f| f(&req, n))
            .or(sticky)
            .unwrap_or_else(|| default_answer(&req));
        match reply {
            Reply::Hang => hang(s),
            Reply::Http {
                status,
                content_type,
                extra,
                body,
            } => write_http(&mut s, status, content_type, &extra, &body),
            r => write_http(&mut s, "200 OK", "application/json", "", &render(&req, &r)),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, `method` is answered `reply` (until `reset`).
    fn answer(&self, method: &str, reply: Reply) {
        self.answers
            .lock()
            .unwrap()
            .insert(method.to_string(), reply);
    }

    fn script(&self, f: impl Fn(&Seen, usize) -> Option<Reply> + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Some(Arc::new(f));
    }

    /// Honest again.
    fn reset(&self) {
        self.answers.lock().unwrap().clear();
        *self.script.lock().unwrap() = None;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn calls(&self, method: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method() == method)
            .collect()
    }

    fn count(&self, method: &str) -> usize {
        self.calls(method).len()
    }

    /// Every raw transaction submitted to this node, in order.
    fn raw_txs(&self) -> Vec<Vec<u8>> {
        self.calls("eth_sendRawTransaction")
            .iter()
            .map(|s| {
                s.raw_tx()
                    .expect("eth_sendRawTransaction without a raw transaction")
            })
            .collect()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions as the node received them.
// ---------------------------------------------------------------------------------------------

fn envelope(raw: &[u8]) -> alloy_consensus::TxEnvelope {
    use alloy_eips::eip2718::Decodable2718;
    alloy_consensus::TxEnvelope::decode_2718(&mut &raw[..])
        .unwrap_or_else(|e| panic!("not an EIP-2718 transaction ({e}): 0x{}", hex::encode(raw)))
}

fn nonce_of(raw: &[u8]) -> u64 {
    use alloy_consensus::Transaction;
    envelope(raw).nonce()
}

fn value_of(raw: &[u8]) -> alloy_primitives::U256 {
    use alloy_consensus::Transaction;
    envelope(raw).value()
}

fn signer_of(raw: &[u8]) -> String {
    use alloy_consensus::transaction::SignerRecoverable;
    format!("{:#x}", envelope(raw).recover_signer().unwrap())
}

fn hash_of(raw: &[u8]) -> String {
    format!("{:#x}", alloy_primitives::keccak256(raw))
}

// ---------------------------------------------------------------------------------------------
// signward with the fake node behind it.
// ---------------------------------------------------------------------------------------------

/// The signer: the `mycrypto` V3 keyfile of the ethereum/tests KeyStoreTests (scrypt n=8192, so
/// that every test loads it quickly); returns the keyfile, its password and its private key.
fn mycrypto() -> (Value, String, String) {
    let all: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("v3keystore/ethereum-tests/KeyStoreTests/basic_tests.json"))
            .unwrap(),
    )
    .unwrap();
    let case = &all["mycrypto"];
    (
        case["json"].clone(),
        case["password"].as_str().unwrap().to_string(),
        case["priv"].as_str().unwrap().to_string(),
    )
}

fn address_of_key(secret_hex: &str) -> alloy_primitives::Address {
    let bytes = hex::decode(secret_hex.trim_start_matches("0x")).unwrap();
    signward_evm::EvmKey::from_secret_bytes(&bytes)
        .unwrap()
        .address()
}

/// The signer's address, lower case.
fn signer() -> String {
    format!("{:#x}", address_of_key(&mycrypto().2))
}

fn dev_address() -> String {
    format!("{:#x}", address_of_key(DEV_KEY))
}

/// Chains `chains` (e.g. "1"), one recipient, 1 ether, 100,000 gas, 100 gwei fees and gas price,
/// 2 gwei tip.
fn policy(chains: &str, extra: &str) -> String {
    format!(
        r#"
[defaults]
chain_ids = [{chains}]
recipients = ["{FRIEND}"]
max_value_wei = "1000000000000000000"
max_gas = 100000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_gas_price_wei = "100000000000"
max_calldata_bytes = 1024
{extra}
"#
    )
}

/// The keyfile, its password and the policy in `d`; the `serve` flags for them.
fn signer_flags(d: &Path, chains: &str, policy_extra: &str) -> Vec<String> {
    let (keyfile, password, _) = mycrypto();
    std::fs::create_dir_all(d.join("evm")).unwrap();
    write_secret(&d.join("evm/signer.json"), keyfile.to_string().as_bytes());
    write_secret(&d.join("evm.pass"), password.as_bytes());
    std::fs::write(d.join("policy.toml"), policy(chains, policy_extra)).unwrap();
    [
        "--evm-keyfiles-path",
        s(&d.join("evm")),
        "--evm-keyfiles-password-file",
        s(&d.join("evm.pass")),
        "--evm-policy",
        s(&d.join("policy.toml")),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// signward (authentication on) with a fake node behind it and an `evm` credential `bot`.
struct Rig {
    _dir: tempfile::TempDir,
    d: PathBuf,
    node: FakeNode,
    server: Server,
    token: String,
}

struct Opts<'a> {
    /// The policy's chain_ids.
    chains: &'a str,
    /// More policy lines for [defaults].
    policy: &'a str,
    /// `--evm-chain-id`.
    chain: Option<u64>,
    timeout_secs: u64,
    /// `--evm-upstream-url` (the node's own URL when `None`).
    upstream: Option<String>,
    flags: &'a [&'a str],
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            chains: "1",
            policy: "",
            chain: Some(1),
            timeout_secs: 5,
            upstream: None,
            flags: &[],
        }
    }
}

impl Rig {
    fn start(opts: Opts) -> Rig {
        Self::with_node(FakeNode::start(), opts)
    }

    fn with_node(node: FakeNode, opts: Opts) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let mut args = signer_flags(&d, opts.chains, opts.policy);
        let upstream = opts.upstream.unwrap_or_else(|| node.url());
        args.extend([
            "--evm-upstream-url".to_string(),
            upstream,
            "--request-timeout-secs".to_string(),
            opts.timeout_secs.to_string(),
        ]);
        if let Some(c) = opts.chain {
            args.extend(["--evm-chain-id".to_string(), c.to_string()]);
        }
        args.extend(opts.flags.iter().map(|f| f.to_string()));
        let token = credential(
            &d,
            &[
                "--name",
                "bot",
                "--scope",
                "evm",
                "--keys",
                "evm:*",
                "--allow-op",
                "eth_signTransaction",
            ],
        );
        let server = Server::start_with_auth(&d, &strs(&args));
        Rig {
            _dir: dir,
            d,
            node,
            server,
            token,
        }
    }

    fn post(&self, body: &Value) -> Response {
        post_as(&self.server, Some(&self.token), body)
    }

    /// One JSON-RPC call with the bot's credential; HTTP 200 required.
    fn rpc(&self, method: &str, params: Value) -> Value {
        let r = self.post(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        r.json()
    }

    /// A transfer of 1 wei to FRIEND from the signer, with `over` applied (null removes a field).
    fn tx(&self, over: Value) -> Value {
        let mut t = json!({"from": signer(), "to": FRIEND, "value": "0x1"});
        for (k, v) in over.as_object().unwrap() {
            if v.is_null() {
                t.as_object_mut().unwrap().remove(k);
            } else {
                t[k] = v.clone();
            }
        }
        t
    }

    fn send(&self, over: Value) -> Value {
        self.rpc("eth_sendTransaction", json!([self.tx(over)]))
    }

    fn audit(&self) -> Vec<Value> {
        audit(&self.d)
    }
}

fn post_as(server: &Server, token: Option<&str>, body: &Value) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    server.request("POST", "/", &headers, &serde_json::to_vec(body).unwrap())
}

/// `signward audit query` of the data directory in `d`, one record per line.
fn audit(d: &Path) -> Vec<Value> {
    let out = run_signward(&["audit", "query"], &d.join("data"));
    assert!(
        out.status.success(),
        "audit query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn signed_records(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event"] == "evm" && r["decision"] == "signed")
        .collect()
}

fn reason(v: &Value) -> &str {
    v["error"]["data"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error with a reason: {v}"))
}

fn code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

fn result_hash(v: &Value) -> String {
    v["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result: {v}"))
        .to_string()
}

/// `signward serve ARGS` must refuse to start; returns everything it printed. A server that starts
/// anyway is killed after 20 s and the test fails.
fn serve_refused(d: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signward"))
        .arg("serve")
        .arg("--data-dir")
        .arg(d.join("refused-data"))
        .arg("--http-listen-port")
        .arg(free_port().to_string())
        .args(root_flag())
        .args(args)
        .envs(env.iter().copied())
        .env("SIGNWARD_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match status {
        None => panic!("signward serve {args:?} started instead of refusing:\n{text}"),
        Some(st) => assert!(!st.success(), "signward serve {args:?} exited 0:\n{text}"),
    }
    text
}

// ---------------------------------------------------------------------------------------------
// 1. Nothing of the client reaches the node.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_node_never_receives_a_credential_header_or_id_of_the_client() {
    let rig = Rig::start(Opts::default());
    let bearer = format!("Bearer {}", rig.token);
    let basic_b64 = base64::engine::general_purpose::STANDARD.encode(format!("bot:{}", rig.token));
    let basic = format!("Basic {basic_b64}");
    let client_headers = [
        ("content-type", "application/json"),
        ("cookie", "session=COOKIE-SECRET-7f3a"),
        ("x-forwarded-for", "203.0.113.77"),
        ("forwarded", "for=203.0.113.78"),
        ("x-real-ip", "203.0.113.79"),
        ("x-api-key", "CLIENT-API-KEY-91c2"),
        ("user-agent", "evil-client/9.9"),
        ("x-request-id", "CLIENT-REQ-ID-5d1e"),
        ("proxy-authorization", "Basic UFJPWFktU0VDUkVU"),
    ];
    let call = |auth: &str, body: Value| -> Value {
        let mut h = client_headers.to_vec();
        h.push(("authorization", auth));
        let r = rig
            .server
            .request("POST", "/", &h, &serde_json::to_vec(&body).unwrap());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let me = signer();
    // A send, forwarded reads (Bearer and Basic), and a batch with both.
    let v = call(
        &bearer,
        json!({"jsonrpc": "2.0", "id": "client-id-send-4242", "method": "eth_sendTransaction", "params": [rig.tx(json!({}))]}),
    );
    assert_eq!(v["id"], "client-id-send-4242");
    result_hash(&v);
    let v = call(
        &bearer,
        json!({"jsonrpc": "2.0", "id": "client-id-read-4242", "method": "eth_getBalance", "params": [me, "latest"]}),
    );
    assert_eq!(v["result"], "0xde0b6b3a7640000", "{v}");
    let v = call(
        &basic,
        json!({"jsonrpc": "2.0", "id": 987654321, "method": "eth_blockNumber", "params": []}),
    );
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!(987654321), json!("0x10")),
        "{v}"
    );
    let v = call(
        &bearer,
        json!([
            {"jsonrpc": "2.0", "id": "client-id-batch-1", "method": "eth_blockNumber"},
            {"jsonrpc": "2.0", "id": "client-id-batch-2", "method": "eth_sendTransaction", "params": [rig.tx(json!({"value": "0x2"}))]}
        ]),
    );
    assert_eq!(v[0]["id"], "client-id-batch-1", "{v}");
    assert_eq!(v[1]["id"], "client-id-batch-2", "{v}");
    result_hash(&v[1]);

    let seen = rig.node.seen();
    assert_eq!(rig.node.count("eth_sendRawTransaction"), 2);
    assert_eq!(rig.node.count("eth_getBalance"), 1);
    assert_eq!(rig.node.count("eth_blockNumber"), 2);
    // The forwarded read's params are passed on as the client wrote them; nothing else is.
    assert_eq!(
        rig.node.calls("eth_getBalance")[0].body["params"],
        json!([me, "latest"])
    );
    let forbidden_headers = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "via",
        "x-api-key",
        "x-request-id",
    ];
    let secrets = [
        rig.token.as_str(),
        basic_b64.as_str(),
        "COOKIE-SECRET",
        "203.0.113.",
        "CLIENT-API-KEY",
        "evil-client",
        "CLIENT-REQ-ID",
        "client-id-",
        "987654321",
        "UFJPWFktU0VDUkVU",
    ];
    for s in &seen {
        let text = String::from_utf8_lossy(&s.raw);
        for (k, _) in &s.headers {
            assert!(
                !forbidden_headers.contains(&k.as_str()),
                "the node received the header {k}:\n{text}"
            );
        }
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "the node received {secret:?}:\n{text}"
            );
        }
        assert!(
            s.header("user-agent")
                .is_some_and(|u| u.starts_with("signward/")),
            "{text}"
        );
        assert!(
            s.body["id"].is_u64() && s.body["id"] != json!(987654321),
            "the node saw a request id that is not signward's own: {text}"
        );
        assert!(s.request_line.starts_with("POST / HTTP/1.1"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A node that lies, babbles, serves another chain or redirects.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lying_node_cannot_widen_the_policy() {
    let rig = Rig::start(Opts::default());
    let refused = |v: &Value, rule: &str| {
        assert_eq!(code(v), -32003, "{v}");
        assert_eq!(reason(v), rule, "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.starts_with("refused by policy") && m.contains(rule),
            "{v}"
        );
    };
    // Gas above max_gas, just above and far above.
    rig.node
        .answer("eth_estimateGas", Reply::Result(json!("0x186a1")));
    refused(&rig.send(json!({})), "gas_too_high");
    rig.node.answer(
        "eth_estimateGas",
        Reply::Result(json!("0xffffffffffffffff")),
    );
    refused(&rig.send(json!({})), "gas_too_high");
    rig.node.reset();
    // A base fee that makes maxFeePerGas (2 × base + tip) exceed the cap, and one that saturates.
    rig.node.answer(
        "eth_getBlockByNumber",
        Reply::Result(json!({"number": "0x10", "baseFeePerGas": "0xba43b7400"})),
    );
    refused(&rig.send(json!({})), "max_fee_too_high");
    rig.node.answer(
        "eth_getBlockByNumber",
        Reply::Result(
            json!({"number": "0x10", "baseFeePerGas": "0xffffffffffffffffffffffffffffffff"}),
        ),
    );
    refused(&rig.send(json!({})), "max_fee_too_high");
    rig.node.reset();
    // A tip above the cap; a legacy gas price above the cap.
    rig.node.answer(
        "eth_maxPriorityFeePerGas",
        Reply::Result(json!("0x77359401")),
    );
    refused(&rig.send(json!({})), "priority_fee_too_high");
    rig.node.reset();
    rig.node
        .answer("eth_gasPrice", Reply::Result(json!("0x174876e801")));
    refused(&rig.send(json!({"type": "0x0"})), "gas_price_too_high");
    rig.node.reset();
    // A client asking for another chain than the node's.
    let v = rig.send(json!({"chainId": "0x5"}));
    assert_eq!((code(&v), reason(&v)), (-32000, "wrong_chain"), "{v}");

    assert_eq!(
        rig.node.count("eth_sendRawTransaction"),
        0,
        "a refused transaction was submitted"
    );
    assert_eq!(
        rig.node.count("eth_getTransactionCount"),
        0,
        "a nonce was allocated before the policy decided"
    );
    let records = rig.audit();
    assert!(signed_records(&records).is_empty(), "{records:?}");
    for rule in [
        "gas_too_high",
        "max_fee_too_high",
        "priority_fee_too_high",
        "gas_price_too_high",
    ] {
        assert!(
            records
                .iter()
                .any(|r| r["decision"] == "refused" && r["reason"] == rule),
            "no refused record for {rule}"
        );
    }
    // The refusals cost no nonce: the next honest send gets the node's.
    let h = result_hash(&rig.send(json!({})));
    let raws = rig.node.raw_txs();
    assert_eq!(raws.len(), 1);
    assert_eq!(nonce_of(&raws[0]), NODE_NONCE);
    assert_eq!(hash_of(&raws[0]), h);
    assert_eq!(signer_of(&raws[0]), signer());
}

#[test]
fn a_node_answering_garbage_gets_an_error_and_nothing_is_signed_or_submitted() {
    let rig = Rig::start(Opts::default());
    let html = |status| {
        http(
            status,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
    };
    // 5.5 MiB that is not JSON, and 17 MiB that is (over the 16 MiB answer bound).
    let garbage = http(
        "200 OK",
        "application/json",
        b"\x00\xff<garbage>{[".repeat(550 * 1024),
    );
    let too_large = http(
        "200 OK",
        "application/json",
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":"0x5208","pad":"{}"}}"#,
            "a".repeat(17 << 20)
        ),
    );
    let numbers = [
        ("non-hex", json!("0xzz")),
        (
            "huge (33 hex digits)",
            json!(format!("0x{}", "f".repeat(33))),
        ),
        ("beyond u64", json!("0x10000000000000000")),
        ("negative", json!("-0x5208")),
        ("a JSON number", json!(21000)),
        ("a decimal string", json!("21000")),
        ("null", Value::Null),
        ("an empty quantity", json!("0x")),
    ];
    let mut cases: Vec<(String, &str, Reply, Value)> = Vec::new();
    // The chain first: it is asked once and then remembered, so these come before any good answer.
    for (label, v) in numbers.iter().take(4) {
        cases.push((
            label.to_string(),
            "eth_chainId",
            Reply::Result(v.clone()),
            json!({}),
        ));
    }
    cases.push(("HTML".into(), "eth_chainId", html("200 OK"), json!({})));
    cases.push((
        "HTML 502".into(),
        "eth_chainId",
        html("502 Bad Gateway"),
        json!({}),
    ));
    cases.push((
        "5.5 MiB of garbage".into(),
        "eth_chainId",
        garbage.clone(),
        json!({}),
    ));
    for (label, v) in &numbers {
        cases.push((
            label.to_string(),
            "eth_estimateGas",
            Reply::Result(v.clone()),
            json!({}),
        ));
    }
    cases.push(("HTML".into(), "eth_estimateGas", html("200 OK"), json!({})));
    cases.push((
        "HTML 502".into(),
        "eth_estimateGas",
        html("502 Bad Gateway"),
        json!({}),
    ));
    cases.push((
        "5.5 MiB of garbage".into(),
        "eth_estimateGas",
        garbage.clone(),
        json!({}),
    ));
    cases.push((
        "17 MiB of JSON".into(),
        "eth_estimateGas",
        too_large,
        json!({}),
    ));
    for (label, v) in numbers.iter().take(4) {
        cases.push((
            format!("a base fee {label}"),
            "eth_getBlockByNumber",
            Reply::Result(json!({"number": "0x10", "baseFeePerGas": v})),
            json!({}),
        ));
    }
    cases.push((
        "HTML".into(),
        "eth_getBlockByNumber",
        html("200 OK"),
        json!({}),
    ));
    for (label, v) in numbers.iter().take(6) {
        cases.push((
            label.to_string(),
            "eth_getTransactionCount",
            Reply::Result(v.clone()),
            json!({}),
        ));
    }
    cases.push((
        "HTML".into(),
        "eth_getTransactionCount",
        html("200 OK"),
        json!({}),
    ));
    for (label, v) in numbers.iter().take(4) {
        cases.push((
            label.to_string(),
            "eth_gasPrice",
            Reply::Result(v.clone()),
            json!({"type": "0x0"}),
        ));
    }

    let mut failures = Vec::new();
    for (label, method, reply, over) in cases {
        rig.node.reset();
        rig.node.answer(method, reply);
        if method == "eth_chainId" {
            // eth_chainId itself, answered by signward from the node.
            let v = rig.rpc("eth_chainId", json!([]));
            if !(v["error"]["code"] == -32002 && reason(&v) == "upstream_unavailable") {
                failures.push(format!("eth_chainId while the node answers {label}: {v}"));
            }
        }
        let submitted = rig.node.count("eth_sendRawTransaction");
        let started = Instant::now();
        let v = rig.send(over);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{method} {label}"
        );
        // An upstream error (-32002, or -32000 for a chain), or a policy refusal (-32003) of a
        // number that parses but is out of bounds; never the client's params (-32602).
        let r = v["error"]["data"]["reason"].as_str().unwrap_or("");
        let ok = match v["error"]["code"].as_i64() {
            Some(-32002 | -32000) => r.starts_with("upstream_") || r == "wrong_chain",
            Some(-32003) => r.ends_with("_too_high"),
            _ => false,
        };
        if !ok {
            failures.push(format!("{method} answering {label}: {v}"));
        }
        if rig.node.count("eth_sendRawTransaction") != submitted {
            failures.push(format!(
                "{method} answering {label}: a transaction was signed and submitted"
            ));
        }
    }
    let records = rig.audit();
    let signed = signed_records(&records).len();
    assert!(
        failures.is_empty() && signed == 0,
        "a node answering garbage must get an upstream error (-32002/-32000) or a policy \
         refusal, and nothing signed; \
         {signed} signed record(s), and:\n{}",
        failures.join("\n")
    );
}

/// A node that takes the transaction but answers no hash: the caller gets the hash anyway, and
/// the nonce stays taken (the node may have the transaction).
#[test]
fn a_node_answering_no_hash_still_gives_the_caller_the_hash_and_the_nonce_stays_taken() {
    let rig = Rig::start(Opts::default());
    rig.node.reset();
    rig.node
        .answer("eth_sendRawTransaction", Reply::Result(json!("0x1234")));
    let v = rig.send(json!({}));
    let raws = rig.node.raw_txs();
    assert_eq!(
        (code(&v), reason(&v)),
        (-32002, "upstream_unavailable"),
        "{v}"
    );
    assert_eq!(
        v["error"]["data"]["tx_hash"],
        json!(hash_of(&raws[0])),
        "{v}"
    );
    rig.node.reset();
    result_hash(&rig.send(json!({})));
    let raws = rig.node.raw_txs();
    assert_eq!(
        (nonce_of(&raws[0]), nonce_of(&raws[1])),
        (NODE_NONCE, NODE_NONCE + 1)
    );
}

#[test]
fn a_node_serving_another_chain_is_refused_wrong_chain() {
    let node = FakeNode::start();
    node.answer("eth_chainId", Reply::Result(json!("0x5")));
    let rig = Rig::with_node(node, Opts::default());
    let v = rig.rpc("eth_chainId", json!([]));
    assert_eq!((code(&v), reason(&v)), (-32000, "wrong_chain"), "{v}");
    for over in [
        json!({}),
        json!({"chainId": "0x1"}),
        json!({"chainId": "0x5"}),
    ] {
        let v = rig.send(over);
        assert_eq!((code(&v), reason(&v)), (-32000, "wrong_chain"), "{v}");
    }
    for m in [
        "eth_sendRawTransaction",
        "eth_getTransactionCount",
        "eth_estimateGas",
    ] {
        assert_eq!(rig.node.count(m), 0, "{m} reached a node on another chain");
    }
    assert!(signed_records(&rig.audit()).is_empty());

    // Without --evm-chain-id the node's chain is the chain, and the policy decides on it.
    let node = FakeNode::start();
    node.answer("eth_chainId", Reply::Result(json!("0x5")));
    let rig = Rig::with_node(
        node,
        Opts {
            chain: None,
            ..Opts::default()
        },
    );
    assert_eq!(rig.rpc("eth_chainId", json!([]))["result"], "0x5");
    let v = rig.send(json!({}));
    assert_eq!(
        (code(&v), reason(&v)),
        (-32003, "chain_id_not_allowed"),
        "{v}"
    );
    assert_eq!(rig.node.count("eth_sendRawTransaction"), 0);
}

#[test]
fn a_node_that_redirects_is_unavailable_and_the_redirect_is_never_followed() {
    let target = FakeNode::start();
    let node = FakeNode::start();
    let location = format!("location: {}/\r\n", target.url());
    let rig = Rig::with_node(node, Opts::default());
    let mut failures = Vec::new();
    let mut check = |what: &str, v: &Value| {
        if !(v["error"]["code"] == -32002 && v["error"]["data"]["reason"] == "upstream_unavailable")
        {
            failures.push(format!("{what}: {v}"));
        }
    };
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let extra = location.clone();
        rig.node.script(move |_, _| {
            Some(Reply::Http {
                status,
                content_type: "text/plain",
                extra: extra.clone(),
                body: Arc::new(Vec::new()),
            })
        });
        check(
            &format!("{status}: eth_chainId"),
            &rig.rpc("eth_chainId", json!([])),
        );
        check(
            &format!("{status}: eth_blockNumber"),
            &rig.rpc("eth_blockNumber", json!([])),
        );
        check(
            &format!("{status}: eth_sendTransaction"),
            &rig.send(json!({})),
        );
    }
    // A redirect whose body is a JSON-RPC answer is still a redirect, not an answer.
    let extra = location.clone();
    rig.node.script(move |s, _| {
        Some(Reply::Http {
            status: "302 Found",
            content_type: "application/json",
            extra: extra.clone(),
            body: Arc::new(render(s, &default_answer(s))),
        })
    });
    check(
        "302 with a JSON body: eth_blockNumber",
        &rig.rpc("eth_blockNumber", json!([])),
    );
    check(
        "302 with a JSON body: eth_sendTransaction",
        &rig.send(json!({})),
    );
    assert!(
        target.seen().is_empty(),
        "a redirect was followed: {:?}",
        target.seen()
    );
    let submitted = rig.node.count("eth_sendRawTransaction");
    let signed = signed_records(&rig.audit()).len();
    assert!(
        failures.is_empty() && submitted == 0 && signed == 0,
        "a redirecting node must be unavailable (-32002 upstream_unavailable), nothing signed; \
         {signed} signed, {submitted} submitted through a redirect, and:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 3. "nonce too low": resynchronised, each signature audited.
// ---------------------------------------------------------------------------------------------

/// A node whose pending nonce moves on when it says "nonce too low" (someone else used it), as
/// geth's does: `too_low` submissions are refused, then everything is accepted.
fn node_with_used_nonces(node: &FakeNode, too_low: usize) {
    let pending = Arc::new(AtomicU64::new(NODE_NONCE));
    node.script(move |s, n| match s.method() {
        "eth_getTransactionCount" => Some(Reply::Result(json!(format!(
            "{:#x}",
            pending.load(Ordering::SeqCst)
        )))),
        "eth_sendRawTransaction" if n < too_low => {
            let tx = nonce_of(&s.raw_tx().unwrap());
            pending.fetch_max(tx + 1, Ordering::SeqCst);
            Some(Reply::Error(
                -32000,
                format!("nonce too low: next nonce {}, tx nonce {tx}", tx + 1),
            ))
        }
        _ => None,
    });
}

#[test]
fn nonce_too_low_is_resynchronised_with_a_new_signature_and_both_are_audited() {
    let rig = Rig::start(Opts::default());
    node_with_used_nonces(&rig.node, 1);
    let h = result_hash(&rig.send(json!({})));
    let raws = rig.node.raw_txs();
    assert_eq!(raws.len(), 2, "one refused submission, one accepted");
    assert_ne!(raws[0], raws[1], "the retry must be a new signature");
    assert_eq!(
        (nonce_of(&raws[0]), nonce_of(&raws[1])),
        (NODE_NONCE, NODE_NONCE + 1)
    );
    for raw in &raws {
        assert_eq!(signer_of(raw), signer());
        assert_eq!(value_of(raw), alloy_primitives::U256::from(1));
    }
    let (h0, h1) = (hash_of(&raws[0]), hash_of(&raws[1]));
    assert_eq!(h, h1, "the answer is the hash of the accepted transaction");

    let records = rig.audit();
    let has = |decision: &str, hash: &str, why: Option<&str>| {
        records.iter().any(|r| {
            r["event"] == "evm"
                && r["decision"] == decision
                && r["tx_hash"] == hash
                && why.is_none_or(|w| r["reason"] == w)
        })
    };
    // Both signatures, each with its hash, made under the request's method.
    for h in [&h0, &h1] {
        assert!(
            records.iter().any(|r| r["decision"] == "signed"
                && r["operation"] == "eth_sendTransaction"
                && r["tx_hash"] == json!(h)),
            "no signed record for {h}: {records:#?}"
        );
    }
    // And what became of each submission.
    assert!(
        has("not_submitted", &h0, Some("nonce_too_low")),
        "{records:#?}"
    );
    assert!(has("submitted", &h1, None), "{records:#?}");
    // The next send follows on.
    result_hash(&rig.send(json!({})));
    assert_eq!(nonce_of(&rig.node.raw_txs()[2]), NODE_NONCE + 2);
}

/// A submission record says what it records: the operation `eth_sendRawTransaction` (send.rs hands
/// that name to `decision::settle`, which uses it only for the metric; the record goes out
/// without any operation, so `audit query` cannot tell a submission from anything else).
#[test]
fn submission_records_name_their_operation() {
    let rig = Rig::start(Opts::default());
    let h = result_hash(&rig.send(json!({})));
    let records = rig.audit();
    let submission = records
        .iter()
        .find(|r| r["decision"] == "submitted" && r["tx_hash"] == json!(h))
        .unwrap_or_else(|| panic!("no submitted record: {records:#?}"));
    assert_eq!(
        submission["operation"], "eth_sendRawTransaction",
        "{submission:#}"
    );
}

/// A load-balanced provider: the backend that answers eth_getTransactionCount lags (still says 5)
/// while the one that takes the transaction has nonce 5 used. signward must not sign nonce 5 again
/// and again: what the node said is used is used.
#[test]
fn a_lagging_node_never_gets_one_nonce_signed_twice() {
    let rig = Rig::start(Opts::default());
    rig.node.script(|s, _| {
        (s.method() == "eth_sendRawTransaction" && nonce_of(&s.raw_tx().unwrap()) <= NODE_NONCE)
            .then(|| Reply::Error(-32000, "nonce too low".into()))
    });
    let v = rig.send(json!({}));
    let raws = rig.node.raw_txs();
    let nonces: Vec<u64> = raws.iter().map(|r| nonce_of(r)).collect();
    let mut distinct = nonces.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        nonces.len(),
        "after the node said nonce {NODE_NONCE} is used, signward signed it again ({nonces:?}); answer: {v}"
    );
    assert!(v["result"].is_string(), "{v}");
    assert_eq!(nonces.last(), Some(&(NODE_NONCE + 1)));
}

/// A node that says "nonce too low" (whether or not it is true) gets a new signature each time;
/// each of those transactions is valid and the node can broadcast them all. The spend window
/// must count what was signed, not what was asked for once.
#[test]
fn a_node_claiming_nonce_too_low_cannot_multiply_a_spend() {
    let rig = Rig::start(Opts {
        policy: r#"spend_window = { window_secs = 3600, max_total_wei = "1000", max_count = 100 }"#,
        ..Opts::default()
    });
    node_with_used_nonces(&rig.node, 2);
    let v = rig.send(json!({"value": "0x3e8"}));
    let raws = rig.node.raw_txs();
    let mut by_nonce = std::collections::BTreeMap::new();
    for raw in &raws {
        by_nonce.insert(nonce_of(raw), value_of(raw));
    }
    let total: alloy_primitives::U256 = by_nonce.values().copied().sum();
    assert!(
        total <= alloy_primitives::U256::from(1000),
        "one request under a 1,000 wei window handed the node {} signed transfers with distinct \
         nonces {:?}, {total} wei in all; answer: {v}",
        by_nonce.len(),
        by_nonce.keys().collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A node that refuses a transaction: its message, and the nonce is free again.
// ---------------------------------------------------------------------------------------------

const INSUFFICIENT: &str = "insufficient funds for gas * price + value: have 0 want 1";

#[test]
fn a_refused_transaction_shows_the_node_message_and_frees_its_nonce() {
    let rig = Rig::start(Opts::default());
    rig.node.script(|s, n| {
        (s.method() == "eth_sendRawTransaction" && n == 0)
            .then(|| Reply::Error(-32000, INSUFFICIENT.into()))
    });
    let v = rig.send(json!({}));
    let raws = rig.node.raw_txs();
    assert_eq!(raws.len(), 1, "a refused transaction is not retried");
    assert_eq!(code(&v), -32000, "{v}");
    assert_eq!(v["error"]["message"], INSUFFICIENT, "{v}");
    assert_eq!(reason(&v), "upstream_refused");
    assert_eq!(
        v["error"]["data"]["tx_hash"],
        json!(hash_of(&raws[0])),
        "{v}"
    );
    // The refused nonce is free: the next send reuses it, the one after follows on.
    result_hash(&rig.send(json!({})));
    result_hash(&rig.send(json!({})));
    let raws = rig.node.raw_txs();
    assert_eq!(
        raws.iter().map(|r| nonce_of(r)).collect::<Vec<_>>(),
        vec![NODE_NONCE, NODE_NONCE, NODE_NONCE + 1]
    );
    let records = rig.audit();
    assert!(
        records.iter().any(|r| r["decision"] == "not_submitted"
            && r["reason"] == "upstream_refused"
            && r["tx_hash"] == json!(hash_of(&raws[0]))),
        "{records:#?}"
    );

    // ethers reads the node's message as what it is.
    let Some(clients) = evm_clients_dir() else {
        return;
    };
    rig.node.script(|s, _| {
        (s.method() == "eth_sendRawTransaction").then(|| Reply::Error(-32000, INSUFFICIENT.into()))
    });
    let script = r#"
const { ethers } = require("ethers");
(async () => {
  const req = new ethers.FetchRequest(process.env.URL);
  req.setHeader("authorization", "Bearer " + process.env.TOKEN);
  const provider = new ethers.JsonRpcProvider(req, 1, { staticNetwork: true, batchMaxCount: 1 });
  const signer = new ethers.JsonRpcSigner(provider, process.env.FROM);
  try {
    await signer.sendUncheckedTransaction({ to: process.env.TO, value: 1n, gasLimit: 21000n });
    console.log(JSON.stringify({ sent: true }));
  } catch (e) {
    const data = e.info && e.info.error ? e.info.error.data : null;
    console.log(JSON.stringify({ code: e.code, shortMessage: e.shortMessage, data }));
  }
  setTimeout(() => process.exit(0), 10);
})();
"#;
    let out = run_with_timeout(
        Command::new("node")
            .arg("-e")
            .arg(script)
            .env("NODE_PATH", clients.join("node_modules"))
            .env("URL", format!("http://127.0.0.1:{}/", rig.server.port))
            .env("TOKEN", &rig.token)
            .env("FROM", signer())
            .env("TO", FRIEND),
        Duration::from_secs(30),
    );
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("ethers printed no JSON: {out}"));
    assert_eq!(v["code"], "INSUFFICIENT_FUNDS", "{v}");
    assert_eq!(v["data"]["reason"], "upstream_refused", "{v}");
    assert!(v["data"]["tx_hash"].is_string(), "{v}");
}

/// tests/evm-clients' install (ethers), when scripts/ensure-evm-clients.sh has it; the ethers
/// check is skipped with a note otherwise (evm_clients_e2e requires it in CI).
fn evm_clients_dir() -> Option<PathBuf> {
    let npm = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !npm {
        eprintln!("note: the ethers check is skipped: npm is missing");
        return None;
    }
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-evm-clients.sh"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && dir.join("node_modules/ethers").exists() {
        Some(dir)
    } else {
        eprintln!("note: the ethers check is skipped: scripts/ensure-evm-clients.sh failed");
        None
    }
}

/// Run `cmd` to completion (killed after `limit`); its stdout.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        if out.status.success() {
            String::new()
        } else {
            format!("\n(stderr) {}", String::from_utf8_lossy(&out.stderr))
        }
    )
}

// ---------------------------------------------------------------------------------------------
// 5. A node that never answers.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hanging_node_ends_at_the_deadline_and_its_nonce_is_not_reused() {
    let rig = Rig::start(Opts {
        timeout_secs: 3,
        ..Opts::default()
    });
    rig.node
        .script(|s, n| (s.method() == "eth_sendRawTransaction" && n == 0).then_some(Reply::Hang));
    let started = Instant::now();
    let r = rig.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": [rig.tx(json!({}))]}));
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(4500),
        "the request took {took:?} with --request-timeout-secs 3"
    );
    let answered_error = r.status != 200 || r.json().get("error").is_some();
    assert!(answered_error, "{} {}", r.status, r.text());
    let hung = rig.node.raw_txs();
    assert_eq!(hung.len(), 1, "the signed transaction reached the node");
    // The allocation may still be live: the next send, well within 60 s, takes the next nonce.
    let h = result_hash(&rig.send(json!({})));
    let raws = rig.node.raw_txs();
    assert_eq!(raws.len(), 2);
    assert_eq!(hash_of(&raws[1]), h);
    assert_eq!(
        (nonce_of(&raws[0]), nonce_of(&raws[1])),
        (NODE_NONCE, NODE_NONCE + 1),
        "a nonce whose transaction may be at the node was handed out again"
    );

    // The answer is HTTP 408 without the hash (docs/evm-clients.md says so); the audit is where
    // the operator finds what may have reached the node: the signature with its hash, and (as
    // "every submission has its own record") the submission with an unknown outcome.
    let h0 = hash_of(&raws[0]);
    // The submission runs in a task of its own, past the request's deadline, and records its
    // outcome when the node client gives up on the hung call: wait for that record (bounded).
    let hung_recorded = |records: &[Value]| {
        records.iter().any(|r| {
            r["decision"] == "not_submitted"
                && r["reason"] == "upstream_unavailable"
                && r["tx_hash"] == json!(h0)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut records = rig.audit();
    while !hung_recorded(&records) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        records = rig.audit();
    }
    let mut missing: Vec<String> = Vec::new();
    if !records
        .iter()
        .any(|r| r["decision"] == "signed" && r["tx_hash"] == json!(h0))
    {
        missing.push("no signed record with the hung transaction's hash".into());
    }
    if !hung_recorded(&records) {
        missing.push("no not_submitted/upstream_unavailable record of the hung submission".into());
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 6. Forwarding is an allowlist.
// ---------------------------------------------------------------------------------------------

#[test]
fn only_allowlisted_reads_reach_the_node() {
    let rig = Rig::start(Opts::default());
    // Answered by the node when asked; asked never.
    for m in [
        "evm_mine",
        "debug_traceTransaction",
        "admin_addPeer",
        "personal_unlockAccount",
        "personal_sendTransaction",
        "eth_sendRawTransaction",
        "miner_start",
        "txpool_content",
        "eth_subscribe",
        "ETH_BLOCKNUMBER",
        "eth_blocknumber",
        "eth_blockNumber ",
        "eth_blockNumber\u{0}",
        "",
    ] {
        let v = rig.rpc(m, json!(["0x00"]));
        assert_eq!(
            (code(&v), reason(&v)),
            (-32601, "method_not_found"),
            "{m:?}: {v}"
        );
    }
    let v = rig.post(&json!([{"jsonrpc": "2.0", "id": 1, "method": "debug_traceTransaction", "params": ["0x00"]}])).json();
    assert_eq!(code(&v[0]), -32601, "{v}");
    // None of them reached the node (signward may have asked it its chain, to pick the node).
    let reached: Vec<String> = rig
        .node
        .seen()
        .iter()
        .map(|s| s.method().to_string())
        .filter(|m| m != "eth_chainId")
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
    // Allowed reads go through, params unchanged.
    let v = rig.rpc("eth_getBalance", json!([STRANGER, "latest"]));
    assert_eq!(v["result"], "0xde0b6b3a7640000", "{v}");
    assert_eq!(
        rig.node.calls("eth_getBalance")[0].body["params"],
        json!([STRANGER, "latest"])
    );
    // A node error on a read is the node's.
    let v = rig.rpc("eth_getLogs", json!([{}]));
    assert_eq!(reason(&v), "upstream_refused", "{v}");
    let seen = rig.node.seen().len();
    // No credential: 401; a credential without the evm scope: 403; neither reaches the node.
    let viewer = credential(&rig.d, &["--name", "viewer", "--scope", "public_keys"]);
    let other_key = credential(
        &rig.d,
        &[
            "--name",
            "other-key",
            "--scope",
            "evm",
            "--keys",
            STRANGER,
            "--allow-op",
            "eth_signTransaction",
        ],
    );
    std::thread::sleep(Duration::from_millis(1200));
    // A credential not granted the key: refused (EIP-1193 4100) before the node is asked anything.
    let r = post_as(
        &rig.server,
        Some(&other_key),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": [rig.tx(json!({}))]}),
    );
    let v = r.json();
    assert_eq!((code(&v), reason(&v)), (4100, "key_denied"), "{v}");
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
    let r = post_as(&rig.server, None, &read);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("unauthorized")),
        "{}",
        r.text()
    );
    let r = post_as(&rig.server, Some("not-a-token"), &read);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post_as(&rig.server, Some(&viewer), &read);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("scope_denied")),
        "{}",
        r.text()
    );
    assert_eq!(rig.node.seen().len(), seen);
    drop(rig);

    // --evm-upstream-forward narrows the list.
    let rig = Rig::start(Opts {
        flags: &["--evm-upstream-forward", "eth_blockNumber"],
        ..Opts::default()
    });
    assert_eq!(rig.rpc("eth_blockNumber", json!([]))["result"], "0x10");
    for m in ["eth_getBalance", "eth_call", "eth_sendRawTransaction"] {
        let v = rig.rpc(m, json!([STRANGER, "latest"]));
        assert_eq!(code(&v), -32601, "{m}: {v}");
    }
    let methods: Vec<String> = rig
        .node
        .seen()
        .iter()
        .map(|s| s.method().to_string())
        .filter(|m| m != "eth_chainId")
        .collect();
    assert_eq!(methods, vec!["eth_blockNumber"]);
    drop(rig);

    // Methods signward answers itself are never forwarded: refused at start.
    let dir = tempfile::tempdir().unwrap();
    for m in [
        "eth_sendTransaction",
        "eth_chainId",
        "eth_accounts",
        "eth_signTransaction",
        "personal_sign",
        "eth_signTypedData_v4",
    ] {
        let forward = format!("eth_blockNumber,{m}");
        let text = serve_refused(
            dir.path(),
            &[
                "--evm-upstream-url",
                "http://127.0.0.1:1",
                "--evm-upstream-forward",
                &forward,
            ],
            &[],
        );
        assert!(text.contains("answered by signward itself"), "{m}: {text}");
    }
    let text = serve_refused(
        dir.path(),
        &[
            "--evm-upstream-url",
            "http://127.0.0.1:1",
            "--evm-upstream-forward",
            "eth_blockNumber,eth_call evil",
        ],
        &[],
    );
    assert!(text.contains("is not a JSON-RPC method name"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// 7. Plaintext, and the URL's secrets.
// ---------------------------------------------------------------------------------------------

#[test]
fn plaintext_is_refused_off_loopback_and_the_url_secrets_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let remote = "http://alice:PLAIN-PASS-1@10.1.2.3:8545/v3/PLAIN-KEY-2?key=PLAIN-QUERY-3";
    let remote_secrets = ["PLAIN-PASS-1", "PLAIN-KEY-2", "PLAIN-QUERY-3", "alice"];
    for (args, env) in [
        (vec!["--evm-upstream-url", remote], vec![]),
        (
            vec!["--evm-upstream-url", "env:SW_ATTACK_REMOTE_URL"],
            vec![("SW_ATTACK_REMOTE_URL", remote)],
        ),
        (vec!["--evm-upstream-url", "http://10.1.2.3:8545"], vec![]),
    ] {
        let text = serve_refused(d, &args, &env);
        assert!(text.contains("plaintext"), "{args:?}: {text}");
        for secret in remote_secrets {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
    }
    let text = serve_refused(d, &["--evm-upstream-url", "env:SW_ATTACK_UNSET_URL"], &[]);
    assert!(text.contains("SW_ATTACK_UNSET_URL"), "{text}");
    // Opted in: it starts, and what it says of the node is scheme, host and port.
    std::env::set_var("SW_ATTACK_PLAINTEXT_URL", remote);
    let server = Server::start_with_auth(
        d,
        &[
            "--evm-upstream-url",
            "env:SW_ATTACK_PLAINTEXT_URL",
            "--evm-upstream-allow-plaintext",
        ],
    );
    let log = server.log_text();
    for secret in remote_secrets {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    drop(server);

    // env:VAR with credentials, an API key in the path and one in the query, on loopback.
    let node = FakeNode::start();
    let url = format!(
        "http://carol:URL-PASS-4@127.0.0.1:{}/v3/URL-KEY-5?apikey=URL-QUERY-6",
        node.port
    );
    std::env::set_var("SW_ATTACK_UPSTREAM_URL", &url);
    let rig = Rig::with_node(
        node,
        Opts {
            upstream: Some("env:SW_ATTACK_UPSTREAM_URL".into()),
            ..Opts::default()
        },
    );
    let secrets = ["URL-PASS-4", "URL-KEY-5", "URL-QUERY-6", "carol"];
    let mut answers = Vec::new();
    answers.push(rig.rpc("eth_blockNumber", json!([])));
    answers.push(rig.send(json!({})));
    assert!(
        answers[0]["result"] == "0x10" && answers[1]["result"].is_string(),
        "{answers:?}"
    );
    // The node gets its own URL: path and query, and the URL's user as HTTP Basic.
    let first = &rig.node.seen()[0];
    assert_eq!(
        first.request_line,
        "POST /v3/URL-KEY-5?apikey=URL-QUERY-6 HTTP/1.1"
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("carol:URL-PASS-4")
    );
    assert_eq!(first.header("authorization"), Some(basic.as_str()));
    // Failures of every kind; none of them shows the URL.
    rig.node.answer(
        "eth_blockNumber",
        http(
            "500 Internal Server Error",
            "text/html",
            "<html>down</html>",
        ),
    );
    answers.push(rig.rpc("eth_blockNumber", json!([])));
    rig.node.answer(
        "eth_estimateGas",
        http("200 OK", "text/html", "<html>down</html>"),
    );
    answers.push(rig.send(json!({})));
    rig.node.answer(
        "eth_blockNumber",
        Reply::Error(-32000, "header not found".into()),
    );
    answers.push(rig.rpc("eth_blockNumber", json!([])));
    for a in &answers[2..] {
        assert!(a.get("error").is_some(), "{a}");
    }
    let metrics = credential(&rig.d, &["--name", "ops", "--scope", "metrics"]);
    std::thread::sleep(Duration::from_millis(1200));
    let health = rig.server.request(
        "GET",
        "/healthcheck",
        &[("authorization", &format!("Bearer {metrics}"))],
        b"",
    );
    assert_eq!(health.status, 200, "{}", health.text());
    let everything = format!(
        "{}\n{}\n{}\n{:?}",
        rig.server.log_text(),
        health.text(),
        serde_json::to_string(&answers).unwrap(),
        rig.audit()
    );
    for secret in secrets {
        assert!(
            !everything.contains(secret),
            "{secret} shown:\n{everything}"
        );
    }
    drop(rig);

    // A node that is not there: the error names no secret either.
    let port = free_port();
    std::env::set_var(
        "SW_ATTACK_DEAD_URL",
        format!("http://dave:DEAD-PASS-7@127.0.0.1:{port}/v3/DEAD-KEY-8"),
    );
    let rig = Rig::start(Opts {
        upstream: Some("env:SW_ATTACK_DEAD_URL".into()),
        ..Opts::default()
    });
    let v = rig.rpc("eth_blockNumber", json!([]));
    assert_eq!(
        (code(&v), reason(&v)),
        (-32002, "upstream_unavailable"),
        "{v}"
    );
    let v2 = rig.send(json!({}));
    assert_eq!(reason(&v2), "upstream_unavailable", "{v2}");
    let everything = format!("{v}\n{v2}\n{}", rig.server.log_text());
    for secret in ["DEAD-PASS-7", "DEAD-KEY-8", "dave"] {
        assert!(
            !everything.contains(secret),
            "{secret} shown:\n{everything}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. ReadyTrader's remote-signer protocol.
// ---------------------------------------------------------------------------------------------

struct Trader {
    _dir: tempfile::TempDir,
    d: PathBuf,
    server: Server,
    /// Granted the signer only.
    one: String,
    /// Granted every EVM key (the signer and the dev key).
    both: String,
    /// No evm scope.
    viewer: String,
}

fn trader() -> Trader {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let mut args = signer_flags(&d, "1", "");
    let dev = format!("env:{DEV_KEY_VAR}");
    args.extend(
        [
            "--dev",
            "--dev-evm-key",
            dev.as_str(),
            "--max-request-body-bytes",
            "8192",
            "--evm-chain-id",
            "1",
        ]
        .map(String::from),
    );
    // One value for the whole process: set by whichever test gets here first.
    std::env::set_var(DEV_KEY_VAR, DEV_KEY);
    let me = signer();
    let grant = |name: &str, keys: &str| {
        credential(
            &d,
            &[
                "--name",
                name,
                "--scope",
                "evm",
                "--keys",
                keys,
                "--allow-op",
                "eth_signTransaction",
            ],
        )
    };
    let one = grant("one", &me);
    let both = grant("both", "evm:*");
    let viewer = credential(&d, &["--name", "viewer", "--scope", "public_keys"]);
    let server = Server::start_with_auth(&d, &strs(&args));
    Trader {
        _dir: dir,
        d,
        server,
        one,
        both,
        viewer,
    }
}

impl Trader {
    fn get_address(&self, token: Option<&str>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.server.request("GET", "/address", &headers, b"")
    }

    fn sign_raw(&self, token: Option<&str>, body: &[u8]) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        self.server
            .request("POST", "/sign_transaction", &headers, body)
    }

    fn sign(&self, token: &str, body: &Value) -> Response {
        self.sign_raw(Some(token), &serde_json::to_vec(body).unwrap())
    }
}

/// A web3.py-style legacy transaction (JSON integers) and the intent ReadyTrader derives from it.
fn trade() -> (Value, Value) {
    let tx = json!({"to": FRIEND, "value": 1000, "gas": 21000, "gasPrice": 1000000000, "nonce": 7, "data": "0x"});
    let intent = json!({"intent_type": "evm_transaction", "chain_id": 1, "to": FRIEND, "value_wei": "1000",
                        "data_hex": "0x", "gas": 21000, "gas_price_wei": 1000000000, "nonce": 7});
    (tx, intent)
}

#[test]
fn readytrader_endpoints_refuse_what_they_must() {
    let t = trader();
    let me = signer();
    // Who may ask.
    let r = t.get_address(None);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("unauthorized")),
        "{}",
        r.text()
    );
    let r = t.get_address(Some(&t.viewer));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("scope_denied")),
        "{}",
        r.text()
    );
    let r = t.get_address(Some(&t.both));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (409, json!("ambiguous_key")),
        "{}",
        r.text()
    );
    let r = t.get_address(Some(&t.one));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["address"].as_str().unwrap().to_lowercase(), me);
    let (tx, intent) = trade();
    let body = json!({"tx": tx, "chain_id": 1, "intent": intent});
    let r = t.sign_raw(None, &serde_json::to_vec(&body).unwrap());
    assert_eq!(r.status, 401, "{}", r.text());
    let r = t.sign(&t.viewer, &body);
    assert_eq!(r.status, 403, "{}", r.text());
    // A key not granted to the credential.
    let mut other = body.clone();
    other["tx"]["from"] = json!(dev_address());
    let r = t.sign(&t.one, &other);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("key_denied")),
        "{}",
        r.text()
    );

    // Intent mismatches: 400, nothing signed.
    let before = signed_records(&audit(&t.d)).len();
    for (field, value) in [
        ("to", json!(STRANGER)),
        ("value_wei", json!("1001")),
        ("chain_id", json!(10)),
        ("nonce", json!(8)),
    ] {
        let mut b = body.clone();
        b["intent"][field] = value;
        let r = t.sign(&t.one, &b);
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (400, json!("intent_mismatch")),
            "{field}: {}",
            r.text()
        );
        assert!(r.json().get("rawTransactionHex").is_none());
    }
    let mut b = body.clone();
    b["chain_id"] = json!(10);
    b["tx"]["chainId"] = json!(1);
    let r = t.sign(&t.one, &b);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, json!("intent_mismatch")),
        "{}",
        r.text()
    );
    assert_eq!(
        signed_records(&audit(&t.d)).len(),
        before,
        "an intent mismatch was signed"
    );

    // Body bound.
    let mut big = body.clone();
    big["tx"]["data"] = json!(format!("0x{}", "00".repeat(5000)));
    let r = t.sign(&t.one, &big);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, json!("body_too_large")),
        "{}",
        r.text()
    );

    // JSON integers beyond U256 are refused as such; a huge one within U256 reaches the policy.
    let raw_body = |value: &str| {
        format!(
            r#"{{"tx": {{"to": "{FRIEND}", "value": {value}, "gas": 21000, "gasPrice": 1000000000, "nonce": 7}}, "chain_id": 1}}"#
        )
        .into_bytes()
    };
    let r = t.sign_raw(Some(&t.one), &raw_body(TWO_POW_256));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, json!("invalid_params")),
        "{}",
        r.text()
    );
    let r = t.sign_raw(Some(&t.one), &raw_body(TWO_POW_255));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("value_too_high")),
        "{}",
        r.text()
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("value_too_high"),
        "{}",
        r.text()
    );

    // What is signed is what was asked.
    let r = t.sign(&t.one, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let raw = hex::decode(
        v["rawTransactionHex"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    assert_eq!(v["hash"], json!(hash_of(&raw)));
    {
        use alloy_consensus::Transaction;
        let env = envelope(&raw);
        assert!(
            matches!(env, alloy_consensus::TxEnvelope::Legacy(_)),
            "{env:?}"
        );
        assert_eq!(env.chain_id(), Some(1));
        assert_eq!(env.nonce(), 7);
        assert_eq!(env.to(), Some(FRIEND.parse().unwrap()));
        assert_eq!(env.value(), alloy_primitives::U256::from(1000));
        assert_eq!(env.gas_limit(), 21000);
        assert_eq!(env.gas_price(), Some(1_000_000_000));
        assert!(env.input().is_empty());
    }
    assert_eq!(signer_of(&raw), me);
    // The same through eth-account, when the Python verifiers are set up.
    if let Some(py) = python() {
        let out = Command::new(py)
            .arg("-c")
            .arg("import sys\nfrom eth_account import Account\nprint(Account.recover_transaction(sys.argv[1]).lower())")
            .arg(v["rawTransactionHex"].as_str().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), me);
    }
}

/// Every decision is audited: a refusal for an intent mismatch too, as the JSON-RPC path audits
/// its intent_mismatch refusals.
#[test]
fn readytrader_intent_mismatch_is_audited_as_a_refusal() {
    let t = trader();
    let (tx, intent) = trade();
    let mut intent = intent;
    intent["to"] = json!(STRANGER);
    let r = t.sign(&t.one, &json!({"tx": tx, "chain_id": 1, "intent": intent}));
    assert_eq!(r.status, 400, "{}", r.text());
    let records = audit(&t.d);
    assert!(
        records.iter().any(|r| r["event"] == "evm"
            && r["caller"] == "one"
            && r["reason"] == "intent_mismatch"),
        "the refused request left no audit record: {records:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Batches.
// ---------------------------------------------------------------------------------------------

#[test]
fn batches_answer_in_order_and_an_oversized_one_reaches_nothing() {
    let rig = Rig::start(Opts::default());
    let me = signer();
    let v = rig
        .post(&json!([
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "id": "read", "method": "eth_getBalance", "params": [me, "latest"]},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_signTransaction", "params": [{
                "from": me, "to": STRANGER, "value": "0x1", "gas": "0x5208", "gasPrice": "0x3b9aca00",
                "nonce": "0x0", "chainId": "0x1"}]},
            {"jsonrpc": "2.0", "id": 4, "method": "eth_sendTransaction", "params": [rig.tx(json!({"to": STRANGER}))]},
            {"jsonrpc": "2.0", "id": 5, "method": "debug_traceTransaction", "params": ["0x00"]},
            {"jsonrpc": "2.0", "id": 6, "method": "eth_blockNumber"}
        ]))
        .json();
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("not a batch answer: {v}"));
    assert_eq!(a.len(), 6, "{v}");
    assert_eq!(
        (a[0]["id"].clone(), a[0]["result"].clone()),
        (json!(1), json!("0x1")),
        "{v}"
    );
    assert_eq!(
        (a[1]["id"].clone(), a[1]["result"].clone()),
        (json!("read"), json!("0xde0b6b3a7640000")),
        "{v}"
    );
    assert_eq!(
        (a[2]["id"].clone(), reason(&a[2])),
        (json!(3), "recipient_not_allowed"),
        "{v}"
    );
    assert_eq!(code(&a[2]), -32003);
    assert_eq!(
        (a[3]["id"].clone(), reason(&a[3])),
        (json!(4), "recipient_not_allowed"),
        "{v}"
    );
    assert_eq!((a[4]["id"].clone(), code(&a[4])), (json!(5), -32601), "{v}");
    assert_eq!(
        (a[5]["id"].clone(), a[5]["result"].clone()),
        (json!(6), json!("0x10")),
        "{v}"
    );
    assert_eq!(rig.node.count("eth_sendRawTransaction"), 0);
    assert_eq!(rig.node.count("debug_traceTransaction"), 0);

    // 100 is the bound: answered in full and in order.
    let batch = |n: usize, method: &str| {
        Value::Array(
            (0..n)
                .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": []}))
                .collect(),
        )
    };
    let before = rig.node.count("eth_blockNumber");
    let v = rig.post(&batch(100, "eth_blockNumber")).json();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 100);
    assert!(a
        .iter()
        .enumerate()
        .all(|(i, x)| x["id"] == i && x["result"] == "0x10"));
    assert_eq!(rig.node.count("eth_blockNumber"), before + 100);
    // 101: refused whole, nothing carried out.
    let seen = rig.node.seen().len();
    let v = rig.post(&batch(101, "eth_blockNumber")).json();
    assert_eq!((code(&v), reason(&v)), (-32005, "batch_too_large"), "{v}");
    assert_eq!(v["id"], Value::Null);
    let sends = Value::Array(
        (0..101)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendTransaction", "params": [rig.tx(json!({}))]}))
            .collect(),
    );
    let v = rig.post(&sends).json();
    assert_eq!(reason(&v), "batch_too_large", "{v}");
    assert_eq!(
        rig.node.seen().len(),
        seen,
        "a refused batch reached the node"
    );
    assert!(signed_records(&rig.audit()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// One absurd answer must not break the ledger.
// ---------------------------------------------------------------------------------------------

/// The node says the signer's pending nonce is 2^63 − 1 (the largest the ledger's BIGINT holds).
/// Whatever signward makes of that, one lying answer must not stop the ledger: when the node is
/// honest again, sends work, and so do spend windows for every other request.
#[test]
fn a_node_reporting_an_absurd_nonce_cannot_break_the_ledger() {
    let rig = Rig::start(Opts {
        policy: r#"spend_window = { window_secs = 3600, max_total_wei = "1000000", max_count = 1000 }"#,
        ..Opts::default()
    });
    rig.node.answer(
        "eth_getTransactionCount",
        Reply::Result(json!("0x7fffffffffffffff")),
    );
    let first = rig.send(json!({}));
    let second = rig.send(json!({}));
    rig.node.reset();
    let third = rig.send(json!({}));
    // eth_signTransaction needs no node, but its spend window is in the same ledger.
    let offline = rig.rpc(
        "eth_signTransaction",
        json!([{"from": signer(), "to": FRIEND, "value": "0x1", "gas": "0x5208", "gasPrice": "0x3b9aca00",
                "nonce": "0x0", "chainId": "0x1"}]),
    );
    let log = rig.server.log_text();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(
        third["result"].is_string() && offline["result"].is_string(),
        "after one absurd nonce from the node: first {first}, second {second}; node honest \
         again: eth_sendTransaction {third}, eth_signTransaction {offline}; the server's \
         panics: {panics:?}"
    );
    let raws = rig.node.raw_txs();
    assert_eq!(
        nonce_of(raws.last().unwrap()),
        NODE_NONCE,
        "{first} {second}"
    );
}

// ---------------------------------------------------------------------------------------------
// One node per chain (`--evm-upstream-url CHAIN_ID=URL`, `POST /chain/{id}`).
// ---------------------------------------------------------------------------------------------

/// Each chain's traffic reaches its own node only; a node that serves another chain than the one
/// declared for it gets nothing but the question; a route that is no configured chain reaches no
/// node.
#[test]
fn each_chain_reaches_only_its_own_node() {
    let a = FakeNode::start();
    let b = FakeNode::start();
    // Declared for chain 5, but it serves chain 1 (a misconfiguration, or a node that lies).
    b.answer("eth_chainId", Reply::Result(json!("0x1")));
    let (a_spec, b_spec) = (format!("1={}", a.url()), format!("5={}", b.url()));
    let flags = ["--evm-upstream-url", b_spec.as_str()];
    let rig = Rig::with_node(
        a,
        Opts {
            chains: "1, 5",
            upstream: Some(a_spec),
            flags: &flags,
            ..Opts::default()
        },
    );
    let at = |path: &str, method: &str, params: Value| -> Response {
        rig.server.request(
            "POST",
            path,
            &[
                ("authorization", &format!("Bearer {}", rig.token)),
                ("content-type", "application/json"),
            ],
            &serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .unwrap(),
        )
    };
    let ok = |r: &Response| -> Value {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    // Chain 1: its node, nobody else's.
    let v = ok(&at(
        "/chain/1",
        "eth_sendTransaction",
        json!([rig.tx(json!({}))]),
    ));
    result_hash(&v);
    assert_eq!(
        ok(&at("/chain/1", "eth_blockNumber", json!([])))["result"],
        "0x10"
    );
    assert_eq!(rig.node.count("eth_sendRawTransaction"), 1);
    assert!(
        b.seen().is_empty(),
        "chain 1 traffic reached chain 5's node"
    );
    // Chain 5: its node serves chain 1, so nothing is sent, read or answered for it.
    for (method, params) in [
        ("eth_sendTransaction", json!([rig.tx(json!({}))])),
        ("eth_blockNumber", json!([])),
        ("eth_chainId", json!([])),
    ] {
        let v = ok(&at("/chain/5", method, params));
        assert_eq!(
            (code(&v), reason(&v)),
            (-32000, "wrong_chain"),
            "{method}: {v}"
        );
    }
    let asked: Vec<String> = b.seen().iter().map(|s| s.method().to_string()).collect();
    assert!(
        asked.iter().all(|m| m == "eth_chainId"),
        "a node on the wrong chain was asked {asked:?}"
    );
    // A transaction for chain 5 is not signed on /chain/1.
    let v = ok(&at(
        "/chain/1",
        "eth_signTransaction",
        json!([{"from": signer(), "to": FRIEND, "value": "0x1", "gas": "0x5208", "gasPrice": "0x3b9aca00",
                "nonce": "0x0", "chainId": "0x5"}]),
    ));
    assert_eq!((code(&v), reason(&v)), (-32000, "wrong_chain"), "{v}");
    // Chains that are not configured, and routes that are no chain, reach no node.
    let (a_seen, b_seen) = (rig.node.seen().len(), b.seen().len());
    let v = ok(&at("/chain/7", "eth_blockNumber", json!([])));
    assert_eq!(code(&v), -32004, "{v}");
    for path in [
        "/chain/18446744073709551616",
        "/chain/-1",
        "/chain/0x1",
        "/chain/1/x",
    ] {
        let r = at(path, "eth_blockNumber", json!([]));
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!((rig.node.seen().len(), b.seen().len()), (a_seen, b_seen));
    // And the route is behind the evm scope like /.
    let r = rig.server.request(
        "POST",
        "/chain/1",
        &[("content-type", "application/json")],
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.text());
}
