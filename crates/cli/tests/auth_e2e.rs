//! The boundary through the real binary: tokens by Bearer and Basic, the authorisation matrix
//! (scope × key × operation × CIDR × expiry), revocation on a running server, failure limiting,
//! trusted proxies, and a leak test over every log line and response.

mod common;

use std::path::Path;

use base64::Engine;
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

fn exit(epoch: u64) -> Value {
    json!({"type": "VOLUNTARY_EXIT",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "voluntary_exit": {"epoch": epoch.to_string(), "validator_index": "1"}})
}

fn token(dir: &Path, args: &[&str]) -> String {
    let t = credential(dir, args);
    assert_eq!(t.lines().count(), 1, "the token alone on its line");
    assert!(t.starts_with("sw_") && t.len() == 67);
    t
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn sign_as(
    s: &Server,
    auth: Option<&str>,
    pk: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> Response {
    let mut h: Vec<(&str, &str)> = vec![("accept", "application/json")];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    h.extend_from_slice(extra);
    s.request(
        "POST",
        &format!("/api/v1/eth2/sign/{pk}"),
        &h,
        &serde_json::to_vec(body).unwrap(),
    )
}

fn get_as(s: &Server, auth: Option<&str>, path: &str) -> Response {
    let mut h: Vec<(&str, &str)> = vec![];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    s.request("GET", path, &h, b"")
}

fn outcome(r: &Response) -> (u16, String) {
    let code = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(String::from))
        .unwrap_or_else(|| {
            if r.status == 200 {
                "ok".into()
            } else {
                "-".into()
            }
        });
    (r.status, code)
}

/// One cell of the matrix: name, credential, request, expected (status, code).
type Call<'a> = Box<dyn Fn(&Server, Option<&str>, u64) -> Response + 'a>;
type Case<'a> = (&'a str, Option<&'a str>, Call<'a>, (u16, String));

