#![allow(clippy::unwrap_used)]
//! Issuing, presenting and verifying credentials through the public API, for
//! both Data Integrity suites: every round trip and every rejection, each
//! asserting its exact error and whether it is "could not check" (outer
//! `Err`) or "checked and invalid" (inner `Err`).
//!
//! Time is a fixed injected clock; keys come from fixed seeds.

use std::time::SystemTime;

use identity::credential::{IssueError, MAX_EMBEDDED_CREDENTIALS};
use identity::integrity::{self, IntegrityError, ProofInvalid};
use identity::{
    issue_credential, parse_timestamp, present, verify_credential, verify_presentation, CanonError,
    CredentialInvalid, CredentialRequest, Cryptosuite, Keypair, PresentationInvalid,
    PresentationRequest, ProofPurpose, VerifiedCredential, VerifiedPresentation, VerifyError,
};
use serde_json::{json, Map, Value};

const SUITES: [Cryptosuite; 2] = [Cryptosuite::EddsaRdfc2022, Cryptosuite::EddsaJcs2022];
const CHALLENGE: &str = "b1f5c6a2-challenge-1";
const DOMAIN: &str = "broker.example";

fn t(s: &str) -> SystemTime {
    parse_timestamp(s).unwrap()
}

/// The verifier's clock: inside every credential's validity period.
fn now() -> SystemTime {
    t("2026-03-01T12:00:00Z")
}

fn issuer() -> Keypair {
    Keypair::from_seed(&[1u8; 32])
}

fn holder() -> Keypair {
    Keypair::from_seed(&[2u8; 32])
}

fn mallory() -> Keypair {
    Keypair::from_seed(&[3u8; 32])
}

fn claims() -> Map<String, Value> {
    json!({ "organization": "Acme Labs", "role": "party", "clearance": 3 })
        .as_object()
        .cloned()
        .unwrap()
}

fn request_about(subject: &Keypair, suite: Cryptosuite) -> CredentialRequest {
    CredentialRequest {
        id: Some("urn:uuid:5e0c2b0e-8a4e-4a53-9c1e-2f1f3b2a7d11".into()),
        subject: subject.did(),
        types: vec!["MpcParticipantCredential".into()],
        claims: claims(),
        valid_from: t("2026-01-01T00:00:00Z"),
        valid_until: Some(t("2027-01-01T00:00:00Z")),
        suite,
        created: t("2026-01-01T00:00:00Z"),
    }
}

/// A credential from [`issuer`] about [`holder`].
fn credential(suite: Cryptosuite) -> Value {
    issue_credential(&issuer(), &request_about(&holder(), suite)).unwrap()
}

fn presentation_request(suite: Cryptosuite) -> PresentationRequest {
    PresentationRequest {
        challenge: CHALLENGE.into(),
        domain: DOMAIN.into(),
        suite,
        created: t("2026-03-01T11:59:00Z"),
    }
}

/// A presentation by [`holder`] of `credentials`, answering [`CHALLENGE`].
fn presentation(suite: Cryptosuite, credentials: &[Value]) -> Value {
    present(&holder(), credentials, &presentation_request(suite)).unwrap()
}

/// The document without its proof.
fn unsecured(doc: &Value) -> Value {
    let mut doc = doc.clone();
    doc.as_object_mut().unwrap().remove("proof");
    doc
}

/// Signs `doc` (which has no proof) for `purpose`, with no challenge or domain.
fn sign(doc: &Value, key: &Keypair, suite: Cryptosuite, purpose: ProofPurpose) -> Value {
    integrity::add_proof(doc, key, suite, purpose, t("2026-01-01T00:00:00Z")).unwrap()
}

/// Checked and valid.
fn valid_vc(vc: &Value, now: SystemTime) -> VerifiedCredential {
    match verify_credential(vc, now) {
        Ok(Ok(v)) => v,
        other => panic!("expected a valid credential, got {other:?}"),
    }
}

/// Checked and invalid (the inner error).
fn invalid_vc(vc: &Value, now: SystemTime) -> CredentialInvalid {
    match verify_credential(vc, now) {
        Ok(Err(e)) => e,
        other => panic!("expected a credential that is checked and invalid, got {other:?}"),
    }
}

/// Could not be checked (the outer error).
fn unverifiable_vc(vc: &Value) -> VerifyError {
    match verify_credential(vc, now()) {
        Err(e) => e,
        other => panic!("expected a credential that cannot be checked, got {other:?}"),
    }
}

fn valid_vp(vp: &Value, challenge: &str) -> VerifiedPresentation {
    match verify_presentation(vp, challenge, DOMAIN, now()) {
        Ok(Ok(v)) => v,
        other => panic!("expected a valid presentation, got {other:?}"),
    }
}

