//! The programs users run, callable as library functions on a [`Runtime`] or by name with JSON
//! parameters over any [`Transport`] ([`Program::from_name`], [`run_program`]).
//!
//! Inputs are signed 64-bit integers; each party gives zero or more (how many is public). Every
//! program checks that our own inputs fit the secure integer bit length `bits` (default 32), i.e.
//! lie in `[-2^(bits-1), 2^(bits-1))`; peers' inputs cannot be checked (semi-honest model).
//!
//! | name | inputs | everyone learns |
//! |---|---|---|
//! | `sum` | any number per party | the sum of all inputs |
//! | `stats` | any number per party | count, sum, mean, population variance |
//! | `millionaires` (alias `compare`) | exactly one per party | the index of the party with the largest input (ties: lowest index) |
//! | `sort` | any number per party | all inputs, sorted ascending (not who gave which) |
//! | `secret-santa` | none; `n` (default: number of parties) | person `j` belongs to party `j mod m`; with `reveal: "own"` (default) each party learns only its own people's assignees, with `"all"` everyone learns the whole derangement (MPyC's demo output) |
//! | `inner-product` | all inputs in party order form one vector of even length `2n` | `<first half, second half>` (with two parties: the inner product of their private vectors) |

use std::fmt;

use num_bigint::{BigInt, BigUint};
use num_traits::{ToPrimitive, Zero};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::field::{largest_prime_3_mod_4_below_pow2, BigPrimeField, FieldError, Fp64, PrimeField};
use crate::runtime::{CommStats, MpcError, Runtime, RuntimeConfig};
use crate::shuffle::RevealTo;
use crate::transport::Transport;

/// Names accepted by [`Program::from_name`].
pub const PROGRAM_NAMES: &[&str] = &[
    "sum",
    "stats",
    "millionaires",
    "compare",
    "sort",
    "secret-santa",
    "inner-product",
];

/// Errors of the program layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProgramError {
    /// No program of that name.
    #[error("unknown program {name:?} (known: {known})", known = PROGRAM_NAMES.join(", "))]
    UnknownProgram {
        /// Name asked for.
        name: String,
    },
    /// The parameters do not parse.
    #[error("invalid parameters for {program}")]
    InvalidParams {
        /// Program.
        program: &'static str,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A parameter is out of range.
    #[error("invalid parameter for {program}: {reason}")]
    BadParameter {
        /// Program.
        program: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// One of our own inputs does not fit.
    #[error("input {value} does not fit a {bits}-bit secure integer")]
    InputOutOfRange {
        /// The input.
        value: i64,
        /// Bit length.
        bits: u32,
    },
    /// A party (possibly us) gave a number of inputs the program cannot use.
    #[error("party {party} gave {got} inputs; {program} needs {expected}")]
    InputCount {
        /// Program.
        program: &'static str,
        /// The party.
        party: usize,
        /// Inputs given.
        got: usize,
        /// What was needed.
        expected: &'static str,
    },
    /// A result does not fit the output type.
    #[error("result does not fit the output type")]
    OutputOverflow,
    /// Field set-up failed.
    #[error("field set-up failed")]
    Field(#[from] FieldError),
    /// The computation failed (names the party at fault where there is one).
    #[error("computation failed")]
    Mpc(#[from] MpcError),
}

/// Parameters of the integer programs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntParams {
    /// Bit length `l` of the secure integers (2..=63).
    pub bits: u32,
}

impl Default for IntParams {
    fn default() -> Self {
        IntParams { bits: 32 }
    }
}

/// Who learns the secret-santa assignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reveal {
    /// Each party learns only the assignees of its own people.
    #[default]
    Own,
    /// Everyone learns the whole derangement (as MPyC's demo prints it).
    All,
}

/// Parameters of `secret-santa`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSantaParams {
    /// Number of people; default: the number of parties. Person `j` belongs to party `j mod m`.
    pub n: Option<usize>,
    /// Who learns what.
    pub reveal: Reveal,
    /// Candidate permutations drawn per attempt (default 1, MPyC's algorithm; more cost more
    /// bandwidth but fewer rounds on average).
    pub candidates: Option<usize>,
}

