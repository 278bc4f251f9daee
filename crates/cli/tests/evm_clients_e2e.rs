//! Real EVM clients, unchanged, against signward with a node behind it (issue 14): ethers 6.17.0,
//! viem 2.57.20 and web3.py 8.0.0 use signward as their JSON-RPC provider and signer (ether sent,
//! an ERC-20 deployed and transferred, messages, typed data and transactions signed), and a
//! trading bot's remote-signer client (ReadyTrader-Crypto's `SIGNER_TYPE=remote` protocol) signs
//! through `GET /address` and `POST /sign_transaction`. The node is ganache 7.9.2 with the signer's
//! account funded but locked, so every transaction it mines was signed by signward. Effects are
//! checked on the node directly. Then two instances sharing PostgreSQL take 20 concurrent
//! `eth_sendTransaction`s for one key: 20 distinct, consecutive nonces, all mined.
//!
//! The JavaScript side (ganache, ethers, viem, and solc for the test token) comes from the npm
//! registry, pinned by tests/evm-clients/package-lock.json, installed by
//! scripts/ensure-evm-clients.sh (required under scripts/test.sh and in CI; skipped with a note
//! when npm is missing otherwise); the Python clients run in the test venv.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The signer: the V3 keyfile of tests/vectors/v3keystore/web3signer (password "pass").
const KEY: &str = "0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
const ACCOUNT: &str = "0xFE3B557E8Fb62b89F4916B721be55cEb828dBd73";
const RECIPIENT: &str = "0x3333333333333333333333333333333333333333";
/// The EIP-712 domain's verifying contract in the clients' typed data.
const MAIL: &str = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC";
const CHAIN_ID: u64 = 1337;
/// A second chain, for one signward in front of two nodes.
const OTHER_CHAIN: u64 = 31337;
/// 10,000 ether for the signer on the node.
const FUNDS_WEI: &str = "10000000000000000000000";
/// How long one client may run before it is killed and the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Required under scripts/test.sh and in CI.
fn required() -> bool {
    std::env::var_os("SIGNWARD_REQUIRE_PY").is_some() || std::env::var_os("CI").is_some()
}

/// The install directory of tests/evm-clients (its node_modules holds ganache, ethers, viem).
fn evm_clients() -> Option<PathBuf> {
    let npm = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !npm && !required() {
        eprintln!("note: EVM client tests skipped: npm is missing (scripts/test.sh installs it)");
        return None;
    }
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-evm-clients.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    if !out.status.success() {
        assert!(
            !required(),
            "scripts/ensure-evm-clients.sh failed ({})",
            out.status
        );
        eprintln!("note: EVM client tests skipped: scripts/ensure-evm-clients.sh failed");
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        dir.join("node_modules/.bin/ganache").exists(),
        "no ganache in {}",
        dir.display()
    );
    Some(dir)
}

/// A ganache node, killed on drop.
struct Ganache {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Ganache {
    fn start(clients: &Path, dir: &Path) -> Ganache {
        Self::start_chain(clients, dir, CHAIN_ID)
    }

