//! Building a running engine from one typed [`Config`] (as a validator client is built from its
//! config): every store opened, the state put together, the vault unsealed from boot shares when
//! given, and the runtime tasks started (vault poll, denial flush, pruning, key loading, SIGHUP
//! reload). The command line only turns flags into a [`Config`]; the HTTP edge only serves the
//! [`AppState`] this returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use signward_auth::limiter::FailureLimiter;
use signward_auth::secret::ServerSecret;
use signward_auth::store::TokenStore;
use signward_auth::Cidr;
use signward_core::network::NetworkConfig;
use signward_keys::loader::KeySources;
use signward_os::DataDir;
use signward_slashing::clock::ChainClock;
use signward_slashing::SlashingStore;

use crate::access::Gate;
use crate::controls::{Canaries, Halt};
use crate::reload::{ReloadHook, ReloadReport, Trigger};
use crate::state::{AppState, ClockStatus, KeyOrigin, Protection};
use crate::vault::VaultRuntime;
use crate::EngineError;

/// Authentication settings; `None` in [`Config::auth`] turns authentication off (the command
/// line allows that on loopback only).
pub struct AuthConfig {
    /// Failed attempts per source per minute before it is refused with 429.
    pub failure_limit: u32,
    /// Proxies whose `X-Forwarded-For` names the caller.
    pub trusted_proxies: Vec<Cidr>,
}

/// Periodic pruning of the slashing history.
#[derive(Debug, Clone, Copy)]
pub struct Pruning {
    /// Epochs of history kept behind the newest record.
    pub keep_epochs: u64,
    /// Hours between runs.
    pub interval_hours: u64,
}

/// The part of a reload the engine does not own (TLS certificates, the policy file): it returns
/// the labels of what failed and kept its previous value.
pub type ReloadMore = Box<dyn Fn(&AppState) -> Vec<&'static str> + Send + Sync>;

/// Everything the engine is built from.
pub struct Config {
    /// The network, with its genesis facts resolved.
    pub network: NetworkConfig,
    /// Whether the chain-clock window is on, and why not.
    pub clock_status: ClockStatus,
    /// How many epochs ahead of the chain clock a message may be.
    pub max_future_epochs: u64,
    /// The data directory (owner-only).
    pub data_dir: PathBuf,
    /// The slashing database URL (see [`crate::stores::slashing_url`]); the vault and the spend
    /// ledger share it when it is PostgreSQL.
    pub slashing_url: String,
    /// The EVM policy; without one every EVM signing request is refused.
    pub evm_policy: Option<signward_policy::Policy>,
    /// Development mode (reported unsafe by the health check).
    pub dev: bool,
    /// A raw EVM key for development (`--dev-evm-key`).
    pub dev_evm_key: Option<signward_evm::EvmKey>,
    /// The EVM nodes behind signward (`--evm-upstream-url`), one per chain.
    pub evm_upstreams: Vec<crate::upstream::Upstream>,
    /// The chain `eth_chainId` answers without a node, and the one the node must serve.
    pub evm_chain_id: Option<u64>,
    /// Keys that must never be used.
    pub canaries: Canaries,
    /// Whether process memory is locked.
    pub memory: signward_os::MemoryLock,
    /// Authentication; `None` turns it off.
    pub auth: Option<AuthConfig>,
    /// Shares submitted before anything listens (unattended unseal).
    pub unseal_shares: Vec<signward_vault::SharePayload>,
    /// BLS key files.
    pub key_sources: KeySources,
    /// Threads for key decryption (`None`: one per core).
    pub key_loader_threads: Option<usize>,
    /// EVM V3 keyfiles: the directory and the password file.
    pub evm_keyfiles: Option<(PathBuf, PathBuf)>,
    /// Periodic pruning, when enabled.
    pub pruning: Option<Pruning>,
    /// The edge's part of every reload.
    pub reload_more: Option<ReloadMore>,
    /// This peer's signing group (threshold keys), when it is in one.
    pub groups: Option<crate::group::Groups>,
}

