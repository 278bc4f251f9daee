//! End-to-end tests of `signward serve` over HTTP, with signatures checked by independent
//! implementations (py_ecc + remerkleable, ethstaker-deposit) and by exact published vectors.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

fn fork_info(prev: &str, cur: &str, epoch: u64) -> Value {
    json!({"fork": {"previous_version": prev, "current_version": cur, "epoch": epoch.to_string()},
           "genesis_validators_root": GVR})
}

/// Requests on both sides of a fork (fork at epoch 10, different versions), for each epoch rule.
fn fork_boundary_requests() -> Vec<(String, Value)> {
    let fi = fork_info("0x00000001", "0x01000001", 10);
    let z = format!("0x{}", "00".repeat(32));
    let mut v = Vec::new();
    for epoch in [9u64, 10] {
        v.push((
            format!("RANDAO epoch {epoch}"),
            json!({"type": "RANDAO_REVEAL", "fork_info": fi, "randao_reveal": {"epoch": epoch.to_string()}}),
        ));
        v.push((
            format!("VOLUNTARY_EXIT epoch {epoch}"),
            json!({"type": "VOLUNTARY_EXIT", "fork_info": fi,
                   "voluntary_exit": {"epoch": epoch.to_string(), "validator_index": "7"}}),
        ));
        v.push((
            format!("ATTESTATION target {epoch} (slot in the other epoch)"),
            json!({"type": "ATTESTATION", "fork_info": fi, "attestation": {
                "slot": (if epoch == 9 { 80 } else { 79 }).to_string(), "index": "0", "beacon_block_root": z,
                "source": {"epoch": "1", "root": z}, "target": {"epoch": epoch.to_string(), "root": z}}}),
        ));
    }
    // Minimal preset: 8 slots per epoch, so slot 79 is epoch 9 and slot 80 is epoch 10.
    for slot in [79u64, 80] {
        v.push((
            format!("BLOCK_V2 slot {slot}"),
            json!({"type": "BLOCK_V2", "fork_info": fi, "beacon_block": {"version": "DENEB", "block_header": {
                "slot": slot.to_string(), "proposer_index": "3", "parent_root": z, "state_root": z, "body_root": z}}}),
        ));
        v.push((
            format!("AGGREGATION_SLOT slot {slot}"),
            json!({"type": "AGGREGATION_SLOT", "fork_info": fi, "aggregation_slot": {"slot": slot.to_string()}}),
        ));
        v.push((
            format!("SYNC_COMMITTEE_MESSAGE slot {slot}"),
            json!({"type": "SYNC_COMMITTEE_MESSAGE", "fork_info": fi,
                   "sync_committee_message": {"beacon_block_root": z, "slot": slot.to_string()}}),
        ));
    }
    // Electra aggregate under the minimal preset (committee_bits is a Bitvector[4]: one byte).
    v.push((
        "AGGREGATE_AND_PROOF_V2 ELECTRA minimal".into(),
        json!({"type": "AGGREGATE_AND_PROOF_V2", "fork_info": fi, "aggregate_and_proof": {"version": "ELECTRA", "data": {
            "aggregator_index": "1", "selection_proof": format!("0x{}", "11".repeat(96)),
            "aggregate": {"aggregation_bits": "0x0501", "committee_bits": "0x03", "signature": format!("0x{}", "22".repeat(96)),
                "data": {"slot": "80", "index": "0", "beacon_block_root": z,
                         "source": {"epoch": "1", "root": z}, "target": {"epoch": "10", "root": z}}}}}}),
    ));
    v
}