    fn start_chain(clients: &Path, dir: &Path, chain: u64) -> Ganache {
        let port = free_port();
        let log = dir.join(format!("ganache-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(clients.join("node_modules/.bin/ganache"))
            .args(["--server.host", "127.0.0.1", "--server.port"])
            .arg(port.to_string())
            .args(["--chain.chainId", &chain.to_string()])
            .arg("--wallet.accounts")
            .arg(format!("{KEY},{FUNDS_WEI}"))
            // Locked: the node signs nothing itself, so what it mines, signward signed.
            .arg("--wallet.lock")
            // Like a real chain: eth_sendRawTransaction answers once the transaction is in the
            // pool, and a block comes every second. Ganache's default (a block per transaction,
            // answered only once mined) holds a caller whose nonce arrives before its
            // predecessor's; and with blocks only on demand, a client that starts waiting for
            // new blocks just after its transaction was mined (ethers' wait) never sees one.
            .args(["--miner.blockTime", "1"])
            .arg("--logging.quiet")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut g = Ganache { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(v) = g.try_rpc("eth_chainId", json!([])) {
                assert_eq!(v["result"], json!(format!("{chain:#x}")), "{v}");
                return g;
            }
            if let Ok(Some(status)) = g.child.try_wait() {
                panic!("ganache exited ({status}):\n{}", g.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "ganache did not answer within 60 s:\n{}",
                g.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_rpc(&self, method: &str, params: Value) -> std::io::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r = try_request(
            self.port,
            "POST",
            "/",
            &[("content-type", "application/json")],
            &serde_json::to_vec(&body).unwrap(),
        )?;
        serde_json::from_slice(&r.body).map_err(std::io::Error::other)
    }

    /// The result of one call to the node; panics on an error.
    fn rpc(&self, method: &str, params: Value) -> Value {
        let v = self
            .try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{method} to ganache: {e}"));
        assert!(v.get("error").is_none(), "{method} to ganache: {v}");
        v["result"].clone()
    }

    fn nonce(&self) -> u64 {
        quantity(&self.rpc("eth_getTransactionCount", json!([ACCOUNT, "latest"])))
    }
}

impl Drop for Ganache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quantity(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// The address a contract created by ACCOUNT with `nonce` gets: keccak256(rlp([sender, nonce])).
fn create_address(nonce: u64) -> String {
    let sender = hex::decode(&ACCOUNT[2..]).unwrap();
    let mut item = vec![0x94];
    item.extend_from_slice(&sender);
    match nonce {
        0 => item.push(0x80),
        1..=0x7f => item.push(nonce as u8),
        _ => {
            let be = nonce.to_be_bytes();
            let first = be.iter().position(|b| *b != 0).unwrap();
            item.push(0x80 + (8 - first) as u8);
            item.extend_from_slice(&be[first..]);
        }
    }
    let mut rlp = vec![0xc0 + item.len() as u8];
    rlp.extend_from_slice(&item);
    let hash = alloy_primitives::keccak256(rlp);
    format!("0x{}", hex::encode(&hash[12..]))
}

/// Any recipient on the test chain, caps far above what the clients send (100 ether for the
/// bot), contract creation, personal messages, the clients' EIP-712 Mail, and ERC-20 `transfer`
/// on every contract the signer can have deployed in its first 64 transactions (the test token's
/// address is not known in advance; the policy has no wildcard for calldata).
fn policy() -> String {
    let contracts: Vec<String> = (0..64)
        .map(|n| {
            format!(
                r#"{{ address = "{}", selectors = ["0xa9059cbb"] }}"#,
                create_address(n)
            )
        })
        .collect();
    format!(
        r#"
[defaults]
chain_ids = [{CHAIN_ID}, {OTHER_CHAIN}]
recipients = ["*"]
max_value_wei = "1000000000000000000000"
max_gas = 3000000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "10000000000"
max_gas_price_wei = "100000000000"
max_calldata_bytes = 32768
allow_contract_creation = true
allow_personal_sign = true
contracts = [{}]
typed_data_domains = [{{ chain_id = {CHAIN_ID}, verifying_contract = "{MAIL}", primary_types = ["Mail"] }}]
"#,
        contracts.join(", ")
    )
}

/// The keyfile, its password and the policy in `d`; returns the `serve` flags for them and for
/// `more`.
fn signer_files(d: &Path, more: &[&str]) -> Vec<String> {
    let wallet = vectors().join("v3keystore/web3signer");
    let exp: Value =
        serde_json::from_slice(&std::fs::read(wallet.join("expected.json")).unwrap()).unwrap();
    assert_eq!(exp["private_key"], KEY);
    assert_eq!(exp["address"], ACCOUNT.to_lowercase());
    std::fs::create_dir_all(d.join("evm")).unwrap();
    std::fs::copy(wallet.join("wallet.json"), d.join("evm/wallet.json")).unwrap();
    owner_only(&d.join("evm/wallet.json"));
    write_secret(&d.join("evm.pass"), b"pass\n");
    std::fs::write(d.join("policy.toml"), policy()).unwrap();
    [
        "--evm-keyfiles-path",
        s(&d.join("evm")),
        "--evm-keyfiles-password-file",
        s(&d.join("evm.pass")),
        "--evm-policy",
        s(&d.join("policy.toml")),
    ]
    .iter()
    .chain(more)
    .map(|a| a.to_string())
    .collect()
}

/// An `evm` credential for the signer's key in `d/data`, with `extra` flags.
fn bot(d: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "--name",
        name,
        "--scope",
        "evm",
        "--keys",
        ACCOUNT,
        "--allow-op",
        "eth_signTransaction,eth_sign,eth_signTypedData",
    ];
    args.extend_from_slice(extra);
    credential(d, &args)
}

fn rpc(port: u16, token: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r = try_request(
        port,
        "POST",
        "/",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        &serde_json::to_vec(&body).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{method} to signward: {e}"));
    assert_eq!(r.status, 200, "{method}: {}", r.text());
    r.json()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run one client to completion (killed after CLIENT_TIMEOUT); it must exit 0 and print one
/// JSON line with `"ok": true`, which is returned.
fn run_client(name: &str, mut cmd: Command, server: &Server) -> Value {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let context = format!(
        "--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n--- signward log (tail):\n{}",
        tail(&server.log_text(), 40)
    );
    match status {
        None => panic!("{name} did not finish within {CLIENT_TIMEOUT:?}\n{context}"),
        Some(st) if !st.success() => panic!("{name} failed ({st})\n{context}"),
        Some(_) => {}
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("{name} printed nothing\n{context}"));
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("{name} printed no JSON line\n{context}"));
    assert_eq!(v["ok"], true, "{name}\n{context}");
    eprintln!("{name}: {line}");
    v
}

/// Environment every client reads.
fn client_env(cmd: &mut Command, url: &str, token: &str, node: &Ganache) {
    cmd.env("SIGNWARD_URL", url)
        .env("SIGNWARD_TOKEN", token)
        .env("NODE_URL", node.url())
        .env("ACCOUNT", ACCOUNT)
        .env("RECIPIENT", RECIPIENT)
        .env("CHAIN_ID", CHAIN_ID.to_string())
        .env("TYPED_DATA_CONTRACT", MAIL);
}

fn node_client(clients: &Path, script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("tests/evm-clients").join(script))
        .env("NODE_PATH", clients.join("node_modules"));
    cmd
}

#[test]
fn ethers_viem_web3py_and_a_trading_bot_use_signward_with_a_node_behind_it() {
    let Some(clients) = evm_clients() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = Ganache::start(&clients, d);
    let flags = signer_files(d, &["--evm-upstream-url", &node.url()]);
    let token = bot(d, "bot", &[]);
    // web3.py's sign_transaction formats geth's {raw, tx}.
    let geth = bot(d, "web3py", &["--evm-tx-result", "geth"]);
    let server = Server::start_with_auth(d, &strs(&flags));
    let url = format!("http://127.0.0.1:{}/", server.port);

    // The endpoint answers for the node: its chain, its reads; and only allowlisted reads.
    assert_eq!(
        rpc(server.port, &token, "eth_chainId", json!([]))["result"],
        json!(format!("{CHAIN_ID:#x}"))
    );
    let balance = rpc(
        server.port,
        &token,
        "eth_getBalance",
        json!([ACCOUNT, "latest"]),
    );
    assert_eq!(
        balance["result"],
        node.rpc("eth_getBalance", json!([ACCOUNT, "latest"]))
    );
    // (That it never reaches the node is shown with a recording node in
    // evm_upstream_attacks_e2e.rs; this node mines every second anyway.)
    let v = rpc(server.port, &token, "evm_mine", json!([]));
    assert_eq!(
        v["error"]["code"], -32601,
        "a node method not on the allowlist: {v}"
    );

    // A refused eth_sendTransaction reaches nothing: the node's nonce stays.
    let before = node.nonce();
    let v = rpc(
        server.port,
        &token,
        "eth_sendTransaction",
        json!([{"from": ACCOUNT, "to": RECIPIENT, "value": "0x6c6b935b8bbd400000"}]),
    );
    assert_eq!(v["error"]["data"]["reason"], "value_too_high", "{v}");
    assert_eq!(node.nonce(), before);

    let mut sent = 0;
    let mut cmd = node_client(&clients, "ethers_client.cjs");
    client_env(&mut cmd, &url, &token, &node);
    let ethers = run_client("ethers", cmd, &server);
    sent += 3;
    let mut cmd = node_client(&clients, "viem_client.cjs");
    client_env(&mut cmd, &url, &token, &node);
    let viem = run_client("viem", cmd, &server);
    sent += 3;
    assert_ne!(ethers["token"], viem["token"]);

    if let Some(py) = python() {
        let py = py.as_path();
        let mut cmd = Command::new(py);
        cmd.arg(repo().join("tests/py/web3_send_client.py"));
        client_env(&mut cmd, &url, &geth, &node);
        run_client("web3.py", cmd, &server);
        sent += 3;
        let mut cmd = Command::new(py);
        cmd.arg(repo().join("tests/py/readytrader_client.py"));
        client_env(
            &mut cmd,
            &format!("http://127.0.0.1:{}", server.port),
            &token,
            &node,
        );
        run_client("readytrader", cmd, &server);
        sent += 2;
    }
    // Every transaction the clients sent is on chain, and nothing else was.
    assert_eq!(node.nonce(), before + sent);
    let secret = KEY.trim_start_matches("0x");
    assert!(!server.log_text().contains(secret));
    drop(server);

    // Without a node, eth_chainId comes from --evm-chain-id.
    let alone = tempfile::tempdir().unwrap();
    let a = alone.path();
    let flags = signer_files(a, &["--evm-chain-id", &CHAIN_ID.to_string()]);
    let token = bot(a, "bot", &[]);
    let server = Server::start_with_auth(a, &strs(&flags));
    assert_eq!(
        rpc(server.port, &token, "eth_chainId", json!([]))["result"],
        json!(format!("{CHAIN_ID:#x}"))
    );
}

#[test]
fn two_instances_sharing_postgres_allocate_distinct_consecutive_nonces() {
    let Some(admin) = pg_admin() else { return };
    let Some(clients) = evm_clients() else { return };
    let (db, name) = pg_create(&admin, "evm_nonces");
    let dir = tempfile::tempdir().unwrap();
    let node = Ganache::start(&clients, dir.path());
    let start = node.nonce();
    // Two instances, each with its own data directory (as on two machines), one database.
    let mut servers = Vec::new();
    for inst in ["a", "b"] {
        let d = dir.path().join(inst);
        std::fs::create_dir_all(&d).unwrap();
        let flags = signer_files(
            &d,
            &[
                "--evm-upstream-url",
                &node.url(),
                "--slashing-protection-db-url",
                &db,
            ],
        );
        let token = bot(&d, "bot", &[]);
        servers.push((Server::start_with_auth(&d, &strs(&flags)), token));
    }
    let targets: Arc<Vec<(u16, String)>> =
        Arc::new(servers.iter().map(|(s, t)| (s.port, t.clone())).collect());
    let threads: Vec<_> = (0..20u64)
        .map(|i| {
            let targets = targets.clone();
            std::thread::spawn(move || {
                let (port, token) = &targets[(i % 2) as usize];
                let v = rpc(
                    *port,
                    token,
                    "eth_sendTransaction",
                    json!([{"from": ACCOUNT, "to": RECIPIENT, "value": format!("{:#x}", i + 1)}]),
                );
                v["result"]
                    .as_str()
                    .unwrap_or_else(|| panic!("request {i}: {v}"))
                    .to_string()
            })
        })
        .collect();
    let hashes: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let distinct: std::collections::BTreeSet<&String> = hashes.iter().collect();
    assert_eq!(distinct.len(), 20, "{hashes:?}");
    // The node holds every answered transaction (mined or in its pool), and their nonces are
    // distinct and consecutive: no nonce was handed out twice and none was skipped.
    let mut nonces = Vec::new();
    for h in &hashes {
        let tx = node.rpc("eth_getTransactionByHash", json!([h]));
        assert_eq!(
            tx["from"].as_str(),
            Some(ACCOUNT.to_lowercase().as_str()),
            "{h}: {tx}"
        );
        nonces.push(quantity(&tx["nonce"]));
    }
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (start..start + 20).collect::<Vec<_>>(),
        "nonces must be distinct and consecutive"
    );
    // Mined, each successfully. (Ganache 7 never promotes a transaction it queued as "future"
    // when the one before it was being mined at that moment, so a run can stall on the node's
    // side; that is the node's limitation and is reported, not failed: the nonces above are
    // what signward decides.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.nonce() < start + 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if node.nonce() < start + 20 {
        eprintln!(
            "note: ganache mined {} of 20 (its future-queue limitation)",
            node.nonce() - start
        );
    }
    for h in &hashes {
        let receipt = node.rpc("eth_getTransactionReceipt", json!([h]));
        if !receipt.is_null() {
            assert_eq!(receipt["status"], "0x1", "{receipt}");
        }
    }
    drop(servers);
    pg_drop(&admin, &name);
}

/// One signward in front of two nodes, one per chain (`--evm-upstream-url CHAIN_ID=URL`): each
/// chain is addressed as `/chain/{id}`, reads and sends go to that chain's node only, and a
/// transaction for one chain is refused on the other's path.
#[test]
fn one_signer_two_chains_each_through_its_own_node() {
    let Some(clients) = evm_clients() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (
        Ganache::start(&clients, d),
        Ganache::start_chain(&clients, d, OTHER_CHAIN),
    );
    let flags = signer_files(
        d,
        &[
            "--evm-upstream-url",
            &format!("{CHAIN_ID}={}", a.url()),
            "--evm-upstream-url",
            &format!("{OTHER_CHAIN}={}", b.url()),
        ],
    );
    let token = bot(d, "bot", &[]);
    let server = Server::start_with_auth(d, &strs(&flags));
    let call = |path: &str, method: &str, params: Value| -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r = try_request(
            server.port,
            "POST",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{path} {method}: {}", r.text());
        r.json()
    };
    // `/` has no chain of its own with two nodes and no --evm-chain-id.
    let v = call("/", "eth_chainId", json!([]));
    assert_eq!(v["error"]["code"], -32004, "{v}");
    for (chain, node) in [(CHAIN_ID, &a), (OTHER_CHAIN, &b)] {
        let path = format!("/chain/{chain}");
        assert_eq!(
            call(&path, "eth_chainId", json!([]))["result"],
            json!(format!("{chain:#x}"))
        );
        let before = (a.nonce(), b.nonce());
        let v = call(
            &path,
            "eth_sendTransaction",
            json!([{"from": ACCOUNT, "to": RECIPIENT, "value": "0x1"}]),
        );
        let hash = v["result"].as_str().unwrap_or_else(|| panic!("{v}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while node
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .is_null()
        {
            assert!(
                Instant::now() < deadline,
                "{hash} not mined on chain {chain}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mined = node.rpc("eth_getTransactionByHash", json!([hash]));
        assert_eq!(mined["chainId"], json!(format!("{chain:#x}")), "{mined}");
        // Only this chain's node saw a transaction.
        let after = (a.nonce(), b.nonce());
        if chain == CHAIN_ID {
            assert_eq!(after, (before.0 + 1, before.1));
        } else {
            assert_eq!(after, (before.0, before.1 + 1));
        }
    }
    // A transaction for the other chain is refused on this chain's path, before any signature.
    let t = json!({"from": ACCOUNT, "to": RECIPIENT, "value": "0x1", "gas": "0x5208",
        "gasPrice": "0x3b9aca00", "nonce": "0x0", "chainId": format!("{OTHER_CHAIN:#x}")});
    let v = call(
        &format!("/chain/{CHAIN_ID}"),
        "eth_signTransaction",
        json!([t]),
    );
    assert_eq!(v["error"]["data"]["reason"], "wrong_chain", "{v}");
    let mut t = t;
    t["chainId"] = json!(format!("{CHAIN_ID:#x}"));
    t["from"] = json!(ACCOUNT);
    let v = call(
        &format!("/chain/{CHAIN_ID}"),
        "eth_signTransaction",
        json!([t]),
    );
    assert!(
        v["result"].as_str().is_some_and(|r| r.starts_with("0xf8")),
        "{v}"
    );
    // A chain nobody serves here.
    let v = call("/chain/5", "eth_chainId", json!([]));
    assert_eq!(v["error"]["code"], -32004, "{v}");
    let v = call("/chain/5", "eth_getBalance", json!([ACCOUNT, "latest"]));
    assert_eq!(v["error"]["code"], -32004, "{v}");
}

/// Policy v2 on a real node (issue 15), driven by ethers: tokens and a router deployed through
/// signward, a bounded approval and a swap along an allowed path signed and mined, and each of
/// an approval to another spender, an unlimited approval, a swap whose path leaves the
/// allowlist, a swap paying someone else, a transfer above the token cap, above its daily window
/// or to a stranger, and a Permit to an unknown spender refused with its rule named
/// (tests/evm-clients/policy_client.cjs).
#[test]
fn policy_v2_guards_tokens_approvals_and_a_router_on_a_real_node() {
    let Some(clients) = evm_clients() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = Ganache::start(&clients, d);
    assert_eq!(
        node.nonce(),
        0,
        "the addresses below assume a fresh account"
    );
    let (a, b, c, router) = (
        create_address(0),
        create_address(1),
        create_address(2),
        create_address(3),
    );
    let attacker = "0x4444444444444444444444444444444444444444";
    let flags = signer_files(d, &["--evm-upstream-url", &node.url()]);
    let policy = format!(
        r#"
[defaults]
chain_ids = [{CHAIN_ID}]
recipients = []
max_value_wei = "0"
max_gas = 3000000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "10000000000"
max_calldata_bytes = 32768
allow_contract_creation = true
erc20 = [
  {{ token = "{a}", transfer_to = ["{RECIPIENT}"], max_transfer = "100000000000000000000", approve = ["{router}"], max_approval = "1000000000000000000000",
     window = {{ window_secs = 86400, max_total = "150000000000000000000", max_count = 10 }} }},
  {{ token = "{b}", transfer_to = ["{router}"] }},
]
permits = [{{ token = "{a}", spenders = ["{router}"], max_value = "1000000000000000000000", max_deadline_secs = 3600 }}]

[[defaults.contracts]]
address = "{router}"
functions = [{{ signature = "swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline)", args = {{ path = {{ each_in = ["{a}", "{b}"] }}, to = {{ equals = "self" }}, amountIn = {{ max = "50000000000000000000" }}, deadline = {{ max_from_now = 600 }} }} }}]
"#
    );
    std::fs::write(d.join("policy.toml"), &policy).unwrap();
    let token = bot(d, "bot", &[]);
    let server = Server::start_with_auth(d, &strs(&flags));
    let mut cmd = node_client(&clients, "policy_client.cjs");
    client_env(
        &mut cmd,
        &format!("http://127.0.0.1:{}/", server.port),
        &token,
        &node,
    );
    cmd.env("ATTACKER", attacker)
        .env("TOKEN_A", &a)
        .env("TOKEN_B", &b)
        .env("TOKEN_C", &c)
        .env("ROUTER", &router);
    let out = run_client("policy", cmd, &server);
    assert_eq!(out["refused"].as_array().map(|r| r.len()), Some(8), "{out}");
    // Every refusal is in the audit trail with its rule.
    let audit = String::from_utf8_lossy(&run_signward(&["audit", "query"], &d.join("data")).stdout)
        .to_string();
    for rule in [
        "approval_spender_not_allowed",
        "approval_too_high",
        "argument_not_allowed",
        "token_amount_too_high",
        "token_recipient_not_allowed",
        "spend_window_value_exceeded",
        "permit_spender_not_allowed",
    ] {
        assert!(audit.contains(rule), "{rule} not in the audit trail");
    }
    // 50 more A still fits the window: the window refused 51, not everything.
    let v = rpc(
        server.port,
        &token,
        "eth_sendTransaction",
        json!([{"from": ACCOUNT, "to": a, "data": format!("0xa9059cbb{:0>64}{:064x}", &RECIPIENT[2..], 50_000_000_000_000_000_000u128)}]),
    );
    assert!(v["result"].is_string(), "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.nonce() < 9 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(node.nonce(), 9);
}
