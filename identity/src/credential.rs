//! Verifiable Credentials and Presentations (VC Data Model 2.0) with Data
//! Integrity proofs: issuing, presenting, and complete verification.
//!
//! Verification checks everything a relying party needs, not just the
//! signature: the issuer is the controller of the signing key, the validity
//! period against the caller's clock, the proof purpose, and for
//! presentations the challenge, the domain, that the holder signed, and every
//! embedded credential (each about the holder).

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::did::Did;
use crate::integrity::{
    self, CheckedProof, Cryptosuite, IntegrityError, ProofInvalid, ProofOptions, ProofPurpose,
};
use crate::keys::Keypair;
use crate::time::{format_timestamp, parse_timestamp};

/// The base context every VC 2.0 document starts with.
pub const VC_V2_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// Credential types and claims of this product (`MpcParticipantCredential`,
/// `organization`, …) are not defined by the VC 2.0 base context, so issued
/// documents add an embedded context mapping undefined terms to the W3C's
/// issuer-dependent namespace. An embedded context needs no network fetch, so
/// every standard JSON-LD processor expands it offline.
pub const ISSUER_DEPENDENT_VOCAB: &str = "https://www.w3.org/ns/credentials/issuer-dependent#";
/// Most credentials one presentation may carry: verification cost is linear
/// in it and a broker verifies presentations from strangers.
pub const MAX_EMBEDDED_CREDENTIALS: usize = 16;

/// Could not evaluate a credential or presentation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a VC 2.0 credential/presentation (missing context, type, issuer…).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// "credential" or "presentation".
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The proof could not be evaluated.
    #[error("cannot evaluate the proof")]
    Proof(#[source] IntegrityError),
    /// The credential has a `credentialStatus` entry; its status list cannot
    /// be fetched offline, so validity cannot be established.
    #[error(
        "the credential has a credentialStatus entry, which this verifier cannot check offline"
    )]
    StatusNotCheckable,
    /// The document is secured with `eddsa-rdfc-2022` and uses JSON-LD
    /// features (embedded context definitions, `@nest`, other `@` keywords)
    /// that could make the JSON this verifier reads differ from the RDF
    /// graph the signature covers.
    #[error("unsupported JSON-LD in an eddsa-rdfc-2022 {what}: {reason}")]
    UnsupportedJsonLd {
        /// "credential" or "presentation".
        what: &'static str,
        /// Which feature.
        reason: String,
    },
    /// An embedded credential could not be evaluated.
    #[error("embedded credential #{index} cannot be evaluated")]
    EmbeddedCredential {
        /// Position in `verifiableCredential`.
        index: usize,
        /// Why.
        #[source]
        source: Box<VerifyError>,
    },
}

