//! Whole sessions with every party a separate `mpc-node join` process, a
//! real broker, real WebRTC on loopback; outputs checked against plaintext.
//! And `mpc-node demo`, the README's first command.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use identity::{CredentialRequest, Cryptosuite, Keypair};
use node::client::BrokerClient;
use serde_json::{json, Value};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mpc-node-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for a child with a deadline; kills it if it overruns.
fn finish(mut child: Child, within: Duration) -> (Option<i32>, Value, String) {
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

struct Party {
    key: Keypair,
    key_file: PathBuf,
    credential_file: PathBuf,
}

fn parties(dir: &Path, issuer: &Keypair, n: usize) -> Vec<Party> {
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

/// Publishes `program` for `n` credential holders and runs one `mpc-node join`
/// process per party with `inputs[i]`; returns each party's report.
async fn session(name: &str, program: &str, inputs: Vec<Vec<i64>>) -> Vec<Value> {
    let n = inputs.len();
    let dir = tempdir(name);
    let organizer = Keypair::from_seed(&[200; 32]);
    let issuer = Keypair::from_seed(&[201; 32]);
    let broker = common::broker_for(&organizer).await;
    let ps = parties(&dir, &issuer, n);
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
        .zip(&inputs)
        .map(|(p, inp)| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc-node"));
            cmd.args([
                "join",
                "--broker",
                &broker.url(),
                "--session",
                &id,
                "--json",
                "--udp",
                "127.0.0.1:0",
                "--wait",
                "60",
            ])
            .arg("--key")
            .arg(&p.key_file)
            .arg("--credential")
            .arg(&p.credential_file)
            .args(["--organizer", organizer.did().as_str()]);
            for x in inp {
                cmd.args(["--input", &x.to_string()]);
            }
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
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
