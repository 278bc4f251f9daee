//! The stores decide as the pure reference says: random imported histories and random requests
//! are given to the SQLite store, the PostgreSQL store and `signward_slashing::rules`, and every
//! decision must be the same. Halfway, both stores and the reference are pruned (watermarks
//! without records) and some cases import a second history (floors raised by an import). Each case is one validator; cases run concurrently so the stores'
//! group commit keeps the run short. A failure prints the seed, the imported document and the
//! requests so far.

mod common;

use std::sync::Arc;

use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use signward_core::bytes::{PublicKeyBytes, Root};
use signward_slashing::history::{self, History, MergeReport};
use signward_slashing::interchange::{self, Event};
use signward_slashing::{rules, Check, Decision, Slashable, SlashingDb, SlashingStore};

const GVR: Root = signward_core::bytes::FixedBytes([7u8; 32]);
const CASES: u64 = 192;

/// Where each case is (for the message of a case that stops answering): 1 first import (SQLite),
/// 2 first import (second store), 3 at the first barrier, 4 at the second, 5 and 6 the second
/// import, 7 a check on SQLite, 8 a check on the second store, 9 done.
static PHASE: [std::sync::atomic::AtomicU8; CASES as usize] =
    [const { std::sync::atomic::AtomicU8::new(0) }; CASES as usize];

fn phase(seed: u64, p: u8) {
    PHASE[seed as usize].store(p, std::sync::atomic::Ordering::Relaxed);
}

/// How many cases are in each phase.
fn phases() -> String {
    let mut n = [0usize; 10];
    for p in &PHASE {
        n[p.load(std::sync::atomic::Ordering::Relaxed) as usize] += 1;
    }
    format!("cases per phase (see PHASE): {n:?}")
}
const REQUESTS: usize = 40;
/// Pruning halfway keeps this many epochs (of `SLOTS_PER_EPOCH` slots) below the highest record.
const KEEP_EPOCHS: u64 = 3;
const SLOTS_PER_EPOCH: u64 = 4;

fn pubkey(case: u64) -> PublicKeyBytes {
    let mut b = [0u8; 48];
    b[..8].copy_from_slice(&case.to_be_bytes());
    b[47] = 1;
    PublicKeyBytes::from(b)
}

fn root(n: u8) -> Root {
    Root::from([n; 32])
}

/// A random interchange document for one validator: some blocks and attestations in a small
/// range (so requests meet them), some without a signing root, some in conflict.
fn document(rng: &mut StdRng, pk: &PublicKeyBytes) -> Vec<u8> {
    let mut blocks = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let mut b = serde_json::json!({"slot": rng.gen_range(0u64..30).to_string()});
        if rng.gen_bool(0.7) {
            b["signing_root"] = root(rng.gen_range(1..4)).to_hex().into();
        }
        blocks.push(b);
    }
    let mut atts = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let s = rng.gen_range(0u64..12);
        let t = s + rng.gen_range(0u64..8);
        let mut a =
            serde_json::json!({"source_epoch": s.to_string(), "target_epoch": t.to_string()});
        if rng.gen_bool(0.7) {
            a["signing_root"] = root(rng.gen_range(1..4)).to_hex().into();
        }
        atts.push(a);
    }
    serde_json::to_vec(&serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR.to_hex()},
        "data": [{"pubkey": pk.to_hex(), "signed_blocks": blocks, "signed_attestations": atts}],
    }))
    .unwrap()
}

/// The reference's history after importing `doc`: merged as a store merges it.
fn import_into(mut out: History, doc: &[u8]) -> History {
    interchange::read(doc, |e| {
        if let Event::Validator(v) = e {
            let mut r = MergeReport::default();
            let incoming = History::from_interchange(&v, &mut r)?;
            out = history::merge(std::mem::take(&mut out), &incoming, &mut r);
        }
        Ok(())
    })
    .unwrap();
    out
}

/// A value at the edge of what the stores hold (`i64::MAX`) or beyond it.
fn edge(rng: &mut StdRng) -> u64 {
    [i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX][rng.gen_range(0..3)]
}

fn request(rng: &mut StdRng) -> (Slashable, Root) {
    let slashable = if rng.gen_bool(0.35) {
        Slashable::Block {
            slot: if rng.gen_bool(0.02) {
                edge(rng)
            } else {
                rng.gen_range(0..32)
            },
        }
    } else {
        // Mostly well-formed; sometimes a source after its target, sometimes an edge value.
        let s = rng.gen_range(0u64..14);
        let (s, t) = match rng.gen_range(0..100) {
            0 => (edge(rng), s),
            1 => (s, edge(rng)),
            2..=11 => (s, s.saturating_sub(rng.gen_range(1..3))),
            _ => (s, s + rng.gen_range(0u64..9)),
        };
        Slashable::Attestation {
            source_epoch: s,
            target_epoch: t,
        }
    };
    (slashable, root(rng.gen_range(1..4)))
}

/// One case; returns the decisions taken (all three backends agreeing on each), or the first
/// disagreement or store error. A failing case still passes `halfway` (twice: the prune happens
/// between), so the others are not held up and the failure is reported as it is.
async fn run_case<A: SlashingStore, B: SlashingStore>(
    seed: u64,
    a: &A,
    b: &B,
    halfway: &tokio::sync::Barrier,
) -> Result<Vec<Decision>, String> {
    let mut passed_halfway = false;
    let result = case_steps(seed, a, b, halfway, &mut passed_halfway).await;
    if !passed_halfway {
        halfway.wait().await;
        halfway.wait().await;
    }
    result
}

