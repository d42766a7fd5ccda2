//! Load benchmark of `mpc-broker` against the PeerJS server.
//!
//! `cargo bench -p broker --bench load` (quick smoke run: `LOAD_QUICK=1`).
//!
//! Every server runs as its own OS process on loopback: the `mpc-broker`
//! binary of this package (in-memory store, then with a `redis-server`
//! started on a free port) and the PeerJS server (npm `peer`, started by
//! `bench/peerjs/server.js` under `node`). One load generator, this process,
//! drives all of them with the same code; it shares the machine's cores
//! with the server under test, and the table says how much CPU each side
//! used.
//!
//! 1. Authentications: `LOAD_AUTH_CLIENTS` concurrent clients, each looping
//!    challenge → sign a presentation (eddsa-jcs-2022, client-side, keys
//!    generated beforehand) → token, for `LOAD_SECS` after a warm-up.
//!    PeerJS has no authentication, so only the broker is measured.
//! 2. Signaling relay: `LOAD_SESSIONS` sessions × `LOAD_PARTIES` parties,
//!    one WebSocket each; every party sends ICE-candidate-like messages
//!    (≈200-byte payload) to the other members of its session in
//!    round-robin. Two load shapes: closed loop (at most `LOAD_WINDOW`
//!    undelivered messages per sender, and at most 190 messages/s per socket
//!    to stay under the broker's default per-connection limit: saturation
//!    throughput) and open loop
//!    at `LOAD_RATE` messages per second per sender (latency at equal load;
//!    latency counts from the scheduled send time, so a stalled generator
//!    or server cannot hide its queueing). The receiver timestamps each
//!    message on the same clock as the sender (one process).
//!
//! 3. Replicas: the same relay loads with `LOAD_REPLICA_SESSIONS` (200; 20
//!    in quick mode) sessions × `LOAD_PARTIES` parties (1,000 WebSockets)
//!    on `LOAD_REPLICAS` (2) `mpc-broker` processes that share one
//!    `redis-server` and one broker key file (one broker identity), next to
//!    the same population on one fresh in-memory broker. Party `g` (counted
//!    over all sessions) connects to replica `g % LOAD_REPLICAS`, so every
//!    session is split over the replicas and most pairs cross them through
//!    Redis. Tokens all come from the first replica: the others accept them
//!    because they hold the same key. Besides throughput and latency it
//!    reports broker memory per connection: the brokers' summed `VmRSS`
//!    (`/proc/PID/status`) with every socket open, minus before opening
//!    them, over the number of sockets; and the CPU of `redis-server`.
//!    PeerJS is not part of it. `LOAD_SKIP_REPLICAS=1` skips it.
//!
//! Each measurement is repeated `LOAD_REPS` times (3; 1 in quick mode),
//! rotating the order of the servers; the tables give medians. The server
//! CPU per message (or authentication) is reported too: it is the number
//! least disturbed by other load on the machine.
//!
//! Other knobs: `LOAD_SKIP_REDIS=1` (the Redis-backed broker of 1. and 2.;
//! the replicas bring their own), `LOAD_SKIP_PEERJS=1`, `LOAD_SKIP_AUTH=1`,
//! `LOAD_HIST=1` (latency histograms), `LOAD_WARMUP` (seconds),
//! `LOAD_AUTH_MAX` (bound on authentications).
//!
//! The generator holds one socket per party (1,000+): if the soft limit on
//! open files is too low, the bench raises it up to the hard limit with
//! `prlimit` (util-linux) before starting any server (the servers inherit
//! it), and otherwise stops and says to run `ulimit -n` first.
//! Every wait has a timeout, every loop a bound in time and count, and the
//! child processes are killed when this process ends, panics included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use identity::{format_timestamp, Cryptosuite, Keypair, PresentationRequest};
use rand::Rng as _;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------- settings

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    auth_clients: usize,
    auth_max: usize,
    secs: f64,
    warmup: f64,
    sessions: usize,
    parties: usize,
    window: usize,
    rate: f64,
    redis: bool,
    peerjs: bool,
    reps: usize,
    hist: bool,
    auth: bool,
    replicas: usize,
    replica_sessions: usize,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

impl Settings {
    fn from_env() -> Self {
        let quick = env_flag("LOAD_QUICK");
        let s = Settings {
            quick,
            auth_clients: env_num("LOAD_AUTH_CLIENTS", if quick { 16 } else { 64 }),
            auth_max: env_num("LOAD_AUTH_MAX", 500_000),
            secs: env_num("LOAD_SECS", if quick { 1.0 } else { 5.0 }),
            warmup: env_num("LOAD_WARMUP", if quick { 0.3 } else { 1.0 }),
            sessions: env_num("LOAD_SESSIONS", if quick { 20 } else { 100 }),
            parties: env_num("LOAD_PARTIES", 5),
            window: env_num("LOAD_WINDOW", 4),
            rate: env_num("LOAD_RATE", 20.0),
            redis: !env_flag("LOAD_SKIP_REDIS"),
            peerjs: !env_flag("LOAD_SKIP_PEERJS"),
            reps: env_num("LOAD_REPS", if quick { 1 } else { 3 }),
            hist: env_flag("LOAD_HIST"),
            auth: !env_flag("LOAD_SKIP_AUTH"),
            replicas: if env_flag("LOAD_SKIP_REPLICAS") {
                0
            } else {
                env_num("LOAD_REPLICAS", 2)
            },
            replica_sessions: env_num("LOAD_REPLICA_SESSIONS", if quick { 20 } else { 200 }),
        };
        assert!(s.parties >= 2, "LOAD_PARTIES must be at least 2");
        assert!(
            s.sessions >= 1 && s.sessions <= 1000,
            "LOAD_SESSIONS: 1..=1000"
        );
        assert!(s.secs > 0.0 && s.secs <= 120.0, "LOAD_SECS: (0, 120]");
        assert!(s.warmup >= 0.0 && s.warmup <= 30.0, "LOAD_WARMUP: [0, 30]");
        assert!(s.window >= 1 && s.window <= 256, "LOAD_WINDOW: 1..=256");
        assert!(s.rate > 0.0 && s.rate <= 1000.0, "LOAD_RATE: (0, 1000]");
        assert!(s.auth_clients >= 1 && s.auth_clients <= 1024);
        assert!(s.reps >= 1 && s.reps <= 20, "LOAD_REPS: 1..=20");
        assert!(
            s.replicas == 0 || (2..=8).contains(&s.replicas),
            "LOAD_REPLICAS: 2..=8"
        );
        assert!(
            s.replica_sessions >= 1 && s.replica_sessions <= 1000,
            "LOAD_REPLICA_SESSIONS: 1..=1000"
        );
        s
    }

    fn measure(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }

    fn warm(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }
}

// ------------------------------------------------------- clocks and CPU use

/// The one clock of this process; message timestamps are µs since it.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn micros(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base()).as_micros()).unwrap_or(u64::MAX)
}

fn clock_ticks() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// CPU seconds used so far by the threads of `pids`, summed by thread name.
fn thread_cpu(pids: &[u32]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten().take(4096) {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            *out.entry(stat[open + 1..close].to_owned()).or_default() +=
                (ticks(11) + ticks(12)) / clock_ticks();
        }
    }
    out
}

