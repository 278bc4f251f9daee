//! V3 keyfile vectors, transaction and message signing round trips (recovered with alloy), and
//! the spend ledger under concurrency on both backends.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use secrecy::SecretString;
use signward_evm::keyfile;
use signward_evm::ledger::SpendLedger;
use signward_evm::nonces::NonceOutcome;
use signward_evm::{EvmError, EvmKey};
use signward_keys::keystore::KdfLimits;
use signward_policy::{Charge, SpendWindow};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/v3keystore")
}

#[test]
fn v3_keyfile_vectors() {
    let cases: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("ethereum-tests/KeyStoreTests/basic_tests.json")).unwrap(),
    )
    .unwrap();
    let mut decrypted = 0;
    for (name, case) in cases.as_object().unwrap() {
        let json = serde_json::to_vec(&case["json"]).unwrap();
        let pw = SecretString::from(case["password"].as_str().unwrap());
        let r = keyfile::decrypt(&json, &pw, &KdfLimits::default());
        if name == "test2" {
            // scrypt r=1 p=8 with n=2^18 breaks RFC 7914 (N < 2^(128·r/8)); refused on purpose.
            assert!(matches!(r, Err(EvmError::Kdf(_))), "{name}");
            continue;
        }
        let key = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(key.dangerous_secret_bytes().as_ref()),
            case["priv"].as_str().unwrap(),
            "{name}"
        );
        decrypted += 1;
        // A wrong password is a MAC mismatch, not a wrong key.
        let wrong = keyfile::decrypt(&json, &SecretString::from("wrong"), &KdfLimits::default());
        assert!(matches!(wrong, Err(EvmError::MacMismatch)), "{name}");
    }
    assert_eq!(decrypted, 4);
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors().join("web3signer/expected.json")).unwrap())
            .unwrap();
    let key = keyfile::decrypt(
        &std::fs::read(vectors().join("web3signer/wallet.json")).unwrap(),
        &SecretString::from("pass"),
        &KdfLimits::default(),
    )
    .unwrap();
    assert_eq!(
        key.address(),
        Address::from_str(expected["address"].as_str().unwrap()).unwrap()
    );
    // Altered ciphertext: MAC mismatch.
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors().join("web3signer/wallet.json")).unwrap())
            .unwrap();
    let ct = v["crypto"]["ciphertext"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        if ct.starts_with('0') { "1" } else { "0" },
        &ct[1..]
    );
    v["crypto"]["ciphertext"] = serde_json::json!(flipped);
    assert!(matches!(
        keyfile::decrypt(
            &serde_json::to_vec(&v).unwrap(),
            &SecretString::from("pass"),
            &KdfLimits::default()
        ),
        Err(EvmError::MacMismatch)
    ));
}

