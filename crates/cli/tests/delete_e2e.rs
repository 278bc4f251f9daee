//! Deleting a key while its validator client keeps sending duties (issue 11, finding 1): after
//! the Keymanager `DELETE` returns, no instance signs with the key, and the returned history
//! covers every signature ever released, so a fresh signer that imports it refuses a conflicting
//! vote for each of them. On SQLite, and on two instances sharing PostgreSQL, one of them stalled
//! (SIGSTOP) across the delete.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

fn attestation(source: u64, target: u64, root: u8) -> Value {
    json!({"type": "ATTESTATION",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "attestation": {"slot": "1", "index": "0", "beacon_block_root": format!("0x{}", format!("{root:02x}").repeat(32)),
               "source": {"epoch": source.to_string(), "root": format!("0x{}", "00".repeat(32))},
               "target": {"epoch": target.to_string(), "root": format!("0x{}", "00".repeat(32))}}})
}

fn randao(epoch: u64) -> Value {
    json!({"type": "RANDAO_REVEAL",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "randao_reveal": {"epoch": epoch.to_string()}})
}

/// One request a duty thread sent: when it started (relative to the test's clock), the target
/// (0 for a randao reveal) and the answer.
#[derive(Debug, Clone)]
struct Sent {
    started_ms: u64,
    target: u64,
    status: u16,
    code: String,
}

/// A validator client that keeps signing: `threads` threads, each sending attestations with
/// rising targets (source = target − 1) and, every fourth request, a randao reveal, to the
/// servers on `ports` in turn, until `stop`.
struct Duties {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Duties {
    fn start(ports: Vec<u16>, pk: &str, vc: &str, t0: Instant, threads: u64) -> Duties {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(10));
        let handles = (0..threads)
            .map(|i| {
                let (stop, sent, next) = (stop.clone(), sent.clone(), next.clone());
                let (ports, pk, vc) = (ports.clone(), pk.to_string(), vc.to_string());
                std::thread::spawn(move || {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let port = ports[(n as usize) % ports.len()];
                        let (target, body) = if n % 4 == 0 {
                            (0, randao(n))
                        } else {
                            let t = next.fetch_add(1, Ordering::Relaxed);
                            (t, attestation(t - 1, t, 1))
                        };
                        let started_ms = t0.elapsed().as_millis() as u64;
                        let r = try_request(
                            port,
                            "POST",
                            &format!("/api/v1/eth2/sign/{pk}"),
                            &[
                                ("authorization", &vc),
                                ("content-type", "application/json"),
                                ("accept", "application/json"),
                            ],
                            &serde_json::to_vec(&body).unwrap(),
                        );
                        let (status, code) = match r {
                            Ok(r) => (
                                r.status,
                                serde_json::from_slice::<Value>(&r.body)
                                    .ok()
                                    .and_then(|v| v["code"].as_str().map(String::from))
                                    .unwrap_or_default(),
                            ),
                            Err(_) => (0, "connection".into()),
                        };
                        sent.lock().unwrap().push(Sent {
                            started_ms,
                            target,
                            status,
                            code,
                        });
                    }
                })
            })
            .collect();
        Duties {
            stop,
            sent,
            handles,
        }
    }

    /// Wait until the client has `n` signatures (a loaded machine signs slower than a fixed
    /// pause assumes).
    fn wait_signed(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.status == 200)
            .count()
            < n
        {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} signatures in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join().unwrap();
        }
        Arc::try_unwrap(self.sent).unwrap().into_inner().unwrap()
    }
}

/// A fresh PBKDF2 keystore (cheap, for test speed) and its password.
fn keystore(d: &Path) -> (String, String, String) {
    let text =
        std::fs::read_to_string(&pbkdf2_keystores(d, "ks", b"keystore password", 1)[0]).unwrap();
    let pk = format!(
        "0x{}",
        serde_json::from_str::<Value>(&text).unwrap()["pubkey"]
            .as_str()
            .unwrap()
    );
    (text, "keystore password".into(), pk)
}

