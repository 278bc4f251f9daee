//! The measurements: each figure printed beside its reference (raw blst, raw k256, standard
//! keystores) measured in the same run.

use signward_os::DataDir;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rayon::prelude::*;
use secrecy::SecretString;
use signward_core::bytes::Root;
use signward_core::network::NetworkConfig;
use signward_core::request::SignRequest;
use signward_core::signing::prepare;
use signward_engine::AppState;
use signward_keys::bls::{verify, BlsKeypair};
use signward_keys::fsutil::write_secret_file;
use signward_keys::keystore::{Kdf, KdfLimits, Keystore};
use signward_keys::loader::{discover, load_all, KeySources};
use signward_server::serve::Limits;
use signward_slashing::interchange::{SignedAttestation, SignedBlock, Writer};
use signward_slashing::SlashingStore;

use signward_auth::secret::ServerSecret;
use signward_auth::store::CredentialFile;
use signward_auth::{Policy, Scope};

use crate::{open_db, SlashingDbArgs};

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) fn header() {
    println!("# signward-bench");
    println!(
        "cores: {}   version: {}   build: {}",
        cores(),
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug (numbers are not representative)"
        } else {
            "release"
        }
    );
}

/// Raw blst signing on `threads` threads for `dur`: signatures per second.
/// Signatures per second of the raw primitive: `threads` threads each build their own key with
/// `make` and sign distinct 32-byte messages with `sign` for `dur`.
fn raw_rate<K, M, S>(threads: usize, dur: Duration, make: M, sign: S) -> f64
where
    M: Fn() -> K + Send + Sync + Copy + 'static,
    S: Fn(&K, [u8; 32]) + Send + Sync + Copy + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let stop = stop.clone();
            let total = total.clone();
            std::thread::spawn(move || {
                let key = make();
                let mut msg = [0u8; 32];
                msg[..8].copy_from_slice(&(t as u64).to_le_bytes());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    msg[8..16].copy_from_slice(&n.to_le_bytes());
                    sign(&key, msg);
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn raw_blst(threads: usize, dur: Duration) -> f64 {
    raw_rate(threads, dur, BlsKeypair::generate, |key, msg| {
        std::hint::black_box(key.sign(&Root::from(msg)));
    })
}

pub(crate) fn attestation_body(target: u64) -> String {
    let z = "00".repeat(32);
    format!(
        r#"{{"type":"ATTESTATION","fork_info":{{"fork":{{"previous_version":"0x05000000","current_version":"0x06000000","epoch":"411392"}},"genesis_validators_root":"0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"}},"attestation":{{"slot":"{slot}","index":"0","beacon_block_root":"0x{z}","source":{{"epoch":"{source}","root":"0x{z}"}},"target":{{"epoch":"{target}","root":"0x{z}"}}}}}}"#,
        slot = target * 32,
        source = target.saturating_sub(1),
    )
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn signing(
    keys: usize,
    instances: usize,
    duration_secs: u64,
    concurrency: usize,
    db: SlashingDbArgs,
    with_auth_audit: bool,
) -> anyhow::Result<()> {
    ensure!(
        keys > 0 && concurrency > 0 && duration_secs > 0,
        "all arguments must be positive"
    );
    header();
    let dur = Duration::from_secs(duration_secs);
    println!("\n## raw blst (BlsKeypair::sign, {}s each)", duration_secs);
    let raw_one = raw_blst(1, dur);
    println!("raw blst, 1 thread:        {raw_one:>10.0} sig/s");
    let raw_all = raw_blst(cores(), dur);
    println!("raw blst, {} threads:       {raw_all:>10.0} sig/s", cores());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let backend = match &db.slashing_protection_db_url {
        Some(u) if u.starts_with("postgres") || u.starts_with("env:") => "postgres",
        _ => "sqlite",
    };
    let (rate, p50, p99, errors, total) = runtime.block_on(http_bench(
        keys,
        instances,
        dur,
        concurrency,
        &db,
        tmp.path(),
        with_auth_audit,
    ))?;
    println!(
        "\n## HTTP ATTESTATION signing with {backend} slashing protection{} ({instances} instance(s), {keys} keys, {concurrency} connections, {duration_secs}s; client on the same machine)",
        if with_auth_audit { ", token auth and audit log" } else { "" }
    );
    println!("requests: {total}   errors: {errors}");
    println!("throughput:                {rate:>10.0} sig/s");
    println!(
        "fraction of raw blst ({} threads): {:.1}%",
        cores(),
        100.0 * rate / raw_all
    );
    println!(
        "latency p50: {:.3} ms   p99: {:.3} ms",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
    Ok(())
}

async fn http_bench(
    keys: usize,
    instances: usize,
    dur: Duration,
    concurrency: usize,
    db: &SlashingDbArgs,
    data_dir: &std::path::Path,
    with_auth_audit: bool,
) -> anyhow::Result<(f64, u32, u32, u64, u64)> {
    // With auth and audit: a token with the sign scope, sent as a Bearer header.
    let bearer = if with_auth_audit {
        let secret = ServerSecret::load_or_create(&DataDir::new(data_dir).server_key())?;
        let policy = Policy {
            scopes: [Scope::Sign].into(),
            ..Default::default()
        };
        let token = CredentialFile::new(data_dir).create(&secret, "bench", policy)?;
        Some(format!("Bearer {}", token.0.as_str()))
    } else {
        None
    };
    let generated: Vec<BlsKeypair> = (0..keys)
        .into_par_iter()
        .map(|_| BlsKeypair::generate())
        .collect();
    let pubkeys: Vec<String> = generated.iter().map(|k| k.public_key().to_hex()).collect();
    // `instances` servers, each with its own connection to the same database (as separate
    // processes would have), all holding the same keys.
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for i in 0..instances.max(1) {
        let copies = generated
            .iter()
            .map(|k| BlsKeypair::from_secret_bytes(k.dangerous_secret_bytes().as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let state =
            crate::fleet::signward_state(copies, db, data_dir, i, with_auth_audit, None).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        let app = signward_server::router(state, Limits::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        servers.push(tokio::spawn(signward_server::serve(
            listener,
            app,
            signward_server::serve::ConnLimits::default(),
            async {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        )));
    }
    drop(generated);
    let addr = addrs[0];

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let post = move |client: Client<_, Full<Bytes>>,
                     addr: std::net::SocketAddr,
                     pubkey: String,
                     body: String,
                     bearer: Option<String>| async move {
        let mut req = hyper::Request::post(format!("http://{addr}/api/v1/eth2/sign/{pubkey}"))
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(b) = bearer {
            req = req.header("authorization", b);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = client.request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    };

    // Sanity: one signature verifies under the signing root computed independently of the server.
    // Targets start above anything a previous run against the same database recorded.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        * 1000;
    let body = attestation_body(base);
    let (status, bytes) = post(
        client.clone(),
        addr,
        pubkeys[0].clone(),
        body.clone(),
        bearer.clone(),
    )
    .await?;
    ensure!(status.is_success(), "sanity request failed: {status}");
    let sig: serde_json::Value = serde_json::from_slice(&bytes)?;
    let sig = signward_core::bytes::decode_hex(sig["signature"].as_str().context("signature")?)
        .context("signature hex")?;
    let job = prepare(
        &SignRequest::from_json(body.as_bytes())?,
        &NetworkConfig::mainnet(),
    )?;
    let pk = signward_core::bytes::decode_hex(&pubkeys[0]).context("pubkey")?;
    ensure!(
        verify(&pk, &job.signing_root.0, &sig),
        "signature does not verify"
    );

    let result = drive(concurrency, dur, base + 1, move |n| {
        let pk = pubkeys[(n % pubkeys.len() as u64) as usize].clone();
        let to = addrs[(n % addrs.len() as u64) as usize];
        let req = post(client.clone(), to, pk, attestation_body(n), bearer.clone());
        async move { matches!(req.await, Ok((s, _)) if s.is_success()) }
    })
    .await;
    for stop in stops {
        let _ = stop.send(());
    }
    for server in servers {
        let _ = server.await;
    }
    result
}

/// Keep `concurrency` requests in flight for `dur`; request `n` (counting from `first`) is
/// `request(n)`, which answers whether it succeeded. Returns (rate of successes per second, p50 µs,
/// p99 µs, errors, total).
async fn drive<F, Fut>(
    concurrency: usize,
    dur: Duration,
    first: u64,
    request: F,
) -> anyhow::Result<(f64, u32, u32, u64, u64)>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(first));
    let deadline = Instant::now() + dur;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                if request(n).await {
                    lat.push(t0.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let ok = all.len() as u64;
    Ok((
        ok as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        errors,
        ok + errors,
    ))
}

pub fn load(count: usize, iterations: u32) -> anyhow::Result<()> {
    ensure!(count > 0, "count must be positive");
    header();
    let dir = tempfile::tempdir()?;
    let pw_path = dir.path().join("password.txt");
    write_secret_file(&pw_path, b"bench-password")?;
    let ks_dir = dir.path().join("keystores");
    DataDir::new(&ks_dir).ensure_private()?;
    let password = SecretString::from("bench-password".to_string());
    println!("\n## keystore loading: {count} PBKDF2 keystores, c={iterations}");
    let t = Instant::now();
    (0..count)
        .into_par_iter()
        .try_for_each(|i| -> anyhow::Result<()> {
            let key = BlsKeypair::generate();
            let ks = Keystore::encrypt(&key, &password, Kdf::pbkdf2(iterations), "")?;
            write_secret_file(
                &ks_dir.join(format!("k{i:05}.json")),
                &serde_json::to_vec(&ks)?,
            )?;
            Ok(())
        })?;
    println!("(created in {:.1}s)", t.elapsed().as_secs_f64());
    let sources = KeySources {
        keystores_path: Some(ks_dir),
        keystores_password_file: Some(pw_path),
        ..Default::default()
    };
    let mut one = None;
    let mut thread_counts = vec![1];
    if cores() > 1 {
        thread_counts.push(cores());
    }
    for threads in thread_counts {
        let report = load_all(
            discover(&sources),
            Some(threads),
            KdfLimits::default(),
            Duration::from_secs(3600),
            |_| {},
        );
        ensure!(
            report.failures.is_empty() && report.loaded.len() == count,
            "load failed"
        );
        let secs = report.elapsed.as_secs_f64();
        let speedup = one.map(|o: f64| o / secs).unwrap_or(1.0);
        one.get_or_insert(secs);
        println!(
            "threads: {threads:>2}   time: {secs:>7.2}s   {:>8.1} keys/s   speed-up: {speedup:.2}x",
            count as f64 / secs
        );
    }
    Ok(())
}

/// Unseal → ready to sign for `keys` vault keys, through the server's own code (share
/// submission, quorum check, record decryption, parallel key construction, registry), beside
/// decrypting a sample of scrypt keystores on all cores, extrapolated to `keys`.
pub fn unseal(keys: usize, db: &str, scrypt_sample: usize) -> anyhow::Result<()> {
    use signward_engine::state::Protection;
    use signward_engine::vault::VaultRuntime;
    use signward_vault::vault::KeyToStore;
    use signward_vault::{KeyKind, Vault, VaultStore};
    ensure!(keys > 0, "keys must be positive");
    header();
    let dir = tempfile::tempdir()?;
    let url = if db == "sqlite" {
        format!("sqlite:{}", dir.path().join("vault.sqlite").display())
    } else {
        db.to_string()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = VaultStore::open(&url).await?;
        let mut shares = Vec::new();
        signward_vault::vault::init(&store, 2, 3, |s| {
            shares = s.to_vec();
            Ok(())
        })
        .await?;
        // Fill the vault: generate and store the keys (not timed).
        let t = Instant::now();
        let filler = Vault::new(store);
        for s in &shares[..2] {
            filler.submit_share(s.clone()).await?;
        }
        let generated: Vec<KeyToStore> = (0..keys)
            .into_par_iter()
            .map(|_| {
                let k = BlsKeypair::generate();
                KeyToStore {
                    kind: KeyKind::Bls,
                    key_id: k.public_key().to_hex(),
                    secret: zeroize::Zeroizing::new(k.dangerous_secret_bytes().to_vec()),
                    origin: "bench".into(),
                }
            })
            .collect();
        for chunk in generated.chunks(1000) {
            filler.store_keys(chunk).await?;
        }
        drop(generated);
        filler.seal();
        println!("\n## unseal to ready: {keys} BLS keys in the vault ({})", filler.store().backend());
        println!("(vault filled in {:.1}s)", t.elapsed().as_secs_f64());
        let store = VaultStore::open(&url).await?;
        let network = signward_core::network::NetworkConfig::builtin("mainnet").context("mainnet config")?;
        let slashing = signward_slashing::SlashingDb::open(&format!("sqlite:{}", dir.path().join("slashing.sqlite").display())).await?;
        let state = Arc::new(
            AppState::new(network, Protection::new(slashing, None))
                .with_vault(VaultRuntime::new(Vault::new(store)).await?),
        );
        // Resident memory now (VmRSS) and at its peak so far (VmHWM), in MiB.
        let rss = |field: &str| -> Option<f64> {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let line = status.lines().find(|l| l.starts_with(field))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        let mib = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0} MiB"));
        println!(
            "RSS before the first unseal: {} (peak so far, filling included: {})",
            mib(rss("VmRSS:")),
            mib(rss("VmHWM:"))
        );
        for round in 1..=3 {
            let t = Instant::now();
            for s in &shares[1..] {
                signward_engine::vault::submit_share(&state, "bench", s.clone()).await?;
            }
            let secs = t.elapsed().as_secs_f64();
            ensure!(!state.is_sealed() && state.keys().len() == keys, "unseal did not load every key");
            println!(
                "round {round}: unseal → ready to sign: {secs:>6.3}s   {:>9.0} keys/s   ({} keys loaded; RSS {}, peak {})",
                keys as f64 / secs,
                state.keys().len(),
                mib(rss("VmRSS:")),
                mib(rss("VmHWM:"))
            );
            signward_engine::vault::seal(&state, "bench", "bench").await;
        }
        println!("peak RSS of the process (VmHWM): {}", mib(peak_rss_mib()));
        anyhow::Ok(())
    })?;
    if scrypt_sample > 0 {
        let ks_dir = dir.path().join("scrypt");
        DataDir::new(&ks_dir).ensure_private()?;
        let pw_path = dir.path().join("password.txt");
        write_secret_file(&pw_path, b"bench-password")?;
        let password = SecretString::from("bench-password".to_string());
        (0..scrypt_sample)
            .into_par_iter()
            .try_for_each(|i| -> anyhow::Result<()> {
                let key = BlsKeypair::generate();
                let ks = Keystore::encrypt(&key, &password, Kdf::scrypt_default(), "")?;
                write_secret_file(
                    &ks_dir.join(format!("k{i:05}.json")),
                    &serde_json::to_vec(&ks)?,
                )?;
                Ok(())
            })?;
        let sources = KeySources {
            keystores_path: Some(ks_dir),
            keystores_password_file: Some(pw_path),
            ..Default::default()
        };
        let report = load_all(
            discover(&sources),
            Some(cores()),
            KdfLimits::default(),
            Duration::from_secs(3600),
            |_| {},
        );
        ensure!(report.failures.is_empty(), "scrypt sample failed to load");
        let secs = report.elapsed.as_secs_f64();
        let per_key = secs / scrypt_sample as f64;
        println!(
            "\n## the same from EIP-2335 scrypt keystores (n=262144), {} threads\nsample: {scrypt_sample} keystores in {secs:.2}s ({:.1} keys/s); extrapolated to {keys} keys: {:.0}s ({:.1} min)",
            cores(),
            1.0 / per_key,
            per_key * keys as f64,
            per_key * keys as f64 / 60.0
        );
    }
    Ok(())
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn interchange(validators: u64, epochs: u64, db: SlashingDbArgs) -> anyhow::Result<()> {
    ensure!(
        validators > 0 && epochs > 1,
        "validators and epochs must be positive"
    );
    header();
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("interchange.json");
    let gvr = NetworkConfig::mainnet()
        .genesis_validators_root
        .context("mainnet root")?;
    let t = Instant::now();
    {
        let out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut w = Writer::new(out, &gvr)?;
        for v in 0..validators {
            let mut pk = [0u8; 48];
            pk[..8].copy_from_slice(&v.to_le_bytes());
            let pk = signward_core::bytes::PublicKeyBytes::from(pk);
            let atts: Vec<SignedAttestation> = (1..=epochs)
                .map(|e| SignedAttestation {
                    source_epoch: (e - 1).into(),
                    target_epoch: e.into(),
                    signing_root: Some(Root::from([(e % 251) as u8; 32])),
                })
                .collect();
            let blocks: Vec<SignedBlock> = (0..epochs / 50)
                .map(|i| SignedBlock {
                    slot: (i * 50 * 32 + v % 32).into(),
                    signing_root: Some(Root::from([7u8; 32])),
                })
                .collect();
            w.validator(&pk, &blocks, &atts)?;
        }
        w.finish()?;
    }
    let size = std::fs::metadata(&file)?.len();
    println!(
        "\n## interchange: {validators} validators x {epochs} epochs ({:.1} MiB file, generated in {:.1}s)",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let before = peak_rss_mib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = open_db(&db, tmp.path(), false).await?;
        println!("backend: {}", store.backend());
        let t = Instant::now();
        let r = store.import(std::fs::File::open(&file)?).await?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "import: {secs:.1}s ({:.0} attestations/s; {} validators, {} attestations, {} blocks)",
            r.attestations as f64 / secs,
            r.validators,
            r.attestations,
            r.blocks
        );
        if let (Some(b), Some(a)) = (before, peak_rss_mib()) {
            println!("peak RSS: {a:.0} MiB (before import {b:.0} MiB)");
        }
        // Full-history export of what was just imported, to a file: the same records come out,
        // and since the file was written by the same writer in the same order, the same bytes.
        let exported = tmp.path().join("export.json");
        let t = Instant::now();
        let e = store
            .export(std::fs::File::create(&exported)?, false)
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let esize = std::fs::metadata(&exported)?.len();
        println!(
            "export (complete): {secs:.1}s ({:.0} attestations/s; {} validators, {} attestations, {} blocks, {:.1} MiB)",
            e.attestations as f64 / secs,
            e.validators,
            e.attestations,
            e.blocks,
            esize as f64 / 1048576.0
        );
        ensure!(
            (e.validators, e.attestations, e.blocks) == (r.validators, r.attestations, r.blocks),
            "export does not hold what was imported: {e:?} against {r:?}"
        );
        let same = esize == size && {
            use std::io::Read;
            let (mut a, mut b) = (
                std::io::BufReader::new(std::fs::File::open(&file)?),
                std::io::BufReader::new(std::fs::File::open(&exported)?),
            );
            let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
            loop {
                let n = a.read(&mut x)?;
                if n == 0 {
                    break true;
                }
                b.read_exact(&mut y[..n])?;
                if x[..n] != y[..n] {
                    break false;
                }
            }
        };
        ensure!(same, "the export differs from the imported file");
        println!("export is byte-identical to the imported file");
        std::fs::remove_file(&exported)?;
        if let (Some(b), Some(a)) = (before, peak_rss_mib()) {
            println!("peak RSS after export: {a:.0} MiB (before import {b:.0} MiB)");
        }
        let t = Instant::now();
        let p = store.prune(10, 32).await?;
        println!(
            "prune to 10 epochs: {:.1}s ({} attestations, {} blocks deleted)",
            t.elapsed().as_secs_f64(),
            p.attestations_deleted,
            p.blocks_deleted
        );
        anyhow::Ok(())
    })
}

/// Raw k256 signing of a 32-byte digest on `threads` threads for `dur`: signatures per second.
fn raw_k256(threads: usize, dur: Duration) -> f64 {
    raw_rate(
        threads,
        dur,
        || k256::ecdsa::SigningKey::random(&mut rand_core_rng()),
        |key, msg| {
            let r = key.sign_prehash_recoverable(&msg);
            std::hint::black_box(r.is_ok());
        },
    )
}

fn rand_core_rng() -> k256::elliptic_curve::rand_core::OsRng {
    k256::elliptic_curve::rand_core::OsRng
}

/// `eth_signTransaction` (EIP-1559) through the full JSON-RPC path: token auth, a realistic
/// policy (chain, recipients, selector, caps, declared intent not required), a spend window in
/// the SQLite ledger (one durable commit per transaction), the audit log, then k256 signing.
pub fn evm(
    duration_secs: u64,
    concurrency: usize,
    without_spend_window: bool,
) -> anyhow::Result<()> {
    ensure!(
        duration_secs > 0 && concurrency > 0,
        "arguments must be positive"
    );
    header();
    let dur = Duration::from_secs(duration_secs);
    println!("\n## raw k256 (sign_prehash_recoverable, {duration_secs}s each)");
    let raw_one = raw_k256(1, dur);
    println!("raw k256, 1 thread:        {raw_one:>10.0} sig/s");
    let raw_all = raw_k256(cores(), dur);
    println!("raw k256, {} threads:       {raw_all:>10.0} sig/s", cores());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let (rate, p50, p99, errors, total) = runtime.block_on(async {
        let dir = tmp.path();
        let secret = ServerSecret::load_or_create(&DataDir::new(dir).server_key())?;
        let bot = Policy {
            scopes: [Scope::Evm].into(),
            evm_keys: signward_auth::EvmKeys::All,
            allow_ops: Some([signward_auth::Operation::EvmTransaction].into()),
            ..Default::default()
        };
        let token = CredentialFile::new(dir).create(&secret, "bot", bot)?;
        let bearer = format!("Bearer {}", token.0.as_str());
        let key = signward_evm::EvmKey::generate();
        let from = key.address();
        let mut policy_text = String::from(
            r#"
[defaults]
chain_ids = [1]
recipients = ["0x2222222222222222222222222222222222222222", "0x3333333333333333333333333333333333333333"]
max_value_wei = "1000000000000000000"
max_gas = 300000
max_fee_per_gas_wei = "200000000000"
max_priority_fee_per_gas_wei = "5000000000"
max_calldata_bytes = 1024
contracts = [{ address = "0x2222222222222222222222222222222222222222", selectors = ["0xa9059cbb", "0x095ea7b3"] }]
"#,
        );
        if !without_spend_window {
            policy_text.push_str("spend_window = { window_secs = 86400, max_total_wei = \"1000000000000000000000000\", max_count = 100000000 }\n");
        }
        let policy = signward_policy::Policy::from_toml(&policy_text)?;
        drop(secret);
        // The engine as `serve` builds it: every store opened by `assemble` in the data directory.
        let mut config = signward_engine::Config::new(NetworkConfig::mainnet(), dir.to_path_buf())?;
        config.evm_policy = Some(policy);
        config.auth = Some(signward_engine::assemble::AuthConfig {
            failure_limit: 1000,
            trusted_proxies: Vec::new(),
        });
        let state = signward_engine::assemble(config).await?;
        state.evm().keys.insert_all([key]);
        while !state.is_ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(signward_server::serve(
            listener,
            signward_server::router(state, Limits::default()),
            signward_server::serve::ConnLimits::default(),
            async {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        ));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let body = move |n: u64| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_signTransaction","params":[{{"from":"{from:#x}","to":"0x2222222222222222222222222222222222222222","value":"0x0","gas":"0xea60","maxFeePerGas":"0x2540be400","maxPriorityFeePerGas":"0x3b9aca00","nonce":"0x{n:x}","chainId":"0x1","data":"0xa9059cbb0000000000000000000000003333333333333333333333333333333333333333000000000000000000000000000000000000000000000000000000000000000a"}}]}}"#
            )
        };
        let post = move |client: Client<_, Full<Bytes>>, b: String, bearer: String| async move {
            let req = hyper::Request::post(format!("http://{addr}/"))
                .header("content-type", "application/json")
                .header("authorization", bearer)
                .body(Full::new(Bytes::from(b)))?;
            let resp = client.request(req).await?;
            let bytes = resp.into_body().collect().await?.to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            anyhow::Ok(v)
        };
        // Sanity: the signed transaction recovers to the key.
        let v = post(client.clone(), body(0), bearer.clone()).await?;
        // The raw hex string (the default result shape since issue 14), or geth's `{raw, tx}`.
        let raw = v["result"]
            .as_str()
            .or_else(|| v["result"]["raw"].as_str())
            .with_context(|| format!("sanity request failed: {v}"))?;
        let raw = hex::decode(raw.trim_start_matches("0x"))?;
        {
            use alloy_consensus::transaction::SignerRecoverable;
            use alloy_eips::eip2718::Decodable2718;
            let env = alloy_consensus::TxEnvelope::decode_2718(&mut raw.as_slice()).map_err(|e| anyhow::anyhow!("{e}"))?;
            ensure!(env.recover_signer().map_err(|e| anyhow::anyhow!("{e}"))? == from, "signature does not recover to the key");
        }
        let result = drive(concurrency, dur, 1, move |n| {
            let req = post(client.clone(), body(n), bearer.clone());
            async move { matches!(req.await, Ok(v) if v.get("result").is_some()) }
        })
        .await;
        let _ = stop_tx.send(());
        let _ = server.await;
        result
    })?;
    println!(
        "\n## eth_signTransaction (EIP-1559 ERC-20 transfer) through JSON-RPC: token auth, policy, {}audit ({concurrency} connections, {duration_secs}s; client on the same machine)",
        if without_spend_window { "" } else { "SQLite spend window, " }
    );
    println!("requests: {total}   errors: {errors}");
    println!("throughput:                {rate:>10.0} tx/s");
    println!(
        "fraction of raw k256 ({} threads): {:.1}%",
        cores(),
        100.0 * rate / raw_all
    );
    println!(
        "latency p50: {:.3} ms   p99: {:.3} ms",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
    Ok(())
}
