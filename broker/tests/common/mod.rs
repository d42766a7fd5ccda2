//! Test harness: a real broker on port 0 over real HTTP, optionally on a
//! real `redis-server` started on a free port, plus parties, an issuer and
//! an organizer with real keys and credentials.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;
pub mod redis;
pub mod ws;

#[allow(unused_imports)]
pub use redis::{free_port, tempdir, RedisServer};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker::clock::ManualClock;
use broker::{Broker, BrokerConfig, OrganizerPolicy, RedisStore, Running, SessionStore};
use identity::{
    format_timestamp, CredentialRequest, Cryptosuite, Did, Keypair, PresentationRequest,
};
use serde_json::{json, Map, Value};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// A broker under test with the people around it.
pub struct Env {
    pub broker: Option<Running>,
    pub url: String,
    pub domain: String,
    pub broker_did: Did,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub organizer: Keypair,
    pub issuer: Keypair,
    pub redis: Option<RedisServer>,
    /// What started this broker, for [`Env::replica`].
    config: BrokerConfig,
    redis_url: Option<String>,
}

pub fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

pub fn now_secs() -> SystemTime {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(s)
}

impl Env {
    pub async fn start(kind: StoreKind) -> Env {
        Self::start_with(kind, |_| {}).await
    }

    pub async fn start_with(kind: StoreKind, tweak: impl FnOnce(&mut BrokerConfig)) -> Env {
        let redis = match kind {
            StoreKind::Memory => None,
            StoreKind::Redis => Some(RedisServer::start()),
        };
        Self::start_on(redis, tweak).await
    }

    /// A broker on this Redis server (or in memory without one).
    pub async fn start_on(
        redis: Option<RedisServer>,
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Env {
        let organizer = key(200);
        let issuer = key(201);
        let mut config = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            organizers: OrganizerPolicy {
                trusted: vec![organizer.did()],
                ..Default::default()
            },
            stun: vec!["stun:stun.example.org:3478".into()],
            turn: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: Some("turn-shared-secret".into()),
            ..Default::default()
        };
        tweak(&mut config);
        let clock = Arc::new(ManualClock::new(now_secs()));
        let redis_url = redis.as_ref().map(RedisServer::url);
        let running = Self::launch(&config, clock.clone(), redis_url.as_deref()).await;
        Env {
            config,
            redis_url,
            url: running.url(),
            domain: running.domain().to_owned(),
            broker_did: running.did().clone(),
            broker: Some(running),
            clock,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            organizer,
            issuer,
            redis,
        }
    }

    async fn launch(
        config: &BrokerConfig,
        clock: Arc<ManualClock>,
        redis: Option<&str>,
    ) -> Running {
        let mut b = Broker::new(config.clone())
            .with_clock(clock)
            .with_key(key(250));
        if let Some(url) = redis {
            let store = RedisStore::connect(url, "test:", Duration::from_secs(2))
                .await
                .unwrap();
            b = b.with_store(Arc::new(store) as Arc<dyn SessionStore>);
        }
        b.start().await.unwrap()
    }

    /// Another replica of this broker: same key, configuration, clock and
    /// Redis (it does not own the Redis server).
    pub async fn replica(&self) -> Env {
        let url = self
            .redis_url
            .as_deref()
            .expect("replicas share a Redis store");
        let running = Self::launch(&self.config, self.clock.clone(), Some(url)).await;
        Env {
            config: self.config.clone(),
            redis_url: self.redis_url.clone(),
            url: running.url(),
            domain: running.domain().to_owned(),
            broker_did: running.did().clone(),
            broker: Some(running),
            clock: self.clock.clone(),
            http: self.http.clone(),
            organizer: key(200),
            issuer: key(201),
            redis: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.stop(false).await;
        }
    }