#[test]
fn authorisation_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 2);
    let (pk0, pk1) = (pks[0].as_str(), pks[1].as_str());
    let t = |args: &[&str]| bearer(&token(d, args));
    let signer = t(&["--name", "signer", "--scope", "sign"]);
    let lister = t(&["--name", "lister", "--scope", "public_keys"]);
    let exiter = t(&[
        "--name",
        "exiter",
        "--scope",
        "sign",
        "--allow-op",
        "duties,voluntary_exit",
    ]);
    let restricted = t(&[
        "--name",
        "restricted",
        "--scope",
        "sign,public_keys",
        "--keys",
        pk0,
        "--deny-op",
        "VOLUNTARY_EXIT",
    ]);
    let only_randao = t(&[
        "--name",
        "only-randao",
        "--scope",
        "sign",
        "--allow-op",
        "RANDAO_REVEAL",
    ]);
    let net_ok = t(&[
        "--name",
        "net-ok",
        "--scope",
        "sign",
        "--cidr",
        "127.0.0.0/8,10.0.0.0/8",
    ]);
    let net_bad = t(&[
        "--name",
        "net-bad",
        "--scope",
        "sign",
        "--cidr",
        "10.0.0.0/8",
    ]);
    let expired = t(&["--name", "expired", "--scope", "sign", "--expires", "1s"]);
    let monitor = t(&["--name", "monitor", "--scope", "metrics"]);
    let bogus = bearer(&format!("sw_{}", "ab".repeat(32)));
    let net = minimal_network(d);
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(
            &net,
            &keys,
            &pw,
            &["--auth-failure-limit", "1000"],
        )),
    );
    std::thread::sleep(std::time::Duration::from_millis(1100)); // let `expired` expire

    let ok = (200, "ok".to_string());
    let e = |s: u16, c: &str| (s, c.to_string());
    let mut epoch = 0;
    let mut next = || {
        epoch += 1;
        epoch
    };
    // (who, what, expected)
    let cases: Vec<Case> = vec![
        (
            "no credentials",
            None,
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(401, "unauthorized"),
        ),
        (
            "unknown token",
            Some(&bogus),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(401, "unauthorized"),
        ),
        (
            "signer signs pk0",
            Some(&signer),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            ok.clone(),
        ),
        (
            "signer signs pk1",
            Some(&signer),
            Box::new(|s, a, n| sign_as(s, a, pk1, &randao(n), &[])),
            ok.clone(),
        ),
        (
            // Exits and deposits are granted by name only.
            "signer exits",
            Some(&signer),
            Box::new(|s, a, n| sign_as(s, a, pk0, &exit(n), &[])),
            e(403, "operation_denied"),
        ),
        (
            "exiter exits",
            Some(&exiter),
            Box::new(|s, a, n| sign_as(s, a, pk0, &exit(n), &[])),
            ok.clone(),
        ),
        (
            "exiter signs duties",
            Some(&exiter),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            ok.clone(),
        ),
        (
            "signer lists keys",
            Some(&signer),
            Box::new(|s, a, _| get_as(s, a, "/api/v1/eth2/publicKeys")),
            e(403, "scope_denied"),
        ),
        (
            "signer health",
            Some(&signer),
            Box::new(|s, a, _| get_as(s, a, "/healthcheck")),
            e(403, "scope_denied"),
        ),
        (
            "lister lists keys",
            Some(&lister),
            Box::new(|s, a, _| get_as(s, a, "/api/v1/eth2/publicKeys")),
            ok.clone(),
        ),
        (
            "lister signs",
            Some(&lister),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(403, "scope_denied"),
        ),
        (
            "restricted signs pk0",
            Some(&restricted),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            ok.clone(),
        ),
        (
            "restricted signs pk1",
            Some(&restricted),
            Box::new(|s, a, n| sign_as(s, a, pk1, &randao(n), &[])),
            e(403, "key_denied"),
        ),
        (
            "restricted signs unknown key",
            Some(&restricted),
            Box::new(|s, a, n| sign_as(s, a, &format!("0x{}", "a1".repeat(48)), &randao(n), &[])),
            e(403, "key_denied"),
        ),
        (
            "restricted exits",
            Some(&restricted),
            Box::new(|s, a, n| sign_as(s, a, pk0, &exit(n), &[])),
            e(403, "operation_denied"),
        ),
        (
            "only-randao randao",
            Some(&only_randao),
            Box::new(|s, a, n| sign_as(s, a, pk1, &randao(n), &[])),
            ok.clone(),
        ),
        (
            "only-randao exit",
            Some(&only_randao),
            Box::new(|s, a, n| sign_as(s, a, pk1, &exit(n), &[])),
            e(403, "operation_denied"),
        ),
        (
            "net-ok from loopback",
            Some(&net_ok),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            ok.clone(),
        ),
        (
            "net-bad from loopback",
            Some(&net_bad),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(403, "network_denied"),
        ),
        (
            "net-bad claims 10.x (no trusted proxy)",
            Some(&net_bad),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[("x-forwarded-for", "10.1.2.3")])),
            e(403, "network_denied"),
        ),
        (
            "expired",
            Some(&expired),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(403, "credential_expired"),
        ),
        (
            "monitor health",
            Some(&monitor),
            Box::new(|s, a, _| get_as(s, a, "/healthcheck")),
            ok.clone(),
        ),
        (
            "monitor signs",
            Some(&monitor),
            Box::new(|s, a, n| sign_as(s, a, pk0, &randao(n), &[])),
            e(403, "scope_denied"),
        ),
        (
            "upcheck is open",
            None,
            Box::new(|s, a, _| get_as(s, a, "/upcheck")),
            (200, "-".to_string()),
        ),
    ];
    let mut failures = Vec::new();
    for (name, auth, call, expected) in &cases {
        let r = call(&server, *auth, next());
        let got = outcome(&r);
        let got = if name.starts_with("upcheck") {
            (got.0, "-".into())
        } else {
            got
        };
        if got != *expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        if r.status == 401 {
            assert!(r.header("www-authenticate").is_some());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // HTTP Basic, as validator clients send http://name:token@host.
    let raw = restricted.trim_start_matches("Bearer ");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("restricted:{raw}"))
    );
    assert_eq!(
        outcome(&sign_as(&server, Some(&basic), pk0, &randao(next()), &[])),
        ok
    );
    // A key-restricted credential sees only its keys.
    let listed: Vec<String> = get_as(&server, Some(&restricted), "/api/v1/eth2/publicKeys")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![pk0.to_string()]);
}

