//! The EVM signer through the real binary: JSON-RPC methods signed for what the policy allows and
//! refused, with a reason code, for what it does not (each rule just inside and just outside);
//! eth-account recovers and re-derives every signature and web3.py uses the endpoint unchanged;
//! spend windows under concurrent requests on one instance and on two sharing PostgreSQL; dev mode;
//! EVM keys generated in the vault; `policy check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const FRIEND: &str = "0x3333333333333333333333333333333333333333";
const DEX: &str = "0x2222222222222222222222222222222222222222";
const STRANGER: &str = "0x4444444444444444444444444444444444444444";
const MAIL: &str = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC";

fn policy(extra: &str) -> String {
    format!(
        r#"
[defaults]
chain_ids = [1, 10]
recipients = ["{FRIEND}", "{DEX}"]
max_value_wei = "1000000000000000000"
max_gas = 100000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_calldata_bytes = 68
allow_personal_sign = true
contracts = [{{ address = "{DEX}", selectors = ["0xa9059cbb"] }}]
typed_data_domains = [{{ chain_id = 1, verifying_contract = "{MAIL}", primary_types = ["Mail"] }}]
{extra}

[tokens.bot]
chain_ids = [1]
recipients = ["*"]
max_value_wei = "1000000000000000000"
max_gas = 100000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_calldata_bytes = 68
require_intent = true
contracts = [{{ address = "{DEX}", selectors = ["0xa9059cbb"] }}]
"#
    )
}

fn wallet() -> (PathBuf, String, String) {
    let dir = vectors().join("v3keystore/web3signer");
    let exp: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    (
        dir.join("wallet.json"),
        exp["private_key"].as_str().unwrap().to_string(),
        exp["address"].as_str().unwrap().to_string(),
    )
}

fn typed_data() -> Value {
    json!({
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
                  "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
                  "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}]},
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 1, "verifyingContract": MAIL},
        "message": {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                    "contents": "Hello, Bob!"}
    })
}

