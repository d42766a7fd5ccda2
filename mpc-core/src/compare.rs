//! Comparisons and equality of secure integers, statistically secure via random bits (MPyC's
//! `sgn` with Toft's public zero test of a product of masked bit-wise terms).
//!
//! For `x` with `|x| < 2^L`: `y = x + 2^L` lies in `[0, 2^(L+1))` and `[x >= 0]` is bit `L` of `y`.
//! We open `c = y + r` with `r = sum_i 2^i r_i + 2^L r''` (random bits `r_i`, a random integer `r''`
//! of `k` bits), which hides `y` up to statistical distance about `2^-k`. Then
//! `y mod 2^L = (c mod 2^L) - (r mod 2^L) + 2^L [c mod 2^L < r mod 2^L]`, and the bit-wise
//! comparison of the public `c` with the secret bits is one public zero test of a product, masked
//! by a random sign so that the opened bit reveals nothing.

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::runtime::{MpcError, Runtime};
use crate::transport::Transport;

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    fn check_field_for(&self, l: u32) -> Result<(), MpcError> {
        // c < 2^(L+1) + 2^L + 2^(L+k) must not wrap around p.
        let needed_bits = u64::from(l) + u64::from(self.statistical_security()) + 2;
        let field_bits = self.field().modulus().bits();
        if field_bits < needed_bits {
            return Err(MpcError::FieldTooSmall {
                field_bits,
                needed_bits,
            });
        }
        Ok(())
    }

    /// Masks each `x` (`|x| < 2^l`) and opens it. Returns the random bits used (`l` per value) and
    /// the low `l` bits of each opened value.
    async fn mask_and_open(
        &mut self,
        x: &[F::Elem],
        l: u32,
        bits: &[F::Elem],
    ) -> Result<Vec<u64>, MpcError> {
        let f = self.field().clone();
        let k = self.statistical_security();
        let high = self.random_ints(x.len(), k).await?;
        let two_l = self.pow2(u64::from(l));
        let pows: Vec<F::Elem> = (0..u64::from(l)).map(|i| self.pow2(i)).collect();
        let masked: Vec<F::Elem> = x
            .iter()
            .zip(bits.chunks(l as usize))
            .zip(&high)
            .map(|((x, rb), h)| {
                let mut acc = f.add(x, &two_l);
                acc = f.add(&acc, &f.mul(h, &two_l));
                for (b, p) in rb.iter().zip(&pows) {
                    acc = f.add(&acc, &f.mul(b, p));
                }
                acc
            })
            .collect();
        let opened = self.open(&masked).await?;
        // Low l bits of each opened value; l <= 63 is enforced by callers.
        Ok(opened
            .iter()
            .map(|c| {
                let digits = f.to_biguint(c).to_u64_digits();
                digits.first().copied().unwrap_or(0) & ((1u64 << l) - 1)
            })
            .collect())
    }

    /// Shares of `[x < 0]` for each `x` with `|x| < 2^l` (`l <= 63`).
    pub async fn less_than_zero(
        &mut self,
        x: &[F::Elem],
        l: u32,
    ) -> Result<Vec<F::Elem>, MpcError> {
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let l = l.clamp(1, 63);
        self.check_field_for(l)?;
        let f = self.field().clone();
        let n = x.len();
        let lu = l as usize;
        // l bits for r mod 2^l, one for the random sign s.
        let all_bits = self.take_bits(n * (lu + 1)).await?;
        let (r_bits, signs): (Vec<&[F::Elem]>, Vec<F::Elem>) = all_bits
            .chunks(lu + 1)
            .map(|c| (&c[..lu], f.sub(&f.add(&c[lu], &c[lu]), &f.one())))
            .unzip();
        let r_flat: Vec<F::Elem> = r_bits.iter().flat_map(|c| c.iter().cloned()).collect();
        let c_low = self.mask_and_open(x, l, &r_flat).await?;

        let three = f.from_u64(3);
        let one = f.one();
        let groups: Vec<Vec<F::Elem>> = (0..n)
            .map(|v| {
                let (c, r, s) = (c_low[v], r_bits[v], &signs[v]);
                let mut e = vec![f.zero(); lu + 1];
                let mut xors = f.zero();
                for i in (0..lu).rev() {
                    let ci = (c >> i) & 1 == 1;
                    let ci_f = if ci { one.clone() } else { f.zero() };
                    // e_i = s + r_i - c_i + 3 * sum_{j>i} (c_j xor r_j): zero exactly at the first
                    // differing bit when s = c_i - r_i.
                    e[i] = f.add(&f.sub(&f.add(s, &r[i]), &ci_f), &f.mul(&three, &xors));
                    let xor = if ci { f.sub(&one, &r[i]) } else { r[i].clone() };
                    xors = f.add(&xors, &xor);
                }
                e[lu] = f.add(&f.sub(s, &one), &f.mul(&three, &xors));
                e
            })
            .collect();
        let zero = self.product_is_zero_public(groups).await?;

        let inv2 = f.inv(&f.from_u64(2)).unwrap_or_else(|| f.zero());
        let two_l = self.pow2(u64::from(l));
        let inv_two_l = f.inv(&two_l).unwrap_or_else(|| f.zero());
        let pows: Vec<F::Elem> = (0..u64::from(l)).map(|i| self.pow2(i)).collect();
        Ok((0..n)
            .map(|v| {
                let s = &signs[v];
                // u = [c mod 2^l < r mod 2^l]; the masked test says which of (1 -+ s)/2 it is.
                let u = if zero[v] {
                    f.mul(&f.sub(&one, s), &inv2)
                } else {
                    f.mul(&f.add(&one, s), &inv2)
                };
                let mut r_low = f.zero();
                for (b, p) in r_bits[v].iter().zip(&pows) {
                    r_low = f.add(&r_low, &f.mul(b, p));
                }
                let y_mod = f.add(&f.sub(&f.from_u64(c_low[v]), &r_low), &f.mul(&two_l, &u));
                let y = f.add(&x[v], &two_l);
                let ge = f.mul(&f.sub(&y, &y_mod), &inv_two_l);
                f.sub(&one, &ge)
            })
            .collect())
    }

    /// Shares of `[a_i < b_i]` for secure integers of bit length `l` (values in
    /// `[-2^(l-1), 2^(l-1))`).
    pub async fn less_than(
        &mut self,
        a: &[F::Elem],
        b: &[F::Elem],
        l: u32,
    ) -> Result<Vec<F::Elem>, MpcError> {
        if a.len() != b.len() {
            return Err(MpcError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        let f = self.field().clone();
        let d: Vec<F::Elem> = a.iter().zip(b).map(|(x, y)| f.sub(x, y)).collect();
        self.less_than_zero(&d, l).await
    }

    /// Shares of `[x == 0]` for each `x` with `|x| < 2^l` (`l <= 63`): the masked value's low
    /// bits equal the mask's bits exactly when `x = 0`, tested by a secret product.
    pub async fn is_zero(&mut self, x: &[F::Elem], l: u32) -> Result<Vec<F::Elem>, MpcError> {
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let l = l.clamp(1, 63);
        self.check_field_for(l)?;
        let f = self.field().clone();
        let lu = l as usize;
        let bits = self.take_bits(x.len() * lu).await?;
        let c_low = self.mask_and_open(x, l, &bits).await?;
        let one = f.one();
        let groups = bits
            .chunks(lu)
            .zip(&c_low)
            .map(|(r, c)| {
                (0..lu)
                    .map(|i| {
                        // 1 - (c_i xor r_i)
                        if (c >> i) & 1 == 1 {
                            r[i].clone()
                        } else {
                            f.sub(&one, &r[i])
                        }
                    })
                    .collect()
            })
            .collect();
        self.products(groups).await
    }

    /// Shares of `[a_i == b_i]` for secure integers of bit length `l`.
    pub async fn equal(
        &mut self,
        a: &[F::Elem],
        b: &[F::Elem],
        l: u32,
    ) -> Result<Vec<F::Elem>, MpcError> {
        if a.len() != b.len() {
            return Err(MpcError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        let f = self.field().clone();
        let d: Vec<F::Elem> = a.iter().zip(b).map(|(x, y)| f.sub(x, y)).collect();
        self.is_zero(&d, l).await
    }

    /// Index (shared) and value (shared) of the maximum; ties go to the lowest index. A
    /// tournament of `ceil(log2 n)` comparison layers.
    pub async fn argmax(
        &mut self,
        x: &[F::Elem],
        l: u32,
    ) -> Result<Option<(F::Elem, F::Elem)>, MpcError> {
        let f = self.field().clone();
        let mut cur: Vec<(F::Elem, F::Elem)> = x
            .iter()
            .enumerate()
            .map(|(i, v)| (f.from_u64(i as u64), v.clone()))
            .collect();
        while cur.len() > 1 {
            let pairs: Vec<_> = cur
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            let a: Vec<F::Elem> = pairs.iter().map(|(p, _)| p.1.clone()).collect();
            let b: Vec<F::Elem> = pairs.iter().map(|(_, q)| q.1.clone()).collect();
            let c = self.less_than(&a, &b, l).await?;
            // Select (index, value) of the larger with one batched multiplication.
            let mut cs = Vec::new();
            let mut diffs = Vec::new();
            for (ci, (p, q)) in c.iter().zip(&pairs) {
                cs.push(ci.clone());
                diffs.push(f.sub(&q.0, &p.0));
                cs.push(ci.clone());
                diffs.push(f.sub(&q.1, &p.1));
            }
            let h = self.mul(&cs, &diffs).await?;
            let mut next: Vec<(F::Elem, F::Elem)> = pairs
                .iter()
                .zip(h.chunks_exact(2))
                .map(|((p, _), h)| (f.add(&p.0, &h[0]), f.add(&p.1, &h[1])))
                .collect();
            if cur.len() % 2 == 1 {
                next.extend(cur.last().cloned());
            }
            cur = next;
        }
        Ok(cur.into_iter().next())
    }
}
