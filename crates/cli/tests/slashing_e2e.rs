//! Slashing protection through the real binary: refusals over HTTP, 1,000 concurrent conflicting
//! requests, two processes sharing PostgreSQL, kill -9 during a signing burst, interchange
//! import/export from the CLI while the server runs, and failing closed when the database goes.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

fn attestation(source: u64, target: u64, block_root_byte: u64) -> Value {
    attestation_at(GVR, source, target, block_root_byte)
}

fn block(slot: u64, body_byte: u64) -> Value {
    json!({"type": "BLOCK_V2",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "beacon_block": {"version": "DENEB", "block_header": {"slot": slot.to_string(), "proposer_index": "1",
               "parent_root": format!("0x{}", "00".repeat(32)), "state_root": format!("0x{}", "00".repeat(32)),
               "body_root": format!("0x{:064x}", body_byte)}}})
}

fn code(r: &Response) -> String {
    r.json()["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn refusals_over_http_have_reason_codes_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pks) = start_with_nimbus(dir.path(), 1, &[]);
    let pk = &pks[0];
    let first = server.sign(pk, &attestation(5, 10, 1));
    assert_eq!(first.status, 200);
    let repeat = server.sign(pk, &attestation(5, 10, 1));
    assert_eq!(repeat.status, 200, "identical repeat is allowed");
    assert_eq!(repeat.json()["signature"], first.json()["signature"]);
    let r = server.sign(pk, &attestation(5, 10, 2));
    assert_eq!((r.status, code(&r)), (412, "double_vote".into()));
    let r = server.sign(pk, &attestation(4, 11, 1));
    assert_eq!((r.status, code(&r)), (412, "surround_vote".into()));
    let r = server.sign(pk, &attestation(11, 10, 1));
    assert_eq!((r.status, code(&r)), (412, "source_after_target".into()));
    assert_eq!(server.sign(pk, &block(100, 1)).status, 200);
    let r = server.sign(pk, &block(100, 2));
    assert_eq!((r.status, code(&r)), (412, "double_proposal".into()));
    let r = server.sign(pk, &block(99, 2));
    assert_eq!((r.status, code(&r)), (412, "below_watermark".into()));
    let mut other_chain = attestation(10, 11, 1);
    other_chain["fork_info"]["genesis_validators_root"] = json!(format!("0x{}", "11".repeat(32)));
    let r = server.sign(pk, &other_chain);
    assert_eq!((r.status, code(&r)), (412, "genesis_mismatch".into()));

    let h = server.request("GET", "/healthcheck", &[], b"").json();
    let s = &h["checks"][1];
    assert_eq!(s["id"], "slashing-protection-check");
    assert_eq!(s["status"], "UP");
    assert_eq!(s["data"]["backend"], "sqlite");
    assert_eq!(s["data"]["refusals"]["double_vote"], 1);
    assert_eq!(s["data"]["refusals"]["surround_vote"], 1);
    assert_eq!(s["data"]["refusals"]["genesis_mismatch"], 1);
}

#[test]
fn chain_clock_and_network_pinning_on_mainnet() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("k");
    let (keys_dir, pw, pks) = nimbus_keys(&keys, 1);
    let server = Server::start(
        dir.path(),
        &[
            "--network",
            "mainnet",
            "--keystores-path",
            keys_dir.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
        ],
    );
    let mainnet_gvr = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";
    let now_epoch = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1_606_824_023)
        / 384;
    let mut a = attestation(now_epoch - 1, now_epoch, 1);
    a["fork_info"] = json!({"fork": {"previous_version": "0x05000000", "current_version": "0x06000000", "epoch": "411392"},
                            "genesis_validators_root": mainnet_gvr});
    assert_eq!(server.sign(&pks[0], &a).status, 200);
    let mut far = a.clone();
    far["attestation"]["target"]["epoch"] = json!((now_epoch + 1000).to_string());
    let r = server.sign(&pks[0], &far);
    assert_eq!((r.status, code(&r)), (412, "too_far_in_future".into()));
    // The database is pinned to mainnet: a request for another chain is refused.
    let r = server.sign(&pks[0], &attestation(now_epoch, now_epoch + 1, 1));
    assert_eq!((r.status, code(&r)), (412, "genesis_mismatch".into()));
    drop(server);
    // And the same database cannot be opened for another network.
    let port = free_port().to_string();
    let mut args = vec!["serve", "--network", "hoodi", "--http-listen-port", &port];
    args.extend(root_flag());
    expect_refusal(&args, &dir.path().join("data"), "another network");
}

