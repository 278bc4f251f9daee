//! `signward serve`: bind, load keys in the background, serve until SIGTERM/SIGINT.

use signward_os::DataDir;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use signward_auth::limiter::FailureLimiter;
use signward_auth::secret::ServerSecret;
use signward_auth::store::TokenStore;
use signward_core::network::{GenesisFacts, NetworkConfig, GENESIS_SSZ_PREFIX_LEN};
use signward_engine::access::Gate;
use signward_engine::state::{ClockOff, ClockStatus, LoadStatus, Protection};
use signward_engine::vault::VaultRuntime;
use signward_engine::AppState;
use signward_keys::keystore::KdfLimits;
use signward_keys::loader::{discover, load_all, KeySources, Progress};
use signward_server::serve::{ConnLimits, Limits};
use signward_server::ServerConfig;
use signward_slashing::clock::ChainClock;
use signward_slashing::SlashingStore;

use crate::cli::ServeArgs;

pub fn network(spec: &str) -> anyhow::Result<NetworkConfig> {
    if let Some(n) = NetworkConfig::builtin(spec) {
        return Ok(n);
    }
    let path = std::path::Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading network config {}", path.display()))?;
        return NetworkConfig::from_config_yaml(spec, &text)
            .with_context(|| format!("network config {}", path.display()));
    }
    bail!("unknown network {spec:?}: use mainnet, hoodi, sepolia, or the path of a config.yaml")
}

/// A beacon API genesis response is a few hundred bytes; a larger genesis.json is not one (the
/// execution-layer genesis files kept under that name run to megabytes) and is not parsed.
const GENESIS_JSON_MAX_BYTES: u64 = 64 * 1024;

/// The network `serve` runs, with its genesis time and root from every source given, and notes
/// about genesis files looked at but not used.
pub struct Resolved {
    pub network: NetworkConfig,
    pub notes: Vec<String>,
}

/// `--network` with its genesis facts: `--genesis-time`, then `genesis.ssz` and `genesis.json`
/// beside a config.yaml. Sources that disagree (with each other, with a built-in network's
/// constants, or a file's fork version with config.yaml) are an error.
pub fn network_with_genesis(spec: &str, genesis_time: Option<u64>) -> anyhow::Result<Resolved> {
    let mut network = network(spec)?;
    let mut facts = Vec::new();
    let mut notes = Vec::new();
    if let Some(t) = genesis_time {
        facts.push(GenesisFacts::from_flag(t));
    }
    if NetworkConfig::builtin(spec).is_none() {
        let dir = std::path::Path::new(spec)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        facts.extend(read_genesis_ssz(&dir.join("genesis.ssz"))?);
        facts.extend(read_genesis_json(&dir.join("genesis.json"), &mut notes)?);
    }
    network
        .apply_genesis(facts)
        .with_context(|| format!("genesis of network {spec}"))?;
    Ok(Resolved { network, notes })
}

/// Open a genesis file beside config.yaml: `None` when there is none.
fn open_genesis_file(path: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        Ok(m) if !m.is_file() => bail!("{} is not a regular file", path.display()),
        Ok(_) => {}
    }
    std::fs::File::open(path)
        .map(Some)
        .with_context(|| format!("reading {}", path.display()))
}

