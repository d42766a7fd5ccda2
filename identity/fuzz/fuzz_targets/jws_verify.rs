//! Compact JWS / broker tokens from the wire.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use identity::{jws, Keypair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    // The seeds are signed with this key, so mutations get past the
    // signature check only when they keep the signed text intact.
    let kp = Keypair::from_seed(&[7u8; 32]);
    if let Ok(v) = jws::verify(token, &kp.public()) {
        // No malleability: whatever verifies is exactly what the key signs
        // (Ed25519 is deterministic), byte for byte.
        let header = B64
            .decode(token.split('.').next().unwrap_or_default())
            .unwrap_or_default();
        let header = String::from_utf8(header).expect("a verified header is UTF-8 JSON");
        assert_eq!(jws::sign_with_header(&kp, &header, &v.payload), token);
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_772_366_400);
    let _ = jws::verify_token(
        token,
        &kp.public(),
        "broker.example",
        now,
        Duration::from_secs(60),
    );
});
