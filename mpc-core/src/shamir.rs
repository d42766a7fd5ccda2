//! Shamir secret sharing over a [`PrimeField`]: party `i` (0-based) holds `f(i + 1)`.
//!
//! These are the local, non-interactive pieces; the interactive protocols live in
//! [`crate::Runtime`].

use rand::RngCore;

use crate::field::PrimeField;

/// Errors from local sharing and reconstruction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// `2t < m` is required for multiplication (honest majority); `t < m` for sharing at all.
    #[error("threshold {t} is not allowed with {m} parties (need t < m)")]
    BadThreshold {
        /// Threshold.
        t: usize,
        /// Number of parties.
        m: usize,
    },
    /// Reconstruction needs at least t + 1 shares at distinct points.
    #[error("need {needed} shares at distinct points, got {got}")]
    TooFewShares {
        /// Shares needed.
        needed: usize,
        /// Usable shares given.
        got: usize,
    },
}

/// Shares `secret` with a random polynomial of degree `t` among `m` parties.
pub fn share<F: PrimeField, R: RngCore + ?Sized>(
    field: &F,
    secret: &F::Elem,
    t: usize,
    m: usize,
    rng: &mut R,
) -> Result<Vec<F::Elem>, ShamirError> {
    if t >= m.max(1) {
        return Err(ShamirError::BadThreshold { t, m });
    }
    let coeffs: Vec<F::Elem> = (0..t).map(|_| field.random(rng)).collect();
    Ok(share_with_coefficients(field, secret, &coeffs, m))
}

/// Evaluates `secret + c_1 x + ... + c_t x^t` at `x = 1..=m` (Horner).
pub(crate) fn share_with_coefficients<F: PrimeField>(
    field: &F,
    secret: &F::Elem,
    coeffs: &[F::Elem],
    m: usize,
) -> Vec<F::Elem> {
    (1..=m as u64)
        .map(|x| evaluate(field, secret, coeffs, &field.from_u64(x)))
        .collect()
}

/// `secret + c_1 x + ... + c_t x^t` (Horner).
pub(crate) fn evaluate<F: PrimeField>(
    field: &F,
    secret: &F::Elem,
    coeffs: &[F::Elem],
    x: &F::Elem,
) -> F::Elem {
    let mut acc = field.zero();
    for c in coeffs.iter().rev() {
        acc = field.add(&field.mul(&acc, x), c);
    }
    field.add(&field.mul(&acc, x), secret)
}

/// Lagrange coefficients for interpolating at 0 from the values at the given points.
///
/// Points are the evaluation points themselves (party index + 1), so they must be distinct and
/// non-zero.
pub fn lagrange_at_zero<F: PrimeField>(field: &F, points: &[u64]) -> Vec<F::Elem> {
    points
        .iter()
        .map(|&xj| {
            let mut num = field.one();
            let mut den = field.one();
            for &xk in points {
                if xk != xj {
                    let fk = field.from_u64(xk);
                    num = field.mul(&num, &fk);
                    den = field.mul(&den, &field.sub(&fk, &field.from_u64(xj)));
                }
            }
            // Points are distinct and below p, so den is non-zero.
            let inv = field.inv(&den).unwrap_or_else(|| field.zero());
            field.mul(&num, &inv)
        })
        .collect()
}

/// Reconstructs the secret from `(party index, share)` pairs of a degree-`t` sharing, using the
/// first `t + 1` distinct parties.
pub fn reconstruct<F: PrimeField>(
    field: &F,
    shares: &[(usize, F::Elem)],
    t: usize,
) -> Result<F::Elem, ShamirError> {
    let mut points: Vec<u64> = Vec::with_capacity(t + 1);
    let mut values = Vec::with_capacity(t + 1);
    for (i, s) in shares {
        let x = *i as u64 + 1;
        if !points.contains(&x) {
            points.push(x);
            values.push(s.clone());
        }
        if points.len() == t + 1 {
            break;
        }
    }
    if points.len() < t + 1 {
        return Err(ShamirError::TooFewShares {
            needed: t + 1,
            got: points.len(),
        });
    }
    Ok(combine(field, &lagrange_at_zero(field, &points), &values))
}

/// `sum_j lambda_j * v_j`.
pub(crate) fn combine<F: PrimeField>(field: &F, lambda: &[F::Elem], values: &[F::Elem]) -> F::Elem {
    let mut acc = field.zero();
    for (l, v) in lambda.iter().zip(values) {
        acc = field.add(&acc, &field.mul(l, v));
    }
    acc
}
