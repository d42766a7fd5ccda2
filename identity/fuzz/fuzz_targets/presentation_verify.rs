//! Bytes → JSON → `verify_presentation`, as a broker receives logins.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // 2026-03-01T12:00:00Z, and the seeds' challenge and domain.
    let now = UNIX_EPOCH + Duration::from_secs(1_772_366_400);
    let _ = identity::verify_presentation(&doc, "fuzz-challenge", "broker.example", now);
});
