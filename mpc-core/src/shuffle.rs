//! Secure random permutations and derangements: Fisher–Yates with secret random unit vectors and
//! rejection of permutations with a fixed point (MPyC's `mpyc.random.shuffle` and
//! `random_derangement`), scheduled round by round so that independent work shares rounds.
//!
//! What each round can carry, for every list being shuffled:
//! - **unit vectors**: the unit vector of length `s` for a step is the one-hot vector of a random
//!   `k`-bit value `v` (`k` the bit length of `s - 1`), kept if `v < s` (public test of
//!   `sum_{v >= s} u_v`), drawn again otherwise — MPyC's rejection, tested at the end instead of
//!   bit by bit. Its parts come from the random-bit round (a bit pair is a 4-entry one-hot), so
//!   vectors up to length 4 need no round and longer ones one round per doubling of `k / 2`.
//!   A test of a vector that needed no round is opened in the very round that uses the vector;
//!   if it fails, that step's result is thrown away and the step is done again.
//! - **one Fisher–Yates step**: with `u` a unit vector, `u_k u_j = [k = j] u_j`, so MPyC's two
//!   rounds `x_u = <x[i..], u>; d = (x_i - x_u) u` collapse into one: `d_j = x_i u_j - x_{i+j} u_j`
//!   and `x_u` are all degree-2 expressions, re-shared together. On the public identity (the
//!   first step of a random permutation) they are linear: no round at all.
//! - **the fixed-point test** (derangements): `prod_i (x_i - i)` times a random mask is opened
//!   and only its being zero is used (MPyC's `is_zero_public`). Factors `x_i - i` join as soon as
//!   step `i` has fixed `x_i`, and pending factors are multiplied pairwise every round, so the
//!   product is ready two rounds after the last step instead of `log2 n` rounds after it.
//! - **the reveal**: a caller that opens the derangement anyway has it opened in the test's
//!   round. A rejected candidate is then opened too, which is harmless: it is a uniformly random
//!   permutation with a fixed point, independent of the one accepted.

use std::collections::VecDeque;

use rand::{CryptoRng, RngCore};

use crate::field::PrimeField;
use crate::onehot;
use crate::runtime::{MpcError, Outcome, Plan, Runtime};
use crate::transport::Transport;

/// A random derangement is rejected and redrawn while it has a fixed point; for `n >= 2` each
/// attempt succeeds with probability at least 1/3, so this many failures mean something is wrong.
const MAX_DERANGEMENT_ATTEMPTS: usize = 200;

/// Who learns a derangement opened in the round of its fixed-point test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RevealTo {
    /// Nobody: the caller gets shares.
    Nobody,
    /// Everyone learns every entry.
    All,
    /// Entry `i` is opened to party `owners[i]` only.
    Owners(Vec<usize>),
}

/// A unit vector of length `size`, as the one-hot vector of a random `bits`-bit value.
#[derive(Debug)]
struct Unit<E> {
    size: usize,
    bits: usize,
    state: UnitState<E>,
}

#[derive(Debug)]
enum UnitState<E> {
    /// Waiting for random bits (at the start, or after a rejection).
    Empty,
    /// One-hot vectors of groups of bits, lowest first, still to be multiplied together.
    Parts(Vec<Vec<E>>),
    /// Built without a round; whether its value is below `size` is opened in the next round,
    /// which may already use it.
    Testing(Vec<E>, E),
    Ready(Vec<E>),
}

impl<E: Clone> Unit<E> {
    fn new(size: usize) -> Self {
        let bits = bit_length(size.saturating_sub(1));
        Unit {
            size,
            bits,
            state: UnitState::Empty,
        }
    }

    /// Single random bits and bit pairs it is made of: `(bits % 2, bits / 2)`.
    fn needs(&self) -> (usize, usize) {
        (self.bits % 2, self.bits / 2)
    }

    /// Fills an empty unit from random bits.
    fn start<F: PrimeField<Elem = E>>(&mut self, f: &F, pairs: &[[E; 3]], single: Option<&E>) {
        let mut parts: Vec<Vec<E>> = pairs.iter().map(|p| onehot::from_pair(f, p)).collect();
        parts.extend(single.map(|b| onehot::from_bit(f, b)));
        self.state = match parts.len() {
            0 => UnitState::Ready(vec![f.one()]),
            1 => {
                let u = parts.pop().unwrap_or_default();
                self.finish(f, u, None)
            }
            _ => UnitState::Parts(parts),
        };
    }