fn invalid_vp(vp: &Value, challenge: &str, domain: &str) -> PresentationInvalid {
    match verify_presentation(vp, challenge, domain, now()) {
        Ok(Err(e)) => e,
        other => panic!("expected a presentation that is checked and invalid, got {other:?}"),
    }
}

fn unverifiable_vp(vp: &Value) -> VerifyError {
    match verify_presentation(vp, CHALLENGE, DOMAIN, now()) {
        Err(e) => e,
        other => panic!("expected a presentation that cannot be checked, got {other:?}"),
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn an_issued_credential_verifies_and_reports_its_contents() {
    for suite in SUITES {
        let vc = credential(suite);
        assert_eq!(vc["proof"]["cryptosuite"], suite.name());
        let v = valid_vc(&vc, now());
        assert_eq!(v.issuer, issuer().did(), "{suite}");
        assert_eq!(v.subject.as_deref(), Some(holder().did().as_str()));
        assert_eq!(
            v.types,
            ["VerifiableCredential", "MpcParticipantCredential"],
            "{suite}"
        );
        assert_eq!(v.claims["organization"], "Acme Labs");
        assert_eq!(v.claims["clearance"], 3);
        assert_eq!(v.claims["id"], holder().did().as_str());
        assert_eq!(v.suite, suite);
        assert_eq!(v.valid_until, Some(t("2027-01-01T00:00:00Z")));
    }
}

#[test]
fn a_credential_survives_serialization_to_text_and_back() {
    for suite in SUITES {
        let text = serde_json::to_string_pretty(&credential(suite)).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        valid_vc(&parsed, now());
    }
}

#[test]
fn a_credential_is_valid_exactly_at_the_edges_of_its_validity_period() {
    for suite in SUITES {
        let vc = credential(suite);
        valid_vc(&vc, t("2026-01-01T00:00:00Z"));
        valid_vc(&vc, t("2027-01-01T00:00:00Z"));
    }
}

#[test]
fn a_credential_without_valid_until_never_expires() {
    for suite in SUITES {
        let mut req = request_about(&holder(), suite);
        req.valid_until = None;
        let vc = issue_credential(&issuer(), &req).unwrap();
        assert!(vc.get("validUntil").is_none());
        let v = valid_vc(&vc, t("2999-01-01T00:00:00Z"));
        assert_eq!(v.valid_until, None);
    }
}

#[test]
fn a_presentation_verifies_with_its_embedded_credentials() {
    for suite in SUITES {
        let vc = credential(suite);
        let vp = presentation(suite, &[vc.clone(), vc]);
        let v = valid_vp(&vp, CHALLENGE);
        assert_eq!(v.holder, holder().did(), "{suite}");
        assert_eq!(v.credentials.len(), 2);
        for c in &v.credentials {
            assert_eq!(c.issuer, issuer().did());
            assert_eq!(c.subject.as_deref(), Some(holder().did().as_str()));
            assert_eq!(c.suite, suite);
        }
    }
}

#[test]
fn a_presentation_may_mix_suites() {
    for (vp_suite, vc_suite) in [
        (Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022),
        (Cryptosuite::EddsaRdfc2022, Cryptosuite::EddsaJcs2022),
    ] {
        let vp = presentation(vp_suite, &[credential(vc_suite)]);
        let v = valid_vp(&vp, CHALLENGE);
        assert_eq!(v.credentials[0].suite, vc_suite);
    }
}

#[test]
fn a_presentation_without_credentials_authenticates_the_holder() {
    for suite in SUITES {
        let v = valid_vp(&presentation(suite, &[]), CHALLENGE);
        assert_eq!(v.holder, holder().did());
        assert!(v.credentials.is_empty());
    }
}

#[test]
fn issuing_refuses_claims_that_set_the_subject_id() {
    for suite in SUITES {
        let mut req = request_about(&holder(), suite);
        req.claims
            .insert("id".into(), "did:example:someone-else".into());
        assert!(matches!(
            issue_credential(&issuer(), &req),
            Err(IssueError::BadClaims(_))
        ));
    }
}

#[test]
fn presenting_refuses_credentials_that_are_not_objects() {
    for suite in SUITES {
        let got = present(
            &holder(),
            &[credential(suite), json!("a string")],
            &presentation_request(suite),
        );
        assert!(matches!(got, Err(IssueError::BadCredential(1))), "{got:?}");
    }
}

// ------------------------------------------------- credentials: checked, invalid

#[test]
fn an_altered_claim_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["credentialSubject"]["organization"] = json!("Evil Corp");
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature),
            "{suite}"
        );
    }
}

#[test]
fn an_added_claim_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["credentialSubject"]["role"] = json!("admin");
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature)
        );
        let mut vc = credential(suite);
        vc["credentialSubject"]["admin"] = json!(true);
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature),
            "{suite}"
        );
    }
}

