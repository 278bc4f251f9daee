//! `signward serve`: bind, load keys in the background, serve until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use signward_core::network::{GenesisFacts, NetworkConfig, GENESIS_SSZ_PREFIX_LEN};
use signward_engine::assemble::{AuthConfig, Pruning};
use signward_engine::state::{ClockOff, ClockStatus};
use signward_engine::AppState;
use signward_keys::loader::KeySources;
use signward_server::serve::{ConnLimits, Limits};
use signward_server::ServerConfig;

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
    let evm_upstreams = evm_upstreams(&args)?;
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
    // The signing group's shares are secrets: read after memory is locked, before anything
    // listens.
    let group = args
        .group_config
        .as_deref()
        .map(super::group::load)
        .transpose()
        .context("--group-config")?;
    let (group_listen, group_tls, groups) = match group {
        Some(g) => (Some(g.listen), Some(g.tls), Some(g.groups)),
        None => (None, None, None),
    };
    let slashing_url = super::slashing::db_url(&args.slashing, &args.data_dir)?;
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
    let engine_config = signward_engine::Config {
        clock_status: clock_status(&network, args.slashing_protection_disable_clock_check),
        network,
        max_future_epochs: args.slashing_protection_max_future_epochs,
        data_dir: args.data_dir.clone(),
        slashing_url,
        evm_policy,
        dev: args.dev,
        dev_evm_key: dev_key,
        evm_upstreams,
        evm_chain_id: args.evm_chain_id,
        canaries: canaries(&args.canary_key, args.canary_action)?,
        memory,
        auth: (!args.insecure_disable_auth).then_some(AuthConfig {
            failure_limit: args.auth_failure_limit,
            trusted_proxies,
        }),
        unseal_shares: boot_shares,
        key_sources: sources,
        key_loader_threads: args.key_loader_threads,
        evm_keyfiles: args
            .evm_keyfiles_path
            .clone()
            .zip(args.evm_keyfiles_password_file.clone()),
        pruning: args.slashing_protection_pruning_enabled.then_some(Pruning {
            keep_epochs: args.slashing_protection_pruning_epochs_to_keep,
            interval_hours: args.slashing_protection_pruning_interval,
        }),
        reload_more: Some(reload_more(tls.clone(), args.evm_policy.clone())),
        groups,
    };
    runtime.block_on(async move {
        // Listeners first: a port in use fails the start before any store is opened or any key
        // decrypted.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = if args.metrics_enabled {
            let addr = SocketAddr::new(args.metrics_host, args.metrics_port);
            if !addr.ip().is_loopback() && !args.insecure_allow_plaintext_non_loopback {
                bail!("the metrics listener {addr} is not on loopback and would carry its token in plaintext; keep it on loopback or pass --insecure-allow-plaintext-non-loopback");
            }
            Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics"))?)
        } else {
            None
        };
        let group_listener = match group_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for the signing group"))?,
            ),
            None => None,
        };
        let state = signward_engine::assemble(engine_config).await?;
        if let (Some(listener), Some(gtls)) = (group_listener, group_tls) {
            let server_config = gtls.server_config().context("the signing group's TLS")?;
            let app = signward_server::peers::peer_router(state.clone(), config.limits, gtls.pins());
            let tls = Arc::new(signward_server::tls::Tls::fixed(server_config, true));
            tracing::info!(address = %listener.local_addr()?, pin = %gtls.own_fingerprint(), "signing group: peer listener (pinned mTLS)");
            // Each other peer keeps at most 32 connections here (`server::peers`).
            let conns = ConnLimits { max_connections: 256, max_per_ip: 64, ..config.connections };
            tokio::spawn(async move {
                if let Err(e) = signward_server::serve_tls(listener, app, tls, conns, std::future::pending(), Duration::from_secs(1)).await {
                    tracing::error!(error = %e, "signing group listener failed");
                }
            });
        }
        let local = listener.local_addr()?;
        tracing::info!(
            address = %local,
            network = %state.network().name,
            "signward listening"
        );
        if !local.ip().is_loopback() {
            tracing::warn!("listening on a non-loopback address without TLS");
        }
        if let Some(listener) = metrics_listener {
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
    Ok(c)
}