fn keymanager_import(server: &Server, km: &str, ks: &str, pw: &str, history: Option<&str>) {
    let mut body = json!({"keystores": [ks], "passwords": [pw]});
    if let Some(h) = history {
        body["slashing_protection"] = json!(h);
    }
    let r = server.request(
        "POST",
        "/eth/v1/keystores",
        &[("authorization", km), ("content-type", "application/json")],
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"][0]["status"], "imported", "{}", r.text());
}

/// The delete, timed; returns the response body and when it returned.
fn keymanager_delete(server: &Server, km: &str, pk: &str, t0: Instant) -> (Value, u64) {
    let r = server.request(
        "DELETE",
        "/eth/v1/keystores",
        &[("authorization", km), ("content-type", "application/json")],
        &serde_json::to_vec(&json!({"pubkeys": [pk]})).unwrap(),
    );
    let returned_ms = t0.elapsed().as_millis() as u64;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"][0]["status"], "deleted", "{v}");
    (v, returned_ms)
}

/// The properties: nothing requested after the delete returned was signed; every signature
/// released is in the returned history; and a fresh signer that imports the key with that
/// history refuses a conflicting vote for every one of them.
fn check(sent: &[Sent], response: &Value, returned_ms: u64, fresh_dir: &Path, ks: (&str, &str)) {
    let signed: Vec<&Sent> = sent.iter().filter(|s| s.status == 200).collect();
    let after: Vec<&Sent> = sent.iter().filter(|s| s.started_ms > returned_ms).collect();
    assert!(
        signed.len() >= 10,
        "the client signed before the delete: {}",
        signed.len()
    );
    assert!(
        after.len() >= 10,
        "the client kept sending after the delete: {}",
        after.len()
    );
    for s in &after {
        assert_ne!(s.status, 200, "signed after the delete returned: {s:?}");
        assert!(
            matches!(
                (s.status, s.code.as_str()),
                (404, "unknown_key") | (412, "validator_disabled")
            ),
            "{s:?}"
        );
    }
    let doc: Value =
        serde_json::from_str(response["slashing_protection"].as_str().unwrap()).unwrap();
    let recorded: std::collections::HashSet<u64> = doc["data"][0]["signed_attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target_epoch"].as_str().unwrap().parse().unwrap())
        .collect();
    let released: Vec<u64> = signed
        .iter()
        .filter(|s| s.target > 0)
        .map(|s| s.target)
        .collect();
    let missing: Vec<u64> = released
        .iter()
        .filter(|t| !recorded.contains(t))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} released attestations are missing from the returned history: {missing:?}",
        missing.len(),
        released.len()
    );
    // A fresh signer imports the key with the returned history: every released vote conflicts.
    let (fresh, km) = vault_server(fresh_dir, &[]);
    keymanager_import(
        &fresh,
        &km,
        ks.0,
        ks.1,
        response["slashing_protection"].as_str(),
    );
    let vc = bearer_sign(fresh_dir);
    let pk = doc["data"][0]["pubkey"].as_str().unwrap().to_string();
    for t in &released {
        let r = fresh.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[("authorization", &vc), ("content-type", "application/json")],
            &serde_json::to_vec(&attestation(t - 1, *t, 2)).unwrap(),
        );
        assert_eq!(
            r.status,
            412,
            "a vote conflicting with released target {t} was signed: {}",
            r.text()
        );
    }
    eprintln!(
        "{} requests; {} signatures released before the delete returned, all in its history; {} requests after it, none signed",
        sent.len(),
        signed.len(),
        after.len()
    );
}

fn bearer_sign(d: &Path) -> String {
    let name = format!("vc-{}", free_port());
    let tok = format!(
        "Bearer {}",
        credential(d, &["--name", &name, "--scope", "sign"])
    );
    std::thread::sleep(Duration::from_millis(1100));
    tok
}

/// A server with a vault (unsealed at start) on SQLite, plus a Keymanager credential.
fn vault_server(d: &Path, extra: &[String]) -> (Server, String) {
    std::fs::create_dir_all(d).unwrap();
    let data = d.join("data");
    let (id, shares) = init_age(d, &data, 2, 2);
    let mut args = vec!["--network".to_string(), s(&minimal_network(d)).into()];
    args.extend(unattended(&id, &shares));
    args.extend(extra.iter().cloned());
    let server = Server::start_with_auth(d, &strs(&args));
    let km = format!(
        "Bearer {}",
        credential(d, &["--name", "km", "--scope", "keymanager"])
    );
    std::thread::sleep(Duration::from_millis(1100));
    (server, km)
}

#[test]
fn delete_while_signing_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, km) = vault_server(&d.join("a"), &[]);
    let (ks, pw, pk) = keystore(d);
    keymanager_import(&server, &km, &ks, &pw, None);
    let vc = bearer_sign(&d.join("a"));
    let t0 = Instant::now();
    let duties = Duties::start(vec![server.port], &pk, &vc, t0, 4);
    duties.wait_signed(12);
    let (response, returned_ms) = keymanager_delete(&server, &km, &pk, t0);
    std::thread::sleep(Duration::from_millis(600));
    let sent = duties.finish();
    check(&sent, &response, returned_ms, &d.join("fresh"), (&ks, &pw));
}

