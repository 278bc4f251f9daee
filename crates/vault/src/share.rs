//! Shares and the files that carry them.
//!
//! A [`SharePayload`] is one operator's share with the facts needed to use it: which vault, which
//! share set (replaced by `rekey` and `rotate`), which master-key generation, the participant
//! number and the quorum. It is what `signward unseal` submits to a running server.
//!
//! On disk a payload is always encrypted to its operator, in one of two forms:
//! - **passphrase**: a JSON envelope; the key is argon2id(passphrase), the cipher
//!   XChaCha20-Poly1305, and every public field of the envelope is associated data;
//! - **age**: an ASCII-armored age file to an `age1…` recipient whose plaintext is the payload
//!   JSON, so the standard `age` tool opens it too.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::VaultError;

/// One share and what it belongs to. No `Debug`: it holds share bytes.
#[derive(Clone)]
pub struct SharePayload {
    /// The vault it belongs to.
    pub vault_id: String,
    /// The share set it belongs to (replaced by rekey and rotate).
    pub share_set: String,
    /// The master-key generation (bumped by rotate).
    pub generation: u64,
    /// Shares needed to unseal.
    pub threshold: u8,
    /// Shares made.
    pub count: u8,
    /// `[x, y_0 .. y_31]`; `x` is the participant number.
    pub value: Zeroizing<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadWire {
    signward_share_payload: u32,
    vault_id: String,
    share_set: String,
    generation: u64,
    index: u8,
    threshold: u8,
    count: u8,
    value: Zeroizing<String>,
}

impl SharePayload {
    /// The participant number (1-based).
    pub fn index(&self) -> u8 {
        self.value.first().copied().unwrap_or(0)
    }