fn rpc(server: &Server, token: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let r = server.request(
        "POST",
        "/",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0");
    v
}

fn reason(v: &Value) -> &str {
    v["error"]["data"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

fn transfer_calldata(to: &str, amount: u64) -> String {
    format!("0xa9059cbb{:0>64}{:064x}", &to[2..], amount)
}

fn tx(from: &str, over: Value) -> Value {
    let mut t = json!({"from": from, "to": FRIEND, "value": "0x1", "gas": "0x5208", "maxFeePerGas": "0x174876e800",
                       "maxPriorityFeePerGas": "0x77359400", "nonce": "0x0", "chainId": "0x1"});
    for (k, v) in over.as_object().unwrap() {
        if v.is_null() {
            t.as_object_mut().unwrap().remove(k);
        } else {
            t[k] = v.clone();
        }
    }
    t
}

#[test]
fn json_rpc_signs_what_the_policy_allows_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (wallet, private_key, address) = wallet();
    std::fs::create_dir_all(d.join("evm")).unwrap();
    std::fs::copy(&wallet, d.join("evm/wallet.json")).unwrap();
    owner_only(&d.join("evm/wallet.json"));
    write_secret(&d.join("evm.pass"), b"pass\n");
    std::fs::write(d.join("policy.toml"), policy("")).unwrap();
    // EVM keys and methods are granted explicitly.
    let evm = [
        "--keys",
        "evm:*",
        "--allow-op",
        "eth_signTransaction,eth_sign,eth_signTypedData",
    ];
    // ops asks for geth's `{raw, tx}` result shape (web3.py's sign_transaction needs it); bot
    // gets the default, the raw transaction as hex (the spec's, ethers', viem's and alloy's).
    let ops = credential(
        d,
        &[
            &["--name", "ops", "--scope", "evm", "--evm-tx-result", "geth"][..],
            &evm,
        ]
        .concat(),
    );
    let bot = credential(
        d,
        &[&["--name", "bot", "--scope", "evm"][..], &evm].concat(),
    );
    let viewer = credential(d, &["--name", "viewer", "--scope", "public_keys"]);
    let net = minimal_network(d);
    let server = Server::start_with_auth(
        d,
        &[
            "--network",
            net.to_str().unwrap(),
            "--evm-keyfiles-path",
            d.join("evm").to_str().unwrap(),
            "--evm-keyfiles-password-file",
            d.join("evm.pass").to_str().unwrap(),
            "--evm-policy",
            d.join("policy.toml").to_str().unwrap(),
        ],
    );
    let accounts = rpc(&server, &ops, "eth_accounts", json!([]));
    assert_eq!(accounts["result"].as_array().unwrap().len(), 1);
    assert_eq!(
        accounts["result"][0].as_str().unwrap().to_lowercase(),
        address
    );

    // Allowed: every transaction type, exactly at the limits, and both message kinds.
    let mut cases = Vec::new();
    let allowed = [
        (
            "legacy",
            tx(
                &address,
                json!({"maxFeePerGas": null, "maxPriorityFeePerGas": null, "gasPrice": "0x174876e800", "nonce": "0x3"}),
            ),
        ),
        (
            "eip2930",
            tx(
                &address,
                json!({"maxFeePerGas": null, "maxPriorityFeePerGas": null, "gasPrice": "0x3b9aca00", "chainId": "0xa",
            "accessList": [{"address": DEX, "storageKeys": [format!("0x{}", "01".repeat(32))]}]}),
            ),
        ),
        (
            "eip1559 at every cap",
            tx(
                &address,
                json!({"value": "0xde0b6b3a7640000", "gas": "0x186a0"}),
            ),
        ),
        (
            "erc20 transfer",
            tx(
                &address,
                json!({"to": DEX, "value": "0x0", "gas": "0xea60", "data": transfer_calldata(FRIEND, 10)}),
            ),
        ),
    ];
    for (name, t) in &allowed {
        let v = rpc(&server, &ops, "eth_signTransaction", json!([t]));
        let raw = v["result"]["raw"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {v}"));
        assert_eq!(v["result"]["tx"]["from"].as_str().unwrap(), address);
        cases.push(json!({"name": name, "kind": "tx", "request": t, "raw": raw}));
    }
    let v = rpc(
        &server,
        &ops,
        "eth_sign",
        json!([address, "0x7369676e77617264"]),
    );
    cases.push(json!({"name": "eth_sign", "kind": "personal", "message": "0x7369676e77617264", "signature": v["result"]}));
    let v = rpc(
        &server,
        &ops,
        "personal_sign",
        json!(["hello signward", address]),
    );
    cases.push(json!({"name": "personal_sign text", "kind": "personal", "message": format!("0x{}", hex::encode("hello signward")), "signature": v["result"]}));
    for method in ["eth_signTypedData_v4", "eth_signTypedData"] {
        let v = rpc(&server, &ops, method, json!([address, typed_data()]));
        cases.push(json!({"name": method, "kind": "typed", "typed_data": typed_data(), "signature": v["result"]}));
    }
    let v = rpc(
        &server,
        &ops,
        "eth_signTypedData_v4",
        json!([address, typed_data().to_string()]),
    );
    cases.push(json!({"name": "typed data as a string", "kind": "typed", "typed_data": typed_data(), "signature": v["result"]}));
    if let Some(py) = python() {
        let (ok, out) = run_python(
            &py,
            "verify_evm.py",
            &[],
            &json!({"private_key": private_key, "address": address, "cases": cases}),
        );
        assert!(ok, "eth-account disagrees: {out}");
        assert_eq!(out["results"].as_array().unwrap().len(), cases.len());
    }

    // Refused: each rule just outside its limit, with its reason code and the rule set named.
    let outside = [
        (
            "value_too_high",
            tx(&address, json!({"value": "0xde0b6b3a7640001"})),
        ),
        (
            "recipient_not_allowed",
            tx(&address, json!({"to": STRANGER})),
        ),
        (
            "chain_id_not_allowed",
            tx(&address, json!({"chainId": "0x5"})),
        ),
        ("gas_too_high", tx(&address, json!({"gas": "0x186a1"}))),
        (
            "max_fee_too_high",
            tx(&address, json!({"maxFeePerGas": "0x174876e801"})),
        ),
        (
            "priority_fee_too_high",
            tx(
                &address,
                json!({"maxPriorityFeePerGas": "0x77359401", "maxFeePerGas": "0x174876e800"}),
            ),
        ),
        (
            "gas_price_too_high",
            tx(
                &address,
                json!({"maxFeePerGas": null, "maxPriorityFeePerGas": null, "gasPrice": "0x174876e801"}),
            ),
        ),
        (
            "selector_not_allowed",
            tx(
                &address,
                json!({"to": DEX, "value": "0x0", "data": "0xdeadbeef"}),
            ),
        ),
        (
            "selector_not_allowed",
            tx(
                &address,
                json!({"to": FRIEND, "value": "0x0", "data": transfer_calldata(FRIEND, 1)}),
            ),
        ),
        (
            "calldata_too_large",
            tx(
                &address,
                json!({"to": DEX, "value": "0x0", "data": format!("{}00", transfer_calldata(FRIEND, 1))}),
            ),
        ),
        (
            "contract_creation_not_allowed",
            tx(&address, json!({"to": null, "data": "0x6000"})),
        ),
    ];
    for (want, t) in &outside {
        let v = rpc(&server, &ops, "eth_signTransaction", json!([t]));
        assert_eq!(reason(&v), *want, "{v}");
        assert_eq!(v["error"]["code"], -32003);
        assert_eq!(v["error"]["data"]["rule_source"], "defaults");
        // The rule is in the message too, which is all ethers and viem show.
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("refused by policy") && message.contains(want),
            "{v}"
        );
    }
    let mut other_domain = typed_data();
    other_domain["domain"]["chainId"] = json!(10);
    assert_eq!(
        reason(&rpc(
            &server,
            &ops,
            "eth_signTypedData_v4",
            json!([address, other_domain])
        )),
        "typed_data_domain_not_allowed"
    );

    // The bot credential's own rules apply too: intent is required and must match.
    let plain = tx(&address, json!({}));
    let v = rpc(&server, &bot, "eth_signTransaction", json!([plain]));
    assert_eq!(
        (reason(&v), v["error"]["data"]["rule_source"].as_str()),
        ("intent_required", Some("token bot"))
    );
    let intent =
        json!({"action": "transfer", "recipient": FRIEND, "max_value_wei": "1", "chain_id": 1});
    assert!(rpc(
        &server,
        &bot,
        "eth_signTransaction",
        json!([plain, {"intent": intent}])
    )["result"]
        .as_str()
        .is_some_and(|r| r.starts_with("0x02")));
    let mut embedded = plain.clone();
    embedded["intent"] = intent.clone();
    assert!(rpc(&server, &bot, "eth_signTransaction", json!([embedded]))["result"].is_string());
    let lying = json!({"action": "transfer", "recipient": DEX, "max_value_wei": "1"});
    assert_eq!(
        reason(&rpc(
            &server,
            &bot,
            "eth_signTransaction",
            json!([plain, {"intent": lying}])
        )),
        "intent_mismatch"
    );
    let erc = tx(
        &address,
        json!({"to": DEX, "value": "0x0", "data": transfer_calldata(FRIEND, 11)}),
    );
    let erc_intent =
        json!({"action": "erc20_transfer", "token": DEX, "recipient": FRIEND, "max_amount": "10"});
    assert_eq!(
        reason(&rpc(
            &server,
            &bot,
            "eth_signTransaction",
            json!([erc, {"intent": erc_intent}])
        )),
        "intent_mismatch"
    );
    assert_eq!(
        reason(&rpc(
            &server,
            &bot,
            "personal_sign",
            json!(["0x00", address])
        )),
        "message_signing_not_allowed"
    );

    // Protocol errors: stable codes.
    let unknown = tx(STRANGER, json!({}));
    assert_eq!(
        reason(&rpc(&server, &ops, "eth_signTransaction", json!([unknown]))),
        "unknown_account"
    );
    // Without an upstream node there is nothing to send through: EIP-1474's "method not
    // supported", with the reason in the message (ethers and viem show only the message).
    let e = &rpc(
        &server,
        &ops,
        "eth_sendTransaction",
        json!([{"from": address, "to": FRIEND, "value": "0x1"}]),
    )["error"];
    assert_eq!(e["code"], -32004, "{e}");
    assert_eq!(e["data"]["reason"], "method_not_supported");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("--evm-upstream-url"),
        "{e}"
    );
    assert_eq!(
        rpc(&server, &ops, "eth_chainId", json!([]))["error"]["code"],
        -32004
    );
    assert_eq!(
        rpc(&server, &ops, "evm_mine", json!([]))["error"]["code"],
        -32601
    );
    assert_eq!(
        reason(&rpc(
            &server,
            &ops,
            "eth_signTransaction",
            json!([tx(&address, json!({"chainId": null}))])
        )),
        "invalid_params"
    );
    assert_eq!(
        reason(&rpc(
            &server,
            &ops,
            "eth_signTransaction",
            json!([tx(&address, json!({"maxFeePerBlobGas": "0x1"}))])
        )),
        "invalid_params"
    );
    let auth = format!("Bearer {ops}");
    let r = server.request("POST", "/", &[("authorization", &auth)], b"{not json");
    assert_eq!(r.json()["error"]["code"], -32700);
    let r = server.request("POST", "/", &[("authorization", &auth)], b"[]");
    assert_eq!(r.json()["error"]["code"], -32600);
    let r = server.request(
        "POST",
        "/",
        &[("authorization", &format!("Bearer {viewer}"))],
        b"{}",
    );
    assert_eq!(r.status, 403);
    let r = server.request("POST", "/", &[], b"{}");
    assert_eq!(r.status, 401);

    // web3.py, unchanged, against the endpoint.
    if let Some(py) = python() {
        let (ok, out) = run_python(
            &py,
            "web3_client.py",
            &[&format!("http://127.0.0.1:{}/", server.port), &ops],
            &json!({"to": FRIEND, "typed_data": typed_data()}),
        );
        assert!(ok, "web3.py could not use the endpoint: {out}");
    }

    // Every decision is audited with the rule that decided it; the key never appears anywhere.
    let audit = String::from_utf8_lossy(&run_signward(&["audit", "query"], &d.join("data")).stdout)
        .into_owned();
    for needle in [
        "\"value_too_high\"",
        "\"intent_required\"",
        "\"selector_not_allowed\"",
        "\"eth_signTransaction\"",
    ] {
        assert!(audit.contains(needle), "audit lacks {needle}");
    }
    assert!(audit.contains("\"decision\":\"signed\"") && audit.contains("\"event\":\"evm\""));
    let secret = private_key.trim_start_matches("0x");
    assert!(!server.log_text().contains(secret) && !audit.contains(secret));

    // `policy check` explains the same decisions offline.
    let check = |params: Value, extra: &[&str]| {
        let req = d.join("req.json");
        std::fs::write(
            &req,
            json!({"jsonrpc": "2.0", "id": 1, "method": "eth_signTransaction", "params": params})
                .to_string(),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_signward"))
            .args([
                "policy",
                "check",
                "--policy",
                d.join("policy.toml").to_str().unwrap(),
                "--request",
                req.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check(json!([outside[0].1]), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL  value_too_high")
            && text.contains("decision: refused (value_too_high from defaults)"),
        "{text}"
    );
    let (code, text) = check(json!([plain, {"intent": intent}]), &["--token", "bot"]);
    assert_eq!(code, Some(0), "{text}");
    let bad = d.join("bad.toml");
    std::fs::write(&bad, policy("").replace("max_gas = 100000\n", "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["policy", "validate", "--policy", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_gas"));
}

const DEV_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn dev_server(d: &Path, extra: &[&str]) -> Server {
    let mut child_env_args = vec![
        "--dev",
        "--dev-evm-key",
        "env:SIGNWARD_TEST_DEV_KEY",
        "--evm-policy",
        d.join("policy.toml").to_str().unwrap().to_string().leak(),
    ];
    child_env_args.extend_from_slice(extra);
    std::env::set_var("SIGNWARD_TEST_DEV_KEY", DEV_KEY);
    Server::start(d, &child_env_args)
}

fn dev_address() -> String {
    let k = signward_evm::EvmKey::from_secret_bytes(&hex::decode(&DEV_KEY[2..]).unwrap()).unwrap();
    format!("{:#x}", k.address())
}

/// `n` concurrent transfers of 1,000 wei, each its own nonce from `first`, against a 10,000 wei
/// window: exactly 10 are signed. (Repeating a nonce would be a replacement, counted once.)
fn window_burst(servers: &[&Server], n: usize, first: usize) -> (usize, usize) {
    let from = dev_address();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (from, port, signed, refused) = (from.clone(), ports[i % ports.len()], signed.clone(), refused.clone());
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "eth_signTransaction", "params": [tx(&from, json!({"value": "0x3e8", "nonce": format!("{:#x}", first + i)}))]});
                let r = try_request(port, "POST", "/", &[("content-type", "application/json")], &serde_json::to_vec(&body).unwrap()).unwrap();
                let v = r.json();
                if v["result"].is_string() {
                    signed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else {
                    assert_eq!(v["error"]["data"]["reason"], "spend_window_value_exceeded", "{v}");
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (
        signed.load(std::sync::atomic::Ordering::SeqCst),
        refused.load(std::sync::atomic::Ordering::SeqCst),
    )
}

const WINDOW: &str =
    r#"spend_window = { window_secs = 3600, max_total_wei = "10000", max_count = 1000 }"#;

#[test]
fn spend_window_under_concurrency_dev_mode_and_vault_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("policy.toml"), policy(WINDOW)).unwrap();
    // A raw key from the environment is refused without --dev.
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "serve",
            "--data-dir",
            d.join("x").to_str().unwrap(),
            "--dev-evm-key",
            "env:SIGNWARD_TEST_DEV_KEY",
            "--http-listen-port",
            &free_port().to_string(),
        ])
        .env("SIGNWARD_TEST_DEV_KEY", DEV_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused without --dev"));

    let server = dev_server(d, &[]);
    assert!(server.log_text().contains("DEV MODE"));
    let health = server.request("GET", "/healthcheck", &[], b"").json();
    let evm = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "evm-check")
        .unwrap()
        .clone();
    assert_eq!(
        (evm["status"].as_str(), evm["data"]["dev-mode"].as_bool()),
        (Some("UNSAFE"), Some(true))
    );
    assert_eq!(window_burst(&[&server], 40, 0), (10, 30));
    // The window survives a restart: it is in the ledger, not in memory.
    drop(server);
    let server = dev_server(d, &[]);
    assert_eq!(window_burst(&[&server], 3, 100), (0, 3));
    drop(server);
}

#[test]
fn spend_window_holds_across_two_instances_sharing_postgres() {
    let Some(admin) = pg_admin() else { return };
    let (url, name) = pg_create(&admin, "evm_window");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("policy.toml"), policy(WINDOW)).unwrap();
    let a = dev_server(d, &["--slashing-protection-db-url", &url]);
    let b = dev_server(d, &["--slashing-protection-db-url", &url]);
    let (signed, refused) = window_burst(&[&a, &b], 40, 0);
    assert_eq!(
        (signed, refused),
        (10, 30),
        "two instances share one window"
    );
    drop(a);
    drop(b);
    pg_drop(&admin, &name);
}

