//! A peer that disappears, goes silent or sends garbage produces an error naming it, within a
//! bounded time, never a panic or a hang.

use std::time::{Duration, Instant};

use mpc_core::sim::{memory_mesh, MemoryTransport, SimConfig};
use mpc_core::{
    run_program, MpcError, Program, ProgramError, RuntimeConfig, Transport, TransportError,
    Violation,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn config() -> SimConfig {
    SimConfig {
        timeout: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// Runs secret-santa on every endpoint given, each on its own thread.
fn run_honest(endpoints: Vec<MemoryTransport>) -> Vec<Result<(), ProgramError>> {
    let handles: Vec<_> = endpoints
        .into_iter()
        .map(|mut tr| {
            std::thread::spawn(move || {
                let program = Program::from_name("sort", &serde_json::Value::Null)?;
                let rng = ChaCha20Rng::seed_from_u64(tr.party_index() as u64);
                futures::executor::block_on(run_program(
                    &program,
                    &[1, 2],
                    &mut tr,
                    rng,
                    &RuntimeConfig::default(),
                ))
                .map(|_| ())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect()
}

fn blamed(r: &Result<(), ProgramError>) -> Option<usize> {
    match r {
        Err(ProgramError::Mpc(e)) => e.party(),
        _ => None,
    }
}

#[test]
fn a_party_that_disappears_is_named_by_the_others() {
    let mut mesh = memory_mesh(3, &config());
    drop(mesh.pop()); // party 2 vanishes before the start
    let start = Instant::now();
    let results = run_honest(mesh);
    assert!(start.elapsed() < Duration::from_secs(5));
    for r in &results {
        assert_eq!(blamed(r), Some(2), "{r:?}");
    }
}

#[test]
fn a_silent_party_times_out_and_is_named() {
    let mut mesh = memory_mesh(3, &config());
    let silent = mesh.pop(); // kept alive, never sends
    let start = Instant::now();
    let results = run_honest(mesh);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(silent);
    for r in &results {
        assert!(
            matches!(
                r,
                Err(ProgramError::Mpc(MpcError::Transport(
                    TransportError::Timeout { party: 2, .. }
                )))
            ),
            "{r:?}"
        );
    }
}

#[test]
fn a_party_sending_garbage_is_named() {
    let garbage: [&[u8]; 3] = [
        b"hi",                                 // no header
        &[7, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3], // wrong round
        &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3], // right header, key of the wrong length
    ];
    for g in garbage {
        let mut mesh = memory_mesh(3, &config());
        let mut bad = mesh.pop().expect("party 2");
        for to in 0..2 {
            futures::executor::block_on(bad.send(to, g.to_vec())).expect("queued");
        }
        let results = run_honest(mesh);
        drop(bad);
        for r in &results {
            assert!(
                matches!(
                    r,
                    Err(ProgramError::Mpc(MpcError::Protocol { party: 2, .. }))
                ),
                "{r:?}"
            );
        }
    }
}

#[test]
fn a_field_element_out_of_range_is_a_protocol_violation() {
    // Party 1 follows the protocol until the first computation round, then sends 0xff.. bytes,
    // which are not below p: the receiver must reject, not reduce.
    let mut mesh = memory_mesh(2, &config());
    let mut evil = mesh.pop().expect("party 1");
    let honest = mesh.pop().expect("party 0");
    let h = std::thread::spawn(move || {
        let mut tr = honest;
        let rng = ChaCha20Rng::seed_from_u64(0);
        let cfg = RuntimeConfig {
            threshold: Some(0),
            prss: false,
            ..RuntimeConfig::default()
        };
        let program = Program::from_name("sum", &serde_json::Value::Null).expect("program");
        futures::executor::block_on(run_program(&program, &[5], &mut tr, rng, &cfg))
    });
    // Round 0 is the input round (no PRSS): header, then one 8-byte element 2^64 - 1.
    let mut msg = vec![0u8; 9];
    msg[8] = 2;
    msg.extend_from_slice(&[0xff; 8]);
    futures::executor::block_on(evil.send(0, msg)).expect("queued");
    let r = h.join().expect("no panic");
    drop(evil);
    assert!(
        matches!(
            r,
            Err(ProgramError::Mpc(MpcError::Protocol {
                party: 1,
                violation: Violation::BadElement { index: 0 }
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn a_threshold_whose_double_overflows_is_refused_not_a_panic() {
    // A manifest can state any threshold; 2^63 doubled wraps to 0 in release builds.
    for t in [1usize << 63, usize::MAX] {
        let mut mesh = memory_mesh(1, &config());
        let mut tr = mesh.pop().expect("party 0");
        let cfg = RuntimeConfig {
            threshold: Some(t),
            prss: false,
            ..RuntimeConfig::default()
        };
        let program = Program::from_name("sum", &serde_json::Value::Null).expect("program");
        let rng = ChaCha20Rng::seed_from_u64(0);
        let r = futures::executor::block_on(run_program(&program, &[5], &mut tr, rng, &cfg));
        assert!(
            matches!(
                r,
                Err(ProgramError::Mpc(MpcError::BadThreshold { t: got, m: 1 })) if got == t
            ),
            "{r:?}"
        );
    }
}
