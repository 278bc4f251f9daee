//! Vault share files and share payloads (`signward unseal`, `POST /admin/unseal`), from
//! crates/vault/src/share.rs:
//!
//! * `SharePayload::from_json` on every input (the unseal API body), and on success
//!   `vault::recover` with a fixed second share of a fixed vault (Shamir combine + verifier);
//! * `share::form`, then `decrypt_with_identities` with a fixed age identity for age files
//!   (armor, header and stanza parsing, payload decryption), or `decrypt_with_passphrase` with a
//!   fixed passphrase for the JSON form. The crate accepts argon2id costs up to 2 GiB and 64
//!   passes, so the harness calls it only when the cost is tiny (at most 64 KiB, 2 passes,
//!   4 lanes) or beyond the crate's bounds (refused before any KDF work), or when the cost
//!   fields are not plain numbers (refused by the parser);
//! * `backup::parse_recipient` on the text (an `age1…` recipient from the command line).
#![no_main]
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::Value;
use signward_vault::share::{self, FileForm};
use signward_vault::{SharePayload, VaultMeta};

/// Test-only identity (made for this harness with age-keygen; it protects nothing). Its
/// recipient is age1axk9k92tc3r23f3g845p0xyfejg55sgg202e55elfltx47vfm48q4e8s9u.
const IDENTITY: &str = "AGE-SECRET-KEY-1LX5YRNHMG8S92EK4Q32SRDLM6A6J686J64RSZAN3KXPD6C2ZZZRQYT65TF";
const PASSPHRASE: &str = "correct horse";
/// Share 3 of the 2-of-3 test vault whose shares 1 and 2 are in the seed corpus.
const SHARE_3: &str = r#"{"signward_share_payload":1,"vault_id":"vault-a","share_set":"set-1","generation":1,"index":3,"threshold":2,"count":3,"value":"03e4982a4a3bddd91ca3c9e457bb13f0636956ec10deaff3f5115958dfaeed4179"}"#;
const VERIFIER: &str = "c984adffffdaa2d3dce6eefc2440c52e7a55a9382c20e60f65482f71b4dee0fe";

struct Fixed {
    identity: age::x25519::Identity,
    meta: VaultMeta,
    other: SharePayload,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| Fixed {
        identity: age::x25519::Identity::from_str(IDENTITY).expect("a valid age identity"),
        meta: VaultMeta {
            vault_id: "vault-a".into(),
            share_set: "set-1".into(),
            generation: 1,
            threshold: 2,
            share_count: 3,
            verifier: hex_decode(VERIFIER),
            version: 1,
        },
        other: SharePayload::from_json(SHARE_3.as_bytes()).expect("a valid payload"),
    })
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Whether `decrypt_with_passphrase` may be called: the argon2id cost is tiny, or it is refused
/// before any KDF work (beyond the crate's bounds, or not a plain number).
fn cheap_or_refused(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return true;
    };
    let kdf = &v["kdf"];
    let (Some(m), Some(t), Some(p)) = (
        kdf["memory_kib"].as_u64(),
        kdf["iterations"].as_u64(),
        kdf["parallelism"].as_u64(),
    ) else {
        return true;
    };
    let beyond = m > 2 * 1024 * 1024 || t > 64 || p > 16;
    let tiny = m <= 64 && t <= 2 && p <= 4;
    beyond || tiny
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    if let Ok(p) = SharePayload::from_json(data) {
        assert!(p.index() >= 1 && p.index() <= p.count);
        let _ = signward_vault::vault::recover(&f.meta, &[p, f.other.clone()]);
    }
    let opened = match share::form(data) {
        FileForm::Age => {
            let ids: Vec<Box<dyn age::Identity>> = vec![Box::new(f.identity.clone())];
            share::decrypt_with_identities(data, &ids)
        }
        FileForm::Passphrase if cheap_or_refused(data) => {
            share::decrypt_with_passphrase(data, &SecretString::from(PASSPHRASE))
        }
        FileForm::Passphrase => return,
    };
    if let Ok(p) = opened {
        assert!(p.index() >= 1 && p.index() <= p.count);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signward_vault::backup::parse_recipient(text);
    }
});
