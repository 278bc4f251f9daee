//! signward attacked through its public interfaces (issue 11): one test per finding of the
//! adversarial review, each of which failed before the fix, and a barrage of malformed traffic
//! during which valid requests keep signing. (Finding 1, deleting a key while it signs, is in
//! delete_e2e.rs; finding 8 at store level in crates/slashing/tests/store.rs.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn example(kind: &str) -> Value {
    examples()
        .into_iter()
        .find(|c| c["name"] == kind)
        .unwrap_or_else(|| panic!("no example {kind}"))["request"]
        .clone()
}

fn gvr() -> String {
    example("RANDAO_REVEAL")["fork_info"]["genesis_validators_root"]
        .as_str()
        .unwrap()
        .to_string()
}

fn randao(epoch: u64) -> Value {
    let mut r = example("RANDAO_REVEAL");
    r["randao_reveal"]["epoch"] = json!(epoch.to_string());
    r.as_object_mut().unwrap().remove("signingRoot");
    r
}

fn attestation(source: u64, target: u64) -> Value {
    let mut r = example("ATTESTATION");
    r["attestation"]["source"]["epoch"] = json!(source.to_string());
    r["attestation"]["target"]["epoch"] = json!(target.to_string());
    r.as_object_mut().unwrap().remove("signingRoot");
    r
}

/// `count` fresh keystores (JSON text) with the password `keystore password`, and their public keys.
fn keystores_with_pubkeys(d: &Path, count: usize) -> (Vec<String>, Vec<String>) {
    let ks: Vec<String> = pbkdf2_keystores(d, "ks", b"keystore password", count)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let pks = ks
        .iter()
        .map(|k| {
            let v: Value = serde_json::from_str(k).unwrap();
            format!("0x{}", v["pubkey"].as_str().unwrap())
        })
        .collect();
    (ks, pks)
}

fn sign(server: &Server, auth: &str, pk: &str, body: &Value) -> Response {
    sign_with(server, auth, pk, body)
}

fn code(r: &Response) -> (u16, String) {
    (
        r.status,
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(String::from))
            .unwrap_or_default(),
    )
}

fn bearer(d: &Path, args: &[&str]) -> String {
    format!("Bearer {}", credential(d, args))
}

/// Credentials reach a running server within a second.
fn settle() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn audit_records(d: &Path) -> Vec<Value> {
    let out = run_signward(&["audit", "query"], &d.join("data"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Stop the server gracefully (SIGTERM flushes the aggregated denial records) and wait for it.
fn stop(mut server: Server) {
    server.signal("TERM");
    server.child.wait().unwrap();
}

/// A connection from `source` that sends half a request head and then nothing.
fn half_open(
    rt: &tokio::runtime::Runtime,
    source: &str,
    to: SocketAddr,
) -> Option<tokio::net::TcpStream> {
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().ok()?;
        s.bind(format!("{source}:0").parse().ok()?).ok()?;
        let mut c = tokio::time::timeout(Duration::from_secs(2), s.connect(to))
            .await
            .ok()?
            .ok()?;
        use tokio::io::AsyncWriteExt;
        c.write_all(b"POST /api/v1/eth2/sign/0x1234 HTTP/1.1\r\nhost: x\r\ncontent-ty")
            .await
            .ok()?;
        Some(c)
    })
}

/// Finding 3: more half-open connections than the process has descriptors; valid requests
/// still sign throughout, and the half-open ones are closed by the header timeout.
#[test]
fn half_open_connections_beyond_the_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    let args = keystore_args(
        &minimal_network(d),
        &keys,
        &pw,
        &[
            "--http-header-timeout-secs",
            "3",
            "--max-connections-per-ip",
            "40",
        ],
    );
    // 256 descriptors: the server keeps its connections at 128.
    let server = Server::start_wrapped(d, &["prlimit", "--nofile=256:256"], &strs(&args));
    assert!(
        server.log_text().contains("max_connections=128"),
        "{}",
        server.log_text()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let to: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let mut held = Vec::new();
    let mut signed = 0;
    for round in 0..8u64 {
        // 50 more half-open connections from each of 8 addresses: 400 per round, 3,200 in all.
        for ip in 2..10 {
            for _ in 0..50 {
                if let Some(c) = half_open(&rt, &format!("127.0.0.{ip}"), to) {
                    held.push(c);
                }
            }
        }
        for i in 0..4 {
            let r = sign(&server, &vc, &pks[0], &randao(round * 10 + i));
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
            signed += 1;
        }
    }
    assert!(
        held.len() > 256,
        "more connections were opened than descriptors exist"
    );
    // The server never ran out of descriptors, and it closed what it had to.
    let log = server.log_text();
    assert!(
        !log.contains("Too many open files"),
        "descriptors exhausted"
    );
    // After the head timeout every half-open connection still held is closed (those still in
    // the kernel's backlog are accepted as room frees, then time out in turn).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut open = held.len();
    while open > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        open = rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut open = 0;
            for c in held.iter_mut() {
                let mut b = [0u8; 1];
                match tokio::time::timeout(Duration::from_millis(2), c.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {}
                    _ => open += 1,
                }
            }
            open
        });
    }
    assert_eq!(
        open, 0,
        "half-open connections still open 20 s after the attack"
    );
    assert_eq!(signed, 32);
    let r = sign(&server, &vc, &pks[0], &randao(999));
    assert_eq!(r.status, 200);
}

