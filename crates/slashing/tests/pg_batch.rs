//! PostgreSQL decides a batch of checks with one set-based statement, `signward_check_batch`.
//! These tests hold it to the one-check function, `signward_check`, called once per check in
//! order (as batches were decided before): random batches go to two fresh databases, one
//! decided by each, and every answer and every stored record must be the same. Each batch names
//! a validator at most once, as the store's batcher guarantees; a batch that names one twice is
//! refused whole.

mod common;

use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

const VALIDATORS: u8 = 12;
const BATCHES: usize = 300;

fn pubkey(v: u8) -> Vec<u8> {
    let mut b = vec![0u8; 48];
    b[0] = v;
    b[47] = 1;
    b
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A value the store keeps in `signward_meta`.
async fn meta(c: &tokio_postgres::Client, key: &str) -> Vec<u8> {
    c.query_one("SELECT value FROM signward_meta WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0)
}

/// One check's arguments, as the store passes them: key, chain, kind (0 block, 1 attestation)
/// and its two numbers, signing root.
type Args = (Vec<u8>, Vec<u8>, i16, i64, i64, Vec<u8>);

/// The batch's arguments as the function's six arrays.
type Columns = (
    Vec<Vec<u8>>,
    Vec<Vec<u8>>,
    Vec<i16>,
    Vec<i64>,
    Vec<i64>,
    Vec<Vec<u8>>,
);

fn columns(batch: &[Args]) -> Columns {
    let mut c = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (k, g, kind, a, b, r) in batch {
        c.0.push(k.clone());
        c.1.push(g.clone());
        c.2.push(*kind);
        c.3.push(*a);
        c.4.push(*b);
        c.5.push(r.clone());
    }
    c
}

async fn by_batch(
    c: &tokio_postgres::Client,
    batch: &[Args],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let (k, g, kind, a, b, r) = columns(batch);
    let rows = c
        .query(
            "SELECT idx, code FROM signward_check_batch($1, $2, $3, $4, $5, $6) ORDER BY idx",
            &[&k, &g, &kind, &a, &b, &r],
        )
        .await?;
    assert_eq!(rows.len(), batch.len(), "one answer per check");
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            assert_eq!(row.get::<_, i64>(0), i as i64 + 1, "answers in order");
            row.get(1)
        })
        .collect())
}

async fn one_by_one(c: &mut tokio_postgres::Client, batch: &[Args]) -> Vec<String> {
    let tx = c.transaction().await.unwrap();
    let mut codes = Vec::new();
    for (k, g, kind, a, b, r) in batch {
        let row = tx
            .query_one(
                "SELECT signward_check($1, $2, $3, $4, $5, $6)",
                &[k, g, kind, a, b, r],
            )
            .await
            .unwrap();
        codes.push(row.get(0));
    }
    tx.commit().await.unwrap();
    codes
}

