//! Partial signatures: checking one, and combining `t` of them.

use blst::BLST_ERROR;
use blstrs::{G2Affine, G2Projective};
use group::Group;
use serde::{Deserialize, Serialize};

use crate::poly::{check_distinct, check_index, lagrange_at_zero};
use crate::{Commitments, ThresholdError};

/// Peer `index`'s signature of a message with its share (96 bytes, compressed G2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialSignature {
    /// The signer's share index.
    pub index: u32,
    /// The signature, compressed.
    #[serde(with = "hex96")]
    pub signature: [u8; 96],
}

/// The result of [`combine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    /// The group's signature: an ordinary BLS signature under the group public key.
    pub signature: [u8; 96],
    /// The indexes whose partial signature did not verify (to audit and report), in input order.
    pub rejected: Vec<u32>,
}

/// Whether `partial` is peer `partial.index`'s valid signature of `msg` (ciphersuite `dst`) under
/// its public share in `commitments`. The signature is decoded with the subgroup check.
pub fn verify_partial(
    commitments: &Commitments,
    partial: &PartialSignature,
    msg: &[u8],
    dst: &[u8],
) -> Result<bool, ThresholdError> {
    let pk = commitments.public_share(partial.index)?;
    Ok(verify(&pk, &partial.signature, msg, dst))
}

fn verify(pk: &[u8; 48], sig: &[u8; 96], msg: &[u8], dst: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        blst::min_pk::PublicKey::from_bytes(pk),
        blst::min_pk::Signature::from_bytes(sig),
    ) else {
        return false;
    };
    sig.verify(true, msg, dst, &[], &pk, true) == BLST_ERROR::BLST_SUCCESS
}

/// Combine partial signatures of `msg` into the group's signature; the result is always verified
/// under the group public key before it is returned. Fast path: the first `t` partials are
/// interpolated at zero in G2 and the result verified (one pairing check in all). Only when that
/// fails is each partial verified under its peer's public share: invalid ones are skipped and
/// reported in [`Combined::rejected`], and the first `t` valid ones are interpolated. Indexes must
/// be distinct.
pub fn combine(
    commitments: &Commitments,
    partials: &[PartialSignature],
    msg: &[u8],
    dst: &[u8],
) -> Result<Combined, ThresholdError> {
    let indexes: Vec<u32> = partials.iter().map(|p| p.index).collect();
    check_distinct(&indexes)?;
    let t = commitments.threshold() as usize;
    let group_key = commitments.group_public_key();
    if partials.len() >= t {
        if let Ok(signature) = interpolate(&partials[..t]) {
            if verify(&group_key, &signature, msg, dst) {
                return Ok(Combined {
                    signature,
                    rejected: Vec::new(),
                });
            }
        }
    }
    let mut valid = Vec::with_capacity(t);
    let mut rejected = Vec::new();
    for p in partials {
        if valid.len() == t {
            break;
        }
        if verify_partial(commitments, p, msg, dst)? {
            valid.push(*p);
        } else {
            rejected.push(p.index);
        }
    }
    if valid.len() < t {
        return Err(ThresholdError::NotEnoughPartials {
            needed: t,
            valid: valid.len(),
        });
    }
    let signature = interpolate(&valid)?;
    if !verify(&group_key, &signature, msg, dst) {
        return Err(ThresholdError::CombinedInvalid);
    }
    Ok(Combined {
        signature,
        rejected,
    })
}

/// `Σ λ_i·σ_i` over the given partials, with no verification.
pub(crate) fn interpolate(partials: &[PartialSignature]) -> Result<[u8; 96], ThresholdError> {
    let indexes: Vec<u32> = partials.iter().map(|p| p.index).collect();
    for &i in &indexes {
        check_index(i)?;
    }
    let lambdas = lagrange_at_zero(&indexes)?;
    let mut acc = G2Projective::identity();
    for (p, l) in partials.iter().zip(&lambdas) {
        let point = Option::<G2Affine>::from(G2Affine::from_compressed(&p.signature))
            .ok_or(ThresholdError::InvalidPoint("partial signature"))?;
        acc += G2Projective::from(point) * l;
    }
    Ok(G2Affine::from(acc).to_compressed())
}

mod hex96 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 96], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 96], D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(&s))
            .map_err(|_| D::Error::custom("signature is not hex"))?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom("signature is not 96 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{combine_reshares, reshare, split, KeyShare, Received};

    const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    /// After a refresh, one old share and one new share interpolate to no valid signature.
    #[test]
    fn old_and_new_shares_do_not_combine() {
        let secret = [7u8; 32];
        let d = split(&secret, 2, 3).unwrap();
        let old = d.commitments.clone();
        let keys: Vec<KeyShare> = d
            .shares
            .into_iter()
            .map(|share| KeyShare {
                share,
                commitments: old.clone(),
            })
            .collect();
        let deals: Vec<_> = keys[..2]
            .iter()
            .map(|k| reshare(k, 2, 3).unwrap())
            .collect();
        let new: Vec<KeyShare> = (1..=3u32)
            .map(|me| {
                let received: Vec<Received> = deals
                    .iter()
                    .zip([1u32, 2])
                    .map(|(d, dealer)| Received {
                        dealer,
                        commitments: d.commitments.clone(),
                        share: SecretShare::from_bytes(
                            me,
                            &d.shares[me as usize - 1].dangerous_bytes(),
                        )
                        .unwrap(),
                    })
                    .collect();
                combine_reshares(me, &old, &received).unwrap()
            })
            .collect();
        let msg = b"a signing root, 32 bytes long...";
        let pk = old.group_public_key();
        let sign = |k: &KeyShare| PartialSignature {
            index: k.share.index(),
            signature: k.share.sign(msg, DST).unwrap(),
        };
        // New with new, old with old: valid.
        assert!(verify(
            &pk,
            &interpolate(&[sign(&new[0]), sign(&new[2])]).unwrap(),
            msg,
            DST
        ));
        assert!(verify(
            &pk,
            &interpolate(&[sign(&keys[0]), sign(&keys[2])]).unwrap(),
            msg,
            DST
        ));
        // Old with new, every pairing of distinct indexes: invalid.
        for o in &keys {
            for n in &new {
                if o.share.index() != n.share.index() {
                    let s = interpolate(&[sign(o), sign(n)]).unwrap();
                    assert!(!verify(&pk, &s, msg, DST));
                }
            }
        }
        // And the group rejects an old partial against the new commitments.
        assert!(!verify_partial(&new[0].commitments, &sign(&keys[1]), msg, DST).unwrap());
    }

    use crate::SecretShare;
}
