//! Bulk interchange work against a pure model: imports in batches (boundaries mid-file, a
//! validator repeated across a boundary, validators new to the database and validators already
//! there), an import that fails half-way, pruning in batches, and exports. Each backend's export
//! must be byte for byte what `history::merge` and `History::prune`, applied one entry at a time
//! and written by `store::write_history`, say; so SQLite and PostgreSQL also agree with each other.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use signward_core::bytes::{PublicKeyBytes, Root, Uint64};
use signward_slashing::history::{merge, History, MergeReport};
use signward_slashing::interchange::{
    SignedAttestation, SignedBlock, ValidatorHistory, Writer, BATCH_ROWS,
};
use signward_slashing::store::{write_history, ExportReport};
use signward_slashing::SlashingStore;

const GVR: Root = signward_core::bytes::FixedBytes([7u8; 32]);

fn pubkey(n: u64) -> PublicKeyBytes {
    let mut b = [0u8; 48];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[47] = 0xb0;
    PublicKeyBytes::from(b)
}

/// One random entry: `records` attestations in an increasing run from a random start, with some
/// gaps, some without a root, some disagreeing with the model's earlier entry (other roots, other
/// sources at the same target), and a few blocks.
fn entry(rng: &mut StdRng, n: u64, records: usize) -> ValidatorHistory {
    let mut target = rng.gen_range(1u64..40);
    let mut atts = Vec::with_capacity(records);
    for _ in 0..records {
        let source = target - rng.gen_range(0..=target.min(2));
        let signing_root = rng
            .gen_bool(0.9)
            .then(|| Root::from([rng.gen_range(1u8..3); 32]));
        atts.push(SignedAttestation {
            source_epoch: Uint64(source),
            target_epoch: Uint64(target),
            signing_root,
        });
        target += rng.gen_range(1..3);
    }
    let blocks = (0..rng.gen_range(0..4))
        .map(|_| SignedBlock {
            slot: Uint64(rng.gen_range(0u64..300)),
            signing_root: rng
                .gen_bool(0.8)
                .then(|| Root::from([rng.gen_range(1u8..3); 32])),
        })
        .collect();
    ValidatorHistory {
        pubkey: pubkey(n),
        signed_blocks: blocks,
        signed_attestations: atts,
    }
}

fn document(entries: &[ValidatorHistory]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &GVR).unwrap();
    for v in entries {
        w.validator(&v.pubkey, &v.signed_blocks, &v.signed_attestations)
            .unwrap();
    }
    w.finish().unwrap()
}

/// The model: validators in the order the database first saw them, each with its history.
#[derive(Default, Clone)]
struct Model {
    order: Vec<PublicKeyBytes>,
    histories: HashMap<PublicKeyBytes, History>,
}

impl Model {
    /// Import entries one at a time, as `history` says.
    fn import(&mut self, entries: &[ValidatorHistory]) {
        for v in entries {
            let mut m = MergeReport::default();
            let incoming = History::from_interchange(v, &mut m).unwrap();
            let stored = match self.histories.remove(&v.pubkey) {
                Some(h) => h,
                None => {
                    self.order.push(v.pubkey);
                    History::default()
                }
            };
            self.histories
                .insert(v.pubkey, merge(stored, &incoming, &mut m));
        }
    }

    fn prune(&mut self, keep_epochs: u64, slots_per_epoch: u64) {
        for h in self.histories.values_mut() {
            h.prune(keep_epochs, slots_per_epoch);
        }
    }

