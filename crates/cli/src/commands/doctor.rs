//! `signward doctor`: check the host and the configuration the service runs with, print a
//! pass/warn/fail table with a fix for each finding, and exit 1 on any failure.

use signward_os::DataDir;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::cli::{DoctorArgs, ServeArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Warn,
    Fail,
}

struct Finding {
    check: &'static str,
    status: Status,
    detail: String,
    fix: String,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn add(
        &mut self,
        check: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Finding {
            check,
            status,
            detail: detail.into(),
            fix: fix.into(),
        });
    }
    fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Status::Pass, detail, "");
    }
}

fn mode(path: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.permissions().mode() & 0o777, m.uid()))
}

fn user(r: &mut Report) {
    if signward_os::is_root() {
        r.add(
            "service user",
            Status::Fail,
            "running as root",
            "run signward as its own unprivileged user (packaging/signward.service: User=signward)",
        );
    } else {
        r.pass("service user", format!("uid {}", signward_os::euid()));
    }
}

fn data_dir(r: &mut Report, dir: &Path) {
    match mode(dir) {
        None => r.add(
            "data directory",
            Status::Warn,
            format!("{} does not exist yet", dir.display()),
            "it is created 0700 on first start",
        ),
        Some((m, _)) if m & 0o077 != 0 => r.add(
            "data directory",
            Status::Fail,
            format!("{} is mode {m:o}", dir.display()),
            format!("chmod 700 {}", dir.display()),
        ),
        Some((_, uid2)) if uid2 != signward_os::euid() => r.add(
            "data directory",
            Status::Fail,
            format!("{} is owned by uid {uid2}, not by this user", dir.display()),
            format!("chown -R <service user> {}", dir.display()),
        ),
        Some((m, _)) => r.pass("data directory", format!("{} mode {m:o}", dir.display())),
    }
}

fn secret_files(r: &mut Report, s: &ServeArgs) {
    let mut files: Vec<std::path::PathBuf> = signward_os::data_dir::FILES
        .iter()
        .map(|f| s.data_dir.join(f))
        .collect();
    for p in [
        &s.keystores_password_file,
        &s.evm_keyfiles_password_file,
        &s.tls_key,
    ]
    .into_iter()
    .flatten()
    {
        files.push(p.clone());
    }
    for dir in [
        &s.keystores_path,
        &s.keystores_passwords_path,
        &s.key_config_path,
        &s.evm_keyfiles_path,
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(rd) = std::fs::read_dir(dir) {
            files.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
    }
    files.extend(s.unseal_shares_from.iter().cloned());
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| {
            mode(f)
                .filter(|(m, _)| m & 0o077 != 0)
                .map(|(m, _)| format!("{} ({m:o})", f.display()))
        })
        .collect();
    if bad.is_empty() {
        r.pass(
            "secret files",
            format!(
                "{} files owner-only",
                files.iter().filter(|f| f.exists()).count()
            ),
        );
    } else {
        r.add(
            "secret files",
            Status::Fail,
            format!("readable by group or others: {}", bad.join(", ")),
            "chmod 600 each file named",
        );
    }
}

fn config_file(r: &mut Report, config: Option<&Path>) {
    let Some(c) = config else {
        r.pass("config file", "none (flags and environment only)");
        return;
    };
    let text = std::fs::read_to_string(c).unwrap_or_default();
    match crate::config::check_permissions(c, &text) {
        Ok(()) => r.pass(
            "config file",
            format!("{} not accessible by others", c.display()),
        ),
        Err(e) => r.add(
            "config file",
            Status::Fail,
            format!("{e:#}"),
            format!("chmod 640 {} (600 if it holds a password)", c.display()),
        ),
    }
}

