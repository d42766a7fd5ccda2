//! Several broker replicas sharing one real `redis-server`: any replica
//! serves any request, challenges are single use across all of them, and
//! signaling between members on different replicas keeps every guarantee
//! of one replica (membership, `from` stamping, order per sender, buffering
//! for absent members, replacement) — also when a replica goes away or
//! Redis restarts.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::ws::{closed, member, next, send};
use common::{assert_problem, key, Env, RedisServer};
use identity::Keypair;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn two_replicas() -> (Env, Env) {
    let a = Env::start_on(Some(RedisServer::start()), |_| {}).await;
    let b = a.replica().await;
    assert_ne!(a.url, b.url);
    assert_eq!(
        a.broker_did, b.broker_did,
        "replicas are one broker identity"
    );
    (a, b)
}

/// Connects `a` to `ra` and `b` to `rb`, and checks that a message from a reaches b.
async fn a_message_crosses(ra: &Env, rb: &Env, id: &str, a: &Keypair, b: &Keypair) {
    let mut wa = member(ra, id, a).await;
    let mut wb = member(rb, id, b).await;
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"after": "restart"}}),
    )
    .await;
    assert_eq!(next(&mut wb).await["payload"], json!({"after": "restart"}));
}

/// Waits (bounded) until every replica answers `/healthz` with 200.
async fn wait_until_healthy(replicas: &[&Env]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for env in replicas {
        while env.get("/healthz", None).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the broker did not recover from the Redis restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (bounded) until exactly `n` replica inboxes are subscribed in `env`'s Redis.
async fn wait_for_inboxes(env: &Env, n: usize) {
    let url = env.redis.as_ref().unwrap().url();
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let inboxes: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("test:inbox:*")
            .query_async(&mut redis)
            .await
            .unwrap();
        if inboxes.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} inboxes subscribed, not {n}: {inboxes:?}",
            inboxes.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_from_one_replica_is_consumed_exactly_once_across_all() {
    let (ra, rb) = two_replicas().await;
    let who = key(1);
    let c = ra.challenge(None).await;
    let vp = ra.presentation(&who, &[], &c, &ra.domain);
    let (status, v) = rb.post("/v1/auth/token", &vp, None).await;
    assert_eq!(status, 200, "a challenge from A is good at B: {v}");
    let again = ra.post("/v1/auth/token", &vp, None).await;
    assert_problem(&again, 401, "challenge_replayed");
    let again = rb.post("/v1/auth/token", &vp, None).await;
    assert_problem(&again, 401, "challenge_replayed");
    rb.stop().await;
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_published_on_one_replica_is_joined_and_frozen_through_the_other() {
    let (ra, rb) = two_replicas().await;
    let (a, b) = (key(1), key(2));
    let id = ra
        .publish(
            ra.manifest(json!({"parties": [a.did(), b.did()], "minParties": 2, "maxParties": 2})),
        )
        .await;
    assert_eq!(rb.join(&id, &a, &[]).await.0, 200);
    // A long-poll on A sees the roster B freezes.
    let path = format!("/v1/sessions/{id}/roster?wait=20");
    let poll = ra.get(&path, None);
    let join = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rb.join(&id, &b, &[]).await
    };
    let (roster, joined) = tokio::join!(poll, join);
    assert_eq!(joined.0, 200, "{}", joined.1);
    assert_eq!(roster.0, 200, "{}", roster.1);
    assert_eq!(roster.1["members"].as_array().unwrap().len(), 2);
    let (_, on_b) = rb.get(&format!("/v1/sessions/{id}/roster"), None).await;
    assert_eq!(on_b, roster.1, "both replicas serve the same signed roster");
    rb.stop().await;
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_different_replicas_relay_in_order_with_from_stamped() {
    let (ra, rb) = two_replicas().await;
    let (a, b, c) = (key(1), key(2), key(3));
    let (id, _) = ra.frozen_session(&[&a, &b, &c]).await;
    let mut wa = member(&ra, &id, &a).await;
    let mut wb = member(&rb, &id, &b).await;
    for n in 0..50 {
        send(
            &mut wa,
            json!({"type": "candidate", "to": b.did(), "payload": {"n": n}, "id": format!("m-{n}")}),
        )
        .await;
    }
    for n in 0..50 {
        let got = next(&mut wb).await;
        assert_eq!(
            got,
            json!({"type": "candidate", "from": a.did(), "to": b.did(), "payload": {"n": n}, "id": format!("m-{n}")})
        );
    }
    send(&mut wb, json!({"type": "answer", "to": a.did()})).await;
    assert_eq!(
        next(&mut wa).await,
        json!({"type": "answer", "from": b.did(), "to": a.did(), "payload": {}})
    );
    // The rules are the sender's replica's, whoever the recipient is with.
    send(
        &mut wb,
        json!({"type": "offer", "to": a.did(), "from": c.did()}),
    )
    .await;
    assert_eq!(next(&mut wb).await["code"], "spoofed_from");
    send(&mut wb, json!({"type": "offer", "to": key(9).did()})).await;
    assert_eq!(next(&mut wb).await["code"], "not_on_roster");
    let outsider = rb.token(&key(9)).await;
    let refused = common::ws::connect(&rb, &id, Some(&outsider)).await;
    assert!(refused.is_err(), "a non-member is refused on every replica");
    rb.stop().await;
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_a_member_no_replica_has_wait_in_redis_for_whichever_it_joins() {
    let (ra, rb) = two_replicas().await;
    let (a, b) = (key(1), key(2));
    let (id, _) = ra.frozen_session(&[&a, &b]).await;
    let mut wa = member(&ra, &id, &a).await;
    for n in 0..3 {
        send(
            &mut wa,
            json!({"type": "offer", "to": b.did(), "payload": {"n": n}}),
        )
        .await;
    }
    // Sent before b connects, from the other replica.
    let mut wb = member(&rb, &id, &b).await;
    for n in 0..3 {
        assert_eq!(next(&mut wb).await["payload"], json!({"n": n}));
    }
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"n": 3}}),
    )
    .await;
    assert_eq!(next(&mut wb).await["payload"], json!({"n": 3}));
    rb.stop().await;
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_on_another_replica_replaces_the_first() {
    let (ra, rb) = two_replicas().await;
    let (a, b) = (key(1), key(2));
    let (id, _) = ra.frozen_session(&[&a, &b]).await;
    let mut first = member(&ra, &id, &b).await;
    let mut second = member(&rb, &id, &b).await;
    assert_eq!(closed(&mut first).await, CloseCode::Policy);
    let mut wa = member(&ra, &id, &a).await;
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"x": 1}}),
    )
    .await;
    assert_eq!(next(&mut second).await["payload"], json!({"x": 1}));
    rb.stop().await;
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_replica_went_away_gets_its_messages_on_reconnect() {
    let (ra, rb) = two_replicas().await;
    let (a, b) = (key(1), key(2));
    let (id, _) = ra.frozen_session(&[&a, &b]).await;
    let wb = member(&rb, &id, &b).await;
    let mut wa = member(&ra, &id, &a).await;
    // B goes away without a word (its connections and its inbox with it),
    // perhaps before it could clear b's presence.
    rb.stop().await;
    drop(wb);
    // Redis notices B's inbox is gone once it has read the closed socket.
    wait_for_inboxes(&ra, 1).await;
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"lost": false}}),
    )
    .await;
    let mut wb = member(&ra, &id, &b).await;
    assert_eq!(next(&mut wb).await["payload"], json!({"lost": false}));
    ra.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_a_503_then_recovers_with_sessions_and_signaling_intact() {
    let ra = Env::start_on(Some(RedisServer::start_persistent()), |_| {}).await;
    let rb = ra.replica().await;
    let (a, b, c) = (key(1), key(2), key(3));
    let dids = [a.did(), b.did(), c.did()];
    let id = ra
        .publish(ra.manifest(json!({"parties": dids, "minParties": 3, "maxParties": 3})))
        .await;
    assert_eq!(ra.join(&id, &a, &[]).await.0, 200);
    // Kill Redis mid-session (SIGKILL: only what it already wrote survives).
    let mut ra = ra;
    let mut redis = ra.redis.take().unwrap();
    redis.kill();
    assert_problem(
        &ra.get(&format!("/v1/sessions/{id}"), None).await,
        503,
        "store_unavailable",
    );
    assert_problem(&rb.get("/healthz", None).await, 503, "store_unavailable");
    assert_problem(
        &rb.post(
            "/v1/auth/challenge",
            &json!({"purpose": "authenticate"}),
            None,
        )
        .await,
        503,
        "store_unavailable",
    );
    ra.redis = Some(redis.restart());
    // Both replicas recover by themselves (bounded wait).
    wait_until_healthy(&[&ra, &rb]).await;
    let (status, s) = rb.get(&format!("/v1/sessions/{id}"), None).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        s["joined"],
        json!(1),
        "the member admitted before the restart is still there: {s}"
    );
    assert_eq!(rb.join(&id, &b, &[]).await.0, 200);
    assert_eq!(ra.join(&id, &c, &[]).await.0, 200);
    let (status, roster) = rb.get(&format!("/v1/sessions/{id}/roster"), None).await;
    assert_eq!(status, 200, "{roster}");
    // Signaling across the replicas works again once the inboxes resubscribed (a member
    // connected before that is told to reconnect: see the next test).
    wait_for_inboxes(&ra, 2).await;
    a_message_crosses(&ra, &rb, &id, &a, &b).await;
    rb.stop().await;
    ra.stop().await;
}

/// A replica that lost its inbox (here: Redis restarted under it) cannot know which messages
/// for its members went with it: once subscribed again, it closes their connections with
/// 1012, so their nodes reconnect and ask their peers to resend; signaling works after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_losing_its_inbox_a_replica_tells_its_members_to_reconnect_and_resync() {
    let mut ra = Env::start_on(Some(RedisServer::start_persistent()), |_| {}).await;
    let rb = ra.replica().await;
    let (a, b) = (key(1), key(2));
    let (id, _) = ra.frozen_session(&[&a, &b]).await;
    let mut wa = member(&ra, &id, &a).await;
    let mut wb = member(&rb, &id, &b).await;
    let mut redis = ra.redis.take().unwrap();
    redis.kill();
    ra.redis = Some(redis.restart());
    assert_eq!(closed(&mut wa).await, CloseCode::Restart);
    assert_eq!(closed(&mut wb).await, CloseCode::Restart);
    // Each replica closed its members once its own inbox was back; wait for both (and for
    // their store connections) before reconnecting.
    wait_for_inboxes(&ra, 2).await;
    wait_until_healthy(&[&ra, &rb]).await;
    a_message_crosses(&ra, &rb, &id, &a, &b).await;
    rb.stop().await;
    ra.stop().await;
}
