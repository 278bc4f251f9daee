//! Threshold BLS for Ethereum validator keys, as pure arithmetic (no I/O, no clock, no network).
//!
//! A validator's secret key `s` is the constant term of a polynomial `f` of degree `t - 1` over the
//! BLS12-381 scalar field; peer `i` (1..=n) holds the share `f(i)`. Any `t` peers' partial
//! signatures `f(i)·H(m)` interpolate at zero to `s·H(m)`, the ordinary signature; `t - 1` shares
//! say nothing about `s`. Everything a peer receives can be checked:
//!
//! - [`Commitments`] (Feldman): `C_k = a_k·G1` for each coefficient. `C_0` is the group public
//!   key; `Σ C_k·iᵏ` is peer `i`'s public share, against which its secret share
//!   ([`Commitments::verify_share`]) and its partial signatures ([`verify_partial`]) are checked.
//! - [`split`]: a dealer splits an existing key (the dealer sees it once; the caller wipes it).
//! - [`deal`] and [`combine_dealings`]: joint-Feldman key generation. Every peer deals a random
//!   polynomial; each peer sums what it received. The group key is the sum of the dealers'
//!   secrets, which no party ever holds.
//! - [`reshare`] and [`combine_reshares`]: proactive refresh and change of `t`/`n`. `t` holders
//!   each deal their own share; new holders interpolate. The group key does not change; old
//!   shares do not combine with new ones.
//! - [`combine`]: Lagrange interpolation of `t` verified partial signatures in G2, then a check
//!   of the result under the group key.
//!
//! The field and the curves are blst's (through `blstrs` for group and scalar arithmetic); the
//! signatures are blst's ordinary `min_pk` signatures, so a partial signature is the signature of
//! the message under the share taken as a secret key, and the combined one is a normal Ethereum
//! signature. Nothing here writes curve code.
//!
//! Secret values (shares, polynomial coefficients) live in zeroized buffers and types without
//! `Debug`. `blstrs::Scalar` is `Copy`, so short-lived copies on the stack during arithmetic are
//! not wiped; see `docs/threshold.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod combine;
mod error;
mod feldman;
mod keygen;
mod poly;
mod share;

pub use combine::{combine, verify_partial, Combined, PartialSignature};
pub use error::ThresholdError;
pub use feldman::Commitments;
pub use keygen::{
    combine_dealings, combine_reshares, deal, reshare, split, Dealing, KeyShare, Received,
};
pub use share::SecretShare;

/// The most peers in a group: share indexes are 1..=`MAX_PARTIES`.
pub const MAX_PARTIES: u32 = 255;

/// Check `t` of `n`: 2 ≤ t ≤ n ≤ [`MAX_PARTIES`]. A threshold of 1 would give each peer the
/// whole key.
pub fn check_parameters(t: u32, n: u32) -> Result<(), ThresholdError> {
    if t < 2 || t > n || n > MAX_PARTIES {
        return Err(ThresholdError::InvalidParameters { t, n });
    }
    Ok(())
}