/// Finding 5: unauthenticated requests with huge paths cannot grow the audit log; their
/// denials are aggregated per source and interval, and every field is bounded.
#[test]
fn unauthenticated_floods_do_not_grow_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(&minimal_network(d), &keys, &pw, &[])),
    );
    assert_eq!(sign(&server, &vc, &pks[0], &randao(1)).status, 200);
    let size = || {
        ["slashing.sqlite", "slashing.sqlite-wal"]
            .iter()
            .map(|f| {
                std::fs::metadata(d.join("data").join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    let before = size();
    let long = format!("0x{}", "ab".repeat(30_000));
    for _ in 0..240 {
        let r = server.request("POST", &format!("/api/v1/eth2/sign/{long}"), &[], b"{}");
        assert!(matches!(r.status, 401 | 429), "{}", r.status);
    }
    // A valid caller with a huge key is refused, and recorded with the key cut.
    for _ in 0..20 {
        let r = sign(&server, &vc, &long, &randao(2));
        assert_eq!(code(&r), (400, "invalid_pubkey".into()));
    }
    // A valid credential outside its scope, in a loop: tallied too.
    for _ in 0..100 {
        let r = server.request("GET", "/healthcheck", &[("authorization", &vc)], b"");
        assert_eq!(code(&r), (403, "scope_denied".into()));
    }
    assert_eq!(sign(&server, &vc, &pks[0], &randao(3)).status, 200);
    let grown = size().saturating_sub(before);
    assert!(
        grown < 200_000,
        "260 refused requests grew the database by {grown} bytes"
    );
    stop(server);
    let records = audit_records(d);
    let denied: Vec<&Value> = records
        .iter()
        .filter(|r| r["decision"] == "denied" && r["caller"] == "-")
        .collect();
    // One aggregated record per source and reason (401, then 429 once over the failure limit).
    assert!(denied.len() <= 2, "aggregated records: {denied:?}");
    let total: u64 = denied.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 240);
    let scope: Vec<&Value> = records
        .iter()
        .filter(|r| r["decision"] == "denied" && r["caller"] == "vc")
        .collect();
    assert_eq!(scope.len(), 1, "{scope:?}");
    assert_eq!(scope[0]["count"], 100);
    assert_eq!(scope[0]["reason"], "scope_denied");
    for r in &records {
        for (k, v) in r.as_object().unwrap() {
            if let Some(s) = v.as_str() {
                assert!(
                    s.chars().count() <= 129 || k == "log",
                    "{k} unbounded: {} chars",
                    s.len()
                );
            }
        }
    }
}

/// Finding 6: JSON-RPC method names never become metric labels or audit fields.
#[test]
fn method_names_from_requests_are_never_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bot = bearer(
        d,
        &[
            "--name",
            "bot",
            "--scope",
            "evm",
            "--keys",
            "evm:*",
            "--allow-op",
            "eth_sign",
        ],
    );
    let mon = bearer(d, &["--name", "mon", "--scope", "metrics"]);
    let metrics_port = free_port();
    let port = metrics_port.to_string();
    let server = Server::start_with_auth(d, &["--metrics-enabled", "--metrics-port", &port]);
    let pid = server.child.id();
    let before = rss_kib(pid);
    for i in 0..60 {
        // "q" is no hex digit: no hash or signature in a record can contain "qqqq" by chance.
        let name = format!("eth_{}{i}", "q".repeat(400_000));
        let body = json!({"jsonrpc": "2.0", "id": i, "method": name, "params": []});
        let r = server.request(
            "POST",
            "/",
            &[
                ("authorization", &bot),
                ("content-type", "application/json"),
            ],
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["error"]["data"]["reason"], "method_not_found");
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 40_000,
        "60 long method names grew RSS from {before} KiB to {after} KiB"
    );
    let m = try_request(
        metrics_port,
        "GET",
        "/metrics",
        &[("authorization", &mon)],
        b"",
    )
    .unwrap()
    .text();
    assert!(
        !m.contains("qqqq"),
        "a request's method name became a label"
    );
    assert!(m.contains("operation=\"unknown\""), "{m}");
    assert!(m.len() < 20_000);
    stop(server);
    for r in audit_records(d) {
        assert!(!r.to_string().contains("qqqq"));
    }
}

/// Finding 7: a Keymanager import applies history only for keys the request actually imports,
/// refuses records beyond the chain clock, and answers 400 for another chain's history.
#[test]
fn keymanager_import_history_is_bounded_to_imported_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (id, shares) = init_age(d, &data, 2, 2);
    // A network whose genesis time is known, so the chain clock bounds imported history.
    let net = minimal_network(d);
    let mut args = vec![
        "--network".to_string(),
        s(&net).into(),
        "--genesis-time".into(),
        "1606824000".into(),
    ];
    args.extend(unattended(&id, &shares));
    let server = Server::start_with_auth(d, &strs(&args));
    let km = bearer(d, &["--name", "km", "--scope", "keymanager"]);
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    settle();
    let (ks, pks) = keystores_with_pubkeys(d, 3);
    let pk = |i: usize| pks[i].clone();
    let import = |keystores: Vec<&str>, passwords: Vec<&str>, history: Option<Value>| {
        let mut body = json!({"keystores": keystores, "passwords": passwords});
        if let Some(h) = history {
            body["slashing_protection"] = json!(h.to_string());
        }
        server.request(
            "POST",
            "/eth/v1/keystores",
            &[("authorization", &km), ("content-type", "application/json")],
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let history = |pk: &str, gvr: &str, target: u64| {
        json!({"metadata": {"interchange_format_version": "5", "genesis_validators_root": gvr},
               "data": [{"pubkey": pk, "signed_blocks": [], "signed_attestations": [
                   {"source_epoch": (target - 1).to_string(), "target_epoch": target.to_string()}]}]})
    };
    // The victim's key is here and signing.
    let r = import(vec![&ks[0]], vec!["keystore password"], None);
    assert_eq!(r.json()["data"][0]["status"], "imported");
    assert_eq!(sign(&server, &vc, &pk(0), &attestation(1, 2)).status, 200);
    // An attacker sends the victim's public keystore with a wrong password and a history that
    // would lock the victim out: the keystore fails to decrypt, and its history is ignored.
    let r = import(
        vec![&ks[0]],
        vec!["wrong"],
        Some(history(&pk(0), &gvr(), 100)),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["status"], "error");
    assert_eq!(sign(&server, &vc, &pk(0), &attestation(2, 3)).status, 200);
    // Nor does a keystore that imports fine carry history for another key.
    let mut both = history(&pk(1), &gvr(), 5);
    both["data"]
        .as_array_mut()
        .unwrap()
        .push(history(&pk(0), &gvr(), 100)["data"][0].clone());
    let r = import(vec![&ks[1]], vec!["keystore password"], Some(both));
    assert_eq!(r.json()["data"][0]["status"], "imported", "{}", r.text());
    assert_eq!(sign(&server, &vc, &pk(0), &attestation(3, 4)).status, 200);
    assert_eq!(
        code(&sign(&server, &vc, &pk(1), &attestation(4, 5))),
        (412, "double_vote".into()),
        "the imported key's own history is in force"
    );
    // A record far beyond the chain clock: the whole import is refused, nothing imported.
    let r = import(
        vec![&ks[2]],
        vec!["keystore password"],
        Some(history(&pk(2), &gvr(), 1 << 40)),
    );
    assert_eq!(
        code(&r),
        (400, "slashing_protection_too_far_in_future".into())
    );
    // History for another chain: 400, not an outage.
    let other = format!("0x{}", "77".repeat(32));
    let r = import(
        vec![&ks[2]],
        vec!["keystore password"],
        Some(history(&pk(2), &other, 9)),
    );
    assert_eq!(
        code(&r),
        (400, "slashing_protection_genesis_mismatch".into())
    );
    assert_eq!(
        code(&sign(&server, &vc, &pk(2), &randao(1))),
        (404, "unknown_key".into())
    );
    let r = import(
        vec![&ks[2]],
        vec!["keystore password"],
        Some(json!({"metadata": 1})),
    );
    assert_eq!(code(&r), (400, "invalid_slashing_protection".into()));
}

/// Findings 10 and 11: a validator client's credential signs duties only; deposits and exits
/// are granted by name; registrations only for the fee recipients granted; grants and denials
/// cover a whole family.
#[test]
fn validator_client_credentials_sign_duties_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let recipient = "0x0000000000000000000000000000000000000001";
    let mut registration = example("VALIDATOR_REGISTRATION");
    registration.as_object_mut().unwrap().remove("signingRoot");
    let their_recipient = registration["validator_registration"]["fee_recipient"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(their_recipient.to_lowercase(), recipient);
    let vc = bearer(
        d,
        &[
            "--name",
            "vc",
            "--scope",
            "sign,public_keys",
            "--fee-recipient",
            recipient,
        ],
    );
    let open = bearer(d, &["--name", "open", "--scope", "sign"]);
    let no_v2 = bearer(
        d,
        &[
            "--name",
            "no-v2",
            "--scope",
            "sign",
            "--deny-op",
            "block_v2",
        ],
    );
    let depositor = bearer(
        d,
        &["--name", "dep", "--scope", "sign", "--allow-op", "DEPOSIT"],
    );
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(&minimal_network(d), &keys, &pw, &[])),
    );
    let body = |kind: &str| {
        let mut b = example(kind);
        b.as_object_mut().unwrap().remove("signingRoot");
        b
    };
    let pk = &pks[0];
    assert_eq!(
        code(&sign(&server, &vc, pk, &body("DEPOSIT"))),
        (403, "operation_denied".into())
    );
    assert_eq!(
        code(&sign(&server, &vc, pk, &body("VOLUNTARY_EXIT"))),
        (403, "operation_denied".into())
    );
    assert_eq!(
        code(&sign(&server, &open, pk, &body("DEPOSIT"))),
        (403, "operation_denied".into())
    );
    assert_eq!(sign(&server, &depositor, pk, &body("DEPOSIT")).status, 200);
    assert_eq!(
        code(&sign(&server, &depositor, pk, &randao(1))),
        (403, "operation_denied".into())
    );
    assert_eq!(
        code(&sign(&server, &vc, pk, &registration)),
        (403, "fee_recipient_denied".into())
    );
    registration["validator_registration"]["fee_recipient"] = json!(recipient);
    assert_eq!(sign(&server, &vc, pk, &registration).status, 200);
    assert_eq!(sign(&server, &open, pk, &registration).status, 200);
    // Denying BLOCK_V2 denies the deprecated BLOCK too.
    assert_eq!(
        code(&sign(&server, &no_v2, pk, &body("BLOCK (DEPRECATED)"))),
        (403, "operation_denied".into())
    );
    assert_eq!(
        code(&sign(&server, &no_v2, pk, &body("BLOCK_V2 (PHASE 0)"))),
        (403, "operation_denied".into())
    );
    assert_eq!(sign(&server, &no_v2, pk, &randao(2)).status, 200);
}