/// Resident memory of a process (`VmRSS`), KiB; NaN if unreadable.
fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The processes a measurement watches: the server under test (one
/// process, or several replicas, summed) and the store it uses, if any.
#[derive(Debug, Clone, Default)]
struct Watched {
    servers: Vec<u32>,
    store: Option<u32>,
}

impl Watched {
    fn one(pid: u32) -> Self {
        Watched {
            servers: vec![pid],
            store: None,
        }
    }

    /// CPU seconds used so far by the servers, summed.
    fn server_cpu(&self) -> f64 {
        self.servers.iter().map(|p| cpu_secs(&p.to_string())).sum()
    }

    fn store_cpu(&self) -> f64 {
        self.store.map_or(f64::NAN, |p| cpu_secs(&p.to_string()))
    }

    /// The servers' resident memory, summed, KiB.
    fn server_rss(&self) -> f64 {
        self.servers.iter().map(|&p| rss_kib(p)).sum()
    }

    fn store_rss(&self) -> f64 {
        self.store.map_or(f64::NAN, rss_kib)
    }
}

/// CPU used by the server, by this generator and by the whole machine over
/// a measured interval.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    /// Cores' worth used by the server process (all replicas, summed).
    server: f64,
    /// Cores' worth used by the server's store process (NaN: none).
    store: f64,
    /// Cores' worth used by the load generator.
    generator: f64,
    /// Fraction of all cores busy (everyone, other tenants included).
    machine: f64,
}

#[derive(Debug)]
struct CpuMark {
    at: Instant,
    server: f64,
    store: f64,
    generator: f64,
    machine: (f64, f64),
}

impl CpuMark {
    fn now(w: &Watched) -> Self {
        CpuMark {
            at: Instant::now(),
            server: w.server_cpu(),
            store: w.store_cpu(),
            generator: cpu_secs("self"),
            machine: machine_jiffies(),
        }
    }

    fn since(&self, w: &Watched) -> CpuUse {
        let end = CpuMark::now(w);
        let wall = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let (b0, t0) = self.machine;
        let (b1, t1) = end.machine;
        CpuUse {
            server: (end.server - self.server) / wall,
            store: (end.store - self.store) / wall,
            generator: (end.generator - self.generator) / wall,
            machine: if t1 > t0 {
                (b1 - b0) / (t1 - t0)
            } else {
                f64::NAN
            },
        }
    }
}

// ------------------------------------------------------------ child processes

/// A child process killed (and reaped) when dropped, panics included.
#[derive(Debug)]
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); its log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            )),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Proc {
    // Numbered: several processes of one name (broker replicas) keep their own logs.
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let log = dir.join(format!("{name}-{n}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { name, child, log }
}

/// Waits until `ready` holds, the process died, or 30 s passed.
fn wait_ready(p: &mut Proc, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready() {
            return;
        }
        if let Some(why) = p.exited() {
            panic!("{why}");
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready within 30 s; its log:\n{}",
            p.name,
            tail(&p.log)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn http_get_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("HTTP/1.1 200")
}

fn start_redis(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let data = dir.join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let mut p = spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&data),
        dir,
    );
    wait_ready(&mut p, || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    });
    (p, port)
}

/// Starts `mpc-broker` on a free port, with the key file `key` (shared by
/// replicas: one broker identity) or one of its own.
fn start_broker(dir: &Path, redis: Option<u16>, key: Option<&Path>) -> (Proc, u16) {
    let port = free_port();
    let key = key.map_or_else(
        || dir.join(format!("broker-key-{port}.json")),
        Path::to_path_buf,
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc-broker"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--key")
        .arg(key)
        .arg("--any-organizer")
        .env_remove("MPC_BROKER_CONFIG")
        .env("RUST_LOG", "warn");
    if let Some(r) = redis {
        cmd.args(["--redis-url", &format!("redis://127.0.0.1:{r}/")]);
    }
    let mut p = spawn("mpc-broker", &mut cmd, dir);
    wait_ready(&mut p, || http_get_ok(port, "/healthz"));
    (p, port)
}

fn peerjs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/peerjs")
}

/// Runs a command with a deadline; Ok(()) if it exited 0.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("exited with {s}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The installed `peer` version, installing it with `npm ci` if needed.
fn peerjs_ready() -> Result<String, String> {
    let dir = peerjs_dir();
    let how = "install Node.js (`apt-get install nodejs npm`) and run `npm ci` in bench/peerjs";
    run_bounded(
        Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        Duration::from_secs(20),
    )
    .map_err(|e| format!("node is not usable ({e}); {how}"))?;
    let pkg = dir.join("node_modules/peer/package.json");
    if !pkg.exists() {
        eprintln!("bench/peerjs/node_modules is missing: running `npm ci` there");
        run_bounded(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .stdout(Stdio::null()),
            Duration::from_secs(300),
        )
        .map_err(|e| format!("`npm ci` in bench/peerjs failed ({e}); {how}"))?;
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&pkg).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok(v["version"].as_str().unwrap_or("?").to_owned())
}

fn start_peerjs(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut p = spawn(
        "peerjs",
        Command::new("node")
            .arg("server.js")
            .arg(port.to_string())
            .current_dir(peerjs_dir()),
        dir,
    );
    wait_ready(&mut p, || http_get_ok(port, "/"));
    (p, port)
}

fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |s| s.trim().to_owned())
}

// ------------------------------------------------------------ statistics

/// Latency percentiles in ms from µs samples.
fn percentiles(mut v: Vec<u32>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        f64::from(v[i.min(v.len() - 1)]) / 1000.0
    };
    (at(0.50), at(0.99))
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn errors_text(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "0".into();
    }
    let total: u64 = e.values().sum();
    let kinds: Vec<String> = e.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!("{total} ({})", kinds.join(", "))
}

// ------------------------------------------------------- broker HTTP client

#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    domain: String,
}

/// `created` a second in the past, whole seconds (what the broker checks
/// against its own clock).
fn created() -> SystemTime {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(s.saturating_sub(1))
}

fn problem(status: u16, body: &str) -> String {
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("HTTP {status} {code}")
}

/// Timings of one authentication, client side.
#[derive(Debug, Clone, Copy)]
struct AuthTimes {
    challenge: Duration,
    sign: Duration,
    token: Duration,
}

impl Api {
    async fn connect(port: u16) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let v: Value = http
            .get(format!("{base}/v1/broker"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            domain: v["domain"].as_str().unwrap().to_owned(),
            base,
        }
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value, String> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "timeout".to_owned()
            } else {
                "connection error".to_owned()
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|_| "body error".to_owned())?;
        if !(200..300).contains(&status) {
            return Err(problem(status, &text));
        }
        serde_json::from_str(&text).map_err(|_| "invalid JSON".to_owned())
    }

    async fn challenge(&self, body: &Value) -> Result<String, String> {
        let v = self.post("/v1/auth/challenge", body, None).await?;
        v["challenge"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no challenge".to_owned())
    }

    fn present(&self, who: &Keypair, challenge: String) -> Value {
        identity::present(
            who,
            &[],
            &PresentationRequest {
                challenge,
                domain: self.domain.clone(),
                suite: Cryptosuite::EddsaJcs2022,
                created: created(),
            },
        )
        .unwrap()
    }

    /// challenge → presentation → token.
    async fn token(&self, who: &Keypair) -> Result<(String, AuthTimes), String> {
        let t0 = Instant::now();
        let c = self
            .challenge(&json!({"purpose": "authenticate"}))
            .await
            .map_err(|e| format!("challenge {e}"))?;
        let t1 = Instant::now();
        let vp = self.present(who, c);
        let t2 = Instant::now();
        let v = self
            .post("/v1/auth/token", &vp, None)
            .await
            .map_err(|e| format!("token {e}"))?;
        let t3 = Instant::now();
        let tok = v["accessToken"]
            .as_str()
            .ok_or_else(|| "token: no accessToken".to_owned())?;
        Ok((
            tok.to_owned(),
            AuthTimes {
                challenge: t1 - t0,
                sign: t2 - t1,
                token: t3 - t2,
            },
        ))
    }

    async fn join(&self, session: &str, who: &Keypair) -> Result<(), String> {
        let c = self
            .challenge(&json!({"purpose": "join", "session": session}))
            .await?;
        let vp = self.present(who, c);
        self.post(&format!("/v1/sessions/{session}/join"), &vp, None)
            .await
            .map(drop)
    }

    async fn publish(&self, organizer: &Keypair, token: &str, parties: &[Keypair]) -> String {
        let now = SystemTime::now();
        let dids: Vec<String> = parties.iter().map(|k| k.did().to_string()).collect();
        let n = parties.len();
        let body = json!({
            "type": "MpcSessionManifest",
            "title": "load benchmark session",
            "organizer": organizer.did(),
            "computation": {"program": "sum", "params": {}},
            "admission": {"parties": dids, "minParties": n, "maxParties": n},
            "threshold": (n - 1) / 2,
            "joinDeadline": format_timestamp(now + Duration::from_secs(3600)),
            "expires": format_timestamp(now + Duration::from_secs(7200)),
        });
        let signed = identity::statement::sign(
            organizer,
            "MpcSessionManifest",
            body.as_object().unwrap(),
            created(),
        )
        .unwrap();
        let v = self
            .post("/v1/sessions", &json!({"manifest": signed}), Some(token))
            .await
            .unwrap_or_else(|e| panic!("publishing a session: {e}"));
        v["session"].as_str().unwrap().to_owned()
    }
}

