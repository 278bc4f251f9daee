//! One behaviour suite run against both backends: genesis pinning, repeats, every refusal code,
//! concurrency (many conflicting checks, exactly one allowed), pruning that never weakens
//! protection, export/import round trips, malformed imports, and schema versioning.

mod common;

use std::sync::Arc;

use common::*;
use signward_core::bytes::{PublicKeyBytes, Root};
use signward_slashing::store::ImportReport;
use signward_slashing::{Check, Decision, Refusal, Slashable, SlashingError, SlashingStore};

const GVR: Root = signward_core::bytes::FixedBytes([7u8; 32]);

fn pk(n: u8) -> PublicKeyBytes {
    PublicKeyBytes::from([n; 48])
}

fn root(n: u8) -> Root {
    Root::from([n; 32])
}

fn block(v: u8, slot: u64, r: u8) -> Check {
    Check {
        pubkey: pk(v),
        genesis_validators_root: GVR,
        slashable: Slashable::Block { slot },
        signing_root: root(r),
    }
}

fn att(v: u8, source: u64, target: u64, r: u8) -> Check {
    Check {
        pubkey: pk(v),
        genesis_validators_root: GVR,
        slashable: Slashable::Attestation {
            source_epoch: source,
            target_epoch: target,
        },
        signing_root: root(r),
    }
}

async fn decide<S: SlashingStore>(s: &S, c: Check) -> Decision {
    s.check_and_record(c).await.unwrap()
}

use Decision::{Allowed, Refused, Repeat};

