//! The engine built by `assemble(Config)` and driven in-process, with no HTTP: the eth2
//! pipeline's check-before-sign under concurrent conflicting requests, the authorizer's place in
//! both pipelines, admission, and the audit record of every decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signward_auth::store::Caller;
use signward_auth::{Denied, Policy, Scope};
use signward_core::network::NetworkConfig;
use signward_engine::evm::{EvmMethod, EvmRejection, EvmRequest};
use signward_engine::{AppState, Config, Rejection};
use signward_keys::BlsKeypair;
use signward_os::DataDir;
use signward_slashing::Refusal;

const GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

/// The engine's config over `dir` (the safe defaults); with `auth`, every request needs a
/// credential.
fn config(dir: &std::path::Path, auth: bool) -> Config {
    let mut c = Config::new(NetworkConfig::mainnet(), dir.to_path_buf()).unwrap();
    if !auth {
        c.auth = None;
    }
    c.key_loader_threads = Some(1);
    c
}

async fn engine(dir: &std::path::Path, auth: bool) -> Arc<AppState> {
    let state = signward_engine::assemble(config(dir, auth)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.is_ready() {
        assert!(Instant::now() < deadline, "key loading never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    state
}

fn attestation(source: u64, target: u64, block_root_byte: u8) -> Vec<u8> {
    let root = format!("0x{}", hex::encode([block_root_byte; 32]));
    let zero = format!("0x{}", hex::encode([0u8; 32]));
    format!(
        r#"{{"type":"ATTESTATION","fork_info":{{"fork":{{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"}},"genesis_validators_root":"{GVR}"}},"attestation":{{"slot":"{slot}","index":"0","beacon_block_root":"{root}","source":{{"epoch":"{source}","root":"{zero}"}},"target":{{"epoch":"{target}","root":"{zero}"}}}}}}"#,
        slot = target * 32,
    )
    .into_bytes()
}

/// `personal_sign` of a short message by `from`, as `caller`.
async fn personal_sign(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    from: alloy_primitives::Address,
) -> Result<signward_engine::evm::EvmSigned, EvmRejection> {
    signward_engine::evm::sign(
        state,
        caller,
        EvmMethod::PersonalSign,
        Ok(EvmRequest::Message {
            from,
            data: b"hi".to_vec(),
        }),
        record(),
        Instant::now(),
    )
    .await
}

fn record() -> signward_audit::Record {
    signward_audit::Record {
        event: signward_audit::Event::Sign.into(),
        ..Default::default()
    }
}

async fn sign(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    pk: &str,
    body: &[u8],
) -> Result<(), Rejection> {
    signward_engine::eth2::sign(state, caller, pk, Ok(body), record(), Instant::now())
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conflicting_votes_get_exactly_one_signature() {
    let dir = tempfile::tempdir().unwrap();
    let state = engine(dir.path(), false).await;
    let key = BlsKeypair::generate();
    let pk = key.public_key().to_hex();
    state.keys().insert_all([key]);
    // 16 different votes for the same target, all at once: one is signed, the rest are double
    // votes, whatever the interleaving.
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let state = state.clone();
            let pk = pk.clone();
            tokio::spawn(async move { sign(&state, None, &pk, &attestation(3, 4, i + 1)).await })
        })
        .collect();
    let mut signed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => signed += 1,
            Err(r) => assert_eq!(r, Rejection::Refused(Refusal::DoubleVote)),
        }
    }
    assert_eq!(signed, 1);
    // A surrounding vote is refused; the next one is signed.
    assert_eq!(
        sign(&state, None, &pk, &attestation(2, 5, 1)).await,
        Err(Rejection::Refused(Refusal::SurroundVote))
    );
    assert_eq!(sign(&state, None, &pk, &attestation(4, 5, 1)).await, Ok(()));
    assert!(!state.audit_failing());
    // Every decision was recorded: 16 + 2 records, chained and intact.
    let conn = signward_audit::open_existing(&DataDir::new(dir.path()).slashing_db()).unwrap();
    let key = signward_engine::stores::audit_key(&DataDir::new(dir.path())).unwrap();
    let verdict = signward_audit::verify_in(&conn, &key, signward_audit::WITH_SLASHING).unwrap();
    assert!(
        matches!(verdict, signward_audit::Verdict::Intact { records: 18 }),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn the_authorizer_decides_before_the_key_is_looked_up_in_both_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let state = engine(dir.path(), true).await;
    let key = BlsKeypair::generate();
    let pk = key.public_key().to_hex();
    state.keys().insert_all([key]);
    let other = BlsKeypair::generate().public_key().to_hex();
    let restricted = Caller {
        name: "vc".into(),
        policy: Policy {
            scopes: [Scope::Sign, Scope::Evm].into(),
            keys: Some([pk.parse().unwrap()].into()),
            ..Default::default()
        },
        suspended: false,
    };
    // A key not granted is refused as not granted, not as unknown: nothing about it leaks.
    assert_eq!(
        sign(&state, Some(&restricted), &other, &attestation(3, 4, 1)).await,
        Err(Rejection::Forbidden(Denied::Key))
    );
    assert_eq!(
        sign(&state, Some(&restricted), &pk, &attestation(3, 4, 1)).await,
        Ok(())
    );
    // A suspended credential may do nothing.
    let suspended = Caller {
        suspended: true,
        ..restricted.clone()
    };
    assert_eq!(
        sign(&state, Some(&suspended), &pk, &attestation(4, 5, 1)).await,
        Err(Rejection::Forbidden(Denied::Suspended))
    );
    // EVM: no EVM key granted, so the grant fails before any lookup or policy.
    let from = alloy_primitives::Address::repeat_byte(9);
    let r = personal_sign(&state, Some(&restricted), from).await;
    assert_eq!(r.err(), Some(EvmRejection::NotGranted(Denied::Key)));
    // A credential granted every EVM key and the method: an unknown account is unknown.
    let bot = Caller {
        name: "bot".into(),
        policy: Policy {
            scopes: [Scope::Evm].into(),
            evm_keys: signward_auth::EvmKeys::All,
            allow_ops: Some([signward_auth::Operation::EvmMessage].into()),
            ..Default::default()
        },
        suspended: false,
    };
    let r = personal_sign(&state, Some(&bot), from).await;
    assert_eq!(r.err(), Some(EvmRejection::UnknownAccount));
    // With authentication on, a request without a credential is refused by every entry point,
    // whatever route it came through: the engine fails closed.
    assert_eq!(
        sign(&state, None, &pk, &attestation(5, 6, 1)).await,
        Err(Rejection::Forbidden(Denied::Scope))
    );
    let r = personal_sign(&state, None, from).await;
    assert_eq!(r.err(), Some(EvmRejection::NotGranted(Denied::Scope)));
    assert_eq!(
        signward_engine::evm::accounts(&state, None).err(),
        Some(EvmRejection::NotGranted(Denied::Scope))
    );
    let anonymous = signward_engine::keyops::Actor {
        name: "-",
        caller: None,
    };
    let r = signward_engine::keyops::delete(
        &state,
        anonymous,
        &[pk.parse().unwrap()],
        signward_engine::keyops::AbsentKeys::Leave,
    )
    .await;
    assert_eq!(r.err(), Some(Rejection::Forbidden(Denied::Scope)));
}

#[tokio::test]
async fn admission_comes_first_and_a_halt_outlives_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let state = engine(dir.path(), false).await;
    let key = BlsKeypair::generate();
    let pk = key.public_key().to_hex();
    state.keys().insert_all([key]);
    state.halt().halt("test").unwrap();
    assert_eq!(
        sign(&state, None, &pk, &attestation(3, 4, 1)).await,
        Err(Rejection::Halted)
    );
    // Even for a key that does not exist: admission runs before any lookup.
    let other = BlsKeypair::generate().public_key().to_hex();
    assert_eq!(
        sign(&state, None, &other, &attestation(3, 4, 1)).await,
        Err(Rejection::Halted)
    );
    drop(state);
    // The halt is persisted: an engine assembled again over the same data directory is halted.
    let dir2 = dir.path().to_path_buf();
    let again = signward_engine::assemble(config(&dir2, false)).await;
    // The first engine's SQLite writer may still hold the database for a moment.
    let again = match again {
        Ok(s) => s,
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            signward_engine::assemble(config(&dir2, false))
                .await
                .unwrap()
        }
    };
    assert!(again.halt().is_halted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_an_evm_key_waits_for_the_signature_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    // A vault initialized beside the engine, unsealed at assembly by two boot shares.
    let mut cfg = config(dir.path(), false);
    let vault_url =
        signward_engine::stores::vault_url(&cfg.slashing_url, &DataDir::new(dir.path())).unwrap();
    let store = signward_vault::VaultStore::open(&vault_url).await.unwrap();
    let mut shares = Vec::new();
    signward_vault::vault::init(&store, 2, 3, |s| {
        shares = s.to_vec();
        Ok(())
    })
    .await
    .unwrap();
    drop(store);
    cfg.unseal_shares = shares[..2].to_vec();
    let state = signward_engine::assemble(cfg).await.unwrap();
    assert!(!state.is_sealed());
    let generated = signward_engine::keyops::generate(
        &state,
        "test",
        signward_vault::KeyKind::Secp256k1,
        1,
        None,
    )
    .await
    .unwrap();
    let addr: alloy_primitives::Address = generated[0].id.parse().unwrap();
    // A signature in flight holds the key's lease.
    let lease = state.evm().keys.lease(&addr).await.unwrap();
    let key = signward_engine::keyops::KeyRef::Evm(addr);
    let who = signward_engine::keyops::Actor {
        name: "op",
        caller: None,
    };
    let disable = {
        let state = state.clone();
        tokio::spawn(async move {
            signward_engine::keyops::manage(&state, who, &key, Some(false)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !disable.is_finished(),
        "the disable answered while a signature with the key was in flight"
    );
    // No new request gets the key meanwhile.
    assert!(state.evm().keys.lease(&addr).await.is_none());
    drop(lease);
    disable.await.unwrap().unwrap();
    let r = personal_sign(&state, None, addr).await;
    assert_eq!(r.err(), Some(EvmRejection::UnknownAccount));
}

/// Unsealing trusts a BLS record's key id without deriving the public key again only when the
/// record was sealed as checked (the vault derived and compared it when storing the key); a
/// record sealed without the check (an older vault's) is still checked at load, and one whose
/// secret is not its id's key fails the whole unseal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseal_checks_every_bls_record_not_checked_when_written() {
    use signward_engine::state::Protection;
    use signward_engine::vault::VaultRuntime;
    use signward_vault::record::{self, IdCheck};
    use signward_vault::store::NewRecord;
    use signward_vault::vault::KeyToStore;
    use signward_vault::{KeyKind, MasterKey, Vault, VaultError, VaultStore};
    use zeroize::Zeroizing;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("vault.sqlite").display());
    let store = VaultStore::open(&url).await.unwrap();
    let mut shares = Vec::new();
    signward_vault::vault::init(&store, 2, 3, |s| {
        shares = s.to_vec();
        Ok(())
    })
    .await
    .unwrap();
    let filler = Vault::new(store);
    for s in &shares[..2] {
        filler.submit_share(s.clone()).await.unwrap();
    }
    let (checked, legacy, other) = (
        BlsKeypair::generate(),
        BlsKeypair::generate(),
        BlsKeypair::generate(),
    );
    filler
        .store_keys(&[KeyToStore {
            kind: KeyKind::Bls,
            key_id: checked.public_key().to_hex(),
            secret: Zeroizing::new(checked.dangerous_secret_bytes().to_vec()),
            origin: "test".into(),
        }])
        .await
        .unwrap();
    let meta = filler.unsealed_meta().unwrap();
    let rk = MasterKey::combine(
        &shares[..2]
            .iter()
            .map(|s| s.value.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap()
    .dangerous_record_key();
    // A record as a build before the write-time check sealed it: its id is checked at load.
    let unchecked = |id: &BlsKeypair, secret: &BlsKeypair| NewRecord {
        key_id: id.public_key().to_hex(),
        kind: KeyKind::Bls,
        record: record::seal(
            &rk,
            &meta.vault_id,
            KeyKind::Bls,
            &id.public_key().to_hex(),
            secret.dangerous_secret_bytes().as_slice(),
            IdCheck::OnLoad,
        )
        .unwrap(),
        origin: "older".into(),
    };
    filler
        .store()
        .insert_keys(meta.generation, &[unchecked(&legacy, &legacy)], false)
        .await
        .unwrap();
    let network = NetworkConfig::mainnet();
    let slashing = signward_slashing::SlashingDb::open(&format!(
        "sqlite:{}",
        dir.path().join("slashing.sqlite").display()
    ))
    .await
    .unwrap();
    let state = Arc::new(
        AppState::new(network, Protection::new(slashing, None)).with_vault(
            VaultRuntime::new(Vault::new(VaultStore::open(&url).await.unwrap()))
                .await
                .unwrap(),
        ),
    );
    for s in &shares[1..] {
        signward_engine::vault::submit_share(&state, "test", s.clone())
            .await
            .unwrap();
    }
    assert_eq!(state.keys().len(), 2);
    assert!(state.keys().contains(checked.public_key()));
    assert!(state.keys().contains(legacy.public_key()));
    signward_engine::vault::seal(&state, "test", "test").await;
    // An unchecked record whose secret is another key's: the unseal fails and nothing loads.
    filler
        .store()
        .insert_keys(meta.generation, &[unchecked(&other, &checked)], false)
        .await
        .unwrap();
    let mut refused = None;
    for s in &shares[1..] {
        if let Err(e) = signward_engine::vault::submit_share(&state, "test", s.clone()).await {
            refused = Some(e);
        }
    }
    let id = other.public_key().to_hex();
    assert!(matches!(refused, Some(VaultError::RecordTampered(k)) if k == id));
    assert!(state.is_sealed());
    assert_eq!(state.keys().len(), 0);
}