    /// The state for a complete one-hot `u` of `2^bits` entries, whose test was opened
    /// (`Some`) or is still to be opened (`None`).
    fn finish<F: PrimeField<Elem = E>>(
        &self,
        f: &F,
        u: Vec<E>,
        tested: Option<&E>,
    ) -> UnitState<E> {
        if u.len() <= self.size {
            return UnitState::Ready(u);
        }
        match tested {
            Some(t) if f.is_zero(t) => UnitState::Ready(u[..self.size].to_vec()),
            Some(_) => UnitState::Empty,
            None => {
                let test = onehot::sum_range(f, &u, self.size..u.len());
                UnitState::Testing(u[..self.size].to_vec(), test)
            }
        }
    }
}

/// One list being shuffled.
#[derive(Debug)]
struct Shuffling<E> {
    x: Vec<E>,
    /// `x` holds public constants (a sharing of degree 0), so the next step is local.
    public: bool,
    /// Next Fisher–Yates step; the list is shuffled when it reaches `len - 1`.
    step: usize,
    /// `units[i]` is the unit vector of step `i`.
    units: Vec<Unit<E>>,
    /// Derangements only: pending factors of `r * prod_i (x_i - i)`, and whether the test is
    /// done (`Some(has a fixed point)`).
    test: Option<FixedPointTest<E>>,
    /// Values opened to us with the test.
    revealed: Vec<E>,
}

#[derive(Debug)]
struct FixedPointTest<E> {
    factors: Vec<E>,
    /// `x_i - i` for `i < joined` have joined the factors.
    joined: usize,
    has_fixed_point: Option<bool>,
}

impl<E: Clone> Shuffling<E> {
    fn new(x: Vec<E>, public: bool, mask: Option<E>) -> Self {
        let n = x.len();
        Shuffling {
            units: (0..n.saturating_sub(1)).map(|i| Unit::new(n - i)).collect(),
            x,
            public,
            step: 0,
            test: mask.map(|r| FixedPointTest {
                factors: vec![r],
                joined: 0,
                has_fixed_point: None,
            }),
            revealed: Vec::new(),
        }
    }

    /// No list, only the unit vectors a list of length `n` needs: built ahead for the next
    /// attempt of a derangement.
    fn units_only(n: usize) -> Self {
        let mut s = Shuffling::new(Vec::new(), false, None);
        s.units = (0..n.saturating_sub(1)).map(|i| Unit::new(n - i)).collect();
        s
    }

    fn shuffled(&self) -> bool {
        self.step + 1 >= self.x.len()
    }

    fn done(&self) -> bool {
        match &self.test {
            Some(t) => t.has_fixed_point.is_some(),
            None => {
                self.shuffled()
                    && self
                        .units
                        .iter()
                        .all(|u| matches!(u.state, UnitState::Ready(_)))
            }
        }
    }

    /// Adds `x_i - i` to the test's factors for every entry fixed by now.
    fn join_factors<F: PrimeField<Elem = E>>(&mut self, f: &F) {
        let fixed = if self.shuffled() {
            self.x.len()
        } else {
            self.step
        };
        if let Some(t) = self.test.as_mut() {
            while t.joined < fixed {
                let i = t.joined;
                t.factors.push(f.sub(&self.x[i], &f.from_u64(i as u64)));
                t.joined += 1;
            }
        }
    }

    /// Step `step` on public `x`: `x_u` and `d` are linear in `u`, so no round is needed.
    fn local_step<F: PrimeField<Elem = E>>(&mut self, f: &F) {
        let i = self.step;
        let Some(u) = self.units.get(i).and_then(|u| match &u.state {
            UnitState::Ready(u) => Some(u.clone()),
            _ => None,
        }) else {
            return;
        };
        let (xu, d) = step_terms(f, &self.x[i..], &u);
        self.apply_step(f, xu, d);
        self.public = false;
    }

    fn apply_step<F: PrimeField<Elem = E>>(&mut self, f: &F, xu: E, d: Vec<E>) {
        let i = self.step;
        self.x[i] = xu;
        for (x, dj) in self.x[i + 1..].iter_mut().zip(d) {
            *x = f.add(x, &dj);
        }
        self.step += 1;
        self.join_factors(f);
    }
}