/// Fire `n` conflicting attestations (same validator and target, different roots) from many
/// threads at the given servers; return how many were signed.
fn conflicting_burst(servers: &[&Server], pk: &str, n: usize) -> usize {
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (ok, refused, next, ports, pk) = (
                ok.clone(),
                refused.clone(),
                next.clone(),
                ports.clone(),
                pk.to_string(),
            );
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = serde_json::to_vec(&attestation(100, 101, 1000 + i as u64)).unwrap();
                let r = try_request(
                    ports[i % ports.len()],
                    "POST",
                    &format!("/api/v1/eth2/sign/{pk}"),
                    &[("accept", "application/json")],
                    &body,
                )
                .unwrap();
                match r.status {
                    200 => ok.fetch_add(1, Ordering::Relaxed),
                    412 => refused.fetch_add(1, Ordering::Relaxed),
                    s => panic!("unexpected status {s}: {}", r.text()),
                };
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        ok.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed),
        n
    );
    ok.load(Ordering::Relaxed)
}

#[test]
fn thousand_concurrent_conflicting_requests_give_one_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pks) = start_with_nimbus(dir.path(), 1, &[]);
    assert_eq!(conflicting_burst(&[&server], &pks[0], 1000), 1);
}

#[test]
fn two_processes_sharing_postgres_give_one_signature() {
    let Some(admin) = pg_admin() else { return };
    let (url, name) = pg_create(&admin, "two");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, pks) = start_with_nimbus(d1.path(), 1, &["--slashing-protection-db-url", &url]);
    let (b, _) = start_with_nimbus(d2.path(), 1, &["--slashing-protection-db-url", &url]);
    assert_eq!(conflicting_burst(&[&a, &b], &pks[0], 1000), 1);
    // A block signed through one instance cannot be signed differently through the other.
    assert_eq!(a.sign(&pks[0], &block(7, 1)).status, 200);
    let r = b.sign(&pks[0], &block(7, 2));
    assert_eq!((r.status, code(&r)), (412, "double_proposal".into()));
    let h = a.request("GET", "/healthcheck", &[], b"").json();
    assert_eq!(h["checks"][1]["data"]["backend"], "postgres");

    // Fail closed: with the database gone, nothing is signed.
    pg_drop(&admin, &name);
    let r = a.sign(&pks[0], &attestation(200, 201, 1));
    assert_eq!(
        (r.status, code(&r)),
        (503, "slashing_db_unavailable".into())
    );
    let h = a.request("GET", "/healthcheck", &[], b"");
    assert_eq!(h.status, 503);
    // A URL given through env: indirection works too (and keeps passwords out of argv).
    let (url2, name2) = pg_create(&admin, "env");
    let d3 = tempfile::tempdir().unwrap();
    std::env::set_var("SIGNWARD_TEST_DB_URL_VAR", &url2);
    let (c, pks3) = start_with_nimbus(
        d3.path(),
        1,
        &[
            "--slashing-protection-db-url",
            "env:SIGNWARD_TEST_DB_URL_VAR",
        ],
    );
    assert_eq!(c.sign(&pks3[0], &attestation(1, 2, 1)).status, 200);
    drop(c);
    pg_drop(&admin, &name2);
}

