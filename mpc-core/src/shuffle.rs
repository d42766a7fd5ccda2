//! Secure random permutations and derangements: Fisher–Yates with secret random unit vectors
//! (MPyC's `mpyc.random.shuffle` / `random_derangement`), batched so that all unit vectors of a
//! shuffle are built in lockstep and every Fisher–Yates step of all candidates shares one round.

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::runtime::{MpcError, Runtime};
use crate::transport::Transport;

/// A random derangement is rejected and redrawn while it has a fixed point; for `n >= 2` each
/// attempt succeeds with probability at least 1/3, so this many failures mean something is wrong.
const MAX_DERANGEMENT_ATTEMPTS: usize = 200;

/// State of one unit vector being built (MPyC's `random_unit_vector`, from the top bit of
/// `n - 1` down; at a 0 bit, a candidate that would land beyond `n - 1` is rejected publicly).
struct UnitJob<E> {
    b: usize,
    k: usize,
    x: Vec<E>,
    i: usize,
    u: Vec<E>,
}

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    /// Secret uniformly random unit vectors of the given lengths (a 1 at a uniformly random
    /// position), built together: about `log2(max n)` rounds plus rejections.
    pub async fn random_unit_vectors(
        &mut self,
        sizes: &[usize],
    ) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let f = self.field().clone();
        let one = f.one();
        let total_bits: usize = sizes.iter().map(|&n| bit_length(n.saturating_sub(1))).sum();
        let mut pool = self.take_bits(total_bits).await?.into_iter();
        let mut jobs: Vec<UnitJob<F::Elem>> = sizes
            .iter()
            .map(|&n| {
                let b = n.saturating_sub(1);
                let k = bit_length(b);
                let x: Vec<F::Elem> = pool.by_ref().take(k).collect();
                let u = match x.last() {
                    Some(top) => vec![top.clone(), f.sub(&one, top)],
                    None => vec![one.clone()],
                };
                UnitJob {
                    b,
                    k,
                    x,
                    i: k.saturating_sub(1),
                    u,
                }
            })
            .collect();
        let mut rounds = 0usize;
        while jobs.iter().any(|j| j.i > 0) {
            rounds += 1;
            if rounds > 64 * (1 + sizes.len()) {
                return Err(MpcError::Exhausted {
                    what: "random unit vector",
                    attempts: rounds,
                });
            }
            let active: Vec<bool> = jobs.iter().map(|j| j.i > 0).collect();
            let (mut ma, mut mb, mut oa, mut ob) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for job in jobs.iter_mut().filter(|j| j.i > 0) {
                job.i -= 1;
                let xi = &job.x[job.i];
                if (job.b >> job.i) & 1 == 1 {
                    for ue in &job.u {
                        ma.push(xi.clone());
                        mb.push(ue.clone());
                    }
                } else {
                    oa.push(xi.clone());
                    ob.push(job.u[0].clone());
                    for ue in &job.u[1..] {
                        ma.push(xi.clone());
                        mb.push(ue.clone());
                    }
                }
            }
            let (prods, opened) = self.mul_and_open_products((&ma, &mb), (&oa, &ob)).await?;
            let mut prods = prods.into_iter();
            let mut opened = opened.into_iter();
            let mut restarts = Vec::new();
            for (idx, job) in jobs.iter_mut().enumerate() {
                if !active[idx] {
                    continue;
                }
                if (job.b >> job.i) & 1 == 1 {
                    let v: Vec<F::Elem> = prods.by_ref().take(job.u.len()).collect();
                    let rest: Vec<F::Elem> =
                        job.u.iter().zip(&v).map(|(a, b)| f.sub(a, b)).collect();
                    job.u = v.into_iter().chain(rest).collect();
                } else {
                    let v0 = opened.next().unwrap_or_else(|| f.zero());
                    let v: Vec<F::Elem> = prods.by_ref().take(job.u.len() - 1).collect();
                    if v0 == one {
                        restarts.push(idx);
                    } else {
                        let rest: Vec<F::Elem> = job.u[1..]
                            .iter()
                            .zip(&v)
                            .map(|(a, b)| f.sub(a, b))
                            .collect();
                        let mut u = vec![job.u[0].clone()];
                        u.extend(v);
                        u.extend(rest);
                        job.u = u;
                    }
                }
            }
            if !restarts.is_empty() {
                let need: usize = restarts.iter().map(|&j| jobs[j].k - jobs[j].i).sum();
                let mut fresh = self.take_bits(need).await?.into_iter();
                for j in restarts {
                    let job = &mut jobs[j];
                    for pos in job.i..job.k {
                        job.x[pos] = fresh.next().unwrap_or_else(|| f.zero());
                    }
                    job.i = job.k - 1;
                    let top = job.x[job.i].clone();
                    job.u = vec![top.clone(), f.sub(&one, &top)];
                }
            }
        }
        Ok(jobs.into_iter().map(|j| j.u).collect())
    }

    /// Shuffles each list secretly and independently (Fisher–Yates with secret unit vectors:
    /// `n - 1` steps of one round each, all lists in lockstep).
    pub async fn shuffle(
        &mut self,
        lists: Vec<Vec<F::Elem>>,
    ) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let f = self.field().clone();
        let sizes: Vec<usize> = lists.iter().flat_map(|l| (2..=l.len()).rev()).collect();
        let mut units = self.random_unit_vectors(&sizes).await?.into_iter();
        let mut per_list: Vec<Vec<Vec<F::Elem>>> = lists
            .iter()
            .map(|l| units.by_ref().take(l.len().saturating_sub(1)).collect())
            .collect();
        let mut lists = lists;
        let steps = lists
            .iter()
            .map(|l| l.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        for i in 0..steps {
            // With u a unit vector, u_k u_j = [k = j] u_j, so MPyC's two rounds
            //   x_u = <x[i..], u>;  d = (x_i - x_u) u
            // collapse into one: d_j = x_i u_j - x_{i+j} u_j and x_u are all degree-2 expressions
            // of the shares, re-shared together. (d_0 is identically 0.)
            let f2 = f.clone();
            let mut reshare = Vec::new();
            let mut active = Vec::new();
            for (l, list) in lists.iter().enumerate() {
                if list.len() <= i + 1 {
                    continue;
                }
                active.push(l);
                let u = &per_list[l][i];
                let xs = &list[i..];
                let mut xu = f2.zero();
                for (x, ue) in xs.iter().zip(u) {
                    xu = f2.add(&xu, &f2.mul(x, ue));
                }
                reshare.push(xu);
                for (x, ue) in xs.iter().zip(u).skip(1) {
                    reshare.push(f2.mul(&f2.sub(&xs[0], x), ue));
                }
            }
            let mut out = self.reshare(reshare).await?.into_iter();
            for l in active {
                let list = &mut lists[l];
                list[i] = out.next().unwrap_or_else(|| f.zero());
                for x in list.iter_mut().skip(i + 1) {
                    let dj = out.next().unwrap_or_else(|| f.zero());
                    *x = f.add(x, &dj);
                }
                per_list[l][i].clear();
            }
        }
        Ok(lists)
    }

    /// A secret uniformly random permutation of `0..n`.
    pub async fn random_permutation(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field().clone();
        let id: Vec<F::Elem> = (0..n as u64).map(|i| f.from_u64(i)).collect();
        Ok(self.shuffle(vec![id]).await?.pop().unwrap_or_default())
    }

    /// A secret uniformly random derangement (permutation without fixed point) of `0..n`,
    /// `n >= 2`: random permutations are drawn until a public zero test of
    /// `prod_i (pi(i) - i)` says there is no fixed point. `candidates` permutations are drawn per
    /// attempt in the same rounds and the first good one is taken (still uniform: it is the first
    /// success of independent uniform draws); 1 is MPyC's algorithm exactly.
    pub async fn random_derangement(
        &mut self,
        n: usize,
        candidates: usize,
    ) -> Result<Vec<F::Elem>, MpcError> {
        if n < 2 {
            return Err(MpcError::InvalidArgument {
                what: "a derangement needs at least 2 elements",
            });
        }
        let f = self.field().clone();
        let id: Vec<F::Elem> = (0..n as u64).map(|i| f.from_u64(i)).collect();
        // Bits for the unit vectors of about three attempts, in the first round: most runs then
        // need no further bit-generation round (about 1/e of attempts succeed).
        let per_shuffle: usize = (2..=n).map(|k| bit_length(k - 1)).sum();
        self.reserve_bits(3 * candidates.max(1) * per_shuffle)
            .await?;
        for _ in 0..MAX_DERANGEMENT_ATTEMPTS {
            let lists = vec![id.clone(); candidates.max(1)];
            let shuffled = self.shuffle(lists).await?;
            let groups = shuffled
                .iter()
                .map(|p| p.iter().zip(&id).map(|(a, b)| f.sub(a, b)).collect())
                .collect();
            let has_fixed_point = self.product_is_zero_public(groups).await?;
            if let Some(good) = has_fixed_point.iter().position(|z| !z) {
                return Ok(shuffled.into_iter().nth(good).unwrap_or_default());
            }
        }
        Err(MpcError::Exhausted {
            what: "random derangement",
            attempts: MAX_DERANGEMENT_ATTEMPTS,
        })
    }
}

fn bit_length(v: usize) -> usize {
    (usize::BITS - v.leading_zeros()) as usize
}
