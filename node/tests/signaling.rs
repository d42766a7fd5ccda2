//! The node's signaling client against a real broker WebSocket.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

mod common;

use identity::Keypair;
use node::client::BrokerClient;
use node::signaling::{self, Incoming, Signal};
use serde_json::json;

/// A client of `broker`, and a published session `id` that members `a` and `b` joined.
async fn two_member_session(
    broker: &broker::Running,
    organizer: &Keypair,
) -> (BrokerClient, String, Keypair, Keypair) {
    let client = BrokerClient::connect(&broker.url()).await.unwrap();
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let m = common::signed_manifest(
        organizer,
        "sum",
        json!({"parties": [a.did(), b.did()], "minParties": 2, "maxParties": 2}),
    );
    let tok = client.authenticate(organizer).await.unwrap();
    let id = client.publish(&tok, &m, None).await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    client.join(&id, &a, &[]).await.unwrap();
    client.join(&id, &b, &[]).await.unwrap();
    (client, id, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_exchange_signals_and_refusals_come_back() {
    let organizer = Keypair::from_seed(&[200; 32]);
    let broker = common::broker_for(&organizer).await;
    let (client, id, a, b) = two_member_session(&broker, &organizer).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_broker_socket_is_noticed_and_signaling_moves_to_the_next_replica() {
    let organizer = Keypair::from_seed(&[200; 32]);
    // The broker pings every 200 ms; a member 1 s without a frame has lost its socket.
    let broker = common::broker_with(&organizer, |c| {
        c.signal.ping_every = Duration::from_millis(200);
    })
    .await;
    let (client, id, a, b) = two_member_session(&broker, &organizer).await;
    let direct = client.signal_url(&id);
    let port = broker
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = common::proxy::FreezingProxy::start(port).await;
    let via_proxy = direct.replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
    assert_ne!(via_proxy, direct);
    let options = |token: String, urls: Vec<String>, peer: &Keypair| signaling::Options {
        urls,
        token,
        peers: vec![peer.did()],
        reconnect_within: Duration::from_secs(10),
        silence_timeout: Duration::from_secs(1),
    };
    // a reaches the broker through the proxy first, directly second (two "replicas").
    let mut sa = signaling::connect_with(options(
        client.authenticate(&a).await.unwrap(),
        vec![via_proxy, direct.clone()],
        &b,
    ))
    .await
    .unwrap();
    let sb = signaling::connect_with(options(
        client.authenticate(&b).await.unwrap(),
        vec![direct],
        &a,
    ))
    .await
    .unwrap();
    // Pings keep a healthy socket alive past the silence timeout: a is still on the proxy.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        proxy.live.load(Ordering::SeqCst),
        1,
        "a left a healthy socket"
    );
    proxy.freeze();
    sb.tx
        .send(Signal {
            kind: "offer".into(),
            peer: a.did(),
            payload: json!({"sdp": "v=0"}),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), sa.rx.recv())
        .await
        .expect("a never noticed its socket was dead")
        .unwrap();
    assert_eq!(
        got,
        Incoming::Signal(Signal {
            kind: "offer".into(),
            peer: b.did(),
            payload: json!({"sdp": "v=0"})
        })
    );
    drop(proxy);
    broker.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_message_over_the_limit_ends_the_socket_instead_of_being_buffered() {
    use futures_util::SinkExt as _;
    // A "broker" that accepts the socket and sends one 1 MiB text message.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/v1/sessions/s/signal",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let big = json!({"type": "offer", "from": "x", "payload": "y".repeat(1 << 20)});
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                big.to_string(),
            ))
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut s = signaling::connect(&url, "token").await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), s.rx.recv())
        .await
        .expect("the node neither refused nor delivered the message");
    assert_eq!(end, None, "the oversized message must not be delivered");
    server.abort();
}

/// Members a and b of a session on two replicas of one Redis-backed broker: a signals
/// through `ra` (where the session is published), b through `rb`; both reconnect and resync
/// as `mpc-node join` does. [`TwoReplicas::connect`] returns once a's message 0 reached b.
struct TwoReplicas {
    sa: signaling::Signaling,
    sb: signaling::Signaling,
    a: Keypair,
    b: Keypair,
}

/// Within this a message must cross (covers a subscription check of 5 s plus the 2 s command
/// timeout, and the reconnects after it, with room to spare).
const CROSSING: Duration = Duration::from_secs(20);

