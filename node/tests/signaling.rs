//! The node's signaling client against a real broker WebSocket.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use identity::Keypair;
use node::client::BrokerClient;
use node::signaling::{self, Incoming, Signal};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_exchange_signals_and_refusals_come_back() {
    let organizer = Keypair::from_seed(&[200; 32]);
    let broker = common::broker_for(&organizer).await;
    let client = BrokerClient::connect(&broker.url()).await.unwrap();
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let m = common::signed_manifest(
        &organizer,
        "sum",
        json!({"parties": [a.did(), b.did()], "minParties": 2, "maxParties": 2}),
    );
    let tok = client.authenticate(&organizer).await.unwrap();
    let id = client.publish(&tok, &m, None).await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    client.join(&id, &a, &[]).await.unwrap();
    client.join(&id, &b, &[]).await.unwrap();
    let url = client.signal_url(&id);
    let mut sa = signaling::connect(&url, &client.authenticate(&a).await.unwrap())
        .await
        .unwrap();
    let mut sb = signaling::connect(&url, &client.authenticate(&b).await.unwrap())
        .await
        .unwrap();
    sa.tx
        .send(Signal {
            kind: "offer".into(),
            peer: b.did(),
            payload: json!({"sdp": "v=0"}),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), sb.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Incoming::Signal(Signal {
            kind: "offer".into(),
            peer: a.did(),
            payload: json!({"sdp": "v=0"})
        })
    );
    sa.tx
        .send(Signal {
            kind: "offer".into(),
            peer: Keypair::from_seed(&[9; 32]).did(),
            payload: json!({}),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), sa.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(got, Incoming::Refused { ref code, .. } if code == "not_on_roster"),
        "{got:?}"
    );
    // An outsider is refused at the door with the broker's reason.
    let outsider = Keypair::from_seed(&[9; 32]);
    let err = signaling::connect(&url, &client.authenticate(&outsider).await.unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not on the roster"), "{err}");
    // When the broker goes away, the inbound channel ends instead of hanging.
    broker.stop(false).await;
    let end = tokio::time::timeout(Duration::from_secs(10), sb.rx.recv())
        .await
        .unwrap();
    assert_eq!(end, None);
}
