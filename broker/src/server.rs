//! Building and running the service: key, store, state, routes, workers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::{ServerHandle, Service as _};
use actix_web::{web, App, HttpServer};
use identity::{Did, Keypair};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::Notify;

use crate::api;
use crate::clock::{Clock, SystemClock};
use crate::config::{BrokerConfig, StartupWait, StoreConfig};
use crate::ice::IceConfig;
use crate::metrics::Metrics;
use crate::relay::{Hub, HubLimits};
use crate::schemas::Schemas;
use crate::signal;
use crate::state::State;
use crate::store::{
    BusDelivery, BusEvent, BusLimits, MemoryStore, RedisStore, SendMode, SessionStore, StoreError,
};
use crate::verify::VerifyPool;

/// How long one presentation check may take, queueing included.
const VERIFY_DEADLINE: Duration = Duration::from_secs(10);
/// How long Redis gets to answer one command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often buffers are swept and presence claims refreshed.
const SWEEP: Duration = Duration::from_secs(10);

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The key file could not be read or created.
    #[error("broker key file {path}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: identity::KeyFileError,
    },
    /// The store is unreachable.
    #[error("the session store is unreachable")]
    Store(#[source] StoreError),
    /// The schemas do not compile (a build defect).
    #[error("embedded schemas")]
    Schemas(#[source] crate::schemas::SchemaError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A broker being set up: configuration plus injected parts.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn SessionStore>>,
    key: Option<Keypair>,
    rng: Option<crate::state::Rand>,
}

/// A running broker.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    did: Did,
    domain: String,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The signaling bus listener (several replicas only).
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Broker {
    /// A broker with this configuration, the system clock and the store the
    /// configuration names.
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            config,
            clock: Arc::new(SystemClock),
            store: None,
            key: None,
            rng: None,
        }
    }

    /// Uses another clock (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this store instead of the configured one.
    pub fn with_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses this key instead of the key file.
    pub fn with_key(mut self, key: Keypair) -> Self {
        self.key = Some(key);
        self
    }

    /// Uses this source of randomness (challenges, ids, token ids).
    pub fn with_rng(mut self, rng: Box<dyn RngCore + Send>) -> Self {
        self.rng = Some(crate::state::Rand(rng));
        self
    }

    fn load_key(&mut self) -> Result<Keypair, StartError> {
        if let Some(k) = self.key.take() {
            return Ok(k);
        }
        let Some(path) = &self.config.key_file else {
            return Ok(Keypair::generate(&mut rand::rngs::OsRng));
        };
        let err = |source| StartError::Key {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            identity::keyfile::load(path).map_err(err)
        } else {
            let key = Keypair::generate(&mut rand::rngs::OsRng);
            identity::keyfile::write(path, &key).map_err(err)?;
            tracing::info!(path = %path.display(), did = %key.did(), "created a new broker key");
            Ok(key)
        }
    }

    async fn open_store(&self) -> Result<Arc<dyn SessionStore>, StartError> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        let StoreConfig::Redis { url, prefix } = &self.config.store else {
            return Ok(Arc::new(MemoryStore::default()));
        };
        let deadline = match self.config.startup_wait {
            StartupWait::Fail => None,
            StartupWait::Wait(d) => Some(Instant::now() + d),
        };
        loop {
            match RedisStore::connect(url, prefix, REDIS_TIMEOUT).await {
                Ok(s) => return Ok(Arc::new(s)),
                Err(e) => match deadline {
                    Some(d) if Instant::now() < d => {
                        tracing::warn!(error = %crate::error_chain(&e), "Redis not reachable yet; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    _ => return Err(StartError::Store(e)),
                },
            }
        }
    }

    /// Starts serving; returns once the socket is bound.
    pub async fn start(mut self) -> Result<Running, StartError> {
        let key = self.load_key()?;
        let store = self.open_store().await?;
        let did = key.did();
        let c = &self.config;
        let domain = c.domain.clone().unwrap_or_else(|| did.to_string());
        let mut rng = self
            .rng
            .take()
            .unwrap_or_else(|| crate::state::Rand(Box::new(StdRng::from_entropy())));
        let mut replica = [0u8; 8];
        rng.0.fill_bytes(&mut replica);
        let replica: String = replica.iter().map(|b| format!("{b:02x}")).collect();
        // A replica's claim on a connection outlives three sweeps.
        let bus = store.bus(BusLimits {
            pending: c.signal.pending,
            pending_ttl: c.signal.pending_ttl,
            presence_ttl: SWEEP * 3,
        });
        let state = web::Data::new(State {
            key,
            did: did.clone(),
            domain: domain.clone(),
            store,
            clock: self.clock.clone(),
            rng: Mutex::new(rng),
            schemas: Schemas::load().map_err(StartError::Schemas)?,
            pool: VerifyPool::new(c.verify_permits, VERIFY_DEADLINE),
            hub: Hub::new(HubLimits {
                queue: c.signal.queue,
                pending: c.signal.pending,
                pending_ttl: c.signal.pending_ttl,
            }),
            bus: bus.clone(),
            replica: replica.clone(),
            metrics: Metrics::default(),
            organizers: c.organizers.clone(),
            ice: IceConfig {
                stun: c.stun.clone(),
                turn: c.turn.clone(),
                turn_secret: c.turn_secret.clone(),
                turn_ttl: c.turn_ttl,
            },
            signal: c.signal,
            challenge_ttl: c.challenge_ttl,
            token_ttl: c.token_ttl,
            max_body: c.max_body,
            body_timeout: c.body_timeout,
            roster_frozen: Notify::new(),
        });
        let mut listener = None;
        if let Some(bus) = &bus {
            // Subscribed before serving, so no message for a member that
            // connects here can be published to nobody.
            let weak = Arc::downgrade(&state.clone().into_inner());
            let deliver: crate::store::Deliver = Arc::new(move |event| {
                let Some(st) = weak.upgrade() else {
                    return false;
                };
                match event {
                    BusEvent::Message { session, to, msg } => {
                        match st
                            .hub
                            .deliver_local_str(&session, &to, Arc::from(msg.as_str()))
                        {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "message from another replica refused");
                                st.metrics.relay_refused("recipient_backlogged");
                            }
                            // It left this replica just before: keep the
                            // message for its next connection, wherever.
                            None => {
                                tokio::spawn(async move {
                                    let Some(bus) = &st.bus else { return };
                                    let kept = bus
                                        .send(
                                            &session,
                                            &to,
                                            &msg,
                                            SystemTime::now(),
                                            SendMode::Keep,
                                        )
                                        .await;
                                    if !matches!(kept, Ok(BusDelivery::Buffered)) {
                                        st.metrics.relay_refused("recipient_gone");
                                    }
                                });
                            }
                        }
                    }
                    BusEvent::Replaced { session, did } => {
                        st.hub.replaced_elsewhere(&session, &did)
                    }
                    BusEvent::Resubscribed => {
                        let n = st.hub.restart_all();
                        tracing::warn!(members = n, "the Redis inbox was lost and is back; closed every signaling connection here (1012) so the nodes reconnect and resend");
                    }
                }
                true
            });
            listener = Some(
                bus.listen(&replica, deliver)
                    .await
                    .map_err(StartError::Store)?,
            );
        }
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let st = app_state.clone();
            App::new()
                .app_data(app_state.clone())
                .wrap_fn(move |req, srv| {
                    // A standard method clones without allocating.
                    let method = req.method().clone();
                    let st = st.clone();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
                        st.metrics.request(method.as_str(), res.status().as_u16());
                        Ok(res)
                    }
                })
                .configure(routes)
                .default_service(web::to(api::not_found))
        })
        .workers(c.workers)
        // Signaling is many small frames; without TCP_NODELAY, Nagle plus
        // delayed ACKs hold 12% of relayed messages back 10-45 ms.
        .tcp_nodelay(true)
        .shutdown_timeout(5)
        .disable_signals()
        .bind(c.listen)
        .map_err(|source| StartError::Bind {
            addr: c.listen,
            source,
        })?;
        let addr = server.addrs().first().copied().unwrap_or(c.listen);
        let server = server.run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        // Expired signaling buffers are dropped even in idle rooms, and this
        // replica's presence claims are kept alive.
        let sweeper = Arc::downgrade(&state.clone().into_inner());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tick.tick().await;
                let Some(st) = sweeper.upgrade() else { break };
                st.hub.sweep(Instant::now());
                if let Some(bus) = &st.bus {
                    let members = st.hub.members();
                    if let Err(e) = bus.refresh(&st.replica, &members).await {
                        tracing::warn!(error = %crate::error_chain(&e), "could not refresh signaling presence");
                    }
                }
            }
        });
        tracing::info!(%addr, %did, %domain, replica = %replica, "mpc-broker listening");
        Ok(Running {
            addr,
            did,
            domain,
            handle,
            task,
            listener,
        })
    }
}