/// A program with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Program {
    /// Sum of all inputs.
    Sum(IntParams),
    /// Count, sum, mean and variance of all inputs.
    Stats(IntParams),
    /// Which party has the largest input.
    Millionaires(IntParams),
    /// All inputs sorted.
    Sort(IntParams),
    /// A random derangement; each party learns its own people's assignees.
    SecretSanta(SecretSantaParams),
    /// Inner product of two long private vectors.
    InnerProduct(IntParams),
}

/// The serialisable form `{"name": "secret-santa", "params": {"n": 3}}` used by manifests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramSpec {
    /// Program name (see [`PROGRAM_NAMES`]).
    pub name: String,
    /// Parameters; `null` or absent means defaults.
    #[serde(default)]
    pub params: serde_json::Value,
}

impl TryFrom<&ProgramSpec> for Program {
    type Error = ProgramError;
    fn try_from(spec: &ProgramSpec) -> Result<Self, ProgramError> {
        Program::from_name(&spec.name, &spec.params)
    }
}

fn parse<P: serde::de::DeserializeOwned + Default>(
    program: &'static str,
    params: &serde_json::Value,
) -> Result<P, ProgramError> {
    if params.is_null() {
        return Ok(P::default());
    }
    serde_json::from_value(params.clone())
        .map_err(|source| ProgramError::InvalidParams { program, source })
}

impl Program {
    /// Looks a program up by name and parses its parameters (`null` for defaults).
    pub fn from_name(name: &str, params: &serde_json::Value) -> Result<Self, ProgramError> {
        let program = match name {
            "sum" => Program::Sum(parse("sum", params)?),
            "stats" => Program::Stats(parse("stats", params)?),
            "millionaires" | "compare" => Program::Millionaires(parse("millionaires", params)?),
            "sort" => Program::Sort(parse("sort", params)?),
            "secret-santa" => Program::SecretSanta(parse("secret-santa", params)?),
            "inner-product" => Program::InnerProduct(parse("inner-product", params)?),
            _ => {
                return Err(ProgramError::UnknownProgram {
                    name: name.to_owned(),
                })
            }
        };
        program.validate()?;
        Ok(program)
    }

    /// The canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            Program::Sum(_) => "sum",
            Program::Stats(_) => "stats",
            Program::Millionaires(_) => "millionaires",
            Program::Sort(_) => "sort",
            Program::SecretSanta(_) => "secret-santa",
            Program::InnerProduct(_) => "inner-product",
        }
    }

    /// The serialisable spec of this program.
    pub fn spec(&self) -> ProgramSpec {
        let params = match self {
            Program::Sum(p)
            | Program::Stats(p)
            | Program::Millionaires(p)
            | Program::Sort(p)
            | Program::InnerProduct(p) => serde_json::to_value(p),
            Program::SecretSanta(p) => serde_json::to_value(p),
        }
        .unwrap_or(serde_json::Value::Null);
        ProgramSpec {
            name: self.name().to_owned(),
            params,
        }
    }

    fn validate(&self) -> Result<(), ProgramError> {
        let bad = |reason: &str| ProgramError::BadParameter {
            program: self.name(),
            reason: reason.to_owned(),
        };
        match self {
            Program::SecretSanta(p) => {
                if p.n.is_some_and(|n| n < 2) {
                    return Err(bad(
                        "n must be at least 2 (a derangement of one person does not exist)",
                    ));
                }
                if p.candidates.is_some_and(|c| c == 0 || c > 64) {
                    return Err(bad("candidates must be in 1..=64"));
                }
            }
            Program::Sum(p)
            | Program::Stats(p)
            | Program::Millionaires(p)
            | Program::Sort(p)
            | Program::InnerProduct(p) => {
                if !(2..=63).contains(&p.bits) {
                    return Err(bad("bits must be in 2..=63"));
                }
            }
        }
        Ok(())
    }

    /// Bit length of the secure integers the field must hold (the prime is MPyC's: the largest
    /// `p = 3 mod 4` below `2^(l + k + 2)`).
    fn field_bit_length(&self) -> u32 {
        match self {
            Program::Sum(p) | Program::Millionaires(p) | Program::Sort(p) => p.bits,
            // Squares and products need twice the bits, plus room for 2^16 terms.
            Program::Stats(p) | Program::InnerProduct(p) => 2 * p.bits + 16,
            Program::SecretSanta(_) => 32,
        }
    }
}

