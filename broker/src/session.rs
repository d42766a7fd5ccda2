//! Sessions as a pure state machine: admission, freezing and the roster.
//!
//! Nothing here does I/O or reads a clock: the HTTP layer loads a
//! [`SessionRecord`] from the store, applies one transition with the
//! current time, and writes it back with compare-and-swap (retrying on
//! conflict), so concurrent joins on several replicas serialize cleanly.
//!
//! Phases: `open` (admitting) → `frozen` (roster signed; no more joins) →
//! gone at `expires`. A session whose join deadline passes with fewer than
//! `minParties` members cannot run and reports `expired`.

use std::time::SystemTime;

use identity::session::{Manifest, ROSTER_TYPE};
use identity::{format_timestamp, Did, Keypair};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `type` of the broker's countersignature of a manifest.
pub const PUBLICATION_TYPE: &str = "MpcSessionPublication";

/// Whether `id` has the shape of a session id this broker mints.
pub fn valid_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A joined party and the presentation that admitted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The party.
    pub did: Did,
    /// Its join presentation, verbatim, so every node can re-verify it.
    pub evidence: Value,
}

/// Why the roster froze.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeReason {
    /// Every party on the manifest's explicit list joined.
    AllListed,
    /// `maxParties` joined.
    MaxParties,
    /// The organizer sealed it.
    Sealed,
    /// The join deadline passed with at least `minParties` members.
    Deadline,
}

/// What a session record says about its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Admitting parties.
    Open,
    /// The roster is signed.
    Frozen,
    /// Past `expires`, or past the join deadline without enough parties.
    Expired,
}

/// Everything the broker stores about one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// Broker-assigned id.
    pub id: String,
    /// The broker-signed publication (countersigned manifest), served as is.
    pub publication: Value,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// `document_hash` of the organizer-signed manifest.
    pub manifest_hash: String,
    /// Members in join order.
    pub members: Vec<Member>,
    /// The signed roster once frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<Value>,
}

/// A join the session cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    /// Past `expires`.
    #[error("the session expired at {0}")]
    Expired(String),
    /// Past the join deadline.
    #[error("the join deadline ({0}) has passed")]
    DeadlinePassed(String),
    /// Frozen without this party.
    #[error("the roster is frozen; the session takes no more parties")]
    Frozen,
    /// `maxParties` reached.
    #[error("the session is full ({0} parties)")]
    Full(usize),
}

/// A seal the session cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealRefused {
    /// Already frozen.
    #[error("the roster is already frozen")]
    AlreadyFrozen,
    /// Fewer than `minParties` members.
    #[error("only {joined} of the required {min} parties have joined")]
    TooFew {
        /// Members so far.
        joined: usize,
        /// `minParties`.
        min: usize,
    },
    /// Past `expires`.
    #[error("the session expired at {0}")]
    Expired(String),
}

/// The outcome of an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Newly added.
    Added,
    /// Was already a member (joining twice is harmless).
    AlreadyMember,
}

impl SessionRecord {
    /// A new open session.
    pub fn new(id: String, publication: Value, manifest: Manifest, manifest_hash: String) -> Self {
        SessionRecord {
            id,
            publication,
            manifest,
            manifest_hash,
            members: Vec::new(),
            roster: None,
        }
    }

