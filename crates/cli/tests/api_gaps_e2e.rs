//! The Web3Signer and Keymanager endpoints added for issue 12 (item 4), through the real binary
//! with authentication on: `/reload` (the SIGHUP reload), `highWatermark`, `derivation_path`,
//! remote keys, JSON for 404 and 405, and parse errors that name each endpoint's own body.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn get(s: &Server, auth: &str, path: &str) -> Response {
    s.request("GET", path, &[("authorization", auth)], b"")
}

fn send(s: &Server, method: &str, auth: &str, path: &str, body: &Value) -> Response {
    s.request(
        method,
        path,
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        &serde_json::to_vec(body).unwrap(),
    )
}

fn keys_as(s: &Server, auth: &str) -> Vec<String> {
    let r = get(s, auth, "/api/v1/eth2/publicKeys");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// Poll `GET /reload` until the reload is no longer running; returns the last status.
fn wait_reload(s: &Server, auth: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(s, auth, "/reload");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if v["status"] != "running" && v["status"] != "idle" {
            return v;
        }
        assert!(Instant::now() < deadline, "reload did not finish: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_endpoint_runs_the_sighup_reload_for_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admin = bearer(&credential(d, &["--name", "ops", "--scope", "admin"]));
    let vc = bearer(&credential(
        d,
        &["--name", "vc", "--scope", "sign,public_keys"],
    ));
    let km = bearer(&credential(d, &["--name", "km", "--scope", "keymanager"]));
    let (keys, pw, pubkeys) = nimbus_keys(d, 2);
    // Start with one keystore; the other is put in place while the server runs.
    let aside = d.join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let moved = aside.join(files[1].file_name().unwrap());
    std::fs::rename(&files[1], &moved).unwrap();
    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &strs(&keystore_args(&net, &keys, &pw, &[])));
    assert_eq!(keys_as(&server, &vc).len(), 1);

    // Before any reload: idle, nothing else.
    assert_eq!(
        get(&server, &admin, "/reload").json(),
        json!({"status": "idle"})
    );

    // Deny by default: no credential is 401, a credential without the admin scope 403.
    let r = server.request("POST", "/reload", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthorized");
    for who in [&vc, &km] {
        let r = server.request("POST", "/reload", &[("authorization", who)], b"");
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.json()["code"], "scope_denied");
        assert_eq!(get(&server, who, "/reload").status, 403);
    }
    assert_eq!(
        keys_as(&server, &vc).len(),
        1,
        "a refused reload did nothing"
    );

    // The admin's reload picks up the new file, as SIGHUP does.
    std::fs::rename(&moved, &files[1]).unwrap();
    let r = server.request("POST", "/reload", &[("authorization", &admin)], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "accepted");
    let st = wait_reload(&server, &admin);
    assert_eq!(st["status"], "completed", "{st}");
    let t = st["lastOperationTime"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t}"
    );
    let mut loaded = keys_as(&server, &vc);
    loaded.sort();
    let mut want = pubkeys.clone();
    want.sort();
    assert_eq!(loaded, want);

    // SIGHUP is the same reload: removing a file and signalling drops the key, and the
    // status GET /reload reports is the signal's.
    std::fs::rename(&files[1], &moved).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while keys_as(&server, &vc).len() != 1 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(wait_reload(&server, &admin)["status"], "completed");
    let log = server.log_text();
    assert!(
        log.contains("trigger=\"api\"") || log.contains("trigger=api"),
        "{log}"
    );
    assert!(log.contains("SIGHUP"), "{log}");

    // A file that fails to load is reported (count only), and the others stay.
    std::fs::write(&files[1], b"{not a keystore").unwrap();
    owner_only(&files[1]);
    let r = server.request("POST", "/reload", &[("authorization", &admin)], b"");
    assert_eq!(r.status, 202);
    let st = wait_reload(&server, &admin);
    assert_eq!(st["status"], "completed_with_errors", "{st}");
    assert_eq!(
        st["lastError"], "Reload completed with 1 key loading error(s)",
        "{st}"
    );
    assert_eq!(keys_as(&server, &vc).len(), 1);

    // The API reload is audited with its caller.
    drop(server);
    let out = run_signward(&["audit", "query", "--caller", "ops"], &d.join("data"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("\"reload\"") && l.contains("accepted")),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn high_watermark_is_the_chain_clock_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vc = bearer(&credential(
        d,
        &["--name", "vc", "--scope", "sign,public_keys"],
    ));
    let mon = bearer(&credential(d, &["--name", "mon", "--scope", "metrics"]));
    // No genesis time (the minimal test network): no cap, `{}` as Web3Signer says.
    let (keys, pw, _) = nimbus_keys(d, 1);
    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &strs(&keystore_args(&net, &keys, &pw, &[])));
    let r = get(&server, &vc, "/api/v1/eth2/highWatermark");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({}));
    assert_eq!(
        server
            .request("GET", "/api/v1/eth2/highWatermark", &[], b"")
            .status,
        401
    );
    assert_eq!(get(&server, &mon, "/api/v1/eth2/highWatermark").status, 403);
    drop(server);

    // Mainnet: the first epoch and slot past the window (2 epochs ahead by default).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vc = bearer(&credential(
        d,
        &["--name", "vc", "--scope", "sign,public_keys"],
    ));
    let server = Server::start_with_auth(d, &["--network", "mainnet"]);
    let v = get(&server, &vc, "/api/v1/eth2/highWatermark").json();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let slot_now = (now - 1_606_824_023) / 12;
    let epoch: u64 = v["epoch"].as_str().unwrap().parse().unwrap();
    let slot: u64 = v["slot"].as_str().unwrap().parse().unwrap();
    assert!(slot.abs_diff(slot_now + 2 * 32 + 1) <= 1, "{v}");
    assert!(epoch.abs_diff(slot_now / 32 + 3) <= 1, "{v}");
}