/// A credential that was evaluated and is not valid.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialInvalid {
    /// The proof is invalid (bad signature, malformed proof value, …).
    #[error("invalid proof: {0}")]
    Proof(#[source] ProofInvalid),
    /// Credentials must be signed for `assertionMethod`.
    #[error("proof purpose is {found:?}, expected \"assertionMethod\"")]
    WrongProofPurpose {
        /// What the proof says.
        found: String,
    },
    /// The key that signed is not controlled by the issuer.
    #[error("issued by {issuer} but signed by a key of {signer}")]
    IssuerMismatch {
        /// The `issuer` field.
        issuer: String,
        /// The controller of the signing verification method.
        signer: Did,
    },
    /// `validFrom`/`validUntil` is not a date-time with a time zone.
    #[error("{field} is not a valid date-time: {value:?}")]
    BadDate {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The current time is before `validFrom`.
    #[error("not valid yet: valid from {valid_from}")]
    NotYetValid {
        /// `validFrom` as written.
        valid_from: String,
    },
    /// The current time is after `validUntil`.
    #[error("expired: valid until {valid_until}")]
    Expired {
        /// `validUntil` as written.
        valid_until: String,
    },
}

/// A presentation that was evaluated and is not valid.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresentationInvalid {
    /// The presentation's own proof is invalid.
    #[error("invalid proof: {0}")]
    Proof(#[source] ProofInvalid),
    /// Presentations must be signed for `authentication`.
    #[error("proof purpose is {found:?}, expected \"authentication\"")]
    WrongProofPurpose {
        /// What the proof says.
        found: String,
    },
    /// No `holder` field: there is nobody to authenticate.
    #[error("the presentation has no holder")]
    MissingHolder,
    /// The holder is not a did:key.
    #[error("the holder is not a valid did:key: {0}")]
    BadHolder(String),
    /// The proof was made by another DID than the holder.
    #[error("holder is {holder} but the presentation was signed by {signer}")]
    HolderMismatch {
        /// The `holder` field.
        holder: Did,
        /// The signer.
        signer: Did,
    },
    /// The proof carries no challenge or a different one (replay protection).
    #[error("the presentation answers challenge {}, not the one the verifier issued (replayed or for another login)", shown(.found))]
    ChallengeMismatch {
        /// The challenge in the proof, if any.
        found: Option<String>,
    },
    /// The proof is bound to another domain (made for a different verifier).
    #[error("the presentation is bound to domain {}, expected {expected:?}", shown(.found))]
    DomainMismatch {
        /// Expected domain.
        expected: String,
        /// The domain in the proof, if any.
        found: Option<String>,
    },
    /// An embedded credential is invalid.
    #[error("credential #{index} is invalid: {reason}")]
    Credential {
        /// Position in `verifiableCredential`.
        index: usize,
        /// Why.
        #[source]
        reason: CredentialInvalid,
    },
    /// An embedded credential is about someone other than the holder.
    #[error("credential #{index} is about {}, not the holder", shown(.subject))]
    SubjectNotHolder {
        /// Position in `verifiableCredential`.
        index: usize,
        /// The credential subject's id, if any.
        subject: Option<String>,
    },
    /// More credentials than [`MAX_EMBEDDED_CREDENTIALS`].
    #[error(
        "the presentation carries {0} credentials; at most {MAX_EMBEDDED_CREDENTIALS} are accepted"
    )]
    TooManyCredentials(usize),
}

/// Errors while issuing or presenting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The claims are not a JSON object or try to set `id`.
    #[error("bad claims: {0}")]
    BadClaims(String),
    /// A credential to present is not a JSON object.
    #[error("credential #{0} to present is not a JSON object")]
    BadCredential(usize),
    /// Signing failed (e.g. a claim name the JSON-LD context cannot expand).
    #[error("cannot sign")]
    Sign(#[source] IntegrityError),
}

/// What to put in a new credential.
#[derive(Debug, Clone)]
pub struct CredentialRequest {
    /// Optional credential `id` (a URI).
    pub id: Option<String>,
    /// The subject's DID.
    pub subject: Did,
    /// Credential types besides `VerifiableCredential`.
    pub types: Vec<String>,
    /// Claims about the subject (merged into `credentialSubject`).
    pub claims: Map<String, Value>,
    /// Start of validity.
    pub valid_from: SystemTime,
    /// End of validity, if any.
    pub valid_until: Option<SystemTime>,
    /// Proof suite.
    pub suite: Cryptosuite,
    /// The proof's `created` time.
    pub created: SystemTime,
}

/// A credential that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCredential {
    /// The issuer (controller of the signing key).
    pub issuer: Did,
    /// `credentialSubject.id`, if present.
    pub subject: Option<String>,
    /// All `type` values.
    pub types: Vec<String>,
    /// The `credentialSubject` object.
    pub claims: Map<String, Value>,
    /// The suite of its proof.
    pub suite: Cryptosuite,
    /// `validUntil`, if any.
    pub valid_until: Option<SystemTime>,
}

/// What to put in a new presentation.
#[derive(Debug, Clone)]
pub struct PresentationRequest {
    /// The verifier's challenge (nonce).
    pub challenge: String,
    /// The verifier's domain.
    pub domain: String,
    /// Proof suite.
    pub suite: Cryptosuite,
    /// The proof's `created` time.
    pub created: SystemTime,
}

/// A presentation that verified, with its verified credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPresentation {
    /// The authenticated holder.
    pub holder: Did,
    /// Every embedded credential, verified, in order.
    pub credentials: Vec<VerifiedCredential>,
}

