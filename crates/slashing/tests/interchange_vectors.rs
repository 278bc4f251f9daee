//! The EIP-3076 interchange test suite (all 38 files) against both backends. signward keeps
//! complete history but treats every imported file's lowest records as floors, so each decision
//! must lie between the two modes the suite describes: never allow what complete mode refuses
//! (`should_succeed_complete`), never refuse what minimal mode allows (`should_succeed`).

mod common;

use common::*;
use serde_json::Value;
use signward_core::bytes::{PublicKeyBytes, Root};
use signward_slashing::{Check, Slashable, SlashingStore};

fn num(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

fn files() -> Vec<(String, Value)> {
    let mut v: Vec<_> = std::fs::read_dir(vectors().join("tests/generated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A decision between EIP-3076's two modes: allowed only if complete mode allows it, refused
/// only if minimal mode refuses it. Records how often the two modes differed.
fn within_modes(allowed: bool, case: &Value, what: &str) {
    let complete = case["should_succeed_complete"].as_bool().unwrap();
    let minimal = case["should_succeed"].as_bool().unwrap();
    assert!(
        !allowed || complete,
        "allowed what complete mode refuses: {what}"
    );
    assert!(
        allowed || !minimal,
        "refused what minimal mode allows: {what}"
    );
}

/// Run one test file against a fresh store. Returns the number of checks made.
async fn run_file<S: SlashingStore>(name: &str, test: &Value, store: &S) -> usize {
    let gvr: Root = test["genesis_validators_root"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    store.pin_genesis_validators_root(gvr).await.unwrap();
    let mut checks = 0;
    for (i, step) in test["steps"].as_array().unwrap().iter().enumerate() {
        let bytes = serde_json::to_vec(&step["interchange"]).unwrap();
        let imported = store.import(std::io::Cursor::new(bytes)).await;
        let should_succeed = step["should_succeed"].as_bool().unwrap();
        let slashable = step["contains_slashable_data"].as_bool().unwrap();
        match imported {
            Ok(_) => assert!(should_succeed, "{name} step {i}: import should have failed"),
            Err(e) => {
                assert!(
                    !should_succeed || slashable,
                    "{name} step {i}: import failed: {e}"
                );
                if slashable {
                    break;
                }
                continue;
            }
        }
        for b in step["blocks"].as_array().unwrap() {
            let check = Check {
                pubkey: b["pubkey"]
                    .as_str()
                    .unwrap()
                    .parse::<PublicKeyBytes>()
                    .unwrap(),
                genesis_validators_root: gvr,
                slashable: Slashable::Block {
                    slot: num(&b["slot"]),
                },
                signing_root: b["signing_root"]
                    .as_str()
                    .map(|s| s.parse().unwrap())
                    .unwrap_or_default(),
            };
            let d = store.check_and_record(check).await.unwrap();
            within_modes(
                d.may_sign(),
                b,
                &format!("{name} step {i} block {b}: {d:?}"),
            );
            checks += 1;
        }
        for a in step["attestations"].as_array().unwrap() {
            let check = Check {
                pubkey: a["pubkey"]
                    .as_str()
                    .unwrap()
                    .parse::<PublicKeyBytes>()
                    .unwrap(),
                genesis_validators_root: gvr,
                slashable: Slashable::Attestation {
                    source_epoch: num(&a["source_epoch"]),
                    target_epoch: num(&a["target_epoch"]),
                },
                signing_root: a["signing_root"]
                    .as_str()
                    .map(|s| s.parse().unwrap())
                    .unwrap_or_default(),
            };
            let d = store.check_and_record(check).await.unwrap();
            within_modes(
                d.may_sign(),
                a,
                &format!("{name} step {i} attestation {a}: {d:?}"),
            );
            checks += 1;
        }
    }
    checks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eip3076_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    let files = files();
    assert_eq!(files.len(), 38);
    for (name, test) in &files {
        let store = sqlite_store(&dir);
        total += run_file(name, test, &store).await;
    }
    assert!(total >= 140, "checks made: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eip3076_suite_on_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let mut total = 0;
    for (name, test) in &files() {
        let db = TestDb::create(&admin).await;
        let store = pg_store(&db).await;
        total += run_file(name, test, &store).await;
        drop(store);
        db.drop_db().await;
    }
    assert!(total >= 140, "checks made: {total}");
}
