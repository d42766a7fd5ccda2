//! Checking presentations on the broker: a shape guard, a bounded pool of
//! blocking workers, and the mapping of every verdict to a problem code.
//!
//! Verification is CPU work (milliseconds for `eddsa-rdfc-2022`), so it runs
//! on blocking threads, at most `permits` at once, each with a deadline; a
//! flood of presentations queues for a permit (bounded wait) instead of
//! starving the async workers.
//!
//! RDF canonicalization (RDFC-1.0) has worst cases exponential in the
//! number of blank nodes that look alike, and the canonicalizer we use has no
//! work budget. Before an `eddsa-rdfc-2022` document is canonicalized, the
//! guard therefore refuses explicit blank-node labels (`_:…`, the only way to
//! build cycles) and caps the number of id-less objects, in total and per
//! array. Real credentials and presentations have a handful.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use identity::session::PolicyViolation;
use identity::{CredentialInvalid, PresentationInvalid, VerifiedPresentation, VerifyError};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// Most id-less JSON objects (blank nodes) in an `eddsa-rdfc-2022` document.
pub const MAX_BLANK_NODES: usize = 16;
/// Most id-less objects in one array of an `eddsa-rdfc-2022` document.
pub const MAX_BLANK_SIBLINGS: usize = 4;
/// Deepest JSON nesting accepted in a presentation.
pub const MAX_DEPTH: usize = 24;

/// A bounded pool for blocking verification work.
#[derive(Debug, Clone)]
pub struct VerifyPool {
    permits: Arc<Semaphore>,
    deadline: Duration,
}

impl VerifyPool {
    /// At most `permits` verifications at once, each waited on for at most
    /// `deadline` (queueing included).
    pub fn new(permits: usize, deadline: Duration) -> Self {
        VerifyPool {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            deadline,
        }
    }

    /// Runs `work` on a blocking thread within the pool's limits.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let busy = || {
            Problem::unavailable(
                "verification_overloaded",
                format!(
                    "the broker could not check the presentation within {:?}; try again shortly",
                    self.deadline
                ),
            )
        };
        let job = async {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| busy())?;
            tokio::task::spawn_blocking(move || {
                let out = work();
                drop(permit);
                out
            })
            .await
            .map_err(|_| busy())
        };
        tokio::time::timeout(self.deadline, job)
            .await
            .map_err(|_| busy())?
    }
}

/// Refuses documents whose canonicalization could be made expensive.
pub fn check_shape(doc: &Value) -> Result<(), Problem> {
    let rdfc = mentions_rdfc(doc, 0);
    let mut blank = 0usize;
    walk(doc, 0, rdfc, &mut blank)
}

fn mentions_rdfc(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "cryptosuite" && v.as_str() == Some("eddsa-rdfc-2022"))
                || mentions_rdfc(v, depth + 1)
        }),
        Value::Array(a) => a.iter().any(|v| mentions_rdfc(v, depth + 1)),
        _ => false,
    }
}

fn too_complex(detail: String) -> Problem {
    Problem::bad_request(
        "document_too_complex",
        format!(
            "{detail}; issue the credential or presentation without it (or use eddsa-jcs-2022)"
        ),
    )
}

fn is_blank_candidate(m: &serde_json::Map<String, Value>) -> bool {
    !(m.contains_key("id")
        || m.contains_key("@id")
        || m.contains_key("@value")
        || m.contains_key("@context") && m.len() == 1)
}

fn walk(v: &Value, depth: usize, rdfc: bool, blank: &mut usize) -> Result<(), Problem> {
    if depth > MAX_DEPTH {
        return Err(too_complex(format!(
            "the document nests deeper than {MAX_DEPTH} levels"
        )));
    }
    match v {
        Value::String(s) if rdfc && s.starts_with("_:") => Err(too_complex(format!(
            "the document uses an explicit blank-node label ({s:?})"
        ))),
        Value::Object(m) => {
            if rdfc && is_blank_candidate(m) {
                *blank += 1;
                if *blank > MAX_BLANK_NODES {
                    return Err(too_complex(format!(
                        "the document has more than {MAX_BLANK_NODES} objects without an id"
                    )));
                }
            }
            for (k, child) in m {
                // Contexts are vocabulary, not data; only bundled ones load.
                if k == "@context" {
                    continue;
                }
                walk(child, depth + 1, rdfc, blank)?;
            }
            Ok(())
        }
        Value::Array(a) => {
            if rdfc {
                let siblings = a
                    .iter()
                    .filter(|c| c.as_object().is_some_and(is_blank_candidate))
                    .count();
                if siblings > MAX_BLANK_SIBLINGS {
                    return Err(too_complex(format!(
                        "an array holds {siblings} objects without an id (at most {MAX_BLANK_SIBLINGS})"
                    )));
                }
            }
            a.iter().try_for_each(|c| walk(c, depth + 1, rdfc, blank))
        }
        _ => Ok(()),
    }
}

