#![allow(clippy::unwrap_used)]
//! Interoperability of `eddsa-rdfc-2022` with an independent implementation:
//! `ssi`'s own Data Integrity signer and verifier (its `EdDsaRdfc2022` suite,
//! its did:key resolver and its VC 2.0 data model). `identity` only borrows
//! `ssi`'s JSON-LD expansion and RDF canonicalization; proof configuration,
//! hashing, signing, verification-method handling and the VC checks are its
//! own, and these tests check them against `ssi`'s.
//!
//! (`ssi` 0.16 has no `eddsa-jcs-2022`; that suite is pinned by the W3C
//! vectors in `vectors.rs`.)

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use futures_executor::block_on;
use identity::integrity::ProofInvalid;
use identity::{
    issue_credential, parse_timestamp, present, verify_credential, verify_presentation,
    CredentialInvalid, CredentialRequest, Cryptosuite, Keypair, PresentationRequest,
};
use serde_json::{json, Value};
use ssi::claims::data_integrity::{
    AnyInputSuiteOptions, AnySuite, CryptographicSuite, DataIntegrity, ProofOptions,
};
use ssi::claims::vc::v2::syntax::JsonPresentation;
use ssi::claims::vc::v2::JsonCredential;
use ssi::claims::VerificationParameters;
use ssi::dids::{DIDKey, DIDResolver, VerificationMethodDIDResolver};
use ssi::verification_methods::{AnyMethod, ProofPurpose, ReferenceOrOwned, SingleSecretSigner};
use ssi::JWK;

const NOW: &str = "2026-03-01T12:00:00Z";

fn t(s: &str) -> SystemTime {
    parse_timestamp(s).unwrap()
}

const ISSUER_SEED: [u8; 32] = [0x11; 32];
const HOLDER_SEED: [u8; 32] = [0x22; 32];

type Resolver = VerificationMethodDIDResolver<DIDKey, AnyMethod>;

fn resolver() -> Resolver {
    DIDKey.into_vm_resolver()
}

/// `ssi`'s verifier, resolving did:key itself, with a fixed clock.
fn ssi_params(resolver: &Resolver) -> VerificationParameters<&Resolver> {
    VerificationParameters::from_resolver(resolver)
        .with_date_time(NOW.parse::<chrono::DateTime<chrono::Utc>>().unwrap())
}

/// The same Ed25519 key as an `ssi` JWK.
fn jwk(seed: &[u8; 32]) -> JWK {
    let kp = Keypair::from_seed(seed);
    serde_json::from_value(json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": B64.encode(kp.public().as_bytes()),
        "d": B64.encode(seed),
    }))
    .unwrap()
}

fn our_credential() -> Value {
    let issuer = Keypair::from_seed(&ISSUER_SEED);
    let holder = Keypair::from_seed(&HOLDER_SEED);
    issue_credential(
        &issuer,
        &CredentialRequest {
            id: Some("urn:uuid:0a4b1e0c-1111-4c4c-9d9d-000000000001".into()),
            subject: holder.did(),
            types: vec!["MpcParticipantCredential".into()],
            claims: json!({ "organization": "Acme Labs", "role": "party", "clearance": 3 })
                .as_object()
                .cloned()
                .unwrap(),
            valid_from: t("2026-01-01T00:00:00Z"),
            valid_until: Some(t("2027-01-01T00:00:00Z")),
            suite: Cryptosuite::EddsaRdfc2022,
            created: t("2026-01-01T00:00:00Z"),
        },
    )
    .unwrap()
}

/// Verifies with `ssi`: `Ok(true)` valid, `Ok(false)` checked and invalid,
/// `Err` when `ssi` cannot decode or evaluate it.
fn ssi_verifies_credential(vc: &Value) -> Result<bool, String> {
    let decoded: DataIntegrity<JsonCredential, AnySuite> =
        ssi::claims::data_integrity::from_json_str(&vc.to_string()).map_err(|e| e.to_string())?;
    let resolver = resolver();
    let verdict = block_on(decoded.verify(ssi_params(&resolver))).map_err(|e| e.to_string())?;
    Ok(verdict.is_ok())
}

#[test]
fn ssi_verifies_a_credential_we_issue_with_eddsa_rdfc_2022() {
    assert_eq!(ssi_verifies_credential(&our_credential()), Ok(true));
}

#[test]
fn ssi_rejects_a_credential_we_issued_once_a_claim_is_altered() {
    let mut vc = our_credential();
    vc["credentialSubject"]["role"] = json!("organizer");
    assert_eq!(ssi_verifies_credential(&vc), Ok(false));

    let mut vc = our_credential();
    vc["validUntil"] = json!("2099-01-01T00:00:00Z");
    assert_eq!(ssi_verifies_credential(&vc), Ok(false));
}

#[test]
fn ssi_rejects_a_credential_we_issued_once_the_proof_is_altered() {
    let mut vc = our_credential();
    vc["proof"]["created"] = json!("2025-06-01T00:00:00Z");
    assert_eq!(ssi_verifies_credential(&vc), Ok(false));
}