/// Finding 2: a validator client's credential cannot touch an EVM key; EVM keys and methods are
/// granted explicitly, per credential.
#[test]
fn evm_keys_and_methods_are_granted_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let exp: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("v3keystore/web3signer/expected.json")).unwrap(),
    )
    .unwrap();
    let address = exp["address"].as_str().unwrap().to_string();
    std::fs::create_dir_all(d.join("evm")).unwrap();
    std::fs::copy(
        vectors().join("v3keystore/web3signer/wallet.json"),
        d.join("evm/wallet.json"),
    )
    .unwrap();
    owner_only(&d.join("evm/wallet.json"));
    write_secret(&d.join("evm.pass"), b"pass\n");
    std::fs::write(
        d.join("policy.toml"),
        "[defaults]\nchain_ids = [1]\nrecipients = [\"*\"]\nmax_value_wei = \"1000\"\nmax_gas = 100000\nmax_fee_per_gas_wei = \"100000000000\"\nmax_priority_fee_per_gas_wei = \"2000000000\"\nmax_calldata_bytes = 0\nallow_personal_sign = true\n",
    )
    .unwrap();
    let vc = bearer(d, &["--name", "vc", "--scope", "sign,public_keys"]);
    let other = "0x1111111111111111111111111111111111111111";
    let elsewhere = bearer(
        d,
        &[
            "--name",
            "elsewhere",
            "--scope",
            "evm",
            "--keys",
            other,
            "--allow-op",
            "eth_sign",
        ],
    );
    let messages = bearer(
        d,
        &[
            "--name",
            "msg",
            "--scope",
            "evm",
            "--keys",
            &address,
            "--allow-op",
            "eth_sign",
        ],
    );
    // An evm credential must name its keys and its methods.
    let out = run_signward(
        &["token", "create", "--name", "x", "--scope", "evm"],
        &d.join("data"),
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("EVM keys"));
    let out = run_signward(
        &[
            "token", "create", "--name", "y", "--scope", "evm", "--keys", &address,
        ],
        &d.join("data"),
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("EVM methods"));
    let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
    let out = run_signward(
        &[
            "token",
            "create",
            "--name",
            "z",
            "--scope",
            "evm",
            "--keys",
            bad,
            "--allow-op",
            "eth_sign",
        ],
        &d.join("data"),
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("checksum"));
    let server = Server::start_with_auth(
        d,
        &[
            "--evm-keyfiles-path",
            s(&d.join("evm")),
            "--evm-keyfiles-password-file",
            s(&d.join("evm.pass")),
            "--evm-policy",
            s(&d.join("policy.toml")),
        ],
    );
    let rpc = |auth: &str, method: &str, params: Value| {
        server.request(
            "POST",
            "/",
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
            ],
            &serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .unwrap(),
        )
    };
    let tx = json!([{"from": address, "to": other, "value": "0x1", "gas": "0x5208", "maxFeePerGas": "0x1",
                     "maxPriorityFeePerGas": "0x1", "nonce": "0x0", "chainId": "0x1"}]);
    // The validator client's credential: the endpoint is not even in its scope.
    assert_eq!(
        code(&rpc(&vc, "eth_signTransaction", tx.clone())),
        (403, "scope_denied".into())
    );
    assert_eq!(
        code(&rpc(&vc, "eth_accounts", json!([]))),
        (403, "scope_denied".into())
    );
    // Granted another key only: this one is denied, and not listed.
    let v = rpc(&elsewhere, "eth_sign", json!([address, "0x00"])).json();
    assert_eq!(v["error"]["data"]["reason"], "key_denied", "{v}");
    let v = rpc(&elsewhere, "eth_accounts", json!([])).json();
    assert_eq!(v["result"], json!([]));
    // Granted messages only: transactions are denied.
    let v = rpc(&messages, "eth_signTransaction", tx).json();
    assert_eq!(v["error"]["data"]["reason"], "operation_denied", "{v}");
    let v = rpc(&messages, "eth_sign", json!([address, "0x00"])).json();
    assert!(v["result"].is_string(), "{v}");
    let v = rpc(&messages, "eth_accounts", json!([])).json();
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
}