fn listener(r: &mut Report, s: &ServeArgs) {
    let tls = s.tls_cert.is_some() && s.tls_key.is_some();
    if s.http_listen_host.is_loopback() || tls {
        r.pass(
            "listener",
            format!(
                "{} {}",
                s.http_listen_host,
                if tls { "with TLS" } else { "(loopback)" }
            ),
        );
    } else {
        r.add(
            "listener",
            Status::Fail,
            format!("{} without TLS", s.http_listen_host),
            "add --tls-cert/--tls-key, or listen on 127.0.0.1 behind a TLS proxy",
        );
    }
    if s.metrics_enabled && !s.metrics_host.is_loopback() {
        r.add(
            "metrics listener",
            Status::Warn,
            format!("{} is not loopback (plaintext)", s.metrics_host),
            "keep --metrics-host on loopback and scrape through a tunnel or proxy",
        );
    }
}

fn auth(r: &mut Report, s: &ServeArgs) {
    if s.insecure_disable_auth {
        r.add(
            "authentication",
            Status::Fail,
            "--insecure-disable-auth: any local process can sign",
            "remove the flag; create credentials with `signward token create`",
        );
    } else {
        r.pass("authentication", "on");
    }
}

/// Source credentials authenticate by address alone: say which exist, and flag any that covers
/// more than one host or a host other than this one.
fn source_credentials(r: &mut Report, s: &ServeArgs) {
    let Ok(creds) = signward_auth::store::CredentialFile::new(&s.data_dir).list() else {
        return; // secret_files reports an unreadable credential file
    };
    for c in creds.iter().filter(|c| c.source_bound) {
        let ranges: Vec<String> = c.policy.cidrs.iter().map(|x| x.to_string()).collect();
        let wide = c.policy.cidrs.iter().any(|x| x.host_bits() > 0);
        let remote = c.policy.cidrs.iter().any(|x| !x.is_loopback());
        let detail = format!(
            "{}: no secret; any process at {} signs as it",
            c.name,
            ranges.join(", ")
        );
        if wide {
            r.add(
                "source credential",
                Status::Warn,
                format!("{detail} (a range, not one host)"),
                "name the validator client's single address (e.g. 127.0.0.1/32), or give the client a token or a client certificate",
            );
        } else if remote {
            r.add(
                "source credential",
                Status::Warn,
                format!("{detail} (not loopback: anyone who can use that address can sign)"),
                "run the validator client on this host and use 127.0.0.1/32, or use mTLS (--tls-client-ca with token create --cert-sha256)",
            );
        } else {
            r.pass("source credential", detail);
        }
    }
}

fn dev(r: &mut Report, s: &ServeArgs) {
    if s.dev || s.dev_evm_key.is_some() {
        r.add(
            "dev mode",
            Status::Fail,
            "--dev: a raw EVM key from the environment may be loaded",
            "remove --dev and --dev-evm-key; keep EVM keys in V3 keyfiles or the vault",
        );
    } else {
        r.pass("dev mode", "off");
    }
}

fn core_dumps(r: &mut Report) {
    match signward_os::disable_core_dumps() {
        Ok(()) => r.pass(
            "core dumps",
            "signward turns them off at start (RLIMIT_CORE 0, not dumpable)",
        ),
        Err(e) => r.add(
            "core dumps",
            Status::Fail,
            e,
            "allow setrlimit and prctl (systemd: do not filter them); set LimitCORE=0",
        ),
    }
}

fn memory(r: &mut Report) {
    let swap = std::fs::read_to_string("/proc/swaps")
        .map(|t| t.lines().count() > 1)
        .unwrap_or(false);
    let lockable = signward_os::is_root() || signward_os::memlock_limit().is_none();
    match (swap, lockable) {
        (_, true) => r.pass("memory locking", "memory can be locked; keys never reach swap"),
        (false, false) => r.add("memory locking", Status::Warn, format!("RLIMIT_MEMLOCK is {} bytes; no swap is configured", signward_os::memlock_limit().unwrap_or(0)), "set LimitMEMLOCK=infinity (or grant CAP_IPC_LOCK) so keys stay locked if swap is added"),
        (true, false) => r.add("memory locking", Status::Warn, "swap is on and memory cannot be locked: decrypted keys may be written to swap", "set LimitMEMLOCK=infinity (or grant CAP_IPC_LOCK), or turn swap off / encrypt it"),
    }
}

