#![allow(clippy::unwrap_used)]
//! Property tests: did:key text round trips, strict parsing, Ed25519
//! tamper-evidence, JCS statements over arbitrary claims, and "never panics"
//! for every verifier of untrusted JSON.
//!
//! Case counts are modest so the suite runs in seconds; `PROPTEST_CASES`
//! raises them for a longer run.

use std::time::SystemTime;

use identity::integrity::{self, IntegrityError, ProofInvalid};
use identity::statement::{self, StatementError, StatementInvalid};
use identity::{
    issue_credential, jws, parse_timestamp, present, verify_credential, verify_presentation,
    CanonError, CredentialRequest, Cryptosuite, Did, DidError, Keypair, PresentationRequest,
    Signature,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64),
        ..ProptestConfig::default()
    }
}

fn now() -> SystemTime {
    parse_timestamp("2026-03-01T12:00:00Z").unwrap()
}

// ------------------------------------------------------------------ did:key

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Strings that get past the prefix check, to exercise the decoder.
fn did_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        "did:key:\\PC{0,60}",
        "did:key:z[1-9A-HJ-NP-Za-km-z]{0,60}",
        // A multicodec prefix and key bytes of any length and content.
        (
            prop::collection::vec(any::<u8>(), 0..3),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(codec, key)| {
                let bytes: Vec<u8> = codec.into_iter().chain(key).collect();
                format!("did:key:z{}", bs58(&bytes))
            }),
        // The Ed25519 prefix with 32 arbitrary bytes (often not a point).
        any::<[u8; 32]>().prop_map(|key| {
            let bytes: Vec<u8> = [0xed, 0x01].into_iter().chain(key).collect();
            format!("did:key:z{}", bs58(&bytes))
        }),
    ]
}

