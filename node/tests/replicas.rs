//! Whole sessions over several `mpc-broker` replicas sharing a real
//! `redis-server`, every party and every replica a separate process, and
//! what the others see when a replica or a party vanishes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead as _;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::procs::{finish, join_process, parties, BrokerProcess, HoldingProxy, Party};
use common::redis::{tempdir, RedisServer};
use identity::Keypair;
use node::client::BrokerClient;
use serde_json::{json, Value};

/// How long a whole session may take here (it takes a few seconds).
const SESSION_BOUND: Duration = Duration::from_secs(90);

struct Cluster {
    replicas: Vec<BrokerProcess>,
    _redis: RedisServer,
    organizer: Keypair,
    parties: Vec<Party>,
    /// The broker key and the parties' files; removed when the test ends.
    _dir: tempfile::TempDir,
}

/// Redis, `replicas` broker processes sharing one broker key, and `n` parties.
fn cluster(name: &str, replicas: usize, n: usize) -> Cluster {
    let dir = tempdir(name);
    let redis = RedisServer::start();
    let organizer = Keypair::from_seed(&[200; 32]);
    let key_file = dir.path().join("broker-key.json");
    identity::keyfile::write(&key_file, &Keypair::from_seed(&[250; 32])).unwrap();
    let replicas = (0..replicas)
        .map(|_| BrokerProcess::start(&key_file, &redis.url(), &organizer))
        .collect();
    let parties = parties(dir.path(), &Keypair::from_seed(&[201; 32]), n);
    Cluster {
        replicas,
        _redis: redis,
        organizer,
        parties,
        _dir: dir,
    }
}

impl Cluster {
    /// Publishes a `sum` session for the parties (explicit list, in order)
    /// through replica `via`.
    async fn publish(&self, via: usize) -> String {
        let dids: Vec<_> = self.parties.iter().map(|p| p.key.did()).collect();
        let n = dids.len();
        let manifest = common::signed_manifest(
            &self.organizer,
            "sum",
            json!({"parties": dids, "minParties": n, "maxParties": n}),
        );
        let client = BrokerClient::connect(&self.replicas[via].url())
            .await
            .unwrap();
        let token = client.authenticate(&self.organizer).await.unwrap();
        client.publish(&token, &manifest, None).await.unwrap()["session"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn join(&self, party: usize, brokers: &str, id: &str, input: i64, wait: u64) -> Child {
        join_process(
            brokers,
            id,
            &self.parties[party],
            &self.organizer,
            &[input],
            wait,
        )
    }
}

fn expect_sum(results: Vec<(Option<i32>, Value, String)>, sum: i64) {
    for (i, (code, out, err)) in results.into_iter().enumerate() {
        assert_eq!(code, Some(0), "party {i} failed: {out}\n{err}");
        assert_eq!(out["output"]["sum"], json!(sum), "party {i}: {out}");
        assert_eq!(
            out["index"],
            json!(i),
            "roster order is the manifest's list"
        );
    }
}

async fn finish_all(children: Vec<Child>, within: Duration) -> Vec<(Option<i32>, Value, String)> {
    tokio::task::spawn_blocking(move || children.into_iter().map(|c| finish(c, within)).collect())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parties_spread_over_two_replicas_compute_a_sum() {
    let c = cluster("replicas2", 2, 3);
    let id = c.publish(0).await;
    let (a, b) = (c.replicas[0].url(), c.replicas[1].url());
    // Party 1 talks only to replica B, the others only to A: every pair
    // with party 1 signals across replicas through Redis.
    let children = vec![
        c.join(0, &a, &id, 5, 60),
        c.join(1, &b, &id, -7, 60),
        c.join(2, &a, &id, 1000, 60),
    ];
    expect_sum(finish_all(children, SESSION_BOUND).await, 998);
}

/// Replica A is SIGKILLed while parties 0 and 1 are connected to it and
/// waiting for party 2, whose signaling the test holds back at replica B.
/// Parties 0 and 1 reconnect to B (their second URL) with backoff, everyone
/// asks everyone to resend, and the session completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_parties_signal_does_not_stop_the_session() {
    let mut c = cluster("replica-kill", 2, 3);
    let id = c.publish(0).await;
    let proxy = HoldingProxy::start(c.replicas[1].port);
    let both = format!("{},{}", c.replicas[0].url(), proxy.url());
    let children = vec![
        c.join(0, &both, &id, 1, 60),
        c.join(1, &both, &id, 2, 60),
        c.join(2, &proxy.url(), &id, 3, 60),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.replicas[0].open_websockets() != Some(2) {
        assert!(
            Instant::now() < deadline,
            "parties 0 and 1 never connected to replica A"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.replicas[0].kill();
    proxy.release();
    expect_sum(finish_all(children, SESSION_BOUND).await, 6);
}

/// Reads a child's stderr lines into a channel (the child keeps running).
fn watch(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits until the child reports that `phase` finished.
fn until_phase(lines: &mpsc::Receiver<String>, phase: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(l) => l,
            Err(e) => panic!(
                "phase {phase} did not finish within {within:?} ({e}); the party said:\n{}",
                seen.join("\n")
            ),
        };
        if serde_json::from_str::<Value>(&line).is_ok_and(|v| v["phase"] == phase) {
            return;
        }
        seen.push(line);
    }
}

/// A party that joined and then vanished before the roster froze is on the
/// roster (its join is a signed commitment; the broker cannot know it is
/// gone): the others exit 1 in phase `mesh`, naming it, within the pair
/// set-up timeout — never computing without it and never hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_vanishes_after_joining_is_named_by_the_others_in_the_mesh_phase() {
    let c = cluster("vanish-joined", 1, 3);
    let id = c.publish(0).await;
    let url = c.replicas[0].url();
    let mut gone = c.join(2, &url, &id, 3, 60);
    let lines = watch(&mut gone);
    until_phase(&lines, "join", Duration::from_secs(30));
    gone.kill().unwrap();
    gone.wait().unwrap();
    let t0 = Instant::now();
    let children = vec![c.join(0, &url, &id, 1, 60), c.join(1, &url, &id, 2, 60)];
    let did = c.parties[2].key.did();
    for (i, (code, out, err)) in finish_all(children, SESSION_BOUND)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(code, Some(1), "party {i}: {out}\n{err}");
        assert_eq!(out["phase"], json!("mesh"), "party {i}: {out}");
        assert_eq!(out["peer"]["index"], json!(2), "party {i}: {out}");
        assert_eq!(out["peer"]["did"], json!(did), "party {i}: {out}");
    }
    // Bounded by the mesh's pair timeout (15 s) plus set-up, not by a hang.
    assert!(t0.elapsed() < Duration::from_secs(45), "{:?}", t0.elapsed());
}

/// A party that never joins: the others wait for the roster as long as
/// they were told (`--wait`), then exit 1 in phase `roster` saying how many
/// joined — the organizer can seal the session without it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_never_joins_stops_the_others_at_the_roster_after_their_wait() {
    let c = cluster("vanish-never", 1, 3);
    let id = c.publish(0).await;
    let url = c.replicas[0].url();
    let children = vec![c.join(0, &url, &id, 1, 2), c.join(1, &url, &id, 2, 2)];
    for (i, (code, out, err)) in finish_all(children, SESSION_BOUND)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(code, Some(1), "party {i}: {out}\n{err}");
        assert_eq!(out["phase"], json!("roster"), "party {i}: {out}");
        let e = out["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("2 of 3"),
            "party {i} should say how many joined: {e}"
        );
    }
}