#[test]
fn revocation_reaches_a_running_server_and_tokens_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let tok = token(d, &["--name", "vc", "--scope", "sign"]);
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert_eq!(
        sign_as(&server, Some(&bearer(&tok)), &pks[0], &randao(1), &[]).status,
        200
    );
    // A token created while the server runs works within a second.
    let late = token(d, &["--name", "late", "--scope", "sign"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        sign_as(&server, Some(&bearer(&late)), &pks[0], &randao(2), &[]).status,
        200
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["token", "revoke", "vc", "--data-dir"])
        .arg(d.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        sign_as(&server, Some(&bearer(&tok)), &pks[0], &randao(3), &[]).status,
        401
    );
    let stored = std::fs::read_to_string(d.join("data/tokens.json")).unwrap();
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["token", "list", "--data-dir"])
        .arg(d.join("data"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("\"late\""));
    for t in [&tok, &late] {
        assert!(!stored.contains(&t[3..]) && !listed.contains(&t[3..]));
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["tokens.json", "server.key"] {
        let mode = std::fs::metadata(d.join("data").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} is owner-only");
    }
}

#[test]
fn failed_attempts_are_limited_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let tok = token(d, &["--name", "vc", "--scope", "sign"]);
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
            "--auth-failure-limit",
            "5",
        ],
    );
    for i in 0..5 {
        let r = sign_as(&server, Some("Bearer sw_nope"), &pks[0], &randao(i), &[]);
        assert_eq!(r.status, 401);
    }
    // Failed attempts are throttled...
    let r = sign_as(&server, Some("Bearer sw_nope"), &pks[0], &randao(8), &[]);
    assert_eq!(outcome(&r), (429, "too_many_auth_failures".into()));
    assert!(r.header("retry-after").is_some());
    // ...but a valid credential from the same address is never locked out by them.
    let r = sign_as(&server, Some(&bearer(&tok)), &pks[0], &randao(9), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn trusted_proxy_forwarded_address_binds_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let tok = bearer(&token(
        d,
        &[
            "--name",
            "behind-proxy",
            "--scope",
            "sign",
            "--cidr",
            "10.0.0.0/8",
        ],
    ));
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            pw.to_str().unwrap(),
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    assert_eq!(
        sign_as(
            &server,
            Some(&tok),
            &pks[0],
            &randao(1),
            &[("x-forwarded-for", "10.4.5.6")]
        )
        .status,
        200
    );
    let r = sign_as(
        &server,
        Some(&tok),
        &pks[0],
        &randao(2),
        &[("x-forwarded-for", "192.0.2.1")],
    );
    assert_eq!(outcome(&r), (403, "network_denied".into()));
    let r = sign_as(&server, Some(&tok), &pks[0], &randao(3), &[]);
    assert_eq!(outcome(&r), (403, "network_denied".into()));
}

#[test]
fn disabling_auth_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    expect_refusal(
        &[
            "serve",
            "--http-listen-host",
            "0.0.0.0",
            "--insecure-allow-plaintext-non-loopback",
            "--insecure-disable-auth",
            "--http-listen-port",
            &port,
        ],
        &dir.path().join("d"),
        "only on a loopback listener",
    );
}

