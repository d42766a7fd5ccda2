//! The shared store: Redis, for several broker replicas.
//!
//! Challenges are keys consumed with `DEL` (atomic: exactly one caller sees
//! 1); sessions are JSON strings replaced by a Lua compare-and-swap, so two
//! replicas admitting parties to one session at once never lose a member.

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{SessionStore, StoreError, Stored};

const CAS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Redis-backed [`SessionStore`].
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    cas: Script,
}

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
            conn,
            prefix: prefix.to_owned(),
            timeout,
            cas: Script::new(CAS),
        };
        store.ping().await?;
        Ok(store)
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
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

impl SessionStore for RedisStore {
    fn put_challenge<'a>(
        &'a self,
        challenge: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let key = self.key("challenge", challenge);
            self.run(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async::<()>(&mut c),
            )
            .await
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
}