/// A secret-santa assignment: `giver` gives a present to `receiver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Person giving.
    pub giver: usize,
    /// Person receiving.
    pub receiver: usize,
}

/// What a program outputs to this party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "program", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProgramOutput {
    /// `sum`.
    Sum {
        /// Number of inputs.
        count: usize,
        /// Their sum.
        sum: i128,
    },
    /// `stats`.
    Stats {
        /// Number of inputs.
        count: usize,
        /// Their sum.
        sum: i128,
        /// Mean.
        mean: f64,
        /// Population variance.
        variance: f64,
    },
    /// `millionaires`.
    Millionaires {
        /// Index of the party with the largest input.
        richest: usize,
    },
    /// `sort`.
    Sort {
        /// All inputs, ascending.
        sorted: Vec<i64>,
    },
    /// `secret-santa`.
    SecretSanta {
        /// Number of people.
        n: usize,
        /// The assignments this party may see.
        assignments: Vec<Assignment>,
    },
    /// `inner-product`.
    InnerProduct {
        /// Vector length.
        length: usize,
        /// The inner product.
        value: i128,
    },
}

impl fmt::Display for ProgramOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramOutput::Sum { count, sum } => write!(f, "sum of {count} inputs: {sum}"),
            ProgramOutput::Stats {
                count,
                sum,
                mean,
                variance,
            } => write!(
                f,
                "{count} inputs: sum {sum}, mean {mean}, variance {variance}"
            ),
            ProgramOutput::Millionaires { richest } => {
                write!(f, "party {richest} is the richest")
            }
            ProgramOutput::Sort { sorted } => write!(f, "sorted: {sorted:?}"),
            ProgramOutput::SecretSanta { n, assignments } => {
                write!(f, "secret santa among {n}:")?;
                for a in assignments {
                    write!(f, " {}->{}", a.giver, a.receiver)?;
                }
                Ok(())
            }
            ProgramOutput::InnerProduct { length, value } => {
                write!(f, "inner product of length {length}: {value}")
            }
        }
    }
}

/// A program's output with this party's communication counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramRun {
    /// The output.
    pub output: ProgramOutput,
    /// What this party sent.
    pub stats: CommStats,
}

/// Runs `program` with our `inputs` over `transport`. Picks the field (the 64-bit fast path when
/// the prime fits), sets up the engine (PRSS keys), shares inputs and computes.
pub async fn run_program<T, R>(
    program: &Program,
    inputs: &[i64],
    transport: &mut T,
    rng: R,
    config: &RuntimeConfig,
) -> Result<ProgramRun, ProgramError>
where
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    program.validate()?;
    let p = program.prime(config)?;
    match p.to_u64() {
        Some(p64) => run_in(Fp64::new(p64)?, program, inputs, transport, rng, config).await,
        None => {
            run_in(
                BigPrimeField::new(p)?,
                program,
                inputs,
                transport,
                rng,
                config,
            )
            .await
        }
    }
}

impl Program {
    /// The prime [`run_program`] computes modulo: MPyC's, the largest `p = 3 mod 4` below
    /// `2^(l + k + 2)` for the program's bit length `l` and the statistical security `k`.
    pub fn prime(&self, config: &RuntimeConfig) -> Result<BigUint, ProgramError> {
        let bits = u64::from(self.field_bit_length()) + u64::from(config.statistical_security) + 2;
        Ok(largest_prime_3_mod_4_below_pow2(bits)?)
    }
}

async fn run_in<F, T, R>(
    field: F,
    program: &Program,
    inputs: &[i64],
    transport: &mut T,
    rng: R,
    config: &RuntimeConfig,
) -> Result<ProgramRun, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let mut rt = Runtime::new(field, transport, rng, config).await?;
    let output = run_with(&mut rt, program, inputs).await?;
    Ok(ProgramRun {
        output,
        stats: rt.stats(),
    })
}