/// Finding 9: typed data is allowed per domain and primaryType, each type by name; an
/// allowance (an EIP-2612 permit) under an allowed domain is refused, and there is no wildcard.
#[test]
fn typed_data_approvals_must_be_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "0x2222222222222222222222222222222222222222";
    let policy = |types: &str| {
        format!("[defaults]\nchain_ids = [1]\nrecipients = []\nmax_value_wei = \"0\"\nmax_gas = 1\nmax_fee_per_gas_wei = \"1\"\nmax_priority_fee_per_gas_wei = \"1\"\nmax_calldata_bytes = 0\ntyped_data_domains = [{{ chain_id = 1, verifying_contract = \"{token}\", primary_types = [{types}] }}]\n")
    };
    // There is no wildcard for typed data: a policy with one does not load.
    std::fs::write(d.join("policy.toml"), policy("\"*\"")).unwrap();
    let out = sw(
        &["policy", "validate", "--policy", s(&d.join("policy.toml"))],
        &[],
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no wildcard"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(d.join("policy.toml"), policy("\"Hello\"")).unwrap();
    let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    // The dev key comes from the environment of the server process.
    let port = free_port();
    let log = d.join("dev.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "serve",
            "--data-dir",
            s(&d.join("data")),
            "--http-listen-port",
            &port.to_string(),
            "--insecure-disable-auth",
            "--dev",
            "--dev-evm-key",
            "env:SW_TEST_DEV_KEY",
            "--evm-policy",
            s(&d.join("policy.toml")),
        ])
        .args(root_flag())
        .env("SW_TEST_DEV_KEY", key)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("key loading finished")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let from = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
    let typed = |primary: &str, fields: Value, message: Value| {
        json!({"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                                          {"name": "verifyingContract", "type": "address"}],
                         primary: fields},
               "primaryType": primary,
               "domain": {"name": "Token", "chainId": 1, "verifyingContract": token},
               "message": message})
    };
    let permit = typed(
        "Permit",
        json!([{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
               {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]),
        json!({"owner": from, "spender": "0x4444444444444444444444444444444444444444",
               "value": "115792089237316195423570985008687907853269984665640564039457584007913129639935", "nonce": 0, "deadline": 9999999999u64}),
    );
    let hello = typed(
        "Hello",
        json!([{"name": "text", "type": "string"}]),
        json!({"text": "hi"}),
    );
    let call = |td: &Value| {
        try_request(port, "POST", "/", &[("content-type", "application/json")],
            &serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_signTypedData_v4", "params": [from, td]})).unwrap())
            .unwrap()
            .json()
    };
    let v = call(&permit);
    assert_eq!(
        v["error"]["data"]["reason"], "typed_data_approval_not_allowed",
        "{v}"
    );
    let v = call(&hello);
    assert!(v["result"].is_string(), "{v}");
    let _ = child.kill();
    let _ = child.wait();
}

/// Finding 12: a canary hit contains the credential that asked (suspended, persisted, audited)
/// and stops nobody else, unless the operator chose to halt.
#[test]
fn a_canary_contains_the_credential_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let canary = format!("0x{}", "a1".repeat(48));
    let thief = bearer(
        d,
        &["--name", "thief", "--scope", "sign", "--keys", &pks[0]],
    );
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    let args = keystore_args(&minimal_network(d), &keys, &pw, &["--canary-key", &canary]);
    let server = Server::start_with_auth(d, &strs(&args));
    // A credential that is not even granted the canary asks for it.
    assert_eq!(
        code(&sign(&server, &thief, &canary, &randao(1))),
        (403, "canary_key".into())
    );
    assert_eq!(
        code(&sign(&server, &thief, &pks[0], &randao(2))),
        (403, "credential_suspended".into())
    );
    assert_eq!(
        sign(&server, &vc, &pks[0], &randao(3)).status,
        200,
        "nobody else is stopped"
    );
    drop(server);
    // The suspension survives a restart, and is listed.
    let server = Server::start_with_auth(d, &strs(&args));
    assert_eq!(
        code(&sign(&server, &thief, &pks[0], &randao(4))),
        (403, "credential_suspended".into())
    );
    let out = run_signward(&["token", "list"], &d.join("data"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("canary"));
    let out = run_signward(&["token", "reinstate", "thief"], &d.join("data"));
    assert!(out.status.success());
    settle();
    assert_eq!(sign(&server, &thief, &pks[0], &randao(5)).status, 200);
    stop(server);
    let records = audit_records(d);
    assert!(records
        .iter()
        .any(|r| r["decision"] == "suspended" && r["caller"] == "thief"));
    assert!(records
        .iter()
        .any(|r| r["decision"] == "reinstated" && r["caller"] == "thief"));
    assert!(!records.iter().any(|r| r["decision"] == "halted"));
}

/// Finding 13: the network pin applies to messages that are not slashable too.
#[test]
fn the_network_pin_applies_to_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    // mainnet: its genesis validators root is known from the start.
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            s(&keys),
            "--keystores-password-file",
            s(&pw),
        ],
    );
    let mut r = randao(1);
    r["fork_info"]["genesis_validators_root"] = json!(format!("0x{}", "42".repeat(32)));
    assert_eq!(
        code(&sign(&server, &vc, &pks[0], &r)),
        (412, "genesis_mismatch".into())
    );
    drop(server);
    // A config.yaml network: pinned by the first request, then every type is held to it.
    let d2 = d.join("two");
    std::fs::create_dir_all(&d2).unwrap();
    let vc = bearer(&d2, &["--name", "vc", "--scope", "sign"]);
    let server = Server::start_with_auth(
        &d2,
        &strs(&keystore_args(&minimal_network(&d2), &keys, &pw, &[])),
    );
    assert_eq!(sign(&server, &vc, &pks[0], &attestation(1, 2)).status, 200);
    assert_eq!(
        code(&sign(&server, &vc, &pks[0], &r)),
        (412, "genesis_mismatch".into())
    );
    let mut exit = example("VOLUNTARY_EXIT");
    exit.as_object_mut().unwrap().remove("signingRoot");
    exit["fork_info"]["genesis_validators_root"] = json!(format!("0x{}", "42".repeat(32)));
    let exiter = bearer(
        &d2,
        &[
            "--name",
            "exiter",
            "--scope",
            "sign",
            "--allow-op",
            "VOLUNTARY_EXIT",
        ],
    );
    settle();
    assert_eq!(
        code(&sign(&server, &exiter, &pks[0], &exit)),
        (412, "genesis_mismatch".into())
    );
}