// ------------------------------------------------------------ authentications

#[derive(Debug, Default)]
struct AuthResult {
    ok: u64,
    per_sec: f64,
    p50: f64,
    p99: f64,
    errors: BTreeMap<String, u64>,
    mean_challenge_ms: f64,
    mean_sign_ms: f64,
    mean_token_ms: f64,
    cpu: CpuUse,
}

#[derive(Debug, Default)]
struct AuthWorker {
    ok: u64,
    lat: Vec<u32>,
    errors: BTreeMap<String, u64>,
    challenge: Duration,
    sign: Duration,
    token: Duration,
}

async fn auth_load(api: &Api, s: &Settings, watched: &Watched) -> AuthResult {
    let keys: Arc<Vec<Keypair>> = Arc::new(
        (0..s.auth_clients)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                Keypair::from_seed(&seed)
            })
            .collect(),
    );
    let start = Instant::now();
    let from = start + s.warm();
    let until = from + s.measure();
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..s.auth_clients {
        let (api, keys, issued, max) = (api.clone(), keys.clone(), issued.clone(), s.auth_max);
        tasks.push(tokio::spawn(async move {
            let mut w = AuthWorker::default();
            while Instant::now() < until && issued.fetch_add(1, Ordering::Relaxed) < max {
                let t0 = Instant::now();
                let r = api.token(&keys[i]).await;
                let t1 = Instant::now();
                if t1 < from || t1 > until {
                    continue;
                }
                match r {
                    Ok((_, t)) => {
                        w.ok += 1;
                        w.lat.push(us(t1 - t0));
                        w.challenge += t.challenge;
                        w.sign += t.sign;
                        w.token += t.token;
                    }
                    Err(e) => *w.errors.entry(e).or_default() += 1,
                }
            }
            w
        }));
    }
    // CPU is measured over the measurement window only.
    tokio::time::sleep_until(from.into()).await;
    let mark = CpuMark::now(watched);
    tokio::time::sleep_until(until.into()).await;
    let cpu = mark.since(watched);
    let mut all = AuthWorker::default();
    for t in tasks {
        let w = match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => panic!("an auth client panicked: {e}"),
            Err(_) => panic!("an auth client did not stop within 30 s of the end"),
        };
        all.ok += w.ok;
        all.lat.extend(w.lat);
        for (k, n) in w.errors {
            *all.errors.entry(k).or_default() += n;
        }
        all.challenge += w.challenge;
        all.sign += w.sign;
        all.token += w.token;
    }
    let n = all.ok.max(1) as f64;
    let (p50, p99) = percentiles(all.lat);
    AuthResult {
        ok: all.ok,
        per_sec: all.ok as f64 / s.secs,
        p50,
        p99,
        errors: all.errors,
        mean_challenge_ms: all.challenge.as_secs_f64() * 1000.0 / n,
        mean_sign_ms: all.sign.as_secs_f64() * 1000.0 / n,
        mean_token_ms: all.token.as_secs_f64() * 1000.0 / n,
        cpu,
    }
}

// ------------------------------------------------------------------ relay

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Broker,
    PeerJs,
}

/// One party: where its socket goes and what others call it.
#[derive(Debug, Clone)]
struct Party {
    /// How other parties address it (a DID, or a PeerJS id).
    id: String,
    /// Its WebSocket URL.
    url: String,
    /// Bearer token (broker only).
    bearer: Option<String>,
}

/// A whole population: `sessions` groups of `parties` parties, flattened
/// (party `g` is member `g % parties` of session `g / parties`).
#[derive(Debug, Clone)]
struct Population {
    kind: Kind,
    parties: usize,
    members: Vec<Party>,
}

/// An ICE candidate as a browser sends it, padded to ≈200 bytes of payload
/// with the sender index and timestamp included.
const CANDIDATE: &str = "candidate:3442447574 1 udp 2122260223 192.168.1.23 54763 typ host generation 0 ufrag EsAw network-id 1 network-cost 10";