#[test]
fn an_extended_validity_period_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["validUntil"] = json!("2099-01-01T00:00:00Z");
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn an_altered_proof_option_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["created"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn a_garbled_proof_value_is_reported_as_malformed() {
    for suite in SUITES {
        for bad in [json!("not-multibase"), json!("zzz"), json!(42), json!("z")] {
            let mut vc = credential(suite);
            vc["proof"]["proofValue"] = bad;
            assert_eq!(
                invalid_vc(&vc, now()),
                CredentialInvalid::Proof(ProofInvalid::MalformedProofValue)
            );
        }
    }
}

#[test]
fn an_expired_credential_is_refused() {
    for suite in SUITES {
        let vc = credential(suite);
        assert_eq!(
            invalid_vc(&vc, t("2027-01-01T00:00:01Z")),
            CredentialInvalid::Expired {
                valid_until: "2027-01-01T00:00:00Z".into()
            },
            "{suite}"
        );
    }
}

#[test]
fn a_credential_that_is_not_yet_valid_is_refused() {
    for suite in SUITES {
        let vc = credential(suite);
        assert_eq!(
            invalid_vc(&vc, t("2025-12-31T23:59:59Z")),
            CredentialInvalid::NotYetValid {
                valid_from: "2026-01-01T00:00:00Z".into()
            },
            "{suite}"
        );
    }
}

#[test]
fn a_signed_but_unparseable_validity_date_is_refused() {
    for suite in SUITES {
        let mut doc = unsecured(&credential(suite));
        doc["validUntil"] = json!("next tuesday");
        let vc = sign(&doc, &issuer(), suite, ProofPurpose::AssertionMethod);
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::BadDate {
                field: "validUntil",
                value: "next tuesday".into()
            }
        );
    }
}

#[test]
fn a_credential_re_signed_by_another_key_does_not_speak_for_the_issuer() {
    for suite in SUITES {
        // Mallory copies the issuer's credential and signs it herself,
        // keeping the issuer's name on it.
        let forged = sign(
            &unsecured(&credential(suite)),
            &mallory(),
            suite,
            ProofPurpose::AssertionMethod,
        );
        assert_eq!(
            invalid_vc(&forged, now()),
            CredentialInvalid::IssuerMismatch {
                issuer: issuer().did().to_string(),
                signer: mallory().did(),
            },
            "{suite}"
        );
    }
}

#[test]
fn changing_the_issuer_of_a_signed_credential_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["issuer"] = json!(mallory().did().as_str());
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn swapping_the_verification_method_to_another_key_breaks_the_signature() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["verificationMethod"] = json!(mallory().did().verification_method());
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn a_credential_signed_for_authentication_is_refused() {
    for suite in SUITES {
        let vc = sign(
            &unsecured(&credential(suite)),
            &issuer(),
            suite,
            ProofPurpose::Authentication,
        );
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::WrongProofPurpose {
                found: "authentication".into()
            },
            "{suite}"
        );
    }
}

// --------------------------------------------------- credentials: cannot check

#[test]
fn an_unsupported_cryptosuite_cannot_be_checked() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["cryptosuite"] = json!("ecdsa-rdfc-2019");
        assert!(
            matches!(
                unverifiable_vc(&vc),
                VerifyError::Proof(IntegrityError::UnsupportedCryptosuite(s)) if s == "ecdsa-rdfc-2019"
            ),
            "{suite}"
        );
    }
}

#[test]
fn an_unsupported_proof_type_cannot_be_checked() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["type"] = json!("Ed25519Signature2020");
        assert!(matches!(
            unverifiable_vc(&vc),
            VerifyError::Proof(IntegrityError::UnsupportedProofType(s)) if s == "Ed25519Signature2020"
        ));
    }
}

#[test]
fn a_verification_method_of_another_did_method_cannot_be_checked() {
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["verificationMethod"] = json!("did:web:example.com#key-1");
        assert!(matches!(
            unverifiable_vc(&vc),
            VerifyError::Proof(IntegrityError::UnsupportedDidMethod(_))
        ));
    }
}

#[test]
fn several_proofs_cannot_be_checked() {
    for suite in SUITES {
        let mut vc = credential(suite);
        let proof = vc["proof"].clone();
        vc["proof"] = json!([proof.clone(), proof]);
        assert!(matches!(
            unverifiable_vc(&vc),
            VerifyError::Proof(IntegrityError::Malformed(_))
        ));
    }
}

#[test]
fn an_unsigned_credential_cannot_be_checked() {
    for suite in SUITES {
        assert!(matches!(
            unverifiable_vc(&unsecured(&credential(suite))),
            VerifyError::Proof(IntegrityError::Malformed(_))
        ));
    }
}