fn slashing_db(r: &mut Report, s: &ServeArgs) {
    let url = match super::slashing::db_url(&s.slashing, &s.data_dir) {
        Ok(u) => u,
        Err(e) => {
            return r.add(
                "slashing database",
                Status::Fail,
                format!("{e:#}"),
                "fix --slashing-protection-db-url",
            )
        }
    };
    if let Some(path) = url.strip_prefix("sqlite:") {
        if !Path::new(path).exists() {
            return r.add("slashing database", Status::Warn, "not created yet", "it is created on first start; import history first with `signward slashing import`");
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return r.add("slashing database", Status::Fail, e.to_string(), ""),
    };
    let res = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            signward_slashing::SlashingDb::open(&url),
        )
        .await
    });
    match res {
        Ok(Ok(db)) => r.pass(
            "slashing database",
            format!("{} reachable, schema current", db.backend()),
        ),
        Ok(Err(e)) => r.add(
            "slashing database",
            Status::Fail,
            format!("{} ({})", e.class(), e),
            "check the URL, the server and its credentials",
        ),
        Err(_) => r.add(
            "slashing database",
            Status::Fail,
            "no answer within 10 s",
            "check the database server and the network",
        ),
    }
}

/// The network and the chain-clock window `serve` would run with.
fn chain_clock(r: &mut Report, s: &ServeArgs) {
    let network = match super::serve::network_with_genesis(&s.network, s.genesis_time) {
        Ok(n) => n.network,
        Err(e) => {
            return r.add(
                "chain clock",
                Status::Fail,
                format!("{e:#}"),
                "serve refuses to start: correct or remove the source that disagrees \
                 (--genesis-time, genesis.ssz or genesis.json beside config.yaml)",
            )
        }
    };
    let status = super::serve::clock_status(&network, s.slashing_protection_disable_clock_check);
    match status.off {
        Some(signward_engine::state::ClockOff::DisabledByFlag) => r.add(
            "chain clock",
            Status::Warn,
            "OFF: disabled by --slashing-protection-disable-clock-check",
            "remove the flag (it is for tests)",
        ),
        Some(signward_engine::state::ClockOff::GenesisTimeUnknown) => r.add(
            "chain clock",
            Status::Warn,
            format!("OFF: genesis time of {} unknown", network.name),
            "pass --genesis-time <unix seconds> (or genesis-time in the config file), or put \
             the network's genesis.ssz beside config.yaml; MIN_GENESIS_TIME + GENESIS_DELAY is \
             not genesis time",
        ),
        None => match &status.warning {
            Some(w) => r.add(
                "chain clock",
                Status::Warn,
                w.clone(),
                "give the network's real genesis time: --genesis-time or its genesis.ssz",
            ),
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let t = status.genesis_time.unwrap_or(0);
                let when = if t > now {
                    format!("genesis in {} s (not started yet)", t - now)
                } else {
                    let slot = (now - t) / network.seconds_per_slot.max(1);
                    format!("epoch now {}", network.epoch_at_slot(slot))
                };
                r.pass(
                    "chain clock",
                    format!(
                        "on: genesis time {t} from {}, {when}",
                        status.genesis_time_source.unwrap_or("?")
                    ),
                )
            }
        },
    }
}

