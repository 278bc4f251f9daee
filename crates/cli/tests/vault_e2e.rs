//! The sealed key vault through the real binary: the init ceremony and its refusals, unseal by
//! quorum over the admin API with every failure named, keys generated inside the boundary with
//! age backups that the `age` CLI opens, seal, tampered records, the Keymanager API with slashing
//! history in and out, unattended unseal, and kill -9 during rekey and rotate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

fn randao(epoch: u64) -> Value {
    json!({"type": "RANDAO_REVEAL",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "randao_reveal": {"epoch": epoch.to_string()}})
}

fn attestation(source: u64, target: u64) -> Value {
    json!({"type": "ATTESTATION",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": GVR},
           "attestation": {"slot": "1", "index": "0", "beacon_block_root": format!("0x{}", "11".repeat(32)),
               "source": {"epoch": source.to_string(), "root": format!("0x{}", "00".repeat(32))},
               "target": {"epoch": target.to_string(), "root": format!("0x{}", "00".repeat(32))}}})
}

#[test]
fn init_ceremony_unseal_generate_backup_seal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let r1 = age_identity(&d.join("op1.key"));
    write_secret(&d.join("op2.pass"), b"operator two passphrase\n");
    let env = [("OP3_PASS", "operator three passphrase")];
    let shares = d.join("shares");
    let base = [
        "init",
        "--data-dir",
        s(&data),
        "--out",
        s(&shares),
        "--kdf-memory-kib",
        "8192",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|x| x.to_string()).collect()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // Refusals: a quorum of one, too few protections, a short passphrase.
    let v = with(&[
        "--shares",
        "2",
        "--threshold",
        "1",
        "--share-to",
        &r1,
        "--share-to",
        &r1,
    ]);
    sw_err(&args(&v), &[], "threshold must be at least 2");
    let v = with(&["--shares", "3", "--threshold", "2", "--share-to", &r1]);
    sw_err(&args(&v), &[], "one protection per share");
    write_secret(&d.join("short.pass"), b"short");
    let v = with(&[
        "--shares",
        "2",
        "--threshold",
        "2",
        "--share-to",
        &r1,
        "--share-to",
        &format!("passphrase:file:{}", d.join("short.pass").display()),
    ]);
    sw_err(&args(&v), &[], "shorter than 12");
    // A world-readable passphrase file is refused.
    std::fs::write(d.join("open.pass"), b"a long enough passphrase").unwrap();
    std::fs::set_permissions(
        d.join("open.pass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let v = with(&[
        "--shares",
        "2",
        "--threshold",
        "2",
        "--share-to",
        &r1,
        "--share-to",
        &format!("passphrase:file:{}", d.join("open.pass").display()),
    ]);
    sw_err(&args(&v), &[], "passphrase");

    let v = with(&[
        "--shares",
        "3",
        "--threshold",
        "2",
        "--share-to",
        &r1,
        "--share-to",
        &format!("passphrase:file:{}", d.join("op2.pass").display()),
        "--share-to",
        "passphrase:env:OP3_PASS",
    ]);
    let printed = sw_ok(&args(&v), &env);
    let share_files: Vec<PathBuf> = printed.lines().map(PathBuf::from).collect();
    assert_eq!(share_files.len(), 3);
    for f in &share_files {
        let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(f).unwrap());
        assert_eq!(mode & 0o777, 0o600, "share files are owner-only");
    }
    assert!(s(&share_files[0]).ends_with(".age"));
    // A second init on the same vault is refused and writes nothing.
    let again_out = d.join("shares-again");
    let again = [
        "init",
        "--data-dir",
        s(&data),
        "--out",
        s(&again_out),
        "--shares",
        "2",
        "--threshold",
        "2",
        "--share-to",
        &r1,
        "--share-to",
        &r1,
    ];
    sw_err(&again, &[], "already exists");

    let net = minimal_network(d);
    let server = Server::start_with_auth(d, &["--network", s(&net)]);
    let admin = Admin::new(d, &server);
    let signer = format!(
        "Bearer {}",
        credential(d, &["--name", "vc", "--scope", "sign,public_keys"])
    );
    let monitor = format!(
        "Bearer {}",
        credential(d, &["--name", "mon", "--scope", "metrics"])
    );
    std::thread::sleep(Duration::from_millis(1200));

    let status: Value = serde_json::from_str(&sw_ok(&admin.args(&["status"]), &[])).unwrap();
    assert_eq!(status["state"], "sealed");
    assert_eq!(status["threshold"], 2);
    // Sealed: nothing signs, public keys are not served.
    let r = server.request(
        "GET",
        "/api/v1/eth2/publicKeys",
        &[("authorization", &signer)],
        b"",
    );
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("sealed")));
    let health = server.request("GET", "/healthcheck", &[("authorization", &monitor)], b"");
    assert_eq!(
        health.status, 503,
        "a sealed vault makes the signer not ready"
    );
    let vault_check = health.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "vault-check")
        .unwrap()
        .clone();
    assert_eq!(
        (
            vault_check["status"].as_str(),
            vault_check["data"]["state"].as_str()
        ),
        (Some("DOWN"), Some("sealed"))
    );

    // A share file others can read is refused before it is opened.
    let open_share = d.join("open-share.json");
    std::fs::copy(&share_files[1], &open_share).unwrap();
    std::fs::set_permissions(
        &open_share,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    sw_err(
        &admin.args(&[
            "unseal",
            "--share",
            s(&open_share),
            "--passphrase",
            &format!("file:{}", d.join("op2.pass").display()),
        ]),
        &[],
        "readable by group or others",
    );

    // Wrong passphrase, wrong identity: named errors, no secret echoed.
    write_secret(&d.join("wrong.pass"), b"not the passphrase at all");
    let out = sw_err(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[1]),
            "--passphrase",
            &format!("file:{}", d.join("wrong.pass").display()),
        ]),
        &[],
        "wrong passphrase",
    );
    assert!(!out.contains("not the passphrase at all"));
    age_identity(&d.join("stranger.key"));
    sw_err(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[0]),
            "--identity",
            s(&d.join("stranger.key")),
        ]),
        &[],
        "no age identity",
    );
    sw_err(
        &admin.args(&["unseal", "--share", s(&share_files[0])]),
        &[],
        "pass --identity",
    );

    // One share: 1 of 2, still sealed.
    let out = sw_ok(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[0]),
            "--identity",
            s(&d.join("op1.key")),
        ]),
        &[],
    );
    assert!(out.contains("1 of 2"), "{out}");
    sw_err(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[0]),
            "--identity",
            s(&d.join("op1.key")),
        ]),
        &[],
        "share_duplicate",
    );
    let r = server.sign(&format!("0x{}", "aa".repeat(48)), &randao(1));
    assert_eq!(r.status, 401);

    // A share of another vault is refused by name.
    let other = d.join("other");
    let o = sw_ok(
        &[
            "init",
            "--data-dir",
            s(&other),
            "--out",
            s(&d.join("other-shares")),
            "--shares",
            "2",
            "--threshold",
            "2",
            "--share-to",
            &r1,
            "--share-to",
            &r1,
        ],
        &[],
    );
    let foreign = PathBuf::from(o.lines().next().unwrap());
    sw_err(
        &admin.args(&[
            "unseal",
            "--share",
            s(&foreign),
            "--identity",
            s(&d.join("op1.key")),
        ]),
        &[],
        "share_wrong_vault",
    );

    // A forged share (right vault, altered value) fails the quorum check; progress resets.
    let ids = signward_vault::share::read_identities(&d.join("op1.key")).unwrap();
    let p3 = signward_vault::share::open_file(
        &share_files[2],
        || Ok(secrecy::SecretString::from("operator three passphrase")),
        Some(&ids),
    )
    .unwrap();
    let mut forged: Value = serde_json::from_slice(&p3.to_json()).unwrap();
    let mut value = hex::decode(forged["value"].as_str().unwrap()).unwrap();
    value[7] ^= 0x5a;
    forged["value"] = json!(hex::encode(&value));
    let admin_bearer = format!(
        "Bearer {}",
        std::fs::read_to_string(&admin.token_file).unwrap()
    );
    let r = server.request(
        "POST",
        "/admin/v1/vault/unseal",
        &[
            ("authorization", &admin_bearer),
            ("content-type", "application/json"),
        ],
        &serde_json::to_vec(&forged).unwrap(),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("quorum_mismatch"))
    );
    let status: Value = serde_json::from_str(&sw_ok(&admin.args(&["status"]), &[])).unwrap();
    assert_eq!(
        (status["state"].as_str(), status["submitted"].as_u64()),
        (Some("sealed"), Some(0))
    );
    // The unseal endpoint needs the admin scope.
    let r = server.request(
        "POST",
        "/admin/v1/vault/unseal",
        &[("authorization", &signer)],
        b"{}",
    );
    assert_eq!(r.status, 403);

    // Reset, then a real quorum (passphrase from env, passphrase from file).
    sw_ok(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[2]),
            "--passphrase",
            "env:OP3_PASS",
        ]),
        &env,
    );
    sw_ok(&admin.args(&["unseal", "--reset"]), &[]);
    sw_ok(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[2]),
            "--passphrase",
            "env:OP3_PASS",
        ]),
        &env,
    );
    let out = sw_ok(
        &admin.args(&[
            "unseal",
            "--share",
            s(&share_files[1]),
            "--passphrase",
            &format!("file:{}", d.join("op2.pass").display()),
        ]),
        &[],
    );
    assert!(out.contains("unsealed"), "{out}");

    // Keys generated inside the boundary, with age backups.
    let backup_recipient = age_identity(&d.join("backup.key"));
    let out = sw_ok(
        &admin.args(&[
            "keys",
            "generate",
            "--count",
            "2",
            "--backup-to",
            &backup_recipient,
            "--backup-dir",
            s(&d.join("backups")),
        ]),
        &[],
    );
    let pks: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(pks.len(), 2);
    let r = server.request(
        "GET",
        "/api/v1/eth2/publicKeys",
        &[("authorization", &signer)],
        b"",
    );
    assert_eq!(r.status, 200);
    let listed: Vec<String> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(listed, pks);
    let sign = |srv: &Server, auth: &str, pk: &str, body: &Value| {
        srv.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            &serde_json::to_vec(body).unwrap(),
        )
    };
    let r = sign(&server, &signer, &pks[0], &randao(7));
    assert_eq!(r.status, 200, "{}", r.text());
    let signature = r.json()["signature"].as_str().unwrap().to_string();

    // The backup opens with the standard age CLI to a key config that signs identically.
    let mut secret_hex = String::new();
    if age_cli() {
        let out = Command::new("age")
            .args([
                "-d",
                "-i",
                s(&d.join("backup.key")),
                s(&d.join("backups").join(format!("{}.age", pks[0]))),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "age -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(yaml.contains("type: file-raw"));
        secret_hex = yaml
            .lines()
            .find(|l| l.starts_with("privateKey"))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string();
        let restored = d.join("restored");
        std::fs::create_dir_all(restored.join("configs")).unwrap();
        write_secret(&restored.join("configs/key.yaml"), yaml.as_bytes());
        std::fs::copy(&net, restored.join("net.yaml")).unwrap();
        let second = Server::start(
            &restored,
            &[
                "--network",
                s(&restored.join("net.yaml")),
                "--key-config-path",
                s(&restored.join("configs")),
                "--allow-raw-keys",
            ],
        );
        let r = second.sign(&pks[0], &randao(7));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json()["signature"].as_str().unwrap(),
            signature,
            "the restored backup signs identically"
        );
    }

    // Seal: the key stops signing at once.
    sw_ok(&admin.args(&["seal"]), &[]);
    let r = sign(&server, &signer, &pks[0], &randao(8));
    assert_eq!((r.status, r.json()["code"].as_str()), (503, Some("sealed")));
    assert!(server.log_text().contains("keys_wiped=2"));

    // Every vault event is audited.
    let audit =
        String::from_utf8_lossy(&run_signward(&["audit", "query"], &data).stdout).into_owned();
    for needle in [
        "\"share_accepted\"",
        "\"share_refused\"",
        "\"unsealed\"",
        "\"sealed\"",
        "\"initialized\"",
        "\"unseal_reset\"",
    ] {
        assert!(audit.contains(needle), "audit lacks {needle}");
    }
    assert!(audit.contains(&pks[0]), "key generation audited");

    // Nothing secret reached the log or the audit: passphrases, share values, key secrets.
    let log = server.log_text();
    let share_hex = hex::encode(&*p3.value);
    for secret in [
        "operator two passphrase",
        "operator three passphrase",
        "not the passphrase at all",
        share_hex.as_str(),
        &share_hex[2..],
        secret_hex.trim_start_matches("0x"),
    ] {
        if secret.is_empty() {
            continue;
        }
        assert!(!log.contains(secret), "server log leaks a secret");
        assert!(!audit.contains(secret), "audit leaks a secret");
    }
    drop(server);

    // A record swapped in the database is caught at unseal, by key id; nothing loads.
    let conn = rusqlite::Connection::open(data.join("vault.sqlite")).unwrap();
    conn.execute(
        "UPDATE vault_keys SET nonce = (SELECT nonce FROM vault_keys WHERE key_id = ?2), ciphertext = (SELECT ciphertext FROM vault_keys WHERE key_id = ?2) WHERE key_id = ?1",
        [&pks[0], &pks[1]],
    )
    .unwrap();
    let server = Server::start_with_auth(d, &["--network", s(&net)]);
    sw_ok(
        &admin_for(
            &server,
            &admin,
            &[
                "unseal",
                "--share",
                s(&share_files[2]),
                "--passphrase",
                "env:OP3_PASS",
            ],
        ),
        &env,
    );
    sw_err(
        &admin_for(
            &server,
            &admin,
            &[
                "unseal",
                "--share",
                s(&share_files[0]),
                "--identity",
                s(&d.join("op1.key")),
            ],
        ),
        &[],
        "record_tampered",
    );
    let status: Value =
        serde_json::from_str(&sw_ok(&admin_for(&server, &admin, &["status"]), &[])).unwrap();
    assert_eq!(status["state"], "sealed");
    assert!(
        server.log_text().contains(&pks[0]),
        "the log names the tampered record"
    );
}