#[test]
fn delete_while_signing_two_postgres_instances_one_stalled() {
    let Some(admin_url) = pg_admin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db_url, db_name) = pg_create(&admin_url, "delete");
    let (id, shares) = init_age_pg(d, &d.join("data"), &db_url);
    let mut args = vec![
        "--network".to_string(),
        s(&minimal_network(d)).into(),
        "--slashing-protection-db-url".into(),
        db_url.clone(),
    ];
    args.extend(unattended(&id, &shares));
    // Two hosts: each instance has its own data directory (audit log, credentials), and they
    // share only the PostgreSQL database.
    let (da, db) = (d.join("a"), d.join("b"));
    let km = format!(
        "Bearer {}",
        credential(&da, &["--name", "km", "--scope", "keymanager"])
    );
    let vc = bearer_sign(&da);
    std::fs::create_dir_all(db.join("data")).unwrap();
    for f in ["server.key", "tokens.json"] {
        std::fs::copy(da.join("data").join(f), db.join("data").join(f)).unwrap();
    }
    let a = Server::start_with_auth(&da, &strs(&args));
    let b = Server::start_with_auth(&db, &strs(&args));
    let (ks, pw, pk) = keystore(d);
    keymanager_import(&a, &km, &ks, &pw, None);
    // B follows the vault within a poll interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = b.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[("authorization", &vc), ("content-type", "application/json")],
            &serde_json::to_vec(&randao(1)).unwrap(),
        );
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "B never loaded the key");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    let duties = Duties::start(vec![a.port, b.port], &pk, &vc, t0, 4);
    duties.wait_signed(12);
    // B stalls with requests in flight and in its accept queue, across the whole delete: when
    // it resumes it still holds the key, and its vault poll has not run.
    b.signal("STOP");
    std::thread::sleep(Duration::from_millis(100));
    let (response, returned_ms) = keymanager_delete(&a, &km, &pk, t0);
    b.signal("CONT");
    std::thread::sleep(Duration::from_millis(800));
    let sent = duties.finish();
    check(&sent, &response, returned_ms, &d.join("fresh"), (&ks, &pw));
    assert!(
        sent.iter()
            .any(|s| s.started_ms > returned_ms && s.code == "validator_disabled"),
        "B still held the key after the delete and was refused by the database"
    );
    drop(a);
    drop(b);
    pg_drop(&admin_url, &db_name);
}

/// kill -9 at any point of a delete: once a history has been exported (kept under
/// `deleted-keys/`), the key never signs again after the restart; if it still signs, nothing was
/// exported. A delete run again completes.
#[test]
fn kill_9_during_delete_never_leaves_an_exported_key_signing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, km) = vault_server(d, &[]);
    let (ks, pw, pk) = keystore(d);
    keymanager_import(&server, &km, &ks, &pw, None);
    let vc = bearer_sign(d);
    drop(server);
    let data = d.join("data");
    let (id, shares) = (d.join("ops.key"), files(&d.join("shares")));
    let mut args = vec!["--network".to_string(), s(&minimal_network(d)).into()];
    args.extend(unattended(&id, &shares));
    let mut target = 10;
    let (mut exported_rounds, mut intact_rounds) = (0, 0);
    for round in 0..8u64 {
        let mut server = Server::start_with_auth(d, &strs(&args));
        target += 1;
        let r = sign_with(&server, &vc, &pk, &attestation(target - 1, target, 1));
        if r.status != 200 {
            // Disabled or gone from an earlier round: the delete goes on where it stopped.
            assert!(
                matches!(code_of(&r).as_str(), "validator_disabled" | "unknown_key"),
                "{}",
                r.text()
            );
            break;
        }
        // DELETE, and kill -9 a few milliseconds into it.
        let port = server.port;
        let km2 = km.clone();
        let pk2 = pk.clone();
        let del = std::thread::spawn(move || {
            try_request(
                port,
                "DELETE",
                "/eth/v1/keystores",
                &[
                    ("authorization", &km2),
                    ("content-type", "application/json"),
                ],
                &serde_json::to_vec(&json!({"pubkeys": [pk2]})).unwrap(),
            )
        });
        std::thread::sleep(Duration::from_millis(round * 3));
        let _ = server.child.kill();
        let _ = server.child.wait();
        let _ = del.join();
        let exported =
            data.join("deleted-keys").exists() && !files(&data.join("deleted-keys")).is_empty();
        let server = Server::start_with_auth(d, &strs(&args));
        target += 1;
        let r = sign_with(&server, &vc, &pk, &attestation(target - 1, target, 1));
        if exported {
            exported_rounds += 1;
            assert_ne!(
                r.status, 200,
                "round {round}: history exported, yet the key signed"
            );
            break;
        }
        if r.status == 200 {
            intact_rounds += 1;
        } else {
            // Disabled before the export (in the slashing database, and perhaps in the vault
            // too, so not loaded): nothing signs; a delete run again finishes it.
            assert!(
                matches!(code_of(&r).as_str(), "validator_disabled" | "unknown_key"),
                "round {round}: {}",
                r.text()
            );
            break;
        }
    }
    // Whatever state the kills left, a delete completes and returns the full history.
    let server = Server::start_with_auth(d, &strs(&args));
    let r = server.request(
        "DELETE",
        "/eth/v1/keystores",
        &[("authorization", &km), ("content-type", "application/json")],
        &serde_json::to_vec(&json!({"pubkeys": [pk]})).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(
        matches!(
            v["data"][0]["status"].as_str(),
            Some("deleted" | "not_active")
        ),
        "{v}"
    );
    let doc: Value = serde_json::from_str(v["slashing_protection"].as_str().unwrap()).unwrap();
    let last = doc["data"][0]["signed_attestations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["target_epoch"].as_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(last >= 11, "the history holds what was signed: {doc}");
    eprintln!("kill -9 during delete: {intact_rounds} rounds killed before the disable, {exported_rounds} after the export");
}

fn code_of(r: &Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(String::from))
        .unwrap_or_default()
}
