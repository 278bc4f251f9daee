//! BLS12-381 signing keys (Ethereum proof-of-possession ciphersuite), over `blst`.

use std::fmt;

use blst::min_pk;
use blst::BLST_ERROR;
use signward_core::bytes::{PublicKeyBytes, Root, SignatureBytes};
use zeroize::Zeroizing;

use crate::KeyError;

/// The Ethereum consensus ciphersuite (`BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`).
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// A BLS secret key with its public key. The secret scalar is wiped on drop (blst zeroizes its
/// `SecretKey`), never printed, and never leaves this type except through [`Self::sign`].
pub struct BlsKeypair {
    secret: min_pk::SecretKey,
    public: PublicKeyBytes,
}

impl BlsKeypair {
    /// Build from the 32-byte big-endian secret. Refuses zero and values not below the group order.
    pub fn from_secret_bytes(secret: &[u8]) -> Result<Self, KeyError> {
        let secret =
            min_pk::SecretKey::from_bytes(secret).map_err(|_| KeyError::InvalidSecretKey)?;
        let public = PublicKeyBytes::from(secret.sk_to_pk().compress());
        Ok(BlsKeypair { secret, public })
    }

    /// Build from the 32-byte big-endian secret and a public key that the caller already knows to
    /// be this secret's, without deriving it again (the costly part of [`Self::from_secret_bytes`]:
    /// a scalar multiplication). Refuses zero and values not below the group order like it. For
    /// the vault only: a record sealed as checked was written after its public key was derived
    /// from its secret and compared, and its authentication binds the two. Anything else must
    /// use [`Self::from_secret_bytes`].
    pub fn from_secret_bytes_with_checked_public(
        secret: &[u8],
        public: PublicKeyBytes,
    ) -> Result<Self, KeyError> {
        let secret =
            min_pk::SecretKey::from_bytes(secret).map_err(|_| KeyError::InvalidSecretKey)?;
        Ok(BlsKeypair { secret, public })
    }

    /// Generate from 32+ bytes of input keying material (EIP-2333 `HKDF_mod_r` via blst's keygen).
    pub fn from_ikm(ikm: &[u8]) -> Result<Self, KeyError> {
        let secret =
            min_pk::SecretKey::key_gen(ikm, &[]).map_err(|_| KeyError::InvalidSecretKey)?;
        let public = PublicKeyBytes::from(secret.sk_to_pk().compress());
        Ok(BlsKeypair { secret, public })
    }

    /// Generate a fresh random key from the OS RNG.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut ikm = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(ikm.as_mut());
        // key_gen only fails for ikm shorter than 32 bytes.
        Self::from_ikm(ikm.as_ref()).unwrap_or_else(|_| unreachable!("32-byte ikm"))
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKeyBytes {
        &self.public
    }

    /// Sign a 32-byte signing root.
    pub fn sign(&self, signing_root: &Root) -> SignatureBytes {
        SignatureBytes::from(self.secret.sign(&signing_root.0, DST, &[]).compress())
    }

    /// The secret as bytes, in a buffer wiped on drop. Only for encrypting it again
    /// (keystore export, vault); never log or return it.
    pub fn dangerous_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }
}

impl fmt::Debug for BlsKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlsKeypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Verify `signature` over `message` by `pubkey` (with public-key and signature group checks).
pub fn verify(pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(pk) = min_pk::PublicKey::key_validate(pubkey) else {
        return false;
    };
    let Ok(sig) = min_pk::Signature::sig_validate(signature, true) else {
        return false;
    };
    sig.verify(true, message, DST, &[], &pk, false) == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let k = BlsKeypair::generate();
        let root = Root::from([7u8; 32]);
        let sig = k.sign(&root);
        assert!(verify(&k.public_key().0, &root.0, &sig.0));
        assert!(!verify(&k.public_key().0, &[8u8; 32], &sig.0));
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&hex::encode(k.dangerous_secret_bytes().as_ref())));
    }

    #[test]
    fn zero_and_out_of_range_secrets_are_refused() {
        assert!(BlsKeypair::from_secret_bytes(&[0u8; 32]).is_err());
        assert!(BlsKeypair::from_secret_bytes(&[0xffu8; 32]).is_err());
        assert!(BlsKeypair::from_secret_bytes(&[1u8; 31]).is_err());
    }
}
