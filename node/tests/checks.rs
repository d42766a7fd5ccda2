//! The node's own checks against a real broker (in-process, real HTTP), and
//! against a broker that lies: forged roster entries, replayed evidence, a
//! foreign manifest, a roster signed by someone else.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use identity::{format_timestamp, CredentialRequest, Cryptosuite, Did, Keypair};
use node::checks::{check_publication, check_roster, CheckError};
use node::client::BrokerClient;
use serde_json::{json, Value};

mod common;

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

fn now() -> SystemTime {
    SystemTime::now()
}

struct World {
    broker: broker::Running,
    client: BrokerClient,
    organizer: Keypair,
    issuer: Keypair,
}

async fn world() -> World {
    let organizer = key(200);
    let config = broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        organizers: broker::OrganizerPolicy {
            trusted: vec![organizer.did()],
            ..Default::default()
        },
        ..Default::default()
    };
    let broker = broker::Broker::new(config)
        .with_key(key(250))
        .start()
        .await
        .unwrap();
    let client = BrokerClient::connect(&broker.url()).await.unwrap();
    World {
        broker,
        client,
        organizer,
        issuer: key(201),
    }
}

impl World {
    fn credential(&self, subject: &Did, org: &str) -> Value {
        let claims = json!({"organization": org}).as_object().unwrap().clone();
        identity::issue_credential(
            &self.issuer,
            &CredentialRequest {
                id: None,
                subject: subject.clone(),
                types: vec!["MpcParticipantCredential".into()],
                claims,
                valid_from: now() - Duration::from_secs(60),
                valid_until: None,
                suite: Cryptosuite::EddsaJcs2022,
                created: now() - Duration::from_secs(60),
            },
        )
        .unwrap()
    }

