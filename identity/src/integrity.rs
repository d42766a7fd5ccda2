//! W3C Data Integrity proofs with the EdDSA cryptosuites
//! [`eddsa-rdfc-2022` and `eddsa-jcs-2022`](https://www.w3.org/TR/vc-di-eddsa/).
//!
//! Both suites share one algorithm and differ only in the canonical form that
//! is hashed: `hashData = SHA-256(canon(proofConfig)) || SHA-256(canon(doc))`,
//! signed with Ed25519 and encoded as multibase base58btc. `ssi` provides the
//! RDF canonicalization but not the JCS suite, so the algorithm lives here
//! once for both, and `ssi`'s own verifier checks our output in the interop
//! tests.
//!
//! This module checks the proof itself (suite, signature, verification method
//! resolution). The meaning of the signed document — issuer binding, validity
//! period, challenge — is checked by [`crate::credential`] and
//! [`crate::statement`].

use std::time::SystemTime;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canon::{self, CanonError};
use crate::did::{Did, DidError};
use crate::keys::{Keypair, Signature};
use crate::time::{format_timestamp, parse_timestamp};

/// The two EdDSA Data Integrity cryptosuites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Cryptosuite {
    /// RDF Dataset Canonicalization (JSON-LD), the interoperable default.
    #[default]
    EddsaRdfc2022,
    /// JSON Canonicalization Scheme: no JSON-LD processing, much faster.
    EddsaJcs2022,
}

impl Cryptosuite {
    /// The suite's registered name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EddsaRdfc2022 => "eddsa-rdfc-2022",
            Self::EddsaJcs2022 => "eddsa-jcs-2022",
        }
    }
}

impl std::fmt::Display for Cryptosuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Cryptosuite {
    type Err = IntegrityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eddsa-rdfc-2022" => Ok(Self::EddsaRdfc2022),
            "eddsa-jcs-2022" => Ok(Self::EddsaJcs2022),
            other => Err(IntegrityError::UnsupportedCryptosuite(
                other.chars().take(64).collect(),
            )),
        }
    }
}

/// Why a proof was made (`proofPurpose`): which verification relationship
/// of the signer's DID document the key must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProofPurpose {
    /// Statements such as credentials, manifests and rosters.
    AssertionMethod,
    /// Proving control of a DID, e.g. a presentation answering a challenge.
    Authentication,
}

impl ProofPurpose {
    /// The term used in `proofPurpose`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AssertionMethod => "assertionMethod",
            Self::Authentication => "authentication",
        }
    }
}

/// Could not evaluate the proof at all (as opposed to [`ProofInvalid`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The document is not a JSON object or lacks a usable `proof`.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// The proof is not a `DataIntegrityProof`.
    #[error("unsupported proof type {0:?} (only DataIntegrityProof is supported)")]
    UnsupportedProofType(String),
    /// The cryptosuite is not one of the EdDSA suites.
    #[error("unsupported cryptosuite {0:?} (supported: eddsa-rdfc-2022, eddsa-jcs-2022)")]
    UnsupportedCryptosuite(String),
    /// The verification method is not a did:key (other DID methods need a
    /// resolver this offline verifier does not have).
    #[error("cannot resolve verification method {0:?}: only did:key is supported")]
    UnsupportedDidMethod(String),
    /// Canonicalization failed (unknown context, undefined term, …).
    #[error("cannot canonicalize the document")]
    Canonicalization(#[source] CanonError),
}

/// The proof was evaluated and is not valid.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofInvalid {
    /// `proofValue` is missing or not multibase base58btc of 64 bytes.
    #[error("the proofValue is missing or not a base58btc Ed25519 signature")]
    MalformedProofValue,
    /// The verification method is a malformed did:key.
    #[error("the verification method is not a valid did:key key id: {0}")]
    BadVerificationMethod(String),
    /// A required proof field is missing or has the wrong type.
    #[error("the proof lacks a valid {0:?}")]
    MissingField(&'static str),
    /// The proof's own `@context` differs from the document's.
    #[error("the proof's @context differs from the document's")]
    ContextMismatch,
    /// The signature does not verify: the document or proof was altered, or
    /// signed by another key.
    #[error("the signature does not match the document (altered, or signed by another key)")]
    BadSignature,
}

