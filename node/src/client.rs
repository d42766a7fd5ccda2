//! A client of the broker's HTTP API, as any party would use it.
//!
//! The node talks to the broker only over its public API (never through
//! broker internals), and treats every answer as untrusted input: what the
//! broker signs is checked in [`crate::checks`].
//!
//! It may be given several URLs of one broker (replicas sharing a store):
//! a request that cannot reach one, or that a load balancer or a replica
//! answers with 502/503/504, is retried on the next with bounded backoff
//! for up to [`RETRY_WITHIN`]. Operations built on a single-use challenge
//! retry as a whole, with a fresh challenge.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity::{Cryptosuite, Did, Keypair, PresentationRequest};
use serde_json::{json, Value};

/// How long one HTTP request may take (long-polls add their wait).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read from a broker. The broker is not trusted: without a cap it could
/// stream into our memory until the request timeout. The largest honest answer is a roster:
/// up to 64 members' join presentations, each at most the broker's request-body limit
/// (256 KiB by default), so 16 MiB; twice that leaves room for a broker configured higher.
const MAX_RESPONSE: usize = 32 << 20;
/// How long an operation keeps retrying a broker that is unreachable or
/// temporarily unavailable.
pub const RETRY_WITHIN: Duration = Duration::from_secs(20);
/// How long the first contact with a broker keeps trying.
const FIRST_CONTACT_WITHIN: Duration = Duration::from_secs(3);
/// First and longest pause between retries.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Why a broker request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker refused with a problem document.
    #[error("the broker refused ({status} {code}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable problem code.
        code: String,
        /// What the broker says.
        detail: String,
    },
    /// The broker could not be reached or the connection broke.
    #[error("cannot reach the broker at {url}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The broker answered something that is not the API.
    #[error("the broker's answer to {what} is not what its API promises: {reason}")]
    Protocol {
        /// Which request.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A presentation could not be made.
    #[error("cannot sign a presentation: {0}")]
    Sign(String),
}

impl ClientError {
    /// The problem code, when the broker refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether another try (perhaps on another replica) may succeed.
    fn transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Refused { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

/// The broker's identity as it states it (checked against signatures later).
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// Its DID.
    pub did: Did,
    /// The domain presentations must be bound to.
    pub domain: String,
}

/// A broker client.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    bases: Arc<[String]>,
    /// The base in use; shared by clones, moved on when one fails.
    at: Arc<AtomicUsize>,
    http: reqwest::Client,
    info: BrokerInfo,
}

fn protocol(what: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Protocol {
        what,
        reason: reason.into(),
    }
}