    pub fn now(&self) -> SystemTime {
        use broker::clock::Clock;
        self.clock.now()
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status >= 400 {
            assert_eq!(
                ct, "application/problem+json",
                "error without problem+json: {status} {text}"
            );
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url)), token)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.send(
            self.http.post(format!("{}{path}", self.url)).json(body),
            token,
        )
        .await
    }

    pub async fn challenge(&self, session: Option<&str>) -> String {
        let body = match session {
            Some(s) => json!({"purpose": "join", "session": s}),
            None => json!({"purpose": "authenticate"}),
        };
        let (status, v) = self.post("/v1/auth/challenge", &body, None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["domain"], json!(self.domain));
        v["challenge"].as_str().unwrap().to_owned()
    }

    pub fn presentation(
        &self,
        holder: &Keypair,
        creds: &[Value],
        challenge: &str,
        domain: &str,
    ) -> Value {
        identity::present(
            holder,
            creds,
            &PresentationRequest {
                challenge: challenge.into(),
                domain: domain.into(),
                suite: Cryptosuite::EddsaJcs2022,
                created: self.now(),
            },
        )
        .unwrap()
    }

    pub async fn token(&self, who: &Keypair) -> String {
        let c = self.challenge(None).await;
        let vp = self.presentation(who, &[], &c, &self.domain);
        let (status, v) = self.post("/v1/auth/token", &vp, None).await;
        assert_eq!(status, 200, "{v}");
        v["accessToken"].as_str().unwrap().to_owned()
    }

    pub fn credential_from(
        &self,
        issuer: &Keypair,
        subject: &Did,
        ctype: &str,
        claims: Value,
        valid_until: Option<SystemTime>,
    ) -> Value {
        let claims: Map<String, Value> = claims.as_object().cloned().unwrap_or_default();
        identity::issue_credential(
            issuer,
            &CredentialRequest {
                id: None,
                subject: subject.clone(),
                types: vec![ctype.into()],
                claims,
                valid_from: self.now() - Duration::from_secs(60),
                valid_until,
                suite: Cryptosuite::EddsaJcs2022,
                created: self.now() - Duration::from_secs(60),
            },
        )
        .unwrap()
    }

    pub fn credential(&self, subject: &Did, claims: Value) -> Value {
        self.credential_from(
            &self.issuer,
            subject,
            "MpcParticipantCredential",
            claims,
            None,
        )
    }

    pub fn manifest_by(&self, organizer: &Keypair, admission: Value) -> Value {
        let min = admission["minParties"].as_u64().unwrap_or(1);
        let body = json!({
            "type": "MpcSessionManifest",
            "title": "test session",
            "organizer": organizer.did(),
            "computation": {"program": "sum", "params": {}},
            "admission": admission,
            "threshold": (min.max(1) - 1) / 2,
            "joinDeadline": format_timestamp(self.now() + Duration::from_secs(3600)),
            "expires": format_timestamp(self.now() + Duration::from_secs(7200)),
        });
        identity::statement::sign(
            organizer,
            "MpcSessionManifest",
            body.as_object().unwrap(),
            self.now(),
        )
        .unwrap()
    }

    pub fn manifest(&self, admission: Value) -> Value {
        self.manifest_by(&self.organizer, admission)
    }

    pub async fn publish(&self, manifest: Value) -> String {
        let tok = self.token(&self.organizer).await;
        let (status, v) = self
            .post("/v1/sessions", &json!({"manifest": manifest}), Some(&tok))
            .await;
        assert_eq!(status, 201, "{v}");
        v["session"].as_str().unwrap().to_owned()
    }

    pub async fn join(&self, id: &str, who: &Keypair, creds: &[Value]) -> (u16, Value) {
        let c = self.challenge(Some(id)).await;
        let vp = self.presentation(who, creds, &c, &self.domain);
        self.post(&format!("/v1/sessions/{id}/join"), &vp, None)
            .await
    }

    /// Publishes a session for parties `n` (explicit list) and joins them all.
    pub async fn frozen_session(&self, parties: &[&Keypair]) -> (String, Value) {
        let dids: Vec<Did> = parties.iter().map(|k| k.did()).collect();
        let id = self
            .publish(self.manifest(
                json!({"parties": dids, "minParties": parties.len(), "maxParties": parties.len()}),
            ))
            .await;
        for p in parties {
            let (s, v) = self.join(&id, p, &[]).await;
            assert_eq!(s, 200, "{v}");
        }
        let (s, roster) = self.get(&format!("/v1/sessions/{id}/roster"), None).await;
        assert_eq!(s, 200, "{roster}");
        (id, roster)
    }
}

#[track_caller]
pub fn assert_problem(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["code"].as_str().unwrap_or("")),
        (status, code),
        "{}",
        got.1
    );
    assert_eq!(got.1["status"], json!(status));
    assert!(got.1["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

/// Runs each listed async test function against both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::StoreKind::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::StoreKind::Redis).await
                }
            )*
        }
    };
}
