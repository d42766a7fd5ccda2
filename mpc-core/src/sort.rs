//! Batcher's merge-exchange sort (Knuth, TAOCP 5.2.2 Algorithm M), the network MPyC's
//! `mpc.sorted` uses: `t(t+1)/2` layers of independent compare-exchanges for `n <= 2^t`. Each layer
//! is one batched comparison plus one multiplication round.

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::runtime::{MpcError, Runtime};
use crate::transport::Transport;

/// The layers of compare-exchange pairs `(i, j)`, `i < j`, that sort `n` elements.
pub fn batcher_layers(n: usize) -> Vec<Vec<(usize, usize)>> {
    let mut layers = Vec::new();
    if n < 2 {
        return layers;
    }
    let t = (usize::BITS - (n - 1).leading_zeros()) as usize;
    let mut p = 1usize << (t - 1);
    while p > 0 {
        let (mut d, mut q, mut r) = (p, 1usize << (t - 1), 0usize);
        while d > 0 {
            let layer: Vec<(usize, usize)> = (0..n - d)
                .filter(|i| i & p == r)
                .map(|i| (i, i + d))
                .collect();
            if !layer.is_empty() {
                layers.push(layer);
            }
            d = q.saturating_sub(p);
            q >>= 1;
            r = p;
        }
        p >>= 1;
    }
    layers
}

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    /// Sorts shared secure integers of bit length `l` ascending. All random bits for all
    /// comparisons are generated up front in one batch.
    pub async fn sort(&mut self, x: &[F::Elem], l: u32) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field().clone();
        let layers = batcher_layers(x.len());
        let comparisons: usize = layers.iter().map(Vec::len).sum();
        self.reserve_bits(comparisons * (l.clamp(1, 63) as usize + 1))
            .await?;
        let mut x = x.to_vec();
        for layer in layers {
            let a: Vec<F::Elem> = layer.iter().map(|&(i, _)| x[i].clone()).collect();
            let b: Vec<F::Elem> = layer.iter().map(|&(_, j)| x[j].clone()).collect();
            let swap = self.less_than(&b, &a, l).await?;
            let diff: Vec<F::Elem> = a.iter().zip(&b).map(|(a, b)| f.sub(b, a)).collect();
            let h = self.mul(&swap, &diff).await?;
            for (&(i, j), h) in layer.iter().zip(&h) {
                x[i] = f.add(&x[i], h);
                x[j] = f.sub(&x[j], h);
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorts_all_01_inputs(n: usize) -> bool {
        let layers = batcher_layers(n);
        (0..1u32 << n).all(|mask| {
            let mut v: Vec<u32> = (0..n).map(|i| (mask >> i) & 1).collect();
            for layer in &layers {
                for &(i, j) in layer {
                    if v[j] < v[i] {
                        v.swap(i, j);
                    }
                }
            }
            v.windows(2).all(|w| w[0] <= w[1])
        })
    }

    #[test]
    fn batcher_network_sorts_every_zero_one_input() {
        // 0-1 principle: a network that sorts all 0/1 inputs sorts everything.
        for n in 0..=12 {
            assert!(sorts_all_01_inputs(n), "n = {n}");
        }
    }

    #[test]
    fn batcher_layers_have_disjoint_pairs() {
        for n in [5, 8, 13, 32, 64] {
            for layer in batcher_layers(n) {
                let mut seen = vec![false; n];
                for (i, j) in layer {
                    assert!(!seen[i] && !seen[j]);
                    seen[i] = true;
                    seen[j] = true;
                }
            }
        }
    }
}
