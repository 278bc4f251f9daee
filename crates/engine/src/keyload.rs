//! Keys from files into the running engine: the BLS keystores and key configs at startup and on
//! reload, and the EVM V3 keyfiles. Failures are logged by file name and error class, never by
//! content; a reload adds what is new and drops what is gone (a file key is read-only to the
//! APIs, so no delete waits on it; an in-flight request keeps the key until it is done).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use signward_keys::keystore::KdfLimits;
use signward_keys::loader::{discover, load_all, KeySources, Progress};
use signward_slashing::SlashingStore;

use crate::state::{AppState, KeyOrigin, LoadStatus};

fn log_progress(p: Progress) {
    tracing::info!(
        done = p.done,
        total = p.total,
        rate_per_sec = format_args!("{:.1}", p.rate_per_sec()),
        eta_secs = p.eta().map(|d| d.as_secs()).unwrap_or(0),
        "loading keys"
    );
}

/// Load every configured key into `state` (on `threads` workers), then mark it ready. Runs on a
/// blocking thread.
pub fn load_keys(state: &AppState, sources: &KeySources, threads: Option<usize>) {
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
        KeyOrigin::File,
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
        Ok(d) => d.into_iter().collect::<HashSet<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read disabled validators");
            return;
        }
    };
    for pk in loaded.filter(|pk| disabled.contains(pk)) {
        tracing::warn!(pubkey = %pk, "this key is disabled in the slashing database (it was deleted and its history exported); it signs nothing until it is imported again or `signward slashing enable` is run");
    }
}

/// Re-read the key files: load what is new, drop what is gone. Returns (added, removed, failed).
pub fn reload_file_keys(state: &AppState, sources: &KeySources) -> (usize, usize, usize) {
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

/// Decrypt every V3 keyfile in `dir` (in parallel) with the password in `password_file`.
pub fn load_evm_keyfiles(state: &AppState, dir: &Path, password_file: &Path) {
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
    let n = state.evm.keys.insert_all_from(KeyOrigin::File, keys);
    tracing::info!(loaded = n, "EVM keyfiles loaded");
}