    /// The complete export the stores must write.
    fn export(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &GVR).unwrap();
        let mut report = ExportReport::default();
        for pk in &self.order {
            let h = &self.histories[pk];
            let blocks = h
                .blocks
                .iter()
                .map(|(s, r)| SignedBlock {
                    slot: Uint64(*s as u64),
                    signing_root: *r,
                })
                .collect();
            let atts = h
                .attestations
                .iter()
                .map(|(t, (s, r))| SignedAttestation {
                    source_epoch: Uint64(*s as u64),
                    target_epoch: Uint64(*t as u64),
                    signing_root: *r,
                })
                .collect();
            let wm = h.watermarks;
            write_history(
                &mut w,
                pk,
                blocks,
                atts,
                (wm.block_slot, wm.att_source, wm.att_target),
                false,
                &mut report,
            )
            .unwrap();
        }
        w.finish().unwrap()
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn export<S: SlashingStore>(s: &S) -> Vec<u8> {
    let out = Shared::default();
    s.export(out.clone(), false).await.unwrap();
    let bytes = out.0.lock().unwrap().clone();
    bytes
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.chars().take(600).collect()
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let from = at.saturating_sub(200);
        panic!(
            "{what}: export differs from the model at byte {at}\n got: {}\nwant: {}",
            show(&got[from..]),
            show(&want[from..])
        );
    }
}