#[test]
fn an_unknown_json_ld_context_cannot_be_checked_under_rdfc() {
    // The verifier is offline: a context that is not bundled cannot be
    // loaded, so the RDF dataset (what was signed) cannot be computed.
    let mut vc = credential(Cryptosuite::EddsaRdfc2022);
    vc["@context"]
        .as_array_mut()
        .unwrap()
        .push(json!("https://example.com/contexts/unknown/v1"));
    assert!(
        matches!(
            unverifiable_vc(&vc),
            VerifyError::Proof(IntegrityError::Canonicalization(CanonError::Expansion(_)))
        ),
        "{:?}",
        verify_credential(&vc, now())
    );
    // Nor can such a credential be issued.
    let doc = unsecured(&vc);
    assert!(matches!(
        integrity::add_proof(
            &doc,
            &issuer(),
            Cryptosuite::EddsaRdfc2022,
            ProofPurpose::AssertionMethod,
            now()
        ),
        Err(IntegrityError::Canonicalization(CanonError::Expansion(_)))
    ));
}

#[test]
fn an_added_context_under_jcs_breaks_the_signature() {
    // JCS never loads contexts; the added one is simply unsigned bytes.
    let mut vc = credential(Cryptosuite::EddsaJcs2022);
    vc["@context"]
        .as_array_mut()
        .unwrap()
        .push(json!("https://example.com/contexts/unknown/v1"));
    assert_eq!(
        invalid_vc(&vc, now()),
        CredentialInvalid::Proof(ProofInvalid::ContextMismatch)
    );
}

#[test]
fn a_credential_with_a_status_entry_cannot_be_checked_offline() {
    for suite in SUITES {
        let mut doc = unsecured(&credential(suite));
        doc["credentialStatus"] = json!({
            "id": "https://issuer.example/status/3#94567",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "94567",
            "statusListCredential": "https://issuer.example/status/3"
        });
        let vc = sign(&doc, &issuer(), suite, ProofPurpose::AssertionMethod);
        assert!(
            matches!(unverifiable_vc(&vc), VerifyError::StatusNotCheckable),
            "{suite}"
        );
    }
}

#[test]
fn malformed_credentials_cannot_be_checked() {
    for suite in SUITES {
        let good = credential(suite);
        let mut cases: Vec<(&str, Value)> = vec![
            ("array", json!([good.clone()])),
            ("string", json!("a credential")),
            ("null", Value::Null),
        ];
        let mut v1 = good.clone();
        v1["@context"] = json!(["https://www.w3.org/2018/credentials/v1"]);
        cases.push(("VC 1.1 context", v1));
        let mut second = good.clone();
        second["@context"] =
            json!([{ "@vocab": "https://example.com#" }, identity::credential::VC_V2_CONTEXT]);
        cases.push(("v2 context not first", second));
        let mut no_ctx = good.clone();
        no_ctx.as_object_mut().unwrap().remove("@context");
        cases.push(("no context", no_ctx));
        let mut no_type = good.clone();
        no_type.as_object_mut().unwrap().remove("type");
        cases.push(("no type", no_type));
        let mut wrong_type = good.clone();
        wrong_type["type"] = json!(["VerifiablePresentation"]);
        cases.push(("presentation type", wrong_type));
        let mut no_issuer = good.clone();
        no_issuer.as_object_mut().unwrap().remove("issuer");
        cases.push(("no issuer", no_issuer));
        let mut no_subject = good.clone();
        no_subject
            .as_object_mut()
            .unwrap()
            .remove("credentialSubject");
        cases.push(("no subject", no_subject));
        let mut two_subjects = good.clone();
        two_subjects["credentialSubject"] =
            json!([{ "id": "did:example:a" }, { "id": "did:example:b" }]);
        cases.push(("several subjects", two_subjects));
        for (what, vc) in cases {
            assert!(
                matches!(
                    unverifiable_vc(&vc),
                    VerifyError::Malformed {
                        what: "credential",
                        ..
                    }
                ),
                "{suite}: {what}"
            );
        }
    }
}

// ---------------------------------------------- presentations: checked, invalid

#[test]
fn a_presentation_for_another_challenge_is_refused() {
    for suite in SUITES {
        let vp = presentation(suite, &[credential(suite)]);
        assert_eq!(
            invalid_vp(&vp, "a-different-challenge", DOMAIN),
            PresentationInvalid::ChallengeMismatch {
                found: Some(CHALLENGE.into())
            },
            "{suite}"
        );
    }
}

