//! The shared store: Redis, for several broker replicas.
//!
//! Challenges are keys consumed with `DEL` (atomic: exactly one caller sees
//! 1); sessions are JSON strings replaced by a Lua compare-and-swap, so two
//! replicas admitting parties to one session at once never lose a member.
//!
//! It is also the replicas' [`SignalBus`]: `presence:<session>:<did>` names
//! the replica a member is connected to, `pending:<session>:<did>` holds
//! messages for a member no replica has, and each replica reads its own
//! pub/sub channel `inbox:<replica>`. Sending (publish to the member's
//! replica, or buffer when there is none or nobody listens there) and
//! attaching (claim the presence, take the pending list) are Lua scripts, so
//! each is atomic against the other.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use super::{
    Attached, BusDelivery, BusEvent, BusLimits, Deliver, SendMode, SessionStore, SignalBus,
    StoreError, Stored,
};

const CAS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

// KEYS: challenge, window counter. ARGV: challenge ttl (ms), limit per window.
// The counter's window opens with its first challenge and lasts one challenge
// lifetime, so at most two windows' worth of challenges are alive at once.
const PUT_CHALLENGE: &str = r"
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
if n > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
return 1
";

// KEYS: presence, pending. ARGV: inbox channel prefix, envelope, pending
// entry, pending bound, pending ttl (ms), '1' to publish ('0' only buffers).
// A presence whose inbox nobody reads (its replica died) is dropped and the
// message buffered instead. A presence naming the sender's own replica is
// honoured: the member may have connected there since the sender looked.
const SEND: &str = r"
local r = redis.call('GET', KEYS[1])
if r and ARGV[6] == '1' then
  if redis.call('PUBLISH', ARGV[1] .. r, ARGV[2]) > 0 then return 1 end
  redis.call('DEL', KEYS[1])
end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 0
";

// KEYS: presence, pending. ARGV: replica, presence ttl (ms).
const ATTACH: &str = r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local p = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return {old or '', p}
";

// KEYS: presence. ARGV: replica, ttl (ms; 0 deletes). A refresh also
// restores a claim that vanished (a Redis restart without persistence), but
// never takes over another replica's.
const IF_MINE: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if v == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
  return 0
end
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// How a replica's inbox carries events (the store's own wire format).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
enum Envelope {
    Message { s: String, d: String, m: String },
    Replaced { s: String, d: String },
}

/// Redis-backed [`SessionStore`] and [`SignalBus`].
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    cas: Script,
    send: Script,
    attach: Script,
    if_mine: Script,
    put_challenge: Script,
    max_challenges: usize,
    check_every: Duration,
    limits: Option<BusLimits>,
}