#[test]
fn every_message_type_verifies_under_an_independent_implementation() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, pubkeys) = start_with_nimbus(dir.path(), 2, &[]);
    let mut listed = server.public_keys();
    listed.sort();
    let mut expected = pubkeys.clone();
    expected.sort();
    assert_eq!(listed, expected);

    let mut requests: Vec<(String, Value)> = examples()
        .into_iter()
        .filter(|c| c["verified"].as_bool().unwrap())
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["request"].clone(),
            )
        })
        .collect();
    assert_eq!(requests.len(), 23);
    requests.extend(fork_boundary_requests());

    let mut cases = Vec::new();
    let mut types = std::collections::HashSet::new();
    // Many examples are different blocks at slot 0: slashing protection rightly refuses all but
    // the first on one database. Each slashable example therefore gets a fresh signer.
    let mut fresh = Vec::new();
    for pk in &pubkeys {
        for (i, (name, req)) in requests.iter().enumerate() {
            let slashable = matches!(
                req["type"].as_str(),
                Some("BLOCK" | "BLOCK_V2" | "ATTESTATION")
            );
            let r = if slashable {
                let sub = dir.path().join(format!("fresh-{i}-{}", &pk[2..10]));
                std::fs::create_dir_all(&sub).unwrap();
                let (srv, _) = start_with_nimbus(&sub, 2, &[]);
                let r = srv.sign(pk, req);
                fresh.push(srv);
                r
            } else {
                server.sign(pk, req)
            };
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            types.insert(req["type"].as_str().unwrap().to_string());
            cases.push(
                json!({"name": format!("{name} / {}", &pk[..10]), "pubkey": pk,
                              "request": req, "signature": r.json()["signature"]}),
            );
        }
    }
    assert_eq!(types.len(), 13, "all 13 message types signed");
    drop(fresh);

    let (ok, out) = run_python(
        &python,
        "verify_signatures.py",
        &[],
        &json!({"preset": "minimal", "genesis_fork_version": "0x00000001", "cases": cases}),
    );
    let results = out["results"].as_array().expect("verifier output");
    let failed: Vec<_> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(ok && failed.is_empty(), "failed: {failed:#?}");
    assert_eq!(results.len(), cases.len());

    // The fork boundary mattered: each pair on the two sides of the fork has different roots
    // from what the other version would give (checked by the verifier accepting both).
    let roots: std::collections::HashSet<_> = results
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("RANDAO epoch"))
        .map(|r| r["signing_root"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        roots.len(),
        2,
        "two epochs, two distinct roots per key's message"
    );
}

#[test]
fn plain_text_response_unless_json_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pubkeys) = start_with_nimbus(dir.path(), 1, &[]);
    let body = serde_json::to_vec(&fork_boundary_requests()[0].1).unwrap();
    let path = format!("/api/v1/eth2/sign/{}", pubkeys[0]);
    let json_r = server.request("POST", &path, &[("accept", "application/json")], &body);
    let text_r = server.request("POST", &path, &[("accept", "text/plain")], &body);
    let none_r = server.request("POST", &path, &[], &body);
    let any_r = server.request("POST", &path, &[("accept", "*/*")], &body);
    let sig = json_r.json()["signature"].as_str().unwrap().to_string();
    assert!(text_r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(text_r.text(), sig);
    assert_eq!(none_r.text(), sig);
    assert_eq!(any_r.json()["signature"], sig);
}

#[test]
fn ethstaker_deposit_keystores_load_and_sign_like_the_deposit_cli() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw.txt");
    write_secret(&pw, b"interop password \xF0\x9F\x94\x91");
    let out = std::process::Command::new(&python)
        .arg(repo().join("tests/py/make_deposit_keystores.py"))
        .arg(dir.path())
        .arg(&pw)
        .status()
        .unwrap();
    assert!(out.success(), "ethstaker-deposit failed");
    let server = Server::start(
        dir.path(),
        &[
            "--network",
            "hoodi",
            "--keystores-path",
            dir.path().join("keystores").to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
        ],
    );
    let deposits: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("deposit_data.json")).unwrap())
            .unwrap();
    assert_eq!(server.public_keys().len(), 2, "{}", server.log_text());
    for d in &deposits {
        let pk = format!("0x{}", d["pubkey"].as_str().unwrap());
        let req = json!({"type": "DEPOSIT", "deposit": {
            "pubkey": pk,
            "withdrawal_credentials": format!("0x{}", d["withdrawal_credentials"].as_str().unwrap()),
            "amount": d["amount"].as_u64().unwrap().to_string(),
            "genesis_fork_version": format!("0x{}", d["fork_version"].as_str().unwrap())}});
        let r = server.sign(&pk, &req);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json()["signature"].as_str().unwrap(),
            format!("0x{}", d["signature"].as_str().unwrap()),
            "signward's deposit signature equals ethstaker-deposit's"
        );
        // And a duty on Hoodi verifies under py_ecc/remerkleable (mainnet preset).
        let fi = json!({"fork": {"previous_version": "0x50000910", "current_version": "0x60000910", "epoch": "2048"},
                        "genesis_validators_root": "0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"});
        let duty =
            json!({"type": "RANDAO_REVEAL", "fork_info": fi, "randao_reveal": {"epoch": "3000"}});
        let r = server.sign(&pk, &duty);
        assert_eq!(r.status, 200);
        let (ok, out) = run_python(
            &python,
            "verify_signatures.py",
            &[],
            &json!({"preset": "mainnet", "genesis_fork_version": "0x10000910",
                    "cases": [{"name": "hoodi randao", "pubkey": pk, "request": duty, "signature": r.json()["signature"]}]}),
        );
        assert!(ok, "{out}");
    }
}

