#![cfg(feature = "tcp")]
#![allow(clippy::unwrap_used)]
//! The benchmark's TCP transport on real sockets (127.0.0.1, ephemeral ports, one thread per
//! party): programs give the plaintext answers, large messages (the writer-thread path) keep
//! their order, and a peer that disappears or goes silent is named within a bounded time.

use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mpc_core::tcp::TcpTransport;
use mpc_core::{
    run_program, MpcError, Program, ProgramError, ProgramOutput, ProgramRun, RuntimeConfig,
    Transport, TransportError,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;

/// Connects `m` parties on ephemeral loopback ports: all listeners are bound first, so nobody
/// connects to a port that is not listening yet.
fn mesh(m: usize, timeout: Duration) -> Vec<TcpTransport> {
    let listeners: Vec<TcpListener> = (0..m)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(me, l)| {
            let addrs = addrs.clone();
            thread::spawn(move || TcpTransport::connect_with_listener(me, l, &addrs, timeout))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect()
}

/// Runs `program` with `inputs[i]` on party `i`'s transport, one thread each.
fn run<T: Transport + 'static>(
    transports: Vec<T>,
    program: &Program,
    inputs: &[Vec<i64>],
) -> Vec<Result<ProgramRun, ProgramError>> {
    let handles: Vec<_> = transports
        .into_iter()
        .enumerate()
        .map(|(me, mut tr)| {
            let program = program.clone();
            let inputs = inputs[me].clone();
            thread::spawn(move || {
                let rng = ChaCha20Rng::seed_from_u64(7 + me as u64);
                futures::executor::block_on(run_program(
                    &program,
                    &inputs,
                    &mut tr,
                    rng,
                    &RuntimeConfig::default(),
                ))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn outputs(results: Vec<Result<ProgramRun, ProgramError>>) -> Vec<ProgramOutput> {
    results.into_iter().map(|r| r.unwrap().output).collect()
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn sum_over_sockets_matches_plaintext() {
    let inputs = vec![vec![5, -7, 1 << 30], vec![], vec![12, -(1 << 31)]];
    let expect: i128 = inputs.iter().flatten().map(|&v| i128::from(v)).sum();
    let program = Program::from_name("sum", &serde_json::Value::Null).unwrap();
    for out in outputs(run(mesh(3, LONG), &program, &inputs)) {
        assert_eq!(
            out,
            ProgramOutput::Sum {
                count: 5,
                sum: expect
            }
        );
    }
}

#[test]
fn secret_santa_over_sockets_is_a_derangement() {
    let program = Program::from_name("secret-santa", &json!({"n": 9, "reveal": "all"})).unwrap();
    let outs = outputs(run(mesh(3, LONG), &program, &[vec![], vec![], vec![]]));
    let ProgramOutput::SecretSanta { n, assignments } = &outs[0] else {
        panic!("wrong output {:?}", outs[0]);
    };
    assert_eq!(*n, 9);
    let mut receivers: Vec<usize> = assignments.iter().map(|a| a.receiver).collect();
    assert!(assignments.iter().all(|a| a.giver != a.receiver));
    receivers.sort_unstable();
    assert_eq!(receivers, (0..9).collect::<Vec<_>>());
    assert!(outs.iter().all(|o| o == &outs[0]), "parties disagree");
}

#[test]
fn a_large_sort_over_sockets_matches_plaintext() {
    // 48 values: the random-bit round's messages are far above the direct-write limit, so they
    // go through the writer threads, interleaved with small direct writes.
    let inputs: Vec<Vec<i64>> = (0..3)
        .map(|i| {
            (0..16)
                .map(|j| ((i * 16 + j) * 2_654_435_761i64 % (1 << 32)) - (1 << 31))
                .collect()
        })
        .collect();
    let mut expect: Vec<i64> = inputs.iter().flatten().copied().collect();
    expect.sort_unstable();
    let program = Program::from_name("sort", &serde_json::Value::Null).unwrap();
    let results = run(mesh(3, LONG), &program, &inputs);
    let big = results
        .iter()
        .map(|r| r.as_ref().unwrap().stats.bytes_sent)
        .max()
        .unwrap();
    assert!(big > 2 * mpc_core::tcp::DIRECT_WRITE_MAX as u64);
    for out in outputs(results) {
        assert_eq!(
            out,
            ProgramOutput::Sort {
                sorted: expect.clone()
            }
        );
    }
}

/// A transport that closes all its sockets (drops its mesh) when `sends_left` sends are done.
struct Quitter {
    inner: Option<TcpTransport>,
    me: usize,
    m: usize,
    sends_left: usize,
}

impl Transport for Quitter {
    fn party_count(&self) -> usize {
        self.m
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        if self.sends_left == 0 {
            self.inner = None;
        }
        self.sends_left = self.sends_left.saturating_sub(1);
        match self.inner.as_mut() {
            Some(t) => t.send(to, msg),
            None => Box::pin(async move { Err(TransportError::Closed { party: to }) }),
        }
    }
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        match self.inner.as_mut() {
            Some(t) => t.recv(from),
            None => Box::pin(async move { Err(TransportError::Closed { party: from }) }),
        }
    }
}

#[test]
fn a_peer_whose_sockets_close_mid_run_is_named_at_once() {
    let program = Program::from_name("secret-santa", &json!({"n": 6})).unwrap();
    // Party 2 closes its sockets at the start of round 2 (after the key exchange) or round 4
    // (in the middle of the derangement); the others must blame it, without waiting for a
    // timeout.
    for rounds_before_quitting in [1, 3] {
        let mut tcp = mesh(3, LONG);
        let last = tcp.pop().unwrap();
        let mut transports: Vec<Box<dyn Transport>> = tcp
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn Transport>)
            .collect();
        transports.push(Box::new(Quitter {
            inner: Some(last),
            me: 2,
            m: 3,
            sends_left: 2 * rounds_before_quitting,
        }));
        let start = Instant::now();
        let results = run(transports, &program, &[vec![], vec![], vec![]]);
        let elapsed = start.elapsed();
        assert!(elapsed < LONG / 2, "took {elapsed:?}: waited for a timeout");
        for r in &results[..2] {
            match r {
                Err(ProgramError::Mpc(MpcError::Transport(
                    e @ (TransportError::Closed { .. } | TransportError::Io { .. }),
                ))) => assert_eq!(e.party(), 2, "{e:?}"),
                other => panic!("expected a closed link to party 2, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_silent_peer_times_out_and_is_named() {
    let mut transports = mesh(3, Duration::from_secs(2));
    let silent = transports.pop().unwrap(); // connected, never sends
    let program = Program::from_name("sum", &serde_json::Value::Null).unwrap();
    let start = Instant::now();
    let results = run(transports, &program, &[vec![1], vec![2]]);
    assert!(start.elapsed() < Duration::from_secs(20));
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