/// Base58btc (Bitcoin alphabet), written out so the test does not lean on
/// the implementation's own encoder.
fn bs58(bytes: &[u8]) -> String {
    let alphabet: Vec<char> = BASE58.chars().collect();
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let mut digits: Vec<u8> = Vec::new(); // little-endian base 58
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|d| alphabet[usize::from(*d)]))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_seed_gives_a_did_that_round_trips_through_parse(seed in any::<[u8; 32]>()) {
        let kp = Keypair::from_seed(&seed);
        let did = kp.did();
        prop_assert!(did.as_str().starts_with("did:key:z6Mk"));
        prop_assert_eq!(Did::parse(did.as_str()), Ok(did.clone()));
        prop_assert_eq!(did.as_str().parse::<Did>(), Ok(did.clone()));
        prop_assert_eq!(Did::from_verification_method(&did.verification_method()), Ok(did.clone()));
        prop_assert_eq!(did.public_key(), kp.public());
        prop_assert_eq!(did.multibase(), format!("z{}", bs58(&[&[0xed, 0x01][..], kp.public().as_bytes()].concat())));
        let via_serde: Did = serde_json::from_value(json!(did.as_str())).unwrap();
        prop_assert_eq!(via_serde, did);
    }

    #[test]
    fn parse_never_panics_and_accepts_only_what_it_prints(s in did_like()) {
        if let Ok(did) = Did::parse(&s) {
            prop_assert_eq!(did.as_str(), s.as_str());
            prop_assert_eq!(Did::parse(did.as_str()), Ok(did.clone()));
        }
        // Verification method ids are parsed from peers too.
        if let Ok(did) = Did::from_verification_method(&s) {
            prop_assert_eq!(did.verification_method(), s.as_str());
        }
        let _ = Did::from_verification_method(&format!("{s}#{s}"));
    }

    #[test]
    fn parse_refuses_anything_appended_to_a_valid_did(seed in any::<[u8; 32]>(), tail in "\\PC{1,8}") {
        let did = Keypair::from_seed(&seed).did();
        let longer = format!("{did}{tail}");
        prop_assert!(Did::parse(&longer).is_err(), "{longer:?}");
    }

    #[test]
    fn parse_refuses_every_single_character_change(seed in any::<[u8; 32]>(), at in any::<Index>(), c in prop::char::any()) {
        let did = Keypair::from_seed(&seed).did();
        let mut chars: Vec<char> = did.as_str().chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != c);
        chars[i] = c;
        let changed: String = chars.into_iter().collect();
        match Did::parse(&changed) {
            // Another valid key is possible (the change is inside the base58
            // digits); it must then be a different DID printed exactly so.
            Ok(other) => {
                prop_assert_ne!(&other, &did);
                prop_assert_eq!(other.as_str(), changed.as_str());
            }
            Err(DidError::WrongPrefix(_) | DidError::BadMultibase(_) | DidError::WrongMulticodec { .. }
                | DidError::WrongLength { .. } | DidError::TrailingGarbage(_) | DidError::InvalidKey(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

// ------------------------------------------------------------------ Ed25519

proptest! {
    #![proptest_config(config())]

    #[test]
    fn signatures_verify_and_any_single_bit_flip_fails(
        seed in any::<[u8; 32]>(),
        message in prop::collection::vec(any::<u8>(), 0..256),
        flip in any::<Index>(),
        in_signature in any::<bool>(),
    ) {
        let kp = Keypair::from_seed(&seed);
        let sig = kp.sign(&message);
        prop_assert_eq!(kp.public().verify(&message, &sig), Ok(()));
        prop_assert_eq!(Signature::from_bytes(&sig.to_bytes()), Ok(sig));

        if in_signature || message.is_empty() {
            let mut bytes = sig.to_bytes();
            let bit = flip.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let flipped = Signature::from_bytes(&bytes).unwrap();
            prop_assert!(kp.public().verify(&message, &flipped).is_err(), "signature bit {bit}");
        } else {
            let mut altered = message.clone();
            let bit = flip.index(altered.len() * 8);
            altered[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(kp.public().verify(&altered, &sig).is_err(), "message bit {bit}");
        }
    }

    #[test]
    fn another_key_never_verifies(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), message in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(a != b);
        let sig = Keypair::from_seed(&a).sign(&message);
        prop_assert!(Keypair::from_seed(&b).public().verify(&message, &sig).is_err());
    }

    #[test]
    fn compact_jws_round_trips_and_any_single_bit_flip_of_the_token_fails(
        seed in any::<[u8; 32]>(),
        payload in prop::collection::vec(any::<u8>(), 0..128),
        flip in any::<Index>(),
    ) {
        let kp = Keypair::from_seed(&seed);
        let token = jws::sign(&kp, "JWT", &payload);
        let verified = jws::verify(&token, &kp.public()).unwrap();
        prop_assert_eq!(&verified.payload, &payload);

        let mut bytes = token.clone().into_bytes();
        let bit = flip.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // A flip may leave invalid UTF-8, which is not a token at all. The
        // signature covers the base64url text itself, and non-canonical
        // trailing bits in the signature are refused, so no flip passes.
        if let Ok(altered) = String::from_utf8(bytes) {
            prop_assert!(jws::verify(&altered, &kp.public()).is_err(), "flip of bit {bit} accepted");
        }
    }

    #[test]
    fn jws_verify_never_panics(token in "\\PC{0,200}", dotted in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,90}") {
        let kp = Keypair::from_seed(&[5u8; 32]);
        let _ = jws::verify(&token, &kp.public());
        let _ = jws::verify(&dotted, &kp.public());
        let _ = jws::verify_token(&dotted, &kp.public(), "aud", now(), std::time::Duration::ZERO);
    }
}

// ------------------------------------------------------------ JSON values

/// Keys the verifiers look at, so random documents reach deep code paths.
const KEYS: &[&str] = &[
    "@context",
    "@vocab",
    "@nest",
    "@value",
    "id",
    "type",
    "issuer",
    "holder",
    "proof",
    "credentialSubject",
    "credentialStatus",
    "verifiableCredential",
    "validFrom",
    "validUntil",
    "cryptosuite",
    "proofValue",
    "verificationMethod",
    "proofPurpose",
    "challenge",
    "domain",
    "created",
];

/// Strings the verifiers give meaning to.
fn interesting_strings() -> Vec<String> {
    let did = Keypair::from_seed(&[1u8; 32]).did();
    vec![
        "https://www.w3.org/ns/credentials/v2".into(),
        identity::credential::ISSUER_DEPENDENT_VOCAB.into(),
        "VerifiableCredential".into(),
        "VerifiablePresentation".into(),
        "DataIntegrityProof".into(),
        "eddsa-rdfc-2022".into(),
        "eddsa-jcs-2022".into(),
        "assertionMethod".into(),
        "authentication".into(),
        "2026-01-01T00:00:00Z".into(),
        did.to_string(),
        did.verification_method(),
        "z3FXQjecWufY46yg5abdVZsXqLhxhueuSoZgNSARiKBk9czhSePTFehP8c3PGfb6a22gkfUKods5D2UZCyFFnhJb"
            .into(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            MAX_SAFE_INTEGER,
            MAX_SAFE_INTEGER + 1,
            MAX_SAFE_INTEGER + 2,
            -MAX_SAFE_INTEGER - 2,
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        "\\PC{0,16}".prop_map(Value::from),
        prop::sample::select(interesting_strings()).prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(KEYS).prop_map(str::to_owned),
        "\\PC{0,10}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer into `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// A valid document with one value replaced by arbitrary JSON.
fn mutated(doc: &Value, at: Index, replacement: Value) -> Value {
    let mut ptrs = Vec::new();
    pointers(doc, String::new(), &mut ptrs);
    let mut doc = doc.clone();
    let p = &ptrs[at.index(ptrs.len())];
    *doc.pointer_mut(p).unwrap() = replacement;
    doc
}

fn credential(suite: Cryptosuite) -> Value {
    let issuer = Keypair::from_seed(&[1u8; 32]);
    let holder = Keypair::from_seed(&[2u8; 32]);
    issue_credential(
        &issuer,
        &CredentialRequest {
            id: None,
            subject: holder.did(),
            types: vec!["MpcParticipantCredential".into()],
            claims: json!({ "role": "party" }).as_object().cloned().unwrap(),
            valid_from: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
            valid_until: None,
            suite,
            created: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
        },
    )
    .unwrap()
}

fn presentation(suite: Cryptosuite) -> Value {
    present(
        &Keypair::from_seed(&[2u8; 32]),
        &[credential(suite)],
        &PresentationRequest {
            challenge: "c".into(),
            domain: "d".into(),
            suite,
            created: now(),
        },
    )
    .unwrap()
}

fn suite() -> impl Strategy<Value = Cryptosuite> {
    prop::sample::select(vec![Cryptosuite::EddsaRdfc2022, Cryptosuite::EddsaJcs2022])
}

fn has_unsafe_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.unsigned_abs() > MAX_SAFE_INTEGER as u64,
            (None, Some(_)) => true, // above i64::MAX
            (None, None) => false,
        },
        Value::Array(a) => a.iter().any(has_unsafe_integer),
        Value::Object(o) => o.values().any(has_unsafe_integer),
        _ => false,
    }
}

// ---------------------------------------------------------- JCS statements

/// JSON-ish claims: strings, integers (some beyond 2^53), booleans, nested
/// objects and arrays.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        "\\PC{0,16}".prop_map(Value::from),
        number(),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-zA-Z\\PC]{0,12}", value, 0..6).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| k != "type" && k != "proof")
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn jcs_statements_round_trip_for_any_claims(seed in any::<[u8; 32]>(), claims in claims()) {
        let kp = Keypair::from_seed(&seed);
        let mut body = claims;
        body.insert("type".into(), "TestStatement".into());
        match statement::sign(&kp, "TestStatement", &body, now()) {
            Ok(doc) => {
                prop_assert!(!has_unsafe_integer(&Value::Object(body.clone())));
                // Through text and back, as it travels.
                let doc: Value = serde_json::from_str(&doc.to_string()).unwrap();
                let v = statement::verify(&doc, "TestStatement", Some(&kp.did())).unwrap().unwrap();
                prop_assert_eq!(v.signer, kp.did());
                prop_assert_eq!(v.body, body);
                prop_assert_eq!(v.created, Some(now()));
            }
            Err(StatementError::Proof(IntegrityError::Canonicalization(CanonError::Jcs(_)))) => {
                // Only integers JCS cannot represent exactly are refused.
                prop_assert!(has_unsafe_integer(&Value::Object(body)));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn any_change_to_a_jcs_statement_is_caught(
        seed in any::<[u8; 32]>(),
        claims in claims(),
        at in any::<Index>(),
        replacement in leaf(),
    ) {
        let kp = Keypair::from_seed(&seed);
        let mut body: Map<String, Value> = claims
            .into_iter()
            .filter(|(_, v)| !has_unsafe_integer(v))
            .collect();
        body.insert("type".into(), "TestStatement".into());
        let doc = statement::sign(&kp, "TestStatement", &body, now()).unwrap();
        let altered = mutated(&doc, at, replacement);
        prop_assume!(altered != doc);
        match statement::verify(&altered, "TestStatement", Some(&kp.did())) {
            Ok(Ok(v)) => {
                // Only a change JCS treats as equal can pass: the same number
                // written as an integer or a float (1 and 1.0).
                let same_number = |a: &Value, b: &Value| a.as_f64().is_some() && a.as_f64() == b.as_f64();
                prop_assert!(
                    json_eq_modulo_numbers(&Value::Object(v.body), &Value::Object(body.clone()), &same_number),
                    "an altered statement verified: {altered}"
                );
            }
            Ok(Err(StatementInvalid::Proof(_) | StatementInvalid::WrongProofPurpose(_) | StatementInvalid::WrongSigner { .. }))
            | Err(_) => {}
            Ok(Err(other)) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

fn json_eq_modulo_numbers(
    a: &Value,
    b: &Value,
    same_number: &dyn Fn(&Value, &Value) -> bool,
) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a == b || same_number(a, b),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| json_eq_modulo_numbers(a, b, same_number))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, a)| {
                    y.get(k)
                        .is_some_and(|b| json_eq_modulo_numbers(a, b, same_number))
                })
        }
        _ => a == b,
    }
}

