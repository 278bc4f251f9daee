//! Discovery and parallel decryption of the configured keys.
//!
//! Web3Signer's layout is supported unchanged:
//! * `--keystores-path DIR` with `--keystores-passwords-path DIR` (`<name>.json` uses `<name>.txt`)
//!   or `--keystores-password-file FILE` (one password for all);
//! * `--key-config-path DIR` of YAML key configs.
//!
//! A key that fails is reported by file name and error class, never with its password or
//! contents, and does not stop the others.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use secrecy::SecretString;
use signward_core::bytes::decode_hex;
use zeroize::Zeroizing;

use crate::bls::BlsKeypair;
use crate::config::{parse_key_configs, KeyConfig};
use crate::fsutil::{read_secret_file, FileKind};
use crate::keystore::{KdfLimits, Keystore};
use crate::password::read_password_file;
use crate::KeyError;

/// Where keys come from (the Web3Signer flags).
#[derive(Debug, Clone, Default)]
pub struct KeySources {
    /// `--keystores-path`: a directory of EIP-2335 keystores.
    pub keystores_path: Option<PathBuf>,
    /// `--keystores-passwords-path`: a directory of password files, one per keystore.
    pub keystores_passwords_path: Option<PathBuf>,
    /// `--keystores-password-file`: one password for every keystore.
    pub keystores_password_file: Option<PathBuf>,
    /// `--key-config-path`: Web3Signer key config documents.
    pub key_config_path: Option<PathBuf>,
    /// `--allow-raw-keys`: accept plaintext `file-raw` keys.
    pub allow_raw_keys: bool,
}

/// How a keystore's password is found.
#[derive(Debug, Clone)]
enum PasswordSource {
    File(PathBuf),
    Missing,
}

/// One unit of loading work, found by [`discover`].
pub enum KeyJob {
    /// Decrypt a keystore.
    Keystore {
        /// Where the job comes from.
        origin: String,
        /// The keystore file.
        keystore: PathBuf,
        /// Its password.
        password: PasswordSourceRef,
    },
    /// Load a plaintext key.
    Raw {
        /// Where the job comes from.
        origin: String,
        /// The secret key, hex.
        secret_hex: Zeroizing<String>,
    },
    /// Discovery already failed; report it.
    Failed(LoadFailure),
}

/// Opaque handle to the password of a keystore job.
pub struct PasswordSourceRef(PasswordSource);

impl KeyJob {
    /// The file (and document) this job comes from.
    pub fn origin(&self) -> &str {
        match self {
            KeyJob::Keystore { origin, .. } | KeyJob::Raw { origin, .. } => origin,
            KeyJob::Failed(f) => &f.origin,
        }
    }
}

/// A key that did not load.
#[derive(Debug)]
pub struct LoadFailure {
    /// File name (and YAML document index for key configs), never contents.
    pub origin: String,
    /// Why.
    pub error: KeyError,
}

/// A key that loaded.
pub struct LoadedKey {
    /// Where it came from (file name, and document index for key configs).
    pub origin: String,
    /// The key.
    pub keypair: BlsKeypair,
    /// The keystore's EIP-2334 derivation path (EIP-2335 `path`), when it has a valid one.
    pub derivation_path: Option<String>,
    /// True for a plaintext `file-raw` key.
    pub raw: bool,
}

/// The outcome of loading everything.
pub struct LoadReport {
    /// Every key that loaded, duplicates dropped.
    pub loaded: Vec<LoadedKey>,
    /// Every key that did not.
    pub failures: Vec<LoadFailure>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Progress of a load, passed to the progress callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Jobs finished.
    pub done: usize,
    /// Jobs in all.
    pub total: usize,
    /// Time since the load started.
    pub elapsed: Duration,
}