    /// JSON form, in a buffer wiped on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let wire = PayloadWire {
            signward_share_payload: 1,
            vault_id: self.vault_id.clone(),
            share_set: self.share_set.clone(),
            generation: self.generation,
            index: self.index(),
            threshold: self.threshold,
            count: self.count,
            value: Zeroizing::new(hex::encode(&*self.value)),
        };
        Zeroizing::new(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Read a share from its JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, VaultError> {
        let wire: PayloadWire = serde_json::from_slice(bytes).map_err(|e| {
            VaultError::ShareMalformed(format!(
                "not a share payload ({})",
                format_args!("{:?} at line {}", e.classify(), e.line())
            ))
        })?;
        if wire.signward_share_payload != 1 {
            return Err(VaultError::ShareMalformed(
                "unknown share payload version".into(),
            ));
        }
        let value = Zeroizing::new(
            hex::decode(wire.value.as_bytes())
                .map_err(|_| VaultError::ShareMalformed("share value is not hex".into()))?,
        );
        let p = SharePayload {
            vault_id: wire.vault_id,
            share_set: wire.share_set,
            generation: wire.generation,
            threshold: wire.threshold,
            count: wire.count,
            value,
        };
        p.validate()?;
        if p.index() != wire.index {
            return Err(VaultError::ShareMalformed(
                "share index does not match its value".into(),
            ));
        }
        Ok(p)
    }

    fn validate(&self) -> Result<(), VaultError> {
        if self.value.len() != 33 || self.value[0] == 0 {
            return Err(VaultError::ShareMalformed(
                "share value must be 33 bytes with a non-zero index".into(),
            ));
        }
        crate::master::check_parameters(self.threshold, self.count)
            .map_err(|_| VaultError::ShareMalformed("impossible threshold or count".into()))?;
        if self.index() > self.count {
            return Err(VaultError::ShareMalformed(
                "share index above the share count".into(),
            ));
        }
        Ok(())
    }

    fn aad(&self) -> Vec<u8> {
        format!(
            "signward-share-v1|{}|{}|{}|{}|{}|{}",
            self.vault_id,
            self.share_set,
            self.generation,
            self.index(),
            self.threshold,
            self.count
        )
        .into_bytes()
    }
}

/// How a share file is protected.
pub enum Protection {
    /// argon2id over the (NFKD-normalised) passphrase.
    Passphrase(SecretString),
    /// An age X25519 recipient (`age1…`).
    Age(Box<age::x25519::Recipient>),
}

impl Protection {
    /// Parse an `age1…` recipient.
    pub fn age(recipient: &str) -> Result<Self, VaultError> {
        Ok(Protection::Age(Box::new(crate::backup::parse_recipient(
            recipient,
        )?)))
    }
}

/// Argon2id cost of new passphrase share files.
#[derive(Debug, Clone, Copy)]
pub struct KdfCost {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfCost {
    /// 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        KdfCost {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Upper bounds on what a share file may ask of the KDF (a crafted file must not exhaust memory).
const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfWire {
    function: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherWire {
    function: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassphraseFile {
    signward_share: u32,
    vault_id: String,
    share_set: String,
    generation: u64,
    index: u8,
    threshold: u8,
    count: u8,
    kdf: KdfWire,
    cipher: CipherWire,
    ciphertext: String,
}

fn derive(
    passphrase: &SecretString,
    salt: &[u8],
    cost: KdfCost,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|e| VaultError::ShareMalformed(format!("argon2 parameters: {e}")))?;
    let pw = signward_keys::password::normalize(passphrase);
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pw.expose_secret(), salt, out.as_mut())
        .map_err(|e| VaultError::Internal(format!("argon2: {e}")))?;
    Ok(out)
}

/// The bytes of a share file and its file-name extension.
pub fn encrypt(
    payload: &SharePayload,
    protection: &Protection,
    cost: KdfCost,
) -> Result<(Vec<u8>, &'static str), VaultError> {
    match protection {
        Protection::Passphrase(pass) => {
            if pass.expose_secret().is_empty() {
                return Err(VaultError::InvalidParameters("empty passphrase".into()));
            }
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 24];
            OsRng.fill_bytes(&mut salt);
            OsRng.fill_bytes(&mut nonce);
            let key = derive(pass, &salt, cost)?;
            let ct = XChaCha20Poly1305::new(key.as_ref().into())
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &payload.value,
                        aad: &payload.aad(),
                    },
                )
                .map_err(|_| VaultError::Internal("share encryption failed".into()))?;
            let file = PassphraseFile {
                signward_share: 1,
                vault_id: payload.vault_id.clone(),
                share_set: payload.share_set.clone(),
                generation: payload.generation,
                index: payload.index(),
                threshold: payload.threshold,
                count: payload.count,
                kdf: KdfWire {
                    function: "argon2id".into(),
                    memory_kib: cost.memory_kib,
                    iterations: cost.iterations,
                    parallelism: cost.parallelism,
                    salt: hex::encode(salt),
                },
                cipher: CipherWire {
                    function: "xchacha20poly1305".into(),
                    nonce: hex::encode(nonce),
                },
                ciphertext: hex::encode(ct),
            };
            let mut out = serde_json::to_vec_pretty(&file)
                .map_err(|e| VaultError::Internal(e.to_string()))?;
            out.push(b'\n');
            Ok((out, "json"))
        }
        Protection::Age(recipient) => {
            let json = payload.to_json();
            Ok((
                crate::backup::encrypt_armored(recipient.as_ref(), &json)?,
                "age",
            ))
        }
    }
}

/// Which form a share file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileForm {
    /// Encrypted under a passphrase (argon2id + XChaCha20-Poly1305).
    Passphrase,
    /// Encrypted to an age recipient.
    Age,
}

/// Tell the two forms apart (age files start with their armor line or binary header).
pub fn form(bytes: &[u8]) -> FileForm {
    let t = bytes.trim_ascii_start();
    if t.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") || t.starts_with(b"age-encryption.org/")
    {
        FileForm::Age
    } else {
        FileForm::Passphrase
    }
}