// ------------------------------------------------- verifiers never panic

proptest! {
    #![proptest_config(config())]

    #[test]
    fn verifiers_never_panic_on_arbitrary_json(doc in any_json()) {
        let _ = verify_credential(&doc, now());
        let _ = verify_presentation(&doc, "c", "d", now());
        let _ = integrity::verify(&doc);
        let _ = statement::verify(&doc, "TestStatement", None);
    }

    #[test]
    fn verifiers_never_panic_on_a_valid_document_with_one_value_replaced(
        suite in suite(),
        vp_suite in suite(),
        at in any::<Index>(),
        replacement in any_json(),
    ) {
        let vc = mutated(&credential(suite), at, replacement.clone());
        let _ = integrity::verify(&vc);
        // A replaced value must never verify as the original unless it is
        // the same value.
        if let Ok(Ok(v)) = verify_credential(&vc, now()) {
            prop_assert_eq!(&vc, &credential(suite), "an altered credential verified: {:?}", v);
        }
        let vp = mutated(&presentation(vp_suite), at, replacement);
        if let Ok(Ok(_)) = verify_presentation(&vp, "c", "d", now()) {
            prop_assert_eq!(&vp, &presentation(vp_suite), "an altered presentation verified");
        }
    }

    #[test]
    fn a_valid_credential_survives_only_its_own_proof(suite in suite(), flip in any::<Index>()) {
        // Flip one character of the proof value: always invalid, never a panic.
        let mut vc = credential(suite);
        let pv = vc["proof"]["proofValue"].as_str().unwrap().to_owned();
        let mut chars: Vec<char> = pv.chars().collect();
        let i = 1 + flip.index(chars.len() - 1);
        chars[i] = if chars[i] == '2' { '3' } else { '2' };
        vc["proof"]["proofValue"] = Value::from(chars.into_iter().collect::<String>());
        match verify_credential(&vc, now()) {
            Ok(Err(identity::CredentialInvalid::Proof(ProofInvalid::BadSignature | ProofInvalid::MalformedProofValue))) => {}
            other => prop_assert!(false, "{other:?}"),
        }
    }
}