fn table() -> Vec<(&'static str, &'static str, actix_web::Route)> {
    vec![
        ("GET", "/healthz", web::get().to(api::healthz)),
        ("GET", "/metrics", web::get().to(api::metrics)),
        ("GET", "/v1/openapi.json", web::get().to(api::openapi)),
        ("GET", "/v1/schemas/{name}", web::get().to(api::schema)),
        ("GET", "/v1/broker", web::get().to(api::broker)),
        ("POST", "/v1/auth/challenge", web::post().to(api::challenge)),
        ("POST", "/v1/auth/token", web::post().to(api::token)),
        ("POST", "/v1/sessions", web::post().to(api::publish)),
        ("GET", "/v1/sessions/{id}", web::get().to(api::get_session)),
        ("POST", "/v1/sessions/{id}/join", web::post().to(api::join)),
        ("POST", "/v1/sessions/{id}/seal", web::post().to(api::seal)),
        (
            "GET",
            "/v1/sessions/{id}/roster",
            web::get().to(api::roster),
        ),
        (
            "GET",
            "/v1/sessions/{id}/ice-servers",
            web::get().to(api::ice_servers),
        ),
        (
            "GET",
            "/v1/sessions/{id}/signal",
            web::get().to(signal::signal),
        ),
    ]
}

/// Every route as (method, path); `/v1/openapi.json` documents the same.
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// Mounts every route of [`route_list`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    for (_, path, route) in table() {
        cfg.service(
            web::resource(path)
                .route(route)
                .default_service(web::to(api::method_not_allowed)),
        );
    }
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The broker's DID.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The domain presentations must be bound to.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Stops: gracefully (finish requests, up to 5 s) or at once.
    pub async fn stop(self, graceful: bool) {
        self.handle.stop(graceful).await;
        let _ = self.task.await;
        // Leaves the bus (its subscription ends with the task): other
        // replicas then buffer for our members.
        if let Some(l) = self.listener {
            l.abort();
            let _ = l.await;
        }
    }

    /// Runs until SIGINT/SIGTERM, then stops gracefully.
    pub async fn until_signalled(self) -> std::io::Result<()> {
        wait_for_signal().await?;
        tracing::info!("shutting down");
        self.stop(true).await;
        Ok(())
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