/// Default [`RedisStore::with_max_challenges`]: as many as the in-memory store holds entries.
const MAX_CHALLENGES: usize = 200_000;
/// Default [`RedisStore::with_subscription_check`].
const CHECK_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/0`); keys are
    /// prefixed with `prefix` so deployments can share a server. Fails if
    /// Redis does not answer within `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Redis)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(timeout, client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
            .map_err(StoreError::Redis)?;
        let store = RedisStore {
            client,
            conn,
            prefix: prefix.to_owned(),
            timeout,
            cas: Script::new(CAS),
            send: Script::new(SEND),
            attach: Script::new(ATTACH),
            if_mine: Script::new(IF_MINE),
            put_challenge: Script::new(PUT_CHALLENGE),
            max_challenges: MAX_CHALLENGES,
            check_every: CHECK_EVERY,
            limits: None,
        };
        store.ping().await?;
        Ok(store)
    }

    /// At most `n` challenges are issued per challenge lifetime (so at most `2n` are alive):
    /// anyone may ask for a challenge, and each is a Redis key. Past it, new challenges are
    /// refused with [`StoreError::Full`] until the window ends.
    pub fn with_max_challenges(mut self, n: usize) -> Self {
        self.max_challenges = n;
        self
    }

    /// A replica's inbox subscription that has carried nothing for `every` is pinged, and
    /// counts as lost (so it is subscribed again, and the replica's members reconnect) when
    /// the answer takes longer than the command timeout. Without it a subscription whose
    /// Redis host vanished without a reset would wait for ever, and the replica would miss
    /// every message for its members while Redis still counted it as a listener.
    pub fn with_subscription_check(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn member_key(&self, kind: &str, session: &str, did: &str) -> String {
        format!("{}{kind}:{session}:{did}", self.prefix)
    }

    fn inbox_prefix(&self) -> String {
        format!("{}inbox:", self.prefix)
    }

    fn bus_limits(&self) -> BusLimits {
        self.limits.unwrap_or(BusLimits {
            pending: 64,
            pending_ttl: Duration::from_secs(30),
            presence_ttl: Duration::from_secs(30),
        })
    }

    /// Runs [`SEND`]: publish to the member's replica (`SendMode::Route`) or buffer.
    async fn route(
        &self,
        session: &str,
        to: &str,
        msg: &str,
        now: SystemTime,
        mode: SendMode,
    ) -> Result<BusDelivery, StoreError> {
        let limits = self.bus_limits();
        let envelope = serde_json::to_string(&Envelope::Message {
            s: session.to_owned(),
            d: to.to_owned(),
            m: msg.to_owned(),
        })
        .unwrap_or_default();
        let mut c = self.conn.clone();
        let outcome: i64 = self
            .run(
                self.send
                    .key(self.member_key("presence", session, to))
                    .key(self.member_key("pending", session, to))
                    .arg(self.inbox_prefix())
                    .arg(envelope)
                    .arg(format!("{}:{msg}", unix_ms(now)))
                    .arg(limits.pending)
                    .arg(millis(limits.pending_ttl))
                    .arg(match mode {
                        SendMode::Route => "1",
                        SendMode::Keep => "0",
                    })
                    .invoke_async(&mut c),
            )
            .await?;
        Ok(match outcome {
            1 => BusDelivery::Published,
            0 => BusDelivery::Buffered,
            _ => BusDelivery::BufferFull,
        })
    }

    async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, StoreError> {
        let mut pubsub = self.run(self.client.get_async_pubsub()).await?;
        self.run(pubsub.subscribe(channel)).await?;
        Ok(pubsub)
    }

    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(StoreError::Redis)
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads inbox envelopes until the subscription ends or stops answering (pinged after
/// `check_every` without a message, the answer due within `timeout`); `false` when the
/// replica is gone.
async fn pump(
    pubsub: redis::aio::PubSub,
    deliver: &Deliver,
    check_every: Duration,
    timeout: Duration,
) -> bool {
    let (mut sink, mut messages) = pubsub.split();
    loop {
        let msg = match tokio::time::timeout(check_every, messages.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return true,
            Err(_) => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the Redis signaling subscription failed its check");
                    }
                    Err(_) => {
                        tracing::warn!(after = ?timeout, "the Redis signaling subscription did not answer its check");
                    }
                }
                return true;
            }
        };
        let Ok(text) = msg.get_payload::<String>() else {
            continue;
        };
        let event = match serde_json::from_str::<Envelope>(&text) {
            Ok(Envelope::Message { s, d, m }) => BusEvent::Message {
                session: s,
                to: d,
                msg: m,
            },
            Ok(Envelope::Replaced { s, d }) => BusEvent::Replaced { session: s, did: d },
            Err(e) => {
                tracing::warn!(error = %e, "unreadable signaling envelope from Redis dropped");
                continue;
            }
        };
        if !deliver(event) {
            return false;
        }
    }
}

impl SessionStore for RedisStore {
    fn put_challenge<'a>(
        &'a self,
        challenge: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let stored: i64 = self
                .run(
                    self.put_challenge
                        .key(self.key("challenge", challenge))
                        .key(format!("{}challenge-window", self.prefix))
                        .arg(millis(ttl))
                        .arg(self.max_challenges)
                        .invoke_async(&mut c),
                )
                .await?;
            if stored == 1 {
                Ok(())
            } else {
                Err(StoreError::Full(self.max_challenges))
            }
        })
    }

    fn take_challenge<'a>(&'a self, challenge: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("challenge", challenge);
            let removed: i64 = self.run(c.del(&key)).await?;
            Ok(removed == 1)
        })
    }

    fn create_session<'a>(
        &'a self,
        id: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("session", id);
            let set: Option<String> = self
                .run(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(ttl))
                        .query_async(&mut c),
                )
                .await?;
            Ok(set.is_some())
        })
    }

    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("session", id);
            let v: Option<String> = self.run(c.get(&key)).await?;
            Ok(v.map(|value| Stored { value }))
        })
    }

    fn replace_session<'a>(
        &'a self,
        id: &'a str,
        expected: &'a Stored,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("session", id);
            let swapped: i64 = self
                .run(
                    self.cas
                        .key(&key)
                        .arg(&expected.value)
                        .arg(value)
                        .arg(millis(ttl))
                        .invoke_async(&mut c),
                )
                .await?;
            Ok(swapped == 1)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            self.run(redis::cmd("PING").query_async::<String>(&mut c))
                .await
                .map(drop)
        })
    }

    fn bus(&self, limits: BusLimits) -> Option<Arc<dyn SignalBus>> {
        let mut bus = self.clone();
        bus.limits = Some(limits);
        Some(Arc::new(bus))
    }
}