// ------------------------------------------------------ fuzz seed corpus

/// Writes the seed corpus of `identity/fuzz` (`identity/fuzz/seeds/<target>/`).
/// Run after changing what is issued: `cargo test -p identity --test
/// properties -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files; run by hand to regenerate the fuzz seeds"]
fn write_fuzz_seeds() {
    use identity::jws::TokenClaims;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let issuer = Keypair::from_seed(&[1u8; 32]);
    let holder = Keypair::from_seed(&[2u8; 32]);

    let did = holder.did();
    write("did_parse", "did", did.as_str().as_bytes());
    write(
        "did_parse",
        "verification_method",
        did.verification_method().as_bytes(),
    );
    write(
        "did_parse",
        "did_with_fragment",
        format!("{did}#key-1").as_bytes(),
    );
    write("did_parse", "did_web", b"did:web:example.com");
    write(
        "did_parse",
        "x25519",
        b"did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",
    );

    for (tag, suite) in [
        ("rdfc", Cryptosuite::EddsaRdfc2022),
        ("jcs", Cryptosuite::EddsaJcs2022),
    ] {
        let vc = credential(suite);
        write(
            "credential_verify",
            &format!("vc_{tag}.json"),
            vc.to_string().as_bytes(),
        );
        let mut status = vc.clone();
        status["credentialStatus"] =
            json!({ "id": "https://example.com/s#1", "type": "BitstringStatusListEntry" });
        write(
            "credential_verify",
            &format!("vc_{tag}_status.json"),
            status.to_string().as_bytes(),
        );
        let vp = present(
            &holder,
            &[vc],
            &PresentationRequest {
                challenge: "fuzz-challenge".into(),
                domain: "broker.example".into(),
                suite,
                created: now(),
            },
        )
        .unwrap();
        verify_presentation(&vp, "fuzz-challenge", "broker.example", now())
            .unwrap()
            .unwrap();
        write(
            "presentation_verify",
            &format!("vp_{tag}.json"),
            vp.to_string().as_bytes(),
        );
    }
    let _ = issuer;

    let broker = Keypair::from_seed(&[7u8; 32]);
    let t = now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jws::issue_token(
        &broker,
        &TokenClaims {
            iss: broker.did().to_string(),
            sub: holder.did().to_string(),
            aud: "broker.example".into(),
            iat: t - 10,
            exp: t + 600,
            jti: "seed-1".into(),
        },
    );
    write("jws_verify", "token", token.as_bytes());
    write(
        "jws_verify",
        "jws_payload",
        jws::sign(&broker, "JOSE", b"{\"hello\":\"world\"}").as_bytes(),
    );
    write(
        "jws_verify",
        "alg_none",
        jws::sign_with_header(&broker, r#"{"alg":"none"}"#, b"x").as_bytes(),
    );
}
