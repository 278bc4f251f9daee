//! Conformance: EIP-2335 keystores (ERC vectors, Web3Signer's valid and invalid keystores,
//! Nimbus' cheap keystores), password normalisation, and the Ethereum BLS sign/verify vectors.
//! Vector files are copied from `../shared/vectors` into `tests/vectors` (sources noted there).

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use signward_core::bytes::Root;
use signward_keys::bls::{verify, BlsKeypair};
use signward_keys::keystore::{Kdf, KdfLimits, Keystore};
use signward_keys::password::normalize;
use signward_keys::KeyError;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(vectors().join(rel)).unwrap()).unwrap()
}

fn keystore(rel: &str) -> Keystore {
    Keystore::from_json(&std::fs::read(vectors().join(rel)).unwrap()).unwrap()
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn secret_hex(k: &BlsKeypair) -> String {
    format!("0x{}", hex::encode(k.dangerous_secret_bytes().as_ref()))
}

#[test]
fn erc2335_scrypt_and_pbkdf2_vectors_decrypt() {
    for name in ["scrypt", "pbkdf2"] {
        let exp = json(&format!("eip2335/{name}.expected.json"));
        let ks = keystore(&format!("eip2335/{name}.keystore.json"));
        let k = ks
            .decrypt(
                &pw(exp["password"].as_str().unwrap()),
                &KdfLimits::default(),
            )
            .unwrap();
        assert_eq!(secret_hex(&k), exp["secret"].as_str().unwrap());
        assert_eq!(k.public_key().to_hex(), exp["pubkey"].as_str().unwrap());
    }
}

#[test]
fn nimbus_cheap_keystores_decrypt() {
    let exp = json("eip2335/nimbus-eth2/expected.json");
    for case in exp["cases"].as_array().unwrap() {
        let ks = keystore(&format!(
            "eip2335/nimbus-eth2/{}",
            case["keystore_file"].as_str().unwrap()
        ));
        let k = ks
            .decrypt(
                &pw(case["password"].as_str().unwrap()),
                &KdfLimits::default(),
            )
            .unwrap();
        assert_eq!(secret_hex(&k), case["secret"].as_str().unwrap());
        assert_eq!(k.public_key().to_hex(), case["pubkey"].as_str().unwrap());
    }
}

#[test]
fn web3signer_keystores_decrypt_or_are_rejected_with_the_right_error() {
    let exp = json("eip2335/web3signer/expectations.json");
    let password = exp["password"].as_str().unwrap();
    for f in exp["must_decrypt"].as_array().unwrap() {
        let ks = keystore(&format!("eip2335/web3signer/{}", f.as_str().unwrap()));
        let k = ks.decrypt(&pw(password), &KdfLimits::default()).unwrap();
        assert_eq!(secret_hex(&k), exp["secret"].as_str().unwrap());
        assert!(matches!(
            ks.decrypt(&pw("invalidpassword"), &KdfLimits::default()),
            Err(KeyError::ChecksumMismatch)
        ));
    }
    for case in exp["must_reject_on_load"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(vectors().join("eip2335/web3signer").join(file)).unwrap();
        let err = match Keystore::from_json(&bytes) {
            Err(e) => e,
            Ok(ks) => ks
                .decrypt(&pw(password), &KdfLimits::default())
                .err()
                .unwrap_or_else(|| panic!("{file} decrypted")),
        };
        let expected_class = match file {
            "v3TestVector.json"
            | "unsupportedChecksumFunction.json"
            | "unsupportedCipherFunction.json"
            | "unsupportedKdfFunction.json"
            | "unsupportedPBKDF2Prf.json" => "unsupported_keystore",
            _ => "malformed_keystore",
        };
        assert_eq!(err.class(), expected_class, "{file}: {err}");
    }
}

#[test]
fn web3signer_encrypt_vectors_are_reproduced() {
    let exp = json("eip2335/web3signer/expectations.json");
    let secret = hex::decode(&exp["secret"].as_str().unwrap()[2..]).unwrap();
    let key = BlsKeypair::from_secret_bytes(&secret).unwrap();
    for v in exp["encrypt_vectors"].as_array().unwrap() {
        let k = &v["kdf"];
        let salt = hex::decode(k["salt"].as_str().unwrap()).unwrap();
        let kdf = match k["function"].as_str().unwrap() {
            "scrypt" => Kdf::Scrypt {
                dklen: 32,
                n: k["n"].as_u64().unwrap(),
                r: k["r"].as_u64().unwrap() as u32,
                p: k["p"].as_u64().unwrap() as u32,
                salt,
            },
            _ => Kdf::Pbkdf2 {
                dklen: 32,
                c: k["c"].as_u64().unwrap() as u32,
                salt,
            },
        };
        let iv: [u8; 16] = hex::decode(v["iv"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let ks =
            Keystore::encrypt_with_iv(&key, &pw(exp["password"].as_str().unwrap()), kdf, &iv, "")
                .unwrap();
        assert_eq!(
            ks.crypto.checksum.message,
            v["expected_checksum"].as_str().unwrap()
        );
        assert_eq!(
            ks.crypto.cipher.message,
            v["expected_cipher_message"].as_str().unwrap()
        );
    }
}

#[test]
fn password_normalisation_vectors() {
    let v = json("eip2335/password_normalization.json");
    for case in v["cases"].as_array().unwrap() {
        let out = normalize(&pw(case["input"].as_str().unwrap()));
        assert_eq!(
            hex::encode(out.expose_secret()),
            case["expected_utf8_hex"].as_str().unwrap(),
            "{}",
            case["source"]
        );
    }
}

fn cheap() -> (Keystore, String) {
    let exp = json("eip2335/nimbus-eth2/expected.json");
    let case = &exp["cases"][0];
    (
        keystore("eip2335/nimbus-eth2/keystore1.json"),
        case["password"].as_str().unwrap().to_string(),
    )
}

#[test]
fn negative_paths_have_distinct_errors() {
    let limits = KdfLimits::default();
    let (ks, password) = cheap();
    // Wrong password.
    assert!(matches!(
        ks.decrypt(&pw("wrong"), &limits),
        Err(KeyError::ChecksumMismatch)
    ));
    // Tampered ciphertext: the checksum covers it.
    let mut t = ks.clone();
    let mut c = hex::decode(&t.crypto.cipher.message).unwrap();
    c[0] ^= 1;
    t.crypto.cipher.message = hex::encode(c);
    assert!(matches!(
        t.decrypt(&pw(&password), &limits),
        Err(KeyError::ChecksumMismatch)
    ));
    // Corrupted checksum value, and a checksum that is not even 32 bytes.
    let mut t = ks.clone();
    t.crypto.checksum.message = "00".repeat(32);
    assert!(matches!(
        t.decrypt(&pw(&password), &limits),
        Err(KeyError::ChecksumMismatch)
    ));
    t.crypto.checksum.message = "00".repeat(31);
    assert!(matches!(
        t.decrypt(&pw(&password), &limits),
        Err(KeyError::MalformedKeystore(_))
    ));
    // Declared pubkey of another key.
    let mut t = ks.clone();
    t.pubkey = Some(hex::encode(BlsKeypair::generate().public_key().0));
    assert!(matches!(
        t.decrypt(&pw(&password), &limits),
        Err(KeyError::PubkeyMismatch)
    ));
    // Absent pubkey is allowed.
    let mut t = ks.clone();
    t.pubkey = None;
    assert!(t.decrypt(&pw(&password), &limits).is_ok());
}

#[test]
fn hostile_kdf_parameters_are_refused_before_any_work() {
    let limits = KdfLimits::default();
    let (ks, password) = cheap();
    let set = |f: &dyn Fn(&mut Value)| {
        let mut t = ks.clone();
        f(&mut t.crypto.kdf.params);
        t.decrypt(&pw(&password), &limits).err().map(|e| e.class())
    };
    // PBKDF2 with 2^31 iterations would take many minutes.
    assert_eq!(
        set(&|p| p["c"] = (1u64 << 31).into()),
        Some("kdf_too_expensive")
    );
    assert_eq!(
        set(&|p| p["c"] = (1u64 << 40).into()),
        Some("kdf_too_expensive")
    );
    assert_eq!(set(&|p| p["c"] = 0.into()), Some("malformed_keystore"));
    assert_eq!(set(&|p| p["dklen"] = 16.into()), Some("malformed_keystore"));
    assert_eq!(
        set(&|p| p["dklen"] = 100000.into()),
        Some("malformed_keystore")
    );
    assert_eq!(
        set(&|p| p["salt"] = "ab".repeat(2000).into()),
        Some("malformed_keystore")
    );
    // scrypt asking for 2^30 · 8 · 128 bytes = 1 TiB, or enormous parallelism.
    let scrypt = |n: u64, r: u64, p: u64| {
        let mut t = ks.clone();
        t.crypto.kdf.function = "scrypt".into();
        t.crypto.kdf.params = serde_json::json!({
            "dklen": 32, "n": n, "r": r, "p": p, "salt": "00".repeat(32)
        });
        t.decrypt(&pw(&password), &limits).err().map(|e| e.class())
    };
    assert_eq!(scrypt(1 << 30, 8, 1), Some("kdf_too_expensive"));
    assert_eq!(scrypt(1 << 18, 1 << 20, 1), Some("kdf_too_expensive"));
    assert_eq!(scrypt(1 << 18, 8, 1 << 20), Some("kdf_too_expensive"));
    assert_eq!(scrypt(1000, 8, 1), Some("malformed_keystore"));
    assert_eq!(scrypt(1 << 18, 8, 1 << 40), Some("kdf_too_expensive"));
}

#[test]
fn encrypt_decrypt_round_trip_and_no_secret_in_errors() {
    let key = BlsKeypair::generate();
    let ks = Keystore::encrypt(
        &key,
        &pw("correct horse"),
        Kdf::pbkdf2(16),
        "m/12381/3600/0/0/0",
    )
    .unwrap();
    let back = ks
        .decrypt(&pw("correct horse"), &KdfLimits::default())
        .unwrap();
    assert_eq!(back.public_key(), key.public_key());
    let err = ks.decrypt(&pw("nope"), &KdfLimits::default()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("nope"));
    assert!(!text.contains(&hex::encode(key.dangerous_secret_bytes().as_ref())));
}

fn hexarg(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[test]
fn bls_sign_vectors() {
    let dir = vectors().join("bls/json/sign");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let v: Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        let sk = hexarg(&v["input"]["privkey"]);
        let msg: [u8; 32] = hexarg(&v["input"]["message"]).try_into().unwrap();
        match BlsKeypair::from_secret_bytes(&sk) {
            Ok(k) => assert_eq!(k.sign(&Root::from(msg)).0.to_vec(), hexarg(&v["output"])),
            Err(_) => assert!(v["output"].is_null()),
        }
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn bls_verify_vectors() {
    let dir = vectors().join("bls/json/verify");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let i = &v["input"];
        let got = verify(
            &hexarg(&i["pubkey"]),
            &hexarg(&i["message"]),
            &hexarg(&i["signature"]),
        );
        assert_eq!(got, v["output"].as_bool().unwrap(), "{}", path.display());
        n += 1;
    }
    assert_eq!(n, 29);
}
