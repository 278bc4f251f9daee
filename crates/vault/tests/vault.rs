//! The vault against both backends: quorum, stale and foreign shares, tampered and swapped
//! records, rekey and rotate, and the generation check that stops a stale instance writing.

#[path = "../../slashing/tests/common/mod.rs"]
mod common;

use signward_vault::record::{self, IdCheck, KeyKind};
use signward_vault::store::NewRecord;
use signward_vault::vault::{self, KeyToStore};
use signward_vault::{SharePayload, Vault, VaultError, VaultState, VaultStore};
use zeroize::Zeroizing;

async fn init(store: &VaultStore, t: u8, n: u8) -> Vec<SharePayload> {
    let mut out = Vec::new();
    vault::init(store, t, n, |s| {
        out = s.to_vec();
        Ok(())
    })
    .await
    .unwrap();
    out
}

/// The id of test key `i`: the public key of the secret `[i; 32]`.
fn id(i: u8) -> String {
    signward_keys::BlsKeypair::from_secret_bytes(&[i; 32])
        .unwrap()
        .public_key()
        .to_hex()
}

fn key(i: u8) -> KeyToStore {
    KeyToStore {
        kind: KeyKind::Bls,
        key_id: id(i),
        secret: Zeroizing::new(vec![i; 32]),
        origin: "test".into(),
    }
}

fn secret_of(opened: &[vault::OpenedKey], i: u8) -> Vec<u8> {
    let k = opened.iter().find(|k| k.stored.key_id == id(i)).unwrap();
    k.secret.to_vec()
}

async fn exercise(url: &str, url2: &str) {
    let store = VaultStore::open(url).await.unwrap();
    let shares = init(&store, 3, 5).await;
    assert!(matches!(
        vault::init(&store, 2, 3, |_| Ok(())).await,
        Err(VaultError::AlreadyInitialized)
    ));
    let v = Vault::new(store);
    assert_eq!(v.status().await.unwrap().state, VaultState::Sealed);
    assert!(matches!(
        v.store_keys(&[key(1)]).await,
        Err(VaultError::Sealed)
    ));

    // T-1 shares: still sealed.
    for s in &shares[..2] {
        let p = v.submit_share(s.clone()).await.unwrap();
        assert_eq!(p.state, VaultState::Sealed);
    }
    assert_eq!(v.status().await.unwrap().submitted, 2);
    assert!(matches!(
        v.submit_share(shares[1].clone()).await,
        Err(VaultError::ShareDuplicate)
    ));

    // A share of another vault is refused by name.
    let other_store = VaultStore::open(url2).await.unwrap();
    let foreign = init(&other_store, 3, 5).await;
    assert!(matches!(
        v.submit_share(foreign[2].clone()).await,
        Err(VaultError::ShareWrongVault)
    ));

    // A forged share (right header, wrong value) fails the quorum check and resets progress.
    let mut forged = shares[2].clone();
    forged.value[5] ^= 0xff;
    assert!(matches!(
        v.submit_share(forged).await,
        Err(VaultError::QuorumMismatch)
    ));
    assert_eq!(v.status().await.unwrap().submitted, 0);
    assert!(!v.is_unsealed());

    // Reset works; then a real quorum unseals.
    v.submit_share(shares[4].clone()).await.unwrap();
    v.reset();
    assert_eq!(v.status().await.unwrap().submitted, 0);
    for s in [&shares[4], &shares[0], &shares[2]] {
        v.submit_share(s.clone()).await.unwrap();
    }
    assert!(v.is_unsealed());
    assert_eq!(
        v.store_keys(&[key(1), key(2), key(1)]).await.unwrap(),
        vec![true, true, false]
    );
    let opened = v.open_all().await.unwrap();
    assert_eq!(opened.len(), 2);
    assert_eq!(secret_of(&opened, 1), vec![1u8; 32]);
    assert!(opened.iter().all(|k| k.id_check == IdCheck::OnWrite));

    // Seal wipes; signing material is gone until a quorum again.
    v.seal();
    assert!(matches!(v.open_all().await, Err(VaultError::Sealed)));

    // Rekey to 2-of-3: the old set is refused by name, the new set opens the same keys.
    let mut new_shares = Vec::new();
    vault::rekey(v.store(), &shares[..3], 2, 3, |s| {
        new_shares = s.to_vec();
        Ok(())
    })
    .await
    .unwrap();
    assert!(matches!(
        v.submit_share(shares[0].clone()).await,
        Err(VaultError::ShareStale)
    ));
    for s in &new_shares[1..3] {
        v.submit_share(s.clone()).await.unwrap();
    }
    assert_eq!(v.open_all().await.unwrap().len(), 2);

    // Rotate while this instance is unsealed under generation 1: its later writes are refused.
    let mut rotated = Vec::new();
    vault::rotate(v.store(), &new_shares[..2], 2, 3, |s| {
        rotated = s.to_vec();
        Ok(())
    })
    .await
    .unwrap();
    assert!(matches!(
        v.store_keys(&[key(3)]).await,
        Err(VaultError::GenerationChanged)
    ));
    v.seal();
    assert!(matches!(
        v.submit_share(new_shares[0].clone()).await,
        Err(VaultError::ShareStale)
    ));
    for s in &rotated[..2] {
        v.submit_share(s.clone()).await.unwrap();
    }
    let opened = v.open_all().await.unwrap();
    assert_eq!(opened.len(), 2);
    assert_eq!(secret_of(&opened, 2), vec![2u8; 32]);
    // Rotation re-seals each record with the check label it had.
    assert!(opened.iter().all(|k| k.id_check == IdCheck::OnWrite));
    v.store_keys(&[key(3)]).await.unwrap();
}

