//! Comparisons and equality of secure integers, statistically secure via random bits.
//!
//! For `x` with `|x| < 2^l`: `y = x + 2^l` lies in `[0, 2^(l+1))` and `[x >= 0]` is bit `l` of `y`.
//! We open `c = y + r` with `r = r_low + 2^l r_high` (`r_low` made of `l` random bits, `r_high` a
//! random integer of `k` bits), which hides `y` up to statistical distance about `2^-k`. Then
//! `y mod 2^l = (c mod 2^l) - r_low + 2^l [c mod 2^l < r_low]`, and comparing the public
//! `c_low = c mod 2^l` with the secret `r_low` is where the rounds go.
//!
//! MPyC compares bit by bit: a product of `l + 2` masked terms whose zero test is opened,
//! `ceil(log2(l + 2))` rounds after the opening of `c` (6 for 32-bit integers). Here `r_low` is
//! cut into blocks of 4 bits, each with the one-hot vector of its value (see [`crate::onehot`]).
//! For a public block value `C`, `[C < R]` and `[C = R]` are sums of entries — local — and the
//! blocks are merged pairwise, `(lt, eq)_hi ∘ (lt, eq)_lo = (lt_hi + eq_hi lt_lo, eq_hi eq_lo)`,
//! in `ceil(log2(l / 4))` rounds: 3 for 32-bit integers. The one-hot vectors cost no round of
//! their own: a block's two random bit pairs `(a, b, ab)` come out of the random-bit round, and
//! the 9 products that combine the two 4-entry one-hots ride in the round that opens `c`.

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::onehot;
use crate::runtime::{check_lengths, MpcError, Outcome, Plan, Runtime};
use crate::transport::Transport;

/// Bits per block of a mask.
const BLOCK_BITS: usize = 4;

/// One block of a mask: the one-hot vector of its value, or the two halves whose tensor product
/// it is until a round has multiplied them.
#[derive(Debug)]
enum Block<E> {
    Ready(Vec<E>),
    Halves(Vec<E>, Vec<E>),
}

/// The secret random `r_low` of one comparison: its bits (lowest first) and its blocks.
#[derive(Debug)]
pub(crate) struct Mask<E> {
    bits: Vec<E>,
    blocks: Vec<Block<E>>,
}

/// One value's blocks against the opened value: per block, lowest first, the public block of
/// `c_low` and the block's one-hot vector.
type BlockView<'m, E> = Vec<(usize, &'m [E])>;

/// Widths of the blocks of an `l`-bit mask, lowest first.
fn block_widths(l: usize) -> impl Iterator<Item = usize> {
    (0..l.div_ceil(BLOCK_BITS)).map(move |b| (l - b * BLOCK_BITS).min(BLOCK_BITS))
}

/// Single random bits and bit pairs one `l`-bit mask is made of: a block of 4 bits is two pairs,
/// of 3 a pair and a bit, of 2 a pair, of 1 a bit.
fn mask_needs(l: usize) -> (usize, usize) {
    block_widths(l).fold((0, 0), |(s, p), w| (s + w % 2, p + w / 2))
}

/// The low `l` bits of an opened value (`l <= 63`, enforced by callers).
fn low_bits<F: PrimeField>(f: &F, c: &F::Elem, l: u32) -> u64 {
    let digits = f.to_biguint(c).to_u64_digits();
    digits.first().copied().unwrap_or(0) & ((1u64 << l) - 1)
}