fn encode(kind: Kind, to: &str, sender: usize, at_us: u64) -> String {
    let payload = format!(
        r#"{{"candidate":"{CANDIDATE}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw","bs":{sender},"bt":{at_us:>13}}}"#
    );
    match kind {
        Kind::Broker => format!(r#"{{"type":"candidate","to":"{to}","payload":{payload}}}"#),
        Kind::PeerJs => format!(r#"{{"type":"CANDIDATE","dst":"{to}","payload":{payload}}}"#),
    }
}

fn payload_len() -> usize {
    let m = encode(Kind::PeerJs, "x", 499, micros(Instant::now()));
    let start = m.find(r#""payload":"#).unwrap() + r#""payload":"#.len();
    m.len() - start - 1
}

/// The unsigned number after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let rest = text[i..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// What arrived on a socket that is not a benchmark message.
fn classify(kind: Kind, text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match kind {
        Kind::Broker => format!(
            "{} {}",
            v["type"].as_str().unwrap_or("?"),
            v["code"].as_str().unwrap_or("")
        ),
        Kind::PeerJs => format!(
            "{} {}",
            v["type"].as_str().unwrap_or("?"),
            v["payload"]["msg"].as_str().unwrap_or("")
        ),
    }
    .trim()
    .to_owned()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(kind: Kind, p: &Party) -> Result<Ws, String> {
    let mut req = p
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(t) = &p.bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(req, None, true),
    )
    .await
    .map_err(|_| "WebSocket connect timed out".to_owned())?
    .map_err(|e| format!("WebSocket connect: {e}"))?;
    if kind == Kind::PeerJs {
        // The server says OPEN once the id is registered.
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "no OPEN from PeerJS within 10 s".to_owned())?;
        match first {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""OPEN""#) => {}
            other => return Err(format!("PeerJS did not say OPEN: {other:?}")),
        }
    }
    Ok(ws)
}

async fn open_all(pop: &Population) -> Vec<Ws> {
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for p in pop.members.clone() {
        let (gate, kind) = (gate.clone(), pop.kind);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            open(kind, &p).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

/// Closed-loop senders keep under the broker's default per-connection
/// limit (200 messages/s, burst 400), for both servers alike: a window
/// alone does not, when one connection's round trips are short.
const PACE_RATE: f64 = 190.0;
const PACE_BURST: f64 = 20.0;

/// A client-side token bucket.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pacer {
    fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Pacer {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token, returning how long to wait before using it.
    fn wait(&mut self, now: Instant) -> Duration {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst) - 1.0;
        self.at = now;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// At most this many undelivered messages per sender.
    Closed(usize),
    /// This many messages per second per sender.
    Open(f64),
}

impl Shape {
    fn describe(self) -> String {
        match self {
            Shape::Closed(w) => format!("closed loop, window {w} (≤ {PACE_RATE} msg/s per socket)"),
            Shape::Open(r) => format!("open loop, {r} msg/s per socket"),
        }
    }
}

#[derive(Debug, Default)]
struct RelayResult {
    sent: u64,
    delivered: u64,
    per_sec: f64,
    offered: Option<f64>,
    p50: f64,
    p99: f64,
    errors: BTreeMap<String, u64>,
    cpu: CpuUse,
    /// Deliveries per latency bucket (see [`BUCKETS_MS`]).
    hist: Vec<u64>,
    /// Sockets opened.
    sockets: usize,
    /// The servers' summed `VmRSS` (KiB) before opening the sockets, with
    /// all of them open (and settled), and after the load (drain
    /// included, sockets still open).
    rss_before: f64,
    rss_open: f64,
    rss_loaded: f64,
    /// The same for the store process (NaN: none).
    store_rss_before: f64,
    store_rss_open: f64,
    /// 1-minute load average at the end of the measured window.
    load1: f64,
    /// Cores' worth used by the servers' threads in the window, by name.
    threads: BTreeMap<String, f64>,
}

/// Upper edges (ms) of the latency histogram's buckets; one more bucket
/// holds the rest.
const BUCKETS_MS: [u32; 9] = [1, 2, 5, 10, 20, 35, 45, 100, 500];

fn histogram(lat: &[u32]) -> Vec<u64> {
    let mut h = vec![0u64; BUCKETS_MS.len() + 1];
    for &l in lat {
        let i = BUCKETS_MS
            .iter()
            .position(|&edge| l < edge * 1000)
            .unwrap_or(BUCKETS_MS.len());
        h[i] += 1;
    }
    h
}

#[derive(Debug, Default)]
struct RecvStats {
    delivered: u64,
    in_window: u64,
    lat: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

async fn relay_load(
    pop: &Population,
    shape: Shape,
    s: &Settings,
    watched: &Watched,
) -> RelayResult {
    let (rss_before, store_rss_before) = (watched.server_rss(), watched.store_rss());
    let sockets = open_all(pop).await;
    // Let the server settle after the connection burst.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_open, store_rss_open) = (watched.server_rss(), watched.store_rss());
    let n = sockets.len();
    let windows: Arc<Vec<Semaphore>> = Arc::new(
        (0..n)
            .map(|_| Semaphore::new(if let Shape::Closed(w) = shape { w } else { 0 }))
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(50);
    let from = start + s.warm();
    let until = from + s.measure();
    let drain_until = until + Duration::from_secs(2);
    let sent_total = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (g, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let session = g / pop.parties;
        let me = g % pop.parties;
        let peers: Vec<String> = (1..pop.parties)
            .map(|k| {
                pop.members[session * pop.parties + (me + k) % pop.parties]
                    .id
                    .clone()
            })
            .collect();
        let kind = pop.kind;
        let windows2 = windows.clone();
        let sent_total2 = sent_total.clone();
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut next_peer = g % peers.len();
            match shape {
                Shape::Closed(_) => {
                    tokio::time::sleep_until(start.into()).await;
                    let mut pace = Pacer::new(PACE_RATE, PACE_BURST, start);
                    while let Some(left) = until.checked_duration_since(Instant::now()) {
                        match tokio::time::timeout(left, windows2[g].acquire()).await {
                            Ok(Ok(p)) => p.forget(),
                            _ => break,
                        }
                        let wait = pace.wait(Instant::now());
                        if !wait.is_zero() {
                            if Instant::now() + wait >= until {
                                break;
                            }
                            tokio::time::sleep(wait).await;
                        }
                        let msg = encode(kind, &peers[next_peer], g, micros(Instant::now()));
                        next_peer = (next_peer + 1) % peers.len();
                        if sink.send(Message::text(msg)).await.is_err() {
                            *errors.entry("send failed".into()).or_default() += 1;
                            break;
                        }
                        sent += 1;
                    }
                }
                Shape::Open(rate) => {
                    let period = Duration::from_secs_f64(1.0 / rate);
                    let phase = period.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
                    let mut tick = tokio::time::interval_at((start + phase).into(), period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let limit = (rate * until.duration_since(start).as_secs_f64()) as u64 + 10;
                    while sent < limit {
                        let due = tick.tick().await.into_std();
                        if due >= until {
                            break;
                        }
                        // Stamped with the scheduled time: a late send counts as latency.
                        let msg = encode(kind, &peers[next_peer], g, micros(due));
                        next_peer = (next_peer + 1) % peers.len();
                        if sink.send(Message::text(msg)).await.is_err() {
                            *errors.entry("send failed".into()).or_default() += 1;
                            break;
                        }
                        sent += 1;
                    }
                }
            }
            sent_total2.fetch_add(sent, Ordering::Relaxed);
            (sink, errors)
        }));
        let windows3 = windows.clone();
        receivers.push(tokio::spawn(async move {
            let mut st = RecvStats::default();
            let (from_us, until_us) = (micros(from), micros(until));
            while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
                let msg = match tokio::time::timeout(left, stream.next()).await {
                    Err(_) | Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        *st.errors.entry(format!("socket: {e}")).or_default() += 1;
                        break;
                    }
                    Ok(Some(Ok(m))) => m,
                };
                let Message::Text(text) = msg else { continue };
                let now = Instant::now();
                let text = text.as_str();
                match (
                    number_after(text, r#""bs":"#),
                    number_after(text, r#""bt":"#),
                ) {
                    (Some(from_g), Some(at)) => {
                        st.delivered += 1;
                        let from_g = usize::try_from(from_g).unwrap_or(usize::MAX);
                        if let Some(w) = windows3.get(from_g) {
                            if matches!(shape, Shape::Closed(_)) {
                                w.add_permits(1);
                            }
                        }
                        // Counted by send time, so the window holds what
                        // was offered in it.
                        if at >= from_us && at < until_us {
                            st.in_window += 1;
                            st.lat.push(
                                u32::try_from(micros(now).saturating_sub(at)).unwrap_or(u32::MAX),
                            );
                        }
                    }
                    _ => {
                        *st.errors.entry(classify(kind, text)).or_default() += 1;
                        // A refused message never reaches its recipient;
                        // give the sender (this socket) its slot back after
                        // a pause, as a client told to slow down would.
                        if matches!(shape, Shape::Closed(_)) {
                            let w = windows3.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                w[g].add_permits(1);
                            });
                        }
                    }
                }
            }
            (stream, st)
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let threads0 = thread_cpu(&watched.servers);
    let mark = CpuMark::now(watched);
    tokio::time::sleep_until(until.into()).await;
    let cpu = mark.since(watched);
    let threads = thread_cpu(&watched.servers)
        .into_iter()
        .map(|(k, v)| {
            let before = threads0.get(&k).copied().unwrap_or(0.0);
            (k, (v - before) / s.secs)
        })
        .collect();
    let mut res = RelayResult {
        cpu,
        threads,
        sockets: n,
        rss_before,
        rss_open,
        store_rss_before,
        store_rss_open,
        load1: load1(),
        ..RelayResult::default()
    };
    let mut sinks = Vec::new();
    for t in senders {
        let (sink, errors) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a sender did not stop within 30 s")
            .expect("a sender panicked");
        sinks.push(sink);
        for (k, v) in errors {
            *res.errors.entry(k).or_default() += v;
        }
    }
    let mut lat = Vec::new();
    let mut in_window = 0u64;
    let mut streams = Vec::new();
    for t in receivers {
        let (stream, st) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a receiver did not stop within 30 s")
            .expect("a receiver panicked");
        streams.push(stream);
        res.delivered += st.delivered;
        in_window += st.in_window;
        lat.extend(st.lat);
        for (k, v) in st.errors {
            *res.errors.entry(k).or_default() += v;
        }
    }
    res.rss_loaded = watched.server_rss();
    // Close every socket politely, with a bound.
    let closing = async {
        for (sink, stream) in sinks.into_iter().zip(streams) {
            if let Ok(mut ws) = sink.reunite(stream) {
                let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), closing).await;
    res.sent = sent_total.load(Ordering::Relaxed);
    res.per_sec = in_window as f64 / s.secs;
    if let Shape::Open(r) = shape {
        res.offered = Some(r * n as f64);
    }
    res.hist = histogram(&lat);
    (res.p50, res.p99) = percentiles(lat);
    res
}

/// Sets up `sessions` frozen sessions of `parties` parties through `api`
/// and a token per party; party `g` (over all sessions) will connect to
/// `ports[g % ports.len()]` (replicas of the broker behind `api`).
async fn broker_population(
    api: &Api,
    ports: &[u16],
    sessions: usize,
    parties: usize,
) -> (Population, Duration) {
    assert!(!ports.is_empty());
    let t0 = Instant::now();
    let organizer = Arc::new(Keypair::from_seed(&[200; 32]));
    let (org_token, _) = api.token(&organizer).await.expect("organizer token");
    let gate = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..sessions {
        let group: Arc<Vec<Keypair>> = Arc::new(
            (0..parties)
                .map(|p| {
                    let mut seed = [9u8; 32];
                    seed[..4].copy_from_slice(&(i as u32).to_le_bytes());
                    seed[4..8].copy_from_slice(&(p as u32).to_le_bytes());
                    Keypair::from_seed(&seed)
                })
                .collect(),
        );
        let (api, gate, organizer, org_token, ports) = (
            api.clone(),
            gate.clone(),
            organizer.clone(),
            org_token.clone(),
            ports.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let id = {
                let _p = gate.acquire().await.unwrap();
                api.publish(&organizer, &org_token, &group).await
            };
            let mut joins = Vec::new();
            for k in 0..group.len() {
                let (api, gate, id, group) = (api.clone(), gate.clone(), id.clone(), group.clone());
                joins.push(tokio::spawn(async move {
                    let _p = gate.acquire().await.unwrap();
                    api.join(&id, &group[k])
                        .await
                        .unwrap_or_else(|e| panic!("join: {e}"));
                    api.token(&group[k])
                        .await
                        .unwrap_or_else(|e| panic!("token: {e}"))
                        .0
                }));
            }
            let mut tokens = Vec::new();
            for j in joins {
                tokens.push(j.await.unwrap());
            }
            let roster = api
                .http
                .get(format!("{}/v1/sessions/{id}/roster", api.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                roster.status().as_u16(),
                200,
                "the roster of {id} is not frozen"
            );
            group
                .iter()
                .zip(tokens)
                .enumerate()
                .map(|(k, (key, t))| {
                    let port = ports[(i * parties + k) % ports.len()];
                    Party {
                        id: key.did().to_string(),
                        url: format!("ws://127.0.0.1:{port}/v1/sessions/{id}/signal"),
                        bearer: Some(t),
                    }
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut members = Vec::new();
    for t in tasks {
        let group = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("session setup took more than 120 s")
            .expect("session setup failed");
        members.extend(group);
    }
    (
        Population {
            kind: Kind::Broker,
            parties,
            members,
        },
        t0.elapsed(),
    )
}

fn peerjs_population(port: u16, s: &Settings, run: usize) -> Population {
    let mut rng = rand::thread_rng();
    let members = (0..s.sessions * s.parties)
        .map(|g| {
            let id = format!("r{run}s{}p{}", g / s.parties, g % s.parties);
            let token: u64 = rng.gen();
            Party {
                url: format!("ws://127.0.0.1:{port}/peerjs?key=peerjs&id={id}&token={token:x}"),
                id,
                bearer: None,
            }
        })
        .collect();
    Population {
        kind: Kind::PeerJs,
        parties: s.parties,
        members,
    }
}

// ------------------------------------------------------------------ report

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "–".into()
    }
}

/// Server CPU µs per unit of work, from cores used and units per second.
fn cpu_per(cores: f64, per_sec: f64) -> f64 {
    if per_sec > 0.0 {
        cores / per_sec * 1e6
    } else {
        f64::NAN
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// "median (min–max)" of a rate over repetitions.
fn spread(v: &[f64]) -> String {
    let m = median(v.to_vec());
    if v.len() < 2 {
        return format!("{m:.0}");
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{m:.0} ({lo:.0}–{hi:.0})")
}

fn mean_cpu(v: &[CpuUse]) -> String {
    let n = v.len().max(1) as f64;
    let s = v.iter().fold(CpuUse::default(), |a, c| CpuUse {
        server: a.server + c.server / n,
        store: a.store + c.store / n,
        generator: a.generator + c.generator / n,
        machine: a.machine + c.machine / n,
    });
    format!(
        "{:.2} / {:.2} / {:.0}%",
        s.server,
        s.generator,
        s.machine * 100.0
    )
}

fn merge(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn machine_notes() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    format!(
        "nproc {}, {cpu}, Linux {}, load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

// -------------------------------------------------------------------- main

/// A server under test, running for the whole benchmark.
#[derive(Debug)]
struct Target {
    /// What the tables call it.
    server: String,
    store: &'static str,
    kind: Kind,
    port: u16,
    proc: Proc,
    /// Held so that it outlives the broker using it.
    _redis: Option<Proc>,
}

/// Every repetition's results for one (server, store, load shape).
#[derive(Debug)]
struct Series {
    server: String,
    store: &'static str,
    shape: Shape,
    runs: Vec<RelayResult>,
}

fn start_targets(s: &Settings, dir: &Path, peer: Option<&String>) -> Vec<Target> {
    let mut targets = Vec::new();
    let (proc, port) = start_broker(dir, None, None);
    targets.push(Target {
        server: "mpc-broker".into(),
        store: "memory",
        kind: Kind::Broker,
        port,
        proc,
        _redis: None,
    });
    if s.redis {
        let (redis, redis_port) = start_redis(dir);
        let (proc, port) = start_broker(dir, Some(redis_port), None);
        targets.push(Target {
            server: "mpc-broker".into(),
            store: "redis",
            kind: Kind::Broker,
            port,
            proc,
            _redis: Some(redis),
        });
    }
    if let Some(version) = peer {
        let (proc, port) = start_peerjs(dir);
        targets.push(Target {
            server: format!("PeerJS {version} (node {})", node_version()),
            store: "–",
            kind: Kind::PeerJs,
            port,
            proc,
            _redis: None,
        });
    }
    targets
}

async fn run_all(
    s: &Settings,
    targets: &mut [Target],
    shapes: &[Shape],
) -> (
    Vec<(&'static str, Vec<AuthResult>)>,
    Vec<Series>,
    Vec<String>,
) {
    let mut auth: Vec<(&'static str, Vec<AuthResult>)> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    let mut setup = Vec::new();
    let mut apis = Vec::new();
    for t in targets.iter() {
        apis.push(match t.kind {
            Kind::Broker => Some(Api::connect(t.port).await),
            Kind::PeerJs => None,
        });
    }
    for rep in 0..s.reps {
        // Rotate the order so no server always runs first (or last).
        for k in 0..targets.len() {
            let i = (rep + k) % targets.len();
            let t = &mut targets[i];
            if let Some(why) = t.proc.exited() {
                panic!("{why}");
            }
            let watched = Watched::one(t.proc.pid());
            let label = format!("[{} {} rep {}/{}]", t.server, t.store, rep + 1, s.reps);
            if let (Some(api), true) = (&apis[i], s.auth) {
                let a = auth_load(api, s, &watched).await;
                eprintln!("{label} {:.0} auth/s ({} in the window)", a.per_sec, a.ok);
                match auth.iter_mut().find(|(st, _)| *st == t.store) {
                    Some((_, v)) => v.push(a),
                    None => auth.push((t.store, vec![a])),
                }
            }
            for (j, &shape) in shapes.iter().enumerate() {
                let pop = match &apis[i] {
                    Some(api) => {
                        let (pop, took) =
                            broker_population(api, &[t.port], s.sessions, s.parties).await;
                        setup.push(format!(
                            "{} {}: {} sessions published, {} parties joined and authenticated in {:.1} s",
                            t.server,
                            t.store,
                            s.sessions,
                            pop.members.len(),
                            took.as_secs_f64()
                        ));
                        pop
                    }
                    None => peerjs_population(t.port, s, rep * shapes.len() + j),
                };
                let r = relay_load(&pop, shape, s, &watched).await;
                eprintln!("{label} {}: {:.0} msgs/s", shape.describe(), r.per_sec);
                match series
                    .iter_mut()
                    .find(|x| x.server == t.server && x.store == t.store && x.shape == shape)
                {
                    Some(x) => x.runs.push(r),
                    None => series.push(Series {
                        server: t.server.clone(),
                        store: t.store,
                        shape,
                        runs: vec![r],
                    }),
                }
            }
        }
    }
    (auth, series, setup)
}

// ------------------------------------------------------------- open files

/// (soft, hard) limits on open files of this process, as `/proc` says them
/// (`unlimited` is `u64::MAX`).
fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|x| {
            if x == "unlimited" {
                Some(u64::MAX)
            } else {
                x.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    Some((*v.first()?, *v.get(1)?))
}

/// Makes sure this process may hold `need` open files, raising its soft
/// limit (never above the hard one) with `prlimit` if needed. Servers
/// started afterwards inherit it. Returns the soft limit in force.
fn ensure_open_files(need: u64) -> u64 {
    let Some((soft, hard)) = open_files_limit() else {
        eprintln!("cannot read the open-file limit from /proc/self/limits; going on");
        return 0;
    };
    if soft >= need {
        return soft;
    }
    let how = format!("run `ulimit -n {need}` (or higher) in the shell before `cargo bench`");
    assert!(
        hard >= need,
        "the generator needs {need} open files but the hard limit is {hard}: {how}"
    );
    eprintln!("raising the soft limit on open files from {soft} to {need} (hard limit {hard})");
    let hard_arg = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let r = run_bounded(
        Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={need}:{hard_arg}"))
            .stdout(Stdio::null()),
        Duration::from_secs(10),
    );
    let now = open_files_limit().map_or(0, |(soft, _)| soft);
    assert!(
        now >= need,
        "could not raise the open-file limit to {need} ({}): {how}",
        r.err().unwrap_or_else(|| "prlimit ran".into())
    );
    now
}

// -------------------------------------------------------------- replicas

/// One side of the replicas comparison.
#[derive(Debug)]
struct Setup {
    label: String,
    store: &'static str,
    /// Its brokers (one, or the replicas), each with its port.
    brokers: Vec<(Proc, u16)>,
    /// The `redis-server` the replicas share.
    redis: Option<Proc>,
}

impl Setup {
    fn watched(&self) -> Watched {
        Watched {
            servers: self.brokers.iter().map(|(p, _)| p.pid()).collect(),
            store: self.redis.as_ref().map(Proc::pid),
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.brokers.iter().map(|&(_, port)| port).collect()
    }

    fn check_alive(&mut self) {
        for (p, _) in &mut self.brokers {
            if let Some(why) = p.exited() {
                panic!("{why}");
            }
        }
        if let Some(why) = self.redis.as_mut().and_then(Proc::exited) {
            panic!("{why}");
        }
    }
}

/// A fresh in-memory broker, and `s.replicas` brokers sharing one
/// `redis-server` and one key file.
fn start_replica_setups(s: &Settings, dir: &Path) -> Vec<Setup> {
    let single = start_broker(dir, None, None);
    let (redis, redis_port) = start_redis(dir);
    let key = dir.join("replicas-broker-key.json");
    // One after the other: the first creates the key file, the rest read it.
    let replicas = (0..s.replicas)
        .map(|_| start_broker(dir, Some(redis_port), Some(&key)))
        .collect();
    vec![
        Setup {
            label: "1 replica".into(),
            store: "memory",
            brokers: vec![single],
            redis: None,
        },
        Setup {
            label: format!("{} replicas", s.replicas),
            store: "redis",
            brokers: replicas,
            redis: Some(redis),
        },
    ]
}

/// How the population sits on the replicas: sockets per replica port, and
/// the share of (sender, recipient) slots whose two ends are on different
/// replicas (each sender sends round-robin to every other member).
fn spread_over_replicas(pop: &Population) -> (BTreeMap<String, usize>, f64) {
    let port = |p: &Party| {
        p.url
            .split_once("127.0.0.1:")
            .and_then(|(_, r)| r.split_once('/'))
            .map_or_else(String::new, |(port, _)| port.to_owned())
    };
    let mut per = BTreeMap::new();
    let (mut slots, mut cross) = (0usize, 0usize);
    for (g, m) in pop.members.iter().enumerate() {
        *per.entry(port(m)).or_default() += 1;
        let session = g / pop.parties;
        for k in 0..pop.parties {
            let peer = &pop.members[session * pop.parties + k];
            if session * pop.parties + k != g {
                slots += 1;
                cross += usize::from(port(peer) != port(m));
            }
        }
    }
    (per, cross as f64 / slots.max(1) as f64)
}

/// Every repetition starts fresh processes (so that each one's first
/// opening measures memory on a fresh heap), rotating the setups' order.
async fn run_replicas(s: &Settings, dir: &Path, shapes: &[Shape]) -> (Vec<Series>, Vec<String>) {
    let mut series: Vec<Series> = Vec::new();
    let mut notes = Vec::new();
    for rep in 0..s.reps {
        let mut setups = tokio::task::block_in_place(|| start_replica_setups(s, dir));
        let mut apis = Vec::new();
        for st in &setups {
            let ports = st.ports();
            let api = Api::connect(ports[0]).await;
            // Replicas are one broker: same key, same domain.
            for &p in &ports[1..] {
                let other = Api::connect(p).await;
                assert_eq!(
                    other.domain, api.domain,
                    "replicas on ports {ports:?} do not share one broker identity"
                );
            }
            apis.push(api);
        }
        for k in 0..setups.len() {
            let i = (rep + k) % setups.len();
            let st = &mut setups[i];
            st.check_alive();
            let watched = st.watched();
            let ports = st.ports();
            let label = format!("[{} {} rep {}/{}]", st.label, st.store, rep + 1, s.reps);
            for &shape in shapes {
                let (pop, took) =
                    broker_population(&apis[i], &ports, s.replica_sessions, s.parties).await;
                let (per, cross) = spread_over_replicas(&pop);
                let note = format!(
                    "{} ({}): {} sessions published, {} parties joined and authenticated (all through the first broker) in {:.1} s; sockets per broker port {:?}; {:.0}% of sender→recipient pairs cross brokers",
                    st.label,
                    st.store,
                    s.replica_sessions,
                    pop.members.len(),
                    took.as_secs_f64(),
                    per,
                    cross * 100.0
                );
                if !notes.iter().any(|n: &String| n.starts_with(&st.label)) {
                    notes.push(note);
                }
                let r = relay_load(&pop, shape, s, &watched).await;
                eprintln!(
                    "{label} {}: {:.0} msgs/s, p50 {} ms, p99 {} ms, broker RSS +{:.1} KiB/socket, load {:.2}",
                    shape.describe(),
                    r.per_sec,
                    fmt_ms(r.p50),
                    fmt_ms(r.p99),
                    (r.rss_open - r.rss_before) / r.sockets.max(1) as f64,
                    r.load1
                );
                match series
                    .iter_mut()
                    .find(|x| x.server == st.label && x.shape == shape)
                {
                    Some(x) => x.runs.push(r),
                    None => series.push(Series {
                        server: st.label.clone(),
                        store: st.store,
                        shape,
                        runs: vec![r],
                    }),
                }
            }
        }
        // Brokers first, then their Redis (field order).
        drop(setups);
    }
    (series, notes)
}

fn shapes_first(series: &[Series]) -> Option<Shape> {
    series.first().map(|x| x.shape)
}

fn report_replicas(
    s: &Settings,
    series: &[Series],
    notes: &[String],
    notes_before: &str,
    open_files: u64,
) -> String {
    let mut out = String::new();
    let conns = s.replica_sessions * s.parties;
    let reps = if s.reps > 1 {
        format!(
            "; median (min–max) of {} repetitions, latencies are medians of the repetitions' percentiles",
            s.reps
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n### Signaling relay over {} replicas sharing Redis vs 1 replica, {} sessions × {} parties ({conns} WebSockets), {}-byte payload, {} s{reps}\n",
        s.replicas,
        s.replica_sessions,
        s.parties,
        payload_len(),
        s.secs
    );
    let _ = writeln!(
        out,
        "| brokers | store | load | offered msgs/s | msgs/s | p50 ms | p99 ms | errors | sent / delivered | broker CPU µs/msg (all brokers) | redis CPU µs/msg | CPU brokers / redis / generator (cores) / machine busy |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---|"
    );
    let med = |x: &Series, f: fn(&RelayResult) -> f64| median(x.runs.iter().map(f).collect());
    let rate = |x: &Series| med(x, |r| r.per_sec);
    let p50 = |x: &Series| med(x, |r| r.p50);
    let p99 = |x: &Series| med(x, |r| r.p99);
    let broker_us = |x: &Series| med(x, |r| cpu_per(r.cpu.server, r.per_sec));
    let redis_us = |x: &Series| med(x, |r| cpu_per(r.cpu.store, r.per_sec));
    for x in series {
        let n = x.runs.len().max(1) as f64;
        let redis_cores = x.runs.iter().map(|r| r.cpu.store).sum::<f64>() / n;
        let cpu = x.runs.iter().map(|r| r.cpu).collect::<Vec<_>>();
        let mean = mean_cpu(&cpu);
        // mean_cpu gives "server / generator / machine"; put redis in between.
        let (srv, rest) = mean.split_once(" / ").unwrap_or((&mean, ""));
        let redis_text = if redis_cores.is_finite() {
            format!("{redis_cores:.2}")
        } else {
            "–".into()
        };
        let redis_per = redis_us(x);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} | {srv} / {redis_text} / {rest} |",
            x.server,
            x.store,
            x.shape.describe(),
            delivery_cells(x),
            broker_us(x),
            if redis_per.is_finite() {
                format!("{redis_per:.1}")
            } else {
                "–".into()
            },
        );
    }
    let _ = writeln!(
        out,
        "\n### Broker memory per connection, {conns} WebSockets (VmRSS of the broker process(es), summed; {} fresh starts)\n",
        s.reps
    );
    let _ = writeln!(
        out,
        "| brokers | store | RSS before opening, MiB | KiB per connection, all open (fresh processes) | KiB per connection after the {} (sockets still open) | KiB per connection, re-opened on the same processes | redis-server RSS KiB per connection |",
        match shapes_first(series) {
            Some(Shape::Closed(_)) => "closed loop",
            Some(Shape::Open(_)) => "open loop",
            None => "load",
        }
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for x in series {
        if !labels.iter().any(|(l, _)| *l == x.server) {
            labels.push((&x.server, x.store));
        }
    }
    for (label, store) in &labels {
        // Each repetition runs the shapes in order on fresh processes: the
        // first shape's runs are first openings, the others re-openings.
        let mine: Vec<&Series> = series.iter().filter(|x| x.server == *label).collect();
        let per = |r: &RelayResult, after: f64| (after - r.rss_before) / r.sockets.max(1) as f64;
        let first: Vec<&RelayResult> = mine
            .first()
            .map(|x| x.runs.iter().collect())
            .unwrap_or_default();
        let again: Vec<f64> = mine
            .iter()
            .skip(1)
            .flat_map(|x| &x.runs)
            .map(|r| per(r, r.rss_open))
            .collect();
        let col = |v: Vec<f64>, digits: usize| {
            let m = median(v.clone());
            if !m.is_finite() {
                return "–".to_owned();
            }
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if v.len() < 2 {
                format!("{m:.digits$}")
            } else {
                format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
            }
        };
        let _ = writeln!(
            out,
            "| {label} | {store} | {} | {} | {} | {} | {} |",
            col(first.iter().map(|r| r.rss_before / 1024.0).collect(), 1),
            col(first.iter().map(|r| per(r, r.rss_open)).collect(), 1),
            col(first.iter().map(|r| per(r, r.rss_loaded)).collect(), 1),
            col(again, 1),
            col(
                first
                    .iter()
                    .map(|r| (r.store_rss_open - r.store_rss_before) / r.sockets.max(1) as f64)
                    .collect(),
                2
            ),
        );
    }
    if labels.len() == 2 {
        let (one, many) = (labels[0].0, labels[1].0);
        let _ = writeln!(out, "\n### {many} ÷ {one}\n");
        let _ = writeln!(
            out,
            "| load | msgs/s | p50 | p99 | broker CPU per msg (all brokers) | broker + redis CPU per msg |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for m in series.iter().filter(|x| x.server == many) {
            if let Some(o) = series
                .iter()
                .find(|x| x.server == one && x.shape == m.shape)
            {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    m.shape.describe(),
                    ratio(rate(m), rate(o)),
                    ratio(p50(m), p50(o)),
                    ratio(p99(m), p99(o)),
                    ratio(broker_us(m), broker_us(o)),
                    ratio(broker_us(m) + redis_us(m), broker_us(o))
                );
            }
        }
    }
    let loads: Vec<f64> = series
        .iter()
        .flat_map(|x| &x.runs)
        .map(|r| r.load1)
        .collect();
    let _ = writeln!(out, "\nNotes:\n");
    let _ = writeln!(out, "- machine at start: {notes_before}");
    let _ = writeln!(out, "- machine at end: {}", machine_notes());
    let _ = writeln!(
        out,
        "- 1-minute load average at the end of each measured window: {:.2}–{:.2} (median {:.2})",
        loads.iter().copied().fold(f64::INFINITY, f64::min),
        loads.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        median(loads.clone())
    );
    for n in notes {
        let _ = writeln!(out, "- setup, {n}");
    }
    for x in series {
        let mut sum: BTreeMap<&str, f64> = BTreeMap::new();
        for r in &x.runs {
            for (k, v) in &r.threads {
                *sum.entry(k).or_default() += v / x.runs.len() as f64;
            }
        }
        let mut top: Vec<(&str, f64)> = sum.into_iter().filter(|&(_, v)| v >= 0.005).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let list: Vec<String> = top.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        let _ = writeln!(
            out,
            "- broker threads, cores (mean of repetitions, summed over brokers by thread name), {} {}, {}: {}",
            x.server,
            x.store,
            x.shape.describe(),
            list.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "- every broker and redis-server is its own process, default HTTP workers each; the generator (this process) shares the same cores; open-file soft limit {open_files}."
    );
    let _ = writeln!(
        out,
        "- broker CPU per message sums every replica; redis CPU per message is redis-server's over the same window."
    );
    out
}

fn main() {
    // `cargo test --all-targets` also runs bench targets (without `--bench`): there this
    // minutes-long, machine-filling benchmark only needs to compile.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benchmark skipped outside `cargo bench`; run: cargo bench -p broker --bench load"
        );
        return;
    }
    let s = Settings::from_env();
    let _ = base();
    // One socket per party in this process (and in the in-memory broker),
    // plus HTTP connections and files.
    let most = s.sessions.max(if s.replicas > 0 {
        s.replica_sessions
    } else {
        0
    }) * s.parties;
    let open_files = ensure_open_files(most as u64 + 512);
    let scratch = tempfile::Builder::new()
        .prefix("mpc-broker-load-")
        .tempdir()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = if s.peerjs {
        match peerjs_ready() {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("PeerJS skipped: {e}");
                None
            }
        }
    } else {
        None
    };
    let notes_before = machine_notes();
    eprintln!(
        "load benchmark{}: {} sessions × {} parties, {} s measured after {} s warm-up, {} repetition(s); {notes_before}",
        if s.quick { " (quick)" } else { "" },
        s.sessions,
        s.parties,
        s.secs,
        s.warmup,
        s.reps
    );
    let shapes = [Shape::Closed(s.window), Shape::Open(s.rate)];
    let mut targets = start_targets(&s, scratch.path(), peer.as_ref());
    let (auth, series, setup) = rt.block_on(run_all(&s, &mut targets, &shapes));
    drop(targets);
    let out = report(&s, &auth, &series, &setup, &notes_before, peer.is_some());
    println!("{out}");
    if s.replicas > 0 {
        let notes_before = machine_notes();
        eprintln!(
            "replicas: {} sessions × {} parties on 1 in-memory broker and on {} replicas sharing a redis-server; {notes_before}",
            s.replica_sessions, s.parties, s.replicas
        );
        let (series, notes) = rt.block_on(run_replicas(&s, scratch.path(), &shapes));
        println!(
            "{}",
            report_replicas(&s, &series, &notes, &notes_before, open_files)
        );
    }
    drop(rt);
    drop(scratch);
}

/// The cells both relay tables share: offered load, throughput, p50, p99,
/// errors, sent / delivered.
fn delivery_cells(x: &Series) -> String {
    let med = |f: fn(&RelayResult) -> f64| median(x.runs.iter().map(f).collect());
    let mut errors = BTreeMap::new();
    for r in &x.runs {
        merge(&mut errors, &r.errors);
    }
    format!(
        "{} | {} | {} | {} | {} | {} / {}",
        x.runs[0]
            .offered
            .map_or_else(|| "max".into(), |o| format!("{o:.0}")),
        spread(&x.runs.iter().map(|r| r.per_sec).collect::<Vec<_>>()),
        fmt_ms(med(|r| r.p50)),
        fmt_ms(med(|r| r.p99)),
        errors_text(&errors),
        x.runs.iter().map(|r| r.sent).sum::<u64>(),
        x.runs.iter().map(|r| r.delivered).sum::<u64>(),
    )
}

fn report(
    s: &Settings,
    auth: &[(&'static str, Vec<AuthResult>)],
    series: &[Series],
    setup: &[String],
    notes_before: &str,
    with_peerjs: bool,
) -> String {
    let mut out = String::new();
    let reps = if s.reps > 1 {
        format!(
            "; median (min–max) of {} repetitions, latencies are medians of the repetitions' percentiles",
            s.reps
        )
    } else {
        String::new()
    };
    // Skipped (`LOAD_SKIP_AUTH=1`): no table rather than an empty one.
    if !auth.is_empty() {
        let _ = writeln!(
            out,
            "\n### Authentications (challenge + presentation + token), {} concurrent clients, {} s{reps}\n",
            s.auth_clients, s.secs
        );
        let _ = writeln!(
            out,
            "| server | store | auth/s | p50 ms | p99 ms | errors | mean challenge / sign / token ms | server CPU µs/auth | CPU server / generator (cores) / machine busy |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|---|---:|---|");
        for (store, runs) in auth {
            let mut errors = BTreeMap::new();
            for a in runs {
                merge(&mut errors, &a.errors);
            }
            let m = |f: fn(&AuthResult) -> f64| median(runs.iter().map(f).collect());
            let _ = writeln!(
                out,
                "| mpc-broker | {store} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.0} | {} |",
                spread(&runs.iter().map(|a| a.per_sec).collect::<Vec<_>>()),
                fmt_ms(m(|a| a.p50)),
                fmt_ms(m(|a| a.p99)),
                errors_text(&errors),
                m(|a| a.mean_challenge_ms),
                m(|a| a.mean_sign_ms),
                m(|a| a.mean_token_ms),
                m(|a| cpu_per(a.cpu.server, a.per_sec)),
                mean_cpu(&runs.iter().map(|a| a.cpu).collect::<Vec<_>>())
            );
        }
    }
    let _ = writeln!(
        out,
        "\n### Signaling relay, {} sessions × {} parties ({} WebSockets), {}-byte payload, {} s{reps}\n",
        s.sessions,
        s.parties,
        s.sessions * s.parties,
        payload_len(),
        s.secs
    );
    let _ = writeln!(
        out,
        "| server | store | load | sessions×parties | offered msgs/s | msgs/s | p50 ms | p99 ms | errors | sent / delivered | server CPU µs/msg | CPU server / generator (cores) / machine busy |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---:|---:|---:|---:|---|---|---:|---|"
    );
    let rate = |x: &Series| median(x.runs.iter().map(|r| r.per_sec).collect());
    let p50 = |x: &Series| median(x.runs.iter().map(|r| r.p50).collect());
    let p99 = |x: &Series| median(x.runs.iter().map(|r| r.p99).collect());
    let cpu_us = |x: &Series| {
        median(
            x.runs
                .iter()
                .map(|r| cpu_per(r.cpu.server, r.per_sec))
                .collect(),
        )
    };
    for x in series {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}×{} | {} | {:.1} | {} |",
            x.server,
            x.store,
            x.shape.describe(),
            s.sessions,
            s.parties,
            delivery_cells(x),
            cpu_us(x),
            mean_cpu(&x.runs.iter().map(|r| r.cpu).collect::<Vec<_>>())
        );
    }
    if s.hist {
        let _ = writeln!(
            out,
            "\n### Latency histograms (deliveries per bucket, all repetitions)\n"
        );
        let mut head = String::from("| server | store | load |");
        let mut lo = 0;
        for hi in BUCKETS_MS {
            let _ = write!(head, " {lo}–{hi} ms |");
            lo = hi;
        }
        let _ = write!(head, " ≥ {lo} ms |");
        let _ = writeln!(out, "{head}");
        let _ = writeln!(out, "|---|---|---|{}", "---:|".repeat(BUCKETS_MS.len() + 1));
        for x in series {
            let mut h = vec![0u64; BUCKETS_MS.len() + 1];
            for r in &x.runs {
                for (a, b) in h.iter_mut().zip(&r.hist) {
                    *a += b;
                }
            }
            let cells: Vec<String> = h.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                x.server,
                x.store,
                x.shape.describe(),
                cells.join(" | ")
            );
        }
    }
    let _ = writeln!(out, "\n### Ratios vs PeerJS\n");
    if with_peerjs {
        let _ = writeln!(
            out,
            "| broker store | load | msgs/s broker ÷ PeerJS | p50 broker ÷ PeerJS | p99 broker ÷ PeerJS | server CPU per msg broker ÷ PeerJS |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for b in series.iter().filter(|x| x.server == "mpc-broker") {
            if let Some(p) = series
                .iter()
                .find(|x| x.server.starts_with("PeerJS") && x.shape == b.shape)
            {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    b.store,
                    b.shape.describe(),
                    ratio(rate(b), rate(p)),
                    ratio(p50(b), p50(p)),
                    ratio(p99(b), p99(p)),
                    ratio(cpu_us(b), cpu_us(p))
                );
            }
        }
    } else {
        let _ = writeln!(out, "PeerJS was not measured (see above).");
    }
    let _ = writeln!(out, "\nNotes:\n");
    let _ = writeln!(out, "- machine at start: {notes_before}");
    let _ = writeln!(out, "- machine at end: {}", machine_notes());
    let mut seen = Vec::new();
    for n in setup {
        if seen.len() < 4 && !seen.contains(n) {
            let _ = writeln!(out, "- setup, {n}");
            seen.push(n.clone());
        }
    }
    let _ = writeln!(
        out,
        "- every server is its own process; the generator (this process) shares the same cores. CPU columns: cores' worth used by the server process and by the generator during the measured window, and how busy the whole machine was (other tenants included)."
    );
    let _ = writeln!(
        out,
        "- msgs/s counts messages stamped inside the measured window and delivered (2 s drain); latency runs from send (open loop: scheduled send) to receipt, on one clock."
    );
    out
}