/// The challenge a presentation answers (its `authentication` proof's).
pub fn presented_challenge(vp: &Value) -> Result<&str, Problem> {
    let proof = match vp.get("proof") {
        Some(Value::Array(proofs)) => proofs
            .iter()
            .find(|p| p.get("proofPurpose").and_then(Value::as_str) == Some("authentication")),
        Some(p) => Some(p),
        None => None,
    };
    proof
        .and_then(|p| p.get("challenge"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Problem::bad_request(
                "challenge_missing",
                "the presentation's proof has no challenge; ask POST /v1/auth/challenge for one and sign it into the proof",
            )
        })
}

/// Verifies a presentation (holder, challenge, domain, every credential) on
/// the pool, mapping every refusal to its problem.
pub async fn presentation(
    pool: &VerifyPool,
    vp: Value,
    challenge: String,
    domain: String,
    now: SystemTime,
) -> Result<VerifiedPresentation, Problem> {
    check_shape(&vp)?;
    let verdict = pool
        .run(move || identity::verify_presentation(&vp, &challenge, &domain, now))
        .await?;
    match verdict {
        Err(e) => Err(uncheckable(&e)),
        Ok(Err(e)) => Err(invalid(&e)),
        Ok(Ok(v)) => Ok(v),
    }
}

fn uncheckable(e: &VerifyError) -> Problem {
    let detail = crate::error_chain(e);
    let code = match e {
        VerifyError::Malformed { .. } => "presentation_malformed",
        VerifyError::StatusNotCheckable => "credential_status_uncheckable",
        VerifyError::UnsupportedJsonLd { .. } => "presentation_unsupported_jsonld",
        VerifyError::EmbeddedCredential { .. } => "credential_uncheckable",
        _ => "presentation_uncheckable",
    };
    Problem::bad_request(code, detail)
}

fn invalid(e: &PresentationInvalid) -> Problem {
    let detail = crate::error_chain(e);
    let code = match e {
        PresentationInvalid::Proof(_) => "presentation_signature_invalid",
        PresentationInvalid::WrongProofPurpose { .. } => "presentation_wrong_purpose",
        PresentationInvalid::MissingHolder | PresentationInvalid::BadHolder(_) => {
            return Problem::bad_request("presentation_malformed", detail)
        }
        PresentationInvalid::HolderMismatch { .. } => "presentation_wrong_holder",
        PresentationInvalid::ChallengeMismatch { .. } => "challenge_mismatch",
        PresentationInvalid::DomainMismatch { .. } => "domain_mismatch",
        PresentationInvalid::Credential { reason, .. } => match reason {
            CredentialInvalid::Expired { .. } => "credential_expired",
            CredentialInvalid::NotYetValid { .. } => "credential_not_yet_valid",
            CredentialInvalid::IssuerMismatch { .. } => "credential_issuer_mismatch",
            CredentialInvalid::Proof(_) => "credential_signature_invalid",
            _ => "credential_invalid",
        },
        PresentationInvalid::SubjectNotHolder { .. } => "credential_not_about_holder",
        PresentationInvalid::TooManyCredentials(_) => {
            return Problem::bad_request("too_many_credentials", detail)
        }
        _ => "presentation_invalid",
    };
    Problem::unauthorized(code, detail)
}

/// The problem for a presentation that verified but does not satisfy the
/// session's admission policy.
pub fn policy(v: &PolicyViolation) -> Problem {
    let code = match v {
        PolicyViolation::NotListed(_) => "not_on_party_list",
        PolicyViolation::NoTrustedCredential { .. } => "credential_untrusted_issuer",
        PolicyViolation::MissingClaim { .. } => "credential_missing_claim",
        _ => "admission_refused",
    };
    Problem::forbidden(code, v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rdfc_documents_with_blank_node_labels_or_many_alike_objects_are_refused() {
        let labelled = json!({"proof": {"cryptosuite": "eddsa-rdfc-2022"}, "x": {"id": "_:b0"}});
        assert_eq!(
            check_shape(&labelled).unwrap_err().code(),
            "document_too_complex"
        );
        let alike: Vec<Value> = (0..6).map(|_| json!({"k": 1})).collect();
        let many = json!({"proof": {"cryptosuite": "eddsa-rdfc-2022"}, "id": "urn:x", "credentialSubject": {"id": "did:x", "a": alike}});
        assert_eq!(
            check_shape(&many).unwrap_err().code(),
            "document_too_complex"
        );
    }

    #[test]
    fn jcs_documents_are_not_limited_by_blank_node_rules() {
        let alike: Vec<Value> = (0..6).map(|_| json!({"k": "_:b0"})).collect();
        let doc = json!({"proof": {"cryptosuite": "eddsa-jcs-2022"}, "a": alike});
        assert!(check_shape(&doc).is_ok());
    }

    #[test]
    fn deeply_nested_documents_are_refused_without_recursing_forever() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!([v]);
        }
        assert_eq!(check_shape(&v).unwrap_err().code(), "document_too_complex");
    }
}
