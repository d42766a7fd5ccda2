//! The engine: one party's view of a Shamir-shared computation, driven round by round over a
//! [`Transport`].
//!
//! Every interaction is a *round*: each party sends exactly one message to every peer (possibly
//! with an empty payload) and then receives exactly one from every peer, in party order. A
//! message starts with a 9-byte header, the round number (u64 LE, incremented identically by all
//! parties as the program proceeds) and a kind byte; the receiver checks both, so a message is
//! matched to its round by construction, never by luck of arrival order. Because a party cannot
//! leave round `r` before every peer has sent its round-`r` message, at most two messages are ever
//! in flight per link, which is what lets transports use small bounded queues.
//!
//! Round contents are batched: one round carries any number of re-sharings (multiplications),
//! openings, degree-2t openings and private openings, so a layer of independent operations costs
//! one round trip whatever its width.

use std::collections::VecDeque;

use num_bigint::BigUint;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::field::PrimeField;
use crate::shamir::{combine, lagrange_at_zero, share_with_coefficients};
use crate::transport::{Transport, TransportError};

const HEADER_LEN: usize = 9;
const KIND_PRSS_KEYS: u8 = 1;
const KIND_INPUT: u8 = 2;
const KIND_ROUND: u8 = 3;
const PRSS_KEY_LEN: usize = 32;

/// How a peer broke the protocol (as seen by us).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The message is shorter than the header.
    #[error("message of {len} bytes has no complete header")]
    NoHeader {
        /// Length received.
        len: usize,
    },
    /// The message belongs to another round.
    #[error("message for round {got}, expected round {expected}")]
    WrongRound {
        /// Round we are in.
        expected: u64,
        /// Round in the header.
        got: u64,
    },
    /// The message is of another kind than the round expects.
    #[error("message of kind {got}, expected kind {expected}")]
    WrongKind {
        /// Kind we expect.
        expected: u8,
        /// Kind in the header.
        got: u8,
    },
    /// The payload has the wrong size.
    #[error("payload of {got} bytes, expected {expected}")]
    BadLength {
        /// Bytes expected (for variable-size payloads: a multiple of the element size).
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A field element is not below the modulus.
    #[error("field element {index} is not reduced")]
    BadElement {
        /// Position in the payload.
        index: usize,
    },
    /// A value that must be a square was not.
    #[error("opened value is not a quadratic residue")]
    NotASquare,
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MpcError {
    /// The transport failed; the error names the peer.
    #[error("transport failure with party {}", .0.party())]
    Transport(#[source] TransportError),
    /// A peer sent something the protocol does not allow.
    #[error("party {party} violated the protocol")]
    Protocol {
        /// The party at fault.
        party: usize,
        /// What it did.
        #[source]
        violation: Violation,
    },
    /// The transport disagrees with the configuration.
    #[error("transport says party {index} of {parties}; that is not a valid party")]
    BadTransport {
        /// Our index according to the transport.
        index: usize,
        /// Party count according to the transport.
        parties: usize,
    },
    /// Threshold not allowed: honest majority needs `2t < m`.
    #[error("threshold {t} is not allowed with {m} parties (need 2t < m)")]
    BadThreshold {
        /// Threshold.
        t: usize,
        /// Parties.
        m: usize,
    },
    /// The field is too small for the requested bit length and statistical security.
    #[error("field of {field_bits} bits is too small for {needed_bits}-bit intermediate values")]
    FieldTooSmall {
        /// Bits of the modulus.
        field_bits: u64,
        /// Bits needed.
        needed_bits: u64,
    },
    /// A randomised protocol kept failing (probability negligible unless something is wrong).
    #[error("{what} did not succeed after {attempts} attempts")]
    Exhausted {
        /// What was tried.
        what: &'static str,
        /// How often.
        attempts: usize,
    },
    /// An argument the protocol cannot work with (a caller bug).
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong.
        what: &'static str,
    },
    /// Vectors of different lengths where equal lengths are required (a caller bug).
    #[error("length mismatch: {left} vs {right}")]
    LengthMismatch {
        /// First length.
        left: usize,
        /// Second length.
        right: usize,
    },
}

impl MpcError {
    /// The party at fault, if the error is about a peer.
    pub fn party(&self) -> Option<usize> {
        match self {
            MpcError::Transport(e) => Some(e.party()),
            MpcError::Protocol { party, .. } => Some(*party),
            _ => None,
        }
    }
}

/// Engine settings that all parties must agree on.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Threshold `t`; `None` means MPyC's default `(m - 1) / 2`.
    pub threshold: Option<usize>,
    /// Use pseudo-random secret sharing (one key-agreement round at start, then random shares
    /// cost no communication). Without it, randomness is made by summing shared contributions.
    pub prss: bool,
    /// PRSS needs one key per subset of `m - t` parties; above this many subsets it is switched
    /// off automatically.
    pub max_prss_subsets: usize,
    /// Statistical security parameter `k` for comparisons (MPyC: 30).
    pub statistical_security: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            threshold: None,
            prss: true,
            max_prss_subsets: 256,
            statistical_security: 30,
        }
    }
}

