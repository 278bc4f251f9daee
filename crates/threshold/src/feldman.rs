//! Feldman commitments to a sharing polynomial.

use blstrs::{G1Affine, G1Projective, Scalar};
use group::prime::PrimeCurveAffine;
use group::Group;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::poly::{check_index, Polynomial};
use crate::{SecretShare, ThresholdError, MAX_PARTIES};

/// `C_k = a_k·G1` for each coefficient of a sharing polynomial of degree `t - 1`. Public: it is
/// published to every peer and kept beside each share. Serialized as a list of compressed G1
/// points in hex (`0x…`, 48 bytes each), `C_0` first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Commitments(Vec<G1Affine>);

impl Commitments {
    pub(crate) fn of(p: &Polynomial) -> Self {
        Commitments(
            p.coefficients()
                .iter()
                .map(|a| G1Affine::from(G1Projective::generator() * a))
                .collect(),
        )
    }

    /// Decode compressed points, each checked to be on the curve, in the subgroup and, for
    /// `C_0`, not the identity.
    pub fn from_compressed(points: &[[u8; 48]]) -> Result<Self, ThresholdError> {
        if points.len() < 2 || points.len() > MAX_PARTIES as usize {
            return Err(ThresholdError::InvalidCommitments(points.len()));
        }
        let mut out = Vec::with_capacity(points.len());
        for p in points {
            let a = Option::<G1Affine>::from(G1Affine::from_compressed(p))
                .ok_or(ThresholdError::InvalidPoint("commitment"))?;
            out.push(a);
        }
        if bool::from(out[0].is_identity()) {
            return Err(ThresholdError::InvalidPoint(
                "group public key is the identity",
            ));
        }
        Ok(Commitments(out))
    }

    /// The points, compressed, `C_0` first.
    pub fn to_compressed(&self) -> Vec<[u8; 48]> {
        self.0.iter().map(|p| p.to_compressed()).collect()
    }

    /// The threshold `t` (the number of coefficients).
    pub fn threshold(&self) -> u32 {
        self.0.len() as u32
    }

    /// The group public key `C_0` (the validator's public key), compressed.
    pub fn group_public_key(&self) -> [u8; 48] {
        self.0[0].to_compressed()
    }

    pub(crate) fn points(&self) -> &[G1Affine] {
        &self.0
    }

    pub(crate) fn from_points(points: Vec<G1Affine>) -> Self {
        Commitments(points)
    }

    pub(crate) fn public_share_point(&self, index: u32) -> G1Projective {
        let x = Scalar::from(u64::from(index));
        let mut acc = G1Projective::identity();
        for c in self.0.iter().rev() {
            acc = acc * x + c;
        }
        acc
    }

    /// Peer `index`'s public share `Σ C_k·indexᵏ = f(index)·G1`, compressed: the key its partial
    /// signatures verify under.
    pub fn public_share(&self, index: u32) -> Result<[u8; 48], ThresholdError> {
        check_index(index)?;
        Ok(G1Affine::from(self.public_share_point(index)).to_compressed())
    }

    /// Check that `share` is `f(share.index())` for the committed polynomial.
    pub fn verify_share(&self, share: &SecretShare) -> Result<(), ThresholdError> {
        check_index(share.index())?;
        let expected = self.public_share_point(share.index());
        if G1Projective::generator() * share.scalar() == expected {
            Ok(())
        } else {
            Err(ThresholdError::ShareMismatch {
                dealer: share.index(),
            })
        }
    }
}

impl Serialize for Commitments {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hexes: Vec<String> = self
            .to_compressed()
            .iter()
            .map(|p| format!("0x{}", hex::encode(p)))
            .collect();
        hexes.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Commitments {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let hexes = Vec::<String>::deserialize(d)?;
        if hexes.len() > MAX_PARTIES as usize {
            return Err(D::Error::custom("too many commitments"));
        }
        let mut points = Vec::with_capacity(hexes.len());
        for h in &hexes {
            let bytes = hex::decode(h.strip_prefix("0x").unwrap_or(h))
                .map_err(|_| D::Error::custom("commitment is not hex"))?;
            let p: [u8; 48] = bytes
                .try_into()
                .map_err(|_| D::Error::custom("commitment is not 48 bytes"))?;
            points.push(p);
        }
        Commitments::from_compressed(&points).map_err(D::Error::custom)
    }
}