/// The response body, refused past [`MAX_RESPONSE`] bytes.
async fn read_capped(
    mut resp: reqwest::Response,
    what: &'static str,
) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| protocol(what, format!("body could not be read: {e}")))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(protocol(
                what,
                format!("the broker's response exceeds {MAX_RESPONSE} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn str_field<'a>(v: &'a Value, field: &str, what: &'static str) -> Result<&'a str, ClientError> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(what, format!("no string field {field:?}")))
}

impl BrokerClient {
    /// Connects to the broker at `base` (e.g. `http://127.0.0.1:8080`) and
    /// reads its DID and domain.
    pub async fn connect(base: &str) -> Result<Self, ClientError> {
        Self::connect_any(&[base.to_owned()]).await
    }

    /// Connects to one broker served at several URLs (replicas), using
    /// the first that answers and the others when it fails.
    pub async fn connect_any(bases: &[String]) -> Result<Self, ClientError> {
        let bases: Vec<String> = bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect();
        if bases.is_empty() {
            return Err(protocol("connect", "no broker URL given"));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT + Duration::from_secs(api_max_wait()))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: bases[0].clone(),
                source,
            })?;
        let mut c = BrokerClient {
            bases: bases.into(),
            at: Arc::new(AtomicUsize::new(0)),
            http,
            info: BrokerInfo {
                did: Keypair::from_seed(&[0; 32]).did(),
                domain: String::new(),
            },
        };
        // First contact gives up sooner: a wrong URL should not keep a person waiting.
        let v = c
            .retrying_for(FIRST_CONTACT_WITHIN, || {
                c.get_once("/v1/broker", None, "GET /v1/broker")
            })
            .await?;
        let did = Did::parse(str_field(&v, "did", "GET /v1/broker")?)
            .map_err(|e| protocol("GET /v1/broker", format!("broker DID: {e}")))?;
        let domain = str_field(&v, "domain", "GET /v1/broker")?.to_owned();
        c.info = BrokerInfo { did, domain };
        Ok(c)
    }

    /// What the broker says about itself.
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// The base URL in use.
    pub fn base(&self) -> &str {
        &self.bases[self.at.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Runs `op` until it succeeds, fails for good, or [`RETRY_WITHIN`]
    /// passes; after each transient failure the next base URL is used.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.retrying_for(RETRY_WITHIN, op).await
    }

    async fn retrying_for<T, F, Fut>(&self, within: Duration, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let until = tokio::time::Instant::now() + within;
        let mut pause = BACKOFF.0;
        loop {
            match op().await {
                Err(e) if e.transient() && tokio::time::Instant::now() + pause < until => {
                    tracing::debug!(base = self.base(), error = %e, "broker request failed; trying again");
                    self.at.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(BACKOFF.1);
                }
                other => return other,
            }
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base().to_owned(),
                source,
            })?;
        let status = resp.status().as_u16();
        let body: Value = match read_capped(resp, what).await.and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| protocol(what, format!("body is not JSON: {e}")))
        }) {
            Ok(b) => b,
            // A load balancer's own error page is not the API, but it is
            // its word that the replica behind it is down.
            Err(_) if matches!(status, 502..=504) => Value::Null,
            Err(e) => return Err(e),
        };
        if status >= 400 {
            return Err(ClientError::Refused {
                status,
                code: body["code"].as_str().unwrap_or("unknown").to_owned(),
                detail: body["detail"].as_str().unwrap_or("(no detail)").to_owned(),
            });
        }
        Ok(body)
    }

    /// A GET, retried (GETs are idempotent).
    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        self.retrying(move || self.get_once(path, token, what))
            .await
    }

    async fn get_once(
        &self,
        path: &str,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base())), token, what)
            .await
    }

    /// A POST, not retried here: callers retry whole operations.
    async fn post(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        self.send(
            self.http.post(format!("{}{path}", self.base())).json(body),
            token,
            what,
        )
        .await
    }

    async fn challenge(&self, session: Option<&str>) -> Result<String, ClientError> {
        let body = match session {
            Some(s) => json!({"purpose": "join", "session": s}),
            None => json!({"purpose": "authenticate"}),
        };
        let v = self
            .post("/v1/auth/challenge", &body, None, "POST /v1/auth/challenge")
            .await?;
        Ok(str_field(&v, "challenge", "POST /v1/auth/challenge")?.to_owned())
    }

    fn presentation(
        &self,
        key: &Keypair,
        creds: &[Value],
        challenge: String,
    ) -> Result<Value, ClientError> {
        identity::present(
            key,
            creds,
            &PresentationRequest {
                challenge,
                domain: self.info.domain.clone(),
                suite: Cryptosuite::EddsaJcs2022,
                created: SystemTime::now(),
            },
        )
        .map_err(|e| ClientError::Sign(e.to_string()))
    }

    /// Authenticates `key`'s DID; returns an access token.
    pub async fn authenticate(&self, key: &Keypair) -> Result<String, ClientError> {
        self.retrying(move || async move {
            let c = self.challenge(None).await?;
            let vp = self.presentation(key, &[], c)?;
            let v = self
                .post("/v1/auth/token", &vp, None, "POST /v1/auth/token")
                .await?;
            Ok(str_field(&v, "accessToken", "POST /v1/auth/token")?.to_owned())
        })
        .await
    }

    /// Publishes an organizer-signed manifest; returns the publication.
    pub async fn publish(
        &self,
        token: &str,
        manifest: &Value,
        organizer_credential: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({"manifest": manifest});
        if let Some(c) = organizer_credential {
            body["organizerCredential"] = c.clone();
        }
        self.post("/v1/sessions", &body, Some(token), "POST /v1/sessions")
            .await
    }

    /// The session's state and publication.
    pub async fn session(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/v1/sessions/{id}"), None, "GET /v1/sessions/{id}")
            .await
    }

    /// Joins with a presentation of `creds` answering this session's challenge.
    pub async fn join(
        &self,
        id: &str,
        key: &Keypair,
        creds: &[Value],
    ) -> Result<Value, ClientError> {
        // Joining twice is harmless, so a join whose answer was lost is
        // simply made again with a new challenge.
        self.retrying(move || async move {
            let c = self.challenge(Some(id)).await?;
            let vp = self.presentation(key, creds, c)?;
            self.post(
                &format!("/v1/sessions/{id}/join"),
                &vp,
                None,
                "POST /v1/sessions/{id}/join",
            )
            .await
        })
        .await
    }

    /// Seals the roster (organizer only).
    pub async fn seal(&self, id: &str, token: &str) -> Result<Value, ClientError> {
        self.post(
            &format!("/v1/sessions/{id}/seal"),
            &json!({}),
            Some(token),
            "POST /v1/sessions/{id}/seal",
        )
        .await
    }

    /// Waits for the roster (long-polls, never spins) up to `total`.
    pub async fn roster(&self, id: &str, total: Duration) -> Result<Value, ClientError> {
        let now = tokio::time::Instant::now();
        // A library caller may pass any duration; a year from now is as good as for ever.
        let until = now
            .checked_add(total)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        loop {
            let left = until
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs();
            let wait = left.min(api_max_wait());
            match self
                .get(
                    &format!("/v1/sessions/{id}/roster?wait={wait}"),
                    None,
                    "GET /v1/sessions/{id}/roster",
                )
                .await
            {
                Err(ClientError::Refused { code, .. })
                    if code == "roster_not_frozen" && left > 0 =>
                {
                    continue
                }
                other => return other,
            }
        }
    }

    /// ICE servers for a roster member.
    pub async fn ice_servers(&self, id: &str, token: &str) -> Result<Value, ClientError> {
        self.get(
            &format!("/v1/sessions/{id}/ice-servers"),
            Some(token),
            "GET /v1/sessions/{id}/ice-servers",
        )
        .await
    }

    /// The signaling WebSocket URL of a session (on the base in use).
    pub fn signal_url(&self, id: &str) -> String {
        ws_url(self.base(), id)
    }

    /// The session's signaling URL on every base, the one in use first.
    pub fn signal_urls(&self, id: &str) -> Vec<String> {
        let n = self.bases.len();
        let at = self.at.load(Ordering::Relaxed);
        (0..n)
            .map(|k| ws_url(&self.bases[(at + k) % n], id))
            .collect()
    }
}

fn ws_url(base: &str, id: &str) -> String {
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/v1/sessions/{id}/signal")
}

/// The broker's longest long-poll (seconds).
const fn api_max_wait() -> u64 {
    30
}
