//! `did:key` and verification-method ids arrive from peers (holders, proof
//! `verificationMethod`, JWS `kid`).
#![no_main]

use identity::Did;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(did) = Did::parse(s) {
        // Parsing accepts only the exact text it prints.
        assert_eq!(did.as_str(), s);
        assert_eq!(
            Did::from_verification_method(&did.verification_method()),
            Ok(did.clone())
        );
        let _ = did.public_key();
    }
    if let Ok(did) = Did::from_verification_method(s) {
        assert_eq!(did.verification_method(), s);
    }
});
