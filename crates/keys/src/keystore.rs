//! EIP-2335 keystores (version 4): scrypt or PBKDF2-HMAC-SHA256, SHA-256 checksum, AES-128-CTR.
//!
//! Decryption verifies the checksum before decrypting, checks the secret is a valid BLS scalar,
//! and re-derives the public key to compare with the keystore's `pubkey`. KDF parameters are
//! bounded so that a hostile keystore cannot make us spend minutes or gigabytes.

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use signward_core::bytes::{decode_hex, PublicKeyBytes};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::bls::BlsKeypair;
use crate::password::normalize;
use crate::KeyError;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Upper bounds on KDF cost. The EIP-2335 defaults (scrypt n=2^18 r=8 p=1, 256 MiB; PBKDF2
/// c=2^18) are within them; anything costlier is refused before any work is done.
#[derive(Debug, Clone, Copy)]
pub struct KdfLimits {
    /// Bytes of memory scrypt may use (128 · n · r).
    pub scrypt_max_memory: u64,
    /// scrypt work, n · r · p.
    pub scrypt_max_work: u64,
    /// PBKDF2 iterations.
    pub pbkdf2_max_iterations: u32,
}

impl Default for KdfLimits {
    fn default() -> Self {
        KdfLimits {
            scrypt_max_memory: 256 * 1024 * 1024,
            scrypt_max_work: (1 << 18) * 8 * 4,
            pbkdf2_max_iterations: 1 << 20,
        }
    }
}

/// A parsed KDF module.
#[derive(Clone, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt.
    Scrypt {
        /// Derived key length, bytes.
        dklen: u32,
        /// CPU/memory cost.
        n: u64,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
        /// Salt.
        salt: Vec<u8>,
    },
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2 {
        /// Derived key length, bytes.
        dklen: u32,
        /// Iterations.
        c: u32,
        /// Salt.
        salt: Vec<u8>,
    },
}

impl Kdf {
    /// The EIP-2335 default scrypt parameters with a fresh random salt.
    pub fn scrypt_default() -> Self {
        Kdf::Scrypt {
            dklen: 32,
            n: 1 << 18,
            r: 8,
            p: 1,
            salt: random_bytes(32),
        }
    }

    /// PBKDF2-HMAC-SHA256 with `c` iterations and a fresh random salt.
    pub fn pbkdf2(c: u32) -> Self {
        Kdf::Pbkdf2 {
            dklen: 32,
            c,
            salt: random_bytes(32),
        }
    }