/// What a valid proof tells: who signed, for what purpose, when, and the
/// challenge/domain it was bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The DID whose key made the signature (the verification method's controller).
    pub signer: Did,
    /// The suite used.
    pub suite: Cryptosuite,
    /// `proofPurpose` as written.
    pub purpose: String,
    /// `created`, if present and well formed.
    pub created: Option<SystemTime>,
    /// `challenge`, if present.
    pub challenge: Option<String>,
    /// `domain`, if present (a string; arrays are reported as their JSON text).
    pub domain: Option<String>,
}

/// How to make a proof.
#[derive(Debug, Clone)]
pub(crate) struct ProofOptions<'a> {
    pub(crate) suite: Cryptosuite,
    pub(crate) purpose: ProofPurpose,
    pub(crate) created: SystemTime,
    pub(crate) challenge: Option<&'a str>,
    pub(crate) domain: Option<&'a str>,
}

/// Adds a Data Integrity proof to `unsecured` (which must not have one) and
/// returns the secured document.
pub(crate) fn sign(
    unsecured: &Map<String, Value>,
    keypair: &Keypair,
    opts: &ProofOptions<'_>,
) -> Result<Value, IntegrityError> {
    if unsecured.contains_key("proof") {
        return Err(IntegrityError::Malformed(
            "the document already has a proof".into(),
        ));
    }
    let mut config = Map::new();
    config.insert("type".into(), "DataIntegrityProof".into());
    config.insert("cryptosuite".into(), opts.suite.name().into());
    config.insert("created".into(), format_timestamp(opts.created).into());
    config.insert(
        "verificationMethod".into(),
        keypair.did().verification_method().into(),
    );
    config.insert("proofPurpose".into(), opts.purpose.name().into());
    if let Some(c) = opts.challenge {
        config.insert("challenge".into(), c.into());
    }
    if let Some(d) = opts.domain {
        config.insert("domain".into(), d.into());
    }
    let doc = Value::Object(unsecured.clone());
    let hash = hash_data(&doc, config.clone(), opts.suite)?;
    // eddsa-jcs-2022 keeps the document's context in the proof (the JCS
    // suite's "add proof" step); eddsa-rdfc-2022 does not.
    if let (Cryptosuite::EddsaJcs2022, Some(ctx)) = (opts.suite, unsecured.get("@context")) {
        config.insert("@context".into(), ctx.clone());
    }
    let signature = keypair.sign(&hash);
    config.insert(
        "proofValue".into(),
        multibase::encode(multibase::Base::Base58Btc, signature.to_bytes()).into(),
    );
    let mut secured = unsecured.clone();
    secured.insert("proof".into(), Value::Object(config));
    Ok(Value::Object(secured))
}

/// Adds a Data Integrity proof to a JSON object (which must not have one yet)
/// and returns the secured document.
pub fn add_proof(
    unsecured: &Value,
    keypair: &Keypair,
    suite: Cryptosuite,
    purpose: ProofPurpose,
    created: SystemTime,
) -> Result<Value, IntegrityError> {
    let obj = unsecured
        .as_object()
        .ok_or_else(|| IntegrityError::Malformed("not a JSON object".into()))?;
    sign(
        obj,
        keypair,
        &ProofOptions {
            suite,
            purpose,
            created,
            challenge: None,
            domain: None,
        },
    )
}

/// `SHA-256(canon(proofConfig)) || SHA-256(canon(doc))`, where the proof
/// configuration takes the document's `@context`. This is what the Ed25519
/// key signs.
pub fn hash_data(
    unsecured: &Value,
    mut config: Map<String, Value>,
    suite: Cryptosuite,
) -> Result<[u8; 64], IntegrityError> {
    if let Some(ctx) = unsecured.get("@context") {
        config.insert("@context".into(), ctx.clone());
    }
    let config = Value::Object(config);
    let (config_hash, doc_hash) = match suite {
        Cryptosuite::EddsaRdfc2022 => (
            sha256_lines(&canon::rdfc(&config).map_err(IntegrityError::Canonicalization)?),
            sha256_lines(&canon::rdfc(unsecured).map_err(IntegrityError::Canonicalization)?),
        ),
        Cryptosuite::EddsaJcs2022 => (
            Sha256::digest(canon::jcs(&config).map_err(IntegrityError::Canonicalization)?).into(),
            Sha256::digest(canon::jcs(unsecured).map_err(IntegrityError::Canonicalization)?).into(),
        ),
    };
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&config_hash);
    out[32..].copy_from_slice(&doc_hash);
    Ok(out)
}

fn sha256_lines(lines: &[String]) -> [u8; 32] {
    lines
        .iter()
        .fold(Sha256::new(), |h, l| h.chain_update(l.as_bytes()))
        .finalize()
        .into()
}