    async fn session(&self, n: usize) -> (String, Vec<Keypair>) {
        let body = json!({
            "type": "MpcSessionManifest",
            "title": "checks",
            "organizer": self.organizer.did(),
            "computation": {"program": "sum"},
            "admission": {"credentialType": "MpcParticipantCredential", "trustedIssuers": [self.issuer.did()],
                          "requiredClaims": {"organization": "Org A"}, "minParties": n, "maxParties": n},
            "threshold": (n - 1) / 2,
            "joinDeadline": format_timestamp(now() + Duration::from_secs(600)),
            "expires": format_timestamp(now() + Duration::from_secs(1200)),
        });
        let m = identity::statement::sign(
            &self.organizer,
            "MpcSessionManifest",
            body.as_object().unwrap(),
            now(),
        )
        .unwrap();
        let tok = self.client.authenticate(&self.organizer).await.unwrap();
        let p = self.client.publish(&tok, &m, None).await.unwrap();
        let id = p["session"].as_str().unwrap().to_owned();
        let parties: Vec<Keypair> = (0..n).map(|i| key(10 + i as u8)).collect();
        (id, parties)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_broker_passes_every_check() {
    let w = world().await;
    let (id, parties) = w.session(3).await;
    for p in &parties {
        w.client
            .join(&id, p, &[w.credential(&p.did(), "Org A")])
            .await
            .unwrap();
    }
    let s = w.client.session(&id).await.unwrap();
    let checked =
        check_publication(&s["publication"], &id, Some(&w.organizer.did()), now()).unwrap();
    assert_eq!(checked.broker, w.client.info().did);
    let roster = w.client.roster(&id, Duration::from_secs(5)).await.unwrap();
    let r = check_roster(&roster, &checked, &parties[1].did(), now()).unwrap();
    assert_eq!(r.members.len(), 3);
    assert_eq!(r.members[r.me].did, parties[1].did());
    assert_eq!(r.hash, identity::session::document_hash(&roster));
    w.broker.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_broker_is_caught() {
    let w = world().await;
    let broker_key = key(250);
    let (id, parties) = w.session(2).await;
    for p in &parties {
        w.client
            .join(&id, p, &[w.credential(&p.did(), "Org A")])
            .await
            .unwrap();
    }
    let s = w.client.session(&id).await.unwrap();
    let checked =
        check_publication(&s["publication"], &id, Some(&w.organizer.did()), now()).unwrap();
    let roster = w.client.roster(&id, Duration::from_secs(5)).await.unwrap();
    let resign = |mut body: Value| {
        body.as_object_mut().unwrap().remove("proof");
        identity::statement::sign(
            &broker_key,
            "MpcSessionRoster",
            body.as_object().unwrap(),
            now(),
        )
        .unwrap()
    };

    // A party the policy does not admit (credential from an untrusted issuer),
    // slipped in by the broker with a presentation that is otherwise perfect.
    let mallory = key(66);
    let rogue_vc = identity::issue_credential(
        &key(99),
        &CredentialRequest {
            id: None,
            subject: mallory.did(),
            types: vec!["MpcParticipantCredential".into()],
            claims: json!({"organization": "Org A"})
                .as_object()
                .unwrap()
                .clone(),
            valid_from: now() - Duration::from_secs(60),
            valid_until: None,
            suite: Cryptosuite::EddsaJcs2022,
            created: now(),
        },
    )
    .unwrap();
    let vp = identity::present(
        &mallory,
        &[rogue_vc],
        &identity::PresentationRequest {
            challenge: format!("join/{id}:9999999999:AAAAAAAAAAAAAAAAAAAAAAAA"),
            domain: checked.domain.clone(),
            suite: Cryptosuite::EddsaJcs2022,
            created: now(),
        },
    )
    .unwrap();
    let mut forged = roster.clone();
    forged["members"][1]["did"] = json!(mallory.did());
    forged["members"][1]["evidence"] = vp;
    let err = check_roster(&resign(forged), &checked, &parties[0].did(), now()).unwrap_err();
    assert!(
        matches!(&err, CheckError::Evidence { index: 1, reason, .. } if reason.contains("admission policy")),
        "{err}"
    );

    // Evidence replayed from another session.
    let (other, _) = w.session(2).await;
    let old_vp = identity::present(
        &parties[1],
        &[w.credential(&parties[1].did(), "Org A")],
        &identity::PresentationRequest {
            challenge: format!("join/{other}:9999999999:AAAAAAAAAAAAAAAAAAAAAAAA"),
            domain: checked.domain.clone(),
            suite: Cryptosuite::EddsaJcs2022,
            created: now(),
        },
    )
    .unwrap();
    let mut replayed = roster.clone();
    replayed["members"][1]["evidence"] = old_vp;
    let err = check_roster(&resign(replayed), &checked, &parties[0].did(), now()).unwrap_err();
    assert!(
        matches!(&err, CheckError::Evidence { index: 1, reason, .. } if reason.contains("replayed")),
        "{err}"
    );

    // A roster signed by another key, and one for another manifest.
    let mut body = roster.clone();
    body.as_object_mut().unwrap().remove("proof");
    let by_other = identity::statement::sign(
        &key(251),
        "MpcSessionRoster",
        body.as_object().unwrap(),
        now(),
    )
    .unwrap();
    assert!(matches!(
        check_roster(&by_other, &checked, &parties[0].did(), now()),
        Err(CheckError::Roster(_))
    ));
    let mut other_manifest = roster.clone();
    other_manifest["manifestHash"] = json!("00".repeat(32));
    assert!(matches!(
        check_roster(&resign(other_manifest), &checked, &parties[0].did(), now()),
        Err(CheckError::Roster(_))
    ));

    // Not on it.
    assert!(matches!(
        check_roster(&roster, &checked, &key(77).did(), now()),
        Err(CheckError::NotOnRoster(_))
    ));

    // A publication for a manifest by an organizer the party does not expect.
    let err = check_publication(&s["publication"], &id, Some(&key(5).did()), now()).unwrap_err();
    assert!(matches!(err, CheckError::WrongOrganizer { .. }), "{err}");
    // …or presented under another session id, or after expiry.
    assert!(matches!(
        check_publication(&s["publication"], "another-session", None, now()),
        Err(CheckError::Publication(_))
    ));
    let later = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    assert!(matches!(
        check_publication(&s["publication"], &id, None, later),
        Err(CheckError::Expired(_))
    ));
    w.broker.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_streams_an_endless_body_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A "broker" that answers every request with 48 MiB of JSON whitespace.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let len = 48 << 20;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 << 10];
                for _ in 0..len / chunk.len() {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let err = tokio::time::timeout(Duration::from_secs(30), BrokerClient::connect(&url))
        .await
        .expect("the client gives up by itself")
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    server.abort();
}
