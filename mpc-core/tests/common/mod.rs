//! Shared helpers: run one engine per party over the in-memory simulation.
#![allow(dead_code, unreachable_pub)]

pub use mpc_core::sim::{simulate, MemoryTransport, SimConfig};
pub use mpc_core::{Fp64, MpcError, PrimeField, Runtime, RuntimeConfig, Transport};
pub use rand::SeedableRng;
pub use rand_chacha::ChaCha20Rng;

/// 2^64 - 189, MPyC's prime for 32-bit secure integers.
pub const P64: u64 = u64::MAX - 188;

pub fn field() -> Fp64 {
    Fp64::new(P64).expect("prime")
}

pub fn config(t: Option<usize>, prss: bool) -> RuntimeConfig {
    RuntimeConfig {
        threshold: t,
        prss,
        ..RuntimeConfig::default()
    }
}

/// Runs `|rt| body` for each of `m` parties (each with its own seeded rng) and returns the
/// results in party order; panics if any party fails.
#[macro_export]
macro_rules! mpc {
    ($m:expr, $cfg:expr, $seed:expr, |$rt:ident| $body:block) => {
        $crate::mpc!($m, $cfg, $seed, [], |$rt| $body)
    };
    ($m:expr, $cfg:expr, $seed:expr, [$($cap:ident),*], |$rt:ident| $body:block) => {{
        let cfg: $crate::common::RuntimeConfig = $cfg;
        let seed: u64 = $seed;
        $crate::common::simulate(
            $m,
            &$crate::common::SimConfig::default(),
            move |mut tr: $crate::common::MemoryTransport| {
                let cfg = cfg.clone();
                $(let $cap = $cap.clone();)*
                async move {
                    use $crate::common::{SeedableRng, Transport};
                    let me = tr.party_index() as u64;
                    let rng = $crate::common::ChaCha20Rng::seed_from_u64(seed * 1000 + me);
                    #[allow(unused_mut)]
                    let mut $rt =
                        $crate::common::Runtime::new($crate::common::field(), &mut tr, rng, &cfg)
                            .await?;
                    let out: Result<_, $crate::common::MpcError> = async { $body }.await;
                    out
                }
            },
        )
        .into_iter()
        .map(|r| r.expect("party panicked").expect("party failed"))
        .collect::<Vec<_>>()
    }};
}