/// kill -9 during a burst of signing; after restart, nothing whose signature was returned can be
/// signed again in conflicting form.
fn crash_trials(dir: &Path, extra: &[&str], trials: usize) {
    let (mut server, pks) = start_with_nimbus(dir, 2, extra);
    for trial in 0..trials {
        let signed: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let port = server.port;
        let base = 10_000 * (trial as u64 + 1);
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (signed, stop, pk) =
                    (signed.clone(), stop.clone(), pks[(t % 2) as usize].clone());
                std::thread::spawn(move || {
                    let mut target = base + t * 1000;
                    while !stop.load(Ordering::Relaxed) {
                        target += 1;
                        let (req, kind) = if target.is_multiple_of(3) {
                            (block(target, 1), "block")
                        } else {
                            (attestation(target - 1, target, 1), "att")
                        };
                        let body = serde_json::to_vec(&req).unwrap();
                        match try_request(
                            port,
                            "POST",
                            &format!("/api/v1/eth2/sign/{pk}"),
                            &[("accept", "application/json")],
                            &body,
                        ) {
                            Ok(r) if r.status == 200 => {
                                signed
                                    .lock()
                                    .unwrap()
                                    .push((format!("{kind}:{pk}"), target, 1))
                            }
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300 + 50 * trial as u64));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let signed = signed.lock().unwrap().clone();
        assert!(
            !signed.is_empty(),
            "trial {trial}: nothing was signed before the kill"
        );
        let (restarted, _) = start_with_nimbus(dir, 2, extra);
        server = restarted;
        for (key, target, _) in &signed {
            let (kind, pk) = key.split_once(':').unwrap();
            let conflicting = if kind == "block" {
                block(*target, 2)
            } else {
                attestation(target - 1, *target, 2)
            };
            let r = server.sign(pk, &conflicting);
            assert_eq!(
                r.status, 412,
                "trial {trial}: conflicting {kind} at {target} was signed after a crash"
            );
        }
    }
}

#[test]
fn kill_9_during_a_burst_loses_no_record_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_trials(dir.path(), &[], 8);
}

#[test]
fn kill_9_during_a_burst_loses_no_record_postgres() {
    let Some(admin) = pg_admin() else { return };
    let (url, name) = pg_create(&admin, "crash");
    let dir = tempfile::tempdir().unwrap();
    crash_trials(dir.path(), &["--slashing-protection-db-url", &url], 4);
    pg_drop(&admin, &name);
}

#[test]
fn interchange_import_and_export_from_the_cli_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pks) = start_with_nimbus(dir.path(), 1, &[]);
    let pk = &pks[0];
    assert_eq!(server.sign(pk, &attestation(1, 2, 1)).status, 200);
    // Import history from another signer while the server runs.
    let file = dir.path().join("in.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR},
        "data": [{"pubkey": pk, "signed_blocks": [{"slot": "500"}],
                  "signed_attestations": [{"source_epoch": "40", "target_epoch": "50"}]}]}))
        .unwrap(),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
            .arg("slashing")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = cli(&["import", "--file", file.to_str().unwrap()]);
    assert!(said.contains("imported 1 validators"), "{said}");
    let r = server.sign(pk, &block(500, 9));
    assert_eq!((r.status, code(&r)), (412, "double_proposal".into()));
    let r = server.sign(pk, &attestation(39, 51, 9));
    assert_eq!((r.status, code(&r)), (412, "surround_vote".into()));
    assert_eq!(server.sign(pk, &attestation(50, 51, 9)).status, 200);

    let out = dir.path().join("out.json");
    cli(&["export", "--file", out.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["metadata"]["genesis_validators_root"], GVR);
    let atts = v["data"][0]["signed_attestations"].as_array().unwrap();
    // (1, 2) lies below the imported file's floor (its lowest record, 40 → 50): the floor covers
    // it, so the history holds the imported record and the one signed since.
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert!(atts
        .iter()
        .any(|a| a["target_epoch"] == "51" && a["signing_root"].is_string()));
    cli(&["export", "--minimal", "--file", out.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        v["data"][0]["signed_attestations"],
        json!([{"source_epoch": "50", "target_epoch": "51"}])
    );
    let said = cli(&["prune", "--epochs-to-keep", "5"]);
    assert!(said.contains("pruned"), "{said}");
    let r = server.sign(pk, &attestation(1, 3, 9));
    assert_eq!(r.status, 412);
    // A file for another chain is refused.
    std::fs::write(&file, serde_json::to_vec(&json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": format!("0x{}", "22".repeat(32))},
        "data": []})).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args([
            "slashing",
            "import",
            "--file",
            file.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("genesis validators root mismatch"));
}
