//! Bytes → JSON → `verify_credential`, as a broker receives credentials.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // 2026-03-01T12:00:00Z: inside the seed credentials' validity period.
    let now = UNIX_EPOCH + Duration::from_secs(1_772_366_400);
    let _ = identity::integrity::verify(&doc);
    let _ = identity::verify_credential(&doc, now);
});