/// The edge's part of a reload (see `signward_engine::assemble`): the TLS certificates and the
/// EVM policy file. Returns what failed and kept its previous value.
fn reload_more(
    tls: Option<Arc<signward_server::tls::Tls>>,
    policy: Option<std::path::PathBuf>,
) -> signward_engine::assemble::ReloadMore {
    Box::new(move |state: &AppState| {
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
                    state.evm().set_policy(p);
                    tracing::info!(file = %path.display(), "EVM policy reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "EVM policy reload failed; keeping the policy in force");
                    kept.push("evm_policy");
                }
            }
        }
        kept
    })
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

/// The upstream EVM nodes from `--evm-upstream-*`: one `URL`, or `CHAIN_ID=URL` for each chain.
fn evm_upstreams(args: &ServeArgs) -> anyhow::Result<Vec<signward_engine::upstream::Upstream>> {
    if args.evm_upstream_url.is_empty() {
        if args.evm_upstream_ca.is_some()
            || !args.evm_upstream_forward.is_empty()
            || args.evm_upstream_allow_plaintext
        {
            bail!("--evm-upstream-ca, --evm-upstream-forward and --evm-upstream-allow-plaintext need --evm-upstream-url");
        }
        return Ok(Vec::new());
    }
    let extra_roots_pem = args
        .evm_upstream_ca
        .as_deref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let forward: Vec<String> = if args.evm_upstream_forward.is_empty() {
        signward_engine::upstream::DEFAULT_FORWARD
            .iter()
            .map(|m| m.to_string())
            .collect()
    } else {
        for m in &args.evm_upstream_forward {
            if m.is_empty()
                || m.len() > 64
                || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                bail!("--evm-upstream-forward: {m:?} is not a JSON-RPC method name");
            }
            if signward_engine::evm::EvmMethod::parse(m).is_some()
                || m == "eth_accounts"
                || m == "eth_chainId"
            {
                bail!("--evm-upstream-forward: {m} is answered by signward itself and is never forwarded");
            }
        }
        args.evm_upstream_forward.clone()
    };
    // An allocated nonce is handed out again only after the stale bound: a request must end
    // well before it, or two transactions could share a nonce.
    let stale_secs = signward_engine::upstream::NONCE_STALE_MS / 1000;
    if args.request_timeout_secs * 2 > stale_secs as u64 {
        bail!(
            "--request-timeout-secs must be at most {} with --evm-upstream-url (an unsubmitted nonce is reused after {stale_secs} s)",
            stale_secs / 2
        );
    }
    let several = args.evm_upstream_url.len() > 1;
    let mut chains = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for spec in &args.evm_upstream_url {
        // `CHAIN_ID=URL`: digits before the first '=' (a URL's own '=' comes after its scheme).
        let (declared, rest) = match spec.split_once('=') {
            Some((id, rest)) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => {
                let id: u64 = id.parse().with_context(|| {
                    format!("--evm-upstream-url: chain id {id} is out of range")
                })?;
                (Some(id), rest)
            }
            _ => (None, spec.as_str()),
        };
        if several && declared.is_none() {
            bail!("--evm-upstream-url: with several nodes, give each as CHAIN_ID=URL");
        }
        if let Some(id) = declared {
            if !chains.insert(id) {
                bail!("--evm-upstream-url: chain {id} is given twice");
            }
        }
        let url = match rest.strip_prefix("env:") {
            Some(var) => std::env::var(var).with_context(|| {
                format!("--evm-upstream-url: environment variable {var} is not set")
            })?,
            None => rest.to_string(),
        };
        let node = signward_engine::upstream::Node::new(&signward_engine::upstream::NodeConfig {
            url,
            extra_roots_pem: extra_roots_pem.clone(),
            allow_plaintext: args.evm_upstream_allow_plaintext,
            timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
        })
        .map_err(|e| anyhow::anyhow!("--evm-upstream-url: {e}"))?;
        out.push(signward_engine::upstream::Upstream::new(
            node,
            declared,
            forward.clone(),
        ));
    }
    Ok(out)
}