#[test]
fn web3signer_deposit_vectors_give_exact_signatures_from_raw_key_configs() {
    let dir = tempfile::tempdir().unwrap();
    let root = vectors().join("signing-roots/web3signer");
    let keys: Value =
        serde_json::from_slice(&std::fs::read(root.join("deposit_keys_and_roots.json")).unwrap())
            .unwrap();
    let cfg = dir.path().join("key-configs");
    std::fs::create_dir_all(&cfg).unwrap();
    let mut yaml = String::new();
    for k in keys["keys"].as_array().unwrap() {
        yaml.push_str(&format!(
            "---\ntype: file-raw\nkeyType: BLS\nprivateKey: \"{}\"\n",
            k["private_key"].as_str().unwrap()
        ));
    }
    write_secret(&cfg.join("raw.yaml"), yaml.as_bytes());

    // Without --allow-raw-keys nothing loads, and health says so.
    let refused = Server::start(dir.path(), &["--key-config-path", cfg.to_str().unwrap()]);
    assert!(refused.public_keys().is_empty());
    let h = refused.request("GET", "/healthcheck", &[], b"");
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["checks"][0]["data"]["keys-failed"], 2);
    assert!(refused.log_text().contains("raw_keys_not_allowed"));
    drop(refused);

    let server = Server::start(
        dir.path(),
        &[
            "--key-config-path",
            cfg.to_str().unwrap(),
            "--allow-raw-keys",
        ],
    );
    assert!(server.log_text().contains("plaintext file-raw keys loaded"));
    let mut n = 0;
    for v in keys["vectors"].as_array().unwrap() {
        let file: Value =
            serde_json::from_slice(&std::fs::read(root.join(v["file"].as_str().unwrap())).unwrap())
                .unwrap();
        let pk = v["pubkey"].as_str().unwrap();
        let entry = file
            .as_array()
            .unwrap()
            .iter()
            .find(|e| format!("0x{}", e["pubkey"].as_str().unwrap()) == pk)
            .unwrap();
        let req = json!({"type": "DEPOSIT", "signingRoot": v["signing_root"], "deposit": {
            "pubkey": pk,
            "withdrawal_credentials": format!("0x{}", entry["withdrawal_credentials"].as_str().unwrap()),
            "amount": entry["amount"].to_string().trim_matches('"'),
            "genesis_fork_version": v["fork_version"]}});
        let r = server.sign(pk, &req);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["signature"], v["signature"]);
        n += 1;
    }
    assert_eq!(n, 4);
    // The raw private keys never reach the log.
    let log = server.log_text();
    for k in keys["keys"].as_array().unwrap() {
        let sk = k["private_key"].as_str().unwrap();
        assert!(!log.contains(&sk[2..]));
    }
}