    fn check(&self, limits: &KdfLimits) -> Result<(), KeyError> {
        let (dklen, salt) = match self {
            Kdf::Scrypt { dklen, salt, .. } | Kdf::Pbkdf2 { dklen, salt, .. } => (*dklen, salt),
        };
        if !(32..=64).contains(&dklen) {
            return Err(KeyError::MalformedKeystore(
                "dklen must be between 32 and 64",
            ));
        }
        if salt.is_empty() || salt.len() > 1024 {
            return Err(KeyError::MalformedKeystore("salt length out of range"));
        }
        match *self {
            Kdf::Scrypt { n, r, p, .. } => {
                if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
                    return Err(KeyError::MalformedKeystore("invalid scrypt parameters"));
                }
                let memory = 128u64.saturating_mul(n).saturating_mul(r as u64);
                let work = n.saturating_mul(r as u64).saturating_mul(p as u64);
                if memory > limits.scrypt_max_memory || work > limits.scrypt_max_work {
                    return Err(KeyError::KdfTooExpensive);
                }
            }
            Kdf::Pbkdf2 { c, .. } => {
                if c == 0 {
                    return Err(KeyError::MalformedKeystore("pbkdf2 c must be positive"));
                }
                if c > limits.pbkdf2_max_iterations {
                    return Err(KeyError::KdfTooExpensive);
                }
            }
        }
        Ok(())
    }

    /// Check the parameters against `limits`, then derive from `password` (already in the form
    /// the container requires). Also used for Web3 Secret Storage (V3) keyfiles.
    pub fn derive_checked(
        &self,
        password: &[u8],
        limits: &KdfLimits,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.check(limits)?;
        self.derive(password)
    }

    /// Derive the key from normalised password bytes.
    fn derive(&self, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match self {
            Kdf::Scrypt {
                dklen,
                n,
                r,
                p,
                salt,
            } => {
                let log_n = n.trailing_zeros() as u8;
                let params = scrypt::Params::new(log_n, *r, *p, *dklen as usize)
                    .map_err(|_| KeyError::MalformedKeystore("invalid scrypt parameters"))?;
                let mut out = Zeroizing::new(vec![0u8; *dklen as usize]);
                scrypt::scrypt(password, salt, &params, &mut out)
                    .map_err(|_| KeyError::MalformedKeystore("invalid scrypt parameters"))?;
                Ok(out)
            }
            Kdf::Pbkdf2 { dklen, c, salt } => {
                let mut out = Zeroizing::new(vec![0u8; *dklen as usize]);
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *c, &mut out);
                Ok(out)
            }
        }
    }

    fn to_module(&self) -> Module {
        let params = match self {
            Kdf::Scrypt {
                dklen,
                n,
                r,
                p,
                salt,
            } => {
                serde_json::json!({"dklen": dklen, "n": n, "r": r, "p": p, "salt": hex::encode(salt)})
            }
            Kdf::Pbkdf2 { dklen, c, salt } => serde_json::json!({
                "dklen": dklen, "c": c, "prf": "hmac-sha256", "salt": hex::encode(salt)
            }),
        };
        let function = match self {
            Kdf::Scrypt { .. } => "scrypt",
            Kdf::Pbkdf2 { .. } => "pbkdf2",
        };
        Module {
            function: function.into(),
            params,
            message: String::new(),
        }
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

/// `{function, params, message}` as in the keystore JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Module {
    /// The algorithm.
    pub function: String,
    /// Its parameters.
    pub params: Value,
    /// Its output (the checksum, the ciphertext), hex.
    pub message: String,
}

/// The keystore's `crypto` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crypto {
    /// How the decryption key is derived from the password.
    pub kdf: Module,
    /// How the password is checked.
    pub checksum: Module,
    /// How the secret is encrypted.
    pub cipher: Module,
}

/// An EIP-2335 keystore file. Holds only encrypted material, so it may derive `Debug`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keystore {
    /// The encrypted secret and how to open it.
    pub crypto: Crypto,
    /// A free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The public key, hex, when the keystore declares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    /// The EIP-2334 derivation path, or empty.
    #[serde(default)]
    pub path: String,
    /// The keystore's UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The keystore format version (4).
    pub version: u32,
}

/// `path` when it is a well-formed EIP-2334 derivation path (see [`Keystore::derivation_path`]).
pub fn derivation_path(path: &str) -> Option<String> {
    if path.is_empty() || path.len() > MAX_DERIVATION_PATH {
        return None;
    }
    let mut parts = path.split('/');
    if parts.next() != Some("m") {
        return None;
    }
    let mut any = false;
    for p in parts {
        if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        any = true;
    }
    any.then(|| path.to_string())
}

/// A keystore's crypto parameters after validation (all public: ciphertext is encrypted).
struct Checked {
    kdf: Kdf,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    checksum: Vec<u8>,
}

fn hex_field(s: &str, what: &'static str) -> Result<Vec<u8>, KeyError> {
    decode_hex(s).ok_or(KeyError::MalformedKeystore(what))
}

/// Longest derivation path reported; EIP-2334 paths are far shorter.
pub const MAX_DERIVATION_PATH: usize = 128;

impl Keystore {
    /// The keystore's EIP-2335 `path` when it is a well-formed EIP-2334 derivation path
    /// (`m`, then `/` and decimal indices, at most [`MAX_DERIVATION_PATH`] bytes); `None` when
    /// the keystore has none or holds anything else, so no file content of arbitrary shape or
    /// size is ever echoed.
    pub fn derivation_path(&self) -> Option<String> {
        derivation_path(&self.path)
    }