#[test]
fn a_replayed_presentation_fails_the_next_login() {
    for suite in SUITES {
        // Login 1 accepts it; an eavesdropper replays it at login 2, whose
        // challenge is fresh.
        let vp = presentation(suite, &[credential(suite)]);
        valid_vp(&vp, CHALLENGE);
        assert_eq!(
            invalid_vp(&vp, "b1f5c6a2-challenge-2", DOMAIN),
            PresentationInvalid::ChallengeMismatch {
                found: Some(CHALLENGE.into())
            }
        );
    }
}

#[test]
fn an_altered_challenge_breaks_the_signature() {
    for suite in SUITES {
        let mut vp = presentation(suite, &[credential(suite)]);
        vp["proof"]["challenge"] = json!("b1f5c6a2-challenge-2");
        assert_eq!(
            invalid_vp(&vp, "b1f5c6a2-challenge-2", DOMAIN),
            PresentationInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn a_presentation_without_a_challenge_is_refused() {
    for suite in SUITES {
        let doc = unsecured(&presentation(suite, &[credential(suite)]));
        let vp = sign(&doc, &holder(), suite, ProofPurpose::Authentication);
        assert!(vp["proof"].get("challenge").is_none());
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::ChallengeMismatch { found: None },
            "{suite}"
        );
    }
}

#[test]
fn a_presentation_for_another_domain_is_refused() {
    for suite in SUITES {
        let vp = presentation(suite, &[credential(suite)]);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, "evil.example"),
            PresentationInvalid::DomainMismatch {
                expected: "evil.example".into(),
                found: Some(DOMAIN.into())
            },
            "{suite}"
        );
    }
}

#[test]
fn a_presentation_signed_by_someone_other_than_the_holder_is_refused() {
    for suite in SUITES {
        // Mallory wraps the holder's credential, names the holder, and signs.
        let doc = unsecured(&presentation(suite, &[credential(suite)]));
        let vp = sign(&doc, &mallory(), suite, ProofPurpose::Authentication);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::HolderMismatch {
                holder: holder().did(),
                signer: mallory().did()
            },
            "{suite}"
        );
    }
}

#[test]
fn a_presentation_whose_holder_was_changed_breaks_the_signature() {
    for suite in SUITES {
        let mut vp = presentation(suite, &[]);
        vp["holder"] = json!(mallory().did().as_str());
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::Proof(ProofInvalid::BadSignature)
        );
    }
}

#[test]
fn a_presentation_without_a_holder_is_refused() {
    for suite in SUITES {
        let mut vp = presentation(suite, &[credential(suite)]);
        vp.as_object_mut().unwrap().remove("holder");
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::MissingHolder
        );
        // Also when signed that way.
        let vp = sign(
            &unsecured(&vp),
            &holder(),
            suite,
            ProofPurpose::Authentication,
        );
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::MissingHolder,
            "{suite}"
        );
    }
}

#[test]
fn a_holder_that_is_not_a_did_key_is_refused() {
    for suite in SUITES {
        let mut vp = presentation(suite, &[]);
        vp["holder"] = json!("did:web:holder.example");
        assert!(matches!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::BadHolder(_)
        ));
    }
}

#[test]
fn a_presentation_signed_for_assertion_is_refused() {
    for suite in SUITES {
        let doc = unsecured(&presentation(suite, &[credential(suite)]));
        let vp = sign(&doc, &holder(), suite, ProofPurpose::AssertionMethod);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::WrongProofPurpose {
                found: "assertionMethod".into()
            }
        );
    }
}

#[test]
fn an_invalid_embedded_credential_is_reported_by_its_index() {
    for suite in SUITES {
        let good = credential(suite);
        let mut altered = good.clone();
        altered["credentialSubject"]["role"] = json!("organizer");
        let vp = presentation(suite, &[good.clone(), altered]);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::Credential {
                index: 1,
                reason: CredentialInvalid::Proof(ProofInvalid::BadSignature)
            },
            "{suite}"
        );

        let mut req = request_about(&holder(), suite);
        req.valid_until = Some(t("2026-02-01T00:00:00Z"));
        let expired = issue_credential(&issuer(), &req).unwrap();
        let vp = presentation(suite, &[good.clone(), good, expired]);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::Credential {
                index: 2,
                reason: CredentialInvalid::Expired {
                    valid_until: "2026-02-01T00:00:00Z".into()
                }
            }
        );
    }
}

#[test]
fn an_embedded_credential_that_cannot_be_checked_is_reported_by_its_index() {
    for suite in SUITES {
        let good = credential(suite);
        let mut odd = good.clone();
        odd["proof"]["cryptosuite"] = json!("bbs-2023");
        let vp = presentation(suite, &[good, odd]);
        let err = unverifiable_vp(&vp);
        match err {
            VerifyError::EmbeddedCredential { index: 1, source } => assert!(
                matches!(
                    *source,
                    VerifyError::Proof(IntegrityError::UnsupportedCryptosuite(_))
                ),
                "{source:?}"
            ),
            other => panic!("{suite}: {other:?}"),
        }
    }
}