#[test]
fn negative_paths_answer_stable_codes_and_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, pw, pubkeys) = nimbus_keys(dir.path(), 2);
    let password = std::fs::read_to_string(&pw).unwrap();
    // A third keystore whose password file is wrong, a tampered one, and a hostile-KDF one.
    let pwdir = dir.path().join("passwords");
    std::fs::create_dir_all(&pwdir).unwrap();
    for name in ["keystore1", "keystore2"] {
        write_secret(&pwdir.join(format!("{name}.txt")), password.as_bytes());
    }
    let ks3 = vectors().join("eip2335/nimbus-eth2/keystore3.json");
    std::fs::copy(&ks3, keys.join("wrongpw.json")).unwrap();
    owner_only(&keys.join("wrongpw.json"));
    // A keystore others can read is refused (an offline guessing target), naming file and fix.
    std::fs::copy(&ks3, keys.join("readable.json")).unwrap();
    std::fs::set_permissions(
        keys.join("readable.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    write_secret(&pwdir.join("readable.txt"), password.as_bytes());
    write_secret(&pwdir.join("wrongpw.txt"), b"definitely-not-it-7731");
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&ks3).unwrap()).unwrap();
    let msg = tampered["crypto"]["cipher"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = format!("{}{}", if &msg[..1] == "0" { "1" } else { "0" }, &msg[1..]);
    tampered["crypto"]["cipher"]["message"] = Value::String(flipped);
    write_secret(
        &keys.join("tampered.json"),
        &serde_json::to_vec(&tampered).unwrap(),
    );
    write_secret(&pwdir.join("tampered.txt"), password.as_bytes());
    let mut hostile = tampered.clone();
    hostile["crypto"]["kdf"]["params"]["c"] = json!(1u64 << 31);
    write_secret(
        &keys.join("hostile.json"),
        &serde_json::to_vec(&hostile).unwrap(),
    );
    write_secret(&pwdir.join("hostile.txt"), password.as_bytes());

    let net = minimal_network(dir.path());
    let server = Server::start(
        dir.path(),
        &[
            "--network",
            net.to_str().unwrap(),
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-passwords-path",
            pwdir.to_str().unwrap(),
            "--max-request-body-bytes",
            "65536",
        ],
    );
    assert_eq!(server.public_keys().len(), 2);
    let h = server.request("GET", "/healthcheck", &[], b"");
    assert_eq!(h.status, 503, "failed keys make health DOWN");
    assert_eq!(h.json()["checks"][0]["data"]["keys-failed"], 4);
    let log = server.log_text();
    assert!(
        log.contains("wrongpw.json") && log.contains("checksum_mismatch"),
        "{log}"
    );
    assert!(log.contains("tampered.json"));
    assert!(
        log.contains("readable.json")
            && log.contains("insecure_permissions")
            && log.contains("chmod 600"),
        "{log}"
    );
    assert!(log.contains("hostile.json") && log.contains("kdf_too_expensive"));

    let good = fork_boundary_requests()[0].1.clone();
    let sign_raw = |pk: &str, body: &[u8]| {
        server.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[("accept", "application/json")],
            body,
        )
    };
    let check = |r: Response, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["code"], code);
        assert_eq!(v.as_object().unwrap().len(), 2, "only code and message");
    };
    let unknown = format!("0x{}", "a1".repeat(48));
    check(server.sign(&unknown, &good), 404, "unknown_key");
    check(sign_raw("0x1234", b"{}"), 400, "invalid_pubkey");
    check(
        sign_raw(&pubkeys[0], b"{\"type\": \"ATTESTATION\", "),
        400,
        "malformed_body",
    );
    check(
        sign_raw(&pubkeys[0], b"{\"type\": \"NOT_A_TYPE\"}"),
        400,
        "malformed_body",
    );
    check(sign_raw(&pubkeys[0], b"[1,2,3]"), 400, "malformed_body");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("randao_reveal");
    check(server.sign(&pubkeys[0], &missing), 400, "invalid_request");
    let mut wrong_root = good.clone();
    wrong_root["signingRoot"] = json!(format!("0x{}", "ab".repeat(32)));
    check(
        server.sign(&pubkeys[0], &wrong_root),
        400,
        "signing_root_mismatch",
    );
    check(
        sign_raw(&pubkeys[0], &vec![b' '; 70_000]),
        413,
        "body_too_large",
    );
    check(server.request("GET", "/nope", &[], b""), 404, "not_found");
    let mut block = examples()
        .into_iter()
        .find(|c| c["name"] == "BLOCK_V2 (ALTAIR)")
        .unwrap()["request"]
        .clone();
    block["beacon_block"]["version"] = json!("CAPELLA");
    block.as_object_mut().unwrap().remove("signingRoot");
    check(
        server.sign(&pubkeys[0], &block),
        400,
        "unsupported_block_format",
    );
    let mut bits = fork_boundary_requests().last().unwrap().1.clone();
    bits["aggregate_and_proof"]["data"]["aggregate"]["committee_bits"] =
        json!("0x0000000000000001");
    check(server.sign(&pubkeys[0], &bits), 400, "ssz_bounds");

    // Nothing secret in the log: not the passwords, not the decrypted keys.
    let exp: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("eip2335/nimbus-eth2/expected.json")).unwrap(),
    )
    .unwrap();
    let log = server.log_text();
    assert!(!log.contains(password.trim()));
    assert!(!log.contains("definitely-not-it-7731"));
    for case in exp["cases"].as_array().unwrap() {
        assert!(!log.contains(&case["secret"].as_str().unwrap()[2..]));
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, pubkeys) = start_with_nimbus(dir.path(), 1, &[]);
    let body = serde_json::to_vec(&fork_boundary_requests()[0].1).unwrap();
    let req = raw_request(
        "POST",
        &format!("/api/v1/eth2/sign/{}", pubkeys[0]),
        &[("accept", "application/json")],
        &body,
    );
    // Send the headers and half the body, then SIGTERM, then the rest.
    let split = req.len() - body.len() / 2;
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&req[..split]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused while the in-flight one completes.
    assert!(try_request(server.port, "GET", "/upcheck", &[], b"").is_err());
    s.write_all(&req[split..]).unwrap();
    let r = read_response(s).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["signature"].as_str().unwrap().starts_with("0x"));
    let status = server.child.wait().unwrap();
    assert!(status.success());
    assert!(server.log_text().contains("SIGTERM"));
}