/// The genesis time and root from the fixed prefix of `genesis.ssz`: only its first
/// 40 bytes are read, however large the state.
fn read_genesis_ssz(path: &std::path::Path) -> anyhow::Result<Option<GenesisFacts>> {
    use std::io::Read;
    let Some(file) = open_genesis_file(path)? else {
        return Ok(None);
    };
    let mut prefix = Vec::with_capacity(GENESIS_SSZ_PREFIX_LEN);
    file.take(GENESIS_SSZ_PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .with_context(|| format!("reading {}", path.display()))?;
    GenesisFacts::from_state_ssz(&prefix)
        .map(Some)
        .with_context(|| format!("{}", path.display()))
}

/// The genesis facts of a beacon API `genesis.json`; an execution-layer genesis.json (or any
/// JSON without `genesis_time`) is skipped with a note.
fn read_genesis_json(
    path: &std::path::Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<GenesisFacts>> {
    use std::io::Read;
    let Some(file) = open_genesis_file(path)? else {
        return Ok(None);
    };
    let mut text = String::new();
    file.take(GENESIS_JSON_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {} (not UTF-8?)", path.display()))?;
    if text.len() as u64 > GENESIS_JSON_MAX_BYTES {
        notes.push(format!(
            "{} not used: larger than {} KiB, so not a beacon API genesis response (an \
             execution-layer genesis?)",
            path.display(),
            GENESIS_JSON_MAX_BYTES / 1024
        ));
        return Ok(None);
    }
    let facts =
        GenesisFacts::from_beacon_json(&text).with_context(|| format!("{}", path.display()))?;
    if facts.is_none() {
        notes.push(format!(
            "{} not used: it has no genesis_time (an execution-layer genesis?)",
            path.display()
        ));
    }
    Ok(facts)
}

/// What the chain-clock window does with `network`, and why.
pub fn clock_status(network: &NetworkConfig, disabled_by_flag: bool) -> ClockStatus {
    let source = network.genesis_time_source.map(|s| s.as_str());
    let warning = network.genesis_time_warning();
    if disabled_by_flag {
        return ClockStatus {
            off: Some(ClockOff::DisabledByFlag),
            detail: "disabled by --slashing-protection-disable-clock-check: blocks and \
                     attestations are not bounded in time; remove the flag"
                .into(),
            genesis_time: network.genesis_time,
            genesis_time_source: source,
            warning,
        };
    }
    match network.genesis_time {
        Some(t) => ClockStatus {
            off: None,
            detail: format!("on: genesis time {t} from {}", source.unwrap_or("?")),
            genesis_time: Some(t),
            genesis_time_source: source,
            warning,
        },
        None => ClockStatus {
            off: Some(ClockOff::GenesisTimeUnknown),
            detail: format!(
                "genesis time of {} unknown: blocks and attestations are not bounded in time; \
                 pass --genesis-time <unix seconds> or put the network's genesis.ssz beside \
                 config.yaml (MIN_GENESIS_TIME + GENESIS_DELAY in config.yaml is not genesis time)",
                network.name
            ),
            genesis_time: None,
            genesis_time_source: None,
            warning: None,
        },
    }
}

fn sources(args: &ServeArgs) -> anyhow::Result<KeySources> {
    if args.keystores_path.is_some()
        && args.keystores_passwords_path.is_none()
        && args.keystores_password_file.is_none()
    {
        bail!("--keystores-path needs --keystores-passwords-path or --keystores-password-file");
    }
    if args.keystores_path.is_none()
        && (args.keystores_passwords_path.is_some() || args.keystores_password_file.is_some())
    {
        bail!("password options given without --keystores-path");
    }
    Ok(KeySources {
        keystores_path: args.keystores_path.clone(),
        keystores_passwords_path: args.keystores_passwords_path.clone(),
        keystores_password_file: args.keystores_password_file.clone(),
        key_config_path: args.key_config_path.clone(),
        allow_raw_keys: args.allow_raw_keys,
    })
}

fn log_progress(p: Progress) {
    tracing::info!(
        done = p.done,
        total = p.total,
        rate_per_sec = format_args!("{:.1}", p.rate_per_sec()),
        eta_secs = p.eta().map(|d| d.as_secs()).unwrap_or(0),
        "loading keys"
    );
}

/// Load every configured key into `state`, then mark the server ready.
fn load_keys(state: &AppState, sources: &KeySources, threads: Option<usize>) {
    let jobs = discover(sources);
    state.set_load_status(LoadStatus::Loading { total: jobs.len() });
    tracing::info!(configured = jobs.len(), "loading keys");
    let report = load_all(
        jobs,
        threads,
        KdfLimits::default(),
        Duration::from_secs(5),
        log_progress,
    );
    for f in &report.failures {
        tracing::error!(file = %f.origin, error.class = f.error.class(), error = %f.error, "key failed to load");
    }
    let raw = report.loaded.iter().filter(|k| k.raw).count();
    if raw > 0 {
        tracing::warn!(
            count = raw,
            "plaintext file-raw keys loaded (--allow-raw-keys): anyone who can read those files has the keys"
        );
    }
    let loaded = report.loaded.len();
    let failed = report.failures.len();
    warn_disabled(state, report.loaded.iter().map(|k| *k.keypair.public_key()));
    state.keys.insert_with_paths(
        signward_engine::state::KeyOrigin::File,
        report
            .loaded
            .into_iter()
            .map(|k| (k.keypair, k.derivation_path)),
    );
    state.set_load_status(LoadStatus::Done { loaded, failed });
    tracing::info!(
        loaded,
        failed,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "key loading finished; ready to sign"
    );
}

/// Keys loaded from files whose validator is disabled in the slashing database (deleted through
/// the Keymanager API, here or on another instance) sign nothing: say so at load time.
fn warn_disabled(
    state: &AppState,
    loaded: impl Iterator<Item = signward_core::bytes::PublicKeyBytes>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let disabled = match handle.block_on(state.protection.db.disabled()) {
        Ok(d) => d.into_iter().collect::<std::collections::HashSet<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read disabled validators");
            return;
        }
    };
    for pk in loaded.filter(|pk| disabled.contains(pk)) {
        tracing::warn!(pubkey = %pk, "this key is disabled in the slashing database (it was deleted and its history exported); it signs nothing until it is imported again or `signward slashing enable` is run");
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let Resolved { network, notes } = network_with_genesis(&args.network, args.genesis_time)?;
    for note in &notes {
        tracing::info!("{note}");
    }
    let sources = sources(&args)?;
    let loopback = args.http_listen_host.is_loopback();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            signward_server::tls::Tls::load(signward_server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })
            .context("loading TLS certificates")?,
        )),
        _ => None,
    };
    if !loopback && tls.is_none() && !args.insecure_allow_plaintext_non_loopback {
        bail!(
            "refusing to listen on non-loopback address {} without TLS: tokens and signing \
             requests would cross the network in plaintext; pass \
             --insecure-allow-plaintext-non-loopback only on a network you control",
            args.http_listen_host
        );
    }
    if args.insecure_disable_auth && !loopback {
        bail!("--insecure-disable-auth is accepted only on a loopback listener");
    }
    if args.dev_evm_key.is_some() && !args.dev {
        bail!("--dev-evm-key takes a raw private key from the environment and is refused without --dev (development only)");
    }
    if args.dev && !loopback {
        bail!("--dev is accepted only on a loopback listener");
    }
    let evm_policy = args
        .evm_policy
        .as_deref()
        .map(super::policy::load)
        .transpose()?;
    let dev_key = match &args.dev_evm_key {
        None => None,
        Some(spec) => {
            let var = spec
                .strip_prefix("env:")
                .context("--dev-evm-key must be env:VAR (a key never goes on the command line)")?;
            let hexkey = zeroize::Zeroizing::new(
                std::env::var(var)
                    .with_context(|| format!("environment variable {var} is not set"))?,
            );
            let bytes = zeroize::Zeroizing::new(
                hex::decode(hexkey.trim().trim_start_matches("0x"))
                    .context("the dev key is not hex")?,
            );
            Some(
                signward_evm::EvmKey::from_secret_bytes(&bytes)
                    .context("the dev key is not a secp256k1 secret key")?,
            )
        }
    };
    let trusted_proxies = args
        .trusted_proxy
        .iter()
        .map(|c| c.parse::<signward_auth::Cidr>())
        .collect::<Result<Vec<_>, _>>()?;
    // Process hardening, before any secret is read: owner-only files, no core dumps.
    if signward_os::is_root() {
        if !args.allow_root {
            bail!(
                "refusing to run as root: a compromise of the signer would own the host. Run it as \
                 its own unprivileged user (see packaging/signward.service), or pass --allow-root"
            );
        }
        tracing::warn!("running as root (--allow-root)");
    }
    signward_os::owner_only_umask();
    signward_os::disable_core_dumps()
        .map_err(|e| anyhow::anyhow!("cannot turn core dumps off: {e}"))?;
    tracing::info!("core dumps off (RLIMIT_CORE 0, not dumpable); umask 077");
    super::ensure_private_dir(&args.data_dir)?;
    // Lock memory before any secret is read, so no key ever reaches swap.
    let memory = signward_os::lock_all_memory();
    match &memory {
        signward_os::MemoryLock::Locked => {
            tracing::info!("process memory locked (no key material can be swapped out)")
        }
        signward_os::MemoryLock::NotLocked { reason } if args.require_memory_lock => {
            bail!("memory cannot be locked and --require-memory-lock is set: {reason}")
        }
        signward_os::MemoryLock::NotLocked { reason } => {
            tracing::warn!(reason = %reason, "process memory NOT locked: decrypted keys may be written to swap")
        }
        signward_os::MemoryLock::Disabled => {}
    }
    // Unattended unseal: the shares are opened before anything listens.
    let boot_shares = if args.unseal_shares_from.is_empty() {
        Vec::new()
    } else {
        tracing::warn!(
            files = args.unseal_shares_from.len(),
            "unattended unseal from share files (--unseal-shares-from)"
        );
        super::vault::read_shares(&args.unseal_shares_from, &args.unseal_input)?
    };
    let vault_url = super::vault::vault_url(&args.slashing, &args.data_dir)?;
    let nofile = signward_os::raise_descriptor_limit();
    let config = ServerConfig {
        listen: SocketAddr::new(args.http_listen_host, args.http_listen_port),
        limits: Limits {
            max_body_bytes: args.max_request_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            max_in_flight: args.max_concurrent_requests,
        },
        connections: ConnLimits {
            max_connections: args.max_connections,
            max_per_ip: args.max_connections_per_ip,
            header_timeout: Duration::from_secs(args.http_header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(args.http_idle_timeout_secs.max(1)),
            ..ConnLimits::default()
        }
        .fit_descriptor_limit(nofile),
        shutdown_grace: Duration::from_secs(30),
    };
    tracing::info!(
        nofile,
        max_connections = config.connections.max_connections,
        max_connections_per_ip = config.connections.max_per_ip,
        "connection limits"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("signward-http")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let db = super::slashing::open_with_audit(&args.slashing, &args.data_dir).await?;
        if let Some(gvr) = network.genesis_validators_root {
            db.pin_genesis_validators_root(gvr).await.with_context(|| {
                format!(
                    "the slashing database belongs to another network than {}",
                    network.name
                )
            })?;
        }
        let clock_report = clock_status(&network, args.slashing_protection_disable_clock_check);
        let clock = match (clock_report.off, network.genesis_time) {
            (None, Some(genesis_time)) => Some(ChainClock {
                genesis_time,
                seconds_per_slot: network.seconds_per_slot,
                slots_per_epoch: network.preset.slots_per_epoch,
                max_future_epochs: args.slashing_protection_max_future_epochs,
            }),
            _ => None,
        };
        match clock_report.off {
            Some(off) => tracing::warn!(reason = off.code(), "chain-clock check OFF: {}", clock_report.detail),
            None => tracing::info!(
                genesis_time = clock_report.genesis_time,
                source = clock_report.genesis_time_source,
                max_future_epochs = args.slashing_protection_max_future_epochs,
                "chain-clock check on"
            ),
        }
        if let Some(w) = &clock_report.warning {
            tracing::warn!("{w}");
        }
        tracing::info!(
            backend = db.backend(),
            clock_check = clock.is_some(),
            "slashing protection ready"
        );
        let prune = args.slashing_protection_pruning_enabled.then_some((
            args.slashing_protection_pruning_epochs_to_keep,
            args.slashing_protection_pruning_interval,
        ));
        let audit_in_slashing_db = db.journal_store().is_some();
        let vault_store = signward_vault::VaultStore::open(&vault_url).await.context("opening the vault database")?;
        let vault = VaultRuntime::new(signward_vault::Vault::new(vault_store)).await.context("reading the vault")?;
        let vault_initialized = vault.is_initialized();
        let ledger_url = if vault_url.starts_with("postgres") {
            vault_url.clone()
        } else {
            DataDir::sqlite_url(&DataDir::new(&args.data_dir).evm_ledger())
        };
        let ledger = signward_evm::ledger::SpendLedger::open(&ledger_url).await.context("opening the EVM spend ledger")?;
        let mut state = AppState::new(network, Protection::new(db, clock).with_clock_status(clock_report)).with_vault(vault);
        state.evm = signward_engine::evm::EvmState::new(evm_policy, Some(ledger), args.dev);
        if let Some(k) = dev_key {
            tracing::warn!(address = %k.address(), "DEV MODE: an EVM key from the environment is loaded (--dev-evm-key); never use this in production");
            state.evm.insert(signward_engine::evm::EvmOrigin::Dev, [k]);
        }
        if state.evm.policy().is_none() {
            tracing::info!("no EVM policy (--evm-policy): every EVM signing request will be refused");
        }
        state.data_dir = Some(args.data_dir.clone());
        state.halt = signward_engine::controls::Halt::load(&args.data_dir);
        if state.halt.is_halted() {
            tracing::warn!(reason = state.halt.reason().as_deref().unwrap_or(""), "signing is HALTED (persisted); `signward resume` lifts it");
        }
        state.canaries = canaries(&args.canary_key, args.canary_action)?;
        state.memory = memory;
        state = if audit_in_slashing_db {
            tracing::info!("audit log kept in the slashing database (one commit for both)");
            state.with_audit_in_slashing_db()
        } else {
            let audit = signward_audit::AuditLog::open(&args.data_dir, super::audit::key(&args.data_dir)?)
                .context("opening the audit log")?;
            state.with_audit(audit)
        };
        if args.insecure_disable_auth {
            tracing::warn!("AUTHENTICATION DISABLED (--insecure-disable-auth): any local process can sign with every key");
        } else {
            let secret = ServerSecret::load_or_create(&DataDir::new(&args.data_dir).server_key())?;
            let tokens = TokenStore::open(&args.data_dir, secret)?;
            if tokens.is_empty() {
                tracing::warn!("no credentials exist yet: every request but /upcheck will be refused; create one with `signward token create`");
            }
            state = state.with_gate(Gate::new(
                tokens,
                FailureLimiter::new(args.auth_failure_limit, Duration::from_secs(60)),
                trusted_proxies,
            ));
        }
        state = state.with_reloader(reload_hook(sources.clone(), tls.clone(), args.evm_policy.clone()));
        let state = Arc::new(state);
        if vault_initialized {
            tracing::warn!("the vault is sealed: signing is refused until a quorum of shares is submitted (signward unseal)");
        }
        for share in boot_shares {
            let p = signward_engine::vault::submit_share(&state, "unseal-shares-from", share)
                .await
                .context("unattended unseal")?;
            if p.state == signward_vault::VaultState::Unsealed {
                break;
            }
        }
        signward_engine::vault::spawn_poll(state.clone());
        signward_engine::access::spawn_denial_flush(state.clone());
        if let Some((keep, hours)) = prune {
            spawn_pruning(state.clone(), keep, hours);
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local = listener.local_addr()?;
        tracing::info!(
            address = %local,
            network = %state.network.name,
            "signward listening"
        );
        if !local.ip().is_loopback() {
            tracing::warn!("listening on a non-loopback address without TLS");
        }
        let loader_state = state.clone();
        let threads = args.key_loader_threads;
        let evm_files = args.evm_keyfiles_path.clone().zip(args.evm_keyfiles_password_file.clone());
        tokio::task::spawn_blocking(move || {
            if let Some((dir, pw)) = &evm_files {
                load_evm_keyfiles(&loader_state, dir, pw);
            }
            load_keys(&loader_state, &sources, threads)
        });
        spawn_sighup(state.clone());
        if args.metrics_enabled {
            let addr = SocketAddr::new(args.metrics_host, args.metrics_port);
            if !addr.ip().is_loopback() && !args.insecure_allow_plaintext_non_loopback {
                bail!("the metrics listener {addr} is not on loopback and would carry its token in plaintext; keep it on loopback or pass --insecure-allow-plaintext-non-loopback");
            }
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics"))?;
            tracing::info!(address = %listener.local_addr()?, "metrics listening");
            let app = signward_server::serve::metrics_router(state.clone());
            tokio::spawn(async move {
                let conns = ConnLimits { max_connections: 64, max_per_ip: 16, ..ConnLimits::default() };
                if let Err(e) = signward_server::serve(listener, app, conns, std::future::pending(), Duration::from_secs(1)).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        let app = signward_server::router(state.clone(), config.limits);
        match tls {
            Some(tls) => {
                tracing::info!(mtls = tls.requires_client_cert(), "serving HTTPS");
                signward_server::serve_tls(listener, app, tls, config.connections, shutdown_signal(), config.shutdown_grace).await?;
            }
            None => {
                signward_server::serve(listener, app, config.connections, shutdown_signal(), config.shutdown_grace).await?;
            }
        }
        // Denials tallied since the last interval are not lost.
        signward_engine::access::flush_denials(&state).await;
        tracing::info!("signward stopped");
        Ok(())
    })
}

/// Canary keys from `--canary-key`: 48-byte BLS public keys or 20-byte EVM addresses.
fn canaries(
    keys: &[String],
    action: crate::cli::CanaryActionArg,
) -> anyhow::Result<signward_engine::controls::Canaries> {
    use signward_engine::controls::{Canaries, CanaryAction};
    let mut c = Canaries {
        action: match action {
            crate::cli::CanaryActionArg::Suspend => CanaryAction::Suspend,
            crate::cli::CanaryActionArg::Halt => CanaryAction::Halt,
            crate::cli::CanaryActionArg::Seal => CanaryAction::Seal,
            crate::cli::CanaryActionArg::Alert => CanaryAction::Alert,
        },
        ..Default::default()
    };
    for k in keys {
        if let Ok(pk) = k.parse::<signward_core::bytes::PublicKeyBytes>() {
            c.bls.insert(pk);
        } else if let Ok(a) = signward_policy::parse_address(k) {
            c.evm.insert(a);
        } else {
            bail!(
                "--canary-key {k:?} is neither a 48-byte BLS public key nor a 20-byte EVM address"
            );
        }
    }
    if !keys.is_empty() {
        tracing::info!(bls = c.bls.len(), evm = c.evm.len(), action = ?c.action, "canary keys armed");
    }
    Ok(c)
}

/// Decrypt every V3 keyfile in `dir` (in parallel); failures are logged by file name and class.
fn load_evm_keyfiles(state: &AppState, dir: &std::path::Path, password_file: &std::path::Path) {
    use rayon::prelude::*;
    // V3 passwords are used as their UTF-8 bytes (as geth does); a file's trailing newline is
    // not part of the password.
    let password = match signward_keys::password::read_password_file(password_file) {
        Ok(p) => {
            use secrecy::ExposeSecret;
            secrecy::SecretString::from(p.expose_secret().trim_end_matches(['\n', '\r']))
        }
        Err(e) => {
            tracing::error!(file = %password_file.display(), error.class = e.class(), "EVM keyfile password unreadable; no EVM keyfiles loaded");
            return;
        }
    };
    let files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the EVM keyfile directory");
            return;
        }
    };
    let results: Vec<_> = files
        .par_iter()
        .map(|f| {
            let r = signward_keys::fsutil::read_secret_file(
                f,
                signward_keys::fsutil::FileKind::Keystore,
            )
            .map_err(|e| e.class().to_string())
            .and_then(|bytes| {
                signward_evm::keyfile::decrypt(&bytes, &password, &KdfLimits::default()).map_err(
                    |e| match e {
                        signward_evm::EvmError::MacMismatch => "mac_mismatch".to_string(),
                        signward_evm::EvmError::Kdf(c) => c,
                        _ => "malformed_keyfile".to_string(),
                    },
                )
            });
            (f, r)
        })
        .collect();
    let mut keys = Vec::new();
    for (f, r) in results {
        match r {
            Ok(k) => keys.push(k),
            Err(class) => {
                tracing::error!(file = %f.display(), error.class = %class, "EVM keyfile failed to load")
            }
        }
    }
    let n = state
        .evm
        .insert(signward_engine::evm::EvmOrigin::File, keys);
    tracing::info!(loaded = n, "EVM keyfiles loaded");
}

/// Periodic pruning: set-based, and never weakening protection (see signward-slashing).
fn spawn_pruning(state: Arc<AppState>, keep_epochs: u64, hours: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(hours.max(1) * 3600));
        loop {
            tick.tick().await;
            let spe = state.network.preset.slots_per_epoch;
            match state.protection.db.prune(keep_epochs, spe).await {
                Ok(r) => tracing::info!(
                    blocks = r.blocks_deleted,
                    attestations = r.attestations_deleted,
                    keep_epochs,
                    "slashing history pruned"
                ),
                Err(e) => tracing::error!(error = %e, "slashing history pruning failed"),
            }
        }
    });
}

