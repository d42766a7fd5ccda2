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
//! openings, openings of products (a degree-2t value plus a random degree-2t sharing of zero, so
//! "multiply, then open" is one round), private openings and inputs, so a layer of independent
//! operations costs one round trip whatever its width. Protocols build a round's [`Plan`] from
//! several independent pieces of work (the next comparison's opening with the last swap's
//! multiplication, a shuffle step with the next unit vector's test, ...), and random bits asked
//! for ahead of time ride along with whatever round comes next: rounds, not bytes, are what
//! small computations wait for.

use std::collections::VecDeque;
use std::marker::PhantomData;

use num_bigint::BigUint;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::field::PrimeField;
use crate::shamir::{evaluate, lagrange_at_zero};
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

/// Zero-sharings made per refill of the pool used without PRSS.
const ZERO_BATCH: usize = 256;

/// Rounds a randomised generator may take before giving up (each fails with probability about
/// 1/p; a peer that keeps opening non-squares is caught as a protocol violation before that).
const MAX_GENERATION_ROUNDS: usize = 64;

/// What one round carries. All parties build the same shape: the same number of elements in
/// each field (only `input` may differ in length between parties; whether it is `None` may not).
#[derive(Debug)]
pub(crate) struct Plan<E> {
    /// Local degree-2t values (sums of products of shares) to re-share as degree-t shares
    /// (multiplication, Gennaro–Rabin–Rabin).
    pub(crate) reshare: Vec<E>,
    /// Degree-t shares to open to everyone.
    pub(crate) open: Vec<E>,
    /// Local degree-2t values to open to everyone. The round adds a random degree-2t sharing of
    /// zero to each (PRSS, or a pool of zero-sharings made in earlier rounds), so the opening
    /// reveals the value and nothing else: "multiply, then open" is one round, not two.
    pub(crate) open_products: Vec<E>,
    /// Degree-t shares to open to one party only.
    pub(crate) private: Vec<(E, usize)>,
    /// Our own secrets to share with everyone (an input round), or `None`.
    pub(crate) input: Option<Vec<E>>,
}