/// `(x_u, [d_1 ..])` of a Fisher–Yates step on `xs = x[i..]` with unit vector `u`: products of
/// two shares (degree 2t) or, when `xs` is public, shares.
fn step_terms<F: PrimeField>(f: &F, xs: &[F::Elem], u: &[F::Elem]) -> (F::Elem, Vec<F::Elem>) {
    let mut xu = f.zero();
    for (x, ue) in xs.iter().zip(u) {
        xu = f.add(&xu, &f.mul(x, ue));
    }
    let d = xs
        .iter()
        .zip(u)
        .skip(1)
        .map(|(x, ue)| f.mul(&f.sub(&xs[0], x), ue))
        .collect();
    (xu, d)
}

/// What one list put into a round, so the outcome is read back in the same order.
#[derive(Debug, Default)]
struct Planned {
    /// Units being multiplied: index, and whether the test is opened with the final product.
    combines: Vec<(usize, bool)>,
    /// Units whose test is opened.
    tests: Vec<usize>,
    /// The step done (its `x_u` and `d` are re-shared).
    step: bool,
    /// Factor products re-shared.
    factor_products: usize,
    /// The fixed-point test (and the reveal) is opened.
    final_open: bool,
}

impl<F, T, R> Runtime<'_, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    /// Secret uniformly random unit vectors of the given lengths (a 1 at a uniformly random
    /// position), built together.
    pub async fn random_unit_vectors(
        &mut self,
        sizes: &[usize],
    ) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let one = self.field().one();
        let mut lists: Vec<Shuffling<F::Elem>> = sizes
            .iter()
            .map(|&s| {
                let mut l = Shuffling::new(Vec::new(), false, None);
                l.units = vec![Unit::new(s)];
                l
            })
            .collect();
        self.run_shuffles(&mut lists, &RevealTo::Nobody).await?;
        Ok(lists
            .into_iter()
            .map(|mut l| match l.units.pop().map(|u| u.state) {
                Some(UnitState::Ready(u)) => u,
                _ => vec![one.clone()],
            })
            .collect())
    }

    /// Shuffles each list secretly and independently (Fisher–Yates with secret unit vectors,
    /// all lists in lockstep: about one round per step).
    pub async fn shuffle(
        &mut self,
        lists: Vec<Vec<F::Elem>>,
    ) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let mut lists: Vec<Shuffling<F::Elem>> = lists
            .into_iter()
            .map(|x| Shuffling::new(x, false, None))
            .collect();
        self.run_shuffles(&mut lists, &RevealTo::Nobody).await?;
        Ok(lists.into_iter().map(|l| l.x).collect())
    }

    /// A secret uniformly random permutation of `0..n`.
    pub async fn random_permutation(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        let mut lists = vec![Shuffling::new(self.identity(n), true, None)];
        self.run_shuffles(&mut lists, &RevealTo::Nobody).await?;
        Ok(lists.pop().map(|l| l.x).unwrap_or_default())
    }

    fn identity(&self, n: usize) -> Vec<F::Elem> {
        let f = self.field();
        (0..n as u64).map(|i| f.from_u64(i)).collect()
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
        self.derangement(n, candidates, &RevealTo::Nobody)
            .await
            .map(|(shares, _)| shares)
    }

    /// A random derangement opened as `reveal` says, in the round of the last fixed-point test:
    /// the values opened to us, in order.
    pub(crate) async fn random_derangement_revealed(
        &mut self,
        n: usize,
        candidates: usize,
        reveal: &RevealTo,
    ) -> Result<Vec<F::Elem>, MpcError> {
        self.derangement(n, candidates, reveal)
            .await
            .map(|(_, revealed)| revealed)
    }

    async fn derangement(
        &mut self,
        n: usize,
        candidates: usize,
        reveal: &RevealTo,
    ) -> Result<(Vec<F::Elem>, Vec<F::Elem>), MpcError> {
        if n < 2 {
            return Err(MpcError::InvalidArgument {
                what: "a derangement needs at least 2 elements",
            });
        }
        let candidates = candidates.max(1);
        // Bits for about three attempts up front, in one round: most runs then need no further
        // bit-generation round (about 1/e of attempts succeed), and later ones are requested to
        // ride along with rounds that happen anyway.
        let (singles, pairs) = (0..n.saturating_sub(1))
            .map(|i| Unit::<F::Elem>::new(n - i).needs())
            .fold((0, 0), |(s, p), (a, b)| (s + a, p + b));
        self.fill_bits(3 * candidates * singles, 3 * candidates * pairs)
            .await?;
        // Attempts in flight, oldest first. The next attempt starts as soon as the newest has
        // done all its steps, so its first rounds overlap that one's fixed-point test; the result
        // is still the first success in attempt order, hence uniform. If the older attempt
        // succeeds, the younger one's few rounds of work are thrown away.
        let mut flight: VecDeque<Vec<Shuffling<F::Elem>>> = VecDeque::new();
        // The unit vectors of the next attempt, built in the rounds of the current ones: they
        // are independent randomness, so whichever attempt comes next may use them, and it can
        // start its steps at once. (Wasted only when no further attempt is needed.)
        let new_spare = || -> Vec<Shuffling<F::Elem>> {
            (0..candidates).map(|_| Shuffling::units_only(n)).collect()
        };
        let mut spare = new_spare();
        let mut attempts = 0;
        let mut rounds = 0usize;
        loop {
            for group in flight.iter_mut() {
                self.prepare_lists(group).await?;
            }
            self.prepare_lists(&mut spare).await?;
            while flight
                .front()
                .is_some_and(|g| g.iter().all(Shuffling::done))
            {
                let group = flight.pop_front().unwrap_or_default();
                let good = group.into_iter().find(|l| {
                    l.test
                        .as_ref()
                        .is_some_and(|t| t.has_fixed_point == Some(false))
                });
                if let Some(l) = good {
                    return Ok((l.x, l.revealed));
                }
            }
            let start_next = flight
                .back()
                .is_none_or(|g| g.iter().all(Shuffling::shuffled));
            if start_next && flight.len() < 2 && attempts < MAX_DERANGEMENT_ATTEMPTS {
                attempts += 1;
                let masks = self.random(candidates).await?;
                let units = std::mem::replace(&mut spare, new_spare());
                let mut group: Vec<Shuffling<F::Elem>> = masks
                    .into_iter()
                    .zip(units)
                    .map(|(r, u)| {
                        let mut l = Shuffling::new(self.identity(n), true, Some(r));
                        l.units = u.units;
                        l
                    })
                    .collect();
                self.prepare_lists(&mut group).await?;
                self.prepare_lists(&mut spare).await?;
                flight.push_back(group);
            }
            if flight.is_empty() {
                return Err(MpcError::Exhausted {
                    what: "random derangement",
                    attempts,
                });
            }
            rounds += 1;
            if rounds > 64 * (n + 4) * MAX_DERANGEMENT_ATTEMPTS {
                return Err(MpcError::Exhausted {
                    what: "secure shuffle",
                    attempts: rounds,
                });
            }
            // Keep an attempt's worth of bits in reserve, made in rounds that happen anyway, so
            // that the next spare never waits for a bit round of its own.
            let (have_bits, have_pairs) = self.pooled();
            self.request_bits(
                (candidates * singles).saturating_sub(have_bits),
                (candidates * pairs).saturating_sub(have_pairs),
            );
            let mut lists: Vec<&mut Shuffling<F::Elem>> = flight
                .iter_mut()
                .flatten()
                .chain(spare.iter_mut())
                .collect();
            self.shuffle_round(&mut lists, reveal).await?;
        }
    }

    /// Starts empty unit vectors and does the local steps, so that what is left needs rounds.
    async fn prepare_lists(&mut self, lists: &mut [Shuffling<F::Elem>]) -> Result<(), MpcError> {
        let f = self.field().clone();
        self.start_units(lists.iter_mut()).await?;
        for l in lists.iter_mut() {
            if l.public && !l.shuffled() {
                l.local_step(&f);
            }
            l.join_factors(&f);
        }
        Ok(())
    }

    /// One round of work for all `lists`.
    async fn shuffle_round(
        &mut self,
        lists: &mut [&mut Shuffling<F::Elem>],
        reveal: &RevealTo,
    ) -> Result<(), MpcError> {
        let f = self.field().clone();
        let mut plan = Plan::default();
        let planned: Vec<Planned> = lists
            .iter()
            .map(|l| plan_list(&f, l, reveal, &mut plan))
            .collect();
        let out = self.round(plan).await?;
        self.absorb(&f, lists, planned, out, reveal)
    }

    /// Gives every empty unit vector fresh random bits (running a bit round first if the pools
    /// are short).
    async fn start_units<'l>(
        &mut self,
        lists: impl Iterator<Item = &'l mut Shuffling<F::Elem>>,
    ) -> Result<(), MpcError>
    where
        F::Elem: 'l,
    {
        let mut lists: Vec<&mut Shuffling<F::Elem>> = lists.collect();
        let (singles, pairs) = lists
            .iter()
            .flat_map(|l| &l.units)
            .filter(|u| matches!(u.state, UnitState::Empty))
            .map(Unit::needs)
            .fold((0, 0), |(s, p), (a, b)| (s + a, p + b));
        if singles + pairs == 0 {
            return Ok(());
        }
        self.fill_bits(singles, pairs).await?;
        let mut bits = self.take_bits(singles).await?.into_iter();
        let mut pool = self.take_pairs(pairs).await?.into_iter();
        let f = self.field().clone();
        for unit in lists.iter_mut().flat_map(|l| l.units.iter_mut()) {
            if matches!(unit.state, UnitState::Empty) {
                let (s, p) = unit.needs();
                let pairs: Vec<[F::Elem; 3]> = pool.by_ref().take(p).collect();
                let single = if s == 1 { bits.next() } else { None };
                unit.start(&f, &pairs, single.as_ref());
            }
        }
        Ok(())
    }

    /// Drives all lists round by round until each is shuffled (and, for derangements, tested).
    async fn run_shuffles(
        &mut self,
        lists: &mut [Shuffling<F::Elem>],
        reveal: &RevealTo,
    ) -> Result<(), MpcError> {
        let longest = lists.iter().map(|l| l.x.len()).max().unwrap_or(0);
        let mut rounds = 0usize;
        loop {
            self.prepare_lists(lists).await?;
            if lists.iter().all(Shuffling::done) {
                return Ok(());
            }
            rounds += 1;
            if rounds > 64 * (longest + 4) {
                return Err(MpcError::Exhausted {
                    what: "secure shuffle",
                    attempts: rounds,
                });
            }
            let mut refs: Vec<&mut Shuffling<F::Elem>> = lists.iter_mut().collect();
            self.shuffle_round(&mut refs, reveal).await?;
        }
    }

    /// Reads a round's outcome back into the lists, in the order [`plan_list`] wrote it.
    fn absorb(
        &self,
        f: &F,
        lists: &mut [&mut Shuffling<F::Elem>],
        planned: Vec<Planned>,
        out: Outcome<F::Elem>,
        reveal: &RevealTo,
    ) -> Result<(), MpcError> {
        let short = || MpcError::InvalidArgument {
            what: "round outcome shorter than its plan",
        };
        let mut reshared = out.reshared.into_iter();
        let mut opened = out.opened.into_iter();
        let mut opened_products = out.opened_products.into_iter();
        let mut private = out.private.into_iter();
        for (l, p) in lists.iter_mut().zip(planned) {
            for (idx, tested) in p.combines {
                let unit = &mut l.units[idx];
                let UnitState::Parts(parts) = std::mem::replace(&mut unit.state, UnitState::Empty)
                else {
                    return Err(short());
                };
                let mut next = Vec::with_capacity(parts.len().div_ceil(2));
                let mut it = parts.into_iter();
                while let Some(lo) = it.next() {
                    let Some(hi) = it.next() else {
                        next.push(lo);
                        break;
                    };
                    let products: Vec<F::Elem> = reshared
                        .by_ref()
                        .take(onehot::product_count(lo.len(), hi.len()))
                        .collect();
                    next.push(onehot::tensor(f, &lo, &hi, &products));
                }
                unit.state = if next.len() == 1 {
                    let u = next.pop().unwrap_or_default();
                    let test = if tested {
                        Some(opened_products.next().ok_or_else(short)?)
                    } else {
                        None
                    };
                    unit.finish(f, u, test.as_ref())
                } else {
                    UnitState::Parts(next)
                };
            }
            for idx in p.tests {
                let unit = &mut l.units[idx];
                let test = opened.next().ok_or_else(short)?;
                if let UnitState::Testing(u, _) =
                    std::mem::replace(&mut unit.state, UnitState::Empty)
                {
                    if f.is_zero(&test) {
                        unit.state = UnitState::Ready(u);
                    }
                }
            }
            if let Some(t) = l.test.as_mut() {
                let mut products: Vec<F::Elem> =
                    reshared.by_ref().take(p.factor_products).collect();
                if p.factor_products > 0 {
                    let rest = t.factors.split_off(2 * p.factor_products);
                    products.extend(rest);
                    t.factors = products;
                }
                if p.final_open {
                    let z = opened_products.next().ok_or_else(short)?;
                    t.has_fixed_point = Some(f.is_zero(&z));
                    l.revealed = match reveal {
                        RevealTo::Nobody => Vec::new(),
                        RevealTo::All => opened.by_ref().take(l.x.len()).collect(),
                        RevealTo::Owners(owners) => {
                            let mine = owners.iter().filter(|&&o| o == self.party()).count();
                            private.by_ref().take(mine).collect()
                        }
                    };
                }
            }
            if p.step {
                let i = l.step;
                let xu = reshared.next().ok_or_else(short)?;
                let d: Vec<F::Elem> = reshared.by_ref().take(l.x.len() - i - 1).collect();
                // A step done with a unit vector whose test failed in the same round is void.
                if matches!(l.units[i].state, UnitState::Ready(_)) {
                    l.apply_step(f, xu, d);
                    l.public = false;
                }
            }
        }
        Ok(())
    }
}