impl Config {
    /// A config for `network` over `data_dir` with the safe defaults: authentication on (10
    /// failures a minute per source, no trusted proxy), the SQLite stores in the data directory,
    /// the chain-clock window on (two epochs ahead) when the network's genesis time is known, no
    /// keys, no EVM policy, memory not locked, nothing else enabled. Change a field to change it.
    pub fn new(network: NetworkConfig, data_dir: PathBuf) -> Result<Self, EngineError> {
        let slashing_url = crate::stores::slashing_url(None, &DataDir::new(&data_dir))?;
        let clock_status = match network.genesis_time {
            Some(t) => ClockStatus {
                off: None,
                detail: "on".into(),
                genesis_time: Some(t),
                genesis_time_source: None,
                warning: None,
            },
            None => ClockStatus::of(None),
        };
        Ok(Config {
            network,
            clock_status,
            max_future_epochs: 2,
            data_dir,
            slashing_url,
            evm_policy: None,
            dev: false,
            dev_evm_key: None,
            evm_upstreams: Vec::new(),
            evm_chain_id: None,
            canaries: Canaries::default(),
            memory: signward_os::MemoryLock::Disabled,
            auth: Some(AuthConfig {
                failure_limit: 10,
                trusted_proxies: Vec::new(),
            }),
            unseal_shares: Vec::new(),
            key_sources: KeySources::default(),
            key_loader_threads: None,
            evm_keyfiles: None,
            pruning: None,
            reload_more: None,
            groups: None,
        })
    }
}

/// Open every store, build the state, unseal from boot shares, and start the runtime tasks.
/// Must run inside a multi-threaded tokio runtime. Key loading continues in the background;
/// the state reports ready when it is done.
pub async fn assemble(config: Config) -> Result<Arc<AppState>, EngineError> {
    let data_dir = DataDir::new(&config.data_dir);
    let db = crate::stores::open_slashing(&config.slashing_url, &data_dir, true).await?;
    if let Some(gvr) = config.network.genesis_validators_root {
        db.pin_genesis_validators_root(gvr)
            .await
            .map_err(|cause| EngineError::WrongNetwork {
                network: config.network.name.clone(),
                cause,
            })?;
    }
    let clock_status = config.clock_status;
    let clock = match (clock_status.off, config.network.genesis_time) {
        (None, Some(genesis_time)) => Some(ChainClock {
            genesis_time,
            seconds_per_slot: config.network.seconds_per_slot,
            slots_per_epoch: config.network.preset.slots_per_epoch,
            max_future_epochs: config.max_future_epochs,
        }),
        _ => None,
    };
    match clock_status.off {
        Some(off) => tracing::warn!(
            reason = off.code(),
            "chain-clock check OFF: {}",
            clock_status.detail
        ),
        None => tracing::info!(
            genesis_time = clock_status.genesis_time,
            source = clock_status.genesis_time_source,
            max_future_epochs = config.max_future_epochs,
            "chain-clock check on"
        ),
    }
    if let Some(w) = &clock_status.warning {
        tracing::warn!("{w}");
    }
    tracing::info!(
        backend = db.backend(),
        clock_check = clock.is_some(),
        "slashing protection ready"
    );
    let audit_in_slashing_db = db.journal_store().is_some();
    let vault_url = crate::stores::vault_url(&config.slashing_url, &data_dir)?;
    let vault_store = signward_vault::VaultStore::open(&vault_url)
        .await
        .map_err(EngineError::Vault)?;
    let vault = VaultRuntime::new(signward_vault::Vault::new(vault_store))
        .await
        .map_err(EngineError::Vault)?;
    let vault_initialized = vault.is_initialized();
    let ledger =
        signward_evm::ledger::SpendLedger::open(&crate::stores::ledger_url(&vault_url, &data_dir))
            .await
            .map_err(EngineError::Ledger)?;
    let mut state = AppState::new(
        config.network,
        Protection::new(db, clock).with_clock_status(clock_status),
    )
    .with_vault(vault);
    state.evm = crate::evm::EvmState::new(config.evm_policy, Some(ledger), config.dev);
    state.evm.chain_id = config.evm_chain_id;
    for up in &config.evm_upstreams {
        tracing::info!(node = up.node().shown(), chain = ?up.declared(), "EVM upstream node configured");
    }
    state.evm.upstreams = config.evm_upstreams;
    if let Some(k) = config.dev_evm_key {
        tracing::warn!(address = %k.address(), "DEV MODE: an EVM key from the environment is loaded (--dev-evm-key); never use this in production");
        state.evm.keys.insert_all_from(KeyOrigin::Dev, [k]);
    }
    if state.evm.policy().is_none() {
        tracing::info!("no EVM policy (--evm-policy): every EVM signing request will be refused");
    }
    state.data_dir = Some(config.data_dir.clone());
    state.halt = Halt::load(&config.data_dir);
    if state.halt.is_halted() {
        tracing::warn!(
            reason = state.halt.reason().as_deref().unwrap_or(""),
            "signing is HALTED (persisted); `signward resume` lifts it"
        );
    }
    if !config.canaries.bls.is_empty() || !config.canaries.evm.is_empty() {
        tracing::info!(bls = config.canaries.bls.len(), evm = config.canaries.evm.len(), action = ?config.canaries.action, "canary keys armed");
    }
    state.canaries = config.canaries;
    state.memory = config.memory;
    state = if audit_in_slashing_db {
        tracing::info!("audit log kept in the slashing database (one commit for both)");
        state.with_audit_in_slashing_db()
    } else {
        let audit =
            signward_audit::AuditLog::open(&config.data_dir, crate::stores::audit_key(&data_dir)?)
                .map_err(EngineError::Audit)?;
        state.with_audit(audit)
    };
    match config.auth {
        None => tracing::warn!("AUTHENTICATION DISABLED (--insecure-disable-auth): any local process can sign with every key"),
        Some(auth) => {
            let secret = ServerSecret::load_or_create(&data_dir.server_key())?;
            let tokens =
                TokenStore::open(&config.data_dir, secret).map_err(EngineError::Credentials)?;
            if tokens.is_empty() {
                tracing::warn!("no credentials exist yet: every request but /upcheck will be refused; create one with `signward token create`");
            }
            state = state.with_gate(Gate::new(
                tokens,
                FailureLimiter::new(auth.failure_limit, Duration::from_secs(60)),
                auth.trusted_proxies,
            ));
        }
    }
    state = state.with_reloader(reload_hook(config.key_sources.clone(), config.reload_more));
    if let Some(groups) = config.groups {
        tracing::info!(
            peer = groups.me(),
            peers = groups.peers().len() + 1,
            keys = groups.keys().len(),
            "signing group: threshold keys served with the other peers"
        );
        state = state.with_groups(groups);
    }
    let state = Arc::new(state);
    if vault_initialized {
        tracing::warn!("the vault is sealed: signing is refused until a quorum of shares is submitted (signward unseal)");
    }
    for share in config.unseal_shares {
        let p = crate::vault::submit_share(&state, "unseal-shares-from", share)
            .await
            .map_err(EngineError::Unseal)?;
        if p.state == signward_vault::VaultState::Unsealed {
            break;
        }
    }
    crate::vault::spawn_poll(state.clone());
    crate::access::spawn_denial_flush(state.clone());
    if let Some(p) = config.pruning {
        spawn_pruning(state.clone(), p);
    }
    let loader_state = state.clone();
    let sources = config.key_sources;
    let threads = config.key_loader_threads;
    let evm_files = config.evm_keyfiles;
    tokio::task::spawn_blocking(move || {
        if let Some((dir, pw)) = &evm_files {
            crate::keyload::load_evm_keyfiles(&loader_state, dir, pw);
        }
        crate::keyload::load_keys(&loader_state, &sources, threads)
    });
    spawn_sighup(state.clone());
    Ok(state)
}