/// Issues a VC 2.0 credential signed by `issuer`.
pub fn issue_credential(issuer: &Keypair, req: &CredentialRequest) -> Result<Value, IssueError> {
    if req.claims.contains_key("id") {
        return Err(IssueError::BadClaims(
            "claims must not set \"id\"; the subject id is the subject DID".into(),
        ));
    }
    let mut subject = Map::new();
    subject.insert("id".into(), req.subject.as_str().into());
    subject.extend(req.claims.clone());
    let mut types = vec![Value::from("VerifiableCredential")];
    types.extend(
        req.types
            .iter()
            .filter(|t| *t != "VerifiableCredential")
            .map(|t| Value::from(t.as_str())),
    );
    let mut vc = Map::new();
    vc.insert(
        "@context".into(),
        json!([VC_V2_CONTEXT, { "@vocab": ISSUER_DEPENDENT_VOCAB }]),
    );
    if let Some(id) = &req.id {
        vc.insert("id".into(), id.as_str().into());
    }
    vc.insert("type".into(), Value::Array(types));
    vc.insert("issuer".into(), issuer.did().as_str().into());
    vc.insert("validFrom".into(), format_timestamp(req.valid_from).into());
    if let Some(until) = req.valid_until {
        vc.insert("validUntil".into(), format_timestamp(until).into());
    }
    vc.insert("credentialSubject".into(), Value::Object(subject));
    integrity::sign(
        &vc,
        issuer,
        &ProofOptions {
            suite: req.suite,
            purpose: ProofPurpose::AssertionMethod,
            created: req.created,
            challenge: None,
            domain: None,
        },
    )
    .map_err(IssueError::Sign)
}

/// Wraps credentials in a presentation signed by `holder` for
/// `authentication`, bound to the verifier's challenge and domain.
pub fn present(
    holder: &Keypair,
    credentials: &[Value],
    req: &PresentationRequest,
) -> Result<Value, IssueError> {
    if let Some(i) = credentials.iter().position(|c| !c.is_object()) {
        return Err(IssueError::BadCredential(i));
    }
    let mut vp = Map::new();
    vp.insert("@context".into(), json!([VC_V2_CONTEXT]));
    vp.insert("type".into(), json!(["VerifiablePresentation"]));
    vp.insert("holder".into(), holder.did().as_str().into());
    vp.insert(
        "verifiableCredential".into(),
        Value::Array(credentials.to_vec()),
    );
    integrity::sign(
        &vp,
        holder,
        &ProofOptions {
            suite: req.suite,
            purpose: ProofPurpose::Authentication,
            created: req.created,
            challenge: Some(&req.challenge),
            domain: Some(&req.domain),
        },
    )
    .map_err(IssueError::Sign)
}

/// Verifies a credential completely at time `now`.
pub fn verify_credential(
    vc: &Value,
    now: SystemTime,
) -> Result<Result<VerifiedCredential, CredentialInvalid>, VerifyError> {
    let malformed = |reason: &str| VerifyError::Malformed {
        what: "credential",
        reason: reason.to_owned(),
    };
    let obj = vc
        .as_object()
        .ok_or_else(|| malformed("not a JSON object"))?;
    check_context(obj).map_err(|r| malformed(&r))?;
    let types = string_list(obj.get("type"));
    if !types.iter().any(|t| t == "VerifiableCredential") {
        return Err(malformed("\"type\" must include \"VerifiableCredential\""));
    }
    let issuer = match obj.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("issuer object has no \"id\""))?
            .to_owned(),
        _ => return Err(malformed("missing \"issuer\"")),
    };
    let claims = match obj.get("credentialSubject") {
        Some(Value::Object(o)) => o.clone(),
        Some(Value::Array(_)) => {
            return Err(malformed(
                "credentials about several subjects are not supported",
            ))
        }
        _ => return Err(malformed("missing \"credentialSubject\" object")),
    };
    if obj.contains_key("credentialStatus") {
        return Err(VerifyError::StatusNotCheckable);
    }

    let proof = match integrity::verify(vc).map_err(VerifyError::Proof)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(CredentialInvalid::Proof(e))),
    };
    if proof.suite == Cryptosuite::EddsaRdfc2022 {
        check_plain_json_ld(obj, None).map_err(|reason| VerifyError::UnsupportedJsonLd {
            what: "credential",
            reason,
        })?;
    }
    if proof.purpose != ProofPurpose::AssertionMethod.name() {
        return Ok(Err(CredentialInvalid::WrongProofPurpose {
            found: proof.purpose,
        }));
    }
    if issuer != proof.signer.as_str() {
        return Ok(Err(CredentialInvalid::IssuerMismatch {
            issuer,
            signer: proof.signer,
        }));
    }
    let valid_until = match check_validity(obj, now) {
        Ok(until) => until,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(VerifiedCredential {
        issuer: proof.signer,
        subject: claims.get("id").and_then(Value::as_str).map(str::to_owned),
        types,
        claims,
        suite: proof.suite,
        valid_until,
    }))
}

