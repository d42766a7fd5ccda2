//! What a node checks itself instead of trusting the broker (pure).
//!
//! The broker signs two things a node relies on: the publication (its
//! countersignature of the organizer's manifest) and the frozen roster.
//! Neither signature is enough on its own: the node checks that the manifest
//! is signed by the organizer it was told to expect, that the roster refers
//! to exactly that manifest, and it re-verifies every member's evidence — a
//! presentation made for *this* session (its challenge starts with
//! `join/<session>:`), bound to the broker's domain, signed by the member,
//! whose credentials satisfy the organizer's admission policy. A broker that
//! adds a party, swaps a manifest or replays a presentation from another
//! session is caught here; one that shows different rosters to different
//! parties is caught by the transcript exchange in the mesh.

use std::time::SystemTime;

use identity::session::{document_hash, Manifest, MANIFEST_TYPE, ROSTER_TYPE};
use identity::statement;
use identity::Did;
use serde_json::Value;

/// `type` of the broker's countersignature (see the broker crate).
pub const PUBLICATION_TYPE: &str = "MpcSessionPublication";

/// Why the node refuses what the broker served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The publication (broker countersignature) is not valid.
    #[error("the session publication is not valid: {0}")]
    Publication(String),
    /// The manifest is not valid.
    #[error("the manifest is not valid: {0}")]
    Manifest(String),
    /// Signed by another organizer than the one the party expects.
    #[error("the manifest is signed by {found}, not by the expected organizer {expected}")]
    WrongOrganizer {
        /// Expected.
        expected: Did,
        /// Found.
        found: Did,
    },
    /// The session expired.
    #[error("the session expired at {0}")]
    Expired(String),
    /// The roster is not valid.
    #[error("the roster is not valid: {0}")]
    Roster(String),
    /// A member's evidence does not hold up.
    #[error("roster member #{index} ({did}): {reason}")]
    Evidence {
        /// Roster index.
        index: usize,
        /// The member.
        did: String,
        /// What is wrong.
        reason: String,
    },
    /// This node is not on the roster.
    #[error("{0} is not on the roster")]
    NotOnRoster(Did),
}

/// A publication that checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSession {
    /// Session id.
    pub id: String,
    /// The broker that countersigned.
    pub broker: Did,
    /// The domain presentations are bound to.
    pub domain: String,
    /// The organizer's manifest.
    pub manifest: Manifest,
    /// Hash of the organizer-signed manifest.
    pub manifest_hash: String,
}

/// A member of a checked roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// Index (party number in the computation).
    pub index: usize,
    /// DID.
    pub did: Did,
}

/// A roster that checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRoster {
    /// Members in index order.
    pub members: Vec<RosterMember>,
    /// This node's index.
    pub me: usize,
    /// `document_hash` of the signed roster (what channel bindings name).
    pub hash: String,
}

fn pub_err(e: impl std::fmt::Display) -> CheckError {
    CheckError::Publication(e.to_string())
}

/// Checks a publication for session `id`, optionally requiring the manifest
/// to be signed by `organizer`.
pub fn check_publication(
    publication: &Value,
    id: &str,
    organizer: Option<&Did>,
    now: SystemTime,
) -> Result<CheckedSession, CheckError> {
    let p = statement::verify(publication, PUBLICATION_TYPE, None)
        .map_err(pub_err)?
        .map_err(pub_err)?;
    let claimed_broker = p
        .body
        .get("broker")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if claimed_broker != p.signer.as_str() {
        return Err(pub_err(format!(
            "signed by {} but names broker {claimed_broker:?}",
            p.signer
        )));
    }
    if p.body.get("session").and_then(Value::as_str) != Some(id) {
        return Err(pub_err(format!("it is for another session than {id}")));
    }
    let domain = p
        .body
        .get("domain")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let signed = p.body.get("manifest").cloned().unwrap_or(Value::Null);
    let hash = document_hash(&signed);
    if p.body.get("manifestHash").and_then(Value::as_str) != Some(hash.as_str()) {
        return Err(pub_err(
            "its manifestHash does not match the manifest it carries",
        ));
    }
    let m = statement::verify(&signed, MANIFEST_TYPE, None)
        .map_err(|e| CheckError::Manifest(e.to_string()))?
        .map_err(|e| CheckError::Manifest(e.to_string()))?;
    let manifest = Manifest::from_body(&m.body).map_err(|e| CheckError::Manifest(e.to_string()))?;
    if manifest.organizer != m.signer {
        return Err(CheckError::Manifest(format!(
            "it names organizer {} but is signed by {}",
            manifest.organizer, m.signer
        )));
    }
    if let Some(expected) = organizer {
        if *expected != m.signer {
            return Err(CheckError::WrongOrganizer {
                expected: expected.clone(),
                found: m.signer,
            });
        }
    }
    let expires = identity::parse_timestamp(&manifest.expires)
        .map_err(|e| CheckError::Manifest(e.to_string()))?;
    if now > expires {
        return Err(CheckError::Expired(manifest.expires.clone()));
    }
    Ok(CheckedSession {
        id: id.to_owned(),
        broker: p.signer,
        domain,
        manifest,
        manifest_hash: hash,
    })
}

