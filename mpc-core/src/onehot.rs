//! Secret one-hot vectors: shares of `(u_0, ..., u_{s-1})` with exactly one `u_v = 1`, at a
//! random position `v`. Everything about a secret random value `v` below `s` that is linear in
//! the indicator `[v = i]` — equality with a public constant, comparison with one, the value
//! itself — is then a local sum of entries, which is why comparisons and unit vectors build on
//! them.
//!
//! Pure functions on shares (no communication): they work on any linear sharing, and on plain
//! values, which is how they are tested.

use crate::field::PrimeField;

/// The one-hot vector of the 2-bit value `a + 2b` from a bit pair `[a, b, ab]` (no round: the
/// product `ab` comes with the pair).
pub(crate) fn from_pair<F: PrimeField>(f: &F, [a, b, ab]: &[F::Elem; 3]) -> Vec<F::Elem> {
    let a_only = f.sub(a, ab);
    let b_only = f.sub(b, ab);
    // (1 - a)(1 - b) = 1 - a - b + ab
    let neither = f.sub(&f.sub(&f.add(&f.one(), ab), a), b);
    vec![neither, a_only, b_only, ab.clone()]
}

/// The one-hot vector `[1 - a, a]` of a single bit.
pub(crate) fn from_bit<F: PrimeField>(f: &F, a: &F::Elem) -> Vec<F::Elem> {
    vec![f.sub(&f.one(), a), a.clone()]
}

/// The products a tensor product `lo ⊗ hi` needs: `lo[x] * hi[y]` for `x < |lo| - 1`,
/// `y < |hi| - 1`, row by row. The last row and column follow linearly (each vector sums to 1),
/// which saves `|lo| + |hi| - 1` multiplications.
pub(crate) fn product_terms<F: PrimeField>(f: &F, lo: &[F::Elem], hi: &[F::Elem]) -> Vec<F::Elem> {
    let (a, b) = (lo.len().saturating_sub(1), hi.len().saturating_sub(1));
    let mut out = Vec::with_capacity(a * b);
    for y in &hi[..b] {
        for x in &lo[..a] {
            out.push(f.mul(x, y));
        }
    }
    out
}

/// Number of products [`product_terms`] returns.
pub(crate) fn product_count(lo: usize, hi: usize) -> usize {
    lo.saturating_sub(1) * hi.saturating_sub(1)
}

/// The one-hot vector of `x + |lo| * y` from the one-hots of `x` (`lo`) and `y` (`hi`) and the
/// products from [`product_terms`] (multiplied: shares; or still local: degree-2t values).
pub(crate) fn tensor<F: PrimeField>(
    f: &F,
    lo: &[F::Elem],
    hi: &[F::Elem],
    products: &[F::Elem],
) -> Vec<F::Elem> {
    let (sa, sb) = (lo.len(), hi.len());
    if sa == 0 || sb == 0 {
        return Vec::new();
    }
    let (a, b) = (sa - 1, sb - 1);
    let p = |x: usize, y: usize| &products[y * a + x];
    let mut out = vec![f.zero(); sa * sb];
    for y in 0..b {
        // lo[a] * hi[y] = hi[y] - sum_{x < a} lo[x] hi[y]
        let mut last = hi[y].clone();
        for x in 0..a {
            out[x + sa * y] = p(x, y).clone();
            last = f.sub(&last, p(x, y));
        }
        out[a + sa * y] = last;
    }
    for x in 0..a {
        // lo[x] * hi[b] = lo[x] - sum_{y < b} lo[x] hi[y]
        let mut last = lo[x].clone();
        for y in 0..b {
            last = f.sub(&last, p(x, y));
        }
        out[x + sa * b] = last;
    }
    // lo[a] * hi[b]: 1 minus everything else.
    let mut corner = f.one();
    for v in &out[..sa * sb - 1] {
        corner = f.sub(&corner, v);
    }
    out[sa * sb - 1] = corner;
    out
}

/// `sum_{v in range} u_v`: the indicator that the one-hot's value lies in `range`.
pub(crate) fn sum_range<F: PrimeField>(
    f: &F,
    u: &[F::Elem],
    range: std::ops::Range<usize>,
) -> F::Elem {
    u.get(range)
        .unwrap_or_default()
        .iter()
        .fold(f.zero(), |acc, v| f.add(&acc, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Fp64;

    fn plain_one_hot(v: usize, s: usize) -> Vec<u64> {
        (0..s).map(|i| u64::from(i == v)).collect()
    }

    #[test]
    fn pairs_bits_and_tensors_give_the_right_one_hot() {
        let f = Fp64::new(u64::MAX - 188).expect("prime");
        for a in 0..2u64 {
            for b in 0..2u64 {
                let u = from_pair(&f, &[a, b, a * b]);
                assert_eq!(u, plain_one_hot((a + 2 * b) as usize, 4));
            }
        }
        for (sa, sb) in [(4, 4), (4, 2), (2, 2), (3, 5), (1, 4), (16, 4)] {
            for x in 0..sa {
                for y in 0..sb {
                    let (lo, hi) = (plain_one_hot(x, sa), plain_one_hot(y, sb));
                    let prods = product_terms(&f, &lo, &hi);
                    assert_eq!(prods.len(), product_count(sa, sb));
                    assert_eq!(
                        tensor(&f, &lo, &hi, &prods),
                        plain_one_hot(x + sa * y, sa * sb),
                        "{x} {y} of {sa} {sb}"
                    );
                }
            }
        }
        let u = plain_one_hot(5, 16);
        assert_eq!(sum_range(&f, &u, 6..16), 0);
        assert_eq!(sum_range(&f, &u, 5..16), 1);
        assert_eq!(sum_range(&f, &u, 17..20), 0);
    }
}