/// Finding 15: a config file with a syntax error is named by line and column, never quoted.
#[test]
fn config_errors_never_print_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("signward.toml");
    write_secret(
        &cfg,
        b"http-listen-port = 9000\nslashing-protection-db-url = \"postgres://signer:hunter2-very-secret@db/x\" oops\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "serve",
            "--config",
            s(&cfg),
            "--data-dir",
            s(&d.join("data")),
        ])
        .args(root_flag())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(all.contains("line 2"), "{all}");
    assert!(!all.contains("hunter2"), "the password was printed: {all}");
}

/// Finding 17: every route needs a credential but /upcheck; a path in no scope group is not
/// served; the EVM path admits in the same order as eth2 (canary before sealed); an
/// out-of-range slot gives the same audit record on SQLite and PostgreSQL.
#[test]
fn routes_are_denied_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let canary_evm = "0x9999999999999999999999999999999999999999";
    let data = d.join("data");
    let (_id, _shares) = init_age(d, &data, 2, 2);
    let server = Server::start_with_auth(
        d,
        &[
            "--canary-key",
            canary_evm,
            "--canary-action",
            "alert",
            "--auth-failure-limit",
            "1000",
        ],
    );
    let pk = format!("0x{}", "a1".repeat(48));
    let routes = [
        ("POST", "/".to_string()),
        ("POST", format!("/api/v1/eth2/sign/{pk}")),
        ("GET", "/api/v1/eth2/publicKeys".into()),
        ("GET", "/healthcheck".into()),
        ("GET", "/eth/v1/keystores".into()),
        ("POST", "/eth/v1/keystores".into()),
        ("DELETE", "/eth/v1/keystores".into()),
        ("GET", "/eth/v1/remotekeys".into()),
        ("POST", "/eth/v1/remotekeys".into()),
        ("DELETE", "/eth/v1/remotekeys".into()),
        ("GET", "/api/v1/eth2/highWatermark".into()),
        ("GET", "/reload".into()),
        ("POST", "/reload".into()),
        ("GET", "/admin/v1/vault".into()),
        ("POST", "/admin/v1/vault/unseal".into()),
        ("POST", "/admin/v1/vault/unseal/reset".into()),
        ("POST", "/admin/v1/vault/seal".into()),
        ("POST", "/admin/v1/halt".into()),
        ("POST", "/admin/v1/resume".into()),
        ("GET", "/admin/v1/keys".into()),
        ("POST", "/admin/v1/keys/import".into()),
        ("POST", "/admin/v1/keys/generate".into()),
        ("DELETE", format!("/admin/v1/keys/{pk}")),
        ("POST", format!("/admin/v1/keys/{pk}/enable")),
        ("POST", format!("/admin/v1/keys/{pk}/disable")),
        ("GET", "/admin/v1/group".into()),
        ("POST", "/admin/v1/group/shares".into()),
        ("POST", "/admin/v1/group/refresh".into()),
        ("POST", "/admin/v1/group/split".into()),
    ];
    for (m, p) in &routes {
        let r = server.request(m, p, &[], b"{}");
        assert_eq!(r.status, 401, "{m} {p} without a credential");
    }
    for (m, p) in [
        ("GET", "/admin/v1/anything"),
        ("GET", "/eth/v1/anything"),
        ("GET", "/metrics"),
        ("PUT", "/admin/v1/halt"),
        ("GET", "/api/v1/eth2/sign/x/y"),
    ] {
        let r = server.request(m, p, &[], b"");
        // Not served: 404 for a path in no group, 401/405 for another method on a guarded one.
        assert!(matches!(r.status, 401 | 404 | 405), "{m} {p}: {}", r.status);
        assert!(r.status != 200);
    }
    assert_eq!(server.request("GET", "/upcheck", &[], b"").status, 200);
    // Sealed, and a canary requested: the canary is caught first, as on the eth2 path.
    let evm = bearer(
        d,
        &[
            "--name",
            "evm",
            "--scope",
            "evm,sign",
            "--keys",
            "evm:*",
            "--allow-op",
            "duties,eth_sign",
        ],
    );
    settle();
    let v = server
        .request("POST", "/", &[("authorization", &evm), ("content-type", "application/json")],
            &serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sign", "params": [canary_evm, "0x00"]})).unwrap())
        .json();
    assert_eq!(v["error"]["data"]["reason"], "canary_key", "{v}");
    let v = server
        .request("POST", "/", &[("authorization", &evm), ("content-type", "application/json")],
            &serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sign", "params": ["0x1111111111111111111111111111111111111111", "0x00"]})).unwrap())
        .json();
    assert_eq!(v["error"]["data"]["reason"], "sealed", "{v}");
}

fn out_of_range_record(d: &Path, extra: &[String]) -> Value {
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    let mut args = keystore_args(
        &minimal_network(d),
        &keys,
        &pw,
        &["--slashing-protection-disable-clock-check"],
    );
    args.extend(extra.iter().cloned());
    let server = Server::start_with_auth(d, &strs(&args));
    let mut block = example("BLOCK_V2 (PHASE 0)");
    block.as_object_mut().unwrap().remove("signingRoot");
    block["beacon_block"]["block"]["slot"] = json!(u64::MAX.to_string());
    assert_eq!(
        code(&sign(&server, &vc, &pks[0], &block)),
        (412, "too_far_in_future".into())
    );
    stop(server);
    audit_records(d)
        .into_iter()
        .find(|r| r["event"] == "sign")
        .unwrap()
}

#[test]
fn an_out_of_range_slot_is_audited_alike_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let on_sqlite = out_of_range_record(&dir.path().join("sqlite"), &[]);
    let strip = |mut v: Value| {
        for k in ["time_ms", "latency_us", "request_id", "seq", "log"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(on_sqlite["decision"], "refused");
    assert_eq!(on_sqlite["reason"], "too_far_in_future");
    let Some(admin) = pg_admin() else { return };
    let (url, name) = pg_create(&admin, "range");
    let on_pg = out_of_range_record(
        &dir.path().join("pg"),
        &["--slashing-protection-db-url".into(), url],
    );
    assert_eq!(strip(on_sqlite), strip(on_pg));
    pg_drop(&admin, &name);
}

/// The barrage: thousands of malformed requests of every type (mutated bodies, deep nesting,
/// huge numbers, wrong types, slow bodies, many connections) while a validator client keeps
/// signing: it never fails, nothing answers 5xx, and memory stays bounded.
#[test]
fn barrage_of_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let vc = bearer(
        d,
        &[
            "--name",
            "vc",
            "--scope",
            "sign,evm",
            "--keys",
            "evm:*",
            "--allow-op",
            "duties,eth_sign,eth_signTransaction,eth_signTypedData",
        ],
    );
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(&minimal_network(d), &keys, &pw, &[])),
    );
    let pid = server.child.id();
    let port = server.port;
    let pk = pks[0].clone();
    let rss_before = rss_kib(pid);
    // The validator client, signing all along.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good = {
        let (stop_flag, vc, pk) = (stop_flag.clone(), vc.clone(), pk.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let r = try_request(
                    port,
                    "POST",
                    &format!("/api/v1/eth2/sign/{pk}"),
                    &[("authorization", &vc), ("content-type", "application/json")],
                    &serde_json::to_vec(&randao(n)).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    r.status,
                    200,
                    "valid request {n} failed during the barrage: {}",
                    r.text()
                );
            }
            n
        })
    };
    // Slow bodies on a few connections, trickling bytes past the request deadline.
    let slow: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let _ = s.write_all(b"POST /api/v1/eth2/sign/0x00 HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{");
                for _ in 0..30 {
                    if s.write_all(b" ").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(400));
                }
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                buf
            })
        })
        .collect();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let sign_path = format!("/api/v1/eth2/sign/{pk}");
    for c in examples() {
        let req = c["request"].clone();
        let text = serde_json::to_string(&req).unwrap();
        // Truncations, byte flips and type confusions of every real body.
        for cut in [1, 7, text.len() / 3, text.len() / 2, text.len() - 1] {
            bodies.push((sign_path.clone(), text.as_bytes()[..cut].to_vec()));
        }
        for i in (0..text.len()).step_by((text.len() / 12).max(1)) {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x5a;
            bodies.push((sign_path.clone(), b));
        }
        for (k, v) in req.as_object().unwrap() {
            for bad in [
                json!(null),
                json!(1e308),
                json!("0x"),
                json!([]),
                json!({"x": 1}),
                json!("1".repeat(400)),
                json!(u128::MAX.to_string()),
                json!(-1),
                json!(format!("0x{}", "f".repeat(10_000))),
            ] {
                let mut r = req.clone();
                r[k] = bad.clone();
                bodies.push((sign_path.clone(), serde_json::to_vec(&r).unwrap()));
                if let Some(obj) = v.as_object() {
                    for inner in obj.keys() {
                        let mut r = req.clone();
                        r[k][inner] = bad.clone();
                        bodies.push((sign_path.clone(), serde_json::to_vec(&r).unwrap()));
                    }
                }
            }
        }
    }
    // Deep nesting, huge numbers, JSON-RPC abuse.
    bodies.push((
        sign_path.clone(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
    ));
    bodies.push((
        sign_path.clone(),
        format!(
            "{{\"type\":\"RANDAO_REVEAL\",\"randao_reveal\":{{\"epoch\":{}}}}}",
            "9".repeat(5000)
        )
        .into_bytes(),
    ));
    bodies.push((
        "/".into(),
        format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes(),
    ));
    for m in [
        "eth_signTransaction",
        "eth_sign",
        "personal_sign",
        "eth_signTypedData_v4",
        "eth_accounts",
    ] {
        for p in [
            json!(null),
            json!([]),
            json!([1e308]),
            json!(["0x", "0x"]),
            json!([{"from": "0x", "value": -1}]),
            json!([{"from": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "value": "1".repeat(1000), "gas": []}]),
            json!(["0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", {"types": {"A": [{"name": "a", "type": "A"}]}, "primaryType": "A", "domain": {}, "message": {"a": {}}}]),
            json!([{"x": "[".repeat(1000)}]),
        ] {
            bodies.push((
                "/".into(),
                serde_json::to_vec(
                    &json!({"jsonrpc": "2.0", "id": [1, {}], "method": m, "params": p}),
                )
                .unwrap(),
            ));
        }
    }
    bodies.push(("/".into(), b"[{\"jsonrpc\":\"2.0\"}]".to_vec()));
    assert!(bodies.len() > 2000, "{} malformed requests", bodies.len());
    // Sent from several connections at once.
    let chunks: Vec<Vec<(String, Vec<u8>)>> = bodies
        .chunks(bodies.len() / 6 + 1)
        .map(|c| c.to_vec())
        .collect();
    let senders: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let vc = vc.clone();
            std::thread::spawn(move || {
                let mut statuses = std::collections::BTreeMap::new();
                for (path, body) in chunk {
                    let r = try_request(
                        port,
                        "POST",
                        &path,
                        &[("authorization", &vc), ("content-type", "application/json")],
                        &body,
                    )
                    .expect("the server answers");
                    assert!(
                        r.status < 500,
                        "{} for a malformed request to {path}: {}",
                        r.status,
                        r.text()
                    );
                    *statuses.entry(r.status).or_insert(0u32) += 1;
                }
                statuses
            })
        })
        .collect();
    let mut all = std::collections::BTreeMap::new();
    for s in senders {
        for (k, v) in s.join().unwrap() {
            *all.entry(k).or_insert(0) += v;
        }
    }
    for s in slow {
        let answer = String::from_utf8_lossy(&s.join().unwrap()).into_owned();
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let signed = good.join().unwrap();
    let rss_after = rss_kib(pid);
    eprintln!("barrage: {} malformed requests ({all:?}); {signed} valid signatures meanwhile; RSS {rss_before} → {rss_after} KiB", bodies.len());
    assert!(signed > 20);
    assert!(
        rss_after < rss_before + 100_000,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(sign(&server, &vc, &pk, &randao(1 << 20)).status, 200);
}

/// Review findings on key management: a Keymanager credential restricted to some keys lists,
/// imports and deletes only those; a keystore the vault holds (disabled) is a duplicate whose
/// history is not imported; an admin delete of a key this vault does not hold is a 404 that
/// changes nothing.
#[test]
fn key_management_respects_key_grants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (id, shares) = init_age(d, &data, 2, 2);
    let mut args = vec!["--network".to_string(), s(&minimal_network(d)).into()];
    args.extend(unattended(&id, &shares));
    let server = Server::start_with_auth(d, &strs(&args));
    let (ks, pks) = keystores_with_pubkeys(d, 3);
    let pk = |i: usize| pks[i].clone();
    let km = bearer(d, &["--name", "km", "--scope", "keymanager"]);
    let km_a = bearer(
        d,
        &["--name", "km-a", "--scope", "keymanager", "--keys", &pk(0)],
    );
    let vc = bearer(d, &["--name", "vc", "--scope", "sign"]);
    let admin = Admin::new(d, &server);
    let km_call = |auth: &str, method: &str, body: Value| {
        server.request(
            method,
            "/eth/v1/keystores",
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
            ],
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let r = km_call(
        &km,
        "POST",
        json!({"keystores": [ks[0], ks[1]], "passwords": ["keystore password", "keystore password"]}),
    );
    assert_eq!(r.json()["data"][0]["status"], "imported", "{}", r.text());
    // The restricted credential sees, deletes and imports its key only.
    let listed = km_call(&km_a, "GET", json!(null)).json();
    let listed: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["validating_pubkey"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![pk(0).as_str()]);
    let r = km_call(&km_a, "DELETE", json!({"pubkeys": [pk(1)]})).json();
    assert_eq!(r["data"][0]["status"], "error", "{r}");
    assert_eq!(
        sign(&server, &vc, &pk(1), &randao(1)).status,
        200,
        "the other key still signs"
    );
    let r = km_call(
        &km_a,
        "POST",
        json!({"keystores": [ks[2]], "passwords": ["keystore password"]}),
    )
    .json();
    assert_eq!(r["data"][0]["status"], "error", "{r}");
    assert_eq!(
        code(&sign(&server, &vc, &pk(2), &randao(1))),
        (404, "unknown_key".into())
    );
    // A key the vault holds, disabled: importing it again is a duplicate, its history ignored.
    sw_ok(&admin.args(&["keys", "disable", &pk(1)]), &[]);
    let history = json!({"metadata": {"interchange_format_version": "5", "genesis_validators_root": gvr()},
                         "data": [{"pubkey": pk(1), "signed_blocks": [], "signed_attestations": [{"source_epoch": "99", "target_epoch": "100"}]}]});
    let r = km_call(&km, "POST", json!({"keystores": [ks[1]], "passwords": ["keystore password"], "slashing_protection": history.to_string()})).json();
    assert_eq!(r["data"][0]["status"], "duplicate", "{r}");
    sw_ok(&admin.args(&["keys", "enable", &pk(1)]), &[]);
    assert_eq!(
        sign(&server, &vc, &pk(1), &attestation(3, 4)).status,
        200,
        "no history was imported for it"
    );
    // An admin delete of a key this vault does not hold: 404, and nothing is disabled.
    let other = format!("0x{}", "b2".repeat(48));
    let imported = format!(
        "{{\"metadata\":{{\"interchange_format_version\":\"5\",\"genesis_validators_root\":\"{}\"}},\"data\":[{{\"pubkey\":\"{other}\",\"signed_blocks\":[{{\"slot\":\"5\"}}],\"signed_attestations\":[]}}]}}",
        gvr()
    );
    std::fs::write(d.join("other.json"), imported).unwrap();
    let out = run_signward(
        &["slashing", "import", "--file", s(&d.join("other.json"))],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out_file = d.join("other-history.json");
    let out = sw(
        &admin.args(&["keys", "delete", &other, "--slashing-out", s(&out_file)]),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key_not_found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_signward(&["slashing", "disabled"], &data);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