/// Runs `program` on an engine that is already set up (its field must be the one
/// [`Program::prime`] names, or at least as large), for callers that set up once and time or
/// run the program separately.
pub async fn run_with<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    program: &Program,
    inputs: &[i64],
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    program.validate()?;
    match program {
        Program::Sum(p) => sum(rt, inputs, p).await,
        Program::Stats(p) => stats(rt, inputs, p).await,
        Program::Millionaires(p) => millionaires(rt, inputs, p).await,
        Program::Sort(p) => sort(rt, inputs, p).await,
        Program::SecretSanta(p) => secret_santa(rt, inputs, p).await,
        Program::InnerProduct(p) => inner_product(rt, inputs, p).await,
    }
}

fn check_inputs(inputs: &[i64], bits: u32) -> Result<(), ProgramError> {
    let bound = 1i128 << (bits - 1);
    match inputs
        .iter()
        .find(|&&v| i128::from(v) < -bound || i128::from(v) >= bound)
    {
        Some(&value) => Err(ProgramError::InputOutOfRange { value, bits }),
        None => Ok(()),
    }
}

async fn share_inputs<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    bits: u32,
) -> Result<Vec<Vec<F::Elem>>, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    check_inputs(inputs, bits)?;
    let f = rt.field().clone();
    let mine: Vec<F::Elem> = inputs.iter().map(|&v| f.from_i64(v)).collect();
    Ok(rt.input(&mine).await?)
}

/// All parties' inputs, shared, in party order.
async fn share_all_inputs<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    bits: u32,
) -> Result<Vec<F::Elem>, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    Ok(share_inputs(rt, inputs, bits)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Opens one shared value as a signed integer (0 if there is none).
async fn open_i128<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    value: Option<F::Elem>,
) -> Result<i128, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let Some(value) = value else {
        return Ok(0);
    };
    let opened = rt.open(&[value]).await?;
    let f = rt.field();
    opened.first().map_or(Ok(0), |v| {
        f.to_signed(v).to_i128().ok_or(ProgramError::OutputOverflow)
    })
}

fn to_i64<F: PrimeField>(f: &F, v: &F::Elem) -> Result<i64, ProgramError> {
    f.to_signed(v).to_i64().ok_or(ProgramError::OutputOverflow)
}

/// `sum`: the sum of all parties' inputs (no interaction beyond input and one opening).
pub async fn sum<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &IntParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let xs = share_all_inputs(rt, inputs, params.bits).await?;
    let f = rt.field().clone();
    let total = xs.iter().fold(f.zero(), |acc, v| f.add(&acc, v));
    let sum = open_i128(rt, Some(total)).await?;
    Ok(ProgramOutput::Sum {
        count: xs.len(),
        sum,
    })
}

/// `stats`: count, sum, mean and population variance; only the sum and the sum of squares are
/// opened (one inner-product round and one opening).
pub async fn stats<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &IntParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let xs = share_all_inputs(rt, inputs, params.bits).await?;
    let f = rt.field().clone();
    let count = xs.len();
    if count == 0 {
        return Err(ProgramError::InputCount {
            program: "stats",
            party: rt.party(),
            got: 0,
            expected: "at least one input among all parties",
        });
    }
    let total = xs.iter().fold(f.zero(), |acc, v| f.add(&acc, v));
    let squares = rt.inner_products(&[(&xs, &xs)]).await?;
    let opened = rt
        .open(&[
            total,
            squares.into_iter().next().unwrap_or_else(|| f.zero()),
        ])
        .await?;
    let (s, sq) = (f.to_signed(&opened[0]), f.to_signed(&opened[1]));
    let n = BigInt::from(count);
    let var_num: BigInt = &n * &sq - &s * &s;
    let mean = s.to_f64().unwrap_or(f64::NAN) / count as f64;
    let variance = var_num.to_f64().unwrap_or(f64::NAN) / (count as f64 * count as f64);
    Ok(ProgramOutput::Stats {
        count,
        sum: s.to_i128().ok_or(ProgramError::OutputOverflow)?,
        mean,
        variance: if var_num.is_zero() { 0.0 } else { variance },
    })
}