#[test]
fn signed_transactions_recover_to_the_key() {
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_consensus::{Transaction, TxEnvelope};
    use alloy_eips::eip2718::Decodable2718;
    let key = EvmKey::generate();
    let to = "0x3333333333333333333333333333333333333333";
    for tx in [
        serde_json::json!({"to": to, "value": "0x1", "gas": "0x5208", "gasPrice": "0x3b9aca00", "nonce": "0x0", "chainId": "0x1"}),
        serde_json::json!({"to": to, "value": 5, "gas": 21000, "gasPrice": 1000000000u64, "nonce": 7, "chainId": 10, "accessList": [{"address": to, "storageKeys": [format!("0x{}", "00".repeat(32))]}]}),
        serde_json::json!({"to": to, "value": "1000", "gas": "0x5208", "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x3b9aca00", "nonce": "0x2", "chainId": "0x2105", "data": "0xa9059cbb"}),
        serde_json::json!({"value": "0x0", "gas": "0x100000", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1", "nonce": "0x3", "chainId": "0x1", "data": "0x6000"}),
    ] {
        let (req, _) = signward_evm::tx::parse(&tx).unwrap();
        let signed = req.sign(&key).unwrap();
        let raw = signed.raw.clone();
        let env = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        assert_eq!(env.recover_signer().unwrap(), key.address());
        assert_eq!(*env.hash(), signed.hash);
        assert_eq!(env.chain_id(), Some(req.facts.chain_id));
        assert_eq!(env.nonce(), req.nonce);
        assert_eq!(env.value(), req.facts.value);
        assert_eq!(env.input().as_ref(), req.facts.data.as_slice());
    }
    // Refused shapes: unknown fields (blob, authorization list), an unknown type, gasPrice with
    // maxFeePerGas, missing chainId or nonce, priority above max fee.
    for bad in [
        serde_json::json!({"to": to, "gas": "0x1", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1", "nonce": "0x0", "chainId": "0x1", "maxFeePerBlobGas": "0x1"}),
        serde_json::json!({"to": to, "gas": "0x1", "gasPrice": "0x1", "nonce": "0x0", "chainId": "0x1", "type": "0x4"}),
        serde_json::json!({"to": to, "gas": "0x1", "gasPrice": "0x1", "maxFeePerGas": "0x1", "nonce": "0x0", "chainId": "0x1"}),
        serde_json::json!({"to": to, "gas": "0x1", "gasPrice": "0x1", "nonce": "0x0"}),
        serde_json::json!({"to": to, "gas": "0x1", "gasPrice": "0x1", "chainId": "0x1"}),
        serde_json::json!({"to": to, "gas": "0x1", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2", "nonce": "0x0", "chainId": "0x1"}),
    ] {
        assert!(signward_evm::tx::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn messages_recover_to_the_key() {
    use alloy_primitives::{eip191_hash_message, Signature};
    let key = EvmKey::generate();
    let sig = signward_evm::message::sign_personal(&key, b"hello").unwrap();
    let s = Signature::from_raw(&sig).unwrap();
    assert_eq!(
        s.recover_address_from_prehash(&eip191_hash_message(b"hello"))
            .unwrap(),
        key.address()
    );
    let typed = serde_json::json!({
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
                  "Mail": [{"name": "contents", "type": "string"}]},
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {"contents": "Hello, Bob!"}
    });
    let t = signward_evm::message::parse_typed(&typed).unwrap();
    assert_eq!(t.chain_id, Some(1));
    let sig = t.sign(&key).unwrap();
    assert!(sig[64] == 27 || sig[64] == 28);
    let as_string =
        signward_evm::message::parse_typed(&serde_json::Value::String(typed.to_string())).unwrap();
    assert_eq!(
        as_string.sign(&key).unwrap(),
        sig,
        "RFC 6979: same data, same signature"
    );
}

fn charge(bucket: &str, max_total: u64, max_count: u64, amount: u64) -> Charge {
    Charge {
        bucket: bucket.into(),
        window: SpendWindow {
            window_secs: 3600,
            max_total: U256::from(max_total),
            max_count,
            count_gas: false,
        },
        amount: U256::from(amount),
        unit: "wei".into(),
    }
}

/// `n` concurrent reservations, each charging 1,000 wei to the ether window (10,000 in all) and
/// 7 base units to a token window (50 in all): how many were admitted.
async fn burst(ledger: Arc<SpendLedger>, n: usize) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let charges = [
                charge("key:test", 10_000, 1000, 1_000),
                charge("key:test:erc20:1:0xtoken", 50, 1000, 7),
            ];
            l.reserve(&charges, None).await.unwrap().is_none()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    ok
}

/// Token windows alone under concurrency: 7 units each, 50 allowed → 7 admitted.
async fn token_burst(ledger: Arc<SpendLedger>, n: usize) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let charges = [charge("key:t2:erc20:1:0xtoken", 50, 1000, 7)];
            l.reserve(&charges, None).await.unwrap().is_none()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    ok
}

/// A late re-signature of a nonce for more is stamped when it was made: it cannot leave the
/// window with its first signature and free the window again (a 1 s window: signed small at
/// 0 s, re-signed for the whole window at 0.6 s, still counted at 1.2 s).
async fn replacement_restamps(ledger: &SpendLedger, bucket: &str) {
    let c = |amount| {
        let mut x = charge(bucket, 100, 100, amount);
        x.window.window_secs = 1;
        [x]
    };
    assert_eq!(ledger.reserve(&c(1), Some("1:0xb:1")).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        ledger.reserve(&c(100), Some("1:0xb:1")).await.unwrap(),
        None
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let x = ledger.reserve(&c(1), Some("1:0xb:2")).await.unwrap();
    assert_eq!(x.map(|x| x.rule), Some("spend_window_value_exceeded"));
}

/// A replacement (same chain, sender and nonce) is counted once, at the larger charge, and
/// does not use up the count; another nonce is another transaction.
async fn replacements(ledger: &SpendLedger, bucket: &str) {
    let c = |amount| [charge(bucket, 100, 2, amount)];
    assert_eq!(ledger.reserve(&c(60), Some("1:0xa:7")).await.unwrap(), None);
    // Fee bumps of nonce 7: counted once; the larger charge stands.
    assert_eq!(ledger.reserve(&c(60), Some("1:0xa:7")).await.unwrap(), None);
    assert_eq!(ledger.reserve(&c(90), Some("1:0xa:7")).await.unwrap(), None);
    assert_eq!(ledger.reserve(&c(50), Some("1:0xa:7")).await.unwrap(), None);
    // Nonce 8 adds to 90: 10 fits, 11 does not.
    let x = ledger.reserve(&c(11), Some("1:0xa:8")).await.unwrap();
    assert_eq!(x.map(|x| x.rule), Some("spend_window_value_exceeded"));
    assert_eq!(ledger.reserve(&c(10), Some("1:0xa:8")).await.unwrap(), None);
    // The count (2) is used up by nonces 7 and 8; a third nonce is refused, a bump is not.
    let x = ledger.reserve(&c(0), Some("1:0xa:9")).await.unwrap();
    assert_eq!(x.map(|x| x.rule), Some("spend_window_count_exceeded"));
    assert_eq!(ledger.reserve(&c(10), Some("1:0xa:8")).await.unwrap(), None);
    // A bump above what is left is refused (90 + 11 > 100).
    let x = ledger.reserve(&c(11), Some("1:0xa:8")).await.unwrap();
    assert_eq!(x.map(|x| x.rule), Some("spend_window_value_exceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spend_window_holds_under_concurrency_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(
        SpendLedger::open(&format!("sqlite:{}", dir.path().join("e.sqlite").display()))
            .await
            .unwrap(),
    );
    assert_eq!(
        burst(ledger.clone(), 40).await,
        7,
        "7 × 7 units fill a 50-unit token window first (and 7,000 of 10,000 wei)"
    );
    assert_eq!(token_burst(ledger.clone(), 30).await, 7);
    replacements(&ledger, "key:bump").await;
    replacement_restamps(&ledger, "key:restamp").await;
    // Nonces through the writer thread: 40 at once, all distinct, from the node's nonce up.
    let from = Address::repeat_byte(0x42);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let l = ledger.clone();
            tokio::spawn(async move { l.allocate_nonce(1, &from, 3).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (3..43).collect::<Vec<u64>>());
    // Count windows too.
    for i in 0..5 {
        let r = ledger
            .reserve(&[charge("key:count", u64::MAX, 3, 0)], None)
            .await
            .unwrap();
        assert_eq!(
            r.map(|x| x.rule),
            if i < 3 {
                None
            } else {
                Some("spend_window_count_exceeded")
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spend_window_holds_across_two_postgres_ledgers() {
    let url = match std::env::var("SIGNWARD_TEST_PG_URL") {
        Ok(u) => u,
        Err(_)
            if std::env::var_os("SIGNWARD_REQUIRE_PG").is_some()
                || std::env::var_os("CI").is_some() =>
        {
            panic!("SIGNWARD_TEST_PG_URL is not set: run scripts/test.sh")
        }
        Err(_) => return,
    };
    let name = format!("signward_evm_{}", std::process::id());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"
    ))
    .await
    .ok();
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .ok();
    let db = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    let a = Arc::new(SpendLedger::open(&db).await.unwrap());
    let b = Arc::new(SpendLedger::open(&db).await.unwrap());
    let (x, y) = tokio::join!(burst(a.clone(), 30), burst(b.clone(), 30));
    assert_eq!(
        x + y,
        7,
        "two ledgers sharing PostgreSQL admit 7 in total (the token window's limit)"
    );
    let (x, y) = tokio::join!(token_burst(a.clone(), 20), token_burst(b.clone(), 20));
    assert_eq!(x + y, 7);
    replacements(&a, "key:bump").await;
    replacement_restamps(&a, "key:restamp").await;
    // The other instance sees the same rows: a bump of nonce 8 there is counted once too.
    assert_eq!(
        b.reserve(&[charge("key:bump", 100, 2, 10)], Some("1:0xa:8"))
            .await
            .unwrap(),
        None
    );
    // Nonces: 2 × 40 allocations at once from two ledgers on one database, for one account,
    // with the node lagging at 5: 80 distinct nonces, 5..85, none handed out twice.
    let from = alloy_primitives::Address::repeat_byte(0x42);
    let alloc = |l: Arc<SpendLedger>| async move {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.allocate_nonce(1337, &from, 5).await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got
    };
    let (mut x, y) = tokio::join!(alloc(a.clone()), alloc(b.clone()));
    x.extend(y);
    x.sort_unstable();
    assert_eq!(x, (5..85).collect::<Vec<u64>>());
    // A nonce the node refused is the next one handed out, from either ledger.
    a.settle_nonce(1337, &from, 40, NonceOutcome::Refused)
        .await
        .unwrap();
    assert_eq!(b.allocate_nonce(1337, &from, 5).await.unwrap(), 40);
    assert_eq!(a.allocate_nonce(1337, &from, 5).await.unwrap(), 85);
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .ok();
}

/// A ledger written before replacements were recognised (no `tx_key` column) is upgraded in
/// place, its rows kept and counted.
#[tokio::test]
async fn an_older_sqlite_ledger_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE evm_spend (bucket TEXT NOT NULL, at_ms BIGINT NOT NULL, value TEXT NOT NULL);",
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        c.execute(
            "INSERT INTO evm_spend (bucket, at_ms, value) VALUES ('key:old', ?1, '95')",
            [now],
        )
        .unwrap();
    }
    let ledger = SpendLedger::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let x = ledger
        .reserve(&[charge("key:old", 100, 10, 6)], Some("1:0xa:1"))
        .await
        .unwrap();
    assert_eq!(x.map(|x| x.rule), Some("spend_window_value_exceeded"));
    assert_eq!(
        ledger
            .reserve(&[charge("key:old", 100, 10, 5)], Some("1:0xa:1"))
            .await
            .unwrap(),
        None
    );
}

/// The SQLite writer keeps running window totals from group to group instead of reading the
/// window's rows (issue 16). They must say what the rows say: expiry releases budget (once),
/// a restart counts from the rows, and rows another connection commits (another process on the
/// same file, an operator's edit) are counted at the next group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_running_totals_equal_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sqlite");
    let url = format!("sqlite:{}", path.display());
    let refused = |r: Option<signward_evm::ledger::Exceeded>| r.map(|x| x.rule);
    let short = |amount| {
        let mut x = charge("key:short", 100, 100, amount);
        x.window.window_secs = 1;
        [x]
    };
    let long = |bucket: &str, amount| [charge(bucket, 100, 100, amount)];
    {
        let ledger = SpendLedger::open(&url).await.unwrap();
        assert_eq!(ledger.reserve(&short(60), None).await.unwrap(), None);
        assert_eq!(
            refused(ledger.reserve(&short(50), None).await.unwrap()),
            Some("spend_window_value_exceeded")
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        // The 60 has left the window: 50 fits, and 51 more does not (subtracted once only).
        assert_eq!(ledger.reserve(&short(50), None).await.unwrap(), None);
        assert_eq!(
            refused(ledger.reserve(&short(51), None).await.unwrap()),
            Some("spend_window_value_exceeded")
        );
        for _ in 0..3 {
            assert_eq!(
                ledger.reserve(&long("key:long", 30), None).await.unwrap(),
                None
            );
        }
        assert_eq!(
            ledger.reserve(&long("key:ext", 50), None).await.unwrap(),
            None
        );
        // Another connection commits 40 to a bucket whose total the writer holds.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO evm_spend (bucket, at_ms, value) VALUES ('key:ext', ?1, '40')",
                [now],
            )
            .unwrap();
        assert_eq!(
            refused(ledger.reserve(&long("key:ext", 11), None).await.unwrap()),
            Some("spend_window_value_exceeded")
        );
        assert_eq!(
            ledger.reserve(&long("key:ext", 10), None).await.unwrap(),
            None
        );
    }
    // After a restart the totals come from the rows: 90 of 100 and 100 of 100 spent.
    let mut reopened = None;
    for _ in 0..50 {
        match SpendLedger::open(&url).await {
            Ok(l) => {
                reopened = Some(l);
                break;
            }
            // The first writer thread may still be closing its connection.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let ledger = reopened.unwrap();
    assert_eq!(
        refused(ledger.reserve(&long("key:long", 11), None).await.unwrap()),
        Some("spend_window_value_exceeded")
    );
    assert_eq!(
        ledger.reserve(&long("key:long", 10), None).await.unwrap(),
        None
    );
    assert_eq!(
        refused(ledger.reserve(&long("key:ext", 1), None).await.unwrap()),
        Some("spend_window_value_exceeded")
    );
    // Two writers on one SQLite file, each with its own running totals, under concurrency:
    // together they admit exactly what the window allows.
    let shared = format!("sqlite:{}", dir.path().join("shared.sqlite").display());
    let a = Arc::new(SpendLedger::open(&shared).await.unwrap());
    let b = Arc::new(SpendLedger::open(&shared).await.unwrap());
    let (x, y) = tokio::join!(burst(a.clone(), 30), burst(b.clone(), 30));
    assert_eq!(x + y, 7, "two writers on one file admit 7 in total");
    let (x, y) = tokio::join!(token_burst(a, 20), token_burst(b, 20));
    assert_eq!(x + y, 7);
}
