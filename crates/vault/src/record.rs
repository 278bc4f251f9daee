//! One key record: the secret key encrypted with XChaCha20-Poly1305 under the vault's record key,
//! with the vault id, key kind and key id as associated data, so a record cannot be moved to
//! another key id, another kind or another vault without failing authentication.
//!
//! The associated data also says whether the writer checked that the key id is the secret's own
//! public key before sealing ([`IdCheck`]): `v2-checked` records were (so opening one proves the
//! pairing without recomputing the public key), `v1` records were not, and whoever loads them
//! checks it. Only the holder of the master key can seal either, so the label cannot be forged
//! or moved from one record to another.

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
    /// This peer's share of a signing group's BLS key: the share document (index, commitments
    /// and secret share; `signward_engine::group`), stored under the group public key.
    BlsShare,
}

impl KeyKind {
    /// The name stored in the vault.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Bls => "bls",
            KeyKind::Secp256k1 => "secp256k1",
            KeyKind::BlsShare => "bls_share",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bls" => Some(KeyKind::Bls),
            "secp256k1" => Some(KeyKind::Secp256k1),
            "bls_share" => Some(KeyKind::BlsShare),
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

/// Whether a record's key id was checked against its secret when the record was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdCheck {
    /// Not checked when sealed (records written before the check, and secp256k1 records, whose
    /// address the vault cannot derive): whoever loads the key must derive its id and compare.
    OnLoad,
    /// The writer derived the public key from the secret and found the key id equal to it before
    /// sealing (BLS records since issue 16); the associated data says so.
    OnWrite,
}

impl IdCheck {
    fn label(self) -> &'static [u8] {
        match self {
            IdCheck::OnLoad => b"signward-vault-record-v1\0",
            IdCheck::OnWrite => b"signward-vault-record-v2-checked\0",
        }
    }
}

fn aad(vault_id: &str, kind: KeyKind, key_id: &str, check: IdCheck) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + vault_id.len() + key_id.len());
    a.extend_from_slice(check.label());
    a.extend_from_slice(vault_id.as_bytes());
    a.push(0);
    a.extend_from_slice(kind.as_str().as_bytes());
    a.push(0);
    a.extend_from_slice(key_id.as_bytes());
    a
}

/// Encrypt `secret` for `key_id` with a fresh random 192-bit nonce. `check` is
/// [`IdCheck::OnWrite`] only when the caller has just verified that `key_id` is the public key of
/// `secret`.
pub fn seal(
    record_key: &[u8; 32],
    vault_id: &str,
    kind: KeyKind,
    key_id: &str,
    secret: &[u8],
    check: IdCheck,
) -> Result<SealedRecord, VaultError> {
    let cipher = XChaCha20Poly1305::new(record_key.into());
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad(vault_id, kind, key_id, check),
            },
        )
        .map_err(|_| VaultError::Internal("record encryption failed".into()))?;
    Ok(SealedRecord {
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Decrypt and authenticate a record; any change to it, its id, kind, vault or [`IdCheck`]
/// label fails. Returns the secret and how its key id was sealed (a record authenticates under
/// exactly one label).
pub fn open(
    record_key: &[u8; 32],
    vault_id: &str,
    kind: KeyKind,
    key_id: &str,
    record: &SealedRecord,
) -> Result<(Zeroizing<Vec<u8>>, IdCheck), VaultError> {
    if record.nonce.len() != 24 {
        return Err(VaultError::RecordTampered(key_id.to_string()));
    }
    let cipher = XChaCha20Poly1305::new(record_key.into());
    for check in [IdCheck::OnWrite, IdCheck::OnLoad] {
        if let Ok(secret) = cipher.decrypt(
            XNonce::from_slice(&record.nonce),
            Payload {
                msg: &record.ciphertext,
                aad: &aad(vault_id, kind, key_id, check),
            },
        ) {
            return Ok((Zeroizing::new(secret), check));
        }
    }
    Err(VaultError::RecordTampered(key_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bound_to_id_kind_vault_and_key() {
        let k = [7u8; 32];
        let r = seal(&k, "v", KeyKind::Bls, "0xaa", b"secret", IdCheck::OnLoad).unwrap();
        let (secret, check) = open(&k, "v", KeyKind::Bls, "0xaa", &r).unwrap();
        assert_eq!(
            (secret.as_slice(), check),
            (&b"secret"[..], IdCheck::OnLoad)
        );
        assert!(open(&k, "v", KeyKind::Bls, "0xbb", &r).is_err());
        assert!(open(&k, "w", KeyKind::Bls, "0xaa", &r).is_err());
        assert!(open(&k, "v", KeyKind::Secp256k1, "0xaa", &r).is_err());
        assert!(open(&[8u8; 32], "v", KeyKind::Bls, "0xaa", &r).is_err());
        let mut t = r.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(&k, "v", KeyKind::Bls, "0xaa", &t).is_err());
    }

    /// The check label is authenticated like the id: a record opens under the label it was
    /// sealed with and no other, and is bound to its id, kind and vault under either.
    #[test]
    fn the_check_label_is_authenticated() {
        let k = [7u8; 32];
        let r = seal(&k, "v", KeyKind::Bls, "0xaa", b"secret", IdCheck::OnWrite).unwrap();
        let (secret, check) = open(&k, "v", KeyKind::Bls, "0xaa", &r).unwrap();
        assert_eq!(
            (secret.as_slice(), check),
            (&b"secret"[..], IdCheck::OnWrite)
        );
        assert!(open(&k, "v", KeyKind::Bls, "0xbb", &r).is_err());
        assert!(open(&k, "w", KeyKind::Bls, "0xaa", &r).is_err());
        assert!(open(&k, "v", KeyKind::Secp256k1, "0xaa", &r).is_err());
        // The label is part of the associated data: no record authenticates under both.
        let cipher = XChaCha20Poly1305::new((&k).into());
        for (label, other) in [
            (IdCheck::OnWrite, IdCheck::OnLoad),
            (IdCheck::OnLoad, IdCheck::OnWrite),
        ] {
            let r = seal(&k, "v", KeyKind::Bls, "0xaa", b"secret", label).unwrap();
            let as_other = cipher.decrypt(
                XNonce::from_slice(&r.nonce),
                Payload {
                    msg: &r.ciphertext,
                    aad: &aad("v", KeyKind::Bls, "0xaa", other),
                },
            );
            assert!(as_other.is_err());
        }
    }
}