#[test]
fn keymanager_gaps_and_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let km = bearer(&credential(d, &["--name", "km", "--scope", "keymanager"]));
    let vc = bearer(&credential(d, &["--name", "vc", "--scope", "sign"]));
    let (keys, pw, pubkeys) = nimbus_keys(d, 2);
    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &strs(&keystore_args(&net, &keys, &pw, &[])));

    // derivation_path from each keystore's EIP-2335 `path`.
    let r = get(&server, &km, "/eth/v1/keystores");
    assert_eq!(r.status, 200);
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), pubkeys.len());
    for k in &data {
        let p = k["derivation_path"].as_str().unwrap();
        assert!(p.starts_with("m/12381/3600/"), "{k}");
        assert_eq!(k["readonly"], true);
    }
    assert!(data
        .iter()
        .any(|k| k["derivation_path"] == "m/12381/3600/161/0/0"));

    // Remote keys: signward manages none; an import answers `error` per key with the stable
    // code, a delete `not_found` per key; both 200 as the spec requires.
    let r = send(
        &server,
        "POST",
        &km,
        "/eth/v1/remotekeys",
        &json!({"remote_keys": [{"pubkey": pubkeys[0], "url": "https://remote.example"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["status"], "error");
    assert!(v["data"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("remote_keys_unsupported"));
    let r = send(
        &server,
        "DELETE",
        &km,
        "/eth/v1/remotekeys",
        &json!({"pubkeys": [pubkeys[0], pubkeys[1]]}),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["data"][1]["status"], "not_found");
    assert_eq!(
        get(&server, &km, "/eth/v1/remotekeys").json(),
        json!({"data": []})
    );
    // And it is still behind the keymanager scope.
    let r = send(
        &server,
        "POST",
        &vc,
        "/eth/v1/remotekeys",
        &json!({"remote_keys": []}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        server
            .request("DELETE", "/eth/v1/remotekeys", &[], b"{\"pubkeys\":[]}")
            .status,
        401
    );
    // The keys are untouched.
    assert_eq!(
        get(&server, &km, "/eth/v1/keystores").json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Each endpoint's parse error names its own body, never a sign request.
    for (method, path, needle) in [
        ("POST", "/eth/v1/keystores", "keystore import"),
        ("DELETE", "/eth/v1/keystores", "keystore delete"),
        ("POST", "/eth/v1/remotekeys", "remote key import"),
        ("DELETE", "/eth/v1/remotekeys", "remote key delete"),
    ] {
        let r = send(&server, method, &km, path, &json!({"nope": 1}));
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["code"], "malformed_body");
        let m = v["message"].as_str().unwrap();
        assert!(m.contains(needle), "{method} {path}: {m}");
        assert!(!m.contains("sign request"), "{method} {path}: {m}");
    }

    // 405 and 404 are JSON with a stable code. The gate comes first: a method a route does
    // not take is 405 for a credential with the route's scope, and 401/403 for anyone else.
    let r = server.request("PUT", "/eth/v1/keystores", &[("authorization", &km)], b"");
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["code"], "method_not_allowed");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "{r:?}"
    );
    let r = server.request(
        "GET",
        "/api/v1/eth2/sign/0x00",
        &[("authorization", &vc)],
        b"",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], "method_not_allowed");
    let r = server.request(
        "GET",
        "/api/v1/eth2/sign/0x00",
        &[("authorization", &km)],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "scope_denied");
    let r = server.request("PUT", "/eth/v1/keystores", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthorized");
    // The Keymanager spec: 401 when no token is found, 403 when one is found but is invalid.
    // Web3Signer's routes answer 401 for both, as its clients expect.
    let bad = format!("Bearer sw_{}", "0".repeat(64));
    let r = server.request("GET", "/eth/v1/keystores", &[("authorization", &bad)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["code"], "invalid_credential");
    assert!(r.header("www-authenticate").is_none());
    let r = server.request("GET", "/eth/v1/keystores", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let r = server.request(
        "GET",
        "/api/v1/eth2/publicKeys",
        &[("authorization", &bad)],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthorized");
    for auth in [km.as_str(), ""] {
        let r = server.request("GET", "/eth/v1/nothing", &[("authorization", auth)], b"");
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["code"], "not_found");
    }
    let r = server.request("POST", "/upcheck", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], "method_not_allowed");
}