#[test]
fn ssi_verifies_a_presentation_we_make_with_eddsa_rdfc_2022() {
    let holder = Keypair::from_seed(&HOLDER_SEED);
    let vp = present(
        &holder,
        &[our_credential()],
        &PresentationRequest {
            challenge: "c-123".into(),
            domain: "broker.example".into(),
            suite: Cryptosuite::EddsaRdfc2022,
            created: t("2026-03-01T11:59:00Z"),
        },
    )
    .unwrap();
    verify_presentation(&vp, "c-123", "broker.example", t(NOW))
        .unwrap()
        .unwrap();

    let resolver = resolver();
    let decoded: DataIntegrity<JsonPresentation, AnySuite> =
        ssi::claims::data_integrity::from_json_str(&vp.to_string()).unwrap();
    let verdict = block_on(decoded.verify(ssi_params(&resolver))).unwrap();
    assert_eq!(verdict, Ok(()), "ssi's verdict on our presentation");

    let mut altered = vp.clone();
    altered["proof"]["challenge"] = json!("c-456");
    let decoded: DataIntegrity<JsonPresentation, AnySuite> =
        ssi::claims::data_integrity::from_json_str(&altered.to_string()).unwrap();
    assert!(block_on(decoded.verify(ssi_params(&resolver)))
        .unwrap()
        .is_err());
}

/// A credential signed by `ssi`'s `eddsa-rdfc-2022` implementation with the
/// issuer's did:key, as JSON.
fn ssi_credential(subject: &str, valid_until: &str) -> Value {
    let issuer = Keypair::from_seed(&ISSUER_SEED);
    let key = jwk(&ISSUER_SEED);
    let did = DIDKey::generate(&key).unwrap();
    assert_eq!(did.as_str(), issuer.did().as_str(), "same did:key in both");

    // The VC 2.0 context bundled with ssi predates the context's
    // issuer-dependent `@vocab`, so product terms need the same embedded
    // `@vocab` that `identity` issues with.
    let credential: JsonCredential = serde_json::from_value(json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            { "@vocab": identity::credential::ISSUER_DEPENDENT_VOCAB }
        ],
        "id": "urn:uuid:0a4b1e0c-2222-4c4c-9d9d-000000000002",
        "type": ["VerifiableCredential", "MpcParticipantCredential"],
        "issuer": did.as_str(),
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": valid_until,
        "credentialSubject": {
            "id": subject,
            "organization": "Acme Labs",
            "role": "party"
        }
    }))
    .unwrap();

    let resolver = resolver();
    block_on(async {
        let method = DIDKey
            .resolve_into_any_verification_method(&did)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(method.id.as_str(), issuer.did().verification_method());
        let options = ProofOptions::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            ReferenceOrOwned::Reference(method.id.into()),
            ProofPurpose::Assertion,
            AnyInputSuiteOptions::default(),
        );
        let signer = SingleSecretSigner::new(key).into_local();
        let signed = AnySuite::EdDsaRdfc2022
            .sign(credential, &resolver, &signer, options)
            .await
            .unwrap();
        // ssi accepts its own output (on a day inside the validity period).
        let params = VerificationParameters::from_resolver(&resolver).with_date_time(
            "2026-01-15T00:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        );
        assert_eq!(signed.verify(params).await.unwrap(), Ok(()));
        serde_json::to_value(&signed).unwrap()
    })
}

#[test]
fn we_verify_a_credential_ssi_signs_with_eddsa_rdfc_2022() {
    let holder = Keypair::from_seed(&HOLDER_SEED);
    let vc = ssi_credential(holder.did().as_str(), "2027-01-01T00:00:00Z");
    assert_eq!(vc["proof"]["cryptosuite"], "eddsa-rdfc-2022", "{vc:#}");

    let v = verify_credential(&vc, t(NOW)).unwrap().unwrap();
    assert_eq!(v.issuer, Keypair::from_seed(&ISSUER_SEED).did());
    assert_eq!(v.subject.as_deref(), Some(holder.did().as_str()));
    assert_eq!(v.suite, Cryptosuite::EddsaRdfc2022);
    assert_eq!(v.claims["role"], "party");
    assert_eq!(v.valid_until, Some(t("2027-01-01T00:00:00Z")));
}

#[test]
fn we_reject_a_credential_ssi_signed_once_a_claim_is_altered() {
    let holder = Keypair::from_seed(&HOLDER_SEED);
    let mut vc = ssi_credential(holder.did().as_str(), "2027-01-01T00:00:00Z");
    vc["credentialSubject"]["role"] = json!("organizer");
    assert_eq!(
        verify_credential(&vc, t(NOW)).unwrap(),
        Err(CredentialInvalid::Proof(ProofInvalid::BadSignature))
    );
}

#[test]
fn we_apply_our_own_checks_to_a_credential_ssi_signed() {
    let holder = Keypair::from_seed(&HOLDER_SEED);
    let vc = ssi_credential(holder.did().as_str(), "2026-02-01T00:00:00Z");
    assert_eq!(
        verify_credential(&vc, t(NOW)).unwrap(),
        Err(CredentialInvalid::Expired {
            valid_until: "2026-02-01T00:00:00Z".into()
        })
    );
}

#[test]
fn a_credential_ssi_signed_can_be_presented_with_our_presentation() {
    let holder = Keypair::from_seed(&HOLDER_SEED);
    let vc = ssi_credential(holder.did().as_str(), "2027-01-01T00:00:00Z");
    for suite in [Cryptosuite::EddsaRdfc2022, Cryptosuite::EddsaJcs2022] {
        let vp = present(
            &holder,
            std::slice::from_ref(&vc),
            &PresentationRequest {
                challenge: "c-789".into(),
                domain: "broker.example".into(),
                suite,
                created: t("2026-03-01T11:59:00Z"),
            },
        )
        .unwrap();
        let v = verify_presentation(&vp, "c-789", "broker.example", t(NOW))
            .unwrap()
            .unwrap();
        assert_eq!(
            v.credentials[0].issuer,
            Keypair::from_seed(&ISSUER_SEED).did()
        );
    }
}