    /// Parse keystore JSON. Rejects unsupported versions; unknown extra fields are tolerated.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|_| KeyError::MalformedKeystore("not valid JSON"))?;
        match v.get("version").and_then(Value::as_u64) {
            Some(4) => {}
            Some(_) => {
                return Err(KeyError::UnsupportedKeystore(
                    "version (only 4 is supported)",
                ))
            }
            None => return Err(KeyError::MalformedKeystore("missing version")),
        }
        if v.get("crypto").is_none() {
            return Err(KeyError::MalformedKeystore("missing crypto"));
        }
        serde_json::from_value(v).map_err(|_| KeyError::MalformedKeystore("bad structure"))
    }

    /// The declared public key, if any.
    pub fn declared_pubkey(&self) -> Result<Option<PublicKeyBytes>, KeyError> {
        match &self.pubkey {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => decode_hex(s)
                .and_then(|b| PublicKeyBytes::from_slice(&b))
                .map(Some)
                .ok_or(KeyError::MalformedKeystore("pubkey is not 48 bytes of hex")),
        }
    }

    /// Parse and bound the KDF module.
    pub fn kdf(&self, limits: &KdfLimits) -> Result<Kdf, KeyError> {
        let m = &self.crypto.kdf;
        let p = &m.params;
        let num = |k: &'static str| -> Result<u64, KeyError> {
            p.get(k)
                .and_then(Value::as_u64)
                .ok_or(KeyError::MalformedKeystore(
                    "missing or invalid kdf parameter",
                ))
        };
        let small = |k: &'static str| -> Result<u32, KeyError> {
            u32::try_from(num(k)?).map_err(|_| KeyError::KdfTooExpensive)
        };
        let salt = || -> Result<Vec<u8>, KeyError> {
            hex_field(
                p.get("salt")
                    .and_then(Value::as_str)
                    .ok_or(KeyError::MalformedKeystore("missing salt"))?,
                "salt is not hex",
            )
        };
        if !p.is_object() {
            return Err(KeyError::MalformedKeystore("missing kdf params"));
        }
        let kdf = match m.function.as_str() {
            "scrypt" => Kdf::Scrypt {
                dklen: small("dklen")?,
                n: num("n")?,
                r: small("r")?,
                p: small("p")?,
                salt: salt()?,
            },
            "pbkdf2" => {
                if p.get("prf").and_then(Value::as_str) != Some("hmac-sha256") {
                    return Err(KeyError::UnsupportedKeystore(
                        "pbkdf2 prf (only hmac-sha256)",
                    ));
                }
                Kdf::Pbkdf2 {
                    dklen: small("dklen")?,
                    c: small("c")?,
                    salt: salt()?,
                }
            }
            _ => return Err(KeyError::UnsupportedKeystore("kdf function")),
        };
        kdf.check(limits)?;
        Ok(kdf)
    }

    /// Everything that can be checked without the password: structure, supported functions,
    /// bounded parameters.
    fn validated(&self, limits: &KdfLimits) -> Result<Checked, KeyError> {
        let kdf = self.kdf(limits)?;
        if self.crypto.checksum.function != "sha256" {
            return Err(KeyError::UnsupportedKeystore("checksum function"));
        }
        if self.crypto.cipher.function != "aes-128-ctr" {
            return Err(KeyError::UnsupportedKeystore("cipher function"));
        }
        let checksum = hex_field(&self.crypto.checksum.message, "checksum is not hex")?;
        if checksum.len() != 32 {
            return Err(KeyError::MalformedKeystore("checksum is not 32 bytes"));
        }
        let iv = hex_field(
            self.crypto
                .cipher
                .params
                .get("iv")
                .and_then(Value::as_str)
                .ok_or(KeyError::MalformedKeystore("missing iv"))?,
            "iv is not hex",
        )?;
        if iv.len() != 16 {
            return Err(KeyError::MalformedKeystore("iv is not 16 bytes"));
        }
        let ciphertext = hex_field(&self.crypto.cipher.message, "ciphertext is not hex")?;
        if ciphertext.len() != 32 {
            return Err(KeyError::MalformedKeystore("ciphertext is not 32 bytes"));
        }
        Ok(Checked {
            kdf,
            iv,
            ciphertext,
            checksum,
        })
    }

    /// Decrypt with `password`, verify the checksum, and check the key against `pubkey`.
    pub fn decrypt(
        &self,
        password: &SecretString,
        limits: &KdfLimits,
    ) -> Result<BlsKeypair, KeyError> {
        let Checked {
            kdf,
            iv,
            ciphertext,
            checksum,
        } = self.validated(limits)?;
        let declared = self.declared_pubkey()?;
        let pw = normalize(password);
        let dk = kdf.derive(pw.expose_secret())?;
        let mut h = Sha256::new();
        h.update(&dk[16..32]);
        h.update(&ciphertext);
        let computed: [u8; 32] = h.finalize().into();
        if !bool::from(computed.ct_eq(checksum.as_slice())) {
            return Err(KeyError::ChecksumMismatch);
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&ciphertext);
        let mut cipher = Aes128Ctr::new_from_slices(&dk[..16], &iv)
            .map_err(|_| KeyError::MalformedKeystore("iv is not 16 bytes"))?;
        cipher.apply_keystream(secret.as_mut());
        let keypair = BlsKeypair::from_secret_bytes(secret.as_ref())?;
        if let Some(declared) = declared {
            if declared != *keypair.public_key() {
                return Err(KeyError::PubkeyMismatch);
            }
        }
        Ok(keypair)
    }

    /// Encrypt `keypair` under `password` with `kdf` and a fresh random IV.
    pub fn encrypt(
        keypair: &BlsKeypair,
        password: &SecretString,
        kdf: Kdf,
        path: &str,
    ) -> Result<Self, KeyError> {
        let iv: [u8; 16] = random_bytes(16)
            .try_into()
            .unwrap_or_else(|_| unreachable!("16 bytes"));
        Self::encrypt_with_iv(keypair, password, kdf, &iv, path)
    }

    /// Encrypt with a caller-chosen IV (deterministic; for test vectors).
    pub fn encrypt_with_iv(
        keypair: &BlsKeypair,
        password: &SecretString,
        kdf: Kdf,
        iv: &[u8; 16],
        path: &str,
    ) -> Result<Self, KeyError> {
        kdf.check(&KdfLimits::default())?;
        let pw = normalize(password);
        let dk = kdf.derive(pw.expose_secret())?;
        let mut ciphertext = keypair.dangerous_secret_bytes();
        let mut cipher = Aes128Ctr::new_from_slices(&dk[..16], iv)
            .map_err(|_| KeyError::MalformedKeystore("iv is not 16 bytes"))?;
        cipher.apply_keystream(ciphertext.as_mut());
        let mut h = Sha256::new();
        h.update(&dk[16..32]);
        h.update(ciphertext.as_ref());
        let checksum: [u8; 32] = h.finalize().into();
        Ok(Keystore {
            crypto: Crypto {
                kdf: kdf.to_module(),
                checksum: Module {
                    function: "sha256".into(),
                    params: serde_json::json!({}),
                    message: hex::encode(checksum),
                },
                cipher: Module {
                    function: "aes-128-ctr".into(),
                    params: serde_json::json!({"iv": hex::encode(iv)}),
                    message: hex::encode(ciphertext.as_ref()),
                },
            },
            description: None,
            pubkey: Some(hex::encode(keypair.public_key().0)),
            path: path.to_string(),
            uuid: Some(uuid::Uuid::new_v4().to_string()),
            version: 4,
        })
    }
}

#[cfg(test)]
mod derivation_path_tests {
    use super::derivation_path;

    #[test]
    fn only_eip2334_paths_are_reported() {
        assert_eq!(
            derivation_path("m/12381/3600/0/0/0").as_deref(),
            Some("m/12381/3600/0/0/0")
        );
        for bad in [
            "",
            "m",
            "m/",
            "m//1",
            "x/1",
            "m/1/a",
            "m/1 ",
            "m/12345678901",
            "m/1/\u{202e}",
        ] {
            assert_eq!(derivation_path(bad), None, "{bad:?}");
        }
        let long = format!("m{}", "/1".repeat(70));
        assert_eq!(derivation_path(&long), None);
    }
}
