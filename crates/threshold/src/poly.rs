//! Polynomials over the scalar field, and Lagrange coefficients at zero.

use blstrs::Scalar;
use ff::Field;

use crate::{ThresholdError, MAX_PARTIES};

/// A secret polynomial `a_0 + a_1·x + … + a_{t-1}·x^{t-1}`. Its coefficients are overwritten when
/// it is dropped; it has no `Debug`.
pub(crate) struct Polynomial(Vec<Scalar>);

impl Polynomial {
    /// `constant` followed by `t - 1` uniformly random coefficients from the OS.
    pub(crate) fn random_with_constant(constant: Scalar, t: u32) -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut coefficients = Vec::with_capacity(t as usize);
        coefficients.push(constant);
        for _ in 1..t {
            coefficients.push(Scalar::random(&mut rng));
        }
        Polynomial(coefficients)
    }

    pub(crate) fn coefficients(&self) -> &[Scalar] {
        &self.0
    }

    /// `f(x)`, by Horner's rule.
    pub(crate) fn eval(&self, x: u32) -> Scalar {
        let x = Scalar::from(u64::from(x));
        let mut acc = Scalar::ZERO;
        for c in self.0.iter().rev() {
            acc = acc * x + c;
        }
        acc
    }
}

impl Drop for Polynomial {
    fn drop(&mut self) {
        for c in self.0.iter_mut() {
            *c = Scalar::ZERO;
        }
        // Keep the overwrite from being optimised away as a dead store.
        std::hint::black_box(&self.0);
    }
}

/// Check a share index: 1..=MAX_PARTIES (zero would be the secret itself).
pub(crate) fn check_index(i: u32) -> Result<(), ThresholdError> {
    if i == 0 || i > MAX_PARTIES {
        return Err(ThresholdError::InvalidIndex(i));
    }
    Ok(())
}

/// Check that `xs` are valid, distinct share indexes.
pub(crate) fn check_distinct(xs: &[u32]) -> Result<(), ThresholdError> {
    let mut seen = std::collections::BTreeSet::new();
    for &x in xs {
        check_index(x)?;
        if !seen.insert(x) {
            return Err(ThresholdError::DuplicateIndex(x));
        }
    }
    Ok(())
}

/// The Lagrange coefficients at zero for the distinct, non-zero points `xs`:
/// `λ_i = Π_{j≠i} x_j / (x_j − x_i)`, so that `f(0) = Σ λ_i·f(x_i)` for any `f` of degree below
/// `xs.len()`.
pub(crate) fn lagrange_at_zero(xs: &[u32]) -> Result<Vec<Scalar>, ThresholdError> {
    check_distinct(xs)?;
    let points: Vec<Scalar> = xs.iter().map(|&x| Scalar::from(u64::from(x))).collect();
    let mut out = Vec::with_capacity(xs.len());
    for (i, xi) in points.iter().enumerate() {
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, xj) in points.iter().enumerate() {
            if i != j {
                num *= xj;
                den *= *xj - xi;
            }
        }
        // Distinct points: the denominator is never zero.
        let inv = Option::<Scalar>::from(den.invert()).ok_or(ThresholdError::CombinedInvalid)?;
        out.push(num * inv);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_at_zero_recovers_the_constant() {
        let p = Polynomial::random_with_constant(Scalar::from(42u64), 3);
        for xs in [[1u32, 2, 3], [2, 5, 255], [7, 1, 9]] {
            let l = lagrange_at_zero(&xs).unwrap();
            let at_zero: Scalar = xs.iter().zip(&l).map(|(&x, li)| p.eval(x) * li).sum();
            assert_eq!(at_zero, Scalar::from(42u64));
        }
        // Two points of a degree-2 polynomial interpolate to something else.
        let l = lagrange_at_zero(&[1, 2]).unwrap();
        let wrong: Scalar = [1u32, 2]
            .iter()
            .zip(&l)
            .map(|(&x, li)| p.eval(x) * li)
            .sum();
        assert_ne!(wrong, Scalar::from(42u64));
    }

    #[test]
    fn indexes_are_checked() {
        assert_eq!(
            lagrange_at_zero(&[1, 0]).err(),
            Some(ThresholdError::InvalidIndex(0))
        );
        assert_eq!(
            lagrange_at_zero(&[3, 3]).err(),
            Some(ThresholdError::DuplicateIndex(3))
        );
        assert_eq!(
            lagrange_at_zero(&[256]).err(),
            Some(ThresholdError::InvalidIndex(256))
        );
    }
}
