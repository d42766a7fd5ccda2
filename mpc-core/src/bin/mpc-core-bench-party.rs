//! One party of the MPyC comparison benchmark: connects a loopback TCP mesh, runs a program and
//! prints one JSON line with the compute time (from the set-up engine to the opened result),
//! its CPU time, and the rounds and communication of that part. Driven by `bench/mpyc/run.sh`.
//!
//! Usage: `mpc-core-bench-party <party> <parties> <base-port> <sort|secret-santa> <n> [seed]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mpc_core::tcp::TcpTransport;
use mpc_core::{run_with, Fp64, Program, Runtime, RuntimeConfig, Transport, TransportError};
use num_traits::ToPrimitive;
use rand::rngs::OsRng;

/// The benchmark's inputs, identical to `bench/mpyc/common.py`: value `j` of `n`.
fn input_value(j: u64, seed: u64) -> i64 {
    let x = (j.wrapping_add(seed)).wrapping_mul(2_654_435_761) % (1 << 32);
    x as i64 - (1 << 31)
}

async fn barrier(t: &mut TcpTransport, me: usize, m: usize) -> Result<(), TransportError> {
    for j in (0..m).filter(|&j| j != me) {
        t.send(j, b"ready".to_vec()).await?;
    }
    for j in (0..m).filter(|&j| j != me) {
        t.recv(j).await?;
    }
    Ok(())
}

/// CPU time of this thread so far (Linux's scheduler statistics: nanoseconds on a CPU), so the
/// benchmark can tell computing from waiting for peers. `None` where it is not available.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        let mut source = std::error::Error::source(&*e);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return Err("usage: mpc-core-bench-party <party> <parties> <base-port> <sort|secret-santa> <n> [seed]".into());
    }
    let me: usize = args[0].parse()?;
    let m: usize = args[1].parse()?;
    let base: u16 = args[2].parse()?;
    let name = args[3].as_str();
    let n: usize = args[4].parse()?;
    let seed: u64 = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let addrs: Vec<SocketAddr> = (0..m)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i as u16)))
        .collect();
    let (program, inputs) = match name {
        "sort" => (
            Program::from_name("sort", &serde_json::Value::Null)?,
            (0..n as u64)
                .filter(|j| *j as usize % m == me)
                .map(|j| input_value(j, seed))
                .collect::<Vec<_>>(),
        ),
        // Benchmark parity with MPyC's demo: the whole derangement is opened to everyone.
        "secret-santa" => (
            Program::from_name(
                "secret-santa",
                &serde_json::json!({"n": n, "reveal": "all"}),
            )?,
            Vec::new(),
        ),
        other => return Err(format!("unknown benchmark program {other}").into()),
    };
    let mut transport = TcpTransport::connect(me, &addrs, Duration::from_secs(30))?;
    let config = RuntimeConfig::default();
    let p = program.prime(&config)?;
    let field = Fp64::new(
        p.to_u64()
            .ok_or("the benchmark's programs use a 64-bit prime")?,
    )?;
    // Barrier: start the clock only once every party is connected to every other (as after
    // MPyC's `mpc.start()`), so nobody's time includes waiting for a slow process start.
    futures::executor::block_on(barrier(&mut transport, me, m))?;
    // The engine's set-up is its PRSS key exchange, which MPyC does while connecting, before
    // its clock starts: ours is not timed either.
    let mut rt = futures::executor::block_on(Runtime::new(field, &mut transport, OsRng, &config))?;
    let setup = rt.stats();
    let start = Instant::now();
    let cpu_start = thread_cpu_time();
    let output = futures::executor::block_on(run_with(&mut rt, &program, &inputs))?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_time()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start).as_secs_f64());
    let stats = rt.stats();
    let (rounds, messages, bytes) = (
        stats.rounds - setup.rounds,
        stats.messages_sent - setup.messages_sent,
        stats.bytes_sent - setup.bytes_sent,
    );
    println!(
        "{}",
        serde_json::json!({
            "party": me,
            "seconds": secs,
            "cpu_seconds": cpu,
            "rounds": rounds,
            "messages": messages,
            "bytes": bytes + 4 * messages,
            "output": output.to_string(),
        })
    );
    Ok(())
}
