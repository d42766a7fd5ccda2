//! The signaling hub: who is connected to which session, and a short
//! bounded buffer for members that are not connected yet.
//!
//! The hub only moves already-validated, already-stamped messages; the
//! WebSocket shell ([`crate::signal`]) decides who may send what. Every
//! queue is bounded: a connection's outbound queue (a slow reader gets its
//! messages refused back to the sender, not buffered without limit) and
//! each absent member's pending buffer (by count and by age).
//!
//! With several replicas ([`crate::store::SignalBus`]) the pending buffers
//! live in the shared store instead, and a connection starts out *syncing*:
//! messages other replicas deliver while its stored backlog is still being
//! fetched are held back (bounded) and queued after the backlog, so the
//! recipient sees each sender's messages in order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use identity::Did;
use tokio::sync::mpsc;

/// What the hub hands a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A message to send as a text frame.
    Text(Arc<str>),
    /// Another connection for the same DID took over; close this one.
    Replaced,
    /// Messages for this member may have been lost on their way between replicas; close
    /// this connection so the member reconnects and asks its peers to send again.
    Restart,
}

/// Limits of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Outbound queue per connection.
    pub queue: usize,
    /// Messages buffered per absent member.
    pub pending: usize,
    /// How long a buffered message waits for its recipient.
    pub pending_ttl: Duration,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            queue: 256,
            pending: 64,
            pending_ttl: Duration::from_secs(30),
        }
    }
}

/// Why a message could not be relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayRefused {
    /// The recipient is connected but not reading fast enough.
    #[error("{0} is not reading its messages fast enough; slow down and retry")]
    RecipientBacklogged(Did),
    /// The recipient is absent and its buffer is full.
    #[error("{0} is not connected and already has the most messages the broker buffers; retry once it connects")]
    BufferFull(Did),
}

/// How a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued to the recipient's connection.
    Sent,
    /// Buffered until the recipient connects.
    Buffered,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    /// `Some` until the stored backlog is queued: what arrived meanwhile.
    held: Option<Vec<Arc<str>>>,
}

impl Conn {
    fn offer(&mut self, msg: Arc<str>, limit: usize) -> Result<Delivery, Refusal> {
        if let Some(held) = &mut self.held {
            if held.len() >= limit {
                return Err(Refusal::Backlogged);
            }
            held.push(msg);
            return Ok(Delivery::Sent);
        }
        match self.tx.try_send(Outbound::Text(msg)) {
            Ok(()) => Ok(Delivery::Sent),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Refusal::Backlogged),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refusal::Gone),
        }
    }
}

enum Refusal {
    Backlogged,
    Gone,
}

#[derive(Debug, Default)]
struct Room {
    conns: HashMap<Did, Conn>,
    pending: HashMap<Did, VecDeque<(Instant, Arc<str>)>>,
}

/// A connection's registration: its id and its outbound queue.
#[derive(Debug)]
pub struct Registration {
    /// Identifies this connection (a newer one for the same DID replaces it).
    pub id: u64,
    /// Messages for this connection, starting with any that were buffered.
    pub rx: mpsc::Receiver<Outbound>,
}

