//! One party of the MPyC comparison benchmark: connects a loopback TCP mesh, runs a program and
//! prints one JSON line with the compute time and communication. Driven by `bench/mpyc/run.sh`.
//!
//! Usage: `mpc-core-bench-party <party> <parties> <base-port> <sort|secret-santa> <n> [seed]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mpc_core::tcp::TcpTransport;
use mpc_core::{run_program, Program, RuntimeConfig, Transport, TransportError};
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
    // Barrier: start the clock only once every party is connected to every other (as after
    // MPyC's `mpc.start()`), so nobody's time includes waiting for a slow process start.
    futures::executor::block_on(barrier(&mut transport, me, m))?;
    let start = Instant::now();
    let run = futures::executor::block_on(run_program(
        &program,
        &inputs,
        &mut transport,
        OsRng,
        &RuntimeConfig::default(),
    ))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "party": me,
            "seconds": secs,
            "rounds": run.stats.rounds,
            "messages": run.stats.messages_sent,
            "bytes": run.stats.bytes_sent + 4 * run.stats.messages_sent,
            "output": run.output.to_string(),
        })
    );
    Ok(())
}
