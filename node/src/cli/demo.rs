//! `mpc-node demo`: a whole session on one machine.
//!
//! An in-process broker (in-memory store) on a loopback port, an organizer,
//! a credential issuer and N parties, each with its own key and credential.
//! The organizer publishes a manifest admitting holders of the issuer's
//! `MpcParticipantCredential`; every party runs the same [`join`] a real
//! `mpc-node join` runs — over real HTTP, WebSocket and WebRTC on loopback —
//! and the program's outputs are printed.

use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use identity::{format_timestamp, CredentialRequest, Cryptosuite, Keypair};
use serde_json::{json, Value};

use super::progress::{Reporter, Style};
use super::{CliError, Outcome};
use crate::client::BrokerClient;
use crate::join::{join, JoinRequest};
use crate::mesh::MeshConfig;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of parties (2 to 10).
    #[arg(long, default_value_t = 3)]
    parties: usize,
    /// Program: secret-santa, sum, stats, millionaires, sort, inner-product.
    #[arg(long, default_value = "secret-santa")]
    program: String,
    /// Machine-readable progress (JSON lines on stderr).
    #[arg(long)]
    json: bool,
}

const NAMES: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

fn inputs_for(program: &str, rng: &mut impl rand::Rng) -> Vec<i64> {
    match program {
        "secret-santa" => vec![],
        "inner-product" => vec![rng.gen_range(0..10), rng.gen_range(0..10)],
        _ => vec![rng.gen_range(0..1000)],
    }
}

fn fail(phase: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::Invalid {
        report: json!({"phase": phase, "error": e.to_string()}),
        reason: format!("{phase}: {e}"),
    }
}

pub(crate) fn run(a: DemoArgs) -> Result<Outcome, CliError> {
    if !(2..=10).contains(&a.parties) {
        return Err(CliError::Input(format!(
            "--parties must be 2 to 10, not {}",
            a.parties
        )));
    }
    mpc_core::Program::from_name(&a.program, &Value::Null)
        .map_err(|e| CliError::Input(e.to_string()))?;
    super::runtime()?.block_on(demo(a))
}

