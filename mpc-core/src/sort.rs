//! Batcher's merge-exchange sort (Knuth, TAOCP 5.2.2 Algorithm M), the network MPyC's
//! `mpc.sorted` uses: `t(t+1)/2` layers of independent compare-exchanges for `n <= 2^t`. Each layer
//! is one batched comparison; its swap multiplication shares a round with the next layer's
//! opening (or with the final opening), so a layer costs `1 + ceil(log2(l / 4))` rounds — 4 for
//! 32-bit integers, where MPyC's takes 8.

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::runtime::{MpcError, Plan, Runtime};
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

/// A sort in progress: the values as shares, and the last layer's swaps as local degree-2t
/// products `h = [b < a] (b - a)` not yet re-shared, so that the round that re-shares them can
/// also open what comes next.
struct Network<E> {
    x: Vec<E>,
    layer: Vec<(usize, usize)>,
    h: Vec<E>,
}

impl<E: Clone> Network<E> {
    /// The values with the pending swaps applied: local degree-2t values.
    fn local_values<F: PrimeField<Elem = E>>(&self, f: &F) -> Vec<E> {
        let mut v = self.x.clone();
        apply(f, &mut v, &self.layer, &self.h);
        v
    }
}

/// `x_i += h`, `x_j -= h` for each compare-exchange `(i, j)` of `layer`.
fn apply<F: PrimeField>(f: &F, x: &mut [F::Elem], layer: &[(usize, usize)], h: &[F::Elem]) {
    for (&(i, j), h) in layer.iter().zip(h) {
        x[i] = f.add(&x[i], h);
        x[j] = f.sub(&x[j], h);
    }
}

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    /// Sorts shared secure integers of bit length `l` ascending.
    pub async fn sort(&mut self, x: &[F::Elem], l: u32) -> Result<Vec<F::Elem>, MpcError> {
        let mut net = self.sort_network(x, l).await?;
        if !net.h.is_empty() {
            let h = self.reshare(std::mem::take(&mut net.h)).await?;
            apply(self.field(), &mut net.x, &net.layer, &h);
        }
        Ok(net.x)
    }

    /// Sorts and opens the result to everyone: one round less than [`Runtime::sort`] and
    /// [`Runtime::open`], because the last layer's swaps are opened without being re-shared.
    pub async fn sort_and_open(&mut self, x: &[F::Elem], l: u32) -> Result<Vec<F::Elem>, MpcError> {
        let net = self.sort_network(x, l).await?;
        let plan = Plan {
            open_products: net.local_values(self.field()),
            ..Plan::default()
        };
        Ok(self.round(plan).await?.opened_products)
    }

    /// Runs the network up to the last layer's swaps. Rounds: one for the random bits of all
    /// comparisons, then per layer one that re-shares the previous layer's swaps and opens this
    /// layer's masked differences (computed from the not yet re-shared values), and the
    /// comparison's block merges.
    async fn sort_network(&mut self, x: &[F::Elem], l: u32) -> Result<Network<F::Elem>, MpcError> {
        let f = self.field().clone();
        let l = l.clamp(1, 63);
        self.check_field_for(l)?;
        let layers = batcher_layers(x.len());
        let comparisons: usize = layers.iter().map(Vec::len).sum();
        self.prepare_masks(comparisons, l).await?;
        let k = self.statistical_security();
        let mut net = Network {
            x: x.to_vec(),
            layer: Vec::new(),
            h: Vec::new(),
        };
        for layer in layers {
            let mut masks = self.take_masks(layer.len(), l).await?;
            let high = self.random_ints(layer.len(), k).await?;
            let local = net.local_values(&f);
            let d_local: Vec<F::Elem> = layer
                .iter()
                .map(|&(i, j)| f.sub(&local[j], &local[i]))
                .collect();
            let masked = self.masked_values(&d_local, l, &masks, &high);
            let pending = !net.h.is_empty();
            let plan = if pending {
                Plan {
                    reshare: std::mem::take(&mut net.h),
                    open_products: masked,
                    ..Plan::default()
                }
            } else {
                Plan {
                    open: masked,
                    ..Plan::default()
                }
            };
            let out = self.round_with_masks(plan, &mut masks).await?;
            apply(&f, &mut net.x, &net.layer, &out.reshared);
            let opened = if pending {
                out.opened_products
            } else {
                out.opened
            };
            // [b - a < 0] = [b < a]: swap.
            let d: Vec<F::Elem> = layer
                .iter()
                .map(|&(i, j)| f.sub(&net.x[j], &net.x[i]))
                .collect();
            let swap = self.finish_less_than_zero(&d, &opened, &masks, l).await?;
            net.h = swap.iter().zip(&d).map(|(s, d)| f.mul(s, d)).collect();
            net.layer = layer;
        }
        Ok(net)
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