/// Verifies a presentation and every credential in it at time `now`, with
/// the challenge and domain the verifier issued.
pub fn verify_presentation(
    vp: &Value,
    challenge: &str,
    domain: &str,
    now: SystemTime,
) -> Result<Result<VerifiedPresentation, PresentationInvalid>, VerifyError> {
    let malformed = |reason: &str| VerifyError::Malformed {
        what: "presentation",
        reason: reason.to_owned(),
    };
    let obj = vp
        .as_object()
        .ok_or_else(|| malformed("not a JSON object"))?;
    check_context(obj).map_err(|r| malformed(&r))?;
    if !string_list(obj.get("type"))
        .iter()
        .any(|t| t == "VerifiablePresentation")
    {
        return Err(malformed(
            "\"type\" must include \"VerifiablePresentation\"",
        ));
    }
    let credentials: Vec<&Value> = match obj.get("verifiableCredential") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => return Err(malformed("\"verifiableCredential\" must be an array")),
    };
    let holder = match obj.get("holder") {
        None => return Ok(Err(PresentationInvalid::MissingHolder)),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) => match o.get("id").and_then(Value::as_str) {
            Some(s) => s,
            None => return Ok(Err(PresentationInvalid::MissingHolder)),
        },
        Some(_) => return Ok(Err(PresentationInvalid::MissingHolder)),
    };
    let holder = match Did::parse(holder) {
        Ok(d) => d,
        Err(e) => return Ok(Err(PresentationInvalid::BadHolder(e.to_string()))),
    };
    if credentials.len() > MAX_EMBEDDED_CREDENTIALS {
        return Ok(Err(PresentationInvalid::TooManyCredentials(
            credentials.len(),
        )));
    }

    let proof: CheckedProof = match integrity::verify(vp).map_err(VerifyError::Proof)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(PresentationInvalid::Proof(e))),
    };
    if proof.suite == Cryptosuite::EddsaRdfc2022 {
        // Embedded credentials are checked on their own, by their own suite.
        check_plain_json_ld(obj, Some("verifiableCredential")).map_err(|reason| {
            VerifyError::UnsupportedJsonLd {
                what: "presentation",
                reason,
            }
        })?;
    }
    if proof.purpose != ProofPurpose::Authentication.name() {
        return Ok(Err(PresentationInvalid::WrongProofPurpose {
            found: proof.purpose,
        }));
    }
    if proof.signer != holder {
        return Ok(Err(PresentationInvalid::HolderMismatch {
            holder,
            signer: proof.signer,
        }));
    }
    if proof.challenge.as_deref() != Some(challenge) {
        return Ok(Err(PresentationInvalid::ChallengeMismatch {
            found: proof.challenge,
        }));
    }
    if proof.domain.as_deref() != Some(domain) {
        return Ok(Err(PresentationInvalid::DomainMismatch {
            expected: domain.to_owned(),
            found: proof.domain,
        }));
    }

    let mut verified = Vec::with_capacity(credentials.len());
    for (index, vc) in credentials.into_iter().enumerate() {
        let vc = match verify_credential(vc, now).map_err(|e| VerifyError::EmbeddedCredential {
            index,
            source: Box::new(e),
        })? {
            Ok(vc) => vc,
            Err(reason) => return Ok(Err(PresentationInvalid::Credential { index, reason })),
        };
        if vc.subject.as_deref() != Some(holder.as_str()) {
            return Ok(Err(PresentationInvalid::SubjectNotHolder {
                index,
                subject: vc.subject,
            }));
        }
        verified.push(vc);
    }
    Ok(Ok(VerifiedPresentation {
        holder,
        credentials: verified,
    }))
}