#[test]
fn a_request_that_stalls_is_cut_off_with_a_timeout_code() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pubkeys) = start_with_nimbus(dir.path(), 1, &["--request-timeout-secs", "1"]);
    let req = raw_request(
        "POST",
        &format!("/api/v1/eth2/sign/{}", pubkeys[0]),
        &[],
        &[b'{'; 100],
    );
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&req[..req.len() - 50]).unwrap(); // never send the rest
    let r = read_response(s).unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["code"], "timeout");
}

#[test]
fn refuses_non_loopback_listener_without_the_loud_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["serve", "--http-listen-host", "0.0.0.0", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--insecure-allow-plaintext-non-loopback")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["serve", "--keystores-path", "/tmp", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "keystores without a password source");
}

#[test]
fn excess_requests_are_shed_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pubkeys) = start_with_nimbus(dir.path(), 1, &["--max-concurrent-requests", "1"]);
    let body = serde_json::to_vec(&fork_boundary_requests()[0].1).unwrap();
    let req = raw_request(
        "POST",
        &format!("/api/v1/eth2/sign/{}", pubkeys[0]),
        &[("accept", "application/json")],
        &body,
    );
    // Hold the only slot with a request whose body is still arriving.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(&req[..req.len() - 10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let shed = server.request(
        "POST",
        &format!("/api/v1/eth2/sign/{}", pubkeys[0]),
        &[("accept", "application/json")],
        &body,
    );
    assert_eq!(shed.status, 503);
    assert_eq!(shed.json()["code"], "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(
        server.request("GET", "/upcheck", &[], b"").status,
        200,
        "liveness is never shed"
    );
    slow.write_all(&req[req.len() - 10..]).unwrap();
    assert_eq!(read_response(slow).unwrap().status, 200);
    assert_eq!(
        server
            .request(
                "POST",
                &format!("/api/v1/eth2/sign/{}", pubkeys[0]),
                &[("accept", "application/json")],
                &body
            )
            .status,
        200
    );
}
