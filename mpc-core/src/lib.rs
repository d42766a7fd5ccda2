//! # mpc-core
//!
//! A Shamir-secret-sharing MPC engine with MPyC's protocols, the demo programs users run, and
//! the transport abstraction they run over.
//!
//! **What it owns.** Prime fields ([`Fp64`] fast path for primes below 2^64, [`BigPrimeField`]
//! for any prime), Shamir sharing ([`shamir`]), the interactive engine [`Runtime`]
//! (multiplication by re-sharing, batched inner products, pseudo-random secret sharing with a
//! fallback, random bits, comparisons and equality, secure shuffles and derangements, Batcher
//! sorting), the programs ([`Program`], [`run_program`]), the [`Transport`] trait and an in-memory
//! n-party simulation ([`sim`]). It knows nothing of sockets, WebRTC, identities or async
//! runtimes: the engine is plain `async` code that only ever awaits its transport.
//!
//! **How it is driven.** Each party builds a [`Transport`] (the WebRTC mesh, the benchmark's TCP
//! transport behind feature `tcp`, or [`sim::memory_mesh`]) and calls
//! [`run_program`]`(&program, &inputs, &mut transport, rng, &config)` — or builds a [`Runtime`]
//! and calls its protocols directly, or runs a program on it with [`run_with`]. Randomness is injected (`R: RngCore + CryptoRng`), so runs
//! are reproducible in tests. Every interaction is a numbered round in which each party sends one
//! message to every peer and receives one from each; the receiver checks the round number and
//! kind in every header, so messages are matched to rounds explicitly. A peer that sends garbage
//! gives [`MpcError::Protocol`], one that disappears or goes silent gives
//! [`MpcError::Transport`] (after the transport's receive timeout); both name the party
//! ([`MpcError::party`]). Nothing a peer sends can make the engine panic.
//!
//! **Security model.** Like MPyC: semi-honest (honest-but-curious) parties and an honest
//! majority, `t < m/2` (default `t = (m-1)/2`). Up to `t` colluding parties learn nothing beyond
//! the outputs; comparisons and equality tests are statistically secure with parameter `k = 30`.
//! There is no protection against parties that deviate from the protocol. The transport must be
//! authenticated, private, reliable and ordered (see [`Transport`]); the engine does no
//! cryptography on the wire.
#![forbid(unsafe_code)]

mod compare;
pub mod field;
mod onehot;
pub mod programs;
mod runtime;
pub mod shamir;
mod shuffle;
pub mod sim;
mod sort;
#[cfg(feature = "tcp")]
pub mod tcp;
mod transport;

pub use field::{BigPrimeField, FieldError, Fp64, PrimeField};
pub use programs::{
    run_program, run_with, Assignment, Program, ProgramError, ProgramOutput, ProgramRun,
    ProgramSpec, Reveal,
};
pub use runtime::{CommStats, MpcError, Runtime, RuntimeConfig, Violation};
pub use sort::batcher_layers;
pub use transport::{Transport, TransportError};
