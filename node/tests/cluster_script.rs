//! `scripts/cluster.sh`, docker-compose.yml's topology as loopback processes: Redis, two
//! `mpc-broker` replicas with one key, nginx in front of them, coturn, the demo set-up
//! (`deploy/setup.sh`) and three `mpc-node join` processes (`deploy/join.sh`) through the load
//! balancer. Runs the script as a user would and checks its exit status and each party's
//! printed result.
//!
//! Needs `redis-server`, `nginx` and `turnserver` (scripts/test.sh installs them) and
//! `mpc-broker` built next to `mpc-node`, which `cargo test --workspace` does.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use identity::Keypair;
use serde_json::{json, Value};

/// The script bounds its own steps (30 s per start-up wait, 60 s per set-up step, 150 s for
/// the parties); this only catches a script that hangs anyway.
const SCRIPT_BOUND: Duration = Duration::from_secs(360);
/// After SIGTERM, time for the script's trap to stop its servers before SIGKILL.
const CLEANUP_GRACE: Duration = Duration::from_secs(15);

/// The demo parties of deploy/setup.sh: name, input, and the seed byte of their key.
const PARTIES: [(&str, i64, u8); 3] =
    [("alice", 12, 0x0a), ("bob", 30, 0x0b), ("carol", 100, 0x0c)];

/// Sends `signal` to the process group `pgid` (the script and everything it started).
fn signal_group(signal: &str, pgid: u32) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Whether any process of the group `pgid` is still alive.
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What a run of the script did.
struct Run {
    /// None: it overran and its process group was killed.
    status: Option<ExitStatus>,
    /// Processes of its group outlived it.
    leaked: bool,
    stdout: String,
    stderr: String,
}

/// Runs `bash scripts/cluster.sh` in its own process group; kills the whole group if it
/// overruns `within`.
fn run_script(root: &Path, bin_dir: &Path, within: Duration) -> Run {
    let mut child = Command::new("bash")
        .arg("scripts/cluster.sh")
        .current_dir(root)
        .env("MPC_BIN_DIR", bin_dir)
        // Relay-only: every channel runs through coturn with broker-issued credentials, so
        // this also proves TURN works end to end (the script checks coturn's log).
        .env("CLUSTER_ICE", "relay")
        .env_remove("CLUSTER_KEEP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + within;
    let mut status = None;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        signal_group("-TERM", pgid);
        let grace = Instant::now() + CLEANUP_GRACE;
        while child.try_wait().unwrap().is_none() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group("-KILL", pgid);
    }
    // Reaps it (at once if it already exited).
    let _ = child.wait();
    // Anything the script started and left running would hold the pipes open: its trap must
    // have stopped every server. Kill leftovers (so the reads below end) and report them.
    let mut leaked = false;
    let grace = Instant::now() + Duration::from_secs(5);
    while group_alive(pgid) {
        if Instant::now() > grace {
            leaked = true;
            signal_group("-KILL", pgid);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Run {
        status,
        leaked,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The script's stdout: for each party a line `== NAME (input N): exit S`, then its JSON.
fn party_outputs(stdout: &str) -> Vec<(String, String, Value)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(header) = line.strip_prefix("== ") {
            blocks.push((header.to_owned(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
        .into_iter()
        .map(|(header, body)| {
            let name = header.split(' ').next().unwrap_or_default().to_owned();
            let json = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{name}'s output is not JSON ({e}):\n{body}"));
            (name, header, json)
        })
        .collect()
}

#[test]
fn cluster_script_runs_a_relay_only_three_party_session_through_two_replicas_behind_nginx() {
    let node = Path::new(env!("CARGO_BIN_EXE_mpc-node"));
    let bin_dir = node.parent().unwrap();
    assert!(
        bin_dir.join("mpc-broker").is_file(),
        "{} is missing: this test runs the mpc-broker binary built next to mpc-node; run the \
         workspace tests (`cargo test --workspace`, or `bash scripts/test.sh`), which build it",
        bin_dir.join("mpc-broker").display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();

    let started = Instant::now();
    let Run {
        status,
        leaked,
        stdout,
        stderr,
    } = run_script(root, bin_dir, SCRIPT_BOUND);
    let status = status.unwrap_or_else(|| {
        panic!(
            "scripts/cluster.sh did not finish within {SCRIPT_BOUND:?}; killed its process \
             group\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    });
    eprintln!("scripts/cluster.sh took {:?}:\n{stderr}", started.elapsed());
    assert_eq!(
        status.code(),
        Some(0),
        "scripts/cluster.sh failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !leaked,
        "scripts/cluster.sh exited but left processes of its group running (killed now)"
    );

    let outputs = party_outputs(&stdout);
    let names: Vec<&str> = outputs.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"], "stdout:\n{stdout}");
    let total: i64 = PARTIES.iter().map(|p| p.1).sum();
    let first = &outputs[0].2;
    let mut indices = Vec::new();
    for ((name, header, out), (_, input, seed)) in outputs.iter().zip(PARTIES) {
        assert_eq!(
            header,
            &format!("{name} (input {input}): exit 0"),
            "{stdout}"
        );
        assert_eq!(out["output"]["sum"], json!(total), "{name}: {out}");
        assert_eq!(
            out["output"]["count"],
            json!(PARTIES.len()),
            "{name}: {out}"
        );
        assert_eq!(
            out["session"], first["session"],
            "{name} is in another session: {out}"
        );
        assert_eq!(
            out["parties"], first["parties"],
            "{name} has another roster: {out}"
        );
        let index = out["index"].as_u64().unwrap() as usize;
        // deploy/setup.sh derives each party's key from a fixed seed byte.
        assert_eq!(
            out["parties"][index],
            json!(Keypair::from_seed(&[seed; 32]).did()),
            "{name}'s roster entry is not its demo DID: {out}"
        );
        indices.push(index);
    }
    indices.sort_unstable();
    assert_eq!(
        indices,
        [0_usize, 1, 2],
        "each party has its own roster index"
    );
    assert!(
        stderr.contains("requests through the load balancer: broker1")
            && stderr.contains("ok: 3 parties"),
        "the script did not report both replicas and success:\n{stderr}"
    );
}