/// Three files. The first crosses a batch boundary, repeats validators inside it (some across
/// the boundary), and meets validators the database already knows without records. The second
/// overlaps the first (stored histories merged) and adds new validators. Then a prune, with more
/// validators than a prune batch.
async fn imports_match_the_model<S: SlashingStore>(s: &S, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    s.pin_genesis_validators_root(GVR).await.unwrap();
    // Known to the database before any import (so merged, not fast-pathed), without records.
    let known: Vec<u64> = (0..20).map(|i| i * 7).collect();
    s.set_enabled(known.iter().map(|n| pubkey(*n)).collect(), true, false)
        .await
        .unwrap();
    model.order.extend(known.iter().map(|n| pubkey(*n)));
    for n in &known {
        model.histories.insert(pubkey(*n), History::default());
    }

    let mut first: Vec<ValidatorHistory> = (0..400).map(|n| entry(&mut rng, n, 100)).collect();
    let rows: usize = first
        .iter()
        .map(|v| 1 + v.signed_blocks.len() + v.signed_attestations.len())
        .sum();
    assert!(
        rows > BATCH_ROWS + 1000,
        "the file must cross a batch boundary"
    );
    // The same validator again, late in the file (after the boundary) and right after itself.
    for n in [3u64, 5, 250, 321] {
        first.push(entry(&mut rng, n, 30));
    }
    let again = entry(&mut rng, 399, 5);
    first.insert(200, again);
    let r = s
        .import(std::io::Cursor::new(document(&first)))
        .await
        .unwrap();
    assert_eq!(r.validators, first.len() as u64);
    model.import(&first);
    assert_same("first import", &export(s).await, &model.export());

    let second: Vec<ValidatorHistory> = (300..700).map(|n| entry(&mut rng, n, 60)).collect();
    s.import(std::io::Cursor::new(document(&second)))
        .await
        .unwrap();
    model.import(&second);
    assert_same("second import", &export(s).await, &model.export());

    // Importing an export changes nothing.
    let exported = export(s).await;
    let r = s
        .import(std::io::Cursor::new(exported.clone()))
        .await
        .unwrap();
    assert_eq!((r.blocks, r.attestations), (0, 0));
    assert_same("re-import", &export(s).await, &exported);

    s.prune(3, 4).await.unwrap();
    model.prune(3, 4);
    assert_same("prune", &export(s).await, &model.export());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_match_the_model_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    imports_match_the_model(&sqlite_store(&dir), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_match_the_model_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    imports_match_the_model(&pg_store(&db).await, 1).await;
    db.drop_db().await;
}

/// An import that fails half-way (a malformed entry after the first batch boundary, or one
/// whose epoch is beyond `i64`) keeps every entry before the failure, whole, and nothing after it,
/// as importing one entry at a time would; the database stays usable and a later import of the
/// rest completes it.
async fn failure_half_way<S: SlashingStore>(s: &S) {
    let mut rng = StdRng::seed_from_u64(2);
    let entries: Vec<ValidatorHistory> = (0..420).map(|n| entry(&mut rng, n, 100)).collect();
    let bad_at = 360;
    let good = document(&entries[..bad_at]);
    // The bad entry: a source epoch that is not a number.
    let mut text = String::from_utf8(good).unwrap();
    let tail = text.split_off(text.len() - "\n]}\n".len());
    text.push_str(&format!(
        ",\n{{\"pubkey\":\"{}\",\"signed_blocks\":[],\"signed_attestations\":[{{\"source_epoch\":\"x\",\"target_epoch\":\"2\"}}]}}",
        pubkey(9999).to_hex()
    ));
    let rest = String::from_utf8(document(&entries[bad_at..])).unwrap();
    let rest_data = &rest[rest.find("\n{\"pubkey\"").unwrap()..rest.len() - tail.len()];
    text.push(',');
    text.push_str(rest_data);
    text.push_str(&tail);
    let err = s.import(std::io::Cursor::new(text.into_bytes())).await;
    assert!(
        matches!(err, Err(signward_slashing::SlashingError::Interchange(_))),
        "{err:?}"
    );
    let mut model = Model::default();
    model.import(&entries[..bad_at]);
    assert_same("after the failure", &export(s).await, &model.export());

    // An epoch beyond i64, found while the entries before it wait in the batch being read.
    let mut over = entries[bad_at..].to_vec();
    over[30].signed_attestations[0].target_epoch = Uint64(u64::MAX);
    let err = s.import(std::io::Cursor::new(document(&over))).await;
    assert!(err.is_err(), "{err:?}");
    model.import(&over[..30]);
    assert_same(
        "after the out-of-range entry",
        &export(s).await,
        &model.export(),
    );

    // The rest imports; the result is the whole.
    s.import(std::io::Cursor::new(document(&entries[bad_at..])))
        .await
        .unwrap();
    model.import(&entries[bad_at..]);
    assert_same("completed", &export(s).await, &model.export());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_half_way_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    failure_half_way(&sqlite_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_half_way_postgres() {
    let Some(admin) = pg_admin_url() else { return };
    let db = TestDb::create(&admin).await;
    failure_half_way(&pg_store(&db).await).await;
    db.drop_db().await;
}

/// The same imports and prune on both backends give the same bytes, and the export of selected
/// validators (which reads validator by validator) agrees with the full export (which streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_export_the_same() {
    let Some(admin) = pg_admin_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(&admin).await;
    let (a, b) = (sqlite_store(&dir), pg_store(&db).await);
    let mut rng = StdRng::seed_from_u64(3);
    let one: Vec<ValidatorHistory> = (0..300).map(|n| entry(&mut rng, n, 40)).collect();
    let two: Vec<ValidatorHistory> = (100..500).map(|n| entry(&mut rng, n, 40)).collect();
    for doc in [document(&one), document(&two)] {
        a.import(std::io::Cursor::new(doc.clone())).await.unwrap();
        b.import(std::io::Cursor::new(doc)).await.unwrap();
    }
    a.prune(5, 8).await.unwrap();
    b.prune(5, 8).await.unwrap();
    let (ea, eb) = (export(&a).await, export(&b).await);
    assert_same("sqlite against postgres", &ea, &eb);
    let all: Vec<PublicKeyBytes> = (0..500).map(pubkey).collect();
    for (name, s) in [("sqlite", &a as &dyn ExportSome), ("postgres", &b)] {
        let some = s.export_some(all.clone()).await;
        assert_same(name, &some, &ea);
    }
    drop(b);
    db.drop_db().await;
}

trait ExportSome {
    fn export_some(
        &self,
        keys: Vec<PublicKeyBytes>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + '_>>;
}

impl<S: SlashingStore> ExportSome for S {
    fn export_some(
        &self,
        keys: Vec<PublicKeyBytes>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + '_>> {
        Box::pin(async move {
            let out = Shared::default();
            self.export_validators(out.clone(), keys).await.unwrap();
            let bytes = out.0.lock().unwrap().clone();
            bytes
        })
    }
}