/// The hub of one broker process.
#[derive(Debug)]
pub struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next: AtomicU64,
    limits: HubLimits,
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits) -> Self {
        Hub {
            rooms: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            limits,
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `did`'s connection to `session`, replacing (and closing)
    /// an earlier one, and hands it the messages buffered for it.
    pub fn connect(&self, session: &str, did: &Did, now: Instant) -> Registration {
        self.register(session, did, now, false)
    }

    /// Registers a connection whose backlog is kept elsewhere (the shared
    /// store): until [`synced`](Self::synced) hands it that backlog,
    /// messages for it are held back, not queued.
    pub fn connect_syncing(&self, session: &str, did: &Did, now: Instant) -> Registration {
        self.register(session, did, now, true)
    }

    fn register(&self, session: &str, did: &Did, now: Instant, syncing: bool) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        // Room for a full backlog plus a full hold-back, so neither is cut.
        let (tx, rx) = mpsc::channel(self.limits.queue.max(2 * self.limits.pending));
        let mut rooms = self.rooms();
        let room = rooms.entry(session.to_owned()).or_default();
        if let Some(pending) = room.pending.remove(did) {
            for (at, msg) in pending {
                if now.duration_since(at) <= self.limits.pending_ttl {
                    // Capacity is at least `pending`, so this cannot fail.
                    let _ = tx.try_send(Outbound::Text(msg));
                }
            }
        }
        let conn = Conn {
            id,
            tx,
            held: syncing.then(Vec::new),
        };
        if let Some(old) = room.conns.insert(did.clone(), conn) {
            // Best effort: if its queue is full the dropped sender closes it anyway.
            let _ = old.tx.try_send(Outbound::Replaced);
        }
        Registration { id, rx }
    }

    /// Queues a syncing connection's backlog, then what was held back
    /// meanwhile, and makes it live.
    pub fn synced(&self, session: &str, did: &Did, id: u64, backlog: Vec<Arc<str>>) {
        let mut rooms = self.rooms();
        let Some(conn) = rooms
            .get_mut(session)
            .and_then(|r| r.conns.get_mut(did))
            .filter(|c| c.id == id)
        else {
            return;
        };
        let held = conn.held.take().unwrap_or_default();
        for msg in backlog.into_iter().take(self.limits.pending).chain(held) {
            let _ = conn.tx.try_send(Outbound::Text(msg));
        }
    }

    /// Removes a connection unless a newer one replaced it; `true` if it
    /// was the member's current connection.
    pub fn disconnect(&self, session: &str, did: &Did, id: u64) -> bool {
        let mut rooms = self.rooms();
        let mut current = false;
        if let Some(room) = rooms.get_mut(session) {
            if room.conns.get(did).is_some_and(|c| c.id == id) {
                room.conns.remove(did);
                current = true;
            }
            if room.conns.is_empty() && room.pending.is_empty() {
                rooms.remove(session);
            }
        }
        current
    }

    /// Delivers to `to` only if it is connected to this process; `None`
    /// when it is not (the caller then uses the shared bus).
    pub fn deliver_local(
        &self,
        session: &str,
        to: &Did,
        msg: Arc<str>,
    ) -> Option<Result<Delivery, RelayRefused>> {
        self.deliver_local_str(session, to.as_str(), msg)
    }

    /// [`deliver_local`](Self::deliver_local) by the DID's string (what the
    /// bus carries).
    pub fn deliver_local_str(
        &self,
        session: &str,
        to: &str,
        msg: Arc<str>,
    ) -> Option<Result<Delivery, RelayRefused>> {
        let mut rooms = self.rooms();
        let room = rooms.get_mut(session)?;
        let (did, conn) = room.conns.iter_mut().find(|(d, _)| d.as_str() == to)?;
        match conn.offer(msg, self.limits.pending) {
            Ok(d) => Some(Ok(d)),
            Err(Refusal::Backlogged) => Some(Err(RelayRefused::RecipientBacklogged(did.clone()))),
            Err(Refusal::Gone) => {
                let did = did.clone();
                room.conns.remove(&did);
                None
            }
        }
    }

    /// Closes `did`'s connection here: it connected to another replica.
    pub fn replaced_elsewhere(&self, session: &str, did: &str) {
        let mut rooms = self.rooms();
        if let Some(room) = rooms.get_mut(session) {
            room.conns.retain(|d, conn| {
                if d.as_str() == did {
                    let _ = conn.tx.try_send(Outbound::Replaced);
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Closes every connection here with [`Outbound::Restart`] (the replica lost its inbox,
    /// and with it messages for any of them); returns how many. What arrives for them from
    /// now on waits for their reconnect.
    pub fn restart_all(&self) -> usize {
        let mut rooms = self.rooms();
        let mut n = 0;
        for room in rooms.values_mut() {
            for (_, conn) in room.conns.drain() {
                // A full queue: dropping `conn` still ends the connection once it drained.
                let _ = conn.tx.try_send(Outbound::Restart);
                n += 1;
            }
        }
        n
    }

    /// Every `(session, did)` connected to this process.
    pub fn members(&self) -> Vec<(String, String)> {
        self.rooms()
            .iter()
            .flat_map(|(s, room)| {
                room.conns
                    .keys()
                    .map(move |d| (s.clone(), d.as_str().to_owned()))
            })
            .collect()
    }

    /// Relays a stamped message to `to` in `session`.
    pub fn relay(
        &self,
        session: &str,
        to: &Did,
        msg: Arc<str>,
        now: Instant,
    ) -> Result<Delivery, RelayRefused> {
        let mut rooms = self.rooms();
        let room = rooms.entry(session.to_owned()).or_default();
        if let Some(conn) = room.conns.get_mut(to) {
            match conn.offer(msg.clone(), self.limits.pending) {
                Ok(d) => return Ok(d),
                Err(Refusal::Backlogged) => {
                    return Err(RelayRefused::RecipientBacklogged(to.clone()))
                }
                // The connection is going away; buffer for its successor.
                Err(Refusal::Gone) => {
                    room.conns.remove(to);
                }
            }
        }
        let ttl = self.limits.pending_ttl;
        let queue = room.pending.entry(to.clone()).or_default();
        while queue
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > ttl)
        {
            queue.pop_front();
        }
        if queue.len() >= self.limits.pending {
            return Err(RelayRefused::BufferFull(to.clone()));
        }
        queue.push_back((now, msg));
        Ok(Delivery::Buffered)
    }

    /// Drops expired buffers and empty rooms; returns how many connections
    /// are open.
    pub fn sweep(&self, now: Instant) -> usize {
        let ttl = self.limits.pending_ttl;
        let mut rooms = self.rooms();
        rooms.retain(|_, room| {
            room.pending.retain(|_, q| {
                q.retain(|(at, _)| now.duration_since(*at) <= ttl);
                !q.is_empty()
            });
            !(room.conns.is_empty() && room.pending.is_empty())
        });
        rooms.values().map(|r| r.conns.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity::Keypair;

    fn did(n: u8) -> Did {
        Keypair::from_seed(&[n; 32]).did()
    }

    fn text(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn messages_for_an_absent_member_wait_and_arrive_when_it_connects() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        assert_eq!(
            hub.relay("s", &did(2), text("a"), t0),
            Ok(Delivery::Buffered)
        );
        assert_eq!(
            hub.relay("s", &did(2), text("b"), t0),
            Ok(Delivery::Buffered)
        );
        let mut reg = hub.connect("s", &did(2), t0);
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text("a")));
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text("b")));
        assert_eq!(hub.relay("s", &did(2), text("c"), t0), Ok(Delivery::Sent));
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text("c")));
    }

    #[test]
    fn buffered_messages_expire_and_the_buffer_is_bounded() {
        let limits = HubLimits {
            queue: 4,
            pending: 2,
            pending_ttl: Duration::from_secs(30),
        };
        let hub = Hub::new(limits);
        let t0 = Instant::now();
        hub.relay("s", &did(2), text("old"), t0).unwrap();
        hub.relay("s", &did(2), text("old2"), t0).unwrap();
        assert_eq!(
            hub.relay("s", &did(2), text("x"), t0),
            Err(RelayRefused::BufferFull(did(2)))
        );
        let later = t0 + Duration::from_secs(31);
        assert_eq!(
            hub.relay("s", &did(2), text("new"), later),
            Ok(Delivery::Buffered)
        );
        let mut reg = hub.connect("s", &did(2), later);
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text("new")));
        assert!(reg.rx.try_recv().is_err());
    }

    #[test]
    fn a_second_connection_replaces_the_first_cleanly() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        let mut first = hub.connect("s", &did(2), t0);
        let mut second = hub.connect("s", &did(2), t0);
        assert_eq!(first.rx.try_recv().unwrap(), Outbound::Replaced);
        // The first connection's late disconnect must not remove the second.
        hub.disconnect("s", &did(2), first.id);
        assert_eq!(hub.relay("s", &did(2), text("m"), t0), Ok(Delivery::Sent));
        assert_eq!(second.rx.try_recv().unwrap(), Outbound::Text(text("m")));
    }

    #[test]
    fn a_recipient_that_does_not_read_gets_backpressure_not_unbounded_memory() {
        // The queue holds at least a full backlog plus a full hold-back (2 × pending).
        let limits = HubLimits {
            queue: 4,
            pending: 2,
            pending_ttl: Duration::from_secs(30),
        };
        let hub = Hub::new(limits);
        let t0 = Instant::now();
        let _reg = hub.connect("s", &did(2), t0);
        for m in ["1", "2", "3", "4"] {
            hub.relay("s", &did(2), text(m), t0).unwrap();
        }
        assert_eq!(
            hub.relay("s", &did(2), text("5"), t0),
            Err(RelayRefused::RecipientBacklogged(did(2)))
        );
    }

    #[test]
    fn a_syncing_connection_gets_its_backlog_before_what_arrived_meanwhile() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        let mut reg = hub.connect_syncing("s", &did(2), t0);
        assert_eq!(
            hub.deliver_local("s", &did(2), text("new")),
            Some(Ok(Delivery::Sent))
        );
        assert!(reg.rx.try_recv().is_err(), "held back until synced");
        hub.synced("s", &did(2), reg.id, vec![text("old1"), text("old2")]);
        for want in ["old1", "old2", "new"] {
            assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text(want)));
        }
        assert_eq!(
            hub.deliver_local("s", &did(2), text("later")),
            Some(Ok(Delivery::Sent))
        );
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Text(text("later")));
        assert_eq!(hub.deliver_local("s", &did(3), text("x")), None);
    }

    #[test]
    fn a_member_that_connected_elsewhere_is_closed_here() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        let mut reg = hub.connect("s", &did(2), t0);
        assert_eq!(hub.members(), vec![("s".to_owned(), did(2).to_string())]);
        hub.replaced_elsewhere("s", did(2).as_str());
        assert_eq!(reg.rx.try_recv().unwrap(), Outbound::Replaced);
        assert!(hub.members().is_empty());
        assert!(!hub.disconnect("s", &did(2), reg.id));
    }

    #[test]
    fn a_restart_closes_every_member_and_keeps_what_comes_next_for_their_reconnect() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        let mut a = hub.connect("s", &did(2), t0);
        let mut b = hub.connect("t", &did(3), t0);
        assert_eq!(hub.restart_all(), 2);
        assert_eq!(a.rx.try_recv().unwrap(), Outbound::Restart);
        assert_eq!(b.rx.try_recv().unwrap(), Outbound::Restart);
        assert!(hub.members().is_empty());
        assert_eq!(
            hub.relay("s", &did(2), text("m"), t0),
            Ok(Delivery::Buffered)
        );
        let mut again = hub.connect("s", &did(2), t0);
        assert_eq!(again.rx.try_recv().unwrap(), Outbound::Text(text("m")));
    }

    #[test]
    fn sweep_forgets_empty_rooms_and_expired_buffers() {
        let hub = Hub::new(HubLimits::default());
        let t0 = Instant::now();
        hub.relay("s", &did(2), text("a"), t0).unwrap();
        let reg = hub.connect("t", &did(3), t0);
        assert_eq!(hub.sweep(t0 + Duration::from_secs(60)), 1);
        hub.disconnect("t", &did(3), reg.id);
        assert_eq!(hub.sweep(t0 + Duration::from_secs(60)), 0);
        assert!(hub.rooms().is_empty());
    }
}
