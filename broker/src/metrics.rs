//! Prometheus metrics (`GET /metrics`, text exposition format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The broker's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    auth_failures: Family<ReasonLabels, Counter>,
    open_websockets: Gauge,
    relayed: Counter,
    relay_refused: Family<ReasonLabels, Counter>,
    sessions: Family<StateLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mpc_broker");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method and status",
            requests.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Refused authentications, joins and token checks, by problem code",
            auth_failures.clone(),
        );
        let open_websockets = Gauge::default();
        registry.register(
            "open_websockets",
            "Signaling WebSockets open on this replica",
            open_websockets.clone(),
        );
        let relayed = Counter::default();
        registry.register(
            "relayed_messages",
            "Signaling messages relayed",
            relayed.clone(),
        );
        let relay_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "relay_refused",
            "Signaling messages refused, by error code",
            relay_refused.clone(),
        );
        let sessions = Family::<StateLabels, Counter>::default();
        registry.register(
            "sessions",
            "Sessions that entered a state (published, frozen) on this replica",
            sessions.clone(),
        );
        Metrics {
            registry,
            requests,
            auth_failures,
            open_websockets,
            relayed,
            relay_refused,
            sessions,
        }
    }
}

impl Metrics {
    /// Counts a finished HTTP request. Methods outside the standard set count as `other`:
    /// any token is a valid method, and one series per made-up method would let anyone grow
    /// the registry (and `/metrics`) without limit.
    pub(crate) fn request(&self, method: &str, status: u16) {
        const KNOWN: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        let method = KNOWN
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.requests
            .get_or_create(&RequestLabels { method, status })
            .inc();
    }

    /// Counts a refused authentication or join.
    pub(crate) fn auth_failure(&self, code: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: code.to_owned(),
            })
            .inc();
    }

    /// A WebSocket opened (+1) or closed (-1).
    pub(crate) fn websocket(&self, delta: i64) {
        self.open_websockets.inc_by(delta);
    }

    /// Counts a relayed message.
    pub(crate) fn relayed(&self) {
        self.relayed.inc();
    }

    /// Counts a refused signaling message.
    pub(crate) fn relay_refused(&self, code: &str) {
        self.relay_refused
            .get_or_create(&ReasonLabels {
                reason: code.to_owned(),
            })
            .inc();
    }

    /// Counts a session entering `state`.
    pub(crate) fn session(&self, state: &str) {
        self.sessions
            .get_or_create(&StateLabels {
                state: state.to_owned(),
            })
            .inc();
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
