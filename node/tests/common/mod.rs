//! Shared by the node's integration tests: a real broker in-process on
//! port 0, and organizer-signed manifests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod procs;
#[path = "../../../broker/tests/common/proxy.rs"]
pub mod proxy;
#[path = "../../../broker/tests/common/redis.rs"]
pub mod redis;

use std::time::{Duration, SystemTime};

use identity::Keypair;
use serde_json::{json, Value};

/// A broker trusting `organizer`, on a free loopback port.
pub async fn broker_for(organizer: &Keypair) -> broker::Running {
    broker_with(organizer, |_| {}).await
}

/// [`broker_for`] with its configuration changed by `tweak`.
pub async fn broker_with(
    organizer: &Keypair,
    tweak: impl FnOnce(&mut broker::BrokerConfig),
) -> broker::Running {
    let mut config = broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        organizers: broker::OrganizerPolicy {
            trusted: vec![organizer.did()],
            ..Default::default()
        },
        ..Default::default()
    };
    tweak(&mut config);
    broker::Broker::new(config)
        .with_key(Keypair::from_seed(&[250; 32]))
        .start()
        .await
        .unwrap()
}

/// An unsigned manifest body for `program` with `admission`, open for ten minutes.
pub fn manifest_body(organizer: &Keypair, program: &str, admission: Value) -> Value {
    let min = admission["minParties"].as_u64().unwrap_or(1);
    json!({
        "type": "MpcSessionManifest",
        "title": "test",
        "organizer": organizer.did(),
        "computation": {"program": program},
        "admission": admission,
        "threshold": (min.max(1) - 1) / 2,
        "joinDeadline": identity::format_timestamp(SystemTime::now() + Duration::from_secs(600)),
        "expires": identity::format_timestamp(SystemTime::now() + Duration::from_secs(1200)),
    })
}

/// The same, signed by the organizer.
pub fn signed_manifest(organizer: &Keypair, program: &str, admission: Value) -> Value {
    let body = manifest_body(organizer, program, admission);
    identity::statement::sign(
        organizer,
        "MpcSessionManifest",
        body.as_object().unwrap(),
        SystemTime::now(),
    )
    .unwrap()
}
