//! `cargo bench -p node --bench mesh`: the DID-bound WebRTC mesh on loopback, in one process,
//! with an in-memory signaling relay (as in `tests/mesh.rs`).
//!
//! (a) time from start to every channel verified, for N = 2 (a pair), 3, 5, 10 parties;
//! (b) a pair's 64-byte round trip and 8 MiB bulk transfer, next to plain tokio TCP loopback;
//! (c) mpc-core secret santa (N = 8, whole derangement opened) and sort (32 values) with
//!     m = 3 and 5 parties over the verified mesh, next to the same over mpc-core's plain TCP
//!     transport; compute time only (from a barrier after the engine's set-up to the output).
//!
//! `MESH_BENCH_PARTS` picks the tables (default `abc`); `MESH_BENCH_REPS` sets the MPC
//! repetitions (default 9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use identity::Keypair;
use mpc_core::tcp::TcpTransport;
use mpc_core::{run_with, Fp64, Program, Runtime, RuntimeConfig, Transport, TransportError};
use node::mesh::{connect, Mesh, MeshConfig, MeshRoster, Signaling};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// 2^64 − 189: the field of 32-bit secure integers (checked against the program's choice).
const P64: u64 = u64::MAX - 188;

fn keypair(i: usize) -> Keypair {
    Keypair::from_seed(&[i as u8 + 1; 32])
}