impl Progress {
    /// Jobs finished per second so far.
    pub fn rate_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.done as f64 / s
        } else {
            0.0
        }
    }

    /// Time left at the current rate, once there is one.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate_per_sec();
        (rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn sorted_entries(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, KeyError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(KeyError::io)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .map(|n| n.to_string_lossy().starts_with('.'))
                .unwrap_or(true);
            let ext_ok = p
                .extension()
                .map(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
                .unwrap_or(false);
            !hidden && ext_ok && p.is_file()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Find every configured key. Directory-level problems become failures, not panics.
pub fn discover(sources: &KeySources) -> Vec<KeyJob> {
    let mut jobs = Vec::new();
    if let Some(dir) = &sources.keystores_path {
        match sorted_entries(dir, &["json"]) {
            Err(error) => jobs.push(KeyJob::Failed(LoadFailure {
                origin: dir.display().to_string(),
                error,
            })),
            Ok(files) => {
                for keystore in files {
                    let password = if let Some(f) = &sources.keystores_password_file {
                        PasswordSource::File(f.clone())
                    } else if let Some(pdir) = &sources.keystores_passwords_path {
                        let stem = keystore
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        PasswordSource::File(pdir.join(format!("{stem}.txt")))
                    } else {
                        PasswordSource::Missing
                    };
                    jobs.push(KeyJob::Keystore {
                        origin: file_name(&keystore),
                        keystore,
                        password: PasswordSourceRef(password),
                    });
                }
            }
        }
    }
    if let Some(dir) = &sources.key_config_path {
        match sorted_entries(dir, &["yaml", "yml"]) {
            Err(error) => jobs.push(KeyJob::Failed(LoadFailure {
                origin: dir.display().to_string(),
                error,
            })),
            Ok(files) => {
                for file in files {
                    discover_config_file(&file, sources.allow_raw_keys, &mut jobs);
                }
            }
        }
    }
    jobs
}

fn discover_config_file(file: &Path, allow_raw: bool, jobs: &mut Vec<KeyJob>) {
    let name = file_name(file);
    let bytes = match read_secret_file(file, FileKind::KeyConfig) {
        Ok(b) => b,
        Err(error) => {
            jobs.push(KeyJob::Failed(LoadFailure {
                origin: name,
                error,
            }));
            return;
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        jobs.push(KeyJob::Failed(LoadFailure {
            origin: name,
            error: KeyError::MalformedKeyConfig("not UTF-8"),
        }));
        return;
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let docs = parse_key_configs(text, base);
    let many = docs.len() > 1;
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = if many {
            format!("{name}#{i}")
        } else {
            name.clone()
        };
        jobs.push(match doc {
            Ok(KeyConfig::FileKeystore {
                keystore_file,
                password_file,
            }) => KeyJob::Keystore {
                origin,
                keystore: keystore_file,
                password: PasswordSourceRef(PasswordSource::File(password_file)),
            },
            Ok(KeyConfig::FileRaw { .. }) if !allow_raw => KeyJob::Failed(LoadFailure {
                origin,
                error: KeyError::RawKeysNotAllowed,
            }),
            Ok(KeyConfig::FileRaw { private_key }) => KeyJob::Raw {
                origin,
                secret_hex: private_key,
            },
            Err(error) => KeyJob::Failed(LoadFailure { origin, error }),
        });
    }
}

/// Load one keystore file with its password.
pub fn load_keystore_file(
    keystore: &Path,
    password: &SecretString,
    limits: &KdfLimits,
) -> Result<BlsKeypair, KeyError> {
    load_keystore_file_with_path(keystore, password, limits).map(|(k, _)| k)
}

/// [`load_keystore_file`], with the keystore's derivation path (see
/// [`Keystore::derivation_path`]).
pub fn load_keystore_file_with_path(
    keystore: &Path,
    password: &SecretString,
    limits: &KdfLimits,
) -> Result<(BlsKeypair, Option<String>), KeyError> {
    let bytes = read_secret_file(keystore, FileKind::Keystore)?;
    let ks = Keystore::from_json(&bytes)?;
    let keypair = ks.decrypt(password, limits)?;
    Ok((keypair, ks.derivation_path()))
}

fn run_job(job: KeyJob, limits: &KdfLimits) -> Result<LoadedKey, LoadFailure> {
    match job {
        KeyJob::Failed(f) => Err(f),
        KeyJob::Keystore {
            origin,
            keystore,
            password,
        } => {
            let result = (|| {
                let password = match &password.0 {
                    PasswordSource::File(p) => read_password_file(p)?,
                    PasswordSource::Missing => return Err(KeyError::MissingPassword),
                };
                load_keystore_file_with_path(&keystore, &password, limits)
            })();
            result
                .map(|(keypair, derivation_path)| LoadedKey {
                    origin: origin.clone(),
                    keypair,
                    derivation_path,
                    raw: false,
                })
                .map_err(|error| LoadFailure { origin, error })
        }
        KeyJob::Raw { origin, secret_hex } => {
            let result = (|| {
                let bytes = Zeroizing::new(
                    decode_hex(secret_hex.trim())
                        .ok_or(KeyError::MalformedKeyConfig("privateKey is not hex"))?,
                );
                BlsKeypair::from_secret_bytes(&bytes)
            })();
            result
                .map(|keypair| LoadedKey {
                    origin: origin.clone(),
                    keypair,
                    derivation_path: None,
                    raw: true,
                })
                .map_err(|error| LoadFailure { origin, error })
        }
    }
}

/// Decrypt every job in parallel on `threads` threads (all cores when `None`), calling
/// `progress` about every `interval` while work remains. Duplicate public keys keep the first
/// (in discovery order) and report the rest.
pub fn load_all(
    jobs: Vec<KeyJob>,
    threads: Option<usize>,
    limits: KdfLimits,
    interval: Duration,
    progress: impl Fn(Progress) + Send + Sync + 'static,
) -> LoadReport {
    let start = Instant::now();
    let total = jobs.len();
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let reporter = {
        let done = done.clone();
        let finished = finished.clone();
        std::thread::spawn(move || {
            let tick = Duration::from_millis(50);
            let mut last = Instant::now();
            while !finished.load(Ordering::Acquire) {
                std::thread::sleep(tick);
                if last.elapsed() >= interval && !finished.load(Ordering::Acquire) {
                    last = Instant::now();
                    progress(Progress {
                        done: done.load(Ordering::Relaxed),
                        total,
                        elapsed: start.elapsed(),
                    });
                }
            }
        })
    };
    let work = || -> Vec<Result<LoadedKey, LoadFailure>> {
        jobs.into_par_iter()
            .map(|job| {
                let r = run_job(job, &limits);
                done.fetch_add(1, Ordering::Relaxed);
                r
            })
            .collect()
    };
    let results = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .thread_name(|i| format!("key-loader-{i}"))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    };
    finished.store(true, Ordering::Release);
    let _ = reporter.join();

    let mut seen = HashSet::new();
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(k) => {
                if seen.insert(*k.keypair.public_key()) {
                    loaded.push(k);
                } else {
                    failures.push(LoadFailure {
                        origin: k.origin,
                        error: KeyError::DuplicateKey,
                    });
                }
            }
            Err(f) => failures.push(f),
        }
    }
    LoadReport {
        loaded,
        failures,
        elapsed: start.elapsed(),
    }
}