/// The one reload, for SIGHUP and `POST /reload` (see [`crate::reload`]): the key files (new
/// keys load, keys whose files are gone stop being served), then the edge's part. Whatever
/// fails to reload keeps what is in force.
fn reload_hook(sources: KeySources, more: Option<ReloadMore>) -> ReloadHook {
    Box::new(move |state: &AppState| {
        let (added, removed, failed) = crate::keyload::reload_file_keys(state, &sources);
        let kept = more.as_ref().map(|m| m(state)).unwrap_or_default();
        ReloadReport {
            added,
            removed,
            failed,
            kept,
        }
    })
}

/// Periodic pruning: set-based, and never weakening protection (see signward-slashing).
fn spawn_pruning(state: Arc<AppState>, p: Pruning) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(p.interval_hours.max(1) * 3600));
        loop {
            tick.tick().await;
            let spe = state.network.preset.slots_per_epoch;
            match state.protection.db.prune(p.keep_epochs, spe).await {
                Ok(r) => tracing::info!(
                    blocks = r.blocks_deleted,
                    attestations = r.attestations_deleted,
                    keep_epochs = p.keep_epochs,
                    "slashing history pruned"
                ),
                Err(e) => tracing::error!(error = %e, "slashing history pruning failed"),
            }
        }
    });
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
            crate::reload::run(&state, Trigger::Signal).await;
        }
    });
}