fn audit(r: &mut Report, dir: &Path) {
    if !DataDir::new(dir).server_key().exists() {
        return r.add(
            "audit chain",
            Status::Warn,
            "no server secret yet, so no audit log",
            "start the server once",
        );
    }
    match super::audit::verify_all(dir) {
        Ok(v) if v.is_empty() => r.add("audit chain", Status::Warn, "no audit log yet", ""),
        Ok(v) => {
            let bad: Vec<String> = v
                .iter()
                .filter_map(|(n, x)| x.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect();
            if bad.is_empty() {
                r.pass(
                    "audit chain",
                    format!(
                        "{} records verify",
                        v.iter().filter_map(|(_, x)| x.as_ref().ok()).sum::<u64>()
                    ),
                );
            } else {
                r.add("audit chain", Status::Fail, format!("TAMPERED: {}", bad.join("; ")), "treat as an incident: halt, preserve the files, investigate (docs/operations.md)");
            }
        }
        Err(e) => r.add(
            "audit chain",
            Status::Fail,
            format!("{e:#}"),
            "check the data directory",
        ),
    }
}

/// The hardening a unit must carry: (directive, acceptable values; empty = any non-empty value,
/// `""` alone = must be present and empty).
const UNIT_REQUIRED: &[(&str, &[&str])] = &[
    ("User", &[]),
    ("NoNewPrivileges", &["yes", "true"]),
    ("ProtectSystem", &["strict"]),
    ("ProtectHome", &["yes", "true", "read-only", "tmpfs"]),
    ("PrivateTmp", &["yes", "true"]),
    ("PrivateDevices", &["yes", "true"]),
    ("LimitCORE", &["0"]),
    ("MemoryDenyWriteExecute", &["yes", "true"]),
    ("RestrictAddressFamilies", &[]),
    ("CapabilityBoundingSet", &["", "CAP_IPC_LOCK"]),
    ("UMask", &["0077", "077"]),
];

fn unit(r: &mut Report, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return r.add(
            "systemd unit",
            Status::Fail,
            format!("cannot read {}", path.display()),
            "",
        );
    };
    let mut values: std::collections::HashMap<String, String> = Default::default();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
    {
        if let Some((k, v)) = line.split_once('=') {
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let mut missing = Vec::new();
    for (k, ok) in UNIT_REQUIRED {
        match values.get(*k) {
            None => missing.push(format!("{k}= (missing)")),
            Some(v) if ok.is_empty() && v.is_empty() => missing.push(format!("{k}= (empty)")),
            Some(v) if !ok.is_empty() && !ok.contains(&v.as_str()) => {
                missing.push(format!("{k}={v}"))
            }
            _ => {}
        }
    }
    if values.get("User").is_some_and(|u| u == "root") {
        missing.push("User=root".into());
    }
    // Enough descriptors for the connection cap and its reserve (see --max-connections).
    match values
        .get("LimitNOFILE")
        .map(|v| v.split(':').next().unwrap_or("").parse::<u64>())
    {
        Some(Ok(n)) if n >= 4096 => {}
        Some(_) if values.get("LimitNOFILE").is_some_and(|v| v == "infinity") => {}
        Some(_) => missing.push("LimitNOFILE below 4096".into()),
        None => missing.push("LimitNOFILE= (missing)".into()),
    }
    if missing.is_empty() {
        r.pass(
            "systemd unit",
            format!("{}: hardening options present", path.display()),
        );
    } else {
        r.add(
            "systemd unit",
            Status::Fail,
            format!("{}: {}", path.display(), missing.join(", ")),
            "start from packaging/signward.service",
        );
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let s = &args.serve;
    let mut r = Report::default();
    user(&mut r);
    data_dir(&mut r, &s.data_dir);
    secret_files(&mut r, s);
    config_file(&mut r, s.config.as_deref());
    listener(&mut r, s);
    auth(&mut r, s);
    source_credentials(&mut r, s);
    dev(&mut r, s);
    core_dumps(&mut r);
    memory(&mut r);
    slashing_db(&mut r, s);
    chain_clock(&mut r, s);
    audit(&mut r, &s.data_dir);
    match &args.unit {
        Some(u) => unit(&mut r, u),
        None if std::env::var_os("INVOCATION_ID").is_some() => r.add(
            "systemd unit",
            Status::Warn,
            "running under systemd, unit not given",
            "pass --unit /etc/systemd/system/signward.service",
        ),
        None => {}
    }
    println!("{:<20} {:<5} DETAIL / FIX", "CHECK", "");
    for f in &r.0 {
        let st = match f.status {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{:<20} {st:<5} {}", f.check, f.detail);
        if !f.fix.is_empty() && f.status != Status::Pass {
            println!("{:<20} {:<5} fix: {}", "", "", f.fix);
        }
    }
    let fails = r.0.iter().filter(|f| f.status == Status::Fail).count();
    let warns = r.0.iter().filter(|f| f.status == Status::Warn).count();
    println!(
        "\n{fails} failed, {warns} warnings, {} passed",
        r.0.len() - fails - warns
    );
    if fails > 0 {
        std::process::exit(1);
    }
    Ok(())
}