impl<E> Default for Plan<E> {
    fn default() -> Self {
        Plan {
            reshare: Vec::new(),
            open: Vec::new(),
            open_products: Vec::new(),
            private: Vec::new(),
            input: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Outcome<E> {
    pub(crate) reshared: Vec<E>,
    pub(crate) opened: Vec<E>,
    pub(crate) opened_products: Vec<E>,
    /// The private openings addressed to us, in plan order.
    pub(crate) private: Vec<E>,
    /// Per party, shares of the inputs it gave (all empty without an input round).
    pub(crate) inputs: Vec<Vec<E>>,
}

/// What goes on the wire in one round: a [`Plan`] with its degree-2t openings already
/// re-randomised, plus the zero-sharings we deal (without PRSS).
struct Wire<E> {
    reshare: Vec<E>,
    open: Vec<E>,
    open2t: Vec<E>,
    private: Vec<(E, usize)>,
    zeros: usize,
    input: Option<Vec<E>>,
}

impl<E> Default for Wire<E> {
    fn default() -> Self {
        Wire {
            reshare: Vec::new(),
            open: Vec::new(),
            open2t: Vec::new(),
            private: Vec::new(),
            zeros: 0,
            input: None,
        }
    }
}

struct Received<E> {
    reshared: Vec<E>,
    opened: Vec<E>,
    opened2t: Vec<E>,
    private: Vec<E>,
    zeros: Vec<E>,
    inputs: Vec<Vec<E>>,
}

/// Random values whose squares (and, for pairs, products) a round opens (re-shares) to turn them
/// into random bits: `r / sqrt(r^2)` is a uniformly random sign.
struct BitBatch<E> {
    /// `(r_a, r_b)` of each pair; the round also re-shares `r_a r_b`, from which the product of
    /// the two bits follows locally.
    pairs: Vec<(E, E)>,
    singles: Vec<E>,
}

impl<E: Clone> BitBatch<E> {
    fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.singles.is_empty()
    }

    /// Appends the squares to open and the pair products to re-share.
    fn add_to<F: PrimeField<Elem = E>>(&self, f: &F, plan: &mut Plan<E>) {
        for (a, b) in &self.pairs {
            plan.open_products.push(f.mul(a, a));
            plan.open_products.push(f.mul(b, b));
            plan.reshare.push(f.mul(a, b));
        }
        for r in &self.singles {
            plan.open_products.push(f.mul(r, r));
        }
    }
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
    /// Seeded once from the injected generator: drawing every share coefficient from it
    /// directly costs a system call per element when it is `OsRng`.
    rng: ChaCha20Rng,
    _rng: PhantomData<fn() -> R>,
    round: u64,
    prss: Option<Prss<F::Elem>>,
    lambda_all: Vec<F::Elem>,
    lambda_t: Vec<F::Elem>,
    lambda_2t: Vec<F::Elem>,
    /// The parties' evaluation points 1..=m as field elements.
    points: Vec<F::Elem>,
    /// 2^0, 2^1, ... (as many as the comparisons need).
    pow2: Vec<F::Elem>,
    /// Random bits made ahead of use.
    bit_pool: VecDeque<F::Elem>,
    /// Random bit pairs `(a, b, ab)` made ahead of use.
    pair_pool: VecDeque<[F::Elem; 3]>,
    /// Bits and pairs to generate in the next round, whatever it carries (PRSS only).
    bits_wanted: usize,
    pairs_wanted: usize,
    /// Degree-2t sharings of zero for openings of products without PRSS.
    zero_pool: VecDeque<F::Elem>,
    /// Set once the zero pool was needed: from then on rounds top it up as they go.
    zero_pool_used: bool,
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
        mut rng: R,
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
        // Saturating: `t` may come from a manifest, and a wrapped `2 * t` would pass the check
        // and then try to allocate `t + 1` interpolation points.
        if t.saturating_mul(2) >= m {
            return Err(MpcError::BadThreshold { t, m });
        }
        let points = |n: usize| (1..=n as u64).collect::<Vec<_>>();
        let lambda_all = lagrange_at_zero(&field, &points(m));
        let lambda_t = lagrange_at_zero(&field, &points(t + 1));
        let lambda_2t = lagrange_at_zero(&field, &points(2 * t + 1));
        let bits = field.modulus().bits() as usize;
        let mut pow2 = Vec::with_capacity(bits);
        let mut p = field.one();
        for _ in 0..bits {
            pow2.push(p.clone());
            p = field.add(&p, &p);
        }
        let points = (1..=m as u64).map(|x| field.from_u64(x)).collect();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut rt = Runtime {
            field,
            me,
            m,
            t,
            transport,
            rng: ChaCha20Rng::from_seed(seed),
            _rng: PhantomData,
            round: 0,
            prss: None,
            lambda_all,
            lambda_t,
            lambda_2t,
            points,
            pow2,
            bit_pool: VecDeque::new(),
            pair_pool: VecDeque::new(),
            bits_wanted: 0,
            pairs_wanted: 0,
            zero_pool: VecDeque::new(),
            zero_pool_used: false,
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
    /// headers. Returns the messages received (ours empty); payloads start at `HEADER_LEN`.
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
        let mut received = Vec::with_capacity(self.m);
        for j in 0..self.m {
            if j == self.me {
                received.push(Vec::new());
                continue;
            }
            let msg = self.transport.recv(j).await.map_err(MpcError::Transport)?;
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
            received.push(msg);
        }
        if let Some(e) = send_error {
            return Err(MpcError::Transport(e));
        }
        self.round += 1;
        Ok(received)
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

    /// Deals a fresh degree-`degree` sharing of `secret`: appends party `j`'s share to `msgs[j]`
    /// for every peer and returns ours.
    fn deal(
        &mut self,
        secret: &F::Elem,
        degree: usize,
        coeffs: &mut Vec<F::Elem>,
        msgs: &mut [Vec<u8>],
    ) -> F::Elem {
        let f = &self.field;
        coeffs.clear();
        coeffs.extend((0..degree).map(|_| f.random(&mut self.rng)));
        let mut own = f.zero();
        for ((j, msg), x) in msgs.iter_mut().enumerate().zip(&self.points) {
            let share = evaluate(f, secret, coeffs, x);
            if j == self.me {
                own = share;
            } else {
                f.encode(&share, msg);
            }
        }
        own
    }

    /// One exchange: builds every peer's message from `w` (sections in a fixed order: re-shares,
    /// openings, degree-2t openings, private openings for that peer, zero-sharings, inputs),
    /// and recombines what comes back in one pass.
    async fn transfer(&mut self, w: Wire<F::Elem>) -> Result<Received<F::Elem>, MpcError> {
        let f = self.field.clone();
        let (m, t, me) = (self.m, self.t, self.me);
        let kind = if w.input.is_some() {
            KIND_INPUT
        } else {
            KIND_ROUND
        };
        let inputs: &[F::Elem] = w.input.as_deref().unwrap_or(&[]);
        let private_count = |j: usize| w.private.iter().filter(|(_, o)| *o == j).count();
        let fixed = w.reshare.len() + w.open.len() + w.open2t.len() + w.zeros;
        let mut msgs: Vec<Vec<u8>> = (0..m)
            .map(|j| {
                let mut msg = self.header(kind);
                if j != me {
                    msg.reserve((fixed + private_count(j) + inputs.len()) * f.byte_len());
                }
                msg
            })
            .collect();
        let mut coeffs = Vec::with_capacity(2 * t);
        let own_reshare: Vec<F::Elem> = w
            .reshare
            .iter()
            .map(|v| self.deal(v, t, &mut coeffs, &mut msgs))
            .collect();
        let mut public = Vec::with_capacity((w.open.len() + w.open2t.len()) * f.byte_len());
        for v in w.open.iter().chain(&w.open2t) {
            f.encode(v, &mut public);
        }
        for (j, msg) in msgs.iter_mut().enumerate() {
            if j != me {
                msg.extend_from_slice(&public);
            }
        }
        for (v, owner) in &w.private {
            if *owner != me {
                if let Some(msg) = msgs.get_mut(*owner) {
                    f.encode(v, msg);
                }
            }
        }
        let zero = f.zero();
        let own_zeros: Vec<F::Elem> = (0..w.zeros)
            .map(|_| self.deal(&zero, 2 * t, &mut coeffs, &mut msgs))
            .collect();
        let own_inputs: Vec<F::Elem> = inputs
            .iter()
            .map(|v| self.deal(v, t, &mut coeffs, &mut msgs))
            .collect();

        let messages = self.exchange(kind, msgs).await?;

        let own_private: Vec<F::Elem> = w
            .private
            .iter()
            .filter(|(_, o)| *o == me)
            .map(|(v, _)| v.clone())
            .collect();
        let (nr, no, n2, np, nz) = (
            w.reshare.len(),
            w.open.len(),
            w.open2t.len(),
            own_private.len(),
            w.zeros,
        );
        let mut out = Received {
            reshared: vec![f.zero(); nr],
            opened: vec![f.zero(); no],
            opened2t: vec![f.zero(); n2],
            private: vec![f.zero(); np],
            zeros: vec![f.zero(); nz],
            inputs: Vec::with_capacity(m),
        };
        let fixed_in = nr + no + n2 + np + nz;
        for (j, msg) in messages.iter().enumerate() {
            let elems = if j == me {
                let mut own = own_reshare.clone();
                own.extend(w.open.iter().cloned());
                own.extend(w.open2t.iter().cloned());
                own.extend(own_private.iter().cloned());
                own.extend(own_zeros.iter().cloned());
                own.extend(own_inputs.iter().cloned());
                own
            } else {
                let payload = &msg[HEADER_LEN..];
                let expected = (kind != KIND_INPUT).then_some(fixed_in);
                let elems = self.decode_elems(j, payload, expected)?;
                if elems.len() < fixed_in {
                    return Err(MpcError::Protocol {
                        party: j,
                        violation: Violation::BadLength {
                            expected: fixed_in * f.byte_len(),
                            got: payload.len(),
                        },
                    });
                }
                elems
            };
            let mut it = elems.into_iter();
            // Degree-t values need parties 0..=t, degree-2t values 0..=2t; re-shares need all.
            let acc =
                |dst: &mut [F::Elem], it: &mut std::vec::IntoIter<F::Elem>, l: Option<&F::Elem>| {
                    for d in dst.iter_mut() {
                        // Always consume the element, even when this party's share is not needed.
                        if let (Some(v), Some(l)) = (it.next(), l) {
                            *d = f.add(d, &f.mul(l, &v));
                        }
                    }
                };
            acc(&mut out.reshared, &mut it, self.lambda_all.get(j));
            acc(&mut out.opened, &mut it, self.lambda_t.get(j));
            acc(&mut out.opened2t, &mut it, self.lambda_2t.get(j));
            acc(&mut out.private, &mut it, self.lambda_t.get(j));
            acc(&mut out.zeros, &mut it, Some(&f.one()));
            out.inputs.push(it.collect());
        }
        Ok(out)
    }

    /// Runs one batched round. Random bits and pairs requested earlier (PRSS only) ride along.
    pub(crate) async fn round(
        &mut self,
        mut plan: Plan<F::Elem>,
    ) -> Result<Outcome<F::Elem>, MpcError> {
        let f = self.field.clone();
        let batch = self.requested_bits();
        let (n_reshare, n_products) = (plan.reshare.len(), plan.open_products.len());
        batch.add_to(&f, &mut plan);
        let zeros = self.zero_sharings(plan.open_products.len()).await?;
        let open2t = plan
            .open_products
            .iter()
            .zip(&zeros)
            .map(|(v, z)| f.add(v, z))
            .collect();
        // Without PRSS, keep the zero pool topped up in rounds that happen anyway.
        let refill =
            if self.prss.is_none() && self.zero_pool_used && self.zero_pool.len() < ZERO_BATCH {
                ZERO_BATCH
            } else {
                0
            };
        let mut got = self
            .transfer(Wire {
                reshare: plan.reshare,
                open: plan.open,
                open2t,
                private: plan.private,
                zeros: refill,
                input: plan.input,
            })
            .await?;
        self.zero_pool.extend(got.zeros);
        let bit_products = got.reshared.split_off(n_reshare);
        let bit_squares = got.opened2t.split_off(n_products);
        self.absorb_bits(batch, &bit_squares, &bit_products)?;
        Ok(Outcome {
            reshared: got.reshared,
            opened: got.opened,
            opened_products: got.opened2t,
            private: got.private,
            inputs: got.inputs,
        })
    }

    /// `n` random degree-2t sharings of zero: from PRSS, or from the pool (refilled by a round
    /// of its own when it runs short).
    async fn zero_sharings(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        if self.prss.is_some() {
            return Ok((0..n).map(|_| self.prss_zero_2t()).collect());
        }
        if self.zero_pool.len() < n {
            self.zero_pool_used = true;
            let zeros = n - self.zero_pool.len() + ZERO_BATCH;
            let got = self
                .transfer(Wire {
                    zeros,
                    ..Wire::default()
                })
                .await?;
            self.zero_pool.extend(got.zeros);
        }
        Ok(self.zero_pool.drain(..n).collect())
    }

    // ----- inputs and outputs -------------------------------------------------------------

    /// Secret-shares our private inputs and receives shares of everyone else's, in one round.
    /// Returns, per party, shares of that party's inputs. How many inputs each party has is
    /// public (it follows from the message sizes).
    pub async fn input(&mut self, mine: &[F::Elem]) -> Result<Vec<Vec<F::Elem>>, MpcError> {
        let plan = Plan {
            input: Some(mine.to_vec()),
            ..Plan::default()
        };
        Ok(self.round(plan).await?.inputs)
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
        Ok(self.mul_and_open_products((a, b), (&[], &[])).await?.0)
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
            check_lengths(a, b)?;
            let mut acc = f.zero();
            for (x, y) in a.iter().zip(b.iter()) {
                acc = f.add(&acc, &f.mul(x, y));
            }
            reshare.push(acc);
        }
        self.reshare(reshare).await
    }

    /// Multiplies `mul_pairs` (shares out) and opens the products `open_pairs` to everyone, in one
    /// round (the degree-2t products are opened directly; see [`Plan::open_products`]).
    pub(crate) async fn mul_and_open_products(
        &mut self,
        mul_pairs: (&[F::Elem], &[F::Elem]),
        open_pairs: (&[F::Elem], &[F::Elem]),
    ) -> Result<(Vec<F::Elem>, Vec<F::Elem>), MpcError> {
        check_lengths(mul_pairs.0, mul_pairs.1)?;
        check_lengths(open_pairs.0, open_pairs.1)?;
        let f = &self.field;
        let prod = |(a, b): (&[F::Elem], &[F::Elem])| -> Vec<F::Elem> {
            a.iter().zip(b).map(|(x, y)| f.mul(x, y)).collect()
        };
        let plan = Plan {
            reshare: prod(mul_pairs),
            open_products: prod(open_pairs),
            ..Plan::default()
        };
        let out = self.round(plan).await?;
        Ok((out.reshared, out.opened_products))
    }

    /// Opens `a_i * b_i` to everyone and nothing else about `a_i`, `b_i`.
    pub async fn open_products(
        &mut self,
        a: &[F::Elem],
        b: &[F::Elem],
    ) -> Result<Vec<F::Elem>, MpcError> {
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
        let f = &self.field;
        let local = groups
            .iter()
            .flat_map(|g| g.chunks_exact(2).map(|p| f.mul(&p[0], &p[1])))
            .collect();
        let mut products = self.reshare(local).await?.into_iter();
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
        let messages = self.exchange(KIND_PRSS_KEYS, msgs).await?;
        for (j, msg) in messages.iter().enumerate() {
            if j == me {
                continue;
            }
            let p = &msg[HEADER_LEN..];
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

    /// Shares of `n` uniformly random field elements from PRSS (no communication), or `None`
    /// without PRSS.
    fn prss_random(&mut self, n: usize) -> Option<Vec<F::Elem>> {
        let f = &self.field;
        let prss = self.prss.as_mut()?;
        Some(
            (0..n)
                .map(|_| {
                    let mut acc = f.zero();
                    for s in prss.subsets.iter_mut() {
                        acc = f.add(&acc, &f.mul(&f.random(&mut s.rng), &s.f_me));
                    }
                    acc
                })
                .collect(),
        )
    }

    /// Shares of `n` uniformly random field elements (no communication with PRSS).
    pub async fn random(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        if let Some(r) = self.prss_random(n) {
            return Ok(r);
        }
        let f = self.field.clone();
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

    /// The bits and pairs requested for the next round, with their PRSS randomness (none
    /// without PRSS: there the randomness itself costs a round, so requests wait for
    /// [`Runtime::fill_bits`]).
    fn requested_bits(&mut self) -> BitBatch<F::Elem> {
        let (singles, pairs) = (self.bits_wanted, self.pairs_wanted);
        match self.prss_random(singles + 2 * pairs) {
            Some(r) => {
                self.bits_wanted = 0;
                self.pairs_wanted = 0;
                let mut r = r.into_iter();
                let pairs = (0..pairs)
                    .map_while(|_| Some((r.next()?, r.next()?)))
                    .collect();
                BitBatch {
                    pairs,
                    singles: r.collect(),
                }
            }
            None => BitBatch {
                pairs: Vec::new(),
                singles: Vec::new(),
            },
        }
    }

    /// `1 / sqrt(sq)` for each opened square, `None` where it is 0 (the random value was 0,
    /// probability 1/p: that bit is dropped). A non-square means a peer deviated.
    fn inv_roots(&self, squares: &[F::Elem]) -> Result<Vec<Option<F::Elem>>, MpcError> {
        let f = &self.field;
        // Semi-honest peers always open a square; blame the lowest peer we reconstructed from,
        // since we cannot tell who deviated.
        let not_a_square = || MpcError::Protocol {
            party: usize::from(self.me == 0),
            violation: Violation::NotASquare,
        };
        let p = f.modulus();
        if p.bit(1) {
            // p = 3 mod 4: a^((p-3)/4) is 1/sqrt(a) directly, one exponentiation per bit (all
            // of a round's in one batch, which the field may interleave).
            let roots = f.pow_batch(squares, &((p - 3u32) >> 2));
            squares
                .iter()
                .zip(roots)
                .map(|(sq, inv_root)| {
                    if f.is_zero(sq) {
                        Ok(None)
                    } else if f.mul(&f.mul(&inv_root, &inv_root), sq) == f.one() {
                        Ok(Some(inv_root))
                    } else {
                        Err(not_a_square())
                    }
                })
                .collect()
        } else {
            squares
                .iter()
                .map(|sq| {
                    if f.is_zero(sq) {
                        return Ok(None);
                    }
                    let root = f.sqrt(sq).ok_or_else(not_a_square)?;
                    Ok(f.inv(&root))
                })
                .collect()
        }
    }

    /// Turns a batch whose squares were opened (and pair products re-shared) into bits and
    /// pairs in the pools. `(1 + r/sqrt(r^2)) / 2` is a uniformly random bit; for a pair,
    /// `ab = (1 + s_a + s_b + s_a s_b) / 4` with `s_a s_b = r_a r_b / (sqrt(r_a^2) sqrt(r_b^2))`.
    fn absorb_bits(
        &mut self,
        batch: BitBatch<F::Elem>,
        squares: &[F::Elem],
        products: &[F::Elem],
    ) -> Result<(), MpcError> {
        if batch.is_empty() {
            return Ok(());
        }
        let f = self.field.clone();
        let one = f.one();
        let inv2 = f.inv(&f.from_u64(2)).unwrap_or_else(|| f.zero());
        let inv4 = f.mul(&inv2, &inv2);
        let bit = |s: &F::Elem| f.mul(&f.add(&one, s), &inv2);
        let mut inv = self.inv_roots(squares)?.into_iter();
        for ((a, b), ab) in batch.pairs.iter().zip(products) {
            let (Some(ia), Some(ib)) = (inv.next().flatten(), inv.next().flatten()) else {
                continue;
            };
            let (sa, sb) = (f.mul(a, &ia), f.mul(b, &ib));
            let sab = f.mul(ab, &f.mul(&ia, &ib));
            let prod = f.mul(&f.add(&f.add(&one, &sa), &f.add(&sb, &sab)), &inv4);
            self.pair_pool.push_back([bit(&sa), bit(&sb), prod]);
        }
        for (r, i) in batch.singles.iter().zip(inv) {
            if let Some(i) = i {
                self.bit_pool.push_back(bit(&f.mul(r, &i)));
            }
        }
        Ok(())
    }

    /// Asks for `bits` random bits and `pairs` random bit pairs to be made in the next round,
    /// whatever it carries, so that they cost no round of their own (with PRSS; without, they
    /// are made when taken).
    pub(crate) fn request_bits(&mut self, bits: usize, pairs: usize) {
        if self.prss.is_some() {
            self.bits_wanted += bits;
            self.pairs_wanted += pairs;
        }
    }

    /// Makes sure the pools hold at least `bits` bits and `pairs` pairs, running rounds for the
    /// shortfall if needed (one with PRSS, two without).
    pub(crate) async fn fill_bits(&mut self, bits: usize, pairs: usize) -> Result<(), MpcError> {
        let mut rounds = 0;
        loop {
            let need_bits = bits.saturating_sub(self.bit_pool.len());
            let need_pairs = pairs.saturating_sub(self.pair_pool.len());
            if need_bits == 0 && need_pairs == 0 {
                return Ok(());
            }
            rounds += 1;
            if rounds > MAX_GENERATION_ROUNDS {
                return Err(MpcError::Exhausted {
                    what: "random bit generation",
                    attempts: rounds,
                });
            }
            if self.prss.is_some() {
                self.bits_wanted = self.bits_wanted.max(need_bits);
                self.pairs_wanted = self.pairs_wanted.max(need_pairs);
                self.round(Plan::default()).await?;
            } else {
                let mut r = self.random(need_bits + 2 * need_pairs).await?.into_iter();
                let pairs = (0..need_pairs)
                    .map_while(|_| Some((r.next()?, r.next()?)))
                    .collect();
                let batch = BitBatch {
                    pairs,
                    singles: r.collect(),
                };
                let mut plan = Plan::default();
                batch.add_to(&self.field, &mut plan);
                let out = self.round(plan).await?;
                self.absorb_bits(batch, &out.opened_products, &out.reshared)?;
            }
        }
    }

    /// Shares of `n` uniformly random bits: a random `r` is squared and opened, and `r / sqrt(r^2)`
    /// is a uniformly random sign (MPyC's method; one round with PRSS).
    pub async fn random_bits(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        self.take_bits(n).await
    }

    /// Adds `n` random bits to the pool that [`Runtime::take_bits`] draws from, in one batch, so
    /// that protocols needing bits at many points cost one round for all of them.
    pub async fn reserve_bits(&mut self, n: usize) -> Result<(), MpcError> {
        let target = self.bit_pool.len() + n;
        self.fill_bits(target, 0).await
    }

    /// `n` random bits, from the pool if it holds enough, freshly generated otherwise.
    pub async fn take_bits(&mut self, n: usize) -> Result<Vec<F::Elem>, MpcError> {
        self.fill_bits(n, 0).await?;
        Ok(self.bit_pool.drain(..n).collect())
    }

    /// `n` random bit pairs `[a, b, ab]`, from the pool if it holds enough, freshly generated
    /// otherwise. A pair makes a random 2-bit one-hot vector without a multiplication round.
    pub(crate) async fn take_pairs(&mut self, n: usize) -> Result<Vec<[F::Elem; 3]>, MpcError> {
        self.fill_bits(0, n).await?;
        Ok(self.pair_pool.drain(..n).collect())
    }

    /// How many bits and pairs the pools hold (for callers deciding whether to request more).
    pub(crate) fn pooled(&self) -> (usize, usize) {
        (
            self.bit_pool.len() + self.bits_wanted,
            self.pair_pool.len() + self.pairs_wanted,
        )
    }

    // ----- helpers for protocol modules ---------------------------------------------------

    /// The field element `2^e`.
    pub(crate) fn pow2(&self, e: u64) -> F::Elem {
        match self.pow2.get(e as usize) {
            Some(v) => v.clone(),
            None => self.field.from_biguint(&(BigUint::from(1u32) << e)),
        }
    }
}

/// `LengthMismatch` unless both slices have the same length.
pub(crate) fn check_lengths<A, B>(a: &[A], b: &[B]) -> Result<(), MpcError> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(MpcError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        })
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
