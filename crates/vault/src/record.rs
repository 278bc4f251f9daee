//! One key record: the secret key encrypted with XChaCha20-Poly1305 under the vault's record key,
//! with the vault id, key kind and key id as associated data, so a record cannot be moved to
//! another key id, another kind or another vault without failing authentication.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::VaultError;

/// What kind of signing key a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// BLS12-381 validator key (32-byte secret scalar).
    Bls,
    /// secp256k1 EVM key (32-byte secret scalar).
    Secp256k1,
}

impl KeyKind {
    /// The name stored in the vault.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Bls => "bls",
            KeyKind::Secp256k1 => "secp256k1",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bls" => Some(KeyKind::Bls),
            "secp256k1" => Some(KeyKind::Secp256k1),
            _ => None,
        }
    }
}

/// Nonce and ciphertext (with tag) of one key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The XChaCha20-Poly1305 nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

fn aad(vault_id: &str, kind: KeyKind, key_id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + vault_id.len() + key_id.len());
    a.extend_from_slice(b"signward-vault-record-v1\0");
    a.extend_from_slice(vault_id.as_bytes());
    a.push(0);
    a.extend_from_slice(kind.as_str().as_bytes());
    a.push(0);
    a.extend_from_slice(key_id.as_bytes());
    a
}

/// Encrypt `secret` for `key_id` with a fresh random 192-bit nonce.
pub fn seal(
    record_key: &[u8; 32],
    vault_id: &str,
    kind: KeyKind,
    key_id: &str,
    secret: &[u8],
) -> Result<SealedRecord, VaultError> {
    let cipher = XChaCha20Poly1305::new(record_key.into());
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad(vault_id, kind, key_id),
            },
        )
        .map_err(|_| VaultError::Internal("record encryption failed".into()))?;
    Ok(SealedRecord {
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Decrypt and authenticate a record; any change to it, its id, kind or vault fails.
pub fn open(
    record_key: &[u8; 32],
    vault_id: &str,
    kind: KeyKind,
    key_id: &str,
    record: &SealedRecord,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if record.nonce.len() != 24 {
        return Err(VaultError::RecordTampered(key_id.to_string()));
    }
    let cipher = XChaCha20Poly1305::new(record_key.into());
    cipher
        .decrypt(
            XNonce::from_slice(&record.nonce),
            Payload {
                msg: &record.ciphertext,
                aad: &aad(vault_id, kind, key_id),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::RecordTampered(key_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bound_to_id_kind_vault_and_key() {
        let k = [7u8; 32];
        let r = seal(&k, "v", KeyKind::Bls, "0xaa", b"secret").unwrap();
        assert_eq!(
            &*open(&k, "v", KeyKind::Bls, "0xaa", &r).unwrap(),
            b"secret"
        );
        assert!(open(&k, "v", KeyKind::Bls, "0xbb", &r).is_err());
        assert!(open(&k, "w", KeyKind::Bls, "0xaa", &r).is_err());
        assert!(open(&k, "v", KeyKind::Secp256k1, "0xaa", &r).is_err());
        assert!(open(&[8u8; 32], "v", KeyKind::Bls, "0xaa", &r).is_err());
        let mut t = r.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(&k, "v", KeyKind::Bls, "0xaa", &t).is_err());
    }
}