#[test]
fn no_secret_reaches_logs_or_responses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 2);
    let password = std::fs::read_to_string(&pw).unwrap();
    // A keystore with a wrong password file and a malformed one, via a passwords directory.
    let pwdir = d.join("pwdir");
    std::fs::create_dir_all(&pwdir).unwrap();
    for f in std::fs::read_dir(&keys).unwrap() {
        let stem = f
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        write_secret(&pwdir.join(format!("{stem}.txt")), password.as_bytes());
    }
    std::fs::copy(
        vectors().join("eip2335/nimbus-eth2/keystore3.json"),
        keys.join("wrong.json"),
    )
    .unwrap();
    let wrong_password = "Wr0ng-Pa55word-Zx9";
    write_secret(&pwdir.join("wrong.txt"), wrong_password.as_bytes());
    std::fs::write(
        keys.join("malformed.json"),
        b"{\"crypto\": 5, \"version\": 4}",
    )
    .unwrap();
    write_secret(&pwdir.join("malformed.txt"), password.as_bytes());
    let tok = token(d, &["--name", "vc", "--scope", "sign,public_keys,metrics"]);
    let server = Server::start_with_auth(
        d,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-passwords-path",
            pwdir.to_str().unwrap(),
            "--max-request-body-bytes",
            "4096",
            "--auth-failure-limit",
            "1000",
        ],
    );
    let near_miss = format!(
        "{}{}",
        &tok[..tok.len() - 1],
        if tok.ends_with('0') { "1" } else { "0" }
    );
    let mut responses = Vec::new();
    let auth = bearer(&tok);
    for (auth, body) in [
        (Some(auth.as_str()), serde_json::to_vec(&randao(1)).unwrap()),
        (
            Some(&format!("Bearer {near_miss}")),
            serde_json::to_vec(&randao(2)).unwrap(),
        ),
        (
            Some(&format!("Bearer {password}")),
            serde_json::to_vec(&randao(2)).unwrap(),
        ),
        (
            Some(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x:{near_miss}"))
            )),
            b"{}".to_vec(),
        ),
        (
            Some(auth.as_str()),
            b"{\"type\": \"RANDAO_REVEAL\", \"randao_reveal\": {\"epoch\": \"x\"}}".to_vec(),
        ),
        (Some(auth.as_str()), vec![b'x'; 10_000]),
        (
            Some(auth.as_str()),
            format!("{{\"password\": \"{password}\"}}").into_bytes(),
        ),
    ] {
        let mut h = vec![("accept", "application/json")];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        let r = server.request("POST", &format!("/api/v1/eth2/sign/{}", pks[0]), &h, &body);
        responses.push(String::from_utf8_lossy(&r.body).into_owned());
        responses.extend(r.headers.iter().map(|(k, v)| format!("{k}: {v}")));
    }
    for path in ["/healthcheck", "/api/v1/eth2/publicKeys"] {
        responses.push(get_as(&server, Some(&auth), path).text());
    }
    drop(server);

    let exp: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("eip2335/nimbus-eth2/expected.json")).unwrap(),
    )
    .unwrap();
    let mut secrets: Vec<String> = vec![
        password.trim().to_string(),
        wrong_password.to_string(),
        tok[3..].to_string(),
        near_miss[3..].to_string(),
    ];
    let server_key = std::fs::read(d.join("data/server.key")).unwrap();
    secrets.push(hex::encode(&server_key));
    secrets.push(base64::engine::general_purpose::STANDARD.encode(&server_key));
    for case in exp["cases"].as_array().unwrap() {
        let sk = hex::decode(&case["secret"].as_str().unwrap()[2..]).unwrap();
        secrets.push(hex::encode(&sk));
        secrets.push(base64::engine::general_purpose::STANDARD.encode(&sk));
        secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sk));
    }
    let mut haystacks = responses;
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            haystacks.push(std::fs::read_to_string(&p).unwrap());
        }
    }
    assert!(
        haystacks.iter().any(|h| h.contains("wrong.json")),
        "the failing keystore is named"
    );
    for s in &secrets {
        for h in &haystacks {
            assert!(
                !h.contains(s.as_str()),
                "a secret leaked into: {}",
                &h[..h.len().min(300)]
            );
        }
    }
}

