//! The broker's HTTP API over real HTTP, every flow and every refusal, on
//! the in-memory store and on a real Redis.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{assert_problem, key, Env, StoreKind};
use identity::session::ROSTER_TYPE;
use serde_json::{json, Value};

on_both_stores!(
    challenge_and_token_authenticate_a_did,
    replayed_presentation_is_refused,
    expired_challenge_is_refused,
    foreign_domain_presentation_is_refused,
    presentation_signed_by_someone_else_than_the_holder_is_refused,
    join_challenge_cannot_be_used_to_log_in,
    organizer_publishes_and_broker_countersigns,
    unauthorised_or_tampered_manifests_are_refused,
    listed_parties_join_and_the_roster_freezes_signed_in_list_order,
    policy_admission_checks_issuer_claims_capacity_and_deadline,
    expired_credential_is_refused_at_join,
    organizer_seals_when_enough_parties_joined,
    roster_long_poll_wakes_when_the_last_party_joins,
    ice_servers_only_for_roster_members,
);

async fn challenge_and_token_authenticate_a_did(kind: StoreKind) {
    let env = Env::start(kind).await;
    let alice = key(1);
    let token = env.token(&alice).await;
    let claims = identity::jws::verify_token(
        &token,
        &env.broker_did.public_key(),
        &env.domain,
        env.now(),
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(claims.sub, alice.did().to_string());
    assert_eq!(claims.iss, env.broker_did.to_string());
    assert!(claims.exp > claims.iat);
    // A bearer token works where one is needed; garbage does not.
    let (s, _) = env.post("/v1/sessions", &json!({}), Some(&token)).await;
    assert_eq!(s, 400);
    assert_problem(
        &env.post("/v1/sessions", &json!({}), Some("x.y.z")).await,
        401,
        "token_invalid",
    );
    assert_problem(
        &env.post("/v1/sessions", &json!({}), None).await,
        401,
        "token_missing",
    );
    env.clock.advance(Duration::from_secs(3600));
    assert_problem(
        &env.post("/v1/sessions", &json!({}), Some(&token)).await,
        401,
        "token_expired",
    );
    env.stop().await;
}

async fn replayed_presentation_is_refused(kind: StoreKind) {
    let env = Env::start(kind).await;
    let c = env.challenge(None).await;
    let vp = env.presentation(&key(1), &[], &c, &env.domain);
    assert_eq!(env.post("/v1/auth/token", &vp, None).await.0, 200);
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        401,
        "challenge_replayed",
    );
    // A challenge the broker never issued, in the right shape, is refused the same way.
    let forged = c[..c.len() - 4].to_owned() + "AAAA";
    let vp = env.presentation(&key(1), &[], &forged, &env.domain);
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        401,
        "challenge_replayed",
    );
    env.stop().await;
}

async fn expired_challenge_is_refused(kind: StoreKind) {
    let env = Env::start(kind).await;
    let c = env.challenge(None).await;
    env.clock.advance(Duration::from_secs(600));
    let vp = env.presentation(&key(1), &[], &c, &env.domain);
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        401,
        "challenge_expired",
    );
    env.stop().await;
}

async fn foreign_domain_presentation_is_refused(kind: StoreKind) {
    let env = Env::start(kind).await;
    let c = env.challenge(None).await;
    let vp = env.presentation(&key(1), &[], &c, "evil.example");
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        401,
        "domain_mismatch",
    );
    // The challenge was not consumed by the refused attempt.
    let vp = env.presentation(&key(1), &[], &c, &env.domain);
    assert_eq!(env.post("/v1/auth/token", &vp, None).await.0, 200);
    env.stop().await;
}

async fn presentation_signed_by_someone_else_than_the_holder_is_refused(kind: StoreKind) {
    let env = Env::start(kind).await;
    let c = env.challenge(None).await;
    let mut vp = env.presentation(&key(2), &[], &c, &env.domain);
    vp["holder"] = json!(key(1).did());
    let got = env.post("/v1/auth/token", &vp, None).await;
    assert_eq!(got.0, 401, "{}", got.1);
    assert!([
        "presentation_wrong_holder",
        "presentation_signature_invalid"
    ]
    .contains(&got.1["code"].as_str().unwrap()));
    env.stop().await;
}

