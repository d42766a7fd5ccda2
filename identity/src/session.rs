//! Session manifests and rosters, and the admission policy both the broker
//! and every node evaluate.
//!
//! The organizer signs the manifest (a [`crate::statement`] of type
//! [`MANIFEST_TYPE`]); the broker signs the frozen roster ([`ROSTER_TYPE`]).
//! Because nodes do not trust the broker for identity, [`Policy::admits`] is
//! the single definition of "may join" that the broker applies at admission
//! and that each node re-applies to every roster member's evidence.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::credential::VerifiedPresentation;
use crate::did::Did;

/// `type` of an organizer-signed manifest.
pub const MANIFEST_TYPE: &str = "MpcSessionManifest";
/// `type` of a broker-signed roster.
pub const ROSTER_TYPE: &str = "MpcSessionRoster";
/// Most parties a session may have: every party connects to every other.
pub const MAX_PARTIES: usize = 64;

/// The manifest body the organizer signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Human title.
    pub title: String,
    /// The organizer's DID (must be the signer).
    pub organizer: Did,
    /// What to compute.
    pub computation: Computation,
    /// Who may join.
    pub admission: Policy,
    /// Shamir threshold t (at most t colluding parties learn nothing; 2t < n).
    pub threshold: usize,
    /// No joins after this time (XSD dateTimeStamp).
    pub join_deadline: String,
    /// The session ends at this time.
    pub expires: String,
    /// ICE candidate policy for the mesh.
    #[serde(default)]
    pub ice: IcePolicy,
}

/// A program by name with its parameters (see `mpc-core`'s program registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computation {
    /// Program name, e.g. `secret-santa`.
    pub program: String,
    /// Program parameters (an object; `{}` when absent).
    #[serde(default = "empty_params")]
    pub params: Value,
}

fn empty_params() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Which ICE candidates nodes may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only TURN relay candidates (hides parties' addresses from each other).
    Relay,
}

/// Who may join a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// An explicit list of DIDs; when present, exactly these may join and
    /// the roster freezes when all of them have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parties: Option<Vec<Did>>,
    /// A credential type every party must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_type: Option<String>,
    /// Issuers whose credentials are accepted (required with `credentialType`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_issuers: Vec<Did>,
    /// Claims the credential subject must have: a value, or an array of
    /// acceptable values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, Value>,
    /// Fewest parties to run.
    pub min_parties: usize,
    /// Most parties; the roster freezes when reached.
    pub max_parties: usize,
}

/// A manifest that makes no sense.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not a manifest at all (missing or unknown fields, wrong types).
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// The fields contradict each other.
    #[error("inconsistent manifest: {0}")]
    Inconsistent(String),
}

/// Why a presentation does not satisfy a policy.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// The holder is not on the manifest's explicit party list.
    #[error("{0} is not on the session's list of parties")]
    NotListed(Did),
    /// No credential of the required type from a trusted issuer.
    #[error("no {credential_type} credential from a trusted issuer (trusted: {trusted})")]
    NoTrustedCredential {
        /// Required type.
        credential_type: String,
        /// The trusted issuers, comma separated.
        trusted: String,
    },
    /// A credential of the right type and issuer lacks a required claim value.
    #[error("the {credential_type} credential lacks the required claim {claim:?} = {expected}")]
    MissingClaim {
        /// Required type.
        credential_type: String,
        /// Claim name.
        claim: String,
        /// Required value(s), as JSON.
        expected: String,
    },
}

