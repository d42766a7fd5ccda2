//! Where the broker keeps state: single-use challenges and session records.
//!
//! [`SessionStore`] is deliberately small — a key/value store with
//! expiry, an atomic take for challenges and compare-and-swap for sessions —
//! so that the two implementations ([`MemoryStore`], the zero-set-up default,
//! and [`RedisStore`], for several replicas) have the same semantics and are
//! tested by the same suite. All session logic lives above it, in pure code
//! ([`crate::session`]), and is written against these three operations.

mod memory;
mod redis;

use std::time::Duration;

use futures_util::future::BoxFuture;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// The store could not be reached or answered nonsense. Callers report it
/// as a 503; it never means "no such key".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis refused or failed the command.
    #[error("redis: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// The store did not answer in time.
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    /// The in-memory store is at its configured bound.
    #[error("the store holds its maximum of {0} entries")]
    Full(usize),
}

/// A stored session: its serialized record, which the next compare-and-swap
/// presents as the value it expects to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The serialized record.
    pub value: String,
}

/// State shared by broker replicas.
///
/// Keys are the broker's own (session ids and challenge strings it minted);
/// values are opaque strings. Every entry has a time to live.
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records a challenge that [`take_challenge`](Self::take_challenge) may
    /// consume once within `ttl`.
    fn put_challenge<'a>(
        &'a self,
        challenge: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Atomically consumes a challenge: `true` exactly once for a challenge
    /// that was put and has not expired, across every replica sharing the store.
    fn take_challenge<'a>(&'a self, challenge: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Creates a session record; `false` if the id is taken.
    fn create_session<'a>(
        &'a self,
        id: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Reads a session record.
    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Replaces a session record if it still equals `expected`; `false` if
    /// someone else changed it first (reload and retry) or it is gone.
    fn replace_session<'a>(
        &'a self,
        id: &'a str,
        expected: &'a Stored,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Checks the store answers (for `/healthz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}