async fn join_challenge_cannot_be_used_to_log_in(kind: StoreKind) {
    let env = Env::start(kind).await;
    let id = env
        .publish(env.manifest(json!({"parties": [key(1).did()], "minParties": 1, "maxParties": 1})))
        .await;
    let c = env.challenge(Some(&id)).await;
    let vp = env.presentation(&key(1), &[], &c, &env.domain);
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        401,
        "challenge_wrong_purpose",
    );
    // …and an auth challenge cannot be used to join.
    let c = env.challenge(None).await;
    let vp = env.presentation(&key(1), &[], &c, &env.domain);
    assert_problem(
        &env.post(&format!("/v1/sessions/{id}/join"), &vp, None)
            .await,
        401,
        "challenge_wrong_purpose",
    );
    env.stop().await;
}

async fn organizer_publishes_and_broker_countersigns(kind: StoreKind) {
    let env = Env::start(kind).await;
    let manifest = env.manifest(json!({"parties": [key(1).did(), key(2).did(), key(3).did()], "minParties": 3, "maxParties": 3}));
    let id = env.publish(manifest.clone()).await;
    let (s, v) = env.get(&format!("/v1/sessions/{id}"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "open");
    assert_eq!(v["joined"], 0);
    let publication = &v["publication"];
    let checked =
        identity::statement::verify(publication, "MpcSessionPublication", Some(&env.broker_did))
            .unwrap()
            .unwrap();
    assert_eq!(checked.body["manifest"], manifest);
    assert_eq!(checked.body["session"], json!(id));
    assert_eq!(
        checked.body["manifestHash"],
        json!(identity::session::document_hash(&manifest))
    );
    identity::statement::verify(
        &checked.body["manifest"],
        "MpcSessionManifest",
        Some(&env.organizer.did()),
    )
    .unwrap()
    .unwrap();
    assert_problem(
        &env.get("/v1/sessions/nosuchsession", None).await,
        404,
        "unknown_session",
    );
    env.stop().await;
}

async fn unauthorised_or_tampered_manifests_are_refused(kind: StoreKind) {
    let env = Env::start(kind).await;
    let adm = json!({"parties": [key(1).did()], "minParties": 1, "maxParties": 1});
    // Not a trusted organizer.
    let mallory = key(66);
    let tok = env.token(&mallory).await;
    let m = env.manifest_by(&mallory, adm.clone());
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        403,
        "organizer_not_trusted",
    );
    // Publishing someone else's manifest.
    let m = env.manifest(adm.clone());
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        403,
        "organizer_mismatch",
    );
    // Tampered after signing.
    let tok = env.token(&env.organizer).await;
    let mut m = env.manifest(adm.clone());
    m["title"] = json!("a different session");
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        400,
        "manifest_signature_invalid",
    );
    // Against the schema.
    let mut m = env.manifest(adm.clone());
    m["surprise"] = json!(1);
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        400,
        "manifest_invalid",
    );
    // Unknown program.
    let mut body = env.manifest(adm.clone());
    body.as_object_mut().unwrap().remove("proof");
    body["computation"] = json!({"program": "no-such-program", "params": {}});
    let m = identity::statement::sign(
        &env.organizer,
        "MpcSessionManifest",
        body.as_object().unwrap(),
        env.now(),
    )
    .unwrap();
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        400,
        "unknown_program",
    );
    env.stop().await;
}

