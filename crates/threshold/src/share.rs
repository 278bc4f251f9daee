//! One peer's secret share.

use blstrs::Scalar;
use ff::Field;
use group::Group;
use zeroize::Zeroizing;

use crate::poly::check_index;
use crate::ThresholdError;

/// Peer `index`'s share `f(index)` of a group key: a 32-byte big-endian scalar, held in a buffer
/// that is wiped on drop. No `Debug`, no `Serialize`: it leaves the process only through
/// [`SecretShare::dangerous_bytes`], which the caller must encrypt (a sealed vault, an age recipient).
pub struct SecretShare {
    index: u32,
    value: Zeroizing<[u8; 32]>,
}

impl SecretShare {
    /// A share from its index and 32-byte big-endian value (as [`SecretShare::dangerous_bytes`] gives).
    pub fn from_bytes(index: u32, value: &[u8; 32]) -> Result<Self, ThresholdError> {
        check_index(index)?;
        let s = Option::<Scalar>::from(Scalar::from_bytes_be(value))
            .ok_or(ThresholdError::InvalidSecret)?;
        Ok(Self::from_scalar(index, &s))
    }

    pub(crate) fn from_scalar(index: u32, s: &Scalar) -> Self {
        SecretShare {
            index,
            value: Zeroizing::new(s.to_bytes_be()),
        }
    }

    pub(crate) fn scalar(&self) -> Scalar {
        // Checked when the share was made.
        Option::<Scalar>::from(Scalar::from_bytes_be(&self.value)).unwrap_or(Scalar::ZERO)
    }

    /// The share's index (its x coordinate, 1..=255).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The 32-byte big-endian value, for encrypting to the peer or sealing in its vault only;
    /// never log or return it.
    pub fn dangerous_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.value.clone()
    }

    /// This share's partial signature of `msg` under the ciphersuite `dst`: the ordinary BLS
    /// signature with the share as the secret key, 96 bytes compressed.
    pub fn sign(&self, msg: &[u8], dst: &[u8]) -> Result<[u8; 96], ThresholdError> {
        // A zero share (probability 2^-255) is no secret key; refuse rather than sign with it.
        let sk = blst::min_pk::SecretKey::from_bytes(self.value.as_slice())
            .map_err(|_| ThresholdError::InvalidSecret)?;
        Ok(sk.sign(msg, dst, &[]).to_bytes())
    }

    /// The public share `f(index)·G1`, compressed.
    pub fn public_share(&self) -> [u8; 48] {
        blstrs::G1Affine::from(blstrs::G1Projective::generator() * self.scalar()).to_compressed()
    }
}