/// Re-read the key files: load what is new, drop what is gone. Returns (added, removed, failed).
fn reload_file_keys(state: &AppState, sources: &KeySources) -> (usize, usize, usize) {
    use signward_engine::state::KeyOrigin;
    use std::collections::HashSet;
    let report = load_all(
        discover(sources),
        None,
        KdfLimits::default(),
        Duration::from_secs(5),
        |_| {},
    );
    for f in &report.failures {
        tracing::error!(file = %f.origin, error.class = f.error.class(), error = %f.error, "key failed to load");
    }
    let current: HashSet<_> = state
        .keys
        .entries()
        .into_iter()
        .filter(|(_, o)| *o == KeyOrigin::File)
        .map(|(pk, _)| pk)
        .collect();
    let fresh: HashSet<_> = report
        .loaded
        .iter()
        .map(|k| *k.keypair.public_key())
        .collect();
    let gone: HashSet<_> = current.difference(&fresh).copied().collect();
    let removed = state.keys.remove_all(&gone);
    let added = state.keys.insert_with_paths(
        KeyOrigin::File,
        report
            .loaded
            .into_iter()
            .map(|k| (k.keypair, k.derivation_path))
            .filter(|(k, _)| !current.contains(k.public_key())),
    );
    (added, removed, report.failures.len())
}

