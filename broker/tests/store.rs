//! One suite, two stores: the in-memory default and a real `redis-server`
//! must behave the same for everything the broker relies on.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use broker::{MemoryStore, RedisStore, SessionStore, StoreError};
use common::{RedisServer, StoreKind};

async fn store(kind: StoreKind) -> (Arc<dyn SessionStore>, Option<RedisServer>) {
    match kind {
        StoreKind::Memory => (Arc::new(MemoryStore::new(1000)), None),
        StoreKind::Redis => {
            let r = RedisServer::start();
            let s = RedisStore::connect(&r.url(), "t:", Duration::from_secs(2))
                .await
                .unwrap();
            (Arc::new(s), Some(r))
        }
    }
}

on_both_stores!(
    a_challenge_is_taken_exactly_once_under_concurrency,
    challenges_and_sessions_expire,
    session_ids_are_not_overwritten,
    compare_and_swap_loses_no_concurrent_update,
);

async fn a_challenge_is_taken_exactly_once_under_concurrency(kind: StoreKind) {
    let (s, _r) = store(kind).await;
    s.put_challenge("c1", Duration::from_secs(60))
        .await
        .unwrap();
    let takers: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take_challenge("c1").await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in takers {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(!s.take_challenge("never-issued").await.unwrap());
}

async fn challenges_and_sessions_expire(kind: StoreKind) {
    let (s, _r) = store(kind).await;
    s.put_challenge("short", Duration::from_millis(100))
        .await
        .unwrap();
    s.put_challenge("long", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s
        .create_session("sess", "v", Duration::from_millis(100))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!s.take_challenge("short").await.unwrap());
    assert!(s.take_challenge("long").await.unwrap());
    assert_eq!(s.get_session("sess").await.unwrap(), None);
}

async fn session_ids_are_not_overwritten(kind: StoreKind) {
    let (s, _r) = store(kind).await;
    let ttl = Duration::from_secs(60);
    assert!(s.create_session("id1", "first", ttl).await.unwrap());
    assert!(!s.create_session("id1", "second", ttl).await.unwrap());
    assert_eq!(s.get_session("id1").await.unwrap().unwrap().value, "first");
    assert_eq!(s.get_session("id2").await.unwrap(), None);
}

async fn compare_and_swap_loses_no_concurrent_update(kind: StoreKind) {
    let (s, _r) = store(kind).await;
    let ttl = Duration::from_secs(60);
    assert!(s.create_session("ctr", "0", ttl).await.unwrap());
    let stale = s.get_session("ctr").await.unwrap().unwrap();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let cur = s.get_session("ctr").await.unwrap().unwrap();
                        let next = (cur.value.parse::<u32>().unwrap() + 1).to_string();
                        if s.replace_session("ctr", &cur, &next, ttl).await.unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(s.get_session("ctr").await.unwrap().unwrap().value, "80");
    assert!(!s.replace_session("ctr", &stale, "999", ttl).await.unwrap());
    assert!(!s
        .replace_session("missing", &stale, "1", ttl)
        .await
        .unwrap());
}

#[tokio::test]
async fn the_memory_store_is_bounded() {
    let s = MemoryStore::new(3);
    for i in 0..3 {
        s.put_challenge(&format!("c{i}"), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let err = s
        .put_challenge("c3", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Full(3)), "{err}");
    assert!(s.take_challenge("c0").await.unwrap());
    s.put_challenge("c3", Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_redis_store_bounds_challenges_per_challenge_lifetime() {
    let r = RedisServer::start();
    let s = RedisStore::connect(&r.url(), "t:", Duration::from_secs(2))
        .await
        .unwrap()
        .with_max_challenges(3);
    let ttl = Duration::from_millis(400);
    for i in 0..3 {
        s.put_challenge(&format!("c{i}"), ttl).await.unwrap();
    }
    let err = s.put_challenge("c3", ttl).await.unwrap_err();
    assert!(matches!(err, StoreError::Full(3)), "{err}");
    // A refused challenge was not stored; the issued ones still work once.
    assert!(!s.take_challenge("c3").await.unwrap());
    assert!(s.take_challenge("c0").await.unwrap());
    // The window ends with one challenge lifetime; then challenges are issued again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.put_challenge("c4", ttl).await.unwrap();
    assert!(s.take_challenge("c4").await.unwrap());
}

#[tokio::test]
async fn unreachable_redis_is_an_error_within_the_timeout_not_a_hang() {
    let port = common::free_port();
    let started = std::time::Instant::now();
    let r = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/"),
        "t:",
        Duration::from_secs(1),
    )
    .await;
    assert!(r.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    let e = broker::Broker::new(broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: broker::StoreConfig::Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            prefix: "t:".into(),
        },
        ..Default::default()
    })
    .start()
    .await
    .unwrap_err();
    assert!(
        broker::error_chain(&e).contains("unreachable"),
        "{}",
        broker::error_chain(&e)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_redis_dies_answers_503_problems() {
    let env = common::Env::start(StoreKind::Redis).await;
    assert_eq!(env.get("/healthz", None).await.0, 200);
    let mut env = env;
    drop(env.redis.take());
    let got = env.get("/healthz", None).await;
    common::assert_problem(&got, 503, "store_unavailable");
    let got = env
        .post("/v1/auth/challenge", &serde_json::json!({}), None)
        .await;
    common::assert_problem(&got, 503, "store_unavailable");
    env.stop().await;
}

/// The bus's routing rules on a real Redis: a claim whose inbox nobody reads
/// is dropped and the message waits; `keep` never publishes and leaves
/// claims alone; the pending list is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signal_bus_buffers_for_stale_claims_and_bounds_what_it_keeps() {
    use broker::store::{BusDelivery, BusLimits, SendMode};
    let (s, _redis) = store(StoreKind::Redis).await;
    let bus = s
        .bus(BusLimits {
            pending: 2,
            pending_ttl: Duration::from_secs(30),
            presence_ttl: Duration::from_secs(30),
        })
        .unwrap();
    let now = std::time::SystemTime::now();
    // r1 claims b; nobody reads r1's inbox (r1 died): a send buffers.
    bus.attach("r1", "s", "b", now).await.unwrap();
    assert_eq!(
        bus.send("s", "b", "m1", now, SendMode::Route)
            .await
            .unwrap(),
        BusDelivery::Buffered
    );
    // b connects to r2: it gets the message; the dead claim was dropped.
    let found = bus.attach("r2", "s", "b", now).await.unwrap();
    assert_eq!(
        (found.previous, found.pending),
        (None, vec!["m1".to_owned()])
    );
    // r1 keeps a late message for b: buffered, r2's claim untouched.
    assert_eq!(
        bus.send("s", "b", "m2", now, SendMode::Keep).await.unwrap(),
        BusDelivery::Buffered
    );
    assert_eq!(
        bus.send("s", "b", "m3", now, SendMode::Keep).await.unwrap(),
        BusDelivery::Buffered
    );
    assert_eq!(
        bus.send("s", "b", "m4", now, SendMode::Keep).await.unwrap(),
        BusDelivery::BufferFull
    );
    let found = bus.attach("r3", "s", "b", now).await.unwrap();
    assert_eq!(found.previous.as_deref(), Some("r2"));
    assert_eq!(found.pending, vec!["m2".to_owned(), "m3".to_owned()]);
    // A refresh keeps r3's claim, restores it when it vanished, and never
    // takes over another replica's.
    let members = vec![("s".to_owned(), "b".to_owned())];
    bus.refresh("r3", &members).await.unwrap();
    bus.detach("r3", "s", "b").await.unwrap();
    bus.refresh("r3", &members).await.unwrap();
    let found = bus.attach("r4", "s", "b", now).await.unwrap();
    assert_eq!(
        found.previous.as_deref(),
        Some("r3"),
        "the refresh restored r3's claim"
    );
    bus.refresh("r3", &members).await.unwrap();
    let found = bus.attach("r3", "s", "b", now).await.unwrap();
    assert_eq!(
        found.previous.as_deref(),
        Some("r4"),
        "r3 did not take over r4's claim"
    );
    // Nobody reads r3's inbox here: a send finds the claim dead and buffers.
    assert_eq!(
        bus.send("s", "b", "m5", now, SendMode::Route)
            .await
            .unwrap(),
        BusDelivery::Buffered
    );
    // The in-memory store has no bus: its process is the only replica.
    assert!(MemoryStore::new(10)
        .bus(BusLimits {
            pending: 1,
            pending_ttl: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(1),
        })
        .is_none());
}

/// A replica's inbox subscription whose Redis host vanished without a reset (the TCP
/// connection stays open and silent) is noticed by its check, subscribed again, and the
/// replica told to reclaim its members; messages flow again after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_subscription_is_noticed_and_subscribed_again() {
    use broker::store::{BusDelivery, BusEvent, BusLimits, SendMode};
    let redis = RedisServer::start();
    let proxy = common::proxy::FreezingProxy::start(redis.port).await;
    let limits = BusLimits {
        pending: 4,
        pending_ttl: Duration::from_secs(30),
        presence_ttl: Duration::from_secs(30),
    };
    // The listening replica reaches Redis through the proxy; the sender directly.
    let listening = RedisStore::connect(
        &format!("redis://127.0.0.1:{}/", proxy.port),
        "t:",
        Duration::from_millis(500),
    )
    .await
    .unwrap()
    .with_subscription_check(Duration::from_millis(300));
    let sending = RedisStore::connect(&redis.url(), "t:", Duration::from_secs(2))
        .await
        .unwrap();
    let (listen_bus, send_bus) = (listening.bus(limits).unwrap(), sending.bus(limits).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let deliver: broker::store::Deliver = Arc::new(move |e| tx.try_send(e).is_ok());
    let listener = listen_bus.listen("r1", deliver).await.unwrap();
    let now = std::time::SystemTime::now();
    send_bus.attach("r1", "s", "b", now).await.unwrap();
    let message = |m: &str| BusEvent::Message {
        session: "s".into(),
        to: "b".into(),
        msg: m.into(),
    };
    let send = |m: &'static str| send_bus.send("s", "b", m, now, SendMode::Route);
    assert_eq!(send("m1").await.unwrap(), BusDelivery::Published);
    assert_eq!(next(&mut rx).await, Some(message("m1")));
    // Quiet for several checks: a healthy subscription is kept.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        rx.try_recv().is_err(),
        "a healthy subscription was replaced"
    );
    proxy.freeze_current();
    // Noticed within one check interval plus the command timeout.
    assert_eq!(
        next(&mut rx).await,
        Some(BusEvent::Resubscribed),
        "the silent subscription was not noticed"
    );
    assert_eq!(send("m2").await.unwrap(), BusDelivery::Published);
    assert_eq!(next(&mut rx).await, Some(message("m2")));
    listener.abort();
}

async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<broker::store::BusEvent>,
) -> Option<broker::store::BusEvent> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
}
