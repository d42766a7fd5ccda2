//! Whole sessions with every party a separate `mpc-node join` process, a
//! real broker, real WebRTC on loopback; outputs checked against plaintext.
//! And `mpc-node demo`, the README's first command.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{finish, join_process, parties, Party};
use common::redis::tempdir;
use identity::Keypair;
use node::client::BrokerClient;
use serde_json::{json, Value};

/// A published session with one running `mpc-node join` process per party.
struct Running {
    broker: broker::Running,
    children: Vec<Child>,
    parties: Vec<Party>,
    /// The parties' key and credential files; removed when the test ends.
    _dir: tempfile::TempDir,
}

/// Publishes `program` for `n` credential holders and starts one `mpc-node join` process per
/// party with `inputs[i]` (stdout and stderr piped).
async fn start(name: &str, program: &str, inputs: &[Vec<i64>]) -> Running {
    let n = inputs.len();
    let dir = tempdir(name);
    let organizer = Keypair::from_seed(&[200; 32]);
    let issuer = Keypair::from_seed(&[201; 32]);
    let broker = common::broker_for(&organizer).await;
    let ps = parties(dir.path(), &issuer, n);
    let manifest = common::signed_manifest(
        &organizer,
        program,
        json!({"credentialType": "MpcParticipantCredential", "trustedIssuers": [issuer.did()], "minParties": n, "maxParties": n}),
    );
    let client = BrokerClient::connect(&broker.url()).await.unwrap();
    let token = client.authenticate(&organizer).await.unwrap();
    let id = client.publish(&token, &manifest, None).await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let children: Vec<Child> = ps
        .iter()
        .zip(inputs)
        .map(|(p, inp)| join_process(&broker.url(), &id, p, &organizer, inp, 60))
        .collect();
    Running {
        broker,
        children,
        parties: ps,
        _dir: dir,
    }
}

