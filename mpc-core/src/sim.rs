//! In-memory n-party simulation: a full mesh of bounded channels, one thread per party.
//!
//! The futures returned by [`MemoryTransport`] complete without ever returning `Pending`: they
//! block the calling thread (with a timeout) instead. That keeps the simulation free of any async
//! runtime; drive each party on its own thread, as [`simulate`] does.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::transport::{Transport, TransportError};

/// Settings of the simulated network.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Messages each directed link holds before the sender gets
    /// [`TransportError::Backpressure`]. The engine keeps at most two messages in flight per link.
    pub capacity: usize,
    /// How long `recv` waits before [`TransportError::Timeout`].
    pub timeout: Duration,
    /// Largest message accepted.
    pub max_message: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            capacity: 16,
            timeout: Duration::from_secs(10),
            max_message: 64 << 20,
        }
    }
}

/// One party's end of the simulated mesh.
#[derive(Debug)]
pub struct MemoryTransport {
    me: usize,
    to: Vec<Option<SyncSender<Vec<u8>>>>,
    from: Vec<Option<Receiver<Vec<u8>>>>,
    config: SimConfig,
}

/// Builds a full mesh among `m` parties; element `i` is party `i`'s endpoint. Dropping an
/// endpoint is how a test makes a party disappear.
pub fn memory_mesh(m: usize, config: &SimConfig) -> Vec<MemoryTransport> {
    let mut to: Vec<Vec<Option<SyncSender<Vec<u8>>>>> =
        (0..m).map(|_| (0..m).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<Option<Receiver<Vec<u8>>>>> =
        (0..m).map(|_| (0..m).map(|_| None).collect()).collect();
    for i in 0..m {
        for j in 0..m {
            if i != j {
                let (tx, rx) = sync_channel(config.capacity);
                to[i][j] = Some(tx);
                from[j][i] = Some(rx);
            }
        }
    }
    to.into_iter()
        .zip(from)
        .enumerate()
        .map(|(me, (to, from))| MemoryTransport {
            me,
            to,
            from,
            config: config.clone(),
        })
        .collect()
}

impl MemoryTransport {
    fn send_now(&mut self, to: usize, msg: Vec<u8>) -> Result<(), TransportError> {
        let parties = self.to.len();
        if msg.len() > self.config.max_message {
            return Err(TransportError::TooLarge {
                party: to,
                len: msg.len(),
                max: self.config.max_message,
            });
        }
        let tx = self
            .to
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(TransportError::NoSuchParty { party: to, parties })?;
        tx.try_send(msg).map_err(|e| match e {
            TrySendError::Full(_) => TransportError::Backpressure { party: to },
            TrySendError::Disconnected(_) => TransportError::Closed { party: to },
        })
    }

    fn recv_now(&mut self, from: usize) -> Result<Vec<u8>, TransportError> {
        let parties = self.from.len();
        let timeout = self.config.timeout;
        let rx =
            self.from
                .get(from)
                .and_then(Option::as_ref)
                .ok_or(TransportError::NoSuchParty {
                    party: from,
                    parties,
                })?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => TransportError::Timeout {
                party: from,
                after: timeout,
            },
            RecvTimeoutError::Disconnected => TransportError::Closed { party: from },
        })
    }
}

impl Transport for MemoryTransport {
    fn party_count(&self) -> usize {
        self.to.len()
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        let r = self.send_now(to, msg);
        Box::pin(async move { r })
    }
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let r = self.recv_now(from);
        Box::pin(async move { r })
    }
}

/// Runs `party(transport)` for every party of a fresh mesh, each on its own thread, and returns
/// the results in party order. A panicking party is reported as `None`.
pub fn simulate<T, F, Fut>(m: usize, config: &SimConfig, party: F) -> Vec<Option<T>>
where
    T: Send + 'static,
    F: Fn(MemoryTransport) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = T>,
{
    let handles: Vec<_> = memory_mesh(m, config)
        .into_iter()
        .map(|tr| {
            let f = party.clone();
            thread::spawn(move || futures::executor::block_on(f(tr)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().ok()).collect()
}
