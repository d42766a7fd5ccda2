//! A real `redis-server` on a free loopback port, and temporary
//! directories. Self-contained, so the node's tests include this file too
//! (`#[path]`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: Option<TempDir>,
}

pub use tempfile::TempDir;

/// A scratch directory named after its use, removed on drop.
pub fn tempdir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpc-test-{tag}-"))
        .tempdir()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts `redis-server` (which `scripts/test.sh` installs when missing)
    /// and waits until it answers PING.
    pub fn start() -> Self {
        Self::launch(tempdir("redis"), free_port(), false)
    }

    /// A server on a port chosen by the caller.
    pub fn start_on_port(port: u16) -> Self {
        Self::launch(tempdir("redis"), port, false)
    }

    /// A server that writes every change to its append-only file before
    /// answering, so it can be killed and [`restart`](Self::restart)ed
    /// without losing anything.
    pub fn start_persistent() -> Self {
        Self::launch(tempdir("redis"), free_port(), true)
    }

    /// Kills the server (SIGKILL: no chance to save anything more).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(mut self) -> Self {
        self.kill();
        let dir = self.dir.take().expect("a server owns its directory");
        Self::launch(dir, self.port, true)
    }

    fn launch(dir: TempDir, port: u16, persistent: bool) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        if persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it with apt-get)");
        let server = RedisServer {
            child,
            port,
            dir: Some(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 7];
                    if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                        return server;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one inline command (e.g. `CONFIG SET maxmemory 1`) and returns the reply's
    /// first line (`+OK`, `-ERR …`).
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufReader::new(s).read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