/// Puts one list's work for the coming round into `plan` (see the module docs).
fn plan_list<F: PrimeField>(
    f: &F,
    l: &Shuffling<F::Elem>,
    reveal: &RevealTo,
    plan: &mut Plan<F::Elem>,
) -> Planned {
    let mut p = Planned::default();
    // The vector the next step may use this round: a usable one, or, while `x` is public, one
    // still being built (its entries are local degree-2t values, times public constants that
    // is still degree 2t) or tested.
    let mut step_vector: Option<Vec<F::Elem>> = None;
    for (idx, unit) in l.units.iter().enumerate() {
        match &unit.state {
            UnitState::Parts(parts) => {
                let last = parts.len() == 2;
                let mut local = Vec::new();
                for pair in parts.chunks_exact(2) {
                    let products = onehot::product_terms(f, &pair[0], &pair[1]);
                    if last {
                        local = onehot::tensor(f, &pair[0], &pair[1], &products);
                    }
                    plan.reshare.extend(products);
                }
                // The test of the finished vector, from its local (degree-2t) entries.
                let tested = last && local.len() > unit.size;
                if tested {
                    plan.open_products
                        .push(onehot::sum_range(f, &local, unit.size..local.len()));
                }
                if last && l.public && idx == l.step {
                    local.truncate(unit.size);
                    step_vector = Some(local);
                }
                p.combines.push((idx, tested));
            }
            UnitState::Testing(u, test) => {
                plan.open.push(test.clone());
                p.tests.push(idx);
                if idx == l.step {
                    step_vector = Some(u.clone());
                }
            }
            UnitState::Ready(u) if idx == l.step && !l.public => step_vector = Some(u.clone()),
            UnitState::Empty | UnitState::Ready(_) => {}
        }
    }
    if let Some(t) = &l.test {
        if t.has_fixed_point.is_none() {
            if t.joined == l.x.len() && t.factors.len() <= 2 {
                let z = match t.factors.as_slice() {
                    [a, b] => f.mul(a, b),
                    [a] => a.clone(),
                    _ => f.zero(),
                };
                plan.open_products.push(z);
                match reveal {
                    RevealTo::Nobody => {}
                    RevealTo::All => plan.open.extend(l.x.iter().cloned()),
                    RevealTo::Owners(owners) => plan
                        .private
                        .extend(l.x.iter().cloned().zip(owners.iter().copied())),
                }
                p.final_open = true;
            } else {
                for pair in t.factors.chunks_exact(2) {
                    plan.reshare.push(f.mul(&pair[0], &pair[1]));
                    p.factor_products += 1;
                }
            }
        }
    }
    if let (Some(u), false) = (step_vector, l.shuffled()) {
        let (xu, d) = step_terms(f, &l.x[l.step..], &u);
        plan.reshare.push(xu);
        plan.reshare.extend(d);
        p.step = true;
    }
    p
}

fn bit_length(v: usize) -> usize {
    (usize::BITS - v.leading_zeros()) as usize
}
