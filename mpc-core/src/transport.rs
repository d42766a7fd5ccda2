//! The delivery interface the engine runs over.

use std::time::Duration;

use futures::future::BoxFuture;

/// Errors a [`Transport`] reports. Every variant names the peer involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed its end or disappeared.
    #[error("party {party} disconnected")]
    Closed {
        /// The peer.
        party: usize,
    },
    /// Nothing arrived from the peer within the transport's receive timeout.
    #[error("party {party} sent nothing for {after:?}")]
    Timeout {
        /// The peer.
        party: usize,
        /// How long we waited.
        after: Duration,
    },
    /// The peer does not drain its queue (bounded queues never grow without limit).
    #[error("queue to party {party} is full")]
    Backpressure {
        /// The peer.
        party: usize,
    },
    /// A message larger than the transport accepts.
    #[error("message of {len} bytes for/from party {party} exceeds the limit of {max}")]
    TooLarge {
        /// The peer.
        party: usize,
        /// Size of the message.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// There is no such party.
    #[error("no party {party} (there are {parties})")]
    NoSuchParty {
        /// The index asked for.
        party: usize,
        /// Number of parties.
        parties: usize,
    },
    /// An I/O error on the link to the peer.
    #[error("I/O error on the link to party {party}")]
    Io {
        /// The peer.
        party: usize,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// The party the error is about.
    pub fn party(&self) -> usize {
        match self {
            TransportError::Closed { party }
            | TransportError::Timeout { party, .. }
            | TransportError::Backpressure { party }
            | TransportError::TooLarge { party, .. }
            | TransportError::NoSuchParty { party, .. }
            | TransportError::Io { party, .. } => *party,
        }
    }
}

/// Point-to-point message delivery between the `m` parties of one computation.
///
/// What an implementation must guarantee, per ordered pair of parties:
/// - **reliable and ordered**: messages from `i` to `j` arrive exactly once, in sending order;
/// - **authenticated and private**: `recv(j)` only returns bytes that party `j` sent to us, and
///   nobody else can read them. The engine does no cryptography on the wire; Shamir shares sent in
///   the clear over an unauthenticated link break all security. (The WebRTC mesh gets this from
///   DID-bound DTLS; the benchmark's TCP transport only runs on loopback.)
/// - **bounded**: queues are bounded, and `recv` gives up with [`TransportError::Timeout`] after a
///   bounded time. The engine never waits on anything but the transport, so this is what turns a
///   vanished peer into an error instead of a hang.
///
/// The engine never sends to itself. It matches messages to protocol rounds by a header it checks
/// itself, so a transport needs no notion of rounds.
pub trait Transport: Send {
    /// Number of parties `m`.
    fn party_count(&self) -> usize;
    /// Our index in `0..m`.
    fn party_index(&self) -> usize;
    /// Queues `msg` for party `to`.
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>>;
    /// The next message from party `from`.
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn party_count(&self) -> usize {
        (**self).party_count()
    }
    fn party_index(&self) -> usize {
        (**self).party_index()
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        (**self).send(to, msg)
    }
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        (**self).recv(from)
    }
}