    fn expires(&self) -> SystemTime {
        identity::parse_timestamp(&self.manifest.expires).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The phase at `now`.
    pub fn state(&self, now: SystemTime) -> State {
        if now > self.expires() {
            State::Expired
        } else if self.roster.is_some() {
            State::Frozen
        } else if now > self.manifest.join_deadline()
            && self.members.len() < self.manifest.admission.min_parties
        {
            State::Expired
        } else {
            State::Open
        }
    }

    /// Whether `did` is a member (joined, frozen or not).
    pub fn is_member(&self, did: &Did) -> bool {
        self.members.iter().any(|m| m.did == *did)
    }

    /// Whether `did` is on the frozen roster.
    pub fn on_roster(&self, did: &Did) -> bool {
        self.roster.is_some() && self.is_member(did)
    }

    /// Checks a join could be taken now, before the expensive presentation
    /// check (the real admission re-checks under compare-and-swap).
    pub fn precheck_join(&self, did: Option<&Did>, now: SystemTime) -> Result<(), JoinRefused> {
        if now > self.expires() {
            return Err(JoinRefused::Expired(self.manifest.expires.clone()));
        }
        if let Some(d) = did {
            if self.is_member(d) {
                return Ok(());
            }
        }
        let max = self.manifest.admission.max_parties;
        if self.roster.is_some() {
            return Err(if self.members.len() >= max {
                JoinRefused::Full(max)
            } else {
                JoinRefused::Frozen
            });
        }
        if now > self.manifest.join_deadline() {
            return Err(JoinRefused::DeadlinePassed(
                self.manifest.join_deadline.clone(),
            ));
        }
        if self.members.len() >= max {
            return Err(JoinRefused::Full(max));
        }
        Ok(())
    }

    /// Admits a party whose presentation the caller verified and found to
    /// satisfy the policy. Returns whether the roster should now freeze.
    pub fn admit(
        &mut self,
        member: Member,
        now: SystemTime,
    ) -> Result<(Admitted, Option<FreezeReason>), JoinRefused> {
        self.precheck_join(Some(&member.did), now)?;
        if self.is_member(&member.did) {
            return Ok((Admitted::AlreadyMember, None));
        }
        self.members.push(member);
        Ok((Admitted::Added, self.freeze_due(now)))
    }

    /// Whether the policy says the roster freezes now.
    pub fn freeze_due(&self, now: SystemTime) -> Option<FreezeReason> {
        if self.roster.is_some() || now > self.expires() {
            return None;
        }
        let adm = &self.manifest.admission;
        if let Some(list) = &adm.parties {
            if list.iter().all(|d| self.is_member(d)) {
                return Some(FreezeReason::AllListed);
            }
        }
        if self.members.len() >= adm.max_parties {
            return Some(FreezeReason::MaxParties);
        }
        if now > self.manifest.join_deadline() && self.members.len() >= adm.min_parties {
            return Some(FreezeReason::Deadline);
        }
        None
    }

    /// Checks the organizer may seal now.
    pub fn check_seal(&self, now: SystemTime) -> Result<(), SealRefused> {
        if now > self.expires() {
            return Err(SealRefused::Expired(self.manifest.expires.clone()));
        }
        if self.roster.is_some() {
            return Err(SealRefused::AlreadyFrozen);
        }
        let min = self.manifest.admission.min_parties;
        if self.members.len() < min {
            return Err(SealRefused::TooFew {
                joined: self.members.len(),
                min,
            });
        }
        Ok(())
    }

    /// Members in roster order: the manifest's list order for an explicit
    /// list, otherwise sorted by DID — the same on every replica whatever
    /// the order of joins.
    pub fn roster_order(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.iter().collect();
        match &self.manifest.admission.parties {
            Some(list) => members.sort_by_key(|m| list.iter().position(|d| *d == m.did)),
            None => members.sort_by(|a, b| a.did.as_str().cmp(b.did.as_str())),
        }
        members
    }

    /// The roster body (unsigned).
    pub fn roster_body(
        &self,
        broker: &Did,
        reason: FreezeReason,
        now: SystemTime,
    ) -> Map<String, Value> {
        let members: Vec<Value> = self
            .roster_order()
            .into_iter()
            .enumerate()
            .map(|(index, m)| json!({"index": index, "did": m.did, "evidence": m.evidence}))
            .collect();
        let body = json!({
            "type": ROSTER_TYPE,
            "session": self.id,
            "broker": broker,
            "manifestHash": self.manifest_hash,
            "frozenAt": format_timestamp(now),
            "reason": reason,
            "members": members,
        });
        match body {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Freezes the roster, signing it with the broker key.
    pub fn freeze(
        &mut self,
        broker: &Keypair,
        reason: FreezeReason,
        now: SystemTime,
    ) -> Result<&Value, identity::statement::StatementError> {
        let body = self.roster_body(&broker.did(), reason, now);
        let signed = identity::statement::sign(broker, ROSTER_TYPE, &body, now)?;
        Ok(self.roster.insert(signed))
    }
}

/// The publication body (unsigned) for a manifest the broker accepted.
pub fn publication_body(
    id: &str,
    broker: &Did,
    domain: &str,
    manifest_hash: &str,
    signed_manifest: &Value,
    now: SystemTime,
) -> Map<String, Value> {
    let body = json!({
        "type": PUBLICATION_TYPE,
        "session": id,
        "broker": broker,
        "domain": domain,
        "manifestHash": manifest_hash,
        "manifest": signed_manifest,
        "publishedAt": format_timestamp(now),
    });
    match body {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn did(n: u8) -> Did {
        Keypair::from_seed(&[n; 32]).did()
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn record(mut admission: Value) -> SessionRecord {
        if admission.get("parties").is_none() {
            admission["credentialType"] = json!("T");
            admission["trustedIssuers"] = json!([did(8)]);
        }
        let body = json!({
            "type": "MpcSessionManifest",
            "title": "t",
            "organizer": did(1),
            "computation": {"program": "sum", "params": {}},
            "admission": admission,
            "threshold": 0,
            // 1000 and 2000 seconds after the epoch.
            "joinDeadline": "1970-01-01T00:16:40Z",
            "expires": "1970-01-01T00:33:20Z",
        });
        let m = Manifest::from_body(body.as_object().unwrap()).unwrap();
        SessionRecord::new("sess0001".into(), json!({}), m, "00".repeat(32))
    }

    fn member(n: u8) -> Member {
        Member {
            did: did(n),
            evidence: json!({"n": n}),
        }
    }

    #[test]
    fn explicit_list_freezes_when_all_listed_joined_in_list_order() {
        let mut r =
            record(json!({"parties": [did(3), did(2), did(4)], "minParties": 3, "maxParties": 3}));
        assert_eq!(r.admit(member(4), at(1)).unwrap(), (Admitted::Added, None));
        assert_eq!(r.admit(member(2), at(1)).unwrap(), (Admitted::Added, None));
        assert_eq!(
            r.admit(member(2), at(1)).unwrap(),
            (Admitted::AlreadyMember, None)
        );
        let (_, due) = r.admit(member(3), at(1)).unwrap();
        assert_eq!(due, Some(FreezeReason::AllListed));
        let order: Vec<_> = r.roster_order().iter().map(|m| m.did.clone()).collect();
        assert_eq!(order, vec![did(3), did(2), did(4)]);
    }

    #[test]
    fn policy_roster_is_sorted_by_did_whatever_the_join_order() {
        let mut a = record(json!({"minParties": 2, "maxParties": 3}));
        let mut b = a.clone();
        for n in [5, 6, 7] {
            a.admit(member(n), at(1)).unwrap();
        }
        for n in [7, 5, 6] {
            b.admit(member(n), at(1)).unwrap();
        }
        let key = Keypair::from_seed(&[9; 32]);
        let ra = a.roster_body(&key.did(), FreezeReason::MaxParties, at(2));
        let rb = b.roster_body(&key.did(), FreezeReason::MaxParties, at(2));
        assert_eq!(ra, rb);
    }

    #[test]
    fn full_frozen_late_and_expired_joins_are_refused_with_their_reason() {
        let mut r = record(json!({"minParties": 1, "maxParties": 2}));
        r.admit(member(2), at(1)).unwrap();
        assert_eq!(
            r.admit(member(3), at(1)).unwrap().1,
            Some(FreezeReason::MaxParties)
        );
        assert_eq!(r.admit(member(4), at(1)), Err(JoinRefused::Full(2)));
        r.freeze(
            &Keypair::from_seed(&[9; 32]),
            FreezeReason::MaxParties,
            at(2),
        )
        .unwrap();
        assert_eq!(r.admit(member(4), at(3)), Err(JoinRefused::Full(2)));
        assert_eq!(
            r.admit(member(2), at(3)).unwrap().0,
            Admitted::AlreadyMember
        );
        let fresh = &mut record(json!({"minParties": 1, "maxParties": 2}));
        assert!(matches!(
            fresh.admit(member(2), at(1001)),
            Err(JoinRefused::DeadlinePassed(_))
        ));
        assert!(matches!(
            fresh.admit(member(2), at(2001)),
            Err(JoinRefused::Expired(_))
        ));
    }

    #[test]
    fn deadline_freezes_with_enough_parties_and_expires_without() {
        let mut r = record(json!({"minParties": 2, "maxParties": 5}));
        r.admit(member(2), at(1)).unwrap();
        assert_eq!(r.freeze_due(at(1001)), None);
        assert_eq!(r.state(at(1001)), State::Expired);
        r.admit(member(3), at(2)).unwrap();
        assert_eq!(r.freeze_due(at(999)), None);
        assert_eq!(r.freeze_due(at(1001)), Some(FreezeReason::Deadline));
    }

    #[test]
    fn seal_needs_min_parties_and_an_open_roster() {
        let mut r = record(json!({"minParties": 2, "maxParties": 5}));
        r.admit(member(2), at(1)).unwrap();
        assert_eq!(
            r.check_seal(at(2)),
            Err(SealRefused::TooFew { joined: 1, min: 2 })
        );
        r.admit(member(3), at(1)).unwrap();
        assert_eq!(r.check_seal(at(2)), Ok(()));
        r.freeze(&Keypair::from_seed(&[9; 32]), FreezeReason::Sealed, at(2))
            .unwrap();
        assert_eq!(r.check_seal(at(3)), Err(SealRefused::AlreadyFrozen));
        assert_eq!(r.state(at(3)), State::Frozen);
    }

    #[test]
    fn signed_roster_verifies_as_a_roster_from_the_broker() {
        let key = Keypair::from_seed(&[9; 32]);
        let mut r = record(json!({"minParties": 1, "maxParties": 1}));
        r.admit(member(2), at(1)).unwrap();
        let roster = r
            .freeze(&key, FreezeReason::MaxParties, at(2))
            .unwrap()
            .clone();
        let v = identity::statement::verify(&roster, ROSTER_TYPE, Some(&key.did()))
            .unwrap()
            .unwrap();
        assert_eq!(v.body["members"][0]["did"], json!(did(2)));
        assert_eq!(v.body["reason"], json!("max-parties"));
    }

    #[test]
    fn record_survives_a_store_round_trip() {
        let mut r = record(json!({"minParties": 1, "maxParties": 3}));
        r.admit(member(2), at(1)).unwrap();
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SessionRecord>(&s).unwrap(), r);
    }
}
