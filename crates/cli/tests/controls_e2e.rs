//! Operating controls through the real binary: halt and resume (persisted across restarts),
//! canary keys (refused, audited, counted, halting), Prometheus metrics on their own listener,
//! no core dumps, and the refusal to run as root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// Mainnet's: the servers here run with the default network, and its pin applies to every
// message type.
const GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

fn randao(epoch: u64) -> Value {
    json!({"type": "RANDAO_REVEAL",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "randao_reveal": {"epoch": epoch.to_string()}})
}

fn sign(server: &Server, auth: &str, pk: &str, body: &Value) -> Response {
    sign_with(server, auth, pk, body)
}

fn admin(d: &std::path::Path, server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(args)
        .args([
            "--url",
            &format!("http://127.0.0.1:{}", server.port),
            "--token-file",
            d.join("ops.token").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metrics(port: u16, auth: &str) -> String {
    let r = try_request(port, "GET", "/metrics", &[("authorization", auth)], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn halt_canary_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let canary = format!("0x{}", "a1".repeat(48));
    let metrics_port = free_port();
    let port_s = metrics_port.to_string();
    let owned = keystore_args(
        &minimal_network(d),
        &keys,
        &pw,
        &[
            "--canary-key",
            &canary,
            "--canary-action",
            "halt",
            "--metrics-enabled",
            "--metrics-port",
            &port_s,
        ],
    );
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let ops = credential(d, &["--name", "ops", "--scope", "admin"]);
    write_secret(&d.join("ops.token"), ops.as_bytes());
    let vc = format!(
        "Bearer {}",
        credential(d, &["--name", "vc", "--scope", "sign,public_keys"])
    );
    let mon = format!(
        "Bearer {}",
        credential(d, &["--name", "mon", "--scope", "metrics"])
    );
    let other_vc = format!(
        "Bearer {}",
        credential(d, &["--name", "vc-2", "--scope", "sign"])
    );
    let server = Server::start_with_auth(d, &args);

    // Metrics: their own listener, the metrics scope.
    assert_eq!(
        try_request(metrics_port, "GET", "/metrics", &[], b"")
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        try_request(
            metrics_port,
            "GET",
            "/metrics",
            &[("authorization", &vc)],
            b""
        )
        .unwrap()
        .status,
        403
    );
    assert_eq!(
        try_request(
            metrics_port,
            "GET",
            "/api/v1/eth2/publicKeys",
            &[("authorization", &vc)],
            b""
        )
        .unwrap()
        .status,
        404
    );
    assert_eq!(sign(&server, &vc, &pks[0], &randao(1)).status, 200);
    let m = metrics(metrics_port, &mon);
    for needle in [
        "signward_requests_total{api=\"eth2\",operation=\"RANDAO_REVEAL\",decision=\"signed\",reason=\"\"} 1",
        "signward_keys_loaded{kind=\"bls\"} 1",
        "signward_halted 0",
        "signward_sealed 0",
        "signward_sign_duration_seconds_count{api=\"eth2\"} 1",
        "signward_slashing_db_duration_seconds_count",
        "signward_auth_failures_total 1",
        "signward_canary_hits_total 0",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }

    // Halt: every signing request refused; the state survives a restart; resume lifts it.
    admin(d, &server, &["halt", "--reason", "incident drill"]);
    let r = sign(&server, &vc, &pks[0], &randao(2));
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("halted")));
    assert!(metrics(metrics_port, &mon).contains("signward_halted 1"));
    drop(server);
    let server = Server::start_with_auth(d, &args);
    assert!(server.log_text().contains("HALTED"));
    assert_eq!(sign(&server, &vc, &pks[0], &randao(3)).status, 503);
    let mon_h = server.request("GET", "/healthcheck", &[("authorization", &mon)], b"");
    assert_eq!(mon_h.status, 503);
    let halt = mon_h.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "halt-check")
        .unwrap()
        .clone();
    assert_eq!(halt["status"], "DOWN");
    assert!(halt["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("incident drill"));
    admin(d, &server, &["resume"]);
    assert_eq!(sign(&server, &vc, &pks[0], &randao(4)).status, 200);

    // Canary: listed like a real key, never signed with; with `--canary-action halt` a request
    // suspends the credential that asked and halts the signer at once.
    let listed: Vec<String> = serde_json::from_slice(
        &server
            .request(
                "GET",
                "/api/v1/eth2/publicKeys",
                &[("authorization", &vc)],
                b"",
            )
            .body,
    )
    .unwrap();
    assert!(listed.contains(&canary) && listed.contains(&pks[0]));
    let r = sign(&server, &vc, &canary, &randao(5));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("canary_key"))
    );
    let r = sign(&server, &vc, &pks[0], &randao(6));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("credential_suspended")),
        "the credential that asked is contained"
    );
    let r = sign(&server, &other_vc, &pks[0], &randao(6));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("halted")),
        "the canary halted the signer"
    );
    let m = metrics(metrics_port, &mon);
    assert!(
        m.contains("signward_canary_hits_total 1") && m.contains("signward_halted 1"),
        "{m}"
    );
    assert!(server.log_text().contains("CANARY KEY REQUESTED"));
    let audit = String::from_utf8_lossy(&run_signward(&["audit", "query"], &d.join("data")).stdout)
        .into_owned();
    assert!(audit.contains("\"event\":\"canary\"") && audit.contains(&canary));
    assert!(audit.contains("\"decision\":\"suspended\""), "{audit}");
    assert!(
        audit.contains("\"decision\":\"halted\"") && audit.contains("\"decision\":\"resumed\"")
    );
    assert!(audit.contains("incident drill"));
}

