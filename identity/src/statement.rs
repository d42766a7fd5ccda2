//! Signed statements: plain JSON objects (session manifests, rosters, broker
//! countersignatures) secured with an `eddsa-jcs-2022` Data Integrity proof
//! for `assertionMethod`.
//!
//! Domain separation comes from the statement's `type`, which is inside the
//! signed bytes and which the verifier requires to be the one it expects, so
//! a roster can never be accepted as a manifest or vice versa.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::did::Did;
use crate::integrity::{
    self, Cryptosuite, IntegrityError, ProofInvalid, ProofOptions, ProofPurpose,
};
use crate::keys::Keypair;

/// Why a statement could not be signed or evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// Not a JSON object with the expected `type`.
    #[error("not a {expected} statement: {reason}")]
    WrongType {
        /// The expected `type`.
        expected: String,
        /// What was found.
        reason: String,
    },
    /// The proof could not be evaluated or made.
    #[error("cannot evaluate the statement's proof")]
    Proof(#[source] IntegrityError),
}

/// A statement that was evaluated and is not valid.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementInvalid {
    /// The proof is invalid.
    #[error("invalid proof: {0}")]
    Proof(#[source] ProofInvalid),
    /// The proof is not for `assertionMethod`.
    #[error("proof purpose is {0:?}, expected \"assertionMethod\"")]
    WrongProofPurpose(String),
    /// Signed by someone other than required.
    #[error("signed by {found}, expected {expected}")]
    WrongSigner {
        /// Required signer.
        expected: Did,
        /// Actual signer.
        found: Did,
    },
}

/// A statement whose proof verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    /// Who signed it.
    pub signer: Did,
    /// The statement without its proof.
    pub body: Map<String, Value>,
    /// When it says it was signed.
    pub created: Option<SystemTime>,
}

/// Signs `body`, which must carry `"type": statement_type`.
pub fn sign(
    keypair: &Keypair,
    statement_type: &str,
    body: &Map<String, Value>,
    created: SystemTime,
) -> Result<Value, StatementError> {
    check_type(body, statement_type)?;
    integrity::sign(
        body,
        keypair,
        &ProofOptions {
            suite: Cryptosuite::EddsaJcs2022,
            purpose: ProofPurpose::AssertionMethod,
            created,
            challenge: None,
            domain: None,
        },
    )
    .map_err(StatementError::Proof)
}

/// Verifies a statement of type `statement_type`, optionally requiring a
/// particular signer.
pub fn verify(
    doc: &Value,
    statement_type: &str,
    expected_signer: Option<&Did>,
) -> Result<Result<VerifiedStatement, StatementInvalid>, StatementError> {
    let obj = doc.as_object().ok_or_else(|| StatementError::WrongType {
        expected: statement_type.to_owned(),
        reason: "not a JSON object".into(),
    })?;
    check_type(obj, statement_type)?;
    let proof = match integrity::verify(doc).map_err(StatementError::Proof)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(StatementInvalid::Proof(e))),
    };
    if proof.purpose != ProofPurpose::AssertionMethod.name() {
        return Ok(Err(StatementInvalid::WrongProofPurpose(proof.purpose)));
    }
    if let Some(expected) = expected_signer {
        if *expected != proof.signer {
            return Ok(Err(StatementInvalid::WrongSigner {
                expected: expected.clone(),
                found: proof.signer,
            }));
        }
    }
    let mut body = obj.clone();
    body.remove("proof");
    Ok(Ok(VerifiedStatement {
        signer: proof.signer,
        body,
        created: proof.created,
    }))
}

fn check_type(body: &Map<String, Value>, expected: &str) -> Result<(), StatementError> {
    match body.get("type").and_then(Value::as_str) {
        Some(t) if t == expected => Ok(()),
        other => Err(StatementError::WrongType {
            expected: expected.to_owned(),
            reason: format!("type is {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    fn body(t: &str) -> Map<String, Value> {
        json!({"type": t, "title": "demo", "threshold": 1})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn statements_verify_and_name_their_signer() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let doc = sign(
            &kp,
            "MpcSessionManifest",
            &body("MpcSessionManifest"),
            UNIX_EPOCH,
        )
        .unwrap();
        let v = verify(&doc, "MpcSessionManifest", Some(&kp.did()))
            .unwrap()
            .unwrap();
        assert_eq!(v.signer, kp.did());
        assert_eq!(v.body, body("MpcSessionManifest"));
    }

    #[test]
    fn a_statement_of_another_type_is_refused() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let doc = sign(
            &kp,
            "MpcSessionRoster",
            &body("MpcSessionRoster"),
            UNIX_EPOCH,
        )
        .unwrap();
        assert!(matches!(
            verify(&doc, "MpcSessionManifest", None),
            Err(StatementError::WrongType { .. })
        ));
    }

    #[test]
    fn an_altered_statement_is_refused() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let mut doc = sign(
            &kp,
            "MpcSessionManifest",
            &body("MpcSessionManifest"),
            UNIX_EPOCH,
        )
        .unwrap();
        doc["threshold"] = json!(2);
        assert_eq!(
            verify(&doc, "MpcSessionManifest", None).unwrap(),
            Err(StatementInvalid::Proof(ProofInvalid::BadSignature))
        );
    }

    #[test]
    fn a_statement_by_an_unexpected_signer_is_refused() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let other = Keypair::from_seed(&[8u8; 32]);
        let doc = sign(
            &kp,
            "MpcSessionManifest",
            &body("MpcSessionManifest"),
            UNIX_EPOCH,
        )
        .unwrap();
        assert!(matches!(
            verify(&doc, "MpcSessionManifest", Some(&other.did())).unwrap(),
            Err(StatementInvalid::WrongSigner { .. })
        ));
    }
}