impl SignalBus for RedisStore {
    fn listen<'a>(
        &'a self,
        replica: &'a str,
        deliver: Deliver,
    ) -> BoxFuture<'a, Result<tokio::task::JoinHandle<()>, StoreError>> {
        Box::pin(async move {
            let channel = format!("{}{replica}", self.inbox_prefix());
            let first = self.subscribe(&channel).await?;
            let bus = self.clone();
            Ok(tokio::spawn(async move {
                let mut pubsub = Some(first);
                let mut backoff = Duration::from_millis(100);
                loop {
                    if let Some(p) = pubsub.take() {
                        backoff = Duration::from_millis(100);
                        if !pump(p, &deliver, bus.check_every, bus.timeout).await {
                            return;
                        }
                        tracing::warn!("lost the Redis signaling subscription; resubscribing");
                    }
                    match bus.subscribe(&channel).await {
                        Ok(p) => {
                            tracing::info!("Redis signaling subscription restored");
                            if !deliver(BusEvent::Resubscribed) {
                                return;
                            }
                            pubsub = Some(p);
                        }
                        Err(e) => {
                            tracing::debug!(error = %crate::error_chain(&e), "Redis still unreachable");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            }))
        })
    }

    fn send<'a>(
        &'a self,
        session: &'a str,
        to: &'a str,
        msg: &'a str,
        now: SystemTime,
        mode: SendMode,
    ) -> BoxFuture<'a, Result<BusDelivery, StoreError>> {
        Box::pin(self.route(session, to, msg, now, mode))
    }

    fn attach<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Attached, StoreError>> {
        Box::pin(async move {
            let limits = self.bus_limits();
            let mut c = self.conn.clone();
            let (old, pending): (String, Vec<String>) = self
                .run(
                    self.attach
                        .key(self.member_key("presence", session, did))
                        .key(self.member_key("pending", session, did))
                        .arg(replica)
                        .arg(millis(limits.presence_ttl))
                        .invoke_async(&mut c),
                )
                .await?;
            let oldest = unix_ms(now).saturating_sub(millis(limits.pending_ttl));
            let pending = pending
                .into_iter()
                .filter_map(|entry| {
                    let (at, msg) = entry.split_once(':')?;
                    (at.parse::<u64>().ok()? >= oldest).then(|| msg.to_owned())
                })
                .collect();
            Ok(Attached {
                previous: (!old.is_empty()).then_some(old),
                pending,
            })
        })
    }

    fn replaced<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let envelope = serde_json::to_string(&Envelope::Replaced {
                s: session.to_owned(),
                d: did.to_owned(),
            })
            .unwrap_or_default();
            let mut c = self.conn.clone();
            let channel = format!("{}{replica}", self.inbox_prefix());
            self.run(c.publish::<_, _, i64>(channel, envelope))
                .await
                .map(drop)
        })
    }

    fn detach<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            self.run(
                self.if_mine
                    .key(self.member_key("presence", session, did))
                    .arg(replica)
                    .arg(0)
                    .invoke_async::<i64>(&mut c),
            )
            .await
            .map(drop)
        })
    }

    fn refresh<'a>(
        &'a self,
        replica: &'a str,
        members: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let ttl = millis(self.bus_limits().presence_ttl);
            for (session, did) in members {
                let mut c = self.conn.clone();
                self.run(
                    self.if_mine
                        .key(self.member_key("presence", session, did))
                        .arg(replica)
                        .arg(ttl)
                        .invoke_async::<i64>(&mut c),
                )
                .await?;
            }
            Ok(())
        })
    }
}
