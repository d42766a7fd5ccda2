//! The organizer commands as a real process against a real broker.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

mod common;

async fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc-node"));
    cmd.current_dir(dir).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizer_publishes_shows_and_seals_a_session() {
    let tmp = common::redis::tempdir("session-flow");
    let dir = tmp.path();
    let organizer = identity::Keypair::from_seed(&[200; 32]);
    identity::keyfile::write(&dir.join("org.json"), &organizer).unwrap();
    let broker = common::broker_for(&organizer).await;
    let url = broker.url();
    let parties: Vec<_> = (1..=3u8)
        .map(|n| identity::Keypair::from_seed(&[n; 32]))
        .collect();
    let dids: Vec<_> = parties.iter().map(|p| p.did()).collect();
    let mut manifest = common::manifest_body(
        &organizer,
        "sum",
        json!({"parties": dids, "minParties": 2, "maxParties": 3}),
    );
    manifest["title"] = json!("cli");
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let out = run(
        dir,
        &[
            "session",
            "publish",
            "manifest.json",
            "--key",
            "org.json",
            "--broker",
            &url,
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = json_of(&out)["session"].as_str().unwrap().to_owned();
    let out = run(
        dir,
        &[
            "session",
            "show",
            &id,
            "--broker",
            &url,
            "--organizer",
            organizer.did().as_str(),
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["state"], "open");
    // Expecting another organizer is a checked failure (exit 1), naming the phase.
    let other = identity::Keypair::from_seed(&[9; 32]).did();
    let out = run(
        dir,
        &[
            "session",
            "show",
            &id,
            "--broker",
            &url,
            "--organizer",
            other.as_str(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check manifest"));
    // Sealing needs minParties.
    let out = run(
        dir,
        &[
            "session", "seal", &id, "--key", "org.json", "--broker", &url,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too_few_parties"));
    let client = node::client::BrokerClient::connect(&url).await.unwrap();
    for p in &parties[..2] {
        client.join(&id, p, &[]).await.unwrap();
    }
    let out = run(
        dir,
        &[
            "session", "seal", &id, "--key", "org.json", "--broker", &url,
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["members"].as_array().unwrap().len(), 2);
    // A broker that is not there: a clear failure, not a hang.
    let out = run(
        dir,
        &["session", "show", &id, "--broker", "http://127.0.0.1:9"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the broker"));
    broker.stop(false).await;
}
