//! `mpc-broker`: the meeting point of an MPC session, trusted for service
//! but not for identity.
//!
//! It owns: DID authentication (challenge → presentation → short-lived
//! EdDSA JWT), organizer-signed session manifests (validated against
//! `schemas/`, countersigned), admission (every presentation and every
//! credential in it verified, then the organizer's [`identity::session::Policy`]
//! applied), the frozen roster it signs, TURN REST credentials for roster
//! members, and the WebSocket signaling relay between roster members.
//! Nodes re-verify everything it signs, so a broker that lies is caught.
//!
//! How it is driven: [`Broker::new`] with a [`BrokerConfig`] (or
//! [`config::Args`] from the command line), optionally injecting a clock,
//! store, key or randomness, then [`Broker::start`] returns a [`Running`]
//! server bound to its address. Protocol logic is pure and synchronous —
//! [`session`] (admission and freezing), [`challenge`], [`relay`] (the
//! hub), [`verify`] (shape guard and verdict mapping) — and the HTTP and
//! WebSocket handlers are thin shells over it and a [`SessionStore`]
//! (in memory by default; Redis for several replicas).
//!
//! Every refusal is an `application/problem+json` [`Problem`] with a stable
//! `code`; bodies, frames, queues, buffers and waits are all bounded.

#![forbid(unsafe_code)]

mod api;
pub mod challenge;
pub mod clock;
pub mod config;
pub mod ice;
mod metrics;
pub mod problem;
pub mod relay;
pub mod schemas;
mod server;
pub mod session;
mod signal;
mod state;
pub mod store;
pub mod verify;

pub use config::{BrokerConfig, OrganizerPolicy, SignalLimits, StartupWait, StoreConfig};
pub use problem::Problem;
pub use server::{route_list, routes, Broker, Running, StartError};
pub use signal::RateLimit;
pub use store::{MemoryStore, RedisStore, SessionStore, StoreError};

/// An error with its chain of sources, one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
