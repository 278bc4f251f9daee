//! The Web3Signer-compatible loader: keystore directories, password directories and files,
//! key-config YAML, raw keys, permissions, duplicates, and failure isolation.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use signward_keys::bls::BlsKeypair;
use signward_keys::keystore::{Kdf, KdfLimits, Keystore};
use signward_keys::loader::{discover, load_all, KeySources, LoadReport};

fn write_keystore(dir: &Path, name: &str, key: &BlsKeypair, password: &str) {
    let ks = Keystore::encrypt(
        key,
        &SecretString::from(password.to_string()),
        Kdf::pbkdf2(2),
        "",
    )
    .unwrap();
    write_secret(&dir.join(name), &serde_json::to_string(&ks).unwrap());
}

fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn load(sources: &KeySources) -> LoadReport {
    load_all(
        discover(sources),
        Some(2),
        KdfLimits::default(),
        Duration::from_secs(60),
        |_| {},
    )
}

fn failure_classes(r: &LoadReport) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = r
        .failures
        .iter()
        .map(|f| (f.origin.clone(), f.error.class()))
        .collect();
    v.sort();
    v
}

#[test]
fn keystores_with_password_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, pw) = (tmp.path().join("ks"), tmp.path().join("pw"));
    std::fs::create_dir_all(&ks).unwrap();
    std::fs::create_dir_all(&pw).unwrap();
    let keys: Vec<_> = (0..4).map(|_| BlsKeypair::generate()).collect();
    for (i, k) in keys.iter().enumerate() {
        write_keystore(&ks, &format!("key{i}.json"), k, &format!("pass{i}"));
    }
    write_secret(&pw.join("key0.txt"), "pass0\n");
    write_secret(&pw.join("key1.txt"), "zq-not-the-password");
    // key2 has no password file; key3's password file is world-readable.
    std::fs::write(pw.join("key3.txt"), "pass3").unwrap();
    std::fs::set_permissions(pw.join("key3.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(ks.join("notes.txt"), "ignored").unwrap();
    write_secret(&ks.join("broken.json"), "{not json");

    let r = load(&KeySources {
        keystores_path: Some(ks),
        keystores_passwords_path: Some(pw),
        ..Default::default()
    });
    assert_eq!(r.loaded.len(), 1);
    assert_eq!(r.loaded[0].keypair.public_key(), keys[0].public_key());
    let expected: Vec<(String, &str)> = vec![
        ("broken.json".into(), "missing_password"),
        ("key1.json".into(), "checksum_mismatch"),
        ("key2.json".into(), "missing_password"),
        ("key3.json".into(), "insecure_permissions"),
    ];
    assert_eq!(failure_classes(&r), expected);
    // Nothing about a failure mentions a password.
    for f in &r.failures {
        let text = format!("{} {:?}", f.error, f.error);
        for secret in ["pass0", "pass1", "pass3", "zq-not-the-password"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn single_password_file_and_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = tmp.path().join("ks");
    std::fs::create_dir_all(&ks).unwrap();
    let k = BlsKeypair::generate();
    write_keystore(&ks, "a.json", &k, "same");
    write_keystore(&ks, "b.json", &k, "same");
    let pwf = tmp.path().join("password.txt");
    write_secret(&pwf, "same");
    let r = load(&KeySources {
        keystores_path: Some(ks),
        keystores_password_file: Some(pwf),
        ..Default::default()
    });
    assert_eq!(r.loaded.len(), 1);
    assert_eq!(r.loaded[0].origin, "a.json");
    assert_eq!(
        failure_classes(&r),
        vec![("b.json".to_string(), "duplicate_key")]
    );
}

#[test]
fn key_configs_keystore_and_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    let k1 = BlsKeypair::generate();
    let k2 = BlsKeypair::generate();
    write_keystore(tmp.path(), "k1.json", &k1, "p1");
    write_secret(&tmp.path().join("k1.txt"), "p1");
    write_secret(
        &cfg.join("multi.yaml"),
        &format!(
            "type: file-keystore\nkeyType: BLS\nkeystoreFile: ../k1.json\nkeystorePasswordFile: ../k1.txt\n---\n\
             type: file-raw\nkeyType: BLS\nprivateKey: \"0x{}\"\n---\ntype: aws-kms\n",
            hex::encode(k2.dangerous_secret_bytes().as_ref())
        ),
    );
    let sources = KeySources {
        key_config_path: Some(cfg.clone()),
        ..Default::default()
    };
    let r = load(&sources);
    assert_eq!(r.loaded.len(), 1);
    assert_eq!(
        failure_classes(&r),
        vec![
            ("multi.yaml#1".to_string(), "raw_keys_not_allowed"),
            ("multi.yaml#2".to_string(), "unsupported_key_config"),
        ]
    );
    let r = load(&KeySources {
        allow_raw_keys: true,
        ..sources.clone()
    });
    assert_eq!(r.loaded.len(), 2);
    assert!(r
        .loaded
        .iter()
        .any(|k| k.raw && k.keypair.public_key() == k2.public_key()));

    // A group-readable config (it may hold a raw key) is refused as a whole.
    std::fs::set_permissions(
        cfg.join("multi.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let r = load(&sources);
    assert_eq!(r.loaded.len(), 0);
    assert_eq!(
        failure_classes(&r),
        vec![("multi.yaml".to_string(), "insecure_permissions")]
    );
}

#[test]
fn missing_directory_is_a_failure_not_a_panic() {
    let r = load(&KeySources {
        keystores_path: Some("/nonexistent/signward".into()),
        ..Default::default()
    });
    assert_eq!(r.loaded.len(), 0);
    assert_eq!(r.failures.len(), 1);
}