impl TwoReplicas {
    async fn connect(ra: &broker::Running, rb: &broker::Running, organizer: &Keypair) -> Self {
        let (client, id, a, b) = two_member_session(ra, organizer).await;
        let on_b = BrokerClient::connect(&rb.url()).await.unwrap();
        let options = |token: String, url: String, peer: &Keypair| signaling::Options {
            urls: vec![url],
            token,
            peers: vec![peer.did()],
            reconnect_within: Duration::from_secs(30),
            silence_timeout: signaling::SILENCE_TIMEOUT,
        };
        let sa = signaling::connect_with(options(
            client.authenticate(&a).await.unwrap(),
            client.signal_url(&id),
            &b,
        ))
        .await
        .unwrap();
        let sb = signaling::connect_with(options(
            on_b.authenticate(&b).await.unwrap(),
            on_b.signal_url(&id),
            &a,
        ))
        .await
        .unwrap();
        let mut two = TwoReplicas { sa, sb, a, b };
        two.send(0).await;
        assert_eq!(two.received(CROSSING).await, Some(two.offer_seen_by_b(0)));
        two
    }

    /// a sends b offer number `n`.
    async fn send(&self, n: u32) {
        let offer = Signal {
            kind: "offer".into(),
            peer: self.b.did(),
            payload: json!({ "n": n }),
        };
        self.sa.tx.send(offer).await.unwrap();
    }

    /// What b receives next, if anything within `within`.
    async fn received(&mut self, within: Duration) -> Option<Incoming> {
        tokio::time::timeout(within, self.sb.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Offer number `n` as b sees it.
    fn offer_seen_by_b(&self, n: u32) -> Incoming {
        Incoming::Signal(Signal {
            kind: "offer".into(),
            peer: self.a.did(),
            payload: json!({ "n": n }),
        })
    }
}

fn redis_store(url: String) -> broker::StoreConfig {
    broker::StoreConfig::Redis {
        url,
        prefix: "n:".into(),
    }
}

/// Two replicas on one Redis; a on replica A, b on replica B, which reaches Redis through a
/// proxy. B's inbox subscription goes silent (its connection frozen, as when a network path
/// dies without a reset), so a message a sends to b is published into the dead connection and
/// lost. B notices with its subscription check, subscribes again and closes b with 1012; b's
/// node reconnects and asks a to resync, and a's resend brings b the message after all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_with_a_replicas_silent_inbox_arrives_after_the_resync() {
    let organizer = Keypair::from_seed(&[200; 32]);
    let redis = common::redis::RedisServer::start();
    let proxy = common::proxy::FreezingProxy::start(redis.port).await;
    let ra = common::broker_with(&organizer, |c| c.store = redis_store(redis.url())).await;
    // B's first connection to Redis is its command connection, the second its inbox.
    let via_proxy = format!("redis://127.0.0.1:{}/", proxy.port);
    let rb = common::broker_with(&organizer, |c| c.store = redis_store(via_proxy)).await;
    let mut two = TwoReplicas::connect(&ra, &rb, &organizer).await;
    proxy.freeze_only(1);
    two.send(1).await;
    let got = two.received(CROSSING).await;
    assert_eq!(
        got,
        Some(two.offer_seen_by_b(1)),
        "the lost message never arrived"
    );
    drop(proxy);
    rb.stop(false).await;
    ra.stop(false).await;
}

/// Two replicas on one Redis; a on replica A, b on replica B. Redis refuses PUBLISH for a
/// moment, so A's store does not take a's message to b: the broker refuses
/// it with `store_unavailable` and the message's id, and a's node sends it again with a
/// doubling pause until the store takes it. b gets it once, and a never sees the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_store_did_not_take_is_sent_again_until_it_does() {
    let organizer = Keypair::from_seed(&[200; 32]);
    let redis = common::redis::RedisServer::start();
    let ra = common::broker_with(&organizer, |c| c.store = redis_store(redis.url())).await;
    let rb = common::broker_with(&organizer, |c| c.store = redis_store(redis.url())).await;
    let mut two = TwoReplicas::connect(&ra, &rb, &organizer).await;
    // Redis refuses PUBLISH (an ACL change), so the store's send script fails.
    assert_eq!(redis.command("ACL SETUSER default -publish"), "+OK");
    two.send(1).await;
    // Refused at least once (and sent again) before the store takes messages again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(redis.command("ACL SETUSER default +publish"), "+OK");
    let got = two.received(CROSSING).await;
    assert_eq!(
        got,
        Some(two.offer_seen_by_b(1)),
        "the refused message was not sent again"
    );
    // a's node kept the refusal to itself: it was dealt with.
    assert!(two.sa.rx.try_recv().is_err());
    rb.stop(false).await;
    ra.stop(false).await;
}