fn cli(d: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(args)
        .arg("--data-dir")
        .arg(d.join("data"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn attestation(source: u64, target: u64, root_byte: u8) -> Value {
    json!({"type": "ATTESTATION",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "attestation": {"slot": "1", "index": "0", "beacon_block_root": format!("0x{}", format!("{root_byte:02x}").repeat(32)),
               "source": {"epoch": source.to_string(), "root": format!("0x{}", "00".repeat(32))},
               "target": {"epoch": target.to_string(), "root": format!("0x{}", "00".repeat(32))}}})
}

#[test]
fn every_decision_is_audited_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let tok = bearer(&token(d, &["--name", "vc-audit", "--scope", "sign"]));
    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &strs(&keystore_args(&net, &keys, &pw, &[])));
    let ok = sign_as(&server, Some(&tok), &pks[0], &attestation(1, 2, 1), &[]);
    assert_eq!(ok.status, 200);
    let request_id = ok.header("x-request-id").unwrap().to_string();
    assert_eq!(
        sign_as(&server, Some(&tok), &pks[0], &attestation(1, 2, 2), &[]).status,
        412
    );
    assert_eq!(
        sign_as(
            &server,
            Some("Bearer sw_bad"),
            &pks[0],
            &attestation(2, 3, 1),
            &[]
        )
        .status,
        401
    );

    let big = vec![b' '; 1_100_000];
    let r = server.request(
        "POST",
        &format!("/api/v1/eth2/sign/{}", pks[0]),
        &[("authorization", tok.as_str())],
        &big,
    );
    assert_eq!(r.status, 413);
    // Denials without a valid credential are written aggregated, per source and interval, and
    // at shutdown.
    server.signal("TERM");
    let mut server = server;
    server.child.wait().unwrap();
    let (_, out, _) = cli(d, &["audit", "query"]);
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |decision: &str| {
        records
            .iter()
            .find(|r| r["decision"] == decision)
            .cloned()
            .unwrap_or_else(|| panic!("no {decision} record in {out}"))
    };
    let created = find("created");
    assert_eq!(created["caller"], "vc-audit");
    let signed = find("signed");
    assert_eq!(signed["request_id"], request_id.as_str());
    assert_eq!(signed["caller"], "vc-audit");
    assert_eq!(signed["peer"], "127.0.0.1");
    assert_eq!(signed["key"], pks[0].as_str());
    assert_eq!(signed["operation"], "ATTESTATION");
    assert_eq!(signed["target_epoch"], 2);
    assert!(signed["signing_root"].as_str().unwrap().starts_with("0x"));
    assert!(signed["latency_us"].as_u64().is_some());
    assert_eq!(find("refused")["reason"], "double_vote");
    assert_eq!(find("denied")["reason"], "unauthorized");
    assert_eq!(find("denied")["count"], 1);
    assert_eq!(find("error")["reason"], "body_too_large");
    let (_, refused_only, _) = cli(d, &["audit", "query", "--decision", "refused"]);
    assert_eq!(refused_only.lines().count(), 1);
    let (ok_verify, said, _) = cli(d, &["audit", "verify"]);
    assert!(ok_verify && said.contains("intact"), "{said}");
    // By default signing decisions go to the chain in the SQLite slashing database, committed
    // with their checks.
    assert!(signed["log"].as_str().unwrap().ends_with("slashing.sqlite"));
    // No token in the audit log.
    let raw = std::fs::read(d.join("data/slashing.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&tok[10..]));
    drop(server);

    // Edit one record: verify fails and names it.
    let c = rusqlite_open(&d.join("data/slashing.sqlite"));
    c.execute(
        "UPDATE audit_records SET body = replace(body, 'double_vote', 'nothing') WHERE body LIKE '%double_vote%'",
        [],
    )
    .unwrap();
    let (ok_verify, _, err) = cli(d, &["audit", "verify"]);
    assert!(!ok_verify);
    assert!(err.contains("TAMPERED"), "{err}");
}

fn rusqlite_open(p: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}

#[test]
fn a_failing_audit_store_blocks_signing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 1);
    let tok = bearer(&token(d, &["--name", "vc", "--scope", "sign"]));
    let mon = bearer(&token(d, &["--name", "mon", "--scope", "metrics"]));
    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &strs(&keystore_args(&net, &keys, &pw, &[])));
    assert_eq!(
        sign_as(&server, Some(&tok), &pks[0], &randao(1), &[]).status,
        200
    );
    let audit_check = || {
        let h = server
            .request("GET", "/healthcheck", &[("authorization", &mon)], b"")
            .json();
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "audit-check")
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(audit_check(), "UP");
    let c = rusqlite_open(&d.join("data/slashing.sqlite"));
    c.execute_batch("CREATE TRIGGER full BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    // Not slashable: the record cannot be written, so the signature is withheld.
    let r = sign_as(&server, Some(&tok), &pks[0], &randao(2), &[]);
    assert_eq!(outcome(&r), (503, "audit_unavailable".into()));
    assert!(!r.text().contains("signature"));
    // Slashable: the check and its record share one transaction; both roll back.
    let r = sign_as(&server, Some(&tok), &pks[0], &attestation(1, 2, 1), &[]);
    assert_eq!(outcome(&r), (503, "audit_unavailable".into()));
    assert_eq!(
        audit_check(),
        "DOWN",
        "health reports the failing audit log"
    );
    c.execute_batch("DROP TRIGGER full").unwrap();
    assert_eq!(
        sign_as(&server, Some(&tok), &pks[0], &randao(3), &[]).status,
        200
    );
    assert_eq!(audit_check(), "UP");
    // Nothing was recorded for the failed attestation, so a different vote for target 2 is new.
    assert_eq!(
        sign_as(&server, Some(&tok), &pks[0], &attestation(1, 2, 7), &[]).status,
        200
    );
}

/// A source credential (for clients that cannot send one, such as Lodestar >= 1.10): a request
/// that presents nothing, from the named address, acts as it, still limited to its keys,
/// operations and scopes; a presented credential that fails never falls back to the address;
/// the rules that keep it narrow hold at creation and at load; `doctor` flags a range.
#[test]
fn source_credential_authenticates_by_address_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (keys, pw, pks) = nimbus_keys(d, 2);
    let (pk0, pk1) = (pks[0].as_str(), pks[1].as_str());
    let data = d.join("data");
    let create = |args: &[&str]| {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        run_signward(&all, &data)
    };
    let out = create(&[
        "--name",
        "lodestar",
        "--source",
        "127.0.0.1/32",
        "--scope",
        "sign,public_keys",
        "--keys",
        pk0,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "a source credential has no token to print"
    );
    // What a source credential may not be.
    for (args, needle) in [
        (
            vec![
                "--name",
                "wide",
                "--source",
                "10.0.0.0/16",
                "--scope",
                "sign",
            ],
            "at most a /24",
        ),
        (
            vec![
                "--name",
                "admin",
                "--source",
                "10.0.0.1",
                "--scope",
                "sign,admin",
            ],
            "not admin",
        ),
        (
            vec![
                "--name",
                "km",
                "--source",
                "10.0.0.1",
                "--scope",
                "keymanager",
            ],
            "not keymanager",
        ),
        (
            vec![
                "--name",
                "overlap",
                "--source",
                "127.0.0.0/24",
                "--scope",
                "sign",
            ],
            "overlaps source credential \"lodestar\"",
        ),
        (
            vec![
                "--name", "both", "--source", "10.0.0.1", "--cidr", "10.0.0.1", "--scope", "sign",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--name",
                "exits",
                "--source",
                "10.0.0.1",
                "--scope",
                "sign",
                "--allow-op",
                "duties,VOLUNTARY_EXIT",
            ],
            "duties only",
        ),
        (
            vec!["--name", "any", "--source", "0.0.0.0/24", "--scope", "sign"],
            "unspecified",
        ),
    ] {
        let out = create(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
    let vc = bearer(&token(d, &["--name", "vc", "--scope", "sign,public_keys"]));
    let server = Server::start_with_auth(
        d,
        &strs(&keystore_args(&minimal_network(d), &keys, &pw, &[])),
    );
    let gvr0 = json!({"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                      "genesis_validators_root": GVR});
    let randao =
        json!({"type": "RANDAO_REVEAL", "fork_info": gvr0, "randao_reveal": {"epoch": "3"}});

    // No credential from 127.0.0.1: the source credential, for its key only.
    assert_eq!(
        outcome(&sign_as(&server, None, pk0, &randao, &[])),
        (200, "ok".into())
    );
    assert_eq!(
        outcome(&sign_as(&server, None, pk1, &randao, &[])),
        (403, "key_denied".into())
    );
    let listed: Vec<String> =
        serde_json::from_slice(&get_as(&server, None, "/api/v1/eth2/publicKeys").body).unwrap();
    assert_eq!(listed, vec![pk0.to_string()]);
    // Its operations: duties only.
    let exit = json!({"type": "VOLUNTARY_EXIT", "fork_info": gvr0,
                      "voluntary_exit": {"epoch": "3", "validator_index": "1"}});
    assert_eq!(
        outcome(&sign_as(&server, None, pk0, &exit, &[])),
        (403, "operation_denied".into())
    );
    // Its scopes: not key management.
    assert_eq!(
        outcome(&get_as(&server, None, "/eth/v1/keystores")),
        (403, "scope_denied".into())
    );
    // A presented credential decides alone: a wrong one is 401, never the address's.
    let wrong = format!("Bearer sw_{}", "0".repeat(64));
    for auth in [wrong.as_str(), "Basic !!!", "Bearer"] {
        assert_eq!(
            outcome(&sign_as(&server, Some(auth), pk0, &randao, &[])).0,
            401,
            "{auth}"
        );
    }
    // The token credential is itself, with its own grants (both keys).
    assert_eq!(
        outcome(&sign_as(&server, Some(&vc), pk1, &randao, &[])),
        (200, "ok".into())
    );
    // A request a forwarder relayed is not from the address it arrives from: with any
    // forwarding header, the address proves nothing (a proxy on this host without
    // --trusted-proxy, ssh -L, socat would otherwise make every caller loopback).
    for h in ["x-forwarded-for", "forwarded", "x-real-ip", "via"] {
        assert_eq!(
            outcome(&sign_as(&server, None, pk0, &randao, &[(h, "127.0.0.1")])).0,
            401,
            "{h}"
        );
    }

    // Through a trusted proxy, a source credential never applies: the proxy's address and
    // the hops it reports are not the caller's to prove.
    let proxied_dir = d.join("proxied");
    std::fs::create_dir_all(&proxied_dir).unwrap();
    std::fs::copy(data.join("tokens.json"), {
        std::fs::create_dir_all(proxied_dir.join("data")).unwrap();
        proxied_dir.join("data/tokens.json")
    })
    .unwrap();
    std::fs::copy(data.join("server.key"), proxied_dir.join("data/server.key")).unwrap();
    let proxied = Server::start_with_auth(
        &proxied_dir,
        &strs(&keystore_args(
            &minimal_network(d),
            &keys,
            &pw,
            &["--trusted-proxy", "127.0.0.1/32"],
        )),
    );
    for extra in [vec![], vec![("x-forwarded-for", "127.0.0.1")]] {
        assert_eq!(
            outcome(&sign_as(&proxied, None, pk0, &randao, &extra)).0,
            401,
            "{extra:?}"
        );
    }
    drop(proxied);

    // A hand-edited file that widens the credential is not honoured: the entry is ignored.
    let path = data.join("tokens.json");
    let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for c in file["credentials"].as_array_mut().unwrap() {
        if c["name"] == "lodestar" {
            c["policy"]["cidrs"] = json!(["0.0.0.0/0"]);
            c["policy"]["scopes"] = json!(["sign", "public_keys", "admin"]);
        }
    }
    write_secret(&path, &serde_json::to_vec(&file).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(outcome(&sign_as(&server, None, pk0, &randao, &[])).0, 401);
    assert!(server.log_text().contains("source credential ignored"));

    // Revoked: the address alone no longer signs (within a second).
    run_signward(&["token", "revoke", "lodestar"], &data);
    let out = create(&[
        "--name",
        "lodestar2",
        "--source",
        "10.1.2.0/24",
        "--scope",
        "sign",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(outcome(&sign_as(&server, None, pk0, &randao, &[])).0, 401);
    drop(server);

    // doctor names every source credential and flags the range.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("source credential"))
        .unwrap_or_else(|| panic!("no source credential row:\n{text}"));
    assert!(
        row.contains("WARN") && row.contains("lodestar2") && row.contains("a range"),
        "{row}"
    );
    // Credentials never print a secret; `token list` says what kind each one is.
    let list = run_signward(&["token", "list"], &data);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("\"kind\":\"source\"") && list.contains("\"kind\":\"token\""),
        "{list}"
    );
}