async fn listed_parties_join_and_the_roster_freezes_signed_in_list_order(kind: StoreKind) {
    let env = Env::start(kind).await;
    let (a, b, c) = (key(1), key(2), key(3));
    let id = env
        .publish(env.manifest(
            json!({"parties": [c.did(), a.did(), b.did()], "minParties": 3, "maxParties": 3}),
        ))
        .await;
    for (i, p) in [&a, &b].iter().enumerate() {
        let (s, v) = env.join(&id, p, &[]).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["joined"], i + 1);
        assert_eq!(v["state"], "open");
    }
    assert_problem(
        &env.get(&format!("/v1/sessions/{id}/roster"), None).await,
        409,
        "roster_not_frozen",
    );
    assert_problem(&env.join(&id, &key(9), &[]).await, 403, "not_on_party_list");
    let (s, v) = env.join(&id, &c, &[]).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("frozen")), "{v}");
    let (s, roster) = env.get(&format!("/v1/sessions/{id}/roster"), None).await;
    assert_eq!(s, 200);
    let checked = identity::statement::verify(&roster, ROSTER_TYPE, Some(&env.broker_did))
        .unwrap()
        .unwrap();
    assert_eq!(checked.body["reason"], "all-listed");
    let order: Vec<&str> = checked.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["did"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![c.did().as_str(), a.did().as_str(), b.did().as_str()]
    );
    // Every member's evidence re-verifies as a presentation for this session.
    for (i, m) in checked.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(m["index"], i);
        let challenge = m["evidence"]["proof"]["challenge"].as_str().unwrap();
        assert!(challenge.starts_with(&format!("join/{id}:")), "{challenge}");
        identity::verify_presentation(&m["evidence"], challenge, &env.domain, env.now())
            .unwrap()
            .unwrap();
    }
    // Joining again after the freeze: a member is told it is in; others are refused.
    assert_eq!(env.join(&id, &a, &[]).await.0, 200);
    assert_problem(&env.join(&id, &key(9), &[]).await, 409, "session_full");
    env.stop().await;
}

async fn policy_admission_checks_issuer_claims_capacity_and_deadline(kind: StoreKind) {
    let env = Env::start(kind).await;
    let adm = json!({
        "credentialType": "MpcParticipantCredential",
        "trustedIssuers": [env.issuer.did()],
        "requiredClaims": {"organization": ["Org A", "Org B"]},
        "minParties": 2, "maxParties": 2,
    });
    let id = env.publish(env.manifest(adm)).await;
    let (p1, p2, p3) = (key(11), key(12), key(13));
    // Untrusted issuer.
    let rogue = env.credential_from(
        &key(99),
        &p1.did(),
        "MpcParticipantCredential",
        json!({"organization": "Org A"}),
        None,
    );
    assert_problem(
        &env.join(&id, &p1, &[rogue]).await,
        403,
        "credential_untrusted_issuer",
    );
    // Missing claim value.
    let wrong_org = env.credential(&p1.did(), json!({"organization": "Org Z"}));
    assert_problem(
        &env.join(&id, &p1, &[wrong_org]).await,
        403,
        "credential_missing_claim",
    );
    // No credential at all.
    assert_problem(
        &env.join(&id, &p1, &[]).await,
        403,
        "credential_untrusted_issuer",
    );
    // Someone else's credential.
    let others = env.credential(&p2.did(), json!({"organization": "Org A"}));
    assert_problem(
        &env.join(&id, &p1, &[others]).await,
        401,
        "credential_not_about_holder",
    );
    // Good ones, up to capacity.
    for p in [&p1, &p2] {
        let vc = env.credential(&p.did(), json!({"organization": "Org B"}));
        let (s, v) = env.join(&id, p, &[vc]).await;
        assert_eq!(s, 200, "{v}");
    }
    let vc = env.credential(&p3.did(), json!({"organization": "Org A"}));
    assert_problem(
        &env.join(&id, &p3, std::slice::from_ref(&vc)).await,
        409,
        "session_full",
    );
    let (_, roster) = env.get(&format!("/v1/sessions/{id}/roster"), None).await;
    assert_eq!(roster["reason"], "max-parties");
    // After the deadline, a fresh session takes nobody.
    let id2 = env.publish(env.manifest(json!({"credentialType": "MpcParticipantCredential", "trustedIssuers": [env.issuer.did()], "minParties": 2, "maxParties": 3}))).await;
    let c = env.challenge(Some(&id2)).await;
    env.clock.advance(Duration::from_secs(3601));
    let vp = env.presentation(&p3, &[vc], &c, &env.domain);
    assert_problem(
        &env.post(&format!("/v1/sessions/{id2}/join"), &vp, None)
            .await,
        409,
        "join_deadline_passed",
    );
    let (_, v) = env.get(&format!("/v1/sessions/{id2}"), None).await;
    assert_eq!(v["state"], "expired");
    env.stop().await;
}