async fn rules<S: SlashingStore>(s: &S) {
    // First request pins the genesis validators root; another chain is refused.
    assert_eq!(decide(s, block(1, 10, 1)).await, Allowed);
    assert_eq!(s.genesis_validators_root().await.unwrap(), Some(GVR));
    let mut other = block(1, 11, 1);
    other.genesis_validators_root = root(9);
    assert_eq!(decide(s, other).await, Refused(Refusal::GenesisMismatch));
    assert!(matches!(
        s.pin_genesis_validators_root(root(9)).await,
        Err(SlashingError::GenesisMismatch { .. })
    ));
    s.pin_genesis_validators_root(GVR).await.unwrap();

    // Blocks.
    assert_eq!(decide(s, block(1, 10, 1)).await, Repeat);
    assert_eq!(
        decide(s, block(1, 10, 2)).await,
        Refused(Refusal::DoubleProposal)
    );
    assert_eq!(
        decide(s, block(1, 9, 3)).await,
        Refused(Refusal::BelowWatermark)
    );
    assert_eq!(decide(s, block(1, 12, 3)).await, Allowed);
    assert_eq!(
        decide(s, block(1, 11, 3)).await,
        Allowed,
        "gap above the minimum is fine"
    );
    assert_eq!(
        decide(s, block(2, 1, 1)).await,
        Allowed,
        "validators are independent"
    );

    // Attestations.
    assert_eq!(decide(s, att(1, 5, 10, 1)).await, Allowed);
    assert_eq!(decide(s, att(1, 5, 10, 1)).await, Repeat);
    assert_eq!(
        decide(s, att(1, 5, 10, 2)).await,
        Refused(Refusal::DoubleVote)
    );
    assert_eq!(
        decide(s, att(1, 4, 10, 1)).await,
        Refused(Refusal::DoubleVote)
    );
    assert_eq!(
        decide(s, att(1, 4, 11, 1)).await,
        Refused(Refusal::SurroundVote),
        "surrounds 5->10"
    );
    assert_eq!(
        decide(s, att(1, 6, 9, 1)).await,
        Refused(Refusal::SurroundVote),
        "surrounded by 5->10"
    );
    assert_eq!(
        decide(s, att(1, 12, 11, 1)).await,
        Refused(Refusal::SourceAfterTarget)
    );
    assert_eq!(
        decide(s, att(1, 4, 4, 1)).await,
        Refused(Refusal::BelowWatermark),
        "source below min"
    );
    assert_eq!(decide(s, att(1, 10, 12, 1)).await, Allowed);
    assert_eq!(decide(s, att(1, 12, 13, 1)).await, Allowed);
    // Out-of-range values are refused as too far in the future, for that request only, and the
    // same way on both backends.
    assert_eq!(
        decide(s, block(1, u64::MAX, 1)).await,
        Refused(Refusal::TooFarInFuture)
    );
    assert_eq!(
        decide(s, att(1, 20, u64::MAX, 1)).await,
        Refused(Refusal::TooFarInFuture)
    );
    assert_eq!(decide(s, block(1, 13, 1)).await, Allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rules(&sqlite_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    rules(&pg_store(&db).await).await;
    db.drop_db().await;
}

/// N concurrent checks for one validator and one target with different roots: exactly one may
/// sign. Also N concurrent double proposals.
async fn concurrent<S: SlashingStore + 'static>(s: Arc<S>, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s1 = s.clone();
        tasks.push(tokio::spawn(async move {
            let s = s1;
            let mut c = att(3, 100, 101, 0);
            c.signing_root = Root::from({
                let mut r = [0u8; 32];
                r[..8].copy_from_slice(&(i as u64).to_le_bytes());
                r
            });
            s.check_and_record(c).await.unwrap()
        }));
        let s2 = s.clone();
        tasks.push(tokio::spawn(async move {
            let s = s2;
            let mut c = block(3, 500, 0);
            c.signing_root = Root::from({
                let mut r = [1u8; 32];
                r[..8].copy_from_slice(&(i as u64).to_le_bytes());
                r
            });
            s.check_and_record(c).await.unwrap()
        }));
    }
    let mut allowed = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Allowed => allowed += 1,
            Refused(Refusal::DoubleVote | Refusal::DoubleProposal) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(allowed, 2, "one attestation and one block");
    assert_eq!(refused, 2 * n - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_conflicting_requests_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent(Arc::new(sqlite_store(&dir)), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_conflicting_requests_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    concurrent(Arc::new(pg_store(&db).await), 1000).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_stores_share_one_database() {
    // Two independent pools (as two signward processes would have) on one database.
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let a = Arc::new(pg_store(&db).await);
    let b = Arc::new(pg_store(&db).await);
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut c = att(4, 7, 8, 0);
            c.signing_root = Root::from({
                let mut r = [2u8; 32];
                r[..8].copy_from_slice(&i.to_le_bytes());
                r
            });
            s.check_and_record(c).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 1);
    drop((a, b));
    db.drop_db().await;
}

async fn prune_never_weakens<S: SlashingStore>(s: &S) {
    for e in 0..50u64 {
        assert_eq!(decide(s, att(5, e, e + 1, 1)).await, Allowed);
        assert_eq!(decide(s, block(5, e * 8, 1)).await, Allowed);
    }
    // A vote from 20 to 60 surrounds old history; before pruning it is refused.
    assert_eq!(
        decide(s, att(5, 20, 60, 9)).await,
        Refused(Refusal::SurroundVote)
    );
    let report = s.prune(10, 8).await.unwrap();
    assert!(
        report.attestations_deleted >= 35 && report.blocks_deleted >= 35,
        "{report:?}"
    );
    // Still refused after the old rows are gone: the watermarks cover them.
    let after = decide(s, att(5, 20, 60, 9)).await;
    assert!(matches!(after, Refused(_)), "{after:?}");
    assert_eq!(
        decide(s, att(5, 3, 4, 1)).await,
        Refused(Refusal::BelowWatermark)
    );
    assert_eq!(
        decide(s, block(5, 16, 1)).await,
        Refused(Refusal::BelowWatermark)
    );
    // Recent history is intact: repeats and double votes behave as before.
    assert_eq!(decide(s, att(5, 49, 50, 1)).await, Repeat);
    assert_eq!(
        decide(s, att(5, 49, 50, 2)).await,
        Refused(Refusal::DoubleVote)
    );
    assert_eq!(decide(s, att(5, 50, 51, 1)).await, Allowed);
    assert_eq!(decide(s, block(5, 400, 1)).await, Allowed);
    // Pruning again is idempotent in effect.
    s.prune(10, 8).await.unwrap();
    assert!(matches!(decide(s, att(5, 20, 60, 9)).await, Refused(_)));
    assert_eq!(
        decide(s, att(5, 3, 4, 1)).await,
        Refused(Refusal::BelowWatermark)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    prune_never_weakens(&sqlite_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    prune_never_weakens(&pg_store(&db).await).await;
    db.drop_db().await;
}

/// Export from one store, import into a fresh one: the same requests get the same answers.
async fn round_trip<S: SlashingStore, T: SlashingStore>(a: &S, b: &T, c: &T) {
    for e in 0..20u64 {
        decide(a, att(6, e, e + 1, 1)).await;
        decide(a, block(6, e, 1)).await;
    }
    a.prune(5, 1).await.unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let report = a.export(Shared(out.clone()), false).await.unwrap();
    assert_eq!(report.validators, 1);
    let bytes = out.lock().unwrap().clone();
    let imported = b.import(std::io::Cursor::new(bytes.clone())).await.unwrap();
    assert_eq!(imported.validators, 1);
    // Re-import is idempotent.
    let again = b.import(std::io::Cursor::new(bytes)).await.unwrap();
    assert_eq!(again.blocks + again.attestations, 0);
    assert!(again.duplicates > 0);
    for (check, expect) in [
        (att(6, 19, 20, 1), Repeat),
        (att(6, 19, 20, 2), Refused(Refusal::DoubleVote)),
        (att(6, 1, 2, 1), Refused(Refusal::BelowWatermark)),
        (att(6, 20, 21, 1), Allowed),
        (block(6, 19, 1), Repeat),
        (block(6, 3, 1), Refused(Refusal::BelowWatermark)),
        (block(6, 25, 1), Allowed),
    ] {
        assert_eq!(decide(b, check).await, expect);
    }
    // The minimal form protects too (no repeats: roots are gone).
    let out2 = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    a.export(Shared(out2.clone()), true).await.unwrap();
    let bytes = out2.lock().unwrap().clone();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["data"][0]["signed_attestations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    c.import(std::io::Cursor::new(bytes)).await.unwrap();
    assert_eq!(
        decide(c, att(6, 19, 20, 1)).await,
        Refused(Refusal::DoubleVote)
    );
    assert_eq!(decide(c, att(6, 20, 21, 1)).await, Allowed);
    assert_eq!(
        decide(c, block(6, 19, 1)).await,
        Refused(Refusal::DoubleProposal)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(
        &sqlite_store(&dir),
        &sqlite_store(&dir),
        &sqlite_store(&dir),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (db1, db2) = (TestDb::create(&admin).await, TestDb::create(&admin).await);
    round_trip(
        &sqlite_store(&dir),
        &pg_store(&db1).await,
        &pg_store(&db2).await,
    )
    .await;
    db1.drop_db().await;
    db2.drop_db().await;
}

fn extra_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(vectors().join("web3signer-extra"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

type Outcome = Vec<(String, Result<ImportReport, String>)>;

async fn import_one<S: SlashingStore>(
    s: &S,
    f: &std::path::Path,
) -> (String, Result<ImportReport, String>) {
    let r = s
        .import(std::fs::File::open(f).unwrap())
        .await
        .map_err(|e| e.class().to_string());
    (f.file_name().unwrap().to_string_lossy().into_owned(), r)
}

fn check_extras(results: &Outcome) {
    let get = |name: &str| results.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for bad in [
        "dataFieldNotArray.json",
        "missingPublicKey.json",
        "errorInSecondBlock.json",
        "missingDataField.json",
    ] {
        assert_eq!(get(bad), Err("interchange".to_string()), "{bad}");
    }
    // A signing root must be 32 bytes; Web3Signer's "0x123456" examples are refused, not padded.
    for bad in ["duplicateAttestation.json", "singleValidAttestation.json"] {
        assert_eq!(get(bad), Err("interchange".to_string()), "{bad}");
    }
    for ok in [
        "duplicateBlocks.json",
        "conflictingBlocks.json",
        "emptyDataArray.json",
        "singleValidBlock.json",
        "multipleNullSigningRootBlock.json",
        "multipleNullSigningRootAttestation.json",
    ] {
        assert!(get(ok).is_ok(), "{ok}: {:?}", get(ok));
    }
    let dup = get("duplicateBlocks.json").unwrap();
    assert_eq!((dup.blocks, dup.duplicates), (1, 1));
    assert_eq!(get("conflictingBlocks.json").unwrap().conflicts, 1);
    let nulls = get("multipleNullSigningRootAttestation.json").unwrap();
    assert_eq!(nulls.attestations, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_duplicate_imports_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for f in extra_files() {
        let s = sqlite_store(&dir);
        results.push(import_one(&s, &f).await);
        // Importing the same file again adds nothing.
        if let (_, Ok(first)) = results.last().unwrap() {
            let again = import_one(&s, &f).await.1.unwrap();
            assert_eq!(again.blocks + again.attestations, 0);
            assert_eq!(
                again.duplicates,
                first.blocks + first.attestations + first.duplicates
            );
        }
    }
    check_extras(&results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_duplicate_imports_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let mut results = Vec::new();
    for f in extra_files() {
        let db = TestDb::create(&admin).await;
        let s = pg_store(&db).await;
        results.push(import_one(&s, &f).await);
        if let (_, Ok(first)) = results.last().unwrap() {
            let again = import_one(&s, &f).await.1.unwrap();
            assert_eq!(again.blocks + again.attestations, 0);
            assert_eq!(
                again.duplicates,
                first.blocks + first.attestations + first.duplicates
            );
        }
        drop(s);
        db.drop_db().await;
    }
    check_extras(&results);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(signward_slashing::sqlite::SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        signward_slashing::sqlite::SqliteStore::open(&path),
        Err(SlashingError::SchemaTooNew { found: 99, .. })
    ));
}

#[tokio::test]
async fn database_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/s.sqlite");
    drop(signward_slashing::sqlite::SqliteStore::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

/// A shared in-memory writer for exports.
#[derive(Clone, Default)]
struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn export_json<S: SlashingStore>(s: &S) -> serde_json::Value {
    let buf = Buf::default();
    s.export(buf.clone(), false).await.unwrap();
    let bytes = buf.0.lock().unwrap().clone();
    serde_json::from_slice(&bytes).unwrap()
}

/// Disabling a validator: checks and non-slashable messages are refused by every store sharing
/// the database, from the moment the call returns; enabling it again restores signing.
async fn disable_enable<S: SlashingStore>(s: &S, other: &S) {
    assert_eq!(decide(s, att(8, 1, 2, 1)).await, Allowed);
    assert_eq!(s.may_sign(pk(8), Some(GVR)).await.unwrap(), None);
    s.set_enabled(vec![pk(8), pk(9)], false, false)
        .await
        .unwrap();
    for store in [s, other] {
        assert_eq!(
            decide(store, att(8, 2, 3, 1)).await,
            Refused(Refusal::Disabled)
        );
        assert_eq!(
            decide(store, block(9, 5, 1)).await,
            Refused(Refusal::Disabled)
        );
        assert_eq!(
            store.may_sign(pk(8), Some(GVR)).await.unwrap(),
            Some(Refusal::Disabled)
        );
    }
    let mut disabled = s.disabled().await.unwrap();
    disabled.sort();
    assert_eq!(disabled, vec![pk(8), pk(9)]);
    // only_known leaves unknown validators unrecorded.
    s.set_enabled(vec![pk(10)], false, true).await.unwrap();
    assert_eq!(s.may_sign(pk(10), Some(GVR)).await.unwrap(), None);
    // Another chain is refused for non-slashable messages too.
    assert_eq!(
        s.may_sign(pk(10), Some(root(99))).await.unwrap(),
        Some(Refusal::GenesisMismatch)
    );
    s.set_enabled(vec![pk(8)], true, false).await.unwrap();
    assert_eq!(decide(other, att(8, 2, 3, 1)).await, Allowed);
    assert_eq!(other.may_sign(pk(8), Some(GVR)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    let (a, b) = (
        signward_slashing::sqlite::SqliteStore::open(&path).unwrap(),
        signward_slashing::sqlite::SqliteStore::open(&path).unwrap(),
    );
    disable_enable(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    disable_enable(&pg_store(&db).await, &pg_store(&db).await).await;
    db.drop_db().await;
}

/// Checks race a disable: every check that was allowed is in the export taken after the disable
/// returned, and every check started after it returned is refused.
///
/// Workers on both instances keep checking new targets (paced, so the disable is not starved of
/// the SQLite write lock) until each has been refused for the disable, so the race happens
/// however the machine schedules them: a fixed set of timed checks could all finish before the
/// disable on a loaded machine, and then nothing would race.
async fn disable_races_checks<S: SlashingStore + 'static>(s: Arc<S>, other: Arc<S>) {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;
    const WORKERS: u64 = 8;
    const MAX_CHECKS: u64 = 100_000;
    assert_eq!(decide(&*s, att(11, 0, 1, 0)).await, Allowed);
    let next = Arc::new(AtomicU64::new(2));
    let done = Arc::new(AtomicUsize::new(0));
    let disable_returned = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let st = if w % 2 == 0 { s.clone() } else { other.clone() };
        let (next, done, returned) = (next.clone(), done.clone(), disable_returned.clone());
        workers.push(tokio::spawn(async move {
            // (target, decision, started after the disable returned)
            let mut decided = Vec::new();
            loop {
                let target = next.fetch_add(1, SeqCst);
                assert!(target < MAX_CHECKS, "the disable never took effect");
                let after = returned.load(SeqCst);
                let d = st.check_and_record(att(11, 1, target, 1)).await.unwrap();
                done.fetch_add(1, SeqCst);
                let refused = d == Refused(Refusal::Disabled);
                decided.push((target, d, after));
                if refused {
                    return decided;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    // Disable once checks are under way on both instances.
    let under_way = async {
        while done.load(SeqCst) < 20 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), under_way)
        .await
        .is_err()
    {
        for w in workers {
            w.await.unwrap(); // shows a worker's panic, if one stopped them
        }
        panic!("checks never got under way");
    }
    s.set_enabled(vec![pk(11)], false, false).await.unwrap();
    disable_returned.store(true, SeqCst);
    let exported = export_json(&*s).await;
    let recorded: std::collections::HashSet<u64> = exported["data"][0]["signed_attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target_epoch"].as_str().unwrap().parse().unwrap())
        .collect();
    let (mut allowed, mut disabled) = (0, 0);
    for w in workers {
        for (target, d, after) in w.await.unwrap() {
            match d {
                Allowed => {
                    allowed += 1;
                    assert!(
                        !after,
                        "target {target} allowed though asked after the disable"
                    );
                    assert!(
                        recorded.contains(&target),
                        "target {target} signed but not exported"
                    );
                }
                Refused(Refusal::Disabled) => disabled += 1,
                // Same source, distinct targets: nothing else may refuse them.
                other => panic!("unexpected {other:?} for target {target}"),
            }
        }
    }
    assert_eq!(
        disabled, WORKERS as usize,
        "every worker ends on the disable"
    );
    assert!(allowed >= 20, "checks were under way before the disable");
    assert_eq!(recorded.len(), allowed + 1);
    // After the disable, both instances refuse.
    for st in [&s, &other] {
        assert_eq!(
            st.check_and_record(att(11, 1, MAX_CHECKS + 1, 1))
                .await
                .unwrap(),
            Refused(Refusal::Disabled)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_races_checks_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    disable_races_checks(
        Arc::new(signward_slashing::sqlite::SqliteStore::open(&path).unwrap()),
        Arc::new(signward_slashing::sqlite::SqliteStore::open(&path).unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_races_checks_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    disable_races_checks(Arc::new(pg_store(&db).await), Arc::new(pg_store(&db).await)).await;
    db.drop_db().await;
}

fn doc(v: u8, blocks: &[u64], atts: &[(u64, u64)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR.to_hex()},
        "data": [{
            "pubkey": pk(v).to_hex(),
            "signed_blocks": blocks.iter().map(|s| serde_json::json!({"slot": s.to_string()})).collect::<Vec<_>>(),
            "signed_attestations": atts.iter().map(|(s, t)| serde_json::json!({"source_epoch": s.to_string(), "target_epoch": t.to_string()})).collect::<Vec<_>>(),
        }]
    }))
    .unwrap()
}

/// An import never lowers protection: a minimal history, then an older one, leaves the first
/// floor in place; a record with the same target and a lower source keeps every vote it
/// surrounds refused. The result survives an export and a re-import elsewhere.
async fn imports_only_raise<S: SlashingStore>(s: &S, fresh: &S) {
    s.pin_genesis_validators_root(GVR).await.unwrap();
    s.import(std::io::Cursor::new(doc(12, &[100], &[(49, 50)])))
        .await
        .unwrap();
    let older = s
        .import(std::io::Cursor::new(doc(
            12,
            &[10, 20],
            &[(9, 10), (19, 20)],
        )))
        .await
        .unwrap();
    assert_eq!(older.below_floor, 4);
    // Stored (5, 60); imported (2, 60): the vote (3, 59) is surrounded by (2, 60).
    s.import(std::io::Cursor::new(doc(13, &[], &[(5, 60)])))
        .await
        .unwrap();
    s.import(std::io::Cursor::new(doc(13, &[], &[(2, 60)])))
        .await
        .unwrap();
    let exported = serde_json::to_vec(&export_json(s).await).unwrap();
    fresh.import(std::io::Cursor::new(exported)).await.unwrap();
    for store in [s, fresh] {
        for slot in [11, 50, 99, 100] {
            assert!(
                matches!(decide(store, block(12, slot, 1)).await, Refused(_)),
                "block {slot}"
            );
        }
        for (a, b) in [(20, 21), (30, 40), (48, 49), (49, 50)] {
            assert!(
                matches!(decide(store, att(12, a, b, 1)).await, Refused(_)),
                "vote ({a},{b})"
            );
        }
        for (a, b) in [(3, 59), (4, 59), (1, 61), (4, 61)] {
            assert!(
                matches!(decide(store, att(13, a, b, 1)).await, Refused(_)),
                "vote ({a},{b})"
            );
        }
    }
    assert_eq!(decide(s, block(12, 101, 1)).await, Allowed);
    assert_eq!(decide(s, att(12, 50, 51, 1)).await, Allowed);
    assert_eq!(decide(s, att(13, 5, 61, 1)).await, Allowed);
    // A newer history imported on top of an older one leaves no gap: it may be a minimal one,
    // whose signer signed anything below its record.
    s.import(std::io::Cursor::new(doc(14, &[10, 20], &[(1, 2), (2, 3)])))
        .await
        .unwrap();
    s.import(std::io::Cursor::new(doc(14, &[100], &[(49, 50)])))
        .await
        .unwrap();
    for slot in [21, 50, 99, 100] {
        assert!(
            matches!(decide(s, block(14, slot, 1)).await, Refused(_)),
            "block {slot}"
        );
    }
    for (a, b) in [(3, 4), (30, 31), (48, 49)] {
        assert!(
            matches!(decide(s, att(14, a, b, 1)).await, Refused(_)),
            "vote ({a},{b})"
        );
    }
    assert_eq!(decide(s, block(14, 101, 1)).await, Allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_only_raise_protection_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    imports_only_raise(&sqlite_store(&dir), &sqlite_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_only_raise_protection_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let (db1, db2) = (TestDb::create(&admin).await, TestDb::create(&admin).await);
    imports_only_raise(&pg_store(&db1).await, &pg_store(&db2).await).await;
    db1.drop_db().await;
    db2.drop_db().await;
}

/// A schema-1 database (before validators could be disabled) is migrated in place: its history
/// is kept and its validators are enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_one_is_migrated_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    {
        let s = signward_slashing::sqlite::SqliteStore::open(&path).unwrap();
        assert_eq!(decide(&s, att(1, 5, 6, 1)).await, Allowed);
    }
    // Turn it back into schema 1: no `enabled` column.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE validators DROP COLUMN enabled;
         UPDATE meta SET value = 1 WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let s = signward_slashing::sqlite::SqliteStore::open(&path).unwrap();
    assert_eq!(
        decide(&s, att(1, 5, 6, 2)).await,
        Refused(Refusal::DoubleVote)
    );
    assert_eq!(decide(&s, att(1, 6, 7, 1)).await, Allowed);
    assert!(s.disabled().await.unwrap().is_empty());
}

/// Two instances' batches over many validators at once (as a slot's burst arrives at two
/// signward processes): for each validator, conflicting votes for one target and a vote that
/// would surround it race each other across both stores. Batches lock validators in key order,
/// so none deadlocks (every check is answered), and each validator gets exactly one vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_stores_decide_bursts_over_many_validators() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let a = Arc::new(pg_store(&db).await);
    let b = Arc::new(pg_store(&db).await);
    const VALIDATORS: u8 = 64;
    const TRIES: u8 = 6;
    let mut tasks = Vec::new();
    for t in 0..TRIES {
        // Validators in opposite orders on the two stores, so the batches' arrival orders differ.
        for v in 0..VALIDATORS {
            let (s, v) = if t % 2 == 0 {
                (a.clone(), v)
            } else {
                (b.clone(), VALIDATORS - 1 - v)
            };
            tasks.push(tokio::spawn(async move {
                let c = if t == TRIES - 1 {
                    att(v, 1, 20, 200) // surrounds (5, 6) if that was recorded first
                } else {
                    att(v, 5, 6, t)
                };
                (v, s.check_and_record(c).await.unwrap())
            }));
        }
    }
    let mut allowed = vec![0; VALIDATORS as usize];
    for t in tasks {
        let (v, d) = t.await.unwrap();
        match d {
            Allowed => allowed[v as usize] += 1,
            Refused(Refusal::DoubleVote | Refusal::SurroundVote | Refusal::BelowWatermark) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Either one (5, 6) vote, or the surrounding vote first and then (5, 6) refused as
    // surrounded: one vote per validator whatever the order.
    assert!(
        allowed.iter().all(|&n| n == 1),
        "votes per validator: {allowed:?}"
    );
    // The batch statement decided every batch: none failed over to single checks (two
    // instances' batches lock in the same key order, so they never deadlock).
    assert_eq!((a.batch_fallbacks(), b.batch_fallbacks()), (0, 0));
    drop((a, b));
    db.drop_db().await;
}

/// An import that creates validators (listed against key order, as a file may list them) while
/// another instance's check batches create the same validators (in key order): every path that
/// creates several validators takes one lock first, so neither waits on the other in a cycle.
/// Without it PostgreSQL broke such cycles after a second by failing one side (the import, or
/// the batch, which then fell back to single checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_and_check_batches_create_the_same_validators_without_deadlock() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let a = Arc::new(pg_store(&db).await);
    let b = Arc::new(pg_store(&db).await);
    a.pin_genesis_validators_root(GVR).await.unwrap();
    const ROUNDS: u16 = 20;
    const PER_ROUND: u16 = 40;
    let key = |n: u16| {
        let mut k = [0u8; 48];
        k[..2].copy_from_slice(&n.to_be_bytes());
        k[47] = 9;
        PublicKeyBytes::from(k)
    };
    for r in 0..ROUNDS {
        let keys: Vec<PublicKeyBytes> = (0..PER_ROUND).map(|i| key(r * PER_ROUND + i)).collect();
        let file = serde_json::to_vec(&serde_json::json!({
            "metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR.to_hex()},
            "data": keys.iter().rev().map(|k| serde_json::json!({
                "pubkey": k.to_hex(),
                "signed_blocks": [],
                "signed_attestations": [{"source_epoch": "1", "target_epoch": "2"}],
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let import = {
            let a = a.clone();
            tokio::spawn(async move { a.import(std::io::Cursor::new(file)).await })
        };
        let checks: Vec<_> = keys
            .iter()
            .map(|k| {
                let (b, k) = (b.clone(), *k);
                tokio::spawn(async move {
                    b.check_and_record(Check {
                        pubkey: k,
                        genesis_validators_root: GVR,
                        slashable: Slashable::Attestation {
                            source_epoch: 10,
                            target_epoch: 11,
                        },
                        signing_root: root(1),
                    })
                    .await
                })
            })
            .collect();
        import.await.unwrap().expect("the import fails in no round");
        for c in checks {
            assert_eq!(c.await.unwrap().unwrap(), Allowed);
        }
    }
    assert_eq!(b.batch_fallbacks(), 0, "a batch failed (a deadlock?)");
    drop((a, b));
    db.drop_db().await;
}