#[test]
fn a_credential_about_someone_else_is_refused_in_a_presentation() {
    for suite in SUITES {
        // A valid credential, but about Mallory, presented by the holder.
        let about_mallory = issue_credential(&issuer(), &request_about(&mallory(), suite)).unwrap();
        valid_vc(&about_mallory, now());
        let vp = presentation(suite, &[credential(suite), about_mallory]);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::SubjectNotHolder {
                index: 1,
                subject: Some(mallory().did().to_string())
            },
            "{suite}"
        );
    }
}

#[test]
fn a_presentation_with_too_many_credentials_is_refused_before_any_signature_check() {
    for suite in SUITES {
        let vc = credential(suite);
        let many = vec![vc; MAX_EMBEDDED_CREDENTIALS + 1];
        let vp = presentation(suite, &many);
        assert_eq!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::TooManyCredentials(MAX_EMBEDDED_CREDENTIALS + 1)
        );
        // Even unsigned: the count is checked first, so a flood is cheap to refuse.
        assert_eq!(
            invalid_vp(&unsecured(&vp), CHALLENGE, DOMAIN),
            PresentationInvalid::TooManyCredentials(MAX_EMBEDDED_CREDENTIALS + 1)
        );
    }
}

#[test]
fn the_maximum_number_of_credentials_is_accepted() {
    // JCS only: sixteen RDF canonicalizations are slow in a debug build.
    let suite = Cryptosuite::EddsaJcs2022;
    let many = vec![credential(suite); MAX_EMBEDDED_CREDENTIALS];
    let v = valid_vp(&presentation(suite, &many), CHALLENGE);
    assert_eq!(v.credentials.len(), MAX_EMBEDDED_CREDENTIALS);
}

// ------------------------------------------------ presentations: cannot check

#[test]
fn malformed_presentations_cannot_be_checked() {
    for suite in SUITES {
        let good = presentation(suite, &[credential(suite)]);
        let mut cases: Vec<(&str, Value)> = vec![
            ("array", json!([good.clone()])),
            ("number", json!(7)),
            ("a credential", credential(suite)),
        ];
        let mut v1 = good.clone();
        v1["@context"] = json!("https://www.w3.org/2018/credentials/v1");
        cases.push(("VC 1.1 context", v1));
        let mut no_ctx = good.clone();
        no_ctx.as_object_mut().unwrap().remove("@context");
        cases.push(("no context", no_ctx));
        let mut no_type = good.clone();
        no_type.as_object_mut().unwrap().remove("type");
        cases.push(("no type", no_type));
        let mut bad_list = good.clone();
        bad_list["verifiableCredential"] = json!("not a list");
        cases.push(("credential list is a string", bad_list));
        for (what, vp) in cases {
            assert!(
                matches!(
                    unverifiable_vp(&vp),
                    VerifyError::Malformed {
                        what: "presentation",
                        ..
                    }
                ),
                "{suite}: {what}"
            );
        }
    }
}

#[test]
fn a_presentation_with_an_unsupported_suite_cannot_be_checked() {
    for suite in SUITES {
        let mut vp = presentation(suite, &[credential(suite)]);
        vp["proof"]["cryptosuite"] = json!("eddsa-2022");
        assert!(matches!(
            unverifiable_vp(&vp),
            VerifyError::Proof(IntegrityError::UnsupportedCryptosuite(_))
        ));
    }
}

// ------------------------- rdfc: the JSON read must be the JSON that was signed

/// Under eddsa-rdfc-2022 the signature covers the RDF graph, not the JSON.
/// These rewrites keep the graph (so the signature still verifies) but change
/// what a JSON reader sees; they must not be accepted.
fn json_ld_rewrites_of(vc: &Value) -> Vec<(&'static str, Value)> {
    const VOCAB: &str = identity::credential::ISSUER_DEPENDENT_VOCAB;
    let mut out = Vec::new();

    // Hide validUntil from the JSON reader; JSON-LD still sees it.
    let mut nest = vc.clone();
    let until = nest.as_object_mut().unwrap().remove("validUntil").unwrap();
    nest["@nest"] = json!({ "validUntil": until });
    out.push(("validUntil moved into @nest", nest));

    // Show role "organizer" and type "OrganizerCredential" while the graph
    // still says "party" and "MpcParticipantCredential".
    let mut ctx = vc.clone();
    ctx["@context"][1] = json!({
        "@vocab": VOCAB,
        "OrganizerCredential": format!("{VOCAB}MpcParticipantCredential"),
        "signedRole": format!("{VOCAB}role"),
        "role": null
    });
    ctx["type"] = json!(["VerifiableCredential", "OrganizerCredential"]);
    ctx["credentialSubject"]["role"] = json!("organizer");
    ctx["credentialSubject"]["signedRole"] = json!("party");
    out.push(("top-level context remaps terms", ctx));

    // The same with a context nested in the subject.
    let mut nested = vc.clone();
    nested["credentialSubject"]["@context"] =
        json!({ "signedRole": format!("{VOCAB}role"), "role": null });
    nested["credentialSubject"]["role"] = json!("organizer");
    nested["credentialSubject"]["signedRole"] = json!("party");
    out.push(("nested context remaps terms", nested));

    // JSON-LD drops unknown keywords: unsigned data a JSON reader would see.
    let mut unknown = vc.clone();
    unknown["credentialSubject"]["@role"] = json!("organizer");
    out.push(("unknown keyword", unknown));
    out
}