#[tokio::test]
async fn sqlite_vault_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("sqlite:{}", dir.path().join("a.sqlite").display());
    let b = format!("sqlite:{}", dir.path().join("b.sqlite").display());
    exercise(&a, &b).await;
    let mode = std::os::unix::fs::MetadataExt::mode(
        &std::fs::metadata(dir.path().join("a.sqlite")).unwrap(),
    );
    assert_eq!(mode & 0o077, 0, "vault database must be owner-only");
}

#[tokio::test]
async fn postgres_vault_lifecycle() {
    let Some(admin) = common::pg_admin_url() else {
        return;
    };
    let a = common::TestDb::create(&admin).await;
    let b = common::TestDb::create(&admin).await;
    exercise(&a.url, &b.url).await;
    a.drop_db().await;
    b.drop_db().await;
}

/// A record altered in the database, or two records swapped, fail authentication by key id.
#[tokio::test]
async fn tampered_and_swapped_records_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    let store = VaultStore::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let shares = init(&store, 2, 2).await;
    let v = Vault::new(store);
    for s in &shares {
        v.submit_share(s.clone()).await.unwrap();
    }
    v.store_keys(&[key(1), key(2)]).await.unwrap();
    let conn = rusqlite_conn(&path);
    conn.execute_batch(&format!(
        "UPDATE vault_keys SET ciphertext = (SELECT ciphertext FROM vault_keys WHERE key_id = '{two}'), nonce = (SELECT nonce FROM vault_keys WHERE key_id = '{two}') WHERE key_id = '{one}'",
        one = id(1),
        two = id(2)
    ))
    .unwrap();
    match v.open_all().await {
        Err(VaultError::RecordTampered(k)) => assert_eq!(k, id(1)),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("swapped record accepted"),
    }
    conn.execute_batch(&format!(
        "DELETE FROM vault_keys WHERE key_id = '{}'; UPDATE vault_keys SET ciphertext = zeroblob(48) WHERE key_id = '{}'",
        id(1),
        id(2)
    ))
    .unwrap();
    assert!(matches!(
        v.open_all().await,
        Err(VaultError::RecordTampered(_))
    ));
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A BLS key is stored only under its own public key, and then sealed as checked; a record
/// sealed without the check (an older vault's) still opens, marked for the loader to check.
#[tokio::test]
async fn bls_records_are_checked_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    let store = VaultStore::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let shares = init(&store, 2, 2).await;
    let v = Vault::new(store);
    for s in &shares {
        v.submit_share(s.clone()).await.unwrap();
    }
    // Key 1's secret under key 2's id, or a secret that is no BLS key: refused, nothing stored.
    let mut wrong = key(1);
    wrong.key_id = id(2);
    let mut upper = key(3);
    upper.key_id = upper.key_id.to_uppercase().replacen("0X", "0x", 1);
    let mut zero = key(4);
    zero.secret = Zeroizing::new(vec![0; 32]);
    for bad in [wrong, upper, zero] {
        assert!(matches!(
            v.store_keys(&[key(5), bad]).await,
            Err(VaultError::InvalidParameters(_))
        ));
    }
    assert!(v.open_all().await.unwrap().is_empty());
    // An older vault's record, sealed without the check (even one whose id is wrong: only the
    // loader can tell), opens as such.
    let meta = v.unsealed_meta().unwrap();
    let rk = signward_vault::MasterKey::combine(
        &shares.iter().map(|s| s.value.clone()).collect::<Vec<_>>(),
    )
    .unwrap()
    .dangerous_record_key();
    let legacy = NewRecord {
        key_id: id(2),
        kind: KeyKind::Bls,
        record: record::seal(
            &rk,
            &meta.vault_id,
            KeyKind::Bls,
            &id(2),
            &[1; 32],
            IdCheck::OnLoad,
        )
        .unwrap(),
        origin: "older".into(),
    };
    v.store()
        .insert_keys(meta.generation, &[legacy], false)
        .await
        .unwrap();
    v.store_keys(&[key(1)]).await.unwrap();
    let opened = v.open_all().await.unwrap();
    let check = |i| {
        opened
            .iter()
            .find(|k| k.stored.key_id == id(i))
            .unwrap()
            .id_check
    };
    assert_eq!(check(1), IdCheck::OnWrite);
    assert_eq!(check(2), IdCheck::OnLoad);
}