#[test]
fn evm_keys_generated_in_the_vault_sign_and_follow_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let id = age::x25519::Identity::generate();
    {
        use secrecy::ExposeSecret;
        write_secret(
            &d.join("id.key"),
            format!("{}\n", id.to_string().expose_secret()).as_bytes(),
        );
    }
    let r = id.to_public().to_string();
    let out = run_signward(
        &[
            "init",
            "--out",
            d.join("shares").to_str().unwrap(),
            "--shares",
            "2",
            "--threshold",
            "2",
            "--share-to",
            &r,
            "--share-to",
            &r,
        ],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shares: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(d.join("policy.toml"), policy("")).unwrap();
    let server = Server::start_with_auth(
        d,
        &[
            "--unseal-shares-from",
            &shares[0],
            "--unseal-shares-from",
            &shares[1],
            "--identity",
            d.join("id.key").to_str().unwrap(),
            "--evm-policy",
            d.join("policy.toml").to_str().unwrap(),
        ],
    );
    let admin = credential(
        d,
        &[
            "--name",
            "ops",
            "--scope",
            "admin,evm",
            "--keys",
            "evm:*",
            "--allow-op",
            "eth_signTransaction,eth_sign,eth_signTypedData",
        ],
    );
    write_secret(&d.join("ops.token"), admin.as_bytes());
    std::thread::sleep(Duration::from_millis(1200));
    let url = format!("http://127.0.0.1:{}", server.port);
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "keys",
            "generate",
            "--type",
            "secp256k1",
            "--count",
            "2",
            "--url",
            &url,
            "--token-file",
            d.join("ops.token").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addrs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let accounts = rpc(&server, &admin, "eth_accounts", json!([]));
    let listed: Vec<String> = accounts["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_lowercase())
        .collect();
    for a in &addrs {
        assert!(listed.contains(a), "{a} not in {listed:?}");
    }
    let v = rpc(
        &server,
        &admin,
        "eth_signTransaction",
        json!([tx(&addrs[0], json!({}))]),
    );
    let raw = hex::decode(v["result"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    {
        use alloy_consensus::transaction::SignerRecoverable;
        use alloy_eips::eip2718::Decodable2718;
        let env = alloy_consensus::TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        assert_eq!(format!("{:#x}", env.recover_signer().unwrap()), addrs[0]);
    }
    // A V3 keyfile imported into the vault signs too.
    let (wallet_file, _, wallet_addr) = wallet();
    std::fs::create_dir_all(d.join("v3")).unwrap();
    std::fs::copy(&wallet_file, d.join("v3/wallet.json")).unwrap();
    write_secret(&d.join("v3.pass"), b"pass");
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "keys",
            "import",
            "--keystores-path",
            d.join("v3").to_str().unwrap(),
            "--keystores-password-file",
            d.join("v3.pass").to_str().unwrap(),
            "--url",
            &url,
            "--token-file",
            d.join("ops.token").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 imported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = rpc(&server, &admin, "eth_sign", json!([wallet_addr, "0x01"]));
    assert!(v["result"].is_string(), "{v}");

    // Disable, then seal: the key stops signing each time.
    let token_file = d.join("ops.token");
    let ctl = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &url, "--token-file", token_file.to_str().unwrap()]);
        let o = Command::new(env!("CARGO_BIN_EXE_signward"))
            .args(&all)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ctl(&["keys", "disable", &addrs[1]]);
    assert_eq!(
        reason(&rpc(&server, &admin, "eth_sign", json!([addrs[1], "0x00"]))),
        "unknown_account"
    );
    ctl(&["seal"]);
    assert_eq!(
        reason(&rpc(
            &server,
            &admin,
            "eth_signTransaction",
            json!([tx(&addrs[0], json!({}))])
        )),
        "sealed"
    );
}

#[test]
fn json_rpc_batches_answer_each_request_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("policy.toml"), policy("")).unwrap();
    let server = dev_server(d, &[]);
    let from = dev_address();
    let post = |body: &Value| {
        server.request(
            "POST",
            "/",
            &[("content-type", "application/json")],
            &serde_json::to_vec(body).unwrap(),
        )
    };
    // eth_accounts, a signature, an unknown method, an element that is not a request, a
    // notification (signed and audited, but not answered), and a refusal: answered in order.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"},
        {"jsonrpc": "2.0", "id": "two", "method": "personal_sign", "params": ["0x68656c6c6f", from]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainIdNope"},
        42,
        {"jsonrpc": "2.0", "method": "personal_sign", "params": ["0x68656c6c6f", from]},
        {"jsonrpc": "2.0", "id": 6, "method": "eth_signTransaction", "params": [tx(&from, json!({"to": STRANGER}))]}
    ]);
    let r = post(&batch);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("not a batch answer: {v}"));
    assert_eq!(a.len(), 5, "{v}");
    assert_eq!(a[0]["id"], 1);
    assert_eq!(a[0]["result"][0].as_str().unwrap().to_lowercase(), from);
    assert_eq!(a[1]["id"], "two");
    let sig = a[1]["result"].as_str().unwrap();
    assert_eq!(sig.len(), 2 + 130, "{sig}");
    assert_eq!(a[2]["id"], 3);
    assert_eq!(reason(&a[2]), "method_not_found");
    assert_eq!(a[3]["id"], Value::Null);
    assert_eq!(reason(&a[3]), "invalid_request");
    assert_eq!(a[4]["id"], 6);
    assert_eq!(reason(&a[4]), "recipient_not_allowed");
    // The same signature as the single request gives.
    let single = rpc(&server, "", "personal_sign", json!(["0x68656c6c6f", from]));
    assert_eq!(single["result"], a[1]["result"]);
    // An empty batch is one invalid request; only notifications get no answer at all.
    let v = post(&json!([])).json();
    assert_eq!(reason(&v), "invalid_request");
    assert_eq!(v["id"], Value::Null);
    let r = post(&json!([{"jsonrpc": "2.0", "method": "eth_accounts"}]));
    assert_eq!(r.status, 204, "{}", r.text());
    // A batch past the bound is refused whole: nothing in it is signed.
    let big: Vec<Value> = (0..=100)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "personal_sign", "params": ["0x00", from]}))
        .collect();
    let v = post(&Value::Array(big)).json();
    assert_eq!(reason(&v), "batch_too_large");
}

