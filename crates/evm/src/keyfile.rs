//! Web3 Secret Storage (V3) keyfiles: scrypt or PBKDF2, keccak-256 MAC, AES-128-CTR with a full
//! 128-bit big-endian counter. The KDF cost is bounded as for EIP-2335 keystores.

use aes::cipher::{KeyIvInit, StreamCipher};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha3::{Digest, Keccak256};
use signward_keys::keystore::{Kdf, KdfLimits};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{EvmError, EvmKey};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

#[derive(Deserialize)]
struct V3 {
    version: u32,
    #[serde(alias = "Crypto")]
    crypto: Crypto,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct Crypto {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(Deserialize)]
struct CipherParams {
    iv: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    dklen: u32,
    n: u64,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(Deserialize)]
struct Pbkdf2Params {
    dklen: u32,
    c: u32,
    prf: String,
    salt: String,
}

fn unhex(s: &str, what: &'static str) -> Result<Vec<u8>, EvmError> {
    hex::decode(s.trim_start_matches("0x")).map_err(|_| EvmError::Keyfile(what))
}

/// Decrypt a V3 keyfile with `password` (its UTF-8 bytes, as geth uses them).
pub fn decrypt(
    json: &[u8],
    password: &SecretString,
    limits: &KdfLimits,
) -> Result<EvmKey, EvmError> {
    let v: V3 = serde_json::from_slice(json).map_err(|_| EvmError::Keyfile("not a V3 keyfile"))?;
    if v.version != 3 {
        return Err(EvmError::Keyfile("only version 3 keyfiles are supported"));
    }
    let c = &v.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(EvmError::Keyfile("cipher must be aes-128-ctr"));
    }
    let kdf = match c.kdf.as_str() {
        "scrypt" => {
            let p: ScryptParams = serde_json::from_value(c.kdfparams.clone())
                .map_err(|_| EvmError::Keyfile("bad scrypt parameters"))?;
            Kdf::Scrypt {
                dklen: p.dklen,
                n: p.n,
                r: p.r,
                p: p.p,
                salt: unhex(&p.salt, "salt is not hex")?,
            }
        }
        "pbkdf2" => {
            let p: Pbkdf2Params = serde_json::from_value(c.kdfparams.clone())
                .map_err(|_| EvmError::Keyfile("bad pbkdf2 parameters"))?;
            if p.prf != "hmac-sha256" {
                return Err(EvmError::Keyfile("pbkdf2 prf must be hmac-sha256"));
            }
            Kdf::Pbkdf2 {
                dklen: p.dklen,
                c: p.c,
                salt: unhex(&p.salt, "salt is not hex")?,
            }
        }
        _ => return Err(EvmError::Keyfile("kdf must be scrypt or pbkdf2")),
    };
    let iv = unhex(&c.cipherparams.iv, "iv is not hex")?;
    let ciphertext = Zeroizing::new(unhex(&c.ciphertext, "ciphertext is not hex")?);
    let mac = unhex(&c.mac, "mac is not hex")?;
    if iv.len() != 16 || ciphertext.len() != 32 || mac.len() != 32 {
        return Err(EvmError::Keyfile(
            "iv, ciphertext or mac has the wrong length",
        ));
    }
    let dk = kdf
        .derive_checked(password.expose_secret().as_bytes(), limits)
        .map_err(|e| EvmError::Kdf(e.class().to_string()))?;
    let mut h = Keccak256::new();
    h.update(&dk[16..32]);
    h.update(&*ciphertext);
    if !bool::from(h.finalize().as_slice().ct_eq(&mac)) {
        return Err(EvmError::MacMismatch);
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&ciphertext);
    Aes128Ctr::new_from_slices(&dk[..16], &iv)
        .map_err(|_| EvmError::Keyfile("bad iv"))?
        .apply_keystream(secret.as_mut());
    let key = EvmKey::from_secret_bytes(secret.as_ref())?;
    if let Some(a) = &v.address {
        let declared = unhex(a, "address is not hex")?;
        if declared.as_slice() != key.address().as_slice() {
            return Err(EvmError::Keyfile(
                "the keyfile decrypts to another address than it declares",
            ));
        }
    }
    Ok(key)
}