fn shown(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "(none)".into(),
    }
}

fn check_context(obj: &Map<String, Value>) -> Result<(), String> {
    match obj.get("@context") {
        Some(Value::Array(a)) if a.first().and_then(Value::as_str) == Some(VC_V2_CONTEXT) => Ok(()),
        Some(Value::String(s)) if s == VC_V2_CONTEXT => Ok(()),
        _ => Err(format!("\"@context\" must start with {VC_V2_CONTEXT:?}")),
    }
}

/// Under `eddsa-rdfc-2022` the signature covers an RDF graph, but this
/// verifier reads the JSON. JSON-LD lets the two disagree: an embedded context
/// can map a visible key to nothing and a hidden one to a signed claim (so
/// `"role": "organizer"` shows while `"party"` is what was signed), `@nest`
/// moves `validUntil` out of sight, and unknown `@` keys are dropped. An rdfc
/// document is therefore only accepted in plain form: contexts by URL (only
/// bundled ones load) plus the issuer-dependent `@vocab` that
/// [`issue_credential`] writes, and no `@` keys besides those of value
/// objects. `skip` names a top-level entry checked elsewhere.
fn check_plain_json_ld(obj: &Map<String, Value>, skip: Option<&str>) -> Result<(), String> {
    if let Some(ctx) = obj.get("@context") {
        let entries = match ctx {
            Value::Array(a) => a.as_slice(),
            other => std::slice::from_ref(other),
        };
        for entry in entries {
            let plain = match entry {
                Value::String(_) => true,
                Value::Object(o) => {
                    o.len() == 1
                        && o.get("@vocab").and_then(Value::as_str) == Some(ISSUER_DEPENDENT_VOCAB)
                }
                _ => false,
            };
            if !plain {
                return Err("embedded @context definitions are not accepted".into());
            }
        }
    }
    for (key, value) in obj {
        match key.as_str() {
            "@context" => continue,
            k if Some(k) == skip => continue,
            k => keyword_allowed(k)?,
        }
        match (key.as_str(), value) {
            // The proof may repeat the document's @context (integrity::verify
            // requires it to be identical).
            ("proof", Value::Object(p)) => {
                for (k, v) in p.iter().filter(|(k, _)| *k != "@context") {
                    keyword_allowed(k)?;
                    no_keywords(v)?;
                }
            }
            _ => no_keywords(value)?,
        }
    }
    Ok(())
}

fn no_keywords(value: &Value) -> Result<(), String> {
    match value {
        Value::Object(o) => o.iter().try_for_each(|(k, v)| {
            keyword_allowed(k)?;
            no_keywords(v)
        }),
        Value::Array(a) => a.iter().try_for_each(no_keywords),
        _ => Ok(()),
    }
}

/// Keys of value objects (`{"@value": "Alice", "@language": "en"}`) only
/// describe a literal; every other `@` key is refused.
fn keyword_allowed(key: &str) -> Result<(), String> {
    if key.starts_with('@') && !matches!(key, "@value" | "@language" | "@direction") {
        return Err(format!(
            "the JSON-LD keyword {:?} is not accepted",
            key.chars().take(32).collect::<String>()
        ));
    }
    Ok(())
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn check_validity(
    obj: &Map<String, Value>,
    now: SystemTime,
) -> Result<Option<SystemTime>, CredentialInvalid> {
    let date = |field: &'static str| -> Result<Option<(SystemTime, String)>, CredentialInvalid> {
        match obj.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                parse_timestamp(s)
                    .map(|t| Some((t, s.clone())))
                    .map_err(|_| CredentialInvalid::BadDate {
                        field,
                        value: s.chars().take(64).collect(),
                    })
            }
            Some(other) => Err(CredentialInvalid::BadDate {
                field,
                value: other.to_string().chars().take(64).collect(),
            }),
        }
    };
    if let Some((from, text)) = date("validFrom")? {
        if now < from {
            return Err(CredentialInvalid::NotYetValid { valid_from: text });
        }
    }
    match date("validUntil")? {
        Some((until, text)) if now > until => Err(CredentialInvalid::Expired { valid_until: text }),
        Some((until, _)) => Ok(Some(until)),
        None => Ok(None),
    }
}