/// Publishes `program` for `n` credential holders and runs one `mpc-node join`
/// process per party with `inputs[i]`; returns each party's report.
async fn session(name: &str, program: &str, inputs: Vec<Vec<i64>>) -> Vec<Value> {
    let Running {
        broker,
        children,
        parties: ps,
        _dir,
    } = start(name, program, &inputs).await;
    let reports = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| finish(c, Duration::from_secs(90)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    broker.stop(false).await;
    reports
        .into_iter()
        .zip(&ps)
        .map(|((code, out, err), p)| {
            assert_eq!(code, Some(0), "party {} failed: {err}", p.key.did());
            assert_eq!(
                out["parties"][out["index"].as_u64().unwrap() as usize],
                json!(p.key.did())
            );
            out
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_compute_a_sum() {
    let inputs = vec![vec![5], vec![-7], vec![1000]];
    for r in session("sum3", "sum", inputs).await {
        assert_eq!(r["output"]["sum"], json!(998), "{r}");
        assert_eq!(r["output"]["count"], json!(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_draw_a_secret_santa_derangement() {
    let reports = session("santa5", "secret-santa", vec![vec![]; 5]).await;
    let mut receivers = vec![None; 5];
    for r in &reports {
        let me = r["index"].as_u64().unwrap() as usize;
        let a = r["output"]["assignments"].as_array().unwrap();
        assert_eq!(a.len(), 1, "each party learns only its own assignment: {r}");
        assert_eq!(a[0]["giver"], json!(me));
        let to = a[0]["receiver"].as_u64().unwrap() as usize;
        assert_ne!(to, me, "a derangement has no fixed point");
        receivers[me] = Some(to);
    }
    let mut seen: Vec<usize> = receivers.into_iter().map(Option::unwrap).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![0, 1, 2, 3, 4],
        "everyone receives exactly one gift"
    );
}

/// Sort inputs per party for the kill test: enough work that the computation runs for
/// seconds (measured: 300 values sort in 0.4 s, 750 in 1.4 s in the test profile).
const KILL_SORT_INPUTS: usize = 200;
/// How long the survivors may take to notice the killed peer and exit. Measured: ≈ 15 s when
/// they are waiting to receive from it (ICE declares a silent peer's connection failed after
/// 5 s + 10 s by default), but ≈ 32 s in about half the runs: a survivor blocked in a send to
/// the dead peer is not woken by the connection's failure and gives up only at `send_timeout`
/// (30 s; its error then reads "party 2 sent nothing for 30s"). 45 s covers both; a hang
/// would still fail.
const KILL_NOTICE_BOUND: Duration = Duration::from_secs(30);

/// A line of a child's stderr, or the end of it.
enum Line {
    Text(usize, String),
    End(usize),
}

/// A node killed mid-computation (SIGKILL: no goodbye, its sockets just vanish): the other two
/// exit with status 1 within [`KILL_NOTICE_BOUND`], reporting the phase `compute` and naming
/// the lost peer's index and DID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_computation_makes_the_others_exit_naming_it() {
    let inputs: Vec<Vec<i64>> = (0..3)
        .map(|p| {
            (0..KILL_SORT_INPUTS)
                .map(|j| ((j * 7_919 + p * 104_729) % 1_000_003) as i64 - 500_000)
                .collect()
        })
        .collect();
    let Running {
        broker,
        mut children,
        parties: ps,
        _dir,
    } = start("kill3", "sort", &inputs).await;
    let dids: Vec<String> = ps.iter().map(|p| p.key.did().as_str().to_owned()).collect();
    let (victim, survivors, _killed_at) = tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stderr: Vec<Vec<String>> = vec![Vec::new(); children.len()];
        let mut readers = Vec::new();
        for (i, c) in children.iter_mut().enumerate() {
            let err = c.stderr.take().unwrap();
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(Line::Text(i, line));
                }
                let _ = tx.send(Line::End(i));
            }));
        }
        drop(tx);
        // Roster index of each process (from its `verify` note), and who finished the mesh.
        let mut index: Vec<Option<usize>> = vec![None; children.len()];
        let mut meshed = vec![false; children.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        let dump = |stderr: &[Vec<String>]| {
            stderr
                .iter()
                .enumerate()
                .map(|(i, l)| format!("process {i}:\n{}", l.join("\n")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        while !meshed.iter().all(|&m| m) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the mesh did not come up in time:\n{}", dump(&stderr)));
            let (i, text) = match line {
                Line::Text(i, t) => (i, t),
                Line::End(i) => panic!("process {i} ended early:\n{}", dump(&stderr)),
            };
            stderr[i].push(text.clone());
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match v["phase"].as_str() {
                Some("verify") => {
                    let note = v["note"].as_str().unwrap_or_default();
                    let n = note.rsplit("we are #").next().and_then(|s| s.parse().ok());
                    index[i] = n;
                }
                Some("mesh") => meshed[i] = true,
                Some("compute") => panic!(
                    "process {i} finished computing before the kill: raise KILL_SORT_INPUTS\n{}",
                    dump(&stderr)
                ),
                _ => {}
            }
        }
        // Every process is computing: kill the last roster member (it receives last in each
        // round, so both survivors are waiting on it, not on each other).
        let victim = index
            .iter()
            .position(|&x| x == Some(2))
            .unwrap_or_else(|| panic!("no process is #2: {index:?}\n{}", dump(&stderr)));
        std::thread::sleep(Duration::from_millis(200));
        let mut v = children.remove(victim);
        assert!(
            v.try_wait().unwrap().is_none(),
            "the victim finished before it was killed: raise KILL_SORT_INPUTS\n{}",
            dump(&stderr)
        );
        v.kill().unwrap();
        let killed_at = Instant::now();
        v.wait().unwrap();
        let mut survivors = Vec::new();
        for (k, child) in children.into_iter().enumerate() {
            let i = if k < victim { k } else { k + 1 };
            let (code, out, _) =
                finish(child, KILL_NOTICE_BOUND.saturating_sub(killed_at.elapsed()));
            survivors.push((i, code, out, killed_at.elapsed()));
        }
        for r in readers {
            r.join().unwrap();
        }
        while let Ok(line) = rx.try_recv() {
            if let Line::Text(i, t) = line {
                stderr[i].push(t);
            }
        }
        let survivors: Vec<_> = survivors
            .into_iter()
            .map(|(i, code, out, after)| (i, code, out, after, stderr[i].join("\n")))
            .collect();
        (victim, survivors, killed_at)
    })
    .await
    .unwrap();
    broker.stop(false).await;
    // Every survivor names the killed peer: one that gives up because of it says so in its
    // bye, so the other does not blame the messenger.
    for (i, code, out, after, err) in &survivors {
        eprintln!("process {i} exited {code:?} {after:?} after the kill: {out}");
        assert_eq!(*code, Some(1), "process {i}: {out}\n{err}");
        assert!(*after < KILL_NOTICE_BOUND, "process {i} took {after:?}");
        assert_eq!(out["phase"], json!("compute"), "process {i}: {out}\n{err}");
        assert_eq!(out["peer"]["index"], json!(2), "process {i}: {out}\n{err}");
        assert_eq!(
            out["peer"]["did"],
            json!(dids[victim]),
            "process {i}: {out}"
        );
        assert!(
            err.contains(&format!("invalid: compute: peer #2 ({})", dids[victim])),
            "process {i}: {err}"
        );
    }
}

#[test]
fn the_demo_runs_a_whole_session() {
    let child = Command::new(env!("CARGO_BIN_EXE_mpc-node"))
        .args(["demo", "--parties", "3", "--program", "sum"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(90));
    assert_eq!(code, Some(0), "{err}");
    let parties = out["parties"].as_array().unwrap();
    assert_eq!(parties.len(), 3);
    let total: i64 = parties
        .iter()
        .map(|p| p["inputs"][0].as_i64().unwrap())
        .sum();
    for p in parties {
        assert_eq!(p["output"]["sum"], json!(total));
        for phase in [
            "authenticate",
            "join",
            "roster",
            "verify",
            "mesh",
            "compute",
        ] {
            assert!(p["timingsMs"][phase].is_u64(), "no {phase} timing: {p}");
        }
    }
    assert!(err.contains("done in"), "{err}");
}