async fn expired_credential_is_refused_at_join(kind: StoreKind) {
    let env = Env::start(kind).await;
    let id = env.publish(env.manifest(json!({"credentialType": "MpcParticipantCredential", "trustedIssuers": [env.issuer.did()], "minParties": 1, "maxParties": 3}))).await;
    let p = key(21);
    let vc = env.credential_from(
        &env.issuer,
        &p.did(),
        "MpcParticipantCredential",
        json!({}),
        Some(env.now() + Duration::from_secs(10)),
    );
    env.clock.advance(Duration::from_secs(20));
    assert_problem(&env.join(&id, &p, &[vc]).await, 401, "credential_expired");
    env.stop().await;
}

async fn organizer_seals_when_enough_parties_joined(kind: StoreKind) {
    let env = Env::start(kind).await;
    let id = env.publish(env.manifest(json!({"credentialType": "MpcParticipantCredential", "trustedIssuers": [env.issuer.did()], "minParties": 2, "maxParties": 5}))).await;
    let org = env.token(&env.organizer).await;
    let stranger = env.token(&key(5)).await;
    let seal = format!("/v1/sessions/{id}/seal");
    let p = [key(31), key(32)];
    let vc0 = env.credential(&p[0].did(), json!({}));
    assert_eq!(env.join(&id, &p[0], &[vc0]).await.0, 200);
    assert_problem(
        &env.post(&seal, &json!({}), Some(&org)).await,
        409,
        "too_few_parties",
    );
    let vc1 = env.credential(&p[1].did(), json!({}));
    assert_eq!(env.join(&id, &p[1], &[vc1]).await.0, 200);
    assert_problem(
        &env.post(&seal, &json!({}), Some(&stranger)).await,
        403,
        "not_organizer",
    );
    let (s, roster) = env.post(&seal, &json!({}), Some(&org)).await;
    assert_eq!(s, 200, "{roster}");
    assert_eq!(roster["reason"], "sealed");
    assert_eq!(roster["members"].as_array().unwrap().len(), 2);
    assert_problem(
        &env.post(&seal, &json!({}), Some(&org)).await,
        409,
        "roster_frozen",
    );
    env.stop().await;
}

