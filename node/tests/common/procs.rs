//! Separate processes for whole-session tests: `mpc-node join` parties with
//! keys and credentials, `mpc-broker` replicas on a shared Redis, and a TCP
//! proxy that can hold signaling connections back.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use identity::{CredentialRequest, Cryptosuite, Keypair};
use serde_json::Value;

use super::redis::free_port;

/// Waits for a child with a deadline; kills it if it overruns.
pub fn finish(mut child: Child, within: Duration) -> (Option<i32>, Value, String) {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Party {
    pub key: Keypair,
    pub key_file: PathBuf,
    pub credential_file: PathBuf,
}

/// `n` parties with key files and `MpcParticipantCredential`s from `issuer`.
pub fn parties(dir: &Path, issuer: &Keypair, n: usize) -> Vec<Party> {
    (0..n)
        .map(|i| {
            let key = Keypair::from_seed(&[i as u8 + 1; 32]);
            let key_file = dir.join(format!("p{i}.json"));
            identity::keyfile::write(&key_file, &key).unwrap();
            let vc = identity::issue_credential(
                issuer,
                &CredentialRequest {
                    id: None,
                    subject: key.did(),
                    types: vec!["MpcParticipantCredential".into()],
                    claims: serde_json::Map::new(),
                    valid_from: SystemTime::now() - Duration::from_secs(60),
                    valid_until: None,
                    suite: Cryptosuite::EddsaJcs2022,
                    created: SystemTime::now(),
                },
            )
            .unwrap();
            let credential_file = dir.join(format!("c{i}.json"));
            std::fs::write(&credential_file, vc.to_string()).unwrap();
            Party {
                key,
                key_file,
                credential_file,
            }
        })
        .collect()
}

/// `mpc-node join` for `party` in `session` through `brokers` (comma separated
/// replicas), stdout and stderr piped.
pub fn join_process(
    brokers: &str,
    session: &str,
    party: &Party,
    organizer: &Keypair,
    inputs: &[i64],
    wait_secs: u64,
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc-node"));
    cmd.args([
        "join",
        "--broker",
        brokers,
        "--session",
        session,
        "--json",
        "--udp",
        "127.0.0.1:0",
        "--wait",
        &wait_secs.to_string(),
    ])
    .arg("--key")
    .arg(&party.key_file)
    .arg("--credential")
    .arg(&party.credential_file)
    .args(["--organizer", organizer.did().as_str()]);
    for x in inputs {
        cmd.args(["--input", &x.to_string()]);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The `mpc-broker` binary, built next to `mpc-node` by `cargo test --workspace`.
fn broker_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_mpc-node")).with_file_name("mpc-broker");
    assert!(
        p.exists(),
        "{} is missing: run the workspace's tests (`bash scripts/test.sh` or `cargo test --workspace`), which build it",
        p.display()
    );
    p
}

/// One `mpc-broker` process (a replica), killed on drop.
pub struct BrokerProcess {
    child: Child,
    pub port: u16,
}

impl BrokerProcess {
    /// Starts a replica with `key_file` (shared by all replicas) on Redis
    /// `redis_url`, trusting `organizer`, and waits until it is healthy.
    pub fn start(key_file: &Path, redis_url: &str, organizer: &Keypair) -> Self {
        // A free port can be taken by another test between our probe and the
        // broker's bind; then the broker exits and another one answers there.
        // Check that *our* process is the one that became healthy.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(broker_binary())
                .args([
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--redis-url",
                    redis_url,
                ])
                .args([
                    "--trusted-organizer",
                    organizer.did().as_str(),
                    "--workers",
                    "1",
                ])
                .arg("--key")
                .arg(key_file)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut b = BrokerProcess { child, port };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if b.child.try_wait().unwrap().is_some() {
                    break;
                }
                if b.healthy() {
                    // Still ours a moment later (not a neighbour's broker).
                    std::thread::sleep(Duration::from_millis(50));
                    if b.child.try_wait().unwrap().is_none() {
                        return b;
                    }
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "mpc-broker on {port} did not become healthy"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("mpc-broker did not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    pub fn healthy(&self) -> bool {
        self.get("/healthz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    }

    /// The `mpc_broker_open_websockets` gauge.
    pub fn open_websockets(&self) -> Option<i64> {
        let body = self.get("/metrics")?;
        body.lines()
            .find(|l| l.starts_with("mpc_broker_open_websockets "))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// SIGKILL: the replica vanishes with its sockets.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback TCP proxy to `upstream` that holds every signaling WebSocket
/// upgrade (`GET …/signal`) until [`release`](Self::release)d; other
/// requests pass at once. Lets a test decide when a node's signaling
/// reaches a replica.
pub struct HoldingProxy {
    pub port: u16,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

/// The longest a held connection waits before it is let through anyway.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

impl HoldingProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = forward(conn, upstream, &g);
                });
            }
        });
        HoldingProxy { port, gate }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn release(&self) {
        let (open, cv) = &*self.gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

fn forward(
    mut client: TcpStream,
    upstream: u16,
    gate: &(Mutex<bool>, Condvar),
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = vec![0u8; 4096];
    let n = client.read(&mut head)?;
    head.truncate(n);
    let line = String::from_utf8_lossy(&head[..head.len().min(256)]).into_owned();
    if line.starts_with("GET ") && line.lines().next().is_some_and(|l| l.contains("/signal")) {
        let (open, cv) = gate;
        let guard = open.lock().unwrap();
        let _ = cv.wait_timeout_while(guard, HOLD_LIMIT, |o| !*o).unwrap();
    }
    client.set_read_timeout(None)?;
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_nodelay(true)?;
    client.set_nodelay(true)?;
    server.write_all(&head)?;
    let (mut c2, mut s2) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
    Ok(())
}