/// Checks the roster of a checked session and finds `me` on it.
pub fn check_roster(
    roster: &Value,
    session: &CheckedSession,
    me: &Did,
    now: SystemTime,
) -> Result<CheckedRoster, CheckError> {
    let bad = |s: String| CheckError::Roster(s);
    let r = statement::verify(roster, ROSTER_TYPE, Some(&session.broker))
        .map_err(|e| bad(e.to_string()))?
        .map_err(|e| bad(e.to_string()))?;
    if r.body.get("session").and_then(Value::as_str) != Some(session.id.as_str()) {
        return Err(bad(format!(
            "it is for another session than {}",
            session.id
        )));
    }
    if r.body.get("manifestHash").and_then(Value::as_str) != Some(session.manifest_hash.as_str()) {
        return Err(bad("it refers to another manifest".into()));
    }
    let entries = r
        .body
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("it has no members".into()))?;
    let adm = &session.manifest.admission;
    if entries.len() < adm.min_parties || entries.len() > adm.max_parties {
        return Err(bad(format!(
            "it has {} members; the manifest allows {} to {}",
            entries.len(),
            adm.min_parties,
            adm.max_parties
        )));
    }
    let prefix = format!("join/{}:", session.id);
    let mut members: Vec<RosterMember> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let did_str = e.get("did").and_then(Value::as_str).unwrap_or_default();
        let evidence_err = |reason: String| CheckError::Evidence {
            index: i,
            did: did_str.to_owned(),
            reason,
        };
        if e.get("index").and_then(Value::as_u64) != Some(i as u64) {
            return Err(bad(format!("member #{i} has index {:?}", e.get("index"))));
        }
        let did = Did::parse(did_str).map_err(|e| evidence_err(format!("not a did:key: {e}")))?;
        if members.iter().any(|m| m.did == did) {
            return Err(bad(format!("{did} appears twice")));
        }
        let evidence = e
            .get("evidence")
            .ok_or_else(|| evidence_err("no evidence".into()))?;
        let challenge = evidence
            .get("proof")
            .and_then(|p| p.get("challenge"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !challenge.starts_with(&prefix) {
            return Err(evidence_err(format!(
                "its presentation answers challenge {challenge:?}, which was not issued for joining this session (replayed?)"
            )));
        }
        let vp = identity::verify_presentation(evidence, challenge, &session.domain, now)
            .map_err(|e| evidence_err(format!("cannot check its presentation: {e}")))?
            .map_err(|e| evidence_err(format!("its presentation is invalid: {e}")))?;
        if vp.holder != did {
            return Err(evidence_err(format!(
                "its presentation is by {}, not by the member",
                vp.holder
            )));
        }
        adm.admits(&vp).map_err(|e| {
            evidence_err(format!(
                "does not satisfy the organizer's admission policy: {e}"
            ))
        })?;
        members.push(RosterMember { index: i, did });
    }
    let me_index = members
        .iter()
        .find(|m| m.did == *me)
        .map(|m| m.index)
        .ok_or_else(|| CheckError::NotOnRoster(me.clone()))?;
    Ok(CheckedRoster {
        members,
        me: me_index,
        hash: document_hash(roster),
    })
}