/// `millionaires`: each party inputs one value; everyone learns only who has the largest.
pub async fn millionaires<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &IntParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let all = share_inputs(rt, inputs, params.bits).await?;
    let mut xs = Vec::with_capacity(all.len());
    for (party, v) in all.into_iter().enumerate() {
        if v.len() != 1 {
            return Err(ProgramError::InputCount {
                program: "millionaires",
                party,
                got: v.len(),
                expected: "exactly one",
            });
        }
        xs.extend(v);
    }
    let f = rt.field().clone();
    let (index, _) = rt
        .argmax(&xs, params.bits)
        .await?
        .ok_or(MpcError::InvalidArgument { what: "no parties" })?;
    let opened = rt.open(&[index]).await?;
    let richest = opened
        .first()
        .and_then(|v| f.to_biguint(v).to_usize())
        .ok_or(ProgramError::OutputOverflow)?;
    Ok(ProgramOutput::Millionaires { richest })
}

/// `sort`: all inputs sorted ascending (Batcher's network).
pub async fn sort<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &IntParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let xs = share_all_inputs(rt, inputs, params.bits).await?;
    let opened = rt.sort_and_open(&xs, params.bits).await?;
    let f = rt.field().clone();
    let sorted = opened
        .iter()
        .map(|v| to_i64(&f, v))
        .collect::<Result<_, _>>()?;
    Ok(ProgramOutput::Sort { sorted })
}

/// `secret-santa`: a secret random derangement of `n` people; person `j` belongs to party
/// `j mod m` and, with [`Reveal::Own`], only that party learns `j`'s assignee.
pub async fn secret_santa<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &SecretSantaParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    if !inputs.is_empty() {
        return Err(ProgramError::InputCount {
            program: "secret-santa",
            party: rt.party(),
            got: inputs.len(),
            expected: "none",
        });
    }
    let m = rt.parties();
    let n = params.n.unwrap_or(m);
    if n < 2 {
        return Err(ProgramError::BadParameter {
            program: "secret-santa",
            reason: format!("{n} people cannot exchange presents (need at least 2)"),
        });
    }
    let me = rt.party();
    let (givers, reveal): (Vec<usize>, RevealTo) = match params.reveal {
        Reveal::All => ((0..n).collect(), RevealTo::All),
        Reveal::Own => (
            (0..n).filter(|j| j % m == me).collect(),
            RevealTo::Owners((0..n).map(|j| j % m).collect()),
        ),
    };
    // Opened in the round of the fixed-point test (see `shuffle`): one round less.
    let values = rt
        .random_derangement_revealed(n, params.candidates.unwrap_or(1), &reveal)
        .await?;
    let f = rt.field().clone();
    let assignments = givers
        .into_iter()
        .zip(values)
        .map(|(giver, v)| {
            let receiver = f
                .to_biguint(&v)
                .to_usize()
                .ok_or(ProgramError::OutputOverflow)?;
            Ok(Assignment { giver, receiver })
        })
        .collect::<Result<_, ProgramError>>()?;
    Ok(ProgramOutput::SecretSanta { n, assignments })
}

/// `inner-product`: all inputs in party order form a vector of length `2n`; the output is the
/// inner product of its two halves. The input round carries the long vectors; the product is one
/// round with a single element per peer.
pub async fn inner_product<F, T, R>(
    rt: &mut Runtime<'_, F, T, R>,
    inputs: &[i64],
    params: &IntParams,
) -> Result<ProgramOutput, ProgramError>
where
    F: PrimeField,
    T: Transport + ?Sized,
    R: RngCore + CryptoRng + Send,
{
    let xs = share_all_inputs(rt, inputs, params.bits).await?;
    if xs.len() % 2 != 0 {
        return Err(ProgramError::InputCount {
            program: "inner-product",
            party: rt.parties() - 1,
            got: xs.len(),
            expected: "an even total (two vectors of equal length)",
        });
    }
    let (a, b) = xs.split_at(xs.len() / 2);
    let ip = rt.inner_products(&[(a, b)]).await?;
    let value = open_i128(rt, ip.into_iter().next()).await?;
    Ok(ProgramOutput::InnerProduct {
        length: a.len(),
        value,
    })
}
