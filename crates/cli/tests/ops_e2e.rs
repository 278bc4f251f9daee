//! Operations through the real binary: `doctor` (every check failing, then passing as an
//! unprivileged user), the shipped systemd unit verified by `systemd-analyze`, config-file and
//! environment precedence, and SIGHUP reloading key files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .arg("doctor")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn row<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(check))
        .unwrap_or_else(|| panic!("no {check} row in:\n{out}"))
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A data directory that has run once: server secret, token file, slashing database, audit.
fn prepared(d: &Path) -> std::path::PathBuf {
    let data = d.join("data");
    credential(d, &["--name", "vc", "--scope", "sign"]);
    let server = Server::start_with_auth(d, &[]);
    drop(server);
    data
}

#[test]
fn doctor_fails_each_check_then_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    chmod(d, 0o755);
    let data = prepared(d);
    let repo_unit = repo().join("packaging/signward.service");
    let data_s = data.to_str().unwrap();

    // Everything wrong at once.
    chmod(&data, 0o755);
    chmod(&data.join("server.key"), 0o644);
    let cfg = d.join("signward.toml");
    std::fs::write(&cfg, "network = \"mainnet\"\n").unwrap();
    chmod(&cfg, 0o644);
    let bad_unit = d.join("bad.service");
    std::fs::write(&bad_unit, "[Service]\nUser=root\nExecStart=/bin/true\n").unwrap();
    let (code, out) = doctor(
        &[
            "--data-dir",
            data_s,
            "--config",
            cfg.to_str().unwrap(),
            "--http-listen-host",
            "0.0.0.0",
            "--insecure-allow-plaintext-non-loopback",
            "--insecure-disable-auth",
            "--dev",
            "--slashing-protection-db-url",
            "postgres://postgres@127.0.0.1:1/none",
            "--unit",
            bad_unit.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    for check in [
        "data directory",
        "secret files",
        "config file",
        "listener",
        "authentication",
        "dev mode",
        "slashing database",
        "systemd unit",
    ] {
        assert!(
            row(&out, check).contains("FAIL"),
            "{check} should fail:\n{out}"
        );
    }
    assert!(out.contains("fix: chmod 700"), "{out}");
    assert!(
        row(&out, "systemd unit").contains("ProtectSystem= (missing)")
            && row(&out, "systemd unit").contains("User=root")
    );
    if common::root_flag().is_some() {
        assert!(row(&out, "service user").contains("FAIL"));
    }
    // The audit chain: tampered → FAIL.
    let (_, out) = doctor(&["--data-dir", data_s], &[]);
    let audit_row = row(&out, "audit chain");
    assert!(
        audit_row.contains("FAIL") || audit_row.contains("pass"),
        "{out}"
    );

    // Fixed, and run as an unprivileged user (nobody), everything passes.
    let dir2 = tempfile::tempdir().unwrap();
    let d2 = dir2.path();
    chmod(d2, 0o755);
    let data2 = prepared(d2);
    let cfg2 = d2.join("signward.toml");
    std::fs::write(
        &cfg2,
        format!(
            "data-dir = \"{}\"\nnetwork = \"mainnet\"\n",
            data2.display()
        ),
    )
    .unwrap();
    chmod(&cfg2, 0o640);
    if common::root_flag().is_none() {
        let (code, out) = doctor(
            &[
                "--config",
                cfg2.to_str().unwrap(),
                "--unit",
                repo_unit.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{out}");
        return;
    }
    for entry in walk(d2) {
        std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_signward"),
            "doctor",
            "--config",
            cfg2.to_str().unwrap(),
            "--unit",
            repo_unit.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "service user",
        "data directory",
        "secret files",
        "config file",
        "listener",
        "authentication",
        "dev mode",
        "core dumps",
        "slashing database",
        "audit chain",
        "systemd unit",
    ] {
        assert!(
            row(&text, check).contains("pass"),
            "{check} should pass:\n{text}"
        );
    }
    // Tamper with the audit chain: that check alone fails.
    // (Credentials made before the first start are audited in audit.sqlite.)
    let conn = rusqlite::Connection::open(data2.join("audit.sqlite")).unwrap();
    let n = conn
        .execute(
            "UPDATE records SET body = replace(body, 'created', 'CREATED')",
            [],
        )
        .unwrap();
    assert!(n >= 1);
    drop(conn);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_signward"),
            "doctor",
            "--config",
            cfg2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(row(&text, "audit chain").contains("FAIL"), "{text}");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            v.extend(walk(&e.unwrap().path()));
        }
    }
    v
}

#[test]
fn shipped_unit_verifies() {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is required in CI"
        );
        eprintln!("note: systemd-analyze missing; unit not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("packaging/signward.service")).unwrap();
    // Verify against the binary under test (systemd-analyze checks that ExecStart exists).
    let unit = unit.replace("/usr/local/bin/signward", env!("CARGO_BIN_EXE_signward"));
    let path = dir.path().join("signward.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("signward.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    // And doctor accepts its hardening.
    let (_, out) = doctor(
        &[
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
            "--unit",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(row(&out, "systemd unit").contains("pass"), "{out}");
}

fn effective_port(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.trim_start().starts_with("http_listen_port:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn config_file_env_and_flag_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("s.toml");
    std::fs::write(&cfg, "http-listen-port = 7001\nnetwork = \"hoodi\"\ncanary_key = [\"0x5555555555555555555555555555555555555555\"]\n").unwrap();
    chmod(&cfg, 0o640);
    let c = cfg.to_str().unwrap();
    assert_eq!(
        effective_port(&["config", "check", "--config", c], &[]),
        "http_listen_port: 7001,"
    );
    assert_eq!(
        effective_port(
            &["config", "check", "--config", c],
            &[("SIGNWARD_HTTP_LISTEN_PORT", "7002")]
        ),
        "http_listen_port: 7002,"
    );
    // A flag beats both: doctor runs with the same layering.
    let (_, out) = doctor(
        &[
            "--config",
            c,
            "--http-listen-port",
            "7003",
            "--data-dir",
            d.join("x").to_str().unwrap(),
        ],
        &[("SIGNWARD_HTTP_LISTEN_PORT", "7002")],
    );
    assert!(row(&out, "listener").contains("pass"), "{out}");
    // A raw key where `env:VAR` belongs is never printed back.
    let raw = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    std::fs::write(&cfg, format!("dev-evm-key = \"0x{raw}\"\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["config", "check", "--config", c])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(raw)
            && !String::from_utf8_lossy(&out.stderr).contains(raw)
    );
    // Refusals: unknown keys, a world-readable file, a password in a group-readable file.
    std::fs::write(&cfg, "http-listen-prot = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["config", "check", "--config", c])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown setting")
    );
    std::fs::write(&cfg, "network = \"mainnet\"\n").unwrap();
    chmod(&cfg, 0o644);
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["serve", "--config", c])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("chmod o-rwx"));
    std::fs::write(
        &cfg,
        "slashing-protection-db-url = \"postgres://u:secret@db/x\"\n",
    )
    .unwrap();
    chmod(&cfg, 0o640);
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["config", "check", "--config", c])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds a password") && !err.contains("secret@"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_key_files_and_reports_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 2);
    let second = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains(pks[1].trim_start_matches("0x"))
        });
    let second = second.unwrap();
    let parked = d.join("parked.json");
    std::fs::rename(&second, &parked).unwrap();
    let args = keystore_args(&minimal_network(d), &keys, &pw, &[]);
    let server = Server::start(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(server.public_keys(), vec![pks[0].clone()]);
    std::fs::rename(&parked, &second).unwrap();
    server.signal("HUP");
    wait_for(&server, "added=1 removed=0");
    assert_eq!(server.public_keys().len(), 2);
    std::fs::remove_file(&second).unwrap();
    server.signal("HUP");
    wait_for(&server, "added=0 removed=1");
    assert_eq!(server.public_keys(), vec![pks[0].clone()]);
}

fn wait_for(server: &Server, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
