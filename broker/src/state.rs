//! The broker's shared state and the session operations the HTTP and
//! WebSocket handlers are built from.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use identity::{Did, Keypair};
use rand::RngCore;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{OrganizerPolicy, SignalLimits};
use crate::ice::IceConfig;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::relay::Hub;
use crate::schemas::Schemas;
use crate::session::{FreezeReason, SessionRecord};
use crate::store::{BusDelivery, SendMode, SessionStore, SignalBus, Stored};
use crate::verify::VerifyPool;

/// How often a roster long-poll looks at the store when no local freeze
/// woke it (another replica may have frozen the roster).
const ROSTER_POLL: Duration = Duration::from_millis(250);
/// Compare-and-swap attempts before giving up on a contended session.
const CAS_ATTEMPTS: usize = 32;
/// Sessions stay in the store this long after they expire, so late
/// requests get "expired" rather than "unknown".
const EXPIRED_GRACE: Duration = Duration::from_secs(3600);

/// The injected source of randomness.
pub(crate) struct Rand(pub(crate) Box<dyn RngCore + Send>);

impl std::fmt::Debug for Rand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rand(..)")
    }
}

/// Everything a handler needs.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) key: Keypair,
    pub(crate) did: Did,
    pub(crate) domain: String,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Mutex<Rand>,
    pub(crate) schemas: Schemas,
    pub(crate) pool: VerifyPool,
    pub(crate) hub: Hub,
    /// Signaling between replicas, when the store is shared.
    pub(crate) bus: Option<Arc<dyn SignalBus>>,
    /// This replica's name on the bus (random per process).
    pub(crate) replica: String,
    pub(crate) metrics: Metrics,
    pub(crate) organizers: OrganizerPolicy,
    pub(crate) ice: IceConfig,
    pub(crate) signal: SignalLimits,
    pub(crate) challenge_ttl: Duration,
    pub(crate) token_ttl: Duration,
    pub(crate) max_body: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) roster_frozen: Notify,
}

impl State {
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    pub(crate) fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .fill_bytes(&mut b);
        b
    }

    pub(crate) fn with_rng<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut *rng.0)
    }

    /// How long the store keeps a session.
    pub(crate) fn session_ttl(&self, rec: &SessionRecord) -> Duration {
        let expires =
            identity::parse_timestamp(&rec.manifest.expires).unwrap_or(SystemTime::UNIX_EPOCH);
        expires
            .duration_since(self.now())
            .unwrap_or_default()
            .saturating_add(EXPIRED_GRACE)
    }

    async fn load_raw(&self, id: &str) -> Result<(Stored, SessionRecord), Problem> {
        if !crate::session::valid_id(id) {
            return Err(unknown(id));
        }
        let stored = self
            .store
            .get_session(id)
            .await?
            .ok_or_else(|| unknown(id))?;
        let rec: SessionRecord = serde_json::from_str(&stored.value).map_err(|e| {
            tracing::error!(session = id, error = %e, "stored session record does not parse");
            Problem::unavailable(
                "store_corrupt",
                format!("the stored record of session {id} cannot be read; report this to the broker operator"),
            )
        })?;
        Ok((stored, rec))
    }

    /// Loads a session, freezing it first if its join deadline passed with
    /// enough members (so every reader sees the same roster).
    pub(crate) async fn load(&self, id: &str) -> Result<SessionRecord, Problem> {
        let (_, rec) = self.load_raw(id).await?;
        if rec.freeze_due(self.now()) == Some(FreezeReason::Deadline) {
            let (_, rec) = self
                .update(id, |rec, now| {
                    if let Some(reason) = rec.freeze_due(now) {
                        self.freeze(rec, reason, now)?;
                    }
                    Ok(())
                })
                .await?;
            return Ok(rec);
        }
        Ok(rec)
    }

    /// Applies `f` to a session under compare-and-swap, retrying when a
    /// concurrent writer (another worker or replica) got there first.
    pub(crate) async fn update<T>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut SessionRecord, SystemTime) -> Result<T, Problem>,
    ) -> Result<(T, SessionRecord), Problem> {
        for _ in 0..CAS_ATTEMPTS {
            let (stored, mut rec) = self.load_raw(id).await?;
            let before = rec.clone();
            let out = f(&mut rec, self.now())?;
            if rec == before {
                return Ok((out, rec));
            }
            let value = serde_json::to_string(&rec).map_err(|e| {
                Problem::unavailable(
                    "store_corrupt",
                    format!("cannot serialize session {id}: {e}"),
                )
            })?;
            let ttl = self.session_ttl(&rec);
            if self.store.replace_session(id, &stored, &value, ttl).await? {
                if rec.roster.is_some() && before.roster.is_none() {
                    self.metrics.session("frozen");
                    self.roster_frozen.notify_waiters();
                }
                return Ok((out, rec));
            }
        }
        Err(Problem::unavailable(
            "store_contention",
            format!("session {id} is being changed by many requests at once; try again"),
        ))
    }

    /// Signs and installs the roster.
    pub(crate) fn freeze(
        &self,
        rec: &mut SessionRecord,
        reason: FreezeReason,
        now: SystemTime,
    ) -> Result<(), Problem> {
        rec.freeze(&self.key, reason, now).map(drop).map_err(|e| {
            Problem::unavailable(
                "signing_failed",
                format!(
                    "the broker could not sign the roster: {}",
                    crate::error_chain(&e)
                ),
            )
        })
    }

    /// Waits up to `wait` for the roster of `id` to freeze.
    pub(crate) async fn wait_for_roster(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<SessionRecord, Problem> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.roster_frozen.notified();
            let rec = self.load(id).await?;
            let now = tokio::time::Instant::now();
            if rec.roster.is_some() || now >= until {
                return Ok(rec);
            }
            let nap = ROSTER_POLL.min(until - now);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }
}