/// Communication counters of one party (payload and header bytes it sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommStats {
    /// Rounds run.
    pub rounds: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
}

struct PrssSubset<E> {
    rng: ChaCha20Rng,
    /// f_A(x_me) for the degree-t polynomial that is 1 at 0 and 0 outside A.
    f_me: E,
}

struct Prss<E> {
    subsets: Vec<PrssSubset<E>>,
    /// x_me^1 .. x_me^t, for zero-sharings of degree 2t.
    me_pows: Vec<E>,
    /// log2 of the number of subsets, rounded up: random integers per subset are this many bits
    /// shorter so that their sum stays below the requested bound.
    subset_bits: u32,
}

/// What one round carries; all parties build the same shape.
#[derive(Debug)]
pub(crate) struct Plan<E> {
    /// Local degree-2t products to re-share (multiplication).
    pub(crate) reshare: Vec<E>,
    /// Degree-t shares to open to everyone.
    pub(crate) open: Vec<E>,
    /// Degree-2t shares (already re-randomised) to open to everyone.
    pub(crate) open2t: Vec<E>,
    /// Degree-t shares to open to one party only.
    pub(crate) private: Vec<(E, usize)>,
}

impl<E> Default for Plan<E> {
    fn default() -> Self {
        Plan {
            reshare: Vec::new(),
            open: Vec::new(),
            open2t: Vec::new(),
            private: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Outcome<E> {
    pub(crate) reshared: Vec<E>,
    pub(crate) opened: Vec<E>,
    pub(crate) opened2t: Vec<E>,
    /// The private openings addressed to us, in plan order.
    pub(crate) private: Vec<E>,
}

/// One party's engine for one computation.
///
/// Shares are plain field elements (`F::Elem`) and vectors of them; all parties must call the
/// same methods with vectors of the same lengths in the same order (the program is public, the
/// data is not).
pub struct Runtime<'a, F: PrimeField, T: Transport + ?Sized, R> {
    field: F,
    me: usize,
    m: usize,
    t: usize,
    transport: &'a mut T,
    rng: R,
    round: u64,
    prss: Option<Prss<F::Elem>>,
    lambda_all: Vec<F::Elem>,
    lambda_t: Vec<F::Elem>,
    lambda_2t: Vec<F::Elem>,
    bit_pool: VecDeque<F::Elem>,
    k: u32,
    stats: CommStats,
}

impl<F: PrimeField, T: Transport + ?Sized, R> std::fmt::Debug for Runtime<'_, F, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("party", &self.me)
            .field("parties", &self.m)
            .field("threshold", &self.t)
            .field("round", &self.round)
            .field("prss", &self.prss.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, F, T, R> Runtime<'a, F, T, R>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    /// Sets up the engine; with PRSS this runs one key-agreement round with all peers.
    pub async fn new(
        field: F,
        transport: &'a mut T,
        rng: R,
        config: &RuntimeConfig,
    ) -> Result<Self, MpcError> {
        let m = transport.party_count();
        let me = transport.party_index();
        if m == 0 || me >= m {
            return Err(MpcError::BadTransport {
                index: me,
                parties: m,
            });
        }
        let t = config.threshold.unwrap_or((m - 1) / 2);
        if 2 * t >= m {
            return Err(MpcError::BadThreshold { t, m });
        }
        let points = |n: usize| (1..=n as u64).collect::<Vec<_>>();
        let lambda_all = lagrange_at_zero(&field, &points(m));
        let lambda_t = lagrange_at_zero(&field, &points(t + 1));
        let lambda_2t = lagrange_at_zero(&field, &points(2 * t + 1));
        let mut rt = Runtime {
            field,
            me,
            m,
            t,
            transport,
            rng,
            round: 0,
            prss: None,
            lambda_all,
            lambda_t,
            lambda_2t,
            bit_pool: VecDeque::new(),
            k: config.statistical_security,
            stats: CommStats::default(),
        };
        let subsets = binomial(m, t);
        if config.prss && subsets <= config.max_prss_subsets as u128 {
            rt.setup_prss().await?;
        }
        Ok(rt)
    }

    /// The field.
    pub fn field(&self) -> &F {
        &self.field
    }
    /// Our party index.
    pub fn party(&self) -> usize {
        self.me
    }
    /// Number of parties.
    pub fn parties(&self) -> usize {
        self.m
    }
    /// Threshold.
    pub fn threshold(&self) -> usize {
        self.t
    }
    /// Statistical security parameter.
    pub fn statistical_security(&self) -> u32 {
        self.k
    }
    /// Whether PRSS is in use.
    pub fn uses_prss(&self) -> bool {
        self.prss.is_some()
    }
    /// Communication so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }

    // ----- rounds -------------------------------------------------------------------------

    fn header(&self, kind: u8) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&self.round.to_le_bytes());
        h.push(kind);
        h
    }

