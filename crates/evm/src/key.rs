//! A secp256k1 signing key and its address.

use alloy_primitives::{Address, Signature, B256};
use k256::ecdsa::SigningKey;
use zeroize::Zeroizing;

use crate::EvmError;

/// An EVM key. `k256`'s `SigningKey` wipes its scalar on drop. `Debug` shows the address only.
pub struct EvmKey {
    signing: SigningKey,
    address: Address,
}

impl std::fmt::Debug for EvmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl EvmKey {
    /// The key of a 32-byte secret.
    pub fn from_secret_bytes(secret: &[u8]) -> Result<Self, EvmError> {
        let signing = SigningKey::from_slice(secret).map_err(|_| EvmError::InvalidKey)?;
        let address = Address::from_public_key(signing.verifying_key());
        Ok(EvmKey { signing, address })
    }

    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        let signing = SigningKey::random(&mut rand::rngs::OsRng);
        let address = Address::from_public_key(signing.verifying_key());
        EvmKey { signing, address }
    }

    /// The key's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The secret bytes, to store the key in the vault. The name marks every use for review.
    pub fn dangerous_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes().into())
    }

    /// Sign a digest this crate computed (a transaction's signing hash, an EIP-191 or EIP-712
    /// hash). Private to the crate's callers by construction: no API takes a hash from outside.
    pub(crate) fn sign_digest(&self, digest: &B256) -> Result<Signature, EvmError> {
        let (sig, recid) = self
            .signing
            .sign_prehash_recoverable(digest.as_slice())
            .map_err(|_| EvmError::Signing)?;
        Ok(Signature::from_signature_and_parity(sig, recid.is_y_odd()))
    }
}

/// `r ‖ s ‖ v` with `v` = 27 + y-parity, the form `eth_sign` and `eth_signTypedData` return.
pub fn rsv(sig: &Signature) -> [u8; 65] {
    let mut out = [0u8; 65];
    out[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    out[32..64].copy_from_slice(&sig.s().to_be_bytes::<32>());
    out[64] = 27 + sig.v() as u8;
    out
}
