//! Making shares: a dealer's split, joint-Feldman key generation, and proactive resharing.

use blstrs::{G1Affine, G1Projective, Scalar};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::Group;

use crate::poly::{check_distinct, check_index, lagrange_at_zero, Polynomial};
use crate::{check_parameters, Commitments, SecretShare, ThresholdError};

/// What one dealer produces: public commitments to its polynomial and one secret share per peer
/// (`shares[i]` is for index `i + 1`). The dealer sends each share to its peer only, encrypted;
/// the commitments go to everyone.
pub struct Dealing {
    /// Commitments to the dealt polynomial (`C_0` commits to the dealt secret).
    pub commitments: Commitments,
    /// One share per peer, indexes 1..=n in order.
    pub shares: Vec<SecretShare>,
}

/// A peer's part of a group: its secret share and the group's commitments (from which the group
/// public key and every peer's public share follow).
pub struct KeyShare {
    /// This peer's secret share.
    pub share: SecretShare,
    /// The group's commitments; `C_0` is the validator's public key.
    pub commitments: Commitments,
}

/// What a peer received from one dealer.
pub struct Received {
    /// The dealer's index (for resharing: its index in the old group).
    pub dealer: u32,
    /// The dealer's published commitments.
    pub commitments: Commitments,
    /// The share the dealer sent to this peer.
    pub share: SecretShare,
}

fn deal_polynomial(p: &Polynomial, n: u32) -> Dealing {
    Dealing {
        commitments: Commitments::of(p),
        shares: (1..=n)
            .map(|i| SecretShare::from_scalar(i, &p.eval(i)))
            .collect(),
    }
}

/// Split an existing secret key (32 bytes big-endian, as in an EIP-2335 keystore) into `n`
/// shares, any `t` of which sign. `C_0` of the result is the key's own public key. The caller
/// wipes `secret` afterwards.
pub fn split(secret: &[u8; 32], t: u32, n: u32) -> Result<Dealing, ThresholdError> {
    check_parameters(t, n)?;
    let s = Option::<Scalar>::from(Scalar::from_bytes_be(secret))
        .ok_or(ThresholdError::InvalidSecret)?;
    if bool::from(s.is_zero()) {
        return Err(ThresholdError::InvalidSecret);
    }
    Ok(deal_polynomial(&Polynomial::random_with_constant(s, t), n))
}

/// One peer's contribution to a distributed key generation: a fresh random secret, dealt as by
/// [`split`]. No one, the dealer included, learns the group key, which is the sum of all
/// dealers' secrets.
pub fn deal(t: u32, n: u32) -> Result<Dealing, ThresholdError> {
    check_parameters(t, n)?;
    let s = Scalar::random(&mut rand::rngs::OsRng);
    Ok(deal_polynomial(&Polynomial::random_with_constant(s, t), n))
}

/// Peer `me`'s share of a group made by key generation, from every dealer's contribution: each
/// share is checked against its dealer's commitments (a failure names the dealer, so it can be
/// disqualified), then the shares are added and the commitments added point-wise. Every peer
/// given the same dealings computes the same commitments.
pub fn combine_dealings(
    me: u32,
    t: u32,
    received: &[Received],
) -> Result<KeyShare, ThresholdError> {
    check_index(me)?;
    // Bounded before anything is allocated from it.
    if !(2..=crate::MAX_PARTIES).contains(&t) {
        return Err(ThresholdError::InvalidParameters { t, n: t });
    }
    if received.len() < 2 {
        return Err(ThresholdError::DealerCount {
            needed: 2,
            got: received.len(),
        });
    }
    let dealers: Vec<u32> = received.iter().map(|r| r.dealer).collect();
    check_distinct(&dealers)?;
    let mut share = Scalar::ZERO;
    let mut points = vec![G1Projective::identity(); t as usize];
    for r in received {
        check_dealt(me, t, r)?;
        share += r.share.scalar();
        for (acc, c) in points.iter_mut().zip(r.commitments.points()) {
            *acc += c;
        }
    }
    finish(me, share, points)
}

fn check_dealt(me: u32, t: u32, r: &Received) -> Result<(), ThresholdError> {
    if r.commitments.threshold() != t {
        return Err(ThresholdError::ThresholdMismatch {
            expected: t,
            got: r.commitments.threshold(),
        });
    }
    if r.share.index() != me {
        return Err(ThresholdError::WrongRecipient {
            expected: me,
            got: r.share.index(),
        });
    }
    r.commitments
        .verify_share(&r.share)
        .map_err(|_| ThresholdError::ShareMismatch { dealer: r.dealer })
}

fn finish(me: u32, share: Scalar, points: Vec<G1Projective>) -> Result<KeyShare, ThresholdError> {
    let points: Vec<G1Affine> = points.iter().map(G1Affine::from).collect();
    if bool::from(points[0].is_identity()) {
        return Err(ThresholdError::InvalidPoint(
            "group public key is the identity",
        ));
    }
    let key = KeyShare {
        share: SecretShare::from_scalar(me, &share),
        commitments: Commitments::from_points(points),
    };
    key.commitments.verify_share(&key.share)?;
    Ok(key)
}

/// A holder's contribution to a refresh: its own share dealt to a new group of `new_n` peers with
/// threshold `new_t` (which may differ from the old ones). `t` old holders must each contribute.
pub fn reshare(key: &KeyShare, new_t: u32, new_n: u32) -> Result<Dealing, ThresholdError> {
    check_parameters(new_t, new_n)?;
    key.commitments.verify_share(&key.share)?;
    Ok(deal_polynomial(
        &Polynomial::random_with_constant(key.share.scalar(), new_t),
        new_n,
    ))
}

/// New peer `me`'s share after a refresh, from exactly `t` old holders' reshares (`t` of the old
/// group; every new peer must be given the same holders). Each dealer must have dealt its own
/// share of the group key (its `C_0` equals its public share in `old`), and each share must match
/// its dealer's commitments. The new group key equals the old one; the new shares lie on a new
/// polynomial, so they do not combine with old shares.
pub fn combine_reshares(
    me: u32,
    old: &Commitments,
    received: &[Received],
) -> Result<KeyShare, ThresholdError> {
    check_index(me)?;
    let needed = old.threshold() as usize;
    if received.len() != needed {
        return Err(ThresholdError::DealerCount {
            needed,
            got: received.len(),
        });
    }
    let dealers: Vec<u32> = received.iter().map(|r| r.dealer).collect();
    check_distinct(&dealers)?;
    let new_t = received[0].commitments.threshold();
    let lambdas = lagrange_at_zero(&dealers)?;
    let mut share = Scalar::ZERO;
    let mut points = vec![G1Projective::identity(); new_t as usize];
    for (r, l) in received.iter().zip(&lambdas) {
        if G1Projective::from(r.commitments.points()[0]) != old.public_share_point(r.dealer) {
            return Err(ThresholdError::NotAHolder(r.dealer));
        }
        check_dealt(me, new_t, r)?;
        share += r.share.scalar() * l;
        for (acc, c) in points.iter_mut().zip(r.commitments.points()) {
            *acc += G1Projective::from(c) * l;
        }
    }
    if G1Affine::from(points[0]) != old.points()[0] {
        return Err(ThresholdError::CombinedInvalid);
    }
    finish(me, share, points)
}