const TOKEN: &str = "0x5555555555555555555555555555555555555555";
const TOKEN2: &str = "0x6666666666666666666666666666666666666666";

/// Token windows (100 base units a day on each of two tokens; ERC-20 transfers to FRIEND).
fn token_windows() -> String {
    policy(&format!(
        r#"erc20 = [
  {{ token = "{TOKEN}", transfer_to = ["{FRIEND}"], window = {{ window_secs = 86400, max_total = "100", max_count = 1000 }} }},
  {{ token = "{TOKEN2}", transfer_to = ["{FRIEND}"], window = {{ window_secs = 86400, max_total = "100", max_count = 1000 }} }},
]"#
    ))
}

fn token_transfer(port: u16, token: &str, amount: u64, nonce: u64, fee: u64) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": nonce, "method": "eth_signTransaction", "params": [tx(&dev_address(), json!({
        "to": token, "value": "0x0", "gas": "0xfde8", "nonce": format!("{nonce:#x}"),
        "maxFeePerGas": format!("{fee:#x}"), "data": transfer_calldata(FRIEND, amount)}))]});
    try_request(
        port,
        "POST",
        "/",
        &[("content-type", "application/json")],
        &serde_json::to_vec(&body).unwrap(),
    )
    .unwrap()
    .json()
}