async fn demo(a: DemoArgs) -> Result<Outcome, CliError> {
    let style = Style::detect(a.json);
    let started = Instant::now();
    let mut rng = rand::rngs::OsRng;
    let organizer = Keypair::generate(&mut rng);
    let issuer = Keypair::generate(&mut rng);
    let parties: Vec<Keypair> = (0..a.parties)
        .map(|_| Keypair::generate(&mut rng))
        .collect();
    let say = |line: String| {
        if style != Style::Json {
            eprintln!("{line}");
        }
    };

    let broker = match broker::Broker::new(broker::BrokerConfig {
        listen: "127.0.0.1:0"
            .parse()
            .map_err(|_| CliError::Input("bad listen address".into()))?,
        workers: 2,
        organizers: broker::OrganizerPolicy {
            trusted: vec![organizer.did()],
            ..Default::default()
        },
        ..Default::default()
    })
    .start()
    .await
    {
        Ok(b) => b,
        Err(e) => return Ok(fail("broker", broker::error_chain(&e))),
    };
    say(format!("broker     {} at {}", broker.did(), broker.url()));
    say(format!("organizer  {}", organizer.did()));
    say(format!("issuer     {}", issuer.did()));

    let now = SystemTime::now();
    let mut credentials = Vec::new();
    for (i, p) in parties.iter().enumerate() {
        let claims =
            json!({"organization": format!("Demo University {}", i + 1), "role": "researcher"});
        let vc = identity::issue_credential(
            &issuer,
            &CredentialRequest {
                id: None,
                subject: p.did(),
                types: vec!["MpcParticipantCredential".into()],
                claims: claims.as_object().cloned().unwrap_or_default(),
                valid_from: now - Duration::from_secs(60),
                valid_until: Some(now + Duration::from_secs(86_400)),
                suite: Cryptosuite::EddsaJcs2022,
                created: now,
            },
        )
        .map_err(|e| CliError::Input(format!("cannot issue a credential: {e}")))?;
        credentials.push(vc);
        say(format!(
            "{:<10} {}  (credential from the issuer)",
            NAMES[i],
            p.did()
        ));
    }

    let n = a.parties;
    let body = json!({
        "type": "MpcSessionManifest",
        "title": format!("{} among {n} parties (demo)", a.program),
        "organizer": organizer.did(),
        "computation": {"program": a.program, "params": {}},
        "admission": {
            "credentialType": "MpcParticipantCredential",
            "trustedIssuers": [issuer.did()],
            "minParties": n,
            "maxParties": n,
        },
        "threshold": (n - 1) / 2,
        "joinDeadline": format_timestamp(now + Duration::from_secs(300)),
        "expires": format_timestamp(now + Duration::from_secs(900)),
    });
    let client = match BrokerClient::connect(&broker.url()).await {
        Ok(c) => c,
        Err(e) => return Ok(fail("connect", super::error_chain(&e))),
    };
    let signed = super::session::sign_manifest(&body, &organizer)?;
    let publication = match client.authenticate(&organizer).await {
        Ok(token) => client.publish(&token, &signed, None).await,
        Err(e) => Err(e),
    };
    let id = match publication {
        Ok(p) => p["session"].as_str().unwrap_or_default().to_owned(),
        Err(e) => return Ok(fail("publish", super::error_chain(&e))),
    };
    say(format!(
        "session    {id}: \"{}\"",
        body["title"].as_str().unwrap_or_default()
    ));

    let mut tasks = Vec::new();
    for (i, (key, vc)) in parties.into_iter().zip(credentials).enumerate() {
        let inputs = inputs_for(&a.program, &mut rng);
        let req = JoinRequest {
            brokers: vec![broker.url()],
            session: id.clone(),
            key,
            credentials: vec![vc],
            organizer: Some(organizer.did()),
            inputs: inputs.clone(),
            roster_wait: Duration::from_secs(60),
            mesh: MeshConfig {
                udp_addrs: vec!["127.0.0.1:0".into()],
                ..MeshConfig::default()
            },
        };
        tasks.push(tokio::spawn(async move {
            let mut progress = Reporter {
                style,
                label: format!("{:<6}", NAMES[i]),
            };
            (i, inputs, join(req, &mut progress).await)
        }));
    }
    let mut results = Vec::new();
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok((i, inputs, Ok(report))) => results.push((i, inputs, report)),
            Ok((i, _, Err(e))) => {
                failure.get_or_insert(format!("{}: {e}", NAMES[i]));
            }
            Err(e) => {
                failure.get_or_insert(format!("a party task failed: {e}"));
            }
        }
    }
    broker.stop(true).await;
    if let Some(f) = failure {
        return Ok(Outcome::Invalid {
            report: json!({"session": id, "error": f}),
            reason: f,
        });
    }
    results.sort_by_key(|r| r.2.index);
    let total = started.elapsed();
    say(String::new());
    for (i, inputs, r) in &results {
        let shown = if inputs.is_empty() {
            String::new()
        } else {
            format!(" with input {inputs:?}")
        };
        say(format!(
            "{} (party #{}){shown}: {}",
            NAMES[*i], r.index, r.output
        ));
    }
    say(format!("done in {:.2} s", total.as_secs_f64()));
    Ok(Outcome::Done(json!({
        "session": id,
        "program": a.program,
        "parties": results.iter().map(|(i, inputs, r)| json!({
            "name": NAMES[*i],
            "index": r.index,
            "did": r.parties.get(r.index),
            "inputs": inputs,
            "output": r.output,
            "timingsMs": r.timings.iter().map(|(p, ms)| (p.to_string(), json!(ms))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "totalMs": total.as_millis(),
    })))
}