#[test]
fn no_core_dump_and_no_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let log = std::fs::File::create(d.join("serve.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signward"))
        .current_dir(d)
        .args([
            "serve",
            "--data-dir",
            "data",
            "--insecure-disable-auth",
            "--http-listen-port",
            &port.to_string(),
        ])
        .args(root_flag())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(d.join("serve.log"))
        .unwrap_or_default()
        .contains("key loading finished")
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(30));
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_string();
    assert_eq!(
        core.split_whitespace().filter(|w| *w == "0").count(),
        2,
        "{core}"
    );
    // SIGABRT (whose default action dumps core) leaves no core file (the kernel pattern on this kind of machine is a file in the
    // working directory, so a dump would land next to the data).
    assert!(Command::new("kill")
        .args(["-ABRT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(300));
    let cores: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "a core file was written");
    assert!(std::fs::read_to_string(d.join("serve.log"))
        .unwrap()
        .contains("core dumps off"));
    // Owner-only files from the umask.
    let mode = std::os::unix::fs::MetadataExt::mode(
        &std::fs::metadata(d.join("data/slashing.sqlite")).unwrap(),
    );
    assert_eq!(mode & 0o077, 0);

    if root_flag().is_some() {
        let out = Command::new(env!("CARGO_BIN_EXE_signward"))
            .args([
                "serve",
                "--data-dir",
                d.join("root").to_str().unwrap(),
                "--http-listen-port",
                &free_port().to_string(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to run as root"));
    }
}

#[test]
fn evm_canary_alert_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let canary = "0x5555555555555555555555555555555555555555";
    let server = Server::start(d, &["--canary-key", canary, "--canary-action", "alert"]);
    let call = |method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        server
            .request(
                "POST",
                "/",
                &[("content-type", "application/json")],
                &serde_json::to_vec(&body).unwrap(),
            )
            .json()
    };
    let accounts = call("eth_accounts", json!([]));
    assert_eq!(
        accounts["result"][0].as_str().unwrap().to_lowercase(),
        canary
    );
    let v = call("eth_sign", json!([canary, "0x00"]));
    assert_eq!(v["error"]["data"]["reason"], "canary_key");
    // Alert only: not halted.
    let h = server.request("GET", "/healthcheck", &[], b"").json();
    let halt = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "halt-check")
        .unwrap()
        .clone();
    assert_eq!(
        (
            halt["status"].as_str(),
            halt["data"]["canary-hits"].as_u64()
        ),
        (Some("UP"), Some(1))
    );
}

/// JSON logs: every line is a JSON object, and no secret reaches them (passwords, tokens, the
/// server secret, key material), whatever the failures along the way.
#[test]
fn json_logs_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let password = std::fs::read_to_string(&pw).unwrap();
    let tok = credential(
        d,
        &[
            "--name",
            "vc",
            "--scope",
            "sign,evm",
            "--keys",
            "evm:*",
            "--allow-op",
            "duties,eth_sign",
        ],
    );
    let args = keystore_args(&minimal_network(d), &keys, &pw, &["--log-format", "json"]);
    let server = Server::start_with_auth(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let auth = format!("Bearer {tok}");
    assert_eq!(sign(&server, &auth, &pks[0], &randao(1)).status, 200);
    let forged = format!("Bearer sw_{}", "ab".repeat(32));
    assert_eq!(sign(&server, &forged, &pks[0], &randao(2)).status, 401);
    let r = server.request("POST", "/", &[("authorization", &auth)], br#"{"jsonrpc":"2.0","id":1,"method":"eth_sign","params":["0x1111111111111111111111111111111111111111","0x00"]}"#);
    assert_eq!(r.status, 200);
    drop(server);
    let log = std::fs::read_to_string(
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".log"))
            .unwrap(),
    )
    .unwrap();
    let server_key = hex::encode(std::fs::read(d.join("data/server.key")).unwrap());
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    for secret in [
        password.trim(),
        tok.as_str(),
        &tok[3..],
        &"ab".repeat(32),
        &server_key,
    ] {
        assert!(!log.contains(secret), "a secret reached the JSON log");
    }
}