fn roster(session: &str, n: usize) -> MeshRoster {
    MeshRoster {
        session: session.to_owned(),
        roster_hash: Sha256::digest(session.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        parties: (0..n).map(|i| keypair(i).did()).collect(),
    }
}

fn config() -> MeshConfig {
    MeshConfig {
        udp_addrs: vec!["127.0.0.1:0".into()],
        ..MeshConfig::default()
    }
}

/// An in-memory broker relay: stamps the sender, forwards to the recipient.
fn relay(n: usize) -> Vec<Signaling> {
    let mut signalings = Vec::new();
    let mut outbound = Vec::new();
    let mut inbound_tx = Vec::new();
    for _ in 0..n {
        let (otx, orx) = mpsc::channel(256);
        let (itx, irx) = mpsc::channel(256);
        signalings.push(Signaling {
            outbound: otx,
            inbound: irx,
        });
        outbound.push(orx);
        inbound_tx.push(itx);
    }
    for (from, mut rx) in outbound.into_iter().enumerate() {
        let txs = inbound_tx.clone();
        tokio::spawn(async move {
            while let Some(mut msg) = rx.recv().await {
                let to = msg.peer;
                msg.peer = from;
                if let Some(tx) = txs.get(to) {
                    let _ = tx.send(msg).await;
                }
            }
        });
    }
    signalings
}

/// One party's single-threaded runtime on a thread of its own, as `mpc-node join` runs a
/// party (one process, one thread): the party's `webrtc` drivers, readers and MPC engine wake
/// each other without crossing threads. Work is spawned on it through `handle`; dropping it
/// stops the runtime.
struct PartyThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PartyThread {
    fn new() -> Self {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(rt.handle().clone()).unwrap();
            rt.block_on(async {
                let _ = stopped.await;
            });
        });
        PartyThread {
            handle: handle_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn threads(n: usize) -> Vec<PartyThread> {
        (0..n).map(|_| PartyThread::new()).collect()
    }
}

impl Drop for PartyThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds an `n`-party mesh, each party on its own [`PartyThread`]; returns the meshes (index
/// order), their signaling (kept open as long as the meshes), the parties' threads and the
/// time until the last party had every channel verified.
async fn build_mesh(
    session: &str,
    n: usize,
) -> (Vec<Mesh>, Vec<Signaling>, Vec<PartyThread>, Duration) {
    let roster = roster(session, n);
    let parties = PartyThread::threads(n);
    let started = Instant::now();
    let tasks: Vec<_> = relay(n)
        .into_iter()
        .enumerate()
        .map(|(i, mut sig)| {
            let roster = roster.clone();
            parties[i].handle.spawn(async move {
                let mesh = connect(&keypair(i), &roster, &config(), &mut sig)
                    .await
                    .expect("mesh");
                (mesh, sig)
            })
        })
        .collect();
    let (mut meshes, mut sigs) = (Vec::new(), Vec::new());
    for t in tasks {
        let (mesh, sig) = t.await.unwrap();
        meshes.push(mesh);
        sigs.push(sig);
    }
    (meshes, sigs, parties, started.elapsed())
}

async fn close_all(meshes: Vec<Mesh>, parties: &[PartyThread]) {
    futures::future::join_all(
        meshes
            .into_iter()
            .zip(parties)
            .map(|(mesh, p)| p.handle.spawn(mesh.close())),
    )
    .await;
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn median(v: &[Duration]) -> Duration {
    v[v.len() / 2]
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

// ---------------------------------------------------------------- (a) set-up

async fn setup_table() -> (Duration, Duration) {
    println!("\n(a) start → every channel verified (loopback, in-memory signaling)\n");
    println!("| N | pairs | runs | median ms | min ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (mut pair, mut ten) = (Duration::ZERO, Duration::ZERO);
    for (n, runs) in [(2usize, 7usize), (3, 5), (5, 5), (10, 10)] {
        let mut times = Vec::new();
        for r in 0..runs {
            let (meshes, _sigs, parties, t) = build_mesh(&format!("benchSetup{n}x{r}"), n).await;
            times.push(t);
            close_all(meshes, &parties).await;
        }
        let times = sorted(times);
        println!(
            "| {n} | {} | {runs} | {} | {} | {} |",
            n * (n - 1) / 2,
            ms(median(&times)),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
        if n == 2 {
            pair = median(&times);
        }
        if n == 10 {
            ten = median(&times);
        }
    }
    (pair, ten)
}

// ---------------------------------------------------------------- (b) pair traffic

const RTT_ROUNDS: usize = 2000;
const BULK: usize = 8 << 20;
const BULK_RUNS: usize = 5;

struct Traffic {
    rtt_median: Duration,
    rtt_p99: Duration,
    /// MB/s each way (median over runs of an 8 MiB message there and back).
    bulk: f64,
}

async fn mesh_traffic() -> Traffic {
    let (mut ms_, _sigs, parties, _) = build_mesh("benchTraffic01", 2).await;
    let mut b = ms_.pop().unwrap();
    let mut a = ms_.pop().unwrap();
    let echo = parties[1].handle.spawn(async move {
        echo(&mut b, 0).await;
        b
    });
    let (a, traffic) = parties[0]
        .handle
        .spawn(async move {
            let traffic = ping(&mut a, 1).await;
            (a, traffic)
        })
        .await
        .unwrap();
    let b = echo.await.unwrap();
    close_all(vec![a, b], &parties).await;
    traffic
}

/// Echoes every message of [`ping`] back to `peer`.
async fn echo<T: Transport>(t: &mut T, peer: usize) {
    for _ in 0..RTT_ROUNDS + 100 + BULK_RUNS {
        let m = t.recv(peer).await.unwrap();
        t.send(peer, m).await.unwrap();
    }
}

/// 64-byte round trips, then 8 MiB messages there and back, to an [`echo`]ing `peer`.
async fn ping<T: Transport>(t: &mut T, peer: usize) -> Traffic {
    let mut rtts = Vec::new();
    for i in 0..RTT_ROUNDS + 100 {
        let start = Instant::now();
        t.send(peer, vec![0x5a; 64]).await.unwrap();
        t.recv(peer).await.unwrap();
        if i >= 100 {
            rtts.push(start.elapsed());
        }
    }
    let big = vec![0xa5u8; BULK];
    let mut bulk = Vec::new();
    for _ in 0..BULK_RUNS {
        let start = Instant::now();
        // The echo reads the whole message before writing it back, over both transports.
        t.send(peer, big.clone()).await.unwrap();
        let back = t.recv(peer).await.unwrap();
        assert_eq!(back.len(), BULK);
        bulk.push(start.elapsed());
    }
    traffic(rtts, bulk)
}

fn traffic(rtts: Vec<Duration>, bulk: Vec<Duration>) -> Traffic {
    let rtts = sorted(rtts);
    let bulk = sorted(bulk);
    Traffic {
        rtt_median: median(&rtts),
        rtt_p99: pct(&rtts, 0.99),
        bulk: 2.0 * BULK as f64 / median(&bulk).as_secs_f64() / 1e6,
    }
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let len = s.read_u32().await.unwrap() as usize;
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

async fn write_frame(s: &mut tokio::net::TcpStream, m: &[u8]) {
    let mut buf = Vec::with_capacity(4 + m.len());
    buf.extend_from_slice(&(m.len() as u32).to_be_bytes());
    buf.extend_from_slice(m);
    s.write_all(&buf).await.unwrap();
}

/// One end of a plain tokio TCP connection (4-byte length prefix) as a two-party `Transport`,
/// so [`ping`] and [`echo`] run unchanged over it and over the mesh.
struct TcpPeer {
    me: usize,
    s: tokio::net::TcpStream,
}

impl Transport for TcpPeer {
    fn party_count(&self) -> usize {
        2
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(&mut self, _to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            write_frame(&mut self.s, &msg).await;
            Ok(())
        })
    }
    fn recv(&mut self, _from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        Box::pin(async move { Ok(read_frame(&mut self.s).await) })
    }
}

/// The same exchange over a plain TCP connection, each end on its own [`PartyThread`] like
/// the mesh's.
async fn tcp_traffic() -> Traffic {
    let parties = PartyThread::threads(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let echo = parties[1].handle.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        echo(&mut TcpPeer { me: 1, s }, 0).await;
    });
    let traffic = parties[0]
        .handle
        .spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            ping(&mut TcpPeer { me: 0, s }, 1).await
        })
        .await
        .unwrap();
    echo.await.unwrap();
    traffic
}

async fn traffic_table() {
    let mesh = mesh_traffic().await;
    let tcp = tcp_traffic().await;
    println!("\n(b) a pair: 64-byte round trip ({RTT_ROUNDS} after 100 warm-up) and an 8 MiB message there and back (median of {BULK_RUNS})\n");
    println!("| transport | RTT median µs | RTT p99 µs | bulk MB/s each way |");
    println!("|---|---:|---:|---:|");
    for (name, t) in [
        ("WebRTC mesh (DTLS/SCTP data channel)", &mesh),
        ("plain TCP loopback (tokio, NODELAY)", &tcp),
    ] {
        println!(
            "| {name} | {} | {} | {:.0} |",
            us(t.rtt_median),
            us(t.rtt_p99),
            t.bulk
        );
    }
}

// ---------------------------------------------------------------- (c) MPC

/// The benchmark's inputs, identical to `bench/mpyc/common.py`: value `j` of `n`.
fn input_value(j: u64, seed: u64) -> i64 {
    let x = (j.wrapping_add(seed)).wrapping_mul(2_654_435_761) % (1 << 32);
    x as i64 - (1 << 31)
}

fn job(name: &str, n: usize, me: usize, m: usize) -> (Program, Vec<i64>) {
    match name {
        "sort" => (
            Program::from_name("sort", &serde_json::Value::Null).unwrap(),
            (0..n as u64)
                .filter(|j| *j as usize % m == me)
                .map(|j| input_value(j, 1))
                .collect(),
        ),
        _ => (
            Program::from_name(
                "secret-santa",
                &serde_json::json!({"n": n, "reveal": "all"}),
            )
            .unwrap(),
            Vec::new(),
        ),
    }
}

async fn barrier<T: Transport + ?Sized>(t: &mut T) -> Result<(), TransportError> {
    let (me, m) = (t.party_index(), t.party_count());
    for j in (0..m).filter(|&j| j != me) {
        t.send(j, b"ready".to_vec()).await?;
    }
    for j in (0..m).filter(|&j| j != me) {
        t.recv(j).await?;
    }
    Ok(())
}

/// One party's `reps` timed runs of the program on `t` (the engine's key set-up untimed).
async fn party_runs<T: Transport + ?Sized>(
    t: &mut T,
    name: &str,
    n: usize,
    reps: usize,
) -> Vec<Duration> {
    let (me, m) = (t.party_index(), t.party_count());
    let (program, inputs) = job(name, n, me, m);
    let config = RuntimeConfig::default();
    assert_eq!(program.prime(&config).unwrap().to_string(), P64.to_string());
    let mut times = Vec::new();
    for _ in 0..reps {
        // As `mpc-core-bench-party`: a barrier, then the engine's set-up (its PRSS key
        // exchange, one round that also lines the parties up), then the clock.
        barrier(&mut *t).await.unwrap();
        let mut rt = Runtime::new(Fp64::new(P64).unwrap(), &mut *t, OsRng, &config)
            .await
            .unwrap();
        let start = Instant::now();
        run_with(&mut rt, &program, &inputs).await.unwrap();
        times.push(start.elapsed());
    }
    times
}

/// Slowest party's time per repetition, then the median over repetitions.
fn slowest_median(per_party: Vec<Vec<Duration>>) -> Duration {
    let reps = per_party[0].len();
    let slowest: Vec<Duration> = (0..reps)
        .map(|r| per_party.iter().map(|v| v[r]).max().unwrap())
        .collect();
    median(&sorted(slowest))
}

async fn mpc_over_mesh(
    meshes: &mut Vec<Mesh>,
    parties: &[PartyThread],
    name: &str,
    n: usize,
    reps: usize,
) -> Duration {
    let tasks: Vec<_> = meshes
        .drain(..)
        .zip(parties)
        .map(|(mut mesh, party)| {
            let name = name.to_owned();
            party.handle.spawn(async move {
                let times = party_runs(&mut mesh, &name, n, reps).await;
                (mesh, times)
            })
        })
        .collect();
    let mut per_party = Vec::new();
    for t in tasks {
        let (mesh, times) = t.await.unwrap();
        meshes.push(mesh);
        per_party.push(times);
    }
    slowest_median(per_party)
}

fn mpc_over_tcp(m: usize, name: &str, n: usize, reps: usize) -> Duration {
    let listeners: Vec<TcpListener> = (0..m)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(me, l)| {
            let (addrs, name) = (addrs.clone(), name.to_owned());
            std::thread::spawn(move || {
                let mut t =
                    TcpTransport::connect_with_listener(me, l, &addrs, Duration::from_secs(30))
                        .unwrap();
                futures::executor::block_on(party_runs(&mut t, &name, n, reps))
            })
        })
        .collect();
    slowest_median(threads.into_iter().map(|t| t.join().unwrap()).collect())
}

/// MPyC 0.11 compute seconds from docs/benchmarks.md, "mpc-core vs MPyC" (same machine, same
/// day, `REPS=9`, under load): not re-run here.
fn mpyc_cited(name: &str, n: usize, m: usize) -> &'static str {
    match (name, n, m) {
        ("secret-santa", 8, 3) => "0.0861",
        ("secret-santa", 8, 5) => "0.1461",
        ("sort", 32, 3) => "0.5993",
        ("sort", 32, 5) => "3.1762",
        _ => "–",
    }
}

async fn mpc_table(reps: usize) -> bool {
    println!("\n(c) MPC compute time, slowest party, median of {reps} (after the engine's key set-up and a barrier)\n");
    println!(
        "| program | n | m | mesh ms | plain TCP ms | mesh / TCP | target ≤ 2x | MPyC s (cited) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    let mut all = true;
    for m in [3usize, 5] {
        let (mut meshes, _sigs, parties, _) = build_mesh(&format!("benchMpc{m}"), m).await;
        for (name, n) in [("secret-santa", 8usize), ("sort", 32)] {
            // Warm both up once (first-use allocations, the TCP writer threads).
            mpc_over_mesh(&mut meshes, &parties, name, n, 1).await;
            let mesh = mpc_over_mesh(&mut meshes, &parties, name, n, reps).await;
            let nm = name.to_owned();
            let tcp = tokio::task::spawn_blocking(move || {
                mpc_over_tcp(m, &nm, n, 1);
                mpc_over_tcp(m, &nm, n, reps)
            })
            .await
            .unwrap();
            let ratio = mesh.as_secs_f64() / tcp.as_secs_f64();
            all &= ratio <= 2.0;
            println!(
                "| {name} | {n} | {m} | {:.2} | {:.2} | {ratio:.2}x | {} | {} |",
                mesh.as_secs_f64() * 1e3,
                tcp.as_secs_f64() * 1e3,
                verdict(ratio <= 2.0),
                mpyc_cited(name, n, m)
            );
        }
        close_all(meshes, &parties).await;
    }
    all
}

fn main() {
    // `cargo test --all-targets` also runs bench targets (without `--bench`): there this
    // minutes-long, machine-filling benchmark only needs to compile.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped outside `cargo bench`; run: cargo bench -p node --bench mesh");
        return;
    }
    let reps: usize = std::env::var("MESH_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let parts = std::env::var("MESH_BENCH_PARTS").unwrap_or_else(|_| "abc".into());
        let (pair, ten) = if parts.contains('a') {
            setup_table().await
        } else {
            (Duration::ZERO, Duration::ZERO)
        };
        if parts.contains('b') {
            traffic_table().await;
        }
        let mpc_ok = parts.contains('c') && mpc_table(reps).await;
        println!("\nTargets:\n");
        if parts.contains('a') {
            println!(
                "- 10-party mesh verified < 1 s: {} (median {} ms)",
                verdict(ten < Duration::from_secs(1)),
                ms(ten)
            );
            println!(
                "- a pair verified < 250 ms: {} (median {} ms)",
                verdict(pair < Duration::from_millis(250)),
                ms(pair)
            );
        }
        if parts.contains('c') {
            println!(
                "- MPC over the mesh within 2x of plain TCP: {}",
                verdict(mpc_ok)
            );
        }
    });
}