async fn roster_long_poll_wakes_when_the_last_party_joins(kind: StoreKind) {
    let env = std::sync::Arc::new(Env::start(kind).await);
    let (a, b) = (key(41), key(42));
    let id = env
        .publish(
            env.manifest(json!({"parties": [a.did(), b.did()], "minParties": 2, "maxParties": 2})),
        )
        .await;
    assert_eq!(env.join(&id, &a, &[]).await.0, 200);
    let waiter = {
        let env = env.clone();
        let id = id.clone();
        tokio::spawn(async move {
            env.get(&format!("/v1/sessions/{id}/roster?wait=20"), None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the long-poll must wait for the roster"
    );
    assert_eq!(env.join(&id, &b, &[]).await.0, 200);
    let (s, roster) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s, 200, "{roster}");
    assert_eq!(roster["type"], ROSTER_TYPE);
    assert_problem(
        &env.get(&format!("/v1/sessions/{id}/roster?wait=61"), None)
            .await,
        400,
        "request_invalid",
    );
}

async fn ice_servers_only_for_roster_members(kind: StoreKind) {
    let env = Env::start(kind).await;
    let (a, b) = (key(51), key(52));
    let (id, _) = env.frozen_session(&[&a, &b]).await;
    let tok = env.token(&a).await;
    let (s, v) = env
        .get(&format!("/v1/sessions/{id}/ice-servers"), Some(&tok))
        .await;
    assert_eq!(s, 200, "{v}");
    let servers = v["iceServers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"], json!(["stun:stun.example.org:3478"]));
    let user = servers[1]["username"].as_str().unwrap();
    let (expiry, did) = user.split_once(':').unwrap();
    assert_eq!(did, a.did().as_str());
    assert!(expiry.parse::<u64>().unwrap() > broker::challenge::unix(env.now()));
    let (_, cred) = broker::ice::turn_credentials(
        "turn-shared-secret",
        a.did().as_str(),
        env.now(),
        Duration::from_secs(3600),
    );
    assert_eq!(servers[1]["credential"], json!(cred));
    let outsider = env.token(&key(53)).await;
    assert_problem(
        &env.get(&format!("/v1/sessions/{id}/ice-servers"), Some(&outsider))
            .await,
        403,
        "not_on_roster",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problems_not_crashes() {
    let env = Env::start_with(StoreKind::Memory, |c| c.max_body = 4096).await;
    let http = &env.http;
    let raw = |body: &'static str| {
        http.post(format!("{}/v1/auth/token", env.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{not json").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "malformed_json");
    let r = raw("").await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "body_missing");
    let big = "x".repeat(10_000);
    let r = http
        .post(format!("{}/v1/auth/token", env.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = http
        .post(format!("{}/v1/auth/token", env.url))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_problem(
        &env.post("/v1/auth/token", &json!([1, 2]), None).await,
        400,
        "challenge_missing",
    );
    assert_problem(
        &env.post(
            "/v1/auth/token",
            &json!({"proof": {"challenge": "nonsense"}}),
            None,
        )
        .await,
        401,
        "challenge_unknown",
    );
    assert_problem(
        &env.post("/v1/auth/challenge", &json!({"purpose": "join"}), None)
            .await,
        400,
        "request_invalid",
    );
    assert_problem(
        &env.post(
            "/v1/auth/challenge",
            &json!({"purpose": "join", "session": "nosuchsession"}),
            None,
        )
        .await,
        404,
        "unknown_session",
    );
    assert_problem(&env.get("/v1/nothing", None).await, 404, "not_found");
    assert_problem(
        &env.get("/v1/auth/token", None).await,
        405,
        "method_not_allowed",
    );
    assert_problem(
        &env.get("/v1/schemas/nope.json", None).await,
        404,
        "unknown_schema",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_with_a_timeout_problem() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let env = Env::start_with(StoreKind::Memory, |c| {
        c.body_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = env.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Headers announce 40 bytes; only the first 5 ever come.
    tcp.write_all(
        format!(
            "POST /v1/auth/challenge HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"pu"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            reply.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&reply).contains("body_timeout") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body within 10 s");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"body_timeout\""), "{reply}");
    // The server is still there for everyone else.
    let (s, _) = env.get("/healthz", None).await;
    assert_eq!(s, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_http_methods_share_one_metrics_series() {
    let env = Env::start(StoreKind::Memory).await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let r = env
            .http
            .request(method, format!("{}/v1/auth/challenge", env.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
    }
    let (_, metrics) = env.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(!metrics.contains("MADEUP"), "{metrics}");
    assert!(
        metrics.contains("mpc_broker_http_requests_total{method=\"other\",status=\"405\"} 20"),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_schemas_and_openapi_are_served() {
    let env = Env::start(StoreKind::Memory).await;
    let (s, body) = env.get("/healthz", None).await;
    assert_eq!((s, body), (200, Value::String("ok".into())));
    let _ = env.token(&key(1)).await;
    let c = env.challenge(None).await;
    let vp = env.presentation(&key(1), &[], &c, "elsewhere");
    let _ = env.post("/v1/auth/token", &vp, None).await;
    let (_, metrics) = env.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    for needle in [
        "mpc_broker_http_requests_total{method=\"POST\",status=\"200\"}",
        "mpc_broker_auth_failures_total{reason=\"domain_mismatch\"} 1",
        "mpc_broker_open_websockets 0",
        "mpc_broker_relayed_messages_total",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let (s, schema) = env.get("/v1/schemas/manifest.schema.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        schema["$id"],
        "https://mpc-broker.invalid/schemas/manifest.schema.json"
    );
    // Every route in the OpenAPI document exists with its method, and the
    // document lists exactly the routes the server has.
    let (_, api) = env.get("/v1/openapi.json", None).await;
    let paths = api["paths"].as_object().unwrap();
    let mut listed = Vec::new();
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| ["get", "post"].contains(&m.as_str()))
        {
            listed.push(format!("{} {path}", method.to_uppercase()));
            let concrete = path
                .replace("{id}", "someid12")
                .replace("{name}", "roster.schema.json");
            let req = match method.as_str() {
                "get" => env.http.get(format!("{}{concrete}", env.url)),
                _ => env
                    .http
                    .post(format!("{}{concrete}", env.url))
                    .json(&json!({})),
            };
            let r = req.send().await.unwrap();
            let code = if r.status().is_success() {
                Value::Null
            } else {
                r.json::<Value>().await.unwrap_or(Value::Null)["code"].clone()
            };
            assert!(
                code != "not_found" && code != "method_not_allowed",
                "{method} {path} is documented but not routed"
            );
        }
    }
    listed.sort();
    let mut routed: Vec<String> = broker::route_list()
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    routed.sort();
    assert_eq!(listed, routed);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizer_credential_from_a_trusted_issuer_authorises_publishing() {
    let env = Env::start_with(StoreKind::Memory, |c| {
        c.organizers = broker::OrganizerPolicy {
            trusted: vec![],
            credential_type: Some("MpcOrganizerCredential".into()),
            credential_issuers: vec![key(201).did()],
            anyone: false,
        };
    })
    .await;
    let org = key(200);
    let tok = env.token(&org).await;
    let m = env.manifest(json!({"parties": [key(1).did()], "minParties": 1, "maxParties": 1}));
    let good = env.credential_from(
        &env.issuer,
        &org.did(),
        "MpcOrganizerCredential",
        json!({}),
        None,
    );
    let (s, v) = env
        .post(
            "/v1/sessions",
            &json!({"manifest": m, "organizerCredential": good}),
            Some(&tok),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let rogue = env.credential_from(
        &key(99),
        &org.did(),
        "MpcOrganizerCredential",
        json!({}),
        None,
    );
    assert_problem(
        &env.post(
            "/v1/sessions",
            &json!({"manifest": m, "organizerCredential": rogue}),
            Some(&tok),
        )
        .await,
        403,
        "credential_untrusted_issuer",
    );
    let wrong_type = env.credential_from(
        &env.issuer,
        &org.did(),
        "MpcParticipantCredential",
        json!({}),
        None,
    );
    assert_problem(
        &env.post(
            "/v1/sessions",
            &json!({"manifest": m, "organizerCredential": wrong_type}),
            Some(&tok),
        )
        .await,
        403,
        "organizer_not_trusted",
    );
    assert_problem(
        &env.post("/v1/sessions", &json!({"manifest": m}), Some(&tok))
            .await,
        403,
        "organizer_not_trusted",
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdfc_documents_built_to_be_expensive_are_refused_before_canonicalization() {
    let env = Env::start(StoreKind::Memory).await;
    let c = env.challenge(None).await;
    // Many look-alike blank nodes: the shape RDFC-1.0 hashes in factorial time.
    let alike: Vec<Value> = (0..12).map(|_| json!({"knows": {"name": "x"}})).collect();
    let vp = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": key(1).did(),
        "verifiableCredential": [{"type": ["VerifiableCredential"], "credentialSubject": {"id": key(1).did(), "friends": alike}}],
        "proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", "proofPurpose": "authentication", "challenge": c, "domain": env.domain, "verificationMethod": "x", "proofValue": "z1"},
    });
    let started = std::time::Instant::now();
    assert_problem(
        &env.post("/v1/auth/token", &vp, None).await,
        400,
        "document_too_complex",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdfc_presentations_and_credentials_are_accepted() {
    let env = Env::start(StoreKind::Memory).await;
    let id = env.publish(env.manifest(json!({"credentialType": "MpcParticipantCredential", "trustedIssuers": [env.issuer.did()], "minParties": 1, "maxParties": 2}))).await;
    let p = key(61);
    let vc = identity::issue_credential(
        &env.issuer,
        &identity::CredentialRequest {
            id: None,
            subject: p.did(),
            types: vec!["MpcParticipantCredential".into()],
            claims: serde_json::Map::new(),
            valid_from: env.now() - Duration::from_secs(60),
            valid_until: None,
            suite: identity::Cryptosuite::EddsaRdfc2022,
            created: env.now() - Duration::from_secs(60),
        },
    )
    .unwrap();
    let c = env.challenge(Some(&id)).await;
    let vp = identity::present(
        &p,
        &[vc],
        &identity::PresentationRequest {
            challenge: c,
            domain: env.domain.clone(),
            suite: identity::Cryptosuite::EddsaRdfc2022,
            created: env.now(),
        },
    )
    .unwrap();
    let (s, v) = env
        .post(&format!("/v1/sessions/{id}/join"), &vp, None)
        .await;
    assert_eq!(s, 200, "{v}");
    env.stop().await;
}