/// Open a passphrase share file.
pub fn decrypt_with_passphrase(
    bytes: &[u8],
    passphrase: &SecretString,
) -> Result<SharePayload, VaultError> {
    let f: PassphraseFile = serde_json::from_slice(bytes).map_err(|e| {
        VaultError::ShareMalformed(format!(
            "not a signward share file ({})",
            format_args!("{:?} at line {}", e.classify(), e.line())
        ))
    })?;
    if f.signward_share != 1
        || f.kdf.function != "argon2id"
        || f.cipher.function != "xchacha20poly1305"
    {
        return Err(VaultError::ShareMalformed(
            "unsupported share file version, KDF or cipher".into(),
        ));
    }
    if f.kdf.memory_kib > MAX_MEMORY_KIB
        || f.kdf.iterations > MAX_ITERATIONS
        || f.kdf.parallelism > MAX_PARALLELISM
    {
        return Err(VaultError::ShareMalformed(
            "KDF cost above the accepted bounds".into(),
        ));
    }
    let salt = hex::decode(&f.kdf.salt)
        .map_err(|_| VaultError::ShareMalformed("salt is not hex".into()))?;
    let nonce = hex::decode(&f.cipher.nonce)
        .map_err(|_| VaultError::ShareMalformed("nonce is not hex".into()))?;
    let ct = hex::decode(&f.ciphertext)
        .map_err(|_| VaultError::ShareMalformed("ciphertext is not hex".into()))?;
    if nonce.len() != 24 || salt.len() < 16 {
        return Err(VaultError::ShareMalformed(
            "bad nonce or salt length".into(),
        ));
    }
    let key = derive(
        passphrase,
        &salt,
        KdfCost {
            memory_kib: f.kdf.memory_kib,
            iterations: f.kdf.iterations,
            parallelism: f.kdf.parallelism,
        },
    )?;
    // The AAD is rebuilt from the header, so editing any public field fails authentication.
    let header = SharePayload {
        vault_id: f.vault_id,
        share_set: f.share_set,
        generation: f.generation,
        threshold: f.threshold,
        count: f.count,
        value: Zeroizing::new(vec![f.index]),
    };
    let aad = format!(
        "signward-share-v1|{}|{}|{}|{}|{}|{}",
        header.vault_id,
        header.share_set,
        header.generation,
        f.index,
        header.threshold,
        header.count
    );
    let value = XChaCha20Poly1305::new(key.as_ref().into())
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::WrongPassphrase)?;
    let p = SharePayload { value, ..header };
    p.validate()?;
    if p.index() != f.index {
        return Err(VaultError::ShareMalformed(
            "share index does not match its value".into(),
        ));
    }
    Ok(p)
}

/// Open an age share file with any of `identities`.
pub fn decrypt_with_identities(
    bytes: &[u8],
    identities: &[Box<dyn age::Identity>],
) -> Result<SharePayload, VaultError> {
    let json = crate::backup::decrypt_armored(bytes, identities)?;
    SharePayload::from_json(&json)
}

/// Read an age identity file (as written by `age-keygen`); it must be owner-only.
pub fn read_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, VaultError> {
    let bytes = read_owner_only(path)?;
    let file = age::IdentityFile::from_buffer(&bytes[..])
        .map_err(|e| VaultError::Age(format!("identity file: {e}")))?;
    file.into_identities()
        .map_err(|e| VaultError::Age(format!("identity file: {e}")))
}

/// Read a file that holds secret material, refusing it when group or others can access it.
pub fn read_owner_only(path: &Path) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    signward_keys::fsutil::read_secret_file(path, signward_keys::fsutil::FileKind::Password)
        .map_err(|e| match e {
            signward_keys::KeyError::InsecurePermissions => VaultError::InvalidParameters(format!(
                "{} is readable by group or others; run: chmod 600 {}",
                path.display(),
                path.display()
            )),
            other => VaultError::Io(std::io::Error::other(format!(
                "{}: {}",
                path.display(),
                other
            ))),
        })
}

/// Write `bytes` to a new file `path` (mode 0600), fsync it and its directory. Never overwrites.
pub fn write_new_durably(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    Ok(signward_os::fs::write_new(path, bytes)?)
}

