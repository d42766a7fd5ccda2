//! The `mpc-broker` binary: starts with a fresh key file, serves, shuts
//! down gracefully on SIGTERM, and refuses bad configuration clearly.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, tempdir};

fn broker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpc-broker"))
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mpc-broker did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The raw answer to `GET /healthz`, if something listens on `port`.
fn healthz(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

#[test]
fn starts_with_a_new_private_key_serves_and_stops_on_sigterm() {
    let dir = tempdir("bin");
    let key = dir.path().join("broker-key.json");
    let port = free_port();
    let mut child = broker()
        .args(["--listen", &format!("127.0.0.1:{port}"), "--key"])
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(out) = healthz(port) {
            break out;
        }
        assert!(Instant::now() < deadline, "mpc-broker did not listen");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let did = identity::keyfile::load(&key).unwrap().did();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    // A restart keeps its identity.
    let mut again = broker()
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--key"])
        .arg(&key)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &again.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut again, Duration::from_secs(15)).success());
    let mut log = String::new();
    use std::io::Read;
    again
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains(did.as_str()), "{log}");
}

#[test]
fn unreachable_redis_or_bad_flags_exit_non_zero_with_a_reason() {
    let dir = tempdir("bin2");
    let out = broker()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &format!("redis://127.0.0.1:{}/", free_port()),
            "--key",
        ])
        .arg(dir.path().join("k.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session store is unreachable"), "{err}");
    let out = broker()
        .args(["--trusted-organizer", "did:web:example.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a did:key"));
    // A key file others can read is refused with the fix.
    let loose = dir.path().join("loose.json");
    identity::keyfile::write(&loose, &identity::Keypair::from_seed(&[3; 32])).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = broker()
        .args(["--listen", "127.0.0.1:0", "--key"])
        .arg(&loose)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--wait-for-store S`: the broker keeps trying an unreachable Redis for S
/// seconds, serves as soon as Redis comes up, and otherwise exits non-zero.
#[test]
fn with_wait_for_store_it_waits_for_redis_then_serves_or_gives_up() {
    let dir = tempdir("bin3");
    // Nobody ever listens here: the wait runs out.
    let started = Instant::now();
    let out = broker()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--wait-for-store",
            "2",
            "--redis-url",
        ])
        .arg(format!("redis://127.0.0.1:{}/", free_port()))
        .arg("--key")
        .arg(dir.path().join("k.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it did not wait"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session store is unreachable"), "{err}");
    // Redis comes up during the wait: the broker serves.
    let redis_port = free_port();
    let port = free_port();
    let mut child = broker()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--wait-for-store",
            "30",
        ])
        .arg("--redis-url")
        .arg(format!("redis://127.0.0.1:{redis_port}/"))
        .arg("--key")
        .arg(dir.path().join("k2.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Long enough for several failed attempts (one every 0.5 s).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it gave up instead of waiting"
    );
    let _redis = common::RedisServer::start_on_port(redis_port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if healthz(port).is_some_and(|out| out.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mpc-broker did not come up after Redis did"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}