fn mask_error() -> MpcError {
    MpcError::InvalidArgument {
        what: "comparison mask used before its one-hot vectors were built",
    }
}

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    pub(crate) fn check_field_for(&self, l: u32) -> Result<(), MpcError> {
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

    /// Makes sure the random-bit pools hold what `n` comparisons of `l` bits need, in one round
    /// for all of them (with PRSS), so that a sort's comparisons cost no bit rounds later.
    pub(crate) async fn prepare_masks(&mut self, n: usize, l: u32) -> Result<(), MpcError> {
        let (singles, pairs) = mask_needs(l as usize);
        self.fill_bits(singles * n, pairs * n).await
    }

    /// Masks for `n` comparisons of `l` bits, from the pools (filled first if short).
    pub(crate) async fn take_masks(
        &mut self,
        n: usize,
        l: u32,
    ) -> Result<Vec<Mask<F::Elem>>, MpcError> {
        let l = l as usize;
        let (singles, pairs) = mask_needs(l);
        self.fill_bits(singles * n, pairs * n).await?;
        let mut bits = self.take_bits(singles * n).await?.into_iter();
        let mut pairs = self.take_pairs(pairs * n).await?.into_iter();
        let f = self.field().clone();
        let mut masks = Vec::with_capacity(n);
        for _ in 0..n {
            let mut mask = Mask {
                bits: Vec::with_capacity(l),
                blocks: Vec::new(),
            };
            for w in block_widths(l) {
                let pair = if w >= 2 { pairs.next() } else { None };
                let pair_hi = if w == 4 { pairs.next() } else { None };
                let single = if w % 2 == 1 { bits.next() } else { None };
                let lo = match &pair {
                    Some(p) => {
                        mask.bits.extend([p[0].clone(), p[1].clone()]);
                        onehot::from_pair(&f, p)
                    }
                    None => Vec::new(),
                };
                let hi = match (&pair_hi, &single) {
                    (Some(p), _) => {
                        mask.bits.extend([p[0].clone(), p[1].clone()]);
                        onehot::from_pair(&f, p)
                    }
                    (None, Some(b)) => {
                        mask.bits.push(b.clone());
                        onehot::from_bit(&f, b)
                    }
                    (None, None) => Vec::new(),
                };
                mask.blocks.push(match (lo.is_empty(), hi.is_empty()) {
                    (false, false) => Block::Halves(lo, hi),
                    (true, _) => Block::Ready(hi),
                    (false, true) => Block::Ready(lo),
                });
            }
            if mask.bits.len() != l {
                return Err(mask_error());
            }
            masks.push(mask);
        }
        Ok(masks)
    }

    /// `x + 2^l + r_low + 2^l r_high` for each value: what the comparison opens. `x` may be a
    /// local degree-2t value; the caller then opens the result as a product.
    pub(crate) fn masked_values(
        &self,
        x: &[F::Elem],
        l: u32,
        masks: &[Mask<F::Elem>],
        high: &[F::Elem],
    ) -> Vec<F::Elem> {
        let f = self.field();
        let two_l = self.pow2(u64::from(l));
        x.iter()
            .zip(masks)
            .zip(high)
            .map(|((x, mask), h)| {
                let mut acc = f.add(x, &two_l);
                acc = f.add(&acc, &f.mul(h, &two_l));
                f.add(&acc, &self.mask_value(mask))
            })
            .collect()
    }

    /// `r_low = sum_i 2^i r_i`.
    fn mask_value(&self, mask: &Mask<F::Elem>) -> F::Elem {
        let f = self.field();
        mask.bits.iter().enumerate().fold(f.zero(), |acc, (i, b)| {
            f.add(&acc, &f.mul(b, &self.pow2(i as u64)))
        })
    }

    /// Runs `plan` as one round that also builds the masks' one-hot vectors (their products are
    /// re-shared along with the plan's).
    pub(crate) async fn round_with_masks(
        &mut self,
        mut plan: Plan<F::Elem>,
        masks: &mut [Mask<F::Elem>],
    ) -> Result<Outcome<F::Elem>, MpcError> {
        let f = self.field().clone();
        let n = plan.reshare.len();
        for mask in masks.iter() {
            for block in &mask.blocks {
                if let Block::Halves(lo, hi) = block {
                    plan.reshare.extend(onehot::product_terms(&f, lo, hi));
                }
            }
        }
        let mut out = self.round(plan).await?;
        let products = out.reshared.split_off(n);
        let mut at = 0;
        for mask in masks.iter_mut() {
            for block in mask.blocks.iter_mut() {
                if let Block::Halves(lo, hi) = block {
                    let count = onehot::product_count(lo.len(), hi.len());
                    let p = products.get(at..at + count).ok_or_else(mask_error)?;
                    at += count;
                    *block = Block::Ready(onehot::tensor(&f, lo, hi, p));
                }
            }
        }
        Ok(out)
    }

    /// Random masks and the masked values of `x`, opened in one round. Returns the masks and
    /// the opened values.
    async fn mask_and_open(
        &mut self,
        x: &[F::Elem],
        l: u32,
    ) -> Result<(Vec<Mask<F::Elem>>, Vec<F::Elem>), MpcError> {
        let mut masks = self.take_masks(x.len(), l).await?;
        let high = self
            .random_ints(x.len(), self.statistical_security())
            .await?;
        let open = self.masked_values(x, l, &masks, &high);
        let plan = Plan {
            open,
            ..Plan::default()
        };
        let out = self.round_with_masks(plan, &mut masks).await?;
        Ok((masks, out.opened))
    }

    /// Per value, its blocks against the opened value.
    fn blocks_against<'m>(
        &self,
        opened: &[F::Elem],
        masks: &'m [Mask<F::Elem>],
        l: u32,
    ) -> Result<Vec<BlockView<'m, F::Elem>>, MpcError> {
        let f = self.field();
        opened
            .iter()
            .zip(masks)
            .map(|(c, mask)| {
                let c_low = low_bits(f, c, l);
                mask.blocks
                    .iter()
                    .enumerate()
                    .map(|(b, block)| match block {
                        Block::Ready(u) => {
                            let value = (c_low >> (b * BLOCK_BITS)) as usize & (u.len() - 1);
                            Ok((value, u.as_slice()))
                        }
                        Block::Halves(..) => Err(mask_error()),
                    })
                    .collect()
            })
            .collect()
    }

    /// Shares of `[c_low < r_low]` for each value, by merging the blocks' `(lt, eq)` pairwise
    /// (`ceil(log2 blocks)` rounds for all values together).
    async fn compare_blocks(
        &mut self,
        blocks: Vec<BlockView<'_, F::Elem>>,
    ) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field().clone();
        let mut groups: Vec<Vec<(F::Elem, F::Elem)>> = blocks
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .map(|(c, u)| {
                        let lt = onehot::sum_range(&f, u, c + 1..u.len());
                        (lt, u[c].clone())
                    })
                    .collect()
            })
            .collect();
        while groups.iter().any(|g| g.len() > 1) {
            // (lt, eq)_hi ∘ (lt, eq)_lo = (lt_hi + eq_hi lt_lo, eq_hi eq_lo); the last merge of a
            // group needs no eq.
            let mut local = Vec::new();
            for g in &groups {
                for pair in g.chunks_exact(2) {
                    let ((lt_lo, eq_lo), (_, eq_hi)) = (&pair[0], &pair[1]);
                    local.push(f.mul(eq_hi, lt_lo));
                    if g.len() > 2 {
                        local.push(f.mul(eq_hi, eq_lo));
                    }
                }
            }
            let mut products = self.reshare(local).await?.into_iter();
            groups = groups
                .into_iter()
                .map(|g| {
                    let need_eq = g.len() > 2;
                    let mut next = Vec::with_capacity(g.len().div_ceil(2));
                    let mut it = g.into_iter();
                    while let Some(lo) = it.next() {
                        let Some(hi) = it.next() else {
                            next.push(lo);
                            break;
                        };
                        let lt = f.add(&hi.0, &products.next().unwrap_or_else(|| f.zero()));
                        let eq = if need_eq {
                            products.next().unwrap_or_else(|| f.zero())
                        } else {
                            f.zero()
                        };
                        next.push((lt, eq));
                    }
                    next
                })
                .collect();
        }
        Ok(groups
            .into_iter()
            .map(|g| g.into_iter().next().map_or_else(|| f.zero(), |(lt, _)| lt))
            .collect())
    }

    /// Finishes `[x < 0]` once the masked values are open: `x` as degree-t shares, `opened` the
    /// values [`Runtime::masked_values`] gave for it, `masks` with their one-hots built.
    pub(crate) async fn finish_less_than_zero(
        &mut self,
        x: &[F::Elem],
        opened: &[F::Elem],
        masks: &[Mask<F::Elem>],
        l: u32,
    ) -> Result<Vec<F::Elem>, MpcError> {
        let blocks = self.blocks_against(opened, masks, l)?;
        let u = self.compare_blocks(blocks).await?;
        let f = self.field().clone();
        let c_low = opened.iter().map(|c| low_bits(&f, c, l));
        let one = f.one();
        let two_l = self.pow2(u64::from(l));
        let inv_two_l = f.inv(&two_l).unwrap_or_else(|| f.zero());
        Ok(x.iter()
            .zip(masks)
            .zip(c_low)
            .zip(&u)
            .map(|(((x, mask), c), u)| {
                // y mod 2^l = c_low - r_low + 2^l [c_low < r_low]; [x >= 0] = (y - y mod 2^l) / 2^l
                let y_mod = f.add(
                    &f.sub(&f.from_u64(c), &self.mask_value(mask)),
                    &f.mul(&two_l, u),
                );
                let y = f.add(x, &two_l);
                let ge = f.mul(&f.sub(&y, &y_mod), &inv_two_l);
                f.sub(&one, &ge)
            })
            .collect())
    }

    /// Shares of `[x < 0]` for each `x` with `|x| < 2^l` (`l <= 63`): the masked opening plus
    /// `ceil(log2(l / 4))` rounds.
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
        let (masks, opened) = self.mask_and_open(x, l).await?;
        self.finish_less_than_zero(x, &opened, &masks, l).await
    }

    /// Shares of `[a_i < b_i]` for secure integers of bit length `l` (values in
    /// `[-2^(l-1), 2^(l-1))`).
    pub async fn less_than(
        &mut self,
        a: &[F::Elem],
        b: &[F::Elem],
        l: u32,
    ) -> Result<Vec<F::Elem>, MpcError> {
        let d = self.differences(a, b)?;
        self.less_than_zero(&d, l).await
    }

    /// Shares of `[x == 0]` for each `x` with `|x| < 2^l` (`l <= 63`): the masked value's low
    /// bits equal the mask exactly when `x = 0`, i.e. every block's value matches; the blocks'
    /// indicators are multiplied in `ceil(log2(l / 4))` rounds.
    pub async fn is_zero(&mut self, x: &[F::Elem], l: u32) -> Result<Vec<F::Elem>, MpcError> {
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let l = l.clamp(1, 63);
        self.check_field_for(l)?;
        let (masks, opened) = self.mask_and_open(x, l).await?;
        let groups = self
            .blocks_against(&opened, &masks, l)?
            .into_iter()
            .map(|g| g.into_iter().map(|(c, u)| u[c].clone()).collect())
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
        let d = self.differences(a, b)?;
        self.is_zero(&d, l).await
    }

    /// `a_i - b_i`, or `LengthMismatch`.
    fn differences(&self, a: &[F::Elem], b: &[F::Elem]) -> Result<Vec<F::Elem>, MpcError> {
        check_lengths(a, b)?;
        let f = self.field();
        Ok(a.iter().zip(b).map(|(x, y)| f.sub(x, y)).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_cut_into_blocks_of_four_bits() {
        assert_eq!(block_widths(32).collect::<Vec<_>>(), vec![4; 8]);
        assert_eq!(block_widths(7).collect::<Vec<_>>(), vec![4, 3]);
        assert_eq!(block_widths(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(mask_needs(32), (0, 16));
        assert_eq!(mask_needs(7), (1, 3));
        assert_eq!(mask_needs(6), (0, 3));
        assert_eq!(mask_needs(5), (1, 2));
    }
}