    /// Sends one message per peer (`msgs[j]`, ours ignored) and receives one from each, checking
    /// headers. Returns the payloads (ours empty).
    async fn exchange(&mut self, kind: u8, msgs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, MpcError> {
        self.stats.rounds += 1;
        // A failed send is reported only after the receives: we still deliver this round to the
        // other peers, so they can finish it and see for themselves which party is gone, instead
        // of blaming us for leaving early.
        let mut send_error = None;
        for (j, msg) in msgs.into_iter().enumerate() {
            if j == self.me {
                continue;
            }
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += msg.len() as u64;
            if let Err(e) = self.transport.send(j, msg).await {
                send_error.get_or_insert(e);
            }
        }
        let mut payloads = Vec::with_capacity(self.m);
        for j in 0..self.m {
            if j == self.me {
                payloads.push(Vec::new());
                continue;
            }
            let mut msg = self.transport.recv(j).await.map_err(MpcError::Transport)?;
            let violation = |v| MpcError::Protocol {
                party: j,
                violation: v,
            };
            if msg.len() < HEADER_LEN {
                return Err(violation(Violation::NoHeader { len: msg.len() }));
            }
            let mut r = [0u8; 8];
            r.copy_from_slice(&msg[..8]);
            let got = u64::from_le_bytes(r);
            if got != self.round {
                return Err(violation(Violation::WrongRound {
                    expected: self.round,
                    got,
                }));
            }
            if msg[8] != kind {
                return Err(violation(Violation::WrongKind {
                    expected: kind,
                    got: msg[8],
                }));
            }
            msg.drain(..HEADER_LEN);
            payloads.push(msg);
        }
        if let Some(e) = send_error {
            return Err(MpcError::Transport(e));
        }
        self.round += 1;
        Ok(payloads)
    }

    fn decode_elems(
        &self,
        party: usize,
        bytes: &[u8],
        expected: Option<usize>,
    ) -> Result<Vec<F::Elem>, MpcError> {
        let w = self.field.byte_len();
        let bad_len = |expected| MpcError::Protocol {
            party,
            violation: Violation::BadLength {
                expected,
                got: bytes.len(),
            },
        };
        match expected {
            Some(n) if bytes.len() != n * w => return Err(bad_len(n * w)),
            None if !bytes.len().is_multiple_of(w) => {
                return Err(bad_len(w * (bytes.len() / w + 1)))
            }
            _ => {}
        }
        bytes
            .chunks_exact(w)
            .enumerate()
            .map(|(index, c)| {
                self.field.decode(c).ok_or(MpcError::Protocol {
                    party,
                    violation: Violation::BadElement { index },
                })
            })
            .collect()
    }

    /// Runs one batched round.
    pub(crate) async fn round(
        &mut self,
        plan: Plan<F::Elem>,
    ) -> Result<Outcome<F::Elem>, MpcError> {
        let f = self.field.clone();
        let (m, t, me) = (self.m, self.t, self.me);
        // Re-sharing: evaluations[k][j] is party j's share of our k-th product.
        let mut coeffs = Vec::with_capacity(t);
        let evaluations: Vec<Vec<F::Elem>> = plan
            .reshare
            .iter()
            .map(|v| {
                coeffs.clear();
                coeffs.extend((0..t).map(|_| f.random(&mut self.rng)));
                share_with_coefficients(&f, v, &coeffs, m)
            })
            .collect();
        let private_for = |j: usize| plan.private.iter().filter(move |(_, o)| *o == j);
        let n_mine_private = private_for(me).count();
        let expected = plan.reshare.len() + plan.open.len() + plan.open2t.len() + n_mine_private;

        let mut msgs = Vec::with_capacity(m);
        for j in 0..m {
            if j == me {
                msgs.push(Vec::new());
                continue;
            }
            let count =
                plan.reshare.len() + plan.open.len() + plan.open2t.len() + private_for(j).count();
            let mut msg = self.header(KIND_ROUND);
            msg.reserve(count * f.byte_len());
            for e in &evaluations {
                f.encode(&e[j], &mut msg);
            }
            for v in plan.open.iter().chain(&plan.open2t) {
                f.encode(v, &mut msg);
            }
            for (v, _) in private_for(j) {
                f.encode(v, &mut msg);
            }
            msgs.push(msg);
        }
        let payloads = self.exchange(KIND_ROUND, msgs).await?;
        let mut received: Vec<Vec<F::Elem>> = Vec::with_capacity(m);
        for (j, p) in payloads.iter().enumerate() {
            if j == me {
                let mut own: Vec<F::Elem> = evaluations.iter().map(|e| e[me].clone()).collect();
                own.extend(plan.open.iter().cloned());
                own.extend(plan.open2t.iter().cloned());
                own.extend(private_for(me).map(|(v, _)| v.clone()));
                received.push(own);
            } else {
                received.push(self.decode_elems(j, p, Some(expected))?);
            }
        }
        let (nr, no, no2) = (plan.reshare.len(), plan.open.len(), plan.open2t.len());
        let column = |idx: usize, parties: usize| -> Vec<F::Elem> {
            received[..parties].iter().map(|r| r[idx].clone()).collect()
        };
        let reshared = (0..nr)
            .map(|k| combine(&f, &self.lambda_all, &column(k, m)))
            .collect();
        let opened = (nr..nr + no)
            .map(|k| combine(&f, &self.lambda_t, &column(k, t + 1)))
            .collect();
        let opened2t = (nr + no..nr + no + no2)
            .map(|k| combine(&f, &self.lambda_2t, &column(k, 2 * t + 1)))
            .collect();
        let private = (nr + no + no2..expected)
            .map(|k| combine(&f, &self.lambda_t, &column(k, t + 1)))
            .collect();
        Ok(Outcome {
            reshared,
            opened,
            opened2t,
            private,
        })
    }

    // ----- inputs and outputs -------------------------------------------------------------

    /// Secret-shares our private inputs and receives shares of everyone else's, in one round.
    /// Returns, per party, shares of that party's inputs. How many inputs each party has is
    /// public (it follows from the message sizes).
    pub async fn input(&mut self, mine: &[F::Elem]) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let f = self.field.clone();
        let (m, t, me) = (self.m, self.t, self.me);
        let mut coeffs = Vec::with_capacity(t);
        let shares: Vec<Vec<F::Elem>> = mine
            .iter()
            .map(|v| {
                coeffs.clear();
                coeffs.extend((0..t).map(|_| f.random(&mut self.rng)));
                share_with_coefficients(&f, v, &coeffs, m)
            })
            .collect();
        let msgs = (0..m)
            .map(|j| {
                let mut msg = self.header(KIND_INPUT);
                if j != me {
                    for s in &shares {
                        f.encode(&s[j], &mut msg);
                    }
                }
                msg
            })
            .collect();
        let payloads = self.exchange(KIND_INPUT, msgs).await?;
        let mut out = Vec::with_capacity(m);
        for (j, p) in payloads.iter().enumerate() {
            if j == me {
                out.push(shares.iter().map(|s| s[me].clone()).collect());
            } else {
                out.push(self.decode_elems(j, p, None)?);
            }
        }
        Ok(out)
    }