/// The one reload, for SIGHUP and `POST /reload` (see `signward_server::reload`): the key
/// files (new keys load, keys whose files are gone stop being served), the TLS certificates and
/// the EVM policy. Whatever fails to reload keeps what is in force.
fn reload_hook(
    sources: KeySources,
    tls: Option<Arc<signward_server::tls::Tls>>,
    policy: Option<std::path::PathBuf>,
) -> signward_engine::reload::ReloadHook {
    Box::new(move |state: &AppState| {
        let (added, removed, failed) = reload_file_keys(state, &sources);
        let mut kept = Vec::new();
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the current certificates");
                    kept.push("tls");
                }
            }
        }
        if let Some(path) = &policy {
            match super::policy::load(path) {
                Ok(p) => {
                    state.evm.set_policy(p);
                    tracing::info!(file = %path.display(), "EVM policy reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "EVM policy reload failed; keeping the policy in force");
                    kept.push("evm_policy");
                }
            }
        }
        signward_engine::reload::ReloadReport {
            added,
            removed,
            failed,
            kept,
        }
    })
}

/// SIGHUP runs the reload (the same one as `POST /reload`), after any reload already running.
fn spawn_sighup(state: Arc<AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; nothing will reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            signward_engine::reload::run(&state, signward_engine::reload::Trigger::Signal).await;
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight requests"),
    }
}