/// 20 concurrent transfers of 10 units of TOKEN2, distinct nonces, spread over `servers`:
/// exactly 10 fit the 100-unit window.
fn token_burst(servers: &[&Server], first: u64) -> usize {
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let threads: Vec<_> = (0..20u64)
        .map(|i| {
            let port = ports[i as usize % ports.len()];
            std::thread::spawn(move || {
                let v = token_transfer(port, TOKEN2, 10, first + i, 10_000_000_000);
                if v["result"].is_string() {
                    1
                } else {
                    assert_eq!(
                        v["error"]["data"]["reason"], "spend_window_value_exceeded",
                        "{v}"
                    );
                    0
                }
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

#[test]
fn token_windows_count_transfers_once_per_nonce_and_hold_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("policy.toml"), token_windows()).unwrap();
    let server = dev_server(d, &[]);
    let p = server.port;
    let gwei = 1_000_000_000;
    assert!(token_transfer(p, TOKEN, 60, 7, 10 * gwei)["result"].is_string());
    // Fee bumps of nonce 7 (and a bump moving more, then less): one transaction, counted once
    // at the largest amount, 70.
    assert!(token_transfer(p, TOKEN, 60, 7, 20 * gwei)["result"].is_string());
    assert!(token_transfer(p, TOKEN, 70, 7, 30 * gwei)["result"].is_string());
    assert!(token_transfer(p, TOKEN, 10, 7, 40 * gwei)["result"].is_string());
    // Nonce 8: 31 more would be 101.
    let v = token_transfer(p, TOKEN, 31, 8, 10 * gwei);
    assert_eq!(
        v["error"]["data"]["reason"], "spend_window_value_exceeded",
        "{v}"
    );
    assert!(token_transfer(p, TOKEN, 30, 8, 10 * gwei)["result"].is_string());
    // The other token has its own window.
    assert_eq!(token_burst(&[&server], 1000), 10);
    // Durable: a restart keeps both windows full.
    drop(server);
    let server = dev_server(d, &[]);
    let v = token_transfer(server.port, TOKEN, 1, 9, 10 * gwei);
    assert_eq!(
        v["error"]["data"]["reason"], "spend_window_value_exceeded",
        "{v}"
    );
    assert_eq!(token_burst(&[&server], 2000), 0);
    drop(server);

    // Two instances sharing PostgreSQL share the window.
    let Some(admin) = pg_admin() else { return };
    let (url, name) = pg_create(&admin, "evm_token_window");
    let d2 = d.join("pg");
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::write(d2.join("policy.toml"), token_windows()).unwrap();
    let a = dev_server(&d2, &["--slashing-protection-db-url", &url]);
    let b = dev_server(&d2, &["--slashing-protection-db-url", &url]);
    assert_eq!(
        token_burst(&[&a, &b], 1000),
        10,
        "two instances share one token window"
    );
    drop(a);
    drop(b);
    pg_drop(&admin, &name);
}

/// Policy v2 over the endpoint, each rule just inside and just outside its bound: payees with
/// their own caps, typed-data field rules on a domain without a verifying contract, Permit2
/// against the server's clock, personal-message prefixes, and calldata that is not canonical.
#[test]
fn policy_v2_rules_over_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let permit2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
    std::fs::write(
        d.join("policy.toml"),
        format!(
            r#"
[defaults]
chain_ids = [1, 137]
recipients = []
max_value_wei = "0"
payees = [{{ address = "{FRIEND}", max_value_wei = "1000" }}]
max_gas = 100000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_calldata_bytes = 200
allow_personal_sign = true
personal_sign_prefixes = ["Sign in to example.com"]
erc20 = [{{ token = "{TOKEN}", transfer_to = ["{FRIEND}"], max_transfer = "500" }}]
permit2 = [{{ tokens = ["{TOKEN}"], spenders = ["{DEX}"], max_amount = "500", max_deadline_secs = 600 }}]
typed_data_domains = [{{ name = "ClobAuthDomain", version = "1", chain_id = 137, primary_types = ["ClobAuth"], fields = {{ address = {{ equals = "self" }} }} }}]
"#
        ),
    )
    .unwrap();
    let server = dev_server(d, &[]);
    let me = dev_address();
    let call = |method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        try_request(
            server.port,
            "POST",
            "/",
            &[("content-type", "application/json")],
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap()
        .json()
    };
    let decided = |v: &Value| -> String {
        if v["result"].is_string() {
            "signed".into()
        } else {
            v["error"]["data"]["reason"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        }
    };
    let sign_tx = |over: Value| decided(&call("eth_signTransaction", json!([tx(&me, over)])));
    // Payee caps.
    assert_eq!(sign_tx(json!({"value": "0x3e8"})), "signed");
    assert_eq!(sign_tx(json!({"value": "0x3e9"})), "value_too_high");
    assert_eq!(
        sign_tx(json!({"to": STRANGER, "value": "0x0"})),
        "recipient_not_allowed"
    );
    // ERC-20 caps, and calldata with a byte too many.
    let transfer = |amount| json!({"to": TOKEN, "value": "0x0", "gas": "0xfde8", "data": transfer_calldata(FRIEND, amount)});
    assert_eq!(sign_tx(transfer(500)), "signed");
    assert_eq!(sign_tx(transfer(501)), "token_amount_too_high");
    let longer = format!("{}00", transfer_calldata(FRIEND, 1));
    assert_eq!(
        sign_tx(json!({"to": TOKEN, "value": "0x0", "gas": "0xfde8", "data": longer})),
        "calldata_not_decodable"
    );
    // ClobAuth: no verifying contract; the address field must be the signer.
    let clob = |who: &str| {
        json!({"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}, {"name": "chainId", "type": "uint256"}],
                         "ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"}, {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]},
               "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": 137}, "primaryType": "ClobAuth",
               "message": {"address": who, "timestamp": "1", "nonce": 0, "message": "hi"}})
    };
    assert_eq!(
        decided(&call("eth_signTypedData_v4", json!([me, clob(&me)]))),
        "signed"
    );
    assert_eq!(
        decided(&call("eth_signTypedData_v4", json!([me, clob(STRANGER)]))),
        "typed_data_field_not_allowed"
    );
    // Permit2 against the server's clock: 590 s ahead is inside 600, 700 s is not.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let permit = |amount: u64, deadline: u64| {
        json!({"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
                         "PermitSingle": [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}],
                         "PermitDetails": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"}, {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}]},
               "domain": {"name": "Permit2", "chainId": 1, "verifyingContract": permit2}, "primaryType": "PermitSingle",
               "message": {"details": {"token": TOKEN, "amount": amount.to_string(), "expiration": deadline.to_string(), "nonce": "0"}, "spender": DEX, "sigDeadline": deadline.to_string()}})
    };
    assert_eq!(
        decided(&call(
            "eth_signTypedData_v4",
            json!([me, permit(500, now + 590)])
        )),
        "signed"
    );
    assert_eq!(
        decided(&call(
            "eth_signTypedData_v4",
            json!([me, permit(501, now + 590)])
        )),
        "permit_amount_too_high"
    );
    assert_eq!(
        decided(&call(
            "eth_signTypedData_v4",
            json!([me, permit(500, now + 700)])
        )),
        "permit_deadline_too_far"
    );
    // Personal messages by prefix.
    assert_eq!(
        decided(&call(
            "personal_sign",
            json!(["Sign in to example.com at noon", me])
        )),
        "signed"
    );
    assert_eq!(
        decided(&call("personal_sign", json!(["Sign in to evil.com", me]))),
        "message_not_allowed"
    );
}