    /// Opens shared values to everyone (one round).
    pub async fn open(&mut self, shares: &[F::Elem]) -> Result<Vec<F::Elem>, MpcError> {
        let plan = Plan {
            open: shares.to_vec(),
            ..Plan::default()
        };
        Ok(self.round(plan).await?.opened)
    }

    /// Opens `shares[i]` to party `owners[i]` only (one round). Returns the values opened to us,
    /// in order.
    pub async fn open_to(
        &mut self,
        shares: &[F::Elem],
        owners: &[usize],
    ) -> Result<Vec<F::Elem>, MpcError> {
        if shares.len() != owners.len() {
            return Err(MpcError::LengthMismatch {
                left: shares.len(),
                right: owners.len(),
            });
        }
        let plan = Plan {
            private: shares.iter().cloned().zip(owners.iter().copied()).collect(),
            ..Plan::default()
        };
        Ok(self.round(plan).await?.private)
    }

    // ----- arithmetic ---------------------------------------------------------------------

    /// Element-wise products of two shared vectors (one round: local product, re-share with
    /// degree t, recombine; Gennaro–Rabin–Rabin).
    pub async fn mul(&mut self, a: &[F::Elem], b: &[F::Elem]) -> Result<Vec<F::Elem>, MpcError> {
        if a.len() != b.len() {
            return Err(MpcError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        let f = &self.field;
        let reshare = a.iter().zip(b).map(|(x, y)| f.mul(x, y)).collect();
        let plan = Plan {
            reshare,
            ..Plan::default()
        };
        Ok(self.round(plan).await?.reshared)
    }

    /// Re-shares local degree-2t values (sums of products of shares) as degree-t shares, in one
    /// round.
    pub(crate) async fn reshare(&mut self, local: Vec<F::Elem>) -> Result<Vec<F::Elem>, MpcError> {
        let plan = Plan {
            reshare: local,
            ..Plan::default()
        };
        Ok(self.round(plan).await?.reshared)
    }

    /// Inner products `<a_i, b_i>` of pairs of shared vectors, all in one round (the sums of
    /// local products are re-shared once each, so communication does not grow with the length).
    #[allow(clippy::type_complexity)] // a slice of (left, right) vector pairs
    pub async fn inner_products(
        &mut self,
        pairs: &[(&[F::Elem], &[F::Elem])],
    ) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field.clone();
        let mut reshare = Vec::with_capacity(pairs.len());
        for (a, b) in pairs {
            if a.len() != b.len() {
                return Err(MpcError::LengthMismatch {
                    left: a.len(),
                    right: b.len(),
                });
            }
            let mut acc = f.zero();
            for (x, y) in a.iter().zip(b.iter()) {
                acc = f.add(&acc, &f.mul(x, y));
            }
            reshare.push(acc);
        }
        let plan = Plan {
            reshare,
            ..Plan::default()
        };
        Ok(self.round(plan).await?.reshared)
    }

    /// Multiplies `mul_pairs` (shares out) and opens the products `open_pairs` to everyone, in one
    /// round with PRSS (the degree-2t product is opened directly after adding a pseudo-random
    /// degree-2t sharing of zero, which hides everything but the product) or two without.
    pub(crate) async fn mul_and_open_products(
        &mut self,
        mul_pairs: (&[F::Elem], &[F::Elem]),
        open_pairs: (&[F::Elem], &[F::Elem]),
    ) -> Result<(Vec<F::Elem>, Vec<F::Elem>), MpcError> {
        let f = self.field.clone();
        let prod = |a: &[F::Elem], b: &[F::Elem]| -> Vec<F::Elem> {
            a.iter().zip(b).map(|(x, y)| f.mul(x, y)).collect()
        };
        let mul = prod(mul_pairs.0, mul_pairs.1);
        let open = prod(open_pairs.0, open_pairs.1);
        if self.prss.is_some() {
            let mut open2t = Vec::with_capacity(open.len());
            for v in open {
                let z = self.prss_zero_2t();
                open2t.push(f.add(&v, &z));
            }
            let out = self
                .round(Plan {
                    reshare: mul,
                    open2t,
                    ..Plan::default()
                })
                .await?;
            Ok((out.reshared, out.opened2t))
        } else {
            let n_mul = mul.len();
            let mut reshare = mul;
            reshare.extend(open);
            let mut shares = self
                .round(Plan {
                    reshare,
                    ..Plan::default()
                })
                .await?
                .reshared;
            let to_open = shares.split_off(n_mul);
            let opened = self.open(&to_open).await?;
            Ok((shares, opened))
        }
    }

    /// Opens `a_i * b_i` to everyone and nothing else about `a_i`, `b_i`.
    pub async fn open_products(
        &mut self,
        a: &[F::Elem],
        b: &[F::Elem],
    ) -> Result<Vec<F::Elem>, MpcError> {
        if a.len() != b.len() {
            return Err(MpcError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        Ok(self.mul_and_open_products((&[], &[]), (a, b)).await?.1)
    }

    /// Products of each group of shared values, as shares (ceil(log2 len) rounds for all groups
    /// together). The product of an empty group is 1.
    pub async fn products(&mut self, groups: Vec<Vec<F::Elem>>) -> Result<Vec<F::Elem>, MpcError> {
        let mut groups = groups;
        while groups.iter().any(|g| g.len() > 1) {
            groups = self.product_layer(groups).await?;
        }
        let one = self.field.one();
        Ok(groups
            .into_iter()
            .map(|g| g.into_iter().next().unwrap_or_else(|| one.clone()))
            .collect())
    }

    /// One layer of a product tree: multiplies neighbours in every group.
    async fn product_layer(
        &mut self,
        groups: Vec<Vec<F::Elem>>,
    ) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for g in &groups {
            for pair in g.chunks_exact(2) {
                a.push(pair[0].clone());
                b.push(pair[1].clone());
            }
        }
        let mut products = self.mul(&a, &b).await?.into_iter();
        Ok(groups
            .into_iter()
            .map(|g| {
                let mut next: Vec<F::Elem> = products.by_ref().take(g.len() / 2).collect();
                if g.len() % 2 == 1 {
                    next.extend(g.last().cloned());
                }
                next
            })
            .collect())
    }

    /// For each group, publicly whether the product of its elements is zero — and nothing else:
    /// the product is multiplied by a fresh random mask before it is opened (MPyC's
    /// `is_zero_public`; wrong with probability 1/p when the mask is zero).
    pub async fn product_is_zero_public(
        &mut self,
        groups: Vec<Vec<F::Elem>>,
    ) -> Result<Vec<bool>, MpcError> {
        let masks = self.random(groups.len()).await?;
        let mut groups: Vec<Vec<F::Elem>> = groups
            .into_iter()
            .zip(masks)
            .map(|(mut g, r)| {
                g.push(r);
                g
            })
            .collect();
        while groups.iter().any(|g| g.len() > 2) {
            groups = self.product_layer(groups).await?;
        }
        let one = self.field.one();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for g in groups {
            let mut it = g.into_iter();
            a.push(it.next().unwrap_or_else(|| one.clone()));
            b.push(it.next().unwrap_or_else(|| one.clone()));
        }
        let opened = self.open_products(&a, &b).await?;
        Ok(opened.iter().map(|v| self.field.is_zero(v)).collect())
    }

    // ----- randomness ---------------------------------------------------------------------

    async fn setup_prss(&mut self) -> Result<(), MpcError> {
        let (m, t, me) = (self.m, self.t, self.me);
        let subsets = combinations(m, m - t);
        // The lowest member of each subset picks its key and sends it to the other members.
        let mut keys: Vec<Option<[u8; PRSS_KEY_LEN]>> = vec![None; subsets.len()];
        let mut msgs: Vec<Vec<u8>> = (0..m).map(|_| self.header(KIND_PRSS_KEYS)).collect();
        for (s, a) in subsets.iter().enumerate() {
            if a[0] == me {
                let mut key = [0u8; PRSS_KEY_LEN];
                self.rng.fill_bytes(&mut key);
                for &j in &a[1..] {
                    msgs[j].extend_from_slice(&key);
                }
                keys[s] = Some(key);
            }
        }
        let payloads = self.exchange(KIND_PRSS_KEYS, msgs).await?;
        for (j, p) in payloads.iter().enumerate() {
            if j == me {
                continue;
            }
            let ours: Vec<usize> = (0..subsets.len())
                .filter(|&s| subsets[s][0] == j && subsets[s].contains(&me))
                .collect();
            if p.len() != ours.len() * PRSS_KEY_LEN {
                return Err(MpcError::Protocol {
                    party: j,
                    violation: Violation::BadLength {
                        expected: ours.len() * PRSS_KEY_LEN,
                        got: p.len(),
                    },
                });
            }
            for (s, chunk) in ours.into_iter().zip(p.chunks_exact(PRSS_KEY_LEN)) {
                let mut key = [0u8; PRSS_KEY_LEN];
                key.copy_from_slice(chunk);
                keys[s] = Some(key);
            }
        }
        let f = &self.field;
        let x_me = f.from_u64(me as u64 + 1);
        let mut prss_subsets = Vec::new();
        for (a, key) in subsets.iter().zip(keys) {
            let Some(key) = key else { continue };
            // f_A(x) = prod_{j not in A} (x_j - x) / x_j: degree t, 1 at 0, 0 outside A.
            let mut f_me = f.one();
            for j in (0..m).filter(|j| !a.contains(j)) {
                let xj = f.from_u64(j as u64 + 1);
                let inv = f.inv(&xj).unwrap_or_else(|| f.zero());
                f_me = f.mul(&f_me, &f.mul(&f.sub(&xj, &x_me), &inv));
            }
            prss_subsets.push(PrssSubset {
                rng: ChaCha20Rng::from_seed(key),
                f_me,
            });
        }
        let mut me_pows = Vec::with_capacity(t);
        let mut acc = f.one();
        for _ in 0..t {
            acc = f.mul(&acc, &x_me);
            me_pows.push(acc.clone());
        }
        let n_subsets = subsets.len() as u64;
        let subset_bits = 64 - (n_subsets.max(1) - 1).leading_zeros();
        self.prss = Some(Prss {
            subsets: prss_subsets,
            me_pows,
            subset_bits,
        });
        Ok(())
    }

    /// A pseudo-random degree-2t sharing of zero (CDI05); requires PRSS.
    fn prss_zero_2t(&mut self) -> F::Elem {
        let f = &self.field;
        let mut acc = f.zero();
        if let Some(prss) = self.prss.as_mut() {
            for s in prss.subsets.iter_mut() {
                let mut inner = f.zero();
                for xk in &prss.me_pows {
                    inner = f.add(&inner, &f.mul(&f.random(&mut s.rng), xk));
                }
                acc = f.add(&acc, &f.mul(&inner, &s.f_me));
            }
        }
        acc
    }

    /// Shares of `n` uniformly random field elements (no communication with PRSS).
    pub async fn random(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field.clone();
        if let Some(prss) = self.prss.as_mut() {
            return Ok((0..n)
                .map(|_| {
                    let mut acc = f.zero();
                    for s in prss.subsets.iter_mut() {
                        acc = f.add(&acc, &f.mul(&f.random(&mut s.rng), &s.f_me));
                    }
                    acc
                })
                .collect());
        }
        let mine: Vec<F::Elem> = (0..n).map(|_| f.random(&mut self.rng)).collect();
        let all = self.input(&mine).await?;
        Ok(self.sum_contributions(&all, n))
    }

    /// Shares of `n` random integers below `2^bits` (not uniform: a sum of per-subset or
    /// per-party uniform parts, which is what statistical masking needs).
    pub async fn random_ints(&mut self, n: usize, bits: u32) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field.clone();
        if let Some(prss) = self.prss.as_mut() {
            let per = bits.saturating_sub(prss.subset_bits).min(63);
            let mask = (1u64 << per) - 1;
            return Ok((0..n)
                .map(|_| {
                    let mut acc = f.zero();
                    for s in prss.subsets.iter_mut() {
                        let v = f.from_u64(s.rng.next_u64() & mask);
                        acc = f.add(&acc, &f.mul(&v, &s.f_me));
                    }
                    acc
                })
                .collect());
        }
        let m_bits = 64 - (self.m as u64 - 1).leading_zeros();
        let per = bits.saturating_sub(m_bits).min(63);
        let mask = (1u64 << per) - 1;
        let mine: Vec<F::Elem> = (0..n)
            .map(|_| f.from_u64(self.rng.next_u64() & mask))
            .collect();
        let all = self.input(&mine).await?;
        Ok(self.sum_contributions(&all, n))
    }

    fn sum_contributions(&self, all: &[Vec<F::Elem>], n: usize) -> Vec<F::Elem> {
        let f = &self.field;
        (0..n)
            .map(|i| {
                all.iter().fold(f.zero(), |acc, c| {
                    // Each honest party sent exactly n; a short vector only weakens a
                    // semi-honest-violating sender's own contribution.
                    c.get(i).map_or(acc.clone(), |v| f.add(&acc, v))
                })
            })
            .collect()
    }

    /// Shares of `n` uniformly random bits: a random `r` is squared and opened, and `r / sqrt(r^2)`
    /// is a uniformly random sign (MPyC's method; one round with PRSS).
    pub async fn random_bits(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        let f = self.field.clone();
        let inv2 = f.inv(&f.from_u64(2)).unwrap_or_else(|| f.zero());
        let mut bits = Vec::with_capacity(n);
        let mut attempts = 0;
        while bits.len() < n {
            attempts += 1;
            if attempts > 64 {
                return Err(MpcError::Exhausted {
                    what: "random bit generation",
                    attempts,
                });
            }
            let h = n - bits.len();
            let r = self.random(h).await?;
            let squares = self.open_products(&r, &r).await?;
            // For p = 3 mod 4, a^((p-3)/4) is 1/sqrt(a) directly: one exponentiation per bit.
            let p = f.modulus();
            let inv_sqrt_exp = p.bit(1).then(|| (p - 3u32) >> 2);
            for (r, sq) in r.iter().zip(&squares) {
                if f.is_zero(sq) {
                    continue; // r was 0: probability 1/p, draw again
                }
                let inv_root = match &inv_sqrt_exp {
                    Some(e) => {
                        let inv_root = f.pow(sq, e);
                        if f.mul(&f.mul(&inv_root, &inv_root), sq) != f.one() {
                            // Semi-honest peers always open a square; blame the lowest peer
                            // we reconstructed from, since we cannot tell who deviated.
                            return Err(MpcError::Protocol {
                                party: usize::from(self.me == 0),
                                violation: Violation::NotASquare,
                            });
                        }
                        inv_root
                    }
                    None => {
                        let root = f.sqrt(sq).ok_or(MpcError::Protocol {
                            // Semi-honest peers always open a square; blame the lowest peer
                            // we reconstructed from, since we cannot tell who deviated.
                            party: usize::from(self.me == 0),
                            violation: Violation::NotASquare,
                        })?;
                        f.inv(&root).unwrap_or_else(|| f.zero())
                    }
                };
                let sign = f.mul(r, &inv_root);
                bits.push(f.mul(&f.add(&sign, &f.one()), &inv2));
            }
        }
        Ok(bits)
    }

    /// Adds `n` random bits to the pool that [`Runtime::take_bits`] draws from, in one batch, so
    /// that protocols needing bits at many points cost one round for all of them.
    pub async fn reserve_bits(&mut self, n: usize) -> Result<(), MpcError> {
        let bits = self.random_bits(n).await?;
        self.bit_pool.extend(bits);
        Ok(())
    }

    /// `n` random bits, from the pool if it holds enough, freshly generated otherwise.
    pub async fn take_bits(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        if self.bit_pool.len() < n {
            let missing = n - self.bit_pool.len();
            self.reserve_bits(missing).await?;
        }
        Ok(self.bit_pool.drain(..n).collect())
    }

    // ----- helpers for protocol modules ---------------------------------------------------

    /// The field element `2^e`.
    pub(crate) fn pow2(&self, e: u64) -> F::Elem {
        self.field.from_biguint(&(BigUint::from(1u32) << e))
    }
}

/// All `k`-subsets of `0..n` in lexicographic order.
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if k > n {
        return out;
    }
    let mut cur: Vec<usize> = (0..k).collect();
    loop {
        out.push(cur.clone());
        // Advance the rightmost position that has not reached its maximum.
        let Some(i) = (0..k).rev().find(|&i| cur[i] != i + n - k) else {
            return out;
        };
        cur[i] += 1;
        for j in i + 1..k {
            cur[j] = cur[j - 1] + 1;
        }
    }
}

fn binomial(n: usize, k: usize) -> u128 {
    let k = k.min(n.saturating_sub(k));
    (0..k).fold(1u128, |acc, i| acc * (n - i) as u128 / (i as u128 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_enumerates_all_subsets_in_order() {
        assert_eq!(
            combinations(4, 2),
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(combinations(3, 3), vec![vec![0, 1, 2]]);
        assert_eq!(combinations(1, 1), vec![vec![0]]);
        assert_eq!(combinations(5, 3).len(), 10);
        assert_eq!(binomial(5, 2), 10);
        assert_eq!(binomial(3, 0), 1);
    }
}