/// Why a stamped message was not relayed (each has a stable error code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayFailure {
    /// The recipient is connected but not reading.
    Backlogged(String),
    /// The recipient is absent and its buffer is full.
    BufferFull(String),
    /// The shared store did not take the message.
    Store(String),
}

impl RelayFailure {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            RelayFailure::Backlogged(_) => "recipient_backlogged",
            RelayFailure::BufferFull(_) => "recipient_buffer_full",
            RelayFailure::Store(_) => "store_unavailable",
        }
    }

    pub(crate) fn detail(&self) -> &str {
        match self {
            RelayFailure::Backlogged(d) | RelayFailure::BufferFull(d) | RelayFailure::Store(d) => d,
        }
    }
}

impl State {
    /// Relays a stamped message: to the recipient's connection here, else
    /// (several replicas) over the bus, else into this process's buffer.
    pub(crate) async fn relay(
        &self,
        session: &str,
        to: &Did,
        msg: String,
    ) -> Result<(), RelayFailure> {
        use crate::relay::RelayRefused;
        let refused = |e: RelayRefused| match e {
            RelayRefused::RecipientBacklogged(_) => RelayFailure::Backlogged(e.to_string()),
            RelayRefused::BufferFull(_) => RelayFailure::BufferFull(e.to_string()),
        };
        let Some(bus) = &self.bus else {
            return self
                .hub
                .relay(session, to, Arc::from(msg), std::time::Instant::now())
                .map(drop)
                .map_err(refused);
        };
        let msg: Arc<str> = Arc::from(msg);
        if let Some(local) = self.hub.deliver_local(session, to, msg.clone()) {
            return local.map(drop).map_err(refused);
        }
        match bus
            .send(
                session,
                to.as_str(),
                &msg,
                SystemTime::now(),
                SendMode::Route,
            )
            .await
        {
            Ok(BusDelivery::Published | BusDelivery::Buffered) => Ok(()),
            Ok(BusDelivery::BufferFull) => Err(refused(RelayRefused::BufferFull(to.clone()))),
            Err(e) => Err(RelayFailure::Store(format!(
                "the broker's shared store did not take the message ({}); retry shortly",
                crate::error_chain(&e)
            ))),
        }
    }

    /// Registers a signaling connection; with several replicas, claims the
    /// member's presence and queues what waited for it in the store.
    pub(crate) async fn attach(
        &self,
        session: &str,
        did: &Did,
    ) -> Result<crate::relay::Registration, Problem> {
        let now = std::time::Instant::now();
        let Some(bus) = &self.bus else {
            return Ok(self.hub.connect(session, did, now));
        };
        let reg = self.hub.connect_syncing(session, did, now);
        match bus
            .attach(&self.replica, session, did.as_str(), SystemTime::now())
            .await
        {
            Ok(found) => {
                let backlog = found.pending.into_iter().map(Arc::from).collect();
                self.hub.synced(session, did, reg.id, backlog);
                if let Some(prev) = found.previous.filter(|p| *p != self.replica) {
                    if let Err(e) = bus.replaced(&prev, session, did.as_str()).await {
                        tracing::warn!(error = %crate::error_chain(&e), "could not tell replica {prev} to close a replaced connection");
                    }
                }
                Ok(reg)
            }
            Err(e) => {
                self.hub.disconnect(session, did, reg.id);
                Err(Problem::from(e))
            }
        }
    }

    /// Unregisters a signaling connection (and its presence, if still ours).
    pub(crate) async fn detach(&self, session: &str, did: &Did, id: u64) {
        let current = self.hub.disconnect(session, did, id);
        if let (true, Some(bus)) = (current, &self.bus) {
            if let Err(e) = bus.detach(&self.replica, session, did.as_str()).await {
                tracing::warn!(error = %crate::error_chain(&e), "could not clear a signaling presence; it expires by itself");
            }
        }
    }
}

fn unknown(id: &str) -> Problem {
    Problem::not_found(
        "unknown_session",
        format!("there is no session {id:?} on this broker (it may have expired); check the id"),
    )
}