/// Everything a database holds for the rules: records and watermarks by key, and the flags.
async fn contents(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in [
        "SELECT encode(v.pubkey, 'hex') || ' b ' || s.slot || ' ' || coalesce(encode(s.signing_root, 'hex'), '-')
           FROM signed_blocks s JOIN validators v ON v.id = s.validator_id ORDER BY 1",
        "SELECT encode(v.pubkey, 'hex') || ' a ' || s.source_epoch || ' ' || s.target_epoch || ' ' || coalesce(encode(s.signing_root, 'hex'), '-')
           FROM signed_attestations s JOIN validators v ON v.id = s.validator_id ORDER BY 1",
        "SELECT encode(pubkey, 'hex') || ' ' || enabled FROM validators ORDER BY 1",
        "SELECT encode(value, 'hex') FROM signward_meta WHERE key = 'genesis_validators_root'",
    ] {
        for row in c.query(q, &[]).await.unwrap() {
            out.push(row.get(0));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_statement_decides_as_one_check_at_a_time() {
    let Some(admin) = pg_admin_url() else { return };
    let (da, db) = (TestDb::create(&admin).await, TestDb::create(&admin).await);
    // Connecting installs the schema and the functions.
    let (sa, sb) = (pg_store(&da).await, pg_store(&db).await);
    let (a, mut b) = (client(&da.url).await, client(&db.url).await);
    let mut rng = StdRng::seed_from_u64(0x5167_4e57);
    let gvr = vec![7u8; 32];
    let other_gvr = vec![8u8; 32];
    let mut seen = std::collections::HashSet::new();
    for n in 0..BATCHES {
        // Now and then a validator is disabled or enabled, or its watermarks raised, alike in
        // both databases (as enable/disable and pruning do).
        if n > 0 && rng.gen_bool(0.15) {
            let v = pubkey(rng.gen_range(0..VALIDATORS));
            for c in [&a, &b] {
                c.execute(
                    "UPDATE validators SET enabled = NOT enabled WHERE pubkey = $1",
                    &[&v],
                )
                .await
                .unwrap();
            }
        }
        if n > 0 && rng.gen_bool(0.1) {
            let v = pubkey(rng.gen_range(0..VALIDATORS));
            // Pruning writes only the watermarks a validator has records for: some are NULL.
            let mut some = |hi: i64| rng.gen_bool(0.7).then(|| rng.gen_range(0..hi));
            let (slot, src, tgt) = (some(30), some(8), some(10));
            for c in [&a, &b] {
                c.execute(
                    "INSERT INTO watermarks (validator_id, block_slot, att_source, att_target)
                     SELECT id, $2, $3, $4 FROM validators WHERE pubkey = $1
                     ON CONFLICT (validator_id) DO UPDATE SET block_slot = EXCLUDED.block_slot,
                         att_source = EXCLUDED.att_source, att_target = EXCLUDED.att_target",
                    &[
                        &v as &(dyn tokio_postgres::types::ToSql + Sync),
                        &slot,
                        &src,
                        &tgt,
                    ],
                )
                .await
                .unwrap();
            }
        }
        // Now and then a record without a signing root (as a minimal import leaves them).
        if n > 0 && rng.gen_bool(0.1) {
            let v = pubkey(rng.gen_range(0..VALIDATORS));
            let (s, t) = (rng.gen_range(0..12i64), rng.gen_range(0..14i64));
            for c in [&a, &b] {
                c.execute(
                    "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch)
                     SELECT id, $2::int8, $3::int8 FROM validators WHERE pubkey = $1 AND $2::int8 <= $3::int8
                     ON CONFLICT DO NOTHING",
                    &[&v as &(dyn tokio_postgres::types::ToSql + Sync), &s, &t],
                )
                .await
                .unwrap();
                c.execute(
                    "INSERT INTO signed_blocks (validator_id, slot)
                     SELECT id, $2 FROM validators WHERE pubkey = $1 ON CONFLICT DO NOTHING",
                    &[&v as &(dyn tokio_postgres::types::ToSql + Sync), &(s * 3)],
                )
                .await
                .unwrap();
            }
        }
        // Distinct validators in key order, as the batcher sends them.
        let mut vs: Vec<u8> = (0..VALIDATORS).filter(|_| rng.gen_bool(0.5)).collect();
        if vs.is_empty() {
            vs.push(rng.gen_range(0..VALIDATORS));
        }
        let batch: Vec<Args> = vs
            .into_iter()
            .map(|v| {
                // The first batch's first check pins the chain; a later one on another
                // chain is refused.
                let g = if rng.gen_bool(0.05) { &other_gvr } else { &gvr };
                let root = vec![rng.gen_range(0..3u8); 32];
                if rng.gen_bool(0.3) {
                    (pubkey(v), g.clone(), 0, rng.gen_range(0..40i64), 0, root)
                } else {
                    let s = rng.gen_range(0..12i64);
                    let t = s + rng.gen_range(-1..4i64);
                    (pubkey(v), g.clone(), 1, s, t, root)
                }
            })
            .collect();
        let got = by_batch(&a, &batch).await.unwrap();
        let want = one_by_one(&mut b, &batch).await;
        assert_eq!(got, want, "batch {n}: {batch:?}");
        seen.extend(got);
    }
    assert_eq!(
        contents(&a).await,
        contents(&b).await,
        "the databases differ"
    );
    assert_every_answer_reached(&seen, &["validator_disabled", "genesis_mismatch"]);

    // A batch that names a validator twice is refused whole, and records nothing.
    let before = contents(&a).await;
    let twice = vec![
        (pubkey(0), gvr.clone(), 1, 100, 101, vec![1u8; 32]),
        (pubkey(0), gvr.clone(), 1, 100, 102, vec![1u8; 32]),
    ];
    let err = by_batch(&a, &twice).await.unwrap_err();
    assert!(
        err.to_string().contains("appears twice") || format!("{err:?}").contains("appears twice"),
        "{err:?}"
    );
    assert_eq!(contents(&a).await, before);

    drop((a, b, sa, sb));
    da.drop_db().await;
    db.drop_db().await;
}

/// A database an earlier release set up (its functions older, no batch function) gets this
/// release's functions when an instance connects, without a schema migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_database_gets_the_batch_function_on_connect() {
    let Some(admin) = pg_admin_url() else { return };
    let d = TestDb::create(&admin).await;
    drop(pg_store(&d).await);
    let c = client(&d.url).await;
    c.batch_execute(
        "DROP FUNCTION signward_check_batch(BYTEA[], BYTEA[], SMALLINT[], BIGINT[], BIGINT[], BYTEA[]);
         DELETE FROM signward_meta WHERE key = 'check_functions';",
    )
    .await
    .unwrap();
    let store = pg_store(&d).await;
    let gvr = vec![7u8; 32];
    let batch = vec![
        (pubkey(1), gvr.clone(), 1, 1, 2, vec![1u8; 32]),
        (pubkey(2), gvr.clone(), 0, 5, 0, vec![1u8; 32]),
    ];
    assert_eq!(by_batch(&c, &batch).await.unwrap(), ["allowed", "allowed"]);
    // Functions a later release installed are never put back by this one.
    c.batch_execute("UPDATE signward_meta SET value = '99' WHERE key = 'check_functions'")
        .await
        .unwrap();
    drop(pg_store(&d).await);
    assert_eq!(meta(&c, "check_functions").await, b"99");
    drop((c, store));
    d.drop_db().await;
}

/// A schema-2 database (records with foreign keys to `validators`) is migrated to schema 3 on
/// connect: the keys are dropped, the history is kept and still protects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_two_is_migrated_and_keeps_its_history() {
    let Some(admin) = pg_admin_url() else { return };
    let d = TestDb::create(&admin).await;
    let gvr = vec![7u8; 32];
    {
        let _store = pg_store(&d).await;
        let c = client(&d.url).await;
        let first = vec![(pubkey(1), gvr.clone(), 1, 5, 6, vec![1u8; 32])];
        assert_eq!(by_batch(&c, &first).await.unwrap(), ["allowed"]);
        // Back to schema 2, as the previous release left it.
        c.batch_execute(
            "ALTER TABLE signed_blocks ADD CONSTRAINT signed_blocks_validator_id_fkey
                 FOREIGN KEY (validator_id) REFERENCES validators(id);
             ALTER TABLE signed_attestations ADD CONSTRAINT signed_attestations_validator_id_fkey
                 FOREIGN KEY (validator_id) REFERENCES validators(id);
             ALTER TABLE watermarks ADD CONSTRAINT watermarks_validator_id_fkey
                 FOREIGN KEY (validator_id) REFERENCES validators(id);
             UPDATE signward_meta SET value = '2' WHERE key = 'schema_version';",
        )
        .await
        .unwrap();
    }
    let _store = pg_store(&d).await;
    let c = client(&d.url).await;
    assert_eq!(meta(&c, "schema_version").await, b"3");
    let fks: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN
                 ('signed_blocks'::regclass, 'signed_attestations'::regclass, 'watermarks'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fks, 0);
    let again = vec![(pubkey(1), gvr.clone(), 1, 5, 6, vec![2u8; 32])];
    assert_eq!(by_batch(&c, &again).await.unwrap(), ["double_vote"]);
    drop(c);
    d.drop_db().await;
}
