//! OpenAPI conformance: schemathesis (pinned in tests/py/requirements.txt) runs against a real
//! `signward serve` with authentication on, once with Web3Signer's eth2 spec and once with the
//! Keymanager spec (both copied into tests/vectors/openapi, see tests/vectors/SOURCES.md). It
//! fails on any nonconformance schemathesis finds: a 5xx, a status the spec does not list, a
//! response that does not match its schema, and so on. The checks turned off for an operation
//! are in tests/openapi/*.toml, each with its reason. Fixed seed, bounded examples and time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// schemathesis from the test virtual environment (next to its python).
fn schemathesis() -> Option<PathBuf> {
    let py = python()?;
    let bin = py.with_file_name("schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-test-env.sh (tests/py/requirements.txt pins schemathesis)",
        bin.display()
    );
    Some(bin)
}

fn run(bin: &Path, config: &str, spec: &str, url: &str, token: &str, report: &Path) {
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("--config-file")
        .arg(repo().join("tests/openapi").join(config))
        .arg("run")
        .arg(vectors().join("openapi").join(spec))
        .args(["--url", url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--report", "junit", "--report-dir"])
        .arg(report)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report)
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis {spec}: {:?}\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "schemathesis found nonconformance with {spec} (see above)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "schemathesis took {:?}; the run must stay bounded",
        started.elapsed()
    );
}

#[test]
fn web3signer_and_keymanager_specs() {
    let Some(bin) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = credential(
        d,
        &[
            "--name",
            "conformance",
            "--scope",
            "sign,public_keys,keymanager,admin,metrics",
            "--allow-op",
            "duties,VOLUNTARY_EXIT,DEPOSIT",
        ],
    );
    let (keys, pw, _) = nimbus_keys(d, 2);
    let net = minimal_network(d);
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(
            &net,
            &keys,
            &pw,
            &["--auth-failure-limit", "100000"],
        )),
    );
    let url = format!("http://127.0.0.1:{}", server.port);
    let report = d.join("report");
    std::fs::create_dir_all(&report).unwrap();
    run(
        &bin,
        "web3signer.toml",
        "web3signer-openapi/openapi-specs/eth2/web3signer.yaml",
        &url,
        &token,
        &report,
    );
    run(
        &bin,
        "keymanager.toml",
        "keymanager-api/keymanager-oapi.yaml",
        &url,
        &token,
        &report,
    );
    // The server survived everything it was sent.
    let up = server.request("GET", "/upcheck", &[], b"");
    assert_eq!(up.status, 200);
}
