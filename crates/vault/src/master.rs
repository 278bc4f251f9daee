//! The master key: generation, the Shamir split and recombination, sub-keys and the verifier that
//! tells a correct recombination from a wrong one.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::VaultError;

/// Smallest quorum accepted: one share alone must never open the vault.
pub const MIN_THRESHOLD: u8 = 2;

/// A 256-bit master key. It exists only in memory and is wiped on drop. No `Debug`, no `Clone`.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        MasterKey(k)
    }

    /// Split into `count` shares, any `threshold` of which recombine the key. Each share is
    /// `[x, y_0 .. y_31]`: the participant number, then one GF(256) point per key byte.
    pub fn split(&self, threshold: u8, count: u8) -> Result<Vec<Zeroizing<Vec<u8>>>, VaultError> {
        check_parameters(threshold, count)?;
        let shares = Gf256::split_array(threshold as usize, count as usize, self.0.as_ref(), OsRng)
            .map_err(|e| VaultError::Internal(format!("shamir split: {e:?}")))?;
        Ok(shares.into_iter().map(Zeroizing::new).collect())
    }

    /// Recombine shares (at least two, distinct participant numbers, equal lengths). Fewer shares
    /// than the threshold yield a *different* key; the caller must check the result against the
    /// vault's verifier ([`MasterKey::matches`]).
    pub fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Result<Self, VaultError> {
        if shares.len() < MIN_THRESHOLD as usize {
            return Err(VaultError::InvalidParameters(
                "at least two shares are needed".into(),
            ));
        }
        if shares.iter().any(|s| s.len() != 33) {
            return Err(VaultError::ShareMalformed(
                "a share value must be 33 bytes".into(),
            ));
        }
        let mut seen = [false; 256];
        for s in shares {
            if s[0] == 0 || std::mem::replace(&mut seen[s[0] as usize], true) {
                return Err(VaultError::ShareDuplicate);
            }
        }
        let plain: Vec<Vec<u8>> = shares.iter().map(|s| s.to_vec()).collect();
        let plain = Zeroizing::new(plain);
        let secret = Zeroizing::new(
            Gf256::combine_array(&*plain)
                .map_err(|e| VaultError::ShareMalformed(format!("shamir combine: {e:?}")))?,
        );
        let mut k = Zeroizing::new([0u8; 32]);
        if secret.len() != 32 {
            return Err(VaultError::ShareMalformed(
                "recombined key has the wrong length".into(),
            ));
        }
        k.copy_from_slice(&secret);
        // `plain` holds copies of the share values; wipe each before the outer Vec goes.
        let mut plain = plain;
        for v in plain.iter_mut() {
            zeroize::Zeroize::zeroize(v);
        }
        Ok(MasterKey(k))
    }

    fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"signward-vault-v1"), self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(label, out.as_mut());
        out
    }

    /// The key that encrypts key records.
    pub fn dangerous_record_key(&self) -> Zeroizing<[u8; 32]> {
        self.subkey(b"records")
    }

    /// A MAC that identifies this key for one vault and generation. Stored in the vault so that a
    /// recombined key can be checked before it is used; it reveals nothing about the key.
    pub fn verifier(&self, vault_id: &str, generation: u64) -> [u8; 32] {
        let k = self.subkey(b"verifier");
        #[allow(clippy::expect_used)] // HMAC takes a key of any length: this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("HMAC accepts any key length");
        mac.update(vault_id.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether this key is the one `verifier` was made with (constant time).
    pub fn matches(&self, verifier: &[u8], vault_id: &str, generation: u64) -> bool {
        self.verifier(vault_id, generation).ct_eq(verifier).into()
    }
}

/// 2 ≤ threshold ≤ count ≤ 255.
pub fn check_parameters(threshold: u8, count: u8) -> Result<(), VaultError> {
    if threshold < MIN_THRESHOLD {
        return Err(VaultError::InvalidParameters(format!(
            "threshold must be at least {MIN_THRESHOLD}: one share alone must not unseal the vault"
        )));
    }
    if count < threshold {
        return Err(VaultError::InvalidParameters(
            "the number of shares must be at least the threshold".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_quorum_recombines_and_fewer_do_not() {
        let m = MasterKey::generate();
        let v = m.verifier("vault", 1);
        let shares = m.split(3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in (a + 1)..5 {
                let two = [shares[a].clone(), shares[b].clone()];
                let wrong = MasterKey::combine(&two).unwrap();
                assert!(
                    !wrong.matches(&v, "vault", 1),
                    "two of three must not recombine"
                );
                for c in (b + 1)..5 {
                    let three = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    let k = MasterKey::combine(&three).unwrap();
                    assert!(k.matches(&v, "vault", 1));
                }
            }
        }
        assert!(!m.matches(&v, "vault", 2));
        assert!(!m.matches(&v, "other", 1));
    }

    #[test]
    fn parameters_and_duplicates_are_refused() {
        assert!(MasterKey::generate().split(1, 3).is_err());
        assert!(MasterKey::generate().split(4, 3).is_err());
        let m = MasterKey::generate();
        let s = m.split(2, 3).unwrap();
        assert!(matches!(
            MasterKey::combine(&[s[0].clone(), s[0].clone()]),
            Err(VaultError::ShareDuplicate)
        ));
        let mut bad = s[1].clone();
        bad.truncate(10);
        assert!(MasterKey::combine(&[s[0].clone(), bad]).is_err());
    }
}