async fn case_steps<A: SlashingStore, B: SlashingStore>(
    seed: u64,
    a: &A,
    b: &B,
    halfway: &tokio::sync::Barrier,
    passed_halfway: &mut bool,
) -> Result<Vec<Decision>, String> {
    let fail =
        |what: &str, e: signward_slashing::SlashingError| format!("seed {seed}: {what}: {e}");
    let mut rng = StdRng::seed_from_u64(seed);
    let pk = pubkey(seed);
    let doc = document(&mut rng, &pk);
    phase(seed, 1);
    let first = a.import(std::io::Cursor::new(doc.clone())).await;
    phase(seed, 2);
    let second = b.import(std::io::Cursor::new(doc.clone())).await;
    for s in [first, second] {
        s.map_err(|e| fail("import", e))?;
    }
    let mut reference = import_into(History::default(), &doc);
    let mut asked = Vec::new();
    let mut imported = vec![doc];
    let mut decided = Vec::new();
    for i in 0..REQUESTS {
        if i == REQUESTS / 2 {
            // Every case waits here while both stores are pruned.
            phase(seed, 3);
            halfway.wait().await;
            phase(seed, 4);
            halfway.wait().await;
            *passed_halfway = true;
            reference.prune(KEEP_EPOCHS, SLOTS_PER_EPOCH);
            // Sometimes a second history arrives: its lowest records become floors.
            if rng.gen_bool(0.5) {
                let doc = document(&mut rng, &pk);
                phase(seed, 5);
                let first = a.import(std::io::Cursor::new(doc.clone())).await;
                phase(seed, 6);
                let second = b.import(std::io::Cursor::new(doc.clone())).await;
                for s in [first, second] {
                    s.map_err(|e| fail("second import", e))?;
                }
                reference = import_into(reference, &doc);
                imported.push(doc);
            }
        }
        let (slashable, signing_root) = request(&mut rng);
        asked.push(slashable);
        let want = rules::check_and_record(&mut reference, slashable, &signing_root);
        let check = Check {
            pubkey: pk,
            genesis_validators_root: GVR,
            slashable,
            signing_root,
        };
        decided.push(want);
        phase(seed, 7);
        let got_a = a
            .check_and_record(check.clone())
            .await
            .map_err(|e| fail("sqlite check", e))?;
        phase(seed, 8);
        let got_b = b
            .check_and_record(check)
            .await
            .map_err(|e| fail("second store check", e))?;
        if got_a != want || got_b != want {
            return Err(format!(
                "seed {seed}: reference {want:?}, sqlite {got_a:?}, second store {got_b:?}\n\
                 imported: {:?}\nrequests: {asked:?}\nreference history: {reference:?}",
                imported
                    .iter()
                    .map(|d| String::from_utf8_lossy(d))
                    .collect::<Vec<_>>()
            ));
        }
    }
    phase(seed, 9);
    Ok(decided)
}

/// Every case against both stores, all cases at once in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_decide_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let pg_db = match pg_admin_url() {
        Some(admin) => Some(TestDb::create(&admin).await),
        None => None,
    };
    let first = Arc::new(SlashingDb::Sqlite(sqlite_store(&dir)));
    // Without PostgreSQL (a local run that skips it), a second SQLite store stands in.
    let second = Arc::new(match &pg_db {
        Some(db) => SlashingDb::Postgres(pg_store(db).await),
        None => SlashingDb::Sqlite(sqlite_store(&dir)),
    });
    for s in [&first, &second] {
        s.pin_genesis_validators_root(GVR).await.unwrap();
    }
    let halfway = Arc::new(tokio::sync::Barrier::new(CASES as usize + 1));
    let tasks: Vec<_> = (0..CASES)
        .map(|seed| {
            let (a, b, halfway) = (first.clone(), second.clone(), halfway.clone());
            tokio::spawn(async move { run_case(seed, &*a, &*b, &halfway).await })
        })
        .collect();
    // Every case is halfway: prune both stores (all validators at once, as the signer does).
    let wait = || tokio::time::timeout(std::time::Duration::from_secs(120), halfway.wait());
    wait()
        .await
        .unwrap_or_else(|_| panic!("a case stopped before halfway; {}", phases()));
    eprintln!("every case is halfway; pruning");
    // Every wait is bounded: a store that stops answering fails the test instead of hanging it.
    let bound = std::time::Duration::from_secs(120);
    for s in [&first, &second] {
        tokio::time::timeout(bound, s.prune(KEEP_EPOCHS, SLOTS_PER_EPOCH))
            .await
            .unwrap_or_else(|_| panic!("prune did not finish in 120 s; {}", phases()))
            .unwrap();
    }
    wait()
        .await
        .unwrap_or_else(|_| panic!("a case stopped before halfway; {}", phases()));
    eprintln!("pruned; the cases go on");
    // The cases reached every kind of answer, so the comparison was not vacuous.
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        let done = tokio::time::timeout(bound, t)
            .await
            .unwrap_or_else(|_| panic!("a case did not finish in 120 s; {}", phases()));
        for d in done.unwrap().unwrap_or_else(|e| panic!("{e}")) {
            seen.insert(match d {
                Decision::Refused(r) => r.code(),
                Decision::Allowed => "allowed",
                Decision::Repeat => "repeat",
            });
        }
    }
    assert_every_answer_reached(&seen, &["too_far_in_future"]);
    // Close our own connections before the scratch database is dropped (a stall here was
    // seen under load: every case done, the DROP never answered), and bound the cleanup.
    eprintln!("every case done");
    // PostgreSQL decided its batches with the batch statement itself, not check by check after
    // a failure (which would leave `signward_check_batch` untested here).
    if let SlashingDb::Postgres(pg) = &*second {
        assert_eq!(pg.batch_fallbacks(), 0, "a batch statement failed");
    }
    drop((first, second));
    if let Some(db) = pg_db {
        db.drop_db().await;
    }
}