fn admin_for<'a>(server: &Server, admin: &'a Admin, cmd: &[&'a str]) -> Vec<&'a str> {
    let url: &'static str = Box::leak(format!("http://127.0.0.1:{}", server.port).into_boxed_str());
    let mut v = cmd.to_vec();
    v.extend(["--url", url, "--token-file", s(&admin.token_file)]);
    v
}

#[test]
fn keymanager_imports_into_the_vault_and_deletes_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (id, shares) = init_age(d, &data, 2, 2);
    let (file_keys, file_pw, file_pks) = nimbus_keys(d, 1);
    let net = minimal_network(d);
    let mut args = vec![
        "--network".to_string(),
        s(&net).into(),
        "--keystores-path".into(),
        s(&file_keys).into(),
        "--keystores-password-file".into(),
        s(&file_pw).into(),
    ];
    args.extend(unattended(&id, &shares));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with_auth(d, &argv);
    assert!(server.log_text().contains("vault unsealed"));
    let km = format!(
        "Bearer {}",
        credential(d, &["--name", "km", "--scope", "keymanager"])
    );
    let vc = format!(
        "Bearer {}",
        credential(d, &["--name", "vc", "--scope", "sign"])
    );
    std::thread::sleep(Duration::from_millis(1200));

    // Two fresh keystores (cheap PBKDF2 for test speed) and a history for the first.
    write_secret(&d.join("ks.pass"), b"keystore password");
    sw_ok(
        &[
            "keystore",
            "create",
            "--out",
            s(&d.join("ks")),
            "--password-file",
            s(&d.join("ks.pass")),
            "--count",
            "2",
            "--kdf",
            "pbkdf2",
            "--pbkdf2-iterations",
            "2048",
        ],
        &[],
    );
    let ks_files = files(&d.join("ks"));
    let keystores: Vec<String> = ks_files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let pks: Vec<String> = keystores
        .iter()
        .map(|k| {
            format!(
                "0x{}",
                serde_json::from_str::<Value>(k).unwrap()["pubkey"]
                    .as_str()
                    .unwrap()
            )
        })
        .collect();
    let history = json!({"metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR},
        "data": [{"pubkey": pks[0], "signed_blocks": [{"slot": "100"}], "signed_attestations": [{"source_epoch": "5", "target_epoch": "10"}]},
                 {"pubkey": format!("0x{}", "ab".repeat(48)), "signed_blocks": [{"slot": "1"}], "signed_attestations": []}]});
    let post = |body: &Value| {
        server.request(
            "POST",
            "/eth/v1/keystores",
            &[("authorization", &km), ("content-type", "application/json")],
            &serde_json::to_vec(body).unwrap(),
        )
    };
    let r = post(
        &json!({"keystores": keystores, "passwords": ["keystore password", "keystore password"], "slashing_protection": history.to_string()}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"],
        json!([{"status": "imported", "message": ""}, {"status": "imported", "message": ""}])
    );
    let r = post(&json!({"keystores": [keystores[0]], "passwords": ["keystore password"]}));
    assert_eq!(r.json()["data"][0]["status"], "duplicate");
    let r = post(&json!({"keystores": [keystores[1]], "passwords": ["wrong password"]}));
    assert_eq!(r.json()["data"][0]["status"], "error");
    assert!(!server.log_text().contains("keystore password"));
    // Keymanager needs its scope.
    let r = server.request("GET", "/eth/v1/keystores", &[("authorization", &vc)], b"");
    assert_eq!(r.status, 403);

    let r = server.request("GET", "/eth/v1/keystores", &[("authorization", &km)], b"");
    let listed = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    let ro = |pk: &str| {
        listed
            .iter()
            .find(|k| k["validating_pubkey"] == pk)
            .unwrap()["readonly"]
            .as_bool()
            .unwrap()
    };
    assert!(ro(&file_pks[0]) && !ro(&pks[0]) && !ro(&pks[1]));
    let r = server.request("GET", "/eth/v1/remotekeys", &[("authorization", &km)], b"");
    assert_eq!(r.json(), json!({"data": []}));

    // The imported history protects at once; new messages sign.
    let sign = |pk: &str, body: &Value| {
        server.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[("authorization", &vc), ("content-type", "application/json")],
            &serde_json::to_vec(body).unwrap(),
        )
    };
    assert_eq!(sign(&pks[0], &attestation(4, 9)).status, 412);
    assert_eq!(sign(&pks[0], &attestation(10, 11)).status, 200);
    assert_eq!(sign(&pks[1], &attestation(1, 2)).status, 200);

    // Delete: the vault key, the read-only file key (which has history), and unknown keys.
    assert_eq!(sign(&file_pks[0], &attestation(1, 2)).status, 200);
    let unknown = format!("0x{}", "cd".repeat(48));
    let r = server.request(
        "DELETE",
        "/eth/v1/keystores",
        &[("authorization", &km), ("content-type", "application/json")],
        &serde_json::to_vec(
            &json!({"pubkeys": [pks[0], file_pks[0], unknown, format!("0x{}", "ab".repeat(48))]}),
        )
        .unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let statuses: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["deleted", "error", "not_found", "not_found"]);
    let doc: Value = serde_json::from_str(v["slashing_protection"].as_str().unwrap()).unwrap();
    let entry = doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pubkey"] == pks[0].as_str())
        .expect("deleted key's history returned");
    assert!(
        !doc["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["pubkey"] == file_pks[0].as_str()),
        "history only for deleted or not_active keys"
    );
    assert!(entry["signed_attestations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["target_epoch"] == "11"));
    assert_eq!(
        sign(&pks[0], &attestation(11, 12)).status,
        404,
        "a deleted key no longer signs"
    );
    assert_eq!(
        sign(&file_pks[0], &randao(1)).status,
        200,
        "the read-only key was not deleted"
    );
    // The history was also kept on disk before the record went.
    assert_eq!(files(&data.join("deleted-keys")).len(), 1);

    // The CLI import path: progress, then the key signs.
    let admin = Admin::new(d, &server);
    pbkdf2_keystores(d, "ks2", b"second password", 3);
    let out = sw(
        &admin.args(&[
            "keys",
            "import",
            "--keystores-path",
            s(&d.join("ks2")),
            "--keystores-password-file",
            s(&d.join("ks2.pass")),
            "--batch",
            "2",
        ]),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 imported"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("importing: 3/3"));
    let list = sw_ok(&admin.args(&["keys", "list"]), &[]);
    assert_eq!(list.lines().count(), 1 + 1 + 3, "{list}");

    // Disable stops signing without deleting; enable restores it.
    sw_ok(&admin.args(&["keys", "disable", &pks[1]]), &[]);
    assert_eq!(sign(&pks[1], &attestation(2, 3)).status, 404);
    sw_ok(&admin.args(&["keys", "enable", &pks[1]]), &[]);
    assert_eq!(sign(&pks[1], &attestation(2, 3)).status, 200);
    sw_err(
        &admin.args(&["keys", "disable", &file_pks[0]]),
        &[],
        "read_only_key",
    );

    // After a restart the vault holds exactly what it should.
    drop(server);
    let server = Server::start_with_auth(d, &argv);
    std::thread::sleep(Duration::from_millis(300));
    let r = server.request("GET", "/eth/v1/keystores", &[("authorization", &km)], b"");
    let now: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["validating_pubkey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(now.len(), 1 + 1 + 3);
    assert!(!now.contains(&pks[0]) && now.contains(&pks[1]));
}

const ROT_PASS: &str = "rotation test passphrase";

/// Open the vault offline with `shares` (a quorum) and return every key's id and secret.
fn vault_contents(
    data: &Path,
    id: &Path,
    shares: &[PathBuf],
) -> Result<Vec<(String, Vec<u8>)>, signward_vault::VaultError> {
    let ids = signward_vault::share::read_identities(id).unwrap();
    let payloads: Vec<_> = shares
        .iter()
        .map(|f| {
            signward_vault::share::open_file(
                f,
                || Ok(secrecy::SecretString::from(ROT_PASS)),
                Some(&ids),
            )
        })
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = signward_vault::VaultStore::open(&format!(
            "sqlite:{}",
            data.join("vault.sqlite").display()
        ))
        .await?;
        let v = signward_vault::Vault::new(store);
        for p in payloads {
            v.submit_share(p).await?;
        }
        let mut out: Vec<(String, Vec<u8>)> = v
            .open_all()
            .await?
            .into_iter()
            .map(|k| (k.stored.key_id.clone(), k.secret.to_vec()))
            .collect();
        out.sort();
        Ok(out)
    })
}

/// kill -9 at random points of `rekey` and `rotate`: afterwards either the old or the new share
/// set opens the vault, and every key is still there, byte for byte.
#[test]
fn rekey_and_rotate_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (id, mut current) = init_age(d, &data, 2, 3);
    let net = minimal_network(d);
    {
        let mut args = vec!["--network".to_string(), s(&net).into()];
        args.extend(unattended(&id, &current[..2]));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start_with_auth(d, &argv);
        let admin = Admin::new(d, &server);
        sw_ok(&admin.args(&["keys", "generate", "--count", "5"]), &[]);
    }
    let before = vault_contents(&data, &id, &current[..2]).unwrap();
    assert_eq!(before.len(), 5);
    let recipient = {
        use std::str::FromStr;
        let text = std::fs::read_to_string(&id).unwrap();
        age::x25519::Identity::from_str(
            text.lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY"))
                .unwrap(),
        )
        .unwrap()
        .to_public()
        .to_string()
    };
    let (mut old_kept, mut new_won, mut files_but_no_commit) = (0, 0, 0);
    // 24 kill points spread over 0–600 ms; then, if none reached the commit (a slow or loaded
    // machine), rounds with a growing delay (1 s, 2 s, … 64 s) until one completes.
    for round in 0..31u64 {
        if round >= 24 && new_won > 0 {
            break;
        }
        let op = if round % 2 == 0 { "rotate" } else { "rekey" };
        let out_dir = d.join(format!("round-{round}"));
        let mut args = vec![
            op.to_string(),
            "--data-dir".into(),
            s(&data).into(),
            "--identity".into(),
            s(&id).into(),
            "--out".into(),
            s(&out_dir).into(),
            "--shares".into(),
            "3".into(),
            "--threshold".into(),
            "2".into(),
        ];
        for c in &current[..2] {
            args.push("--share".into());
            args.push(s(c).into());
        }
        for _ in 0..3 {
            args.push("--share-to".into());
            args.push(recipient.clone());
        }
        // Shares 2 and 3 under a passphrase (argon2id, 64 MiB), so writing the new share files
        // takes long enough for kills to land mid-write as well as before and after the commit.
        args.truncate(args.len() - 4);
        args.extend(
            [
                "--share-to",
                "passphrase:env:ROT_PASS",
                "--share-to",
                "passphrase:env:ROT_PASS",
            ]
            .map(String::from),
        );
        args.extend(
            [
                "--passphrase",
                "env:ROT_PASS",
                "--passphrase",
                "env:ROT_PASS",
            ]
            .map(String::from),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_signward"))
            .args(&args)
            .env("ROT_PASS", ROT_PASS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere between start-up and completion (a pseudo-random point per round).
        let delay = if round < 24 {
            Duration::from_micros((round * 7919 % 24) * 25_000)
        } else {
            Duration::from_secs(1 << (round - 24))
        };
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        match vault_contents(&data, &id, &current[..2]) {
            Ok(keys) => {
                assert_eq!(
                    keys, before,
                    "round {round}: old shares open the vault with every key"
                );
                old_kept += 1;
                let written = if out_dir.exists() {
                    files(&out_dir).len()
                } else {
                    0
                };
                if written > 0 {
                    files_but_no_commit += 1;
                }
                eprintln!("round {round} ({op}, kill at {delay:?}): old shares kept; {written} new share files");
            }
            Err(signward_vault::VaultError::ShareStale) => {
                let new: Vec<PathBuf> = files(&out_dir);
                assert_eq!(
                    new.len(),
                    3,
                    "round {round}: the new share set was durable before it became current"
                );
                let keys =
                    vault_contents(&data, &id, &new[1..]).expect("new shares open the vault");
                assert_eq!(keys, before, "round {round}: every key survives");
                current = new;
                new_won += 1;
            }
            Err(e) => panic!("round {round} ({op}): vault unusable after kill -9: {e}"),
        }
    }
    eprintln!("kill -9 during rekey/rotate: old share set kept {old_kept} times ({files_but_no_commit} with new share files already written), new set committed {new_won} times");
    assert!(
        new_won > 0,
        "no round completed; the kill points never reached the commit"
    );
}

/// Two instances sharing PostgreSQL: each unseals on its own; a key generated on one signs on the
/// other within a poll interval; a Keymanager delete on one stops the other before it returns.
#[test]
fn postgres_instances_share_the_vault() {
    let Some(admin_url) = pg_admin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db_url, db_name) = pg_create(&admin_url, "vault");
    let data = d.join("data");
    let (id, shares) = init_age_pg(d, &data, &db_url);
    let net = minimal_network(d);
    let mut args = vec![
        "--network".to_string(),
        s(&net).into(),
        "--slashing-protection-db-url".into(),
        db_url.clone(),
    ];
    args.extend(unattended(&id, &shares));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start_with_auth(d, &argv);
    let b = Server::start_with_auth(d, &argv);
    let admin = Admin::new(d, &a);
    let km = format!(
        "Bearer {}",
        credential(d, &["--name", "km", "--scope", "keymanager"])
    );
    let vc = format!(
        "Bearer {}",
        credential(d, &["--name", "vc", "--scope", "sign"])
    );
    std::thread::sleep(Duration::from_millis(1200));
    let out = sw_ok(&admin.args(&["keys", "generate", "--count", "1"]), &[]);
    let pk = out.split_whitespace().next().unwrap().to_string();
    let sign = |srv: &Server, body: &Value| {
        srv.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pk}"),
            &[("authorization", &vc), ("content-type", "application/json")],
            &serde_json::to_vec(body).unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while sign(&b, &randao(1)).status != 200 {
        assert!(
            Instant::now() < deadline,
            "instance B never loaded the key generated on A"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sign(&b, &attestation(1, 2)).status, 200);
    let r = a.request(
        "DELETE",
        "/eth/v1/keystores",
        &[("authorization", &km), ("content-type", "application/json")],
        &serde_json::to_vec(&json!({"pubkeys": [pk]})).unwrap(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["status"], "deleted");
    let doc: Value =
        serde_json::from_str(r.json()["slashing_protection"].as_str().unwrap()).unwrap();
    assert_eq!(
        doc["data"][0]["signed_attestations"][0]["target_epoch"], "2",
        "B's signature is in the exported history"
    );
    // B may still hold the key until its next vault poll, but the slashing database refuses
    // it from the moment the delete disabled it: nothing more is signed, by construction.
    for body in [attestation(2, 3), randao(2)] {
        let r = sign(&b, &body);
        let code = r.json()["code"].as_str().unwrap_or("").to_string();
        assert!(
            (r.status, code.as_str()) == (412, "validator_disabled")
                || (r.status, code.as_str()) == (404, "unknown_key"),
            "B stopped signing before the delete returned: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(sign(&a, &attestation(2, 3)).status, 404);
    drop(a);
    drop(b);
    pg_drop(&admin_url, &db_name);
}