impl Manifest {
    /// Parses and checks a manifest body (without its proof).
    pub fn from_body(body: &serde_json::Map<String, Value>) -> Result<Self, ManifestError> {
        let mut body = body.clone();
        body.remove("proof");
        let m: Manifest = serde_json::from_value(Value::Object(body))
            .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// Checks the rules a valid manifest obeys.
    pub fn check(&self) -> Result<(), ManifestError> {
        let bad = |s: String| Err(ManifestError::Inconsistent(s));
        if self.kind != MANIFEST_TYPE {
            return bad(format!("type must be {MANIFEST_TYPE:?}"));
        }
        let p = &self.admission;
        if p.min_parties < 1 || p.min_parties > p.max_parties || p.max_parties > MAX_PARTIES {
            return bad(format!(
                "need 1 <= minParties ({}) <= maxParties ({}) <= {MAX_PARTIES}",
                p.min_parties, p.max_parties
            ));
        }
        // Saturating: the threshold is any number a manifest states; a wrapped `2t` must not
        // pass this check.
        let needed = self.threshold.checked_mul(2).and_then(|d| d.checked_add(1));
        if needed.is_none_or(|n| n > p.min_parties) {
            let needed =
                needed.map_or_else(|| "more than any session has".into(), |n| n.to_string());
            return bad(format!(
                "threshold {} needs at least {needed} parties (2t < n), but minParties is {}",
                self.threshold, p.min_parties
            ));
        }
        match (&p.parties, &p.credential_type) {
            (None, None) => {
                return bad("admission needs a list of parties or a credentialType".into())
            }
            (Some(list), _) => {
                let mut sorted = list.clone();
                sorted.sort();
                sorted.dedup();
                if sorted.len() != list.len() {
                    return bad("the list of parties has duplicates".into());
                }
                if list.len() < p.min_parties || list.len() > p.max_parties {
                    return bad(format!(
                        "{} listed parties is outside minParties..maxParties",
                        list.len()
                    ));
                }
            }
            (None, Some(_)) => {}
        }
        if p.credential_type.is_some() && p.trusted_issuers.is_empty() {
            return bad("credentialType needs at least one trusted issuer".into());
        }
        let deadline = crate::parse_timestamp(&self.join_deadline)
            .map_err(|e| ManifestError::Inconsistent(format!("joinDeadline: {e}")))?;
        let expires = crate::parse_timestamp(&self.expires)
            .map_err(|e| ManifestError::Inconsistent(format!("expires: {e}")))?;
        if expires < deadline {
            return bad("expires is before joinDeadline".into());
        }
        Ok(())
    }

    /// The join deadline.
    pub fn join_deadline(&self) -> SystemTime {
        crate::parse_timestamp(&self.join_deadline).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl Policy {
    /// Whether a verified presentation satisfies this policy. The caller has
    /// already verified the presentation (holder, challenge, credentials).
    pub fn admits(&self, vp: &VerifiedPresentation) -> Result<(), PolicyViolation> {
        if let Some(list) = &self.parties {
            if !list.contains(&vp.holder) {
                return Err(PolicyViolation::NotListed(vp.holder.clone()));
            }
        }
        let Some(ctype) = &self.credential_type else {
            return Ok(());
        };
        let candidates: Vec<_> = vp
            .credentials
            .iter()
            .filter(|c| c.types.iter().any(|t| t == ctype))
            .filter(|c| self.trusted_issuers.contains(&c.issuer))
            .collect();
        if candidates.is_empty() {
            return Err(PolicyViolation::NoTrustedCredential {
                credential_type: ctype.clone(),
                trusted: self
                    .trusted_issuers
                    .iter()
                    .map(Did::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut first_missing = None;
        for c in candidates {
            match self
                .required_claims
                .iter()
                .find(|(k, want)| !claim_matches(c.claims.get(*k), want))
            {
                None => return Ok(()),
                Some((k, want)) => {
                    first_missing.get_or_insert_with(|| (k.clone(), want.to_string()));
                }
            }
        }
        let (claim, expected) = first_missing.unwrap_or_default();
        Err(PolicyViolation::MissingClaim {
            credential_type: ctype.clone(),
            claim,
            expected,
        })
    }
}

fn claim_matches(have: Option<&Value>, want: &Value) -> bool {
    match (have, want) {
        (None, _) => false,
        (Some(h), Value::Array(options)) => options.contains(h),
        (Some(h), w) => h == w,
    }
}

/// SHA-256 of the RFC 8785 form of a JSON document, hex: how manifests and
/// rosters are referred to.
pub fn document_hash(doc: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(doc).unwrap_or_default();
    crate::keys::encode_hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::VerifiedCredential;
    use crate::Cryptosuite;
    use crate::Keypair;
    use serde_json::json;

    fn did(n: u8) -> Did {
        Keypair::from_seed(&[n; 32]).did()
    }

    fn manifest(admission: Value) -> Result<Manifest, ManifestError> {
        let body = json!({
            "type": MANIFEST_TYPE,
            "title": "t",
            "organizer": did(1),
            "computation": {"program": "sum", "params": {}},
            "admission": admission,
            "threshold": 1,
            "joinDeadline": "2030-01-01T00:00:00Z",
            "expires": "2030-01-02T00:00:00Z",
        });
        Manifest::from_body(body.as_object().unwrap())
    }

    fn vp(holder: Did, issuer: Did, claims: Value) -> VerifiedPresentation {
        VerifiedPresentation {
            holder,
            credentials: vec![VerifiedCredential {
                issuer,
                subject: None,
                types: vec![
                    "VerifiableCredential".into(),
                    "MpcParticipantCredential".into(),
                ],
                claims: claims.as_object().cloned().unwrap(),
                suite: Cryptosuite::EddsaJcs2022,
                valid_until: None,
            }],
        }
    }

    fn policy() -> Manifest {
        manifest(json!({
            "credentialType": "MpcParticipantCredential",
            "trustedIssuers": [did(2)],
            "requiredClaims": {"organization": ["Uni A", "Uni B"]},
            "minParties": 3, "maxParties": 5
        }))
        .unwrap()
    }

    #[test]
    fn a_credential_from_a_trusted_issuer_with_the_claims_is_admitted() {
        let m = policy();
        assert_eq!(
            m.admission
                .admits(&vp(did(3), did(2), json!({"organization": "Uni B"}))),
            Ok(())
        );
    }

    #[test]
    fn an_untrusted_issuer_is_refused() {
        let m = policy();
        assert!(matches!(
            m.admission
                .admits(&vp(did(3), did(9), json!({"organization": "Uni A"}))),
            Err(PolicyViolation::NoTrustedCredential { .. })
        ));
    }

    #[test]
    fn a_missing_or_wrong_claim_is_refused() {
        let m = policy();
        for claims in [json!({}), json!({"organization": "Uni C"})] {
            assert!(matches!(
                m.admission.admits(&vp(did(3), did(2), claims)),
                Err(PolicyViolation::MissingClaim { .. })
            ));
        }
    }

    #[test]
    fn only_listed_parties_are_admitted_by_a_list() {
        let m = manifest(
            json!({"parties": [did(3), did(4), did(5)], "minParties": 3, "maxParties": 3}),
        )
        .unwrap();
        let ok = VerifiedPresentation {
            holder: did(4),
            credentials: vec![],
        };
        assert_eq!(m.admission.admits(&ok), Ok(()));
        let no = VerifiedPresentation {
            holder: did(6),
            credentials: vec![],
        };
        assert_eq!(
            m.admission.admits(&no),
            Err(PolicyViolation::NotListed(did(6)))
        );
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        for admission in [
            json!({"minParties": 3, "maxParties": 5}),
            json!({"credentialType": "T", "minParties": 3, "maxParties": 5}),
            json!({"parties": [did(3), did(3), did(4)], "minParties": 3, "maxParties": 3}),
            json!({"credentialType": "T", "trustedIssuers": [did(2)], "minParties": 5, "maxParties": 3}),
            json!({"credentialType": "T", "trustedIssuers": [did(2)], "minParties": 2, "maxParties": 3}),
        ] {
            assert!(manifest(admission.clone()).is_err(), "{admission}");
        }
        assert!(matches!(
            manifest(json!({"bogus": 1, "minParties": 3, "maxParties": 3})),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn a_threshold_whose_double_overflows_is_refused() {
        let mut body = manifest(
            json!({"parties": [did(3), did(4), did(5)], "minParties": 3, "maxParties": 3}),
        )
        .unwrap();
        for t in [1usize << 63, usize::MAX] {
            body.threshold = t;
            let err = body.check().unwrap_err();
            assert!(err.to_string().contains("needs at least"), "{err}");
        }
    }

    #[test]
    fn document_hash_ignores_key_order() {
        assert_eq!(
            document_hash(&json!({"a": 1, "b": 2})),
            document_hash(&json!({"b": 2, "a": 1}))
        );
    }
}