#[test]
fn rdfc_json_ld_rewrites_that_keep_the_signed_graph_are_not_accepted() {
    let vc = credential(Cryptosuite::EddsaRdfc2022);
    for (what, rewritten) in json_ld_rewrites_of(&vc) {
        // The signature alone would pass: the graph is unchanged.
        assert!(
            integrity::verify(&rewritten).unwrap().is_ok(),
            "{what}: the rewrite should keep the signed graph"
        );
        assert!(
            matches!(
                unverifiable_vc(&rewritten),
                VerifyError::UnsupportedJsonLd {
                    what: "credential",
                    ..
                }
            ),
            "{what}"
        );
    }
}

#[test]
fn rdfc_json_ld_rewrites_of_an_embedded_credential_are_not_accepted() {
    let vc = credential(Cryptosuite::EddsaRdfc2022);
    for (what, rewritten) in json_ld_rewrites_of(&vc) {
        for suite in SUITES {
            let vp = presentation(suite, std::slice::from_ref(&rewritten));
            assert!(
                matches!(
                    unverifiable_vp(&vp),
                    VerifyError::EmbeddedCredential { index: 0, ref source }
                        if matches!(**source, VerifyError::UnsupportedJsonLd { .. })
                ),
                "{suite}: {what}"
            );
        }
    }
}

#[test]
fn rdfc_json_ld_rewrites_of_a_presentation_are_not_accepted() {
    let vp = presentation(
        Cryptosuite::EddsaRdfc2022,
        &[credential(Cryptosuite::EddsaRdfc2022)],
    );
    let mut unknown = vp.clone();
    unknown["@comment"] = json!("not signed");
    let mut ctx = vp.clone();
    ctx["@context"] = json!([identity::credential::VC_V2_CONTEXT, { "note": null }]);
    ctx["note"] = json!("not signed");
    for rewritten in [unknown, ctx] {
        assert!(integrity::verify(&rewritten).unwrap().is_ok());
        assert!(matches!(
            verify_presentation(&rewritten, CHALLENGE, DOMAIN, now()),
            Err(VerifyError::UnsupportedJsonLd {
                what: "presentation",
                ..
            })
        ));
    }
}

#[test]
fn a_status_entry_hidden_with_json_ld_is_not_accepted() {
    let mut doc = unsecured(&credential(Cryptosuite::EddsaRdfc2022));
    doc["credentialStatus"] = json!({
        "id": "https://issuer.example/status/3#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": "https://issuer.example/status/3"
    });
    let mut vc = sign(
        &doc,
        &issuer(),
        Cryptosuite::EddsaRdfc2022,
        ProofPurpose::AssertionMethod,
    );
    let status = vc
        .as_object_mut()
        .unwrap()
        .remove("credentialStatus")
        .unwrap();
    vc["@nest"] = json!({ "credentialStatus": status });
    assert!(matches!(
        unverifiable_vc(&vc),
        VerifyError::UnsupportedJsonLd { .. }
    ));
}

#[test]
fn under_jcs_the_same_rewrites_break_the_signature() {
    // JCS signs the JSON itself, so every rewrite is simply an alteration.
    let vc = credential(Cryptosuite::EddsaJcs2022);
    for (what, rewritten) in json_ld_rewrites_of(&vc) {
        assert!(
            matches!(
                invalid_vc(&rewritten, now()),
                CredentialInvalid::Proof(
                    ProofInvalid::BadSignature | ProofInvalid::ContextMismatch
                )
            ),
            "{what}"
        );
    }
}

#[test]
fn language_tagged_claims_are_accepted_under_rdfc() {
    let mut req = request_about(&holder(), Cryptosuite::EddsaRdfc2022);
    req.claims.insert(
        "organization".into(),
        json!({ "@value": "Acme Laboratoires", "@language": "fr" }),
    );
    let vc = issue_credential(&issuer(), &req).unwrap();
    let v = valid_vc(&vc, now());
    assert_eq!(v.claims["organization"]["@language"], "fr");
}

