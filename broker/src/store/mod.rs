//! Where the broker keeps state: single-use challenges and session records.
//!
//! [`SessionStore`] is deliberately small — a key/value store with
//! expiry, an atomic take for challenges and compare-and-swap for sessions —
//! so that the two implementations ([`MemoryStore`], the zero-set-up default,
//! and [`RedisStore`], for several replicas) have the same semantics and are
//! tested by the same suite. All session logic lives above it, in pure code
//! ([`crate::session`]), and is written against these three operations.
//!
//! A store that several replicas share also carries signaling between
//! them: [`SessionStore::bus`] hands out a [`SignalBus`] (Redis: presence
//! keys, a pending list per absent member, and one pub/sub inbox channel per
//! replica). The in-memory store has none: its one process is the only replica.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// The store is at its configured bound (in memory: live entries; on Redis: challenges
    /// issued per challenge lifetime).
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

    /// Signaling between replicas that share this store; `None` when this
    /// process is the only replica (the in-memory store).
    fn bus(&self, limits: BusLimits) -> Option<Arc<dyn SignalBus>> {
        let _ = limits;
        None
    }
}

/// Bounds of the cross-replica signaling state.
#[derive(Debug, Clone, Copy)]
pub struct BusLimits {
    /// Messages kept per member that no replica has connected.
    pub pending: usize,
    /// How long such a message waits.
    pub pending_ttl: Duration,
    /// How long a replica's claim to a member's connection lasts unless it is
    /// refreshed (a replica that dies loses its members after this).
    pub presence_ttl: Duration,
}

/// How [`SignalBus::send`] routes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// From the sender's replica, which does not have the recipient
    /// connected: published to the replica that has it, else buffered.
    Route,
    /// From a replica the recipient left just before the message arrived:
    /// only buffered, so the member receives it when it connects again,
    /// wherever. Never publishes, so a message cannot bounce, and leaves
    /// every presence claim alone.
    Keep,
}

/// How a message sent over the bus went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusDelivery {
    /// Published to the replica the recipient is connected to.
    Published,
    /// No replica has the recipient: kept until it connects.
    Buffered,
    /// No replica has the recipient and its pending list is full.
    BufferFull,
}

/// What a replica's inbox receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A stamped message for a member connected here.
    Message {
        /// Session id.
        session: String,
        /// The recipient's DID.
        to: String,
        /// The message as relayed.
        msg: String,
    },
    /// The member connected to another replica; close its connection here.
    Replaced {
        /// Session id.
        session: String,
        /// The member's DID.
        did: String,
    },
    /// The inbox was lost (the store restarted, or the subscription went
    /// silent) and is subscribed again: messages for the replica's members
    /// may have been lost and presence claims dropped meanwhile, so the
    /// replica closes its members' connections with 1012; they reconnect,
    /// claim their presence again and ask their peers to resend.
    Resubscribed,
}

/// What connecting a member to a replica found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The replica that had the member before, if any (it must close its
    /// connection).
    pub previous: Option<String>,
    /// Messages that waited for the member, oldest first.
    pub pending: Vec<String>,
}

/// Called for each event of a replica's inbox, in order; returns `false`
/// once the replica is gone, which stops the listener.
pub type Deliver = Arc<dyn Fn(BusEvent) -> bool + Send + Sync>;

/// Signaling between broker replicas.
///
/// Every member connected anywhere has a presence entry naming its replica
/// (refreshed while it stays); a message for a member goes to that
/// replica's inbox, or — when no replica has it, or that replica is gone —
/// to a bounded pending list the member receives when it connects. Sending
/// and connecting are each one atomic step in the store, so a message is
/// either published to a live replica or buffered, never neither.
pub trait SignalBus: Send + Sync + std::fmt::Debug + 'static {
    /// Subscribes `replica`'s inbox and returns once it is subscribed;
    /// afterwards a background task keeps (re)subscribing, across store
    /// restarts, until `deliver` returns `false` or the task is aborted
    /// (which unsubscribes: the replica is gone).
    fn listen<'a>(
        &'a self,
        replica: &'a str,
        deliver: Deliver,
    ) -> BoxFuture<'a, Result<tokio::task::JoinHandle<()>, StoreError>>;

    /// Sends a stamped message to `to` in `session`, as `mode` says: to the
    /// replica that has the member, or into its pending list.
    fn send<'a>(
        &'a self,
        session: &'a str,
        to: &'a str,
        msg: &'a str,
        now: SystemTime,
        mode: SendMode,
    ) -> BoxFuture<'a, Result<BusDelivery, StoreError>>;

    /// Records that `did` is connected to `replica` and takes the messages
    /// that waited for it.
    fn attach<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Attached, StoreError>>;

    /// Tells `replica` that `did` connected elsewhere.
    fn replaced<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets `did`'s presence if `replica` still holds it.
    fn detach<'a>(
        &'a self,
        replica: &'a str,
        session: &'a str,
        did: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Extends `replica`'s presence for these `(session, did)` members.
    fn refresh<'a>(
        &'a self,
        replica: &'a str,
        members: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