/// The canonical form a suite hashes: RDFC-1.0 N-Quads or RFC 8785 JSON.
pub fn canonical_form(doc: &Value, suite: Cryptosuite) -> Result<Vec<u8>, IntegrityError> {
    match suite {
        Cryptosuite::EddsaRdfc2022 => canon::rdfc(doc)
            .map(|lines| lines.concat().into_bytes())
            .map_err(IntegrityError::Canonicalization),
        Cryptosuite::EddsaJcs2022 => canon::jcs(doc).map_err(IntegrityError::Canonicalization),
    }
}

/// Verifies the single Data Integrity proof of `secured`.
pub fn verify(secured: &Value) -> Result<Result<CheckedProof, ProofInvalid>, IntegrityError> {
    let obj = secured
        .as_object()
        .ok_or_else(|| IntegrityError::Malformed("not a JSON object".into()))?;
    let proof = match obj.get("proof") {
        Some(Value::Object(p)) => p,
        Some(Value::Array(a)) if a.len() == 1 => a[0]
            .as_object()
            .ok_or_else(|| IntegrityError::Malformed("the proof is not an object".into()))?,
        Some(Value::Array(_)) => {
            return Err(IntegrityError::Malformed(
                "proof sets and chains (several proofs) are not supported".into(),
            ))
        }
        Some(_) => {
            return Err(IntegrityError::Malformed(
                "the proof is not an object".into(),
            ))
        }
        None => {
            return Err(IntegrityError::Malformed(
                "the document has no proof".into(),
            ))
        }
    };
    let ptype = proof
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ptype != "DataIntegrityProof" {
        return Err(IntegrityError::UnsupportedProofType(
            ptype.chars().take(64).collect(),
        ));
    }
    let suite: Cryptosuite = proof
        .get("cryptosuite")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .parse()?;

    let Some(vm) = proof.get("verificationMethod").and_then(Value::as_str) else {
        return Ok(Err(ProofInvalid::MissingField("verificationMethod")));
    };
    let signer = match Did::from_verification_method(vm) {
        Ok(did) => did,
        Err(DidError::WrongPrefix(_)) => {
            return Err(IntegrityError::UnsupportedDidMethod(
                vm.chars().take(80).collect(),
            ))
        }
        Err(e) => return Ok(Err(ProofInvalid::BadVerificationMethod(e.to_string()))),
    };
    let Some(purpose) = proof.get("proofPurpose").and_then(Value::as_str) else {
        return Ok(Err(ProofInvalid::MissingField("proofPurpose")));
    };
    let created = match proof.get("created") {
        None => None,
        Some(Value::String(s)) => match parse_timestamp(s) {
            Ok(t) => Some(t),
            Err(_) => return Ok(Err(ProofInvalid::MissingField("created"))),
        },
        Some(_) => return Ok(Err(ProofInvalid::MissingField("created"))),
    };
    let Some(signature) = proof
        .get("proofValue")
        .and_then(Value::as_str)
        .and_then(|v| v.strip_prefix('z'))
        // 64 bytes are at most 88 base58 characters; base58 decoding is
        // quadratic, so longer (peer-supplied) text is refused undecoded.
        .filter(|v| v.len() <= 128)
        .and_then(|v| multibase::Base::Base58Btc.decode(v).ok())
        .and_then(|b| Signature::from_bytes(&b).ok())
    else {
        return Ok(Err(ProofInvalid::MalformedProofValue));
    };

    let mut unsecured = obj.clone();
    unsecured.remove("proof");
    let mut config = proof.clone();
    config.remove("proofValue");
    // Stricter than the JCS suite's "starts with": an honest signer copies
    // the context verbatim, and contexts appended after signing would change
    // what the claims mean without changing the signature.
    if let Some(ctx) = config.remove("@context") {
        if Some(&ctx) != unsecured.get("@context") {
            return Ok(Err(ProofInvalid::ContextMismatch));
        }
    }
    let hash = hash_data(&Value::Object(unsecured), config, suite)?;
    if signer.public_key().verify(&hash, &signature).is_err() {
        return Ok(Err(ProofInvalid::BadSignature));
    }
    Ok(Ok(CheckedProof {
        signer,
        suite,
        purpose: purpose.to_owned(),
        created,
        challenge: proof
            .get("challenge")
            .and_then(Value::as_str)
            .map(str::to_owned),
        domain: proof.get("domain").map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    }))
}