// ------------------------------------------- jcs: numbers must be exact

#[test]
fn jcs_refuses_to_sign_integers_beyond_the_i_json_range() {
    // RFC 8785 writes numbers as doubles: 2^53 + 1 and 2^53 would share a
    // canonical form, so a signature could not tell them apart.
    let mut req = request_about(&holder(), Cryptosuite::EddsaJcs2022);
    req.claims
        .insert("budget".into(), json!(9_007_199_254_740_993u64));
    assert!(matches!(
        issue_credential(&issuer(), &req),
        Err(IssueError::Sign(IntegrityError::Canonicalization(
            CanonError::Jcs(_)
        )))
    ));
    // At the limit it is fine, and the value is bound exactly.
    req.claims
        .insert("budget".into(), json!(9_007_199_254_740_991u64));
    let vc = issue_credential(&issuer(), &req).unwrap();
    assert_eq!(
        valid_vc(&vc, now()).claims["budget"],
        9_007_199_254_740_991u64
    );
}

#[test]
fn jcs_cannot_check_a_document_whose_integer_was_pushed_beyond_the_i_json_range() {
    let mut req = request_about(&holder(), Cryptosuite::EddsaJcs2022);
    req.claims
        .insert("budget".into(), json!(9_007_199_254_740_992u64));
    // 2^53 itself is outside ±(2^53 − 1): refused, not signed.
    assert!(issue_credential(&issuer(), &req).is_err());

    let mut req = request_about(&holder(), Cryptosuite::EddsaJcs2022);
    req.claims
        .insert("budget".into(), json!(-9_007_199_254_740_991i64));
    let mut vc = issue_credential(&issuer(), &req).unwrap();
    valid_vc(&vc, now());
    vc["credentialSubject"]["budget"] = json!(-9_007_199_254_740_993i64);
    assert!(matches!(
        unverifiable_vc(&vc),
        VerifyError::Proof(IntegrityError::Canonicalization(CanonError::Jcs(_)))
    ));
}

// ------------------------------------------------- inputs found by fuzzing

#[test]
fn an_iri_percent_encoding_bytes_that_are_not_utf8_cannot_be_checked_under_rdfc() {
    // The JSON-LD processor's IRI library panicked on these (fuzz target
    // presentation_verify); they must be refused, not crash the verifier.
    let vc = credential(Cryptosuite::EddsaRdfc2022);
    let mut in_vocab = vc.clone();
    in_vocab["@context"][1]["@vocab"] =
        json!("https://www.w3.org/ns/cr%dentials/issuer-dependent#");
    let mut in_key = vc.clone();
    in_key["credentialSubject"]["r%dele"] = json!("x");
    let mut in_id = vc.clone();
    in_id["id"] = json!("urn:uuid:%dead");
    let mut in_type = vc.clone();
    in_type["type"] = json!(["VerifiableCredential", "Mpc%C3Participant"]);
    for doc in [in_vocab, in_key, in_id, in_type] {
        assert!(
            matches!(
                unverifiable_vc(&doc),
                VerifyError::Proof(IntegrityError::Canonicalization(CanonError::Expansion(_)))
            ),
            "{doc}"
        );
        let vp = presentation(Cryptosuite::EddsaJcs2022, &[doc]);
        assert!(matches!(
            unverifiable_vp(&vp),
            VerifyError::EmbeddedCredential { index: 0, .. }
        ));
    }
    // Well-formed percent-encoding is fine.
    let mut doc = unsecured(&vc);
    doc["id"] = json!("urn:example:caf%C3%A9");
    let vc = sign(
        &doc,
        &issuer(),
        Cryptosuite::EddsaRdfc2022,
        ProofPurpose::AssertionMethod,
    );
    valid_vc(&vc, now());
}

#[test]
fn oversized_base58_from_a_peer_is_refused_without_decoding_it() {
    // Base58 decoding is quadratic: 200 000 characters would take seconds.
    let huge = "2".repeat(200_000);
    let started = std::time::Instant::now();
    for suite in SUITES {
        let mut vc = credential(suite);
        vc["proof"]["proofValue"] = json!(format!("z{huge}"));
        assert_eq!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::MalformedProofValue)
        );

        let mut vc = credential(suite);
        vc["proof"]["verificationMethod"] = json!(format!("did:key:z{huge}#z{huge}"));
        assert!(matches!(
            invalid_vc(&vc, now()),
            CredentialInvalid::Proof(ProofInvalid::BadVerificationMethod(_))
        ));

        let mut vp = presentation(suite, &[]);
        vp["holder"] = json!(format!("did:key:z{huge}"));
        assert!(matches!(
            invalid_vp(&vp, CHALLENGE, DOMAIN),
            PresentationInvalid::BadHolder(_)
        ));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