/// Write one share file per payload into `dir` (created 0700 if needed), named
/// `share-<set prefix>-<index>.<json|age>`. Returns the paths in payload order.
pub fn write_share_files(
    dir: &Path,
    payloads: &[SharePayload],
    protections: &[Protection],
    cost: KdfCost,
) -> Result<Vec<PathBuf>, VaultError> {
    if payloads.len() != protections.len() {
        return Err(VaultError::InvalidParameters(format!(
            "{} shares but {} protections",
            payloads.len(),
            protections.len()
        )));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut paths = Vec::with_capacity(payloads.len());
    for (p, prot) in payloads.iter().zip(protections) {
        let (bytes, ext) = encrypt(p, prot, cost)?;
        let set = p.share_set.get(..8).unwrap_or(&p.share_set);
        let path = dir.join(format!("share-{set}-{}.{ext}", p.index()));
        write_new_durably(&path, &bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Read a share file of either form: `passphrase` opens the JSON form, `identities` the age form.
pub fn open_file(
    path: &Path,
    passphrase: impl FnOnce() -> Result<SecretString, VaultError>,
    identities: Option<&[Box<dyn age::Identity>]>,
) -> Result<SharePayload, VaultError> {
    // A share file, though encrypted, must be owner-only: a readable one invites offline guessing.
    let bytes = read_owner_only(path)?;
    match form(&bytes) {
        FileForm::Age => match identities {
            Some(ids) => decrypt_with_identities(&bytes, ids),
            None => Err(VaultError::InvalidParameters(format!(
                "{} is an age share file; pass --identity with the operator's age identity file",
                path.display()
            ))),
        },
        FileForm::Passphrase => decrypt_with_passphrase(&bytes, &passphrase()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> SharePayload {
        let m = crate::MasterKey::generate();
        let v = m.split(2, 3).unwrap().remove(1);
        SharePayload {
            vault_id: "vault-a".into(),
            share_set: "set-1".into(),
            generation: 1,
            threshold: 2,
            count: 3,
            value: v,
        }
    }

    const CHEAP: KdfCost = KdfCost {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn passphrase_roundtrip_and_failures() {
        let p = payload();
        let pass = SecretString::from("correct horse");
        let (bytes, ext) = encrypt(&p, &Protection::Passphrase(pass.clone()), CHEAP).unwrap();
        assert_eq!(ext, "json");
        assert_eq!(form(&bytes), FileForm::Passphrase);
        let back = decrypt_with_passphrase(&bytes, &pass).unwrap();
        assert_eq!(*back.value, *p.value);
        assert_eq!(back.vault_id, "vault-a");
        assert!(matches!(
            decrypt_with_passphrase(&bytes, &SecretString::from("wrong")),
            Err(VaultError::WrongPassphrase)
        ));
        // Editing a public header field breaks authentication.
        let edited = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("vault-a", "vault-b");
        assert!(matches!(
            decrypt_with_passphrase(edited.as_bytes(), &pass),
            Err(VaultError::WrongPassphrase)
        ));
        // The secret never appears in the file.
        assert!(!String::from_utf8_lossy(&bytes).contains(&hex::encode(&p.value[1..])));
        // A KDF cost beyond the bounds is refused before any work.
        let greedy = String::from_utf8(bytes)
            .unwrap()
            .replace("\"memory_kib\": 1024", "\"memory_kib\": 99999999");
        assert!(matches!(
            decrypt_with_passphrase(greedy.as_bytes(), &pass),
            Err(VaultError::ShareMalformed(_))
        ));
    }

    #[test]
    fn age_roundtrip_and_wrong_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let p = payload();
        let (bytes, ext) = encrypt(&p, &Protection::Age(Box::new(id.to_public())), CHEAP).unwrap();
        assert_eq!(ext, "age");
        assert_eq!(form(&bytes), FileForm::Age);
        let ids: Vec<Box<dyn age::Identity>> = vec![Box::new(id)];
        let back = decrypt_with_identities(&bytes, &ids).unwrap();
        assert_eq!(*back.value, *p.value);
        let wrong: Vec<Box<dyn age::Identity>> = vec![Box::new(other)];
        assert!(matches!(
            decrypt_with_identities(&bytes, &wrong),
            Err(VaultError::WrongIdentity)
        ));
    }

    #[test]
    fn payload_json_roundtrip_and_validation() {
        let p = payload();
        let j = p.to_json();
        let back = SharePayload::from_json(&j).unwrap();
        assert_eq!(*back.value, *p.value);
        assert!(SharePayload::from_json(b"{}").is_err());
        let s = String::from_utf8(j.to_vec()).unwrap();
        let bad = s.replace("\"threshold\":2", "\"threshold\":1");
        assert!(SharePayload::from_json(bad.as_bytes()).is_err());
    }
}
