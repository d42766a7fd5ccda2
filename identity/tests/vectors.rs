#![allow(clippy::unwrap_used)]
//! Official test vectors, reproduced byte for byte: W3C vc-di-eddsa
//! (`eddsa-rdfc-2022`, `eddsa-jcs-2022`), did:key Ed25519, RFC 8037 JWS.
//! Provenance: `tests/vectors/SOURCES.md`.

use std::path::PathBuf;

use identity::integrity::{self, Cryptosuite, ProofPurpose};
use identity::{jws, keyfile, parse_timestamp, Did, DocumentFormat, Keypair};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn w3c_key() -> Keypair {
    let kp = json("vc-di-eddsa/keyPair.json");
    let key = keyfile::keypair_from_secret_multibase(kp["privateKeyMultibase"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.did().multibase(), kp["publicKeyMultibase"]);
    key
}

struct Suite {
    suite: Cryptosuite,
    dir: &'static str,
    tag: &'static str,
}

const SUITES: [Suite; 2] = [
    Suite {
        suite: Cryptosuite::EddsaRdfc2022,
        dir: "vc-di-eddsa/eddsa-rdfc-2022",
        tag: "DataInt",
    },
    Suite {
        suite: Cryptosuite::EddsaJcs2022,
        dir: "vc-di-eddsa/eddsa-jcs-2022",
        tag: "JCS",
    },
];

fn file(s: &Suite, stem: &str, ext: &str) -> String {
    format!("{}/{stem}{}.{ext}", s.dir, s.tag)
}

#[test]
fn canonical_document_and_hashes_match_the_w3c_vectors() {
    for s in &SUITES {
        let unsigned = json("vc-di-eddsa/unsigned.json");
        let canon = integrity::canonical_form(&unsigned, s.suite).unwrap();
        assert_eq!(
            String::from_utf8(canon).unwrap(),
            text(&file(s, "canonDoc", "txt")),
            "{}",
            s.suite
        );

        let mut config = json(&file(s, "proofConfig", "json"));
        let config = config.as_object_mut().unwrap();
        config.remove("@context");
        let proof_canon = text(&file(s, "proofCanon", "txt"));
        let mut with_ctx = config.clone();
        with_ctx.insert("@context".into(), unsigned["@context"].clone());
        let got = integrity::canonical_form(&Value::Object(with_ctx), s.suite).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), proof_canon, "{}", s.suite);

        let hash = integrity::hash_data(&unsigned, config.clone(), s.suite).unwrap();
        assert_eq!(
            hex(&hash),
            text(&file(s, "combinedHash", "txt")).trim(),
            "{}",
            s.suite
        );
        assert_eq!(hex(&hash[..32]), text(&file(s, "proofHash", "txt")).trim());
        assert_eq!(hex(&hash[32..]), text(&file(s, "docHash", "txt")).trim());
    }
}

#[test]
fn signing_with_the_vector_key_and_date_reproduces_the_proof_value() {
    let key = w3c_key();
    for s in &SUITES {
        let unsigned = json("vc-di-eddsa/unsigned.json");
        let created = parse_timestamp("2023-02-24T23:36:38Z").unwrap();
        let signed = integrity::add_proof(
            &unsigned,
            &key,
            s.suite,
            ProofPurpose::AssertionMethod,
            created,
        )
        .unwrap();
        let expected = json(&file(s, "signed", "json"));
        assert_eq!(
            signed["proof"]["proofValue"], expected["proof"]["proofValue"],
            "{}",
            s.suite
        );
        assert_eq!(
            signed["proof"]["proofValue"].as_str().unwrap(),
            text(&file(s, "sigBTC58", "txt")).trim()
        );
        // The whole signed document is the official one, field for field.
        assert_eq!(signed, expected, "{}", s.suite);
    }
}

#[test]
fn the_official_signed_documents_verify() {
    let key = w3c_key();
    for s in &SUITES {
        let signed = json(&file(s, "signed", "json"));
        let proof = integrity::verify(&signed).unwrap().unwrap();
        assert_eq!(proof.signer, key.did());
        assert_eq!(proof.suite, s.suite);
        assert_eq!(proof.purpose, "assertionMethod");
    }
}

#[test]
fn the_official_signed_documents_fail_when_a_claim_changes() {
    for s in &SUITES {
        let mut signed = json(&file(s, "signed", "json"));
        signed["credentialSubject"]["alumniOf"] = "Another School".into();
        assert_eq!(
            integrity::verify(&signed).unwrap(),
            Err(integrity::ProofInvalid::BadSignature),
            "{}",
            s.suite
        );
    }
}

#[test]
fn the_official_vectors_fail_full_credential_checks_because_the_issuer_is_not_the_signer() {
    // The W3C vectors use an https issuer with a did:key verification method,
    // which the proof alone accepts but a relying party here must not.
    for s in &SUITES {
        let signed = json(&file(s, "signed", "json"));
        let now = parse_timestamp("2024-01-01T00:00:00Z").unwrap();
        let got = identity::verify_credential(&signed, now).unwrap();
        assert!(
            matches!(got, Err(identity::CredentialInvalid::IssuerMismatch { .. })),
            "{got:?}"
        );
    }
}

#[test]
fn did_key_vectors_resolve_to_the_published_documents() {
    let vectors = json("did-method-key/ed25519-x25519.json");
    let vectors = vectors.as_object().unwrap();
    assert_eq!(vectors.len(), 5);
    for (did, v) in vectors {
        let key = Keypair::from_seed_hex(v["seed"].as_str().unwrap()).unwrap();
        assert_eq!(key.did().as_str(), did);
        let parsed = Did::parse(did).unwrap();
        assert_eq!(parsed, key.did());
        let format = match v["verificationKeyPair"]["type"].as_str() {
            Some("JsonWebKey2020") => DocumentFormat::JsonWebKey2020,
            _ => DocumentFormat::Ed25519VerificationKey2018,
        };
        let doc = parsed.resolve(format);
        assert_eq!(doc, v["didDocument"], "{did}");
        // Byte for byte, in the vector's own field order.
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            serde_json::to_string(&v["didDocument"]).unwrap()
        );
        let (fragment, public58, secret58) = identity::did::x25519_key_agreement(&key);
        let ka = &v["keyAgreementKeyPair"];
        assert!(ka["id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#{fragment}")));
        if format == DocumentFormat::Ed25519VerificationKey2018 {
            assert_eq!(public58, ka["publicKeyBase58"]);
            assert_eq!(secret58, ka["privateKeyBase58"]);
            assert_eq!(
                identity::did::base58_public_key(&parsed),
                v["verificationKeyPair"]["publicKeyBase58"]
            );
        }
    }
}

#[test]
fn rfc8037_ed25519_jws_is_reproduced() {
    let v = json("rfc8037-ed25519.json");
    let d = v["privateKeyJwk"]["d"].as_str().unwrap();
    use base64::Engine as _;
    let seed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(d)
        .unwrap();
    let key = Keypair::from_seed_slice(&seed).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["publicKeyJwk"]["x"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.public().as_bytes().as_slice(), x.as_slice());
    let token = jws::sign_with_header(
        &key,
        v["protectedHeader"].as_str().unwrap(),
        v["payload"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(token, v["compactJws"].as_str().unwrap());
    let verified = jws::verify(&token, &key.public()).unwrap();
    assert_eq!(verified.payload, v["payload"].as_str().unwrap().as_bytes());
    assert_eq!(
        key.did().as_str(),
        v["derivedNotOfficial_didKey"].as_str().unwrap()
    );
}
