//! The signaling relay over real WebSockets: membership, `from` stamping,
//! buffering, replacement and every refusal.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::ws::{closed, connect, member, next, send, Ws, WAIT};
use common::{key, Env, StoreKind};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

on_both_stores!(members_relay_to_each_other_with_from_stamped_by_the_broker);

async fn members_relay_to_each_other_with_from_stamped_by_the_broker(kind: StoreKind) {
    let env = Env::start(kind).await;
    let (a, b, c) = (key(1), key(2), key(3));
    let (id, _) = env.frozen_session(&[&a, &b, &c]).await;
    let mut wa = member(&env, &id, &a).await;
    let mut wb = member(&env, &id, &b).await;
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"sdp": "v=0…"}}),
    )
    .await;
    let got = next(&mut wb).await;
    assert_eq!(
        got,
        json!({"type": "offer", "from": a.did(), "to": b.did(), "payload": {"sdp": "v=0…"}})
    );
    // Stating one's own DID as `from` is fine; the payload defaults to {}.
    send(
        &mut wb,
        json!({"type": "answer", "to": a.did(), "from": b.did()}),
    )
    .await;
    assert_eq!(
        next(&mut wa).await,
        json!({"type": "answer", "from": b.did(), "to": a.did(), "payload": {}})
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_from_non_members_and_bad_messages_get_error_frames() {
    let env = Env::start(StoreKind::Memory).await;
    let (a, b, c) = (key(1), key(2), key(3));
    let (id, _) = env.frozen_session(&[&a, &b, &c]).await;
    let mut wa = member(&env, &id, &a).await;
    let mut wb = member(&env, &id, &b).await;
    let expect_error = |v: Value, code: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["code"], code, "{v}");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    };
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "from": c.did(), "payload": {}, "id": "m1"}),
    )
    .await;
    let e = next(&mut wa).await;
    expect_error(e.clone(), "spoofed_from");
    assert_eq!(e["id"], "m1");
    send(
        &mut wa,
        json!({"type": "offer", "to": key(9).did(), "payload": {}}),
    )
    .await;
    expect_error(next(&mut wa).await, "not_on_roster");
    wa.send(Message::text("{this is not json")).await.unwrap();
    expect_error(next(&mut wa).await, "malformed_json");
    send(&mut wa, json!({"type": "takeover", "to": b.did()})).await;
    expect_error(next(&mut wa).await, "message_invalid");
    send(&mut wa, json!({"type": "offer", "to": a.did()})).await;
    expect_error(next(&mut wa).await, "message_to_self");
    wa.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    expect_error(next(&mut wa).await, "binary_not_supported");
    // None of the refused messages reached B: the first thing B sees is this.
    send(&mut wa, json!({"type": "bye", "to": b.did()})).await;
    assert_eq!(next(&mut wb).await["type"], "bye");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_roster_members_with_a_token_may_open_the_socket() {
    let env = Env::start(StoreKind::Memory).await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let status = |r: Result<Ws, WsError>| match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(status(connect(&env, &id, None).await), 401);
    assert_eq!(status(connect(&env, &id, Some("not.a.token")).await), 401);
    let outsider = env.token(&key(9)).await;
    assert_eq!(status(connect(&env, &id, Some(&outsider)).await), 403);
    // Before the roster freezes nobody may signal.
    let open = env
        .publish(
            env.manifest(json!({"parties": [a.did(), b.did()], "minParties": 2, "maxParties": 2})),
        )
        .await;
    let ta = env.token(&a).await;
    assert_eq!(status(connect(&env, &open, Some(&ta)).await), 409);
    // Browsers cannot set headers: the token may come as a query parameter.
    let url = format!(
        "{}/v1/sessions/{id}/signal?access_token={ta}",
        env.url.replace("http://", "ws://")
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_ok());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_a_member_not_yet_connected_are_delivered_when_it_connects() {
    let env = Env::start(StoreKind::Memory).await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let mut wa = member(&env, &id, &a).await;
    for i in 0..3 {
        send(
            &mut wa,
            json!({"type": "candidate", "to": b.did(), "payload": {"n": i}}),
        )
        .await;
    }
    // Round trip through A's socket so the three are relayed before B connects.
    send(&mut wa, json!({"type": "offer", "to": a.did()})).await;
    assert_eq!(next(&mut wa).await["code"], "message_to_self");
    let mut wb = member(&env, &id, &b).await;
    for i in 0..3 {
        assert_eq!(next(&mut wb).await["payload"]["n"], i);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_for_the_same_did_replaces_the_first() {
    let env = Env::start(StoreKind::Memory).await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let mut first = member(&env, &id, &b).await;
    let mut second = member(&env, &id, &b).await;
    assert_eq!(closed(&mut first).await, CloseCode::Policy);
    let mut wa = member(&env, &id, &a).await;
    send(&mut wa, json!({"type": "offer", "to": b.did()})).await;
    assert_eq!(next(&mut second).await["from"], json!(a.did()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_the_socket_and_floods_are_rate_limited() {
    let env = Env::start_with(StoreKind::Memory, |c| {
        c.signal.max_frame = 4096;
        c.signal.rate = 1.0;
        c.signal.burst = 3.0;
    })
    .await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let mut wa = member(&env, &id, &a).await;
    let _wb = member(&env, &id, &b).await;
    for _ in 0..3 {
        send(&mut wa, json!({"type": "candidate", "to": b.did()})).await;
    }
    send(&mut wa, json!({"type": "candidate", "to": b.did()})).await;
    assert_eq!(next(&mut wa).await["code"], "rate_limited");
    let big = "x".repeat(8192);
    send(
        &mut wa,
        json!({"type": "offer", "to": b.did(), "payload": {"sdp": big}}),
    )
    .await;
    assert_eq!(closed(&mut wa).await, CloseCode::Size);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_sends_but_never_reads_is_closed_after_the_write_timeout() {
    let env = Env::start_with(StoreKind::Memory, |c| {
        c.signal.rate = 100_000.0;
        c.signal.burst = 100_000.0;
        // Only the write timeout can close the reader here.
        c.signal.idle_timeout = Duration::from_secs(120);
        c.signal.write_timeout = Duration::from_millis(300);
    })
    .await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let wa = member(&env, &id, &a).await;
    let mut wb = member(&env, &id, &b).await;
    // a reads everything it is sent (refusals once b's relay queue is full), so only b can be
    // the one closed.
    let (mut a_tx, mut a_rx) = wa.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = a_rx.next().await {} });
    // a floods b with 33 MB: more than the relay queue (256 x 60 KB), actix-ws's queue and the
    // loopback socket buffers hold together. b keeps sending (so it is never idle) but reads
    // nothing.
    let sdp = "x".repeat(60_000);
    let open_after = |metrics: &Value| {
        metrics
            .as_str()
            .unwrap()
            .contains("mpc_broker_open_websockets 1")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut closed_b = false;
    for i in 0..550 {
        let offer = json!({"type": "offer", "to": b.did(), "payload": {"sdp": sdp}});
        a_tx.send(Message::text(offer.to_string())).await.unwrap();
        if i % 50 == 0 {
            let _ = wb
                .send(Message::text(
                    json!({"type": "candidate", "to": a.did()}).to_string(),
                ))
                .await;
        }
    }
    while tokio::time::Instant::now() < deadline {
        let (_, metrics) = env.get("/metrics", None).await;
        if open_after(&metrics) {
            closed_b = true;
            break;
        }
        let _ = wb
            .send(Message::text(
                json!({"type": "candidate", "to": a.did()}).to_string(),
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed_b, "the non-reading member is still connected");
    // a, which reads, is still served.
    let (_, metrics) = env.get("/metrics", None).await;
    assert!(open_after(&metrics), "{metrics}");
    drop((wb, a_tx));
    drain.abort();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let env = Env::start_with(StoreKind::Memory, |c| {
        c.signal.ping_every = Duration::from_millis(100);
        c.signal.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let (a, b) = (key(1), key(2));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let mut wa = member(&env, &id, &a).await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, metrics) = env.get("/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("mpc_broker_open_websockets 0"),
        "{metrics}"
    );
    // The client sees the close frame, or (if its automatic pong raced the
    // close) the ended connection.
    loop {
        match tokio::time::timeout(WAIT, wa.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(c)))) => {
                assert_eq!(c.code, CloseCode::Away);
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    // A connection that keeps reading (and so answers pings) stays open.
    let mut wb = member(&env, &id, &b).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(1000);
    let mut pings = 0;
    while let Ok(m) = tokio::time::timeout_at(until, wb.next()).await {
        match m.unwrap().unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("only pings should arrive, got {other:?}"),
        }
    }
    assert!(pings >= 3, "the broker pings every 100 ms; saw {pings}");
    env.stop().await;
}
